# edge_collector.py
# Collects and buffers data at the edge

from dataclasses import dataclass, field, asdict
from datetime import datetime
from typing import List, Dict, Any, Callable
from collections import deque
import asyncio
import json
import uuid

@dataclass
class DataRecord:
    """Single data record for pipeline"""
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
            "metadata": self.metadata
        }

class DataCollector:
    """Collects data from various sources at the edge"""

    def __init__(self, device_id: str, max_buffer_size: int = 10000):
        self.device_id = device_id
        self.buffer = deque(maxlen=max_buffer_size)
        self.sources: Dict[str, Callable[[], List[Dict]]] = {}
        self.transforms: List[Callable[[DataRecord], DataRecord]] = []

    def register_source(self, name: str, collector: Callable[[], List[Dict]]):
        """Register a data source"""
        self.sources[name] = collector

    def register_transform(self, transform: Callable[[DataRecord], DataRecord]):
        """Register a data transformation"""
        self.transforms.append(transform)

    async def collect(self) -> int:
        """Collect data from all sources"""
        collected = 0

        for source_name, collector in self.sources.items():
            try:
                raw_data = collector()

                for item in raw_data:
                    record = DataRecord(
                        record_id=str(uuid.uuid4()),
                        device_id=self.device_id,
                        timestamp=datetime.utcnow(),
                        data_type=source_name,
                        payload=item
                    )

                    # Apply transforms
                    for transform in self.transforms:
                        record = transform(record)

                    self.buffer.append(record)
                    collected += 1

            except Exception as e:
                print(f"Collection error from {source_name}: {e}")

        return collected

    def get_batch(self, max_size: int = 100) -> List[DataRecord]:
        """Get a batch of records from buffer"""
        batch = []
        for _ in range(min(max_size, len(self.buffer))):
            if self.buffer:
                batch.append(self.buffer.popleft())
        return batch

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
    import random
    return [{
        "temperature": round(22 + random.uniform(-3, 3), 2),
        "humidity": round(50 + random.uniform(-10, 10), 1),
        "pressure": round(1013 + random.uniform(-10, 10), 1)
    }]

def collect_system_metrics() -> List[Dict]:
    """Collect system metrics"""
    import psutil
    return [{
        "cpu_percent": psutil.cpu_percent(),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": psutil.disk_usage('/').percent
    }]
