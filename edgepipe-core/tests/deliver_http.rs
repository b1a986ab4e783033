//! The HTTP sink against a real HTTPS server on loopback (rustls with a
//! self-signed certificate made here): every header it sends, the HMAC, the
//! body, each protocol answer's classification, keep-alive, and transport failures.

#![cfg(feature = "http")]

mod http_support;

use std::net::TcpListener;
use std::time::Duration;

use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{Delivered, HttpSink, HttpSinkOptions, SendFailure, Sink};
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::{DataRecord, Timestamp};
use http_support::{API_KEY, Identity, Reply, TestServer, sha256_hex, signature};

const HMAC_KEY: &[u8] = b"a shared secret";

/// `count` records of source `gw-1`, epoch 3, sequence numbers from `first`.
fn records(first: u64, count: u64) -> Vec<DataRecord> {
    let lines: String = (first..first + count)
        .map(|sequence| {
            format!(
                "{{\"record_id\":\"gw-1:3:{sequence}\",\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:{:02}Z\",\
                 \"data_type\":\"sensors\",\"payload\":{{\"t\":{sequence}.5}}}}\n",
                sequence % 60
            )
        })
        .collect();
    parse_jsonl(lines.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect()
}

fn batch(codec: Codec, compression: Compression, first: u64) -> Batch {
    BatchEncoder::new("gw-1", codec, compression)
        .unwrap()
        .encode(
            &records(first, 10),
            Timestamp::parse("2026-01-01T00:01:00.5Z").unwrap(),
        )
        .unwrap()
}

fn gzip_json(first: u64) -> Batch {
    batch(Codec::Json, Compression::SEED, first)
}

fn options(server: &TestServer, identity: &Identity) -> HttpSinkOptions {
    HttpSinkOptions::new(server.https_url(), API_KEY).with_ca_certificates_pem(&identity.cert_pem)
}

fn sink(server: &TestServer, identity: &Identity) -> HttpSink {
    HttpSink::new(options(server, identity)).unwrap()
}

fn assert_retryable(result: Result<Delivered, SendFailure>) -> (String, Option<Duration>) {
    match result {
        Err(SendFailure::Retryable {
            reason,
            retry_after,
        }) => (reason, retry_after),
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

fn assert_unreachable(result: Result<Delivered, SendFailure>) -> String {
    match result {
        Err(SendFailure::Unreachable { reason }) => reason,
        other => panic!("expected an unreachable failure, got {other:?}"),
    }
}

fn assert_permanent(result: Result<Delivered, SendFailure>) -> String {
    match result {
        Err(SendFailure::Permanent { reason }) => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[test]
fn https_delivery_sends_the_payload_with_every_header_and_a_valid_signature() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, Some(HMAC_KEY));
    let mut sink = HttpSink::new(options(&server, &identity).with_hmac_key(HMAC_KEY)).unwrap();

    let sent = gzip_json(100);
    assert_eq!(sink.send(&sent), Ok(Delivered::Stored));
    assert_eq!(sink.send(&sent), Ok(Delivered::Duplicate));
    assert_eq!(server.stored(), 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let request = &requests[0];
    let envelope = &sent.envelope;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/ingest");
    assert_eq!(request.body, sent.payload);
    let expected = [
        ("content-type", "application/octet-stream".to_owned()),
        ("x-api-key", API_KEY.to_owned()),
        ("x-batch-id", envelope.batch_id.clone()),
        ("content-encoding", "gzip".to_owned()),
        ("x-edgepipe-codec", "json".to_owned()),
        ("x-edgepipe-checksum", sha256_hex(&sent.payload)),
        ("x-edgepipe-source", "gw-1".to_owned()),
        ("x-edgepipe-records", "10".to_owned()),
        ("x-edgepipe-sequence", "3:100-109".to_owned()),
        (
            "x-edgepipe-created-at",
            "2026-01-01T00:01:00.500Z".to_owned(),
        ),
        (
            "x-edgepipe-signature",
            signature(HMAC_KEY, &envelope.batch_id, &sent.payload),
        ),
    ];
    for (name, value) in &expected {
        assert_eq!(request.header(name), Some(value.as_str()), "{name}");
    }
    assert_eq!(envelope.checksum, sha256_hex(&sent.payload));
}

#[test]
fn codec_and_compression_are_named_and_uncompressed_batches_send_no_encoding() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    let lz4 = batch(Codec::Msgpack, Compression::Lz4, 0);
    let plain = batch(Codec::Columnar, Compression::None, 20);
    assert_eq!(sink.send(&lz4), Ok(Delivered::Stored));
    assert_eq!(sink.send(&plain), Ok(Delivered::Stored));
    let requests = server.requests();
    assert_eq!(requests[0].header("content-encoding"), Some("lz4"));
    assert_eq!(requests[0].header("x-edgepipe-codec"), Some("msgpack"));
    assert_eq!(requests[0].body, lz4.payload);
    assert_eq!(requests[1].header("content-encoding"), None);
    assert_eq!(requests[1].header("x-edgepipe-codec"), Some("columnar"));
    assert_eq!(requests[1].body, plain.payload);
    // No key configured, no signature.
    assert_eq!(requests[0].header("x-edgepipe-signature"), None);
}

#[test]
fn a_batch_without_a_sequence_range_sends_no_sequence_header() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    let mut mixed = records(0, 2);
    mixed[1].record_id = "not-a-sequence-id".into();
    let sent = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED)
        .unwrap()
        .encode(&mixed, Timestamp::UNIX_EPOCH)
        .unwrap();
    assert_eq!(sent.envelope.sequence, None);
    assert_eq!(sink.send(&sent), Ok(Delivered::Stored));
    let request = &server.requests()[0];
    assert_eq!(request.header("x-edgepipe-sequence"), None);
    assert_eq!(request.header("x-edgepipe-records"), Some("2"));
    assert_eq!(
        request.header("x-edgepipe-created-at"),
        Some("1970-01-01T00:00:00Z")
    );
}

#[test]
fn a_wrong_signature_key_is_refused_permanently() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, Some(HMAC_KEY));
    let mut signed =
        HttpSink::new(options(&server, &identity).with_hmac_key(b"another".to_vec())).unwrap();
    let reason = assert_permanent(signed.send(&gzip_json(0)));
    assert!(
        reason.contains("401") && reason.contains("Invalid signature"),
        "{reason}"
    );
    let mut unsigned = sink(&server, &identity);
    let reason = assert_permanent(unsigned.send(&gzip_json(0)));
    assert!(reason.contains("Invalid signature"), "{reason}");
    assert_eq!(server.stored(), 0);
}

