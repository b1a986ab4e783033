#!/usr/bin/env bash
# edgepipe's footprint: the main job's peak resident memory with 1,000 devices, and
# the stripped size of libedgepipe.a built in the firmware profile (scripts/ffi-size).
#
#   benches/footprint.sh [--records N]     (default 100000 readings)
#
# Prints one JSON object. The main job runs from a release build with its
# defaults otherwise (outage included), its output in a temporary directory.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

records=100000
if [ "${1:-}" = "--records" ]; then
    records=$2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release --locked -q -p edgepipe-examples --bin edge-pipeline
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# ru_maxrss of the finished child, in KiB on Linux.
peak_kib=$(python3 - "$target_dir/release/edge-pipeline" "$records" "$out" <<'PY'
import resource, subprocess, sys
program, records, out = sys.argv[1:]
subprocess.run([program, "--devices", "1000", "--records", records, "--out", out],
               check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)

ffi_bytes=null
if [ -x scripts/ffi-size ]; then
    ffi_bytes=$(scripts/ffi-size | grep -Eo '[0-9]+ bytes' | head -1 | grep -Eo '[0-9]+' || echo null)
fi
printf '{"main_job":{"devices":1000,"records":%s,"peak_rss_bytes":%s},"libedgepipe_a_stripped_bytes":%s}\n' \
    "$records" "$((peak_kib * 1024))" "$ffi_bytes"
