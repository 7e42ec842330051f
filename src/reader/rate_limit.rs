//! The rate limit: a token bucket per chat client, and what happens past it.
//!
//! Owned by one reader thread (no locks): a message over the limit is not sent to the
//! broadcaster at all, its sender hears about it at most once a second, and a client that
//! keeps flooding for `flood_timeout` is disconnected with 1008.

use std::time::{Duration, Instant};

use super::End;
use crate::config::Config;
use crate::event::{ConnId, Event};
use crate::wire::close_code;

/// A client dropped by the rate limit hears about it at most this often.
const RATE_NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// A flood ends when no message has been dropped for this long.
const FLOOD_QUIET: Duration = Duration::from_secs(1);

/// The rate limit's answer for one message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Allow,
    /// Not sent; `notify` when the sender should hear about it.
    Drop {
        notify: bool,
    },
    /// Over the limit for too long: disconnect.
    Flooding,
}

/// A token bucket per client: `rate` messages a second on average, `burst` at once. A client
/// whose messages keep being dropped for `flood_timeout` is flooding.
pub(super) struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last_refill: Instant,
    flood_since: Option<Instant>,
    last_drop: Option<Instant>,
    last_notice: Option<Instant>,
    flood_timeout: Duration,
}

impl RateLimiter {
    pub(super) fn new(config: &Config) -> Self {
        RateLimiter {
            rate_per_sec: f64::from(config.rate_limit_per_sec),
            burst: f64::from(config.rate_burst),
            tokens: f64::from(config.rate_burst),
            last_refill: Instant::now(),
            flood_since: None,
            last_drop: None,
            last_notice: None,
            flood_timeout: config.flood_timeout,
        }
    }

    pub(super) fn check(&mut self, now: Instant) -> Verdict {
        if self.rate_per_sec == 0.0 {
            return Verdict::Allow;
        }
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        self.last_refill = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let quiet = self
            .last_drop
            .is_none_or(|t| now.saturating_duration_since(t) >= FLOOD_QUIET);
        if quiet {
            self.flood_since = Some(now);
        }
        self.last_drop = Some(now);
        let since = self.flood_since.unwrap_or(now);
        if now.saturating_duration_since(since) >= self.flood_timeout {
            return Verdict::Flooding;
        }
        let notify = self
            .last_notice
            .is_none_or(|t| now.saturating_duration_since(t) >= RATE_NOTICE_INTERVAL);
        if notify {
            self.last_notice = Some(now);
        }
        Verdict::Drop { notify }
    }
}

/// The notice a client gets (at most once a second) when the rate limit drops its message.
pub(super) fn rate_limited(id: ConnId, config: &Config) -> Event {
    Event::Notice {
        id,
        code: "rate-limited",
        text: format!(
            "Slow down: at most {} messages a second (bursts of {}). \
             Messages over the limit are not sent.",
            config.rate_limit_per_sec, config.rate_burst
        ),
    }
}

pub(super) fn flooding() -> End {
    End::Close(
        close_code::POLICY_VIOLATION,
        "flooding: too many messages for too long".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> RateLimiter {
        let config = Config {
            rate_limit_per_sec: rate,
            rate_burst: burst,
            flood_timeout: Duration::from_secs(10),
            ..Config::default()
        };
        RateLimiter::new(&config)
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut l = limiter(5, 10);
        let t0 = l.last_refill;
        for _ in 0..10 {
            assert_eq!(l.check(t0), Verdict::Allow);
        }
        assert_eq!(l.check(t0), Verdict::Drop { notify: true });
        assert_eq!(l.check(t0), Verdict::Drop { notify: false });
        // 200 ms later one token is back.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(l.check(t1), Verdict::Allow);
        assert_eq!(l.check(t1), Verdict::Drop { notify: false });
        assert_eq!(l.check(t0 + Duration::from_millis(1300)), Verdict::Allow);
    }

    #[test]
    fn sustained_flooding_is_detected_and_a_pause_forgives() {
        let mut l = limiter(5, 10);
        let t0 = l.last_refill;
        let mut t = t0;
        let mut verdict = Verdict::Allow;
        // 100 messages a second for 11 seconds.
        for _ in 0..1100 {
            t += Duration::from_millis(10);
            verdict = l.check(t);
            if verdict == Verdict::Flooding {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Flooding);
        let flood_for = t - t0;
        assert!(flood_for >= Duration::from_secs(10) && flood_for < Duration::from_secs(11));

        let mut l = limiter(5, 10);
        let mut t = l.last_refill;
        // Bursts of 20 with 3-second pauses: dropped, never disconnected.
        for _ in 0..10 {
            for _ in 0..20 {
                assert_ne!(l.check(t), Verdict::Flooding);
            }
            t += Duration::from_secs(3);
        }
    }

    #[test]
    fn zero_rate_turns_the_limit_off() {
        let mut l = limiter(0, 0);
        let t = l.last_refill;
        assert!((0..10_000).all(|_| l.check(t) == Verdict::Allow));
    }
}
