//! The heavy half of the seed's `BatchProcessor`: serialise, compress and hash a
//! batch, size records for `split_records`, and decompress a batch.
//!
//! The body is the core's `json-python` codec, byte for byte what the seed's
//! `json.dumps([r.to_dict() for r in records])` writes, with each record's own
//! `isoformat()` text as its timestamp (see
//! `edgepipe_core::batch::codec::json_python::encode_with_timestamps`).

use edgepipe_core::batch::codec::json_python;
use edgepipe_core::batch::compression::{compress, decompress};
use edgepipe_core::batch::{Compression, DecodeLimits, batch_id, sha256_hex};
use edgepipe_core::record::DataRecord as CoreRecord;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::edge_collector::DataRecord;
use crate::error::to_py_err;
use crate::gil::without_gil;

/// The seed's compression names: `gzip` (level 6, as the seed) and `lz4` (frame)
/// compress; `none` stores the JSON as it is.
pub(crate) fn seed_compression(name: &str) -> PyResult<Compression> {
    match name {
        "gzip" => Ok(Compression::SEED),
        "lz4" => Ok(Compression::Lz4),
        "none" => Ok(Compression::None),
        other => Err(PyValueError::new_err(format!(
            "compression must be \"gzip\", \"lz4\" or \"none\", not {other:?}"
        ))),
    }
}

/// The core records of `records` and their `isoformat()` texts, or `None` when
/// one of them is not an edgepipe `DataRecord` (the caller then takes Python's way).
fn core_records(
    py: Python<'_>,
    records: &Bound<'_, PyList>,
) -> PyResult<Option<(Vec<CoreRecord>, Vec<String>)>> {
    let mut core = Vec::with_capacity(records.len());
    let mut timestamps = Vec::with_capacity(records.len());
    for record in records.iter() {
        let Ok(record) = record.cast::<DataRecord>() else {
            return Ok(None);
        };
        let (converted, timestamp) = record.borrow().to_core(py)?;
        core.push(converted);
        timestamps.push(timestamp);
    }
    Ok(Some((core, timestamps)))
}

/// `create_batch`'s results: batch id, compressed data, checksum, original size.
type EncodedBatch<'py> = (String, Bound<'py, PyBytes>, String, usize);

/// What `create_batch` computes: `(batch_id, compressed_data, checksum,
/// original_size_bytes)`, or `None` when a record is not an edgepipe
/// `DataRecord`. Serialising, compressing and hashing run with the GIL released.
///
/// The batch id is the core's deterministic id of the records (32 hex digits):
/// the same records give the same id on a retry, unlike the seed's clock-based one.
#[pyfunction]
pub(crate) fn seed_encode_batch<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    device_id: &str,
    compression: &str,
) -> PyResult<Option<EncodedBatch<'py>>> {
    let compression = seed_compression(compression)?;
    let Some((core, timestamps)) = core_records(py, records)? else {
        return Ok(None);
    };
    let (id, payload, checksum, original_size) = without_gil(py, || {
        let mut encoded = Vec::with_capacity(core.len() * 300 + 2);
        json_python::encode_with_timestamps(&core, &timestamps, &mut encoded)?;
        let original_size = encoded.len();
        let payload = if compression == Compression::None {
            encoded
        } else {
            let mut out = Vec::with_capacity(encoded.len() / 4 + 64);
            compress(&encoded, compression, &mut out)?;
            out
        };
        let checksum = sha256_hex(&payload);
        Ok::<_, edgepipe_core::Error>((
            batch_id(device_id, &core),
            payload,
            checksum,
            original_size,
        ))
    })
    .map_err(|error| to_py_err(py, &error))?;
    Ok(Some((
        id,
        PyBytes::new(py, &payload),
        checksum,
        original_size,
    )))
}

/// Compresses `data` as the seed's `create_batch` does (for batches of plain
/// dicts, serialised by Python's `json.dumps`), with the GIL released.
#[pyfunction]
pub(crate) fn seed_compress<'py>(
    py: Python<'py>,
    data: &[u8],
    compression: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let compression = seed_compression(compression)?;
    if compression == Compression::None {
        return Ok(PyBytes::new(py, data));
    }
    let out = without_gil(py, || {
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        compress(data, compression, &mut out).map(|()| out)
    })
    .map_err(|error| to_py_err(py, &error))?;
    Ok(PyBytes::new(py, &out))
}

/// Bytes of each record's JSON as the seed's `split_records` measures it,
/// `len(json.dumps(record.to_dict()).encode())`; `None` for an item that is not
/// an edgepipe `DataRecord` (the caller measures it in Python).
#[pyfunction]
pub(crate) fn seed_record_sizes(
    py: Python<'_>,
    records: &Bound<'_, PyList>,
) -> PyResult<Vec<Option<usize>>> {
    let mut sizes = Vec::with_capacity(records.len());
    let mut scratch = Vec::with_capacity(512);
    for record in records.iter() {
        let Ok(record) = record.cast::<DataRecord>() else {
            sizes.push(None);
            continue;
        };
        let (core, timestamp) = record.borrow().to_core(py)?;
        scratch.clear();
        json_python::encode_with_timestamps(
            std::slice::from_ref(&core),
            &[timestamp],
            &mut scratch,
        )
        .map_err(|error| to_py_err(py, &error))?;
        // Without the array's brackets.
        sizes.push(Some(scratch.len() - 2));
    }
    Ok(sizes)
}

/// Decompresses a batch's data as the seed's `decompress_batch` does (`gzip`,
/// `lz4`; any other name is taken as uncompressed), with the GIL released and
/// the output bounded (64 MiB, the core's default decoding limit): a
/// decompression bomb raises LimitExceededError instead of filling memory.
#[pyfunction]
pub(crate) fn seed_decompress<'py>(
    py: Python<'py>,
    data: &[u8],
    compression: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let compression = match compression {
        "gzip" => Compression::SEED,
        "lz4" => Compression::Lz4,
        _ => return Ok(PyBytes::new(py, data)),
    };
    let limit = DecodeLimits::default().max_decompressed_bytes;
    let out = without_gil(py, || decompress(data, compression, limit))
        .map_err(|error| to_py_err(py, &error))?;
    Ok(PyBytes::new(py, &out))
}
