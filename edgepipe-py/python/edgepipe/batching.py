"""The seed's ``batching.py``, backed by edgepipe's Rust core.

Replace ``from batching import ...`` with ``from edgepipe.batching import ...``.
``create_batch`` serialises, compresses and hashes edgepipe ``DataRecord``\\ s in
Rust with the GIL released; the JSON is byte for byte the seed's
``json.dumps([r.to_dict() for r in records])``. Other items (plain dicts, other
objects with ``to_dict``) are serialised by Python's ``json`` as in the seed.

Differences from the seed (see ``docs/migrating-from-seed.md``):

- ``batch_id`` is deterministic: 32 hex digits derived from the device id and
  the records (ids, devices, timestamps), so the same records get the same id on
  a retry and the receiver recognises a duplicate (for items that are not
  edgepipe records, the id is derived from the device id and the JSON). The seed's
  ``f"{device_id}-{utcnow().timestamp()}"`` changed on every call and two batches
  made in the same microsecond collided.
- ``compression`` must be ``"gzip"``, ``"lz4"`` or ``"none"`` (ValueError
  otherwise); the seed silently sent any other name uncompressed. lz4 needs no
  Python package.
- ``decompress_batch`` bounds the decompressed size (64 MiB) and raises
  ``edgepipe.CorruptDataError`` / ``LimitExceededError`` (``EdgepipeError``
  subclasses) for bad data, instead of gzip's or lz4's own exceptions.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List

from ._edgepipe import (
    seed_compress,
    seed_decompress,
    seed_encode_batch,
    seed_record_sizes,
)
from ._edgepipe import DataRecord  # noqa: F401 - the type create_batch is fast for

__all__ = ["BatchProcessor", "DataBatch"]

_COMPRESSIONS = ("gzip", "lz4", "none")


@dataclass
class DataBatch:
    """Batch of data records for transmission"""

    batch_id: str
    device_id: str
    created_at: datetime
    record_count: int
    compressed_data: bytes
    compression: str
    checksum: str
    size_bytes: int
    original_size_bytes: int


def _utcnow() -> datetime:
    """Naive UTC now: the seed's ``datetime.utcnow()``."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")


class BatchProcessor:
    """Create and manage data batches"""

    def __init__(
        self,
        device_id: str,
        max_batch_size: int = 100,
        max_batch_bytes: int = 1024 * 1024,  # 1MB
        compression: str = "gzip",  # gzip, lz4, none
    ):
        if not isinstance(device_id, str):
            raise TypeError(f"device_id must be a str, not {type(device_id).__name__}")
        _check_positive_int(max_batch_size, "max_batch_size")
        _check_positive_int(max_batch_bytes, "max_batch_bytes")
        if compression not in _COMPRESSIONS:
            raise ValueError(
                f'compression must be "gzip", "lz4" or "none", not {compression!r}'
            )
        self.device_id = device_id
        self.max_batch_size = max_batch_size
        self.max_batch_bytes = max_batch_bytes
        self.compression = compression

    def create_batch(self, records: List) -> DataBatch:
        """Create a compressed batch from records"""
        records = list(records)
        encoded = seed_encode_batch(records, self.device_id, self.compression)
        if encoded is None:
            # Items that are not edgepipe records: serialised as the seed does.
            data = [r.to_dict() if hasattr(r, "to_dict") else r for r in records]
            json_data = json.dumps(data).encode("utf-8")
            compressed = seed_compress(json_data, self.compression)
            checksum = hashlib.sha256(compressed).hexdigest()
            # Deterministic too, from the content (there are no record ids to use).
            batch_id = hashlib.sha256(
                b"edgepipe-seed-batch/v1\n" + self.device_id.encode("utf-8") + b"\n" + json_data
            ).hexdigest()[:32]
            original_size = len(json_data)
        else:
            batch_id, compressed, checksum, original_size = encoded
        return DataBatch(
            batch_id=batch_id,
            device_id=self.device_id,
            created_at=_utcnow(),
            record_count=len(records),
            compressed_data=compressed,
            compression=self.compression,
            checksum=checksum,
            size_bytes=len(compressed),
            original_size_bytes=original_size,
        )

    def split_records(self, records: List) -> List[List]:
        """Split records into appropriate batch sizes"""
        records = list(records)
        sizes = seed_record_sizes(records)
        batches = []
        current_batch: List = []
        current_size = 0

        for record, record_size in zip(records, sizes):
            if record_size is None:
                record_json = json.dumps(
                    record.to_dict() if hasattr(record, "to_dict") else record
                )
                record_size = len(record_json.encode("utf-8"))

            # Check if adding this record exceeds limits
            if (
                len(current_batch) >= self.max_batch_size
                or current_size + record_size > self.max_batch_bytes
            ):
                if current_batch:
                    batches.append(current_batch)
                current_batch = []
                current_size = 0

            current_batch.append(record)
            current_size += record_size

        if current_batch:
            batches.append(current_batch)

        return batches

    @staticmethod
    def decompress_batch(batch: DataBatch) -> List[Dict]:
        """Decompress a batch"""
        decompressed = seed_decompress(batch.compressed_data, batch.compression)
        return json.loads(decompressed.decode("utf-8"))