#[test]
fn a_wrong_api_key_is_refused_permanently() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = HttpSink::new(
        HttpSinkOptions::new(server.https_url(), "wrong")
            .with_ca_certificates_pem(&identity.cert_pem),
    )
    .unwrap();
    let reason = assert_permanent(sink.send(&gzip_json(0)));
    assert_eq!(reason, r#"HTTP 401: {"detail":"Invalid API key"}"#);
}

#[test]
fn without_the_ca_the_certificate_is_not_trusted_and_the_endpoint_is_unreachable() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = HttpSink::new(HttpSinkOptions::new(server.https_url(), API_KEY)).unwrap();
    let reason = assert_unreachable(sink.send(&gzip_json(0)));
    assert!(
        reason.contains("TLS") || reason.to_lowercase().contains("certificate"),
        "{reason}"
    );
    // Another self-signed certificate is no better.
    let other = Identity::new();
    let mut sink = HttpSink::new(
        HttpSinkOptions::new(server.https_url(), API_KEY).with_ca_certificates_pem(&other.cert_pem),
    )
    .unwrap();
    assert_unreachable(sink.send(&gzip_json(0)));
    assert!(server.requests().is_empty());
    assert_eq!(server.stored(), 0);
}

#[test]
fn too_many_requests_honours_retry_after_in_seconds_and_as_a_date() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    let date = "Fri, 01 Jan 2100 00:00:00 GMT";
    let date_at = Timestamp::parse("2100-01-01T00:00:00Z").unwrap();
    server.script([
        Reply::fixed(429, r#"{"detail":"slow down"}"#).with_header("Retry-After", "120"),
        Reply::fixed(429, r#"{"detail":"slow down"}"#).with_header("Retry-After", date),
        Reply::fixed(429, "").with_header("Retry-After", "whenever"),
    ]);
    let (reason, retry_after) = assert_retryable(sink.send(&gzip_json(0)));
    assert_eq!(retry_after, Some(Duration::from_secs(120)));
    assert!(reason.starts_with("HTTP 429"), "{reason}");

    let before = Timestamp::now();
    let (_, retry_after) = assert_retryable(sink.send(&gzip_json(0)));
    let after = Timestamp::now();
    let retry_after = retry_after.expect("the date is read");
    // The wait is the date less the clock at the moment the answer was read.
    assert!(
        retry_after <= date_at.duration_since(before),
        "{retry_after:?}"
    );
    assert!(
        retry_after >= date_at.duration_since(after),
        "{retry_after:?}"
    );

    let (_, retry_after) = assert_retryable(sink.send(&gzip_json(0)));
    assert_eq!(retry_after, None);
    // The next answer is the protocol's again, on the same connection.
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Stored));
    assert_eq!(server.connections(), 1);
}

