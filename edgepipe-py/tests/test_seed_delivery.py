"""edgepipe.delivery: the seed's queue table both ways, and delivery to the seed's
own FastAPI service on loopback (edgepipe-core/tests/fixtures/seed/serve.py)."""

import asyncio
import gzip
import json
import socket
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import seed_reference as ref
from edgepipe import UnsupportedError
from edgepipe.batching import BatchProcessor, DataBatch
from edgepipe.delivery import (
    DataDeliveryService,
    DeliveryAttempt,
    DeliveryStatus,
    PersistentDeliveryQueue,
)
from edgepipe.edge_collector import DataRecord

SEED_SERVICE = Path(__file__).resolve().parents[2] / "edgepipe-core/tests/fixtures/seed/serve.py"
API_KEY = "valid-api-key"  # what the seed's validate_api_key accepts


class SeedServer:
    """The seed's ingestion service, started for real on a loopback port."""

    def __init__(self, port: int = 0):
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            pytest.fail(
                "the seed's ingestion service needs fastapi and uvicorn: pip install -r "
                "edgepipe-core/tests/fixtures/seed/requirements.txt (scripts/test-all does)"
            )
        self.process = subprocess.Popen(
            [sys.executable, str(SEED_SERVICE), str(port)],
            cwd=SEED_SERVICE.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        # The socket listens before the port is printed.
        self.port = int(self.process.stdout.readline())
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stored(self) -> dict:
        with urllib.request.urlopen(f"{self.endpoint}/_test/stored", timeout=30) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def server():
    running = SeedServer()
    yield running
    running.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_records(count: int, start: int = 0) -> list:
    return [
        DataRecord(
            record_id=f"rec-{index}",
            device_id="dev-0001",
            timestamp=datetime(2026, 1, 1) + timedelta(seconds=index),
            data_type="sensors",
            payload={"temperature": 20 + index / 10, "humidity": 50.5},
        )
        for index in range(start, start + count)
    ]


def make_batches(count: int, size: int = 5) -> list:
    processor = BatchProcessor("gateway-1", compression="gzip")
    return [processor.create_batch(make_records(size, start=n * size)) for n in range(count)]


def stored_record_ids(server: SeedServer) -> list:
    return [r["record_id"] for batch in server.stored()["stored"] for r in batch["records"]]


def test_seed_names_are_there() -> None:
    assert [status.value for status in DeliveryStatus] == ["pending", "sending", "delivered", "failed"]
    attempt = DeliveryAttempt(1, datetime(2026, 1, 1), 200, None)
    assert attempt.status_code == 200


def test_rows_the_seed_wrote_are_read_delivered_and_acked(tmp_path, server) -> None:
    path = tmp_path / "delivery_queue.db"
    ref.queue_init(path)
    seed_rows = []
    for n in range(3):
        batch_records = make_records(4, start=10 * n)
        body = ref.batch_json(batch_records)
        data = ref.compress(body, "gzip")
        created_at = (datetime(2026, 1, 1) + timedelta(minutes=n)).isoformat()
        ref.queue_enqueue(path, f"seed-{n}", "edge-001", data, "gzip", ref.sha256(data), created_at)
        seed_rows.append((f"seed-{n}", data, created_at, [r.record_id for r in batch_records]))

    with PersistentDeliveryQueue(str(path)) as queue:
        pending = queue.get_pending(limit=10)
        assert [(row["batch_id"], row["batch_data"], row["created_at"]) for row in pending] == [
            (batch_id, data, created_at) for batch_id, data, created_at, _ in seed_rows
        ]
        assert all(
            row["status"] == "pending" and row["attempts"] == 0 and row["compression"] == "gzip"
            for row in pending
        )
        service = DataDeliveryService(server.endpoint, API_KEY, queue, base_delay=0.0)
        asyncio.run(service.process_queue())
        assert queue.get_pending() == []
        assert queue.stats()["acked"] == 3

    assert stored_record_ids(server) == [rid for *_, ids in seed_rows for rid in ids]
    assert set(server.stored()["ingested_batches"]) == {"seed-0", "seed-1", "seed-2"}
    # Delivered rows are gone for the seed's code too.
    assert ref.queue_pending(path) == []


def test_rows_it_writes_are_read_by_the_seeds_code(tmp_path) -> None:
    path = tmp_path / "delivery_queue.db"
    batches = make_batches(3)
    with PersistentDeliveryQueue(str(path)) as queue:
        for batch in batches:
            queue.enqueue(batch)
        queue.enqueue(batches[0])  # the same batch again is stored once

    rows = ref.queue_pending(path)
    assert [row["batch_id"] for row in rows] == [batch.batch_id for batch in batches]
    for row, batch in zip(rows, batches):
        assert row["device_id"] == "gateway-1"
        assert row["batch_data"] == batch.compressed_data
        assert row["checksum"] == batch.checksum == ref.sha256(row["batch_data"])
        assert row["compression"] == "gzip"
        assert (row["status"], row["attempts"]) == ("pending", 0)
        assert row["created_at"] == batch.created_at.isoformat()
        assert json.loads(gzip.decompress(row["batch_data"])) == BatchProcessor.decompress_batch(batch)

    # The seed marks one delivered; edgepipe then lists only the other two.
    ref.queue_mark_delivered(path, batches[1].batch_id)
    with PersistentDeliveryQueue(str(path)) as queue:
        assert [row["batch_id"] for row in queue.get_pending()] == [
            batches[0].batch_id,
            batches[2].batch_id,
        ]


def test_deliver_posts_to_the_seeds_service(tmp_path, server) -> None:
    batches = make_batches(3)
    with PersistentDeliveryQueue(str(tmp_path / "q.db")) as queue:
        service = DataDeliveryService(server.endpoint, API_KEY, queue)

        async def run():
            return [await service.deliver(batch) for batch in batches]

        assert asyncio.run(run()) == [True, True, True]
        # A retry of a delivered batch is recognised by its id, and still a success.
        assert asyncio.run(service.deliver(batches[0])) is True
        assert queue.get_pending() == []

    assert stored_record_ids(server) == [f"rec-{n}" for n in range(15)]
    assert sorted(server.stored()["ingested_batches"]) == sorted(b.batch_id for b in batches)


def test_a_server_down_then_up_gets_every_batch_once(tmp_path) -> None:
    port = free_port()
    batches = make_batches(4)
    with PersistentDeliveryQueue(str(tmp_path / "q.db")) as queue:
        service = DataDeliveryService(f"http://127.0.0.1:{port}", API_KEY, queue, base_delay=0.0)

        async def deliver_all():
            return [await service.deliver(batch) for batch in batches]

        assert asyncio.run(deliver_all()) == [False] * 4
        pending = queue.get_pending()
        assert [(row["batch_id"], row["status"], row["attempts"]) for row in pending] == [
            (batch.batch_id, "failed", 1) for batch in batches
        ]
        asyncio.run(service.process_queue())  # still down: a second failed attempt
        assert [row["attempts"] for row in queue.get_pending()] == [2] * 4

        server = SeedServer(port)
        try:
            asyncio.run(service.process_queue())
            assert queue.get_pending() == []
            assert stored_record_ids(server) == [f"rec-{n}" for n in range(20)]
        finally:
            server.stop()


def test_a_rejected_batch_is_dead_lettered_not_retried(tmp_path, server) -> None:
    good, bad_body = make_batches(2)
    bad_body = DataBatch(
        batch_id="not-gzip",
        device_id="gateway-1",
        created_at=datetime(2026, 1, 1),
        record_count=1,
        compressed_data=b"this is not gzip",
        compression="gzip",
        checksum=ref.sha256(b"this is not gzip"),
        size_bytes=16,
        original_size_bytes=16,
    )
    with PersistentDeliveryQueue(str(tmp_path / "q.db")) as queue:
        wrong_key = DataDeliveryService(server.endpoint, "wrong-key", queue, base_delay=0.0)
        assert asyncio.run(wrong_key.deliver(good)) is False  # 401
        service = DataDeliveryService(server.endpoint, API_KEY, queue, base_delay=0.0)
        assert asyncio.run(service.deliver(bad_body)) is False  # 400 Invalid gzip data
        assert queue.get_pending() == []
        assert queue.stats()["dead"] == 2
        asyncio.run(service.process_queue())
    assert server.stored()["stored"] == []


def test_an_lz4_batch_is_refused_before_it_is_sent(tmp_path, server) -> None:
    batch = BatchProcessor("g", compression="lz4").create_batch(make_records(2))
    with PersistentDeliveryQueue(str(tmp_path / "q.db")) as queue:
        service = DataDeliveryService(server.endpoint, API_KEY, queue)
        assert asyncio.run(service.deliver(batch)) is False
        assert queue.stats()["dead"] == 1
    assert server.stored()["stored"] == []


def test_the_queue_refuses_bad_input_with_clear_errors(tmp_path) -> None:
    with PersistentDeliveryQueue(str(tmp_path / "q.db")) as queue:
        batch = make_batches(1)[0]
        with pytest.raises(TypeError, match="created_at"):
            queue.enqueue(DataBatch(**{**batch.__dict__, "created_at": "yesterday"}))
        with pytest.raises(TypeError, match="batch_id"):
            queue.enqueue(DataBatch(**{**batch.__dict__, "batch_id": None}))
        with pytest.raises(UnsupportedError, match="brotli"):
            queue.enqueue(DataBatch(**{**batch.__dict__, "compression": "brotli"}))
        with pytest.raises(TypeError, match="limit"):
            queue.get_pending(limit="10")
    with pytest.raises(RuntimeError, match="closed"):
        queue.get_pending()
    with pytest.raises(TypeError, match="queue"):
        DataDeliveryService("http://127.0.0.1:1", API_KEY, queue=None)


def test_the_delivery_loop_drains_the_queue(tmp_path, server) -> None:
    batches = make_batches(3)
    with PersistentDeliveryQueue(str(tmp_path / "q.db")) as queue:
        for batch in batches:
            queue.enqueue(batch)

        class Observed(DataDeliveryService):
            """Signals when a pass of the loop is over, so the test waits on that."""

            async def process_queue(self):
                await super().process_queue()
                self.passes.set()

        async def run():
            service = Observed(server.endpoint, API_KEY, queue)
            service.passes = asyncio.Event()
            loop = asyncio.create_task(service.run_delivery_loop(interval=3600))
            await service.passes.wait()
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop

        asyncio.run(run())
        assert queue.get_pending() == []
    assert stored_record_ids(server) == [f"rec-{n}" for n in range(15)]
