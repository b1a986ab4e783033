"""Queue: the durable log, SQLite and memory queues as context managers; bulk
enqueue, take/ack/nack, dead letters, stats, draining, reopening."""

import sqlite3
from pathlib import Path

import pytest

import edgepipe
from conftest import workload
from edgepipe import Queue, QueueFullError, UnknownEntryError

NOW = 1767225600.0


def batches(count: int = 5, source: str = "gw-1") -> list:
    return edgepipe.encode_jsonl(workload(count * 10), source, max_records=10, created_at=NOW)


def open_queue(kind: str, tmp_path: Path, **options) -> Queue:
    if kind == "durable":
        return Queue.durable(tmp_path / "queue", **options)
    if kind == "sqlite":
        return Queue.sqlite(tmp_path / "queue.db", **options)
    return Queue.memory(**options)


KINDS = ["durable", "sqlite", "memory"]


@pytest.mark.parametrize("kind", KINDS)
def test_enqueue_take_ack_in_order(kind: str, tmp_path: Path) -> None:
    made = batches(5)
    with open_queue(kind, tmp_path) as queue:
        assert queue.kind == kind
        ids = queue.enqueue_all(made[:4])
        ids.append(queue.enqueue(made[4]))
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert len(queue) == 5

        taken = queue.take(3, now=NOW)
        assert [p.batch_id for p in taken] == [b.batch_id for b in made[:3]]
        assert [p.id for p in taken] == ids[:3]
        assert taken[0].payload == made[0].to_bytes()
        assert taken[0].batch().records() == made[0].records()
        assert (taken[0].source_id, taken[0].created_at, taken[0].attempts) == ("gw-1", NOW, 0)

        for pending in taken:
            queue.ack(pending.id)
        with pytest.raises(UnknownEntryError):
            queue.ack(taken[0].id)
        stats = queue.stats()
        assert (stats["pending"], stats["in_flight"], stats["acked"], stats["enqueued"]) == (2, 0, 3, 5)
        assert stats["oldest_created_at"] == NOW
    assert queue.closed


@pytest.mark.parametrize("kind", ["durable", "sqlite"])
def test_what_was_not_acked_survives_reopening(kind: str, tmp_path: Path) -> None:
    made = batches(4)
    with open_queue(kind, tmp_path) as queue:
        queue.enqueue_all(made)
        [first] = queue.take(1, now=NOW)
        queue.ack(first.id)
        queue.take(1, now=NOW)  # in flight at "crash": handed out again after reopening

    with open_queue(kind, tmp_path) as queue:
        assert len(queue) == 3
        assert [p.batch_id for p in queue.take(10, now=NOW)] == [b.batch_id for b in made[1:]]


@pytest.mark.parametrize("kind", KINDS)
def test_nack_retries_later_then_dead_letters(kind: str, tmp_path: Path) -> None:
    with open_queue(kind, tmp_path, max_attempts=2) as queue:
        queue.enqueue_all(batches(1))
        [pending] = queue.take(1, now=NOW)

        outcome = queue.nack(pending.id, retry_at=NOW + 30)
        assert outcome == {"attempts": 1, "dead_lettered": False, "retry_at": NOW + 30}
        assert queue.take(1, now=NOW + 29) == []
        [again] = queue.take(1, now=NOW + 30)
        assert (again.id, again.attempts) == (pending.id, 1)

        assert queue.nack(again.id, retry_at=NOW + 60)["dead_lettered"] is True
        assert queue.take(1, now=NOW + 3600) == []
        [dead] = queue.dead_letters()
        assert dead.batch_id == pending.batch_id
        assert queue.stats()["dead"] == 1
        assert queue.purge_dead_letters() == 1
        assert len(queue) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_release_and_dead_letter_and_ttl(kind: str, tmp_path: Path) -> None:
    with open_queue(kind, tmp_path, ttl=60.0) as queue:
        queue.enqueue_all(batches(3))
        first, second = queue.take(2, now=NOW)
        queue.release(first.id)
        assert queue.dead_letter(second.id) == 1
        [again] = queue.take(1, now=NOW)
        assert (again.id, again.attempts) == (first.id, 0)
        queue.release(again.id)
        assert queue.expire(now=NOW + 61) == 2
        assert queue.stats()["expired"] == 2


def test_a_full_queue_rejects_or_drops_the_oldest(tmp_path: Path) -> None:
    made = batches(4)
    size = len(made[0].to_bytes()) + len(made[0].batch_id) + len("gw-1")
    with Queue.durable(tmp_path / "q1", max_bytes=size * 2 + 10) as queue:
        queue.enqueue_all(made[:2])
        with pytest.raises(QueueFullError):
            queue.enqueue(made[2])
        assert queue.stats()["enqueued"] == 2
    with Queue.memory(max_bytes=size * 2 + 10, full_policy="drop_oldest") as queue:
        queue.enqueue_all(made[:2])
        queue.enqueue(made[2])
        assert queue.stats()["dropped"] == 1
        assert [p.batch_id for p in queue.take(5, now=NOW)] == [b.batch_id for b in made[1:3]]


@pytest.mark.parametrize("kind", KINDS)
def test_drain_iterates_ready_entries(kind: str, tmp_path: Path) -> None:
    made = batches(5)
    with open_queue(kind, tmp_path) as queue:
        queue.enqueue_all(made)
        seen = []
        for pending in queue.drain(now=NOW):
            seen.append(pending.batch_id)
            queue.ack(pending.id)
        assert seen == [b.batch_id for b in made]
        assert len(queue) == 0
        assert list(queue.drain(now=NOW)) == []


def test_sqlite_queue_is_the_seeds_table(tmp_path: Path) -> None:
    made = batches(2)
    with Queue.sqlite(tmp_path / "queue.db") as queue:
        queue.enqueue_all(made)
    with sqlite3.connect(tmp_path / "queue.db") as db:
        rows = db.execute("SELECT batch_id, batch_data, compression, checksum FROM delivery_queue ORDER BY rowid").fetchall()
    assert [row[0] for row in rows] == [b.batch_id for b in made]
    assert rows[0][1] == made[0].payload
    assert (rows[0][2], rows[0][3]) == ("gzip", made[0].checksum)


def test_closed_queue_refuses_calls(tmp_path: Path) -> None:
    queue = Queue.durable(tmp_path / "q")
    queue.close()
    queue.close()
    with pytest.raises(ValueError, match="closed"):
        queue.enqueue_all(batches(1))
    with pytest.raises(ValueError, match="closed"):
        len(queue)
    assert repr(queue) == "Queue(closed)"
    # Closing let go of the directory's lock: it opens again.
    with Queue.durable(tmp_path / "q") as again:
        assert len(again) == 0


def test_bad_arguments_name_themselves(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="full_policy"):
        Queue.memory(full_policy="shrug")
    with pytest.raises(ValueError, match="sync"):
        Queue.durable(tmp_path / "q", sync="eventually")
    with pytest.raises(ValueError, match="ttl"):
        Queue.memory(ttl=-1.0)
    with Queue.memory() as queue:
        with pytest.raises(TypeError, match=r"batches\[1\]"):
            queue.enqueue_all([batches(1)[0], b"not a batch"])
        assert len(queue) == 0
        with pytest.raises(TypeError):
            queue.enqueue(b"raw bytes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="now"):
            queue.take(1, now=float("nan"))
