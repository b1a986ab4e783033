//! The batcher against a naive model: limits, exact bytes, oversize records and order.

mod batch_support;

use batch_support::{assert_same_records, record, series_batch};
use edgepipe_core::batch::{
    Batch, BatchEncoder, BatchPolicy, Batcher, Codec, Compression, DecodeLimits,
};
use edgepipe_core::record::{DataRecord, Timestamp, Value};
use proptest::prelude::*;

/// The records with every non-finite top-level float replaced by 0.0.
fn json_safe(records: &[DataRecord]) -> Vec<DataRecord> {
    let mut records = records.to_vec();
    for record in &mut records {
        for (_, value) in record.payload.iter_mut() {
            if matches!(value, Value::Float(number) if !number.is_finite()) {
                *value = Value::Float(0.0);
            }
        }
    }
    records
}

fn drain(batcher: &mut Batcher) -> Vec<Batch> {
    std::iter::from_fn(|| batcher.next_batch()).collect()
}

fn run(records: &[DataRecord], codec: Codec, policy: BatchPolicy, step_nanos: i64) -> Vec<Batch> {
    let encoder = BatchEncoder::new("gw-1", codec, Compression::None).unwrap();
    let mut batcher = Batcher::new(encoder, policy).unwrap();
    let mut now = 0;
    for record in records {
        batcher
            .push(record.clone(), Timestamp::from_unix_nanos(now))
            .unwrap();
        now += step_nanos;
    }
    batcher.flush(Timestamp::from_unix_nanos(now)).unwrap();
    drain(&mut batcher)
}

fn check(records: &[DataRecord], batches: &[Batch], policy: BatchPolicy) {
    let limits = DecodeLimits::default();
    let mut out = Vec::new();
    for batch in batches {
        let envelope = &batch.envelope;
        assert!(envelope.record_count >= 1);
        assert!(envelope.record_count as usize <= policy.max_records);
        if envelope.oversize {
            assert_eq!(envelope.record_count, 1, "an oversize record travels alone");
            assert!(envelope.original_size as usize > policy.max_bytes);
        } else {
            assert!(
                envelope.original_size as usize <= policy.max_bytes,
                "{envelope:?}"
            );
        }
        assert_eq!(envelope.original_size as usize, batch.payload.len());
        out.extend(batch.decode(&limits).unwrap());
    }
    assert_same_records(&out, records);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batches_respect_the_policy_and_keep_order(
        records in prop::collection::vec(record(true), 0..40),
        max_records in 1usize..12,
        max_bytes in 200usize..3000,
    ) {
        let policy = BatchPolicy { max_records, max_bytes, max_age_nanos: None };
        for codec in Codec::ALL {
            let batches = run(&records, codec, policy, 1);
            check(&records, &batches, policy);
        }
    }

    #[test]
    fn additive_codecs_fill_batches_exactly(records in series_batch(), max_bytes in 300usize..5000) {
        // A batch closed on bytes could not have taken the next record.
        let policy = BatchPolicy { max_records: usize::MAX, max_bytes, max_age_nanos: None };
        for codec in [Codec::Json, Codec::Jsonl, Codec::Msgpack] {
            // JSON cannot carry NaN or infinities (pushing one is an error, tested
            // elsewhere); here they become finite so every codec sees a batch it can hold.
            let records = if codec == Codec::Msgpack { records.clone() } else { json_safe(&records) };
            let records = &records;
            let batches = run(records, codec, policy, 1);
            check(records, &batches, policy);
            let mut start = 0;
            for pair in batches.windows(2) {
                let count = pair[0].envelope.record_count as usize;
                let mut encoded = Vec::new();
                codec.encode(&records[start..start + count + 1], &mut encoded).unwrap();
                prop_assert!(pair[0].envelope.oversize || pair[1].envelope.oversize || encoded.len() > max_bytes);
                start += count;
            }
        }
    }

    #[test]
    fn columnar_batches_never_exceed_the_byte_limit(records in series_batch(), max_bytes in 100usize..2000) {
        let policy = BatchPolicy { max_records: usize::MAX, max_bytes, max_age_nanos: None };
        let batches = run(&records, Codec::Columnar, policy, 1);
        check(&records, &batches, policy);
    }
}

