//! [`TransactionLayer`]: the index of every transaction, request/response matching
//! (RFC 3261 §17.1.3, §17.2.3), CANCEL handling (§9.2) and the timer sweep.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sip_msg::{BRANCH_MAGIC, Method, Request, Response, Via};

use crate::client::ClientTransaction;
use crate::server::ServerTransaction;
use crate::timer::{Owner, TimerQueue};
use crate::{ClientTxId, Peer, ServerTxId, TimerConfig, TxEvent, TxOutput};

/// RFC 3261 §17.1.1.2: Timer D is "at least 32 seconds" on unreliable transports.
const TIMER_D: Duration = Duration::from_secs(32);

/// Whether a transaction goes on after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The transaction lives on.
    Continue,
    /// The transaction reached Terminated: remove it.
    Terminate,
}

/// Client matching key (RFC 3261 §17.1.3): top Via branch and CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    branch: String,
    method: Method,
}

/// Server matching key (RFC 3261 §17.2.3): branch, sent-by and method, ACK counting as INVITE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ServerKey {
    branch: String,
    host: String,
    port: Option<u16>,
    method: Method,
}

impl ServerKey {
    /// The key of a request: `None` without a parseable top Via and CSeq.
    fn of(request: &Request) -> Option<ServerKey> {
        let via = request.top_via()?;
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        let branch = match via.branch() {
            Some(b) if b.starts_with(BRANCH_MAGIC) => b.to_owned(),
            // DEVIATION(RFC 3261 §17.2.3): RFC 2543 peers (no magic cookie) get a simplified
            // key of Call-ID, From tag and CSeq number instead of the full rule.
            _ => {
                let cseq = request.cseq()?;
                let from_tag = request
                    .from()
                    .and_then(|f| f.tag().map(str::to_owned))
                    .unwrap_or_default();
                format!(
                    "rfc2543\0{}\0{}\0{}",
                    request.call_id()?,
                    from_tag,
                    cseq.seq
                )
            }
        };
        Some(ServerKey {
            branch,
            host: via.host.to_ascii_lowercase(),
            port: via.port,
            method,
        })
    }

    fn with_method(&self, method: Method) -> ServerKey {
        ServerKey {
            method,
            ..self.clone()
        }
    }

    /// A To tag for answers the layer makes itself without a TU tag (CANCEL 481/200): derived
    /// from the key (FNV-1a) so retransmitted answers carry the same tag.
    fn derived_tag(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.branch.bytes().chain(self.host.bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("tx{hash:016x}")
    }
}

/// What every transaction needs while handling an input: timers, config and the output queue.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: TimerConfig,
    pub(crate) timers: TimerQueue,
    out: VecDeque<TxOutput>,
}

impl Shared {
    pub(crate) fn transmit(&mut self, to: Peer, bytes: Vec<u8>) {
        self.out.push_back(TxOutput::Transmit { to, bytes });
    }

    pub(crate) fn emit(&mut self, event: TxEvent) {
        self.out.push_back(TxOutput::Event(event));
    }

    /// T1, never zero (a zero interval would retransmit forever within one instant).
    pub(crate) fn t1(&self) -> Duration {
        self.config.t1.max(Duration::from_millis(1))
    }

    /// T2, never below T1 (a zero cap would retransmit forever within one instant).
    pub(crate) fn t2(&self) -> Duration {
        self.config.t2.max(self.t1())
    }

    pub(crate) fn timer_d(&self) -> Duration {
        TIMER_D
    }
}

/// Every client and server transaction of the switch, sans-IO: messages, TU calls and instants
/// in; bytes to send, TU events and the next deadline out.
#[derive(Debug)]
pub struct TransactionLayer {
    shared: Shared,
    clients: HashMap<ClientTxId, ClientTransaction>,
    client_index: HashMap<ClientKey, ClientTxId>,
    servers: HashMap<ServerTxId, ServerTransaction>,
    server_index: HashMap<ServerKey, ServerTxId>,
    /// INVITE server transactions by (Call-ID, CSeq number), for the ACK of a 2xx.
    invite_index: HashMap<(String, u32), ServerTxId>,
    next_client: u64,
    next_server: u64,
}