#[test]
fn unavailable_is_retryable_with_its_hint_and_bad_request_is_permanent() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    server.script([
        Reply::fixed(503, r#"{"detail":"store is full"}"#).with_header("Retry-After", "7"),
        Reply::fixed(500, ""),
        Reply::fixed(400, r#"{"detail":"Invalid gzip data"}"#),
        Reply::fixed(413, r#"{"detail":"body over 10485760 bytes"}"#),
        Reply::fixed(
            422,
            r#"{"detail":[{"type":"missing","loc":["header","x-api-key"],"msg":"Field required","input":null}]}"#,
        ),
        Reply::fixed(307, "").with_header("Location", "https://elsewhere.example/api/ingest"),
    ]);
    let (reason, retry_after) = assert_retryable(sink.send(&gzip_json(0)));
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert_eq!(reason, r#"HTTP 503: {"detail":"store is full"}"#);
    let (reason, retry_after) = assert_retryable(sink.send(&gzip_json(0)));
    assert_eq!((reason.as_str(), retry_after), ("HTTP 500", None));
    assert_eq!(
        assert_permanent(sink.send(&gzip_json(0))),
        r#"HTTP 400: {"detail":"Invalid gzip data"}"#
    );
    assert!(assert_permanent(sink.send(&gzip_json(0))).starts_with("HTTP 413"));
    assert!(assert_permanent(sink.send(&gzip_json(0))).starts_with("HTTP 422"));
    // Redirects are not followed: the POST went to one place only.
    assert!(assert_permanent(sink.send(&gzip_json(0))).starts_with("HTTP 307"));
    assert_eq!(server.requests().len(), 6);
    assert_eq!(server.stored(), 0);
}

#[test]
fn a_success_status_with_an_unexpected_body_is_not_a_delivery() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    server.script([
        Reply::fixed(200, "<html>Welcome to nginx!</html>"),
        Reply::fixed(200, r#"{"status":"queued"}"#),
        Reply::fixed(204, ""),
        Reply::fixed(200, r#"{"status":"ok","batch_id":"someone-else"}"#),
    ]);
    for _ in 0..4 {
        let (reason, _) = assert_retryable(sink.send(&gzip_json(0)));
        assert!(reason.contains("not known to be stored"), "{reason}");
    }
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Stored));
}

#[test]
fn batches_share_one_kept_alive_connection() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    for index in 0..8 {
        assert_eq!(sink.send(&gzip_json(index * 10)), Ok(Delivered::Stored));
    }
    assert_eq!(server.stored(), 8);
    assert_eq!(server.connections(), 1);
    assert!(
        server
            .requests()
            .iter()
            .all(|request| request.connection == 0)
    );
}

#[test]
fn a_connection_closed_without_an_answer_is_unreachable_and_the_next_send_reconnects() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Stored));
    server.script([Reply::Close]);
    assert_unreachable(sink.send(&gzip_json(10)));
    assert_eq!(sink.send(&gzip_json(10)), Ok(Delivered::Stored));
    assert_eq!(server.connections(), 2);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].body, gzip_json(10).payload);
}

