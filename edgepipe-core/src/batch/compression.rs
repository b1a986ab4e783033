//! Compression of encoded batches: none, gzip, lz4 (frame format) and zstd.
//!
//! Every decompressor reads through [`read_limited`], which stops as soon as the
//! output passes the limit: a gzip of a gigabyte of zeros costs the limit, not a
//! gigabyte. Nothing is ever allocated from a size a sender declares (an lz4 or
//! zstd frame's content size is ignored; zstd's window is capped by the limit).

use std::io::{Read, Write};

use crate::error::{Error, Result};

/// How a batch's payload is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as encoded.
    None,
    /// gzip (RFC 1952), what the seed sends as `Content-Encoding: gzip`.
    Gzip {
        /// 0 (store) to 9 (smallest); the seed uses 6.
        level: u32,
    },
    /// The lz4 frame format, readable by the `lz4` command-line tool and Python's
    /// `lz4.frame`.
    Lz4,
    /// zstd (RFC 8878); needs the cargo feature `zstd`.
    Zstd {
        /// 1 (fastest) to 22 (smallest); 3 is zstd's default.
        level: i32,
    },
}

impl Compression {
    /// The seed's default: gzip at level 6.
    pub const SEED: Compression = Compression::Gzip { level: 6 };

    /// The name used in envelopes and headers: `none`, `gzip`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd { .. } => "zstd",
        }
    }

    /// Reads a name as [`name`](Self::name) writes it, with default levels
    /// (gzip 6, zstd 3); the level does not matter for decoding.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "none" | "" => Ok(Compression::None),
            "gzip" => Ok(Compression::SEED),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd { level: 3 }),
            other => Err(Error::Unsupported {
                what: "compression",
                name: other.to_owned(),
            }),
        }
    }

    /// Checks the level is one the compressor accepts.
    pub fn validate(self) -> Result<()> {
        let invalid = |reason: String| Error::InvalidBatchOption {
            option: "compression level",
            reason,
        };
        match self {
            Compression::Gzip { level } if level > 9 => {
                Err(invalid(format!("gzip level {level} is not in 0..=9")))
            }
            Compression::Zstd { level } if !(1..=22).contains(&level) => {
                Err(invalid(format!("zstd level {level} is not in 1..=22")))
            }
            _ => Ok(()),
        }
    }
}

/// Appends `data`, compressed, to `out`.
pub fn compress(data: &[u8], compression: Compression, out: &mut Vec<u8>) -> Result<()> {
    compression.validate()?;
    let failed = |error| Error::io(format!("{} compression", compression.name()), error);
    match compression {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip { level } => {
            // flate2 writes mtime 0 and no file name, so the same input always
            // gives the same bytes (Python's gzip.compress stamps the time).
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            encoder.write_all(data).map_err(failed)?;
            encoder.finish().map_err(failed)?;
        }
        Compression::Lz4 => lz4_frame(data, out)?,
        Compression::Zstd { level } => zstd_compress(data, level, out)?,
    }
    Ok(())
}

/// lz4 frame blocks edgepipe writes: 64 KiB, the smallest maximum the format
/// has, so a reader needs only 64 KiB buffers.
const LZ4_BLOCK: usize = 64 << 10;

/// The frame header edgepipe writes: magic, FLG `0x60` (version 1, independent
/// blocks, no checksums, no content size), BD `0x40` (64 KiB blocks), and the
/// header checksum (the second byte of xxh32 of FLG and BD).
const LZ4_FRAME_HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];

thread_local! {
    /// The 4096-entry table of 32-bit positions and 5-byte hashes that lz4_flex's
    /// frame encoder uses: on JSON batches it finds longer matches than the
    /// 16-bit, 4-byte-hash table `compress_into` picks for inputs under 64 KiB
    /// (28.5 against 30.5 bytes per record on the workload's 100-record JSON
    /// batches). Kept per thread; each block clears it.
    static LZ4_TABLE: std::cell::RefCell<lz4_flex::block::CompressTable> =
        std::cell::RefCell::new(lz4_flex::block::CompressTable::large());
}

