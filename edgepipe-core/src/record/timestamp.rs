//! Event timestamps: nanoseconds since the Unix epoch, read from every form the
//! seed's Python writes and written as ISO-8601 UTC.
//!
//! Parsing is hand-written rather than done by a date crate: it sits on the hot
//! path of every record, it must accept exactly Python's `datetime.isoformat()`
//! family (with or without fraction, offset or `Z`, `T` or space), and the civil
//! calendar arithmetic it needs is a few lines.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// A point in time with nanosecond precision, always UTC.
///
/// Covers 1677-09-21 to 2262-04-11 (the range of an `i64` of nanoseconds);
/// anything outside is refused with [`Error::InvalidTimestamp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    nanos: i64,
}

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp { nanos: 0 };

    /// From nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Timestamp { nanos }
    }

    /// From milliseconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        millis.checked_mul(1_000_000).map(Self::from_unix_nanos)
    }

    /// From whole seconds since the Unix epoch; `None` when out of range.
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        seconds
            .checked_mul(NANOS_PER_SECOND)
            .map(Self::from_unix_nanos)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        Timestamp { nanos }
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.nanos
    }

    /// This time plus `duration`, clamped at the latest representable time.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        Timestamp {
            nanos: self.nanos.saturating_add(nanos),
        }
    }

    /// The time elapsed from `earlier` to this time; zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let nanos = self.nanos.saturating_sub(earlier.nanos).max(0);
        Duration::from_nanos(nanos as u64)
    }

    /// Milliseconds since the Unix epoch, rounded towards negative infinity.
    pub const fn unix_millis(self) -> i64 {
        self.nanos.div_euclid(1_000_000)
    }

    /// Seconds since the Unix epoch as a float (what Python's `datetime.timestamp()` gives).
    pub fn unix_seconds_f64(self) -> f64 {
        self.nanos as f64 / NANOS_PER_SECOND as f64
    }

    /// Reads an epoch number, choosing the unit by magnitude: below 10^11 it is
    /// seconds (10^11 s is the year 5138), below 10^14 milliseconds, below 10^17
    /// microseconds, otherwise nanoseconds. Fractions are kept to the nanosecond.
    pub fn from_epoch_number(value: f64) -> Result<Self> {
        let invalid = |reason| Error::InvalidTimestamp {
            input: value.to_string(),
            reason,
        };
        if !value.is_finite() {
            return Err(invalid("epoch number is not finite"));
        }
        let magnitude = value.abs();
        let nanos_per_unit: i64 = if magnitude < 1e11 {
            1_000_000_000
        } else if magnitude < 1e14 {
            1_000_000
        } else if magnitude < 1e17 {
            1_000
        } else {
            1
        };
        if magnitude >= 9.2e18 {
            return Err(invalid("outside the supported range 1677..2262"));
        }
        // Whole units and the fraction separately: the product as one f64 would
        // lose the fraction (2^53 ns is only 104 days). A float in seconds carries
        // about a microsecond of precision, so its fraction is rounded to the
        // microsecond, as Python's `datetime.fromtimestamp` does.
        let whole = value.trunc();
        let fraction = value - whole;
        let fraction_nanos = if nanos_per_unit == 1_000_000_000 {
            (fraction * 1e6).round() as i64 * 1_000
        } else {
            (fraction * nanos_per_unit as f64).round() as i64
        };
        (whole as i64)
            .checked_mul(nanos_per_unit)
            .and_then(|nanos| nanos.checked_add(fraction_nanos))
            .map(Timestamp::from_unix_nanos)
            .ok_or_else(|| invalid("outside the supported range 1677..2262"))
    }

    /// Reads an integer epoch number exactly, with the unit rules of
    /// [`Timestamp::from_epoch_number`].
    pub fn from_epoch_integer(value: i64) -> Result<Self> {
        let magnitude = value.unsigned_abs();
        let nanos_per_unit: i64 = if magnitude < 100_000_000_000 {
            1_000_000_000
        } else if magnitude < 100_000_000_000_000 {
            1_000_000
        } else if magnitude < 100_000_000_000_000_000 {
            1_000
        } else {
            1
        };
        value
            .checked_mul(nanos_per_unit)
            .map(Self::from_unix_nanos)
            .ok_or_else(|| Error::InvalidTimestamp {
                input: value.to_string(),
                reason: "outside the supported range 1677..2262",
            })
    }

    /// Parses ISO-8601 / RFC 3339 as Python writes it:
    /// `YYYY-MM-DD[T ]HH:MM[:SS[.fffffffff]][Z|±HH[:MM[:SS]]|±HHMM]`.
    ///
    /// A timestamp without an offset is taken as UTC, which is what the seed's
    /// `datetime.utcnow().isoformat()` means.
    pub fn parse(text: &str) -> Result<Self> {
        parse_iso8601(text.as_bytes()).map_err(|reason| Error::InvalidTimestamp {
            input: text.to_owned(),
            reason,
        })
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` into `out`, using the
    /// fewest groups of three fraction digits that keep the value exact, so a
    /// millisecond timestamp read from `...00.100Z` is written back byte for byte.
    pub fn write_iso8601(self, out: &mut String) {
        let mut buffer = [0u8; 32];
        let len = self.format_into(&mut buffer);
        // Only ASCII digits and separators are written.
        out.push_str(std::str::from_utf8(&buffer[..len]).unwrap_or_default());
    }

    /// The ISO-8601 text as a new string.
    pub fn to_iso8601(self) -> String {
        let mut out = String::with_capacity(30);
        self.write_iso8601(&mut out);
        out
    }

    fn format_into(self, buffer: &mut [u8; 32]) -> usize {
        let seconds = self.nanos.div_euclid(NANOS_PER_SECOND);
        let fraction = self.nanos.rem_euclid(NANOS_PER_SECOND) as u32;
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);

        let mut out = AsciiWriter { buffer, len: 0 };
        // The supported range keeps the year within 1677..=2262: always four digits.
        out.digits(year as u32, 4);
        out.byte(b'-');
        out.digits(month, 2);
        out.byte(b'-');
        out.digits(day, 2);
        out.byte(b'T');
        out.digits(second_of_day / 3600, 2);
        out.byte(b':');
        out.digits(second_of_day / 60 % 60, 2);
        out.byte(b':');
        out.digits(second_of_day % 60, 2);
        if fraction != 0 {
            out.byte(b'.');
            if fraction.is_multiple_of(1_000_000) {
                out.digits(fraction / 1_000_000, 3);
            } else if fraction.is_multiple_of(1_000) {
                out.digits(fraction / 1_000, 6);
            } else {
                out.digits(fraction, 9);
            }
        }
        out.byte(b'Z');
        out.len
    }
}

/// Fixed-width ASCII output into a stack buffer.
struct AsciiWriter<'a> {
    buffer: &'a mut [u8; 32],
    len: usize,
}

impl AsciiWriter<'_> {
    fn byte(&mut self, byte: u8) {
        self.buffer[self.len] = byte;
        self.len += 1;
    }

    fn digits(&mut self, mut value: u32, width: usize) {
        for index in (0..width).rev() {
            self.buffer[self.len + index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0u8; 32];
        let len = self.format_into(&mut buffer);
        formatter.write_str(std::str::from_utf8(&buffer[..len]).map_err(|_| fmt::Error)?)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Timestamp::parse(text)
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number counted from 1970-01-01 (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(year) => 29,
        _ => 28,
    }
}

/// A cursor over ASCII bytes with the few reads ISO-8601 needs.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn digits(&mut self, count: usize, what: &'static str) -> Result<u32, &'static str> {
        let end = self.position + count;
        let slice = self.bytes.get(self.position..end).ok_or(what)?;
        let mut value = 0u32;
        for &byte in slice {
            if !byte.is_ascii_digit() {
                return Err(what);
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        self.position = end;
        Ok(value)
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), &'static str> {
        if self.peek() == Some(byte) {
            self.position += 1;
            Ok(())
        } else {
            Err(what)
        }
    }
}

fn parse_iso8601(bytes: &[u8]) -> Result<Timestamp, &'static str> {
    let mut cursor = Cursor { bytes, position: 0 };
    let year = i64::from(cursor.digits(4, "expected a four-digit year")?);
    cursor.expect(b'-', "expected '-' after the year")?;
    let month = cursor.digits(2, "expected a two-digit month")?;
    cursor.expect(b'-', "expected '-' after the month")?;
    let day = cursor.digits(2, "expected a two-digit day")?;
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("day out of range for the month");
    }
    match cursor.peek() {
        Some(b'T' | b't' | b' ') => cursor.position += 1,
        _ => return Err("expected 'T' or ' ' between date and time"),
    }
    let hour = cursor.digits(2, "expected a two-digit hour")?;
    cursor.expect(b':', "expected ':' after the hour")?;
    let minute = cursor.digits(2, "expected two-digit minutes")?;
    let mut second = 0;
    let mut fraction_nanos = 0u32;
    if cursor.peek() == Some(b':') {
        cursor.position += 1;
        second = cursor.digits(2, "expected two-digit seconds")?;
        if matches!(cursor.peek(), Some(b'.' | b',')) {
            cursor.position += 1;
            let start = cursor.position;
            while cursor.peek().is_some_and(|b| b.is_ascii_digit()) {
                cursor.position += 1;
            }
            let digits = &bytes[start..cursor.position];
            if digits.is_empty() {
                return Err("expected digits after the decimal point");
            }
            if digits.len() > 9 {
                return Err("more than 9 fraction digits (finer than a nanosecond)");
            }
            for &digit in digits {
                fraction_nanos = fraction_nanos * 10 + u32::from(digit - b'0');
            }
            fraction_nanos *= 10u32.pow(9 - digits.len() as u32);
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("time of day out of range");
    }
    let offset_seconds = match cursor.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            cursor.position += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            cursor.position += 1;
            let offset_hours = cursor.digits(2, "expected a two-digit offset hour")?;
            let mut offset_minutes = 0;
            let mut offset_secs = 0;
            if cursor.peek() == Some(b':') {
                cursor.position += 1;
                offset_minutes = cursor.digits(2, "expected two-digit offset minutes")?;
                if cursor.peek() == Some(b':') {
                    cursor.position += 1;
                    offset_secs = cursor.digits(2, "expected two-digit offset seconds")?;
                }
            } else if cursor.peek().is_some_and(|b| b.is_ascii_digit()) {
                offset_minutes = cursor.digits(2, "expected two-digit offset minutes")?;
            }
            if offset_hours > 23 || offset_minutes > 59 || offset_secs > 59 {
                return Err("offset out of range");
            }
            let magnitude = i64::from(offset_hours * 3600 + offset_minutes * 60 + offset_secs);
            if sign == b'-' { -magnitude } else { magnitude }
        }
        Some(_) => return Err("unexpected text after the time"),
    };
    if cursor.position != bytes.len() {
        return Err("unexpected text after the offset");
    }
    let days = days_from_civil(year, month, day);
    let seconds =
        days * SECONDS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    seconds
        .checked_mul(NANOS_PER_SECOND)
        .and_then(|nanos| nanos.checked_add(i64::from(fraction_nanos)))
        .map(Timestamp::from_unix_nanos)
        .ok_or("outside the supported range 1677..2262")
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn parse(text: &str) -> i64 {
        Timestamp::parse(text).unwrap().unix_nanos()
    }

    #[test]
    fn reads_every_form_python_isoformat_writes() {
        let base = START_MS * 1_000_000;
        assert_eq!(parse("2026-01-01T00:00:00"), base);
        assert_eq!(parse("2026-01-01T00:00:00.123456"), base + 123_456_000);
        assert_eq!(parse("2026-01-01T00:00:00+00:00"), base);
        assert_eq!(parse("2026-01-01T00:00:00.5+00:00"), base + 500_000_000);
        assert_eq!(parse("2026-01-01T02:00:00+02:00"), base);
        assert_eq!(parse("2025-12-31T19:00:00-05:00"), base);
        assert_eq!(parse("2026-01-01T05:30:00+0530"), base);
        assert_eq!(parse("2026-01-01T00:00:00.100Z"), base + 100_000_000);
        assert_eq!(parse("2026-01-01 00:00:00"), base);
        assert_eq!(parse("2026-01-01T00:00"), base);
        assert_eq!(parse("2026-01-01T00:00:00.000000001Z"), base + 1);
    }

    #[test]
    fn writes_utc_with_the_fewest_exact_fraction_groups() {
        let at = |nanos| Timestamp::from_unix_nanos(nanos).to_iso8601();
        let base = START_MS * 1_000_000;
        assert_eq!(at(base), "2026-01-01T00:00:00Z");
        assert_eq!(at(base + 100_000_000), "2026-01-01T00:00:00.100Z");
        assert_eq!(at(base + 123_456_000), "2026-01-01T00:00:00.123456Z");
        assert_eq!(at(base + 7), "2026-01-01T00:00:00.000000007Z");
        assert_eq!(at(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn refuses_malformed_and_out_of_range_text() {
        for bad in [
            "",
            "2026",
            "2026-13-01T00:00:00",
            "2026-02-29T00:00:00",
            "2026-01-01T24:00:00",
            "2026-01-01T00:00:00.",
            "2026-01-01T00:00:00.1234567890",
            "2026-01-01T00:00:00+25:00",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01X00:00:00",
            "3000-01-01T00:00:00",
            "26-01-01T00:00:00",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse("2024-02-29T00:00:00Z") % 1_000_000_000, 0);
    }

    #[test]
    fn epoch_numbers_pick_their_unit_by_magnitude() {
        let expected = START_MS * 1_000_000;
        assert_eq!(
            Timestamp::from_epoch_integer(START_MS / 1000)
                .unwrap()
                .unix_nanos(),
            expected
        );
        assert_eq!(
            Timestamp::from_epoch_integer(START_MS)
                .unwrap()
                .unix_nanos(),
            expected
        );
        assert_eq!(
            Timestamp::from_epoch_integer(START_MS * 1000)
                .unwrap()
                .unix_nanos(),
            expected
        );
        assert_eq!(
            Timestamp::from_epoch_integer(expected)
                .unwrap()
                .unix_nanos(),
            expected
        );
        assert_eq!(
            Timestamp::from_epoch_number(1_767_225_600.25)
                .unwrap()
                .unix_nanos(),
            expected + 250_000_000
        );
        assert!(Timestamp::from_epoch_number(f64::NAN).is_err());
        assert!(Timestamp::from_epoch_number(1e30).is_err());
    }

    #[test]
    fn civil_conversion_round_trips_across_the_range() {
        for days in (-106_751..106_751).step_by(97) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
