//! # edgepipe-py
//!
//! The compiled half of the Python package `edgepipe`: the private module
//! `edgepipe._edgepipe`. `python/edgepipe/__init__.py` is the public contract and
//! `python/edgepipe/_edgepipe.pyi` its types, kept honest by `tests/test_stubs.py`.
//!
//! Modules mirror the core's, in the order data flows: [`record`] (JSON Lines ↔
//! dicts, checked by the core), [`transform`] (`Pipeline`, `PipelineBuilder`),
//! [`window`] (`Window`), [`batch`] (`Batcher`, `Batch`, `encode_jsonl`), [`queue`]
//! (`Queue`), [`deliver`] (sinks, `RetryPolicy`, `Delivery`) and [`ingest`]
//! (`Receiver`); [`error`] the
//! exception hierarchy and the one mapping from core errors onto it; [`gil`] the one
//! helper through which long calls release the GIL; [`seed`] the native half of
//! the drop-in layer (the seed's `DataRecord`, transforms, batches and delivery).
//!
//! Built with maturin (`pyproject.toml`); no `extension-module` feature, so
//! `cargo test` links libpython like any other program.

mod batch;
mod deliver;
mod error;
mod gil;
mod ingest;
mod queue;
mod record;
mod seed;
mod transform;
mod window;

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
    // The native layer: the core's stages, bulk calls with the GIL released.
    #[pymodule_export]
    use crate::batch::{PyBatch, PyBatcher, PyDecodeLimits, encode_jsonl};
    #[pymodule_export]
    use crate::deliver::{PyDelivery, PyDirectorySink, PyHttpSink, PyMqttSink, PyRetryPolicy};
    #[pymodule_export]
    use crate::error::SendError;
    #[pymodule_export]
    use crate::ingest::PyReceiver;
    #[pymodule_export]
    use crate::queue::{PyPending, PyQueue, QueueDrain};
    #[pymodule_export]
    use crate::record::{normalize_jsonl, read_jsonl, write_jsonl_records};
    #[pymodule_export]
    use crate::transform::{EncodeResult, PipelineBuilder};
    #[pymodule_export]
    use crate::window::{PyWindow, WindowOutput};

    /// The version of the Rust crates this module was built from.
    #[pymodule_export]
    #[allow(non_upper_case_globals)] // Python's name for it
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
