# batching.py
# Batch and compress data for efficient transmission

import gzip
import json
import lz4.frame
from typing import List, Dict, Any
from dataclasses import dataclass
from datetime import datetime
import hashlib

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

class BatchProcessor:
    """Create and manage data batches"""

    def __init__(
        self,
        device_id: str,
        max_batch_size: int = 100,
        max_batch_bytes: int = 1024 * 1024,  # 1MB
        compression: str = "gzip"  # gzip, lz4, none
    ):
        self.device_id = device_id
        self.max_batch_size = max_batch_size
        self.max_batch_bytes = max_batch_bytes
        self.compression = compression

    def create_batch(self, records: List) -> DataBatch:
        """Create a compressed batch from records"""
        # Serialize records
        data = [r.to_dict() if hasattr(r, 'to_dict') else r for r in records]
        json_data = json.dumps(data).encode('utf-8')
        original_size = len(json_data)

        # Compress
        if self.compression == "gzip":
            compressed = gzip.compress(json_data, compresslevel=6)
        elif self.compression == "lz4":
            compressed = lz4.frame.compress(json_data)
        else:
            compressed = json_data

        # Calculate checksum
        checksum = hashlib.sha256(compressed).hexdigest()

        batch_id = f"{self.device_id}-{datetime.utcnow().timestamp()}"

        return DataBatch(
            batch_id=batch_id,
            device_id=self.device_id,
            created_at=datetime.utcnow(),
            record_count=len(records),
            compressed_data=compressed,
            compression=self.compression,
            checksum=checksum,
            size_bytes=len(compressed),
            original_size_bytes=original_size
        )

    def split_records(self, records: List) -> List[List]:
        """Split records into appropriate batch sizes"""
        batches = []
        current_batch = []
        current_size = 0

        for record in records:
            record_json = json.dumps(
                record.to_dict() if hasattr(record, 'to_dict') else record
            )
            record_size = len(record_json.encode('utf-8'))

            # Check if adding this record exceeds limits
            if (len(current_batch) >= self.max_batch_size or
                current_size + record_size > self.max_batch_bytes):

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
        if batch.compression == "gzip":
            decompressed = gzip.decompress(batch.compressed_data)
        elif batch.compression == "lz4":
            decompressed = lz4.frame.decompress(batch.compressed_data)
        else:
            decompressed = batch.compressed_data

        return json.loads(decompressed.decode('utf-8'))
