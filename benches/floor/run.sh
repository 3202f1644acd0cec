#!/usr/bin/env bash
# Build and run the floor benchmark (floor.c against floor_lib.c and the
# rtcore shared library) in a temporary directory, RUNS times (default 3).
# What it measures and why: floor_lib.c's header and docs/benchmarks.md,
# "Round six".
#
# Needs: gcc, and the rtcore shared library (cargo build --release at the
# repository root).
# Usage: benches/floor/run.sh   (environment: RUNS, FLOOR_PAIRS,
#        FLOOR_SAMPLES; RTCORE_LIBDIR for another directory holding
#        librtcore.so)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
libdir=${RTCORE_LIBDIR:-$repo/target/release}
runs=${RUNS:-3}

die() { echo "run.sh: $*" >&2; exit 1; }
[ -e "$libdir/librtcore.so" ] ||
	die "$libdir/librtcore.so not found: run cargo build --release in $repo (or set RTCORE_LIBDIR)"
command -v gcc >/dev/null || die "gcc not found (apt-get install -y gcc)"
case $runs in '' | *[!0-9]* | 0) die "RUNS must be a positive integer, not '$runs'" ;; esac

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# Every function on a 64-byte boundary, as rtcore's (.cargo/config.toml).
gcc -O2 -fPIC -shared -falign-functions=64 -Wall -Wextra -o "$build/libfloor.so" "$here/floor_lib.c"
gcc -O2 -Wall -Wextra -I"$repo/include" -o "$build/floor" "$here/floor.c" \
	-L"$build" -L"$libdir" -Wl,-rpath,"$build:$libdir" -lfloor -lrtcore -lpthread
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
for i in $(seq "$runs"); do
	echo "== run $i of $runs"
	"$build/floor"
done
