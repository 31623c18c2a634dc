//! The user agent core shared by [`crate::Phone`] and [`crate::Trunk`]: one UDP socket, a
//! bounded receive loop with minimal retransmission handling, and dialogs ([`Call`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sdp::{Negotiated, SessionDescription};
use sip_msg::{Framing, HeaderName, Message, Method, NameAddr, Request, Response, Uri};
use tokio::net::UdpSocket;

use crate::error::HarnessError;
use crate::rtp::RtpLeg;
use crate::transcript::{Direction, Transcript};

/// How often an unanswered request (or our unacknowledged 2xx) is sent again. A fixed
/// interval rather than RFC 3261's doubling Timer A: enough for loopback tests.
const RESEND_INTERVAL: Duration = Duration::from_millis(500);
/// How long a wait lasts unless the agent was given another timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// 16 hex digits, different on every call in this process and across processes: for tags,
/// branches, Call-IDs and SSRCs. Not cryptographic.
pub fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 over counter, time and process id.
    let mut z =
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ nanos ^ (u64::from(std::process::id()) << 40);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

/// A request we sent and resend until any response with its branch arrives.
#[derive(Debug)]
struct Outstanding {
    branch: String,
    method: Method,
    bytes: Vec<u8>,
    to: SocketAddr,
    next: Instant,
}

/// Our 2xx to an INVITE, resent until the ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct Unacknowledged {
    call_id: String,
    bytes: Vec<u8>,
    to: SocketAddr,
    next: Instant,
}

/// A message that arrived and passed the retransmission filter.
#[derive(Debug)]
struct Inbound {
    message: Message,
    from: SocketAddr,
}

/// One dialog (RFC 3261 §12) plus its media: an outgoing call for a trunk, an incoming one for
/// a phone.
#[derive(Debug)]
pub struct Call {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag, once known.
    pub remote_tag: Option<String>,
    /// Our name-addr in From/To, without tag.
    pub local_uri: String,
    /// The peer's name-addr, without tag.
    pub remote_uri: String,
    /// Request-URI for requests inside the dialog (the peer's Contact).
    pub remote_target: String,
    /// Our last CSeq number inside the dialog.
    pub local_cseq: u32,
    /// Where in-dialog requests go (the address the dialog's INVITE came from or went to).
    pub peer: SocketAddr,
    /// The INVITE that created the dialog (ours for a trunk, the switch's for a phone).
    pub invite: Request,
    /// Statuses of every response to the INVITE, in order (received or sent).
    pub statuses: Vec<u16>,
    /// Our SDP (offer for a trunk, answer for a phone).
    pub local_sdp: Option<SessionDescription>,
    /// The peer's SDP (answer for a trunk, offer for a phone).
    pub remote_sdp: Option<SessionDescription>,
    /// The offer/answer outcome.
    pub negotiated: Option<Negotiated>,
    /// The call's RTP.
    pub rtp: RtpLeg,
    /// True once a BYE was sent or received.
    pub ended: bool,
}

impl Call {
    /// The top Via branch of the INVITE.
    pub fn invite_branch(&self) -> String {
        self.invite
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The last status seen for the INVITE.
    pub fn last_status(&self) -> Option<u16> {
        self.statuses.last().copied()
    }

    fn request(&mut self, via: String, method: Method) -> Request {
        let uri = Uri::parse(&self.remote_target)
            .or_else(|_| Uri::parse("sip:invalid"))
            .unwrap_or_else(|_| unreachable!("constant URI parses"));
        let mut req = Request::new(method.clone(), &uri);
        let h = &mut req.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("{};tag={}", self.local_uri, self.local_tag),
        );
        h.push(
            HeaderName::To,
            match &self.remote_tag {
                Some(t) => format!("{};tag={t}", self.remote_uri),
                None => self.remote_uri.clone(),
            },
        );
        h.push(HeaderName::CallId, self.call_id.clone());
        if method == Method::Ack {
            let seq = self.invite.cseq().map_or(1, |c| c.seq);
            h.push(HeaderName::CSeq, format!("{seq} ACK"));
        } else {
            self.local_cseq += 1;
            h.push(HeaderName::CSeq, format!("{} {method}", self.local_cseq));
        }
        req
    }
}

/// Strips the tag from a name-addr.
pub(crate) fn without_tag(na: &NameAddr) -> String {
    let mut na = na.clone();
    na.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    na.to_string()
}

