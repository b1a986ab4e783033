//! When to try a failed batch again, and when to stop trying an endpoint for a while.

use std::time::Duration;

use crate::record::Timestamp;
use crate::record::timestamp::{days_from_civil, days_in_month};

/// Why a send failed, as the delivery worker acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// Trying again may succeed: a timeout, a refused or reset connection, a 5xx,
    /// 408 or 429. `retry_after` is the receiver's own hint (HTTP `Retry-After`),
    /// which the next attempt honours as a floor.
    Retryable {
        /// What happened, for logs and metrics.
        reason: String,
        /// The receiver asked not to be called again before this much time.
        retry_after: Option<Duration>,
    },
    /// The receiver could not be reached at all: connection refused or reset, DNS,
    /// TLS, or no answer before the timeout. Retried like `Retryable`; when it is
    /// the answer to the circuit breaker's probe, the batch is handed back to the
    /// queue without counting an attempt, so a long outage cannot dead-letter it.
    Unreachable {
        /// What happened, for logs and metrics.
        reason: String,
    },
    /// Trying again cannot help (any other 4xx: a bad key, a batch the receiver
    /// refuses): the batch is dead-lettered with the reason at once.
    Permanent {
        /// What happened, for logs and the dead-letter listing.
        reason: String,
    },
}

impl SendFailure {
    /// A retryable failure without a hint.
    pub fn retryable(reason: impl Into<String>) -> Self {
        SendFailure::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// An unreachable receiver.
    pub fn unreachable(reason: impl Into<String>) -> Self {
        SendFailure::Unreachable {
            reason: reason.into(),
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>) -> Self {
        SendFailure::Permanent {
            reason: reason.into(),
        }
    }

    /// Classifies an HTTP response: `None` for 2xx (delivered), retryable for
    /// 408, 429 and 5xx (with `retry_after` from the `Retry-After` header, see
    /// [`parse_retry_after`]), permanent for everything else.
    pub fn from_http_status(
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Option<Self> {
        let reason = || {
            let body = body.trim();
            if body.is_empty() {
                format!("HTTP {status}")
            } else {
                // The body is the receiver's words; keep enough to explain, not a page.
                let shown: String = body.chars().take(200).collect();
                format!("HTTP {status}: {shown}")
            }
        };
        match status {
            200..=299 => None,
            408 | 429 | 500..=599 => Some(SendFailure::Retryable {
                reason: reason(),
                retry_after,
            }),
            _ => Some(SendFailure::Permanent { reason: reason() }),
        }
    }

    /// What happened.
    pub fn reason(&self) -> &str {
        match self {
            SendFailure::Retryable { reason, .. }
            | SendFailure::Unreachable { reason }
            | SendFailure::Permanent { reason } => reason,
        }
    }
}

/// Reads an HTTP `Retry-After` value, either form, relative to the wall clock
/// (see [`parse_retry_after_at`]).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, Timestamp::now())
}

/// Reads an HTTP `Retry-After` value (RFC 9110 §10.2.3) as a wait from `now`:
/// delta-seconds (`120`), or an HTTP-date in the IMF-fixdate form
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), which is what RFC 9110 requires senders to
/// produce. A date already past gives a zero wait. Anything else (negative or
/// fractional seconds, the obsolete RFC 850 and asctime date forms) gives `None`,
/// and the policy's own backoff applies.
///
/// ```
/// use std::time::Duration;
/// use edgepipe_core::deliver::parse_retry_after_at;
/// use edgepipe_core::Timestamp;
///
/// let now = Timestamp::parse("2015-10-21T07:27:00Z")?;
/// assert_eq!(parse_retry_after_at("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after_at("Wed, 21 Oct 2015 07:28:00 GMT", now),
///     Some(Duration::from_secs(60)),
/// );
/// assert_eq!(parse_retry_after_at("soon", now), None);
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
pub fn parse_retry_after_at(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // All digits: a value too large for u64 is still "a very long time".
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_imf_fixdate(value)?;
    let now = i128::from(now.unix_nanos());
    let wait = (i128::from(at) * 1_000_000_000 - now).max(0);
    Some(Duration::from_nanos(
        u64::try_from(wait).unwrap_or(u64::MAX),
    ))
}

/// Unix seconds of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT` (always 29
/// bytes, fixed positions, GMT only).
fn parse_imf_fixdate(text: &str) -> Option<i64> {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let bytes = text.as_bytes();
    if bytes.len() != 29
        || &bytes[3..5] != b", "
        || bytes[7] != b' '
        || bytes[11] != b' '
        || bytes[16] != b' '
        || bytes[19] != b':'
        || bytes[22] != b':'
        || &bytes[25..] != b" GMT"
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = &bytes[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0, |value, digit| value * 10 + u32::from(digit - b'0')),
        )
    };
    let weekday = DAYS.iter().position(|name| *name == &bytes[0..3])?;
    let day = number(5..7)?;
    let month = MONTHS.iter().position(|name| *name == &bytes[8..11])? as u32 + 1;
    let year = i64::from(number(12..16)?);
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    // 60 is a leap second, which Unix time folds into the next minute's first.
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 3); a wrong day name means a malformed date.
    if usize::try_from((days + 3).rem_euclid(7)).ok()? != weekday {
        return None;
    }
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// Exponential backoff with full jitter: before attempt `n + 1` the worker waits a
/// uniformly random time in `[0, min(max_delay, base_delay × 2^(n−1))]`.
///
/// Full jitter spreads a fleet's retries after a shared outage instead of having
/// every gateway hit the endpoint at the same instants. A receiver's
/// `Retry-After` is a floor on the wait.
///
/// ```
/// use std::time::Duration;
/// use edgepipe_core::deliver::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::default(); // the seed's: 1 s base, 300 s max
/// assert_eq!(policy.ceiling(1), Duration::from_secs(1));
/// assert_eq!(policy.ceiling(4), Duration::from_secs(8));
/// assert_eq!(policy.ceiling(30), Duration::from_secs(300));
///
/// let mut jitter = Jitter::seeded(7);
/// let wait = policy.delay(4, None, &mut jitter);
/// assert!(wait <= Duration::from_secs(8));
/// let wait = policy.delay(4, Some(Duration::from_secs(60)), &mut jitter);
/// assert!(wait >= Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first retry's wait.
    pub base_delay: Duration,
    /// No wait is longer than this (unless the receiver's `Retry-After` asks for more).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// The seed's `DataDeliveryService` figures: base 1 s, max 300 s.
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The longest wait after `attempts` failed attempts (`attempts ≥ 1`).
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let nanos = self
            .base_delay
            .as_nanos()
            .saturating_mul(u128::from(factor));
        let max = self.max_delay.as_nanos();
        Duration::from_nanos(u64::try_from(nanos.min(max)).unwrap_or(u64::MAX))
    }

    /// The wait after `attempts` failed attempts: a uniform draw in `[0, ceiling]`,
    /// raised to `retry_after` when the receiver gave one.
    pub fn delay(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        jitter: &mut Jitter,
    ) -> Duration {
        let ceiling = self.ceiling(attempts);
        let drawn = jitter.below(u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX));
        let drawn = Duration::from_nanos(drawn);
        match retry_after {
            Some(floor) => drawn.max(floor),
            None => drawn,
        }
    }

    /// `now` plus [`delay`](Self::delay).
    pub fn retry_at(
        &self,
        now: Timestamp,
        attempts: u32,
        retry_after: Option<Duration>,
        jitter: &mut Jitter,
    ) -> Timestamp {
        now.saturating_add(self.delay(attempts, retry_after, jitter))
    }
}

