//! The batch envelope: what travels with a payload, its deterministic id, and
//! its binary form (used by queues and files; HTTP carries the same fields as
//! headers).
//!
//! ## Batch id
//!
//! The id is derived from the records, never from a clock or a random number, so
//! a retried batch carries the id of its first attempt and the receiver can
//! recognise it:
//!
//! ```text
//! batch_id = lowercase hex of the first 16 bytes of
//!   sha256( "edgepipe-batch-id/v1"
//!           || u64le(len(source_id)) || source_id
//!           || u64le(record_count)
//!           || for each record, in batch order:
//!                u64le(len(record_id)) || record_id
//!                || u64le(len(device_id)) || device_id
//!                || i64le(timestamp as Unix nanoseconds) )
//! ```
//!
//! The codec, the compression and the payload values are deliberately left out:
//! the same records re-encoded with another codec on a retry keep their id, and
//! record ids (unique per reading) already name the content.

use sha2::{Digest, Sha256};

use super::codec::Codec;
use super::compression::{self, Compression};
use super::limits::DecodeLimits;
use crate::error::{Error, Result};
use crate::record::{DataRecord, SequenceId, Timestamp};

/// The contiguous-or-not range of sequence numbers a batch covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceRange {
    /// The epoch every record id shares.
    pub epoch: u64,
    /// Lowest sequence number in the batch.
    pub first: u64,
    /// Highest sequence number in the batch.
    pub last: u64,
}

/// Everything known about a batch besides its payload (the seed's `DataBatch`
/// fields plus what deduplication needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Deterministic id, see the [module docs](self).
    pub batch_id: String,
    /// The producing source (the seed's `device_id` of the batch processor).
    pub source_id: String,
    /// When the batch was closed, as given by the batcher's caller.
    pub created_at: Timestamp,
    /// Records in the payload.
    pub record_count: u64,
    /// Set when every record id is a [`SequenceId`] of `source_id` in one epoch.
    pub sequence: Option<SequenceRange>,
    /// How the records are encoded.
    pub codec: Codec,
    /// How the encoded records are compressed.
    pub compression: Compression,
    /// Lowercase hex sha256 of the payload as sent (after compression), the seed's `checksum`.
    pub checksum: String,
    /// Payload bytes as sent (the seed's `size_bytes`).
    pub compressed_size: u64,
    /// Encoded bytes before compression (the seed's `original_size_bytes`).
    pub original_size: u64,
    /// True when the batch is one record larger than the byte limit, sent alone.
    pub oversize: bool,
}

/// An envelope and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The batch's description.
    pub envelope: Envelope,
    /// The encoded, compressed records.
    pub payload: Vec<u8>,
}

