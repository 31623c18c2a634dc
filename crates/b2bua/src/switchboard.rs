//! Dispatch: datagrams in, transactions, out-of-dialog requests (REGISTER, OPTIONS), and the
//! hand-off of INVITEs and in-dialog requests to the call logic in `call.rs`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_core::{
    ClientTxId, Peer, ServerTxId, TimerConfig, TransactionLayer, Transport, TxEvent, TxOutput,
};
use sip_msg::{Framing, HeaderName, Message, Method, NameAddr, Request, Response};
use tracing::debug;

use crate::call::{Call, Orphan, Purpose};
use crate::config::Config;
use crate::rng::Rng;

/// Both clocks, read together by the driver: `instant` for protocol timers, `wall` for routing.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic time.
    pub instant: Instant,
    /// Wall-clock time.
    pub wall: jiff::Timestamp,
}

/// Identifies a call inside the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

/// Which side of a call: A is the caller (trunk), B the answering phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegSide {
    /// The caller's leg.
    A,
    /// The callee's leg.
    B,
}

/// Everything that can wake the Switchboard.
#[derive(Debug)]
pub enum Input<'a> {
    /// One UDP datagram, or one message framed from a TCP stream.
    Message {
        /// Who sent it and over what.
        from: Peer,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// The deadline from [`Switchboard::poll_timeout`] passed.
    Timeout,
    /// The media relay saw no RTP on either leg for the configured time.
    MediaTimeout {
        /// Which call.
        call: CallKey,
    },
    /// The driver could not bind the RTP ports for a call.
    MediaFailed {
        /// Which call.
        call: CallKey,
    },
    /// The caller pressed a key, detected in its RTP (RFC 4733 telephone-event or in-band
    /// tones). SIP INFO digits arrive as messages.
    Digit {
        /// Which call.
        call: CallKey,
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
    },
    /// The playback started by [`Output::Play`] with this `id` has sent its last frame.
    PlaybackFinished {
        /// Which call.
        call: CallKey,
        /// The `id` of the `Play`.
        id: u32,
    },
    /// The voicemail recording of a call ended and is stored durably (file and metadata), or
    /// could not be stored (`stored == false`, logged by the driver).
    RecordingDone {
        /// Which call.
        call: CallKey,
        /// True when the file and its metadata are on disk.
        stored: bool,
    },
}

