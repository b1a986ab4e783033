# The seed's `PersistentDeliveryQueue` (seed 000, delivery.py), copied verbatim
# but for the imports it does not use (aiohttp, asyncio, logging): the reference
# the SQLite queue backend stays compatible with, driven by tests/queue_sqlite.rs.

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional, Callable, List
from enum import Enum
import sqlite3
import json

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
