"""Receiver: the cloud side of POST /api/ingest, as a Python web framework hosts it."""

import gzip
import json
from pathlib import Path

import pytest

import edgepipe
from conftest import API_KEY, jsonl, reading, workload
from edgepipe import DecodeLimits, Receiver


def seed_request(records: list, batch_id: str = "b1", key: str = API_KEY) -> tuple:
    """What the seed's aiohttp sender posts: a gzip'ed JSON array and three headers."""
    body = gzip.compress(json.dumps(records).encode())
    headers = {"X-API-Key": key, "X-Batch-ID": batch_id, "Content-Encoding": "gzip"}
    return headers, body


def test_a_seed_batch_is_stored_once(tmp_path: Path) -> None:
    records = [reading("r1", t=1.5), reading("r2", second=1, t=2.5)]
    with Receiver(tmp_path / "cloud", [API_KEY]) as receiver:
        status, body = receiver.receive(*seed_request(records))
        assert status == 200
        assert json.loads(body) == {
            "status": "ok",
            "batch_id": "b1",
            "records_accepted": 2,
            "records_quarantined": 0,
            "records_duplicate": 0,
        }
        status, body = receiver.receive(*seed_request(records))
        assert (status, json.loads(body)) == (200, {"status": "duplicate", "batch_id": "b1"})
        assert receiver.records() == edgepipe.read_jsonl(jsonl(records))

    # The dedup journal outlives the process: a retry after a restart is still a duplicate.
    with Receiver(tmp_path / "cloud", [API_KEY]) as receiver:
        assert json.loads(receiver.receive(*seed_request(records))[1])["status"] == "duplicate"
    assert list((tmp_path / "cloud" / "lake").glob("date=2026-01-01/device=dev-0001/part-b1.jsonl"))


def test_edgepipe_batches_with_any_codec_are_decoded(tmp_path: Path) -> None:
    [batch] = edgepipe.encode_jsonl(workload(20), "gw-1", codec="columnar", compression="zstd")
    headers = [
        ("X-API-Key", API_KEY),
        ("X-Batch-ID", batch.batch_id),
        ("Content-Encoding", "zstd"),
        ("X-Edgepipe-Codec", "columnar"),
        ("X-Edgepipe-Checksum", batch.checksum),
    ]
    with Receiver.in_memory([API_KEY]) as receiver:
        status, body = receiver.receive(headers, batch.payload)
        assert (status, json.loads(body)["records_accepted"]) == (200, 20)
        assert receiver.records() == batch.records()


def test_invalid_records_are_quarantined_with_the_reason() -> None:
    with Receiver.in_memory([API_KEY]) as receiver:
        status, body = receiver.receive(*seed_request([reading("r1", t=1.0), {"record_id": "r2"}]))
        assert (status, json.loads(body)["records_quarantined"]) == (200, 1)
        [quarantined] = receiver.quarantined()
        assert json.loads(quarantined["raw"]) == {"record_id": "r2"}
        assert "device_id" in quarantined["reason"]


def test_refusals_use_the_protocols_statuses() -> None:
    with Receiver.in_memory([API_KEY], limits=DecodeLimits(max_records=5)) as receiver:
        assert receiver.receive(*seed_request([], key="nope"))[0] == 401
        assert receiver.receive({"X-API-Key": API_KEY}, b"[]")[0] == 422
        headers, _ = seed_request([])
        status, body = receiver.receive(headers, b"not gzip")
        assert (status, json.loads(body)) == (400, {"detail": "Invalid gzip data"})
        too_many = [reading(f"r{i}", t=i) for i in range(6)]
        assert receiver.receive(*seed_request(too_many, batch_id="b2"))[0] == 413

        metrics = receiver.metrics()
        assert metrics["rejected"] == {400: 1, 401: 1, 404: 0, 413: 1, 422: 1, 503: 0}
        assert metrics["batches_stored"] == 0
        assert 'edgepipe_ingest_rejected_total{status="401"} 1' in receiver.prometheus()
        assert receiver.retry_after_seconds == 5


def test_signatures_are_checked_when_required() -> None:
    [batch] = edgepipe.encode_jsonl(workload(3), "gw-1", compression="none")
    headers = {"X-API-Key": API_KEY, "X-Batch-ID": batch.batch_id}
    with Receiver.in_memory([API_KEY], hmac_key=b"secret", require_signature=True) as receiver:
        assert receiver.receive(headers, batch.payload)[0] == 401
    with pytest.raises(ValueError, match="hmac_key"):
        Receiver.in_memory([API_KEY], require_signature=True)


def test_a_closed_receiver_refuses_calls(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "cloud", [API_KEY])
    receiver.close()
    with pytest.raises(ValueError, match="closed"):
        receiver.receive(*seed_request([]))
    with pytest.raises(TypeError, match="headers"):
        Receiver.in_memory([API_KEY]).receive(42, b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in-memory"):
        Receiver(tmp_path / "cloud2", [API_KEY]).quarantined()
