"""Python bindings for rtcore (lock ranks, ranked mutexes and read/write
locks, condition variables).

This module wraps the C ABI of ``librtcore.so`` (``include/rtcore.h``) with
:mod:`ctypes`. Every ``rtc_*`` function of the header is declared with its
exact argument and result types (see :data:`DECLARED_FUNCTIONS`), and every
status-returning call is checked: a failing status raises
:class:`RtcoreError`, carrying the status and rtcore's last-error message.

A librtcore the process has loaded already (a program linked with it, or
``rtcore run``'s preload library) is used: one process, one rtcore.
Otherwise the library is found through the ``RTCORE_LIB`` environment variable (the
path of ``librtcore.so``), or else next to this file (``librtcore.so.0`` or
``librtcore.so``).

rtcore's calls are made through :class:`ctypes.CDLL`, which releases the GIL
for the duration of each call: a Python thread blocked in :meth:`Mutex.lock`,
:meth:`RWLock.read_lock`, :meth:`RWLock.write_lock` or :meth:`Cond.wait`
lets the other Python threads run.

Reading trace files: one convention for :func:`trace_check_file`,
:func:`trace_verdict` and :func:`trace_stats`. A file that cannot be read
(missing, unreadable, a directory, a FIFO nobody writes to within 5 s) raises
:class:`RtcoreError` with ``RTC_ERR_IO`` from each of them. Otherwise the
checks return their verdict and the reader's report (``"consistent"``,
``"cut"``: its complete generations are consistent, or
``"inconsistent"``): judging the file is their result, never an
exception. :func:`trace_stats` answers for whatever is consistent (a cut
trace's complete generations) and raises :class:`TraceError`, carrying
the same verdict and report, when nothing is.

Lock-order violations are printed (report mode) by default; to handle them
in Python, pass a callable to :func:`on_violation` (it gets a
:class:`LockReport` on the violating thread) or select the ``'queue'`` mode
and poll :func:`next_violation`.

Quick start::

    import rtcore
    rtcore.load_ranks("NONE < db; db < cache;", "myapp.ranks")
    db, cache = rtcore.Mutex("db", "db"), rtcore.Mutex("cache", "cache")
    with db:
        with cache:
            ...          # fine: db < cache
    with cache:
        with db:         # reported: lock order violation
            ...
"""

import atexit
import ctypes
import dataclasses
import operator
import os
import sys
import threading

__all__ = [
    "RtcoreError",
    "TraceError",
    "Mutex",
    "RWLock",
    "Cond",
    "load_ranks",
    "load_ranks_file",
    "rank_lookup",
    "set_lockrank_mode",
    "lockrank_mode",
    "violations",
    "last_report",
    "on_violation",
    "next_violation",
    "violations_dropped",
    "LockReport",
    "LockInfo",
    "version",
    "version_number",
    "init",
    "shutdown",
    "debug_panic",
    "status_str",
    "last_error",
    "clear_last_error",
    "DECLARED_FUNCTIONS",
    "STATUS_NAMES",
    "LOCKRANK_MODE_NAMES",
    "LIBRARY_PATH",
]

# ---------------------------------------------------------------------------
# Loading the library
# ---------------------------------------------------------------------------

_HERE = os.path.dirname(os.path.abspath(__file__))


def _find_library():
    env = os.environ.get("RTCORE_LIB")
    if env:
        if not os.path.isfile(env):
            raise ImportError(
                f"rtcore: RTCORE_LIB is set to {env!r}, which is not a file; "
                "set RTCORE_LIB to the path of librtcore.so (for example "
                "target/debug/librtcore.so after `cargo build`)"
            )
        return env
    for name in ("librtcore.so.0", "librtcore.so"):
        candidate = os.path.join(_HERE, name)
        if os.path.isfile(candidate):
            return candidate
    raise ImportError(
        "rtcore: cannot find librtcore.so: RTCORE_LIB is not set and neither "
        f"librtcore.so.0 nor librtcore.so is in {_HERE}; install the package "
        "with `pip install python/` after `cargo build --release` (it then "
        "carries the library), or set RTCORE_LIB to the path of librtcore.so "
        "(for example target/debug/librtcore.so after `cargo build`)"
    )


