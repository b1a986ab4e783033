//! The ingest server on loopback: the seed client's request, bad input with the
//! documented statuses and bounded memory, dedup across a restart, start/shutdown.
#![cfg(feature = "ingest-server")]

mod ingest_support;

use std::io::Write;
use std::sync::Arc;

use edgepipe_core::batch::{Codec, Compression};
use edgepipe_core::ingest::server::{ServerConfig, start};
use edgepipe_core::ingest::{DataLakeStore, IngestRequest, Receiver, ReceiverConfig};
use ingest_support::*;

/// The request exactly as the seed's `DataDeliveryService._attempt_delivery` makes
/// it with aiohttp 3 (header order and values as aiohttp writes them), on the
/// seed's batch body: a gzip'ed `json.dumps` array of `to_dict()` records.
#[test]
fn seed_client_request_gets_the_seed_response() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let records = records("edge-001", 0, 0..100);
    let mut json = Vec::new();
    Codec::JsonPython.encode(&records, &mut json).unwrap();
    let body = gzip(&json);
    let batch_id = "6f1c2b7e-3d4a-4b8e-9c1f-0a2b3c4d5e6f";
    let head = format!(
        "POST /api/ingest HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Encoding: gzip\r\nX-API-Key: {KEY}\r\nX-Batch-ID: {batch_id}\r\n\
         Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nUser-Agent: Python/3.11 aiohttp/3.9.1\r\n\
         Content-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let mut http = Http::connect(server.addr);
    let response = http.raw(&request);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json = response.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["batch_id"], batch_id);
    assert_eq!(json["records_accepted"], 100);
    // The seed's retry on the same keep-alive connection.
    let again = http.raw(&request);
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json(),
        serde_json::json!({"status": "duplicate", "batch_id": batch_id})
    );
    let stored = DataLakeStore::read_all(&dir.path().join("lake")).unwrap();
    assert_eq!(ids_once(&stored), expected_ids("edge-001", 0, 0..100));
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// gzip of `total` zero bytes, compressed a MiB at a time (never held whole).
fn gzip_zeros(total: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..total / chunk.len() {
        encoder.write_all(&chunk).unwrap();
    }
    encoder.finish().unwrap()
}

