//! Calls: the B2BUA logic joining the caller's dialog (A leg) to the answering phone's dialog
//! (B leg), with forking to every registered contact of the routed extensions.
//!
//! A call is plain owned data; each handler takes the call out of the table, moves it on, and
//! puts it back unless it ended, so no handler holds two borrows of the Switchboard.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sdp::{Codec, CodecPolicy, MediaAddress, Origin, SessionDescription};
use sip_core::{ClientTxId, Peer, ServerTxId, Transport};
use sip_msg::{HeaderName, Method, NameAddr, Request, Response, SipUri, Uri};
use tracing::{debug, info, info_span};

use crate::config::Config;

mod answered;
use crate::switchboard::{
    CallKey, LegSide, Now, Output, Switchboard, reason_phrase, transport_name,
};
pub(crate) use answered::Answered;

/// How long the phones may ring before the caller gets 480.
const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// Option tags we support in Require (RFC 3261 §8.2.2.3).
const SUPPORTED_OPTIONS: &[&str] = &["timer"];

/// Why a client transaction was started, so its responses reach the right handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The INVITE to fork number `n`.
    Fork(usize),
    /// A BYE we sent on a leg.
    Bye,
    /// A CANCEL we sent.
    Cancel,
    /// The INVITE of a fork whose call has ended: CANCEL it on 1xx, ACK and BYE it on 2xx.
    Orphan,
    /// Our session refresh (UPDATE or re-INVITE) to the caller (RFC 4028 refresher=uas).
    Refresh,
}

/// One side of a dialog as seen by the switch (RFC 3261 §12).
#[derive(Clone, Debug)]
pub(crate) struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our URI in From/To, as a name-addr without tag.
    local_uri: String,
    /// Their URI, as a name-addr without tag.
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    peer: Peer,
}

impl Dialog {
    /// The ACK for a 2xx to the INVITE with CSeq number `invite_cseq` (RFC 3261 §13.2.2.4):
    /// a request of its own, with a fresh branch and the INVITE's CSeq number.
    fn ack(&mut self, invite_cseq: u32, via_host: &str, branch: &str) -> Vec<u8> {
        let mut ack = self.request(Method::Ack, via_host, branch);
        ack.headers
            .set(HeaderName::CSeq, format!("{invite_cseq} ACK"));
        ack.to_bytes()
    }

    fn request(&mut self, method: Method, via_host: &str, branch: &str) -> Request {
        let uri = Uri::parse(&self.remote_target)
            .unwrap_or_else(|_| Uri::parse("sip:invalid").expect("constant URI parses"));
        let mut req = Request::new(method.clone(), &uri);
        let h = &mut req.headers;
        h.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {via_host};branch={branch};rport",
                transport_name(self.peer.transport)
            ),
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("{};tag={}", self.local_uri, self.local_tag),
        );
        let to = match &self.remote_tag {
            Some(t) => format!("{};tag={t}", self.remote_uri),
            None => self.remote_uri.clone(),
        };
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, self.call_id.clone());
        if method != Method::Ack {
            self.local_cseq += 1;
        }
        h.push(HeaderName::CSeq, format!("{} {method}", self.local_cseq));
        for r in &self.route_set {
            h.push(HeaderName::Route, r.clone());
        }
        req
    }
}

