"""edgepipe.edge_collector: the seed's DataRecord and DataCollector, same results."""

import asyncio
import copy
import dataclasses
import pickle
from datetime import datetime, timedelta, timezone

import pytest

import seed_reference as ref
from edgepipe.edge_collector import DataCollector, DataRecord, collect_sensor_data
from edgepipe.transforms import TransformPipeline, add_metadata, validate_schema

NAIVE = datetime(2026, 1, 1, 0, 0, 0, 123456)
AWARE = datetime(2026, 1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1)))
PAYLOAD = {
    "temperature": 22.87,
    "count": 7,
    "ok": True,
    "label": "é漢🙂",
    "none": None,
    "nested": {"a": [1, 2.5, {"b": "c"}]},
}


def both(**fields):
    """The same record as edgepipe's and as the seed model's."""
    values = dict(
        record_id="r-1",
        device_id="edge-001",
        timestamp=NAIVE,
        data_type="sensors",
        payload=dict(PAYLOAD),
    )
    values.update(fields)
    return DataRecord(**values), ref.DataRecord(**copy.deepcopy(values))


@pytest.mark.parametrize("timestamp", [NAIVE, NAIVE.replace(microsecond=0), AWARE])
def test_to_dict_is_the_seeds(timestamp: datetime) -> None:
    ours, seed = both(timestamp=timestamp, metadata={"site": "f1"})
    assert ours.to_dict() == seed.to_dict()
    assert ours.to_dict()["timestamp"] == timestamp.isoformat()


def test_fields_read_and_write_like_the_dataclass() -> None:
    ours, seed = both()
    assert (ours.record_id, ours.device_id, ours.timestamp, ours.data_type) == (
        seed.record_id,
        seed.device_id,
        seed.timestamp,
        seed.data_type,
    )
    assert ours.metadata == {} and ours.metadata is ours.metadata
    ours.device_id = "edge-002"
    ours.payload["extra"] = 1
    ours.metadata["site"] = "f2"
    assert ours.to_dict()["device_id"] == "edge-002"
    assert ours.to_dict()["payload"]["extra"] == 1
    assert ours.to_dict()["metadata"] == {"site": "f2"}
    # Each record gets its own default metadata dict.
    assert DataRecord("a", "b", NAIVE, "c", {}).metadata is not ours.metadata


def test_payload_given_is_the_payload_held() -> None:
    payload = {"x": 1}
    record = DataRecord("r", "d", NAIVE, "t", payload)
    assert record.payload is payload
    payload["y"] = 2
    assert record.to_dict()["payload"] == {"x": 1, "y": 2}


def test_equality_and_repr_follow_the_dataclass() -> None:
    ours, seed = both(metadata={"site": "f1"})
    twin, _ = both(metadata={"site": "f1"})
    assert ours == twin and not ours != twin
    twin.payload["temperature"] = 0.0
    assert ours != twin
    assert ours != seed  # another class, as two dataclasses never compare equal
    assert repr(ours) == repr(seed)
    with pytest.raises(TypeError):
        hash(ours)


def test_dataclasses_helpers_work() -> None:
    ours, seed = both()
    assert dataclasses.is_dataclass(ours)
    assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(seed)]
    copied = dataclasses.replace(ours, device_id="edge-009")
    assert isinstance(copied, DataRecord)
    assert copied.device_id == "edge-009" and copied.payload is ours.payload
    assert dataclasses.asdict(ours) == dataclasses.asdict(seed)


def test_pickle_and_copies_keep_every_field() -> None:
    ours, _ = both(metadata={"site": "f1"})
    for clone in (pickle.loads(pickle.dumps(ours)), copy.copy(ours), copy.deepcopy(ours)):
        assert clone == ours and clone is not ours
    deep = copy.deepcopy(ours)
    deep.payload["nested"]["a"].append(3)
    assert ours.payload["nested"]["a"] == [1, 2.5, {"b": "c"}]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_id", 5),
        ("device_id", None),
        ("data_type", b"sensors"),
        ("timestamp", "2026-01-01T00:00:00"),
        ("payload", None),
        ("payload", [("a", 1)]),
        ("metadata", "site=f1"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=field):
        both(**{field: value})
    ours, _ = both()
    with pytest.raises(TypeError, match=field):
        setattr(ours, field, value)


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        ({"big": 2**64}, ValueError, "big.*64 bits"),
        ({"big": -(2**63) - 1}, ValueError, "big.*64 bits"),
        ({"when": datetime(2026, 1, 1)}, TypeError, "when.*datetime"),
        ({"raw": b"\xff\xfe"}, TypeError, "raw.*bytes"),
        ({1: "x"}, TypeError, "keys must be str"),
        ({"bad": "\udcff"}, UnicodeEncodeError, "surrogate"),
    ],
)
def test_bad_payload_values_are_refused_when_converted(payload, error, match) -> None:
    record = DataRecord("r", "d", NAIVE, "t", payload)
    # add_metadata leaves the payload alone; a payload transform converts it.
    assert add_metadata({"site": "f1"})(record).metadata == {"site": "f1"}
    with pytest.raises(error, match=match):
        validate_schema({})(record)


