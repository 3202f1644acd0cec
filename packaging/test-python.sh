#!/usr/bin/env bash
# The Python package as a user installs it (docs/install.md, "Python"):
# `make wheel`, then the wheel and `pip install python/` each into a fresh
# virtual environment; from a directory outside the checkout, with no
# RTCORE_LIB and no PYTHONPATH, `import rtcore` must load the library the
# package carries, and examples/quickstart.py must print its report. Run by
# .ci/run. Leaves nothing behind but target/wheels.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"; rm -rf "$repo/python/build" "$repo"/python/*.egg-info' EXIT
fail() { echo "test-python: $*" >&2; exit 1; }

rm -rf "$repo/target/wheels"
make -C "$repo" wheel > "$work/wheel.log" 2>&1 || { cat "$work/wheel.log"; fail "make wheel failed"; }
wheel="$(ls "$repo"/target/wheels/rtcore-*-py3-none-*.whl)" || fail "no py3-none wheel in target/wheels"

check() { # venv
  local py="$1/bin/python" out
  out="$(cd "$work" && env -u RTCORE_LIB -u PYTHONPATH "$py" -c 'import rtcore, os; print(os.path.dirname(rtcore.LIBRARY_PATH) == os.path.dirname(rtcore.__file__))')" \
    || fail "import rtcore failed in $1: $out"
  [ "$out" = True ] || fail "the package in $1 did not load the library it carries"
  out="$(cd "$work" && env -u RTCORE_LIB -u PYTHONPATH "$py" "$repo/examples/quickstart.py" 2>&1)" \
    || fail "quickstart.py failed in $1: $out"
  grep -q "forbidden by bank.ranks:2: accounts < audit" <<<"$out" || fail "quickstart.py printed no report: $out"
  grep -q "order violations seen: 1" <<<"$out" || fail "quickstart.py: unexpected output: $out"
}

python3 -m venv "$work/from-wheel"
"$work/from-wheel/bin/pip" install -q "$wheel" || fail "pip install of the wheel failed"
check "$work/from-wheel"

python3 -m venv "$work/from-source"
"$work/from-source/bin/pip" install -q "$repo/python" || fail "pip install python/ failed"
check "$work/from-source"
echo "test-python: $(basename "$wheel"), and pip install python/: import rtcore with no environment variable, quickstart.py reports"
