#!/usr/bin/env bash
# Build the LTTng peer benchmark (bench.c + the rtcpeer tracepoint provider)
# against LTTng-UST and rtcore, then run it in a live LTTng session:
# start a session daemon (remembering its pid), create a session writing
# into a temporary directory, enable one userspace channel
# (--subbuf-size=4M --num-subbuf=8) with rtcpeer:ints and rtcpeer:strs,
# start, run the benchmark, stop, show the channel's statistics (discarded
# events), destroy the session, end the session daemon by its pid, and
# remove the temporary directory. The trap does the teardown on failure
# too.
#
# Needs: gcc, lttng-tools and liblttng-ust-dev (2.13), and the rtcore shared
# library (cargo build --release at the repository root).
# Usage: benches/peers/lttng/run.sh   (environment: see bench.c's header;
#        RTCORE_LIBDIR to use another directory holding librtcore.so)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
libdir=${RTCORE_LIBDIR:-$repo/target/release}
build=$here/build

die() { echo "run.sh: $*" >&2; exit 1; }

[ -e "$libdir/librtcore.so" ] ||
	die "$libdir/librtcore.so not found: run cargo build --release in $repo (or set RTCORE_LIBDIR)"
for tool in gcc lttng lttng-sessiond; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y lttng-tools liblttng-ust-dev gcc)"
done
[ -e /usr/include/lttng/tracepoint.h ] || [ -e /usr/include/x86_64-linux-gnu/lttng/tracepoint.h ] ||
	die "LTTng-UST headers not found (apt-get install -y liblttng-ust-dev)"

# ---- Build.
mkdir -p "$build"
gcc -O2 -g -Wall -Wextra -I"$here" -I"$repo/include" \
	-o "$build/bench" "$here/bench.c" "$here/rtcpeer_tp.c" \
	-L"$libdir" -Wl,-rpath,"$libdir" -lrtcore -llttng-ust -ldl
echo "built $build/bench"

# ---- Session daemon and session.
tmp=$(mktemp -d -t rtcpeer-lttng.XXXXXX)
# Keep the daemon away from the user's LTTng configuration and saved
# sessions; a non-root daemon also keeps its run directory here.
export LTTNG_HOME=$tmp/home
mkdir -p "$LTTNG_HOME"
if [ "$(id -u)" = 0 ]; then
	rundir=/var/run/lttng
else
	rundir=$LTTNG_HOME/.lttng
fi
session=rtcpeer-$$
sessiond_pid=
session_created=0

alive() {
	# A zombie (not reaped yet by its new parent) counts as gone.
	[ -e "/proc/$1/stat" ] || return 1
	local state
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	if [ "$session_created" = 1 ]; then
		lttng destroy "$session" >/dev/null 2>&1
	fi
	if [ -n "$sessiond_pid" ]; then
		kill -TERM "$sessiond_pid" 2>/dev/null
		for _ in $(seq 50); do
			alive "$sessiond_pid" || break
			sleep 0.1
		done
		if alive "$sessiond_pid"; then
			echo "run.sh: lttng-sessiond $sessiond_pid still running after 5 s: SIGKILL" >&2
			kill -KILL "$sessiond_pid" 2>/dev/null
		fi
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pidfile=$rundir/lttng-sessiond.pid
if [ -e "$pidfile" ] && alive "$(cat "$pidfile" 2>/dev/null || echo 0)"; then
	die "a session daemon is already running (pid $(cat "$pidfile"), $pidfile): this script starts \
and ends its own; stop that one first"
fi
# --no-kernel: userspace tracing only (no kernel modules).
lttng-sessiond --daemonize --no-kernel
# --daemonize returns once the daemon is ready; it has written its pid.
for _ in $(seq 50); do
	[ -s "$pidfile" ] && break
	sleep 0.1
done
sessiond_pid=$(cat "$pidfile" 2>/dev/null) || die "no pid file $pidfile after lttng-sessiond --daemonize"
alive "$sessiond_pid" || die "lttng-sessiond (pid $sessiond_pid from $pidfile) is not running"
echo "lttng-sessiond pid $sessiond_pid"

lttng create "$session" --output="$tmp/trace"
session_created=1
lttng enable-channel --userspace --session="$session" --subbuf-size=4M --num-subbuf=8 ch
lttng enable-event --userspace --session="$session" --channel=ch rtcpeer:ints,rtcpeer:strs
lttng start "$session"
echo

# ---- The benchmark.
set +e
"$build/bench"
bench_rc=$?
set -e
echo

lttng stop "$session"
echo "---- channel statistics (discarded events = events LTTng dropped: buffers full)"
lttng list "$session" --userspace 2>/dev/null | grep -i -E 'discarded|lost' ||
	lttng list "$session" | grep -i -E 'discarded|lost|channel' || true
echo "trace written by the consumer daemon: $(du -sb "$tmp/trace" | cut -f1) bytes"
lttng destroy "$session"
session_created=0
exit "$bench_rc"
