//! The phone role: registers with digest, then answers, rejects or lets ring incoming calls.

use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use registrar::Algorithm;
use sdp::{CodecPolicy, MediaAddress, Origin, SessionDescription};
use sip_msg::{HeaderName, Message, Method, NameAddr, Request, Response, Uri};

use crate::agent::{Call, UserAgent, random_hex, without_tag};
use crate::digest::{Challenge, authorization};
use crate::error::HarnessError;
use crate::rtp::RtpLeg;
use crate::transcript::Transcript;

/// How many times a REGISTER is re-sent after `stale=true` before giving up.
const MAX_STALE_RETRIES: u32 = 2;

/// A desk phone: one extension, its password and a UDP socket. Derefs to its [`UserAgent`]
/// for the dialog operations both roles share (hang up, wait for BYE, INFO).
#[derive(Debug)]
pub struct Phone {
    ua: UserAgent,
    extension: String,
    username: String,
    password: String,
    algorithm: Option<Algorithm>,
    codecs: CodecPolicy,
    expires: u32,
    register_call_id: String,
    register_from_tag: String,
    register_cseq: u32,
    nonce_count: u32,
    last_nonce: String,
}

impl Deref for Phone {
    type Target = UserAgent;
    fn deref(&self) -> &UserAgent {
        &self.ua
    }
}

impl DerefMut for Phone {
    fn deref_mut(&mut self) -> &mut UserAgent {
        &mut self.ua
    }
}

impl Phone {
    /// A phone for `extension` (also the digest username) bound on `local_ip`.
    pub async fn bind(
        extension: &str,
        password: &str,
        local_ip: IpAddr,
        server: SocketAddr,
        domain: &str,
        transcript: &Transcript,
    ) -> Result<Phone, HarnessError> {
        let ua = UserAgent::bind(
            &format!("phone {extension}"),
            local_ip,
            server,
            domain,
            transcript,
        )
        .await?;
        Ok(Phone {
            ua,
            extension: extension.to_owned(),
            username: extension.to_owned(),
            password: password.to_owned(),
            algorithm: None,
            codecs: CodecPolicy::default(),
            expires: 3600,
            register_call_id: format!("{}@harness", random_hex()),
            register_from_tag: random_hex(),
            register_cseq: 0,
            nonce_count: 0,
            last_nonce: String::new(),
        })
    }