fn branch_of_request(r: &Request) -> String {
    r.top_via()
        .and_then(|v| v.branch().map(str::to_owned))
        .unwrap_or_default()
}

fn branch_of_response(r: &Response) -> String {
    r.top_via()
        .and_then(|v| v.branch().map(str::to_owned))
        .unwrap_or_default()
}

/// A SIP user agent on one UDP socket, talking to one switch.
#[derive(Debug)]
pub struct UserAgent {
    name: String,
    socket: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    domain: String,
    transcript: Transcript,
    timeout: Duration,
    backlog: VecDeque<Inbound>,
    outstanding: Vec<Outstanding>,
    unacknowledged: Vec<Unacknowledged>,
    /// INVITEs we sent, by branch, with their destination: to ACK a failure response.
    sent_invites: HashMap<String, (Request, SocketAddr)>,
    /// Our last response to each request received, by (branch, method): for retransmissions.
    responded: HashMap<(String, String), (Vec<u8>, SocketAddr, u16)>,
    seen_requests: HashSet<(String, String)>,
    seen_responses: HashSet<(String, String, u16)>,
    /// ACKs we sent, by "Call-ID CSeq", resent when the response they acknowledge repeats.
    acks: HashMap<String, (Vec<u8>, SocketAddr)>,
    /// First-line prefixes of messages to lose on sending, each once (fault injection).
    lose: std::sync::Mutex<Vec<String>>,
    /// Our latest SDP per Call-ID, to answer in-dialog refreshes by ourselves.
    dialog_sdp: HashMap<String, Vec<u8>>,
    /// Whether in-dialog UPDATE, re-INVITE, OPTIONS and INFO are answered 200 automatically.
    auto_answer: bool,
}

impl UserAgent {
    /// Binds a UDP socket on `local_ip` (any port) for an agent called `name` that talks to the
    /// switch at `server`, whose SIP domain (and digest realm) is `domain`.
    pub async fn bind(
        name: &str,
        local_ip: IpAddr,
        server: SocketAddr,
        domain: &str,
        transcript: &Transcript,
    ) -> Result<UserAgent, HarnessError> {
        let io = |source| HarnessError::Io {
            agent: name.to_owned(),
            source,
        };
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(io)?;
        let local = socket.local_addr().map_err(io)?;
        Ok(UserAgent {
            name: name.to_owned(),
            socket,
            local,
            server,
            domain: domain.to_owned(),
            transcript: transcript.clone(),
            timeout: DEFAULT_TIMEOUT,
            backlog: VecDeque::new(),
            outstanding: Vec::new(),
            unacknowledged: Vec::new(),
            sent_invites: HashMap::new(),
            responded: HashMap::new(),
            seen_requests: HashSet::new(),
            seen_responses: HashSet::new(),
            acks: HashMap::new(),
            lose: std::sync::Mutex::new(Vec::new()),
            dialog_sdp: HashMap::new(),
            auto_answer: true,
        })
    }

    /// The agent's name in the transcript and in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The switch's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Points the agent at another switch address (e.g. after a restart on another port).
    pub fn set_server(&mut self, server: SocketAddr) {
        self.server = server;
    }

    /// The SIP domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The shared transcript.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// How long each wait lasts before failing.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets how long each wait lasts before failing.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// A Via value with a fresh branch, and the branch.
    pub fn new_via(&self) -> (String, String) {
        let branch = format!("{}{}", sip_msg::BRANCH_MAGIC, random_hex());
        (
            format!("SIP/2.0/UDP {};branch={branch};rport", self.local),
            branch,
        )
    }

