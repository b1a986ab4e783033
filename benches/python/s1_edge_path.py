"""The seed's S1 edge path, measured: seed-style pure Python against edgepipe's
drop-in classes, in one run, on the shared workload.

S1 (shared/bench/README.md): parse a JSON line → DataRecord → add_metadata →
batch of 100 → JSON → gzip-6 → sha256 → SQLite enqueue (a commit per batch).
The same loop (`edge_path` below) runs with each implementation; only the
classes it is given differ, as a collector that switches changes only its imports:

1. seed-style pure Python: benches/seed/{edge_collector,batching,delivery}.py
   (the seed's classes) with the seed's add_metadata/TransformPipeline;
2. edgepipe's drop-in layer: edgepipe.edge_collector, .transforms, .batching,
   .delivery;
3. edgepipe's native bulk API: `Pipeline.encode_jsonl` + `Queue.enqueue_all`,
   on one thread and on every core;

and, for the bound, the loop's own Python (json.loads + datetime.fromisoformat
per line), which a drop-in cannot take over: its rate over the seed's is the
most any drop-in layer can reach on this loop.

    python3 ../shared/bench/workload.py -n 200000 -o /tmp/workload.jsonl
    python benches/python/s1_edge_path.py --input /tmp/workload.jsonl [--records N] \
        [--queue-dir DIR] [--passes P]

`--queue-dir` is where both SQLite queue files go (the same disk for both, e.g. a
directory on ext4, or /dev/shm for tmpfs); the default is a temporary directory
under the current directory. Prints one JSON object per path and pass, and a
summary: the best records/s of each path and each one's ratio to (1). Needs the edgepipe package
(maturin develop --release), and lz4 and aiohttp, which the seed's modules import.
"""

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_DIR = os.path.join(HERE, "..", "seed")

BATCH_SIZE = 100
LABELS = {"region": "us-west", "site": "factory-1"}


def edge_path(lines, record_class, process, processor, queue):
    """The S1 loop, as a seed-style collector writes it. Returns records enqueued."""
    batch = []
    enqueued = 0
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
        batch.append(process(record))
        if len(batch) == BATCH_SIZE:
            queue.enqueue(processor.create_batch(batch))
            enqueued += len(batch)
            batch = []
    if batch:
        queue.enqueue(processor.create_batch(batch))
        enqueued += len(batch)
    return enqueued


# --- (1) seed-style pure Python ---------------------------------------------------


def seed_add_metadata(metadata):
    """The seed's transforms.add_metadata."""

    def transform(record):
        return replace(record, metadata={**record.metadata, **metadata})

    return transform


class SeedTransformPipeline:
    """The seed's transforms.TransformPipeline."""

    def __init__(self):
        self.transforms = []

    def add(self, transform):
        self.transforms.append(transform)
        return self

    def process(self, record):
        result = record
        for transform in self.transforms:
            result = transform(result)
        return result


def setup_seed():
    sys.path.insert(0, SEED_DIR)
    try:
        from batching import BatchProcessor
        from delivery import PersistentDeliveryQueue
        from edge_collector import DataRecord
    finally:
        sys.path.remove(SEED_DIR)

    def run(lines, queue_path):
        pipeline = SeedTransformPipeline().add(seed_add_metadata(LABELS))
        processor = BatchProcessor(device_id="gateway-1", max_batch_size=BATCH_SIZE, compression="gzip")
        queue = PersistentDeliveryQueue(db_path=queue_path)
        return edge_path(lines, DataRecord, pipeline.process, processor, queue)

    return run


# --- (2) edgepipe's drop-in classes ------------------------------------------------


def setup_dropin():
    from edgepipe.batching import BatchProcessor
    from edgepipe.delivery import PersistentDeliveryQueue
    from edgepipe.edge_collector import DataRecord
    from edgepipe.transforms import TransformPipeline, add_metadata

    def run(lines, queue_path):
        pipeline = TransformPipeline().add(add_metadata(LABELS))
        processor = BatchProcessor(device_id="gateway-1", max_batch_size=BATCH_SIZE, compression="gzip")
        with PersistentDeliveryQueue(db_path=queue_path) as queue:
            return edge_path(lines, DataRecord, pipeline.process, processor, queue)

    return run