/// What the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Send bytes.
    Transmit {
        /// Destination.
        to: Peer,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Bind RTP/RTCP sockets for both legs (ports `a_port`, `a_port + 1`, `b_port`, `b_port + 1`)
    /// and start relaying between them.
    OpenMedia {
        /// Which call.
        call: CallKey,
        /// A-leg RTP port on the switch.
        a_port: u16,
        /// B-leg RTP port on the switch.
        b_port: u16,
        /// End the call when no RTP arrives for this long.
        timeout: Duration,
    },
    /// Where a leg's peer expects RTP (from SDP); `None` while on hold or unknown.
    MediaRemote {
        /// Which call.
        call: CallKey,
        /// Which leg.
        leg: LegSide,
        /// Peer RTP address.
        rtp: Option<SocketAddr>,
        /// Peer RTCP address.
        rtcp: Option<SocketAddr>,
    },
    /// Whether the relay's media timeout is suspended: while the phones ring (no media
    /// expected yet) and while a leg holds the call. Media opens on hold.
    MediaHold {
        /// Which call.
        call: CallKey,
        /// True to suspend the media timeout.
        on_hold: bool,
    },
    /// Stop relaying and close the call's sockets.
    CloseMedia {
        /// Which call.
        call: CallKey,
    },
    /// The switch itself answered the caller (IVR, voicemail): the media side plays prompts
    /// to leg A in `encoding` with payload type `payload_type`, and reports the caller's keys,
    /// from RFC 4733 packets with `telephone_event` or, when the caller's SDP has none,
    /// from in-band tones.
    MediaIvr {
        /// Which call.
        call: CallKey,
        /// The encoding agreed with the caller (PCMU, PCMA or G.722).
        encoding: media::Encoding,
        /// Its RTP payload type.
        payload_type: u8,
        /// The telephone-event payload type agreed with the caller, if any.
        telephone_event: Option<u8>,
    },
    /// A re-negotiation changed the caller's telephone-event payload type (`None`: keys now
    /// come in-band only).
    MediaDtmf {
        /// Which call.
        call: CallKey,
        /// The payload type agreed now.
        telephone_event: Option<u8>,
    },
    /// Play these prompts to the caller, in order, replacing whatever plays; report
    /// [`Input::PlaybackFinished`] with `id` when the last frame is sent.
    Play {
        /// Which call.
        call: CallKey,
        /// Names this playback.
        id: u32,
        /// The decoded prompts.
        prompts: Vec<Arc<media::Prompt>>,
    },
    /// Play `music` in a loop (with `announcement` every `every`) until told otherwise: what
    /// a caller hears while the operators' phones ring or in a queue.
    PlayLoop {
        /// Which call.
        call: CallKey,
        /// The music (or ringback tone).
        music: Arc<media::Prompt>,
        /// Repeated announcement.
        announcement: Option<Arc<media::Prompt>>,
        /// How often the announcement interrupts the music.
        every: Duration,
    },
    /// Stop any playback, without a `PlaybackFinished`.
    StopPlayback {
        /// Which call.
        call: CallKey,
    },
    /// Record the caller (leg A) for voicemail: at most `max`, ending on a long silence, and
    /// store it under the data directory with its metadata; then report
    /// [`Input::RecordingDone`].
    Record {
        /// Which call.
        call: CallKey,
        /// The voicemail box.
        mailbox: String,
        /// The caller's number as presented.
        caller: String,
        /// The dialled number.
        dialled: String,
        /// The SIP Call-ID of the caller's dialog.
        call_id: String,
        /// Longest message.
        max: Duration,
        /// When the recording started (wall clock, Unix seconds).
        started_unix: u64,
    },
    /// End the recording now (the caller pressed `#` or hung up) and store what was recorded.
    StopRecording {
        /// Which call.
        call: CallKey,
    },
    /// Leave the IVR: stop playback and digit detection; relay between the legs.
    MediaBridge {
        /// Which call.
        call: CallKey,
    },
    /// Store or refresh a binding.
    SaveBinding(registrar::BindingRecord),
    /// Remove a binding.
    DeleteBinding(registrar::BindingRecord),
}

/// Counters exposed as metrics.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages received and parsed.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Datagrams dropped as unparseable or invalid responses.
    pub dropped: u64,
    /// Requests answered 4xx/5xx for bad syntax.
    pub rejected_malformed: u64,
    /// Calls started.
    pub calls_started: u64,
    /// Calls answered.
    pub calls_answered: u64,
    /// Calls the switch answered itself (IVR, messages, voicemail).
    pub calls_ivr: u64,
    /// Keys the callers pressed in the IVR (RFC 4733, SIP INFO, in-band).
    pub ivr_digits: u64,
    /// Voicemail messages stored.
    pub voicemails: u64,
    /// Calls that ended.
    pub calls_ended: u64,
    /// Successful REGISTERs.
    pub registrations: u64,
    /// Digest failures.
    pub auth_failures: u64,
    /// Requests dropped because their source is penalised.
    pub penalised: u64,
}

/// Fixed settings of a Switchboard.
#[derive(Clone, Debug)]
pub struct SwitchboardConfig {
    /// Address put in Via, Contact and SDP.
    pub advertised_ip: IpAddr,
    /// SIP port put in Via and Contact.
    pub sip_port: u16,
    /// Seed of every random value (tags, branches, Call-IDs, the nonce secret).
    pub rng_seed: [u8; 32],
    /// RFC 3261 timer values.
    pub timers: TimerConfig,
}

/// Per-source failure accounting for the abuse protection (trunks are exempt).
#[derive(Clone, Copy, Debug)]
struct Penalty {
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
}

const PENALTY_WINDOW: Duration = Duration::from_secs(60);
const PENALTY_THRESHOLD: u32 = 20;
const PENALTY_BAN: Duration = Duration::from_secs(60);
const PENALTY_TABLE_MAX: usize = 10_000;
/// How often RTP ports found taken by another program are tried again.
const PORT_RETRY_INTERVAL: Duration = Duration::from_secs(600);