    /// Our Contact URI, with `user`.
    pub fn contact_uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.local)
    }

    pub(crate) fn io_error(&self, source: std::io::Error) -> HarnessError {
        HarnessError::Io {
            agent: self.name.clone(),
            source,
        }
    }

    pub(crate) fn unexpected(
        &self,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> HarnessError {
        HarnessError::Unexpected {
            agent: self.name.clone(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub(crate) fn protocol(&self, why: impl Into<String>) -> HarnessError {
        HarnessError::Protocol {
            agent: self.name.clone(),
            why: why.into(),
        }
    }

    /// Loses the next message this agent sends whose first line starts with `prefix` (e.g.
    /// `"ACK"`, `"SIP/2.0 200"`): it is recorded as lost and not sent; retransmissions are
    /// sent as usual. For testing the peer's retransmission rules.
    pub fn lose_next(&mut self, prefix: &str) {
        self.lose
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(prefix.to_owned());
    }

    /// Sends bytes as they are and records them.
    pub async fn send_bytes(&self, bytes: &[u8], to: SocketAddr) -> Result<(), HarnessError> {
        {
            let mut lose = self
                .lose
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(idx) = lose.iter().position(|p| bytes.starts_with(p.as_bytes())) {
                lose.remove(idx);
                self.transcript
                    .record(&self.name, Direction::Lost, to, bytes);
                return Ok(());
            }
        }
        self.transcript
            .record(&self.name, Direction::Sent, to, bytes);
        self.socket
            .send_to(bytes, to)
            .await
            .map_err(|e| self.io_error(e))?;
        Ok(())
    }

    /// Answers in-dialog UPDATE, re-INVITE (with our latest SDP), OPTIONS and INFO with 200
    /// by itself (on by default), so session refreshes never end a scripted call. The
    /// requests are still handed to waits, for tests that check them.
    pub fn set_auto_answer(&mut self, on: bool) {
        self.auto_answer = on;
    }

    fn remember_sdp(&mut self, headers: &sip_msg::Headers, body: &[u8]) {
        let is_sdp = headers
            .get(&HeaderName::ContentType)
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/sdp"));
        if let (true, false, Some(call_id)) =
            (is_sdp, body.is_empty(), headers.get(&HeaderName::CallId))
        {
            self.dialog_sdp.insert(call_id.to_owned(), body.to_vec());
        }
    }

    /// The automatic 200 for an in-dialog refresh or query (see [`UserAgent::set_auto_answer`]).
    async fn auto_answer(&mut self, req: &Request, from: SocketAddr) -> Result<(), HarnessError> {
        let mut ok = req.make_response(200, "OK", None);
        ok.headers.push(
            HeaderName::Contact,
            format!("<{}>", self.contact_uri("harness")),
        );
        if let Some(se) = req.headers.get(&HeaderName::SessionExpires) {
            // RFC 4028 §9: the UAS echoes the session interval it accepts.
            ok.headers.push(HeaderName::SessionExpires, se.to_owned());
            if se.contains("refresher=uac") {
                ok.headers.push(HeaderName::Require, "timer");
            }
        }
        let offers = !req.body.is_empty() || req.method == Method::Invite;
        if matches!(req.method, Method::Invite | Method::Update)
            && offers
            && let Some(sdp) = req.call_id().and_then(|c| self.dialog_sdp.get(c)).cloned()
        {
            ok.headers.push(HeaderName::ContentType, "application/sdp");
            ok.body = sdp;
        }
        self.send_response(req, &ok, from).await
    }

    /// Sends a request; anything but ACK is resent every 500 ms while we wait, until a response
    /// with its branch arrives.
    pub async fn send_request(
        &mut self,
        req: &Request,
        to: SocketAddr,
    ) -> Result<(), HarnessError> {
        let bytes = req.to_bytes();
        self.send_bytes(&bytes, to).await?;
        self.remember_sdp(&req.headers, &req.body);
        let branch = branch_of_request(req);
        if req.method == Method::Invite {
            self.sent_invites.insert(branch.clone(), (req.clone(), to));
        }
        if req.method != Method::Ack {
            self.outstanding.push(Outstanding {
                branch,
                method: req.method.clone(),
                bytes,
                to,
                next: Instant::now() + RESEND_INTERVAL,
            });
        }
        Ok(())
    }

    /// Stops resending the request with `branch` (e.g. after giving up on it).
    pub fn forget_request(&mut self, branch: &str) {
        self.outstanding.retain(|o| o.branch != branch);
    }

    /// Sends a response to `req` and remembers it, so a retransmitted `req` gets it again; a
    /// 2xx to an INVITE is also resent until the ACK arrives.
    pub async fn send_response(
        &mut self,
        req: &Request,
        resp: &Response,
        to: SocketAddr,
    ) -> Result<(), HarnessError> {
        let bytes = resp.to_bytes();
        self.send_bytes(&bytes, to).await?;
        self.remember_sdp(&resp.headers, &resp.body);
        let key = (branch_of_request(req), req.method.to_string());
        self.responded.insert(key, (bytes.clone(), to, resp.status));
        if req.method == Method::Invite && (200..300).contains(&resp.status) {
            let call_id = req.call_id().unwrap_or_default().to_owned();
            self.unacknowledged.retain(|u| u.call_id != call_id);
            self.unacknowledged.push(Unacknowledged {
                call_id,
                bytes,
                to,
                next: Instant::now() + RESEND_INTERVAL,
            });
        }
        Ok(())
    }

    fn next_resend(&self) -> Option<Instant> {
        self.outstanding
            .iter()
            .map(|o| o.next)
            .chain(self.unacknowledged.iter().map(|u| u.next))
            .min()
    }

    async fn resend_due(&mut self) -> Result<(), HarnessError> {
        let now = Instant::now();
        let mut due = Vec::new();
        for o in self.outstanding.iter_mut().filter(|o| o.next <= now) {
            o.next = now + RESEND_INTERVAL;
            due.push((o.bytes.clone(), o.to));
        }
        for u in self.unacknowledged.iter_mut().filter(|u| u.next <= now) {
            u.next = now + RESEND_INTERVAL;
            due.push((u.bytes.clone(), u.to));
        }
        for (bytes, to) in due {
            self.send_bytes(&bytes, to).await?;
        }
        Ok(())
    }

    /// Applies the retransmission rules to one datagram; `None` if it was absorbed.
    async fn absorb(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
    ) -> Result<Option<Inbound>, HarnessError> {
        self.transcript
            .record(&self.name, Direction::Received, from, bytes);
        let Ok(message) = sip_msg::parse(bytes, Framing::Datagram) else {
            return Ok(None);
        };
        match message {
            Message::Response(resp) => {
                let branch = branch_of_response(&resp);
                let Some(cseq) = resp.cseq() else {
                    return Ok(None);
                };
                self.outstanding
                    .retain(|o| !(o.branch == branch && o.method == cseq.method));
                let is_invite = cseq.method == Method::Invite;
                let ack_key = format!("{} {}", resp.call_id().unwrap_or_default(), cseq.seq);
                if !self.seen_responses.insert((
                    branch.clone(),
                    cseq.method.to_string(),
                    resp.status,
                )) {
                    // A repeated final response to an INVITE means our ACK was lost.
                    if is_invite
                        && resp.status >= 200
                        && let Some((ack, to)) = self.acks.get(&ack_key).cloned()
                    {
                        self.send_bytes(&ack, to).await?;
                    }
                    return Ok(None);
                }
                if is_invite && resp.status >= 300 {
                    // RFC 3261 §17.1.1.3: the client transaction ACKs a failure itself.
                    if let Some((invite, to)) = self.sent_invites.get(&branch).cloned() {
                        let ack = ack_for_failure(&invite, &resp);
                        let bytes = ack.to_bytes();
                        self.send_bytes(&bytes, to).await?;
                        self.acks.insert(ack_key, (bytes, to));
                    }
                }
                Ok(Some(Inbound {
                    message: Message::Response(resp),
                    from,
                }))
            }
            Message::Request(req) => {
                let key = (branch_of_request(&req), req.method.to_string());
                if req.method == Method::Ack {
                    let call_id = req.call_id().unwrap_or_default();
                    self.unacknowledged.retain(|u| u.call_id != call_id);
                }
                if !self.seen_requests.insert(key.clone()) {
                    if let Some((bytes, to, _)) = self.responded.get(&key).cloned() {
                        self.send_bytes(&bytes, to).await?;
                    }
                    return Ok(None);
                }
                let in_dialog = req.to().is_some_and(|t| t.tag().is_some());
                if self.auto_answer
                    && in_dialog
                    && matches!(
                        req.method,
                        Method::Update | Method::Invite | Method::Options | Method::Info
                    )
                {
                    self.auto_answer(&req, from).await?;
                }
                if req.method == Method::Cancel {
                    // RFC 3261 §9.2: a CANCEL after our final response to the INVITE has no
                    // effect but is still answered 200. It is passed on too, for the record.
                    let invite_key = (key.0.clone(), Method::Invite.to_string());
                    if self
                        .responded
                        .get(&invite_key)
                        .is_some_and(|(_, _, status)| *status >= 200)
                    {
                        let ok = req.make_response(200, "OK", Some(&random_hex()));
                        self.send_response(&req, &ok, from).await?;
                    }
                }
                Ok(Some(Inbound {
                    message: Message::Request(req),
                    from,
                }))
            }
        }
    }

    /// Waits up to the agent's timeout for a message `pick` accepts; messages it does not
    /// accept are kept for later waits. `what` names the wait in the error.
    pub async fn wait_for(
        &mut self,
        what: &str,
        pick: impl FnMut(&Message) -> bool,
    ) -> Result<(Message, SocketAddr), HarnessError> {
        let timeout = self.timeout;
        self.wait_for_within(what, timeout, pick).await
    }

    /// [`UserAgent::wait_for`] with an explicit timeout.
    pub async fn wait_for_within(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Message) -> bool,
    ) -> Result<(Message, SocketAddr), HarnessError> {
        if let Some(pos) = self.backlog.iter().position(|i| pick(&i.message))
            && let Some(i) = self.backlog.remove(pos)
        {
            return Ok((i.message, i.from));
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(HarnessError::Timeout {
                    agent: self.name.clone(),
                    what: what.to_owned(),
                    after: timeout,
                });
            }
            let wake = self.next_resend().map_or(deadline, |t| t.min(deadline));
            match tokio::time::timeout_at(
                tokio::time::Instant::from_std(wake),
                self.socket.recv_from(&mut buf),
            )
            .await
            {
                Err(_) => self.resend_due().await?,
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) => {}
                Ok(Err(e)) => return Err(self.io_error(e)),
                Ok(Ok((n, from))) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if let Some(inbound) = self.absorb(&bytes, from).await? {
                        if pick(&inbound.message) {
                            return Ok((inbound.message, inbound.from));
                        }
                        self.backlog.push_back(inbound);
                    }
                }
            }
        }
    }

    /// Puts a message back, first in line for the next wait.
    pub(crate) fn requeue(&mut self, message: Message, from: SocketAddr) {
        self.backlog.push_front(Inbound { message, from });
    }

    /// Keeps handling retransmissions for `duration` without waiting for anything.
    pub async fn idle(&mut self, duration: Duration) -> Result<(), HarnessError> {
        match self.wait_for_within("nothing", duration, |_| false).await {
            Err(HarnessError::Timeout { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Waits for a response (of any status) with `branch`.
    pub async fn wait_response(
        &mut self,
        branch: &str,
        what: &str,
    ) -> Result<Response, HarnessError> {
        let (msg, _) = self
            .wait_for(
                what,
                |m| matches!(m, Message::Response(r) if branch_of_response(r) == branch),
            )
            .await?;
        match msg {
            Message::Response(r) => Ok(r),
            Message::Request(_) => unreachable!("the pick accepts only responses"),
        }
    }

    /// Waits for a final response with `branch`, skipping provisionals; stops resending the
    /// request either way.
    pub async fn wait_final_response(
        &mut self,
        branch: &str,
        what: &str,
    ) -> Result<Response, HarnessError> {
        let result = self.wait_for(what, |m| matches!(m, Message::Response(r) if r.status >= 200 && branch_of_response(r) == branch)).await;
        self.forget_request(branch);
        match result? {
            (Message::Response(r), _) => Ok(r),
            (Message::Request(_), _) => unreachable!("the pick accepts only responses"),
        }
    }

    /// Waits for a request with `method`, in the dialog `call_id` if given.
    pub async fn wait_request(
        &mut self,
        method: Method,
        call_id: Option<&str>,
        what: &str,
    ) -> Result<(Request, SocketAddr), HarnessError> {
        let (msg, from) = self
            .wait_for(what, |m| matches!(m, Message::Request(r) if r.method == method && call_id.is_none_or(|c| r.call_id() == Some(c))))
            .await?;
        match msg {
            Message::Request(r) => Ok((r, from)),
            Message::Response(_) => unreachable!("the pick accepts only requests"),
        }
    }

    /// Sends OPTIONS to the switch and waits (at most `timeout`) for the final response.
    pub async fn options(&mut self, timeout: Duration) -> Result<Response, HarnessError> {
        let uri = Uri::parse(&format!("sip:{}", self.server))
            .map_err(|e| self.protocol(e.to_string()))?;
        let mut req = Request::new(Method::Options, &uri);
        let (via, branch) = self.new_via();
        let h = &mut req.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!("<sip:harness@{}>;tag={}", self.local, random_hex()),
        );
        h.push(HeaderName::To, format!("<sip:{}>", self.server));
        h.push(HeaderName::CallId, format!("{}@harness", random_hex()));
        h.push(HeaderName::CSeq, "1 OPTIONS");
        let server = self.server;
        self.send_request(&req, server).await?;
        let saved = std::mem::replace(&mut self.timeout, timeout);
        let result = self
            .wait_final_response(&branch, "the final response to OPTIONS")
            .await;
        self.timeout = saved;
        result
    }

    /// Sends BYE in `call` and waits for its final response (returned; 200 expected).
    pub async fn hangup(&mut self, call: &mut Call) -> Result<Response, HarnessError> {
        let (via, branch) = self.new_via();
        let bye = call.request(via, Method::Bye);
        self.send_request(&bye, call.peer).await?;
        call.ended = true;
        let resp = self
            .wait_final_response(
                &branch,
                &format!("the final response to our BYE (Call-ID {})", call.call_id),
            )
            .await?;
        if resp.status != 200 {
            return Err(self.unexpected("200 to BYE", format!("{} {}", resp.status, resp.reason)));
        }
        Ok(resp)
    }

    /// Waits for BYE in `call` and answers 200.
    pub async fn wait_bye(&mut self, call: &mut Call) -> Result<Request, HarnessError> {
        let what = format!("BYE in call {}", call.call_id);
        let (bye, from) = self
            .wait_request(Method::Bye, Some(&call.call_id.clone()), &what)
            .await?;
        let resp = bye.make_response(200, "OK", None);
        self.send_response(&bye, &resp, from).await?;
        call.ended = true;
        Ok(bye)
    }

    /// Sends an in-dialog request with a body and waits for its final response.
    pub async fn request_in_dialog(
        &mut self,
        call: &mut Call,
        method: Method,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, HarnessError> {
        let (via, branch) = self.new_via();
        let mut req = call.request(via, method.clone());
        req.headers.push(
            HeaderName::Contact,
            format!("<{}>", self.contact_uri("harness")),
        );
        if let Some(ct) = content_type {
            req.headers.push(HeaderName::ContentType, ct);
        }
        req.body = body.to_vec();
        self.send_request(&req, call.peer).await?;
        self.wait_final_response(&branch, &format!("the final response to our {method}"))
            .await
    }

    /// Sends one DTMF digit as SIP INFO (`application/dtmf-relay`, `Signal=4\r\nDuration=160\r\n`)
    /// and waits for the final response (returned).
    pub async fn send_info_dtmf(
        &mut self,
        call: &mut Call,
        digit: char,
        duration_ms: u32,
    ) -> Result<Response, HarnessError> {
        let body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n");
        self.request_in_dialog(
            call,
            Method::Info,
            Some("application/dtmf-relay"),
            body.as_bytes(),
        )
        .await
    }

    /// Sends ACK for a 2xx to our INVITE in `call` (a new transaction, RFC 3261 §13.2.2.4).
    pub(crate) async fn ack_2xx(&mut self, call: &mut Call) -> Result<(), HarnessError> {
        let seq = call.invite.cseq().map_or(1, |c| c.seq);
        self.ack_2xx_seq(call, seq).await
    }

    /// Sends ACK for a 2xx to the INVITE with CSeq `seq` in `call`.
    async fn ack_2xx_seq(&mut self, call: &mut Call, seq: u32) -> Result<(), HarnessError> {
        let (via, _) = self.new_via();
        let mut ack = call.request(via, Method::Ack);
        ack.headers.set(HeaderName::CSeq, format!("{seq} ACK"));
        let bytes = ack.to_bytes();
        self.send_bytes(&bytes, call.peer).await?;
        self.acks
            .insert(format!("{} {seq}", call.call_id), (bytes, call.peer));
        Ok(())
    }

    /// Sends a re-INVITE in `call` offering our last SDP with `direction` (hold is
    /// `SendOnly`, resume `SendRecv`), ACKs a 2xx and applies its SDP answer; returns the
    /// final response.
    pub async fn reinvite(
        &mut self,
        call: &mut Call,
        direction: sdp::Direction,
    ) -> Result<Response, HarnessError> {
        let Some(previous) = call.local_sdp.clone() else {
            return Err(self.protocol("no SDP of ours to offer again"));
        };
        let mut origin = previous.origin.clone();
        let offer = sdp::reoffer(&previous, &mut origin, direction);
        let (via, branch) = self.new_via();
        let mut req = call.request(via, Method::Invite);
        let seq = call.local_cseq;
        req.headers.push(
            HeaderName::Contact,
            format!("<{}>", self.contact_uri("harness")),
        );
        req.headers.push(HeaderName::ContentType, "application/sdp");
        req.body = offer.to_bytes();
        self.send_request(&req, call.peer).await?;
        let resp = self
            .wait_final_response(&branch, "the final response to our re-INVITE")
            .await?;
        if (200..300).contains(&resp.status) {
            self.ack_2xx_seq(call, seq).await?;
            let answer = SessionDescription::parse(&resp.body)
                .map_err(|e| self.protocol(format!("bad SDP answer to re-INVITE: {e}")))?;
            let negotiated = sdp::accept_answer(&offer, &answer)
                .map_err(|e| self.protocol(format!("unusable SDP answer to re-INVITE: {e}")))?;
            call.rtp.set_remote(negotiated.remote);
            call.local_sdp = Some(offer);
            call.remote_sdp = Some(answer);
            call.negotiated = Some(negotiated);
        }
        Ok(resp)
    }

    /// Waits for the ACK of `call`'s INVITE (to a 2xx or a failure).
    pub(crate) async fn wait_ack(&mut self, call: &Call) -> Result<Request, HarnessError> {
        let what = format!("ACK for call {}", call.call_id);
        let call_id = call.call_id.clone();
        let result = self.wait_request(Method::Ack, Some(&call_id), &what).await;
        self.unacknowledged.retain(|u| u.call_id != call_id);
        Ok(result?.0)
    }
}

/// The ACK for a 3xx-6xx (RFC 3261 §17.1.1.3): same branch, Request-URI, From and Call-ID as
/// the INVITE, To from the response.
fn ack_for_failure(invite: &Request, resp: &Response) -> Request {
    let uri = invite.uri().unwrap_or_else(|_| {
        Uri::parse("sip:invalid").unwrap_or_else(|_| unreachable!("constant URI parses"))
    });
    let mut ack = Request::new(Method::Ack, &uri);
    let h = &mut ack.headers;
    if let Some(v) = invite.headers.get(&HeaderName::Via) {
        h.push(HeaderName::Via, v.to_owned());
    }
    h.push(HeaderName::MaxForwards, "70");
    if let Some(v) = invite.headers.get(&HeaderName::From) {
        h.push(HeaderName::From, v.to_owned());
    }
    if let Some(v) = resp.headers.get(&HeaderName::To) {
        h.push(HeaderName::To, v.to_owned());
    }
    if let Some(v) = invite.headers.get(&HeaderName::CallId) {
        h.push(HeaderName::CallId, v.to_owned());
    }
    let seq = invite.cseq().map_or(1, |c| c.seq);
    h.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session refresh inside a dialog is answered 200 by itself, echoing Session-Expires.
    #[tokio::test]
    async fn in_dialog_update_is_answered_automatically() {
        let transcript = Transcript::new();
        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let peer_addr = peer.local_addr().expect("addr");
        let mut ua = UserAgent::bind(
            "ua",
            "127.0.0.1".parse().unwrap(),
            peer_addr,
            "example",
            &transcript,
        )
        .await
        .expect("bind");
        let update = format!(
            "UPDATE sip:ua@{} SIP/2.0\r\nVia: SIP/2.0/UDP {peer_addr};branch=z9hG4bKu1\r\nFrom: <sip:sw@example>;tag=a\r\nTo: <sip:ua@example>;tag=b\r\nCall-ID: c1\r\nCSeq: 5 UPDATE\r\nSession-Expires: 90;refresher=uac\r\nContent-Length: 0\r\n\r\n",
            ua.local_addr()
        );
        peer.send_to(update.as_bytes(), ua.local_addr())
            .await
            .expect("send");
        ua.idle(Duration::from_millis(200)).await.expect("idle");
        let mut buf = vec![0u8; 4096];
        let (n, _) = tokio::time::timeout(Duration::from_secs(1), peer.recv_from(&mut buf))
            .await
            .expect("a response")
            .expect("recv");
        let Ok(Message::Response(resp)) = sip_msg::parse(&buf[..n], Framing::Datagram) else {
            panic!("not a response")
        };
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.headers.get(&HeaderName::SessionExpires),
            Some("90;refresher=uac")
        );
        assert_eq!(resp.headers.get(&HeaderName::Require), Some("timer"));
        let (update, _) = ua
            .wait_request(Method::Update, Some("c1"), "the UPDATE, handed on")
            .await
            .expect("kept for waits");
        assert_eq!(update.cseq().map(|c| c.seq), Some(5));
    }
}
