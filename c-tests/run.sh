#!/usr/bin/env bash
# Build and run rtcore's C test suite against a built library.
#
#   c-tests/run.sh [plain|asan|valgrind] [LIBDIR] [PROGRAM...]
#
# PROGRAM (e.g. test_world): run only those programs (cargo test runs each
# program as its own test this way); none: every c-tests/test_*.c and
# test_*.cpp (C++ programs, built with g++ -std=c++17, as include/rtcore.hpp
# promises).
#
# plain:    gcc -Wall -Wextra -Werror, linked to LIBDIR/librtcore.so
# asan:     the same with -fsanitize=address,undefined (Rust is not
#           instrumented, but ASan sees every malloc/free across the boundary)
# valgrind: plain build run under valgrind --error-exitcode=1 --leak-check=full
#           at RTC_TEST_SCALE=1 unless set
#
# LIBDIR defaults to target/debug. Each program prints "N passed, N failed";
# this script ends with the totals in the same form and fails if any failed.
set -u
mode=${1:-plain}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
libdir=$(cd "${2:-$root/target/debug}" && pwd)
shift 2 2>/dev/null || shift $#
only=("$@")
out="$root/target/c-tests/$mode"
mkdir -p "$out"
[ -e "$libdir/librtcore.so" ] || { echo "no $libdir/librtcore.so: run cargo build first" >&2; exit 2; }
[ -e "$libdir/librtcore.so.0" ] || ln -s librtcore.so "$libdir/librtcore.so.0"

common=(-D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -I"$root/include" -I"$here")
cflags=(-std=c11 "${common[@]}")
cxxflags=(-std=c++17 -Wpedantic "${common[@]}")
# A hang (a lost wake-up, a wait that never ends) fails the program
# instead of stalling the suite.
runner=(timeout 300)
case "$mode" in
  plain) ;;
  asan) cflags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
        cxxflags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} ;;
  valgrind) runner=(timeout 400 valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
                     --trace-children=no)
            export RTC_TEST_SCALE=${RTC_TEST_SCALE:-1}
            export RTC_WORLD_STOPS=${RTC_WORLD_STOPS:-5}
            export RTC_TEST_SLOW=1 ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

total_pass=0; total_fail=0; broken=0
# Plugins (plugin_*.c): shared objects the tests load with dlopen.
export RTC_TEST_LIBDIR="$libdir" RTC_TEST_OUT="$out"
# The command, for programs that check its answers (test_cut).
[ -n "${RTCORE_BIN:-}" ] || { [ -x "$libdir/rtcore" ] && export RTCORE_BIN="$libdir/rtcore"; }
for src in "$here"/plugin_*.c; do
  name=$(basename "$src" .c)
  # Built under a temporary name and renamed: programs run in parallel
  # (cargo test) never load a half-written plugin.
  if gcc "${cflags[@]}" -shared -fPIC "$src" -o "$out/$name.so.$$" -L"$libdir" -lrtcore -Wl,-rpath,"$libdir"; then
    mv -f "$out/$name.so.$$" "$out/$name.so"
  else
    echo "BUILD FAILED: $name"; broken=$((broken + 1))
  fi
done
if [ ${#only[@]} -gt 0 ]; then
  programs=()
  for p in "${only[@]}"; do
    if [ -e "$here/$p.c" ]; then programs+=("$here/$p.c")
    elif [ -e "$here/$p.cpp" ]; then programs+=("$here/$p.cpp")
    else echo "no program c-tests/$p.c or .cpp" >&2; exit 2; fi
  done
else
  programs=("$here"/test_*.c "$here"/test_*.cpp)
fi
ran=0
for src in "${programs[@]}"; do
  case "$src" in
    *.cpp) name=$(basename "$src" .cpp); compile=(g++ "${cxxflags[@]}") ;;
    *) name=$(basename "$src" .c); compile=(gcc "${cflags[@]}") ;;
  esac
  ran=$((ran + 1))
  exe="$out/$name"
  # --as-needed: a program that uses rtcore only through dlopen
  # (test_dlclose) is not linked to it at start-up.
  if ! "${compile[@]}" "$src" -o "$exe" -Wl,--as-needed -L"$libdir" -lrtcore -Wl,-rpath,"$libdir" -lpthread -ldl; then
    echo "BUILD FAILED: $name"; broken=$((broken + 1)); continue
  fi
  if [ "$mode" = asan ] && ! nm "$exe" | grep -q __asan_init; then
    echo "$name: built without AddressSanitizer"; broken=$((broken + 1)); continue
  fi
  log="$out/$name.log"
  start=$(date +%s)
  "${runner[@]}" "$exe" >"$log" 2>&1
  rc=$?
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  secs=$(( $(date +%s) - start ))
  if [ -z "$line" ]; then
    echo "$name: no summary line (exit $rc, ${secs}s); log:"; sed 's/^/    /' "$log" | tail -n 40
    broken=$((broken + 1)); continue
  fi
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
    echo "$name: $line, exit $rc (${secs}s); log:"; sed 's/^/    /' "$log" | tail -n 60
    [ "$f" -eq 0 ] && broken=$((broken + 1))
  else
    echo "$name: $line (${secs}s)"
  fi
done
echo "c-tests ($mode): $total_pass passed, $((total_fail + broken)) failed"
[ "$ran" -gt 0 ] && [ "$total_fail" -eq 0 ] && [ "$broken" -eq 0 ]
