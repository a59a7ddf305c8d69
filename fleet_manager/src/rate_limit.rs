//! Token bucket limiting how fast canisters are created (each creation spends the manager's
//! cycles, so an unbounded rate would let anyone drain it).

use candid::{CandidType, Decode, Encode};
use fleet_api::manager::RateLimit;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::Storable;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Tokens left and when they were last counted. A new token is earned every
/// `refill_period_secs`, up to `capacity`.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    pub tokens: u64,
    pub updated_at_ns: u64,
}

impl TokenBucket {
    pub fn full(limit: RateLimit, now_ns: u64) -> Self {
        TokenBucket {
            tokens: u64::from(limit.capacity),
            updated_at_ns: now_ns,
        }
    }

    /// Whether a limit is usable: a zero capacity or period would refuse or allow everything.
    pub fn valid(limit: RateLimit) -> bool {
        limit.capacity >= 1 && limit.refill_period_secs >= 1
    }

    fn refill(&mut self, limit: RateLimit, now_ns: u64) {
        let capacity = u64::from(limit.capacity);
        let period = limit.refill_period_secs.saturating_mul(NS_PER_SEC).max(1);
        if self.tokens >= capacity {
            // A full bucket earns nothing; start counting from now. Also clamps the tokens when
            // an admin lowered the capacity.
            self.tokens = capacity;
            self.updated_at_ns = now_ns;
            return;
        }
        let elapsed = now_ns.saturating_sub(self.updated_at_ns);
        let earned = elapsed / period;
        if earned == 0 {
            return;
        }
        self.tokens = self.tokens.saturating_add(earned).min(capacity);
        self.updated_at_ns = if self.tokens == capacity {
            now_ns
        } else {
            self.updated_at_ns + earned * period
        };
    }

    /// Takes one token, or tells after how many seconds (rounded up) one is available.
    pub fn try_take(&mut self, limit: RateLimit, now_ns: u64) -> Result<(), u64> {
        self.refill(limit, now_ns);
        if self.tokens > 0 {
            self.tokens -= 1;
            return Ok(());
        }
        let period = limit.refill_period_secs.saturating_mul(NS_PER_SEC);
        let wait_ns = (self.updated_at_ns + period).saturating_sub(now_ns);
        Err(wait_ns.div_ceil(NS_PER_SEC).max(1))
    }

    /// Gives a token back when the work it paid for did not happen (creation failed).
    pub fn refund(&mut self, limit: RateLimit) {
        self.tokens = (self.tokens + 1).min(u64::from(limit.capacity));
    }
}

impl Storable for TokenBucket {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(Encode!(self).expect("encoding a token bucket"))
    }
    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self).expect("encoding a token bucket")
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Decode!(bytes.as_ref(), TokenBucket).expect("stable token bucket is valid candid")
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

    #[test]
    fn a_full_bucket_allows_a_burst_of_capacity_then_refuses() {
        let mut b = TokenBucket::full(LIMIT, 0);
        assert_eq!(b.try_take(LIMIT, 0), Ok(()));
        assert_eq!(b.try_take(LIMIT, 0), Ok(()));
        assert_eq!(b.try_take(LIMIT, 0), Ok(()));
        assert_eq!(b.try_take(LIMIT, 0), Err(10));
        assert_eq!(b.tokens, 0);
    }

    #[test]
    fn tokens_come_back_one_per_period_and_retry_after_counts_down() {
        let mut b = TokenBucket::full(LIMIT, 0);
        for _ in 0..3 {
            b.try_take(LIMIT, 0).unwrap();
        }
        assert_eq!(b.try_take(LIMIT, 4 * S), Err(6));
        assert_eq!(b.try_take(LIMIT, 9 * S + 1), Err(1));
        assert_eq!(b.try_take(LIMIT, 10 * S), Ok(()));
        assert_eq!(b.try_take(LIMIT, 10 * S), Err(10));
        // 25 s later two periods have passed since the last count (at 10 s): two tokens.
        assert_eq!(b.try_take(LIMIT, 35 * S), Ok(()));
        assert_eq!(b.try_take(LIMIT, 35 * S), Ok(()));
        assert_eq!(b.try_take(LIMIT, 35 * S), Err(5));
    }

    #[test]
    fn refill_never_exceeds_capacity_and_refund_is_capped() {
        let mut b = TokenBucket::full(LIMIT, 0);
        b.try_take(LIMIT, 0).unwrap();
        b.try_take(LIMIT, 1_000 * S).unwrap();
        assert_eq!(b.tokens, 2);
        b.refund(LIMIT);
        b.refund(LIMIT);
        assert_eq!(b.tokens, 3);
    }

    #[test]
    fn lowering_the_capacity_clamps_stored_tokens() {
        let mut b = TokenBucket::full(LIMIT, 0);
        let small = RateLimit {
            capacity: 1,
            refill_period_secs: 10,
        };
        assert_eq!(b.try_take(small, 0), Ok(()));
        assert_eq!(b.try_take(small, 0), Err(10));
    }

    #[test]
    fn zero_capacity_or_period_is_invalid() {
        assert!(TokenBucket::valid(LIMIT));
        assert!(!TokenBucket::valid(RateLimit {
            capacity: 0,
            refill_period_secs: 10
        }));
        assert!(!TokenBucket::valid(RateLimit {
            capacity: 1,
            refill_period_secs: 0
        }));
    }
}