/// Writes `data` as one lz4 frame of independent 64 KiB blocks: every lz4
/// reader (the CLI, Python's `lz4.frame`) takes it. Up to one block the bytes
/// are what lz4_flex's `FrameEncoder` writes with these parameters (a test
/// checks; past that it keeps its table across blocks, so later matches may
/// differ), but built here: the encoder allocates about 200 KiB of block
/// buffers and tables per frame, which cost more than compressing a
/// 100-record batch (seen with perf).
fn lz4_frame(data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.reserve(LZ4_FRAME_HEADER.len() + 8 + lz4_flex::block::get_maximum_output_size(data.len()));
    out.extend_from_slice(&LZ4_FRAME_HEADER);
    for block in data.chunks(LZ4_BLOCK) {
        let size_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(
            start + lz4_flex::block::get_maximum_output_size(block.len()),
            0,
        );
        let written = LZ4_TABLE
            .with_borrow_mut(|table| {
                lz4_flex::block::compress_into_with_table(block, &mut out[start..], table)
            })
            .map_err(|error| Error::io("lz4 compression", std::io::Error::other(error)))?;
        // A block that does not shrink is stored as is, flagged by the high bit.
        let size = if written < block.len() {
            out.truncate(start + written);
            written as u32
        } else {
            out.truncate(start);
            out.extend_from_slice(block);
            block.len() as u32 | 0x8000_0000
        };
        out[size_at..start].copy_from_slice(&size.to_le_bytes());
    }
    // End mark.
    out.extend_from_slice(&[0; 4]);
    Ok(())
}

/// Decompresses `data`, failing with [`Error::DecompressedTooLarge`] as soon as
/// the output would pass `limit` bytes.
pub fn decompress(data: &[u8], compression: Compression, limit: usize) -> Result<Vec<u8>> {
    match compression {
        Compression::None => {
            if data.len() > limit {
                return Err(Error::DecompressedTooLarge { limit });
            }
            Ok(data.to_vec())
        }
        // Multi-member, as `gzip -d` reads `cat a.gz b.gz`.
        Compression::Gzip { .. } => {
            read_limited(flate2::read::MultiGzDecoder::new(data), limit, "gzip")
        }
        Compression::Lz4 => read_limited(lz4_flex::frame::FrameDecoder::new(data), limit, "lz4"),
        Compression::Zstd { .. } => zstd_decompress(data, limit),
    }
}

/// Reads `reader` to its end into a buffer that never grows past `limit + 1` bytes.
pub fn read_limited(mut reader: impl Read, limit: usize, name: &'static str) -> Result<Vec<u8>> {
    const STEP: usize = 64 << 10;
    let mut out: Vec<u8> = Vec::new();
    let cap = limit.saturating_add(1);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= cap {
                return Err(Error::DecompressedTooLarge { limit });
            }
            // Geometric growth, clamped so the buffer never exceeds the cap.
            let target = out.capacity().saturating_mul(2).max(STEP).min(cap);
            out.reserve_exact(target - out.len());
        }
        let start = out.len();
        // Zero only a chunk at a time, so the cost stays linear in the output.
        let room = (out.capacity() - start).min(4 * STEP);
        out.resize(start + room, 0);
        match reader.read(&mut out[start..]) {
            Ok(0) => {
                out.truncate(start);
                break;
            }
            Ok(read) => out.truncate(start + read),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => out.truncate(start),
            Err(error) => {
                return Err(Error::CorruptCompression {
                    compression: name,
                    reason: error.to_string(),
                });
            }
        }
        if out.len() > limit {
            return Err(Error::DecompressedTooLarge { limit });
        }
    }
    Ok(out)
}

#[cfg(feature = "zstd")]
fn zstd_compress(data: &[u8], level: i32, out: &mut Vec<u8>) -> Result<()> {
    let mut encoder = zstd::stream::write::Encoder::new(out, level)
        .map_err(|error| Error::io("zstd compression", error))?;
    // The content size in the header lets `zstd -l` and other tools show it;
    // edgepipe's own decoder never trusts it.
    encoder
        .set_pledged_src_size(Some(data.len() as u64))
        .and_then(|()| encoder.include_contentsize(true))
        .and_then(|()| encoder.write_all(data))
        .and_then(|()| encoder.finish().map(drop))
        .map_err(|error| Error::io("zstd compression", error))
}

