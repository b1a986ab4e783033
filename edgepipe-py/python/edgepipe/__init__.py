"""edgepipe: embeddable edge-to-cloud telemetry pipelines.

Bulk calls take and return bytes (JSON Lines in, JSON Lines out) and release the
GIL while the Rust core works::

    from edgepipe import Pipeline

    pipeline = Pipeline.from_json('{"transforms": [{"type": "add_metadata", "metadata": {"site": "f1"}}]}')
    result = pipeline.process_jsonl(open("readings.jsonl", "rb").read())
    result.records      # bytes: the records that passed, one JSON object per line
    result.quarantine   # bytes: the records a stage set aside, with the reason
    result.errors       # list[LineError]: input lines that could not be used

Every error edgepipe raises is an EdgepipeError; each kind has its own subclass.
"""

from ._edgepipe import (
    ChecksumError,
    ConfigError,
    CorruptDataError,
    EdgepipeError,
    InvalidJsonError,
    IoError,
    LimitExceededError,
    LineError,
    LineTooLongError,
    NonFiniteFloatError,
    Pipeline,
    ProcessResult,
    QueueFullError,
    RecordIdError,
    SnapshotError,
    TimestampError,
    UnknownEntryError,
    UnsupportedError,
    __version__,
)

__all__ = [
    "ChecksumError",
    "ConfigError",
    "CorruptDataError",
    "EdgepipeError",
    "InvalidJsonError",
    "IoError",
    "LimitExceededError",
    "LineError",
    "LineTooLongError",
    "NonFiniteFloatError",
    "Pipeline",
    "ProcessResult",
    "QueueFullError",
    "RecordIdError",
    "SnapshotError",
    "TimestampError",
    "UnknownEntryError",
    "UnsupportedError",
    "__version__",
]
