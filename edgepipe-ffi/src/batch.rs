//! `edgepipe_batcher` and `edgepipe_batch`: records into encoded, compressed,
//! checksummed batches with their envelope, and back.

use std::ffi::{CString, c_char};

use edgepipe_core::batch::{
    Batch, BatchEncoder, BatchPolicy, Batcher, Codec, Compression, DecodeLimits,
};
use edgepipe_core::record::json::{parse_jsonl, write_jsonl};
use edgepipe_core::record::{JsonOptions, Timestamp};

use crate::buffer::{self, edgepipe_buffer};
use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;
use crate::pipeline::error_lines;
use crate::record::edgepipe_record;

/// How a batch's records are encoded: the values of `edgepipe_batch_options.codec`
/// and `edgepipe_envelope.codec`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum edgepipe_codec {
    /// A JSON array of records, the seed's body.
    Json = 0,
    /// The same array byte for byte as the seed's Python writes it.
    JsonPython = 1,
    /// JSON Lines.
    Jsonl = 2,
    /// MessagePack.
    Msgpack = 3,
    /// edgepipe's columnar time-series format.
    Columnar = 4,
}

/// How a batch's payload is compressed: the values of
/// `edgepipe_batch_options.compression` and `edgepipe_envelope.compression`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum edgepipe_compression {
    /// Stored as encoded.
    None = 0,
    /// gzip (levels 0–9, default 6), the seed's `Content-Encoding: gzip`.
    Gzip = 1,
    /// The lz4 frame format.
    Lz4 = 2,
    /// zstd (levels 1–22, default 3); needs the `zstd` cargo feature (on by default),
    /// `EDGEPIPE_STATUS_UNSUPPORTED` without it.
    Zstd = 3,
}

/// How a batcher encodes and when it closes a batch. Start from
/// `edgepipe_batch_options_default` and change what differs, so fields added later
/// get their defaults.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_batch_options {
    /// An `edgepipe_codec` value (default `EDGEPIPE_CODEC_JSON`).
    pub codec: u32,
    /// An `edgepipe_compression` value (default `EDGEPIPE_COMPRESSION_GZIP`).
    pub compression: u32,
    /// The compression level; -1 (the default) is the compression's own default.
    pub compression_level: i32,
    /// Most records per batch (default 100).
    pub max_records: usize,
    /// Most encoded bytes per batch before compression (default 1 MiB).
    pub max_bytes: usize,
    /// Longest a batch stays open after its first record, in nanoseconds of the
    /// caller's clock (default 10 s); 0 never closes a batch on age.
    pub max_age_nanos: i64,
}

impl Default for edgepipe_batch_options {
    fn default() -> Self {
        let policy = BatchPolicy::default();
        edgepipe_batch_options {
            codec: edgepipe_codec::Json as u32,
            compression: edgepipe_compression::Gzip as u32,
            compression_level: -1,
            max_records: policy.max_records,
            max_bytes: policy.max_bytes,
            max_age_nanos: policy.max_age_nanos.unwrap_or(0),
        }
    }
}

impl edgepipe_batch_options {
    fn codec(&self) -> Result<Codec, Failure> {
        let codec = match self.codec {
            0 => Codec::Json,
            1 => Codec::JsonPython,
            2 => Codec::Jsonl,
            3 => Codec::Msgpack,
            4 => Codec::Columnar,
            other => return Err(unsupported("codec", other)),
        };
        Ok(codec)
    }

    fn compression(&self) -> Result<Compression, Failure> {
        let level = self.compression_level;
        let level_u32 = |default| {
            if level == -1 {
                Ok(default)
            } else {
                u32::try_from(level).map_err(|_| {
                    Failure::new(
                        edgepipe_status::Config,
                        format!("gzip level {level} is not in 0..=9"),
                    )
                })
            }
        };
        let compression = match self.compression {
            0 => Compression::None,
            1 => Compression::Gzip {
                level: level_u32(6)?,
            },
            2 => Compression::Lz4,
            3 => Compression::Zstd {
                level: if level == -1 { 3 } else { level },
            },
            other => return Err(unsupported("compression", other)),
        };
        Ok(compression)
    }

    fn encoder(&self, source_id: &str) -> Result<BatchEncoder, Failure> {
        Ok(BatchEncoder::new(
            source_id,
            self.codec()?,
            self.compression()?,
        )?)
    }

    fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_age_nanos: (self.max_age_nanos != 0).then_some(self.max_age_nanos),
        }
    }
}

fn unsupported(what: &str, value: u32) -> Failure {
    Failure::new(
        edgepipe_status::Unsupported,
        format!("{value} is not an edgepipe_{what} value"),
    )
}

