//! The HTTP sink against the seed's own FastAPI service (`cloud_ingestion.py`,
//! unchanged, run by `tests/fixtures/seed/serve.py` under uvicorn on a loopback
//! port): what the sink sends is what the seed's receiver reads and stores.
//!
//! Needs a Python with fastapi and uvicorn, named by `EDGEPIPE_SEED_PYTHON`
//! (`scripts/test-all` sets it to its virtualenv's interpreter). Without it the
//! tests fail and say how to set one up.

#![cfg(feature = "http")]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;

use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression, DecodeLimits, decode_payload};
use edgepipe_core::deliver::{Delivered, HttpSink, HttpSinkOptions, SendFailure, Sink};
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::{DataRecord, Timestamp};
use serde_json::Value;

const SEED_KEY: &str = "valid-api-key";

/// The seed's service on a loopback port; stopped (and its stdin closed, which
/// also stops it should this process die first) on drop.
struct SeedServer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl SeedServer {
    fn start() -> SeedServer {
        let python = std::env::var_os("EDGEPIPE_SEED_PYTHON").unwrap_or_else(|| {
            panic!(
                "EDGEPIPE_SEED_PYTHON is not set. These tests run the seed's FastAPI service and \
                 need a Python with fastapi and uvicorn: `python3 -m venv VENV && VENV/bin/pip \
                 install -r edgepipe-core/tests/fixtures/seed/requirements.txt`, then \
                 EDGEPIPE_SEED_PYTHON=VENV/bin/python (scripts/test-all does this)"
            )
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/serve.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {python:?} {script:?}: {error}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading the port line");
        let Ok(port) = line.trim().parse() else {
            let status = child.wait();
            panic!(
                "the seed server did not start (first line {line:?}, exit {status:?}); does \
                 EDGEPIPE_SEED_PYTHON={python:?} have fastapi and uvicorn? Install \
                 edgepipe-core/tests/fixtures/seed/requirements.txt into it"
            );
        };
        // The seed prints a line per stored batch: keep the pipe drained.
        thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        SeedServer { child, stdin, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the seed stored: `(batch id, records as the seed's JSON)` in order.
    fn stored(&self) -> Vec<(String, Vec<Value>)> {
        let mut response = ureq::get(format!("{}/_test/stored", self.url()))
            .call()
            .expect("GET /_test/stored");
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap())
            .expect("JSON from /_test/stored");
        body["stored"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["batch_id"].as_str().unwrap().to_owned(),
                    entry["records"].as_array().unwrap().clone(),
                )
            })
            .collect()
    }
}

impl Drop for SeedServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` records of the seed's shape, sequence numbers from `first`.
fn records(first: u64, count: u64) -> Vec<DataRecord> {
    let lines: String = (first..first + count)
        .map(|sequence| {
            format!(
                "{{\"record_id\":\"gw-1:1:{sequence}\",\"device_id\":\"sensor-{}\",\
                 \"timestamp\":\"2026-01-01T00:00:{:02}.25Z\",\"data_type\":\"sensors\",\
                 \"payload\":{{\"temperature\":{}.5,\"label\":\"caf\\u00e9\"}},\
                 \"metadata\":{{\"site\":\"factory-1\"}}}}\n",
                sequence % 3,
                sequence % 60,
                20 + sequence % 10
            )
        })
        .collect();
    parse_jsonl(lines.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect()
}

fn batch(codec: Codec, compression: Compression, first: u64, count: u64) -> Batch {
    BatchEncoder::new("gw-1", codec, compression)
        .unwrap()
        .encode(&records(first, count), Timestamp::UNIX_EPOCH)
        .unwrap()
}

/// The batch's records as JSON values, decoded by edgepipe.
fn as_json(batch: &Batch) -> Vec<Value> {
    let envelope = &batch.envelope;
    let decoded = decode_payload(
        &batch.payload,
        envelope.codec,
        envelope.compression,
        Some(&envelope.checksum),
        &DecodeLimits::default(),
    )
    .unwrap();
    let mut text = Vec::new();
    Codec::Json.encode(&decoded, &mut text).unwrap();
    serde_json::from_slice::<Vec<Value>>(&text).unwrap()
}

fn seed_sink(server: &SeedServer, key: &str) -> HttpSink {
    HttpSink::new(HttpSinkOptions::new(server.url(), key).with_seed_compatible(true)).unwrap()
}

#[test]
fn the_seed_service_stores_seed_compatible_batches_once_and_refuses_a_wrong_key() {
    let server = SeedServer::start();
    let mut sink = seed_sink(&server, SEED_KEY);
    let sent = [
        batch(Codec::Json, Compression::SEED, 0, 100),
        batch(Codec::JsonPython, Compression::SEED, 100, 100),
        batch(Codec::Json, Compression::None, 200, 7),
    ];
    for batch in &sent {
        assert_eq!(
            sink.send(batch),
            Ok(Delivered::Stored),
            "{}",
            batch.envelope.batch_id
        );
    }
    // Resent, as after a lost response: the seed knows the batch ids.
    for batch in &sent {
        assert_eq!(sink.send(batch), Ok(Delivered::Duplicate));
    }

    let stored = server.stored();
    assert_eq!(stored.len(), sent.len());
    for ((batch_id, records), batch) in stored.iter().zip(&sent) {
        assert_eq!(batch_id, &batch.envelope.batch_id);
        assert_eq!(records.len() as u64, batch.envelope.record_count);
        // The seed read the same records edgepipe encoded, field for field.
        assert_eq!(records, &as_json(batch));
    }

    let mut wrong = seed_sink(&server, "not-the-key");
    match wrong.send(&batch(Codec::Json, Compression::SEED, 300, 5)) {
        Err(SendFailure::Permanent { reason }) => {
            assert_eq!(reason, r#"HTTP 401: {"detail":"Invalid API key"}"#)
        }
        other => panic!("expected a permanent 401, got {other:?}"),
    }
    assert_eq!(server.stored().len(), sent.len());
}

#[test]
fn the_seed_service_ignores_edgepipes_extension_headers() {
    let server = SeedServer::start();
    let mut sink = HttpSink::new(
        HttpSinkOptions::new(server.url(), SEED_KEY)
            .with_hmac_key(b"the seed checks no signature".to_vec()),
    )
    .unwrap();
    let sent = batch(Codec::Json, Compression::SEED, 0, 50);
    assert_eq!(sink.send(&sent), Ok(Delivered::Stored));
    assert_eq!(sink.send(&sent), Ok(Delivered::Duplicate));
    let stored = server.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, as_json(&sent));
}

#[test]
fn what_the_seed_cannot_read_is_refused_before_it_is_sent() {
    let server = SeedServer::start();
    let mut sink = seed_sink(&server, SEED_KEY);
    for (codec, compression) in [
        (Codec::Columnar, Compression::SEED),
        (Codec::Msgpack, Compression::None),
        (Codec::Json, Compression::Lz4),
    ] {
        assert!(matches!(
            sink.send(&batch(codec, compression, 0, 10)),
            Err(SendFailure::Permanent { .. })
        ));
    }
    assert!(server.stored().is_empty());
    // Why it is refused: sent anyway, lz4 JSON (the seed knows only gzip) makes
    // the seed's service fail decoding the body as UTF-8, an unhandled exception
    // answered 500, which a sender would retry until the batch's attempts run
    // out. (It prints that traceback on this test's stderr.)
    let mut unguarded = HttpSink::new(HttpSinkOptions::new(server.url(), SEED_KEY)).unwrap();
    match unguarded.send(&batch(Codec::Json, Compression::Lz4, 0, 10)) {
        Err(SendFailure::Retryable { reason, .. }) => {
            assert_eq!(reason, "HTTP 500: Internal Server Error")
        }
        other => panic!("expected the seed's 500, got {other:?}"),
    }
    assert!(server.stored().is_empty());
}