#[test]
fn a_kept_alive_connection_the_server_has_since_closed_is_not_reused() {
    // A server's keep-alive idle timeout closes the connection between batches;
    // the next batch must go out on a new one, not fail on the dead one.
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink = sink(&server, &identity);
    server.script([Reply::AnswerThenClose]);
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Stored));
    server.wait_closed(1);
    assert_eq!(sink.send(&gzip_json(10)), Ok(Delivered::Stored));
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_server_that_never_answers_times_out_as_unreachable() {
    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let mut sink =
        HttpSink::new(options(&server, &identity).with_request_timeout(Duration::from_millis(300)))
            .unwrap();
    server.script([Reply::Hang]);
    let reason = assert_unreachable(sink.send(&gzip_json(0)));
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Stored));
}

#[test]
fn a_refused_connection_is_unreachable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let mut sink = HttpSink::new(HttpSinkOptions::new(
        format!("http://127.0.0.1:{port}"),
        API_KEY,
    ))
    .unwrap();
    let reason = assert_unreachable(sink.send(&gzip_json(0)));
    assert!(
        reason.contains("ConnectionRefused") || reason.contains("connection"),
        "{reason}"
    );
}

#[test]
fn a_host_that_does_not_resolve_is_unreachable() {
    // `.invalid` never resolves (RFC 6761); the resolver answers without a network.
    let mut sink = HttpSink::new(
        HttpSinkOptions::new("http://edgepipe-test.invalid", API_KEY)
            .with_connect_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    assert_unreachable(sink.send(&gzip_json(0)));
}

#[test]
fn plain_http_works_too() {
    let server = TestServer::http(None);
    let mut sink = HttpSink::new(HttpSinkOptions::new(server.http_url() + "/", API_KEY)).unwrap();
    assert_eq!(sink.url(), format!("{}/api/ingest", server.http_url()));
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Stored));
    assert_eq!(sink.send(&gzip_json(0)), Ok(Delivered::Duplicate));
}

#[test]
fn seed_compatible_mode_sends_only_the_seeds_headers_and_refuses_what_the_seed_cannot_read() {
    let server = TestServer::http(None);
    let mut sink =
        HttpSink::new(HttpSinkOptions::new(server.http_url(), API_KEY).with_seed_compatible(true))
            .unwrap();
    let sent = gzip_json(0);
    assert_eq!(sink.send(&sent), Ok(Delivered::Stored));
    let python = batch(Codec::JsonPython, Compression::None, 10);
    assert_eq!(sink.send(&python), Ok(Delivered::Stored));
    for (codec, compression, named) in [
        (Codec::Msgpack, Compression::SEED, "codec msgpack"),
        (Codec::Columnar, Compression::None, "codec columnar"),
        (Codec::Jsonl, Compression::SEED, "codec jsonl"),
        (Codec::Json, Compression::Lz4, "compression lz4"),
    ] {
        let reason = assert_permanent(sink.send(&batch(codec, compression, 20)));
        assert!(
            reason.contains("seed-compatible") && reason.contains(named),
            "{reason}"
        );
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "refused batches are not sent");
    for request in &requests {
        let extensions: Vec<&String> = request
            .headers
            .keys()
            .filter(|name| name.starts_with("x-edgepipe"))
            .collect();
        assert!(extensions.is_empty(), "{extensions:?}");
        assert_eq!(request.header("x-api-key"), Some(API_KEY));
        assert_eq!(
            request.header("content-type"),
            Some("application/octet-stream")
        );
    }
    assert_eq!(
        requests[0].header("x-batch-id"),
        Some(sent.envelope.batch_id.as_str())
    );
    assert_eq!(requests[0].header("content-encoding"), Some("gzip"));
    assert_eq!(requests[1].header("content-encoding"), None);
}