def _already_loaded():
    """The librtcore this process has loaded already (a program linked
    with it that embeds Python, or `rtcore run`'s preload library), as
    (handle, path), or None: one process, one rtcore."""
    try:
        lib = ctypes.CDLL("librtcore.so.0", mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    path = "librtcore.so.0"
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and os.path.basename(parts[5].strip()).startswith("librtcore.so"):
                    path = parts[5].strip()
                    break
    except OSError:  # pragma: no cover - /proc is always there on Linux
        pass
    return lib, path


_loaded = _already_loaded()
if _loaded is not None:
    _lib, LIBRARY_PATH = _loaded
else:
    #: Path of the shared library this module loaded (or found loaded).
    LIBRARY_PATH = _find_library()
    try:
        _lib = ctypes.CDLL(LIBRARY_PATH)
    except OSError as e:  # pragma: no cover - depends on the file
        raise ImportError(
            f"rtcore: cannot load {LIBRARY_PATH!r}: {e}; set RTCORE_LIB to the "
            "path of librtcore.so (for example target/debug/librtcore.so after "
            "`cargo build`)"
        ) from e

# ---------------------------------------------------------------------------
# Statuses and modes (values fixed forever by the header)
# ---------------------------------------------------------------------------

RTC_OK = 0
RTC_ERR_NULL = 1
RTC_ERR_INVALID_ARGUMENT = 2
RTC_ERR_PANIC = 3
RTC_ERR_POISONED = 4
RTC_ERR_SHUT_DOWN = 5
RTC_ERR_ALREADY_INITIALIZED = 6
RTC_ERR_TOO_LATE = 7
RTC_ERR_RANK_SYNTAX = 8
RTC_ERR_UNKNOWN_RANK = 9
RTC_ERR_RANK_TABLE_FULL = 10
RTC_ERR_IO = 11
RTC_ERR_WOULD_DEADLOCK = 12
RTC_ERR_NOT_OWNER = 13
RTC_ERR_BUSY = 14
RTC_ERR_LOCKED = 15
RTC_ERR_DESTROYED = 16
RTC_ERR_TIMED_OUT = 17
RTC_ERR_MOVED = 18
RTC_ERR_WRONG_STATE = 19
RTC_ERR_BAD_TRACE = 20
RTC_ERR_TRACE_CUT = 21

#: Status value -> its name in the header ("RTC_ERR_NOT_OWNER", ...).
STATUS_NAMES = {
    value: name
    for name, value in sorted(globals().items())
    if (name == "RTC_OK" or name.startswith("RTC_ERR_")) and isinstance(value, int)
}

RTC_LOCKRANK_DEFAULT = 0
RTC_LOCKRANK_OFF = 1
RTC_LOCKRANK_REPORT = 2
RTC_LOCKRANK_ABORT = 3
RTC_LOCKRANK_CALLBACK = 4
RTC_LOCKRANK_QUEUE = 5

#: Lock-rank mode value -> its name as used by :func:`lockrank_mode`.
LOCKRANK_MODE_NAMES = {
    RTC_LOCKRANK_DEFAULT: "default",
    RTC_LOCKRANK_OFF: "off",
    RTC_LOCKRANK_REPORT: "report",
    RTC_LOCKRANK_ABORT: "abort",
    RTC_LOCKRANK_CALLBACK: "callback",
    RTC_LOCKRANK_QUEUE: "queue",
}
# 'callback' is selected only by on_violation(), which also sets the callable.
_MODE_VALUES = {
    name: value for value, name in LOCKRANK_MODE_NAMES.items() if value != RTC_LOCKRANK_CALLBACK
}

# rtc_lockrank_lock.kind, .mode and .flags; rtc_lockrank_report.reason.
RTC_LOCK_KIND_MUTEX = 1
RTC_LOCK_KIND_RWLOCK = 2
RTC_LOCK_KIND_RTCORE = 3
RTC_LOCK_EXCLUSIVE = 1
RTC_LOCK_SHARED = 2
RTC_LOCKRANK_HELD_TRIED = 1
RTC_LOCKRANK_HELD_CONFLICTS = 2
RTC_LOCKRANK_REASON_ORDER = 1
RTC_LOCKRANK_REASON_KEY_ORDER = 2
RTC_LOCKRANK_REASON_RECURSION = 3
RTC_LOCKRANK_REASON_UNLOCK_NOT_HELD = 4
RTC_LOCKRANK_REASON_EXIT_HOLDING = 5

#: ``rtc_lockrank_lock.kind`` -> :attr:`LockInfo.kind`.
LOCK_KIND_NAMES = {
    RTC_LOCK_KIND_MUTEX: "mutex",
    RTC_LOCK_KIND_RWLOCK: "rwlock",
    RTC_LOCK_KIND_RTCORE: "rtcore",
}
#: ``rtc_lockrank_lock.mode`` -> :attr:`LockInfo.mode`.
LOCK_MODE_NAMES = {RTC_LOCK_EXCLUSIVE: "exclusive", RTC_LOCK_SHARED: "shared"}
#: ``rtc_lockrank_report.reason`` -> :attr:`LockReport.reason`.
LOCKRANK_REASON_NAMES = {
    RTC_LOCKRANK_REASON_ORDER: "order",
    RTC_LOCKRANK_REASON_KEY_ORDER: "key order",
    RTC_LOCKRANK_REASON_RECURSION: "recursion",
    RTC_LOCKRANK_REASON_UNLOCK_NOT_HELD: "unlock not held",
    RTC_LOCKRANK_REASON_EXIT_HOLDING: "exit holding",
}

# ---------------------------------------------------------------------------
# Structures (layout identical to include/rtcore.h)
# ---------------------------------------------------------------------------


class RtcMutex(ctypes.Structure):
    """``struct rtc_mutex``: a ranked mutex, embedded by value (64 bytes)."""

    _fields_ = [
        ("state", ctypes.c_uint64),
        ("name", ctypes.c_char_p),
        ("rank_name", ctypes.c_char_p),
        ("rank", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("home", ctypes.c_size_t),
        ("acquisitions", ctypes.c_uint64),
        ("reserved", ctypes.c_uint64 * 2),
    ]


class RtcRwlock(ctypes.Structure):
    """``struct rtc_rwlock``: a ranked read/write lock, embedded by value
    (64 bytes, the layout of ``rtc_mutex``)."""

    _fields_ = [
        ("state", ctypes.c_uint64),
        ("name", ctypes.c_char_p),
        ("rank_name", ctypes.c_char_p),
        ("rank", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("home", ctypes.c_size_t),
        ("acquisitions", ctypes.c_uint64),
        ("reserved", ctypes.c_uint64 * 2),
    ]


class RtcLockrankLock(ctypes.Structure):
    """``struct rtc_lockrank_lock``: one lock in a violation report."""

    _fields_ = [
        ("addr", ctypes.c_size_t),
        ("name", ctypes.c_char_p),
        ("rank", ctypes.c_char_p),
        ("kind", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("file", ctypes.c_char_p),
        ("line", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


class RtcLockrankReport(ctypes.Structure):
    """``struct rtc_lockrank_report``: a lock-order violation report."""

    _fields_ = [
        ("sequence", ctypes.c_uint64),
        ("thread_id", ctypes.c_uint64),
        ("thread_name", ctypes.c_char_p),
        ("reason", ctypes.c_uint32),
        ("wanted", RtcLockrankLock),
        ("held", ctypes.POINTER(RtcLockrankLock)),
        ("held_count", ctypes.c_size_t),
        ("text", ctypes.c_char_p),
    ]


#: ``rtc_lockrank_callback``: ``void (*)(const rtc_lockrank_report *, void *)``.
LOCKRANK_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.POINTER(RtcLockrankReport), ctypes.c_void_p)


class RtcCond(ctypes.Structure):
    """``struct rtc_cond``: a condition variable (32 bytes)."""

    _fields_ = [
        ("seq", ctypes.c_uint32),
        ("waiters", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("reserved", ctypes.c_uint64 * 2),
    ]


class RtcConfig(ctypes.Structure):
    """``struct rtc_config``: options for ``rtc_init`` (24 bytes)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("lockrank_mode", ctypes.c_int32),
        ("ranks_file", ctypes.c_char_p),
        ("maxprocs", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class RtcCensus(ctypes.Structure):
    """``struct rtc_census``: threads and Ps by state."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("stopped", ctypes.c_uint32),
        ("threads_running", ctypes.c_uint32),
        ("threads_runnable", ctypes.c_uint32),
        ("threads_blocking", ctypes.c_uint32),
        ("threads_waiting", ctypes.c_uint32),
        ("procs", ctypes.c_uint32),
        ("procs_idle", ctypes.c_uint32),
        ("procs_running", ctypes.c_uint32),
        ("procs_syscall", ctypes.c_uint32),
        ("procs_stopped", ctypes.c_uint32),
        ("stops", ctypes.c_uint64),
    ]


class RtcSysmonStats(ctypes.Structure):
    """``struct rtc_sysmon_stats``: sysmon's counters."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("running", ctypes.c_uint32),
        ("ticks", ctypes.c_uint64),
        ("delay_ns", ctypes.c_uint64),
        ("deep_sleeps", ctypes.c_uint64),
        ("retakes", ctypes.c_uint64),
        ("preempt_requests", ctypes.c_uint64),
        ("stall_reports", ctypes.c_uint64),
        ("stalls_resolved", ctypes.c_uint64),
        ("hook_runs", ctypes.c_uint64),
        ("hook_overruns", ctypes.c_uint64),
        ("hooks", ctypes.c_uint64),
        ("deadlocks", ctypes.c_uint64),
    ]


#: ``rtc_trace_write_fn``: ``int32_t (*)(const uint8_t *, size_t, void *)``.
TRACE_WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, ctypes.c_void_p)


class RtcTraceStats(ctypes.Structure):
    """``struct rtc_trace_stats``: the trace's counters."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("tracing", ctypes.c_uint32),
        ("batches", ctypes.c_uint64),
        ("events", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("lost_generations", ctypes.c_uint64),
        ("lost_batches", ctypes.c_uint64),
        ("lost_events", ctypes.c_uint64),
        ("lost_bytes", ctypes.c_uint64),
        ("buffer_bytes", ctypes.c_uint64),
        ("queued_bytes", ctypes.c_uint64),
    ]


class RtcFlightRecorderConfig(ctypes.Structure):
    """``struct rtc_flight_recorder_config``."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("max_mb", ctypes.c_uint32),
        ("min_age_ms", ctypes.c_uint32),
        ("triggers", ctypes.c_uint32),
        ("dump_dir", ctypes.c_char_p),
        ("rate_limit_ms", ctypes.c_uint32),
        ("dir_max_dumps", ctypes.c_uint32),
        ("dir_max_mb", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


#: ``rtc_flight_trigger`` bits, by name.
FLIGHT_TRIGGERS = {"stall": 1, "deadlock": 2, "lock_order": 4, "fatal_signal": 8}


class RtcTraceConfig(ctypes.Structure):
    """``struct rtc_trace_config``: where a trace goes."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sink_kind", ctypes.c_uint32),
        ("path", ctypes.c_char_p),
        ("fd", ctypes.c_int32),
        ("generation_ms", ctypes.c_uint32),
        ("write", TRACE_WRITE_FN),
        ("user_data", ctypes.c_void_p),
        ("max_mb", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


RTC_TRACE_SINK_NONE = 0
RTC_TRACE_SINK_PATH = 1
RTC_TRACE_SINK_FD = 2
RTC_TRACE_SINK_CALLBACK = 3

#: ``rtc_hook_fn``: ``void (*)(void *user_data)``.
HOOK_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
#: ``rtc_preempt_fn``: ``void (*)(uint64_t request, void *user_data)``.
PREEMPT_FN = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_void_p)


assert ctypes.sizeof(RtcMutex) == 64, ctypes.sizeof(RtcMutex)
assert ctypes.sizeof(RtcRwlock) == 64, ctypes.sizeof(RtcRwlock)
assert ctypes.sizeof(RtcCond) == 32, ctypes.sizeof(RtcCond)
assert ctypes.sizeof(RtcConfig) == 24, ctypes.sizeof(RtcConfig)

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class RtcoreError(Exception):
    """A failing rtcore call.

    Attributes:
        status: the ``rtc_status`` value (an int, one of the ``RTC_ERR_*``
            constants of this module).
        status_name: its name, for example ``"RTC_ERR_NOT_OWNER"``.
        message: rtcore's last-error message for the call (may be empty).
        function: the C function that failed, when known.
    """

    def __init__(self, status, message="", function=None):
        self.status = int(status)
        self.status_name = STATUS_NAMES.get(self.status, f"RTC_STATUS_{self.status}")
        self.message = message
        self.function = function
        where = f"{function}: " if function else ""
        text = message or status_str(self.status)
        super().__init__(f"{where}{self.status_name}: {text}")


class TraceError(RtcoreError):
    """A trace file that holds nothing known consistent, where a function
    needs one (:func:`trace_stats`). Besides :class:`RtcoreError`'s
    attributes (``status`` is ``RTC_ERR_BAD_TRACE``):

    Attributes:
        verdict: ``"inconsistent"``, as :func:`trace_verdict` says.
        report: the reader's report, the same text :func:`trace_verdict`
            and :func:`trace_check_file` return for the file.
    """

    def __init__(self, status, message, function, report):
        super().__init__(status, message, function)
        self.verdict = "inconsistent"
        self.report = report


def _last_error_message():
    """The calling thread's last-error message (size query, then copy)."""
    while True:
        needed = _lib.rtc_last_error_message(None, 0)
        if needed <= 1:
            return ""
        buf = ctypes.create_string_buffer(needed)
        again = _lib.rtc_last_error_message(buf, needed)
        if again <= needed:
            return buf.value.decode("utf-8", "replace")


def _status_errcheck(expected=()):
    """An errcheck raising RtcoreError for any status but OK and `expected`."""
    allowed = frozenset((RTC_OK, *expected))

    def errcheck(result, func, args):
        if result not in allowed:
            raise RtcoreError(result, _last_error_message(), func.__name__)
        return result

    return errcheck


# ---------------------------------------------------------------------------
# Function declarations: every rtc_* function of include/rtcore.h
# ---------------------------------------------------------------------------

_status = ctypes.c_int32  # rtc_status (int32_t in C before C23)
_mutex_p = ctypes.POINTER(RtcMutex)
_rwlock_p = ctypes.POINTER(RtcRwlock)
_report_p = ctypes.POINTER(RtcLockrankReport)
_cond_p = ctypes.POINTER(RtcCond)
_config_p = ctypes.POINTER(RtcConfig)
_buf_p = ctypes.POINTER(ctypes.c_char)  # writable char buffer

# name -> (restype, argtypes, statuses that are expected outcomes or None if
# the function does not return an rtc_status).
_SIGNATURES = {
    "rtc_cond_init": (_status, [_cond_p], ()),
    "rtc_cond_wait": (_status, [_cond_p, _mutex_p], ()),
    "rtc_cond_wait_at": (_status, [_cond_p, _mutex_p, ctypes.c_char_p, ctypes.c_uint32], ()),
    "rtc_cond_timedwait": (_status, [_cond_p, _mutex_p, ctypes.c_uint64], (RTC_ERR_TIMED_OUT,)),
    "rtc_cond_timedwait_at": (
        _status,
        [_cond_p, _mutex_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint32],
        (RTC_ERR_TIMED_OUT,),
    ),
    "rtc_cond_signal": (_status, [_cond_p], ()),
    "rtc_cond_broadcast": (_status, [_cond_p], ()),
    "rtc_cond_destroy": (_status, [_cond_p], ()),
    "rtc_status_str": (ctypes.c_char_p, [ctypes.c_int32], None),
    "rtc_last_error_message": (ctypes.c_size_t, [_buf_p, ctypes.c_size_t], None),
    "rtc_last_error_status": (_status, [], None),
    "rtc_last_error_clear": (None, [], None),
    "rtc_version": (ctypes.c_char_p, [], None),
    "rtc_version_number": (ctypes.c_uint32, [], None),
    "rtc_init": (_status, [_config_p], ()),
    "rtc_shutdown": (_status, [], ()),
    "rtc_debug_panic": (_status, [], ()),
    "rtc_mutex_init": (_status, [_mutex_p, ctypes.c_char_p, ctypes.c_char_p], ()),
    "rtc_mutex_lock": (_status, [_mutex_p], ()),
    "rtc_mutex_lock_at": (_status, [_mutex_p, ctypes.c_char_p, ctypes.c_uint32], ()),
    "rtc_mutex_trylock": (_status, [_mutex_p], (RTC_ERR_BUSY,)),
    "rtc_mutex_trylock_at": (
        _status,
        [_mutex_p, ctypes.c_char_p, ctypes.c_uint32],
        (RTC_ERR_BUSY,),
    ),
    "rtc_mutex_lock_keyed": (_status, [_mutex_p, ctypes.c_uint64], ()),
    "rtc_mutex_lock_keyed_at": (
        _status,
        [_mutex_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint32],
        (),
    ),
    "rtc_mutex_unlock": (_status, [_mutex_p], ()),
    "rtc_mutex_destroy": (_status, [_mutex_p], ()),
    "rtc_mutex_debug_panic": (_status, [_mutex_p], ()),
    "rtc_ranks_load": (_status, [ctypes.c_char_p, ctypes.c_char_p], ()),
    "rtc_ranks_load_file": (_status, [ctypes.c_char_p], ()),
    "rtc_rank_lookup": (_status, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32)], ()),
    "rtc_lockrank_set_mode": (_status, [ctypes.c_int32], ()),
    "rtc_lockrank_get_mode": (_status, [ctypes.POINTER(ctypes.c_int32)], ()),
    "rtc_lockrank_violations": (_status, [ctypes.POINTER(ctypes.c_uint64)], ()),
    "rtc_lockrank_last_report": (
        _status,
        [_buf_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        (),
    ),
    "rtc_lockrank_set_callback": (_status, [LOCKRANK_CALLBACK, ctypes.c_void_p], ()),
    "rtc_lockrank_next_report": (_status, [ctypes.POINTER(_report_p)], ()),
    "rtc_lockrank_report_free": (None, [_report_p], None),
    "rtc_lockrank_reports_dropped": (_status, [ctypes.POINTER(ctypes.c_uint64)], ()),
    "rtc_rwlock_init": (_status, [_rwlock_p, ctypes.c_char_p, ctypes.c_char_p], ()),
    "rtc_rwlock_rdlock": (_status, [_rwlock_p], ()),
    "rtc_rwlock_rdlock_at": (_status, [_rwlock_p, ctypes.c_char_p, ctypes.c_uint32], ()),
    "rtc_rwlock_wrlock": (_status, [_rwlock_p], ()),
    "rtc_rwlock_wrlock_at": (_status, [_rwlock_p, ctypes.c_char_p, ctypes.c_uint32], ()),
    "rtc_rwlock_rdlock_keyed_at": (
        _status,
        [_rwlock_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint32],
        (),
    ),
    "rtc_rwlock_wrlock_keyed_at": (
        _status,
        [_rwlock_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint32],
        (),
    ),
    "rtc_rwlock_tryrdlock": (_status, [_rwlock_p], (RTC_ERR_BUSY,)),
    "rtc_rwlock_tryrdlock_at": (
        _status,
        [_rwlock_p, ctypes.c_char_p, ctypes.c_uint32],
        (RTC_ERR_BUSY,),
    ),
    "rtc_rwlock_trywrlock": (_status, [_rwlock_p], (RTC_ERR_BUSY,)),
    "rtc_rwlock_trywrlock_at": (
        _status,
        [_rwlock_p, ctypes.c_char_p, ctypes.c_uint32],
        (RTC_ERR_BUSY,),
    ),
    "rtc_rwlock_unlock": (_status, [_rwlock_p], ()),
    "rtc_rwlock_destroy": (_status, [_rwlock_p], ()),
    "rtc_thread_attach": (_status, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)], ()),
    "rtc_thread_detach": (_status, [], ()),
    "rtc_thread_id": (_status, [ctypes.POINTER(ctypes.c_uint64)], ()),
    "rtc_thread_state": (_status, [ctypes.POINTER(ctypes.c_int32)], ()),
    "rtc_safepoint": (_status, [], ()),
    "rtc_enter_blocking": (_status, [ctypes.c_char_p], ()),
    "rtc_exit_blocking": (_status, [], ()),
    "rtc_stop_the_world": (_status, [ctypes.c_char_p], ()),
    "rtc_start_the_world": (_status, [], ()),
    "rtc_assert_world_stopped": (_status, [], ()),
    "rtc_set_maxprocs": (_status, [ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)], ()),
    "rtc_get_maxprocs": (_status, [ctypes.POINTER(ctypes.c_uint32)], ()),
    "rtc_world_set_safepoint_threshold_ns": (_status, [ctypes.c_uint64], ()),
    "rtc_world_census": (_status, [ctypes.POINTER(RtcCensus)], ()),
    "rtc_sysmon_get_stats": (_status, [ctypes.POINTER(RtcSysmonStats)], ()),
    "rtc_sysmon_set_threshold": (
        _status,
        [ctypes.c_uint32, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64)],
        (),
    ),
    "rtc_sysmon_get_threshold": (_status, [ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64)], ()),
    "rtc_sysmon_last_report": (ctypes.c_size_t, [_buf_p, ctypes.c_size_t], None),
    "rtc_sysmon_hook_add": (
        _status,
        [ctypes.c_char_p, ctypes.c_uint64, HOOK_FN, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)],
        (),
    ),
    "rtc_sysmon_hook_remove": (_status, [ctypes.c_uint64], ()),
    "rtc_set_preempt_handler": (_status, [PREEMPT_FN, ctypes.c_void_p], ()),
    "rtc_trace_start": (_status, [ctypes.POINTER(RtcTraceConfig)], ()),
    "rtc_trace_stop": (_status, [], ()),
    "rtc_trace_get_stats": (_status, [ctypes.POINTER(RtcTraceStats)], ()),
    "rtc_flight_recorder_start": (_status, [ctypes.POINTER(RtcFlightRecorderConfig)], ()),
    "rtc_flight_recorder_write": (_status, [ctypes.POINTER(RtcTraceConfig)], ()),
    "rtc_flight_recorder_stop": (_status, [], ()),
    "rtc_trace_enabled": (ctypes.c_int32, [], None),
    # The preload library's hooks (rtcore run); bound for completeness.
    "rtc_preload_lock_init": (_status, [ctypes.c_void_p, ctypes.c_void_p], ()),
    "rtc_preload_lock_destroyed": (_status, [ctypes.c_void_p], ()),
    "rtc_preload_lock_class": (
        _status,
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)],
        (),
    ),
    "rtc_preload_lock_check": (_status, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p], ()),
    "rtc_preload_lock_waited": (_status, [ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32], ()),
    "rtc_preload_unlock_not_held": (_status, [ctypes.c_void_p, ctypes.c_void_p], ()),
    "rtc_preload_wait_begin": (_status, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p], ()),
    "rtc_preload_wait_end": (_status, [], ()),
    "rtc_preload_cond_wait_begin": (_status, [ctypes.c_void_p], ()),
    "rtc_preload_cond_wait_end": (_status, [], ()),
    "rtc_preload_thread_exit": (_status, [ctypes.c_void_p, ctypes.c_size_t], ()),
    "rtc_preload_epoch": (ctypes.POINTER(ctypes.c_uint64), [], None),
    "rtc_preload_summary": (ctypes.c_size_t, [_buf_p, ctypes.c_size_t], None),
    "rtc_preload_learned_ranks": (ctypes.c_size_t, [ctypes.c_char_p, _buf_p, ctypes.c_size_t], None),
    "rtc_trace_check": (
        _status,
        [ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, _buf_p, ctypes.c_size_t],
        (RTC_ERR_BAD_TRACE, RTC_ERR_TRACE_CUT),
    ),
    "rtc_trace_check_file": (
        _status,
        [ctypes.c_char_p, _buf_p, ctypes.c_size_t],
        (RTC_ERR_BAD_TRACE, RTC_ERR_TRACE_CUT),
    ),
    "rtc_trace_stats_json": (_status, [ctypes.c_char_p, _buf_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], ()),
    "rtc_log": (_status, [ctypes.c_char_p, ctypes.c_char_p], ()),
    "rtc_region_begin": (_status, [ctypes.c_char_p], ()),
    "rtc_region_end": (_status, [], ()),
    "rtc_task_begin": (_status, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)], ()),
    "rtc_task_end": (_status, [ctypes.c_uint64], ()),
    "rtc_counter": (_status, [ctypes.c_char_p, ctypes.c_int64], ()),
}