/// Bounds applied while decoding a batch, each failing with
/// `EDGEPIPE_STATUS_LIMIT_EXCEEDED`. Start from `edgepipe_decode_limits_default`;
/// a NULL `const edgepipe_decode_limits *` means the defaults.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_decode_limits {
    /// Largest compressed payload, in bytes (default 16 MiB).
    pub max_compressed_bytes: usize,
    /// Largest payload after decompression, checked while inflating (default 64 MiB).
    pub max_decompressed_bytes: usize,
    /// Most records in one batch (default 1,000,000).
    pub max_records: usize,
    /// Deepest nesting of lists and maps in a payload value (default 128).
    pub max_depth: usize,
}

impl Default for edgepipe_decode_limits {
    fn default() -> Self {
        let limits = DecodeLimits::default();
        edgepipe_decode_limits {
            max_compressed_bytes: limits.max_compressed_bytes,
            max_decompressed_bytes: limits.max_decompressed_bytes,
            max_records: limits.max_records,
            max_depth: limits.max_depth,
        }
    }
}

impl edgepipe_decode_limits {
    pub(crate) fn core(&self) -> DecodeLimits {
        DecodeLimits {
            max_compressed_bytes: self.max_compressed_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_records: self.max_records,
            max_depth: self.max_depth,
        }
    }
}

/// Stores the default batch options in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_options_default(
    out: *mut edgepipe_batch_options,
) -> edgepipe_status {
    panic::status(|| {
        Out::new(out, "out")?.write(edgepipe_batch_options::default());
        Ok(())
    })
}

/// Stores the default decode limits in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_decode_limits_default(
    out: *mut edgepipe_decode_limits,
) -> edgepipe_status {
    panic::status(|| {
        Out::new(out, "out")?.write(edgepipe_decode_limits::default());
        Ok(())
    })
}

/// Groups one source's records into batches, closing each at `max_records`,
/// `max_bytes` (encoded, exact) or `max_age_nanos`, whichever comes first; records
/// leave in the order they came.
///
/// Made by `edgepipe_batcher_new`, released by `edgepipe_batcher_free` (records
/// not yet in a taken batch are dropped: flush first). Closed batches wait inside
/// until taken with `edgepipe_batcher_next_batch`. The clock is the caller's:
/// every call that can close a batch takes `now_unix_nanos`.
///
/// Thread safety: `edgepipe_batcher *` calls need it to themselves;
/// `const edgepipe_batcher *` calls may run on several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_batcher {
    batcher: Batcher,
}

/// An encoded batch: the envelope (ids, counts, codec, compression, sha256
/// checksum) and the compressed payload.
///
/// Made by `edgepipe_batcher_next_batch`, `edgepipe_batch_new_from_jsonl` or
/// `edgepipe_batch_from_bytes`, released by `edgepipe_batch_free`.
///
/// Thread safety: a batch never changes once made; it may be read from several
/// threads at once and freed from any one thread once they are done.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_batch {
    pub(crate) batch: Batch,
    /// The envelope's text fields NUL-terminated, made once so that
    /// `edgepipe_envelope` can point into the batch for as long as it lives.
    batch_id: CString,
    source_id: CString,
    checksum: CString,
}

impl edgepipe_batch {
    pub(crate) fn new(batch: Batch) -> Self {
        // Ids with a NUL are refused by no one upstream; an empty C string beats a failure.
        let text = |text: &str| CString::new(text).unwrap_or_default();
        edgepipe_batch {
            batch_id: text(&batch.envelope.batch_id),
            source_id: text(&batch.envelope.source_id),
            checksum: text(&batch.envelope.checksum),
            batch,
        }
    }
}

/// A batch's envelope, as `edgepipe_batch_envelope` reports it. The strings are
/// NUL-terminated, come with their length, and belong to the batch: valid until
/// `edgepipe_batch_free`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_envelope {
    /// Deterministic batch id (32 hex digits): a retry carries the same id.
    pub batch_id: *const c_char,
    /// Bytes in `batch_id`.
    pub batch_id_len: usize,
    /// The producing source.
    pub source_id: *const c_char,
    /// Bytes in `source_id`.
    pub source_id_len: usize,
    /// When the batch was closed, by the batcher's clock (Unix nanoseconds).
    pub created_at_unix_nanos: i64,
    /// Records in the payload.
    pub record_count: u64,
    /// Whether every record id was a sequence id of the source in one epoch, so
    /// that the three `sequence_*` fields hold its range.
    pub has_sequence: bool,
    /// The epoch of the sequence range.
    pub sequence_epoch: u64,
    /// Lowest sequence number.
    pub sequence_first: u64,
    /// Highest sequence number.
    pub sequence_last: u64,
    /// An `edgepipe_codec` value.
    pub codec: u32,
    /// An `edgepipe_compression` value.
    pub compression: u32,
    /// The compression level (0 for none and lz4).
    pub compression_level: i32,
    /// Lowercase hex sha256 of the payload (64 characters).
    pub checksum: *const c_char,
    /// Payload bytes (as sent, compressed).
    pub compressed_size: u64,
    /// Encoded bytes before compression.
    pub original_size: u64,
    /// A single record larger than `max_bytes`, sent alone.
    pub oversize: bool,
}

