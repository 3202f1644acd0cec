//! Benchmark of the tracer, measured through the C ABI.
//!
//! The built cdylib (`RTCORE_LIB`, default `target/release/librtcore.so`
//! under the crate root) is loaded with `dlopen` and every rtcore function is
//! called through a `dlsym`'d function pointer, as a C program would call it;
//! no rtcore Rust function is called directly. The exported flag
//! `rtc_trace_on` is `dlsym`'d too and read the way the header's
//! `RTC_TRACE_ON()` reads it: `__atomic_load_n(&rtc_trace_on,
//! __ATOMIC_RELAXED) != 0`, here `(*const AtomicU32).load(Relaxed) != 0`.
//!
//! Run: `cargo build --release && cargo bench --bench trace`
//!
//! Part 1, cost per event, every variant in one loop skeleton
//! (`for i in 0..n { black_box(i); body }`), samples round robin across the
//! variants (rotating the first one each round), after one warm-up sample
//! each:
//!   (0)  empty loop: the skeleton alone (the peer of the "off" costs);
//!   (1)  clock_gettime(CLOCK_MONOTONIC) (the peer of the "on" costs);
//!   (2)  rtc_version(): one empty call through a dlsym'd pointer;
//!   (3)  RTC_LOG("bench", "request done") with tracing off: the macro's
//!        relaxed load of rtc_trace_on and a not-taken branch;
//!   (4)  rtc_log("bench", "request done") called with tracing off;
//!   (4n) rtc_log(NULL, NULL) called with tracing off (no strings to read);
//!   (5)  rtc_log("bench", "request done") with tracing on;
//!   (5n) rtc_log(NULL, NULL) with tracing on (no strings to intern);
//!   (5l) rtc_log("bench", <256-byte message, always the same>) on;
//!   (6)  rtc_region_begin("bench region") + rtc_region_end() on (a pair);
//!   (7)  rtc_log("bench", <a different message every call>) on: each
//!        message is new to the generation, so it is interned (a `string`
//!        event) as well as logged. The messages are made before the trace.
//! A traced sample starts a trace into a file in a temporary directory
//! (RTC_TRACE_SINK_PATH), times the loop, stops the trace, and checks the
//! file with rtc_trace_check_file: a trace that is not valid, or that holds
//! fewer events than were logged, ends the benchmark with the reader's
//! report. Also per traced sample: bytes per event (file size / events),
//! the CPU the process's other threads used per event from the start of the
//! loop to the return of rtc_trace_stop (CLOCK_PROCESS_CPUTIME_ID minus the
//! timing thread's CLOCK_THREAD_CPUTIME_ID: mostly the trace writer), and
//! the time rtc_trace_check_file took.
//!
//! Part 2, rtc_trace_start and rtc_trace_stop latency, from the main thread
//! (unattached). "idle": nothing attached. "loaded": 16 attached threads
//! loop { bump a counter; rtc_safepoint() } and 8 attached threads sit in
//! rtc_enter_blocking + read() of an empty pipe, with maxprocs 0 (the
//! default, unlimited) and maxprocs = nproc, switched with rtc_set_maxprocs
//! between samples. A sample is either a trace pair (start, a 2 ms gap,
//! stop; each call timed; the file checked) into a new file (removed
//! before the start), or, idle only, into an existing one (the previous
//! trace, which the start truncates), or, the peer, a world pair
//! (rtc_stop_the_world, the same gap, rtc_start_the_world, each timed).
//! Samples are taken round robin across (configuration, kind) within a
//! scenario, after one warm-up pair of each. For every timed call the
//! calling thread's /proc/thread-self/schedstat splits the wall time into
//! time on a CPU, time runnable but waiting for a CPU, and the rest
//! (sleeping or blocked).
//!
//! Tunables (environment): RTCORE_BENCH_TRACE_OFF_ITERS (iterations per
//! sample of (0)-(4n), default 10_000_000), RTCORE_BENCH_TRACE_ON_ITERS (of
//! (5)-(6), default 1_000_000), RTCORE_BENCH_TRACE_DISTINCT (messages, and
//! iterations, of (7), default 200_000), RTCORE_BENCH_TRACE_SAMPLES (default
//! 9), RTCORE_BENCH_TRACE_PAIRS (start/stop samples per configuration and
//! kind, default 20), RTCORE_BENCH_TRACE_GAP_MS (default 2),
//! RTCORE_BENCH_TRACE_BUSY (default 16), RTCORE_BENCH_TRACE_BLOCKED
//! (default 8), RTCORE_BENCH_ONLY (`events` or `startstop`),
//! RTCORE_BENCH_WATCHDOG_S (default 60), RTCORE_BENCH_TRACE_KEEP=1 (keep
//! the temporary directory and its traces).
//!
//! Each part also prints how much CPU time the rest of the machine used
//! while it ran (from /proc/stat), since other work skews the numbers.

mod common;
use common::CpuWatch;
use common::rtc::*;
use common::{Stats, install_panic_exit, loadavg, nproc, phase, progress};
use std::ffi::{CStr, CString, c_char};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The C ABI, loaded at run time.

impl RtcCensus {
    fn attached(&self) -> u32 {
        self.threads_running + self.threads_runnable + self.threads_blocking + self.threads_waiting
    }
}

/// `RTC_TRACE_SINK_PATH`.
const RTC_TRACE_SINK_PATH: u32 = 1;

fn trace_start(path: &CStr) {
    let cfg = RtcTraceConfig {
        size: std::mem::size_of::<RtcTraceConfig>() as u32,
        sink_kind: RTC_TRACE_SINK_PATH,
        path: path.as_ptr(),
        fd: -1,
        generation_ms: 0,
        write: None,
        user_data: std::ptr::null_mut(),
    };
    // SAFETY: a valid config of the right size; the path is NUL-terminated.
    check("rtc_trace_start", unsafe { (api().trace_start)(&cfg) });
    assert!(
        api().trace_on.load(Relaxed) != 0,
        "rtc_trace_on is 0 after rtc_trace_start returned RTC_OK"
    );
}

fn trace_stop() {
    // SAFETY: plain call.
    check("rtc_trace_stop", unsafe { (api().trace_stop)() });
    // SAFETY: plain call.
    let on = unsafe { (api().trace_enabled)() };
    assert!(
        on == 0 && api().trace_on.load(Relaxed) == 0,
        "tracing still on after rtc_trace_stop (rtc_trace_enabled {on})"
    );
}

