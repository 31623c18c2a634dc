//! Client transactions: INVITE (RFC 3261 §17.1.1, Figure 5, with RFC 6026 Figure 3's Accepted
//! state) and non-INVITE (RFC 3261 §17.1.2, Figure 6).
//!
//! States keep the RFC's names rather than `Expect…` names so the code reads against the RFC
//! figures; each state's doc says what it waits for.

use std::time::{Duration, Instant};

use sip_msg::{Method, Request, Response};

use crate::build::build_ack_for_non_2xx;
use crate::layer::{ClientKey, Flow, Shared};
use crate::timer::{Owner, Slots, Timer, TimerQueue};
use crate::{ClientTxId, Peer, TxEvent};

/// INVITE client transaction states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InviteState {
    /// Waits for any response; retransmits on Timer A, gives up on Timer B.
    Calling,
    /// Got a provisional response; waits for a final one (the TU may CANCEL).
    Proceeding,
    /// Got a 3xx-6xx and sent the ACK; absorbs final retransmissions until Timer D.
    Completed,
    /// RFC 6026: got a 2xx; hands every further 2xx to the TU until Timer M.
    Accepted,
}

/// Non-INVITE client transaction states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NonInviteState {
    /// Waits for any response; retransmits on Timer E, gives up on Timer F.
    Trying,
    /// Got a provisional response; retransmits every T2 until a final response or Timer F.
    Proceeding,
    /// Got a final response; absorbs retransmissions until Timer K.
    Completed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Invite(InviteState),
    NonInvite(NonInviteState),
}

/// One request we sent and everything needed to retransmit it and match its responses.
#[derive(Debug)]
pub(crate) struct ClientTransaction {
    id: ClientTxId,
    /// Key in the layer's index (top Via branch + method, RFC 3261 §17.1.3).
    pub(crate) key: ClientKey,
    peer: Peer,
    state: State,
    /// The INVITE itself, kept to build the ACK of a 3xx-6xx (non-INVITE: `None`).
    invite: Option<Request>,
    /// The request as sent, for retransmissions.
    bytes: Vec<u8>,
    /// The ACK sent for a 3xx-6xx, resent for each retransmission of it.
    ack: Option<Vec<u8>>,
    /// Current Timer A / E interval.
    interval: Duration,
    /// When the CANCEL guard expires, once the TU has sent a CANCEL for this INVITE.
    cancel_deadline: Option<Instant>,
    pub(crate) slots: Slots,
}