#[test]
fn batches_close_on_age_by_the_callers_clock() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let records =
        proptest::strategy::ValueTree::current(&series_batch().new_tree(&mut runner).unwrap());
    let policy = BatchPolicy {
        max_records: 1000,
        max_bytes: 1 << 20,
        max_age_nanos: Some(10),
    };
    // One record every 3 ns: a batch opened at t closes with the first push at t + 10 or later.
    let batches = run(&records, Codec::Jsonl, policy, 3);
    check(&records, &batches, policy);
    assert!(
        batches[..batches.len() - 1]
            .iter()
            .all(|b| b.envelope.record_count == 4)
    );

    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED).unwrap();
    let mut batcher = Batcher::new(encoder, policy).unwrap();
    batcher
        .push(records[0].clone(), Timestamp::from_unix_nanos(100))
        .unwrap();
    batcher.poll(Timestamp::from_unix_nanos(109)).unwrap();
    assert_eq!(batcher.ready_batches(), 0);
    batcher.poll(Timestamp::from_unix_nanos(110)).unwrap();
    let batch = batcher.next_batch().unwrap();
    assert_eq!(batch.envelope.created_at, Timestamp::from_unix_nanos(110));
    assert_eq!(batcher.open_records(), 0);
}

#[test]
fn an_oversize_record_travels_alone_and_flagged() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut records =
        proptest::strategy::ValueTree::current(&series_batch().new_tree(&mut runner).unwrap());
    records.truncate(5);
    records[2].payload.insert("blob", "z".repeat(5000).into());
    let policy = BatchPolicy {
        max_records: 100,
        max_bytes: 1000,
        max_age_nanos: None,
    };
    for codec in Codec::ALL {
        let batches = run(&records, codec, policy, 1);
        check(&records, &batches, policy);
        let flagged: Vec<u64> = batches
            .iter()
            .filter(|b| b.envelope.oversize)
            .map(|b| b.envelope.record_count)
            .collect();
        assert_eq!(flagged, [1], "{codec:?}");
    }
}

#[test]
fn policies_that_cannot_be_met_are_refused() {
    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED).unwrap();
    for policy in [
        BatchPolicy {
            max_records: 0,
            ..BatchPolicy::default()
        },
        BatchPolicy {
            max_bytes: 0,
            ..BatchPolicy::default()
        },
        BatchPolicy {
            max_age_nanos: Some(0),
            ..BatchPolicy::default()
        },
    ] {
        assert!(Batcher::new(encoder.clone(), policy).is_err());
    }
    assert!(BatchEncoder::new("gw-1", Codec::Json, Compression::Gzip { level: 11 }).is_err());
}

#[test]
fn columnar_batches_closed_on_bytes_are_nearly_full() {
    // Ten sensors reading once a second, with sequence ids: a few bytes a record,
    // so a 16 KiB batch holds thousands and the batcher must estimate rather
    // than measure on every push. A batch closed on bytes leaves at most 1/64 of
    // the limit unused (and one record's share): estimates that are too cautious
    // would close batches early and send more, smaller batches.
    let mut records = Vec::new();
    for second in 0..40_000i64 {
        let device = second % 10;
        let mut record = DataRecord::new(
            format!("sensor-{device}"),
            "environment",
            Default::default(),
        );
        record.record_id = format!("gw-1:0:{second}").into();
        record.timestamp =
            Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + second * 1_000_000_000);
        record.payload.insert(
            "temperature",
            Value::Float(20.0 + ((second / 10) % 50) as f64 / 10.0),
        );
        record
            .payload
            .insert("humidity", Value::Int(40 + (second / 10) % 7));
        records.push(record);
    }
    let policy = BatchPolicy {
        max_records: usize::MAX,
        max_bytes: 16 << 10,
        max_age_nanos: None,
    };
    let batches = run(&records, Codec::Columnar, policy, 1);
    check(&records, &batches, policy);
    assert!(batches.len() > 2, "the stream spans several batches");
    for batch in &batches[..batches.len() - 1] {
        let size = batch.envelope.original_size as usize;
        let share = size / batch.envelope.record_count as usize + 1;
        assert!(
            size + policy.max_bytes / 64 + share >= policy.max_bytes,
            "a batch of {size} bytes closed well under the {} byte limit",
            policy.max_bytes
        );
    }
}
