"""The seed's delivery path, measured: DataDeliveryService → the seed's FastAPI service.

edge_collector.py, batching.py and delivery.py beside this file are the seed's
code (shared/seeds/000) byte for byte; the ingestion service is the one the HTTP
sink's tests run (edgepipe-core/tests/fixtures/seed). Batches of 100 records,
gzip-6 JSON, are made first; then the clock runs while each is delivered the
seed's way, `await service.deliver(batch)`: an SQLite enqueue (commit per
batch), a new aiohttp session and POST, and the SQLite status updates.

    python benches/seed/delivery_bench.py --input workload.jsonl [--records N]

Prints one JSON object: records, batches, seconds, records_per_second.
Needs fastapi, uvicorn, aiohttp and lz4 (benches/delivery-vs-seed.sh installs them).
"""

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_SERVER = os.path.join(HERE, "..", "..", "edgepipe-core", "tests", "fixtures", "seed", "serve.py")
sys.path.insert(0, HERE)

from batching import BatchProcessor  # noqa: E402
from delivery import DataDeliveryService, PersistentDeliveryQueue  # noqa: E402
from edge_collector import DataRecord  # noqa: E402


def read_records(path, limit):
    records = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if len(records) >= limit:
                break
            raw = json.loads(line)
            records.append(
                DataRecord(
                    record_id=raw["record_id"],
                    device_id=raw["device_id"],
                    timestamp=datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00")),
                    data_type=raw["data_type"],
                    payload=raw["payload"],
                    metadata=raw.get("metadata", {}),
                )
            )
    return records


async def deliver_all(service, batches):
    delivered = 0
    for batch in batches:
        if await service.deliver(batch):
            delivered += 1
    return delivered


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    # The seed logs every delivery at INFO and the server prints each batch: keep
    # both out of the figure's output.
    logging.disable(logging.INFO)

    records = read_records(args.input, args.records)
    processor = BatchProcessor(device_id="gateway-1", max_batch_size=100, compression="gzip")
    batches = [processor.create_batch(chunk) for chunk in processor.split_records(records)]

    server = subprocess.Popen(
        [sys.executable, SEED_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as work:
            queue = PersistentDeliveryQueue(db_path=os.path.join(work, "delivery_queue.db"))
            service = DataDeliveryService(
                endpoint=f"http://127.0.0.1:{port}", api_key="valid-api-key", queue=queue
            )
            started = time.perf_counter()
            delivered = asyncio.run(deliver_all(service, batches))
            seconds = time.perf_counter() - started
    finally:
        server.stdin.close()
        server.wait()
    if delivered != len(batches):
        sys.exit(f"only {delivered} of {len(batches)} batches were delivered")
    print(
        json.dumps(
            {
                "path": "seed DataDeliveryService -> seed FastAPI",
                "records": len(records),
                "batches": len(batches),
                "seconds": round(seconds, 3),
                "records_per_second": round(len(records) / seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
