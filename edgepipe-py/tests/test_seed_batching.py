"""edgepipe.batching: the seed's BatchProcessor and DataBatch, same bytes."""

import dataclasses
import gzip
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

import seed_reference as ref
from edgepipe import CorruptDataError, LimitExceededError, NonFiniteFloatError
from edgepipe.batching import BatchProcessor, DataBatch
from edgepipe.edge_collector import DataRecord


def records(count: int, seed: int = 1) -> list:
    """Records whose JSON exercises Python's json.dumps: floats in both notations,
    non-ASCII text, nested values, naive and aware timestamps."""
    rng = random.Random(seed)
    out = []
    start = datetime(2026, 1, 1)
    for index in range(count):
        timestamp = start + timedelta(milliseconds=100 * index, microseconds=index % 7)
        if index % 5 == 0:
            timestamp = timestamp.replace(tzinfo=timezone.utc)
        payload = {
            "temperature": round(22 + rng.uniform(-3, 3), 2),
            "humidity": round(50 + rng.uniform(-10, 10), 1),
            "pressure": rng.choice([1013.0, 1e16, 1.5e-7, 0.0001, -0.0, 12345678901234567890]),
            "label": rng.choice(["ok", "é", "漢字", "🙂", 'q"\\\n\t']),
            "samples": [rng.random() for _ in range(rng.randint(0, 3))],
            "flags": {"on": rng.random() > 0.5, "none": None},
        }
        out.append(
            DataRecord(
                record_id=f"{index:08d}-uuid",
                device_id=f"dev-{index % 10:04d}",
                timestamp=timestamp,
                data_type="sensors",
                payload=payload,
                metadata={"region": "us-west", "site": "factory-1"},
            )
        )
    return out


@pytest.mark.parametrize("compression", ["gzip", "lz4", "none"])
def test_batch_body_is_byte_for_byte_the_seeds(compression: str) -> None:
    batch_records = records(100)
    processor = BatchProcessor("gateway-1", compression=compression)
    batch = processor.create_batch(batch_records)

    expected_json = ref.batch_json(batch_records)
    assert ref.decompress(batch.compressed_data, compression) == expected_json
    assert batch.checksum == ref.sha256(batch.compressed_data)
    assert batch.size_bytes == len(batch.compressed_data)
    assert batch.original_size_bytes == len(expected_json)
    assert (batch.record_count, batch.device_id, batch.compression) == (100, "gateway-1", compression)
    assert isinstance(batch, DataBatch) and dataclasses.is_dataclass(batch)
    assert BatchProcessor.decompress_batch(batch) == json.loads(expected_json)


def test_batch_ids_are_deterministic() -> None:
    processor = BatchProcessor("gateway-1")
    first = processor.create_batch(records(10))
    again = processor.create_batch(records(10))
    other = processor.create_batch(records(10, seed=2)[1:])
    assert first.batch_id == again.batch_id
    assert first.batch_id != other.batch_id
    assert len(first.batch_id) == 32 and int(first.batch_id, 16) >= 0
    assert BatchProcessor("gateway-2").create_batch(records(10)).batch_id != first.batch_id


def test_created_at_is_naive_utc_now_as_the_seeds() -> None:
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    batch = BatchProcessor("g").create_batch(records(1))
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    assert batch.created_at.tzinfo is None and before <= batch.created_at <= after


def test_plain_dict_items_are_batched_as_the_seed_does() -> None:
    items = [{"a": 1, "b": "é"}, {"nested": [1.5, None]}, records(1)[0]]
    batch = BatchProcessor("g", compression="gzip").create_batch(items)
    assert gzip.decompress(batch.compressed_data) == ref.batch_json(items)
    assert batch.checksum == ref.sha256(batch.compressed_data)
    assert batch.batch_id == BatchProcessor("g").create_batch(items).batch_id


@pytest.mark.parametrize("compression", ["gzip", "lz4", "none"])
def test_decompress_batch_reads_batches_the_seed_made(compression: str) -> None:
    body = ref.batch_json(records(20))
    data = ref.compress(body, compression)
    batch = DataBatch("b", "g", datetime(2026, 1, 1), 20, data, compression, ref.sha256(data), len(data), len(body))
    assert BatchProcessor.decompress_batch(batch) == json.loads(body)


@pytest.mark.parametrize(("max_size", "max_bytes"), [(100, 1024 * 1024), (7, 1024 * 1024), (100, 2000), (3, 700), (100, 1)])
def test_split_records_matches_the_seed(max_size: int, max_bytes: int) -> None:
    items = records(60) + [{"plain": "dict"}]
    processor = BatchProcessor("g", max_batch_size=max_size, max_batch_bytes=max_bytes)
    ours = processor.split_records(items)
    seed = ref.split_records(items, max_size, max_bytes)
    assert [[id(item) for item in batch] for batch in ours] == [[id(item) for item in batch] for batch in seed]


