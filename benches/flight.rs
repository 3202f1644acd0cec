//! Benchmark of the flight recorder and rolling generations (issue 17),
//! measured through the C ABI.
//!
//! The built cdylib (`RTCORE_LIB`, default `target/release/librtcore.so`
//! under the crate root) is loaded with `dlopen` and every rtcore function is
//! called through a `dlsym`'d pointer, as a C program would; `RTC_LOG` is
//! emulated exactly as the header's macro reads `rtc_trace_on` (a relaxed
//! load, then the call).
//!
//! Run: `cargo build --release && cargo bench --bench flight` (about 30 s).
//!
//! Part 1, the cost of one event: `RTC_LOG("bench", "request done")` (both
//! strings seen before: one call before the timed loop) from the main thread
//! (unattached, nothing else attached), `n` times in one loop skeleton, in
//! three variants sampled round robin after one warm-up sample each:
//!   floor:  a bare `rdtsc` and a 16-byte store (common::floor_event);
//!   trace:  while a regular trace records into an fd on /dev/null
//!           (`rtc_trace_start`, default generation_ms and max_mb);
//!   flight: while the flight recorder records into memory
//!           (`rtc_flight_recorder_start`, default config: 16 MiB, so
//!           generations roll every second or every 2 MiB).
//! Each traced sample starts its trace, logs once, times the loop, and stops
//! it. Also per sample: the CPU the process's other threads used per event
//! (mostly the trace writer) and, when the library has
//! `rtc_trace_get_stats`, the bytes handed to the writer per event.
//! Goal: flight / trace ~ 1.0.
//!
//! Part 2 and 3, a snapshot's cost and how long it holds threads, beside a
//! trace start (which stops the world): `BUSY` (8) attached threads loop
//! { t0 = clock; RTC_LOG; t1 = clock; rtc_safepoint() } with maxprocs 2.
//! Samples of two kinds, round robin, after one warm-up of each:
//!   flight: rtc_flight_recorder_start; GAP ms; a *control* window (the
//!           main thread sleeps as long as the last snapshot took, nothing
//!           else); GAP ms; a *snapshot* window:
//!           rtc_flight_recorder_write(fd on /dev/null), which rolls the
//!           trace over (forced rollover), waits for the writer to hand the
//!           ended generation to the ring, and writes the ring out; GAP ms;
//!           rtc_flight_recorder_stop.
//!   trace:  GAP ms; a *control* window (tracing off; the main thread
//!           sleeps as long as the last start took); GAP ms; a *start*
//!           window: rtc_trace_start(fd on /dev/null); GAP ms; a *stop*
//!           window: rtc_trace_stop.
//! Part 2 reports each call's wall time (median) and snapshot / start and
//! snapshot / (start + stop) (medians of the same run).
//! Part 3: while a window is open (from just before the call to just after
//! it returns), every worker notes, at the top of each loop iteration, the
//! gap since its previous top when that gap overlaps the window, and the
//! time of each RTC_LOG call that overlaps it. Per window, the longest of:
//!   gap (all):     any worker's gap overlapping the window (the issue's
//!                  measure; includes workers that were waiting for a P,
//!                  which with 8 threads on 2 Ps and a 1 ms quantum wait a
//!                  few ms whatever else happens);
//!   gap (running): the same, only for gaps that began at most 20 us before
//!                  the window opened or inside it: workers that were
//!                  running when the operation began;
//!   RTC_LOG call:  any single RTC_LOG call overlapping the window (a
//!                  snapshot's rollover holds a recording thread at its gate
//!                  inside the call; a start parks it in rtc_safepoint, so
//!                  this is ~0 for starts by construction).
//! Reported: the median over samples of each window's longest, and the
//! worst; ratios snapshot / start of the medians, and each over its control
//! window. The control windows show what the same statistics read with no
//! call (P hand-offs every 1 ms quantum, the OS scheduler, and with the
//! flight recorder on its own rollovers every 2 MiB).
//!
//! Tunables (environment): RTCORE_BENCH_FLIGHT_ITERS (events per part-1
//! sample, default 2_000_000), RTCORE_BENCH_FLIGHT_SAMPLES (part-1 samples
//! per variant, default 11), RTCORE_BENCH_FLIGHT_ROUNDS (part-2/3 samples
//! per kind, default 40), RTCORE_BENCH_FLIGHT_BUSY (workers, default 8),
//! RTCORE_BENCH_FLIGHT_MAXPROCS (default 2), RTCORE_BENCH_FLIGHT_GAP_MS
//! (default 50), RTCORE_BENCH_ONLY (`events` or `rollover`),
//! RTCORE_BENCH_WATCHDOG_S (default 60).

