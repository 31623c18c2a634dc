//! The caller's side of a call (RFC 3261 §13.2, UAC), shared by both roles: a trunk places
//! calls into the switch, and so does a phone calling another extension.

use sdp::{CodecPolicy, Direction, MediaAddress, Origin, SessionDescription};
use sip_msg::{HeaderName, Message, Method, NameAddr, Request, Response, Uri};

use crate::agent::{Call, UserAgent, random_hex, without_tag};
use crate::error::HarnessError;
use crate::rtp::RtpLeg;

impl UserAgent {
    /// Sends an INVITE for `number` from `caller@from_host` with an SDP offer (PCMU 0, PCMA 8,
    /// telephone-event 101) naming a freshly bound RTP socket; `edit` may change the INVITE
    /// before it is sent (extra headers, another body ...). Returns at once; wait with
    /// [`UserAgent::wait_ringing`], [`UserAgent::wait_answer`] or [`UserAgent::wait_final`].
    pub async fn place_call(
        &mut self,
        number: &str,
        caller: &str,
        from_host: &str,
        edit: impl FnOnce(&mut Request),
    ) -> Result<Call, HarnessError> {
        let server = self.server();
        let local = self.local_addr();
        let rtp = RtpLeg::bind(self.name(), local.ip()).await?;
        let media = MediaAddress {
            ip: rtp.local_addr().ip(),
            rtp_port: rtp.local_addr().port(),
        };
        let mut origin = Origin::new(
            u64::from_str_radix(&random_hex()[..12], 16).unwrap_or(1),
            media.ip,
        );
        let offer = sdp::offer(
            &CodecPolicy::default(),
            media,
            &mut origin,
            Direction::SendRecv,
        );
        let uri = Uri::parse(&format!("sip:{number}@{server}"))
            .map_err(|e| self.protocol(format!("bad number {number:?}: {e}")))?;
        let mut invite = Request::new(Method::Invite, &uri);
        let (via, _) = self.new_via();
        let call_id = format!("{}@harness", random_hex());
        let local_tag = random_hex();
        let local_uri = format!("<sip:{caller}@{from_host}>");
        let remote_uri = format!("<sip:{number}@{}>", self.domain());
        let h = &mut invite.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, format!("{local_uri};tag={local_tag}"));
        h.push(HeaderName::To, remote_uri.clone());
        h.push(HeaderName::CallId, call_id.clone());
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(
            HeaderName::Contact,
            format!("<{}>", self.contact_uri(caller)),
        );
        h.push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO");
        h.push(HeaderName::UserAgent, "centralino-harness");
        h.push(HeaderName::ContentType, "application/sdp");
        invite.body = offer.to_bytes();
        edit(&mut invite);
        // The offer is what was sent, edits included (another codec list, say).
        let offer = if invite.body == offer.to_bytes() {
            offer
        } else {
            SessionDescription::parse(&invite.body).unwrap_or(offer)
        };
        self.send_request(&invite, server).await?;
        Ok(Call {
            call_id,
            local_tag,
            remote_tag: None,
            local_uri,
            remote_uri,
            remote_target: uri.to_string(),
            local_cseq: 1,
            peer: server,
            invite,
            statuses: Vec::new(),
            local_sdp: Some(offer),
            remote_sdp: None,
            negotiated: None,
            rtp,
            ended: false,
        })
    }

    /// Waits for a response to the call's INVITE that `accept` takes; every response on the
    /// way is recorded in `call.statuses`, and a 2xx is handled (ACK, SDP) when it passes.
    pub(crate) async fn wait_invite_response(
        &mut self,
        call: &mut Call,
        what: &str,
        accept: impl Fn(u16) -> bool,
    ) -> Result<Response, HarnessError> {
        let branch = call.invite_branch();
        loop {
            let (msg, _) = self
                .wait_for(what, |m| matches!(m, Message::Response(r) if r.cseq().is_some_and(|c| c.method == Method::Invite) && r.top_via().and_then(|v| v.branch().map(str::to_owned)).as_deref() == Some(branch.as_str())))
                .await?;
            let Message::Response(resp) = msg else {
                unreachable!("the pick accepts only responses")
            };
            call.statuses.push(resp.status);
            if (200..300).contains(&resp.status) {
                self.on_2xx(call, &resp).await?;
            } else if (101..200).contains(&resp.status) && !resp.body.is_empty() {
                // Early media (RFC 3960): the provisional's SDP tells where to send RTP already.
                self.apply_answer(call, &resp)?;
            }
            if resp.status >= 200 {
                self.forget_request(&branch);
            }
            if accept(resp.status) {
                return Ok(resp);
            }
            if resp.status >= 200 {
                return Err(self.unexpected(what, format!("{} {}", resp.status, resp.reason)));
            }
        }
    }

    async fn on_2xx(&mut self, call: &mut Call, resp: &Response) -> Result<(), HarnessError> {
        if let Some(to) = resp.to() {
            call.remote_tag = to.tag().map(str::to_owned);
            call.remote_uri = without_tag(&to);
        }
        if let Some(c) = resp
            .headers
            .values(&HeaderName::Contact)
            .and_then(|v| v.first().and_then(|c| NameAddr::parse(c).ok()))
        {
            call.remote_target = c.uri.to_string();
        }
        self.ack_2xx(call).await?;
        self.apply_answer(call, resp)
    }

    fn apply_answer(&mut self, call: &mut Call, resp: &Response) -> Result<(), HarnessError> {
        let answer = sdp::SessionDescription::parse(&resp.body)
            .map_err(|e| self.protocol(format!("bad SDP answer in {}: {e}", resp.status)))?;
        let offer = call
            .local_sdp
            .as_ref()
            .ok_or_else(|| self.protocol("no offer kept for the call"))?;
        let negotiated = sdp::accept_answer(offer, &answer)
            .map_err(|e| self.protocol(format!("unusable SDP answer: {e}")))?;
        call.rtp.set_remote(negotiated.remote);
        call.rtp.payload_type = negotiated.codec.payload_type;
        call.rtp.telephone_event_payload_type = negotiated.telephone_event_payload_type;
        call.negotiated = Some(negotiated);
        call.remote_sdp = Some(answer);
        Ok(())
    }

    /// Waits for 180 or 183 (returns its status).
    pub async fn wait_ringing(&mut self, call: &mut Call) -> Result<u16, HarnessError> {
        Ok(self
            .wait_invite_response(call, "180 or 183 to our INVITE", |s| s == 180 || s == 183)
            .await?
            .status)
    }

    /// Waits for the final response to the INVITE, whatever it is (a 2xx is ACKed and its SDP
    /// applied; a failure is ACKed by the transaction rules).
    pub async fn wait_final(&mut self, call: &mut Call) -> Result<Response, HarnessError> {
        self.wait_invite_response(call, "a final response to our INVITE", |s| s >= 200)
            .await
    }

    /// Waits for a 2xx to the INVITE; anything else final is an error.
    pub async fn wait_answer(&mut self, call: &mut Call) -> Result<Response, HarnessError> {
        self.wait_invite_response(call, "2xx to our INVITE", |s| (200..300).contains(&s))
            .await
    }

    /// Sends CANCEL for the call's INVITE (RFC 3261 §9.1) and returns the CANCEL's response
    /// and the INVITE's final response (487 expected; the ACK goes out by itself).
    pub async fn cancel(&mut self, call: &mut Call) -> Result<(Response, Response), HarnessError> {
        let invite = &call.invite;
        let mut cancel = Request::new(
            Method::Cancel,
            &invite.uri().map_err(|e| self.protocol(e.to_string()))?,
        );
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            if let Some(v) = invite.headers.get(&name).map(str::to_owned) {
                cancel.headers.push(name, v);
            }
        }
        cancel.headers.push(HeaderName::MaxForwards, "70");
        let seq = invite.cseq().map_or(1, |c| c.seq);
        cancel
            .headers
            .push(HeaderName::CSeq, format!("{seq} CANCEL"));
        let branch = call.invite_branch();
        // RFC 3261 §9.1: the CANCEL goes where the INVITE went.
        self.send_request(&cancel, call.peer).await?;
        let (msg, _) = self
            .wait_for("the final response to our CANCEL", |m| matches!(m, Message::Response(r) if r.status >= 200 && r.cseq().is_some_and(|c| c.method == Method::Cancel) && r.top_via().and_then(|v| v.branch().map(str::to_owned)).as_deref() == Some(branch.as_str())))
            .await?;
        let Message::Response(cancel_resp) = msg else {
            unreachable!("the pick accepts only responses")
        };
        let final_resp = self.wait_final(call).await?;
        call.ended = true;
        Ok((cancel_resp, final_resp))
    }
}
