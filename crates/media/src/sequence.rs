//! RTP sequence-number bookkeeping for loss statistics (RFC 3550 §A.1 and §A.3).

/// RFC 3550 §A.1: a forward jump smaller than this is taken as loss, not a restart.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 §A.1: a backward step smaller than this is a late or duplicate packet.
const MAX_MISORDER: u16 = 100;
/// RFC 3550 §A.1: packets in sequence before a new source counts as valid.
const MIN_SEQUENTIAL: u8 = 2;

/// Extended sequence tracking for one SSRC, plus the loss of the sources before it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SequenceTracker {
    /// Whether any packet has been seen since the last [`Self::new_source`].
    active: bool,
    max_seq: u16,
    /// Number of times the sequence number wrapped.
    cycles: u64,
    base_seq: u16,
    /// The sequence number that, if it arrives next, confirms a restart after a big jump.
    bad_seq: Option<u16>,
    probation: u8,
    /// Packets counted since the last restart (duplicates included, as in §A.3).
    received: u64,
    /// Loss of earlier sources and of the runs before a restart.
    lost_prior: u64,
}

impl SequenceTracker {
    /// RFC 3550 §A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.lost_prior = self.lost_prior.saturating_add(self.current_lost());
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = None;
        self.cycles = 0;
        self.received = 0;
    }

    /// Start over for a new SSRC whose first packet carries `seq`.
    pub(crate) fn new_source(&mut self, seq: u16) {
        self.init_seq(seq);
        self.active = true;
        self.max_seq = seq.wrapping_sub(1);
        self.probation = MIN_SEQUENTIAL;
    }

    /// RFC 3550 §A.1 `update_seq`; returns whether the packet counts as valid.
    pub(crate) fn update(&mut self, seq: u16) -> bool {
        if !self.active {
            self.new_source(seq);
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                // Sequence number wrapped.
                self.cycles += 1;
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= (1u32 << 16) - u32::from(MAX_MISORDER) {
            // A very large jump: restart only if the next packet follows it (§A.1).
            if self.bad_seq == Some(seq) {
                self.init_seq(seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return false;
            }
        } else {
            // Duplicate or reordered packet: counted, as §A.3 expects.
        }
        self.received += 1;
        true
    }

    /// RFC 3550 §A.3 cumulative loss of the current run, clamped at zero (duplicates can make
    /// the raw figure negative).
    fn current_lost(&self) -> u64 {
        if self.received == 0 {
            return 0;
        }
        let extended_max = (self.cycles << 16) | u64::from(self.max_seq);
        let expected = extended_max
            .saturating_sub(u64::from(self.base_seq))
            .saturating_add(1);
        expected.saturating_sub(self.received)
    }

    /// Total packets lost across all sources and restarts.
    pub(crate) fn lost(&self) -> u64 {
        self.lost_prior.saturating_add(self.current_lost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed sequence numbers; expect (valid flags as a string, total lost).
    fn check(seqs: &[u16], expect: (&str, u64)) {
        let mut tracker = SequenceTracker::default();
        let flags: String = seqs
            .iter()
            .map(|&s| if tracker.update(s) { 'v' } else { '-' })
            .collect();
        assert_eq!((flags.as_str(), tracker.lost()), expect, "seqs {seqs:?}");
    }

    #[test]
    fn cases() {
        check(&[], ("", 0));
        check(&[10], ("-", 0));
        check(&[10, 11, 12, 13], ("-vvv", 0));
        check(&[10, 11, 13, 14], ("-vvv", 1));
        check(&[10, 11, 15, 20], ("-vvv", 7));
        // Reordering and duplicates still count as received: net loss stays right.
        check(&[10, 11, 13, 12, 14], ("-vvvv", 0));
        check(&[10, 11, 12, 12, 13], ("-vvvv", 0));
        // Wrap-around of the 16-bit sequence number.
        check(&[65534, 65535, 0, 1, 3], ("-vvvv", 1));
        // A huge jump is ignored once, then taken as a restart when the next one follows.
        check(&[10, 11, 12, 40000, 40001, 40002], ("-vv-vv", 0));
        // A single stray packet far away does not restart.
        check(&[10, 11, 12, 40000, 13, 14], ("-vv-vv", 0));
        // Probation restarts on a gap.
        check(&[10, 12, 13, 14], ("--vv", 0));
    }

    #[test]
    fn loss_survives_new_source() {
        let mut tracker = SequenceTracker::default();
        for seq in [1, 2, 4] {
            tracker.update(seq);
        }
        assert_eq!(tracker.lost(), 1);
        tracker.new_source(500);
        for seq in [500, 501, 503] {
            tracker.update(seq);
        }
        assert_eq!(tracker.lost(), 2);
    }
}
