"""Records: JSON Lines ↔ dicts, every record read (validated, normalised) by the core."""

import datetime
import json

import pytest

import edgepipe
from conftest import jsonl, reading
from edgepipe import InvalidJsonError, LineError, ProcessResult


def test_read_jsonl_gives_the_seed_shape_normalised() -> None:
    data = (
        b'{"record_id":"r1","device_id":"d1","timestamp":"2026-01-01T00:00:00",'
        b'"data_type":"sensors","payload":{"t":22.5,"n":3,"ok":true,"s":"x","nil":null,'
        b'"big":18446744073709551615,"list":[1,{"a":2}]}}\n'
        b"\n"
        b'{"record_id":"r2","device_id":"d1","timestamp":1767225600123,'
        b'"data_type":"sensors","payload":{},"metadata":{"site":"f1"}}\n'
    )

    records = edgepipe.read_jsonl(data)

    assert records == [
        {
            "record_id": "r1",
            "device_id": "d1",
            "timestamp": "2026-01-01T00:00:00Z",
            "data_type": "sensors",
            "payload": {
                "t": 22.5,
                "n": 3,
                "ok": True,
                "s": "x",
                "nil": None,
                "big": 18446744073709551615,
                "list": [1, {"a": 2}],
            },
            "metadata": {},
        },
        {
            "record_id": "r2",
            "device_id": "d1",
            "timestamp": "2026-01-01T00:00:00.123Z",
            "data_type": "sensors",
            "payload": {},
            "metadata": {"site": "f1"},
        },
    ]
    assert type(records[0]["payload"]["n"]) is int
    assert type(records[0]["payload"]["ok"]) is bool


def test_read_jsonl_raises_on_the_first_bad_line_naming_it() -> None:
    data = jsonl([reading("r1", t=1.0)]) + b'{"record_id": "r2"}\n'
    with pytest.raises(InvalidJsonError, match=r"^line 2: .*device_id"):
        edgepipe.read_jsonl(data)


def test_write_jsonl_round_trips_and_normalises() -> None:
    records = [reading("r1", t=1.5, label="a"), reading("r2", second=3.25, t=-2)]
    records[1]["timestamp"] = datetime.datetime(2026, 1, 1, 0, 0, 3, 250000, tzinfo=datetime.timezone.utc)

    data = edgepipe.write_jsonl(records)

    assert data.count(b"\n") == 2
    back = edgepipe.read_jsonl(data)
    assert [record["record_id"] for record in back] == ["r1", "r2"]
    assert back[1]["timestamp"] == "2026-01-01T00:00:03.250Z"
    assert back[0]["payload"] == {"t": 1.5, "label": "a"}
    # Output is the core's canonical form: compact, keys in the seed's order.
    assert data.splitlines()[0].startswith(b'{"record_id":"r1","device_id":"dev-0001","timestamp":')
    assert edgepipe.write_jsonl(iter(back)) == data


def test_write_jsonl_names_the_record_the_core_refuses() -> None:
    bad = reading("r2", t=1.0)
    bad["timestamp"] = "yesterday"
    with pytest.raises(InvalidJsonError, match=r"^records\[1\]: .*timestamp.*yesterday") as raised:
        edgepipe.write_jsonl([reading("r1", t=1.0), bad])
    assert isinstance(raised.value, edgepipe.EdgepipeError)

    extra = reading("r3", t=1.0)
    extra["unexpected"] = 1
    with pytest.raises(InvalidJsonError, match=r"records\[0\].*unexpected"):
        edgepipe.write_jsonl([extra])


def test_normalize_jsonl_keeps_good_lines_and_reports_bad_ones() -> None:
    data = jsonl([reading("r1", t=1.0)]) + b"{broken\n" + b'{"record_id":"r3","device_id":"d","timestamp":"2026-01-01T00:00:00+02:00","data_type":"x","payload":{}}\n'

    result = edgepipe.normalize_jsonl(data)

    assert isinstance(result, ProcessResult)
    assert [record["record_id"] for record in edgepipe.read_jsonl(result.records)] == ["r1", "r3"]
    assert b'"timestamp":"2025-12-31T22:00:00Z"' in result.records
    assert result.quarantine == b""
    [error] = result.errors
    assert isinstance(error, LineError)
    assert (error.line, error.error_type) == (2, InvalidJsonError)


def test_records_in_and_out_agree_with_pythons_json() -> None:
    records = [reading(f"r{index}", second=index, v=index * 0.1, name=f"n{index}") for index in range(50)]
    data = edgepipe.write_jsonl(records)
    assert [json.loads(line) for line in data.splitlines()] == edgepipe.read_jsonl(data)
