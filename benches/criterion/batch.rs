//! Batches on the shared workload (200,000 records, `add_metadata` as in the
//! reference scenario).
//!
//! Before the criterion groups, prints bytes on the wire per record for every
//! codec × compression under the issue's two batch policies — (a) the seed's
//! 100 records per batch in workload order, (b) 10 s of event time capped at
//! 1 MiB — with the workload's UUIDs and with edgepipe sequence ids, and the
//! seed's Python doing its gzip-6 JSON batches on the same input (CPU only).
//! Criterion then measures encode + compress + checksum throughput and lz4
//! frame vs block decoding on 1 MB.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_benches::batching::{
    Policy, batches, compression_label, compressions, with_sequence_ids,
};
use edgepipe_benches::workload_jsonl;
use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
use edgepipe_core::record::DataRecord;
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::transform::{AddMetadata, Pipeline};

const RECORDS: usize = 200_000;

fn workload() -> (Vec<u8>, Vec<DataRecord>) {
    let (input, source) = workload_jsonl(RECORDS);
    eprintln!("workload: {source:?}, {} bytes", input.len());
    let mut records: Vec<DataRecord> = parse_jsonl(&input)
        .filter_map(|(_, record)| record.ok())
        .collect();
    assert_eq!(records.len(), RECORDS);
    let mut pipeline = Pipeline::new().with(AddMetadata::new([
        ("region", "us-west"),
        ("site", "factory-1"),
    ]));
    let mut quarantine = Vec::new();
    pipeline.process_in_place(&mut records, &mut quarantine);
    (input, records)
}

fn bandwidth_table(records: &[DataRecord]) {
    let sequenced = with_sequence_ids(records);
    println!("\nbytes on the wire per record (payload only), 200,000 records");
    println!(
        "{:<10} {:<9} {:>12} {:>12} {:>12} {:>12}",
        "codec", "compr.", "(a) uuid", "(a) seq-id", "(b) uuid", "(b) seq-id"
    );
    for codec in Codec::ALL {
        for compression in compressions() {
            let mut row = format!("{:<10} {:<9}", codec.name(), compression_label(compression));
            for which in [Policy::Seed, Policy::TenSeconds] {
                for input in [records, &sequenced[..]] {
                    let batches = batches(input, codec, compression, which).unwrap();
                    let bytes: usize = batches.iter().map(|b| b.payload.len()).sum();
                    row.push_str(&format!(" {:>12.2}", bytes as f64 / RECORDS as f64));
                }
            }
            println!("{row}");
        }
    }
    let count = |which| {
        batches(&sequenced, Codec::Columnar, Compression::None, which)
            .unwrap()
            .len()
    };
    println!(
        "columnar batches: (a) {}, (b) {}\n",
        count(Policy::Seed),
        count(Policy::TenSeconds)
    );
}

/// The seed's BatchProcessor path on the same input, CPU only: to_dict → json.dumps
/// → gzip-6 → sha256 per 100 records. Records per second, or None without python3.
fn seed_python_records_per_second(input: &[u8]) -> Option<f64> {
    let script = r#"
import gzip, hashlib, json, sys, time
records = [json.loads(line) for line in sys.stdin.buffer if line.strip()]
for r in records:
    r["metadata"] = {"region": "us-west", "site": "factory-1"}
start = time.perf_counter()
size = 0
for i in range(0, len(records), 100):
    data = json.dumps(records[i:i + 100]).encode("utf-8")
    compressed = gzip.compress(data, compresslevel=6)
    hashlib.sha256(compressed).hexdigest()
    size += len(compressed)
elapsed = time.perf_counter() - start
print(len(records) / elapsed, size / len(records))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut numbers = text
        .split_whitespace()
        .filter_map(|n| n.parse::<f64>().ok());
    let rate = numbers.next()?;
    let size = numbers.next()?;
    println!(
        "seed python gzip-6 JSON batches of 100: {rate:.0} records/s (CPU only), {size:.1} B/record"
    );
    Some(rate)
}

/// Encode + compress + checksum of pre-split batches, on `threads` threads
/// (`BatchEncoder::encode_many`); returns the payload bytes.
fn encode_all(encoder: &BatchEncoder, splits: &[Vec<DataRecord>], threads: usize) -> usize {
    let now = edgepipe_core::record::Timestamp::from_unix_nanos(0);
    encoder
        .encode_many(splits, now, threads)
        .unwrap()
        .iter()
        .map(|batch| batch.payload.len())
        .sum()
}

/// CPU time this thread has run, in nanoseconds (Linux's schedstat), so a rate
/// can be stated per CPU-second on a machine shared with other builds.
fn thread_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Records per wall-clock second and per CPU-second of one-thread encoding,
/// best of 5 passes each.
fn cpu_rate(encoder: &BatchEncoder, splits: &[Vec<DataRecord>]) -> (f64, Option<f64>) {
    let (mut wall, mut cpu) = (f64::MAX, None::<f64>);
    for _ in 0..5 {
        let (start, cpu_start) = (Instant::now(), thread_cpu_nanos());
        encode_all(encoder, splits, 1);
        wall = wall.min(start.elapsed().as_secs_f64());
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu_nanos()) {
            let seconds = (after - before) as f64 / 1e9;
            cpu = Some(cpu.map_or(seconds, |best| best.min(seconds)));
        }
    }
    let records: usize = splits.iter().map(Vec::len).sum();
    (
        records as f64 / wall,
        cpu.map(|seconds| records as f64 / seconds),
    )
}

