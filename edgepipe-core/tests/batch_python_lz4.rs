//! lz4 interop with Python's `lz4.frame`, which the seed's `BatchProcessor` uses
//! for `compression="lz4"`: our lz4 batches decode with `lz4.frame.decompress`,
//! and frames from `lz4.frame.compress` (any block size, linked or independent
//! blocks, with or without checksums and content size) decode with us.
//!
//! The module comes from Debian's `python3-lz4` package (installed by
//! `scripts/test-all`), so the test runs the system interpreter,
//! `/usr/bin/python3`, not whichever `python3` is first on `PATH`. With
//! `CI=true` a missing module fails the test; elsewhere the test says so and
//! passes without checking.

mod batch_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use batch_support::{assert_same_records, series_batch};
use edgepipe_core::batch::compression::decompress;
use edgepipe_core::batch::{BatchEncoder, Codec, Compression, DecodeLimits, decode_payload};
use edgepipe_core::record::{DataRecord, Timestamp};
use proptest::strategy::{Strategy, ValueTree};

const SYSTEM_PYTHON: &str = "/usr/bin/python3";

fn run_python(script: &str, input: &[u8]) -> std::io::Result<Output> {
    let mut child = Command::new(SYSTEM_PYTHON)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    writer.join().expect("writer thread")?;
    Ok(output)
}

/// True when `lz4.frame` imports; otherwise fails under CI and reports elsewhere.
fn python_lz4_available() -> bool {
    let available = run_python("import lz4.frame", b"").is_ok_and(|out| out.status.success());
    if !available {
        let message = format!(
            "{SYSTEM_PYTHON} cannot import lz4.frame: install Debian's python3-lz4 \
             (scripts/test-all does)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipped: {message}");
    }
    available
}

/// Runs `script` on `input` and returns its standard output; the script must succeed.
fn python(script: &str, input: &[u8]) -> Vec<u8> {
    let output = run_python(script, input).expect("system python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn records() -> Vec<DataRecord> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut records = Vec::new();
    while records.len() < 2_000 {
        records.extend(series_batch().new_tree(&mut runner).unwrap().current());
    }
    records
}

#[test]
fn python_lz4_frame_decompresses_our_lz4_batches() {
    if !python_lz4_available() {
        return;
    }
    let records = records();
    // The seed's reading of an lz4 batch: lz4.frame.decompress, then json.loads.
    let decompress_json = "import json, lz4.frame, sys\n\
                           data = json.loads(lz4.frame.decompress(sys.stdin.buffer.read()))\n\
                           sys.stdout.write(''.join(json.dumps(r, separators=(',', ':')) + '\\n' for r in data))\n";
    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::Lz4).unwrap();
    // Small batches (one block) and one of several 64 KiB blocks.
    for count in [1, 100, records.len()] {
        let batch = encoder
            .encode(&records[..count], Timestamp::from_unix_nanos(0))
            .unwrap();
        let lines = python(decompress_json, &batch.payload);
        let back: Vec<DataRecord> = edgepipe_core::record::json::parse_jsonl(&lines)
            .map(|(_, record)| record.unwrap())
            .collect();
        assert_same_records(&back, &records[..count]);
    }
    // Any codec: Python gets back exactly the encoded bytes.
    let mut encoded = Vec::new();
    Codec::Columnar.encode(&records, &mut encoded).unwrap();
    let encoder = BatchEncoder::new("gw-1", Codec::Columnar, Compression::Lz4).unwrap();
    let batch = encoder
        .encode(&records, Timestamp::from_unix_nanos(0))
        .unwrap();
    let raw = "import lz4.frame, sys\n\
               sys.stdout.buffer.write(lz4.frame.decompress(sys.stdin.buffer.read()))\n";
    assert!(python(raw, &batch.payload) == encoded);
}

#[test]
fn we_decompress_python_lz4_frames() {
    if !python_lz4_available() {
        return;
    }
    let records = records();
    let mut json = Vec::new();
    Codec::Json.encode(&records, &mut json).unwrap();
    assert!(json.len() > 256 << 10, "spans several blocks of every size");
    let limits = DecodeLimits::default();
    for options in [
        // The seed's call: lz4.frame.compress(json_data).
        "",
        "block_size=lz4.frame.BLOCKSIZE_MAX4MB",
        "block_size=lz4.frame.BLOCKSIZE_MAX256KB, block_linked=False",
        "content_checksum=True, block_checksum=True",
        "store_size=False, compression_level=lz4.frame.COMPRESSIONLEVEL_MINHC",
        "compression_level=16, block_size=lz4.frame.BLOCKSIZE_MAX1MB",
    ] {
        let script = format!(
            "import lz4.frame, sys\n\
             sys.stdout.buffer.write(lz4.frame.compress(sys.stdin.buffer.read(), {options}))\n"
        );
        let frame = python(&script, &json);
        let back = decompress(&frame, Compression::Lz4, json.len()).unwrap();
        assert!(back == json, "lz4.frame.compress({options}) round trip");
        let decoded = decode_payload(&frame, Codec::Json, Compression::Lz4, None, &limits).unwrap();
        assert_same_records(&decoded, &records);
    }
}