impl TransactionLayer {
    /// A layer with no transactions, using `config`'s T1, T2 and T4.
    pub fn new(config: TimerConfig) -> Self {
        TransactionLayer {
            shared: Shared {
                config,
                timers: TimerQueue::default(),
                out: VecDeque::new(),
            },
            clients: HashMap::new(),
            client_index: HashMap::new(),
            servers: HashMap::new(),
            server_index: HashMap::new(),
            invite_index: HashMap::new(),
            next_client: 0,
            next_server: 0,
        }
    }

    /// Feed a parsed, validated request received from `from`.
    ///
    /// A new request opens a server transaction and is handed to the TU as
    /// [`TxEvent::Request`]; a retransmission is absorbed (the last response is resent); an
    /// ACK for a 3xx-6xx is absorbed; any other ACK becomes [`TxEvent::Ack`]; a CANCEL is
    /// answered here (RFC 3261 §9.2) and may raise [`TxEvent::Cancelled`].
    pub fn handle_request(&mut self, request: Request, from: Peer, now: Instant) {
        let Some(key) = ServerKey::of(&request) else {
            tracing::debug!(method = %request.method, "request without usable Via/CSeq dropped");
            return;
        };
        if let Some(&id) = self.server_index.get(&key) {
            // invariant: the index holds only live transactions.
            let tx = self
                .servers
                .get_mut(&id)
                .expect("server index points at a live transaction");
            let flow = if request.method == Method::Ack {
                tx.on_ack(request, from, &mut self.shared, now)
            } else {
                tx.on_retransmission(&mut self.shared);
                Flow::Continue
            };
            if flow == Flow::Terminate {
                self.remove_server(id);
            }
            return;
        }
        match request.method {
            // RFC 3261 §17.2.3: an ACK matching no transaction is for a 2xx; the TU takes it.
            Method::Ack => self.shared.emit(TxEvent::Ack { request, from }),
            Method::Cancel => self.handle_cancel(request, key, from, now),
            _ => {
                let id = self.open_server(key, &request, from, now);
                self.shared.emit(TxEvent::Request { id, request, from });
            }
        }
    }

    fn open_server(
        &mut self,
        key: ServerKey,
        request: &Request,
        from: Peer,
        now: Instant,
    ) -> ServerTxId {
        self.next_server += 1;
        let id = ServerTxId(self.next_server);
        let tx = ServerTransaction::start(id, key.clone(), request, from, &mut self.shared, now);
        if let Some(call_id_cseq) = &tx.call_id_cseq {
            self.invite_index.insert(call_id_cseq.clone(), id);
        }
        self.server_index.insert(key, id);
        self.servers.insert(id, tx);
        id
    }

    /// RFC 3261 §9.2: a CANCEL is its own non-INVITE server transaction, answered here: 200 if
    /// it matches an INVITE server transaction, 481 if not. Only an INVITE still waiting for
    /// its final response is reported to the TU; otherwise the CANCEL has no effect.
    fn handle_cancel(&mut self, cancel: Request, key: ServerKey, from: Peer, now: Instant) {
        let invite = self
            .server_index
            .get(&key.with_method(Method::Invite))
            .copied();
        let matched = invite.and_then(|id| {
            self.servers
                .get(&id)
                .map(|tx| (id, tx.awaits_final_response(), tx.to_tag.clone()))
        });
        let response = match &matched {
            Some((_, _, tag)) => {
                let tag = tag.clone().unwrap_or_else(|| key.derived_tag());
                cancel.make_response(200, "OK", Some(&tag))
            }
            None => cancel.make_response(
                481,
                "Call/Transaction Does Not Exist",
                Some(&key.derived_tag()),
            ),
        };
        let id = self.open_server(key, &cancel, from, now);
        self.send_response(id, response, now);
        if let Some((invite, true, _)) = matched {
            self.shared.emit(TxEvent::Cancelled { invite });
        }
    }

