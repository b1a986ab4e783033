"""Batches: Batcher, Batch (envelope, payload, bytes), encode_jsonl, every codec and
compression, decode limits."""

import gzip
import hashlib
import json

import pytest

import edgepipe
from conftest import jsonl, reading, workload
from edgepipe import (
    Batch,
    Batcher,
    ChecksumError,
    ConfigError,
    CorruptDataError,
    DecodeLimits,
    InvalidJsonError,
    LimitExceededError,
    UnsupportedError,
)

CODECS = ["json", "json-python", "jsonl", "msgpack", "columnar"]
COMPRESSIONS = [("none", None), ("gzip", 1), ("gzip", 9), ("lz4", None), ("zstd", 3), ("zstd", 19)]
CREATED = 1767225600.5


def test_encode_jsonl_makes_the_seeds_s1_batches() -> None:
    data = workload(250)

    batches = edgepipe.encode_jsonl(data, "gw-1", created_at=CREATED)

    assert [batch.record_count for batch in batches] == [100, 100, 50]
    first = batches[0]
    assert isinstance(first, Batch)
    assert (first.source_id, first.codec, first.compression) == ("gw-1", "json", "gzip")
    assert first.created_at == CREATED
    # The seed's body: a gzip'ed JSON array of to_dict()s, sha256 of the bytes sent.
    body = gzip.decompress(first.payload)
    assert len(body) == first.original_size
    assert len(first.payload) == first.compressed_size
    assert first.checksum == hashlib.sha256(first.payload).hexdigest()
    assert json.loads(body) == edgepipe.read_jsonl(data)[:100]
    assert first.sequence is None and not first.oversize
    assert len(first) == 100


def test_batch_ids_are_deterministic() -> None:
    data = workload(120)
    again = edgepipe.encode_jsonl(data, "gw-1", codec="msgpack", compression="lz4")
    batches = edgepipe.encode_jsonl(data, "gw-1")
    assert [b.batch_id for b in batches] == [b.batch_id for b in again]
    assert batches[0].batch_id != batches[1].batch_id
    assert edgepipe.encode_jsonl(data, "gw-2")[0].batch_id != batches[0].batch_id


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("compression", "level"), COMPRESSIONS, ids=lambda v: str(v))
def test_every_codec_and_compression_round_trips(codec: str, compression: str, level) -> None:
    data = workload(30)
    [batch] = edgepipe.encode_jsonl(data, "gw-1", codec=codec, compression=compression, level=level)

    assert (batch.codec, batch.compression) == (codec, compression)
    assert batch.records() == edgepipe.read_jsonl(data)
    assert batch.decode() == edgepipe.normalize_jsonl(data).records
    copy = Batch.from_bytes(batch.to_bytes())
    assert copy.to_bytes() == batch.to_bytes()
    assert (copy.batch_id, copy.checksum, copy.payload) == (batch.batch_id, batch.checksum, batch.payload)


def test_gzip_levels_trade_size_and_are_standard_gzip() -> None:
    data = workload(100)
    [fast] = edgepipe.encode_jsonl(data, "gw", level=1)
    [small] = edgepipe.encode_jsonl(data, "gw", level=9)
    [stored] = edgepipe.encode_jsonl(data, "gw", compression="none")
    assert gzip.decompress(fast.payload) == gzip.decompress(small.payload) == stored.payload
    assert small.compressed_size <= fast.compressed_size < stored.compressed_size


def test_batcher_closes_by_count_bytes_and_age() -> None:
    by_count = Batcher("gw", max_records=2, max_age=None)
    closed = by_count.push([reading("r1", t=1), reading("r2", t=2), reading("r3", t=3)], now=CREATED)
    assert [batch.record_count for batch in closed] == [2]
    assert by_count.open_records == 1
    assert [b.record_count for b in by_count.flush(now=CREATED)] == [1]
    assert by_count.flush() == []

    by_bytes = Batcher("gw", codec="jsonl", compression="none", max_bytes=600)
    closed = by_bytes.push_jsonl(workload(20), now=CREATED) + by_bytes.flush(now=CREATED)
    assert sum(batch.record_count for batch in closed) == 20
    assert all(batch.original_size <= 600 for batch in closed)
    assert len(closed) > 2

    by_age = Batcher("gw", max_age=5.0)
    assert by_age.push([reading("r1", t=1)], now=CREATED) == []
    assert by_age.poll(now=CREATED + 4.9) == []
    [aged] = by_age.poll(now=CREATED + 5.0)
    assert (aged.record_count, aged.created_at) == (1, CREATED + 5.0)


