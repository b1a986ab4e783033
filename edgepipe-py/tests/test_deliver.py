"""Sinks and delivery against real servers on loopback: edgepipe's Receiver hosted in
an http.server thread, the seed's FastAPI service under uvicorn, and Mosquitto."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from queue import SimpleQueue

import pytest

import edgepipe
from conftest import API_KEY, IngestServer, workload
from edgepipe import Delivery, DirectorySink, HttpSink, MqttSink, Queue, RetryPolicy, SendError

NOW = 1767225600.0
REPO = Path(__file__).resolve().parents[2]
# Bounds waits that only turn a hang into a failure; nothing is timed.
HANG = 30.0


def batches(count: int, source: str = "gw-1", **options) -> list:
    return edgepipe.encode_jsonl(workload(count * 10), source, max_records=10, created_at=NOW, **options)


def test_directory_sink_writes_each_batch_once(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path / "out")
    [batch] = batches(1)

    assert sink.send(batch) == "stored"
    assert sink.send(batch) == "duplicate"
    written = tmp_path / "out" / "gw-1" / f"{batch.batch_id}.json.gz"
    assert written.read_bytes() == batch.payload
    assert sink.describe() == f"dir:{tmp_path / 'out'}"


def test_http_sink_stores_then_recognises_a_retry(ingest_server: IngestServer) -> None:
    sink = HttpSink(ingest_server.url, API_KEY)
    [batch] = batches(1)

    assert sink.send(batch) == "stored"
    assert sink.send(batch) == "duplicate"
    assert ingest_server.receiver.records() == batch.records()


def test_http_sink_failures_say_whether_to_retry(ingest_server: IngestServer) -> None:
    [batch] = batches(1)
    with pytest.raises(SendError, match="^permanent: ") as raised:
        HttpSink(ingest_server.url, "wrong-key").send(batch)
    assert (raised.value.retryable, raised.value.retry_after) == (False, None)

    ingest_server.fail_next = 1
    with pytest.raises(SendError, match="^retryable: ") as raised:
        HttpSink(ingest_server.url, API_KEY).send(batch)
    assert (raised.value.retryable, raised.value.retry_after) == (True, 0.0)

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    with pytest.raises(SendError, match="^unreachable: ") as raised:
        HttpSink(f"http://127.0.0.1:{closed_port}", API_KEY, connect_timeout=5.0).send(batch)
    assert raised.value.retryable is True


def test_stepped_delivery_drains_the_queue_into_the_receiver(ingest_server: IngestServer, tmp_path: Path) -> None:
    made = batches(6)
    with Queue.durable(tmp_path / "queue") as queue:
        queue.enqueue_all(made)
        delivery = Delivery(queue, HttpSink(ingest_server.url, API_KEY), seed=7)

        assert delivery.step(now=NOW) == {"step": "sent", "duplicate": False}
        metrics = delivery.drain(now=NOW)

        assert (metrics["batches_sent"], metrics["records_sent"], metrics["retries"]) == (6, 60, 0)
        assert len(queue) == 0
        assert delivery.step(now=NOW) == {"step": "idle"}
    expected = [record for batch in made for record in batch.records()]
    assert sorted(ingest_server.receiver.records(), key=lambda r: r["record_id"]) == sorted(
        expected, key=lambda r: r["record_id"]
    )


def test_an_outage_is_retried_and_nothing_is_lost(ingest_server: IngestServer) -> None:
    made = batches(3)
    with Queue.memory() as queue:
        queue.enqueue_all(made)
        delivery = Delivery(queue, HttpSink(ingest_server.url, API_KEY), retry=RetryPolicy(base_delay=1.0), seed=1)
        ingest_server.fail_next = 1

        step = delivery.step(now=NOW)
        assert step["step"] == "retry" and "503" in step["reason"]
        assert NOW <= step["retry_at"] <= NOW + 1.0
        # Per-source order: nothing of gw-1 goes while its first batch waits.
        assert delivery.drain(now=NOW)["batches_sent"] == 0
        metrics = delivery.drain(now=NOW + 2)
        assert (metrics["batches_sent"], metrics["retries"]) == (3, 1)
        assert len(queue) == 0
    assert len(ingest_server.receiver.records()) == 30


def test_delivery_thread_as_context_manager(ingest_server: IngestServer, tmp_path: Path) -> None:
    made = batches(8)
    with Queue.durable(tmp_path / "queue") as queue:
        with Delivery(queue, HttpSink(ingest_server.url, API_KEY), idle_wait=0.05) as delivery:
            assert delivery.running
            queue.enqueue_all(made)
            delivery.notify()
            assert ingest_server.wait_for_batches(8, timeout=HANG)
        assert not delivery.running
        metrics = delivery.metrics()
        assert metrics["batches_sent"] == 8
        assert delivery.stop() == metrics
        assert len(queue) == 0
        with pytest.raises(ValueError, match="own thread"):
            delivery.step()
    assert len(ingest_server.receiver.records()) == 80


def test_stopping_leaves_unsent_batches_queued(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    made = batches(3)
    with Queue.durable(tmp_path / "queue") as queue:
        queue.enqueue_all(made)
        with Delivery(queue, HttpSink(f"http://127.0.0.1:{closed_port}", API_KEY), idle_wait=0.05):
            pass
    with Queue.durable(tmp_path / "queue") as queue:
        assert len(queue) == 3


def test_a_sink_belongs_to_one_delivery(ingest_server: IngestServer) -> None:
    sink = HttpSink(ingest_server.url, API_KEY)
    with Queue.memory() as queue:
        Delivery(queue, sink)
        with pytest.raises(ValueError, match="belongs to a Delivery"):
            Delivery(queue, sink)
    with pytest.raises(ValueError, match="belongs to a Delivery"):
        sink.send(batches(1)[0])
    with pytest.raises(TypeError, match="sink must be"):
        Delivery(Queue.memory(), "http://example.invalid")  # type: ignore[arg-type]


def test_retry_policy_backs_off_exponentially() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=300.0)
    assert [policy.ceiling(n) for n in (1, 2, 4, 30)] == [1.0, 2.0, 8.0, 300.0]
    assert 0.0 <= policy.delay(4, seed=3) <= 8.0
    assert policy.delay(4, seed=3) == policy.delay(4, seed=3)
    assert policy.delay(4, retry_after=60.0, seed=3) >= 60.0
    with pytest.raises(ValueError, match="base_delay"):
        RetryPolicy(base_delay=-1.0)


# --- the seed's FastAPI service ------------------------------------------------


@pytest.fixture
def seed_server():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        pytest.fail(
            "the seed's ingestion service needs fastapi and uvicorn: "
            "pip install -r edgepipe-core/tests/fixtures/seed/requirements.txt"
        )
    fixture = REPO / "edgepipe-core" / "tests" / "fixtures" / "seed"
    process = subprocess.Popen(
        [sys.executable, str(fixture / "serve.py")],
        cwd=fixture,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        process.wait(timeout=HANG)
        process.stdout.close()


def test_http_sink_works_against_the_seeds_service(seed_server: str) -> None:
    [batch] = batches(1)
    # The one key the seed's service accepts.
    sink = HttpSink(seed_server, "valid-api-key", seed_compatible=True)

    assert sink.send(batch) == "stored"
    with urllib.request.urlopen(f"{seed_server}/_test/stored", timeout=HANG) as response:
        stored = json.load(response)
    [entry] = stored["stored"]
    assert entry["batch_id"] == batch.batch_id
    assert entry["records"] == batch.records()

    [lz4] = batches(1, compression="lz4")
    with pytest.raises(SendError, match="permanent"):
        sink.send(lz4)


# --- Mosquitto -----------------------------------------------------------------


def mosquitto_binary() -> str:
    found = os.environ.get("MOSQUITTO") or shutil.which("mosquitto") or shutil.which(
        "mosquitto", path="/usr/sbin:/usr/local/sbin:/sbin"
    )
    if not found or not shutil.which("mosquitto_sub"):
        pytest.fail("mosquitto not found: apt-get install mosquitto mosquitto-clients")
    return found


@pytest.fixture
def broker():
    binary = mosquitto_binary()
    with tempfile.TemporaryDirectory() as directory, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        config = Path(directory) / "mosquitto.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + HANG
            while True:  # readiness: the listener accepts (bounded wait, not a timing check)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert process.poll() is None, "mosquitto exited at start-up"
                    assert time.monotonic() < deadline, "mosquitto did not listen"
                    time.sleep(0.01)
            yield port
        finally:
            process.kill()
            process.wait()


def test_mqtt_sink_publishes_each_batch_at_qos_1(broker: int) -> None:
    made = batches(2)
    # One line per message: the topic and the payload (the batch's binary form) in hex.
    command = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker), "-t", "plant/#", "-q", "1", "-d", "-F", "%t %x"]
    # stdbuf: mosquitto_sub's stdout is a pipe here, which stdio would block-buffer.
    subscriber = subprocess.Popen(["stdbuf", "-oL", *command], stdout=subprocess.PIPE, text=True)
    lines: SimpleQueue = SimpleQueue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in subscriber.stdout], daemon=True)
    reader.start()

    def next_line(accept) -> str:
        while True:  # bounded: a hang becomes a failure
            line = lines.get(timeout=HANG).rstrip("\n")
            if accept(line):
                return line

    try:
        # -d prints the SUBACK: from then on the broker routes publishes to it.
        next_line(lambda line: "SUBACK" in line)
        sink = MqttSink("127.0.0.1", broker, "gw-1-test", topic="plant/{source}/{batch_id}")
        assert [sink.send(batch) for batch in made] == ["stored", "stored"]
        messages = [next_line(lambda line: line.startswith("plant/")).split(" ") for _ in made]
    finally:
        subscriber.kill()
        subscriber.wait()
        reader.join()
        subscriber.stdout.close()
    assert [topic for topic, _ in messages] == [f"plant/gw-1/{b.batch_id}" for b in made]
    received = [edgepipe.Batch.from_bytes(bytes.fromhex(payload)) for _, payload in messages]
    assert [batch.records() for batch in received] == [batch.records() for batch in made]
    assert sink.describe() == f"mqtt://127.0.0.1:{broker}/plant/{{source}}/{{batch_id}}"