/// Makes a batcher for `source_id` with `options` (NULL: the defaults) and stores
/// it in `*out`.
///
/// `EDGEPIPE_STATUS_CONFIG` for a limit of 0 or a compression level out of range,
/// `EDGEPIPE_STATUS_UNSUPPORTED` for an unknown codec or compression.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_new(
    source_id: *const c_char,
    source_id_len: usize,
    options: *const edgepipe_batch_options,
    out: *mut *mut edgepipe_batcher,
) -> edgepipe_status {
    panic::status(|| {
        let source_id = ffi::try_str(source_id, source_id_len, "source_id")?;
        let options = ffi::input_or_default(options);
        let out = Out::new(out, "out")?;
        let batcher = Batcher::new(options.encoder(source_id)?, options.policy())?;
        out.write(ffi::into_handle(edgepipe_batcher { batcher }));
        Ok(())
    })
}

/// Frees a batcher with the records and batches it still holds. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_free(batcher: *mut edgepipe_batcher) {
    panic::catch_or((), || ffi::free_handle(batcher));
}

/// Adds a copy of `record`, closing batches as the options say.
///
/// A record the codec cannot encode (a NaN with a JSON codec:
/// `EDGEPIPE_STATUS_NON_FINITE_FLOAT`) is refused and the open batch stays as it was.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_push(
    batcher: *mut edgepipe_batcher,
    record: *const edgepipe_record,
    now_unix_nanos: i64,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_mut(batcher, "batcher")?;
        let record = ffi::try_ref(record, "record")?;
        batcher.batcher.push(
            record.record.clone(),
            Timestamp::from_unix_nanos(now_unix_nanos),
        )?;
        Ok(())
    })
}

/// Adds every record of a JSON Lines input. Lines that are not records, or that
/// the codec refuses, do not stop the rest: they are reported in `*out_errors` (a
/// new buffer, as `edgepipe_pipeline_process_jsonl`'s errors).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_push_jsonl(
    batcher: *mut edgepipe_batcher,
    input: *const u8,
    input_len: usize,
    now_unix_nanos: i64,
    out_errors: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_mut(batcher, "batcher")?;
        let input = ffi::try_slice(input, input_len, "input")?;
        let out_errors = Out::new(out_errors, "out_errors")?;
        let now = Timestamp::from_unix_nanos(now_unix_nanos);
        let mut errors = Vec::new();
        for (line, parsed) in parse_jsonl(input) {
            if let Err(error) = parsed.and_then(|record| batcher.batcher.push(record, now)) {
                errors.push((line, error));
            }
        }
        out_errors.write(ffi::into_handle(edgepipe_buffer::new(error_lines(errors))));
        Ok(())
    })
}

/// Closes the open batch if it has been open for `max_age_nanos` or longer.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_poll(
    batcher: *mut edgepipe_batcher,
    now_unix_nanos: i64,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_mut(batcher, "batcher")?;
        batcher
            .batcher
            .poll(Timestamp::from_unix_nanos(now_unix_nanos))?;
        Ok(())
    })
}

/// Closes the open batch, whatever its size (shutdown, or before a send).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_flush(
    batcher: *mut edgepipe_batcher,
    now_unix_nanos: i64,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_mut(batcher, "batcher")?;
        batcher
            .batcher
            .flush(Timestamp::from_unix_nanos(now_unix_nanos))?;
        Ok(())
    })
}

/// Stores the number of closed batches waiting to be taken in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_ready_count(
    batcher: *const edgepipe_batcher,
    out: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_ref(batcher, "batcher")?;
        Out::new(out, "out")?.write(batcher.batcher.ready_batches());
        Ok(())
    })
}

/// Stores the number of records in the open batch in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_open_records(
    batcher: *const edgepipe_batcher,
    out: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_ref(batcher, "batcher")?;
        Out::new(out, "out")?.write(batcher.batcher.open_records());
        Ok(())
    })
}

