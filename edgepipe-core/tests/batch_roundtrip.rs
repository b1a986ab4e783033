//! Round trips through every codec × compression, on arbitrary records and on
//! workload-like time series, plus the batch envelope's binary form.

mod batch_support;

use batch_support::{assert_same_records, record, series_batch};
use edgepipe_core::Error;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::record::{DataRecord, Timestamp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn compressions() -> Vec<Compression> {
    let mut all = vec![
        Compression::None,
        Compression::Gzip { level: 1 },
        Compression::SEED,
        Compression::Lz4,
    ];
    if cfg!(feature = "zstd") {
        all.push(Compression::Zstd { level: 3 });
    }
    all
}

fn round_trip(records: &[DataRecord], codec: Codec, compression: Compression) {
    let encoder = BatchEncoder::new("gw-1", codec, compression).unwrap();
    let batch = encoder
        .encode(records, Timestamp::from_unix_nanos(7))
        .unwrap();
    let limits = DecodeLimits::default();
    assert_same_records(&batch.decode(&limits).unwrap(), records);
    let bytes = batch.to_bytes();
    // write_bytes appends exactly to_bytes, leaving what the buffer held.
    let mut appended = b"kept".to_vec();
    batch.write_bytes(&mut appended);
    assert_eq!(&appended[..4], b"kept");
    assert_eq!(appended[4..], bytes[..]);
    let back = Batch::from_bytes(&bytes, &limits).unwrap();
    assert_eq!(back, batch);
    assert_same_records(&back.decode(&limits).unwrap(), records);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_codec_and_compression_round_trips_arbitrary_records(
        finite in prop::collection::vec(record(true), 0..12),
        any_bits in prop::collection::vec(record(false), 0..12),
    ) {
        for compression in compressions() {
            for codec in Codec::ALL {
                round_trip(&finite, codec, compression);
            }
            // JSON cannot carry NaN or infinities; the binary codecs carry every bit.
            for codec in [Codec::Msgpack, Codec::Columnar] {
                round_trip(&any_bits, codec, compression);
            }
        }
    }

    #[test]
    fn columnar_round_trips_time_series_bit_exact(records in series_batch()) {
        for compression in compressions() {
            round_trip(&records, Codec::Columnar, compression);
        }
        round_trip(&records, Codec::Msgpack, Compression::None);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let limits = DecodeLimits::default();
        for codec in Codec::ALL {
            let _ = codec.decode(&bytes, &limits);
        }
        let _ = Batch::from_bytes(&bytes, &limits);
    }

    #[test]
    fn corrupted_columnar_payloads_fail_cleanly(records in series_batch(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = Vec::new();
        Codec::Columnar.encode(&records, &mut bytes).unwrap();
        for (index, byte) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= byte | 1;
        }
        let _ = Codec::Columnar.decode(&bytes, &DecodeLimits::default());
        let cut = bytes.len() / 2;
        prop_assert!(Codec::Columnar.decode(&bytes[..cut], &DecodeLimits::default()).is_err());
    }
}

#[test]
fn batch_ids_are_deterministic_and_ignore_codec_and_compression() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let records = series_batch().new_tree(&mut runner).unwrap().current();
    let ids: Vec<String> = [
        (Codec::Json, Compression::SEED),
        (Codec::Columnar, Compression::Lz4),
    ]
    .into_iter()
    .map(|(codec, compression)| {
        let encoder = BatchEncoder::new("gw-1", codec, compression).unwrap();
        encoder
            .encode(&records, Timestamp::from_unix_nanos(1))
            .unwrap()
            .envelope
            .batch_id
    })
    .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0].len(), 32);
    let again = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED).unwrap();
    assert_eq!(
        again
            .encode(&records, Timestamp::from_unix_nanos(99))
            .unwrap()
            .envelope
            .batch_id,
        ids[0]
    );
    let other = BatchEncoder::new("gw-2", Codec::Json, Compression::SEED).unwrap();
    assert_ne!(
        other
            .encode(&records, Timestamp::from_unix_nanos(1))
            .unwrap()
            .envelope
            .batch_id,
        ids[0]
    );
    assert_ne!(
        again
            .encode(&records[1..], Timestamp::from_unix_nanos(1))
            .unwrap()
            .envelope
            .batch_id,
        ids[0]
    );
}

#[test]
fn the_checksum_is_verified_before_anything_is_parsed() {
    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED).unwrap();
    let mut batch = encoder.encode(&[], Timestamp::from_unix_nanos(1)).unwrap();
    assert_eq!(batch.envelope.checksum.len(), 64);
    batch.payload = b"not gzip at all".to_vec();
    assert!(matches!(
        batch.decode(&DecodeLimits::default()),
        Err(Error::ChecksumMismatch { .. })
    ));
}

#[test]
fn a_record_count_that_disagrees_with_the_envelope_is_refused() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let records = series_batch().new_tree(&mut runner).unwrap().current();
    let encoder = BatchEncoder::new("gw-1", Codec::Jsonl, Compression::None).unwrap();
    let mut batch = encoder
        .encode(&records, Timestamp::from_unix_nanos(1))
        .unwrap();
    batch.envelope.record_count += 1;
    assert!(matches!(
        batch.decode(&DecodeLimits::default()),
        Err(Error::CorruptBatch { .. })
    ));
}

#[test]
fn sequence_ranges_are_filled_from_the_sources_own_ids() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut records = series_batch().new_tree(&mut runner).unwrap().current();
    records.truncate(3);
    for (index, record) in records.iter_mut().enumerate() {
        record.record_id = format!("gw-1:4:{}", 10 + index).into();
    }
    let encoder = BatchEncoder::new("gw-1", Codec::Columnar, Compression::None).unwrap();
    let batch = encoder
        .encode(&records, Timestamp::from_unix_nanos(1))
        .unwrap();
    let range = batch.envelope.sequence.unwrap();
    assert_eq!((range.epoch, range.first, range.last), (4, 10, 12));
    let other = BatchEncoder::new("gw-9", Codec::Columnar, Compression::None).unwrap();
    assert_eq!(
        other
            .encode(&records, Timestamp::from_unix_nanos(1))
            .unwrap()
            .envelope
            .sequence,
        None
    );
}

#[test]
fn encoding_on_several_threads_gives_the_same_batches_in_order() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let splits: Vec<Vec<DataRecord>> = (0..9)
        .map(|_| series_batch().new_tree(&mut runner).unwrap().current())
        .collect();
    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED).unwrap();
    let at = Timestamp::from_unix_nanos(5);
    let one_by_one: Vec<Batch> = splits
        .iter()
        .map(|records| encoder.encode(records, at).unwrap())
        .collect();
    for threads in [0, 1, 2, 4, 16] {
        assert_eq!(
            encoder.encode_many(&splits, at, threads).unwrap(),
            one_by_one
        );
    }
    assert!(
        encoder
            .encode_many(&[] as &[Vec<DataRecord>], at, 2)
            .unwrap()
            .is_empty()
    );

    // A record JSON cannot carry fails the whole call.
    let mut bad = splits.clone();
    bad[7][0]
        .payload
        .insert("x", edgepipe_core::record::Value::Float(f64::NAN));
    assert!(matches!(
        encoder.encode_many(&bad, at, 2),
        Err(Error::NonFiniteFloat { .. })
    ));
}
