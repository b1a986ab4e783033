//! # edgepipe-py
//!
//! The compiled half of the Python package `edgepipe`: the private module
//! `edgepipe._edgepipe`. `python/edgepipe/__init__.py` is the public contract and
//! `python/edgepipe/_edgepipe.pyi` its types, kept honest by `tests/test_stubs.py`.
//!
//! Modules mirror the core's: [`transform`] holds `Pipeline`; [`error`] the
//! exception hierarchy and the one mapping from core errors onto it; [`gil`] the one
//! helper through which long calls release the GIL; [`seed`] the native half of
//! the drop-in layer (the seed's `DataRecord`, transforms, batches and delivery).
//!
//! Built with maturin (`pyproject.toml`); no `extension-module` feature, so
//! `cargo test` links libpython like any other program.

mod error;
mod gil;
mod seed;
mod transform;

use pyo3::prelude::*;

/// edgepipe's native core: telemetry records through transform pipelines.
#[pymodule]
mod _edgepipe {
    #[pymodule_export]
    use crate::error::{
        ChecksumError, ConfigError, CorruptDataError, EdgepipeError, InvalidJsonError, IoError,
        LimitExceededError, LineTooLongError, NonFiniteFloatError, QueueFullError, RecordIdError,
        SnapshotError, TimestampError, UnknownEntryError, UnsupportedError,
    };
    #[pymodule_export]
    use crate::transform::{LineError, ProcessResult, PyPipeline};

    // The drop-in layer's native half: the seed's classes (edgepipe.edge_collector,
    // .transforms, .batching, .delivery) are built on these.
    #[pymodule_export]
    use crate::seed::batching::{
        seed_compress, seed_decompress, seed_encode_batch, seed_record_sizes,
    };
    #[pymodule_export]
    use crate::seed::delivery::{SeedQueue, SeedSink};
    #[pymodule_export]
    use crate::seed::edge_collector::DataRecord;
    #[pymodule_export]
    use crate::seed::transforms::{
        SeedTransform, TransformPipeline, add_computed_field, add_metadata, filter_fields,
        mask_sensitive_fields, rename_fields, validate_schema,
    };

    /// The version of the Rust crates this module was built from.
    #[pymodule_export]
    #[allow(non_upper_case_globals)] // Python's name for it
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