mod common;
use common::rtc::*;
use common::{CpuWatch, Stats, install_panic_exit, loadavg, phase, progress};
use std::ffi::{CStr, c_char, c_void};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The parts of the C ABI that benches/common lacks.

/// `RTC_TRACE_SINK_FD`.
const RTC_TRACE_SINK_FD: u32 = 2;
/// `RTC_ERR_WRONG_STATE`.
const RTC_ERR_WRONG_STATE: i32 = 19;

/// Mirror of the whole `struct rtc_trace_config` (with `max_mb`).
#[repr(C)]
struct TraceConfig {
    size: u32,
    sink_kind: u32,
    path: *const c_char,
    fd: i32,
    generation_ms: u32,
    write: Option<TraceWriteFn>,
    user_data: *mut c_void,
    max_mb: u32,
    reserved: u32,
}

const _: () = assert!(std::mem::size_of::<TraceConfig>() == 48);

/// Mirror of `struct rtc_flight_recorder_config`.
#[repr(C)]
struct FlightConfig {
    size: u32,
    max_mb: u32,
    min_age_ms: u32,
    triggers: u32,
    dump_dir: *const c_char,
    rate_limit_ms: u32,
    dir_max_dumps: u32,
    dir_max_mb: u32,
    reserved: u32,
}

const _: () = assert!(std::mem::size_of::<FlightConfig>() == 40);

/// Mirror of `struct rtc_trace_stats`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct TraceStats {
    size: u32,
    tracing: u32,
    batches: u64,
    events: u64,
    bytes: u64,
    lost_generations: u64,
    lost_batches: u64,
    lost_events: u64,
    lost_bytes: u64,
    buffer_bytes: u64,
    queued_bytes: u64,
}

const _: () = assert!(std::mem::size_of::<TraceStats>() == 80);

type FlightStartFn = unsafe extern "C" fn(*const FlightConfig) -> i32;
type SinkFn = unsafe extern "C" fn(*const TraceConfig) -> i32;
type StatsFn = unsafe extern "C" fn(*mut TraceStats) -> i32;

struct Flight {
    start: FlightStartFn,
    write: SinkFn,
    stop: VoidFn,
    /// `rtc_trace_start` with the whole config.
    trace_start: SinkFn,
    /// `rtc_trace_get_stats`, when the library has it.
    stats: Option<StatsFn>,
    /// An fd on /dev/null: the discarding sink.
    devnull: i32,
}

fn load_flight() -> Flight {
    // The library is already loaded (`load`): this takes one more reference
    // to the same handle.
    let (_, sym) = common::open_library();
    let path = api().path.clone();
    let stats = {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path; RTLD_NOLOAD returns the handle
        // `load` opened, or NULL.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        let p = if h.is_null() {
            std::ptr::null_mut()
        } else {
            // SAFETY: valid handle and NUL-terminated name.
            unsafe { libc::dlsym(h, c"rtc_trace_get_stats".as_ptr()) }
        };
        // SAFETY: `rtc_trace_get_stats` has this signature in include/rtcore.h.
        (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, StatsFn>(p) })
    };
    // SAFETY: a NUL-terminated path.
    let devnull = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    assert!(devnull >= 0, "open /dev/null");
    // SAFETY: each symbol is the function of that name in include/rtcore.h,
    // with the signature spelled out by the type it is transmuted to.
    unsafe {
        Flight {
            start: std::mem::transmute::<*mut c_void, FlightStartFn>(sym(
                "rtc_flight_recorder_start",
            )),
            write: std::mem::transmute::<*mut c_void, SinkFn>(sym("rtc_flight_recorder_write")),
            stop: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_flight_recorder_stop")),
            trace_start: std::mem::transmute::<*mut c_void, SinkFn>(sym("rtc_trace_start")),
            stats,
            devnull,
        }
    }
}

