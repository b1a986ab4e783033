//! Differential tests against the real tools: our gzip, lz4 and zstd read by the
//! `gzip`, `lz4` and `zstd` command-line programs, theirs read by us, and the
//! seed-shaped JSON batch read by Python's `gzip.decompress` + `json.loads` as the
//! seed's `decompress_batch` does. The tools come from Debian's `gzip lz4 zstd`
//! packages; a missing tool fails the test with a message saying so.

mod batch_support;

use std::io::Write;
use std::process::{Command, Stdio};

use batch_support::{assert_same_records, series_batch};
use edgepipe_core::batch::compression::{compress, decompress};
use edgepipe_core::batch::{BatchEncoder, Codec, Compression, DecodeLimits, decode_payload};
use edgepipe_core::record::{DataRecord, Timestamp};
use proptest::strategy::{Strategy, ValueTree};

fn tool(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("`{program}` is needed for this test (apt-get install gzip lz4 zstd; python3): {error}")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn sample() -> Vec<DataRecord> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut records = Vec::new();
    while records.len() < 500 {
        records.extend(series_batch().new_tree(&mut runner).unwrap().current());
    }
    records
}

fn encoded(records: &[DataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    Codec::Jsonl.encode(records, &mut out).unwrap();
    out
}

fn tools() -> Vec<(Compression, &'static str)> {
    let mut all = vec![(Compression::SEED, "gzip"), (Compression::Lz4, "lz4")];
    if cfg!(feature = "zstd") {
        all.push((Compression::Zstd { level: 3 }, "zstd"));
    }
    all
}

#[test]
fn the_command_line_tools_read_what_we_compress() {
    let data = encoded(&sample());
    for (compression, program) in tools() {
        let mut compressed = Vec::new();
        compress(&data, compression, &mut compressed).unwrap();
        assert_eq!(tool(program, &["-d", "-c"], &compressed), data, "{program}");
    }
}

#[test]
fn we_read_what_the_command_line_tools_compress() {
    let data = encoded(&sample());
    for (compression, program) in tools() {
        for level in ["-1", "-9"] {
            let compressed = tool(program, &[level, "-c"], &data);
            let back = decompress(&compressed, compression, data.len()).unwrap();
            assert_eq!(back, data, "{program} {level}");
        }
    }
    // lz4's legacy-free frame with linked blocks and checksums, as Python's lz4.frame writes.
    let compressed = tool("lz4", &["-BD", "--content-size", "-c"], &data);
    assert_eq!(
        decompress(&compressed, Compression::Lz4, data.len()).unwrap(),
        data
    );
}

#[test]
fn the_seeds_decompress_batch_reads_our_json_batch() {
    let records = sample();
    let encoder = BatchEncoder::new("gw-1", Codec::Json, Compression::SEED).unwrap();
    let batch = encoder
        .encode(&records, Timestamp::from_unix_nanos(0))
        .unwrap();
    // What the seed's BatchProcessor.decompress_batch does, then back to JSON Lines.
    let script = "import gzip, json, sys\n\
                  data = json.loads(gzip.decompress(sys.stdin.buffer.read()).decode('utf-8'))\n\
                  assert isinstance(data, list)\n\
                  sys.stdout.write(''.join(json.dumps(r, separators=(',', ':')) + '\\n' for r in data))\n";
    let lines = tool("python3", &["-c", script], &batch.payload);
    let back: Vec<DataRecord> = edgepipe_core::record::json::parse_jsonl(&lines)
        .map(|(_, record)| record.unwrap())
        .collect();
    assert_same_records(&back, &records);

    // And the seed's own batch body (json.dumps with its default separators,
    // gzip.compress level 6) is read by us.
    let script = "import gzip, json, sys\n\
                  records = [json.loads(line) for line in sys.stdin if line.strip()]\n\
                  sys.stdout.buffer.write(gzip.compress(json.dumps(records).encode('utf-8'), compresslevel=6))\n";
    let seed_body = tool("python3", &["-c", script], &encoded(&records));
    let decoded = decode_payload(
        &seed_body,
        Codec::Json,
        Compression::SEED,
        None,
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_same_records(&decoded, &records);
}
