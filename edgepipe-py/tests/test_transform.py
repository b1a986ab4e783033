"""Pipeline: built from JSON and TOML config, run over JSON Lines bytes."""

import json
import re
import threading
from pathlib import Path

import pytest

import edgepipe
from edgepipe import (
    ConfigError,
    EdgepipeError,
    InvalidJsonError,
    LineError,
    Pipeline,
    ProcessResult,
)

CONFIG = {
    "transforms": [
        {"type": "add_metadata", "metadata": {"site": "factory-1"}},
        {"type": "validate_schema", "fields": {"temperature": "number"}},
        {"type": "rename_fields", "mapping": {"temperature": "temp_c"}},
    ]
}

CONFIG_TOML = """
[[transforms]]
type = "add_metadata"
metadata = { site = "factory-1" }

[[transforms]]
type = "validate_schema"
fields = { temperature = "number" }

[[transforms]]
type = "rename_fields"
mapping = { temperature = "temp_c" }
"""

STAGES = ["add_metadata", "validate_schema", "rename_fields"]


def record(record_id: str, **payload: object) -> bytes:
    """One input line in the seed's `DataRecord.to_dict()` shape."""
    return json.dumps(
        {
            "record_id": record_id,
            "device_id": "dev-0001",
            "timestamp": "2026-01-01T00:00:00.100Z",
            "data_type": "sensors",
            "payload": payload,
        }
    ).encode()


