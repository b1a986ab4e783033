//! The HTTP sink over loopback (`--features http`): records/s and batches/s of
//! the seed's batches (100 records of the shared workload, json + gzip-6) sent
//! one at a time to the in-test-style server of `edgepipe-core/tests/http_support`
//! (HTTP/1.1, TLS with rustls on ring, answering the protocol's JSON).
//!
//! Cases: plain HTTP and HTTPS on a kept-alive connection, HTTPS with an HMAC
//! signature, and HTTPS with a new sink (so a new connection and handshake) per
//! batch — the ratio of the last to the kept-alive HTTPS case is what keep-alive
//! buys. The server is in this process and shares the two cores, so the figures
//! are the client and server together; compare them as ratios.

#[path = "../../edgepipe-core/tests/http_support/mod.rs"]
mod http_support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_benches::workload_jsonl;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{Delivered, HttpSink, HttpSinkOptions, Sink};
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::{DataRecord, Timestamp};
use http_support::{API_KEY, Identity, TestServer};

const RECORDS_PER_BATCH: usize = 100;

fn seed_batch() -> Batch {
    let (input, source) = workload_jsonl(RECORDS_PER_BATCH);
    eprintln!("workload: {source:?}");
    let records: Vec<DataRecord> = parse_jsonl(&input)
        .map(|(_, record)| record.expect("workload records parse"))
        .collect();
    BatchEncoder::new("gateway-7", Codec::Json, Compression::SEED)
        .unwrap()
        .encode(&records, Timestamp::UNIX_EPOCH)
        .unwrap()
}

fn send(sink: &mut HttpSink, batch: &Batch) {
    // The first send stores the batch, every later one is a duplicate: the same
    // exchange for the sink.
    let delivered = sink.send(batch).expect("the server accepts the batch");
    assert!(matches!(
        delivered,
        Delivered::Stored | Delivered::Duplicate
    ));
}

fn bench(c: &mut Criterion) {
    let batch = seed_batch();
    let identity = Identity::new();
    let hmac_key = b"bench secret".as_slice();
    let plain = TestServer::http(None);
    let tls = TestServer::https(&identity, None);
    let signed = TestServer::https(&identity, Some(hmac_key));
    let tls_options = |server: &TestServer| {
        HttpSinkOptions::new(server.https_url(), API_KEY)
            .with_ca_certificates_pem(&identity.cert_pem)
    };

    let mut group = c.benchmark_group("http_sink");
    group.throughput(Throughput::Elements(RECORDS_PER_BATCH as u64));
    let mut sink = HttpSink::new(HttpSinkOptions::new(plain.http_url(), API_KEY)).unwrap();
    group.bench_function("http keep-alive", |b| b.iter(|| send(&mut sink, &batch)));
    let mut sink = HttpSink::new(tls_options(&tls)).unwrap();
    group.bench_function("https keep-alive", |b| b.iter(|| send(&mut sink, &batch)));
    let mut sink = HttpSink::new(tls_options(&signed).with_hmac_key(hmac_key)).unwrap();
    group.bench_function("https keep-alive + hmac", |b| {
        b.iter(|| send(&mut sink, &batch))
    });
    group.bench_function("https new connection per batch", |b| {
        b.iter(|| send(&mut HttpSink::new(tls_options(&tls)).unwrap(), &batch))
    });
    group.finish();
    eprintln!(
        "connections accepted: http {}, https {}, https+hmac {}",
        plain.connections(),
        tls.connections(),
        signed.connections()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
