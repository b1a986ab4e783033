"""Quickstart: an edgepipe pipeline over JSON Lines, from Python."""

import edgepipe

pipeline = edgepipe.Pipeline.from_toml(
    """
    [[transforms]]
    type = "add_metadata"
    metadata = { site = "factory-1" }

    [[transforms]]
    type = "validate_schema"
    fields = { temperature = { type = "number", min = -40, max = 85 } }
    """
)

readings = b"\n".join(
    [
        b'{"record_id": "r1", "device_id": "edge-001", "timestamp": "2026-01-01T00:00:00",'
        b' "data_type": "sensors", "payload": {"temperature": 22.87}}',
        b'{"record_id": "r2", "device_id": "edge-001", "timestamp": "2026-01-01T00:00:10",'
        b' "data_type": "sensors", "payload": {"temperature": -999}}',
        b"{not json",
    ]
)

# The whole batch runs in Rust with the GIL released.
result = pipeline.process_jsonl(readings)
print(result.records.decode(), end="")  # what goes on to the cloud
print(result.quarantine.decode(), end="")  # set aside, with the reason
for error in result.errors:  # lines that could not be read; the rest went on
    print(error.line, error.error_type.__name__, error.message)
for stage in pipeline.stats():
    print(stage["name"], stage["records_in"], stage["records_out"], stage["quarantined"])

assert result.records.count(b"\n") == 1
assert b"schema.below_min" in result.quarantine
assert [error.line for error in result.errors] == [3]