/// Takes the oldest closed batch: stores a new batch in `*out` (free it with
/// `edgepipe_batch_free`), or NULL when none is ready.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batcher_next_batch(
    batcher: *mut edgepipe_batcher,
    out: *mut *mut edgepipe_batch,
) -> edgepipe_status {
    panic::status(|| {
        let batcher = ffi::try_mut(batcher, "batcher")?;
        let out = Out::new(out, "out")?;
        out.write(match batcher.batcher.next_batch() {
            Some(batch) => ffi::into_handle(edgepipe_batch::new(batch)),
            None => std::ptr::null_mut(),
        });
        Ok(())
    })
}

/// Encodes every record of a JSON Lines input into one batch from `source_id`,
/// stamped `created_at_unix_nanos`, with the codec and compression of `options`
/// (NULL: the defaults; the limits are not applied), and stores it in `*out`.
///
/// All or nothing: the first line that is not a record fails the call with its
/// status (`EDGEPIPE_STATUS_INVALID_JSON`, …) and the line number in the message.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_new_from_jsonl(
    source_id: *const c_char,
    source_id_len: usize,
    options: *const edgepipe_batch_options,
    input: *const u8,
    input_len: usize,
    created_at_unix_nanos: i64,
    out: *mut *mut edgepipe_batch,
) -> edgepipe_status {
    panic::status(|| {
        let source_id = ffi::try_str(source_id, source_id_len, "source_id")?;
        let options = ffi::input_or_default(options);
        let input = ffi::try_slice(input, input_len, "input")?;
        let out = Out::new(out, "out")?;
        let encoder = options.encoder(source_id)?;
        let records = parse_jsonl(input)
            .map(|(_, record)| record)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = encoder.encode(&records, Timestamp::from_unix_nanos(created_at_unix_nanos))?;
        out.write(ffi::into_handle(edgepipe_batch::new(batch)));
        Ok(())
    })
}

/// Frees a batch. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_free(batch: *mut edgepipe_batch) {
    panic::catch_or((), || ffi::free_handle(batch));
}

/// Stores the batch's envelope in `*out`; its strings stay valid until the batch is freed.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_envelope(
    batch: *const edgepipe_batch,
    out: *mut edgepipe_envelope,
) -> edgepipe_status {
    panic::status(|| {
        let handle = ffi::try_ref(batch, "batch")?;
        let out = Out::new(out, "out")?;
        let envelope = &handle.batch.envelope;
        let (compression, compression_level) = match envelope.compression {
            Compression::None => (edgepipe_compression::None, 0),
            Compression::Gzip { level } => (
                edgepipe_compression::Gzip,
                i32::try_from(level).unwrap_or(0),
            ),
            Compression::Lz4 => (edgepipe_compression::Lz4, 0),
            Compression::Zstd { level } => (edgepipe_compression::Zstd, level),
        };
        let codec = match envelope.codec {
            Codec::Json => edgepipe_codec::Json,
            Codec::JsonPython => edgepipe_codec::JsonPython,
            Codec::Jsonl => edgepipe_codec::Jsonl,
            Codec::Msgpack => edgepipe_codec::Msgpack,
            Codec::Columnar => edgepipe_codec::Columnar,
        };
        let sequence = envelope.sequence;
        out.write(edgepipe_envelope {
            batch_id: handle.batch_id.as_ptr(),
            batch_id_len: handle.batch_id.as_bytes().len(),
            source_id: handle.source_id.as_ptr(),
            source_id_len: handle.source_id.as_bytes().len(),
            created_at_unix_nanos: envelope.created_at.unix_nanos(),
            record_count: envelope.record_count,
            has_sequence: sequence.is_some(),
            sequence_epoch: sequence.map_or(0, |range| range.epoch),
            sequence_first: sequence.map_or(0, |range| range.first),
            sequence_last: sequence.map_or(0, |range| range.last),
            codec: codec as u32,
            compression: compression as u32,
            compression_level,
            checksum: handle.checksum.as_ptr(),
            compressed_size: envelope.compressed_size,
            original_size: envelope.original_size,
            oversize: envelope.oversize,
        });
        Ok(())
    })
}

/// Borrows the payload (encoded, compressed; what an HTTP body carries): stores
/// a pointer into the batch in `*out_data` (valid until `edgepipe_batch_free`)
/// and its length in `*out_len`. No copy.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_payload(
    batch: *const edgepipe_batch,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let batch = ffi::try_ref(batch, "batch")?;
        let out_data = Out::new(out_data, "out_data")?;
        let out_len = Out::new(out_len, "out_len")?;
        out_data.write(batch.batch.payload.as_ptr());
        out_len.write(batch.batch.payload.len());
        Ok(())
    })
}