/// The random draws behind full jitter: SplitMix64, seeded once. Jitter needs
/// spread, not unpredictability, and a seed makes tests and replays repeatable.
#[derive(Clone, Debug)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator with a fixed seed (tests, replays).
    pub fn seeded(seed: u64) -> Self {
        Jitter { state: seed }
    }

    /// A generator seeded from the operating system's randomness, so two gateways
    /// started at the same instant still spread their retries.
    pub fn from_entropy() -> Self {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&bytes[..8]);
        Jitter::seeded(u64::from_le_bytes(seed))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in `[0, bound]` (inclusive). The modulo bias is below 2^-32 for the
    /// nanosecond bounds used here, far under what jitter could notice.
    pub fn below(&mut self, bound: u64) -> u64 {
        match bound.checked_add(1) {
            Some(span) => self.next_u64() % span,
            None => self.next_u64(),
        }
    }
}

/// Stops calling an endpoint that keeps failing, and tries it again after a
/// revive period with a single probe.
///
/// While the breaker is open the worker sends nothing, so an outage costs the
/// queued batches no attempts: they wait in the queue rather than burn through
/// their attempt limit against an endpoint that is down.
///
/// ```
/// use std::time::Duration;
/// use edgepipe_core::deliver::CircuitBreaker;
/// use edgepipe_core::Timestamp;
///
/// let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let mut breaker = CircuitBreaker::new(3, Duration::from_secs(30));
/// for _ in 0..3 {
///     assert!(breaker.allows(t0));
///     breaker.record_failure(t0);
/// }
/// assert!(!breaker.allows(t0)); // open: nothing is sent
/// let later = Timestamp::from_unix_seconds(1_700_000_030).unwrap();
/// assert!(breaker.allows(later)); // half open: one probe
/// breaker.record_success();
/// assert!(breaker.allows(later));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    open_after: u32,
    revive_after: Duration,
    consecutive_failures: u32,
    open_until: Option<Timestamp>,
}

impl CircuitBreaker {
    /// Opens after `open_after` consecutive retryable failures (at least 1) and
    /// stays open for `revive_after`.
    pub fn new(open_after: u32, revive_after: Duration) -> Self {
        CircuitBreaker {
            open_after: open_after.max(1),
            revive_after,
            consecutive_failures: 0,
            open_until: None,
        }
    }

    /// Whether a send may be made at `now`. After the revive period one probe is
    /// allowed; its outcome closes the breaker or opens it for another period.
    pub fn allows(&self, now: Timestamp) -> bool {
        match self.open_until {
            Some(until) => now >= until,
            None => true,
        }
    }

    /// When the breaker lets the next send through, if it is open.
    pub fn open_until(&self) -> Option<Timestamp> {
        self.open_until
    }

    /// A send succeeded (or failed permanently: the endpoint answered): close.
    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
    }

    /// A send failed retryably at `now`.
    pub fn record_failure(&mut self, now: Timestamp) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= self.open_after {
            self.open_until = Some(now.saturating_add(self.revive_after));
        }
    }
}