impl Flight {
    fn devnull_sink(&self) -> TraceConfig {
        TraceConfig {
            size: std::mem::size_of::<TraceConfig>() as u32,
            sink_kind: RTC_TRACE_SINK_FD,
            path: std::ptr::null(),
            fd: self.devnull,
            generation_ms: 0,
            write: None,
            user_data: std::ptr::null_mut(),
            max_mb: 0,
            reserved: 0,
        }
    }

    /// Call `f` until it stops returning RTC_ERR_WRONG_STATE (the previous
    /// trace's writer still draining), for at most 2 s.
    fn retrying(what: &str, f: impl Fn() -> i32) {
        let t = Instant::now();
        loop {
            let s = f();
            if s == RTC_ERR_WRONG_STATE && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            check(what, s);
            return;
        }
    }

    fn trace_start(&self) {
        let cfg = self.devnull_sink();
        // SAFETY: a valid config of the right size.
        Self::retrying("rtc_trace_start", || unsafe { (self.trace_start)(&cfg) });
    }

    fn trace_stop(&self) {
        // SAFETY: plain call.
        check("rtc_trace_stop", unsafe { (api().trace_stop)() });
    }

    fn recorder_start(&self) {
        let cfg = FlightConfig {
            size: std::mem::size_of::<FlightConfig>() as u32,
            max_mb: 0,
            min_age_ms: 0,
            triggers: 0,
            dump_dir: std::ptr::null(),
            rate_limit_ms: 0,
            dir_max_dumps: 0,
            dir_max_mb: 0,
            reserved: 0,
        };
        // SAFETY: a valid config of the right size.
        Self::retrying("rtc_flight_recorder_start", || unsafe {
            (self.start)(&cfg)
        });
    }

    fn recorder_write(&self) {
        let cfg = self.devnull_sink();
        // SAFETY: a valid sink of the right size.
        check("rtc_flight_recorder_write", unsafe { (self.write)(&cfg) });
    }

    fn recorder_stop(&self) {
        // SAFETY: plain call.
        check("rtc_flight_recorder_stop", unsafe { (self.stop)() });
    }

    fn stats(&self) -> Option<TraceStats> {
        let f = self.stats?;
        let mut s = TraceStats {
            size: std::mem::size_of::<TraceStats>() as u32,
            ..Default::default()
        };
        // SAFETY: valid out-pointer with `size` set.
        check("rtc_trace_get_stats", unsafe { f(&mut s) });
        Some(s)
    }
}

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

#[inline(always)]
fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

const CATEGORY: &CStr = c"bench";
const MESSAGE: &CStr = c"request done";

// ---------------------------------------------------------------------------
// Part 1: the cost of one event.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ev {
    Floor,
    Trace,
    Flight,
}

impl Ev {
    const ALL: [Ev; 3] = [Ev::Floor, Ev::Trace, Ev::Flight];
    fn label(self) -> &'static str {
        match self {
            Ev::Floor => "floor (rdtsc + 16-byte store)",
            Ev::Trace => "RTC_LOG, trace into /dev/null",
            Ev::Flight => "RTC_LOG, flight recorder",
        }
    }
}

#[inline(never)]
fn loop_floor(n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        common::floor_event(black_box(i));
    }
    t.elapsed()
}

/// `RTC_LOG(category, message)` as the header defines it.
#[inline(never)]
fn loop_macro(n: u64) -> Duration {
    let a = api();
    let (flag, log) = (a.trace_on, a.log);
    let (cat, msg) = (CATEGORY.as_ptr(), MESSAGE.as_ptr());
    let t = Instant::now();
    for i in 0..n {
        black_box(i);
        if flag.load(Relaxed) != 0 {
            // SAFETY: NUL-terminated strings.
            let s = unsafe { log(cat, msg) };
            if s != 0 {
                rtc_fail("rtc_log", s);
            }
        }
    }
    t.elapsed()
}

