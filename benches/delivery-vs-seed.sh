#!/usr/bin/env bash
# Delivery over loopback, edgepipe against the seed, measured back to back on the
# same records (issue 6's benchmark): the seed's DataDeliveryService → the seed's
# FastAPI service (benches/seed/delivery_bench.py), and edgepipe's DeliveryWorker
# + HTTP sink → edgepipe's ingest server (delivery-bench), with the server keeping
# nothing (as the seed's does), one batch in flight and with several lanes, and
# with the data lake on disk.
#
#   benches/delivery-vs-seed.sh [RECORDS]        (default 20000)
#
# Input: $EDGEPIPE_WORKLOAD (JSON Lines in the shared workload format), else the
# shared bench/workload.py beside the checkout. Python packages (fastapi, uvicorn,
# aiohttp, lz4) go into $EDGEPIPE_VENV (default ~/.cache/edgepipe/venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

records=${1:-20000}
venv=${EDGEPIPE_VENV:-$HOME/.cache/edgepipe/venv}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgepipe/target}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "${EDGEPIPE_WORKLOAD:-}" ]; then
    script=../shared/bench/workload.py
    [ -f "$script" ] || { echo "set EDGEPIPE_WORKLOAD to a workload JSONL file" >&2; exit 2; }
    python3 "$script" -n "$records" -o "$work/workload.jsonl"
    export EDGEPIPE_WORKLOAD="$work/workload.jsonl"
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r edgepipe-core/tests/fixtures/seed/requirements.txt aiohttp lz4
cargo build --quiet --release -p edgepipe-benches --features http,ingest-server --bin delivery-bench

seed=$("$venv/bin/python" benches/seed/delivery_bench.py --input "$EDGEPIPE_WORKLOAD" --records "$records")
discard=$("$CARGO_TARGET_DIR/release/delivery-bench" --records "$records" --store discard)
grouped=$("$CARGO_TARGET_DIR/release/delivery-bench" --records "$records" --store discard --enqueue all)
lanes2=$("$CARGO_TARGET_DIR/release/delivery-bench" --records "$records" --store discard --lanes 2)
lanes4=$("$CARGO_TARGET_DIR/release/delivery-bench" --records "$records" --store discard --lanes 4)
lake=$("$CARGO_TARGET_DIR/release/delivery-bench" --records "$records" --store lake)
echo "$seed"
echo "$discard"
echo "$grouped"
echo "$lanes2"
echo "$lanes4"
echo "$lake"
python3 - "$seed" "$discard" "$grouped" "$lanes2" "$lanes4" "$lake" <<'PY'
import json, sys
seed, *runs = (json.loads(arg) for arg in sys.argv[1:])
base = seed["records_per_second"]
for run in runs:
    print(f'{run["path"]}: {run["records_per_second"] / base:.1f}x the seed ({base} records/s)')
PY