#[cfg(not(feature = "zstd"))]
fn zstd_compress(_data: &[u8], _level: i32, _out: &mut Vec<u8>) -> Result<()> {
    Err(zstd_missing())
}

#[cfg(feature = "zstd")]
fn zstd_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let corrupt = |error: std::io::Error| Error::CorruptCompression {
        compression: "zstd",
        reason: error.to_string(),
    };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(corrupt)?;
    // The window is the one buffer zstd sizes from the frame header. Allow what
    // the zstd CLI writes at levels up to 19 (8 MiB) or the limit rounded up,
    // never more than zstd's own streaming default (128 MiB).
    let window_log = usize::BITS - limit.max(1).leading_zeros();
    decoder
        .window_log_max(window_log.clamp(23, 27))
        .map_err(corrupt)?;
    read_limited(decoder, limit, "zstd")
}

#[cfg(not(feature = "zstd"))]
fn zstd_decompress(_data: &[u8], _limit: usize) -> Result<Vec<u8>> {
    Err(zstd_missing())
}

#[cfg(not(feature = "zstd"))]
fn zstd_missing() -> Error {
    Error::Unsupported {
        what: "compression",
        name: "zstd (edgepipe-core was built without the `zstd` feature)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn names_round_trip_and_levels_are_checked() {
        for compression in [
            Compression::None,
            Compression::SEED,
            Compression::Lz4,
            Compression::Zstd { level: 3 },
        ] {
            assert_eq!(
                Compression::from_name(compression.name()).unwrap(),
                compression
            );
        }
        assert!(Compression::from_name("brotli").is_err());
        assert!(Compression::Gzip { level: 10 }.validate().is_err());
        assert!(Compression::Zstd { level: 0 }.validate().is_err());
    }

    #[test]
    fn lz4_frames_are_what_lz4_flex_writes_with_the_same_parameters() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"t\":{}}}", i % 977).into_bytes())
            .collect();
        // Seed-like JSON, where the choice of hash table changes the matches.
        let json: Vec<u8> = (0..400u64)
            .flat_map(|i| {
                let r = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                format!(
                    "{{\"record_id\":\"{r:016x}\",\"device_id\":\"dev-{:04}\",\"payload\":{{\"t\":{}.{}}}}},",
                    i % 100,
                    20 + r % 10,
                    r % 97
                )
                .into_bytes()
            })
            .collect();
        let noise: Vec<u8> = (0..150_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect();
        for data in [
            &b""[..],
            b"a",
            &text[..100],
            &json[..json.len().min(LZ4_BLOCK)],
            &json,
            &text[..LZ4_BLOCK],
            &text[..LZ4_BLOCK + 1],
            &text,
            &noise,
        ] {
            let mut ours = Vec::new();
            compress(data, Compression::Lz4, &mut ours).unwrap();
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(data).unwrap();
            let theirs = encoder.finish().unwrap();
            // Past the first block lz4_flex keeps its hash table across blocks,
            // so its matches (not the format) differ from a fresh table's.
            if data.len() <= LZ4_BLOCK {
                assert!(ours == theirs, "{} bytes differ", data.len());
            } else {
                assert_eq!(ours[..7], theirs[..7], "header");
            }
            let mut back = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&ours[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{} bytes round trip", data.len());
        }
    }

    #[test]
    fn read_limited_stops_at_the_limit() {
        let data = vec![7u8; 200_000];
        assert_eq!(read_limited(&data[..], 200_000, "none").unwrap(), data);
        assert!(matches!(
            read_limited(&data[..], 199_999, "none"),
            Err(Error::DecompressedTooLarge { limit: 199_999 })
        ));
        assert!(read_limited(&[][..], 0, "none").unwrap().is_empty());
    }
}