#[derive(Clone, Copy, Default)]
struct EvSample {
    ns: f64,
    /// CPU of the process's other threads per event, ns.
    other_cpu_ns: f64,
    /// Bytes handed to the writer per event (rtc_trace_get_stats), or NaN.
    bytes_per_event: f64,
}

fn ev_sample(fl: &Flight, v: Ev, n: u64) -> EvSample {
    if v == Ev::Floor {
        let d = loop_floor(n);
        progress();
        return EvSample {
            ns: d.as_nanos() as f64 / n as f64,
            other_cpu_ns: f64::NAN,
            bytes_per_event: f64::NAN,
        };
    }
    match v {
        Ev::Trace => fl.trace_start(),
        _ => fl.recorder_start(),
    }
    assert!(api().trace_on.load(Relaxed) != 0, "rtc_trace_on is 0");
    // The strings, seen before the timed loop.
    loop_macro(1);
    let s0 = fl.stats();
    let p0 = clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    let t0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let d = loop_macro(n);
    let p1 = clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    let t1 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let s1 = fl.stats();
    match v {
        Ev::Trace => fl.trace_stop(),
        _ => fl.recorder_stop(),
    }
    let bytes_per_event = match (s0, s1) {
        (Some(a), Some(b)) => (b.bytes - a.bytes) as f64 / (b.events - a.events).max(1) as f64,
        _ => f64::NAN,
    };
    if let Some(b) = s1 {
        assert!(
            b.lost_events == 0,
            "{v:?}: {} events lost while recording",
            b.lost_events
        );
    }
    progress();
    EvSample {
        ns: d.as_nanos() as f64 / n as f64,
        other_cpu_ns: (p1 - p0).saturating_sub(t1 - t0) as f64 / n as f64,
        bytes_per_event,
    }
}

fn events_part(fl: &Flight) -> Option<f64> {
    let n = env_u64("RTCORE_BENCH_FLIGHT_ITERS", 2_000_000).max(1);
    let samples = env_u64("RTCORE_BENCH_FLIGHT_SAMPLES", 11).max(1) as usize;
    let c = census();
    assert!(
        c.threads_running + c.threads_runnable + c.threads_blocking + c.threads_waiting == 0,
        "part 1 runs with nothing attached, census: {c:?}"
    );
    let watch = CpuWatch::start();
    phase("events: warm-up".into());
    for v in Ev::ALL {
        ev_sample(fl, v, n / 10 + 1);
    }
    let started = Instant::now();
    let res = common::round_robin(
        &Ev::ALL,
        samples,
        |r, v| {
            phase(format!("events, round {}, {v:?}", r + 1));
            ev_sample(fl, v, n)
        },
        |r| {
            eprintln!(
                "  events: round {}/{samples} done ({:.1} s)",
                r + 1,
                started.elapsed().as_secs_f64()
            )
        },
    );
    println!();
    watch.report("part 1 (cost per event)");
    println!();
    println!(
        "Part 1: ns per RTC_LOG (strings seen before), {samples} samples per variant, round robin, \
         {n} events per sample; main thread unattached, nothing attached"
    );
    println!(
        "{}",
        common::stats_header(
            32,
            &format!(
                "{:>8} {:>14} {:>12}",
                "/ floor", "others' CPU/ev", "bytes/ev"
            )
        )
    );
    let st: Vec<Stats> = res
        .iter()
        .map(|r| Stats::of(&r.iter().map(|x| x.ns).collect::<Vec<_>>()))
        .collect();
    let floor = st[0].median;
    for (i, v) in Ev::ALL.iter().enumerate() {
        // The floor has neither (NaN): shown as "-".
        let med = |f: fn(&EvSample) -> f64, w: usize, prec: usize, unit: &str| {
            let xs: Vec<f64> = res[i].iter().map(f).filter(|x| !x.is_nan()).collect();
            if xs.is_empty() {
                format!("{:>w$}", "-", w = w + unit.len())
            } else {
                format!("{:>w$.prec$}{unit}", Stats::of(&xs).median)
            }
        };
        println!(
            "{} {:>7.2}x {} {}",
            common::stats_row(32, v.label(), &st[i], 1.0),
            st[i].median / floor,
            med(|x| x.other_cpu_ns, 12, 2, "ns"),
            med(|x| x.bytes_per_event, 12, 2, "")
        );
    }
    let ratio = st[2].median / st[1].median;
    // The ratio within each round too: its spread says how much to trust the
    // ratio of medians on a noisy machine.
    let per_round: Vec<f64> = res[2]
        .iter()
        .zip(&res[1])
        .map(|(f, t)| f.ns / t.ns)
        .collect();
    let pr = Stats::of(&per_round);
    println!(
        "RATIO event flight / trace: {ratio:.3} (per round: median {:.3}, min {:.3}, max {:.3}; goal ~1.0)",
        pr.median, pr.min, pr.max
    );
    Some(ratio)
}

