//! The `kafka-windows` example against a real broker: records go through the
//! ingest server (in-process, Kafka as its only store) into a Kafka topic, the example consumes the
//! topic, and its per-device 10 s means and maxima equal the ones computed
//! directly from the records sent.
#![cfg(feature = "kafka")]

#[path = "../../edgepipe-core/tests/kafka_support/mod.rs"]
mod kafka_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;

use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::KafkaOptions;
use edgepipe_core::ingest::server::{self, ServerConfig};
use edgepipe_core::ingest::{Dedup, KafkaStore, MemoryStore, Receiver, ReceiverConfig, Retention};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use kafka_support::Tansu;

const KEY: &str = "example-key";
const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a window boundary

/// Readings of three devices every 1.5 s for a minute, two fields each.
fn readings() -> Vec<DataRecord> {
    let mut out = Vec::new();
    for step in 0..40i64 {
        for device in 0..3i64 {
            let mut record = DataRecord::new(format!("dev-{device}"), "climate", Payload::new());
            record.record_id = format!("dev-{device}-{step}").into();
            record.timestamp = Timestamp::from_unix_millis((START * 1000) + step * 1500).unwrap();
            let temperature = 20.0 + device as f64 + ((step * 7 + device * 3) % 11) as f64 / 4.0;
            record
                .payload
                .insert("temperature", Value::Float(temperature));
            record
                .payload
                .insert("humidity", Value::Int(40 + (step * 5 + device) % 17));
            out.push(record);
        }
    }
    out
}

/// The lines the example prints, computed directly: per device and 10 s window,
/// each field's mean and max.
fn expected_lines(records: &[DataRecord]) -> Vec<String> {
    let mut windows: BTreeMap<(String, i64), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for record in records {
        let start = record.timestamp.unix_millis().div_euclid(10_000) * 10_000;
        let fields = windows
            .entry((record.device_id.to_string(), start))
            .or_default();
        for (name, value) in record.payload.iter() {
            let number = match value {
                Value::Int(n) => *n as f64,
                Value::Float(x) => *x,
                _ => continue,
            };
            fields.entry(name.to_string()).or_default().push(number);
        }
    }
    windows
        .into_iter()
        .map(|((device, start), fields)| {
            let start = Timestamp::from_unix_millis(start).unwrap().to_iso8601();
            let mut line = format!("window {device} {start}");
            for (name, values) in fields {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let max = values.iter().copied().fold(f64::MIN, f64::max);
                line.push_str(&format!(" {name}.max={max:.6} {name}.mean={mean:.6}"));
            }
            line
        })
        .collect()
}

/// The example's line with every number to 6 decimals, so float formatting
/// (an integer max printed as `52`) does not matter, only the values.
fn normalised(line: &str) -> String {
    line.split(' ')
        .map(|word| match word.split_once('=') {
            Some((name, value)) => format!("{name}={:.6}", value.parse::<f64>().unwrap()),
            None => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn post(address: &str, body: &[u8], batch_id: &str, codec: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /api/ingest HTTP/1.1\r\nHost: {address}\r\nX-API-Key: {KEY}\r\nX-Batch-ID: {batch_id}\r\n\
         Content-Type: application/octet-stream\r\nX-Edgepipe-Codec: {codec}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn kafka_windows_aggregates_what_the_ingest_tier_published() {
    let tansu = Tansu::start();
    tansu.create_topic("telemetry", 3);
    // The ingest server, in-process, publishing to Kafka only (as `edgepipe-ingest
    // --kafka-only` does).
    let kafka = KafkaStore::new(KafkaOptions::new([tansu.bootstrap()], "telemetry")).unwrap();
    let receiver = Receiver::with_parts(
        ReceiverConfig::new([KEY]),
        Dedup::in_memory(Retention::default()),
        Box::new(kafka),
        Box::new(MemoryStore::default()),
    )
    .unwrap();
    let server = server::start(
        Arc::new(receiver),
        ServerConfig::new(([127, 0, 0, 1], 0).into()),
    )
    .unwrap();
    let address = server.local_addr().to_string();

    let records = readings();
    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::None).unwrap();
    for chunk in records.chunks(25) {
        let batch = encoder.encode(chunk, Timestamp::UNIX_EPOCH).unwrap();
        let response = post(&address, &batch.payload, &batch.envelope.batch_id, "json");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        // The edge retries one batch: dedup refuses it, Kafka does not see it again.
        let response = post(&address, &batch.payload, &batch.envelope.batch_id, "json");
        assert!(response.contains("duplicate"), "{response}");
    }
    server.shutdown().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_kafka-windows"))
        .args(["--brokers", &tansu.bootstrap(), "--topic", "telemetry"])
        .args(["--records", &records.len().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut windows: Vec<String> = stdout
        .lines()
        .filter(|line| line.starts_with("window "))
        .map(normalised)
        .collect();
    windows.sort();
    assert_eq!(windows, expected_lines(&records), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "read {} records, 0 repeats dropped",
            records.len()
        )),
        "{stdout}"
    );
}