    /// Feed a parsed, validated response received from `from`.
    ///
    /// It is matched by top Via branch and CSeq method (RFC 3261 §17.1.3); an unmatched 2xx to
    /// INVITE becomes [`TxEvent::StrayResponse`], anything else unmatched is dropped.
    pub fn handle_response(&mut self, response: Response, from: Peer, now: Instant) {
        let (Some(via), Some(cseq)) = (response.top_via(), response.cseq()) else {
            tracing::debug!(
                status = response.status,
                "response without usable Via/CSeq dropped"
            );
            return;
        };
        let key = ClientKey {
            branch: via.branch().unwrap_or_default().to_owned(),
            method: cseq.method,
        };
        if let Some(&id) = self.client_index.get(&key) {
            // invariant: the index holds only live transactions.
            let tx = self
                .clients
                .get_mut(&id)
                .expect("client index points at a live transaction");
            if tx.on_response(response, from, &mut self.shared, now) == Flow::Terminate {
                self.remove_client(id);
            }
        } else if (200..300).contains(&response.status) && key.method == Method::Invite {
            self.shared.emit(TxEvent::StrayResponse { response, from });
        } else {
            tracing::debug!(
                status = response.status,
                "response matching no transaction dropped"
            );
        }
    }

    /// Start a client transaction and send `request` to `to`.
    ///
    /// The request must carry its top Via with a fresh `z9hG4bK` branch: the layer never
    /// invents branches. INVITE starts Timers A (unreliable) and B; others E (unreliable) and
    /// F. An ACK is sent without a transaction. A request without a branch, or reusing the
    /// branch of a live transaction of the same method, is a TU bug: it is not sent and an
    /// immediate [`TxEvent::Timeout`] reports it.
    pub fn send_request(&mut self, request: Request, to: Peer, now: Instant) -> ClientTxId {
        self.next_client += 1;
        let id = ClientTxId(self.next_client);
        if request.method == Method::Ack {
            self.shared.transmit(to, request.to_bytes());
            return id;
        }
        let branch = request
            .top_via()
            .as_ref()
            .and_then(Via::branch)
            .map(str::to_owned);
        let Some(branch) = branch.filter(|b| b.starts_with(BRANCH_MAGIC)) else {
            tracing::error!(method = %request.method, "TU sent a request without a z9hG4bK branch");
            self.shared.emit(TxEvent::Timeout { id });
            return id;
        };
        let key = ClientKey {
            branch,
            method: request.method.clone(),
        };
        if self.client_index.contains_key(&key) {
            tracing::error!(method = %request.method, "TU reused the branch of a live transaction");
            self.shared.emit(TxEvent::Timeout { id });
            return id;
        }
        if request.method == Method::Cancel {
            let invite_key = ClientKey {
                method: Method::Invite,
                ..key.clone()
            };
            if let Some(tx) = self
                .client_index
                .get(&invite_key)
                .and_then(|id| self.clients.get_mut(id))
            {
                tx.on_cancel_sent(&mut self.shared, now);
            }
        }
        let tx = ClientTransaction::start(id, key.clone(), request, to, &mut self.shared, now);
        self.client_index.insert(key, id);
        self.clients.insert(id, tx);
        id
    }

    /// Send a response (1xx..6xx) in server transaction `id`.
    ///
    /// For INVITE a 2xx moves the transaction to Accepted (RFC 6026): the layer retransmits
    /// the 2xx (T1 doubling up to T2, unreliable transports only) until [`Self::ack_received`]
    /// or 64*T1, and then reports [`TxEvent::AckTimeout`] if no ACK came. A response for a
    /// transaction that no longer exists, or after a final one, is dropped.
    pub fn send_response(&mut self, id: ServerTxId, response: Response, now: Instant) {
        let Some(tx) = self.servers.get_mut(&id) else {
            tracing::debug!(
                ?id,
                status = response.status,
                "response for an ended server transaction dropped"
            );
            return;
        };
        if tx.send_response(&response, &mut self.shared, now) == Flow::Terminate {
            self.remove_server(id);
        }
    }

