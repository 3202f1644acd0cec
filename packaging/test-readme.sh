#!/usr/bin/env bash
# Every command line of README.md's indented code blocks that builds or
# runs something from the checkout (gcc, g++, target/..., RTCORE_LIB=...)
# runs verbatim, in order, from the top of a copy of the checkout, as a new
# user would type it after `cargo build` and `cargo build --release` (the
# cargo, make and bless lines have steps of their own in .ci/run). The copy
# is the tracked files of HEAD with this checkout's target/; nothing is
# written into the checkout. Run by .ci/run after both builds.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "test-readme: $*" >&2; exit 1; }
for f in target/debug/rtcore target/debug/librtcore_preload.so target/release/librtcore.so target/release/rtcore; do
  [ -e "$repo/$f" ] || fail "no $f: run cargo build and cargo build --release first"
done
git -C "$repo" archive HEAD | tar -x -C "$work"
ln -s "$repo/target" "$work/target"
mapfile -t lines < <(grep -E '^    (gcc|g\+\+|target/|RTCORE_LIB=)' "$repo/README.md" | sed 's/^    //')
[ "${#lines[@]}" -ge 7 ] || fail "only ${#lines[@]} command lines found in README.md"
cd "$work"
for line in "${lines[@]}"; do
  if ! out="$(timeout 300 bash -c "$line" 2>&1)"; then
    printf '%s\n' "$out" | tail -n 30 >&2
    fail "README line failed: $line"
  fi
  echo "ok: $line"
done
echo "test-readme: all ${#lines[@]} README command lines ran as printed"
