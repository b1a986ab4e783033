//! Columnar payloads written by earlier format versions keep decoding.
//!
//! `tests/fixtures/columnar_v1_*.bin` were written by the version 1 encoder (before
//! version 2 replaced it); each sits beside the same records as MessagePack, which
//! carries every float bit for bit. A reader that stops understanding version 1
//! fails here.

mod batch_support;

use batch_support::{assert_same_records, series_batch};
use edgepipe_core::Error;
use edgepipe_core::batch::codec::columnar;
use edgepipe_core::batch::{Codec, DecodeLimits};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use proptest::strategy::{Strategy, ValueTree};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[test]
fn version_1_payloads_decode_to_the_records_they_were_written_from() {
    let limits = DecodeLimits::default();
    for name in ["sequence", "uuid", "arbitrary"] {
        let payload = fixture(&format!("columnar_v1_{name}.bin"));
        assert_eq!(payload[0], 1, "{name} is a version 1 payload");
        let expected = Codec::Msgpack
            .decode(&fixture(&format!("columnar_v1_{name}.msgpack")), &limits)
            .unwrap();
        let decoded = Codec::Columnar.decode(&payload, &limits).unwrap();
        assert_same_records(&decoded, &expected);

        // Re-encoded, they come out in the current version and decode the same.
        let mut again = Vec::new();
        Codec::Columnar.encode(&decoded, &mut again).unwrap();
        assert_eq!(again[0], columnar::VERSION);
        assert_same_records(&Codec::Columnar.decode(&again, &limits).unwrap(), &expected);
    }
}

#[test]
fn the_encoder_writes_version_2_and_unknown_versions_are_refused() {
    assert_eq!(columnar::VERSION, 2);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let records = series_batch().new_tree(&mut runner).unwrap().current();
    let mut payload = Vec::new();
    Codec::Columnar.encode(&records, &mut payload).unwrap();
    assert_eq!(payload[0], 2);
    for version in [0, 3, 255] {
        payload[0] = version;
        assert!(matches!(
            Codec::Columnar.decode(&payload, &DecodeLimits::default()),
            Err(Error::Unsupported { .. })
        ));
    }
}

/// Version 2's additions (runs of successor strings, first-value delta modes)
/// mean something else in version 1: a version 2 payload relabelled as version
/// 1 is refused, not read as other records.
#[test]
fn a_version_2_payload_is_not_read_as_version_1() {
    let records: Vec<DataRecord> = (0..10)
        .map(|device| {
            let mut payload = Payload::new();
            payload.insert("temperature", Value::Float(22.5 + f64::from(device)));
            let mut record = DataRecord::new(format!("dev-{device:04}"), "sensors", payload);
            record.record_id = format!("gw-1:0:{}", 500 + device).into();
            record.timestamp = Timestamp::from_unix_nanos(1_767_225_600_000_000_000);
            record
        })
        .collect();
    let mut payload = Vec::new();
    Codec::Columnar.encode(&records, &mut payload).unwrap();
    let limits = DecodeLimits::default();
    assert_same_records(
        &Codec::Columnar.decode(&payload, &limits).unwrap(),
        &records,
    );
    payload[0] = 1;
    assert!(matches!(
        Codec::Columnar.decode(&payload, &limits),
        Err(Error::CorruptBatch { .. })
    ));
}
