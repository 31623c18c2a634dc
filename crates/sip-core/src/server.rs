//! Server transactions: INVITE (RFC 3261 §17.2.1, Figure 7, with RFC 6026 Figure 5's Accepted
//! state) and non-INVITE (RFC 3261 §17.2.2, Figure 8).
//!
//! States keep the RFC's names rather than `Expect…` names so the code reads against the RFC
//! figures; each state's doc says what it waits for.
//!
//! Responses always go to the request's source address (the `from` [`Peer`]), not to the Via
//! sent-by: symmetric response routing as RFC 3581 `rport` asks, which NAT'd phones need.

use std::time::{Duration, Instant};

use sip_msg::{Method, Request, Response};

use crate::layer::{Flow, ServerKey, Shared};
use crate::timer::{Owner, Slots, Timer, TimerQueue};
use crate::{Peer, ServerTxId, TxEvent};

/// RFC 3261 §17.2.1: send 100 Trying if the TU has not answered within 200 ms.
const TRYING_DELAY: Duration = Duration::from_millis(200);

/// INVITE server transaction states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InviteState {
    /// Waits for the TU's final response; resends the last provisional on retransmissions.
    Proceeding,
    /// Sent a 3xx-6xx; waits for the ACK, retransmitting on Timer G until Timer H.
    Completed,
    /// Got the ACK; absorbs ACK retransmissions until Timer I.
    Confirmed,
    /// RFC 6026: sent a 2xx; absorbs INVITE retransmissions until Timer L, and retransmits the
    /// 2xx until the TU reports its ACK.
    Accepted,
}

/// Non-INVITE server transaction states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NonInviteState {
    /// Waits for the TU's first response; absorbs retransmissions silently.
    Trying,
    /// Sent a provisional; waits for a final response, resending the provisional.
    Proceeding,
    /// Sent a final response; resends it for retransmissions until Timer J.
    Completed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Invite(InviteState),
    NonInvite(NonInviteState),
}

/// One request we received and everything needed to answer its retransmissions.
#[derive(Debug)]
pub(crate) struct ServerTransaction {
    id: ServerTxId,
    /// Key in the layer's index (branch, sent-by, method; RFC 3261 §17.2.3).
    pub(crate) key: ServerKey,
    /// Where responses go: the request's source (symmetric response routing).
    peer: Peer,
    state: State,
    /// The last response sent, resent for request retransmissions (and by Timer G / 2xx).
    last_response: Option<Vec<u8>>,
    /// INVITE only: the 100 Trying to send if the TU stays silent; `None` once anything is sent.
    trying: Option<Vec<u8>>,
    /// The To tag of the TU's responses, reused for the 200 to a CANCEL (RFC 3261 §9.2).
    pub(crate) to_tag: Option<String>,
    /// INVITE only: (Call-ID, CSeq number), the layer's index for 2xx ACK matching.
    pub(crate) call_id_cseq: Option<(String, u32)>,
    /// Current Timer G / 2xx retransmission interval.
    interval: Duration,
    /// The TU saw the ACK for our 2xx.
    acked: bool,
    pub(crate) slots: Slots,
}

