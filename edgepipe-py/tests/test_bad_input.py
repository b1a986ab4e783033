"""Bad input from Python: wrong types, None, huge ints, non-UTF-8 bytes, truncated
or corrupt batches. Every case raises a clear exception; none crashes the interpreter."""

import pytest

import edgepipe
from conftest import reading, workload
from edgepipe import (
    Batch,
    Batcher,
    ChecksumError,
    CorruptDataError,
    EdgepipeError,
    InvalidJsonError,
    Pipeline,
    Queue,
    SnapshotError,
    Window,
)

HUGE = 2**80


@pytest.mark.parametrize("value", [None, 42, "text", ["list"], {"dict": 1}, 1.5])
def test_bulk_calls_want_bytes(value: object) -> None:
    with pytest.raises(TypeError):
        edgepipe.read_jsonl(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        edgepipe.encode_jsonl(value, "gw")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pipeline.from_dict({"transforms": []}).process_jsonl(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Batch.from_bytes(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 42, b"bytes", [1, 2], [None], ["a dict? no"]])
def test_dict_calls_want_iterables_of_dicts(value: object) -> None:
    with pytest.raises(TypeError, match="records"):
        edgepipe.write_jsonl(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="records"):
        Window.from_dict({"size_seconds": 10}).push(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="records"):
        Batcher("gw").push(value)  # type: ignore[arg-type]


def test_non_utf8_bytes_are_a_line_error_not_a_crash() -> None:
    data = workload(1) + b'{"record_id": "\xff\xfe"}\n' + b"\x80\x81\x82\n" + workload(1)

    result = edgepipe.normalize_jsonl(data)

    assert [error.line for error in result.errors] == [2, 3]
    assert all("UTF-8" in error.message for error in result.errors)
    assert result.records.count(b"\n") == 2
    with pytest.raises(InvalidJsonError, match="line 2.*UTF-8"):
        edgepipe.read_jsonl(data)
    assert Window.from_dict({"size_seconds": 10}).push_jsonl(data).errors[0].line == 2


def test_huge_ints_in_arguments_raise_overflow_or_value_errors(tmp_path) -> None:
    with pytest.raises(OverflowError):
        Batcher("gw", max_records=HUGE)
    with pytest.raises(OverflowError):
        edgepipe.encode_jsonl(b"", "gw", max_bytes=-1)
    with pytest.raises(OverflowError):
        Batcher("gw", level=HUGE)
    with pytest.raises(ValueError, match="level"):
        Batcher("gw", level=2**40)
    with pytest.raises(OverflowError):
        Queue.memory(max_attempts=HUGE)
    with Queue.memory() as queue:
        with pytest.raises(OverflowError):
            queue.ack(HUGE)
        with pytest.raises(OverflowError):
            queue.take(-1)
    with pytest.raises(ValueError, match="now"):
        Window.from_dict({"size_seconds": 10}).advance(1e300)


def test_huge_ints_and_odd_values_in_records() -> None:
    # Beyond u64: read as the nearest float, as JavaScript does (docs/records.md).
    [record] = edgepipe.read_jsonl(edgepipe.write_jsonl([reading("r1", big=HUGE, small=-(2**63))]))
    assert record["payload"]["big"] == float(HUGE)
    assert record["payload"]["small"] == -(2**63)
    with pytest.raises(ValueError, match=r"records\[0\]"):
        edgepipe.write_jsonl([reading("r1", t=float("nan"))])
    with pytest.raises(TypeError, match=r"records\[0\]"):
        edgepipe.write_jsonl([reading("r1", t=object())])
    recursive: dict = reading("r1")
    recursive["payload"]["self"] = recursive
    with pytest.raises(ValueError, match=r"records\[0\]"):
        edgepipe.write_jsonl([recursive])
    none_fields = reading("r1")
    none_fields["device_id"] = None
    with pytest.raises(InvalidJsonError, match=r"records\[0\].*device_id"):
        edgepipe.write_jsonl([none_fields])


def test_truncated_and_corrupt_batches_raise_typed_errors() -> None:
    [batch] = edgepipe.encode_jsonl(workload(40), "gw", codec="columnar", compression="lz4")
    raw = batch.to_bytes()

    for cut in range(0, len(raw), max(1, len(raw) // 40)):
        with pytest.raises(EdgepipeError):
            Batch.from_bytes(raw[:cut]).decode()
    with pytest.raises(CorruptDataError):
        Batch.from_bytes(b"")

    # One payload byte changed: caught by the checksum before anything is parsed.
    [other] = edgepipe.encode_jsonl(workload(3), "gw", codec="json", compression="none")
    garbage = bytearray(other.to_bytes())
    garbage[-1] ^= 0x55
    with pytest.raises(ChecksumError):
        Batch.from_bytes(bytes(garbage)).records()


def test_every_byte_flip_in_a_batch_is_an_error_or_the_same_records() -> None:
    [batch] = edgepipe.encode_jsonl(workload(5), "gw", codec="msgpack", compression="gzip")
    raw = batch.to_bytes()
    expected = batch.records()
    for index in range(len(raw)):
        flipped = bytearray(raw)
        flipped[index] ^= 0xFF
        try:
            records = Batch.from_bytes(bytes(flipped)).records()
        except EdgepipeError:
            continue
        # Only envelope fields the records do not depend on (ids, sizes, times).
        assert records == expected


def test_bad_window_snapshots_and_configs() -> None:
    for snapshot in (b"", b"\xff\xfe", b"[]", b'{"format": 1}', b"null"):
        with pytest.raises(SnapshotError):
            Window.restore(snapshot)
    with pytest.raises(TypeError):
        Window.from_dict(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        Window.from_dict({"size_seconds": float("nan"), "x": {1, 2}})