/// The `X-Edgepipe-Signature` of a batch sent over HTTP: `sha256=` and the
/// lowercase hex HMAC-SHA256 of `batch_id || "\n" || body`. The sender signs
/// with it and the receiver recomputes it; the id is signed too so a signed body
/// cannot be replayed under another id.
///
/// ```
/// use edgepipe_core::batch::signature;
///
/// // Python: hmac.new(b"key", b"b1\n" + b"[]", hashlib.sha256).hexdigest()
/// assert_eq!(
///     signature(b"key", "b1", b"[]"),
///     "sha256=c7082e1ad4ff6636953749c3aec8626a401c25844266db4c42c84fc41a4bc47d"
/// );
/// ```
pub fn signature(key: &[u8], batch_id: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(key)
        .expect("HMAC-SHA256 accepts keys of any length");
    use hmac::Mac as _;
    mac.update(batch_id.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// Lowercase hex sha256 of `bytes`, as Python's `hashlib.sha256(b).hexdigest()`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The deterministic id of a batch of `records` from `source_id` (see the module docs).
pub fn batch_id(source_id: &str, records: &[DataRecord]) -> String {
    let mut hasher = Sha256::new();
    let text = |hasher: &mut Sha256, text: &str| {
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    };
    hasher.update(b"edgepipe-batch-id/v1");
    text(&mut hasher, source_id);
    hasher.update((records.len() as u64).to_le_bytes());
    for record in records {
        text(&mut hasher, &record.record_id);
        text(&mut hasher, &record.device_id);
        hasher.update(record.timestamp.unix_nanos().to_le_bytes());
    }
    hex(&hasher.finalize()[..16])
}

fn sequence_range(source_id: &str, records: &[DataRecord]) -> Option<SequenceRange> {
    let mut range: Option<SequenceRange> = None;
    for record in records {
        // The same rules as SequenceId::parse, without allocating per record.
        let (source, epoch, sequence) =
            super::codec::columnar::parse_sequence_id(&record.record_id)?;
        if source != source_id {
            return None;
        }
        let id = SequenceId {
            source: String::new(),
            epoch,
            sequence,
        };
        range = Some(match range {
            None => SequenceRange {
                epoch: id.epoch,
                first: id.sequence,
                last: id.sequence,
            },
            Some(range) if range.epoch == id.epoch => SequenceRange {
                first: range.first.min(id.sequence),
                last: range.last.max(id.sequence),
                ..range
            },
            Some(_) => return None,
        });
    }
    range
}

/// Turns records into [`Batch`]es: encode, compress, checksum, envelope.
#[derive(Clone, Debug)]
pub struct BatchEncoder {
    /// The source named in every envelope.
    pub source_id: String,
    /// The codec.
    pub codec: Codec,
    /// The compression.
    pub compression: Compression,
}

impl BatchEncoder {
    /// An encoder for `source_id`; the seed's choice is `Codec::Json` with
    /// [`Compression::SEED`].
    pub fn new(
        source_id: impl Into<String>,
        codec: Codec,
        compression: Compression,
    ) -> Result<Self> {
        compression.validate()?;
        Ok(BatchEncoder {
            source_id: source_id.into(),
            codec,
            compression,
        })
    }

    /// Encodes `records` into one batch stamped `created_at`.
    pub fn encode(&self, records: &[DataRecord], created_at: Timestamp) -> Result<Batch> {
        let mut encoded = Vec::new();
        self.codec.encode(records, &mut encoded)?;
        self.seal(records, encoded, created_at, false)
    }

    /// Encodes each of `splits` into its own batch stamped `created_at`, on up
    /// to `threads` threads, in order; the first error stops it.
    ///
    /// Encoding is CPU-bound and batches are independent (gzip-6 of the seed's
    /// JSON takes most of the time), so on a gateway's second core this nearly
    /// doubles the rate. The threads are scoped: all have finished on return.
    pub fn encode_many<S>(
        &self,
        splits: &[S],
        created_at: Timestamp,
        threads: usize,
    ) -> Result<Vec<Batch>>
    where
        S: AsRef<[DataRecord]> + Sync,
    {
        let encode_part = |part: &[S]| -> Result<Vec<Batch>> {
            part.iter()
                .map(|records| self.encode(records.as_ref(), created_at))
                .collect()
        };
        if threads <= 1 || splits.len() <= 1 {
            return encode_part(splits);
        }
        let chunk = splits.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = splits
                .chunks(chunk)
                .map(|part| scope.spawn(move || encode_part(part)))
                .collect();
            let mut batches = Vec::with_capacity(splits.len());
            for handle in handles {
                match handle.join() {
                    Ok(part) => batches.extend(part?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(batches)
        })
    }

    /// Compresses already encoded records and builds the envelope.
    pub(crate) fn seal(
        &self,
        records: &[DataRecord],
        encoded: Vec<u8>,
        created_at: Timestamp,
        oversize: bool,
    ) -> Result<Batch> {
        let original_size = encoded.len() as u64;
        let payload = if self.compression == Compression::None {
            encoded
        } else {
            let mut payload = Vec::with_capacity(encoded.len() / 4 + 64);
            compression::compress(&encoded, self.compression, &mut payload)?;
            payload
        };
        Ok(Batch {
            envelope: Envelope {
                batch_id: batch_id(&self.source_id, records),
                source_id: self.source_id.clone(),
                created_at,
                record_count: records.len() as u64,
                sequence: sequence_range(&self.source_id, records),
                codec: self.codec,
                compression: self.compression,
                checksum: sha256_hex(&payload),
                compressed_size: payload.len() as u64,
                original_size,
                oversize,
            },
            payload,
        })
    }
}

/// Decodes a payload received without an envelope (e.g. an HTTP body with the
/// seed's headers): the size limit, then the checksum when one is given, then
/// decompression within the limit, then the codec.
pub fn decode_payload(
    payload: &[u8],
    codec: Codec,
    compression: Compression,
    checksum: Option<&str>,
    limits: &DecodeLimits,
) -> Result<Vec<DataRecord>> {
    if payload.len() > limits.max_compressed_bytes {
        return Err(Error::CompressedTooLarge {
            size: payload.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    if let Some(expected) = checksum {
        let actual = sha256_hex(payload);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::ChecksumMismatch {
                expected: expected.to_owned(),
                actual,
            });
        }
    }
    let decompressed;
    let encoded = if compression == Compression::None {
        if payload.len() > limits.max_decompressed_bytes {
            return Err(Error::DecompressedTooLarge {
                limit: limits.max_decompressed_bytes,
            });
        }
        payload
    } else {
        decompressed =
            compression::decompress(payload, compression, limits.max_decompressed_bytes)?;
        &decompressed[..]
    };
    codec.decode(encoded, limits)
}

const MAGIC: &[u8; 3] = b"EPB";
const ENVELOPE_VERSION: u8 = 1;
/// Longest batch or source id accepted in a serialized envelope.
const MAX_ID_BYTES: usize = 1024;

fn codec_tag(codec: Codec) -> u8 {
    match codec {
        Codec::Json => 0,
        Codec::Jsonl => 1,
        Codec::Msgpack => 2,
        Codec::Columnar => 3,
        Codec::JsonPython => 4,
    }
}

fn compression_tag(compression: Compression) -> (u8, u8) {
    match compression {
        Compression::None => (0, 0),
        Compression::Gzip { level } => (1, level.min(9) as u8),
        Compression::Lz4 => (2, 0),
        Compression::Zstd { level } => (3, level.clamp(0, 22) as u8),
    }
}

impl Batch {
    /// Checks the payload against the envelope's checksum.
    pub fn verify(&self) -> Result<()> {
        let actual = sha256_hex(&self.payload);
        if actual != self.envelope.checksum {
            return Err(Error::ChecksumMismatch {
                expected: self.envelope.checksum.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Verifies and decodes the records, within `limits`; the record count must
    /// match the envelope's.
    pub fn decode(&self, limits: &DecodeLimits) -> Result<Vec<DataRecord>> {
        if self.envelope.record_count > limits.max_records as u64 {
            return Err(Error::TooManyRecords {
                limit: limits.max_records,
            });
        }
        let records = decode_payload(
            &self.payload,
            self.envelope.codec,
            self.envelope.compression,
            Some(&self.envelope.checksum),
            limits,
        )?;
        if records.len() as u64 != self.envelope.record_count {
            return Err(Error::CorruptBatch {
                codec: self.envelope.codec.name(),
                reason: format!(
                    "envelope says {} records, payload holds {}",
                    self.envelope.record_count,
                    records.len()
                ),
            });
        }
        Ok(records)
    }

    /// The batch as bytes: the envelope (layout in `docs/wire-format.md`), then the payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.payload.len());
        self.write_bytes(&mut out);
        out
    }

    /// Appends [`to_bytes`](Self::to_bytes) to `out`: a caller that reuses one
    /// buffer (the C ABI's encode-into-your-buffer calls) allocates nothing per batch.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        let envelope = &self.envelope;
        out.reserve(128 + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.push(ENVELOPE_VERSION);
        out.push(u8::from(envelope.oversize) | (u8::from(envelope.sequence.is_some()) << 1));
        out.push(codec_tag(envelope.codec));
        let (tag, level) = compression_tag(envelope.compression);
        out.push(tag);
        out.push(level);
        for text in [&envelope.batch_id, &envelope.source_id] {
            put_varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(&envelope.created_at.unix_nanos().to_le_bytes());
        put_varint(out, envelope.record_count);
        if let Some(range) = envelope.sequence {
            put_varint(out, range.epoch);
            put_varint(out, range.first);
            put_varint(out, range.last);
        }
        let mut checksum = [0u8; 32];
        for (index, byte) in checksum.iter_mut().enumerate() {
            *byte = envelope
                .checksum
                .get(index * 2..index * 2 + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .unwrap_or(0);
        }
        out.extend_from_slice(&checksum);
        put_varint(out, envelope.original_size);
        put_varint(out, self.payload.len() as u64);
        out.extend_from_slice(&self.payload);
    }

    /// Reads bytes written by [`to_bytes`](Self::to_bytes). Sizes are checked
    /// against `limits`; the checksum is checked by [`decode`](Self::decode).
    pub fn from_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<Batch> {
        let mut reader = EnvelopeReader { bytes, position: 0 };
        if reader.take(3)? != MAGIC {
            return Err(corrupt("not an edgepipe batch (bad magic)"));
        }
        let version = reader.u8()?;
        if version != ENVELOPE_VERSION {
            return Err(Error::Unsupported {
                what: "batch envelope version",
                name: version.to_string(),
            });
        }
        let flags = reader.u8()?;
        if flags & !0b11 != 0 {
            return Err(corrupt("unknown flags"));
        }
        let codec = match reader.u8()? {
            0 => Codec::Json,
            1 => Codec::Jsonl,
            2 => Codec::Msgpack,
            3 => Codec::Columnar,
            4 => Codec::JsonPython,
            other => {
                return Err(Error::Unsupported {
                    what: "codec",
                    name: format!("tag {other}"),
                });
            }
        };
        let (tag, level) = (reader.u8()?, reader.u8()?);
        let compression = match tag {
            0 => Compression::None,
            1 => Compression::Gzip {
                level: u32::from(level),
            },
            2 => Compression::Lz4,
            3 => Compression::Zstd {
                level: i32::from(level),
            },
            other => {
                return Err(Error::Unsupported {
                    what: "compression",
                    name: format!("tag {other}"),
                });
            }
        };
        let batch_id = reader.text()?;
        let source_id = reader.text()?;
        let mut nanos = [0u8; 8];
        nanos.copy_from_slice(reader.take(8)?);
        let created_at = Timestamp::from_unix_nanos(i64::from_le_bytes(nanos));
        let record_count = reader.varint()?;
        if record_count > limits.max_records as u64 {
            return Err(Error::TooManyRecords {
                limit: limits.max_records,
            });
        }
        let sequence = if flags & 0b10 != 0 {
            let range = SequenceRange {
                epoch: reader.varint()?,
                first: reader.varint()?,
                last: reader.varint()?,
            };
            if range.first > range.last {
                return Err(corrupt("sequence range runs backwards"));
            }
            Some(range)
        } else {
            None
        };
        let checksum = hex(reader.take(32)?);
        let original_size = reader.varint()?;
        let compressed_size = reader.varint()?;
        let remaining = (bytes.len() - reader.position) as u64;
        if compressed_size > limits.max_compressed_bytes as u64 {
            return Err(Error::CompressedTooLarge {
                size: usize::try_from(compressed_size).unwrap_or(usize::MAX),
                limit: limits.max_compressed_bytes,
            });
        }
        if compressed_size != remaining {
            return Err(corrupt(format!(
                "payload size {compressed_size} declared, {remaining} bytes follow"
            )));
        }
        Ok(Batch {
            envelope: Envelope {
                batch_id,
                source_id,
                created_at,
                record_count,
                sequence,
                codec,
                compression,
                checksum,
                compressed_size,
                original_size,
                oversize: flags & 1 != 0,
            },
            payload: bytes[reader.position..].to_vec(),
        })
    }
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::CorruptEnvelope {
        reason: reason.into(),
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct EnvelopeReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> EnvelopeReader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| corrupt(format!("truncated at byte {}", self.position)))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(corrupt("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint longer than 10 bytes"))
    }

    fn text(&mut self) -> Result<String> {
        let length = self.varint()?;
        if length > MAX_ID_BYTES as u64 {
            return Err(corrupt(format!(
                "id of {length} bytes exceeds {MAX_ID_BYTES}"
            )));
        }
        let bytes = self.take(length as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("id is not UTF-8"))
    }
}