def test_a_list_that_contains_itself_is_an_error_not_a_crash() -> None:
    loop: list = []
    loop.append(loop)
    record = DataRecord("r", "d", NAIVE, "t", {"loop": loop})
    with pytest.raises(ValueError, match="nested deeper than 128"):
        validate_schema({})(record)


def test_metadata_values_must_be_str() -> None:
    record = DataRecord("r", "d", NAIVE, "t", {}, {"floor": 3})
    with pytest.raises(TypeError, match="metadata\\[.floor.\\]"):
        add_metadata({"site": "f1"})(record)


# --- DataCollector ----------------------------------------------------------------


def test_collect_makes_records_from_every_source_through_the_transforms() -> None:
    collector = DataCollector("edge-001", max_buffer_size=100)
    collector.register_source("sensors", lambda: [{"temperature": 21.5}, {"temperature": 22.0}])
    collector.register_source("system", lambda: [{"cpu_percent": 3.0}])
    pipeline = TransformPipeline().add(add_metadata({"region": "us-west"}))
    collector.register_transform(pipeline.process)

    assert asyncio.run(collector.collect()) == 3
    batch = collector.get_batch(10)
    assert [(r.data_type, r.payload, r.metadata) for r in batch] == [
        ("sensors", {"temperature": 21.5}, {"region": "us-west"}),
        ("sensors", {"temperature": 22.0}, {"region": "us-west"}),
        ("system", {"cpu_percent": 3.0}, {"region": "us-west"}),
    ]
    assert all(isinstance(r, DataRecord) and r.device_id == "edge-001" for r in batch)
    assert len({r.record_id for r in batch}) == 3
    assert all(r.timestamp.tzinfo is None for r in batch)


def test_a_rejected_record_is_counted_and_the_rest_of_its_source_kept() -> None:
    collector = DataCollector("edge-001")
    collector.register_source(
        "sensors", lambda: [{"temperature": 1.0}, {"temperature": "hot"}, {"temperature": 3.0}]
    )
    collector.register_source("broken", lambda: 1 / 0)
    collector.register_transform(validate_schema({"temperature": float}))

    # The seed would stop at "hot" and lose 3.0 with it.
    assert asyncio.run(collector.collect()) == 2
    assert [r.payload["temperature"] for r in collector.get_batch()] == [1.0, 3.0]
    assert collector.rejected_count == 1
    item, error = collector.rejected[0]
    assert item == {"temperature": "hot"}
    assert isinstance(error, ValueError) and str(error) == "Field temperature has wrong type"
    assert error.record.payload == {"temperature": "hot"}


def test_buffer_is_bounded_and_batches_go_back_in_order() -> None:
    collector = DataCollector("edge-001", max_buffer_size=3)
    readings = iter(range(5))
    collector.register_source("counter", lambda: [{"n": next(readings)}])
    for _ in range(5):
        asyncio.run(collector.collect())
    assert collector.buffer_size == 3 and collector.dropped_count == 2
    batch = collector.get_batch(2)
    assert [r.payload["n"] for r in batch] == [2, 3]
    collector.return_batch(batch)
    assert [r.payload["n"] for r in collector.get_batch(100)] == [2, 3, 4]
    assert collector.get_batch() == []


def test_example_sensor_source_gives_the_seeds_fields() -> None:
    (reading,) = collect_sensor_data()
    assert set(reading) == {"temperature", "humidity", "pressure"}


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((5,), TypeError, "device_id"),
        (("d", "10"), TypeError, "max_buffer_size"),
        (("d", 0), ValueError, "max_buffer_size"),
    ],
)
def test_collector_arguments_are_checked(args, error, match) -> None:
    with pytest.raises(error, match=match):
        DataCollector(*args)


def test_the_migration_guides_import_lines_work() -> None:
    """docs/migrating-from-seed.md's "after" imports, run as written."""
    from pathlib import Path

    guide = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-seed.md"
    block = guide.read_text().split("```python examples/python/seed_collector.py\n", 1)[1]
    after = block.split("```", 1)[0].split("# edgepipe's, the only lines that change:\n", 1)[1]
    names: dict = {}
    exec(after, names)  # noqa: S102 - the guide's own text
    assert names["DataRecord"] is DataRecord and names["DataCollector"] is DataCollector
    assert {"TransformPipeline", "BatchProcessor", "DataDeliveryService", "PersistentDeliveryQueue"} <= set(names)