/// The call core. See the crate docs for the run loop.
pub struct Switchboard {
    pub(crate) settings: SwitchboardConfig,
    pub(crate) config: Arc<Config>,
    pub(crate) tx: TransactionLayer,
    pub(crate) auth: registrar::DigestAuthority,
    pub(crate) registrar: registrar::Registrar,
    pub(crate) calls: HashMap<CallKey, Call>,
    pub(crate) by_server_tx: HashMap<ServerTxId, CallKey>,
    pub(crate) by_client_tx: HashMap<ClientTxId, (CallKey, Purpose)>,
    pub(crate) by_call_id: HashMap<String, CallKey>,
    pub(crate) orphans: HashMap<ClientTxId, Orphan>,
    /// Orphans in the order they were made, to forget them in O(1).
    pub(crate) orphan_queue: VecDeque<(Instant, ClientTxId)>,
    /// The same for answered forks, which are kept a shorter time.
    pub(crate) answered_orphan_queue: VecDeque<(Instant, ClientTxId)>,
    /// Call deadlines (ring timeout, session expiry), earliest first.
    pub(crate) deadlines: BTreeSet<(Instant, CallKey)>,
    /// Calls in progress per answering extension.
    pub(crate) busy: HashMap<String, u32>,
    /// The registrar's next expiry, recomputed whenever bindings change.
    registrar_deadline: Option<Instant>,
    /// When ports set aside as taken were last given another chance (set at the first).
    ports_reinstated: Option<Instant>,
    pub(crate) ports: media::PortAllocator,
    pub(crate) rng: Rng,
    pub(crate) out: VecDeque<Output>,
    pub(crate) stats: Stats,
    pub(crate) strategy: router::StrategyState,
    next_call: u64,
    penalties: HashMap<IpAddr, Penalty>,
    pub(crate) now: Option<Now>,
}

impl Switchboard {
    /// A Switchboard running `config`.
    pub fn new(settings: SwitchboardConfig, config: Arc<Config>) -> Switchboard {
        let mut rng = Rng::from_seed(settings.rng_seed);
        let auth = registrar::DigestAuthority::new(
            config.domain.clone(),
            rng.bytes32(),
            config.nonce_lifetime,
        );
        let registrar = registrar::Registrar::new(registrar::RegistrarConfig {
            min_expires: config.min_expires,
            max_expires: config.max_expires,
            ..registrar::RegistrarConfig::default()
        });
        // the range was checked when the configuration was compiled
        let ports = media::PortAllocator::new(config.rtp_ports.clone())
            .expect("RTP port range validated by Config::compile");
        Switchboard {
            tx: TransactionLayer::new(settings.timers),
            settings,
            config,
            auth,
            registrar,
            calls: HashMap::new(),
            by_server_tx: HashMap::new(),
            by_client_tx: HashMap::new(),
            by_call_id: HashMap::new(),
            orphans: HashMap::new(),
            orphan_queue: VecDeque::new(),
            answered_orphan_queue: VecDeque::new(),
            deadlines: BTreeSet::new(),
            busy: HashMap::new(),
            registrar_deadline: None,
            ports_reinstated: None,
            ports,
            rng,
            out: VecDeque::new(),
            stats: Stats::default(),
            strategy: router::StrategyState::default(),
            next_call: 1,
            penalties: HashMap::new(),
            now: None,
        }
    }

    /// Swaps in a new configuration; calls in progress keep the snapshot they started with.
    pub fn reload(&mut self, config: Arc<Config>) {
        self.config = config;
    }

    /// The configuration new calls use.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls in progress.
    pub fn n_calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions in progress.
    pub fn n_transactions(&self) -> usize {
        self.tx.n_transactions()
    }

    /// RTP port pairs in use.
    pub fn media_ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// Registered contacts across all extensions.
    pub fn n_bindings(&self) -> usize {
        self.registrar.binding_count()
    }

    /// Extensions with at least one registered contact.
    pub fn n_registered_extensions(&self) -> usize {
        self.registrar.registered_count()
    }

    /// Loads bindings persisted before a restart; expired ones are deleted.
    pub fn restore_bindings(&mut self, records: Vec<registrar::BindingRecord>, now: Now) {
        let changes = self.registrar.restore(records, now.instant, unix(now));
        self.persist(changes);
    }