fn with_headers(body: Vec<u8>, batch_id: &str, headers: &[(&str, &str)]) -> IngestRequest {
    let mut request = IngestRequest::new(body)
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", batch_id);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

#[test]
fn bad_input_gets_the_documented_status_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-body-bytes",
            "2097152",
            "--max-decompressed-bytes",
            "8388608",
            "--max-records",
            "10000",
        ],
    );
    let mut http = Http::connect(server.addr);
    let post = |http: &mut Http, request: &IngestRequest| http.send("POST", "/api/ingest", request);
    let good_records = records("gw", 0, 0..50);
    let good = batch("gw", &good_records, Codec::Columnar, Compression::Lz4);

    // Wrong key.
    let mut wrong = request(&good);
    wrong.headers[0].1 = "valid-api-key".into();
    let response = post(&mut http, &wrong);
    assert_eq!(
        (response.status, response.body.as_str()),
        (401, r#"{"detail":"Invalid API key"}"#)
    );

    // Missing headers.
    let response = post(&mut http, &IngestRequest::new(b"[]".to_vec()));
    assert_eq!(response.status, 422);
    assert_eq!(
        response.json()["detail"][0]["loc"],
        serde_json::json!(["header", "x-api-key"])
    );

    // Garbage body.
    let response = post(
        &mut http,
        &with_headers(b"\xff\xfe garbage".to_vec(), "g", &[]),
    );
    assert_eq!(
        (response.status, response.body.as_str()),
        (400, r#"{"detail":"Invalid JSON"}"#)
    );
    let response = post(
        &mut http,
        &with_headers(
            b"\xff\xfe garbage".to_vec(),
            "g2",
            &[("X-Edgepipe-Codec", "columnar")],
        ),
    );
    assert_eq!(response.status, 400);

    // Bad checksum.
    let mut corrupt = request(&good);
    let last = corrupt.body.len() - 1;
    corrupt.body[last] ^= 1;
    let response = post(&mut http, &corrupt);
    assert_eq!(response.status, 400);
    assert!(
        response.body.contains("checksum mismatch"),
        "{}",
        response.body
    );

    // Truncated gzip.
    let mut truncated = seed_request("t", &good_records);
    truncated.body.truncate(truncated.body.len() - 10);
    let response = post(&mut http, &truncated);
    assert_eq!(
        (response.status, response.body.as_str()),
        (400, r#"{"detail":"Invalid gzip data"}"#)
    );

    // A gzip bomb: 1 GiB of zeros in about 1 MB.
    let bomb = gzip_zeros(1 << 30);
    assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
    let response = post(
        &mut http,
        &with_headers(bomb, "bomb", &[("Content-Encoding", "gzip")]),
    );
    assert_eq!(response.status, 413);
    assert!(
        response.body.contains("decompresses to more than"),
        "{}",
        response.body
    );

    // A batch claiming 10 M records: in the header, and inside a columnar payload.
    let mut claims = request(&good);
    for (name, value) in &mut claims.headers {
        if name == "X-Edgepipe-Records" {
            *value = "10000000".into();
        }
    }
    assert_eq!(post(&mut http, &claims).status, 413);
    let mut columnar = vec![2u8];
    varint(10_000_000, &mut columnar);
    columnar.extend_from_slice(&[0; 16]);
    let response = post(
        &mut http,
        &with_headers(columnar, "claims", &[("X-Edgepipe-Codec", "columnar")]),
    );
    assert_eq!(response.status, 413);
    assert!(response.body.contains("10000 records"), "{}", response.body);

    // A body over the limit, chunked so no Content-Length warns the server: it
    // stops reading at the limit.
    let mut chunked = format!(
        "POST /api/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nX-Batch-ID: big\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..3 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut other = Http::connect(server.addr);
    let response = other.raw(&chunked);
    assert_eq!(response.status, 413);
    assert!(
        response.body.contains("limit of 2097152 bytes"),
        "{}",
        response.body
    );
    // And declared too large up front.
    let response = Http::connect(server.addr).raw(
        format!(
            "POST /api/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nX-Batch-ID: big2\r\n\
             Content-Length: 1073741824\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(response.status, 413);

    // Records of the wrong shape are quarantined with their reasons.
    let body = format!(
        r#"[{},{{"record_id":"bad-1","device_id":"d","timestamp":"2026-01-01T00:00:00Z","data_type":"s","payload":[1,2]}},{{"device_id":"d"}}]"#,
        good_records[0].to_json().unwrap()
    );
    let response = post(
        &mut Http::connect(server.addr),
        &with_headers(
            gzip(body.as_bytes()),
            "shapes",
            &[("Content-Encoding", "gzip")],
        ),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["records_accepted"], 1);
    assert_eq!(response.json()["records_quarantined"], 2);
    let quarantine =
        std::fs::read_to_string(dir.path().join("quarantine/part-shapes.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = quarantine
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["record"]["record_id"], "bad-1");
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("payload"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1]["reason"].as_str().unwrap().contains("record_id"),
        "{}",
        lines[1]
    );

    // Later good batches still land, on a fresh connection and on the first one.
    let response = post(&mut Http::connect(server.addr), &request(&good));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json()["records_accepted"],
        49,
        "one was stored by `shapes`"
    );
    let more = batch(
        "gw",
        &records("gw", 0, 50..60),
        Codec::Json,
        Compression::SEED,
    );
    assert_eq!(post(&mut http, &request(&more)).status, 200);
    let stored = DataLakeStore::read_all(&dir.path().join("lake")).unwrap();
    assert_eq!(ids_once(&stored), expected_ids("gw", 0, 0..60));

    // The bomb never came near memory: the peak stays within the limits' order.
    let peak = server.peak_rss();
    eprintln!("server peak RSS after the bomb: {} KiB", peak >> 10);
    assert!(peak < 64 << 20, "peak RSS {} MiB", peak >> 20);

    let metrics = http.get("/metrics");
    assert_eq!(metrics.status, 200);
    for line in [
        "edgepipe_ingest_batches_total 3",
        "edgepipe_ingest_records_quarantined_total 2",
        "edgepipe_ingest_rejected_total{status=\"401\"} 1",
        "edgepipe_ingest_rejected_total{status=\"413\"} 5",
        "edgepipe_ingest_rejected_total{status=\"422\"} 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} in\n{}",
            metrics.body
        );
    }
    assert_eq!(http.get("/health").body, r#"{"status":"ok"}"#);
    assert_eq!(http.get("/nope").status, 404);
}

#[test]
fn dedup_holds_across_a_server_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let all = records("gw", 9, 0..40);
    let first = batch("gw", &all[..20], Codec::Columnar, Compression::Lz4);
    let server = Server::start(dir.path(), &[]);
    assert_eq!(
        Http::connect(server.addr)
            .send("POST", "/api/ingest", &request(&first))
            .status,
        200
    );
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let mut http = Http::connect(server.addr);
    let again = http.send("POST", "/api/ingest", &request(&first));
    assert_eq!(again.json()["status"], "duplicate");
    let rebatched = batch("gw", &all[10..40], Codec::Json, Compression::SEED);
    let response = http.send("POST", "/api/ingest", &request(&rebatched));
    assert_eq!(response.json()["records_accepted"], 20);
    assert_eq!(response.json()["records_duplicate"], 10);
    assert_eq!(
        ids_once(&DataLakeStore::read_all(&dir.path().join("lake")).unwrap()),
        expected_ids("gw", 9, 0..40)
    );
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let all = records("gw", 4, 0..10);
    let first = batch("gw", &all, Codec::Json, Compression::SEED);
    let mut server = Server::start(dir.path(), &[]);
    // A keep-alive connection stays open across the signal: shutdown closes it.
    let mut http = Http::connect(server.addr);
    assert_eq!(
        http.send("POST", "/api/ingest", &request(&first)).status,
        200
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "stopped by SIGTERM with {exit}");
    // What it stored is there for the next start.
    let server = Server::start(dir.path(), &[]);
    let again = Http::connect(server.addr).send("POST", "/api/ingest", &request(&first));
    assert_eq!(again.json()["status"], "duplicate");
}

#[test]
fn the_rust_api_starts_on_port_zero_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Arc::new(Receiver::open(ReceiverConfig::new([KEY]), dir.path()).unwrap());
    let server = start(
        receiver.clone(),
        ServerConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap();
    let addr = server.local_addr();
    let mut http = Http::connect(addr);
    let b = batch(
        "gw",
        &records("gw", 0, 0..5),
        Codec::Msgpack,
        Compression::Lz4,
    );
    assert_eq!(http.send("POST", "/api/ingest", &request(&b)).status, 200);
    // An idle keep-alive connection does not hold the shutdown up.
    server.shutdown().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );
    assert_eq!(
        receiver
            .metrics()
            .records_accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
}

/// HTTPS with a self-signed certificate made in the test: the server loads the
/// PEM files, a rustls client (ring) that trusts only that certificate stores a
/// batch through it.
#[test]
fn tls_serves_with_a_self_signed_certificate() {
    use std::io::Read;
    use tokio_rustls::rustls;

    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(server.addr).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);

    let b = batch(
        "gw",
        &records("gw", 0, 0..10),
        Codec::Columnar,
        Compression::Lz4,
    );
    let request = request(&b);
    let mut head =
        "POST /api/ingest HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_owned();
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&request.body).unwrap();
    let mut response = Vec::new();
    // The server closes after the response (Connection: close); a peer that drops
    // TCP without close_notify shows as UnexpectedEof once everything was read.
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("{e}"),
    }
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains(r#""records_accepted":10"#), "{response}");
    let stored = DataLakeStore::read_all(&dir.path().join("data/lake")).unwrap();
    assert_eq!(ids_once(&stored), expected_ids("gw", 0, 0..10));

    // A plain-HTTP client gets no answer from the TLS port.
    let mut plain = std::net::TcpStream::connect(server.addr).unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served"
    );
}
