"""Window: config from JSON/TOML/dict, readings in (JSON Lines or dicts), aggregates out."""

import json

import pytest

import edgepipe
from conftest import jsonl, reading
from edgepipe import ConfigError, InvalidJsonError, SnapshotError, Window, WindowOutput

TUMBLING = {"kind": "tumbling", "size_seconds": 10, "late": "output"}

T0 = 1767225600.0  # 2026-01-01T00:00:00Z, the readings' epoch


def readings() -> list:
    return [
        reading("r1", second=0, temperature=20.0),
        reading("r2", second=4, temperature=22.0),
        reading("r3", second=12, temperature=30.0),
    ]


def test_tumbling_window_emits_when_the_watermark_passes_and_on_flush() -> None:
    window = Window.from_dict(TUMBLING)

    first = window.push_jsonl(jsonl(readings()))

    assert isinstance(first, WindowOutput)
    [aggregate] = edgepipe.read_jsonl(first.aggregates)
    assert aggregate["data_type"] == "sensors.agg"
    assert aggregate["device_id"] == "dev-0001"
    assert aggregate["payload"] == {
        "temperature.count": 2,
        "temperature.min": 20.0,
        "temperature.max": 22.0,
        "temperature.mean": 21.0,
    }
    assert aggregate["metadata"]["window.start"] == "2026-01-01T00:00:00Z"
    assert aggregate["metadata"]["window.closed_by"] == "watermark"
    assert (first.late, first.rejected, first.errors) == (b"", b"", [])
    assert window.stream_time == T0 + 12

    flushed = edgepipe.read_jsonl(window.flush().aggregates)
    assert [(a["payload"]["temperature.count"], a["metadata"]["window.closed_by"]) for a in flushed] == [(1, "flush")]
    stats = window.stats()
    assert (stats["records_in"], stats["windows_emitted"], stats["open_windows"]) == (3, 2, 0)


def test_json_toml_and_dict_configs_agree() -> None:
    data = jsonl(readings())
    outputs = [
        window.push_jsonl(data).aggregates + window.flush().aggregates
        for window in (
            Window.from_dict(TUMBLING),
            Window.from_json(json.dumps(TUMBLING)),
            Window.from_toml('kind = "tumbling"\nsize_seconds = 10\nlate = "output"\n'),
        )
    ]
    assert outputs[0] == outputs[1] == outputs[2] != b""


def test_dicts_in_give_what_json_lines_in_give() -> None:
    by_lines = Window.from_dict(TUMBLING)
    by_dicts = Window.from_dict(TUMBLING)
    assert by_dicts.push(readings()).aggregates == by_lines.push_jsonl(jsonl(readings())).aggregates
    assert by_dicts.flush().aggregates == by_lines.flush().aggregates


def test_late_readings_go_to_the_late_output() -> None:
    window = Window.from_dict(TUMBLING)
    window.push(readings())

    out = window.push([reading("late-1", second=3, temperature=99.0)])

    assert out.aggregates == b""
    assert [record["record_id"] for record in edgepipe.read_jsonl(out.late)] == ["late-1"]
    assert window.stats()["late_routed"] == 1


def test_advance_closes_idle_series_by_the_callers_clock() -> None:
    window = Window.from_dict({"kind": "tumbling", "size_seconds": 10, "idle_timeout_seconds": 30})
    window.push([reading("r1", second=1, temperature=1.0)])

    # The clock starts at the first advance: the series has been quiet since then.
    assert window.advance(T0 + 20).aggregates == b""
    assert window.advance(T0 + 49).aggregates == b""
    [closed] = edgepipe.read_jsonl(window.advance(T0 + 50).aggregates)
    assert closed["metadata"]["window.closed_by"] == "idle"


def test_rejected_readings_carry_the_reason() -> None:
    window = Window.from_dict({"kind": "tumbling", "size_seconds": 10, "fields": ["temperature"]})
    out = window.push([reading("r1", second=1, temperature="hot")])

    [rejected] = [json.loads(line) for line in out.rejected.splitlines()]
    assert rejected["stage"] == "window"
    assert rejected["reason"]["code"] == "window.non_numeric"
    assert rejected["record"]["record_id"] == "r1"


def test_bad_lines_are_reported_and_the_rest_aggregated() -> None:
    window = Window.from_dict(TUMBLING)
    data = jsonl(readings()[:1]) + b"{oops\n" + jsonl(readings()[1:])

    out = window.push_jsonl(data)

    assert [(error.line, error.error_type) for error in out.errors] == [(2, InvalidJsonError)]
    assert window.stats()["records_in"] == 3
    assert repr(out) == "WindowOutput(aggregates=<1 lines>, late=<0 lines>, rejected=<0 lines>, errors=<1 lines>)"


def test_snapshot_and_restore_resume_the_same_windows() -> None:
    window = Window.from_dict(TUMBLING)
    window.push(readings()[:2])

    snapshot = window.snapshot()
    restored = Window.restore(snapshot)

    assert restored.stats() == window.stats()
    rest = [reading("r3", second=12, temperature=30.0)]
    assert restored.push(rest).aggregates == window.push(rest).aggregates != b""
    with pytest.raises(SnapshotError):
        Window.restore(b'{"format": 99}')
    with pytest.raises(SnapshotError):
        Window.restore(snapshot[: len(snapshot) // 2])


def test_bad_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"window\.hop_seconds"):
        Window.from_dict({"kind": "hopping", "size_seconds": 60})
    with pytest.raises(ConfigError, match="sizee_seconds"):
        Window.from_json('{"sizee_seconds": 10}')
    with pytest.raises(ConfigError, match="window"):
        Window.from_toml("kind = ")


def test_quantiles_and_count_windows() -> None:
    window = Window.from_dict({"kind": "count", "count": 100, "aggregates": ["count", "p50", "max"]})
    out = window.push([reading(f"r{i}", second=i, v=float(i)) for i in range(100)])
    [aggregate] = edgepipe.read_jsonl(out.aggregates)
    assert aggregate["payload"]["v.count"] == 100
    assert aggregate["payload"]["v.max"] == 99.0
    assert aggregate["payload"]["v.p50"] == pytest.approx(49.5, rel=0.03)