fn is_provisional(status: u16) -> bool {
    status < 200
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

impl ServerTransaction {
    /// Creates the transaction for a new request from `peer`.
    pub(crate) fn start(
        id: ServerTxId,
        key: ServerKey,
        request: &Request,
        peer: Peer,
        shared: &mut Shared,
        now: Instant,
    ) -> Self {
        let invite = request.method == Method::Invite;
        let mut tx = ServerTransaction {
            id,
            key,
            peer,
            state: if invite {
                State::Invite(InviteState::Proceeding)
            } else {
                State::NonInvite(NonInviteState::Trying)
            },
            last_response: None,
            trying: None,
            to_tag: None,
            call_id_cseq: None,
            interval: shared.t1(),
            acked: false,
            slots: Slots::default(),
        };
        if invite {
            tx.trying = Some(request.make_response(100, "Trying", None).to_bytes());
            tx.call_id_cseq = match (request.call_id(), request.cseq()) {
                (Some(call_id), Some(cseq)) => Some((call_id.to_owned(), cseq.seq)),
                _ => None,
            };
            shared.timers.start(
                &mut tx.slots,
                Owner::Server(id),
                Timer::Trying,
                now + TRYING_DELAY,
            );
        }
        tx
    }

    /// True for an INVITE transaction that has not sent a final response (CANCEL applies).
    pub(crate) fn awaits_final_response(&self) -> bool {
        self.state == State::Invite(InviteState::Proceeding)
    }

    fn resend_last(&self, shared: &mut Shared) {
        if let Some(bytes) = &self.last_response {
            shared.transmit(self.peer, bytes.clone());
        }
    }

    /// The request was retransmitted (same branch, sent-by and method).
    pub(crate) fn on_retransmission(&mut self, shared: &mut Shared) {
        match self.state {
            State::Invite(InviteState::Proceeding) => {
                // RFC 3261 §17.2.1: resend the last provisional; if there is none yet, the
                // 100 Trying is due now rather than at 200 ms.
                if let Some(trying) = self.trying.take() {
                    shared.timers.stop(&mut self.slots, Timer::Trying);
                    shared.transmit(self.peer, trying.clone());
                    self.last_response = Some(trying);
                } else {
                    self.resend_last(shared);
                }
            }
            State::Invite(InviteState::Completed) => self.resend_last(shared),
            // RFC 6026 §8.6 and RFC 3261 §17.2.1: absorbed; Accepted retransmits on its own timer.
            State::Invite(InviteState::Confirmed | InviteState::Accepted) => {}
            State::NonInvite(NonInviteState::Trying) => {}
            State::NonInvite(NonInviteState::Proceeding | NonInviteState::Completed) => {
                self.resend_last(shared)
            }
        }
    }

    /// An ACK matched this (INVITE) transaction.
    pub(crate) fn on_ack(
        &mut self,
        request: Request,
        from: Peer,
        shared: &mut Shared,
        now: Instant,
    ) -> Flow {
        match self.state {
            State::Invite(InviteState::Completed) => {
                // RFC 3261 §17.2.1: ACK → Confirmed, stop G and H, Timer I (T4, or 0).
                shared.timers.stop_all(&mut self.slots);
                if self.peer.transport.is_reliable() {
                    return Flow::Terminate;
                }
                self.state = State::Invite(InviteState::Confirmed);
                shared.timers.start(
                    &mut self.slots,
                    Owner::Server(self.id),
                    Timer::I,
                    now + shared.config.t4,
                );
                Flow::Continue
            }
            State::Invite(InviteState::Accepted) => {
                // An ACK for our 2xx that reused the INVITE's branch: end to end, for the TU.
                shared.emit(TxEvent::Ack { request, from });
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }

    /// The TU sends `response` in this transaction.
    pub(crate) fn send_response(
        &mut self,
        response: &Response,
        shared: &mut Shared,
        now: Instant,
    ) -> Flow {
        let owner = Owner::Server(self.id);
        let status = response.status;
        let reliable = self.peer.transport.is_reliable();
        if self.to_tag.is_none() && status > 100 {
            self.to_tag = response.to().and_then(|to| to.tag().map(str::to_owned));
        }
        match self.state {
            State::Invite(InviteState::Proceeding) => {
                let bytes = response.to_bytes();
                shared.transmit(self.peer, bytes.clone());
                self.last_response = Some(bytes);
                self.trying = None;
                shared.timers.stop(&mut self.slots, Timer::Trying);
                if is_provisional(status) {
                    return Flow::Continue;
                }
                self.interval = shared.t1();
                let wait = now + 64 * shared.t1();
                if is_success(status) {
                    // RFC 6026 §8.5: 2xx → Accepted, Timer L; RFC 3261 §13.3.1.4: the 2xx is
                    // retransmitted (T1 doubling up to T2) until the ACK or 64*T1.
                    // DEVIATION(RFC 3261 §13.3.1.4): not on reliable transports, where the hop
                    // cannot lose it; the ACK is still awaited for 64*T1.
                    self.state = State::Invite(InviteState::Accepted);
                    if !reliable {
                        shared.timers.start(
                            &mut self.slots,
                            owner,
                            Timer::Retransmit2xx,
                            now + self.interval,
                        );
                    }
                    shared.timers.start(&mut self.slots, owner, Timer::L, wait);
                } else {
                    // RFC 3261 §17.2.1: 3xx-6xx → Completed, Timer G (unreliable), Timer H.
                    self.state = State::Invite(InviteState::Completed);
                    if !reliable {
                        shared
                            .timers
                            .start(&mut self.slots, owner, Timer::G, now + self.interval);
                    }
                    shared.timers.start(&mut self.slots, owner, Timer::H, wait);
                }
                Flow::Continue
            }
            State::Invite(InviteState::Accepted) if is_success(status) => {
                // RFC 6026 §8.5: further 2xx from the TU are sent; retransmit the newest.
                let bytes = response.to_bytes();
                shared.transmit(self.peer, bytes.clone());
                self.last_response = Some(bytes);
                Flow::Continue
            }
            State::NonInvite(NonInviteState::Trying | NonInviteState::Proceeding) => {
                let bytes = response.to_bytes();
                shared.transmit(self.peer, bytes.clone());
                self.last_response = Some(bytes);
                if is_provisional(status) {
                    self.state = State::NonInvite(NonInviteState::Proceeding);
                    return Flow::Continue;
                }
                // RFC 3261 §17.2.2: final → Completed, Timer J (64*T1, or 0).
                if reliable {
                    return Flow::Terminate;
                }
                self.state = State::NonInvite(NonInviteState::Completed);
                shared
                    .timers
                    .start(&mut self.slots, owner, Timer::J, now + 64 * shared.t1());
                Flow::Continue
            }
            state => {
                tracing::error!(
                    status,
                    ?state,
                    "TU sent a response the server transaction cannot send; dropped"
                );
                Flow::Continue
            }
        }
    }

    /// The TU saw the ACK for this transaction's 2xx: stop retransmitting it.
    pub(crate) fn ack_received(&mut self, timers: &mut TimerQueue) {
        if self.state == State::Invite(InviteState::Accepted) {
            self.acked = true;
            timers.stop(&mut self.slots, Timer::Retransmit2xx);
        }
    }

    /// One of this transaction's timers fired.
    pub(crate) fn on_timer(&mut self, timer: Timer, shared: &mut Shared, now: Instant) -> Flow {
        let owner = Owner::Server(self.id);
        match (self.state, timer) {
            (State::Invite(InviteState::Proceeding), Timer::Trying) => {
                if let Some(trying) = self.trying.take() {
                    shared.transmit(self.peer, trying.clone());
                    self.last_response = Some(trying);
                }
                Flow::Continue
            }
            (State::Invite(InviteState::Completed), Timer::G)
            | (State::Invite(InviteState::Accepted), Timer::Retransmit2xx) => {
                // RFC 3261 §17.2.1 (G) and §13.3.1.4 (2xx): resend, double up to T2.
                self.resend_last(shared);
                self.interval = self.interval.saturating_mul(2).min(shared.t2());
                shared
                    .timers
                    .start(&mut self.slots, owner, timer, now + self.interval);
                Flow::Continue
            }
            (State::Invite(InviteState::Completed), Timer::H) => {
                // RFC 3261 §17.2.1: no ACK for the 3xx-6xx.
                shared.emit(TxEvent::AckTimeout {
                    id: self.id,
                    after_2xx: false,
                });
                Flow::Terminate
            }
            (State::Invite(InviteState::Accepted), Timer::L) => {
                // RFC 3261 §13.3.1.4: no ACK for the 2xx within 64*T1; the TU should BYE.
                if !self.acked {
                    shared.emit(TxEvent::AckTimeout {
                        id: self.id,
                        after_2xx: true,
                    });
                }
                Flow::Terminate
            }
            (_, Timer::I | Timer::J) => Flow::Terminate,
            (state, timer) => {
                // invariant: every timer is stopped when its state is left.
                debug_assert!(false, "server timer {timer:?} fired in {state:?}");
                Flow::Continue
            }
        }
    }

    /// Stops every timer (the transaction ends).
    pub(crate) fn stop_timers(&mut self, timers: &mut TimerQueue) {
        timers.stop_all(&mut self.slots);
    }
}
