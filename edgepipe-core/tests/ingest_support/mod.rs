//! Helpers shared by the ingest tests: records, batches and requests.
#![allow(dead_code)]

use std::path::Path;

use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::ingest::IngestRequest;
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};

pub const KEY: &str = "test-key-1";

/// Records `source:epoch:seq` for `seqs`, two devices, one day.
pub fn records(source: &str, epoch: u64, seqs: std::ops::Range<u64>) -> Vec<DataRecord> {
    seqs.map(|seq| {
        let mut record = DataRecord::new(format!("dev-{}", seq % 2), "sensors", Payload::new());
        record.record_id = format!("{source}:{epoch}:{seq}").into();
        record.timestamp = Timestamp::from_unix_millis(1_767_225_600_000 + seq as i64).unwrap();
        record
            .payload
            .insert("temperature", Value::Float(20.0 + seq as f64 / 8.0));
        record
    })
    .collect()
}

pub fn batch(
    source: &str,
    records: &[DataRecord],
    codec: Codec,
    compression: Compression,
) -> Batch {
    BatchEncoder::new(source, codec, compression)
        .unwrap()
        .encode(records, Timestamp::from_unix_millis(0).unwrap())
        .unwrap()
}

/// The request the edge's HTTP sink makes for `batch` (every extension header).
pub fn request(batch: &Batch) -> IngestRequest {
    let e = &batch.envelope;
    let mut request = IngestRequest::new(batch.payload.clone())
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", e.batch_id.clone())
        .header("Content-Type", "application/octet-stream")
        .header("X-Edgepipe-Codec", e.codec.name())
        .header("X-Edgepipe-Checksum", e.checksum.clone())
        .header("X-Edgepipe-Source", e.source_id.clone())
        .header("X-Edgepipe-Records", e.record_count.to_string());
    if e.compression != Compression::None {
        request = request.header("Content-Encoding", e.compression.name());
    }
    request
}

/// The request the seed's aiohttp sender makes: gzip JSON array, seed headers only.
pub fn seed_request(batch_id: &str, records: &[DataRecord]) -> IngestRequest {
    let mut json = Vec::new();
    Codec::JsonPython.encode(records, &mut json).unwrap();
    IngestRequest::new(gzip(&json))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Encoding", "gzip")
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", batch_id)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Sorted record ids, asserting none appears twice.
pub fn ids_once(records: &[DataRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.record_id.to_string()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a record was stored twice");
    ids
}

pub fn expected_ids(source: &str, epoch: u64, seqs: std::ops::Range<u64>) -> Vec<String> {
    let mut ids: Vec<String> = seqs.map(|s| format!("{source}:{epoch}:{s}")).collect();
    ids.sort();
    ids
}

/// A minimal blocking HTTP/1.1 client on one keep-alive connection, so the tests
/// see the bytes on the wire exactly.
pub struct Http {
    stream: std::io::BufReader<std::net::TcpStream>,
    pub addr: std::net::SocketAddr,
}

/// A response: status, headers (lowercase names), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Http {
    pub fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        Http {
            stream: std::io::BufReader::new(stream),
            addr,
        }
    }

    /// Sends raw bytes (a whole request) and reads one response.
    pub fn raw(&mut self, request: &[u8]) -> Response {
        use std::io::Write;
        self.stream.get_mut().write_all(request).unwrap();
        self.read_response()
    }

    pub fn send(&mut self, method: &str, path: &str, request: &IngestRequest) -> Response {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in &request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&request.body);
        self.raw(&bytes)
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).as_bytes())
    }

    pub fn read_response(&mut self) -> Response {
        use std::io::{BufRead, Read};
        let mut line = String::new();
        self.stream.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 "), "status line {line:?}");
        let status = line[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        Response {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }
}

/// The `edgepipe-ingest` binary running as a child on a free loopback port.
pub struct Server {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgepipe-ingest"))
            .args(["--listen", "127.0.0.1:0", "--api-key", KEY, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    /// Peak resident memory of the server process so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
