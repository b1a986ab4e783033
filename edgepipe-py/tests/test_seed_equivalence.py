"""The seed's reference flow, twice on the same readings: records → add_metadata →
batches of 100 → gzip → sha256 → the SQLite delivery queue, once with a seed-style
pure-Python implementation (seed_reference) and once with edgepipe's drop-in
classes. Batch contents, record counts and queue rows agree."""

import gzip
import json
import random
import uuid
from datetime import datetime, timedelta

import seed_reference as ref
from edgepipe.batching import BatchProcessor
from edgepipe.delivery import PersistentDeliveryQueue
from edgepipe.edge_collector import DataRecord
from edgepipe.transforms import TransformPipeline, add_metadata

LABELS = {"region": "us-west", "site": "factory-1"}


def readings(count: int) -> list:
    """Workload-shaped readings (as bench/workload.py writes them): 100 devices,
    one reading each per 100 ms tick, random-walk values, UUID record ids."""
    rng = random.Random(2026)
    start = datetime(2026, 1, 1)
    lines = []
    for index in range(count):
        tick, device = divmod(index, 100)
        lines.append(
            {
                "record_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "device_id": f"dev-{device:04d}",
                "timestamp": (start + timedelta(milliseconds=100 * tick)).isoformat(timespec="milliseconds") + "Z",
                "data_type": "sensors",
                "payload": {
                    "temperature": round(22 + rng.uniform(-3, 3), 2),
                    "humidity": round(50 + rng.uniform(-10, 10), 1),
                    "pressure": round(1013 + rng.uniform(-10, 10), 1),
                },
            }
        )
    return [json.dumps(line) for line in lines]


def run_flow(lines, record_class, pipeline, make_batch, enqueue) -> list:
    """The seed's edge path, written once, run with either implementation."""
    records = []
    for line in lines:
        raw = json.loads(line)
        record = record_class(
            record_id=raw["record_id"],
            device_id=raw["device_id"],
            timestamp=datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00")),
            data_type=raw["data_type"],
            payload=raw["payload"],
            metadata=raw.get("metadata", {}),
        )
        records.append(pipeline.process(record))
    batches = [make_batch(records[start : start + 100]) for start in range(0, len(records), 100)]
    for batch in batches:
        enqueue(batch)
    return batches


def test_reference_flow_gives_the_same_batches_and_queue_rows(tmp_path) -> None:
    lines = readings(1050)

    # Seed-style pure Python.
    seed_db = tmp_path / "seed.db"
    ref.queue_init(seed_db)
    seed_pipeline = ref.TransformPipeline().add(ref.add_metadata(LABELS))

    def seed_batch(records):
        body = ref.batch_json(records)
        data = ref.compress(body, "gzip")
        return {
            "batch_id": f"gateway-1-{len(records)}-{records[0].record_id}",
            "record_count": len(records),
            "data": data,
            "checksum": ref.sha256(data),
            "created_at": datetime(2026, 1, 1).isoformat(),
        }

    def seed_enqueue(batch):
        ref.queue_enqueue(
            seed_db, batch["batch_id"], "gateway-1", batch["data"], "gzip", batch["checksum"], batch["created_at"]
        )

    seed_batches = run_flow(lines, ref.DataRecord, seed_pipeline, seed_batch, seed_enqueue)

    # edgepipe's drop-in classes: the same flow, other imports.
    ours_db = tmp_path / "ours.db"
    processor = BatchProcessor(device_id="gateway-1", max_batch_size=100, compression="gzip")
    with PersistentDeliveryQueue(str(ours_db)) as queue:
        ours_batches = run_flow(
            lines,
            DataRecord,
            TransformPipeline().add(add_metadata(LABELS)),
            processor.create_batch,
            queue.enqueue,
        )

    # Batches: the same records, in the same JSON, with the checksum of what was sent.
    assert len(ours_batches) == len(seed_batches) == 11
    for ours, seed in zip(ours_batches, seed_batches):
        assert ours.record_count == seed["record_count"]
        assert gzip.decompress(ours.compressed_data) == gzip.decompress(seed["data"])
        assert ours.checksum == ref.sha256(ours.compressed_data)
        assert ours.original_size_bytes == len(gzip.decompress(seed["data"]))
    assert sum(batch.record_count for batch in ours_batches) == 1050

    # Queue rows, read with the seed's own query from each file.
    seed_rows = ref.queue_pending(seed_db, limit=100)
    ours_rows = ref.queue_pending(ours_db, limit=100)
    assert len(ours_rows) == len(seed_rows) == 11

    def comparable(row):
        body = json.loads(gzip.decompress(row["batch_data"]))
        return (
            row["device_id"],
            row["compression"],
            row["status"],
            row["attempts"],
            row["checksum"] == ref.sha256(row["batch_data"]),
            len(body),
            body,
        )

    assert [comparable(row) for row in ours_rows] == [comparable(row) for row in seed_rows]
    assert [row["batch_id"] for row in ours_rows] == [batch.batch_id for batch in ours_batches]