/// Check the trace at `path` with rtc_trace_check_file; panic with the
/// reader's report unless it is valid and holds at least `min_events`
/// events. Returns the event count from the summary and the check's time.
fn check_trace(path: &CStr, min_events: u64) -> (u64, Duration) {
    let mut report = vec![0 as c_char; 4096];
    let t = Instant::now();
    // SAFETY: NUL-terminated path, writable report buffer of that length.
    let s = unsafe { (api().trace_check_file)(path.as_ptr(), report.as_mut_ptr(), report.len()) };
    let took = t.elapsed();
    // SAFETY: NUL-terminated by rtc_trace_check_file (report_len > 0).
    let text = unsafe { CStr::from_ptr(report.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    if s != 0 {
        let a = api();
        // SAFETY: rtc_status_str returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr((a.status_str)(s)) }.to_string_lossy();
        panic!(
            "INVALID TRACE {}: rtc_trace_check_file returned {s} ({name}): {text}",
            path.to_string_lossy()
        );
    }
    // "consistent trace: N events, ..."
    let events: u64 = text
        .strip_prefix("consistent trace: ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected rtc_trace_check_file summary: {text}"));
    assert!(
        events >= min_events,
        "trace {} holds {events} events, fewer than the {min_events} logged: {text}",
        path.to_string_lossy()
    );
    (events, took)
}

// ---------------------------------------------------------------------------
// Failure handling: a panic anywhere ends the process at once, since other
// threads may be blocked on a pipe or inside rtcore and joining them would
// hang. A watchdog ends the process if nothing progresses for too long.

// ---------------------------------------------------------------------------
// Environment, machine, clocks.

fn machine() -> String {
    format!(
        "{}, clocksource {}",
        common::machine_base(),
        common::clocksource()
    )
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; the clocks used here always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// (CPU time of the whole process, CPU time of the calling thread), ns.
fn cpu_now() -> (u64, u64) {
    (
        clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID),
        clock_ns(libc::CLOCK_THREAD_CPUTIME_ID),
    )
}

/// The temporary directory for the traces: removed at the end unless
/// RTCORE_BENCH_TRACE_KEEP=1.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let d = std::env::temp_dir().join(format!("rtcore-bench-trace-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        TempDir(d)
    }
    fn file(&self, name: &str) -> CString {
        CString::new(self.0.join(name).as_os_str().as_encoded_bytes()).expect("path has a NUL")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if env_u64("RTCORE_BENCH_TRACE_KEEP", 0) != 0 {
            println!("traces kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn file_len(path: &CStr) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .len()
}

// ---------------------------------------------------------------------------
// Part 1: cost per event.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum V {
    Empty,
    Floor,
    Clock,
    Call,
    MacroOff,
    LogOff,
    LogNullOff,
    LogOn,
    MacroOn,
    LogNullOn,
    LogLongOn,
    RegionOn,
    LogDistinctOn,
    BlockingOff,
    BlockingOn,
    LockOff,
    LockOn,
}

impl V {
    const ALL: [V; 17] = [
        V::Empty,
        V::Floor,
        V::Clock,
        V::Call,
        V::MacroOff,
        V::LogOff,
        V::LogNullOff,
        V::LogOn,
        V::MacroOn,
        V::LogNullOn,
        V::LogLongOn,
        V::RegionOn,
        V::LogDistinctOn,
        V::BlockingOff,
        V::BlockingOn,
        V::LockOff,
        V::LockOn,
    ];
    fn label(self) -> &'static str {
        match self {
            V::Empty => "(0)  empty loop",
            V::Floor => "(F)  floor: rdtsc + 16-byte TLS record",
            V::Clock => "(1)  clock_gettime(CLOCK_MONOTONIC)",
            V::Call => "(2)  rtc_version(): one empty call",
            V::MacroOff => "(3)  RTC_LOG(cat, msg), off: load + branch",
            V::LogOff => "(4)  rtc_log(cat, msg), off: the call",
            V::LogNullOff => "(4n) rtc_log(NULL, NULL), off",
            V::LogOn => "(5)  rtc_log(cat, msg), ON",
            V::MacroOn => "(5m) RTC_LOG(cat, msg), ON: the macro",
            V::LogNullOn => "(5n) rtc_log(NULL, NULL), ON",
            V::LogLongOn => "(5l) rtc_log(cat, 256-byte msg), ON",
            V::RegionOn => "(6)  region begin+end pair, ON",
            V::LogDistinctOn => "(7)  rtc_log(cat, distinct msg), ON",
            V::BlockingOff => "(8)  enter+exit blocking, off",
            V::BlockingOn => "(8t) enter+exit blocking, ON",
            V::LockOff => "(9)  mutex lock+unlock, off",
            V::LockOn => "(9t) mutex lock+unlock, ON",
        }
    }
    /// The short name used by RTCORE_BENCH_TRACE_VARIANTS.
    fn code(self) -> &'static str {
        let l = self.label();
        l[1..l.find(')').unwrap()].trim_end()
    }
    fn traced(self) -> bool {
        matches!(
            self,
            V::LogOn
                | V::MacroOn
                | V::LogNullOn
                | V::LogLongOn
                | V::RegionOn
                | V::LogDistinctOn
                | V::BlockingOn
                | V::LockOn
        )
    }
    /// Does the loop run on an attached thread (spawned for the sample)?
    fn attached(self) -> bool {
        matches!(
            self,
            V::BlockingOff | V::BlockingOn | V::LockOff | V::LockOn
        )
    }
    /// Events one iteration records when traced.
    fn events_per_iter(self) -> u64 {
        match self {
            // enter blocking + exit blocking (fast).
            V::RegionOn | V::BlockingOn => 2,
            // An uncontended lock records nothing.
            V::LockOn => 0,
            _ => 1,
        }
    }
}

const CATEGORY: &CStr = c"bench";
const MESSAGE: &CStr = c"request done";
const REGION: &CStr = c"bench region";

#[inline(never)]
fn loop_floor(iters: u64) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        common::floor_event(black_box(i));
    }
    t.elapsed()
}