    /// The INVITE server transaction for a Call-ID and CSeq number, to match the ACK of a 2xx.
    pub fn find_invite_server(&self, call_id: &str, cseq: u32) -> Option<ServerTxId> {
        // Allocation-free lookups would need a borrowed key type; an ACK is rare enough.
        self.invite_index.get(&(call_id.to_owned(), cseq)).copied()
    }

    /// The TU saw the ACK for the 2xx of INVITE server transaction `id`: stop retransmitting.
    pub fn ack_received(&mut self, id: ServerTxId) {
        if let Some(tx) = self.servers.get_mut(&id) {
            tx.ack_received(&mut self.shared.timers);
        }
    }

    /// Send bytes outside any transaction (the ACK for a 2xx, RFC 3261 §13.2.2.4).
    pub fn send_stateless(&mut self, to: Peer, bytes: Vec<u8>) {
        self.shared.transmit(to, bytes);
    }

    /// The transport could not deliver client transaction `id`'s request (RFC 3261 §17.1.4):
    /// the transaction ends with [`TxEvent::Timeout`].
    pub fn handle_transport_error(&mut self, id: ClientTxId) {
        if self.clients.contains_key(&id) {
            self.remove_client(id);
            self.shared.emit(TxEvent::Timeout { id });
        }
    }

    /// Run every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Timers started while sweeping wait for the next call: bounded work per input.
        let watermark = self.shared.timers.watermark();
        while let Some((owner, timer)) = self.shared.timers.pop_due(now, watermark) {
            match owner {
                Owner::Client(id) => {
                    // invariant: a transaction's timers are stopped when it is removed.
                    let tx = self
                        .clients
                        .get_mut(&id)
                        .expect("timer owner is a live client transaction");
                    TimerQueue::fired(&mut tx.slots, timer);
                    if tx.on_timer(timer, &mut self.shared, now) == Flow::Terminate {
                        self.remove_client(id);
                    }
                }
                Owner::Server(id) => {
                    // invariant: a transaction's timers are stopped when it is removed.
                    let tx = self
                        .servers
                        .get_mut(&id)
                        .expect("timer owner is a live server transaction");
                    TimerQueue::fired(&mut tx.slots, timer);
                    if tx.on_timer(timer, &mut self.shared, now) == Flow::Terminate {
                        self.remove_server(id);
                    }
                }
            }
        }
    }

    /// The next output (bytes to send or a TU event), if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<TxOutput> {
        self.shared.out.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.timers.next_deadline()
    }

    /// Number of live transactions, client and server (0 once everything has settled).
    pub fn n_transactions(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    fn remove_client(&mut self, id: ClientTxId) {
        if let Some(mut tx) = self.clients.remove(&id) {
            tx.stop_timers(&mut self.shared.timers);
            if self.client_index.get(&tx.key) == Some(&id) {
                self.client_index.remove(&tx.key);
            }
        }
    }

    fn remove_server(&mut self, id: ServerTxId) {
        if let Some(mut tx) = self.servers.remove(&id) {
            tx.stop_timers(&mut self.shared.timers);
            if self.server_index.get(&tx.key) == Some(&id) {
                self.server_index.remove(&tx.key);
            }
            if let Some(k) = &tx.call_id_cseq
                && self.invite_index.get(k) == Some(&id)
            {
                self.invite_index.remove(k);
            }
        }
    }

    /// Number of running deadlines (for leak checks in tests).
    #[cfg(test)]
    pub(crate) fn n_timers(&self) -> usize {
        self.shared.timers.len()
    }
}
