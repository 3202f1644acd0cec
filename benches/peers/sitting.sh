#!/usr/bin/env bash
# One sitting of the event-path and start/stop measurements, with the peers
# (docs/benchmarks.md, "The event path at the hardware floor"): three runs
# of rtcore's per-event benchmark (the floor and clock_gettime in the same
# run), each followed by the Tracy and LTTng harnesses (each with its own
# floor and rtcore's RTC_LOG in the same process), then start/stop beside
# Go's tracer, three rounds.
#
#   benches/peers/sitting.sh [OUTDIR]      (default: a new mktemp -d)
#
# Needs: cargo build --release at the root; Go (golang-go), LTTng-UST
# (lttng-tools, liblttng-ust-dev); Tracy's client is built by cargo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
cd "$root"
cargo build --release -q
(cd "$here/tracy" && cargo build --release -q)
for run in 1 2 3; do
  echo "== run $run: rtcore events" >&2
  RTCORE_BENCH_ONLY=events RTCORE_BENCH_WATCHDOG_S=600 cargo bench -q --bench trace > "$out/events-$run.txt" 2>&1
  echo "== run $run: Tracy" >&2
  (cd "$here/tracy" && cargo run --release -q) > "$out/tracy-$run.txt" 2>&1
  echo "== run $run: LTTng" >&2
  "$here/lttng/run.sh" > "$out/lttng-$run.txt" 2>&1
done
echo "== start/stop beside Go" >&2
RTCORE_BENCH_ONLY=goshape RTCORE_BENCH_WATCHDOG_S=600 cargo bench -q --bench trace > "$out/goshape.txt" 2>&1
echo "results in $out" >&2
