"""Bulk calls release the GIL: other Python threads run while the core works, and
calls from several threads give what the same calls give one after another.

The proof uses no clock: the interpreter's switch interval is set far beyond the
test's length, so a Python thread can only run when the thread holding the GIL
lets it go. A counter thread that moves during a bulk call shows that call let go.
"""

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import edgepipe
from conftest import workload

DATA = workload(20_000)
PIPELINE_CONFIG = {"transforms": [{"type": "add_metadata", "metadata": {"site": "f1"}}]}


class Counter:
    """A Python thread counting as fast as the GIL lets it (it yields the GIL on each turn)."""

    def __init__(self) -> None:
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.count += 1
            # sched_yield runs with the GIL released: the main thread gets the GIL
            # back whenever it asks, whatever the switch interval.
            os.sched_yield()


@pytest.fixture
def counter() -> Iterator[Counter]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    counter = Counter()
    counter.thread.start()
    try:
        yield counter
    finally:
        counter.stop.set()
        counter.thread.join()
        sys.setswitchinterval(interval)


def moved_during(counter: Counter, call: Callable[[], object]) -> bool:
    """Whether the counter thread ran while `call` was inside Rust (tried a few times:
    a call that ends before the counter thread is scheduled proves nothing)."""
    for _ in range(50):
        before = counter.count
        call()
        if counter.count != before:
            return True
    return False


def test_the_proof_sees_a_call_that_keeps_the_gil(counter: Counter) -> None:
    # A pure-Python loop never lets go of the GIL under this switch interval: the
    # counter must not move, or the proof below would prove nothing.
    def busy() -> None:
        total = 0
        for value in range(200_000):
            total += value

    assert not moved_during(counter, busy)


@pytest.mark.parametrize(
    "name",
    [
        "process_jsonl",
        "pipeline_encode_jsonl",
        "encode_jsonl",
        "normalize_jsonl",
        "window",
        "enqueue_all",
        "batch_decode",
    ],
)
def test_bulk_calls_release_the_gil(counter: Counter, name: str, tmp_path: Path) -> None:
    pipeline = edgepipe.Pipeline.from_dict(PIPELINE_CONFIG)
    batches = edgepipe.encode_jsonl(DATA, "gw", level=9)
    [whole] = edgepipe.encode_jsonl(DATA, "gw", max_records=len(DATA), max_bytes=len(DATA) * 2)
    window = edgepipe.Window.from_dict({"kind": "tumbling", "size_seconds": 10})
    queue = edgepipe.Queue.durable(tmp_path / "queue", max_bytes=0)
    calls = {
        "process_jsonl": lambda: pipeline.process_jsonl(DATA),
        "pipeline_encode_jsonl": lambda: pipeline.encode_jsonl(DATA, "gw"),
        "encode_jsonl": lambda: edgepipe.encode_jsonl(DATA, "gw", level=9),
        "normalize_jsonl": lambda: edgepipe.normalize_jsonl(DATA),
        "window": lambda: window.push_jsonl(DATA),
        "enqueue_all": lambda: queue.enqueue_all(batches),
        "batch_decode": lambda: whole.decode(),
    }
    with queue:
        assert moved_during(counter, calls[name])


def run_in_threads(work: Callable[[int], object], count: int) -> list:
    results: list = [None] * count
    failures: list = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as error:  # reported on the main thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return results


def test_threads_give_the_results_of_serial_calls() -> None:
    inputs = [workload(3_000, devices=index + 1) for index in range(4)]

    def s1(index: int) -> tuple:
        processed = edgepipe.Pipeline.from_dict(PIPELINE_CONFIG).process_jsonl(inputs[index])
        batches = edgepipe.encode_jsonl(processed.records, f"gw-{index}", created_at=1767225600.0)
        return processed.records, [batch.to_bytes() for batch in batches]

    serial = [s1(index) for index in range(4)]
    assert run_in_threads(s1, 4) == serial


def test_one_queue_shared_by_threads_takes_every_batch(tmp_path: Path) -> None:
    made = [edgepipe.encode_jsonl(workload(400), f"gw-{index}", max_records=10) for index in range(4)]
    with edgepipe.Queue.durable(tmp_path / "queue") as queue:
        ids = run_in_threads(lambda index: queue.enqueue_all(made[index]), 4)
        assert len({entry for part in ids for entry in part}) == 160
        taken = run_in_threads(lambda _: [p.batch_id for p in queue.drain()], 4)
        assert sorted(batch for part in taken for batch in part) == sorted(
            batch.batch_id for part in made for batch in part
        )
