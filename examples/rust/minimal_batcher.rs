//! The smallest useful edgepipe program: readings in, compressed batches out.
//!
//! ```text
//! cargo run -p edgepipe-examples --bin minimal-batcher
//! ```
//!
//! Reads JSON Lines, closes a batch every 4 readings (or 10 s of event time),
//! encodes each with the columnar codec and lz4, and checks each decodes back to
//! exactly what went in.

use edgepipe_core::batch::{BatchEncoder, BatchPolicy, Batcher, Codec, Compression, DecodeLimits};
use edgepipe_core::record::json::parse_jsonl;

const READINGS: &str = r#"{"record_id":"r1","device_id":"edge-001","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"temperature":22.87,"humidity":45.1}}
{"record_id":"r2","device_id":"edge-001","timestamp":"2026-01-01T00:00:01Z","data_type":"sensors","payload":{"temperature":22.91,"humidity":45.0}}
{"record_id":"r3","device_id":"edge-002","timestamp":"2026-01-01T00:00:01Z","data_type":"sensors","payload":{"temperature":19.4,"humidity":51.2}}
{"record_id":"r4","device_id":"edge-001","timestamp":"2026-01-01T00:00:02Z","data_type":"sensors","payload":{"temperature":22.95,"humidity":44.9}}
{"record_id":"r5","device_id":"edge-002","timestamp":"2026-01-01T00:00:02Z","data_type":"sensors","payload":{"temperature":19.5,"humidity":51.0}}
"#;

fn main() -> edgepipe_core::Result<()> {
    let encoder = BatchEncoder::new("gateway-1", Codec::Columnar, Compression::Lz4)?;
    let policy = BatchPolicy {
        max_records: 4,
        ..BatchPolicy::default()
    };
    let mut batcher = Batcher::new(encoder, policy)?;

    let mut records = Vec::new();
    for (line, record) in parse_jsonl(READINGS.as_bytes()) {
        let record = record.map_err(|error| {
            eprintln!("line {line}: {error}");
            error
        })?;
        records.push(record.clone());
        // The batcher's clock is the caller's: here, event time.
        batcher.push(record.clone(), record.timestamp)?;
    }
    // The end of input closes the open batch, whatever its age.
    let end = records.last().map(|record| record.timestamp);
    batcher.flush(end.unwrap_or(edgepipe_core::Timestamp::UNIX_EPOCH))?;

    let mut decoded = Vec::new();
    while let Some(batch) = batcher.next_batch() {
        let envelope = &batch.envelope;
        println!(
            "batch {} : {} records, {} bytes ({} before lz4), sha256 {}…",
            &envelope.batch_id[..12],
            envelope.record_count,
            envelope.compressed_size,
            envelope.original_size,
            &envelope.checksum[..12],
        );
        decoded.extend(batch.decode(&DecodeLimits::default())?);
    }
    assert_eq!(decoded, records, "every reading decodes back exactly");
    println!(
        "{} readings in, {} decoded back, identical",
        records.len(),
        decoded.len()
    );
    Ok(())
}
