# delivery.py
# Reliable delivery with retry and acknowledgment
# (Kept once here: edgepipe-core/tests/queue_sqlite.rs runs its PersistentDeliveryQueue too.)

import asyncio
import aiohttp
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional, Callable, List
from enum import Enum
import logging
import sqlite3
import json

logger = logging.getLogger(__name__)

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

class PersistentDeliveryQueue:
    """SQLite-backed delivery queue for reliability"""

    def __init__(self, db_path: str = "/data/delivery_queue.db"):
        self.db_path = db_path
        self._init_db()

    def _init_db(self):
        conn = sqlite3.connect(self.db_path)
        conn.execute("""
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
        """)
        conn.commit()
        conn.close()

    def enqueue(self, batch: 'DataBatch'):
        """Add batch to delivery queue"""
        conn = sqlite3.connect(self.db_path)
        conn.execute("""
            INSERT OR REPLACE INTO delivery_queue
            (batch_id, device_id, batch_data, compression, checksum, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
        """, (
            batch.batch_id,
            batch.device_id,
            batch.compressed_data,
            batch.compression,
            batch.checksum,
            batch.created_at.isoformat()
        ))
        conn.commit()
        conn.close()

    def get_pending(self, limit: int = 10) -> List[dict]:
        """Get pending batches for delivery"""
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        cursor = conn.execute("""
            SELECT * FROM delivery_queue
            WHERE status IN ('pending', 'failed')
            AND attempts < 10
            ORDER BY created_at ASC
            LIMIT ?
        """, (limit,))
        rows = cursor.fetchall()
        conn.close()
        return [dict(row) for row in rows]

    def mark_sending(self, batch_id: str):
        """Mark batch as being sent"""
        conn = sqlite3.connect(self.db_path)
        conn.execute("""
            UPDATE delivery_queue
            SET status = 'sending', last_attempt = ?, attempts = attempts + 1
            WHERE batch_id = ?
        """, (datetime.utcnow().isoformat(), batch_id))
        conn.commit()
        conn.close()

    def mark_delivered(self, batch_id: str):
        """Mark batch as delivered"""
        conn = sqlite3.connect(self.db_path)
        conn.execute("""
            UPDATE delivery_queue
            SET status = 'delivered', delivered_at = ?
            WHERE batch_id = ?
        """, (datetime.utcnow().isoformat(), batch_id))
        conn.commit()
        conn.close()

    def mark_failed(self, batch_id: str):
        """Mark batch as failed (for retry)"""
        conn = sqlite3.connect(self.db_path)
        conn.execute("""
            UPDATE delivery_queue
            SET status = 'failed'
            WHERE batch_id = ?
        """, (batch_id,))
        conn.commit()
        conn.close()

    def cleanup_delivered(self, older_than_hours: int = 24):
        """Remove old delivered batches"""
        cutoff = (datetime.utcnow() - timedelta(hours=older_than_hours)).isoformat()
        conn = sqlite3.connect(self.db_path)
        conn.execute("""
            DELETE FROM delivery_queue
            WHERE status = 'delivered' AND delivered_at < ?
        """, (cutoff,))
        conn.commit()
        conn.close()


class DataDeliveryService:
    """Reliable data delivery to cloud"""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        queue: PersistentDeliveryQueue,
        max_retries: int = 10,
        base_delay: float = 1.0,
        max_delay: float = 300.0
    ):
        self.endpoint = endpoint
        self.api_key = api_key
        self.queue = queue
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay

    async def deliver(self, batch: 'DataBatch') -> bool:
        """Deliver a batch to cloud"""
        # Enqueue for persistence
        self.queue.enqueue(batch)

        # Attempt delivery
        return await self._attempt_delivery(batch.batch_id, batch.compressed_data)

    async def _attempt_delivery(self, batch_id: str, data: bytes) -> bool:
        """Attempt to deliver a batch"""
        self.queue.mark_sending(batch_id)

        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{self.endpoint}/api/ingest",
                    data=data,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Encoding": "gzip",
                        "X-API-Key": self.api_key,
                        "X-Batch-ID": batch_id
                    },
                    timeout=aiohttp.ClientTimeout(total=60)
                ) as response:
                    if response.status == 200:
                        self.queue.mark_delivered(batch_id)
                        logger.info(f"Batch {batch_id} delivered successfully")
                        return True
                    else:
                        logger.warning(f"Delivery failed: {response.status}")
                        self.queue.mark_failed(batch_id)
                        return False

        except Exception as e:
            logger.error(f"Delivery error: {e}")
            self.queue.mark_failed(batch_id)
            return False

    async def process_queue(self):
        """Process pending deliveries"""
        pending = self.queue.get_pending(limit=10)

        for batch_info in pending:
            batch_id = batch_info['batch_id']
            attempts = batch_info['attempts']

            # Calculate backoff delay
            delay = min(self.base_delay * (2 ** attempts), self.max_delay)

            if batch_info['last_attempt']:
                last_attempt = datetime.fromisoformat(batch_info['last_attempt'])
                time_since = (datetime.utcnow() - last_attempt).total_seconds()
                if time_since < delay:
                    continue  # Not ready for retry

            # Attempt delivery
            await self._attempt_delivery(batch_id, batch_info['batch_data'])

    async def run_delivery_loop(self, interval: int = 10):
        """Run continuous delivery loop"""
        while True:
            try:
                await self.process_queue()
            except Exception as e:
                logger.error(f"Delivery loop error: {e}")

            await asyncio.sleep(interval)
