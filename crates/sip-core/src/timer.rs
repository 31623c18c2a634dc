//! RFC 3261's lettered timers and one ordered queue of deadlines for the whole layer.
//!
//! Each transaction has at most two timers running at once, so it keeps two slots (as quinn's
//! `TimerTable` keeps one per timer): a *retransmit* slot (A, E, G, 2xx retransmission, the
//! delayed 100 Trying) and a *lifetime* slot (B, D, F, H, I, J, K, L, M, the CANCEL guard).
//! The layer keeps every running deadline in a `BTreeMap` keyed by `(Instant, seq)`; a slot
//! remembers its key, so stopping a timer is an exact removal (no lazy deletion) and the next
//! deadline is the map's first key.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::{ClientTxId, ServerTxId};

/// A timer of RFC 3261 §17 (Table 4), RFC 6026 §8, or one of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// INVITE client: retransmit the INVITE (unreliable only), doubling.
    A,
    /// INVITE client: give up waiting for any response (64*T1).
    B,
    /// INVITE client: absorb final-response retransmissions after the ACK (32 s unreliable).
    D,
    /// Non-INVITE client: retransmit the request (unreliable only), doubling up to T2.
    E,
    /// Non-INVITE client: give up waiting for a final response (64*T1).
    F,
    /// Non-INVITE client: absorb response retransmissions (T4 unreliable).
    K,
    /// INVITE server: retransmit the 3xx-6xx (unreliable only), doubling up to T2.
    G,
    /// INVITE server: give up waiting for the ACK of a 3xx-6xx (64*T1).
    H,
    /// INVITE server: absorb ACK retransmissions (T4 unreliable).
    I,
    /// Non-INVITE server: absorb request retransmissions (64*T1 unreliable).
    J,
    /// INVITE server, RFC 6026 Accepted: absorb INVITE retransmissions, wait for the 2xx ACK.
    L,
    /// INVITE client, RFC 6026 Accepted: deliver 2xx retransmissions (64*T1).
    M,
    /// INVITE server: send 100 Trying if the TU is silent for 200 ms (RFC 3261 §17.2.1).
    Trying,
    /// INVITE server: retransmit the TU's 2xx, doubling up to T2 (RFC 3261 §13.3.1.4).
    Retransmit2xx,
    /// INVITE client: give up 64*T1 after a CANCEL got no final response (RFC 3261 §9.1).
    CancelGuard,
}

impl Timer {
    fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G | Timer::Trying | Timer::Retransmit2xx => 0,
            _ => 1,
        }
    }
}

/// Which transaction a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Client(ClientTxId),
    Server(ServerTxId),
}

type Key = (Instant, u64);

/// A transaction's two running timers, as keys into the [`TimerQueue`].
#[derive(Debug, Default)]
pub(crate) struct Slots([Option<(Key, Timer)>; 2]);

/// Every running deadline of the layer, ordered.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    deadlines: BTreeMap<Key, (Owner, Timer)>,
    next_seq: u64,
}

impl TimerQueue {
    /// Starts `timer` at `at`, replacing whatever ran in its slot.
    pub(crate) fn start(&mut self, slots: &mut Slots, owner: Owner, timer: Timer, at: Instant) {
        let slot = timer.slot();
        if let Some((key, _)) = slots.0[slot].take() {
            self.deadlines.remove(&key);
        }
        let key = (at, self.next_seq);
        self.next_seq += 1;
        self.deadlines.insert(key, (owner, timer));
        slots.0[slot] = Some((key, timer));
    }

    /// Stops `timer` if it is running.
    pub(crate) fn stop(&mut self, slots: &mut Slots, timer: Timer) {
        let slot = timer.slot();
        if let Some((key, t)) = slots.0[slot]
            && t == timer
        {
            self.deadlines.remove(&key);
            slots.0[slot] = None;
        }
    }

    /// Stops every timer of a transaction (it ends, or changes state).
    pub(crate) fn stop_all(&mut self, slots: &mut Slots) {
        for slot in &mut slots.0 {
            if let Some((key, _)) = slot.take() {
                self.deadlines.remove(&key);
            }
        }
    }

    /// The earliest running deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first_key_value().map(|((at, _), _)| *at)
    }

    /// The sequence number the next started timer will get; timers started from now on are
    /// "new" for [`TimerQueue::pop_due`].
    pub(crate) fn watermark(&self) -> u64 {
        self.next_seq
    }

    /// Removes and returns the earliest deadline at or before `now` that was started before
    /// `watermark`, so one `handle_timeout` call does bounded work even if a timer restarts at
    /// `now`. The owner must clear its slot with [`TimerQueue::fired`].
    pub(crate) fn pop_due(&mut self, now: Instant, watermark: u64) -> Option<(Owner, Timer)> {
        let (&(at, seq), _) = self.deadlines.first_key_value()?;
        // Deadlines started during this call sort after older ones at the same instant and
        // never lie before `now`, so the first new or future key ends the sweep.
        if at > now || seq >= watermark {
            return None;
        }
        self.deadlines.pop_first().map(|(_, v)| v)
    }

    /// Clears the slot of a timer that [`TimerQueue::pop_due`] returned.
    pub(crate) fn fired(slots: &mut Slots, timer: Timer) {
        let slot = timer.slot();
        if matches!(slots.0[slot], Some((_, t)) if t == timer) {
            slots.0[slot] = None;
        }
    }

    /// Number of running deadlines (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.deadlines.len()
    }
}
