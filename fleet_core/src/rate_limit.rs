//! The rate limit on canister creation (each creation spends the manager's cycles, so an
//! unbounded rate would let anyone drain it). The bucket is the rollout engine's
//! ([`rollout_core::limiter::TokenBucket`]): one algorithm for pipeline starts and creations.
//! Only its state is stored; its rate and burst come from the settings at each use, so an admin's
//! change applies at once and keeps what was already taken.

use crate::stored::RateLimit;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::Storable;
use rollout_core::limiter::TokenBucket;
use std::borrow::Cow;

const NS_PER_SEC: u64 = 1_000_000_000;

/// The creation bucket's stored state: GCRA's theoretical arrival time (0: full).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreationLimiter {
    tat: u64,
}

/// Whether a limit is usable: a zero capacity or period would refuse or allow everything.
pub fn valid(limit: RateLimit) -> bool {
    limit.capacity >= 1 && limit.refill_period_secs >= 1
}

impl CreationLimiter {
    fn bucket(self, limit: RateLimit) -> TokenBucket {
        let interval = limit.refill_period_secs.saturating_mul(NS_PER_SEC);
        TokenBucket::resume(interval, limit.capacity, self.tat)
    }

    /// Takes one token, or tells after how many seconds (rounded up) one is available.
    pub fn try_take(&mut self, limit: RateLimit, now_ns: u64) -> Result<(), u64> {
        let mut bucket = self.bucket(limit);
        if bucket.try_take(now_ns) {
            self.tat = bucket.tat();
            return Ok(());
        }
        let wait_ns = bucket.next_available().saturating_sub(now_ns);
        Err(wait_ns.div_ceil(NS_PER_SEC).max(1))
    }

    /// Gives a token back when the work it paid for did not happen (creation failed).
    pub fn refund(&mut self, limit: RateLimit) {
        let mut bucket = self.bucket(limit);
        bucket.refund();
        self.tat = bucket.tat();
    }

    /// Whether a creation would be allowed at `now_ns`.
    pub fn available(self, limit: RateLimit, now_ns: u64) -> bool {
        self.bucket(limit).available(now_ns)
    }
}

/// Eight bytes, little-endian. A value of the earlier layout (a candid record of tokens and a
/// time) reads as a full bucket: forgetting a rate limit's history once is harmless.
impl Storable for CreationLimiter {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.tat.to_le_bytes().to_vec())
    }
    fn into_bytes(self) -> Vec<u8> {
        self.tat.to_le_bytes().to_vec()
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let tat = <[u8; 8]>::try_from(bytes.as_ref()).map_or(0, u64::from_le_bytes);
        CreationLimiter { tat }
    }
    const BOUND: Bound = Bound::Unbounded;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        capacity: 3,
        refill_period_secs: 10,
    };
    const S: u64 = NS_PER_SEC;
    const T0: u64 = 1_000 * S;

    #[test]
    fn a_full_bucket_allows_a_burst_of_capacity_then_refuses() {
        let mut b = CreationLimiter::default();
        for _ in 0..3 {
            assert_eq!(b.try_take(LIMIT, T0), Ok(()));
        }
        assert_eq!(b.try_take(LIMIT, T0), Err(10));
        assert!(!b.available(LIMIT, T0));
    }

    #[test]
    fn tokens_come_back_one_per_period_and_retry_after_counts_down() {
        let mut b = CreationLimiter::default();
        for _ in 0..3 {
            b.try_take(LIMIT, T0).unwrap();
        }
        assert_eq!(b.try_take(LIMIT, T0 + 4 * S), Err(6));
        assert_eq!(b.try_take(LIMIT, T0 + 9 * S + 1), Err(1));
        assert_eq!(b.try_take(LIMIT, T0 + 10 * S), Ok(()));
        assert_eq!(b.try_take(LIMIT, T0 + 10 * S), Err(10));
        // Two more periods: two more tokens, and no more.
        assert_eq!(b.try_take(LIMIT, T0 + 30 * S), Ok(()));
        assert_eq!(b.try_take(LIMIT, T0 + 30 * S), Ok(()));
        assert_eq!(b.try_take(LIMIT, T0 + 30 * S), Err(10));
    }

    #[test]
    fn a_refund_returns_the_token_and_never_exceeds_capacity() {
        let mut b = CreationLimiter::default();
        for _ in 0..3 {
            b.try_take(LIMIT, T0).unwrap();
        }
        b.refund(LIMIT);
        assert_eq!(b.try_take(LIMIT, T0), Ok(()));
        assert_eq!(b.try_take(LIMIT, T0), Err(10));
        // A bucket idle long enough is full; refunds add nothing to it.
        let later = T0 + 1_000 * S;
        b.refund(LIMIT);
        b.refund(LIMIT);
        let allowed = (0..6).filter(|_| b.try_take(LIMIT, later).is_ok()).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn lowering_the_capacity_applies_at_once() {
        let mut b = CreationLimiter::default();
        let small = RateLimit {
            capacity: 1,
            refill_period_secs: 10,
        };
        assert_eq!(b.try_take(small, T0), Ok(()));
        assert_eq!(b.try_take(small, T0), Err(10));
    }

    #[test]
    fn zero_capacity_or_period_is_invalid() {
        assert!(valid(LIMIT));
        assert!(!valid(RateLimit {
            capacity: 0,
            refill_period_secs: 10
        }));
        assert!(!valid(RateLimit {
            capacity: 1,
            refill_period_secs: 0
        }));
    }

    #[test]
    fn the_state_round_trips_and_an_earlier_layout_reads_as_full() {
        let mut b = CreationLimiter::default();
        b.try_take(LIMIT, T0).unwrap();
        assert_eq!(CreationLimiter::from_bytes(b.to_bytes()), b);
        let old = candid::encode_args((3u64, 7u64)).unwrap();
        assert_eq!(
            CreationLimiter::from_bytes(Cow::Owned(old)),
            CreationLimiter::default()
        );
    }
}
