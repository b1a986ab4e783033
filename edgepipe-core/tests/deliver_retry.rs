//! Retry policy, failure classification, circuit breaker and the directory sink.

use std::collections::HashSet;
use std::time::Duration;

use edgepipe_core::Timestamp;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::deliver::{
    CircuitBreaker, Delivered, DirectorySink, Jitter, RetryPolicy, SendFailure, Sink,
    file_name_part, parse_retry_after, parse_retry_after_at,
};
use edgepipe_core::record::json::parse_jsonl;
use proptest::prelude::*;

fn seconds(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds).unwrap()
}

#[test]
fn ceilings_double_from_the_base_and_stop_at_the_maximum() {
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(500),
        max_delay: seconds(10),
    };
    let ceilings: Vec<Duration> = (1..=8).map(|attempts| policy.ceiling(attempts)).collect();
    assert_eq!(
        ceilings,
        [
            Duration::from_millis(500),
            seconds(1),
            seconds(2),
            seconds(4),
            seconds(8),
            seconds(10),
            seconds(10),
            seconds(10)
        ]
    );
    assert_eq!(policy.ceiling(u32::MAX), seconds(10));
    assert_eq!(policy.ceiling(0), Duration::from_millis(500));
}

proptest! {
    #[test]
    fn every_delay_lies_between_the_floor_and_the_ceiling(
        base_ms in 1u64..10_000,
        max_ms in 1u64..1_000_000,
        attempts in 1u32..100,
        retry_after in proptest::option::of(0u64..1_000),
        seed: u64,
    ) {
        let policy = RetryPolicy { base_delay: Duration::from_millis(base_ms), max_delay: Duration::from_millis(max_ms) };
        let floor = retry_after.map(seconds);
        let delay = policy.delay(attempts, floor, &mut Jitter::seeded(seed));
        let ceiling = policy.ceiling(attempts);
        prop_assert!(ceiling <= Duration::from_millis(max_ms));
        match floor {
            Some(floor) => prop_assert!(delay >= floor && delay <= floor.max(ceiling)),
            None => prop_assert!(delay <= ceiling),
        }
    }

    #[test]
    fn file_name_parts_are_distinct_and_stay_inside_their_directory(a in ".{0,12}", b in ".{0,12}") {
        let (name_a, name_b) = (file_name_part(&a), file_name_part(&b));
        prop_assert_eq!(a == b, name_a == name_b);
        for name in [&name_a, &name_b] {
            prop_assert!(!name.is_empty());
            prop_assert!(name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_%".contains(&byte)));
        }
    }
}

#[test]
fn full_jitter_spreads_waits_over_the_whole_range() {
    // Full jitter, not "equal jitter" or none: draws cover [0, ceiling] rather
    // than bunching at the ceiling, so a fleet's retries spread out.
    let policy = RetryPolicy {
        base_delay: seconds(1),
        max_delay: seconds(64),
    };
    let mut jitter = Jitter::seeded(42);
    let ceiling = policy.ceiling(7).as_secs_f64();
    let draws: Vec<f64> = (0..2_000)
        .map(|_| policy.delay(7, None, &mut jitter).as_secs_f64() / ceiling)
        .collect();
    for decile in 0..10 {
        let low = f64::from(decile) / 10.0;
        let share = draws.iter().filter(|&&x| x >= low && x < low + 0.1).count();
        assert!(
            (120..=280).contains(&share),
            "decile {decile} holds {share} of 2000 draws"
        );
    }
    let distinct: HashSet<u64> = draws.iter().map(|x| x.to_bits()).collect();
    assert!(distinct.len() > 1_900);
}

#[test]
fn generators_from_entropy_differ() {
    let draws: HashSet<u64> = (0..8)
        .map(|_| Jitter::from_entropy().below(u64::MAX))
        .collect();
    assert_eq!(draws.len(), 8);
}

#[test]
fn retry_at_adds_the_delay_to_now() {
    let policy = RetryPolicy {
        base_delay: seconds(2),
        max_delay: seconds(2),
    };
    let mut a = Jitter::seeded(9);
    let mut b = Jitter::seeded(9);
    let expected = at(0).saturating_add(policy.delay(3, None, &mut a));
    assert_eq!(policy.retry_at(at(0), 3, None, &mut b), expected);
    assert!(expected >= at(0) && expected <= at(2));
}

#[test]
fn http_statuses_are_classified_as_the_seed_protocol_answers() {
    for ok in [200, 201, 204, 299] {
        assert_eq!(SendFailure::from_http_status(ok, None, ""), None, "{ok}");
    }
    for retry in [408, 429, 500, 502, 503, 504, 599] {
        assert!(
            matches!(
                SendFailure::from_http_status(retry, None, ""),
                Some(SendFailure::Retryable { .. })
            ),
            "{retry}"
        );
    }
    for permanent in [300, 400, 401, 403, 404, 409, 413, 422] {
        assert!(
            matches!(
                SendFailure::from_http_status(permanent, None, ""),
                Some(SendFailure::Permanent { .. })
            ),
            "{permanent}"
        );
    }
    let failure =
        SendFailure::from_http_status(429, parse_retry_after(" 120 "), "slow down").unwrap();
    assert_eq!(
        failure,
        SendFailure::Retryable {
            reason: "HTTP 429: slow down".into(),
            retry_after: Some(seconds(120))
        }
    );
    let long_body = "x".repeat(10_000);
    let failure = SendFailure::from_http_status(401, None, &long_body).unwrap();
    assert!(failure.reason().len() < 300);
    // A date long past: no wait beyond the policy's own.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("-5"), None);
}

#[test]
fn retry_after_reads_delta_seconds_and_imf_fixdates_relative_to_now() {
    let now = Timestamp::parse("2015-10-21T07:27:00.250Z").unwrap();
    let parse = |value| parse_retry_after_at(value, now);
    assert_eq!(parse("0"), Some(seconds(0)));
    assert_eq!(parse(" 120 "), Some(seconds(120)));
    assert_eq!(parse("99999999999999999999999"), Some(seconds(u64::MAX)));
    // 59.75 s after `now`: the date is read to the second, the wait to the nanosecond.
    assert_eq!(
        parse("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::from_millis(59_750))
    );
    assert_eq!(
        parse("Thu, 22 Oct 2015 07:27:01 GMT"),
        Some(Duration::from_millis(86_400_750))
    );
    // Leap day, and a date in the past (no wait).
    assert_eq!(
        parse_retry_after_at(
            "Thu, 29 Feb 2024 00:00:10 GMT",
            Timestamp::parse("2024-02-29T00:00:00Z").unwrap()
        ),
        Some(seconds(10))
    );
    assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
    for bad in [
        "",
        "-5",
        "1.5",
        "+3",
        "soon",
        // Wrong weekday, impossible dates and times, other zones, lower case.
        "Thu, 21 Oct 2015 07:28:00 GMT",
        "Thu, 29 Feb 2015 07:28:00 GMT",
        "Wed, 32 Oct 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 24:28:00 GMT",
        "Wed, 21 Oct 2015 07:28:00 UTC",
        "wed, 21 oct 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 07:28 GMT",
        // The obsolete RFC 850 and asctime forms are not read.
        "Wednesday, 21-Oct-15 07:28:00 GMT",
        "Wed Oct 21 07:28:00 2015",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
}

#[test]
fn the_breaker_opens_after_consecutive_failures_and_probes_after_the_revive_period() {
    let mut breaker = CircuitBreaker::new(2, seconds(30));
    breaker.record_failure(at(0));
    breaker.record_success(); // a success in between resets the count
    breaker.record_failure(at(1));
    assert!(breaker.allows(at(1)));
    breaker.record_failure(at(2));
    assert_eq!(breaker.open_until(), Some(at(32)));
    assert!(!breaker.allows(at(31)));
    assert!(breaker.allows(at(32)));
    // The probe fails: open for another full period from the probe.
    breaker.record_failure(at(32));
    assert!(!breaker.allows(at(61)));
    assert!(breaker.allows(at(62)));
    breaker.record_success();
    assert_eq!(breaker.open_until(), None);
    assert!(breaker.allows(at(62)));
}

fn batch(source: &str, records: usize, compression: Compression) -> Batch {
    let lines: String = (0..records)
        .map(|i| {
            format!(
                r#"{{"record_id":"r{i}","device_id":"d{i}","timestamp":"2026-01-01T00:00:0{}Z","data_type":"sensors","payload":{{"t":{i}.5}}}}"#,
                i % 10
            ) + "\n"
        })
        .collect();
    let records: Vec<_> = parse_jsonl(lines.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    BatchEncoder::new(source, Codec::Json, compression)
        .unwrap()
        .encode(&records, at(0))
        .unwrap()
}

#[test]
fn the_directory_sink_writes_each_batch_once_and_readably() {
    let root = tempfile::tempdir().unwrap();
    let mut sink = DirectorySink::new(root.path().join("export")).unwrap();
    let gzip = batch("gw-1", 3, Compression::Gzip { level: 6 });
    let plain = batch("../../escape", 2, Compression::None);
    assert_eq!(sink.send(&gzip), Ok(Delivered::Stored));
    assert_eq!(sink.send(&plain), Ok(Delivered::Stored));
    assert_eq!(sink.send(&gzip), Ok(Delivered::Duplicate));

    let gzip_path = sink.path_of(&gzip);
    assert_eq!(std::fs::read(&gzip_path).unwrap(), gzip.payload);
    let decoded = edgepipe_core::batch::decode_payload(
        &std::fs::read(&gzip_path).unwrap(),
        Codec::Json,
        gzip.envelope.compression,
        Some(&gzip.envelope.checksum),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(decoded.len(), 3);

    // The hostile source id stays one directory under the root.
    let plain_path = sink.path_of(&plain);
    assert_eq!(
        plain_path.parent().unwrap().parent().unwrap(),
        root.path().join("export")
    );
    assert!(plain_path.exists());
    // No temporary file is left behind.
    let leftovers: Vec<_> = walk(&root.path().join("export"))
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_sink_that_cannot_write_reports_a_retryable_failure() {
    let root = tempfile::tempdir().unwrap();
    let mut sink = DirectorySink::new(root.path()).unwrap();
    let batch = batch("gw-1", 1, Compression::None);
    // A file where the source directory should be: writing fails, and may succeed once it is gone.
    std::fs::write(root.path().join("gw-1"), b"in the way").unwrap();
    assert!(matches!(
        sink.send(&batch),
        Err(SendFailure::Retryable { .. })
    ));
    std::fs::remove_file(root.path().join("gw-1")).unwrap();
    assert_eq!(sink.send(&batch), Ok(Delivered::Stored));
}

fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
