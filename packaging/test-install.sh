#!/usr/bin/env bash
# Install rtcore into a temporary prefix (`make install`) and use it from a
# directory outside the checkout, as a user would: examples/quickstart.c
# built with pkg-config (shared and static) and with a CMake project using
# find_package(rtcore) (rtcore::rtcore and rtcore::rtcore_static),
# examples/quickstart.cpp (rtcore.hpp) with pkg-config and CMake, and the
# installed `rtcore run` on examples/abba.c. Each program must print what
# the README says it prints. Run by .ci/run; needs cc, make, pkg-config
# and cmake. Leaves nothing behind.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
fail() { echo "test-install: $*" >&2; exit 1; }

make -C "$repo" install PREFIX="$prefix" > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "make install failed"; }
# A staged install (DESTDIR) puts the same tree under it.
make -C "$repo" install PREFIX=/usr/local DESTDIR="$work/stage" > "$work/stage.log" 2>&1 || { cat "$work/stage.log"; fail "make install DESTDIR=... failed"; }
[ -x "$work/stage/usr/local/bin/rtcore" ] || fail "DESTDIR install has no bin/rtcore"
grep -q '^prefix=/usr/local$' "$work/stage/usr/local/lib/pkgconfig/rtcore.pc" || fail "the staged rtcore.pc does not name the final prefix"

for f in lib/librtcore.so lib/librtcore.so.0 lib/librtcore.a lib/librtcore_preload.so bin/rtcore \
         include/rtcore.h include/rtcore.hpp lib/pkgconfig/rtcore.pc lib/cmake/rtcore/rtcoreConfig.cmake \
         lib/cmake/rtcore/rtcoreConfigVersion.cmake share/doc/rtcore/README.md; do
  [ -e "$prefix/$f" ] || fail "missing $f"
done
[ "$(readelf -d "$prefix/lib/librtcore.so.0" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')" = librtcore.so.0 ] \
  || fail "librtcore.so.0 has another soname"
if readelf -S "$prefix/lib/librtcore.so.0" | grep -q '\.debug_info'; then fail "the installed library is not stripped"; fi
readelf --string-dump=.gnu_debuglink "$prefix/lib/librtcore.so.0" | grep -q 'librtcore.so.*\.debug' \
  || fail "the installed library does not link to its debug information"

app="$work/app"
mkdir -p "$app"
cp "$repo/examples/quickstart.c" "$repo/examples/quickstart.cpp" "$repo/examples/abba.c" "$app/"
cd "$app"
expect_quickstart() { # program
  local out; out="$("$@" 2>&1)" || fail "$1 failed: $out"
  grep -q "forbidden by bank.ranks:2: accounts < audit" <<<"$out" || fail "$1: no rank report in: $out"
  grep -q "order violations seen: 1" <<<"$out" || fail "$1: unexpected output: $out"
}

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc quickstart.c $(pkg-config --cflags --libs rtcore) -Wl,-rpath,"$prefix/lib" -o qs_pkgconfig
expect_quickstart ./qs_pkgconfig
cc quickstart.c $(pkg-config --cflags rtcore) "$prefix/lib/librtcore.a" \
  $(pkg-config --static --libs-only-l rtcore | sed 's/-lrtcore//') -o qs_pkgconfig_static
expect_quickstart ./qs_pkgconfig_static
if ldd qs_pkgconfig_static | grep -q librtcore; then fail "the static build links librtcore.so"; fi
expect_quickstart_cpp() { # program
  local out; out="$("$@" 2>&1)" || fail "$1 failed: $out"
  grep -q "order violations seen: 1; 15 turns; quickstart-cpp.rtctrace: consistent" <<<"$out" \
    || fail "$1: unexpected output: $out"
}
c++ -std=c++17 -Wall -Wextra -Werror quickstart.cpp $(pkg-config --cflags --libs rtcore) -pthread \
  -Wl,-rpath,"$prefix/lib" -o qs_cpp
expect_quickstart_cpp ./qs_cpp

mkdir cmake && cp quickstart.c quickstart.cpp cmake/
cat > cmake/CMakeLists.txt <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(rtcore_consumer C CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(rtcore 0.1 REQUIRED)
find_package(Threads REQUIRED)
add_executable(qs_shared quickstart.c)
target_link_libraries(qs_shared PRIVATE rtcore::rtcore)
add_executable(qs_static quickstart.c)
target_link_libraries(qs_static PRIVATE rtcore::rtcore_static)
add_executable(qs_cpp quickstart.cpp)
target_compile_options(qs_cpp PRIVATE -Wall -Wextra -Werror)
target_link_libraries(qs_cpp PRIVATE rtcore::rtcore Threads::Threads)
CMAKE
cmake -S cmake -B cmake/build -DCMAKE_PREFIX_PATH="$prefix" > cmake.log 2>&1 || { cat cmake.log; fail "cmake configure failed"; }
cmake --build cmake/build >> cmake.log 2>&1 || { cat cmake.log; fail "cmake build failed"; }
expect_quickstart cmake/build/qs_shared
expect_quickstart cmake/build/qs_static
expect_quickstart_cpp cmake/build/qs_cpp
# An incompatible version is refused.
sed -i 's/find_package(rtcore 0.1 REQUIRED)/find_package(rtcore 1.0 REQUIRED)/' cmake/CMakeLists.txt
if cmake -S cmake -B cmake/build2 -DCMAKE_PREFIX_PATH="$prefix" > cmake2.log 2>&1; then
  fail "find_package(rtcore 1.0) accepted version 0.1"
fi

cc -g -pthread abba.c -o abba
out="$("$prefix/bin/rtcore" run -- ./abba 2>&1)" || fail "installed rtcore run failed: $out"
grep -q "lock order violation (learned order)" <<<"$out" || fail "installed rtcore run reported nothing: $out"
echo "test-install: make install, pkg-config (shared, static, C++), CMake (rtcore::rtcore, rtcore::rtcore_static, C++) and the installed rtcore run all work"
