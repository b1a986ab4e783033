#!/usr/bin/env bash
# gzip-6 compress and decompress speed of each flate2 backend on the seed's
# batches: the shared workload with the reference scenario's metadata, as
# json.dumps of 100 records each (what the seed's BatchProcessor gzips).
#
#   benches/flate2-backends.sh [RECORDS]      (default 200000)
#
# Each backend is a separate build of a small program outside the workspace
# (flate2 picks one backend per build: C zlib-ng over zlib-rs over miniz_oxide),
# pinned to the flate2 version in Cargo.lock; `+` joins flate2 features of one
# build (`runtime_detection` lets zlib-rs pick SIMD code for the CPU it runs
# on). zlib-ng builds from C with cmake.
# Figures are the best of 5 passes over all batches, per CPU-second of the
# measuring thread (Linux's schedstat), so neighbours' load moves them less
# than wall-clock time; still, compare backends within one run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

records=${1:-200000}
work=${TMPDIR:-/tmp}/edgepipe-flate2-backends
mkdir -p "$work/src"
version=$(awk '/^name = "flate2"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)

workload=${EDGEPIPE_WORKLOAD:-$work/workload.jsonl}
if [ ! -s "$workload" ]; then
    python3 ../shared/bench/workload.py -q -n "$records" -o "$workload"
fi
# Length-prefixed batches: json.dumps([r.to_dict() for r in batch]) per 100 records.
python3 - "$workload" "$records" "$work/batches.bin" <<'PY'
import json, struct, sys
path, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = []
with open(path) as lines:
    for line in lines:
        if len(records) == count:
            break
        record = json.loads(line)
        record["metadata"] = {"region": "us-west", "site": "factory-1"}
        records.append(record)
with open(out, "wb") as f:
    for i in range(0, len(records), 100):
        body = json.dumps(records[i:i + 100]).encode("utf-8")
        f.write(struct.pack("<II", len(records[i:i + 100]), len(body)) + body)
PY

cat > "$work/src/main.rs" <<'RS'
use std::io::{Read, Write};

/// CPU time of this thread in seconds.
fn cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    text.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}

fn main() {
    let path = std::env::args().nth(1).expect("batches file");
    let data = std::fs::read(path).expect("batches");
    let (mut batches, mut records, mut at) = (Vec::new(), 0u64, 0);
    while at < data.len() {
        let count = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
        let length = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        batches.push(&data[at + 8..at + 8 + length]);
        records += u64::from(count);
        at += 8 + length;
    }
    let raw: usize = batches.iter().map(|b| b.len()).sum();
    let (mut compress, mut decompress, mut compressed) = (f64::MAX, f64::MAX, Vec::new());
    for _ in 0..5 {
        let start = cpu_seconds();
        compressed = batches
            .iter()
            .map(|batch| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                encoder.write_all(batch).unwrap();
                encoder.finish().unwrap()
            })
            .collect::<Vec<_>>();
        compress = compress.min(cpu_seconds() - start);
        let start = cpu_seconds();
        for (gz, batch) in compressed.iter().zip(&batches) {
            let mut out = Vec::with_capacity(batch.len());
            flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
            assert!(out == *batch);
        }
        decompress = decompress.min(cpu_seconds() - start);
    }
    let size: usize = compressed.iter().map(Vec::len).sum();
    let mb = raw as f64 / 1e6;
    println!(
        "{:<26} per CPU-second: compress {:>4.0} k records {:>5.1} MB | decompress {:>5.0} k records {:>5.1} MB | {:.2} B/record",
        std::env::var("BACKEND").unwrap_or_default(),
        records as f64 / compress / 1e3,
        mb / compress,
        records as f64 / decompress / 1e3,
        mb / decompress,
        size as f64 / records as f64,
    );
}
RS

for backend in miniz_oxide zlib-rs zlib-rs+runtime_detection zlib-ng; do
    features=\"${backend//+/\", \"}\"
    cat > "$work/Cargo.toml" <<TOML
[package]
name = "flate2-backends"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
flate2 = { version = "=$version", default-features = false, features = [$features] }

[profile.release]
debug = 1

[workspace]
TOML
    CARGO_TARGET_DIR="$work/target-$backend" cargo build --quiet --release --manifest-path "$work/Cargo.toml"
    BACKEND=$backend "$work/target-$backend/release/flate2-backends" "$work/batches.bin"
done