// ---------------------------------------------------------------------------
// Parts 2 and 3: snapshots and trace starts under load.

/// One cache line per worker's published state.
#[repr(align(64))]
struct Line<T>(T);

/// The window the main thread has open (`START` = u64::MAX: none) and the
/// longest values the workers saw in it.
static WIN_START: AtomicU64 = AtomicU64::new(u64::MAX);
static WIN_END: AtomicU64 = AtomicU64::new(u64::MAX);
static GAP_ALL: AtomicU64 = AtomicU64::new(0);
static GAP_RUN: AtomicU64 = AtomicU64::new(0);
static LOG_MAX: AtomicU64 = AtomicU64::new(0);
/// A gap that began at most this long before the window opened counts as
/// a running worker's.
const RUNNING_SLACK_NS: u64 = 20_000;

#[derive(Clone, Copy, Default)]
struct Window {
    /// The call's wall time, us.
    us: f64,
    /// The longest gap overlapping the window (any worker), us.
    gap_all: f64,
    /// The same, of workers running when it opened, us.
    gap_run: f64,
    /// The longest RTC_LOG call overlapping it, us.
    log: f64,
}

/// Time `f` inside a window and collect what the workers saw: waits until
/// every worker has begun an iteration after the window closed (at most
/// 200 ms; `late` counts the workers that had not).
fn window(tops: &[Line<AtomicU64>], late: &AtomicUsize, f: impl FnOnce()) -> Window {
    GAP_ALL.store(0, SeqCst);
    GAP_RUN.store(0, SeqCst);
    LOG_MAX.store(0, SeqCst);
    WIN_END.store(u64::MAX, SeqCst);
    let s = mono_ns();
    WIN_START.store(s, SeqCst);
    f();
    let e = mono_ns();
    WIN_END.store(e, SeqCst);
    let t = Instant::now();
    while tops.iter().any(|x| x.0.load(SeqCst) <= e) {
        if t.elapsed() > Duration::from_millis(200) {
            late.fetch_add(
                tops.iter().filter(|x| x.0.load(SeqCst) <= e).count(),
                Relaxed,
            );
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    WIN_START.store(u64::MAX, SeqCst);
    Window {
        us: (e - s) as f64 / 1e3,
        gap_all: GAP_ALL.load(SeqCst) as f64 / 1e3,
        gap_run: GAP_RUN.load(SeqCst) as f64 / 1e3,
        log: LOG_MAX.load(SeqCst) as f64 / 1e3,
    }
}

/// The worker's loop: { t0; RTC_LOG; t1; rtc_safepoint() }, noting gaps
/// and RTC_LOG calls that overlap the open window.
fn worker(quit: &AtomicBool, top: &AtomicU64, iters: &AtomicU64) {
    let a = api();
    let (flag, log, sp) = (a.trace_on, a.log, a.safepoint);
    let (cat, msg) = (CATEGORY.as_ptr(), MESSAGE.as_ptr());
    let mut prev = mono_ns();
    let mut n = 0u64;
    while !quit.load(Relaxed) {
        let t0 = mono_ns();
        top.store(t0, Relaxed);
        let ws = WIN_START.load(Relaxed);
        if ws != u64::MAX {
            let we = WIN_END.load(Relaxed);
            if t0 >= ws && prev <= we {
                let gap = t0 - prev;
                GAP_ALL.fetch_max(gap, Relaxed);
                if prev + RUNNING_SLACK_NS >= ws {
                    GAP_RUN.fetch_max(gap, Relaxed);
                }
            }
        }
        if flag.load(Relaxed) != 0 {
            // SAFETY: NUL-terminated strings.
            let s = unsafe { log(cat, msg) };
            if s != 0 {
                rtc_fail("rtc_log", s);
            }
        }
        let t1 = mono_ns();
        let ws = WIN_START.load(Relaxed);
        if ws != u64::MAX && t1 >= ws && t0 <= WIN_END.load(Relaxed) {
            LOG_MAX.fetch_max(t1 - t0, Relaxed);
        }
        // SAFETY: plain call.
        let s = unsafe { sp() };
        if s != 0 {
            rtc_fail("rtc_safepoint", s);
        }
        prev = t0;
        n += 1;
        if n % 4096 == 0 {
            iters.store(n, Relaxed);
        }
    }
    iters.store(n, Relaxed);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Flight,
    Trace,
}

/// One of a sample's call times, us.
type PickUs = fn(&RollSample) -> f64;
/// One of a sample's windows.
type PickWindow = fn(&RollSample) -> Window;

#[derive(Clone, Copy, Default)]
struct RollSample {
    /// A window with no call, as long as the last `op` of this kind took
    /// (flight recorder on; trace: tracing off).
    control: Window,
    /// Flight: the snapshot; trace: the start.
    op: Window,
    /// Trace: the stop.
    stop: Window,
}

fn roll_sample(
    fl: &Flight,
    kind: Kind,
    gap: Duration,
    control: Duration,
    tops: &[Line<AtomicU64>],
    late: &AtomicUsize,
) -> RollSample {
    match kind {
        Kind::Flight => {
            fl.recorder_start();
            std::thread::sleep(gap);
            let control = window(tops, late, || std::thread::sleep(control));
            std::thread::sleep(gap);
            let op = window(tops, late, || fl.recorder_write());
            std::thread::sleep(gap);
            fl.recorder_stop();
            RollSample {
                control,
                op,
                stop: Window::default(),
            }
        }
        Kind::Trace => {
            std::thread::sleep(gap);
            let control = window(tops, late, || std::thread::sleep(control));
            std::thread::sleep(gap);
            let op = window(tops, late, || fl.trace_start());
            std::thread::sleep(gap);
            let stop = window(tops, late, || fl.trace_stop());
            RollSample { control, op, stop }
        }
    }
}

struct RollRatios {
    time: f64,
    gap_all: f64,
    gap_run: f64,
}

fn rollover_part(fl: &Flight) -> RollRatios {
    let rounds = env_u64("RTCORE_BENCH_FLIGHT_ROUNDS", 40).max(1) as usize;
    let busy = env_u64("RTCORE_BENCH_FLIGHT_BUSY", 8).max(1) as usize;
    let maxprocs = env_u64("RTCORE_BENCH_FLIGHT_MAXPROCS", 2) as u32;
    let gap = Duration::from_millis(env_u64("RTCORE_BENCH_FLIGHT_GAP_MS", 50));
    let prev_mp = set_maxprocs(maxprocs);
    let watch = CpuWatch::start();
    let quit = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    let late = AtomicUsize::new(0);
    let tops: Vec<Line<AtomicU64>> = (0..busy).map(|_| Line(AtomicU64::new(0))).collect();
    let iters: Vec<Line<AtomicU64>> = (0..busy).map(|_| Line(AtomicU64::new(0))).collect();
    let kinds = [Kind::Flight, Kind::Trace];
    let res = std::thread::scope(|sc| {
        for i in 0..busy {
            let (quit, ready, top, it) = (&quit, &ready, &tops[i].0, &iters[i].0);
            std::thread::Builder::new()
                .name(format!("bench busy {i}"))
                .spawn_scoped(sc, move || {
                    attach(&format!("bench busy {i}"));
                    ready.fetch_add(1, SeqCst);
                    worker(quit, top, it);
                    detach();
                })
                .expect("spawn busy thread");
        }
        let t = Instant::now();
        loop {
            let c = census();
            let attached =
                c.threads_running + c.threads_runnable + c.threads_blocking + c.threads_waiting;
            if ready.load(SeqCst) == busy && attached as usize == busy {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the workers did not attach within 10 s: census {c:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Every worker has iterated (tops set).
        while tops.iter().any(|x| x.0.load(SeqCst) == 0) {
            assert!(t.elapsed() < Duration::from_secs(10), "a worker never ran");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Each kind's control window lasts as long as its last call.
        let mut control = [Duration::from_millis(1); 2];
        phase("rollover: warm-up".into());
        for (i, k) in kinds.into_iter().enumerate() {
            let s = roll_sample(fl, k, gap, control[i], &tops, &late);
            control[i] = Duration::from_secs_f64(s.op.us / 1e6);
        }
        late.store(0, SeqCst);
        let started = Instant::now();
        let res = common::round_robin(
            &kinds,
            rounds,
            |r, k| {
                phase(format!("rollover, round {}, {k:?}", r + 1));
                let i = k as usize;
                let s = roll_sample(fl, k, gap, control[i], &tops, &late);
                control[i] = Duration::from_secs_f64(s.op.us / 1e6);
                progress();
                s
            },
            |r| {
                eprintln!(
                    "  rollover: round {}/{rounds} done ({:.1} s)",
                    r + 1,
                    started.elapsed().as_secs_f64()
                )
            },
        );
        let c = census();
        assert!(
            c.stopped == 0,
            "the world is stopped after the samples: census {c:?}"
        );
        quit.store(true, SeqCst);
        res
    });
    set_maxprocs(prev_mp);
    println!();
    watch.report("parts 2 and 3 (snapshots and trace starts under load)");
    let total: u64 = iters.iter().map(|x| x.0.load(Relaxed)).sum();
    let min_w = iters.iter().map(|x| x.0.load(Relaxed)).min().unwrap_or(0);
    println!(
        "{busy} workers, maxprocs {maxprocs}: {total} loop iterations in all (the least of one \
         worker: {min_w}); workers not yet past a window after 200 ms: {}",
        late.load(SeqCst)
    );

    let (flight, trace) = (&res[0], &res[1]);
    let stat = |r: &[RollSample], f: &dyn Fn(&RollSample) -> f64| {
        Stats::of(&r.iter().map(f).collect::<Vec<_>>())
    };
    println!();
    println!(
        "Part 2: wall time of each call, us, {rounds} samples per kind, round robin ({busy} busy \
         attached workers, maxprocs {maxprocs}, {} ms between calls, sinks: an fd on /dev/null)",
        gap.as_millis()
    );
    println!("{}", common::stats_header(44, ""));
    let rows: [(&str, &[RollSample], PickUs); 3] = [
        ("snapshot (rtc_flight_recorder_write)", flight, |x| x.op.us),
        ("trace start (rtc_trace_start)", trace, |x| x.op.us),
        ("trace stop (rtc_trace_stop)", trace, |x| x.stop.us),
    ];
    for (label, r, f) in rows {
        println!("{}", common::stats_row(44, label, &stat(r, &f), 1.0));
    }
    let snap = stat(flight, &|x| x.op.us).median;
    let start = stat(trace, &|x| x.op.us).median;
    let pair = stat(trace, &|x| x.op.us + x.stop.us).median;
    println!(
        "RATIO snapshot / trace start: {:.3}; snapshot / (trace start + stop): {:.3}",
        snap / start,
        snap / pair
    );

    println!();
    println!(
        "Part 3: per window, the longest gap between a worker's consecutive loop iterations and \
         the longest RTC_LOG call, us: median over samples [worst]"
    );
    println!(
        "{:<44} {:>9} {:>22} {:>22} {:>22}",
        "window", "call", "gap (all workers)", "gap (running ones)", "RTC_LOG call"
    );
    let rows: [(&str, &[RollSample], PickWindow); 5] = [
        ("control: flight recorder on, no call", flight, |x| {
            x.control
        }),
        ("snapshot", flight, |x| x.op),
        ("control: tracing off, no call", trace, |x| x.control),
        ("trace start (stops the world)", trace, |x| x.op),
        ("trace stop (stops the world)", trace, |x| x.stop),
    ];
    let cell = |r: &[RollSample], w: fn(&RollSample) -> Window, f: fn(&Window) -> f64| {
        let s = stat(r, &|x| f(&w(x)));
        format!("{:>10.1} [{:>9.1}]", s.median, s.max)
    };
    for (label, r, w) in rows {
        println!(
            "{:<44} {:>9.1} {} {} {}",
            label,
            stat(r, &|x| w(x).us).median,
            cell(r, w, |x| x.gap_all),
            cell(r, w, |x| x.gap_run),
            cell(r, w, |x| x.log)
        );
    }
    let med = |r: &[RollSample], w: fn(&RollSample) -> Window, f: fn(&Window) -> f64| {
        stat(r, &|x| f(&w(x))).median
    };
    let ga = med(flight, |x| x.op, |w| w.gap_all) / med(trace, |x| x.op, |w| w.gap_all);
    let gr = med(flight, |x| x.op, |w| w.gap_run) / med(trace, |x| x.op, |w| w.gap_run);
    println!(
        "RATIO longest gap, snapshot / trace start: all workers {ga:.3}; running ones {gr:.3}"
    );
    println!(
        "      each over its control window (same length, no call): snapshot {:.3} / {:.3}, \
         trace start {:.3} / {:.3} (all / running)",
        med(flight, |x| x.op, |w| w.gap_all) / med(flight, |x| x.control, |w| w.gap_all),
        med(flight, |x| x.op, |w| w.gap_run) / med(flight, |x| x.control, |w| w.gap_run),
        med(trace, |x| x.op, |w| w.gap_all) / med(trace, |x| x.control, |w| w.gap_all),
        med(trace, |x| x.op, |w| w.gap_run) / med(trace, |x| x.control, |w| w.gap_run)
    );
    println!(
        "      longest RTC_LOG call during snapshots: {:.1} us (its control {:.1} us)",
        med(flight, |x| x.op, |w| w.log),
        med(flight, |x| x.control, |w| w.log)
    );
    RollRatios {
        time: snap / start,
        gap_all: ga,
        gap_run: gr,
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
    let fl = load_flight();
    common::rtc::banner("flight recorder", &machine());
    println!(
        "method:  every rtcore call goes through a dlsym'd pointer into the dlopen'd cdylib; \
         RTC_LOG reads rtc_trace_on through its dlsym'd address; every status checked; a \
         watchdog thread (unattached) runs throughout; ratios are of medians in this run."
    );
    let mut mp = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_get_maxprocs", unsafe { (a.get_maxprocs)(&mut mp) });
    if fl.stats.is_none() {
        println!("(this library has no rtc_trace_get_stats: no bytes per event)");
    }
    let only = std::env::var("RTCORE_BENCH_ONLY").ok();
    let (ev, roll) = match only.as_deref() {
        Some("events") => (events_part(&fl), None),
        Some("rollover") => (None, Some(rollover_part(&fl))),
        Some(k) => panic!("RTCORE_BENCH_ONLY={k}: expected events or rollover"),
        None => (events_part(&fl), Some(rollover_part(&fl))),
    };
    println!();
    println!("Summary (ratios of medians, this run):");
    if let Some(r) = ev {
        println!("  event cost, flight recorder / trace:            {r:.3}");
    }
    if let Some(r) = roll {
        println!(
            "  snapshot / trace start (wall time):             {:.3}",
            r.time
        );
        println!(
            "  longest gap, snapshot / trace start (all):      {:.3}",
            r.gap_all
        );
        println!(
            "  longest gap, snapshot / trace start (running):  {:.3}",
            r.gap_run
        );
    }
    println!("load average (1 min) at end: {}", loadavg());
}
