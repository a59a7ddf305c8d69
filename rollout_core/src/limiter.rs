//! Token bucket for pipeline starts, in the GCRA form: one `u64` of state and exact integer
//! arithmetic, so it persists trivially and behaves the same natively and in wasm.

use candid::CandidType;
use serde::{Deserialize, Serialize};

use crate::{Nanos, MINUTE};

/// A token bucket of capacity `burst` refilled at `per_minute` tokens per minute.
///
/// Guarantee: in any half-open window of length L, at most
/// `burst + floor(L / interval)` takes succeed, where `interval = ceil(1 min / per_minute)`,
/// so never more than `burst + per_minute * L / 1 min`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    interval_ns: Nanos,
    tolerance_ns: Nanos,
    /// Theoretical arrival time of the next token when the bucket is empty.
    tat: Nanos,
}

impl TokenBucket {
    /// `per_minute` and `burst` are at least 1 (plan validation ensures it); 0 is taken as 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let interval_ns = MINUTE.div_ceil(per_minute.max(1) as u64);
        TokenBucket {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst.max(1) as u64 - 1),
            tat: 0,
        }
    }

    /// A bucket that earns one token every `interval_ns` up to `burst`, continuing from the
    /// state `tat` of an earlier bucket (0: full). Rebuilt from its settings at each use, a
    /// bucket whose owner changed its rate or burst keeps what was already taken.
    pub fn resume(interval_ns: Nanos, burst: u32, tat: Nanos) -> Self {
        let interval_ns = interval_ns.max(1);
        TokenBucket {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(burst.max(1) as u64 - 1),
            tat,
        }
    }

    /// The state to persist and hand to [`TokenBucket::resume`].
    pub fn tat(&self) -> Nanos {
        self.tat
    }

    /// Gives back the token of the last take, when the work it paid for did not happen. The
    /// bucket never holds more than `burst` tokens: a refund into a full bucket does nothing.
    pub fn refund(&mut self) {
        self.tat = self.tat.saturating_sub(self.interval_ns);
    }

    /// Whether a token is available at `now`, without taking it.
    pub fn available(&self, now: Nanos) -> bool {
        self.tat <= now.saturating_add(self.tolerance_ns)
    }

    /// Takes a token if one is available at `now`.
    pub fn try_take(&mut self, now: Nanos) -> bool {
        if !self.available(now) {
            return false;
        }
        self.tat = self.tat.max(now).saturating_add(self.interval_ns);
        true
    }

    /// Earliest time at which a token will be available.
    pub fn next_available(&self) -> Nanos {
        self.tat.saturating_sub(self.tolerance_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SECOND;

    #[test]
    fn burst_then_steady_rate() {
        let mut b = TokenBucket::new(60, 5);
        let t0 = 1_000 * SECOND;
        // A full bucket allows exactly `burst` at once.
        assert_eq!((0..10).filter(|_| b.try_take(t0)).count(), 5);
        // Then one per second.
        assert!(!b.try_take(t0 + SECOND / 2));
        assert!(b.try_take(t0 + SECOND));
        assert!(!b.try_take(t0 + SECOND));
        assert_eq!(b.next_available(), t0 + 2 * SECOND);
    }

    #[test]
    fn a_refund_gives_the_token_back_but_never_more_than_burst() {
        let t0 = 1_000 * SECOND;
        let mut b = TokenBucket::resume(10 * SECOND, 2, 0);
        assert!(b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        b.refund();
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        // Refunds into a full bucket (long idle) add nothing beyond burst.
        let later = t0 + 1_000 * SECOND;
        let mut b = TokenBucket::resume(10 * SECOND, 2, b.tat());
        b.refund();
        b.refund();
        assert_eq!((0..5).filter(|_| b.try_take(later)).count(), 2);
    }

    #[test]
    fn window_bound_holds_under_greedy_use() {
        // Take greedily every 10 ms for 5 minutes; check every 1-minute window.
        let (rate, burst) = (100u32, 7u32);
        let mut b = TokenBucket::new(rate, burst);
        let mut taken = Vec::new();
        let mut t = 5 * SECOND;
        while t < 5 * SECOND + 5 * MINUTE {
            while b.try_take(t) {
                taken.push(t);
            }
            t += 10_000_000;
        }
        for (i, &start) in taken.iter().enumerate() {
            let in_window = taken[i..]
                .iter()
                .take_while(|&&x| x < start + MINUTE)
                .count();
            assert!(
                in_window as u32 <= rate + burst,
                "{in_window} starts in a minute"
            );
        }
        // The long-run rate is reached, not just bounded.
        assert!(taken.len() as u32 >= 5 * rate);
    }
}
