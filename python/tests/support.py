"""Shared helpers for the rtcore tests: paths, unique names, header parsing
and running Python code in a fresh subprocess (rtcore state is per process)."""

import ctypes
import itertools
import os
import re
import subprocess
import sys
import textwrap
import threading

import rtcore

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(PYTHON_DIR)
HEADER = os.path.join(REPO_DIR, "include", "rtcore.h")
CARGO_TOML = os.path.join(REPO_DIR, "Cargo.toml")

_counter = itertools.count(1)


def unique(prefix):
    """A rank/mutex name never used before in this process (rank names can
    be defined only once per process)."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def header_text():
    with open(HEADER, encoding="utf-8") as f:
        return f.read()


def _norm_type(t):
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\s*\*\s*", " *", t)
    return t.strip()


def header_functions():
    """{name: (return C type, [parameter C types])} of every rtc_* function
    declared in include/rtcore.h (macros excluded)."""
    text = re.sub(r"/\*.*?\*/", "", header_text(), flags=re.S)
    out = {}
    pattern = re.compile(
        r"^((?:const\s+)?(?:struct\s+)?[A-Za-z_]\w*(?:\s*\*)*)\s*\b(rtc_\w+)\s*\(([^)]*)\)\s*;",
        re.M,
    )
    for m in pattern.finditer(text):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        types = []
        params = re.sub(r"\s+", " ", params).strip()
        if params and params != "void":
            for p in params.split(","):
                pm = re.match(r"^(.*?)\b(\w+)\s*$", p.strip())
                types.append(_norm_type(pm.group(1)))
        out[name] = (_norm_type(ret), types)
    return out


def header_enum(prefix):
    """{name: value} of the enum constants named prefix... in the header."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\s*(" + prefix + r"\w*)\s*=\s*(-?\d+)\s*,", header_text(), re.M)
    }


def header_struct(name):
    """[(field name, C type, array length or None)] of `typedef struct name`."""
    text = re.sub(r"/\*.*?\*/", "", header_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    m = re.search(r"typedef struct " + name + r" \{(.*?)\} " + name + ";", text, re.S)
    if m is None:
        raise AssertionError(f"struct {name} not found in {HEADER}")
    fields = []
    for decl in m.group(1).split(";"):
        decl = decl.strip()
        if not decl:
            continue
        fm = re.match(r"^(.*?)\b(\w+)\s*(?:\[(\d+)\])?$", decl, re.S)
        fields.append((fm.group(2), _norm_type(fm.group(1)), int(fm.group(3)) if fm.group(3) else None))
    return fields


def header_define(name):
    m = re.search(r"^#define " + name + r" (.+)$", header_text(), re.M)
    return None if m is None else m.group(1).strip()


def _no_core_dumps():
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def run_python(code, env=None, timeout=120):
    """Run `code` with a fresh interpreter that imports rtcore from python/
    and loads the same library as this process. RTCORE_DEBUG is removed from
    the environment unless `env` sets it. Returns a CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.pop("RTCORE_DEBUG", None)
    full_env["RTCORE_LIB"] = rtcore.LIBRARY_PATH
    old = full_env.get("PYTHONPATH")
    full_env["PYTHONPATH"] = PYTHON_DIR + (os.pathsep + old if old else "")
    if env:
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_no_core_dumps,
    )


def describe(proc):
    """Text for assertion messages about a finished subprocess."""
    return f"returncode={proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def run_in_thread(fn, timeout=30.0):
    """Run fn() in a daemon thread; return (finished, result, exception)."""
    box = {}

    def body():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    return (not t.is_alive()), box.get("result"), box.get("error")


C_TYPES = {
    "void": None,
    "rtc_status": ctypes.c_int32,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t,
    "const char *": ctypes.c_char_p,
    "char *": ctypes.POINTER(ctypes.c_char),
    "int32_t *": ctypes.POINTER(ctypes.c_int32),
    "uint32_t *": ctypes.POINTER(ctypes.c_uint32),
    "uint64_t *": ctypes.POINTER(ctypes.c_uint64),
    "size_t *": ctypes.POINTER(ctypes.c_size_t),
    "struct rtc_mutex *": ctypes.POINTER(rtcore.RtcMutex),
    "struct rtc_cond *": ctypes.POINTER(rtcore.RtcCond),
    "const struct rtc_config *": ctypes.POINTER(rtcore.RtcConfig),
    "struct rtc_census *": ctypes.POINTER(rtcore.RtcCensus),
    "struct rtc_sysmon_stats *": ctypes.POINTER(rtcore.RtcSysmonStats),
    "void *": ctypes.c_void_p,
    "const void *": ctypes.c_void_p,
    "const uint64_t *": ctypes.POINTER(ctypes.c_uint64),
    # The preload library's chain of held locks: passed as an address.
    "const struct rtc_preload_held *": ctypes.c_void_p,
    "rtc_hook_fn": rtcore.HOOK_FN,
    "rtc_preempt_fn": rtcore.PREEMPT_FN,
    "const struct rtc_trace_config *": ctypes.POINTER(rtcore.RtcTraceConfig),
    "const struct rtc_flight_recorder_config *": ctypes.POINTER(rtcore.RtcFlightRecorderConfig),
    "struct rtc_trace_stats *": ctypes.POINTER(rtcore.RtcTraceStats),
    "const uint8_t *": ctypes.POINTER(ctypes.c_uint8),
    "int64_t": ctypes.c_int64,
    "struct rtc_rwlock *": ctypes.POINTER(rtcore.RtcRwlock),
    "rtc_lockrank_callback": rtcore.LOCKRANK_CALLBACK,
    "struct rtc_lockrank_report *": ctypes.POINTER(rtcore.RtcLockrankReport),
    "struct rtc_lockrank_report * *": ctypes.POINTER(ctypes.POINTER(rtcore.RtcLockrankReport)),
    "struct rtc_lockrank_lock": rtcore.RtcLockrankLock,
    "const struct rtc_lockrank_lock *": ctypes.POINTER(rtcore.RtcLockrankLock),
}


class CaptureStderr:
    """Redirect file descriptor 2 (where rtcore prints reports) to a
    temporary file for the duration of a `with` block; `.text` holds what
    was written, after the block."""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return False