#[inline(never)]
fn loop_blocking(iters: u64) -> Duration {
    let (enter, exit) = (api().enter_blocking, api().exit_blocking);
    let reason = c"bench: a blocking region".as_ptr();
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        // SAFETY: plain calls; the thread is attached.
        let s = unsafe { enter(reason) };
        if s != 0 {
            rtc_fail("rtc_enter_blocking", s);
        }
        // SAFETY: as above.
        let s = unsafe { exit() };
        if s != 0 {
            rtc_fail("rtc_exit_blocking", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_lock(iters: u64) -> Duration {
    let (init, lock, unlock) = (api().mutex_init, api().mutex_lock, api().mutex_unlock);
    // SAFETY: all-zero is a valid bit pattern for the mirror; init sets it.
    let mut m: RtcMutex = unsafe { std::mem::zeroed() };
    // SAFETY: a valid mutex and name; no rank.
    check("rtc_mutex_init", unsafe {
        init(&mut m, c"bench lock".as_ptr(), std::ptr::null())
    });
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        // SAFETY: an initialised mutex, uncontended.
        let s = unsafe { lock(&mut m) };
        if s != 0 {
            rtc_fail("rtc_mutex_lock", s);
        }
        // SAFETY: as above; held by this thread.
        let s = unsafe { unlock(&mut m) };
        if s != 0 {
            rtc_fail("rtc_mutex_unlock", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_empty(iters: u64) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
    }
    t.elapsed()
}

#[inline(never)]
fn loop_clock(iters: u64) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        black_box(&mut ts);
    }
    t.elapsed()
}

#[inline(never)]
fn loop_call(iters: u64) -> Duration {
    let f = api().version;
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        // SAFETY: rtc_version has no preconditions.
        black_box(unsafe { f() });
    }
    t.elapsed()
}

/// `RTC_LOG(category, message)` as the header defines it:
/// `if (__atomic_load_n(&rtc_trace_on, __ATOMIC_RELAXED) != 0) (void)rtc_log(...)`.
#[inline(never)]
fn loop_macro(iters: u64, cat: *const c_char, msg: *const c_char) -> Duration {
    let a = api();
    let (flag, log) = (a.trace_on, a.log);
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        if flag.load(Relaxed) != 0 {
            // SAFETY: NUL-terminated strings (or NULL).
            black_box(unsafe { log(cat, msg) });
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_log(iters: u64, cat: *const c_char, msg: *const c_char) -> Duration {
    let log = api().log;
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        // SAFETY: NUL-terminated strings (or NULL).
        let s = unsafe { log(cat, msg) };
        if s != 0 {
            rtc_fail("rtc_log", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_region(iters: u64) -> Duration {
    let a = api();
    let (begin, end) = (a.region_begin, a.region_end);
    let name = REGION.as_ptr();
    let t = Instant::now();
    for i in 0..iters {
        black_box(i);
        // SAFETY: NUL-terminated name.
        let s = unsafe { begin(name) };
        if s != 0 {
            rtc_fail("rtc_region_begin", s);
        }
        // SAFETY: plain call.
        let s = unsafe { end() };
        if s != 0 {
            rtc_fail("rtc_region_end", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_log_distinct(msgs: &[CString]) -> Duration {
    let log = api().log;
    let cat = CATEGORY.as_ptr();
    let t = Instant::now();
    for (i, m) in msgs.iter().enumerate() {
        black_box(i);
        // SAFETY: NUL-terminated strings.
        let s = unsafe { log(cat, m.as_ptr()) };
        if s != 0 {
            rtc_fail("rtc_log", s);
        }
    }
    t.elapsed()
}

struct EventParams {
    off_iters: u64,
    on_iters: u64,
    long_msg: CString,
    distinct: Vec<CString>,
}

impl EventParams {
    fn iters(&self, v: V) -> u64 {
        match v {
            V::Empty
            | V::Floor
            | V::Clock
            | V::Call
            | V::MacroOff
            | V::LogOff
            | V::LogNullOff
            | V::BlockingOff
            | V::LockOff => self.off_iters,
            V::LogDistinctOn => self.distinct.len() as u64,
            _ => self.on_iters,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct EventSample {
    /// ns per iteration (per pair for (6)).
    ns: f64,
    /// Traced samples: file bytes / events logged.
    bytes_per_event: f64,
    /// Traced samples: CPU of the process's other threads per event, ns.
    other_cpu_ns: f64,
    /// Traced samples: events in the file (from the checker's summary).
    file_events: u64,
    file_bytes: u64,
    /// Traced samples: rtc_trace_stop's time, µs (drains the writer).
    stop_us: f64,
    /// Traced samples: rtc_trace_check_file's time, ms.
    check_ms: f64,
}

fn run_loop(v: V, n: u64, p: &EventParams) -> Duration {
    let (cat, msg) = (CATEGORY.as_ptr(), MESSAGE.as_ptr());
    let null = std::ptr::null();
    if v.attached() {
        // On an attached thread of its own, which attaches inside the
        // trace for the traced variants.
        return std::thread::scope(|sc| {
            sc.spawn(|| {
                attach("bench attached loop");
                let d = match v {
                    V::BlockingOff | V::BlockingOn => loop_blocking(n),
                    _ => loop_lock(n),
                };
                detach();
                d
            })
            .join()
            .expect("the attached loop panicked")
        });
    }
    match v {
        V::Empty => loop_empty(n),
        V::Floor => loop_floor(n),
        V::Clock => loop_clock(n),
        V::Call => loop_call(n),
        V::MacroOff | V::MacroOn => loop_macro(n, cat, msg),
        V::LogOff | V::LogOn => loop_log(n, cat, msg),
        V::LogNullOff | V::LogNullOn => loop_log(n, null, null),
        V::LogLongOn => loop_log(n, cat, p.long_msg.as_ptr()),
        V::RegionOn => loop_region(n),
        V::LogDistinctOn => loop_log_distinct(&p.distinct[..n as usize]),
        V::BlockingOff | V::BlockingOn | V::LockOff | V::LockOn => unreachable!("attached"),
    }
}

/// One sample of `v` with `n` iterations (`n` <= the distinct pool for (7)).
fn event_sample(v: V, n: u64, p: &EventParams, dir: &TempDir) -> EventSample {
    let traced = v.traced();
    assert!(
        api().trace_on.load(Relaxed) == 0,
        "tracing is on before a sample"
    );
    if !traced {
        let d = run_loop(v, n, p);
        progress();
        return EventSample {
            ns: d.as_nanos() as f64 / n as f64,
            ..Default::default()
        };
    }
    let path = dir.file(&format!("events-{v:?}.trace"));
    // A new file each time: rtc_trace_start truncates an existing one, which
    // takes milliseconds for a large file (see part 2).
    {
        use std::os::unix::ffi::OsStrExt;
        let _ = std::fs::remove_file(std::ffi::OsStr::from_bytes(path.to_bytes()));
    }
    trace_start(&path);
    let (p0, t0) = cpu_now();
    let d = run_loop(v, n, p);
    let s = Instant::now();
    trace_stop();
    let stop = s.elapsed();
    let (p1, t2) = cpu_now();
    // Other threads' CPU = the process's - this thread's (its loop and its
    // part of the stop).
    let other = (p1 - p0).saturating_sub(t2 - t0);
    let events = n * v.events_per_iter();
    let (file_events, took) = check_trace(&path, events);
    let bytes = file_len(&path);
    progress();
    EventSample {
        ns: d.as_nanos() as f64 / n as f64,
        bytes_per_event: bytes as f64 / events.max(1) as f64,
        other_cpu_ns: other as f64 / events.max(1) as f64,
        file_events,
        file_bytes: bytes,
        stop_us: stop.as_secs_f64() * 1e6,
        check_ms: took.as_secs_f64() * 1e3,
    }
}

/// The variants to run: all, or those RTCORE_BENCH_TRACE_VARIANTS names
/// (comma-separated codes: 0,1,2,3,4,4n,5,5n,5l,6,7), e.g. to profile one.
fn variants() -> Vec<V> {
    match std::env::var("RTCORE_BENCH_TRACE_VARIANTS") {
        Err(_) => V::ALL.to_vec(),
        Ok(list) => list
            .split(',')
            .map(|c| {
                let c = c.trim();
                *V::ALL.iter().find(|v| v.code() == c).unwrap_or_else(|| {
                    panic!(
                        "RTCORE_BENCH_TRACE_VARIANTS: no variant '{c}' (codes: {})",
                        V::ALL.map(V::code).join(",")
                    )
                })
            })
            .collect(),
    }
}

fn events_part(dir: &TempDir) {
    let samples = env_u64("RTCORE_BENCH_TRACE_SAMPLES", 9).max(1) as usize;
    let distinct = env_u64("RTCORE_BENCH_TRACE_DISTINCT", 200_000).max(1);
    let vs = variants();
    let p = EventParams {
        off_iters: env_u64("RTCORE_BENCH_TRACE_OFF_ITERS", 10_000_000).max(1),
        on_iters: env_u64("RTCORE_BENCH_TRACE_ON_ITERS", 1_000_000).max(1),
        long_msg: CString::new("x".repeat(256)).unwrap(),
        distinct: (0..distinct)
            .map(|i| CString::new(format!("request {i:07} done")).unwrap())
            .collect(),
    };
    phase("events: warm-up".into());
    let watch = CpuWatch::start();
    let c = census();
    assert!(
        c.attached() == 0 && c.stopped == 0,
        "part 1 runs with nothing attached, census: {c:?}"
    );
    // Warm-up: one short sample of each variant (first-use setup: the
    // thread's trace record, the writer, page cache for the files).
    for &v in &vs {
        event_sample(v, (p.iters(v) / 10).max(1), &p, dir);
    }
    let started = Instant::now();
    let results = common::round_robin(
        &vs,
        samples,
        |s, v| {
            phase(format!("events, round {}, {}", s + 1, v.label()));
            event_sample(v, p.iters(v), &p, dir)
        },
        |s| {
            eprintln!(
                "  events: round {}/{samples} done ({:.1} s)",
                s + 1,
                started.elapsed().as_secs_f64()
            )
        },
    );
    let c = census();
    assert!(
        c.attached() == 0 && c.stopped == 0,
        "the world changed during part 1, census: {c:?}"
    );
    println!();
    watch.report("part 1 (cost per event)");

    let stats: Vec<Stats> = results
        .iter()
        .map(|r| Stats::of(&r.iter().map(|x| x.ns).collect::<Vec<_>>()))
        .collect();
    let median = |v: V| vs.iter().position(|&x| x == v).map(|i| stats[i].median);
    let empty = median(V::Empty).unwrap_or(f64::NAN);
    let clock = median(V::Clock).unwrap_or(f64::NAN);
    let floor = median(V::Floor).unwrap_or(f64::NAN);
    println!();
    println!(
        "Part 1: ns per iteration (per begin+end pair for (6)), {samples} samples per variant, round \
         robin; iterations per sample: {} for (0)-(4n), {} for (5)-(6), {} for (7)",
        p.off_iters,
        p.on_iters,
        p.distinct.len()
    );
    println!(
        "{}",
        common::stats_header(
            42,
            &format!(
                "{:>10} {:>9} {:>9} {:>9}",
                "above (0)", "/ (0)", "/ (1)", "/ (F)"
            )
        )
    );
    for (i, v) in vs.iter().enumerate() {
        let st = &stats[i];
        println!(
            "{} {:>10.2} {:>8.2}x {:>8.2}x {:>8.2}x",
            common::stats_row(42, v.label(), st, 1.0),
            st.median - empty,
            st.median / empty,
            st.median / clock,
            st.median / floor
        );
    }
    println!(
        "(above (0): minus the empty loop's median, the cost of the body alone; / (0): ratio to the \
         empty loop, the peer of the 'off' rows; / (1): ratio to a clock read in the same loop; / \
         (F): ratio to the floor, the peer of the 'ON' rows)"
    );
    if vs.iter().any(|v| v.traced()) {
        println!();
        println!(
            "Traced samples (medians [min, max]): bytes per event = file size / events logged; \
             other CPU = CPU of the process's other threads (the trace writer, mostly) per event, \
             from the loop's start to rtc_trace_stop's return; stop = rtc_trace_stop (drains the \
             writer); check = rtc_trace_check_file"
        );
        println!(
            "{:<42} {:>10} {:>12} {:>20} {:>14} {:>10} {:>10} {:>11}",
            "variant",
            "events",
            "file bytes",
            "bytes/event",
            "other CPU ns",
            "stop us",
            "check ms",
            "check MB/s"
        );
    }
    for (i, v) in vs.iter().enumerate() {
        if !v.traced() {
            continue;
        }
        let r = &results[i];
        let med = |f: fn(&EventSample) -> f64| Stats::of(&r.iter().map(f).collect::<Vec<_>>());
        let bpe = med(|x| x.bytes_per_event);
        let check = med(|x| x.check_ms);
        let bytes = med(|x| x.file_bytes as f64);
        let stop = med(|x| x.stop_us);
        if v.events_per_iter() == 0 {
            // Nothing recorded per iteration: no per-event figures.
            println!(
                "{:<42} {:>10} {:>12.0} {:>20} {:>14} {:>10.0} {:>10.1} {:>11}",
                v.label(),
                r[0].file_events,
                bytes.median,
                "-",
                "-",
                stop.median,
                check.median,
                "-"
            );
            continue;
        }
        println!(
            "{:<42} {:>10} {:>12.0} {:>6.2} [{:>5.2},{:>5.2}] {:>14.1} {:>10.0} {:>10.1} {:>11.0}",
            v.label(),
            r[0].file_events,
            bytes.median,
            bpe.median,
            bpe.min,
            bpe.max,
            med(|x| x.other_cpu_ns).median,
            stop.median,
            check.median,
            bytes.median / 1e6 / (check.median / 1e3)
        );
    }
    if vs.iter().any(|v| v.traced()) {
        println!(
            "(events: in the file, from the checker's summary, first sample: the events logged \
             plus string definitions, the header batch and the stop-the-world span of the start)"
        );
    }
    println!();
    println!("Goals (issue 15), per event, as ratios to the floor (F) = {floor:.2} ns:");
    let goal = |what: &str, value: Option<f64>, peer: f64, peer_name: &str, limit: f64| {
        if let Some(v) = value {
            let r = v / peer;
            println!(
                "  {what:<58} {v:>7.2} ns = {r:>5.2}x {peer_name} (goal <= {limit}x): {}",
                if r <= limit { "met" } else { "MISSED" }
            );
        }
    };
    goal(
        "RTC_LOG(cat, msg) ON, strings seen before (5m)",
        median(V::MacroOn),
        floor,
        "floor",
        1.5,
    );
    goal(
        "region begin or end ON, per event ((6) / 2)",
        median(V::RegionOn).map(|x| x / 2.0),
        floor,
        "floor",
        1.5,
    );
    goal(
        "rtc_log called while not tracing (4)",
        median(V::LogOff),
        median(V::Call).unwrap_or(f64::NAN),
        "an empty call (2)",
        2.0,
    );
    goal(
        "an event whose string is new (7)",
        median(V::LogDistinctOn),
        floor,
        "floor",
        10.0,
    );
    goal(
        "blocking enter or exit, recording cost per event (((8t) - (8)) / 2)",
        median(V::BlockingOn)
            .zip(median(V::BlockingOff))
            .map(|(on, off)| (on - off) / 2.0),
        floor,
        "floor",
        2.0,
    );
    goal(
        "uncontended mutex lock+unlock, traced minus untraced ((9t) - (9))",
        median(V::LockOn)
            .zip(median(V::LockOff))
            .map(|(on, off)| (on - off).max(0.0)),
        floor,
        "floor",
        2.0,
    );
    if let (Some(on), Some(region), Some(macro_off), Some(call_off)) = (
        median(V::LogOn),
        median(V::RegionOn),
        median(V::MacroOff),
        median(V::LogOff),
    ) {
        println!();
        println!(
            "Summary: rtc_log ON {on:.1} ns = {:.2}x a clock read ({clock:.1} ns); region pair ON \
             {region:.1} ns = {:.2}x; RTC_LOG off {macro_off:.2} ns = {:.2}x the empty loop \
             ({empty:.2} ns), {:.2} ns above it; rtc_log called off {call_off:.2} ns = {:.2}x",
            on / clock,
            region / clock,
            macro_off / empty,
            macro_off - empty,
            call_off / empty
        );
    }
}

// ---------------------------------------------------------------------------
// Part 2: start and stop latency.

#[repr(C, align(64))]
struct Line<T>(T);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// rtc_trace_start into a new file (removed before), gap,
    /// rtc_trace_stop.
    Trace,
    /// The same into an existing file (the previous such trace, a few
    /// hundred bytes), which rtc_trace_start truncates.
    TraceOverwrite,
    /// The peer: rtc_stop_the_world, gap, rtc_start_the_world.
    World,
}

/// The calling thread's schedstat: (ns runnable waiting for a CPU, times
/// it was put on a CPU); zeros if the kernel has no schedstat.
fn schedstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut it = s
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// One timed call: wall time; the calling thread's CPU time
/// (CLOCK_THREAD_CPUTIME_ID) and time runnable but waiting for a CPU
/// (schedstat) during it, µs (the rest it slept or was blocked); and how
/// many times it was put on a CPU (schedstat; includes the first).
#[derive(Clone, Copy, Default)]
struct Timed {
    wall: f64,
    cpu: f64,
    wait: f64,
    slices: f64,
}

fn timed(f: impl FnOnce()) -> Timed {
    let s0 = schedstat();
    let c0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let t0 = Instant::now();
    f();
    let wall = t0.elapsed();
    let c1 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let s1 = schedstat();
    Timed {
        wall: wall.as_secs_f64() * 1e6,
        cpu: (c1 - c0) as f64 / 1e3,
        wait: (s1.0 - s0.0) as f64 / 1e3,
        slices: (s1.1 - s0.1) as f64,
    }
}

#[derive(Clone, Copy, Default)]
struct PairSample {
    /// rtc_trace_start or rtc_stop_the_world.
    first: Timed,
    /// rtc_trace_stop or rtc_start_the_world.
    second: Timed,
    /// Trace pairs: file size and events (from the checker's summary).
    bytes: u64,
    events: u64,
}

/// One pair of `kind` after a `gap`; a trace goes to `path` (removed first
/// unless overwriting).
fn pair_sample(kind: Kind, gap: Duration, path: &CStr) -> PairSample {
    match kind {
        Kind::Trace | Kind::TraceOverwrite => {
            if kind == Kind::Trace {
                use std::os::unix::ffi::OsStrExt;
                let _ = std::fs::remove_file(std::ffi::OsStr::from_bytes(path.to_bytes()));
            }
            std::thread::sleep(gap);
            let first = timed(|| trace_start(path));
            std::thread::sleep(gap);
            let second = timed(trace_stop);
            let (events, _) = check_trace(path, 1);
            PairSample {
                first,
                second,
                bytes: file_len(path),
                events,
            }
        }
        Kind::World => {
            std::thread::sleep(gap);
            let first = timed(stop_world);
            std::thread::sleep(gap);
            let second = timed(start_world);
            PairSample {
                first,
                second,
                ..Default::default()
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Cfg {
    /// None: idle (nothing attached); Some(maxprocs): loaded.
    maxprocs: Option<u32>,
    kind: Kind,
}

impl Cfg {
    fn scenario(self, busy: usize, blocked: usize) -> String {
        match self.maxprocs {
            None => "idle (nothing attached)".to_string(),
            Some(m) => format!("{busy} busy + {blocked} blocked, maxprocs {m}"),
        }
    }
    fn label(self, busy: usize, blocked: usize) -> String {
        let what = match self.kind {
            Kind::Trace => "trace start / stop, new file",
            Kind::TraceOverwrite => "trace start / stop, overwrite",
            Kind::World => "world stop / start",
        };
        format!("{:<34} {what}", self.scenario(busy, blocked))
    }
}

fn print_pairs(cfgs: &[Cfg], results: &[Vec<PairSample>], busy: usize, blocked: usize) {
    println!(
        "{:<64} {:>26} {:>26} {:>6} {:>7}",
        "configuration", "1st: median [min, max]", "2nd: median [min, max]", "bytes", "events"
    );
    let st = |r: &[PairSample], f: &dyn Fn(&PairSample) -> f64| {
        Stats::of(&r.iter().map(f).collect::<Vec<_>>())
    };
    for (i, cfg) in cfgs.iter().enumerate() {
        let r = &results[i];
        let a = st(r, &|x| x.first.wall);
        let b = st(r, &|x| x.second.wall);
        println!(
            "{:<64} {:>9.1} [{:>6.1},{:>8.1}] {:>9.1} [{:>6.1},{:>8.1}] {:>6.0} {:>7.0}",
            cfg.label(busy, blocked),
            a.median,
            a.min,
            a.max,
            b.median,
            b.min,
            b.max,
            st(r, &|x| x.bytes as f64).median,
            st(r, &|x| x.events as f64).median
        );
    }
    println!(
        "where the calling thread's time went (medians, us): on a CPU / runnable waiting for a CPU / \
         the rest (sleeping or blocked: waiting for other threads, or rtcore's own sleeps); and \
         times it was put on a CPU during the call (schedstat, includes the reads around the call)"
    );
    for (i, cfg) in cfgs.iter().enumerate() {
        let r = &results[i];
        let part = |f: &dyn Fn(&PairSample) -> Timed| {
            let cpu = st(r, &|x| f(x).cpu).median;
            let wait = st(r, &|x| f(x).wait).median;
            let rest = st(r, &|x| (f(x).wall - f(x).cpu - f(x).wait).max(0.0)).median;
            let slices = st(r, &|x| f(x).slices);
            format!(
                "{cpu:>7.1} / {wait:>8.1} / {rest:>7.1}, on CPU {:>3.0}x [{:.0},{:.0}]",
                slices.median, slices.min, slices.max
            )
        };
        println!(
            "  {:<62} 1st {}   2nd {}",
            cfg.label(busy, blocked),
            part(&|x| x.first),
            part(&|x| x.second)
        );
    }
    // Ratios trace / world in the same scenario.
    for (i, cfg) in cfgs.iter().enumerate() {
        if cfg.kind == Kind::World {
            continue;
        }
        let Some(j) = cfgs
            .iter()
            .position(|c| c.maxprocs == cfg.maxprocs && c.kind == Kind::World)
        else {
            continue;
        };
        let med = |k: usize, f: fn(&PairSample) -> f64| {
            Stats::of(&results[k].iter().map(f).collect::<Vec<_>>()).median
        };
        let cycle = med(j, |x| x.first.wall + x.second.wall);
        println!(
            "  {}: trace start {:.2}x, trace stop {:.2}x the world's stop + start ({cycle:.1} us, \
             median of the sums; each trace call stops and restarts the world once)",
            cfg.label(busy, blocked),
            med(i, |x| x.first.wall) / cycle,
            med(i, |x| x.second.wall) / cycle
        );
    }
}

/// Run `f` with `busy` attached threads looping { bump a counter;
/// rtc_safepoint() } and `blocked` attached threads in rtc_enter_blocking +
/// read() of an empty pipe; `f` gets the sum of the busy counters. The
/// threads are released and detached after `f`, and the scenario is
/// checked unchanged.
fn with_load(busy: usize, blocked: usize, f: impl FnOnce(&dyn Fn() -> u64)) {
    let mut fds = [0i32; 2];
    // SAFETY: valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe()");
    let (rfd, wfd) = (fds[0], fds[1]);
    let quit = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    let counters: Vec<Line<AtomicU64>> = (0..busy).map(|_| Line(AtomicU64::new(0))).collect();
    std::thread::scope(|sc| {
        for i in 0..blocked {
            let ready = &ready;
            std::thread::Builder::new()
                .name(format!("bench blocked {i}"))
                .spawn_scoped(sc, move || {
                    attach(&format!("bench blocked {i}"));
                    enter_blocking(c"bench: read an empty pipe");
                    ready.fetch_add(1, SeqCst);
                    let mut b = 0u8;
                    // SAFETY: valid fd and one-byte buffer.
                    let r = unsafe { libc::read(rfd, (&mut b as *mut u8).cast(), 1) };
                    assert_eq!(r, 1, "read from the pipe");
                    exit_blocking();
                    detach();
                })
                .expect("spawn blocked thread");
        }
        for (i, counter) in counters.iter().enumerate() {
            let (quit, ready) = (&quit, &ready);
            std::thread::Builder::new()
                .name(format!("bench busy {i}"))
                .spawn_scoped(sc, move || {
                    attach(&format!("bench busy {i}"));
                    ready.fetch_add(1, SeqCst);
                    let sp = api().safepoint;
                    let c = &counter.0;
                    while !quit.load(Relaxed) {
                        c.store(c.load(Relaxed) + 1, Relaxed);
                        // SAFETY: plain call.
                        let s = unsafe { sp() };
                        if s != 0 {
                            rtc_fail("rtc_safepoint", s);
                        }
                    }
                    detach();
                })
                .expect("spawn busy thread");
        }
        let t = Instant::now();
        loop {
            let c = census();
            if ready.load(SeqCst) == busy + blocked
                && c.threads_blocking as usize == blocked
                && c.attached() as usize == busy + blocked
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the threads did not attach and block within 10 s: census {c:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        progress();
        let sum = || counters.iter().map(|c| c.0.load(Relaxed)).sum::<u64>();
        f(&sum);
        let c = census();
        assert!(
            c.stopped == 0
                && c.threads_blocking as usize == blocked
                && c.attached() as usize == busy + blocked,
            "the scenario changed under load: census {c:?}"
        );
        quit.store(true, Relaxed);
        let buf = vec![b'x'; blocked];
        // SAFETY: valid fd and buffer.
        let w = unsafe { libc::write(wfd, buf.as_ptr().cast(), blocked) };
        assert_eq!(w, blocked as isize, "write to the pipe");
    });
    // SAFETY: our own fds, no longer used.
    unsafe {
        libc::close(rfd);
        libc::close(wfd);
    }
    // SAFETY: our own fds, no longer used.
    unsafe {
        libc::close(rfd);
        libc::close(wfd);
    }
}

fn startstop_part(dir: &TempDir) {
    let pairs = env_u64("RTCORE_BENCH_TRACE_PAIRS", 20).max(1) as usize;
    let gap = Duration::from_millis(env_u64("RTCORE_BENCH_TRACE_GAP_MS", 2));
    let busy = env_u64("RTCORE_BENCH_TRACE_BUSY", 16) as usize;
    let blocked = env_u64("RTCORE_BENCH_TRACE_BLOCKED", 8) as usize;
    let np = nproc() as u32;
    let path = dir.file("startstop.trace");
    let overwrite = dir.file("overwrite.trace");
    let path_of = |k: Kind| {
        if k == Kind::TraceOverwrite {
            &overwrite
        } else {
            &path
        }
    };
    assert_eq!(set_maxprocs(0), 0, "maxprocs was not 0 at the start");

    // Idle: nothing attached.
    phase("start/stop: idle".into());
    let watch = CpuWatch::start();
    let idle_cfgs = [Kind::Trace, Kind::TraceOverwrite, Kind::World].map(|kind| Cfg {
        maxprocs: None,
        kind,
    });
    let mut idle: Vec<Vec<PairSample>> = vec![Vec::new(); idle_cfgs.len()];
    for c in &idle_cfgs {
        pair_sample(c.kind, gap, path_of(c.kind));
    }
    for r in 0..pairs {
        for j in 0..idle_cfgs.len() {
            let i = (r + j) % idle_cfgs.len();
            idle[i].push(pair_sample(
                idle_cfgs[i].kind,
                gap,
                path_of(idle_cfgs[i].kind),
            ));
            progress();
        }
    }
    let c = census();
    assert!(
        c.attached() == 0 && c.stopped == 0,
        "idle start/stop: census {c:?}"
    );
    println!();
    watch.report("part 2, idle");

    // Loaded.
    phase("start/stop: setting up the threads".into());
    let watch = CpuWatch::start();
    let cfgs: Vec<Cfg> = [0, np]
        .iter()
        .flat_map(|&m| {
            [Kind::Trace, Kind::World].map(|kind| Cfg {
                maxprocs: Some(m),
                kind,
            })
        })
        .collect();
    let mut results: Vec<Vec<PairSample>> = vec![Vec::new(); cfgs.len()];
    let mut bumps_during_gap = Vec::new();
    with_load(busy, blocked, |sum| {
        let set = |m: u32| {
            set_maxprocs(m);
            std::thread::sleep(Duration::from_millis(5));
        };
        // Warm-up: one pair of each.
        for c in &cfgs {
            set(c.maxprocs.unwrap());
            pair_sample(c.kind, gap, path_of(c.kind));
        }
        for r in 0..pairs {
            for j in 0..cfgs.len() {
                let i = (r + j) % cfgs.len();
                let c = cfgs[i];
                phase(format!(
                    "start/stop, round {}, {}",
                    r + 1,
                    c.label(busy, blocked)
                ));
                set(c.maxprocs.unwrap());
                let b0 = sum();
                let s = pair_sample(c.kind, gap, path_of(c.kind));
                if c.kind == Kind::Trace {
                    bumps_during_gap.push(sum() - b0);
                }
                results[i].push(s);
            }
        }
    });
    set_maxprocs(0);
    let c = census();
    assert!(
        c.attached() == 0 && c.stopped == 0,
        "threads still attached after part 2: census {c:?}"
    );
    assert!(
        busy == 0 || bumps_during_gap.iter().all(|&b| b > 0),
        "the busy threads made no progress during a traced gap"
    );
    println!();
    watch.report("part 2, loaded");

    println!();
    println!(
        "Part 2: start/stop latency, µs, {pairs} samples per row, round robin within each \
         scenario; gap {} ms before the first call and between the two; the calling thread is \
         unattached. 1st = rtc_trace_start or rtc_stop_the_world; 2nd = rtc_trace_stop or \
         rtc_start_the_world; bytes/events: the (empty) trace file, checked with \
         rtc_trace_check_file",
        gap.as_millis()
    );
    print_pairs(&idle_cfgs, &idle, busy, blocked);
    print_pairs(&cfgs, &results, busy, blocked);
    let b = Stats::of(
        &bumps_during_gap
            .iter()
            .map(|&x| x as f64)
            .collect::<Vec<_>>(),
    );
    println!(
        "(busy threads' safepoints per traced sample, all threads: median {:.0}, min {:.0})",
        b.median, b.min
    );
}

// ---------------------------------------------------------------------------
// Part 3: start/stop beside Go's tracer (benches/peers/go), same load.

/// A Go `time.Duration` as printed ("185.261µs", "1.34ms", "950ns",
/// "1.2s"), in µs.
fn parse_go_duration(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches(';');
    for (unit, scale) in [
        ("ns", 1e-3),
        ("µs", 1.0),
        ("us", 1.0),
        ("ms", 1e3),
        ("s", 1e6),
    ] {
        if let Some(v) = s.strip_suffix(unit) {
            return v.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// Go's numbers from the peer's output line "StartTrace median X p99 Y;
/// StopTrace median X p99 Y": (start median, start p99, stop median,
/// stop p99) in µs.
fn parse_go_peer(out: &str) -> Option<[f64; 4]> {
    let line = out.lines().find(|l| l.starts_with("StartTrace median"))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    // StartTrace median X p99 Y; StopTrace median X p99 Y
    Some([
        parse_go_duration(w.get(2)?)?,
        parse_go_duration(w.get(4)?)?,
        parse_go_duration(w.get(7)?)?,
        parse_go_duration(w.get(9)?)?,
    ])
}

/// Build the Go peer once into `dir`; None (with the reason printed) if
/// Go is not installed or the build fails.
fn build_go_peer(dir: &TempDir) -> Option<PathBuf> {
    let src = std::env::var("RTCORE_BENCH_GO_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/go"));
    let bin = dir.0.join("go-trace-peer");
    let out = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(bin),
        Ok(o) => {
            println!(
                "Go peer not measured: go build in {} failed: {}",
                src.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!("Go peer not measured: cannot run go ({e}); apt-get install golang-go");
            None
        }
    }
}

/// rtcore's side: `cycles` of { rtc_trace_start into an fd on /dev/null;
/// 200 µs; rtc_trace_stop } from the unattached main thread, with `busy`
/// + `blocked` attached threads and maxprocs = CPUs; (start, stop) µs.
fn rtcore_go_shape(cycles: usize, busy: usize, blocked: usize) -> (Vec<f64>, Vec<f64>) {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open /dev/null");
    let cfg = RtcTraceConfig {
        size: std::mem::size_of::<RtcTraceConfig>() as u32,
        sink_kind: 2, // RTC_TRACE_SINK_FD
        path: std::ptr::null(),
        fd,
        generation_ms: 0,
        write: None,
        user_data: std::ptr::null_mut(),
    };
    let (mut starts, mut stops) = (Vec::with_capacity(cycles), Vec::with_capacity(cycles));
    with_load(busy, blocked, |_| {
        set_maxprocs(nproc() as u32);
        std::thread::sleep(Duration::from_millis(50));
        for c in 0..cycles + 10 {
            let t0 = Instant::now();
            // SAFETY: a valid config of the right size.
            check("rtc_trace_start", unsafe { (api().trace_start)(&cfg) });
            let t1 = Instant::now();
            std::thread::sleep(Duration::from_micros(200));
            let t2 = Instant::now();
            trace_stop();
            let t3 = Instant::now();
            // The first 10 are warm-up.
            if c >= 10 {
                starts.push((t1 - t0).as_secs_f64() * 1e6);
                stops.push((t3 - t2).as_secs_f64() * 1e6);
            }
            if c % 100 == 0 {
                progress();
            }
        }
        set_maxprocs(0);
    });
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    (starts, stops)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p) as usize]
}

fn goshape_part(dir: &TempDir) {
    let cycles = env_u64("RTCORE_BENCH_GOSHAPE_CYCLES", 1000).max(1) as usize;
    let rounds = env_u64("RTCORE_BENCH_GOSHAPE_ROUNDS", 3).max(1) as usize;
    let go = build_go_peer(dir);
    assert!(
        go.is_some() || env_u64("RTCORE_BENCH_REQUIRE_GO", 0) == 0,
        "RTCORE_BENCH_REQUIRE_GO=1 and the Go peer could not be built"
    );
    println!(
        "Part 3: start/stop as benches/peers/go measures Go's: 16 busy + 8 blocked \
         threads (rtcore: attached, {{counter; rtc_safepoint}} loops and rtc_enter_blocking + \
         read of an empty pipe; Go: goroutines with a mutex loop and pipe reads), maxprocs = \
         GOMAXPROCS = {} CPUs, {cycles} cycles of start, 200 µs sleep, stop, into a discarding \
         sink (rtcore: an fd on /dev/null; Go: io.Discard); the two alternate, {rounds} rounds, \
         Go first in each. µs; ratio = rtcore / Go.",
        nproc()
    );
    let mut rows = Vec::new();
    for r in 0..rounds {
        let g = go.as_ref().and_then(|bin| {
            phase(format!("start/stop vs Go, round {}: Go", r + 1));
            let out = std::process::Command::new(bin)
                .arg(format!("-cycles={cycles}"))
                .env("GOMAXPROCS", nproc().to_string())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let g = parse_go_peer(&text);
            assert!(
                g.is_some() || env_u64("RTCORE_BENCH_REQUIRE_GO", 0) == 0,
                "Go peer output not understood: {text}"
            );
            if g.is_none() {
                println!("Go peer output not understood: {text}");
            }
            g
        });
        phase(format!("start/stop vs Go, round {}: rtcore", r + 1));
        let (starts, stops) = rtcore_go_shape(cycles, 16, 8);
        let rt = [
            percentile(&starts, 0.5),
            percentile(&starts, 0.99),
            percentile(&stops, 0.5),
            percentile(&stops, 0.99),
        ];
        rows.push((g, rt, percentile(&starts, 1.0), percentile(&stops, 1.0)));
    }
    println!();
    println!(
        "round | start median: rtcore / Go = ratio | start p99 | stop median | stop p99 | rtcore max start, stop"
    );
    for (i, (g, rt, smax, tmax)) in rows.iter().enumerate() {
        let cell = |k: usize| match g {
            Some(g) => format!("{:.0} / {:.0} = {:.2}x", rt[k], g[k], rt[k] / g[k]),
            None => format!("{:.0} / - ", rt[k]),
        };
        println!(
            "{} | {} | {} | {} | {} | {smax:.0}, {tmax:.0}",
            i + 1,
            cell(0),
            cell(1),
            cell(2),
            cell(3)
        );
    }
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    install_panic_exit();
    let a = load();
    spawn_watchdog(Duration::from_secs(
        env_u64("RTCORE_BENCH_WATCHDOG_S", 60).max(1),
    ));

    common::rtc::banner("trace", &machine());
    println!(
        "method:  every rtcore call goes through a dlsym'd pointer into the dlopen'd cdylib, and \
         rtc_trace_on is read through its dlsym'd address; every status checked; every trace \
         checked with rtc_trace_check_file; a watchdog thread (unattached) runs throughout."
    );
    let mut mp = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_get_maxprocs", unsafe { (a.get_maxprocs)(&mut mp) });
    assert_eq!(mp, 0, "maxprocs should be unlimited (0) at start");

    let dir = TempDir::new();
    println!("traces in: {}", dir.0.display());
    let only = std::env::var("RTCORE_BENCH_ONLY").ok();
    match only.as_deref() {
        Some("events") => events_part(&dir),
        Some("startstop") => startstop_part(&dir),
        Some("goshape") => goshape_part(&dir),
        Some(k) => panic!("RTCORE_BENCH_ONLY={k}: expected events, startstop or goshape"),
        None => {
            events_part(&dir);
            startstop_part(&dir);
        }
    }
    drop(dir);

    println!();
    println!("load average (1 min) at end: {}", loadavg());
}