/// Writes the batch's binary form (envelope then payload, `docs/wire-format.md`;
/// what a queue stores and `edgepipe_batch_from_bytes` reads) into the caller's
/// `buf` of `len` bytes and its length into `*out_len`.
///
/// When it does not fit, nothing is written to `buf`, `*out_len` receives the size
/// needed and the status is `EDGEPIPE_STATUS_BUFFER_TOO_SMALL`; `(NULL, 0)` asks
/// for the size. A caller reusing one buffer allocates nothing per batch.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_to_bytes(
    batch: *const edgepipe_batch,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let batch = ffi::try_ref(batch, "batch")?;
        buffer::to_caller(buf, len, out_len, |out| {
            batch.batch.write_bytes(out);
            Ok(())
        })
    })
}

/// The batch's binary form (as `edgepipe_batch_to_bytes`) in a new buffer stored
/// in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_to_buffer(
    batch: *const edgepipe_batch,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let batch = ffi::try_ref(batch, "batch")?;
        let out = Out::new(out, "out")?;
        out.write(ffi::into_handle(edgepipe_buffer::new(
            batch.batch.to_bytes(),
        )));
        Ok(())
    })
}

/// Reads a batch's binary form (`bytes_len` bytes) within `limits` (NULL: the
/// defaults) and stores it in `*out`. The checksum is checked by
/// `edgepipe_batch_verify` and `edgepipe_batch_decode`, not here.
///
/// `EDGEPIPE_STATUS_CORRUPT_DATA` for bytes that are not a batch,
/// `EDGEPIPE_STATUS_LIMIT_EXCEEDED`, `EDGEPIPE_STATUS_UNSUPPORTED`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_from_bytes(
    bytes: *const u8,
    bytes_len: usize,
    limits: *const edgepipe_decode_limits,
    out: *mut *mut edgepipe_batch,
) -> edgepipe_status {
    panic::status(|| {
        let bytes = ffi::try_slice(bytes, bytes_len, "bytes")?;
        let limits = ffi::input_or_default(limits).core();
        let out = Out::new(out, "out")?;
        let batch = Batch::from_bytes(bytes, &limits)?;
        out.write(ffi::into_handle(edgepipe_batch::new(batch)));
        Ok(())
    })
}

/// Checks the payload against the envelope's sha256:
/// `EDGEPIPE_STATUS_CHECKSUM_MISMATCH` when they differ.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_verify(batch: *const edgepipe_batch) -> edgepipe_status {
    panic::status(|| {
        let batch = ffi::try_ref(batch, "batch")?;
        batch.batch.verify()?;
        Ok(())
    })
}

fn decode_jsonl(batch: &Batch, limits: &DecodeLimits, out: &mut Vec<u8>) -> Result<(), Failure> {
    let records = batch.decode(limits)?;
    write_jsonl(&records, out, &JsonOptions::default())?;
    Ok(())
}

/// Verifies the checksum, decompresses and decodes the records within `limits`
/// (NULL: the defaults), and stores them as JSON Lines in a new buffer in `*out`.
///
/// `EDGEPIPE_STATUS_CHECKSUM_MISMATCH` (nothing parsed),
/// `EDGEPIPE_STATUS_LIMIT_EXCEEDED`, `EDGEPIPE_STATUS_CORRUPT_DATA`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_decode(
    batch: *const edgepipe_batch,
    limits: *const edgepipe_decode_limits,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let batch = ffi::try_ref(batch, "batch")?;
        let limits = ffi::input_or_default(limits).core();
        let out = Out::new(out, "out")?;
        let mut bytes = Vec::new();
        decode_jsonl(&batch.batch, &limits, &mut bytes)?;
        out.write(ffi::into_handle(edgepipe_buffer::new(bytes)));
        Ok(())
    })
}

/// As `edgepipe_batch_decode`, into the caller's `buf` of `len` bytes with the
/// length in `*out_len`; `EDGEPIPE_STATUS_BUFFER_TOO_SMALL` with the size needed in
/// `*out_len` when it does not fit.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_batch_decode_into(
    batch: *const edgepipe_batch,
    limits: *const edgepipe_decode_limits,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let batch = ffi::try_ref(batch, "batch")?;
        let limits = ffi::input_or_default(limits).core();
        buffer::to_caller(buf, len, out_len, |out| {
            decode_jsonl(&batch.batch, &limits, out)
        })
    })
}