def jsonl(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def lines_of(data: bytes) -> list:
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline.from_json(json.dumps(CONFIG))


def test_from_json_runs_records_through_every_stage(pipeline: Pipeline) -> None:
    result = pipeline.process_jsonl(jsonl(record("r1", temperature=22.87, humidity=50.3)))

    assert isinstance(result, ProcessResult)
    assert result.records == (
        b'{"record_id":"r1","device_id":"dev-0001","timestamp":"2026-01-01T00:00:00.100Z",'
        b'"data_type":"sensors","payload":{"temp_c":22.87,"humidity":50.3},'
        b'"metadata":{"site":"factory-1"}}\n'
    )
    assert result.quarantine == b""
    assert result.errors == []
    assert len(pipeline) == 3


def test_from_toml_builds_the_same_pipeline(pipeline: Pipeline) -> None:
    from_toml = Pipeline.from_toml(CONFIG_TOML)
    data = jsonl(record("r1", temperature=1.5), record("r2", temperature="hot"))

    assert [stage["name"] for stage in from_toml.stats()] == STAGES
    expected = pipeline.process_jsonl(data)
    actual = from_toml.process_jsonl(data)
    assert (actual.records, actual.quarantine) == (expected.records, expected.quarantine)


@pytest.mark.parametrize(
    ("build", "config"),
    [
        (
            Pipeline.from_json,
            '{"transforms": [{"type": "rename_fields", "mapingg": {"a": "b"}}]}',
        ),
        (
            Pipeline.from_toml,
            '[[transforms]]\ntype = "rename_fields"\nmapingg = { a = "b" }\n',
        ),
    ],
    ids=["json", "toml"],
)
def test_bad_config_raises_config_error_naming_the_key(build, config: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(config)

    message = str(raised.value)
    assert "transforms[0]" in message
    assert "mapingg" in message
    assert isinstance(raised.value, EdgepipeError)


def test_unknown_transform_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_transform"):
        Pipeline.from_json('{"transforms": [{"type": "no_such_transform"}]}')


def test_quarantine_holds_the_record_and_the_reason(pipeline: Pipeline) -> None:
    result = pipeline.process_jsonl(
        jsonl(
            record("r1", temperature=20.5),
            record("r2", temperature="broken"),
            record("r3", temperature=-4),
        )
    )

    assert [line["record_id"] for line in lines_of(result.records)] == ["r1", "r3"]
    [quarantined] = lines_of(result.quarantine)
    assert quarantined["stage"] == "validate_schema"
    assert quarantined["stage_index"] == 1
    assert quarantined["reason"]["code"] == "schema.wrong_type"
    assert quarantined["reason"]["field"] == "temperature"
    assert quarantined["record"]["record_id"] == "r2"
    assert quarantined["record"]["payload"] == {"temperature": "broken"}
    assert quarantined["record"]["metadata"] == {"site": "factory-1"}


def test_stats_count_every_stage_and_add_up_across_batches(pipeline: Pipeline) -> None:
    batch = jsonl(record("r1", temperature=20.5), record("r2", temperature="broken"))
    pipeline.process_jsonl(batch)
    pipeline.process_jsonl(batch)

    assert pipeline.stats() == [
        {"name": "add_metadata", "records_in": 4, "records_out": 4, "dropped": 0, "quarantined": 0},
        {"name": "validate_schema", "records_in": 4, "records_out": 2, "dropped": 0, "quarantined": 2},
        {"name": "rename_fields", "records_in": 2, "records_out": 2, "dropped": 0, "quarantined": 0},
    ]


def test_bad_lines_are_reported_and_the_batch_goes_on(pipeline: Pipeline) -> None:
    data = jsonl(
        record("r1", temperature=1.0),
        b"{not json",
        b"",
        record("r2", temperature=2.0).replace(b'"dev-0001"', b"5"),
        record("r3", temperature=3.0),
    )

    result = pipeline.process_jsonl(data)

    assert [line["record_id"] for line in lines_of(result.records)] == ["r1", "r3"]
    assert [error.line for error in result.errors] == [2, 4]
    for error in result.errors:
        assert isinstance(error, LineError)
        assert error.error_type is InvalidJsonError
        assert error.message.startswith(f"line {error.line}: invalid record JSON")
    assert "device_id" in result.errors[1].message
    assert pipeline.stats()[0]["records_in"] == 2


def test_empty_input_gives_empty_outputs(pipeline: Pipeline) -> None:
    result = pipeline.process_jsonl(b"")
    assert (result.records, result.quarantine, result.errors) == (b"", b"", [])


def test_input_must_be_bytes(pipeline: Pipeline) -> None:
    with pytest.raises(TypeError):
        pipeline.process_jsonl(record("r1", temperature=1.0).decode())  # type: ignore[arg-type]


def test_one_pipeline_shared_by_threads_counts_every_record(pipeline: Pipeline) -> None:
    batch = jsonl(*(record(f"r{index}", temperature=float(index)) for index in range(200)))
    failures: list = []

    def work() -> None:
        try:
            for _ in range(10):
                assert len(lines_of(pipeline.process_jsonl(batch).records)) == 200
        except BaseException as error:  # reported below, on the main thread
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert pipeline.stats()[0]["records_in"] == 4 * 10 * 200


def test_reprs_say_what_they_hold(pipeline: Pipeline) -> None:
    result = pipeline.process_jsonl(jsonl(b"{"))
    assert repr(pipeline) == 'Pipeline(["add_metadata", "validate_schema", "rename_fields"])'
    assert repr(result) == "ProcessResult(records=<0 bytes>, quarantine=<0 bytes>, errors=<1 lines>)"
    assert repr(result.errors[0]).startswith("LineError(line=1, error_type=InvalidJsonError, ")


def test_version_matches_the_workspace() -> None:
    cargo_toml = (Path(__file__).parents[2] / "Cargo.toml").read_text()
    package = cargo_toml.split("[workspace.package]", 1)[1]
    version = re.search(r'^version = "([^"]+)"', package, re.MULTILINE)
    assert version is not None
    assert edgepipe.__version__ == version.group(1)


def test_from_dict_builds_the_same_pipeline(pipeline: Pipeline) -> None:
    from_dict = Pipeline.from_dict(CONFIG)
    data = jsonl(record("r1", temperature=1.5), record("r2", temperature="hot"))

    expected = pipeline.process_jsonl(data)
    actual = from_dict.process_jsonl(data)
    assert (actual.records, actual.quarantine) == (expected.records, expected.quarantine)
    with pytest.raises(ConfigError, match=r"transforms\[0\].*mapingg"):
        Pipeline.from_dict({"transforms": [{"type": "rename_fields", "mapingg": {}}]})
    with pytest.raises(TypeError, match="config"):
        Pipeline.from_dict({"transforms": [{"type": "add_metadata", "metadata": {"a": object()}}]})


def test_builder_makes_the_config_and_the_pipeline(pipeline: Pipeline) -> None:
    builder = (
        Pipeline.builder()
        .add_metadata({"site": "factory-1"})
        .validate_schema({"temperature": "number"})
        .rename_fields({"temperature": "temp_c"})
    )

    assert builder.to_dict() == CONFIG
    assert len(builder) == 3
    assert repr(builder) == "PipelineBuilder(['add_metadata', 'validate_schema', 'rename_fields'])"
    built = builder.build()
    data = jsonl(record("r1", temperature=1.5, humidity=3), record("r2", temperature="hot"))
    assert built.process_jsonl(data).records == pipeline.process_jsonl(data).records


def test_builder_takes_any_transform_by_type_and_the_core_checks_it() -> None:
    built = (
        Pipeline.builder()
        .filter_fields(["temperature", "operator"])
        .mask_sensitive_fields(["operator"], mask="***")
        .add("add_computed_field", field="temp_f", expression={"op": "scale", "input": "temperature", "factor": 1.8, "offset": 32})
        .build()
    )
    result = built.process_jsonl(jsonl(record("r1", temperature=10.0, operator="ann", rpm=5)))
    [out] = lines_of(result.records)
    assert out["payload"] == {"temperature": 10.0, "operator": "***", "temp_f": 50.0}

    with pytest.raises(ConfigError, match=r"transforms\[0\]"):
        Pipeline.builder().add("deadband", no_such_key=1).build()


def test_encode_jsonl_runs_the_pipeline_and_batches_in_one_call(pipeline: Pipeline) -> None:
    data = jsonl(
        *(record(f"r{index}", temperature=float(index)) for index in range(250)),
        record("bad", temperature="hot"),
        b"{oops",
    )

    result = pipeline.encode_jsonl(data, "gw-1", created_at=1767225600.0)

    # The same batches as the two bulk calls one after the other.
    two_calls = edgepipe.encode_jsonl(
        Pipeline.from_dict(CONFIG).process_jsonl(data).records, "gw-1", created_at=1767225600.0
    )
    assert [batch.to_bytes() for batch in result.batches] == [batch.to_bytes() for batch in two_calls]
    assert [batch.record_count for batch in result.batches] == [100, 100, 50]
    assert lines_of(result.batches[0].decode())[0]["payload"] == {"temp_c": 0.0}
    [quarantined] = lines_of(result.quarantine)
    assert quarantined["record"]["record_id"] == "bad"
    assert [(error.line, error.error_type) for error in result.errors] == [(252, InvalidJsonError)]
    assert pipeline.stats()[0]["records_in"] == 251
    assert repr(result) == "EncodeResult(batches=<3 batches>, quarantine=<" + str(len(result.quarantine)) + " bytes>, errors=<1 lines>)"
    threaded = pipeline.encode_jsonl(data, "gw-1", created_at=1767225600.0, threads=2, codec="msgpack")
    assert sum(batch.record_count for batch in threaded.batches) == 250
