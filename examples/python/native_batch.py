"""Batches: encode many records in one call, every codec and compression, decode within limits."""

import edgepipe

data = b"".join(
    b'{"record_id": "gw-1:0:%d", "device_id": "edge-%03d", "timestamp": %d,'
    b' "data_type": "sensors", "payload": {"temperature": %.2f}}\n' % (n, n % 5, 1767225600 + n, 20 + n % 7)
    for n in range(250)
)

# The seed's batches: JSON, gzip level 6, 100 records, sha256 checksum.
batches = edgepipe.encode_jsonl(data, "gw-1")
first = batches[0]
print(len(batches), first.batch_id, first.record_count, first.compressed_size, first.sequence)

# edgepipe's own: columnar + zstd, far smaller on the wire.
[small] = edgepipe.encode_jsonl(data, "gw-1", codec="columnar", compression="zstd", level=9,
                                max_records=1000)
print("columnar+zstd:", small.compressed_size, "bytes for", small.record_count, "records")

# A batch as bytes (what queues hold) and back; decoding is bounded.
copy = edgepipe.Batch.from_bytes(first.to_bytes())
records = copy.records(limits=edgepipe.DecodeLimits(max_records=1000))
assert copy.decode().count(b"\n") == len(records) == 100

# Record by record, closed by count, bytes or age on the caller's clock.
batcher = edgepipe.Batcher("gw-1", codec="msgpack", compression="lz4", max_records=100, max_age=5.0)
closed = batcher.push_jsonl(data, now=1767225600.0)
closed += batcher.poll(now=1767225605.0)  # the open batch is 5 s old: closed
print([batch.record_count for batch in closed])