    fn persist(&mut self, changes: Vec<registrar::Change>) {
        self.registrar_deadline = self.registrar.next_expiry();
        for change in changes {
            self.out.push_back(match change {
                registrar::Change::Upsert(b) => Output::SaveBinding(b),
                registrar::Change::Remove(b) => Output::DeleteBinding(b),
            });
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input<'_>, now: Now) {
        self.now = Some(now);
        match input {
            Input::Message { from, bytes } => self.on_message(from, bytes, now),
            Input::Timeout => {
                self.tx.handle_timeout(now.instant);
                if self.registrar_deadline.is_some_and(|d| d <= now.instant) {
                    let expired = self.registrar.expire(now.instant);
                    self.persist(expired);
                }
                self.call_timers(now);
                self.forget_orphans(now);
                if self.ports.n_bad() > 0 {
                    let since = *self.ports_reinstated.get_or_insert(now.instant);
                    if now.instant.duration_since(since) >= PORT_RETRY_INTERVAL {
                        self.ports.reinstate_bad();
                        self.ports_reinstated = Some(now.instant);
                    }
                }
            }
            Input::MediaTimeout { call } => self.end_call(call, "media timeout", now),
            Input::Digit { call, digit } => self.on_digit(call, digit, now),
            Input::PlaybackFinished { call, id } => self.on_playback_finished(call, id, now),
            Input::RecordingDone { call, stored } => self.on_recording_done(call, stored, now),
            Input::MediaFailed { call } => {
                // Another program holds one of these ports: set the pairs aside so no later
                // call picks them (they are tried again every `PORT_RETRY_INTERVAL`).
                if let Some(c) = self.calls.get(&call) {
                    let (a, b) = c.media_ports();
                    let _ = self.ports.mark_bad(a);
                    let _ = self.ports.mark_bad(b);
                }
                self.end_call(call, "media ports could not be bound", now)
            }
        }
        self.drain_transactions(now);
    }

    /// Next output for the driver.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            if matches!(o, Output::Transmit { .. }) {
                self.stats.messages_out += 1;
            }
            return Some(o);
        }
        None
    }

    /// When to call `handle(Input::Timeout)` next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.tx.poll_timeout();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.registrar_deadline);
        consider(self.deadlines.first().map(|(at, _)| *at));
        next
    }

    fn on_message(&mut self, from: Peer, bytes: &[u8], now: Now) {
        if self.is_penalised(from.addr.ip(), now.instant) {
            self.stats.penalised += 1;
            return;
        }
        let framing = match from.transport {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp => Framing::Stream,
        };
        let msg = match sip_msg::parse(bytes, framing) {
            Ok(m) => m,
            Err(e) => {
                debug!(peer = %from.addr, reason = e.reason, "unparseable message");
                match e.partial.as_deref() {
                    Some(Message::Request(r)) if r.method != Method::Ack => {
                        self.reject(r, 400, e.reason, from);
                        self.penalise(from.addr.ip(), now.instant);
                    }
                    _ => self.stats.dropped += 1,
                }
                return;
            }
        };
        self.stats.messages_in += 1;
        match msg {
            Message::Request(req) => {
                if let Err(inv) = req.validate() {
                    debug!(peer = %from.addr, status = inv.status, reason = %inv.reason, "invalid request");
                    if req.method != Method::Ack {
                        self.reject(&req, inv.status, &inv.reason, from);
                    } else {
                        self.stats.dropped += 1;
                    }
                    self.penalise(from.addr.ip(), now.instant);
                    return;
                }
                let req = stamp_received(req, from);
                self.tx.handle_request(req, from, now.instant);
            }
            Message::Response(resp) => {
                // RFC 4475 §3.3.10: never act on a response whose Via we did not write.
                let ours = resp.top_via().is_some_and(|v| {
                    v.branch()
                        .is_some_and(|b| b.starts_with(sip_msg::BRANCH_MAGIC))
                });
                if resp.validate().is_err() || !ours {
                    self.stats.dropped += 1;
                    return;
                }
                self.tx.handle_response(resp, from, now.instant);
            }
        }
    }

    /// Answers a request that failed validation, statelessly, with a Warning saying why.
    fn reject(&mut self, req: &Request, status: u16, why: &str, to: Peer) {
        self.stats.rejected_malformed += 1;
        if req.headers.get(&HeaderName::Via).is_none() {
            return;
        }
        let mut resp = req.make_response(status, reason_phrase(status), Some(&self.rng.hex()));
        let why: String = why
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
            .take(120)
            .collect();
        resp.headers
            .push(HeaderName::Warning, format!("399 centralino \"{why}\""));
        if status == 416 {
            resp.headers
                .push(HeaderName::Other("Accept".into()), "application/sdp");
        }
        self.send_stateless(to, resp.to_bytes());
    }

    pub(crate) fn send_stateless(&mut self, to: Peer, bytes: Vec<u8>) {
        self.out.push_back(Output::Transmit { to, bytes });
    }

    fn is_penalised(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.penalties.get_mut(&ip) {
            Some(p) => match p.banned_until {
                Some(t) if now < t => true,
                Some(_) => {
                    self.penalties.remove(&ip);
                    false
                }
                None => false,
            },
            None => false,
        }
    }

    /// Counts a failure from `ip`; past a threshold the source is ignored for a while. Trunk
    /// addresses are never penalised (the issue: the trunk's traffic is never blocked).
    pub(crate) fn penalise(&mut self, ip: IpAddr, now: Instant) {
        if self.config.trunk_for(ip).is_some() {
            return;
        }
        if self.penalties.len() >= PENALTY_TABLE_MAX && !self.penalties.contains_key(&ip) {
            self.penalties
                .retain(|_, p| p.banned_until.is_some_and(|t| t > now));
            if self.penalties.len() >= PENALTY_TABLE_MAX {
                return;
            }
        }
        let p = self.penalties.entry(ip).or_insert(Penalty {
            failures: 0,
            window_start: now,
            banned_until: None,
        });
        if now.duration_since(p.window_start) > PENALTY_WINDOW {
            p.failures = 0;
            p.window_start = now;
        }
        p.failures += 1;
        if p.failures >= PENALTY_THRESHOLD {
            p.banned_until = Some(now + PENALTY_BAN);
        }
    }

    fn drain_transactions(&mut self, now: Now) {
        while let Some(o) = self.tx.poll_output() {
            match o {
                TxOutput::Transmit { to, bytes } => {
                    self.out.push_back(Output::Transmit { to, bytes })
                }
                TxOutput::Event(ev) => self.on_transaction_event(ev, now),
            }
        }
    }

    fn on_transaction_event(&mut self, ev: TxEvent, now: Now) {
        match ev {
            TxEvent::Request { id, request, from } => {
                // RFC 3261 §8.2.2.3: every request naming an extension we lack gets 420.
                let unsupported = crate::call::unsupported_options(&request);
                if !unsupported.is_empty() {
                    let mut resp =
                        request.make_response(420, "Bad Extension", Some(&self.rng.hex()));
                    resp.headers
                        .push(HeaderName::Unsupported, unsupported.join(", "));
                    self.tx.send_response(id, resp, now.instant);
                    return;
                }
                let in_dialog = request
                    .to()
                    .and_then(|t| t.tag().map(str::to_owned))
                    .is_some();
                if in_dialog {
                    self.in_dialog_request(id, request, from, now);
                    return;
                }
                match request.method {
                    Method::Register => self.on_register(id, request, from, now),
                    Method::Options => {
                        let mut resp = request.make_response(200, "OK", Some(&self.rng.hex()));
                        self.add_capabilities(&mut resp);
                        self.tx.send_response(id, resp, now.instant);
                    }
                    Method::Invite => self.on_invite(id, request, from, now),
                    Method::Bye
                    | Method::Info
                    | Method::Update
                    | Method::Prack
                    | Method::Notify => {
                        let resp = request.make_response(
                            481,
                            "Call/Transaction Does Not Exist",
                            Some(&self.rng.hex()),
                        );
                        self.tx.send_response(id, resp, now.instant);
                    }
                    Method::Extension(_) => {
                        let mut resp =
                            request.make_response(501, "Not Implemented", Some(&self.rng.hex()));
                        self.add_capabilities(&mut resp);
                        self.tx.send_response(id, resp, now.instant);
                    }
                    _ => {
                        let mut resp =
                            request.make_response(405, "Method Not Allowed", Some(&self.rng.hex()));
                        self.add_capabilities(&mut resp);
                        self.tx.send_response(id, resp, now.instant);
                    }
                }
            }
            TxEvent::Ack { request, from } => self.on_ack(request, from, now),
            TxEvent::Cancelled { invite } => self.on_cancelled(invite, now),
            TxEvent::Response { id, response } => self.on_response(id, response, now),
            TxEvent::Timeout { id } => self.on_client_timeout(id, now),
            TxEvent::StrayResponse { response, from } => self.on_stray_2xx(response, from),
            TxEvent::AckTimeout { id, .. } => self.on_ack_timeout(id, now),
        }
    }

    pub(crate) fn add_capabilities(&self, resp: &mut Response) {
        resp.headers.push(
            HeaderName::Allow,
            "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE",
        );
        resp.headers.push(
            HeaderName::Accept,
            "application/sdp, application/dtmf-relay, application/dtmf",
        );
        resp.headers.push(HeaderName::Supported, "timer");
        resp.headers.push(HeaderName::Server, "Centralino");
    }

    /// REGISTER (RFC 3261 §10.3) with digest (RFC 7616/8760).
    fn on_register(&mut self, id: ServerTxId, req: Request, from: Peer, now: Now) {
        let Some(aor) = req.to().and_then(|t| t.uri.user().map(str::to_owned)) else {
            let resp = req.make_response(400, "Bad Request", Some(&self.rng.hex()));
            self.tx.send_response(id, resp, now.instant);
            return;
        };
        let config = Arc::clone(&self.config);
        let auth_value = req
            .headers
            .get(&HeaderName::Authorization)
            .map(str::to_owned);
        let verified = match auth_value {
            None => Err(registrar::AuthFailure::Missing),
            Some(v) => self.auth.verify(
                &v,
                "REGISTER",
                |user| config.extensions.get(user).map(|e| &e.credentials),
                now.instant,
            ),
        };
        let authenticated = match verified {
            Ok(a) => a,
            Err(failure) => {
                let stale = matches!(failure, registrar::AuthFailure::Stale);
                if !matches!(
                    failure,
                    registrar::AuthFailure::Missing | registrar::AuthFailure::Stale
                ) {
                    self.stats.auth_failures += 1;
                    self.penalise(from.addr.ip(), now.instant);
                }
                let mut resp = req.make_response(401, "Unauthorized", Some(&self.rng.hex()));
                for c in self.challenges(&req, now, stale) {
                    resp.headers.push(HeaderName::WwwAuthenticate, c);
                }
                self.tx.send_response(id, resp, now.instant);
                return;
            }
        };
        let star = req
            .headers
            .get(&HeaderName::Contact)
            .is_some_and(|c| c.trim() == "*");
        let mut contacts = Vec::new();
        if !star {
            for c in req.headers.values(&HeaderName::Contact).unwrap_or_default() {
                match NameAddr::parse(c) {
                    Ok(na) => contacts.push(registrar::ContactSpec {
                        uri: na.uri.to_string(),
                        expires_param: na
                            .param("expires")
                            .and_then(|e| sip_msg::parse_u32(e, u32::MAX as u64)),
                        q: na.param("q").and_then(registrar::QValue::parse),
                        instance: na.param("+sip.instance").map(str::to_owned),
                    }),
                    Err(_) => {
                        let resp = req.make_response(400, "Bad Contact", Some(&self.rng.hex()));
                        self.tx.send_response(id, resp, now.instant);
                        return;
                    }
                }
            }
        }
        let expires_header = req
            .headers
            .get(&HeaderName::Expires)
            .and_then(|e| sip_msg::parse_u32(e, u32::MAX as u64));
        let cseq = req.cseq().map_or(0, |c| c.seq);
        let register = registrar::RegisterRequest {
            call_id: req.call_id().unwrap_or_default().to_owned(),
            cseq,
            contacts,
            star,
            expires_header,
            source: from.addr,
            transport: transport_name(from.transport).to_owned(),
        };
        match self
            .registrar
            .apply_register(&aor, &authenticated, register, now.instant, unix(now))
        {
            Ok(outcome) => {
                self.stats.registrations += 1;
                let mut resp = req.make_response(200, "OK", Some(&self.rng.hex()));
                for c in &outcome.contacts {
                    resp.headers.push(HeaderName::Contact, c.header_value());
                }
                resp.headers.push(
                    HeaderName::Other("Date".into()),
                    now.wall.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
                );
                self.tx.send_response(id, resp, now.instant);
                self.persist(outcome.changes);
            }
            Err(e) => {
                let status = e.status_code();
                let mut resp =
                    req.make_response(status, reason_phrase(status), Some(&self.rng.hex()));
                if let registrar::RegisterError::IntervalTooBrief { min_expires } = e {
                    resp.headers
                        .push(HeaderName::MinExpires, min_expires.to_string());
                }
                self.tx.send_response(id, resp, now.instant);
            }
        }
    }

    /// Digest challenges in the configured order (RFC 8760 §2.4: most preferred first; SIPp
    /// and many desk phones only read the first, hence the setting). Clients listed in
    /// `md5_only_user_agents` get MD5 alone: baresip 1.0 (Debian bookworm) abandons the whole
    /// registration when any challenge names an algorithm it lacks, against RFC 8760 §2.4.
    pub(crate) fn challenges(&mut self, req: &Request, now: Now, stale: bool) -> Vec<String> {
        let offered = self.auth.challenge(now.instant, stale);
        let user_agent = req.headers.get(&HeaderName::UserAgent).unwrap_or("");
        let md5_only = self
            .config
            .md5_only_user_agents
            .iter()
            .any(|ua| !ua.is_empty() && user_agent.contains(ua.as_str()));
        let mut out = Vec::with_capacity(2);
        for algorithm in &self.config.digest_algorithms {
            if md5_only && algorithm != "MD5" {
                continue;
            }
            let tag = format!("algorithm={algorithm},");
            out.extend(offered.iter().filter(|c| c.contains(&tag)).cloned());
        }
        out
    }

    pub(crate) fn new_call_key(&mut self) -> CallKey {
        let k = CallKey(self.next_call);
        self.next_call += 1;
        k
    }

    /// A fresh RFC 3261 branch (magic cookie + 64 random bits).
    pub(crate) fn new_branch(&mut self) -> String {
        format!("{}{}", sip_msg::BRANCH_MAGIC, self.rng.hex())
    }

    /// Our Contact for messages over `transport`.
    pub(crate) fn contact_value(&self, transport: Transport) -> String {
        format!(
            "<sip:centralino@{};transport={}>",
            self.local_host(),
            transport_name(transport).to_ascii_lowercase()
        )
    }

    pub(crate) fn local_host(&self) -> String {
        match self.settings.advertised_ip {
            IpAddr::V4(ip) => format!("{ip}:{}", self.settings.sip_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.settings.sip_port),
        }
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: the top Via of a received request learns where it really
/// came from (`received` when the sent-by host differs, `rport` filled in when asked), so every
/// response carries it back.
fn stamp_received(mut req: Request, from: Peer) -> Request {
    let Some(pos) = req.headers.0.iter().position(|h| h.name == HeaderName::Via) else {
        return req;
    };
    let Some(values) = sip_msg::syntax::split_top_level(&req.headers.0[pos].value, b',') else {
        return req;
    };
    let Some((first, rest)) = values.split_first() else {
        return req;
    };
    let Ok(mut via) = sip_msg::Via::parse(first) else {
        return req;
    };
    let ip = from.addr.ip().to_string();
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let mut changed = false;
    if host != ip {
        via.set_param("received", Some(&ip));
        changed = true;
    }
    if via.has_param("rport") && via.param("rport").is_none() {
        via.set_param("rport", Some(&from.addr.port().to_string()));
        changed = true;
    }
    if changed {
        let mut value = via.to_string();
        for r in rest {
            value.push_str(", ");
            value.push_str(r.trim());
        }
        req.headers.0[pos].value = value;
    }
    req
}

/// Wall-clock Unix seconds (never negative for any instant a switch runs at).
pub(crate) fn unix(now: Now) -> u64 {
    u64::try_from(now.wall.as_second()).unwrap_or(0)
}

pub(crate) fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

/// The standard reason phrase of a status code (RFC 3261 §21).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        603 => "Decline",
        _ => "Unknown",
    }
}