#: Names of every C function this module declares (argtypes and restype set).
DECLARED_FUNCTIONS = tuple(_SIGNATURES)

for _name, (_restype, _argtypes, _expected) in _SIGNATURES.items():
    _fn = getattr(_lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
    if _expected is not None:
        _fn.errcheck = _status_errcheck(_expected)
del _name, _restype, _argtypes, _expected, _fn

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


_U32 = (0, 2**32 - 1)
_U64 = (0, 2**64 - 1)
_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)


def _int_arg(value, what, bounds):
    """An integer argument checked against the C type's range before
    ctypes sees it (ctypes would silently keep only the low bits):
    TypeError for a non-integer, OverflowError outside ``bounds``."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    lo, hi = bounds
    if not lo <= v <= hi:
        raise OverflowError(f"{what} {v} is out of range: it must be between {lo} and {hi}")
    return v


def _cstr(value, what):
    """Encode a str (UTF-8) or bytes for a `const char *`; None stays NULL."""
    if value is None:
        return None
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        raise TypeError(f"{what} must be str, bytes or None, not {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} must not contain NUL characters")
    return data


# rtcore keeps the `file` pointer of a call site for as long as the lock is
# held (and prints it in reports), so the encoded file names must live for
# the rest of the process. There is one entry per distinct source file.
_SITE_FILES = {}


def _site(frame):
    """(file bytes, line) of `frame`, the file bytes kept alive forever."""
    filename = frame.f_code.co_filename
    data = _SITE_FILES.get(filename)
    if data is None:
        data = _SITE_FILES.setdefault(filename, os.fsencode(filename).replace(b"\0", b"?"))
    return data, max(0, min(frame.f_lineno or 0, 0xFFFFFFFF))


# ---------------------------------------------------------------------------
# Mutex and condition variable
# ---------------------------------------------------------------------------


class Mutex:
    """A ranked rtcore mutex (``rtc_mutex``).

    ``name`` appears in reports and error messages; ``rank`` is a rank name
    declared with :func:`load_ranks` (``None``: an unranked leaf, which
    nothing may be acquired while holding). Construction raises
    :class:`RtcoreError` (``RTC_ERR_UNKNOWN_RANK``) for an undeclared rank.

    Unlike :class:`threading.Lock`, misuse is an error: locking a mutex this
    thread holds raises ``RTC_ERR_WOULD_DEADLOCK`` at once, and unlocking one
    it does not hold raises ``RTC_ERR_NOT_OWNER``. Each acquisition records
    the Python call site, shown in lock-order reports.

    ``with m:`` locks and unlocks like :class:`threading.Lock`;
    ``with m.keyed(key):`` does the same with a nesting key (see
    :meth:`lock`). Keep the object alive while it is locked.
    """

    __slots__ = ("_struct", "name", "rank", "__weakref__")

    def __init__(self, name=None, rank=None):
        # The Structure's memory is allocated once by ctypes and never moves,
        # as rtcore requires of a mutex after its first use.
        self._struct = RtcMutex()
        self.name = name
        self.rank = rank
        _lib.rtc_mutex_init(
            ctypes.byref(self._struct), _cstr(name, "name"), _cstr(rank, "rank")
        )

    def _lock_from(self, frame, key=None):
        file, line = _site(frame)
        if key is None:
            _lib.rtc_mutex_lock_at(ctypes.byref(self._struct), file, line)
        else:
            _lib.rtc_mutex_lock_keyed_at(
                ctypes.byref(self._struct), _int_arg(key, "key", _U64), file, line
            )

    def lock(self, key=None):
        """Lock, blocking (with the GIL released) until the mutex is free.

        The lock is order-checked against every rtcore lock this thread holds
        first. Raises :class:`RtcoreError` on misuse, for example
        ``RTC_ERR_WOULD_DEADLOCK`` if this thread already holds it.

        ``key`` (an int, 0 to 2**64-1) orders this mutex among the locks of
        its rank when the rank is declared ``nestable:``: a thread may hold
        several locks of such a rank only if it takes them in strictly
        increasing key order (a row's id, say); taking one whose key is not
        above every key of that rank it holds is a violation, handled as
        the lock-rank mode says (reason ``'key order'``). Without a key the
        lock's address is its key, so mix keyed and plain locking of one rank
        only if the keys are addresses too.
        """
        self._lock_from(sys._getframe(1), key)

    def keyed(self, key):
        """A context manager locking with nesting ``key`` (see :meth:`lock`)
        for the ``with`` block: ``with m.keyed(row_id): ...``. The call site
        recorded is the ``with`` statement."""
        return _Held(self, key, _MUTEX_LOCK)

    def try_lock(self):
        """Lock if free without blocking; return True if locked, False if
        another thread holds it. Raises ``RTC_ERR_WOULD_DEADLOCK`` if this
        thread holds it. A try-lock is not order-checked."""
        file, line = _site(sys._getframe(1))
        status = _lib.rtc_mutex_trylock_at(ctypes.byref(self._struct), file, line)
        return status == RTC_OK

    def unlock(self):
        """Unlock; raises ``RTC_ERR_NOT_OWNER`` if this thread does not hold it."""
        _lib.rtc_mutex_unlock(ctypes.byref(self._struct))

    def destroy(self):
        """Destroy; later use raises ``RTC_ERR_DESTROYED``. Raises
        ``RTC_ERR_LOCKED`` (and changes nothing) if any thread holds it."""
        _lib.rtc_mutex_destroy(ctypes.byref(self._struct))

    def __enter__(self):
        # The caller's frame is the one executing the `with` statement.
        self._lock_from(sys._getframe(1))
        return self

    def __exit__(self, exc_type, exc, tb):
        self.unlock()
        return False

    def __repr__(self):
        return (
            f"<rtcore.Mutex name={self.name!r} rank={self.rank!r} "
            f"at 0x{ctypes.addressof(self._struct):x}>"
        )


_MUTEX_LOCK = 0
_RW_READ = 1
_RW_WRITE = 2


class _Held:
    """The context manager of :meth:`Mutex.keyed`, :meth:`RWLock.read` and
    :meth:`RWLock.write`: locks on ``__enter__`` (recording the ``with``
    statement as the call site), unlocks on ``__exit__``."""

    __slots__ = ("_lock", "_key", "_how")

    def __init__(self, lock, key, how):
        if key is not None:
            key = _int_arg(key, "key", _U64)
        self._lock = lock
        self._key = key
        self._how = how

    def __enter__(self):
        # The caller's frame is the one executing the `with` statement.
        frame = sys._getframe(1)
        if self._how == _MUTEX_LOCK:
            self._lock._lock_from(frame, self._key)
        else:
            self._lock._lock_from(frame, self._how == _RW_WRITE, self._key)
        return self._lock

    def __exit__(self, exc_type, exc, tb):
        self._lock.unlock()
        return False

    def __repr__(self):
        how = ("lock", "read", "write")[self._how]
        key = "" if self._key is None else f" key={self._key}"
        return f"<rtcore {how} guard of {self._lock!r}{key}>"


class RWLock:
    """A ranked rtcore read/write lock (``rtc_rwlock``).

    Any number of threads may hold it for reading at once; a writer holds it
    alone. The policy prefers writers: a waiting writer stops new readers
    (it waits only for the readers already in), with eventual fairness.
    Readers that meet on a lock turn on reader bias, so that they no longer
    write the lock's memory (docs/ranks.md, "Reader bias").
    ``name`` and ``rank`` are as for :class:`Mutex`; a read lock and a write
    lock are order-checked alike, and reports say how a lock is held
    ("read-locked", "write-locked").

    Use the context managers::

        with lock.read():      # shared
            ...
        with lock.write():     # exclusive
            ...

    or the methods :meth:`read_lock`, :meth:`write_lock`,
    :meth:`try_read_lock`, :meth:`try_write_lock` and :meth:`unlock`. Each
    acquisition records the Python call site, shown in lock-order reports.

    Misuse is an error, as for :class:`Mutex`: a thread may not lock an
    rwlock it already holds in any mode (``RTC_ERR_WOULD_DEADLOCK``; even a
    second read lock, since a writer arriving between the two would make it
    wait forever), and unlocking one it does not hold raises
    ``RTC_ERR_NOT_OWNER``. Keep the object alive while it is locked.
    """

    __slots__ = ("_struct", "name", "rank", "__weakref__")

    def __init__(self, name=None, rank=None):
        # Allocated once by ctypes and never moved, as rtcore requires.
        self._struct = RtcRwlock()
        self.name = name
        self.rank = rank
        _lib.rtc_rwlock_init(
            ctypes.byref(self._struct), _cstr(name, "name"), _cstr(rank, "rank")
        )

    def _lock_from(self, frame, write, key=None):
        file, line = _site(frame)
        p = ctypes.byref(self._struct)
        if key is None:
            (_lib.rtc_rwlock_wrlock_at if write else _lib.rtc_rwlock_rdlock_at)(p, file, line)
        else:
            key = _int_arg(key, "key", _U64)
            if write:
                _lib.rtc_rwlock_wrlock_keyed_at(p, key, file, line)
            else:
                _lib.rtc_rwlock_rdlock_keyed_at(p, key, file, line)

    def read_lock(self, key=None):
        """Lock for reading (shared), blocking with the GIL released while a
        writer holds the lock or waits for it.

        Order-checked first against every rtcore lock this thread holds.
        ``key`` orders the lock among locks of a ``nestable:`` rank (see
        :meth:`Mutex.lock`). Raises ``RTC_ERR_WOULD_DEADLOCK`` if this thread
        already holds it (read or write), and :class:`RtcoreError` for other
        misuse (``RTC_ERR_DESTROYED``, ...).
        """
        self._lock_from(sys._getframe(1), False, key)

    def write_lock(self, key=None):
        """Lock for writing (exclusive), blocking with the GIL released until
        no other thread holds it. As :meth:`read_lock` otherwise."""
        self._lock_from(sys._getframe(1), True, key)

    def try_read_lock(self):
        """Read-lock if no writer holds the lock or waits for it, without
        blocking: True if locked, False if not. Raises
        ``RTC_ERR_WOULD_DEADLOCK`` if this thread holds it. Recorded as held
        but not order-checked (it cannot block)."""
        file, line = _site(sys._getframe(1))
        return _lib.rtc_rwlock_tryrdlock_at(ctypes.byref(self._struct), file, line) == RTC_OK

    def try_write_lock(self):
        """Write-lock if no thread holds the lock, without blocking: True if
        locked, False if not. As :meth:`try_read_lock` otherwise."""
        file, line = _site(sys._getframe(1))
        return _lib.rtc_rwlock_trywrlock_at(ctypes.byref(self._struct), file, line) == RTC_OK

    def unlock(self):
        """Release this thread's hold, read or write; raises
        ``RTC_ERR_NOT_OWNER`` if this thread holds it in neither mode."""
        _lib.rtc_rwlock_unlock(ctypes.byref(self._struct))

    def destroy(self):
        """Destroy; later use raises ``RTC_ERR_DESTROYED``. Raises
        ``RTC_ERR_LOCKED`` (and changes nothing) if any thread holds it or
        waits for it."""
        _lib.rtc_rwlock_destroy(ctypes.byref(self._struct))

    def read(self, key=None):
        """A context manager holding the lock for reading for the ``with``
        block: ``with lock.read(): ...`` (``key`` as for :meth:`read_lock`).
        The call site recorded is the ``with`` statement."""
        return _Held(self, key, _RW_READ)

    def write(self, key=None):
        """A context manager holding the lock for writing for the ``with``
        block: ``with lock.write(): ...`` (``key`` as for :meth:`write_lock`)."""
        return _Held(self, key, _RW_WRITE)

    def __repr__(self):
        return (
            f"<rtcore.RWLock name={self.name!r} rank={self.rank!r} "
            f"at 0x{ctypes.addressof(self._struct):x}>"
        )


_MAX_NS = 0xFFFFFFFFFFFFFFFF


def _timeout_ns(timeout):
    """Seconds (int or float) to nanoseconds for rtc_cond_timedwait."""
    t = float(timeout)
    if t != t:
        raise ValueError("timeout must not be NaN")
    if t <= 0:
        return 0
    if t >= _MAX_NS / 1e9:
        return _MAX_NS
    return min(int(t * 1e9), _MAX_NS)


class Cond:
    """An rtcore condition variable (``rtc_cond``), used with a :class:`Mutex`.

    As with every condition variable, wake-ups may be spurious: wait in a
    loop on a predicate::

        with m:
            while not ready:
                c.wait(m)
    """

    __slots__ = ("_struct", "__weakref__")

    def __init__(self):
        self._struct = RtcCond()
        _lib.rtc_cond_init(ctypes.byref(self._struct))

    def wait(self, mutex, timeout=None):
        """Release ``mutex`` (which this thread must hold), sleep until
        notified or until ``timeout`` seconds (a float) pass, and retake
        ``mutex`` before returning, also on timeout.

        Returns True when woken (by a notify, or spuriously) and False when
        the timeout passed. Raises ``RTC_ERR_NOT_OWNER`` if this thread does
        not hold ``mutex``. A timeout of 0 or less times out at once; an
        infinite one is capped at 2**64-1 ns. The caller's file and line are
        recorded as the call site for reports.
        """
        if not isinstance(mutex, Mutex):
            raise TypeError(f"mutex must be an rtcore.Mutex, not {type(mutex).__name__}")
        file, line = _site(sys._getframe(1))
        if timeout is None:
            _lib.rtc_cond_wait_at(
                ctypes.byref(self._struct), ctypes.byref(mutex._struct), file, line
            )
            return True
        ns = _timeout_ns(timeout)
        status = _lib.rtc_cond_timedwait_at(
            ctypes.byref(self._struct), ctypes.byref(mutex._struct), ns, file, line
        )
        return status == RTC_OK

    def notify(self):
        """Wake one waiting thread, if any (``rtc_cond_signal``)."""
        _lib.rtc_cond_signal(ctypes.byref(self._struct))

    def notify_all(self):
        """Wake every waiting thread (``rtc_cond_broadcast``)."""
        _lib.rtc_cond_broadcast(ctypes.byref(self._struct))

    def destroy(self):
        """Destroy; raises ``RTC_ERR_LOCKED`` if threads are waiting on it."""
        _lib.rtc_cond_destroy(ctypes.byref(self._struct))

    def __repr__(self):
        return f"<rtcore.Cond at 0x{ctypes.addressof(self._struct):x}>"


# ---------------------------------------------------------------------------
# Ranks and the lock-order checker
# ---------------------------------------------------------------------------


def load_ranks(text, source_name=None):
    """Add rank declarations (the rank language: ``NONE < a; a < b, c;``) to
    the process-wide rank table. ``source_name`` names the text in error
    messages and reports (default ``"<string>"``). Ranks can only be added:
    a name cannot be defined twice. Raises ``RTC_ERR_RANK_SYNTAX`` with a
    ``"name:line:column: what"`` message; on any error nothing is added."""
    _lib.rtc_ranks_load(_cstr(text, "text"), _cstr(source_name, "source_name"))


def load_ranks_file(path):
    """Load rank declarations from the file at ``path`` (see
    :func:`load_ranks`). Raises ``RTC_ERR_IO`` if it cannot be read."""
    _lib.rtc_ranks_load_file(_cstr(os.fsencode(path), "path"))


def rank_lookup(name):
    """The id (an int, stable for the process) of the rank ``name``. Raises
    ``RTC_ERR_UNKNOWN_RANK`` for an undeclared name or a pseudo-rank."""
    out = ctypes.c_uint32()
    _lib.rtc_rank_lookup(_cstr(name, "name"), ctypes.byref(out))
    return out.value


def _mode_value(mode):
    if isinstance(mode, str):
        try:
            return _MODE_VALUES[mode]
        except KeyError:
            if mode == "callback":
                raise ValueError(
                    "lock-rank mode 'callback' is selected with rtcore.on_violation(fn), "
                    "which also sets the callable"
                ) from None
            raise ValueError(
                f"unknown lock-rank mode {mode!r}: expected one of 'off', 'report', "
                "'abort', 'queue' (or 'default'); 'callback' is set by on_violation()"
            ) from None
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"lock-rank mode must be a str or an int, not {type(mode).__name__}")
    return _int_arg(mode, "lock-rank mode", _I32)


def set_lockrank_mode(mode):
    """Set what the checker does on a lock-order violation: ``'off'``,
    ``'report'`` (print once per rank pair, count every time, go on),
    ``'abort'`` (print and abort the process), ``'queue'`` (queue every
    violation for :func:`next_violation`, print nothing), ``'default'``
    (report), or one of the ``RTC_LOCKRANK_*`` ints. The callback mode is
    selected by :func:`on_violation` (the name ``'callback'`` raises
    ValueError here; the int ``RTC_LOCKRANK_CALLBACK`` re-selects a callback
    still set, and raises :class:`RtcoreError` if none is). An unknown int
    raises ``RTC_ERR_INVALID_ARGUMENT``; an unknown name raises ValueError."""
    _lib.rtc_lockrank_set_mode(_mode_value(mode))


def lockrank_mode():
    """The current lock-rank mode: ``'off'``, ``'report'``, ``'abort'``,
    ``'callback'`` or ``'queue'``."""
    out = ctypes.c_int32()
    _lib.rtc_lockrank_get_mode(ctypes.byref(out))
    return LOCKRANK_MODE_NAMES.get(out.value, str(out.value))


def violations():
    """The number of lock-order violations seen so far in this process
    (every occurrence, also those whose report was not printed again)."""
    out = ctypes.c_uint64()
    _lib.rtc_lockrank_violations(ctypes.byref(out))
    return out.value


def last_report():
    """The text of the most recent violation report ('' if none yet):
    printed (in report mode only the first of each rank pair is made),
    passed to the :func:`on_violation` callable, or queued."""
    needed = ctypes.c_size_t()
    _lib.rtc_lockrank_last_report(None, 0, ctypes.byref(needed))
    while True:
        size = needed.value
        buf = ctypes.create_string_buffer(max(size, 1))
        _lib.rtc_lockrank_last_report(buf, len(buf), ctypes.byref(needed))
        if needed.value <= len(buf):
            return buf.value.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Violation reports as objects: the callback and queue modes
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LockInfo:
    """One lock in a :class:`LockReport` (``rtc_lockrank_lock``).

    Attributes:
        address: the lock's address (an int).
        name: its name (``"(unnamed)"`` if it has none).
        rank: its rank's name, or ``"unranked"``.
        kind: ``'mutex'``, ``'rwlock'`` or ``'rtcore'`` (one of rtcore's own
            locks, such as ``hooklock``).
        mode: ``'exclusive'`` (a mutex, or a write lock) or ``'shared'`` (a
            read lock).
        key: the nesting key (the lock's address unless the caller gave one).
        file: the call site's file (``""`` when none was recorded); for a
            lock taken from Python, the ``co_filename`` of the caller.
        line: the call site's line.
        tried: taken by a try-lock (always False for the wanted lock).
        conflicts: a held lock the wanted one may not follow (always False
            for the wanted lock).
    """

    address: int
    name: str
    rank: str
    kind: str
    mode: str
    key: int
    file: str
    line: int
    tried: bool = False
    conflicts: bool = False


@dataclasses.dataclass(frozen=True)
class LockReport:
    """A lock-order violation (``rtc_lockrank_report``), as passed to an
    :func:`on_violation` callable or returned by :func:`next_violation`.

    Attributes:
        sequence: numbers every report made in the process, from 1.
        thread_id: the violating thread's rtcore id (see :func:`thread_id`).
        thread_name: its rtcore name (``""`` when it has none).
        reason: ``'order'`` (a held rank may not be held when the wanted one
            is acquired) or ``'key order'`` (locks of a nestable rank taken
            out of increasing key order).
        wanted: the :class:`LockInfo` of the lock being acquired.
        held: every lock the thread holds, oldest first (a list of
            :class:`LockInfo`); those the wanted lock may not follow have
            ``conflicts`` set.
        text: the report as text, as the report mode prints it.
    """

    sequence: int
    thread_id: int
    thread_name: str
    reason: str
    wanted: LockInfo
    held: list
    text: str

    @property
    def conflicting(self):
        """The held locks the wanted one may not follow."""
        return [h for h in self.held if h.conflicts]


def _text(p):
    return "" if p is None else p.decode("utf-8", "replace")


def _lock_info(c):
    return LockInfo(
        address=int(c.addr),
        name=_text(c.name),
        rank=_text(c.rank),
        kind=LOCK_KIND_NAMES.get(c.kind, str(c.kind)),
        mode=LOCK_MODE_NAMES.get(c.mode, str(c.mode)),
        key=int(c.key),
        # The inverse of _site's os.fsencode: the caller's co_filename.
        file="" if c.file is None else os.fsdecode(c.file),
        line=int(c.line),
        tried=bool(c.flags & RTC_LOCKRANK_HELD_TRIED),
        conflicts=bool(c.flags & RTC_LOCKRANK_HELD_CONFLICTS),
    )


def _report(c):
    """A LockReport copied out of a C ``rtc_lockrank_report``."""
    held = [_lock_info(c.held[i]) for i in range(c.held_count)] if c.held else []
    return LockReport(
        sequence=int(c.sequence),
        thread_id=int(c.thread_id),
        thread_name=_text(c.thread_name),
        reason=LOCKRANK_REASON_NAMES.get(c.reason, str(c.reason)),
        wanted=_lock_info(c.wanted),
        held=held,
        text=_text(c.text),
    )


# The callable set by on_violation() (None: none set).
_violation_fn = None
# Every trampoline ever passed to rtc_lockrank_set_callback. rtcore may still
# call a replaced one (a violating thread that read it just before the
# change), and nothing tells Python when that call has returned: each is kept
# for the life of the process (one small object per on_violation call).
_violation_keep = []


def on_violation(fn):
    """Call ``fn(report)`` for every lock-order violation from now on, with
    a :class:`LockReport`; ``None`` removes it and returns to the report
    mode. Returns the callable set before (or None).

    This selects the ``'callback'`` lock-rank mode: nothing is printed, and
    every violation (not only the first of a rank pair) is passed to ``fn``
    on the violating thread, before the acquisition that violated blocks,
    with every lock the thread holds still held (the lock is then still
    taken, as in report mode). ``fn`` may take rtcore locks itself; a
    violation it makes is printed (report mode), not passed to it again.

    An exception raised by ``fn`` cannot propagate through rtcore: ctypes
    prints it (through :func:`sys.unraisablehook`, "Exception ignored on
    calling ctypes callback function") and the acquisition goes on. The
    callable is kept alive (in this module) for the rest of the process.
    """
    global _violation_fn
    prev = _violation_fn
    if fn is None:
        _lib.rtc_lockrank_set_callback(LOCKRANK_CALLBACK(), None)
        _violation_fn = None
        return prev
    if not callable(fn):
        raise TypeError("fn must be callable or None")

    def trampoline(report_p, _user, _fn=fn):
        # The report is valid only during this call: copy it out first.
        _fn(_report(report_p.contents))

    c_fn = LOCKRANK_CALLBACK(trampoline)
    # Kept before the call: from the moment it is set, any thread may call it.
    _violation_keep.append(c_fn)
    _lib.rtc_lockrank_set_callback(c_fn, None)
    _violation_fn = fn
    return prev


def next_violation():
    """The oldest violation queued in the ``'queue'`` lock-rank mode (see
    :func:`set_lockrank_mode`), as a :class:`LockReport`, or None when none
    is pending. Reports stay queued after the mode changes; any thread may
    poll. At most 256 are kept pending (see :func:`violations_dropped`)."""
    out = _report_p()
    _lib.rtc_lockrank_next_report(ctypes.byref(out))
    if not out:
        return None
    try:
        return _report(out.contents)
    finally:
        _lib.rtc_lockrank_report_free(out)


def violations_dropped():
    """How many queued reports were dropped because 256 were pending."""
    out = ctypes.c_uint64()
    _lib.rtc_lockrank_reports_dropped(ctypes.byref(out))
    return out.value


# ---------------------------------------------------------------------------
# Versions, statuses, last error, lifecycle
# ---------------------------------------------------------------------------


def version():
    """The library's version string, "MAJOR.MINOR.PATCH"."""
    return _lib.rtc_version().decode("ascii")


def version_number():
    """The library's version as ``MAJOR << 16 | MINOR << 8 | PATCH``."""
    return int(_lib.rtc_version_number())


def status_str(status):
    """rtcore's description of a status value ("unknown status" if unknown)."""
    status = int(status)
    if not -(2**31) <= status < 2**31:
        return "unknown status"
    return _lib.rtc_status_str(status).decode("utf-8", "replace")


def last_error():
    """(status, message) of this thread's most recent failed rtcore call
    (``(RTC_OK, '')`` if none)."""
    return int(_lib.rtc_last_error_status()), _last_error_message()


def clear_last_error():
    """Forget this thread's last error."""
    _lib.rtc_last_error_clear()


def init(lockrank_mode=None, ranks_file=None, maxprocs=0):
    """Initialise rtcore with options (optional; defaults apply on first use).

    Call at most once per process, before any other use. ``lockrank_mode``
    is as for :func:`set_lockrank_mode` (``RTCORE_DEBUG=lockrank=...`` in
    the environment overrides it); ``ranks_file`` is a rank file to load;
    ``maxprocs`` bounds how many attached threads run at once (0: unlimited).
    Raises ``RTC_ERR_ALREADY_INITIALIZED`` on a second call,
    ``RTC_ERR_TOO_LATE`` after first use, ``RTC_ERR_SHUT_DOWN`` after
    :func:`shutdown`.
    """
    config = RtcConfig()
    config.size = ctypes.sizeof(RtcConfig)
    config.lockrank_mode = RTC_LOCKRANK_DEFAULT if lockrank_mode is None else _mode_value(lockrank_mode)
    path = None if ranks_file is None else _cstr(os.fsencode(ranks_file), "ranks_file")
    config.ranks_file = path  # `path` stays referenced until the call returns
    config.maxprocs = _int_arg(maxprocs, "maxprocs", _U32)
    _lib.rtc_init(ctypes.byref(config))


def shutdown():
    """Shut rtcore down for the rest of the process: later calls raise
    ``RTC_ERR_SHUT_DOWN`` (as does a second shutdown)."""
    _lib.rtc_shutdown()


def debug_panic():
    """Diagnostic: make rtcore panic inside its C boundary. Raises
    :class:`RtcoreError` with status ``RTC_ERR_PANIC``; the process goes on."""
    _lib.rtc_debug_panic()


# ---------------------------------------------------------------------------
# The world: threads, processors, safepoints, blocking regions, stops
# ---------------------------------------------------------------------------

#: Names of ``rtc_thread_state`` values.
THREAD_STATE_NAMES = {0: "unattached", 1: "running", 2: "runnable", 3: "blocking", 4: "waiting"}


def attach(name=None):
    """Attach the calling thread to the world (it gets a P; may wait for
    one). Returns its rtcore id. Detach with ``detach()``; a thread that
    exits attached is detached by rtcore."""
    out = ctypes.c_uint64()
    _lib.rtc_thread_attach(_cstr(name, "name"), ctypes.byref(out))
    return out.value


def detach():
    """Detach the calling thread (it must not be inside a blocking region)."""
    _lib.rtc_thread_detach()


def thread_id():
    """The calling thread's rtcore id (attached or not; never reused)."""
    out = ctypes.c_uint64()
    _lib.rtc_thread_id(ctypes.byref(out))
    return out.value


def thread_state():
    """The calling thread's state: 'unattached', 'running', 'runnable',
    'blocking' or 'waiting'."""
    out = ctypes.c_int32()
    _lib.rtc_thread_state(ctypes.byref(out))
    return THREAD_STATE_NAMES.get(out.value, str(out.value))


def safepoint():
    """A safepoint: parks here while a stop is in force (attached threads)."""
    _lib.rtc_safepoint()


class blocking:
    """``with rtcore.blocking("read"):`` marks a blocking region (a read, a
    sleep): a stop does not wait for the thread while it is inside."""

    def __init__(self, reason=None):
        self._reason = _cstr(reason, "reason")

    def __enter__(self):
        _lib.rtc_enter_blocking(self._reason)
        return self

    def __exit__(self, *exc):
        _lib.rtc_exit_blocking()
        return False


def stop_the_world(reason=None):
    """Stop every other attached thread at its next safepoint."""
    _lib.rtc_stop_the_world(_cstr(reason, "reason"))


def start_the_world():
    """Restart a world this thread stopped."""
    _lib.rtc_start_the_world()


class stopped_world:
    """``with rtcore.stopped_world("why"):`` stops the world for the block."""

    def __init__(self, reason=None):
        self._reason = reason

    def __enter__(self):
        stop_the_world(self._reason)
        return self

    def __exit__(self, *exc):
        start_the_world()
        return False


def assert_world_stopped():
    """Raise unless the calling thread holds the world stopped."""
    _lib.rtc_assert_world_stopped()


def set_maxprocs(n):
    """Set how many attached threads may run at once (0: unlimited);
    returns the previous value."""
    prev = ctypes.c_uint32()
    _lib.rtc_set_maxprocs(_int_arg(n, "maxprocs", _U32), ctypes.byref(prev))
    return prev.value


def get_maxprocs():
    """The current maxprocs (0: unlimited)."""
    out = ctypes.c_uint32()
    _lib.rtc_get_maxprocs(ctypes.byref(out))
    return out.value


def set_safepoint_threshold_ns(ns):
    """After this long a stop names the threads holding it up (stderr)."""
    _lib.rtc_world_set_safepoint_threshold_ns(_int_arg(ns, "ns", _U64))


def census():
    """Threads and Ps by state, as a dict."""
    c = RtcCensus()
    c.size = ctypes.sizeof(RtcCensus)
    _lib.rtc_world_census(ctypes.byref(c))
    return {name: getattr(c, name) for name, _ in RtcCensus._fields_ if name != "size"}


def sysmon_stats():
    """sysmon's counters, as a dict (sysmon starts with the first attach)."""
    st = RtcSysmonStats()
    st.size = ctypes.sizeof(RtcSysmonStats)
    _lib.rtc_sysmon_get_stats(ctypes.byref(st))
    return {name: getattr(st, name) for name, _ in RtcSysmonStats._fields_ if name != "size"}


# ---------------------------------------------------------------------------
# sysmon: thresholds, reports, hooks
# ---------------------------------------------------------------------------

#: sysmon's settings (``rtc_sysmon_setting``), by the names RTCORE_DEBUG uses.
SYSMON_SETTINGS = {
    "threadstall": 1,
    "lockstall": 2,
    "hookbudget": 3,
    "schedtrace": 4,
}


def _setting(name):
    try:
        return SYSMON_SETTINGS[name]
    except KeyError:
        raise ValueError(
            f"unknown sysmon setting {name!r} (known: {', '.join(SYSMON_SETTINGS)})"
        ) from None


def set_sysmon_threshold(name, seconds):
    """Set one of sysmon's thresholds ("threadstall", "lockstall",
    "hookbudget", "schedtrace") in seconds; 0 switches that report off.
    Returns the previous value in seconds."""
    if seconds < 0:
        raise ValueError("a threshold cannot be negative")
    ns = int(round(seconds * 1e9))
    if ns >= 2**64:
        raise ValueError("a threshold must be under 2**64 nanoseconds")
    old = ctypes.c_uint64()
    _lib.rtc_sysmon_set_threshold(_setting(name), ns, ctypes.byref(old))
    return old.value / 1e9


def sysmon_threshold(name):
    """One of sysmon's thresholds, in seconds (0: off)."""
    v = ctypes.c_uint64()
    _lib.rtc_sysmon_get_threshold(_setting(name), ctypes.byref(v))
    return v.value / 1e9


def sysmon_last_report():
    """sysmon's most recent report (a stall, its resolution, a hook
    overrun) as a str, or "" if none yet. Every report also goes to stderr."""
    need = _lib.rtc_sysmon_last_report(None, 0)
    buf = ctypes.create_string_buffer(need)
    _lib.rtc_sysmon_last_report(buf, need)
    return buf.value.decode("utf-8", "replace")


# Callbacks passed to C must stay alive while C may call them: each hook's
# ctypes trampoline (and the Python callable it wraps) is kept here until the
# hook is removed. The lock only guards the dict, never a call into C.
_hooks = {}
_hooks_lock = threading.Lock()


class Hook:
    """A registered hook (see :func:`add_hook`). ``remove()`` (or leaving a
    ``with`` block) unregisters it."""

    def __init__(self, hook_id, name):
        self.id = hook_id
        self.name = name

    def remove(self):
        """Unregister: when this returns the hook is not running and will not
        run again. Called from inside the hook itself, it takes effect when
        the run returns."""
        _lib.rtc_sysmon_hook_remove(self.id)
        with _hooks_lock:
            entry = _hooks.pop(self.id, None)
        # From inside its own run the trampoline is still executing: keep it
        # referenced for good (one small object per self-removal), since
        # nothing tells Python when that run has returned.
        if entry is not None and _in_hook.get(self.id):
            _retired.append(entry)

    @property
    def active(self):
        with _hooks_lock:
            return self.id in _hooks

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.active:
            self.remove()

    def __repr__(self):
        return f"<rtcore.Hook {self.name!r} id={self.id}>"


_in_hook = {}
_retired = []


def add_hook(name, period, fn):
    """Call ``fn()`` every ``period`` seconds (at least 100 µs) on rtcore's
    hook thread, and return a :class:`Hook`.

    The hook runs on rtcore's hook thread, which holds the GIL while ``fn``
    runs (ctypes takes it for the call), so a hook should be quick: sysmon
    reports a run longer than the "hookbudget" threshold. An exception
    raised by ``fn`` is printed (as ctypes prints callback errors) and the
    hook stays registered. The callable is kept alive until the hook is
    removed; hooks still registered at interpreter exit are removed then.
    From a hook, :func:`stop_the_world` and :func:`attach` raise
    :class:`RtcoreError`."""
    if not callable(fn):
        raise TypeError("fn must be callable")
    if period <= 0:
        raise ValueError("period must be positive")
    if period * 1e9 >= 2**64:
        raise ValueError("period must be under 2**64 nanoseconds")

    def trampoline(_user_data, _fn=fn):
        hid = box[0]
        _in_hook[hid] = True
        try:
            _fn()
        finally:
            _in_hook.pop(hid, None)

    box = [0]
    c_fn = HOOK_FN(trampoline)
    out = ctypes.c_uint64()
    with _hooks_lock:
        # Registered under the lock so the trampoline can find its id before
        # its first run (which comes one period after the add at the soonest).
        _lib.rtc_sysmon_hook_add(
            _cstr(name, "name"), max(1, int(round(period * 1e9))), c_fn, None, ctypes.byref(out)
        )
        box[0] = out.value
        _hooks[out.value] = (c_fn, fn)
    return Hook(out.value, name)


def _remove_hooks_at_exit():
    """At interpreter exit, before finalization: no Python callback may run
    after this (a C thread calling into a finalized interpreter crashes it).
    A trampoline is dropped only once C can no longer call it. A trace in
    progress is stopped here too (its sink may be a Python callable), and a
    violation callable set by on_violation() is removed (report mode)."""
    global _preempt_handler, _violation_fn
    if _violation_fn is not None:
        # A violation during finalization must not call into Python.
        try:
            _lib.rtc_lockrank_set_callback(LOCKRANK_CALLBACK(), None)
        except RtcoreError:
            pass
        _violation_fn = None
    if _lib.rtc_trace_enabled():
        try:
            _lib.rtc_trace_stop()
        except RtcoreError:
            pass
    if _preempt_handler is not None:
        try:
            _lib.rtc_set_preempt_handler(PREEMPT_FN(), None)
        except RtcoreError:
            pass
        _preempt_handler = None
    for _ in range(100):
        with _hooks_lock:
            ids = list(_hooks)
        if not ids:
            return
        for hid in ids:
            try:
                _lib.rtc_sysmon_hook_remove(hid)
            except RtcoreError as e:
                if e.status == RTC_ERR_WOULD_DEADLOCK:
                    # This thread holds the world stopped and the hook is
                    # running (maybe waiting for a stopped thread): restart
                    # the world, and try again in the next round.
                    try:
                        _lib.rtc_start_the_world()
                    except RtcoreError:
                        pass
                    continue
                if e.status not in (RTC_ERR_SHUT_DOWN, RTC_ERR_INVALID_ARGUMENT):
                    # Unknown state: C may still call it. Keep it for good.
                    with _hooks_lock:
                        entry = _hooks.pop(hid, None)
                    if entry is not None:
                        _retired.append(entry)
                    continue
                # Shut down (hooks gone, thread joined) or already removed.
            with _hooks_lock:
                _hooks.pop(hid, None)
    # Still registered after 100 rounds: keep the trampolines alive.
    with _hooks_lock:
        _retired.extend(_hooks.values())
        _hooks.clear()


atexit.register(_remove_hooks_at_exit)


def set_preempt_handler(fn):
    """Call ``fn(request_number)`` on a thread when it honours one of
    sysmon's preemption requests (it ran 10 ms without a safepoint), at its
    next safepoint. ``None`` removes the handler."""
    global _preempt_handler
    if fn is None:
        _lib.rtc_set_preempt_handler(PREEMPT_FN(), None)
        _preempt_handler = None
        return
    if not callable(fn):
        raise TypeError("fn must be callable or None")
    c_fn = PREEMPT_FN(lambda n, _ud: fn(n))
    _lib.rtc_set_preempt_handler(c_fn, None)
    # rtcore never frees a replaced handler; keep every trampoline alive too.
    _preempt_keep.append(c_fn)
    _preempt_handler = c_fn


_preempt_handler = None
_preempt_keep = []


# ---------------------------------------------------------------------------
# Tracing
# ---------------------------------------------------------------------------

_trace_callback = None  # the trampoline of a callback sink, kept while tracing


def trace_start(path=None, fd=None, write=None, generation_ms=0):
    """Start recording a trace into exactly one sink: a file ``path``
    (created or emptied), an open file descriptor ``fd`` (never closed by
    rtcore), or a callable ``write(data: bytes)`` called on rtcore's writer
    thread (it holds the GIL then; raise to fail the trace).
    ``generation_ms``: how often the trace rolls to a new generation (0:
    the default, 1000 ms); a program killed while tracing loses at most the
    generation in progress."""
    global _trace_callback
    given = [x is not None for x in (path, fd, write)]
    if sum(given) != 1:
        raise ValueError("give exactly one of path, fd, write")
    c = RtcTraceConfig()
    c.size = ctypes.sizeof(RtcTraceConfig)
    c.generation_ms = _int_arg(generation_ms, "generation_ms", _U32)
    tramp = None
    if path is not None:
        c.sink_kind = RTC_TRACE_SINK_PATH
        c.path = _cstr(os.fspath(path), "path")
    elif fd is not None:
        c.sink_kind = RTC_TRACE_SINK_FD
        c.fd = _int_arg(fd, "fd", _I32)
    else:
        if not callable(write):
            raise TypeError("write must be callable")

        def tramp_fn(data, n, _ud, _write=write):
            try:
                _write(ctypes.string_at(data, n))
                return 0
            except BaseException:  # noqa: BLE001 - reported as a failed sink
                return -1

        tramp = TRACE_WRITE_FN(tramp_fn)
        c.sink_kind = RTC_TRACE_SINK_CALLBACK
        c.write = tramp
    if tramp is not None:
        # Kept for good, before the start: C may call it from the moment the
        # writer starts, and after a failed stop until the writer gives up.
        _retired.append(tramp)
        _trace_callback = tramp
    _lib.rtc_trace_start(ctypes.byref(c))


def trace_stop():
    """Stop the trace (waits for the writer); fine when not tracing."""
    _lib.rtc_trace_stop()


class tracing:
    """``with rtcore.tracing("run.rtctrace"):`` records a trace of the
    block: started on entry (the arguments are :func:`trace_start`'s: one
    of ``path``, ``fd``, ``write``, and ``generation_ms``) and stopped on
    exit, also when the block raises (the trace is then still complete).
    A failing stop raises :class:`RtcoreError` unless the block already
    raised."""

    def __init__(self, path=None, fd=None, write=None, generation_ms=0):
        self._args = dict(path=path, fd=fd, write=write, generation_ms=generation_ms)

    def __enter__(self):
        trace_start(**self._args)
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            trace_stop()
        except RtcoreError:
            if exc_type is None:
                raise
        return False


class flight_recorder:
    """``with rtcore.flight_recorder(dump_dir=...):`` keeps the recent past
    of a trace in memory (``max_mb``, default 16) while the block runs,
    and, with a ``dump_dir``, dumps it there by itself on a stall, a
    deadlock, a lock-order violation or a fatal signal (``triggers``: a
    list of names from :data:`FLIGHT_TRIGGERS`; default all). Write a
    snapshot meanwhile with :func:`flight_recorder_write`. One trace at a
    time: :func:`trace_start` raises ``RTC_ERR_WRONG_STATE`` inside."""

    def __init__(self, dump_dir=None, max_mb=0, min_age_ms=0, triggers=None,
                 rate_limit_ms=0, dir_max_dumps=0, dir_max_mb=0):
        c = RtcFlightRecorderConfig()
        c.size = ctypes.sizeof(RtcFlightRecorderConfig)
        c.max_mb = _int_arg(max_mb, "max_mb", _U32)
        c.min_age_ms = _int_arg(min_age_ms, "min_age_ms", _U32)
        bits = 0
        for t in triggers or ():
            if t not in FLIGHT_TRIGGERS:
                raise ValueError(f"unknown trigger {t!r} (known: {', '.join(FLIGHT_TRIGGERS)})")
            bits |= FLIGHT_TRIGGERS[t]
        c.triggers = bits
        self._dir = None if dump_dir is None else _cstr(os.fspath(dump_dir), "dump_dir")
        c.dump_dir = self._dir
        c.rate_limit_ms = _int_arg(rate_limit_ms, "rate_limit_ms", _U32)
        c.dir_max_dumps = _int_arg(dir_max_dumps, "dir_max_dumps", _U32)
        c.dir_max_mb = _int_arg(dir_max_mb, "dir_max_mb", _U32)
        self._config = c

    def __enter__(self):
        _lib.rtc_flight_recorder_start(ctypes.byref(self._config))
        return self

    def __exit__(self, *exc):
        _lib.rtc_flight_recorder_stop()
        return False


def flight_recorder_write(path):
    """Write what the running flight recorder holds to ``path`` (created or
    emptied) as a complete trace, while it goes on recording."""
    c = RtcTraceConfig()
    c.size = ctypes.sizeof(RtcTraceConfig)
    c.sink_kind = RTC_TRACE_SINK_PATH
    c.path = _cstr(os.fspath(path), "path")
    _lib.rtc_flight_recorder_write(ctypes.byref(c))


def trace_enabled():
    return bool(_lib.rtc_trace_enabled())


def trace_counters():
    """The counters of the trace being recorded (or of the last one), as a
    dict: batches, events and bytes handed to the writer, and what was
    lost when a sink fell behind (generations, batches, events, bytes)."""
    st = RtcTraceStats()
    st.size = ctypes.sizeof(RtcTraceStats)
    _lib.rtc_trace_get_stats(ctypes.byref(st))
    return {name: getattr(st, name) for name, _ in RtcTraceStats._fields_ if name != "size"}


#: A check's verdict by status (:func:`trace_verdict`).
TRACE_VERDICTS = {RTC_OK: "consistent", RTC_ERR_TRACE_CUT: "cut", RTC_ERR_BAD_TRACE: "inconsistent"}


def trace_check(data):
    """Check a trace held in ``bytes``: returns (ok, report); ok only for a
    complete, consistent trace (see :func:`trace_verdict` for cut ones)."""
    buf = ctypes.create_string_buffer(1024)
    arr = (ctypes.c_uint8 * len(data)).from_buffer_copy(data) if data else None
    status = _lib.rtc_trace_check(arr, len(data), ctypes.cast(buf, _buf_p), len(buf))
    return status == RTC_OK, buf.value.decode("utf-8", "replace")


def trace_check_file(path):
    """Check a trace file: returns (ok, report), as :func:`trace_check`; ok
    only for a complete, consistent trace. Follows the trace files'
    convention (module docs, "Reading trace files"): raises
    :class:`RtcoreError` only when the file cannot be read."""
    verdict, report = trace_verdict(path)
    return verdict == "consistent", report


def trace_verdict(path):
    """Check a trace file: returns (verdict, report) with verdict
    ``"consistent"`` (complete), ``"cut"`` (cut short, e.g. by a killed
    program: every complete generation is consistent, the report says
    after which one and what was lost) or ``"inconsistent"``. Raises
    :class:`RtcoreError` (``RTC_ERR_IO``) if the file cannot be read."""
    # Room for any report the reader writes (one line naming the problem).
    buf = ctypes.create_string_buffer(64 * 1024)
    status = _lib.rtc_trace_check_file(_cstr(os.fspath(path), "path"), ctypes.cast(buf, _buf_p), len(buf))
    return TRACE_VERDICTS[status], buf.value.decode("utf-8", "replace")


def trace_stats(path):
    """Statistics of a trace file, as a dict (the same as ``rtcore stats
    --json``): per thread the time in each state, blocking reasons, the most
    contended locks, sysmon's actions, events by kind, bytes per event. A
    trace cut short gives the statistics of its complete generations (the
    dict's ``"cut"`` says where it ends). Follows the trace files'
    convention (module docs, "Reading trace files"): :class:`RtcoreError`
    (``RTC_ERR_IO``) when the file cannot be read, :class:`TraceError`
    (``RTC_ERR_BAD_TRACE``, with the :func:`trace_verdict` report) when
    nothing in it is known consistent."""
    import json

    p = _cstr(os.fspath(path), "path")
    need = ctypes.c_size_t(0)
    size = 64 * 1024
    while True:
        buf = ctypes.create_string_buffer(size)
        try:
            _lib.rtc_trace_stats_json(p, ctypes.cast(buf, _buf_p), size, ctypes.byref(need))
        except RtcoreError as e:
            if e.status != RTC_ERR_BAD_TRACE:
                raise
            # The reader's own words, as trace_verdict gives them: the
            # message is "rtc_trace_stats_json: PATH: REPORT".
            prefix = f"{e.function}: {os.fsdecode(path)}: "
            report = e.message[len(prefix) :] if e.message.startswith(prefix) else e.message
            raise TraceError(e.status, e.message, e.function, report) from None
        if need.value <= size:
            return json.loads(buf.value.decode("utf-8"))
        size = need.value


def log(category, message):
    """Record a log line (nothing when not tracing)."""
    if _lib.rtc_trace_enabled():
        _lib.rtc_log(_cstr(category, "category"), _cstr(message, "message"))


class region:
    """``with rtcore.region("name"):`` records a region of this thread."""

    def __init__(self, name):
        self.name = _cstr(name, "name")

    def __enter__(self):
        _lib.rtc_region_begin(self.name)
        return self

    def __exit__(self, *exc):
        _lib.rtc_region_end()
        return False


class task:
    """``with rtcore.task("name") as t:`` records a task (t.id)."""

    def __init__(self, name):
        self.name = _cstr(name, "name")
        self.id = 0

    def __enter__(self):
        out = ctypes.c_uint64()
        _lib.rtc_task_begin(self.name, ctypes.byref(out))
        self.id = out.value
        return self

    def __exit__(self, *exc):
        _lib.rtc_task_end(self.id)
        return False


def counter(name, value):
    """Record a counter's value."""
    _lib.rtc_counter(_cstr(name, "name"), _int_arg(value, "value", _I64))