fn without_tag(na: &NameAddr) -> String {
    let mut na = na.clone();
    na.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    na.to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ForkState {
    Calling,
    Early,
    Answered,
    Done,
}

#[derive(Debug)]
pub(crate) struct Fork {
    extension: String,
    tx: ClientTxId,
    invite: Request,
    dialog: Dialog,
    state: ForkState,
    /// CANCEL as soon as the phone sends a provisional response (RFC 3261 §9.1).
    cancel_wanted: bool,
    cancel_sent: bool,
    final_status: Option<u16>,
    ack: Option<(Peer, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    /// B legs are ringing.
    Ringing,
    /// 200 sent to the caller, waiting for its ACK.
    Answered,
    /// Both legs up.
    Confirmed,
}

/// One call: the caller's INVITE and dialog, the forks towards phones, and the media ports.
#[derive(Debug)]
pub(crate) struct Call {
    key: CallKey,
    /// The snapshot the call started with: a reload never changes a call in progress.
    config: Arc<Config>,
    a_tx: ServerTxId,
    a_invite: Request,
    a_dialog: Dialog,
    a_offer: SessionDescription,
    a_answer: Option<Vec<u8>>,
    a_final_sent: bool,
    a_origin: Origin,
    b_origin: Origin,
    b_offer: SessionDescription,
    a_ports: media::PortPair,
    b_ports: media::PortPair,
    forks: Vec<Fork>,
    winner: Option<usize>,
    state: CallState,
    /// When the call needs attention without any message (ring timeout, session expiry).
    pub(crate) deadline: Option<Instant>,
    /// The deadline as entered in the Switchboard's index.
    scheduled: Option<Instant>,
    /// RFC 4028 session interval agreed with the caller, if any.
    session_interval: Option<Duration>,
    /// Client transactions whose responses belong to this call.
    client_txs: Vec<ClientTxId>,
    /// The extension that answered, counted busy until the call ends.
    busy_extension: Option<String>,
    /// The phone hung up before the caller ACKed our 200: BYE the caller once it does.
    bye_a_pending: bool,
    /// When we must refresh the session ourselves (RFC 4028 refresher=uas).
    refresh_at: Option<Instant>,
    /// Our refresh is in flight: a re-INVITE from the caller now is glare (491).
    refresh_pending: bool,
    /// Our offer in a 200 to an offer-less re-INVITE; the answer comes in the ACK.
    pending_offer: Option<(LegSide, SessionDescription)>,
    /// The caller as presented to the phones.
    caller_user: String,
    caller_display: Option<String>,
    max_forwards: u32,
    /// Members still to ring, in order, when hunting one at a time.
    hunt: VecDeque<String>,
    /// Ring every member at once (else hunt one after the other).
    ring_all: bool,
    /// How long one member (or, ringing all, everyone) rings.
    member_timeout: Duration,
    /// When the group gives up, whoever is ringing.
    group_deadline: Instant,
    /// True if the caller asked us (the UAS) to refresh, or cannot refresh itself.
    we_refresh: bool,
    /// When the session expires without a refresh (RFC 4028).
    session_expiry: Option<Instant>,
    dialled: String,
    /// Set when the switch answered the caller itself (IVR, voicemail): the state of that
    /// part of the call. Phones ring only after the IVR transferred the call.
    answered: Option<Box<Answered>>,
    /// Where the caller goes when the phones ringing now do not answer (a group's
    /// `no_answer`, dialled directly or reached through the IVR): the switch answers, if it
    /// has not yet, and serves that target, e.g. voicemail.
    no_answer: Option<router::Target>,
}

enum Refusal {
    Status(u16, &'static str),
    Challenge { stale: bool },
}

impl Call {
    /// The RTP port pairs of the A and B legs.
    pub(crate) fn media_ports(&self) -> (media::PortPair, media::PortPair) {
        (self.a_ports, self.b_ports)
    }
}

impl Switchboard {
    /// A new INVITE outside any dialog: authenticate, check, route, fork.
    pub(crate) fn on_invite(&mut self, id: ServerTxId, req: Request, from: Peer, now: Now) {
        match self.start_call(id, &req, from, now) {
            Ok(()) => {}
            Err(Refusal::Status(status, why)) => {
                debug!(status, why, "INVITE refused");
                let mut resp =
                    req.make_response(status, reason_phrase(status), Some(&self.rng.hex()));
                if !why.is_empty() {
                    resp.headers
                        .push(HeaderName::Warning, format!("399 centralino \"{why}\""));
                }
                match status {
                    415 => resp.headers.push(HeaderName::Accept, "application/sdp"),
                    422 => resp.headers.push(HeaderName::MinSe, MIN_SE.to_string()),
                    420 => {
                        let unsupported: Vec<String> = unsupported_options(&req);
                        resp.headers
                            .push(HeaderName::Unsupported, unsupported.join(", "));
                    }
                    _ => {}
                }
                self.tx.send_response(id, resp, now.instant);
            }
            Err(Refusal::Challenge { stale }) => {
                let mut resp =
                    req.make_response(407, "Proxy Authentication Required", Some(&self.rng.hex()));
                for c in self.challenges(&req, now, stale) {
                    resp.headers.push(HeaderName::ProxyAuthenticate, c);
                }
                self.tx.send_response(id, resp, now.instant);
            }
        }
    }

    fn start_call(
        &mut self,
        id: ServerTxId,
        req: &Request,
        from: Peer,
        now: Now,
    ) -> Result<(), Refusal> {
        let config = Arc::clone(&self.config);
        // Trunks are trusted by address and never challenged; anyone else must authenticate by
        // digest (RFC 3261 §22.3) as one of our extensions or as a trunk with credentials.
        let mut trunk = config.trunk_for(from.addr.ip()).map(|t| t.name.clone());
        let mut caller_ext = None;
        if trunk.is_none() {
            let Some(value) = req.headers.get(&HeaderName::ProxyAuthorization) else {
                return Err(Refusal::Challenge { stale: false });
            };
            let value = value.to_owned();
            match self.auth.verify(
                &value,
                "INVITE",
                |user| config.credentials(user),
                now.instant,
            ) {
                Ok(a) => match config.trunk_by_user(a.username()) {
                    Some(t) => trunk = Some(t.name.clone()),
                    None => caller_ext = Some(a.username().to_owned()),
                },
                Err(registrar::AuthFailure::Stale) => {
                    return Err(Refusal::Challenge { stale: true });
                }
                Err(registrar::AuthFailure::Missing) => {
                    return Err(Refusal::Challenge { stale: false });
                }
                Err(_) => {
                    self.stats.auth_failures += 1;
                    self.penalise(from.addr.ip(), now.instant);
                    return Err(Refusal::Status(403, "authentication failed"));
                }
            }
        }
        if !unsupported_options(req).is_empty() {
            return Err(Refusal::Status(420, ""));
        }
        if let Some(mf) = req.headers.get(&HeaderName::MaxForwards)
            && sip_msg::parse_u32(mf, 255) == Some(0)
        {
            return Err(Refusal::Status(483, ""));
        }
        if let Some(accept) = req.headers.get(&HeaderName::Accept) {
            let ok = accept
                .split(',')
                .map(|a| {
                    a.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .any(|a| a == "application/sdp" || a == "application/*" || a == "*/*");
            if !ok {
                return Err(Refusal::Status(406, "we answer with application/sdp"));
            }
        }
        let caller_supports_timer = req
            .headers
            .values(&HeaderName::Supported)
            .unwrap_or_default()
            .iter()
            .any(|o| o.eq_ignore_ascii_case("timer"));
        let asked_uas = req
            .headers
            .get(&HeaderName::SessionExpires)
            .is_some_and(|v| {
                v.replace(' ', "")
                    .to_ascii_lowercase()
                    .contains("refresher=uas")
            });
        // RFC 4028 §9: we refresh when the caller asks us to. A caller without timer support
        // gets no session timer at all: it would never refresh, and the media timeout already
        // ends dead calls.
        let we_refresh = asked_uas;
        let session_interval = match session_expires(req) {
            SessionTimer::None => None,
            SessionTimer::Interval(_) if !caller_supports_timer => None,
            SessionTimer::Interval(secs) if secs < MIN_SE => return Err(Refusal::Status(422, "")),
            SessionTimer::Interval(secs) => Some(Duration::from_secs(u64::from(secs))),
            SessionTimer::Malformed => return Err(Refusal::Status(400, "bad Session-Expires")),
        };
        if req.body.is_empty() {
            // DEVIATION(RFC 3261 §13.2.1): an INVITE without an offer is refused for now; every
            // trunk and phone we serve sends one.
            return Err(Refusal::Status(
                488,
                "INVITE without SDP offer is not supported",
            ));
        }
        let ctype = req
            .headers
            .get(&HeaderName::ContentType)
            .unwrap_or("application/sdp");
        if !ctype
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/sdp")
        {
            return Err(Refusal::Status(
                415,
                "only application/sdp bodies are understood",
            ));
        }
        let a_offer = SessionDescription::parse(&req.body)
            .map_err(|_| Refusal::Status(400, "malformed SDP"))?;
        let Ok(uri) = req.uri() else {
            return Err(Refusal::Status(400, "bad Request-URI"));
        };
        let dialled = uri.user().unwrap_or_default().to_owned();

        // Route: which extensions ring, or the IVR.
        let routed = self.route_call(
            &config,
            &dialled,
            req,
            trunk.as_deref(),
            caller_ext.as_deref(),
            now,
        )?;
        let (plan, ivr_entry) = match routed {
            Routed::Ring(plan) => (plan, None),
            Routed::Answer(target) => (
                RingPlan {
                    extensions: Vec::new(),
                    ring_all: true,
                    member_timeout: RING_TIMEOUT,
                    group_timeout: RING_TIMEOUT,
                    no_answer: None,
                },
                Some(target),
            ),
        };
        if ivr_entry.is_none()
            && !plan
                .extensions
                .iter()
                .any(|e| self.registrar.lookup(e, now.instant).next().is_some())
        {
            return Err(Refusal::Status(480, "nobody to ring is registered"));
        }

        // The phones are offered what the caller offers, G.722 included: wideband passes
        // through when both legs agree (the relay never transcodes).
        let policy = CodecPolicy::new(vec![
            Codec::Pcmu,
            Codec::Pcma,
            Codec::G722,
            Codec::TelephoneEvent,
        ])
        .unwrap_or_default();
        let Ok(a_ports) = self.ports.allocate() else {
            return Err(Refusal::Status(503, "no media ports left"));
        };
        let Ok(b_ports) = self.ports.allocate() else {
            let _ = self.ports.free(a_ports);
            return Err(Refusal::Status(503, "no media ports left"));
        };
        let (a_port, b_port) = (a_ports.rtp(), b_ports.rtp());
        let ip = self.settings.advertised_ip;
        let mut b_origin = Origin::new(self.rng.next_u64() >> 1, ip);
        let b_offer = match sdp::offer_from(
            &a_offer,
            &policy,
            MediaAddress {
                ip,
                rtp_port: b_port,
            },
            &mut b_origin,
        ) {
            Ok(o) => o,
            Err(_) => {
                let _ = self.ports.free(a_ports);
                let _ = self.ports.free(b_ports);
                return Err(Refusal::Status(488, "no codec in common"));
            }
        };
        let a_origin = Origin::new(self.rng.next_u64() >> 1, ip);

        let key = self.new_call_key();
        let span = info_span!(
            "call",
            call = key.0,
            call_id = req.call_id().unwrap_or_default()
        );
        let _enter = span.enter();
        info!(dialled = %dialled, trunk = ?trunk, caller = ?caller_ext, ring = ?plan.extensions, ring_all = plan.ring_all, "call started");
        self.stats.calls_started += 1;

        let a_from = req.from().ok_or(Refusal::Status(400, "bad From"))?;
        let a_to = req.to().ok_or(Refusal::Status(400, "bad To"))?;
        let a_contact = req
            .headers
            .values(&HeaderName::Contact)
            .and_then(|v| v.first().and_then(|c| NameAddr::parse(c).ok()))
            .map_or_else(|| a_from.uri.to_string(), |c| c.uri.to_string());
        let a_dialog = Dialog {
            call_id: req.call_id().unwrap_or_default().to_owned(),
            local_tag: self.rng.hex(),
            remote_tag: a_from.tag().map(str::to_owned),
            local_uri: without_tag(&a_to),
            remote_uri: without_tag(&a_from),
            remote_target: a_contact,
            route_set: req
                .headers
                .values(&HeaderName::RecordRoute)
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            local_cseq: 0,
            peer: from,
        };

        // 100 Trying at once: the forks may take a while (RFC 3261 §17.2.1).
        let trying = req.make_response(100, "Trying", None);
        self.tx.send_response(id, trying, now.instant);

        self.out.push_back(Output::OpenMedia {
            call: key,
            a_port,
            b_port,
            timeout: config.media_timeout,
        });
        // The caller's RTP address for the relay while the phones ring (a call the switch
        // answers learns it from its own answer, in `answer_with_ivr`).
        if ivr_entry.is_none()
            && let Some(neg) = sdp::answer(
                &a_offer,
                &policy,
                MediaAddress {
                    ip,
                    rtp_port: a_port,
                },
                &mut a_origin.clone(),
            )
            .ok()
            .map(|(_, n)| n)
        {
            self.out.push_back(Output::MediaRemote {
                call: key,
                leg: LegSide::A,
                rtp: neg.remote,
                rtcp: neg.remote_rtcp,
            });
        }

        let caller_user = a_from.uri.user().unwrap_or("anonymous").to_owned();
        // The name shown on the operators' phones: printable, and short whatever the trunk sent.
        let caller_display = a_from
            .display
            .as_ref()
            .map(|d| {
                d.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .filter(|d| !d.is_empty());
        let max_forwards = req
            .headers
            .get(&HeaderName::MaxForwards)
            .and_then(|m| sip_msg::parse_u32(m, 255))
            .map_or(70, |m| m.saturating_sub(1).min(70));
        self.by_server_tx.insert(id, key);
        self.by_call_id.insert(a_dialog.call_id.clone(), key);
        let mut call = Call {
            key,
            config,
            a_tx: id,
            a_invite: req.clone(),
            a_dialog,
            a_offer,
            a_answer: None,
            a_final_sent: false,
            a_origin,
            b_origin,
            b_offer,
            a_ports,
            b_ports,
            forks: Vec::new(),
            winner: None,
            state: CallState::Ringing,
            deadline: None,
            scheduled: None,
            session_interval,
            client_txs: Vec::new(),
            busy_extension: None,
            bye_a_pending: false,
            refresh_at: None,
            refresh_pending: false,
            pending_offer: None,
            we_refresh,
            session_expiry: None,
            dialled,
            caller_user,
            caller_display,
            max_forwards,
            hunt: VecDeque::new(),
            ring_all: plan.ring_all,
            member_timeout: plan.member_timeout,
            group_deadline: now.instant + plan.group_timeout,
            answered: None,
            no_answer: plan.no_answer.clone(),
        };
        if let Some(target) = ivr_entry {
            let keep = self.answer_with_ivr(&mut call, target, now);
            self.put_back(call, keep);
            return Ok(());
        }
        if plan.ring_all {
            self.ring_members(&mut call, &plan.extensions, now);
            call.deadline = Some(now.instant + plan.member_timeout.min(plan.group_timeout));
        } else {
            call.hunt = plan.extensions.into_iter().collect();
            self.hunt_next(&mut call, now);
        }
        self.put_back(call, true);
        Ok(())
    }

    /// Sends INVITEs to every registered contact of `members` (forking, RFC 3261 §16.7 in
    /// spirit); returns how many forks started.
    fn ring_members(&mut self, call: &mut Call, members: &[String], now: Now) -> usize {
        let local_host = self.local_host();
        let domain = call.config.domain.clone();
        let offer_bytes = call.b_offer.to_bytes();
        let mut started = 0;
        for ext in members {
            let targets: Vec<(String, Peer)> = self
                .registrar
                .lookup(ext, now.instant)
                .map(|b| {
                    let r = &b.record;
                    let transport = if r.transport.eq_ignore_ascii_case("tcp") {
                        Transport::Tcp
                    } else {
                        Transport::Udp
                    };
                    (
                        r.contact_uri.clone(),
                        Peer {
                            transport,
                            addr: contact_address(&r.contact_uri, r.received_from, transport),
                        },
                    )
                })
                .collect();
            for (contact, peer) in targets {
                let display = call
                    .caller_display
                    .as_ref()
                    .map(|d| format!("\"{}\" ", d.replace(['"', '\\'], "")))
                    .unwrap_or_default();
                let mut dialog = Dialog {
                    call_id: format!("{}@centralino", self.rng.hex()),
                    local_tag: self.rng.hex(),
                    remote_tag: None,
                    local_uri: format!("{display}<sip:{}@{domain}>", call.caller_user),
                    remote_uri: format!("<sip:{ext}@{domain}>"),
                    remote_target: contact,
                    route_set: Vec::new(),
                    local_cseq: 0,
                    peer,
                };
                let branch = self.new_branch();
                let mut invite = dialog.request(Method::Invite, &local_host, &branch);
                invite
                    .headers
                    .set(HeaderName::MaxForwards, call.max_forwards.to_string());
                invite
                    .headers
                    .push(HeaderName::Contact, self.contact_value(peer.transport));
                invite.headers.push(
                    HeaderName::Allow,
                    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
                );
                invite.headers.push(HeaderName::Supported, "timer");
                invite.headers.push(HeaderName::UserAgent, "Centralino");
                invite
                    .headers
                    .push(HeaderName::ContentType, "application/sdp");
                invite.body = offer_bytes.clone();
                let tx = self.tx.send_request(invite.clone(), peer, now.instant);
                let idx = call.forks.len();
                self.track(call, tx, Purpose::Fork(idx));
                self.by_call_id.insert(dialog.call_id.clone(), call.key);
                call.forks.push(Fork {
                    extension: ext.clone(),
                    tx,
                    invite,
                    dialog,
                    state: ForkState::Calling,
                    cancel_wanted: false,
                    cancel_sent: false,
                    final_status: None,
                    ack: None,
                });
                started += 1;
            }
        }
        started
    }

    /// After every fork of the member ringing now has failed: ring the next one, if hunting.
    fn hunt_on(&mut self, call: &mut Call, now: Now) -> bool {
        !call.ring_all && self.hunt_next(call, now)
    }

    /// Sequential hunting: rings the next member with a registered contact, for the member's
    /// ring timeout but never past the group's. False when nobody is left to ring.
    fn hunt_next(&mut self, call: &mut Call, now: Now) -> bool {
        while now.instant < call.group_deadline {
            let Some(ext) = call.hunt.pop_front() else {
                break;
            };
            if self.ring_members(call, std::slice::from_ref(&ext), now) > 0 {
                debug!(extension = %ext, "hunting: ringing the next member");
                set_ring_deadline(
                    call,
                    (now.instant + call.member_timeout).min(call.group_deadline),
                );
                return true;
            }
        }
        set_ring_deadline(call, now.instant);
        false
    }

    /// Asks the router which extensions ring for this call.
    fn route_call(
        &mut self,
        config: &Config,
        dialled: &str,
        req: &Request,
        trunk: Option<&str>,
        caller_ext: Option<&str>,
        now: Now,
    ) -> Result<Routed, Refusal> {
        let mut facts = router::CallFacts {
            dialled: dialled.to_owned(),
            caller: req
                .from()
                .and_then(|f| f.uri.user().map(str::to_owned))
                .or(caller_ext.map(str::to_owned)),
            trunk: trunk.map(str::to_owned),
            ..router::CallFacts::default()
        };
        facts.members = self.member_facts(config, now);
        let decision = router::route(&config.plan, &facts, now.wall, &mut self.strategy);
        debug!(target_ = %decision.target, ring = ?decision.ring, reasons = ?decision.reasons, "route decision");
        if !decision.ring.is_empty() {
            // A hunt group: the router chose and ordered the members; the group's timeouts
            // bound the ringing (issue 4). Called directly (not through the IVR), its
            // `no_answer` target is not followed: the caller gets the failure.
            return Ok(Routed::Ring(RingPlan::from_decision(&decision)));
        }
        match &decision.target {
            router::Target::Extension(e) => Ok(Routed::Ring(RingPlan {
                extensions: vec![e.clone()],
                ring_all: true,
                member_timeout: RING_TIMEOUT,
                group_timeout: RING_TIMEOUT,
                no_answer: None,
            })),
            router::Target::Hangup(_) if decision.number.is_none() => {
                Err(Refusal::Status(404, "the dialled number is not in service"))
            }
            // The switch answers and the IVR takes the call: menus, messages, voicemail, a
            // group nobody can take now (its no_answer target), queues and the second site.
            _ => Ok(Routed::Answer(decision.target.clone())),
        }
    }

    pub(crate) fn on_response(&mut self, id: ClientTxId, resp: Response, now: Now) {
        let is_final = resp.status >= 200;
        let Some(&(key, purpose)) = self.by_client_tx.get(&id) else {
            return;
        };
        if purpose == Purpose::Orphan {
            return self.orphan_response(id, resp, now);
        }
        if is_final && !(purpose != Purpose::Bye && resp.status < 300 && is_invite(&resp)) {
            self.by_client_tx.remove(&id);
        }
        let Some(mut call) = self.calls.remove(&key) else {
            self.by_client_tx.remove(&id);
            return;
        };
        let span = info_span!("call", call = key.0, call_id = %call.a_dialog.call_id);
        let _enter = span.enter();
        let keep = match purpose {
            Purpose::Fork(idx) => self.fork_response(&mut call, idx, resp, now),
            Purpose::Refresh => self.refresh_response(&mut call, resp, now),
            Purpose::Bye | Purpose::Cancel | Purpose::Orphan => true,
        };
        self.put_back(call, keep);
    }

    /// The caller answered our session refresh: re-arm the timers, or end a dead dialog.
    fn refresh_response(&mut self, call: &mut Call, resp: Response, now: Now) -> bool {
        if resp.status >= 200 {
            call.refresh_pending = false;
        }
        match resp.status {
            100..=199 => true,
            200..=299 => {
                if is_invite(&resp) {
                    let local_host = self.local_host();
                    let cseq = resp.cseq().map_or(1, |c| c.seq);
                    let branch = self.new_branch();
                    let ack = call.a_dialog.ack(cseq, &local_host, &branch);
                    self.send_stateless(call.a_dialog.peer, ack);
                }
                self.arm_session_timer(call, now);
                true
            }
            // RFC 4028 §10 (by way of RFC 5057): 408 and 481 mean the dialog is gone.
            408 | 481 => {
                self.send_bye_a(call, now);
                if let Some(w) = call.winner {
                    self.send_bye_fork(call, w, now);
                }
                false
            }
            // Anything else: the session expiry decides.
            _ => true,
        }
    }

    /// (Re)starts the RFC 4028 timers once the session is up or was refreshed.
    fn arm_session_timer(&mut self, call: &mut Call, now: Now) {
        if let Some(interval) = call.session_interval {
            call.session_expiry = Some(now.instant + interval);
            // RFC 4028 §10: the refresher refreshes at half the interval.
            call.refresh_at = call.we_refresh.then(|| now.instant + interval / 2);
            call.deadline = call.refresh_at.or(call.session_expiry);
        }
    }

    /// Sends our refresh to the caller: UPDATE without a body if it allows UPDATE, else a
    /// re-INVITE carrying the same SDP (RFC 4028 §7.4, §9).
    fn send_refresh(&mut self, call: &mut Call, now: Now) {
        let local_host = self.local_host();
        let allows_update = call
            .a_invite
            .headers
            .values(&HeaderName::Allow)
            .unwrap_or_default()
            .iter()
            .any(|m| m.eq_ignore_ascii_case("UPDATE"));
        let branch = self.new_branch();
        let method = if allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let mut req = call.a_dialog.request(method.clone(), &local_host, &branch);
        req.headers.push(
            HeaderName::Contact,
            self.contact_value(call.a_dialog.peer.transport),
        );
        if let Some(interval) = call.session_interval {
            req.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher=uas", interval.as_secs()),
            );
        }
        req.headers.push(HeaderName::Supported, "timer");
        if method == Method::Invite
            && let Some(sdp) = &call.a_answer
        {
            req.headers.push(HeaderName::ContentType, "application/sdp");
            req.body = sdp.clone();
        }
        let tx = self.tx.send_request(req, call.a_dialog.peer, now.instant);
        call.refresh_pending = true;
        self.track(call, tx, Purpose::Refresh);
    }

    /// A response for a fork whose call has ended: the caller is gone, so the phone must not
    /// stay in a call. CANCEL on the first 1xx, ACK and BYE a 2xx (RFC 3261 §9.1, §13.2.2.4).
    fn orphan_response(&mut self, id: ClientTxId, resp: Response, now: Now) {
        let local_host = self.local_host();
        let Some(orphan) = self.orphans.get_mut(&id) else {
            self.by_client_tx.remove(&id);
            return;
        };
        let (invite, dialog, cancelled) = match orphan {
            Orphan::Answered { ack: (peer, ack) } => {
                if (200..300).contains(&resp.status) {
                    let (peer, ack) = (*peer, ack.clone());
                    self.send_stateless(peer, ack);
                }
                return;
            }
            Orphan::Pending {
                invite,
                dialog,
                cancelled,
            } => (invite, dialog, cancelled),
        };
        match resp.status {
            100 => {}
            101..=199 => {
                if !*cancelled {
                    *cancelled = true;
                    let cancel = sip_core::build_cancel(invite);
                    let peer = dialog.peer;
                    let _ = self.tx.send_request(cancel, peer, now.instant);
                }
            }
            200..=299 => {
                debug!("2xx for a call that has ended: ACK and BYE");
                let mut dialog = Dialog::clone(dialog);
                dialog.remote_tag = resp.to().and_then(|t| t.tag().map(str::to_owned));
                if let Some(c) = resp
                    .headers
                    .values(&HeaderName::Contact)
                    .and_then(|v| v.first().and_then(|c| NameAddr::parse(c).ok()))
                {
                    dialog.remote_target = c.uri.to_string();
                }
                let cseq = invite.cseq().map_or(1, |c| c.seq);
                let branch = self.new_branch();
                let ack = dialog.ack(cseq, &local_host, &branch);
                self.send_stateless(dialog.peer, ack.clone());
                let branch = self.new_branch();
                let bye = dialog.request(Method::Bye, &local_host, &branch);
                let _ = self.tx.send_request(bye, dialog.peer, now.instant);
                // Keep re-ACKing its 2xx retransmissions until the orphan is forgotten.
                self.orphans.insert(
                    id,
                    Orphan::Answered {
                        ack: (dialog.peer, ack),
                    },
                );
            }
            _ => {
                self.orphans.remove(&id);
                self.by_client_tx.remove(&id);
            }
        }
    }

    fn fork_response(&mut self, call: &mut Call, idx: usize, resp: Response, now: Now) -> bool {
        let local_host = self.local_host();
        let Some(fork) = call.forks.get_mut(idx) else {
            return true;
        };
        let status = resp.status;
        if status == 100 {
            return true;
        }
        // Learn the remote tag and target from any response with a To tag (early dialog).
        if let Some(to) = resp.to()
            && fork.dialog.remote_tag.is_none()
        {
            fork.dialog.remote_tag = to.tag().map(str::to_owned);
        }
        if status < 300 {
            if let Some(c) = resp
                .headers
                .values(&HeaderName::Contact)
                .and_then(|v| v.first().and_then(|c| NameAddr::parse(c).ok()))
            {
                fork.dialog.remote_target = c.uri.to_string();
            }
            if let Some(rr) = resp.headers.values(&HeaderName::RecordRoute)
                && !rr.is_empty()
            {
                fork.dialog.route_set = rr.iter().rev().map(|s| s.to_string()).collect();
            }
        }
        match status {
            101..=199 => {
                if fork.state == ForkState::Calling {
                    fork.state = ForkState::Early;
                }
                if fork.cancel_wanted {
                    if !fork.cancel_sent {
                        fork.cancel_sent = true;
                        let (invite, peer) = (fork.invite.clone(), fork.dialog.peer);
                        self.send_cancel(call, &invite, peer, now);
                    }
                    return true;
                }
                if call.state == CallState::Ringing && !call.a_final_sent {
                    let mut ring =
                        call.a_invite
                            .make_response(180, "Ringing", Some(&call.a_dialog.local_tag));
                    self.add_contact(&mut ring, call.a_dialog.peer.transport);
                    if status == 183 && !resp.body.is_empty() {
                        // Early media: answer the caller now with the codec the phone chose.
                        if let Some(body) = self.answer_for_a(call, &resp.body) {
                            ring.status = 183;
                            ring.reason = "Session Progress".into();
                            ring.headers
                                .push(HeaderName::ContentType, "application/sdp");
                            ring.body = body;
                        }
                    }
                    self.tx.send_response(call.a_tx, ring, now.instant);
                }
                true
            }
            200..=299 => {
                let fork = &mut call.forks[idx];
                if let Some((peer, ack)) = &fork.ack {
                    // 2xx retransmission: our ACK was lost (RFC 3261 §13.2.2.4).
                    self.send_stateless(*peer, ack.clone());
                    return true;
                }
                fork.state = ForkState::Answered;
                fork.final_status = Some(status);
                let cseq = fork.invite.cseq().map_or(1, |c| c.seq);
                let branch = self.new_branch();
                let ack_bytes = fork.dialog.ack(cseq, &local_host, &branch);
                let peer = fork.dialog.peer;
                fork.ack = Some((peer, ack_bytes.clone()));
                self.send_stateless(peer, ack_bytes);
                if call.winner.is_some() || (call.a_final_sent && call.answered.is_none()) {
                    // Another fork won, or the caller cancelled: hang this one up.
                    self.send_bye_fork(call, idx, now);
                    return self.call_still_busy(call);
                }
                if call.answered.is_some() {
                    return self.transfer_answered(call, idx, &resp.body, now);
                }
                let Some(body) = self.answer_for_a(call, &resp.body) else {
                    // The phone answered with no usable SDP answer: hang it up, as if it had
                    // refused the offer (488), and let the other forks go on.
                    debug!(extension = %call.forks[idx].extension, "2xx without a usable SDP answer");
                    self.send_bye_fork(call, idx, now);
                    call.forks[idx].final_status = Some(488);
                    if call.forks.iter().all(|f| f.state == ForkState::Done)
                        && !self.hunt_on(call, now)
                    {
                        let mapped = map_failure(call.forks.iter().filter_map(|f| f.final_status));
                        self.fail_a(call, mapped, now);
                        return false;
                    }
                    return self.call_still_busy(call);
                };
                let body = Some(body);
                call.winner = Some(idx);
                let extension = call.forks[idx].extension.clone();
                *self.busy.entry(extension.clone()).or_default() += 1;
                call.busy_extension = Some(extension);
                for other in 0..call.forks.len() {
                    if other != idx {
                        self.cancel_fork(call, other, now);
                    }
                }
                let ok = self.ok_for_a(call, body);
                self.tx.send_response(call.a_tx, ok, now.instant);
                call.a_final_sent = true;
                call.state = CallState::Answered;
                // Media flows from now on: the relay's media timeout starts.
                self.out.push_back(Output::MediaHold {
                    call: call.key,
                    on_hold: false,
                });
                call.deadline = None;
                self.arm_session_timer(call, now);
                self.stats.calls_answered += 1;
                debug!(extension = %call.forks[idx].extension, "call answered");
                true
            }
            _ => {
                let fork = &mut call.forks[idx];
                fork.state = ForkState::Done;
                fork.final_status = Some(status);
                debug!(extension = %fork.extension, status, "fork failed");
                if call.winner.is_none()
                    && (!call.a_final_sent || call.answered.is_some())
                    && call.forks.iter().all(|f| f.state == ForkState::Done)
                    && !self.hunt_on(call, now)
                {
                    if call.answered.is_some() {
                        return self.nobody_answered(call, now);
                    }
                    let mapped = map_failure(call.forks.iter().filter_map(|f| f.final_status));
                    if let Some(target) = call.no_answer.take() {
                        // Nobody took the group's call (busy, declined, unreachable): its
                        // no_answer target does; a citizen never just gets a busy tone.
                        return self.answer_with_ivr(call, target, now);
                    }
                    self.fail_a(call, mapped, now);
                    return false;
                }
                self.call_still_busy(call)
            }
        }
    }

    /// Our 200 to the caller's INVITE, with `body` as the SDP answer.
    fn ok_for_a(&self, call: &Call, body: Option<Vec<u8>>) -> Response {
        let mut ok = call
            .a_invite
            .make_response(200, "OK", Some(&call.a_dialog.local_tag));
        for rr in call.a_invite.headers.get_all(&HeaderName::RecordRoute) {
            ok.headers.push(HeaderName::RecordRoute, rr.to_owned());
        }
        self.add_contact(&mut ok, call.a_dialog.peer.transport);
        self.add_capabilities(&mut ok);
        if let Some(interval) = call.session_interval {
            // RFC 4028 §9: the refresher the caller named, else the caller if it
            // supports timers, else us. Whoever refreshes, no refresh ends the call.
            let refresher = if call.we_refresh { "uas" } else { "uac" };
            ok.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher={refresher}", interval.as_secs()),
            );
            if !call.we_refresh {
                ok.headers.push(HeaderName::Require, "timer");
            }
        }
        if let Some(body) = body {
            ok.headers.push(HeaderName::ContentType, "application/sdp");
            ok.body = body;
        }
        ok
    }

    /// The SDP answer for the caller, built once with the codec the phone picked.
    fn answer_for_a(&mut self, call: &mut Call, b_sdp: &[u8]) -> Option<Vec<u8>> {
        if let Some(a) = &call.a_answer {
            return Some(a.clone());
        }
        let b_answer = SessionDescription::parse(b_sdp).ok()?;
        let neg = sdp::accept_answer(&call.b_offer, &b_answer).ok()?;
        self.out.push_back(Output::MediaRemote {
            call: call.key,
            leg: LegSide::B,
            rtp: neg.remote,
            rtcp: neg.remote_rtcp,
        });
        let mut codecs = vec![neg.codec.codec];
        if neg.telephone_event_payload_type.is_some()
            || call
                .a_offer
                .media
                .iter()
                .any(|m| m.telephone_event_payload_type().is_some())
        {
            codecs.push(Codec::TelephoneEvent);
        }
        let policy = CodecPolicy::new(codecs).unwrap_or_default();
        let local = MediaAddress {
            ip: self.settings.advertised_ip,
            rtp_port: call.a_ports.rtp(),
        };
        let (answer, neg_a) =
            sdp::answer(&call.a_offer, &policy, local, &mut call.a_origin).ok()?;
        self.out.push_back(Output::MediaRemote {
            call: call.key,
            leg: LegSide::A,
            rtp: neg_a.remote,
            rtcp: neg_a.remote_rtcp,
        });
        let bytes = answer.to_bytes();
        call.a_answer = Some(bytes.clone());
        Some(bytes)
    }

    fn add_contact(&self, resp: &mut Response, transport: Transport) {
        resp.headers
            .push(HeaderName::Contact, self.contact_value(transport));
    }

    /// CANCEL a ringing fork (RFC 3261 §9.1: only once it sent a provisional response).
    fn cancel_fork(&mut self, call: &mut Call, idx: usize, now: Now) {
        let Some(fork) = call.forks.get_mut(idx) else {
            return;
        };
        match fork.state {
            ForkState::Early => {
                fork.cancel_wanted = true;
                if !fork.cancel_sent {
                    fork.cancel_sent = true;
                    let (invite, peer) = (fork.invite.clone(), fork.dialog.peer);
                    self.send_cancel(call, &invite, peer, now);
                }
            }
            ForkState::Calling => fork.cancel_wanted = true,
            ForkState::Answered | ForkState::Done => {}
        }
    }

    fn send_cancel(&mut self, call: &mut Call, invite: &Request, peer: Peer, now: Now) {
        let cancel = sip_core::build_cancel(invite);
        let tx = self.tx.send_request(cancel, peer, now.instant);
        self.track(call, tx, Purpose::Cancel);
    }

    /// Routes a client transaction's responses to this call; `release` forgets them.
    fn track(&mut self, call: &mut Call, tx: ClientTxId, purpose: Purpose) {
        self.by_client_tx.insert(tx, (call.key, purpose));
        call.client_txs.push(tx);
    }

    fn send_bye_fork(&mut self, call: &mut Call, idx: usize, now: Now) {
        let local_host = self.local_host();
        let Some(fork) = call.forks.get_mut(idx) else {
            return;
        };
        let branch = self.new_branch();
        let bye = fork.dialog.request(Method::Bye, &local_host, &branch);
        fork.state = ForkState::Done;
        let tx = self.tx.send_request(bye, fork.dialog.peer, now.instant);
        self.track(call, tx, Purpose::Bye);
    }

    fn send_bye_a(&mut self, call: &mut Call, now: Now) {
        let local_host = self.local_host();
        let branch = self.new_branch();
        let bye = call.a_dialog.request(Method::Bye, &local_host, &branch);
        let tx = self.tx.send_request(bye, call.a_dialog.peer, now.instant);
        self.track(call, tx, Purpose::Bye);
    }

    /// Final failure to the caller, then the call is over.
    fn fail_a(&mut self, call: &mut Call, status: u16, now: Now) {
        if !call.a_final_sent {
            let resp = call.a_invite.make_response(
                status,
                reason_phrase(status),
                Some(&call.a_dialog.local_tag),
            );
            self.tx.send_response(call.a_tx, resp, now.instant);
            call.a_final_sent = true;
        }
    }

    /// True while some fork still needs the call's state (a CANCEL or BYE in flight is fine to drop).
    fn call_still_busy(&self, call: &Call) -> bool {
        call.winner.is_some()
            || call.answered.is_some()
            || call
                .forks
                .iter()
                .any(|f| matches!(f.state, ForkState::Calling | ForkState::Early))
    }

    /// Puts a call back in the table, or tears it down for good.
    fn put_back(&mut self, mut call: Call, keep: bool) {
        if keep {
            self.schedule(&mut call);
            self.calls.insert(call.key, call);
        } else {
            self.release(call);
        }
    }

    /// Keeps the deadline index in step with `call.deadline`, so `poll_timeout` need not scan calls.
    fn schedule(&mut self, call: &mut Call) {
        if let Some(answered) = &call.answered {
            call.deadline = [
                answered.next_deadline(),
                call.refresh_at,
                call.session_expiry,
            ]
            .into_iter()
            .flatten()
            .min();
        }
        if call.scheduled != call.deadline {
            if let Some(at) = call.scheduled {
                self.deadlines.remove(&(at, call.key));
            }
            if let Some(at) = call.deadline {
                self.deadlines.insert((at, call.key));
            }
            call.scheduled = call.deadline;
        }
    }

    /// Frees everything a call holds. Client transactions still running (BYE, CANCEL, 487s)
    /// finish in the transaction layer; their responses then find no call and are dropped.
    fn release(&mut self, call: Call) {
        info!(
            call = call.key.0,
            call_id = %call.a_dialog.call_id,
            dialled = %call.dialled,
            answered_by = ?call.busy_extension,
            ivr = ?call.answered.as_ref().map(|a| {
                a.events.iter().map(|e| format!("{:?}", e.kind)).collect::<Vec<_>>()
            }),
            "call ended"
        );
        self.stats.calls_ended += 1;
        self.out.push_back(Output::CloseMedia { call: call.key });
        let _ = self.ports.free(call.a_ports);
        let _ = self.ports.free(call.b_ports);
        self.by_server_tx.remove(&call.a_tx);
        self.by_call_id.remove(&call.a_dialog.call_id);
        for tx in &call.client_txs {
            self.by_client_tx.remove(tx);
        }
        if let Some(at) = call.scheduled {
            self.deadlines.remove(&(at, call.key));
        }
        if let Some(ext) = &call.busy_extension
            && let Some(n) = self.busy.get_mut(ext)
        {
            *n = n.saturating_sub(1);
        }
        let born = self.now.map(|n| n.instant);
        for f in call.forks {
            self.by_call_id.remove(&f.dialog.call_id);
            if let (Some(ack), Some(born)) = (f.ack, born) {
                // The phone may retransmit its 2xx if our ACK is lost: keep re-ACKing it.
                self.by_client_tx.insert(f.tx, (call.key, Purpose::Orphan));
                self.orphans.insert(f.tx, Orphan::Answered { ack });
                self.answered_orphan_queue
                    .push_back((born + ANSWERED_ORPHAN_LIFETIME, f.tx));
                continue;
            }
            if let (true, Some(born)) = (
                matches!(f.state, ForkState::Calling | ForkState::Early),
                born,
            ) {
                // The phone may still answer: keep enough to CANCEL, or ACK and BYE, it.
                self.by_client_tx.insert(f.tx, (call.key, Purpose::Orphan));
                self.orphans.insert(
                    f.tx,
                    Orphan::Pending {
                        invite: Box::new(f.invite),
                        dialog: Box::new(f.dialog),
                        cancelled: f.cancel_sent,
                    },
                );
                self.orphan_queue.push_back((born + ORPHAN_LIFETIME, f.tx));
            }
        }
    }

    /// Ends a call from our side (media timeout, ring timeout, bind failure).
    pub(crate) fn end_call(&mut self, key: CallKey, why: &str, now: Now) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        info!(call = key.0, why, "ending call");
        if !call.a_final_sent || call.answered.is_some() {
            for idx in 0..call.forks.len() {
                self.cancel_fork(&mut call, idx, now);
            }
        }
        if call.a_final_sent && call.state == CallState::Answered {
            // RFC 3261 §15: our 200 is not ACKed yet, so the BYE waits for the ACK (`on_ack`)
            // or for its timeout (`on_ack_timeout`).
            if let Some(w) = call.winner
                && call.forks[w].state == ForkState::Answered
            {
                self.send_bye_fork(&mut call, w, now);
            }
            call.bye_a_pending = true;
            self.put_back(call, true);
            return;
        }
        if !call.a_final_sent {
            self.fail_a(&mut call, 480, now);
        } else {
            self.send_bye_a(&mut call, now);
            if let Some(w) = call.winner
                && call.forks[w].state == ForkState::Answered
            {
                self.send_bye_fork(&mut call, w, now);
            }
        }
        self.release(call);
    }

    pub(crate) fn call_timers(&mut self, now: Now) {
        let mut due = Vec::new();
        let mut answered_due = Vec::new();
        let mut stale = Vec::new();
        for &(at, key) in &self.deadlines {
            if at > now.instant {
                break;
            }
            match self.calls.get(&key) {
                Some(c) if c.answered.is_some() => answered_due.push(key),
                Some(c) => due.push((key, c.state == CallState::Ringing)),
                None => stale.push((at, key)),
            }
        }
        // An entry without a call would make poll_timeout spin; it cannot happen
        // (release removes it), but a timer index must never be able to livelock the loop.
        for entry in stale {
            self.deadlines.remove(&entry);
        }
        for key in answered_due {
            self.answered_timer(key, now);
        }
        for (key, ringing) in due {
            if ringing {
                // Hunting: the member rang long enough; stop it and try the next one.
                if let Some(mut call) = self.calls.remove(&key) {
                    let hunting = !call.ring_all
                        && !call.hunt.is_empty()
                        && now.instant < call.group_deadline;
                    if hunting {
                        for idx in 0..call.forks.len() {
                            self.cancel_fork(&mut call, idx, now);
                        }
                        if self.hunt_next(&mut call, now) {
                            self.put_back(call, true);
                            continue;
                        }
                    }
                    if !call.a_final_sent
                        && let Some(target) = call.no_answer.take()
                    {
                        // The group rang long enough: its no_answer target takes the call.
                        for idx in 0..call.forks.len() {
                            self.cancel_fork(&mut call, idx, now);
                        }
                        info!(call = key.0, %target, "nobody answered the group");
                        let keep = self.answer_with_ivr(&mut call, target, now);
                        self.put_back(call, keep);
                        continue;
                    }
                    self.calls.insert(key, call);
                }
                self.end_call(key, "nobody answered in time", now);
                continue;
            }
            let Some(mut call) = self.calls.remove(&key) else {
                continue;
            };
            if call.refresh_at.is_some_and(|t| t <= now.instant) {
                call.refresh_at = None;
                call.deadline = call.session_expiry;
                self.send_refresh(&mut call, now);
                self.put_back(call, true);
            } else if call.session_expiry.is_some_and(|t| t <= now.instant) {
                self.calls.insert(key, call);
                self.end_call(key, "session timer expired: no refresh (RFC 4028)", now);
            } else {
                // Nothing due (e.g. the ACK-wait of a hung-up phone): keep the call.
                call.deadline = call.refresh_at.or(call.session_expiry);
                self.put_back(call, true);
            }
        }
    }

    pub(crate) fn on_client_timeout(&mut self, id: ClientTxId, now: Now) {
        let Some((key, purpose)) = self.by_client_tx.remove(&id) else {
            return;
        };
        self.orphans.remove(&id);
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        let keep = match purpose {
            Purpose::Fork(idx) => {
                // Timer B: as if the phone had answered 408 (RFC 3261 §17.1.1.2).
                let mut fake = Response {
                    status: 408,
                    reason: "Request Timeout".into(),
                    headers: Default::default(),
                    body: Vec::new(),
                };
                fake.headers = call.forks[idx]
                    .invite
                    .make_response(408, "Request Timeout", None)
                    .headers;
                if call.forks[idx].state == ForkState::Answered {
                    true
                } else {
                    self.fork_response(&mut call, idx, fake, now)
                }
            }
            Purpose::Refresh => {
                // RFC 4028 §10: no answer to our refresh: the dialog is gone.
                self.send_bye_a(&mut call, now);
                if let Some(w) = call.winner {
                    self.send_bye_fork(&mut call, w, now);
                }
                false
            }
            Purpose::Bye | Purpose::Cancel | Purpose::Orphan => true,
        };
        self.put_back(call, keep);
    }

    pub(crate) fn on_cancelled(&mut self, invite: ServerTxId, now: Now) {
        let Some(key) = self.by_server_tx.get(&invite).copied() else {
            return;
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        info!(call = key.0, "caller cancelled");
        for idx in 0..call.forks.len() {
            self.cancel_fork(&mut call, idx, now);
        }
        self.fail_a(&mut call, 487, now);
        self.release(call);
    }

    pub(crate) fn on_ack(&mut self, req: Request, _from: Peer, now: Now) {
        let Some(call_id) = req.call_id() else { return };
        // Even when the call has ended, the ACK stops our 2xx retransmissions (RFC 3261 §13.3.1.4).
        let cseq = req.cseq().map_or(0, |c| c.seq);
        if let Some(id) = self.tx.find_invite_server(call_id, cseq) {
            self.tx.ack_received(id);
        }
        let Some(&key) = self.by_call_id.get(call_id) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        let mut keep = true;
        if !req.body.is_empty() {
            // RFC 3264 §4: the answer to the offer we put in a 200 arrives in the ACK.
            if let Some((side, offer)) = call.pending_offer.take() {
                match SessionDescription::parse(&req.body)
                    .ok()
                    .and_then(|a| sdp::accept_answer(&offer, &a).ok())
                {
                    Some(neg) => self.out.push_back(Output::MediaRemote {
                        call: key,
                        leg: side,
                        rtp: if neg.direction.sends() {
                            neg.remote
                        } else {
                            None
                        },
                        rtcp: neg.remote_rtcp,
                    }),
                    None => debug!(call = key.0, "unusable SDP answer in ACK; media unchanged"),
                }
            }
        }
        if call.state == CallState::Answered && call.a_dialog.call_id == call_id {
            call.state = CallState::Confirmed;
            debug!(call = key.0, "caller ACKed: call confirmed");
            if call.bye_a_pending {
                // The phone hung up before the caller's ACK: now the BYE may go (RFC 3261 §15).
                self.send_bye_a(&mut call, now);
                keep = false;
            }
        }
        self.put_back(call, keep);
    }

    pub(crate) fn on_ack_timeout(&mut self, id: ServerTxId, now: Now) {
        if let Some(&key) = self.by_server_tx.get(&id) {
            // RFC 3261 §13.3.1.4: without its ACK the dialog is confirmed anyway, and the
            // session ends with BYE, which may now be sent.
            let answered = self
                .calls
                .get(&key)
                .is_some_and(|c| c.state == CallState::Answered);
            if let Some(c) = self.calls.get_mut(&key) {
                c.state = CallState::Confirmed;
            }
            if answered {
                // RFC 3261 §13.3.1.4: no ACK for our 2xx: end the dialog with BYE.
                self.end_call(key, "caller never ACKed the 200", now);
            } else if self.calls.get(&key).is_some_and(|c| c.bye_a_pending) {
                self.end_call(
                    key,
                    "caller never ACKed the 200; the phone had hung up",
                    now,
                );
            }
        }
    }

    pub(crate) fn on_stray_2xx(&mut self, resp: Response, from: Peer) {
        debug!(peer = %from.addr, status = resp.status, "stray 2xx dropped");
    }

    /// Requests inside an existing dialog (To tag present).
    pub(crate) fn in_dialog_request(&mut self, id: ServerTxId, req: Request, from: Peer, now: Now) {
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let to_tag = req.to().and_then(|t| t.tag().map(str::to_owned));
        let key = self.by_call_id.get(&call_id).copied();
        let Some(mut call) = key.and_then(|k| self.calls.remove(&k)) else {
            let resp = req.make_response(481, "Call/Transaction Does Not Exist", None);
            self.tx.send_response(id, resp, now.instant);
            return;
        };
        let side = if call.a_dialog.call_id == call_id
            && to_tag.as_deref() == Some(call.a_dialog.local_tag.as_str())
        {
            Some(LegSide::A)
        } else if call.winner.is_some_and(|w| {
            call.forks[w].dialog.call_id == call_id
                && to_tag.as_deref() == Some(call.forks[w].dialog.local_tag.as_str())
        }) {
            Some(LegSide::B)
        } else {
            None
        };
        let span = info_span!("call", call = call.key.0, call_id = %call.a_dialog.call_id);
        let _enter = span.enter();
        let Some(side) = side else {
            let resp = req.make_response(481, "Call/Transaction Does Not Exist", None);
            self.tx.send_response(id, resp, now.instant);
            self.calls.insert(call.key, call);
            return;
        };
        let keep = match req.method {
            Method::Bye => {
                let resp = req.make_response(200, "OK", None);
                self.tx.send_response(id, resp, now.instant);
                debug!(?side, "hang-up");
                match side {
                    LegSide::A => match call.winner {
                        Some(w) => self.send_bye_fork(&mut call, w, now),
                        None => {
                            // BYE in an early dialog (RFC 3261 §15): stop the phones ringing
                            // and end the INVITE with 487 (§15.1.2).
                            for idx in 0..call.forks.len() {
                                self.cancel_fork(&mut call, idx, now);
                            }
                            self.fail_a(&mut call, 487, now);
                        }
                    },
                    LegSide::B if call.state == CallState::Answered => {
                        // RFC 3261 §15: no BYE to the caller before its ACK for our 2xx.
                        call.bye_a_pending = true;
                        if let Some(w) = call.winner {
                            call.forks[w].state = ForkState::Done;
                        }
                        self.calls.insert(call.key, call);
                        return;
                    }
                    LegSide::B => self.send_bye_a(&mut call, now),
                }
                false
            }
            Method::Invite | Method::Update if call.refresh_pending && side == LegSide::A => {
                // RFC 3261 §14.2 / RFC 3311 §5.2: our own refresh is in progress on this dialog.
                let mut resp = req.make_response(491, "Request Pending", None);
                resp.headers.push(HeaderName::RetryAfter, "2");
                self.tx.send_response(id, resp, now.instant);
                true
            }
            Method::Invite | Method::Update => {
                self.session_refresh(&mut call, id, &req, side, from, now);
                if side == LegSide::A {
                    self.arm_session_timer(&mut call, now);
                }
                true
            }
            Method::Info if side == LegSide::A && call.answered.is_some() => {
                // SIP INFO DTMF (application/dtmf-relay, application/dtmf) to the IVR.
                let resp = req.make_response(200, "OK", None);
                self.tx.send_response(id, resp, now.instant);
                match info_digit(&req) {
                    Some(digit) => self.answered_digit(&mut call, digit, now),
                    None => true,
                }
            }
            Method::Info | Method::Options | Method::Notify => {
                let resp = req.make_response(200, "OK", None);
                self.tx.send_response(id, resp, now.instant);
                true
            }
            Method::Ack => true,
            _ => {
                let mut resp = req.make_response(405, "Method Not Allowed", None);
                self.add_capabilities(&mut resp);
                self.tx.send_response(id, resp, now.instant);
                true
            }
        };
        self.put_back(call, keep);
    }

    /// re-INVITE or UPDATE on one leg (hold, resume, new address): answered by the switch,
    /// which keeps anchoring media; the relay learns the new remote address.
    // DEVIATION(RFC 3264 §8): the change is not forwarded to the other leg; the relay keeps
    // both media paths up, so the other phone needs no new offer.
    fn session_refresh(
        &mut self,
        call: &mut Call,
        id: ServerTxId,
        req: &Request,
        side: LegSide,
        _from: Peer,
        now: Now,
    ) {
        let port = match side {
            LegSide::A => call.a_ports.rtp(),
            LegSide::B => call.b_ports.rtp(),
        };
        // A caller the switch answered keeps the codec its prompts are encoded in.
        let policy = match (&call.answered, side) {
            (Some(a), LegSide::A) => a.policy(),
            _ => CodecPolicy::default(),
        };
        let local = MediaAddress {
            ip: self.settings.advertised_ip,
            rtp_port: port,
        };
        let mut resp = req.make_response(200, "OK", None);
        self.add_contact(
            &mut resp,
            req.top_via().map_or(Transport::Udp, |v| {
                if v.transport == "TCP" {
                    Transport::Tcp
                } else {
                    Transport::Udp
                }
            }),
        );
        self.add_capabilities(&mut resp);
        if let (LegSide::A, Some(interval)) = (side, call.session_interval) {
            // RFC 4028 §9: a refresh keeps the interval and the refresher.
            let refresher = if call.we_refresh { "uas" } else { "uac" };
            resp.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher={refresher}", interval.as_secs()),
            );
        }
        if !req.body.is_empty() {
            let Ok(offer) = SessionDescription::parse(&req.body) else {
                let resp = req.make_response(488, "Not Acceptable Here", None);
                self.tx.send_response(id, resp, now.instant);
                return;
            };
            let origin = match side {
                LegSide::A => &mut call.a_origin,
                LegSide::B => &mut call.b_origin,
            };
            match sdp::answer(&offer, &policy, local, origin) {
                Ok((answer, neg)) => {
                    // A peer on hold (sendonly, inactive, c=0.0.0.0) receives nothing: the
                    // relay stops sending to it, and no media timeout runs (RFC 3264 §8.4).
                    let receives = neg.direction.sends();
                    self.out.push_back(Output::MediaRemote {
                        call: call.key,
                        leg: side,
                        rtp: if receives { neg.remote } else { None },
                        rtcp: neg.remote_rtcp,
                    });
                    self.out.push_back(Output::MediaHold {
                        call: call.key,
                        on_hold: neg.remote_hold || !receives,
                    });
                    if side == LegSide::A
                        && let Some(a) = call.answered.as_mut()
                        && a.set_telephone_event(neg.telephone_event_payload_type)
                    {
                        self.out.push_back(Output::MediaDtmf {
                            call: call.key,
                            telephone_event: neg.telephone_event_payload_type,
                        });
                    }
                    resp.headers
                        .push(HeaderName::ContentType, "application/sdp");
                    resp.body = answer.to_bytes();
                }
                Err(_) => {
                    let resp = req.make_response(488, "Not Acceptable Here", None);
                    self.tx.send_response(id, resp, now.instant);
                    return;
                }
            }
        }
        if req.body.is_empty() && req.method == Method::Invite {
            // RFC 3264 §8 / RFC 3261 §14.2: an offer-less re-INVITE gets our offer in the 200;
            // the answer comes in the ACK. We offer what the session already uses.
            let origin = match side {
                LegSide::A => &mut call.a_origin,
                LegSide::B => &mut call.b_origin,
            };
            let offer = sdp::offer(&policy, local, origin, sdp::Direction::SendRecv);
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = offer.to_bytes();
            call.pending_offer = Some((side, offer));
        }
        self.tx.send_response(id, resp, now.instant);
    }
}

/// Sets the deadline of the member (or group) ringing now.
fn set_ring_deadline(call: &mut Call, at: Instant) {
    call.deadline = Some(at);
    if let Some(answered) = &mut call.answered {
        answered.ring_deadline = Some(at);
    }
}

/// The key of a SIP INFO DTMF body: `application/dtmf-relay` (`Signal=5`, the de-facto Cisco
/// format) or `application/dtmf` (the key alone).
fn info_digit(req: &Request) -> Option<char> {
    let ctype = req
        .headers
        .get(&HeaderName::ContentType)?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = match ctype.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        // RFC 4733 event codes as numbers: 10 = *, 11 = #.
        return match value {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => None,
        };
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// Where to send requests for a registered contact. Over UDP, the Contact's own address when
/// it names the host the REGISTER came from (no NAT in between: a phone may listen on another
/// port than it sent from); otherwise the REGISTER's source, which is what gets through a NAT
/// (the `received`/`rport` idea of RFC 3581 applied to the binding). Over TCP, always the
/// connection the phone opened.
fn contact_address(
    contact: &str,
    received_from: std::net::SocketAddr,
    transport: Transport,
) -> std::net::SocketAddr {
    if transport == Transport::Tcp {
        return received_from;
    }
    match Uri::parse(contact)
        .ok()
        .as_ref()
        .and_then(Uri::as_sip)
        .and_then(SipUri::socket_addr)
    {
        Some(addr) if addr.ip() == received_from.ip() => addr,
        _ => received_from,
    }
}

/// Whom a call rings and for how long, from the router's decision.
struct RingPlan {
    extensions: Vec<String>,
    ring_all: bool,
    member_timeout: Duration,
    group_timeout: Duration,
    /// Where the call goes when nobody answers (a group's `no_answer`).
    no_answer: Option<router::Target>,
}

impl RingPlan {
    /// A hunt group's ringing: the members the router chose, in its order, bounded by the
    /// group's timeouts.
    fn from_decision(decision: &router::Decision) -> RingPlan {
        let secs =
            |v: Option<u32>| v.map_or(RING_TIMEOUT, |s| Duration::from_secs(u64::from(s.max(1))));
        let group_timeout = secs(decision.timeout_secs.or(decision.ring_timeout_secs));
        let member_timeout = secs(decision.ring_timeout_secs).min(group_timeout);
        RingPlan {
            extensions: decision.ring.clone(),
            ring_all: decision.ring_all,
            member_timeout,
            group_timeout,
            no_answer: decision.no_answer.clone(),
        }
    }
}

/// Where the router sends a new call.
enum Routed {
    /// Ring these phones, relaying the caller's offer.
    Ring(RingPlan),
    /// The switch answers and runs the IVR from this target.
    Answer(router::Target),
}

/// What remains of a fork after its call ended, until the phone's final response.
#[derive(Debug)]
pub(crate) enum Orphan {
    /// The phone answered: only our ACK is kept, to resend on 2xx retransmissions.
    Answered {
        /// Where and what.
        ack: (Peer, Vec<u8>),
    },
    /// The phone has not answered yet: enough to CANCEL it, or to ACK and BYE a late 2xx.
    Pending {
        invite: Box<Request>,
        dialog: Box<Dialog>,
        cancelled: bool,
    },
}

/// How long a fork's INVITE transaction can still deliver responses: 64*T1 (RFC 3261 §17.1.1.2).
const ORPHAN_LIFETIME: Duration = Duration::from_secs(40);
/// How long we re-ACK an answered fork's 2xx after its call ended: a phone retransmits its 2xx
/// only while our ACK is lost, at 0.5, 1, 2 and 4 s (RFC 3261 §13.3.1.4); short, because every
/// answered call leaves one.
const ANSWERED_ORPHAN_LIFETIME: Duration = Duration::from_secs(8);

impl Switchboard {
    /// Forgets orphaned forks whose time is up (each queue is in expiry order: O(1) each).
    pub(crate) fn forget_orphans(&mut self, now: Now) {
        for queue in [&mut self.orphan_queue, &mut self.answered_orphan_queue] {
            while let Some(&(until, id)) = queue.front() {
                if until > now.instant {
                    break;
                }
                queue.pop_front();
                if self.orphans.remove(&id).is_some() {
                    self.by_client_tx.remove(&id);
                }
            }
        }
    }
}

/// The smallest session interval we accept (RFC 4028 §5: Min-SE at least 90 s).
const MIN_SE: u32 = 90;

enum SessionTimer {
    None,
    Interval(u32),
    Malformed,
}

/// The caller's `Session-Expires` (RFC 4028 §4).
fn session_expires(req: &Request) -> SessionTimer {
    let Some(value) = req.headers.get(&HeaderName::SessionExpires) else {
        return SessionTimer::None;
    };
    let delta = value.split(';').next().unwrap_or("");
    match sip_msg::parse_u32(delta, u64::from(u32::MAX)) {
        Some(secs) => SessionTimer::Interval(secs),
        None => SessionTimer::Malformed,
    }
}

fn is_invite(resp: &Response) -> bool {
    resp.cseq().is_some_and(|c| c.method == Method::Invite)
}

pub(crate) fn unsupported_options(req: &Request) -> Vec<String> {
    req.headers
        .values(&HeaderName::Require)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !SUPPORTED_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(o)))
        .map(str::to_owned)
        .collect()
}

/// What the caller hears when no phone answered (RFC 3261 §16.7 "best response" in spirit).
fn map_failure(statuses: impl Iterator<Item = u16>) -> u16 {
    let statuses: Vec<u16> = statuses.collect();
    if statuses.iter().any(|&s| s == 486 || s == 600) {
        486
    } else if statuses.contains(&603) {
        603
    } else if !statuses.is_empty() && statuses.iter().all(|&s| s == 488 || s == 606) {
        488
    } else {
        480
    }
}
