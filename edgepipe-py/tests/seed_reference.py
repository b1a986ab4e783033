"""A plain-Python model of the seed's classes (shared/seeds/000), for the
test_seed_*.py files to compare edgepipe's drop-in layer with.

Written from the seed's documented behaviour, deliberately simple: a dataclass
record, transforms that copy with ``dataclasses.replace``, batches made with
``json.dumps`` + ``gzip``/``lz4.frame`` + ``hashlib``, and the seed's
``delivery_queue`` table driven with ``sqlite3``.
"""

import gzip
import hashlib
import json
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Dict, List


def lz4_frame():
    """Python's lz4.frame, the seed's lz4; the tests that need it fail without it."""
    try:
        import lz4.frame
    except ImportError:  # pragma: no cover - depends on the environment
        import pytest

        pytest.fail(
            "the Python package lz4 is needed for the seed's lz4 batches: "
            "pip install -r edgepipe-py/requirements-dev.txt"
        )
    return lz4.frame


@dataclass
class DataRecord:
    """The seed's record: six fields, to_dict() with isoformat()."""

    record_id: str
    device_id: str
    timestamp: datetime
    data_type: str
    payload: Dict[str, Any]
    metadata: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "record_id": self.record_id,
            "device_id": self.device_id,
            "timestamp": self.timestamp.isoformat(),
            "data_type": self.data_type,
            "payload": self.payload,
            "metadata": self.metadata,
        }


# --- transforms: each returns a copy, as the seed's closures do ---------------


def add_metadata(labels: Dict[str, str]) -> Callable:
    return lambda record: replace(record, metadata={**record.metadata, **labels})


def filter_fields(allowed: List[str]) -> Callable:
    return lambda record: replace(
        record, payload={key: value for key, value in record.payload.items() if key in allowed}
    )


def rename_fields(mapping: Dict[str, str]) -> Callable:
    def transform(record):
        renamed = {}
        for key, value in record.payload.items():
            renamed[mapping.get(key, key)] = value
        return replace(record, payload=renamed)

    return transform


def add_computed_field(name: str, compute: Callable) -> Callable:
    return lambda record: replace(record, payload={**record.payload, name: compute(record.payload)})


def mask_sensitive_fields(fields: List[str]) -> Callable:
    def transform(record):
        masked = dict(record.payload)
        for name in fields:
            if name in masked:
                masked[name] = "***MASKED***"
        return replace(record, payload=masked)

    return transform


def validate_schema(schema: Dict[str, type]) -> Callable:
    def transform(record):
        for name, expected in schema.items():
            if name in record.payload and not isinstance(record.payload[name], expected):
                raise ValueError(f"Field {name} has wrong type")
        return record

    return transform


class TransformPipeline:
    def __init__(self):
        self.transforms = []

    def add(self, transform):
        self.transforms.append(transform)
        return self

    def process(self, record):
        for transform in self.transforms:
            record = transform(record)
        return record


# --- batches -------------------------------------------------------------------


def batch_json(records: List) -> bytes:
    """The seed's batch body before compression."""
    return json.dumps([r.to_dict() if hasattr(r, "to_dict") else r for r in records]).encode(
        "utf-8"
    )


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6)
    if compression == "lz4":
        return lz4_frame().compress(data)
    return data


def decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "lz4":
        return lz4_frame().decompress(data)
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_records(records: List, max_size: int, max_bytes: int) -> List[List]:
    batches, current, size = [], [], 0
    for record in records:
        record_size = len(
            json.dumps(record.to_dict() if hasattr(record, "to_dict") else record).encode("utf-8")
        )
        if len(current) >= max_size or size + record_size > max_bytes:
            if current:
                batches.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        batches.append(current)
    return batches


# --- the seed's delivery_queue table, driven with sqlite3 ------------------------

SEED_TABLE = """
    CREATE TABLE IF NOT EXISTS delivery_queue (
        batch_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        batch_data BLOB NOT NULL,
        compression TEXT,
        checksum TEXT,
        status TEXT DEFAULT 'pending',
        attempts INTEGER DEFAULT 0,
        created_at TEXT,
        last_attempt TEXT,
        delivered_at TEXT
    )
"""


def queue_init(path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(SEED_TABLE)
    connection.close()


def queue_enqueue(path, batch_id, device_id, data, compression, checksum, created_at) -> None:
    connection = sqlite3.connect(path)
    connection.execute(
        "INSERT OR REPLACE INTO delivery_queue"
        " (batch_id, device_id, batch_data, compression, checksum, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (batch_id, device_id, data, compression, checksum, created_at),
    )
    connection.commit()
    connection.close()


def queue_pending(path, limit: int = 10) -> List[dict]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    rows = connection.execute(
        "SELECT * FROM delivery_queue WHERE status IN ('pending', 'failed') AND attempts < 10"
        " ORDER BY created_at ASC LIMIT ?",
        (limit,),
    ).fetchall()
    connection.close()
    return [dict(row) for row in rows]


def queue_mark_delivered(path, batch_id: str) -> None:
    connection = sqlite3.connect(path)
    connection.execute(
        "UPDATE delivery_queue SET status = 'delivered', delivered_at = ? WHERE batch_id = ?",
        ("2026-01-01T00:00:00", batch_id),
    )
    connection.commit()
    connection.close()
