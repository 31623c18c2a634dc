//! RTP port allocation: even RTP ports with the odd RTCP port above (RFC 3550 §11).
//!
//! The allocator only does bookkeeping; the switch binds the sockets. If a bind fails the switch
//! calls [`PortAllocator::mark_bad`] and allocates again. Free ports are handed out in FIFO
//! order, so a port just freed is reused as late as possible and stray packets of an ended call
//! are unlikely to reach the next one.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// An RTP port (even) and its RTCP port (the next one, odd).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortPair {
    rtp: u16,
}

impl PortPair {
    /// The even RTP port.
    pub fn rtp(self) -> u16 {
        self.rtp
    }

    /// The odd RTCP port, `rtp + 1`.
    pub fn rtcp(self) -> u16 {
        // Construction only admits even ports below the range end, so this cannot overflow.
        self.rtp | 1
    }
}

/// Misuse of the allocator or a bad range: local errors, never peer input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The range holds no even port whose odd neighbour is also in the range.
    #[error("port range {start}..={end} holds no RTP/RTCP pair")]
    EmptyRange {
        /// Configured first port.
        start: u16,
        /// Configured last port.
        end: u16,
    },
    /// Every usable pair is in use or marked bad.
    #[error("all RTP ports are in use")]
    Exhausted,
    /// The port was not handed out by this allocator, or is not currently in use.
    #[error("RTP port {0} is not allocated")]
    NotAllocated(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    InUse,
    Bad,
}

/// Hands out RTP/RTCP port pairs from an inclusive range, O(1) per operation.
#[derive(Clone, Debug)]
pub struct PortAllocator {
    /// The first even port of the range.
    first: u16,
    /// State of pair `i`, whose RTP port is `first + 2 * i`.
    slots: Vec<Slot>,
    /// Free pair indices, oldest-freed first.
    free: VecDeque<u16>,
    n_in_use: usize,
    n_bad: usize,
}

impl PortAllocator {
    /// An allocator over the even ports `p` in `range` for which `p + 1` is in `range` too.
    pub fn new(range: RangeInclusive<u16>) -> Result<PortAllocator, PortError> {
        let (start, end) = (*range.start(), *range.end());
        let empty = PortError::EmptyRange { start, end };
        // Port 0 cannot be bound, so the first candidate is 2 at the lowest.
        let first = start.checked_add(start & 1).ok_or(empty.clone())?.max(2);
        // The last even port whose odd neighbour is still <= end.
        let last = end.checked_sub(1).map(|p| p & !1).ok_or(empty.clone())?;
        if first > last {
            return Err(empty);
        }
        let n_pairs = (last - first) / 2 + 1;
        Ok(PortAllocator {
            first,
            slots: vec![Slot::Free; usize::from(n_pairs)],
            free: (0..n_pairs).collect(),
            n_in_use: 0,
            n_bad: 0,
        })
    }

    /// Take a free pair; it stays in use until [`Self::free`] or [`Self::mark_bad`].
    pub fn allocate(&mut self) -> Result<PortPair, PortError> {
        let idx = self.free.pop_front().ok_or(PortError::Exhausted)?;
        let slot = self
            .slots
            .get_mut(usize::from(idx))
            .expect("free list only holds indices of slots");
        debug_assert_eq!(*slot, Slot::Free, "free list and slot state agree");
        *slot = Slot::InUse;
        self.n_in_use += 1;
        Ok(PortPair {
            rtp: self.first + 2 * idx,
        })
    }

    /// Return a pair after its call ended.
    pub fn free(&mut self, pair: PortPair) -> Result<(), PortError> {
        let idx = self.in_use_index(pair)?;
        if let Some(slot) = self.slots.get_mut(usize::from(idx)) {
            *slot = Slot::Free;
        }
        self.n_in_use -= 1;
        self.free.push_back(idx);
        Ok(())
    }

    /// Retire an allocated pair whose bind failed; it is not handed out again until
    /// [`Self::reinstate_bad`].
    pub fn mark_bad(&mut self, pair: PortPair) -> Result<(), PortError> {
        let idx = self.in_use_index(pair)?;
        if let Some(slot) = self.slots.get_mut(usize::from(idx)) {
            *slot = Slot::Bad;
        }
        self.n_in_use -= 1;
        self.n_bad += 1;
        Ok(())
    }

    /// Put every bad pair back at the end of the free list (for example when exhausted).
    pub fn reinstate_bad(&mut self) {
        for (idx, slot) in (0u16..).zip(self.slots.iter_mut()) {
            if *slot == Slot::Bad {
                *slot = Slot::Free;
                self.free.push_back(idx);
            }
        }
        self.n_bad = 0;
    }

    /// Pairs currently handed out; 0 after every call ended means nothing leaked.
    pub fn in_use(&self) -> usize {
        self.n_in_use
    }

    /// Pairs marked bad.
    pub fn n_bad(&self) -> usize {
        self.n_bad
    }

    /// Pairs that can be allocated right now.
    pub fn n_free(&self) -> usize {
        self.free.len()
    }

