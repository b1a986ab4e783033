"""Pipelines from a dict or a builder: the core's config, checked by the core."""

import edgepipe

pipeline = (
    edgepipe.Pipeline.builder()
    .add_metadata({"site": "factory-1"})
    .validate_schema({"temperature": {"type": "number", "min": -40, "max": 85}})
    .add("add_computed_field", field="temperature_f",
         expression={"op": "scale", "input": "temperature", "factor": 1.8, "offset": 32})
    .build()
)
# The same pipeline from the config dict the builder made.
same = edgepipe.Pipeline.from_dict(
    edgepipe.Pipeline.builder().add_metadata({"site": "factory-1"}).to_dict()
)

result = pipeline.process_jsonl(
    b'{"record_id": "r1", "device_id": "edge-001", "timestamp": "2026-01-01T00:00:00",'
    b' "data_type": "sensors", "payload": {"temperature": 20.0}}\n'
    b'{"record_id": "r2", "device_id": "edge-001", "timestamp": "2026-01-01T00:00:01",'
    b' "data_type": "sensors", "payload": {"temperature": -999}}\n'
)
print(edgepipe.read_jsonl(result.records)[0]["payload"])  # temperature_f added
print(result.quarantine.decode(), end="")  # r2, below the minimum
assert len(same) == 1 and b"schema.below_min" in result.quarantine