    /// Answers only challenges with this algorithm (default: the first challenge offered).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Phone {
        self.algorithm = Some(algorithm);
        self
    }

    /// Answers offers with these codecs only, in this order of preference (default: PCMU,
    /// PCMA, telephone-event).
    pub fn with_codecs(mut self, codecs: CodecPolicy) -> Phone {
        self.codecs = codecs;
        self
    }

    /// Uses another digest username than the extension.
    pub fn with_username(mut self, username: &str) -> Phone {
        self.username = username.to_owned();
        self
    }

    /// Asks for this registration lifetime in seconds (0 removes the binding).
    pub fn set_expires(&mut self, expires: u32) {
        self.expires = expires;
    }

    /// The extension.
    pub fn extension(&self) -> &str {
        &self.extension
    }

    /// The password (changeable, to test a wrong one).
    pub fn set_password(&mut self, password: &str) {
        self.password = password.to_owned();
    }

    fn register_request(&mut self, authorization: Option<&str>) -> (Request, String) {
        let server = self.ua.server();
        let domain = self.ua.domain().to_owned();
        let uri = Uri::parse(&format!("sip:{server}"))
            .unwrap_or_else(|_| unreachable!("a socket address is a valid host"));
        let mut req = Request::new(Method::Register, &uri);
        let (via, branch) = self.ua.new_via();
        self.register_cseq += 1;
        let contact = self.ua.contact_uri(&self.extension);
        let h = &mut req.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!(
                "<sip:{}@{domain}>;tag={}",
                self.extension, self.register_from_tag
            ),
        );
        h.push(HeaderName::To, format!("<sip:{}@{domain}>", self.extension));
        h.push(HeaderName::CallId, self.register_call_id.clone());
        h.push(HeaderName::CSeq, format!("{} REGISTER", self.register_cseq));
        h.push(HeaderName::Contact, format!("<{contact}>"));
        h.push(HeaderName::Expires, self.expires.to_string());
        h.push(HeaderName::UserAgent, "centralino-harness");
        if let Some(a) = authorization {
            h.push(HeaderName::Authorization, a);
        }
        (req, branch)
    }

    /// The challenge to answer from a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`):
    /// the configured algorithm, else the first we can compute.
    pub fn pick_challenge(&self, resp: &Response) -> Option<Challenge> {
        let header = if resp.status == 407 {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let all: Vec<Challenge> = resp
            .headers
            .get_all(&header)
            .filter_map(Challenge::parse)
            .collect();
        match self.algorithm {
            Some(a) => all.into_iter().find(|c| c.algorithm == a),
            None => all.into_iter().next(),
        }
    }

    async fn register_once(
        &mut self,
        authorization: Option<&str>,
    ) -> Result<Response, HarnessError> {
        let (req, branch) = self.register_request(authorization);
        let server = self.ua.server();
        self.ua.send_request(&req, server).await?;
        self.ua
            .wait_final_response(&branch, "the final response to REGISTER")
            .await
    }

    fn answer_challenge(&mut self, challenge: &Challenge, method: &str, uri: &str) -> String {
        if challenge.nonce != self.last_nonce {
            self.nonce_count = 0;
            self.last_nonce = challenge.nonce.clone();
        }
        self.nonce_count += 1;
        authorization(
            challenge,
            &self.username,
            &self.password,
            method,
            uri,
            self.nonce_count,
            &random_hex(),
        )
    }

    /// REGISTER: answers a 401 with digest (and a `stale=true` 401 with a fresh one), and
    /// returns the final response: 200, or the 401 that refused our credentials.
    pub async fn register(&mut self) -> Result<Response, HarnessError> {
        let mut resp = self.register_once(None).await?;
        let mut stale_retries = 0;
        let mut answered = false;
        while resp.status == 401 {
            let Some(challenge) = self.pick_challenge(&resp) else {
                return Err(self.ua.unexpected(
                    "a digest challenge we can answer in the 401",
                    format!(
                        "{:?}",
                        resp.headers
                            .get_all(&HeaderName::WwwAuthenticate)
                            .collect::<Vec<_>>()
                    ),
                ));
            };
            if answered && !challenge.stale {
                // RFC 7616 §3.3: not stale, so the credentials themselves were refused.
                return Ok(resp);
            }
            if answered {
                stale_retries += 1;
                if stale_retries > MAX_STALE_RETRIES {
                    return Ok(resp);
                }
            }
            let uri = format!("sip:{}", self.ua.server());
            let auth = self.answer_challenge(&challenge, "REGISTER", &uri);
            answered = true;
            resp = self.register_once(Some(&auth)).await?;
        }
        Ok(resp)
    }

    /// [`Phone::register`], failing unless the answer is 200.
    pub async fn register_ok(&mut self) -> Result<Response, HarnessError> {
        let resp = self.register().await?;
        if resp.status != 200 {
            return Err(self.ua.unexpected(
                "200 to REGISTER",
                format!("{} {}", resp.status, resp.reason),
            ));
        }
        Ok(resp)
    }

    /// Sends a REGISTER with a ready-made `Authorization` value (or none) and returns the
    /// final response as is, without answering challenges: for replaying odd clients.
    pub async fn register_raw(
        &mut self,
        authorization: Option<&str>,
    ) -> Result<Response, HarnessError> {
        self.register_once(authorization).await
    }

    /// Calls `number` through the switch as this extension: INVITE, and when the switch
    /// challenges (407, or 401) the INVITE again with digest credentials (RFC 3261 §22.2).
    /// Returns once the INVITE is out; then wait as a trunk does ([`UserAgent::wait_ringing`],
    /// [`UserAgent::wait_answer`] ...).
    pub async fn call(&mut self, number: &str) -> Result<Call, HarnessError> {
        let domain = self.ua.domain().to_owned();
        let extension = self.extension.clone();
        let mut call = self
            .ua
            .place_call(number, &extension, &domain, |_| {})
            .await?;
        let branch = call.invite_branch();
        let (msg, from) = self
            .ua
            .wait_for("the first response to our INVITE after 100", |m| {
                matches!(m, Message::Response(r) if r.status > 100
                    && r.cseq().is_some_and(|c| c.method == Method::Invite)
                    && r.top_via().and_then(|v| v.branch().map(str::to_owned)).as_deref() == Some(branch.as_str()))
            })
            .await?;
        let Message::Response(resp) = msg else {
            unreachable!("the pick accepts only responses")
        };
        if resp.status != 407 && resp.status != 401 {
            // Not challenged: leave the response for the caller's next wait.
            self.ua.requeue(Message::Response(resp), from);
            return Ok(call);
        }
        call.statuses.push(resp.status);
        self.ua.forget_request(&branch);
        let Some(challenge) = self.pick_challenge(&resp) else {
            return Err(self.ua.unexpected(
                "a digest challenge we can answer",
                format!("{} without one", resp.status),
            ));
        };
        let auth = self.answer_challenge(&challenge, "INVITE", &call.invite.uri_raw.clone());
        let mut invite = call.invite.clone();
        let (via, _) = self.ua.new_via();
        invite.headers.set(HeaderName::Via, via);
        let seq = call.invite.cseq().map_or(1, |c| c.seq) + 1;
        invite
            .headers
            .set(HeaderName::CSeq, format!("{seq} INVITE"));
        let auth_header = if resp.status == 407 {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        invite.headers.push(auth_header, auth);
        let server = self.ua.server();
        self.ua.send_request(&invite, server).await?;
        call.invite = invite;
        call.local_cseq = seq;
        Ok(call)
    }

    /// Waits for a new INVITE; binds the call's RTP socket and prepares the SDP answer.
    pub async fn wait_invite(&mut self) -> Result<Call, HarnessError> {
        let (msg, from) = self
            .ua
            .wait_for("an incoming INVITE", |m| matches!(m, Message::Request(r) if r.method == Method::Invite && r.to().is_some_and(|t| t.tag().is_none())))
            .await?;
        let Message::Request(invite) = msg else {
            unreachable!("the pick accepts only requests")
        };
        let (Some(from_na), Some(to_na), Some(call_id)) =
            (invite.from(), invite.to(), invite.call_id())
        else {
            return Err(self
                .ua
                .protocol("INVITE without usable From, To or Call-ID"));
        };
        let remote_target = invite
            .headers
            .values(&HeaderName::Contact)
            .and_then(|v| v.first().and_then(|c| NameAddr::parse(c).ok()))
            .map_or_else(|| from_na.uri.to_string(), |c| c.uri.to_string());
        let name = self.ua.name().to_owned();
        let mut rtp = RtpLeg::bind(&name, self.ua.local_addr().ip()).await?;
        let offer = SessionDescription::parse(&invite.body)
            .map_err(|e| self.ua.protocol(format!("bad SDP offer in INVITE: {e}")))?;
        let local = MediaAddress {
            ip: rtp.local_addr().ip(),
            rtp_port: rtp.local_addr().port(),
        };
        let mut origin = Origin::new(
            u64::from_str_radix(&random_hex()[..12], 16).unwrap_or(1),
            local.ip,
        );
        let (answer, negotiated) =
            sdp::answer(&offer, &self.codecs, local, &mut origin).map_err(|e| {
                self.ua
                    .protocol(format!("cannot answer the SDP offer: {e}"))
            })?;
        rtp.set_remote(negotiated.remote);
        rtp.payload_type = negotiated.codec.payload_type;
        rtp.telephone_event_payload_type = negotiated.telephone_event_payload_type;
        Ok(Call {
            call_id: call_id.to_owned(),
            local_tag: random_hex(),
            remote_tag: from_na.tag().map(str::to_owned),
            local_uri: without_tag(&to_na),
            remote_uri: without_tag(&from_na),
            remote_target,
            local_cseq: 0,
            peer: from,
            invite,
            statuses: Vec::new(),
            local_sdp: Some(answer),
            remote_sdp: Some(offer),
            negotiated: Some(negotiated),
            rtp,
            ended: false,
        })
    }

    fn response(&self, call: &Call, status: u16, reason: &str) -> Response {
        let mut resp = call
            .invite
            .make_response(status, reason, Some(&call.local_tag));
        resp.headers.push(
            HeaderName::Contact,
            format!("<{}>", self.ua.contact_uri(&self.extension)),
        );
        resp
    }

    /// Sends a provisional response (e.g. 180) to the call's INVITE.
    pub async fn provisional(
        &mut self,
        call: &mut Call,
        status: u16,
        reason: &str,
    ) -> Result<(), HarnessError> {
        let resp = self.response(call, status, reason);
        let (invite, peer) = (call.invite.clone(), call.peer);
        self.ua.send_response(&invite, &resp, peer).await?;
        call.statuses.push(status);
        Ok(())
    }

    /// Sends 180 Ringing.
    pub async fn ring(&mut self, call: &mut Call) -> Result<(), HarnessError> {
        self.provisional(call, 180, "Ringing").await
    }

    /// Sends 183 Session Progress with the SDP answer (early media; RTP may flow from now on).
    pub async fn early_media(&mut self, call: &mut Call) -> Result<(), HarnessError> {
        let mut resp = self.response(call, 183, "Session Progress");
        if let Some(sdp) = &call.local_sdp {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = sdp.to_bytes();
        }
        let (invite, peer) = (call.invite.clone(), call.peer);
        self.ua.send_response(&invite, &resp, peer).await?;
        call.statuses.push(183);
        Ok(())
    }

    /// Sends 200 OK with the SDP answer and waits for the ACK (resending the 200 meanwhile).
    pub async fn answer(&mut self, call: &mut Call) -> Result<(), HarnessError> {
        let mut resp = self.response(call, 200, "OK");
        if let Some(sdp) = &call.local_sdp {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = sdp.to_bytes();
        }
        let (invite, peer) = (call.invite.clone(), call.peer);
        self.ua.send_response(&invite, &resp, peer).await?;
        call.statuses.push(200);
        self.ua.wait_ack(call).await?;
        Ok(())
    }

    /// Lets the call ring for `delay` (still answering retransmissions), then answers.
    pub async fn answer_after(
        &mut self,
        call: &mut Call,
        delay: Duration,
    ) -> Result<(), HarnessError> {
        self.ua.idle(delay).await?;
        self.answer(call).await
    }

    /// Refuses the call with `status` (e.g. 486) and waits for the ACK.
    pub async fn reject(
        &mut self,
        call: &mut Call,
        status: u16,
        reason: &str,
    ) -> Result<(), HarnessError> {
        let resp = self.response(call, status, reason);
        let (invite, peer) = (call.invite.clone(), call.peer);
        self.ua.send_response(&invite, &resp, peer).await?;
        call.statuses.push(status);
        call.ended = true;
        self.ua.wait_ack(call).await?;
        Ok(())
    }

    /// Waits for CANCEL of the call's INVITE, answers it 200 and the INVITE 487, and waits for
    /// the ACK of the 487.
    pub async fn wait_cancel(&mut self, call: &mut Call) -> Result<Request, HarnessError> {
        let branch = call.invite_branch();
        let what = format!("CANCEL of INVITE {}", call.call_id);
        let (msg, from) = self
            .ua
            .wait_for(&what, |m| matches!(m, Message::Request(r) if r.method == Method::Cancel && r.top_via().and_then(|v| v.branch().map(str::to_owned)).as_deref() == Some(branch.as_str())))
            .await?;
        let Message::Request(cancel) = msg else {
            unreachable!("the pick accepts only requests")
        };
        let ok = cancel.make_response(200, "OK", Some(&call.local_tag));
        self.ua.send_response(&cancel, &ok, from).await?;
        let terminated = self.response(call, 487, "Request Terminated");
        let (invite, peer) = (call.invite.clone(), call.peer);
        self.ua.send_response(&invite, &terminated, peer).await?;
        call.statuses.push(487);
        call.ended = true;
        self.ua.wait_ack(call).await?;
        Ok(cancel)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use registrar::{AuthFailure, Credentials, DigestAuthority};
    use tokio::net::UdpSocket;

    use super::*;

    async fn recv_register(server: &UdpSocket) -> (Request, SocketAddr) {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = server.recv_from(&mut buf).await.expect("receive");
        match sip_msg::parse(&buf[..n], sip_msg::Framing::Datagram) {
            Ok(Message::Request(r)) if r.method == Method::Register => (r, from),
            other => panic!("expected REGISTER, got {other:?}"),
        }
    }

    async fn reply(
        server: &UdpSocket,
        req: &Request,
        to: SocketAddr,
        status: u16,
        challenges: &[String],
    ) {
        let mut resp = req.make_response(
            status,
            if status == 200 { "OK" } else { "Unauthorized" },
            Some("srv"),
        );
        for c in challenges {
            resp.headers.push(HeaderName::WwwAuthenticate, c.clone());
        }
        server.send_to(&resp.to_bytes(), to).await.expect("send");
    }

    /// Against the registrar's own `DigestAuthority`: a lost REGISTER is resent, the 401 is
    /// answered with SHA-256, a `stale=true` 401 is answered again with the new nonce.
    #[tokio::test]
    async fn register_resends_answers_digest_and_stale() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let transcript = Transcript::new();
        let mut phone = Phone::bind(
            "201",
            "pw201",
            "127.0.0.1".parse().unwrap(),
            addr,
            "realm.example",
            &transcript,
        )
        .await
        .expect("bind")
        .with_algorithm(Algorithm::Sha256);
        let srv = tokio::spawn(async move {
            let lifetime = Duration::from_secs(300);
            let mut auth = DigestAuthority::new("realm.example", [7; 32], lifetime);
            let creds = Credentials::password("pw201");
            let t0 = Instant::now();
            // The first REGISTER is "lost": the phone must send it again.
            let _ = recv_register(&server).await;
            let (req, from) = recv_register(&server).await;
            assert!(req.headers.get(&HeaderName::Authorization).is_none());
            reply(&server, &req, from, 401, &auth.challenge(t0, false)).await;
            // Answered, but we pretend the nonce has expired meanwhile.
            let (req, from) = recv_register(&server).await;
            let value = req
                .headers
                .get(&HeaderName::Authorization)
                .expect("Authorization")
                .to_owned();
            assert!(
                value.contains("algorithm=SHA-256") && value.contains("qop=auth"),
                "{value}"
            );
            let late = t0 + lifetime + Duration::from_secs(1);
            assert_eq!(
                auth.verify(&value, "REGISTER", |_| Some(&creds), late)
                    .map(|_| ()),
                Err(AuthFailure::Stale)
            );
            reply(&server, &req, from, 401, &auth.challenge(late, true)).await;
            let (req, from) = recv_register(&server).await;
            let value = req
                .headers
                .get(&HeaderName::Authorization)
                .expect("Authorization")
                .to_owned();
            assert!(
                auth.verify(&value, "REGISTER", |_| Some(&creds), late)
                    .is_ok(),
                "fresh digest accepted: {value}"
            );
            reply(&server, &req, from, 200, &[]).await;
        });
        let resp = phone.register().await.expect("REGISTER completes");
        srv.await.expect("server script");
        assert_eq!(resp.status, 200);
        let sent = transcript
            .entries()
            .iter()
            .filter(|e| e.first_line.starts_with("REGISTER"))
            .count();
        assert_eq!(sent, 4, "{}", transcript.ladder());
    }

    /// A 401 that is not stale after our digest is final: the credentials were refused.
    #[tokio::test]
    async fn register_returns_the_refusing_401() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let transcript = Transcript::new();
        let mut phone = Phone::bind(
            "201",
            "wrong",
            "127.0.0.1".parse().unwrap(),
            addr,
            "realm.example",
            &transcript,
        )
        .await
        .expect("bind");
        phone.set_timeout(Duration::from_secs(2));
        let srv = tokio::spawn(async move {
            let mut auth = DigestAuthority::new("realm.example", [9; 32], Duration::from_secs(300));
            let creds = Credentials::password("pw201");
            let now = Instant::now();
            let (req, from) = recv_register(&server).await;
            reply(&server, &req, from, 401, &auth.challenge(now, false)).await;
            let (req, from) = recv_register(&server).await;
            let value = req
                .headers
                .get(&HeaderName::Authorization)
                .expect("Authorization")
                .to_owned();
            assert_eq!(
                auth.verify(&value, "REGISTER", |_| Some(&creds), now)
                    .map(|_| ()),
                Err(AuthFailure::Rejected)
            );
            reply(&server, &req, from, 401, &auth.challenge(now, false)).await;
        });
        let resp = phone.register().await.expect("REGISTER completes");
        srv.await.expect("server script");
        assert_eq!(resp.status, 401);
    }
}