# --- (3) edgepipe's native bulk API --------------------------------------------------


def setup_native_bulk(threads=1):
    """The native layer's bulk S1 path: the lines as one JSON Lines buffer → the
    pipeline → 100-record json batches, gzip-6, sha256 (`Pipeline.encode_jsonl`, one
    call, GIL released, on `threads` threads) → the durable queue (`enqueue_all`,
    one fdatasync for all of them, where the seed commits each batch)."""
    import edgepipe

    def run(lines, queue_path):
        data = "".join(lines).encode("utf-8")
        pipeline = edgepipe.Pipeline.from_dict(
            {"transforms": [{"type": "add_metadata", "metadata": LABELS}]}
        )
        with edgepipe.Queue.durable(queue_path) as queue:
            result = pipeline.encode_jsonl(data, "gateway-1", threads=threads)
            if result.errors:
                sys.exit(f"the bulk path refused lines: {result.errors[:3]}")
            queue.enqueue_all(result.batches)
            return sum(batch.record_count for batch in result.batches)

    return run


def setup_native_bulk_all_cores():
    return setup_native_bulk(threads=os.cpu_count() or 1)


# --- the floor: the part of the loop a drop-in cannot take over ----------------------


def setup_parse_floor():
    """The collector's own per-line Python, which stays whatever classes it is
    given: json.loads and datetime.fromisoformat. No implementation of the
    classes can make the S1 loop faster than this."""

    def run(lines, queue_path):
        count = 0
        for line in lines:
            raw = json.loads(line)
            datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00"))
            count += 1
        return count

    return run


PATHS = [
    ("seed_python", setup_seed),
    ("edgepipe_dropin", setup_dropin),
    ("edgepipe_native_bulk", setup_native_bulk),
    ("edgepipe_native_bulk_all_cores", setup_native_bulk_all_cores),
    ("python_parse_floor", setup_parse_floor),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="the shared workload (JSON Lines)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--queue-dir", default=None, help="where the queue files go (same disk for all)")
    parser.add_argument("--passes", type=int, default=1, help="alternating passes of every path")
    args = parser.parse_args()

    with open(args.input, encoding="utf-8") as source:
        lines = [line for _, line in zip(range(args.records), source)]
    work = tempfile.mkdtemp(prefix="s1-edge-path-", dir=args.queue_dir or os.getcwd())
    # Best wall-clock rate, and best rate per CPU-second of this process (the
    # machine is shared: neighbours move the first far more than the second; the
    # queue's disk syncs show in the first only).
    best, best_cpu = {}, {}
    # Imports and set-up are outside the timed region.
    runners = [(name, setup()) for name, setup in PATHS]
    try:
        for number in range(args.passes):
            for name, run in runners:
                if run is None:
                    continue
                queue_path = os.path.join(work, f"{name}-{number}.db")
                gc.collect()
                started, cpu_started = time.perf_counter(), time.process_time()
                enqueued = run(lines, queue_path)
                seconds = time.perf_counter() - started
                cpu_seconds = time.process_time() - cpu_started
                if enqueued != len(lines):
                    sys.exit(f"{name} enqueued {enqueued} of {len(lines)} records")
                rate, cpu_rate = enqueued / seconds, enqueued / cpu_seconds
                best[name] = max(best.get(name, 0.0), rate)
                best_cpu[name] = max(best_cpu.get(name, 0.0), cpu_rate)
                print(json.dumps({"pass": number, "path": name, "records": enqueued,
                                  "seconds": round(seconds, 3), "records_per_second": round(rate),
                                  "cpu_seconds": round(cpu_seconds, 3),
                                  "records_per_cpu_second": round(cpu_rate)}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {"queue_dir": os.path.dirname(work) + "/", "records": len(lines)}
    for label, rates in (("records_per_second", best), ("records_per_cpu_second", best_cpu)):
        baseline = rates.get("seed_python")
        for name, rate in rates.items():
            summary[f"{name}_{label}"] = round(rate)
            if baseline and name != "seed_python":
                summary[f"{name}_vs_seed_{label}"] = round(rate / baseline, 2)
    # python_parse_floor_vs_seed is the most any drop-in can reach on this loop.
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
