"""Smoke test of the uniffi-generated Python binding: every exported call once.

Run by tests/uniffi.rs as `python3 smoke.py BINDING_DIR ENDPOINT API_KEY QUEUE_DIR`,
with the generated `edgepipe.py` and `libedgepipe.so` in BINDING_DIR and an ingest
server listening at ENDPOINT. Prints one line per check; exits non-zero on the first
failure. The Rust test then reads the server's lake to see what arrived.
"""

import sys

sys.path.insert(0, sys.argv[1])
endpoint, api_key, queue_dir = sys.argv[2], sys.argv[3], sys.argv[4]

import edgepipe as ep  # noqa: E402  (the generated module, from BINDING_DIR)


def expect_failure(code, call, *args):
    try:
        call(*args)
    except ep.EdgepipeError.Failed as error:
        assert error.code == code, (error.code, error.kind, error.message)
        return error
    raise AssertionError(f"{call.__name__} did not fail with {code}")


print("version", ep.version())

# Records: JSON Lines in and out, typed fields.
jsonl = b"".join(
    b'{"record_id":"r-%d","device_id":"dev-%d","timestamp":"2026-01-01T00:00:0%d.000Z",'
    b'"data_type":"sensors","payload":{"temperature":%d.5,"count":%d,"ok":true,"tags":["a"]},'
    b'"metadata":{}}\n' % (i, i % 2, i, 20 + i, i)
    for i in range(6)
)
readings = ep.parse_jsonl(jsonl)
assert len(readings) == 6
first = readings[0]
assert first.record_id == "r-0" and first.device_id == "dev-0"
assert [f.name for f in first.payload] == ["temperature", "count", "ok", "tags"]
assert first.payload[0].value == ep.FieldValue.FLOAT(20.5)
assert first.payload[1].value == ep.FieldValue.INT(0)
assert first.payload[2].value == ep.FieldValue.BOOL(True)
assert first.payload[3].value == ep.FieldValue.JSON('["a"]')
assert ep.parse_jsonl(ep.to_jsonl(readings)) == readings
error = expect_failure(200, ep.parse_jsonl, b'{"record_id": \n')
assert "line 1" in error.message, error.message
print("records ok")

# A reading made field by field: empty id and timestamp ask for fresh ones.
made = ep.Reading(
    record_id="",
    device_id="dev-9",
    timestamp="",
    data_type="sensors",
    payload=[ep.Field(name="temperature", value=ep.FieldValue.FLOAT(-0.0))],
    metadata={"site": "f1"},
)
[made_back] = ep.parse_jsonl(ep.to_jsonl([made]))
assert len(made_back.record_id) == 36 and made_back.timestamp.endswith("Z"), made_back
assert made_back.metadata == {"site": "f1"}

# Pipelines from JSON and TOML config, with quarantine and counters.
pipeline = ep.Pipeline.from_json(
    '{"transforms": [{"type": "add_metadata", "metadata": {"region": "us-west"}},'
    ' {"type": "validate_schema", "on_invalid": "quarantine",'
    '  "fields": {"temperature": {"type": "number"}}}]}'
)
bad = ep.Reading(
    record_id="bad", device_id="dev-0", timestamp="2026-01-01T00:00:00Z",
    data_type="sensors", payload=[ep.Field(name="temperature", value=ep.FieldValue.TEXT("hot"))],
    metadata={},
)
result = pipeline.process(readings + [bad])
assert len(result.readings) == 6 and result.dropped == 0
assert all(r.metadata == {"region": "us-west"} for r in result.readings)
[quarantined] = result.quarantined
assert quarantined.reading.record_id == "bad" and quarantined.stage == "validate_schema"
assert quarantined.field == "temperature", quarantined
stats = pipeline.stats()
assert [s.name for s in stats] == ["add_metadata", "validate_schema"]
assert stats[1].records_in == 7 and stats[1].quarantined == 1
toml = ep.Pipeline.from_toml('[[transforms]]\ntype = "filter_fields"\nfields = ["count"]\n')
assert [f.name for f in toml.process(readings).readings[0].payload] == ["count"]
expect_failure(300, ep.Pipeline.from_json, '{"transforms": [{"type": "no_such_transform"}]}')
print("pipeline ok")

# Batches: every codec and compression round-trips; the id is deterministic.
compressions = ["none", "gzip", "lz4", "zstd"]
for codec in ["json", "json-python", "jsonl", "msgpack", "columnar"]:
    for compression in compressions:
        try:
            batch = ep.encode_batch("gw-1", codec, compression, result.readings)
        except ep.EdgepipeError.Failed as error:
            # zstd is a cargo feature of the core; a build without it says so.
            assert compression == "zstd" and error.code == 208, error
            continue
        assert batch.codec == codec and batch.compression == compression
        assert batch.record_count == 6 and len(batch.checksum) == 64
        assert ep.decode_batch(batch.bytes) == result.readings, (codec, compression)
        assert ep.batch_from_bytes(batch.bytes) == batch
gzip9 = ep.encode_batch("gw-1", "json", "gzip", result.readings, level=9)
again = ep.encode_batch("gw-1", "json", "gzip", result.readings, level=9)
assert gzip9.batch_id == again.batch_id and gzip9.payload == again.payload
tampered = bytearray(gzip9.bytes)
tampered[-1] ^= 0xFF
expect_failure(205, ep.decode_batch, bytes(tampered))
expect_failure(207, ep.batch_from_bytes, b"not a batch")
expect_failure(208, ep.encode_batch, "gw-1", "yaml", "none", result.readings)
print("batches ok")

# The durable queue: enqueue, take, nack, take again, ack; counters.
queue = ep.Queue.open(queue_dir, 0)
batches = [
    ep.encode_batch("gw-1", "columnar", "lz4", [r])
    for r in result.readings
]
ids = [queue.enqueue(b) for b in batches]
assert ids == sorted(ids) and len(set(ids)) == 6
[taken] = queue.take(1)
assert taken.batch == batches[0] and taken.attempts == 0
assert queue.nack(taken.entry_id, 0) is False
[retaken] = queue.take(1)
assert retaken.entry_id == taken.entry_id and retaken.attempts == 1
queue.ack(retaken.entry_id)
expect_failure(104, queue.ack, retaken.entry_id)
stats = queue.stats()
assert stats.pending == 5 and stats.in_flight == 0 and stats.acked == 1, stats
print("queue ok")

# Delivery: the worker drains the other five to the ingest server.
delivery = ep.Delivery.start_http(queue, endpoint, api_key)
delivery.notify()
progress = delivery.wait(5, 60_000)
assert progress.batches_sent == 5 and progress.dead_lettered == 0, progress
final = delivery.shutdown()
assert final.batches_sent == 5 and final.records_sent == 5 and final.dead_lettered == 0, final
assert queue.stats().pending == 0
assert delivery.shutdown().batches_sent == 0
print("delivery ok")