    /// All pairs in the range, whatever their state.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot index of an allocated pair, or why it is not one.
    fn in_use_index(&self, pair: PortPair) -> Result<u16, PortError> {
        let not_allocated = PortError::NotAllocated(pair.rtp);
        let offset = pair
            .rtp
            .checked_sub(self.first)
            .ok_or(not_allocated.clone())?;
        if offset % 2 != 0 {
            return Err(not_allocated);
        }
        let idx = offset / 2;
        match self.slots.get(usize::from(idx)) {
            Some(Slot::InUse) => Ok(idx),
            _ => Err(not_allocated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn check_range(range: RangeInclusive<u16>, expect: &str) {
        let got = match PortAllocator::new(range.clone()) {
            Ok(mut alloc) => {
                let mut ports = Vec::new();
                while let Ok(pair) = alloc.allocate() {
                    ports.push(format!("{}/{}", pair.rtp(), pair.rtcp()));
                }
                ports.join(" ")
            }
            Err(e) => format!("err {e}"),
        };
        assert_eq!(got, expect, "range {range:?}");
    }

    #[test]
    fn ranges() {
        check_range(10000..=10003, "10000/10001 10002/10003");
        check_range(10001..=10006, "10002/10003 10004/10005");
        check_range(
            10000..=10000,
            "err port range 10000..=10000 holds no RTP/RTCP pair",
        );
        check_range(
            10001..=10002,
            "err port range 10001..=10002 holds no RTP/RTCP pair",
        );
        check_range(
            RangeInclusive::new(10004, 10000),
            "err port range 10004..=10000 holds no RTP/RTCP pair",
        );
        check_range(65534..=65535, "65534/65535");
        check_range(
            65535..=65535,
            "err port range 65535..=65535 holds no RTP/RTCP pair",
        );
        check_range(0..=3, "2/3");
    }

    #[test]
    fn free_is_fifo_and_double_free_is_an_error() {
        let mut alloc = PortAllocator::new(20000..=20005).unwrap();
        let a = alloc.allocate().unwrap();
        let b = alloc.allocate().unwrap();
        assert_eq!(alloc.in_use(), 2);
        alloc.free(a).unwrap();
        assert_eq!(alloc.free(a), Err(PortError::NotAllocated(20000)));
        // The never-used 20004 comes before the just-freed 20000.
        assert_eq!(alloc.allocate().unwrap().rtp(), 20004);
        assert_eq!(alloc.allocate().unwrap().rtp(), 20000);
        assert_eq!(alloc.allocate(), Err(PortError::Exhausted));
        alloc.free(b).unwrap();
        assert_eq!(alloc.in_use(), 2);
        // Foreign pairs are rejected.
        assert_eq!(
            alloc.free(PortPair { rtp: 30000 }),
            Err(PortError::NotAllocated(30000))
        );
        assert_eq!(
            alloc.free(PortPair { rtp: 19998 }),
            Err(PortError::NotAllocated(19998))
        );
    }

    #[test]
    fn bad_ports_are_skipped_until_reinstated() {
        let mut alloc = PortAllocator::new(20000..=20003).unwrap();
        let a = alloc.allocate().unwrap();
        alloc.mark_bad(a).unwrap();
        assert_eq!((alloc.in_use(), alloc.n_bad(), alloc.n_free()), (0, 1, 1));
        let b = alloc.allocate().unwrap();
        assert_eq!(b.rtp(), 20002);
        assert_eq!(alloc.allocate(), Err(PortError::Exhausted));
        assert_eq!(alloc.mark_bad(a), Err(PortError::NotAllocated(20000)));
        alloc.reinstate_bad();
        assert_eq!(alloc.allocate().unwrap().rtp(), 20000);
        assert_eq!(alloc.n_bad(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Allocate,
        Free(usize),
        MarkBad(usize),
        Reinstate,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Allocate),
            3 => any::<usize>().prop_map(Op::Free),
            1 => any::<usize>().prop_map(Op::MarkBad),
            1 => Just(Op::Reinstate),
        ]
    }

    proptest! {
        /// Against a model: never hands out a pair twice, counts stay consistent.
        #[test]
        fn matches_model(start in 1000u16..1010, len in 0u16..20,
                         ops in proptest::collection::vec(op(), 0..200)) {
            let Ok(mut alloc) = PortAllocator::new(start..=start.saturating_add(len)) else {
                return Ok(());
            };
            let mut held: Vec<PortPair> = Vec::new();
            let mut bad: HashSet<PortPair> = HashSet::new();
            for op in ops {
                match op {
                    Op::Allocate => match alloc.allocate() {
                        Ok(pair) => {
                            prop_assert!(pair.rtp() % 2 == 0 && pair.rtp() >= start);
                            prop_assert!(pair.rtcp() <= start + len);
                            prop_assert!(!held.contains(&pair) && !bad.contains(&pair));
                            held.push(pair);
                        }
                        Err(PortError::Exhausted) => {
                            prop_assert_eq!(held.len() + bad.len(), alloc.capacity());
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    },
                    Op::Free(i) if !held.is_empty() => {
                        let pair = held.swap_remove(i % held.len());
                        prop_assert_eq!(alloc.free(pair), Ok(()));
                        prop_assert!(alloc.free(pair).is_err());
                    }
                    Op::MarkBad(i) if !held.is_empty() => {
                        let pair = held.swap_remove(i % held.len());
                        prop_assert_eq!(alloc.mark_bad(pair), Ok(()));
                        bad.insert(pair);
                    }
                    Op::Reinstate => {
                        alloc.reinstate_bad();
                        bad.clear();
                    }
                    Op::Free(_) | Op::MarkBad(_) => {}
                }
                prop_assert_eq!(alloc.in_use(), held.len());
                prop_assert_eq!(alloc.n_bad(), bad.len());
                prop_assert_eq!(alloc.n_free() + held.len() + bad.len(), alloc.capacity());
            }
        }
    }
}