#[test]
fn options_that_cannot_work_are_refused_at_construction() {
    for endpoint in [
        "ftp://host",
        "host:8080",
        "https://",
        "http://host/?q=1",
        "",
    ] {
        assert!(
            HttpSink::new(HttpSinkOptions::new(endpoint, API_KEY)).is_err(),
            "{endpoint:?}"
        );
    }
    let error = HttpSink::new(
        HttpSinkOptions::new("http://host", API_KEY)
            .with_seed_compatible(true)
            .with_hmac_key(HMAC_KEY),
    )
    .unwrap_err();
    assert!(error.to_string().contains("hmac_key"), "{error}");
    let error = HttpSink::new(
        HttpSinkOptions::new("https://host", API_KEY).with_ca_certificates_pem("not a certificate"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("ca_certificates_pem"), "{error}");
}

#[test]
fn descriptions_and_debug_output_never_show_secrets() {
    let options = HttpSinkOptions::new("https://user:pw@ingest.example.com/edge/", "secret-key")
        .with_hmac_key(b"secret-hmac".to_vec());
    let shown = format!("{options:?}");
    assert!(
        !shown.contains("secret") && !shown.contains("pw@"),
        "{shown}"
    );
    let sink = HttpSink::new(options).unwrap();
    assert_eq!(
        sink.describe(),
        "http:https://ingest.example.com/edge/api/ingest"
    );
    let shown = format!("{sink:?}");
    assert!(
        !shown.contains("secret") && !shown.contains("pw@"),
        "{shown}"
    );
}

#[test]
fn the_delivery_loop_drains_a_queue_through_the_sink_honouring_the_servers_answers() {
    use std::sync::Arc;

    use edgepipe_core::deliver::{Delivery, DeliveryOptions, Jitter, RetryPolicy, Step};
    use edgepipe_core::queue::{Entry, MemoryQueue, Queue, QueueOptions};

    let identity = Identity::new();
    let server = TestServer::https(&identity, None);
    let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    let good = gzip_json(0);
    let refused = batch(Codec::Json, Compression::SEED, 500);
    queue.enqueue(Entry::from_batch(&good)).unwrap();
    let options = DeliveryOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        ..DeliveryOptions::default()
    };
    let mut delivery = Delivery::with_jitter(
        queue.clone(),
        Box::new(sink(&server, &identity)),
        options,
        Jitter::seeded(1),
    );
    server.script([Reply::fixed(503, r#"{"detail":"busy"}"#).with_header("Retry-After", "30")]);
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    // The server's 30 s is the floor of the wait, above the policy's 1 ms.
    match delivery.step(now).unwrap() {
        Step::Retry { retry_at, reason } => {
            assert!(
                retry_at >= now.saturating_add(Duration::from_secs(30)),
                "{reason}"
            );
            assert_eq!(delivery.step(now).unwrap(), Step::Idle);
            assert_eq!(
                delivery.step(retry_at).unwrap(),
                Step::Sent {
                    delivered: Delivered::Stored
                }
            );
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    server.script([Reply::fixed(400, r#"{"detail":"Invalid JSON"}"#)]);
    queue.enqueue(Entry::from_batch(&refused)).unwrap();
    match delivery
        .step(now.saturating_add(Duration::from_secs(60)))
        .unwrap()
    {
        Step::DeadLettered { reason } => assert!(reason.contains("Invalid JSON"), "{reason}"),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let stats = queue.stats();
    assert_eq!((stats.pending, stats.in_flight, stats.dead), (0, 0, 1));
    assert_eq!(delivery.metrics().batches_sent, 1);
    assert_eq!(server.stored(), 1);
}
