"""The seed's ``delivery.py``, backed by edgepipe's Rust core.

Replace ``from delivery import ...`` with ``from edgepipe.delivery import ...``.
``PersistentDeliveryQueue`` keeps the seed's SQLite file and its
``delivery_queue`` table (a queue file the seed wrote is drained, and the seed
reads one this class wrote) through the core's ``SqliteQueue``;
``DataDeliveryService`` posts with the core's HTTP sink in seed-compatible mode,
in a worker thread with the GIL released, so the event loop keeps running.

Differences from the seed (see ``docs/migrating-from-seed.md``):

- The database is held exclusively while the queue is open: call ``close()`` (or
  use ``with``) before another program opens it. Every enqueue is synced to disk
  (WAL, ``synchronous=FULL``) before it returns.
- A delivered batch's row is deleted (the seed marked it ``delivered`` and left it
  for ``cleanup_delivered``, which is therefore a no-op here); a batch that failed
  10 times, or that the receiver refused outright (a 4xx such as a bad API key or
  a body it cannot read), gets the status ``dead`` at once instead of being
  retried: the seed's ``get_pending`` never selects it either.
- Retry delays (``base_delay * 2 ** attempts``, at most ``max_delay``) are kept by
  the queue: ``get_pending`` lists only batches whose retry time has come.
- The HTTP client keeps its connection open between batches, sends
  ``Content-Encoding`` by the batch's compression (the seed always said gzip), and
  counts a 2xx as delivered only when the body is the protocol's ``ok`` or
  ``duplicate``. An lz4 batch, which the seed's service cannot read, is refused.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Dict, List, Optional, Tuple

from ._edgepipe import SeedQueue, SeedSink, UnknownEntryError

__all__ = [
    "DataDeliveryService",
    "DeliveryAttempt",
    "DeliveryStatus",
    "PersistentDeliveryQueue",
]

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class DeliveryStatus(Enum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class DeliveryAttempt:
    """Record of a delivery attempt"""

    attempt_number: int
    timestamp: datetime
    status_code: Optional[int]
    error: Optional[str]


def _utcnow() -> datetime:
    """Naive UTC now: the seed's ``datetime.utcnow()``."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _nanos(moment: datetime, name: str) -> int:
    """Nanoseconds since 1970 of a datetime; a naive one is UTC, as in the seed."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _isoformat(nanos: int) -> str:
    """The seed's ``created_at`` text: naive UTC ``isoformat()``."""
    return (datetime(1970, 1, 1) + timedelta(microseconds=nanos // 1000)).isoformat()


# What a send needs besides the data: device id, compression, checksum, record
# count, creation time in nanoseconds.
_Meta = Tuple[str, str, str, int, int]


class PersistentDeliveryQueue:
    """SQLite-backed delivery queue for reliability"""

    def __init__(self, db_path: str = "/data/delivery_queue.db"):
        self.db_path = db_path
        self._queue = SeedQueue(db_path)
        self._ids: Dict[str, int] = {}
        self._meta: Dict[str, _Meta] = {}
        self._attempts: Dict[str, int] = {}
        self._last_attempt: Dict[str, str] = {}
        self._sending: set = set()

    def _init_db(self):
        """The seed's table set-up: done when the queue opens (and kept open)."""

    def enqueue(self, batch: "DataBatch"):  # noqa: F821 - the seed's annotation
        """Add batch to delivery queue"""
        created_at_ns = _nanos(batch.created_at, "batch.created_at")
        entry_id = self._queue.enqueue(
            batch.batch_id,
            batch.device_id,
            batch.compressed_data,
            batch.compression,
            batch.checksum,
            batch.record_count,
            batch.original_size_bytes,
            created_at_ns,
        )
        self._remember(
            batch.batch_id,
            entry_id,
            (batch.device_id, batch.compression, batch.checksum, batch.record_count, created_at_ns),
        )

    def _remember(self, batch_id: str, entry_id: int, meta: _Meta) -> None:
        self._ids[batch_id] = entry_id
        self._meta[batch_id] = meta

    def _forget(self, batch_id: str) -> None:
        for known in (self._ids, self._meta, self._attempts, self._last_attempt):
            known.pop(batch_id, None)
        self._sending.discard(batch_id)

    def get_pending(self, limit: int = 10) -> List[dict]:
        """Get pending batches for delivery: the seed's rows, oldest first, that
        are not being sent and whose retry time has come."""
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        now_ns = _nanos(_utcnow(), "now")
        rows = self._queue.pending(limit + len(self._sending), now_ns)
        result = []
        for row in rows:
            batch_id = row["batch_id"]
            self._remember(
                batch_id,
                row["entry_id"],
                (
                    row["device_id"],
                    row["compression"],
                    row["checksum"],
                    row["record_count"],
                    row["created_at_ns"],
                ),
            )
            self._attempts[batch_id] = row["attempts"]
            if batch_id in self._sending or len(result) >= limit:
                continue
            result.append(
                {
                    "batch_id": batch_id,
                    "device_id": row["device_id"],
                    "batch_data": row["batch_data"],
                    "compression": row["compression"],
                    "checksum": row["checksum"],
                    "status": "failed" if row["attempts"] else "pending",
                    "attempts": row["attempts"],
                    "created_at": _isoformat(row["created_at_ns"]),
                    "last_attempt": self._last_attempt.get(batch_id),
                    "delivered_at": None,
                }
            )
        return result

    def _entry_id(self, batch_id: str) -> Optional[int]:
        if batch_id not in self._ids:
            for entry_id, held in self._queue.ids():
                self._ids.setdefault(held, entry_id)
        return self._ids.get(batch_id)

    def _send_meta(self, batch_id: str) -> Optional[_Meta]:
        if batch_id not in self._meta:
            self.get_pending(limit=1 << 30)
        return self._meta.get(batch_id)

    def mark_sending(self, batch_id: str):
        """Mark batch as being sent"""
        self._sending.add(batch_id)
        self._last_attempt[batch_id] = _utcnow().isoformat()

    def mark_delivered(self, batch_id: str):
        """Mark batch as delivered: its row is deleted."""
        entry_id = self._entry_id(batch_id)
        if entry_id is not None:
            try:
                self._queue.ack(entry_id)
            except UnknownEntryError:
                pass  # already gone: the seed's UPDATE of no row does nothing either
        self._forget(batch_id)

    def mark_failed(self, batch_id: str, *, retry_after: float = 0.0, permanent: bool = False):
        """Mark batch as failed (for retry in ``retry_after`` seconds); a
        ``permanent`` failure is dead-lettered at once."""
        self._sending.discard(batch_id)
        entry_id = self._entry_id(batch_id)
        if entry_id is None:
            return
        try:
            if permanent:
                self._queue.dead_letter(entry_id)
                self._forget(batch_id)
                return
            retry_at_ns = _nanos(_utcnow(), "now") + int(max(0.0, retry_after) * 1e9)
            attempts, dead = self._queue.nack(entry_id, retry_at_ns)
        except UnknownEntryError:
            self._forget(batch_id)
            return
        if dead:
            self._forget(batch_id)
        else:
            self._attempts[batch_id] = attempts

    def cleanup_delivered(self, older_than_hours: int = 24):
        """Remove old delivered batches: nothing to do, delivered rows are deleted
        when they are delivered."""

    def stats(self) -> dict:
        """Counters of the queue: ``pending``, ``dead``, ``enqueued``, ``acked``,
        ``dead_lettered``, ``bytes``."""
        return self._queue.stats()

    def close(self) -> None:
        """Closes the database so another program can open it."""
        self._queue.close()

    def __enter__(self) -> "PersistentDeliveryQueue":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class DataDeliveryService:
    """Reliable data delivery to cloud"""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        queue: PersistentDeliveryQueue,
        max_retries: int = 10,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
    ):
        if not isinstance(queue, PersistentDeliveryQueue):
            raise TypeError(
                f"queue must be an edgepipe PersistentDeliveryQueue, not {type(queue).__name__}"
            )
        for name, value in (("base_delay", base_delay), ("max_delay", max_delay)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        self.endpoint = endpoint
        self.api_key = api_key
        self.queue = queue
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sink = SeedSink(endpoint, api_key, 60.0)

    async def deliver(self, batch: "DataBatch") -> bool:  # noqa: F821 - the seed's annotation
        """Deliver a batch to cloud"""
        # Enqueue for persistence (a synced write: off the event loop).
        await asyncio.to_thread(self.queue.enqueue, batch)

        # Attempt delivery
        return await self._attempt_delivery(batch.batch_id, batch.compressed_data)

    async def _attempt_delivery(self, batch_id: str, data: bytes) -> bool:
        """Attempt to deliver a batch"""
        meta = self.queue._send_meta(batch_id)
        if meta is None:
            logger.error("Delivery error: batch %s is not in the queue", batch_id)
            return False
        device_id, compression, checksum, record_count, created_at_ns = meta
        self.queue.mark_sending(batch_id)

        try:
            delivered, detail, retryable = await asyncio.to_thread(
                self._sink.send,
                batch_id,
                device_id,
                data,
                compression,
                checksum,
                record_count,
                created_at_ns,
            )
        except Exception as error:  # noqa: BLE001 - a batch the sink cannot send at all
            logger.error(f"Delivery error: {error}")
            self.queue.mark_failed(batch_id, permanent=True)
            return False

        if delivered:
            self.queue.mark_delivered(batch_id)
            logger.info(f"Batch {batch_id} delivered successfully")
            return True
        logger.warning(f"Delivery failed: {detail}")
        if retryable:
            attempts = self.queue._attempts.get(batch_id, 0) + 1
            delay = min(self.base_delay * (2**attempts), self.max_delay)
            self.queue.mark_failed(batch_id, retry_after=delay)
        else:
            self.queue.mark_failed(batch_id, permanent=True)
        return False

    async def process_queue(self):
        """Process pending deliveries"""
        pending = self.queue.get_pending(limit=10)

        for batch_info in pending:
            # The queue lists a failed batch only once its backoff delay has passed.
            await self._attempt_delivery(batch_info["batch_id"], batch_info["batch_data"])

    async def run_delivery_loop(self, interval: int = 10):
        """Run continuous delivery loop"""
        while True:
            try:
                await self.process_queue()
            except Exception as e:  # noqa: BLE001 - the seed's loop survives any error
                logger.error(f"Delivery loop error: {e}")

            await asyncio.sleep(interval)
