"""The seed's ``edge_collector.py``, backed by edgepipe's Rust core.

Replace ``from edge_collector import DataRecord, DataCollector`` with
``from edgepipe.edge_collector import DataRecord, DataCollector``; nothing else
changes. ``DataRecord`` is edgepipe's native record (the same fields, ``to_dict()``,
equality and ``dataclasses.replace``); the transforms and batches built on it run
in Rust.

Where this module behaves better than the seed (see ``docs/migrating-from-seed.md``):

- ``DataCollector.collect`` goes on with a source's other items when a transform
  rejects one (the seed dropped the rest of that source's items and printed the
  error); the rejected records are counted in ``rejected_count`` and the latest
  ones kept, with their errors, in ``rejected``.
- Errors go to the ``logging`` module, not ``print``.
- Timestamps come from ``datetime.now(timezone.utc)`` as naive UTC, which is what
  the seed's ``datetime.utcnow()`` gives, without its deprecation warning.
"""

import logging
import random
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Deque, Dict, List, Tuple

from ._edgepipe import DataRecord

__all__ = [
    "DataCollector",
    "DataRecord",
    "collect_sensor_data",
    "collect_system_metrics",
]

logger = logging.getLogger(__name__)

# How many rejected records (with their errors) a collector keeps for inspection.
REJECTED_KEPT = 1000


def _utcnow() -> datetime:
    """Naive UTC now: the seed's ``datetime.utcnow()``."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class DataCollector:
    """Collects data from various sources at the edge (the seed's ``DataCollector``).

    ``buffer`` is a bounded deque as in the seed: when it is full, the oldest
    records are dropped to make room, and ``dropped_count`` counts them.
    """

    def __init__(self, device_id: str, max_buffer_size: int = 10000):
        if not isinstance(device_id, str):
            raise TypeError(f"device_id must be a str, not {type(device_id).__name__}")
        if isinstance(max_buffer_size, bool) or not isinstance(max_buffer_size, int):
            raise TypeError(
                f"max_buffer_size must be an int, not {type(max_buffer_size).__name__}"
            )
        if max_buffer_size < 1:
            raise ValueError(f"max_buffer_size must be at least 1, not {max_buffer_size}")
        self.device_id = device_id
        self.buffer: Deque[DataRecord] = deque(maxlen=max_buffer_size)
        self.sources: Dict[str, Callable[[], List[Dict]]] = {}
        self.transforms: List[Callable[[DataRecord], DataRecord]] = []
        self.rejected: Deque[Tuple[Any, Exception]] = deque(maxlen=REJECTED_KEPT)
        self.rejected_count = 0
        self.dropped_count = 0

    def register_source(self, name: str, collector: Callable[[], List[Dict]]):
        """Register a data source"""
        if not callable(collector):
            raise TypeError(f"collector must be callable, not {type(collector).__name__}")
        self.sources[name] = collector

    def register_transform(self, transform: Callable[[DataRecord], DataRecord]):
        """Register a data transformation"""
        if not callable(transform):
            raise TypeError(f"transform must be callable, not {type(transform).__name__}")
        self.transforms.append(transform)

    async def collect(self) -> int:
        """Collect data from all sources; returns how many records were buffered.

        A source that raises is logged and skipped (as in the seed). An item that
        cannot become a record, or that a transform rejects, is counted in
        ``rejected_count`` and kept in ``rejected``; the source's other items are
        still collected.
        """
        collected = 0

        for source_name, collector in self.sources.items():
            try:
                raw_data = collector()
            except Exception as error:  # noqa: BLE001 - a source's failure must not stop the others
                logger.error("Collection error from %s: %s", source_name, error)
                continue

            for item in raw_data:
                try:
                    record = DataRecord(
                        record_id=str(uuid.uuid4()),
                        device_id=self.device_id,
                        timestamp=_utcnow(),
                        data_type=source_name,
                        payload=item,
                    )
                    for transform in self.transforms:
                        record = transform(record)
                except Exception as error:  # noqa: BLE001 - counted and kept, the rest goes on
                    self.rejected_count += 1
                    self.rejected.append((item, error))
                    logger.warning("Record from %s rejected: %s", source_name, error)
                    continue

                if len(self.buffer) == self.buffer.maxlen:
                    self.dropped_count += 1
                self.buffer.append(record)
                collected += 1

        return collected

    def get_batch(self, max_size: int = 100) -> List[DataRecord]:
        """Get a batch of records from buffer"""
        count = min(max_size, len(self.buffer))
        return [self.buffer.popleft() for _ in range(count)]

    def return_batch(self, batch: List[DataRecord]):
        """Return batch to buffer (for retry)"""
        for record in reversed(batch):
            self.buffer.appendleft(record)

    @property
    def buffer_size(self) -> int:
        return len(self.buffer)


# Example data sources
def collect_sensor_data() -> List[Dict]:
    """Collect sensor readings"""
    return [
        {
            "temperature": round(22 + random.uniform(-3, 3), 2),
            "humidity": round(50 + random.uniform(-10, 10), 1),
            "pressure": round(1013 + random.uniform(-10, 10), 1),
        }
    ]


def collect_system_metrics() -> List[Dict]:
    """Collect system metrics (needs ``psutil``, as in the seed)."""
    import psutil

    return [
        {
            "cpu_percent": psutil.cpu_percent(),
            "memory_percent": psutil.virtual_memory().percent,
            "disk_percent": psutil.disk_usage("/").percent,
        }
    ]
