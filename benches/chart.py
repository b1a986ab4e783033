#!/usr/bin/env python3
"""Draws bytes per record by codec and compression from an edgepipe-bench report.

    python3 benches/chart.py docs/bench/edgepipe-bench.json docs/bench/bytes-per-record.svg

Reads the `bandwidth` scenario's rows and writes an SVG bar chart (standard library
only): for every codec × compression, two bars: the seed's conditions (100-record
batches, the workload's UUID record ids) and edgepipe's (10 s / 1 MiB batches,
sequence ids). The x axis is logarithmic: the values span two orders of magnitude.
"""

import json
import math
import sys
from xml.sax.saxutils import escape

CONDITIONS = [
    ("100-records", "uuid", "100-record batches, UUID ids (the seed's)", "#9aa5b1"),
    ("10s-1MiB", "sequence", "10 s / 1 MiB batches, sequence ids (edgepipe's)", "#1f6feb"),
]
ROW_HEIGHT = 16
GAP = 10
LEFT = 170
PLOT_WIDTH = 520
TOP = 56


def bandwidth_rows(report):
    for scenario in report["scenarios"]:
        if scenario["scenario"] == "bandwidth":
            return scenario["rows"], scenario["config"]
    raise SystemExit("the report has no bandwidth scenario: run edgepipe-bench --scenario bandwidth")


def chart(report):
    rows, config = bandwidth_rows(report)
    value = {
        (r["codec"], r["compression"], r["batch_policy"], r["record_ids"]): r["bytes_per_record"]
        for r in rows
    }
    groups = [(codec, compression) for codec in config["codecs"] for compression in config["compressions"]]
    low, high = 0.5, max(value.values()) * 1.5
    scale = lambda v: LEFT + PLOT_WIDTH * (math.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low))
    height = TOP + len(groups) * (2 * ROW_HEIGHT + GAP) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT + PLOT_WIDTH + 90}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">Bytes on the wire per record '
        f'({report["records"]:,} records of the shared workload; raw JSON '
        f'{config["raw_json_bytes_per_record"]:.0f} B)</text>',
    ]
    for index, (_, _, label, colour) in enumerate(CONDITIONS):
        x = 10 + index * 330
        out.append(f'<rect x="{x}" y="30" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="39">{escape(label)}</text>')
    y = TOP
    for codec, compression in groups:
        out.append(
            f'<text x="{LEFT - 6}" y="{y + ROW_HEIGHT + 4}" text-anchor="end">'
            f"{escape(codec)} + {escape(compression)}</text>"
        )
        for policy, ids, _, colour in CONDITIONS:
            v = value.get((codec, compression, policy, ids))
            if v is not None:
                width = max(scale(max(v, low)) - LEFT, 1)
                out.append(
                    f'<rect x="{LEFT}" y="{y}" width="{width:.1f}" height="{ROW_HEIGHT - 2}" fill="{colour}"/>'
                )
                out.append(f'<text x="{LEFT + width + 4:.1f}" y="{y + ROW_HEIGHT - 4}">{v:.2f}</text>')
            y += ROW_HEIGHT
        y += GAP
    for tick in [1, 2, 5, 10, 20, 50, 100, 200]:
        if tick < high:
            x = scale(tick)
            out.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{y}" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{tick}</text>')
    out.append(f'<text x="{LEFT + PLOT_WIDTH / 2}" y="{y + 30}" text-anchor="middle">bytes per record (log scale)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as source:
        report = json.load(source)
    with open(sys.argv[2], "w", encoding="utf-8") as target:
        target.write(chart(report))


if __name__ == "__main__":
    main()
