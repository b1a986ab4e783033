//! Decompression and expansion bombs: each is refused with a typed error while
//! the memory the decoder allocates stays within the configured cap, measured by
//! a counting global allocator. One test function, so no other test thread
//! allocates while a peak is being measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgepipe_core::Error;
use edgepipe_core::batch::{Codec, Compression, DecodeLimits, decode_payload};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CAP: usize = 1 << 20;

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_compressed_bytes: 64 << 20,
        max_decompressed_bytes: CAP,
        max_records: 100_000,
        max_depth: 128,
    }
}

/// Runs `decode`, returning its result and the bytes it allocated at its peak.
fn measured<T>(decode: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = decode();
    (result, PEAK.load(Ordering::Relaxed) - base)
}

fn assert_within_cap(name: &str, peak: usize) {
    // The output buffer may reach the cap; the decompressor's own state (an lz4
    // block buffer of at most 4 MiB, zlib's 32 KiB window) comes on top.
    let allowance = CAP + (9 << 20);
    assert!(
        peak <= allowance,
        "{name}: peak {peak} bytes exceeds {allowance}"
    );
    println!("{name}: peak {peak} bytes");
}

fn gzip_of_zeros(total: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..total / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

#[test]
fn bombs_are_refused_within_the_memory_cap() {
    // A gzip of 1 GiB of zeros (about 1 MB on the wire).
    let bomb = gzip_of_zeros(1 << 30);
    let (result, peak) =
        measured(|| decode_payload(&bomb, Codec::Json, Compression::SEED, None, &limits()));
    assert!(
        matches!(result, Err(Error::DecompressedTooLarge { limit: CAP })),
        "{result:?}"
    );
    assert_within_cap("gzip 1 GiB of zeros", peak);
    drop(bomb);

    // An lz4 frame whose header claims 2^62 bytes, followed by 64 MiB of zeros.
    let mut frame = Vec::new();
    let info = lz4_flex::frame::FrameInfo::new().content_size(Some(1 << 62));
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, &mut frame);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&zeros).unwrap();
    }
    // Finishing checks the declared size and fails; the bytes written stand.
    let _ = encoder.finish();
    let (result, peak) =
        measured(|| decode_payload(&frame, Codec::Json, Compression::Lz4, None, &limits()));
    assert!(
        matches!(result, Err(Error::DecompressedTooLarge { limit: CAP })),
        "{result:?}"
    );
    assert_within_cap("lz4 frame claiming 2^62 bytes", peak);

    zstd_bombs();

    // 10 million tiny records declared by a columnar header.
    let mut header = vec![1u8];
    let mut count = 10_000_000u64;
    while count >= 0x80 {
        header.push((count as u8) | 0x80);
        count >>= 7;
    }
    header.push(count as u8);
    let (result, peak) =
        measured(|| decode_payload(&header, Codec::Columnar, Compression::None, None, &limits()));
    assert!(
        matches!(result, Err(Error::TooManyRecords { limit: 100_000 })),
        "{result:?}"
    );
    assert_within_cap("columnar declaring 10M records", peak);

    // 10 million tiny JSON Lines records, gzipped: stopped by the size limit.
    let line = br#"{"record_id":"","device_id":"","timestamp":0,"data_type":"","payload":{}}"#;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    let mut chunk = Vec::new();
    for _ in 0..10_000 {
        chunk.extend_from_slice(line);
        chunk.push(b'\n');
    }
    for _ in 0..1000 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let (result, peak) =
        measured(|| decode_payload(&bomb, Codec::Jsonl, Compression::SEED, None, &limits()));
    assert!(
        matches!(result, Err(Error::DecompressedTooLarge { .. })),
        "{result:?}"
    );
    assert_within_cap("gzip of 10M tiny JSON Lines records", peak);

    // Within the size limit but over the record limit: counted as they are read.
    let few = DecodeLimits {
        max_records: 1000,
        ..limits()
    };
    let mut array = b"[".to_vec();
    for index in 0..1001 {
        if index > 0 {
            array.push(b',');
        }
        array.extend_from_slice(line);
    }
    array.push(b']');
    for (codec, bytes) in [
        (Codec::Json, &array),
        (Codec::Jsonl, &chunk[..1001 * (line.len() + 1)].to_vec()),
    ] {
        let result = decode_payload(bytes, codec, Compression::None, None, &few);
        assert!(
            matches!(result, Err(Error::TooManyRecords { limit: 1000 })),
            "{codec:?}: {result:?}"
        );
    }

    // A small columnar batch that expands: one 10 KiB string repeated 2,000 times.
    let text = "x".repeat(10 << 10);
    let records: Vec<DataRecord> = (0..2000)
        .map(|index| {
            let mut payload = Payload::new();
            payload.insert("note", Value::from(text.as_str()));
            payload.insert("n", Value::Null);
            DataRecord {
                record_id: format!("gw:0:{index}").into(),
                device_id: "dev".into(),
                timestamp: Timestamp::from_unix_nanos(index),
                data_type: "sensors".into(),
                payload,
                metadata: Default::default(),
            }
        })
        .collect();
    let mut payload = Vec::new();
    Codec::Columnar.encode(&records, &mut payload).unwrap();
    drop(records);
    assert!(payload.len() < 20_000, "{} bytes", payload.len());
    let (result, peak) = measured(|| Codec::Columnar.decode(&payload, &limits()));
    assert!(
        matches!(result, Err(Error::DecompressedTooLarge { limit: CAP })),
        "{result:?}"
    );
    assert_within_cap("columnar expansion", peak);

    // Too big on the wire: refused before anything else.
    let small = DecodeLimits {
        max_compressed_bytes: 10,
        ..limits()
    };
    assert!(matches!(
        decode_payload(&[0; 11], Codec::Json, Compression::None, None, &small),
        Err(Error::CompressedTooLarge {
            size: 11,
            limit: 10
        })
    ));
}

#[cfg(feature = "zstd")]
fn zstd_bombs() {
    // A frame header declaring 2^60 bytes and a 2 GiB window, then RLE blocks of zeros.
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 21 << 3];
    frame.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let block = 128 << 10;
    for index in 0..1000 {
        let last = u32::from(index == 999);
        let header = (block << 3) | (1 << 1) | last;
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    let (result, peak) = measured(|| {
        decode_payload(
            &frame,
            Codec::Json,
            Compression::Zstd { level: 3 },
            None,
            &limits(),
        )
    });
    assert!(
        matches!(
            result,
            Err(Error::DecompressedTooLarge { .. } | Error::CorruptCompression { .. })
        ),
        "{result:?}"
    );
    assert_within_cap("zstd frame declaring 2^60 bytes", peak);

    // The same blocks behind an honest 128 KiB window: stopped by the output limit.
    frame[5] = 7 << 3;
    let (result, peak) = measured(|| {
        decode_payload(
            &frame,
            Codec::Json,
            Compression::Zstd { level: 3 },
            None,
            &limits(),
        )
    });
    assert!(
        matches!(result, Err(Error::DecompressedTooLarge { limit: CAP })),
        "{result:?}"
    );
    assert_within_cap("zstd RLE blocks", peak);
}

#[cfg(not(feature = "zstd"))]
fn zstd_bombs() {}