def test_batcher_and_encode_jsonl_agree() -> None:
    data = workload(230)
    batcher = Batcher("gw", codec="columnar", compression="zstd", max_age=None)
    pushed = batcher.push_jsonl(data, now=CREATED) + batcher.flush(now=CREATED)
    encoded = edgepipe.encode_jsonl(data, "gw", codec="columnar", compression="zstd", created_at=CREATED)
    assert [b.to_bytes() for b in pushed] == [b.to_bytes() for b in encoded]


@pytest.mark.parametrize("count", [0, 1, 99, 100, 101, 1234])
def test_threads_give_the_batches_of_one_thread(count: int) -> None:
    data = workload(count)
    one = edgepipe.encode_jsonl(data, "gw", created_at=CREATED)
    for threads in (2, 3, 8):
        many = edgepipe.encode_jsonl(data, "gw", created_at=CREATED, threads=threads)
        assert [b.to_bytes() for b in many] == [b.to_bytes() for b in one]
    with pytest.raises(ValueError, match="threads"):
        edgepipe.encode_jsonl(data, "gw", threads=0)


def test_sequence_ids_give_a_sequence_range() -> None:
    records = [reading(f"gw-1:7:{sequence}", t=sequence) for sequence in range(5, 9)]
    [batch] = edgepipe.encode_jsonl(jsonl(records), "gw-1")
    assert batch.sequence == (7, 5, 8)


def test_corrupt_and_oversized_batches_raise_typed_errors() -> None:
    [batch] = edgepipe.encode_jsonl(workload(50), "gw")
    raw = batch.to_bytes()

    with pytest.raises(CorruptDataError):
        Batch.from_bytes(raw[:20])
    with pytest.raises(CorruptDataError):
        Batch.from_bytes(b"XYZ" + raw[3:])
    flipped = bytearray(raw)
    flipped[-10] ^= 0xFF
    damaged = Batch.from_bytes(bytes(flipped))
    with pytest.raises(ChecksumError):
        damaged.verify()
    with pytest.raises(ChecksumError):
        damaged.decode()

    with pytest.raises(LimitExceededError):
        batch.records(limits=DecodeLimits(max_records=10))
    with pytest.raises(LimitExceededError):
        batch.decode(limits=DecodeLimits(max_decompressed_bytes=1000))
    with pytest.raises(LimitExceededError):
        Batch.from_bytes(raw, limits=DecodeLimits(max_compressed_bytes=100))
    limits = DecodeLimits(max_records=5)
    assert (limits.max_records, limits.max_depth) == (5, 128)


def test_bad_options_raise_clear_errors() -> None:
    with pytest.raises(UnsupportedError, match="xml"):
        Batcher("gw", codec="xml")
    with pytest.raises(UnsupportedError, match="brotli"):
        edgepipe.encode_jsonl(b"", "gw", compression="brotli")
    with pytest.raises(ConfigError, match="gzip level 12"):
        Batcher("gw", level=12)
    with pytest.raises(ValueError, match="level"):
        Batcher("gw", compression="lz4", level=3)
    with pytest.raises(ConfigError, match="max_records"):
        Batcher("gw", max_records=0)
    with pytest.raises(ValueError, match="max_age"):
        Batcher("gw", max_age=-1.0)


def test_encode_jsonl_raises_on_a_bad_line() -> None:
    with pytest.raises(InvalidJsonError, match="^line 2"):
        edgepipe.encode_jsonl(workload(1) + b"{nope\n", "gw")
    assert edgepipe.encode_jsonl(b"", "gw") == []