fn split(records: &[DataRecord], which: Policy, codec: Codec) -> Vec<Vec<DataRecord>> {
    // Policy (b) split as the batcher splits it, so throughput measures encoding only.
    let mut splits = Vec::new();
    let mut start = 0;
    for batch in batches(records, codec, Compression::None, which).unwrap() {
        let count = batch.envelope.record_count as usize;
        splits.push(records[start..start + count].to_vec());
        start += count;
    }
    splits
}

fn bench(c: &mut Criterion) {
    let (input, records) = workload();
    bandwidth_table(&records);
    let sequenced = with_sequence_ids(&records);

    // Same-run comparison with the seed's Python: its gzip-6 JSON batches of 100,
    // and edgepipe's byte-identical path (json-python) and compact JSON, each the
    // best of 3 passes, on one and on two threads.
    let seed = seed_python_records_per_second(&input);
    let seed_splits = split(&records, Policy::Seed, Codec::Json);
    for codec in [Codec::JsonPython, Codec::Json] {
        let encoder = BatchEncoder::new("gw-0", codec, Compression::SEED).unwrap();
        for threads in [1, 2] {
            let mut best = f64::MAX;
            let mut bytes = 0;
            for _ in 0..3 {
                let start = Instant::now();
                bytes = encode_all(&encoder, &seed_splits, threads);
                best = best.min(start.elapsed().as_secs_f64());
            }
            let rate = RECORDS as f64 / best;
            let ratio = seed
                .map(|s| format!(" ({:.1}× the seed)", rate / s))
                .unwrap_or_default();
            println!(
                "edgepipe {} gzip-6 batches of 100, {threads} thread(s): {rate:.0} records/s{ratio}, {:.1} B/record",
                codec.name(),
                bytes as f64 / RECORDS as f64
            );
        }
    }

    // Per CPU-second as well as per wall-clock second: neighbours' builds take
    // the CPU away from the wall-clock figures.
    for (name, codec, compression, which) in [
        (
            "columnar+lz4 (a)",
            Codec::Columnar,
            Compression::Lz4,
            Policy::Seed,
        ),
        (
            "columnar+lz4 (b)",
            Codec::Columnar,
            Compression::Lz4,
            Policy::TenSeconds,
        ),
        (
            "json-python+gzip6 (a)",
            Codec::JsonPython,
            Compression::SEED,
            Policy::Seed,
        ),
    ] {
        let splits = split(&sequenced, which, codec);
        let encoder = BatchEncoder::new("gw-0", codec, compression).unwrap();
        let (wall, cpu) = cpu_rate(&encoder, &splits);
        let cpu = cpu.map_or("n/a".to_owned(), |rate| format!("{:.2} M", rate / 1e6));
        println!(
            "{name}, 1 thread: {:.2} M records/s wall clock, {cpu} records per CPU-second",
            wall / 1e6
        );
    }

    let mut group = c.benchmark_group("encode+compress+checksum");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    for (name, codec, compression, which, threads) in [
        (
            "json-python+gzip6 (a) 2 threads",
            Codec::JsonPython,
            Compression::SEED,
            Policy::Seed,
            2,
        ),
        (
            "json+gzip6 (a) 1 thread",
            Codec::Json,
            Compression::SEED,
            Policy::Seed,
            1,
        ),
        (
            "json+gzip6 (a) 2 threads",
            Codec::Json,
            Compression::SEED,
            Policy::Seed,
            2,
        ),
        (
            "columnar+lz4 (a)",
            Codec::Columnar,
            Compression::Lz4,
            Policy::Seed,
            1,
        ),
        (
            "columnar+lz4 (b)",
            Codec::Columnar,
            Compression::Lz4,
            Policy::TenSeconds,
            1,
        ),
        (
            "msgpack+lz4 (a)",
            Codec::Msgpack,
            Compression::Lz4,
            Policy::Seed,
            1,
        ),
    ] {
        let splits = split(&sequenced, which, codec);
        let encoder = BatchEncoder::new("gw-0", codec, compression).unwrap();
        group.bench_function(name, |b| b.iter(|| encode_all(&encoder, &splits, threads)));
    }
    group.finish();

    // lz4 decoding of 1 MB: edgepipe's frames (independent 64 KiB blocks), lz4_flex's
    // default frame (linked 64 KiB blocks), and the raw block format.
    let mut json = Vec::new();
    Codec::Json.encode(&records[..3700], &mut json).unwrap();
    json.truncate(1 << 20);
    let mut ours = Vec::new();
    edgepipe_core::batch::compression::compress(&json, Compression::Lz4, &mut ours).unwrap();
    let mut default_frame = Vec::new();
    {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut default_frame);
        encoder.write_all(&json).unwrap();
        encoder.finish().unwrap();
    }
    let block = lz4_flex::block::compress(&json);
    let mut group = c.benchmark_group("lz4 decode 1 MB");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("frame, 64 KiB independent blocks (edgepipe)", |b| {
        b.iter(|| {
            edgepipe_core::batch::compression::decompress(&ours, Compression::Lz4, 2 << 20).unwrap()
        })
    });
    group.bench_function("frame, 64 KiB linked blocks (lz4_flex default)", |b| {
        b.iter(|| {
            edgepipe_core::batch::compression::decompress(&default_frame, Compression::Lz4, 2 << 20)
                .unwrap()
        })
    });
    group.bench_function("frame, read_to_end without edgepipe's reader", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut lz4_flex::frame::FrameDecoder::new(&default_frame[..]),
                &mut out,
            )
            .unwrap();
            out
        })
    });
    group.bench_function("block", |b| {
        b.iter(|| lz4_flex::block::decompress(&block, json.len()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
