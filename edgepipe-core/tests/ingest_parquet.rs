//! The Parquet cold tier: files written through the receiver read back with the
//! parquet crate's own reader, column by column.
#![cfg(feature = "parquet")]

mod ingest_support;

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use edgepipe_core::batch::{Codec, Compression};
use edgepipe_core::ingest::parquet::ParquetStore;
use edgepipe_core::ingest::{Dedup, JsonlQuarantine, Receiver, ReceiverConfig, Retention};
use ingest_support::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

#[test]
fn batches_land_as_parquet_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::with_parts(
        ReceiverConfig::new([KEY]),
        Dedup::open(dir.path().join("dedup.journal"), Retention::default(), 0).unwrap(),
        Box::new(ParquetStore::open(dir.path().join("cold")).unwrap()),
        Box::new(JsonlQuarantine::open(dir.path().join("quarantine")).unwrap()),
    )
    .unwrap();
    let mut records = records("gw", 0, 0..20);
    records[3].metadata.insert("site", "factory-1".into());
    let b = batch("gw", &records, Codec::Columnar, Compression::Lz4);
    assert_eq!(receiver.handle(&request(&b)).status(), 200);

    let path = dir
        .path()
        .join("cold/date=2026-01-01")
        .join(format!("part-{}.parquet", b.envelope.batch_id));
    // The parquet crate's reader, not the store's.
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 20);
    let first = &batches[0];
    let names: Vec<_> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "record_id",
            "device_id",
            "timestamp",
            "data_type",
            "payload",
            "metadata"
        ]
    );
    assert_eq!(first.column(0).as_string::<i32>().value(0), "gw:0:0");
    assert_eq!(first.column(1).as_string::<i32>().value(1), "dev-1");
    assert_eq!(
        first
            .column(2)
            .as_primitive::<TimestampNanosecondType>()
            .value(2),
        records[2].timestamp.unix_nanos()
    );
    assert_eq!(
        first.column(4).as_string::<i32>().value(0),
        r#"{"temperature":20.0}"#
    );
    assert_eq!(
        first.column(5).as_string::<i32>().value(3),
        r#"{"site":"factory-1"}"#
    );
    // And the store's own reader gives the records back exactly.
    assert_eq!(ParquetStore::read(&path).unwrap(), records);
}

/// The issue's bar for "readable by ordinary tools": pyarrow opens the file and
/// sees the same rows. Needs a Python with pyarrow named by
/// `EDGEPIPE_PYARROW_PYTHON` (`scripts/test-all` sets it to its virtualenv's).
#[test]
fn pyarrow_reads_the_parquet_files() {
    let python = std::env::var_os("EDGEPIPE_PYARROW_PYTHON").unwrap_or_else(|| {
        panic!(
            "EDGEPIPE_PYARROW_PYTHON is not set: this test needs a Python with pyarrow \
             (`python3 -m venv VENV && VENV/bin/pip install pyarrow`, then \
             EDGEPIPE_PYARROW_PYTHON=VENV/bin/python; scripts/test-all does this)"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::with_parts(
        ReceiverConfig::new([KEY]),
        Dedup::in_memory(Retention::default()),
        Box::new(ParquetStore::open(dir.path().join("cold")).unwrap()),
        Box::new(JsonlQuarantine::open(dir.path().join("quarantine")).unwrap()),
    )
    .unwrap();
    let records = records("gw", 0, 0..25);
    let b = batch("gw", &records, Codec::Json, Compression::Gzip { level: 6 });
    assert_eq!(receiver.handle(&request(&b)).status(), 200);

    let script = r#"
import json, sys
import pyarrow.dataset as ds
table = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
rows = table.to_pylist()
print(json.dumps({
    "rows": len(rows),
    "record_ids": [row["record_id"] for row in rows],
    "payload": json.loads(rows[0]["payload"]),
    "date": str(rows[0]["date"]),
}))
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(dir.path().join("cold"))
        .output()
        .unwrap_or_else(|error| panic!("running {python:?}: {error}"));
    assert!(
        output.status.success(),
        "pyarrow failed (is it installed in {python:?}?):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["rows"], 25);
    let mut ids: Vec<String> = seen["record_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = records.iter().map(|r| r.record_id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(seen["payload"], serde_json::json!({"temperature": 20.0}));
    assert_eq!(seen["date"], "2026-01-01");
}
