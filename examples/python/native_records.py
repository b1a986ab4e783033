"""Records: JSON Lines bytes and dicts, each record read (checked, normalised) by the core."""

import edgepipe

data = (
    b'{"record_id": "r1", "device_id": "edge-001", "timestamp": "2026-01-01T00:00:00+01:00",'
    b' "data_type": "sensors", "payload": {"temperature": 22.87}}\n'
    b'{"record_id": "r2", "device_id": "edge-001", "timestamp": 1767225610,'
    b' "data_type": "sensors", "payload": {"temperature": 23.1}, "metadata": {"site": "f1"}}\n'
    b"{not json\n"
)

# Check and normalise in bulk: good lines out in canonical form, bad lines reported.
result = edgepipe.normalize_jsonl(data)
print(result.records.decode(), end="")
for error in result.errors:
    print("line", error.line, error.error_type.__name__)

# Bytes to dicts (the seed's DataRecord.to_dict() shape) and back.
records = edgepipe.read_jsonl(result.records)
print(records[0]["timestamp"], records[1]["metadata"])
assert edgepipe.write_jsonl(records) == result.records