def test_non_finite_floats_are_refused_not_sent_as_invalid_json() -> None:
    record = records(1)[0]
    record.payload["temperature"] = float("nan")
    with pytest.raises(NonFiniteFloatError, match="temperature"):
        BatchProcessor("g").create_batch([record])


def test_corrupt_and_oversized_data_raise_edgepipe_errors() -> None:
    batch = DataBatch("b", "g", datetime(2026, 1, 1), 1, b"not gzip at all", "gzip", "", 15, 15)
    with pytest.raises(CorruptDataError):
        BatchProcessor.decompress_batch(batch)
    bomb = gzip.compress(b"[" + b" " * (65 << 20) + b"]")
    batch = dataclasses.replace(batch, compressed_data=bomb)
    with pytest.raises(LimitExceededError):
        BatchProcessor.decompress_batch(batch)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"compression": "zstd"}, ValueError, "compression"),
        ({"compression": None}, ValueError, "compression"),
        ({"max_batch_size": 0}, ValueError, "max_batch_size"),
        ({"max_batch_size": "100"}, TypeError, "max_batch_size"),
        ({"max_batch_bytes": 2.5}, TypeError, "max_batch_bytes"),
        ({"device_id": None}, TypeError, "device_id"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match) -> None:
    arguments = {"device_id": "g", **kwargs}
    with pytest.raises(error, match=match):
        BatchProcessor(**arguments)


def test_a_record_with_an_unrepresentable_timestamp_is_refused() -> None:
    record = records(1)[0]
    record.timestamp = datetime(1, 1, 1)
    from edgepipe import TimestampError

    with pytest.raises(TimestampError):
        BatchProcessor("g").create_batch([record])


class LaterDatetime(datetime):
    """A datetime subclass, whose isoformat() edgepipe must ask Python for."""

    def isoformat(self, sep="T", timespec="auto"):
        return super().isoformat(sep, timespec)


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(2026, 1, 1),
        datetime(2026, 1, 1, 23, 59, 59, 1),
        datetime(1999, 12, 31, 12, 0, 0, 999999, tzinfo=timezone.utc),
        datetime(2026, 3, 29, 1, 30, fold=1),
        datetime(2026, 6, 1, 8, 0, 0, 500000, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
        datetime(2026, 6, 1, 8, 0, 0, tzinfo=timezone(timedelta(0))),
        LaterDatetime(2026, 6, 1, 8, 0, 0, 250000),
        datetime(1677, 9, 22),
        datetime(2262, 4, 10, 23, 59, 59, 999999),
    ],
    ids=str,
)
def test_every_kind_of_datetime_is_written_as_its_isoformat(timestamp: datetime) -> None:
    record = records(1)[0]
    record.timestamp = timestamp
    batch = BatchProcessor("g", compression="none").create_batch([record])
    assert batch.compressed_data == ref.batch_json([record])
    assert json.loads(batch.compressed_data)[0]["timestamp"] == timestamp.isoformat()


ODD_VALUES = [None, 2**100, -1, b"\xff\xfe", "\udcff", float("nan"), object(), [], {}, [None], {"a": object()}]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_arguments_raise_clear_exceptions_never_crash(value, tmp_path) -> None:
    from edgepipe import (
        EdgepipeError,
        SeedQueue,
        SeedSink,
        seed_compress,
        seed_decompress,
        seed_encode_batch,
        seed_record_sizes,
    )

    expected = (TypeError, ValueError, OverflowError, EdgepipeError)
    calls = [
        lambda: seed_encode_batch(value, "g", "gzip"),
        lambda: seed_encode_batch([value], "g", "gzip"),
        lambda: seed_encode_batch([], value, "gzip"),
        lambda: seed_encode_batch([], "g", value),
        lambda: seed_compress(value, "gzip"),
        lambda: seed_decompress(value, "gzip"),
        lambda: seed_decompress(b"\x1f\x8b" + bytes(20), value),
        lambda: seed_record_sizes(value),
        lambda: SeedSink(value, "key"),
        lambda: SeedSink("http://127.0.0.1:1", "key", value),
        lambda: BatchProcessor("g").create_batch([DataRecord("r", "d", datetime(2026, 1, 1), "t", {"v": value})]),
        lambda: BatchProcessor.decompress_batch(DataBatch("b", "g", datetime(2026, 1, 1), 1, value, "gzip", "", 0, 0)),
    ]
    queue = SeedQueue(str(tmp_path / "q.db"))
    calls += [
        lambda: queue.enqueue(value, "g", b"x", "gzip", "c", 1, 1, 0),
        lambda: queue.enqueue("b", "g", b"x", "gzip", "c", value, 1, 0),
        lambda: queue.enqueue("b", "g", b"x", "gzip", "c", 1, 1, value),
        lambda: queue.pending(value, 0),
        lambda: queue.ack(value),
        lambda: queue.nack(value, 0),
        lambda: queue.nack(0, value),
    ]
    for call in calls:
        try:
            call()
        except expected:
            pass
    queue.close()
