//! Client-side rate limiting: one token bucket per Ringba account and API family.
//!
//! Ringba states its limits as counts per window ("5 requests per second or 80 per minute" for
//! reporting), shared with people using the UI, so a burst that a plain `80/min` bucket allows
//! (80 at once, then 80 more as it refills) would break the per-minute limit. The bucket here is
//! sized from the windows instead: with capacity `c` and refill rate `r`, at most `c + r·w`
//! requests fit in any window `w`, so `c` and `r` are chosen to keep that under every limit.

use std::time::{Duration, Instant};

/// "At most `requests` in any `per`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

/// Ringba's reporting limit (call logs, exports): 5 per second and 80 per minute, per account.
pub const REPORTING: [RateLimit; 2] = [
    RateLimit {
        requests: 5,
        per: Duration::from_secs(1),
    },
    RateLimit {
        requests: 80,
        per: Duration::from_secs(60),
    },
];

/// Ringba's limit for details about specific calls: 200 per minute.
pub const CALL_DETAILS: [RateLimit; 1] = [RateLimit {
    requests: 200,
    per: Duration::from_secs(60),
}];

#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket that never lets more requests through than any of `limits` allows.
    pub fn within(limits: &[RateLimit], now: Instant) -> Self {
        assert!(!limits.is_empty(), "a bucket needs at least one limit");
        // A burst of a tenth of the tightest count: every token of burst is a token less of
        // rate, so a small one keeps the sustained rate within about 10 % of the limit.
        let capacity = limits
            .iter()
            .map(|l| (l.requests / 10).max(1))
            .min()
            .expect("limits") as f64;
        let per_second = limits
            .iter()
            .map(|l| (f64::from(l.requests) - capacity).max(0.0) / l.per.as_secs_f64())
            .fold(f64::INFINITY, f64::min);
        assert!(
            per_second > 0.0,
            "limits of one request per window leave no rate"
        );
        Self {
            capacity,
            per_second,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes a token at `now`, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        // The tolerance absorbs rounding in the wait handed out below.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }

    /// Empties the bucket: the server said we are over its limit (it counts requests we do not
    /// see, such as people using the UI), so nothing goes out until tokens refill.
    pub fn drain(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy callers for ten virtual minutes: every window of every limit holds at most its
    /// count, and the sustained rate stays close to the tightest limit.
    fn check(limits: &[RateLimit]) -> usize {
        let start = Instant::now();
        let mut bucket = TokenBucket::within(limits, start);
        let mut now = start;
        let mut sent = Vec::new();
        while now < start + Duration::from_secs(600) {
            match bucket.take(now) {
                Ok(()) => sent.push(now),
                Err(wait) => now += wait,
            }
        }
        for limit in limits {
            for (i, first) in sent.iter().enumerate() {
                let in_window = sent[i..]
                    .iter()
                    .take_while(|t| t.duration_since(*first) < limit.per)
                    .count();
                assert!(
                    in_window <= limit.requests as usize,
                    "{in_window} requests within {:?} (limit {})",
                    limit.per,
                    limit.requests
                );
            }
        }
        sent.len()
    }

    #[test]
    fn never_exceeds_any_window() {
        let reporting = check(&REPORTING);
        // 10 minutes at 80/min would be 800; the bucket keeps at least 95 % of that.
        assert!(reporting >= 760, "{reporting}");
        let details = check(&CALL_DETAILS);
        assert!(details >= 1800, "{details}");
    }

    #[test]
    fn waits_are_exact_and_drain_stops_bursts() {
        let start = Instant::now();
        let mut bucket = TokenBucket::within(&REPORTING, start);
        assert!(bucket.take(start).is_ok());
        let wait = bucket.take(start).unwrap_err();
        assert!(bucket.take(start + wait).is_ok());
        bucket.drain(start + wait);
        assert!(bucket.take(start + wait).is_err());
    }
}
