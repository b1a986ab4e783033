"""The edge side end to end: bulk S1 path into the durable queue, then delivery
over HTTP to an ingest Receiver hosted by Python's own http.server."""

import http.server
import shutil
import tempfile
import threading
from pathlib import Path

import edgepipe

work = Path(tempfile.mkdtemp())

# The cloud side: edgepipe's Receiver behind any Python web server.
receiver = edgepipe.Receiver(work / "cloud", ["secret-key"])
answered = threading.Condition()  # notified after every request


class Ingest(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status, answer = receiver.receive(self.headers, body)
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", str(receiver.retry_after_seconds))
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())
        with answered:
            answered.notify_all()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"

readings = b"".join(
    b'{"record_id": "r%d", "device_id": "edge-%03d", "timestamp": %d,'
    b' "data_type": "sensors", "payload": {"temperature": %.1f}}\n' % (n, n % 4, 1767225600 + n, 20 + n % 9)
    for n in range(1000)
)

# The bulk S1 path: two calls, each with the GIL released. Records are parsed once,
# transformed, and batched as the seed does (json, gzip-6, 100 records, sha256).
pipeline = edgepipe.Pipeline.from_dict({"transforms": [{"type": "add_metadata", "metadata": {"site": "f1"}}]})
with edgepipe.Queue.durable(work / "queue") as queue:
    batches = pipeline.encode_jsonl(readings, "gw-1").batches
    queue.enqueue_all(batches)  # one fdatasync for all ten
    print(len(queue), "batches queued")

    # Delivery on a thread of its own; leaving the block stops it after the send in
    # progress (anything unsent stays queued for the next run).
    with edgepipe.Delivery(queue, edgepipe.HttpSink(url, "secret-key")) as delivery:
        with answered:
            answered.wait_for(lambda: receiver.metrics()["batches_stored"] == len(batches), timeout=60)
    print(delivery.metrics()["records_sent"], "records sent,", len(queue), "left")

server.shutdown()
stored = receiver.records()
receiver.close()
print(len(stored), "records in the lake under", work / "cloud" / "lake")
assert len(stored) == 1000 and stored[0]["metadata"] == {"site": "f1"}
shutil.rmtree(work)
