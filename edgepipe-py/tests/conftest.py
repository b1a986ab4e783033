"""Shared helpers: records in the seed's shape, and a real HTTP server on loopback
hosting edgepipe's ingest Receiver (the sink tests' cloud side)."""

import datetime
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

import edgepipe

API_KEY = "test-key"
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def reading(record_id: str, second: float = 0.0, device: str = "dev-0001", **payload: object) -> dict:
    """One record as the seed's `DataRecord.to_dict()` gives it, `second`s after 2026-01-01."""
    timestamp = EPOCH + datetime.timedelta(seconds=second)
    return {
        "record_id": record_id,
        "device_id": device,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "data_type": "sensors",
        "payload": payload,
        "metadata": {},
    }


def jsonl(records: list) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def workload(count: int, devices: int = 5) -> bytes:
    """`count` valid readings spread over `devices`, one a second per device."""
    return jsonl(
        [
            reading(
                f"r{index}",
                second=float(index // devices),
                device=f"dev-{index % devices:04d}",
                temperature=20.0 + (index % 17) * 0.5,
                humidity=40 + index % 9,
            )
            for index in range(count)
        ]
    )


class IngestServer:
    """A ThreadingHTTPServer on 127.0.0.1 answering `POST /api/ingest` with a Receiver."""

    def __init__(self, receiver: edgepipe.Receiver) -> None:
        self.receiver = receiver
        self.requests = 0
        self.stored = threading.Condition()
        self.fail_next = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.stored:
                    server.requests += 1
                    failing = server.fail_next > 0
                    server.fail_next -= int(failing)
                if self.path != "/api/ingest":
                    status, answer = 404, '{"detail":"Not Found"}'
                elif failing:
                    status, answer = 503, '{"detail":"test outage"}'
                else:
                    status, answer = server.receiver.receive(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(answer.encode())
                with server.stored:
                    server.stored.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for_batches(self, count: int, timeout: float = 30.0) -> bool:
        """Waits (bounded: a hang becomes a failure) until `count` batches are stored."""

        def stored() -> bool:
            metrics = self.receiver.metrics()
            return metrics["batches_stored"] + metrics["batches_duplicate"] >= count

        with self.stored:
            return self.stored.wait_for(stored, timeout=timeout)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def ingest_server() -> Iterator[IngestServer]:
    with edgepipe.Receiver.in_memory([API_KEY]) as receiver:
        server = IngestServer(receiver)
        try:
            yield server
        finally:
            server.close()
