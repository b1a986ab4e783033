"""Windows: readings in, aggregate records out; the caller drives the clock."""

import edgepipe

window = edgepipe.Window.from_toml(
    """
    kind = "tumbling"
    size_seconds = 10
    aggregates = ["count", "mean", "max", "p99"]
    late = "output"
    """
)
readings = [
    {"record_id": f"r{second}", "device_id": "edge-001", "timestamp": 1767225600 + second,
     "data_type": "sensors", "payload": {"temperature": 20.0 + second / 10}}
    for second in range(0, 25, 2)
]

out = window.push(readings)  # windows the watermark passed are emitted
for aggregate in edgepipe.read_jsonl(out.aggregates):
    print(aggregate["metadata"]["window.start"], aggregate["payload"])

state = window.snapshot()  # bytes: resume after a restart
resumed = edgepipe.Window.restore(state)
late = resumed.push([dict(readings[0], record_id="late")]).late  # its window is closed
rest = resumed.flush().aggregates
print(len(edgepipe.read_jsonl(rest)), "window flushed,", late.count(b"\n"), "late reading")
assert resumed.stats()["late_routed"] == 1