fn is_provisional(status: u16) -> bool {
    status < 200
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

impl ClientTransaction {
    /// Sends `request` to `peer` and starts the transaction's first timers.
    pub(crate) fn start(
        id: ClientTxId,
        key: ClientKey,
        request: Request,
        peer: Peer,
        shared: &mut Shared,
        now: Instant,
    ) -> Self {
        let bytes = request.to_bytes();
        shared.transmit(peer, bytes.clone());
        let t1 = shared.t1();
        let invite = request.method == Method::Invite;
        let mut tx = ClientTransaction {
            id,
            key,
            peer,
            state: if invite {
                State::Invite(InviteState::Calling)
            } else {
                State::NonInvite(NonInviteState::Trying)
            },
            invite: invite.then_some(request),
            bytes,
            ack: None,
            interval: t1,
            cancel_deadline: None,
            slots: Slots::default(),
        };
        let owner = Owner::Client(id);
        let (retransmit, give_up) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        // RFC 3261 §17.1.1.2 / §17.1.2.2: Timer A / E only for unreliable transports; B / F always.
        if !peer.transport.is_reliable() {
            shared
                .timers
                .start(&mut tx.slots, owner, retransmit, now + t1);
        }
        shared
            .timers
            .start(&mut tx.slots, owner, give_up, now + 64 * t1);
        tx
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(
        &mut self,
        response: Response,
        from: Peer,
        shared: &mut Shared,
        now: Instant,
    ) -> Flow {
        match self.state {
            State::Invite(state) => self.invite_response(state, response, from, shared, now),
            State::NonInvite(state) => self.non_invite_response(state, response, shared, now),
        }
    }

    fn invite_response(
        &mut self,
        state: InviteState,
        response: Response,
        from: Peer,
        shared: &mut Shared,
        now: Instant,
    ) -> Flow {
        let owner = Owner::Client(self.id);
        let status = response.status;
        match state {
            InviteState::Calling | InviteState::Proceeding if is_provisional(status) => {
                // RFC 3261 §17.1.1.2: a 1xx stops retransmissions; Timer B only guards Calling.
                if state == InviteState::Calling {
                    shared.timers.stop(&mut self.slots, Timer::A);
                    shared.timers.stop(&mut self.slots, Timer::B);
                    self.state = State::Invite(InviteState::Proceeding);
                    if let Some(deadline) = self.cancel_deadline {
                        // The CANCEL went out in Calling: its guard starts counting now.
                        shared
                            .timers
                            .start(&mut self.slots, owner, Timer::CancelGuard, deadline);
                    }
                }
                shared.emit(TxEvent::Response {
                    id: self.id,
                    response,
                });
                Flow::Continue
            }
            InviteState::Calling | InviteState::Proceeding if is_success(status) => {
                // RFC 6026 §8.4: 2xx → Accepted, Timer M; the TU sends the ACK.
                shared.timers.stop_all(&mut self.slots);
                self.state = State::Invite(InviteState::Accepted);
                // Nothing is resent from here on: free the request for the 32 s of Timer M.
                self.invite = None;
                self.bytes = Vec::new();
                shared
                    .timers
                    .start(&mut self.slots, owner, Timer::M, now + 64 * shared.t1());
                shared.emit(TxEvent::Response {
                    id: self.id,
                    response,
                });
                Flow::Continue
            }
            InviteState::Calling | InviteState::Proceeding => {
                // RFC 3261 §17.1.1.2: 3xx-6xx → send the ACK, deliver, Completed with Timer D.
                shared.timers.stop_all(&mut self.slots);
                // invariant: INVITE transactions are created with `invite: Some(..)`
                let invite = self
                    .invite
                    .as_ref()
                    .expect("INVITE client transaction keeps its request");
                let ack = build_ack_for_non_2xx(invite, &response).to_bytes();
                shared.transmit(self.peer, ack.clone());
                shared.emit(TxEvent::Response {
                    id: self.id,
                    response,
                });
                if self.peer.transport.is_reliable() {
                    // Timer D is zero on reliable transports.
                    return Flow::Terminate;
                }
                self.ack = Some(ack);
                self.invite = None;
                self.bytes = Vec::new();
                self.state = State::Invite(InviteState::Completed);
                shared
                    .timers
                    .start(&mut self.slots, owner, Timer::D, now + shared.timer_d());
                Flow::Continue
            }
            InviteState::Completed if !is_provisional(status) && !is_success(status) => {
                // RFC 3261 §17.1.1.2: a retransmitted final response gets the ACK again.
                if let Some(ack) = &self.ack {
                    shared.transmit(self.peer, ack.clone());
                }
                Flow::Continue
            }
            InviteState::Accepted if is_success(status) => {
                // RFC 6026 §8.4: every 2xx (retransmission or another fork) goes to the TU.
                shared.emit(TxEvent::Response {
                    id: self.id,
                    response,
                });
                Flow::Continue
            }
            InviteState::Completed if is_success(status) => {
                // A 2xx after our ACK for a 3xx-6xx (a misbehaving fork): no transaction can
                // take it, so the TU gets it as stray and may ACK and BYE it.
                shared.emit(TxEvent::StrayResponse { response, from });
                Flow::Continue
            }
            InviteState::Completed | InviteState::Accepted => {
                tracing::debug!(
                    status,
                    "late response absorbed by INVITE client transaction"
                );
                Flow::Continue
            }
        }
    }

    fn non_invite_response(
        &mut self,
        state: NonInviteState,
        response: Response,
        shared: &mut Shared,
        now: Instant,
    ) -> Flow {
        match state {
            NonInviteState::Trying | NonInviteState::Proceeding
                if is_provisional(response.status) =>
            {
                self.state = State::NonInvite(NonInviteState::Proceeding);
                shared.emit(TxEvent::Response {
                    id: self.id,
                    response,
                });
                Flow::Continue
            }
            NonInviteState::Trying | NonInviteState::Proceeding => {
                // RFC 3261 §17.1.2.2: final → deliver, Completed with Timer K (T4, or 0).
                shared.timers.stop_all(&mut self.slots);
                shared.emit(TxEvent::Response {
                    id: self.id,
                    response,
                });
                if self.peer.transport.is_reliable() {
                    return Flow::Terminate;
                }
                self.state = State::NonInvite(NonInviteState::Completed);
                self.bytes = Vec::new();
                shared.timers.start(
                    &mut self.slots,
                    Owner::Client(self.id),
                    Timer::K,
                    now + shared.config.t4,
                );
                Flow::Continue
            }
            NonInviteState::Completed => Flow::Continue,
        }
    }

    /// One of this transaction's timers fired.
    pub(crate) fn on_timer(&mut self, timer: Timer, shared: &mut Shared, now: Instant) -> Flow {
        let owner = Owner::Client(self.id);
        match (self.state, timer) {
            (State::Invite(InviteState::Calling), Timer::A) => {
                // RFC 3261 §17.1.1.2: resend, and Timer A doubles each time (no cap).
                shared.transmit(self.peer, self.bytes.clone());
                self.interval = self.interval.saturating_mul(2);
                shared
                    .timers
                    .start(&mut self.slots, owner, Timer::A, now + self.interval);
                Flow::Continue
            }
            (
                State::NonInvite(state @ (NonInviteState::Trying | NonInviteState::Proceeding)),
                Timer::E,
            ) => {
                // RFC 3261 §17.1.2.2: Timer E doubles up to T2 in Trying, is T2 in Proceeding.
                shared.transmit(self.peer, self.bytes.clone());
                self.interval = match state {
                    NonInviteState::Proceeding => shared.t2(),
                    _ => self.interval.saturating_mul(2).min(shared.t2()),
                };
                shared
                    .timers
                    .start(&mut self.slots, owner, Timer::E, now + self.interval);
                Flow::Continue
            }
            (_, Timer::B | Timer::F | Timer::CancelGuard) => {
                // RFC 3261 §17.1.1.2 / §17.1.2.2: the TU treats this as a 408; §9.1 for the guard.
                shared.emit(TxEvent::Timeout { id: self.id });
                Flow::Terminate
            }
            (_, Timer::D | Timer::K | Timer::M) => Flow::Terminate,
            (state, timer) => {
                // invariant: every timer is stopped when its state is left.
                debug_assert!(false, "client timer {timer:?} fired in {state:?}");
                Flow::Continue
            }
        }
    }

    /// The TU sent a CANCEL for this INVITE: RFC 3261 §9.1, if no final response arrives
    /// within 64*T1 the transaction is considered cancelled and destroyed.
    /// In Calling, Timer B still runs and the guard starts if a provisional response comes.
    pub(crate) fn on_cancel_sent(&mut self, shared: &mut Shared, now: Instant) {
        let deadline = now + 64 * shared.t1();
        match self.state {
            State::Invite(InviteState::Calling) => self.cancel_deadline = Some(deadline),
            State::Invite(InviteState::Proceeding) => {
                self.cancel_deadline = Some(deadline);
                shared.timers.start(
                    &mut self.slots,
                    Owner::Client(self.id),
                    Timer::CancelGuard,
                    deadline,
                );
            }
            _ => {}
        }
    }

    /// Stops every timer (the transaction ends).
    pub(crate) fn stop_timers(&mut self, timers: &mut TimerQueue) {
        timers.stop_all(&mut self.slots);
    }
}
