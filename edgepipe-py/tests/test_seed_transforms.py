"""edgepipe.transforms: the seed's six factories and TransformPipeline, same results."""

import numbers
import random
from datetime import datetime

import pytest

import seed_reference as ref
from edgepipe.edge_collector import DataRecord
from edgepipe.transforms import (
    SeedTransform,
    TransformPipeline,
    add_computed_field,
    add_metadata,
    filter_fields,
    mask_sensitive_fields,
    rename_fields,
    validate_schema,
)

FIELDS = ["temperature", "humidity", "pressure", "password", "note", "flag"]


def random_payload(rng: random.Random) -> dict:
    values = [
        lambda: round(rng.uniform(-40, 85), 2),
        lambda: rng.randint(-1000, 1000),
        lambda: rng.choice([True, False]),
        lambda: rng.choice(["ok", "hot", "é"]),
        lambda: None,
        lambda: [rng.random(), "x"],
    ]
    names = rng.sample(FIELDS, rng.randint(0, len(FIELDS)))
    return {name: rng.choice(values)() for name in names}


def record_pairs(count: int = 200):
    rng = random.Random(7)
    for index in range(count):
        fields = dict(
            record_id=f"r-{index}",
            device_id=f"dev-{index % 3}",
            timestamp=datetime(2026, 1, 1, 0, 0, index % 60, index),
            data_type="sensors",
            payload=random_payload(rng),
            metadata=rng.choice([{}, {"site": "old"}, {"region": "eu", "site": "f0"}]),
        )
        yield DataRecord(**fields), ref.DataRecord(**{**fields, "metadata": dict(fields["metadata"]), "payload": dict(fields["payload"])})


FACTORIES = [
    ("add_metadata", ({"region": "us-west", "site": "factory-1"},)),
    ("filter_fields", (["temperature", "pressure", "absent"],)),
    ("rename_fields", ({"temperature": "temp_c", "humidity": "pressure"},)),
    ("mask_sensitive_fields", (["password", "note"],)),
    ("validate_schema", ({"temperature": float, "flag": bool, "note": (str, type(None))},)),
    ("add_computed_field", ("n_fields", len)),
]


def outcome(transform, record):
    try:
        return transform(record).to_dict()
    except ValueError as error:
        return ("ValueError", str(error))


@pytest.mark.parametrize(("name", "args"), FACTORIES, ids=[name for name, _ in FACTORIES])
def test_each_factory_gives_the_seeds_result(name: str, args: tuple) -> None:
    import edgepipe.transforms as ours_module

    ours = getattr(ours_module, name)(*args)
    seed = getattr(ref, name)(*args)
    assert isinstance(ours, SeedTransform)
    for ours_record, seed_record in record_pairs():
        before = ours_record.to_dict()
        assert outcome(ours, ours_record) == outcome(seed, seed_record)
        assert ours_record.to_dict() == before, "the input record was changed"


def test_a_pipeline_mixing_native_and_python_transforms_matches_the_seed() -> None:
    def python_stage(record):
        return ref_or_ours_replace(record, data_type=record.data_type.upper())

    def ref_or_ours_replace(record, **changes):
        import dataclasses

        return dataclasses.replace(record, **changes)

    def build(module):
        return (
            module.TransformPipeline()
            .add(module.add_metadata({"region": "us-west"}))
            .add(module.rename_fields({"temperature": "temp_c"}))
            .add(python_stage)
            .add(module.add_computed_field("temp_f", lambda p: p.get("temp_c", 0) * 9 / 5 + 32 if isinstance(p.get("temp_c", 0), (int, float)) else None))
            .add(module.mask_sensitive_fields(["password"]))
            .add(module.filter_fields(["temp_c", "temp_f", "password", "flag"]))
        )

    import edgepipe.transforms as ours_module

    ours, seed = build(ours_module), build(ref)
    assert isinstance(ours, TransformPipeline)
    for ours_record, seed_record in record_pairs():
        assert outcome(ours.process, ours_record) == outcome(seed.process, seed_record)


def test_validate_schema_answers_as_isinstance() -> None:
    schema = {
        "count": int,  # a bool is an int in Python
        "ratio": numbers.Number,
        "name": (str, bytes),
        "anything": object,
        "items": list,
        "nothing": type(None),
    }
    values = [None, True, 3, 2.5, "s", [1], {"k": 1}]
    ours, seed = validate_schema(schema), ref.validate_schema(schema)
    for field in schema:
        for value in values:
            pair = DataRecord("r", "d", datetime(2026, 1, 1), "t", {field: value})
            assert outcome(ours, pair) == outcome(seed, ref.DataRecord("r", "d", datetime(2026, 1, 1), "t", {field: value})), (field, value)


def test_a_validation_failure_carries_the_record_and_field() -> None:
    record = DataRecord("r", "d", datetime(2026, 1, 1), "t", {"temperature": "hot"})
    pipeline = TransformPipeline().add(add_metadata({"site": "f1"})).add(validate_schema({"temperature": float}))
    with pytest.raises(ValueError, match="^Field temperature has wrong type$") as raised:
        pipeline.process(record)
    assert raised.value.field == "temperature"
    assert raised.value.code == "schema.wrong_type"
    assert raised.value.record.metadata == {"site": "f1"}
    assert raised.value.record.payload == {"temperature": "hot"}


def test_transforms_list_is_the_seeds_plain_list() -> None:
    pipeline = TransformPipeline()
    assert pipeline.transforms == []
    stage = add_metadata({"a": "1"})
    assert pipeline.add(stage) is pipeline
    pipeline.transforms.append(rename_fields({"x": "y"}))
    record = DataRecord("r", "d", datetime(2026, 1, 1), "t", {"x": 1})
    assert pipeline.process(record).to_dict()["payload"] == {"y": 1}
    pipeline.transforms = []
    assert pipeline.process(record) is record


def test_computed_field_gets_the_payload_dict_and_its_errors_propagate() -> None:
    seen = []
    record = DataRecord("r", "d", datetime(2026, 1, 1), "t", {"x": 2})
    result = add_computed_field("y", lambda payload: seen.append(payload) or payload["x"] * 2)(record)
    assert seen == [{"x": 2}] and seen[0] is record.payload
    assert result.payload == {"x": 2, "y": 4}
    with pytest.raises(KeyError):
        add_computed_field("z", lambda payload: payload["missing"])(record)


@pytest.mark.parametrize(
    ("factory", "args", "match"),
    [
        (add_metadata, (["site"],), "metadata must be a dict"),
        (add_metadata, ({"site": 1},), "metadata\\[.site.\\] must be a str"),
        (filter_fields, ("temperature",), "allowed_fields must be a list"),
        (filter_fields, ([1],), "allowed_fields must hold str"),
        (rename_fields, ({"a": None},), "mapping\\[.a.\\] must be a str"),
        (mask_sensitive_fields, (None,), "fields must be a list"),
        (validate_schema, ({"a": "float"},), "schema\\[.a.\\] must be a type"),
        (add_computed_field, ("f", 3), "compute must be callable"),
        (add_computed_field, (None, len), "field_name must be a str"),
    ],
)
def test_bad_arguments_raise_type_error_naming_them(factory, args, match) -> None:
    with pytest.raises(TypeError, match=match):
        factory(*args)


def test_a_native_transform_refuses_what_is_not_a_record() -> None:
    with pytest.raises(TypeError, match="must be an edgepipe DataRecord, not dict"):
        add_metadata({"a": "b"})({"payload": {}})
    with pytest.raises(TypeError, match="transform must be callable"):
        TransformPipeline().add(42)
