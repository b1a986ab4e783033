"""edgepipe: embeddable edge-to-cloud telemetry pipelines.

Bulk calls take and return bytes (JSON Lines in, JSON Lines out) and release the
GIL while the Rust core works::

    from edgepipe import Pipeline

    pipeline = Pipeline.from_json('{"transforms": [{"type": "add_metadata", "metadata": {"site": "f1"}}]}')
    result = pipeline.process_jsonl(open("readings.jsonl", "rb").read())
    result.records      # bytes: the records that passed, one JSON object per line
    result.quarantine   # bytes: the records a stage set aside, with the reason
    result.errors       # list[LineError]: input lines that could not be used

The native layer has every stage of the core, each taking and returning many
records in one call: ``read_jsonl``/``write_jsonl``/``normalize_jsonl`` (records),
``Pipeline.from_dict``/``Pipeline.builder()`` (transforms), ``Window`` (windows),
``Batcher``/``Batch``/``encode_jsonl`` (batches), ``Queue`` (durable, SQLite or
memory), ``HttpSink``/``MqttSink``/``DirectorySink``/``RetryPolicy``/``Delivery``
(delivery) and ``Receiver`` (cloud ingestion). See docs/python.md.

Every error edgepipe raises is an EdgepipeError; each kind has its own subclass.

The seed's classes, backed by the same core, are a change of imports away:
``edgepipe.edge_collector``, ``edgepipe.transforms``, ``edgepipe.batching`` and
``edgepipe.delivery`` (see docs/migrating-from-seed.md).
"""

from ._edgepipe import (
    Batch,
    Batcher,
    ChecksumError,
    ConfigError,
    CorruptDataError,
    DecodeLimits,
    Delivery,
    DirectorySink,
    EdgepipeError,
    EncodeResult,
    HttpSink,
    InvalidJsonError,
    IoError,
    LimitExceededError,
    LineError,
    LineTooLongError,
    MqttSink,
    NonFiniteFloatError,
    Pending,
    Pipeline,
    PipelineBuilder,
    ProcessResult,
    Queue,
    QueueDrain,
    QueueFullError,
    Receiver,
    RecordIdError,
    RetryPolicy,
    SendError,
    SnapshotError,
    TimestampError,
    UnknownEntryError,
    UnsupportedError,
    Window,
    WindowOutput,
    __version__,
    encode_jsonl,
    normalize_jsonl,
    read_jsonl,
    write_jsonl,
)

# The drop-in layer's native half (the seed's modules are built on these).
from ._edgepipe import (
    DataRecord,
    SeedQueue,
    SeedSink,
    SeedTransform,
    TransformPipeline,
    add_computed_field,
    add_metadata,
    filter_fields,
    mask_sensitive_fields,
    rename_fields,
    seed_compress,
    seed_decompress,
    seed_encode_batch,
    seed_record_sizes,
    validate_schema,
)

__all__ = [
    "Batch",
    "Batcher",
    "ChecksumError",
    "ConfigError",
    "CorruptDataError",
    "DecodeLimits",
    "Delivery",
    "DirectorySink",
    "EdgepipeError",
    "EncodeResult",
    "HttpSink",
    "InvalidJsonError",
    "IoError",
    "LimitExceededError",
    "LineError",
    "LineTooLongError",
    "MqttSink",
    "NonFiniteFloatError",
    "Pending",
    "Pipeline",
    "PipelineBuilder",
    "ProcessResult",
    "Queue",
    "QueueDrain",
    "QueueFullError",
    "Receiver",
    "RecordIdError",
    "RetryPolicy",
    "SendError",
    "SnapshotError",
    "TimestampError",
    "UnknownEntryError",
    "UnsupportedError",
    "Window",
    "WindowOutput",
    "__version__",
    # The drop-in layer's native half.
    "DataRecord",
    "SeedQueue",
    "SeedSink",
    "SeedTransform",
    "TransformPipeline",
    "add_computed_field",
    "add_metadata",
    "filter_fields",
    "mask_sensitive_fields",
    "rename_fields",
    "seed_compress",
    "seed_decompress",
    "seed_encode_batch",
    "seed_record_sizes",
    "validate_schema",
    "encode_jsonl",
    "normalize_jsonl",
    "read_jsonl",
    "write_jsonl",
]
