//! Benchmark of the world (attached threads, Ps, safepoints, blocking
//! regions, stop-the-world), measured through the C ABI.
//!
//! The built cdylib (`RTCORE_LIB`, default `target/release/librtcore.so`
//! under the crate root) is loaded with `dlopen` and every rtcore function is
//! called through a `dlsym`'d function pointer, as a C program would call it;
//! no rtcore Rust function is called directly.
//!
//! Run: `cargo build --release && cargo bench --bench world`
//!
//! Part 1, fast paths: ns per call for an attached thread with nothing
//! pending (no stop, nobody waiting for a P, maxprocs unlimited), beside an
//! empty call through a dlsym'd pointer (`rtc_version`):
//!   (e)  rtc_version(): the floor, one empty call;
//!   (s)  rtc_safepoint(), attached, nothing pending;
//!   (b)  rtc_enter_blocking(NULL) + rtc_exit_blocking(), attached (a pair);
//!   (u)  rtc_safepoint(), unattached (a documented no-op), for reference.
//! Samples are taken round robin across the variants.
//!
//! Part 2, stop+start latency: N attached workers (N = 1, 4, 16, 64) each
//! loop { bump its own counter; rtc_safepoint(); }, with maxprocs = nproc or
//! 0 (unlimited), and a controller (the main thread, unattached or attached)
//! that repeats: gap (sleep; inside a blocking region when attached), then
//! rtc_stop_the_world + rtc_start_the_world, timed. A sample is `cycles`
//! timed cycles after `warmup` untimed ones, in a fresh set of workers; the
//! value of a sample is its mean cycle time. Samples are taken round robin
//! across the 16 configurations (rotating the first one each round). Every
//! sample checks, once, that a stop really stops: while it is in force the
//! census shows no running P but the controller's and the workers' counters
//! do not move; and that the workers ran between stops. Workers detach at the
//! end of each sample; rtc_set_maxprocs(0) is called between samples.
//!
//! Tunables (environment): RTCORE_BENCH_FAST_ITERS (calls per fast-path
//! sample, default 10_000_000), RTCORE_BENCH_FAST_SAMPLES (default 9),
//! RTCORE_BENCH_WORLD_THREADS (default "1,4,16,64"),
//! RTCORE_BENCH_WORLD_CYCLES (timed cycles per sample, default 200),
//! RTCORE_BENCH_WORLD_WARMUP (untimed cycles per sample, default 20),
//! RTCORE_BENCH_WORLD_SAMPLES (default 7), RTCORE_BENCH_WORLD_GAP_US (the
//! controller's pause between cycles, default 100; 0 = back to back),
//! RTCORE_BENCH_WATCHDOG_S (abort with a census if nothing progresses for
//! this long, default 60), RTCORE_BENCH_ONLY (`fast` or `world`),
//! RTCORE_BENCH_CONTROLLER_FIFO=1 (a diagnostic: run the controller at
//! SCHED_FIFO priority 1, workers at SCHED_OTHER, to separate rtcore's cost
//! from the time the kernel makes the controller wait for a CPU; needs
//! CAP_SYS_NICE).
//!
//! Each part also prints how much CPU time the rest of the machine used
//! while it ran (from /proc/stat), since other work skews the numbers.

mod common;
use common::{
    PHASE, PROGRESS, Stats, cpu_ticks, install_panic_exit, loadavg, nproc, phase, progress,
    warn_if_stale,
};
use std::ffi::{CStr, CString, c_char, c_void};
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The C ABI, loaded at run time.

/// Mirror of `struct rtc_census` in include/rtcore.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RtcCensus {
    size: u32,
    stopped: u32,
    threads_running: u32,
    threads_runnable: u32,
    threads_blocking: u32,
    threads_waiting: u32,
    procs: u32,
    procs_idle: u32,
    procs_running: u32,
    procs_syscall: u32,
    procs_stopped: u32,
    stops: u64,
}
const _: () = assert!(std::mem::size_of::<RtcCensus>() == 56);

type VoidFn = unsafe extern "C" fn() -> i32;
type AttachFn = unsafe extern "C" fn(*const c_char, *mut u64) -> i32;
type ReasonFn = unsafe extern "C" fn(*const c_char) -> i32;
type SetMaxprocsFn = unsafe extern "C" fn(u32, *mut u32) -> i32;
type GetMaxprocsFn = unsafe extern "C" fn(*mut u32) -> i32;
type CensusFn = unsafe extern "C" fn(*mut RtcCensus) -> i32;
type VersionFn = unsafe extern "C" fn() -> *const c_char;
type StatusStrFn = unsafe extern "C" fn(i32) -> *const c_char;
type LastErrorFn = unsafe extern "C" fn(*mut c_char, usize) -> usize;

struct Api {
    path: PathBuf,
    thread_attach: AttachFn,
    thread_detach: VoidFn,
    safepoint: VoidFn,
    enter_blocking: ReasonFn,
    exit_blocking: VoidFn,
    stop_the_world: ReasonFn,
    start_the_world: VoidFn,
    set_maxprocs: SetMaxprocsFn,
    get_maxprocs: GetMaxprocsFn,
    census: CensusFn,
    version: VersionFn,
    status_str: StatusStrFn,
    last_error: LastErrorFn,
}

static API: OnceLock<Api> = OnceLock::new();

fn api() -> &'static Api {
    API.get().expect("rtcore not loaded")
}

fn load() -> &'static Api {
    let (path, sym) = common::open_library();
    // SAFETY: each symbol is the function of that name in include/rtcore.h,
    // with the signature spelled out by the type it is transmuted to.
    let loaded = unsafe {
        Api {
            path: path.clone(),
            thread_attach: std::mem::transmute::<*mut c_void, AttachFn>(sym("rtc_thread_attach")),
            thread_detach: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_thread_detach")),
            safepoint: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_safepoint")),
            enter_blocking: std::mem::transmute::<*mut c_void, ReasonFn>(sym("rtc_enter_blocking")),
            exit_blocking: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_exit_blocking")),
            stop_the_world: std::mem::transmute::<*mut c_void, ReasonFn>(sym("rtc_stop_the_world")),
            start_the_world: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_start_the_world")),
            set_maxprocs: std::mem::transmute::<*mut c_void, SetMaxprocsFn>(sym(
                "rtc_set_maxprocs",
            )),
            get_maxprocs: std::mem::transmute::<*mut c_void, GetMaxprocsFn>(sym(
                "rtc_get_maxprocs",
            )),
            census: std::mem::transmute::<*mut c_void, CensusFn>(sym("rtc_world_census")),
            version: std::mem::transmute::<*mut c_void, VersionFn>(sym("rtc_version")),
            status_str: std::mem::transmute::<*mut c_void, StatusStrFn>(sym("rtc_status_str")),
            last_error: std::mem::transmute::<*mut c_void, LastErrorFn>(sym(
                "rtc_last_error_message",
            )),
        }
    };
    if API.set(loaded).is_err() {
        panic!("rtcore loaded twice");
    }
    api()
}

/// A failed rtcore call: panic with the status name and the last error.
#[cold]
#[inline(never)]
fn rtc_fail(what: &str, status: i32) -> ! {
    let a = api();
    panic!(
        "{}",
        common::failure(a.status_str, a.last_error, what, status)
    );
}

#[inline(always)]
fn check(what: &str, status: i32) {
    if status != 0 {
        rtc_fail(what, status);
    }
}

fn attach(name: &str) -> u64 {
    let c = CString::new(name).unwrap();
    let mut id = 0u64;
    // SAFETY: NUL-terminated name, valid out-pointer.
    check("rtc_thread_attach", unsafe {
        (api().thread_attach)(c.as_ptr(), &mut id)
    });
    id
}

fn detach() {
    // SAFETY: plain call.
    check("rtc_thread_detach", unsafe { (api().thread_detach)() });
}

fn enter_blocking(reason: &CStr) {
    // SAFETY: NUL-terminated reason.
    check("rtc_enter_blocking", unsafe {
        (api().enter_blocking)(reason.as_ptr())
    });
}

fn exit_blocking() {
    // SAFETY: plain call.
    check("rtc_exit_blocking", unsafe { (api().exit_blocking)() });
}

fn set_maxprocs(n: u32) -> u32 {
    let mut prev = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_set_maxprocs", unsafe {
        (api().set_maxprocs)(n, &mut prev)
    });
    let mut got = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_get_maxprocs", unsafe {
        (api().get_maxprocs)(&mut got)
    });
    assert_eq!(got, n, "rtc_get_maxprocs after rtc_set_maxprocs({n})");
    prev
}

fn census() -> RtcCensus {
    let mut c = RtcCensus {
        size: std::mem::size_of::<RtcCensus>() as u32,
        ..Default::default()
    };
    // SAFETY: valid out-pointer with `size` set.
    check("rtc_world_census", unsafe { (api().census)(&mut c) });
    c
}

// ---------------------------------------------------------------------------
// Failure handling: a panic anywhere (a failed status, a failed check) ends
// the process at once, since other threads may be parked inside rtcore for
// good (a world held stopped) and joining them would hang. A watchdog ends
// the process, with a census, if nothing progresses for too long.

fn spawn_watchdog(limit: Duration) {
    std::thread::Builder::new()
        .name("bench watchdog".into())
        .spawn(move || {
            let mut last = PROGRESS.load(Relaxed);
            let mut since = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let now = PROGRESS.load(Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                    continue;
                }
                if since.elapsed() < limit {
                    continue;
                }
                let ph = PHASE.lock().map(|p| p.clone()).unwrap_or_default();
                eprintln!(
                    "\nbenchmark HUNG: no progress for {:?} in phase: {ph}",
                    since.elapsed()
                );
                // The census takes the world's inner lock: ask from another
                // thread and give up on it after 2 s.
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(census());
                });
                match rx.recv_timeout(Duration::from_secs(2)) {
                    Ok(c) => eprintln!("census: {c:?}"),
                    Err(_) => eprintln!("census: rtc_world_census did not return within 2 s"),
                }
                let _ = std::io::stderr().flush();
                // SAFETY: ends the process.
                unsafe { libc::_exit(2) };
            }
        })
        .expect("spawn watchdog");
}

// ---------------------------------------------------------------------------
// Statistics.

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v}: not a comma-separated list of numbers"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

// ---------------------------------------------------------------------------
// Machine description.

fn machine() -> String {
    format!(
        "{}, clocksource {}",
        common::machine_base(),
        common::clocksource()
    )
}

/// Measures how busy the machine was with other work during a part.
struct CpuWatch {
    t: Instant,
    ticks: (u64, u64),
}

impl CpuWatch {
    fn start() -> CpuWatch {
        CpuWatch {
            t: Instant::now(),
            ticks: cpu_ticks(),
        }
    }
    fn report(&self, part: &str) {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let (busy, own) = cpu_ticks();
        let secs = self.t.elapsed().as_secs_f64();
        let cap = secs * nproc() as f64;
        let own = (own - self.ticks.1) as f64 / hz;
        let others = ((busy - self.ticks.0) as f64 / hz - own).max(0.0);
        println!(
            "{part}: {secs:.1} s; CPU time: this benchmark {own:.1} s, everything else {others:.1} s \
             ({:.0}% of the machine's {cap:.1} CPU-s)",
            others / cap * 100.0
        );
    }
}

// ---------------------------------------------------------------------------
// Part 1: fast paths.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fast {
    Floor,
    Safepoint,
    Blocking,
    SafepointUnattached,
}

impl Fast {
    const ALL: [Fast; 4] = [
        Fast::Floor,
        Fast::Safepoint,
        Fast::Blocking,
        Fast::SafepointUnattached,
    ];
    fn label(self) -> &'static str {
        match self {
            Fast::Floor => "(e) floor: rtc_version(), 1 empty call",
            Fast::Safepoint => "(s) rtc_safepoint(), attached",
            Fast::Blocking => "(b) rtc_enter_blocking(NULL)+rtc_exit_blocking()",
            Fast::SafepointUnattached => "(u) rtc_safepoint(), unattached (no-op)",
        }
    }
    fn calls(self) -> u64 {
        match self {
            Fast::Blocking => 2,
            _ => 1,
        }
    }
}

#[inline(never)]
fn loop_floor(iters: u64) -> Duration {
    let f = api().version;
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: rtc_version has no preconditions.
        black_box(unsafe { black_box(f)() });
    }
    t.elapsed()
}

#[inline(never)]
fn loop_safepoint(iters: u64) -> Duration {
    let f = api().safepoint;
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: plain call.
        let s = unsafe { black_box(f)() };
        if s != 0 {
            rtc_fail("rtc_safepoint", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_blocking(iters: u64) -> Duration {
    let a = api();
    let (enter, exit) = (a.enter_blocking, a.exit_blocking);
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: NULL reason is allowed.
        let s = unsafe { black_box(enter)(black_box(std::ptr::null())) };
        if s != 0 {
            rtc_fail("rtc_enter_blocking", s);
        }
        // SAFETY: plain call.
        let s = unsafe { black_box(exit)() };
        if s != 0 {
            rtc_fail("rtc_exit_blocking", s);
        }
    }
    t.elapsed()
}

/// One sample of `v`, in ns per iteration (a call, or a pair for (b)). The
/// calling thread is attached on entry and on exit.
fn fast_sample(v: Fast, iters: u64) -> f64 {
    let d = match v {
        Fast::Floor => loop_floor(iters),
        Fast::Safepoint => loop_safepoint(iters),
        Fast::Blocking => loop_blocking(iters),
        Fast::SafepointUnattached => {
            detach();
            let d = loop_safepoint(iters);
            attach("bench main");
            d
        }
    };
    progress();
    d.as_nanos() as f64 / iters as f64
}

fn fast_paths() {
    let iters = env_u64("RTCORE_BENCH_FAST_ITERS", 10_000_000).max(1);
    let samples = env_u64("RTCORE_BENCH_FAST_SAMPLES", 9).max(1) as usize;
    phase("fast paths".into());
    let watch = CpuWatch::start();
    set_maxprocs(0);
    attach("bench main");
    // Nothing pending: only this thread attached, no stop, no queue.
    let c = census();
    assert!(
        c.stopped == 0 && c.threads_running == 1 && c.threads_runnable == 0,
        "fast paths need a quiet world, census: {c:?}"
    );
    for v in Fast::ALL {
        fast_sample(v, iters / 10);
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); Fast::ALL.len()];
    for s in 0..samples {
        for j in 0..Fast::ALL.len() {
            let i = (s + j) % Fast::ALL.len();
            results[i].push(fast_sample(Fast::ALL[i], iters));
        }
    }
    let c = census();
    assert!(
        c.stopped == 0 && c.threads_running == 1 && c.threads_runnable == 0,
        "the world changed during the fast-path samples, census: {c:?}"
    );
    detach();
    watch.report("fast paths");

    let stats: Vec<Stats> = results.iter().map(|r| Stats::of(r)).collect();
    let floor = stats[0].median;
    println!();
    println!(
        "Fast paths, attached thread, nothing pending: ns per call (per pair for (b)) \
         ({iters} per sample, {samples} samples per variant, round robin)"
    );
    println!(
        "{:<52} {:>8} {:>8} {:>8} {:>7} {:>9} {:>12}",
        "variant", "median", "min", "max", "spread", "/floor", "above floor"
    );
    for (i, v) in Fast::ALL.iter().enumerate() {
        let st = &stats[i];
        println!(
            "{:<52} {:>8.2} {:>8.2} {:>8.2} {:>6.1}% {:>8.2}x {:>9.2} ns",
            v.label(),
            st.median,
            st.min,
            st.max,
            st.spread() * 100.0,
            st.median / floor,
            st.median - floor * v.calls() as f64
        );
    }
    println!("(\"above floor\" subtracts one empty call per rtcore call: 2 for the (b) pair)");
}

// ---------------------------------------------------------------------------
// Part 2: stop+start latency.

#[repr(C, align(64))]
struct Line<T>(T);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Cfg {
    threads: usize,
    /// 0: unlimited.
    maxprocs: u32,
    attached: bool,
}

impl Cfg {
    fn label(self) -> String {
        format!(
            "{:>2} workers, maxprocs {:<9}, {:<10} controller",
            self.threads,
            if self.maxprocs == 0 {
                "0 (unlim)".to_string()
            } else {
                format!("{} (nproc)", self.maxprocs)
            },
            if self.attached {
                "attached"
            } else {
                "unattached"
            }
        )
    }
}

struct WorldSample {
    /// Mean stop+start per cycle, µs.
    cycle_us: f64,
    /// Mean rtc_stop_the_world alone per cycle, µs.
    stop_us: f64,
    /// Mean rtc_start_the_world alone per cycle, µs.
    start_us: f64,
    /// Slowest single stop, µs.
    worst_stop_us: f64,
    /// Slowest single start, µs.
    worst_start_us: f64,
    /// Worker counter bumps per second over the timed cycles (gaps included).
    bumps_per_s: f64,
}

struct WorldParams {
    cycles: u64,
    warmup: u64,
    gap: Duration,
}

/// Set when the controller runs at real-time priority (a diagnostic).
static CONTROLLER_FIFO: AtomicBool = AtomicBool::new(false);

fn counters_sum(counters: &[Line<AtomicU64>]) -> u64 {
    counters.iter().map(|c| c.0.load(Relaxed)).sum()
}

fn stop_world() {
    // SAFETY: NUL-terminated reason.
    check("rtc_stop_the_world", unsafe {
        (api().stop_the_world)(c"bench".as_ptr())
    });
}

fn start_world() {
    // SAFETY: plain call.
    check("rtc_start_the_world", unsafe { (api().start_the_world)() });
}

fn world_sample(cfg: Cfg, p: &WorldParams) -> WorldSample {
    let ctl = cfg.attached as u32;
    let prev = set_maxprocs(cfg.maxprocs);
    assert_eq!(prev, 0, "maxprocs was not reset to 0 after the last sample");
    if cfg.attached {
        attach("bench controller");
    }
    let quit = AtomicBool::new(false);
    let attached = AtomicUsize::new(0);
    let counters: Vec<Line<AtomicU64>> =
        (0..cfg.threads).map(|_| Line(AtomicU64::new(0))).collect();
    let gap_reason = c"bench gap";

    let res = std::thread::scope(|sc| {
        for (i, counter) in counters.iter().enumerate() {
            let (quit, attached) = (&quit, &attached);
            std::thread::Builder::new()
                .name(format!("bench worker {i}"))
                .spawn_scoped(sc, move || {
                    if CONTROLLER_FIFO.load(SeqCst) {
                        // Threads inherit the creator's policy: back to normal.
                        let param = libc::sched_param { sched_priority: 0 };
                        // SAFETY: valid thread and parameter.
                        let rc = unsafe {
                            libc::pthread_setschedparam(
                                libc::pthread_self(),
                                libc::SCHED_OTHER,
                                &param,
                            )
                        };
                        assert_eq!(rc, 0, "pthread_setschedparam(SCHED_OTHER)");
                    }
                    attach(&format!("bench worker {i}"));
                    attached.fetch_add(1, SeqCst);
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
                .expect("spawn worker");
        }
        // Every worker has had a P once (attach returns with one).
        while attached.load(SeqCst) < cfg.threads {
            std::thread::sleep(Duration::from_micros(200));
        }
        progress();
        let c = census();
        assert!(
            c.stopped == 0
                && (c.threads_running + c.threads_runnable) as usize == cfg.threads + ctl as usize
                && c.threads_blocking == 0
                && c.threads_waiting == 0,
            "{}: unexpected census before the stops: {c:?}",
            cfg.label()
        );
        if cfg.maxprocs != 0 {
            assert!(
                c.procs_running <= cfg.maxprocs,
                "{}: more Ps running than maxprocs: {c:?}",
                cfg.label()
            );
        }

        let gap = |attached_ctl: bool| {
            if p.gap.is_zero() {
                return;
            }
            if attached_ctl {
                enter_blocking(gap_reason);
                std::thread::sleep(p.gap);
                exit_blocking();
            } else {
                std::thread::sleep(p.gap);
            }
        };

        // Check once that a stop stops everything.
        gap(cfg.attached);
        let stops0 = census().stops;
        stop_world();
        let c = census();
        assert!(
            c.stopped == 1
                && c.procs_running == ctl
                && c.procs_idle == 0
                && c.procs_syscall == 0
                && c.threads_running == ctl,
            "{}: the world is not stopped after rtc_stop_the_world: {c:?}",
            cfg.label()
        );
        let before = counters_sum(&counters);
        std::thread::sleep(Duration::from_millis(2));
        let after = counters_sum(&counters);
        assert_eq!(
            before,
            after,
            "{}: workers bumped their counters while the world was stopped",
            cfg.label()
        );
        start_world();

        for _ in 0..p.warmup {
            gap(cfg.attached);
            stop_world();
            start_world();
            progress();
        }

        let ran0 = counters_sum(&counters);
        let timed = Instant::now();
        let mut stop_total = Duration::ZERO;
        let mut start_total = Duration::ZERO;
        let mut worst_stop = Duration::ZERO;
        let mut worst_start = Duration::ZERO;
        for _ in 0..p.cycles {
            gap(cfg.attached);
            let t0 = Instant::now();
            stop_world();
            let t1 = Instant::now();
            start_world();
            let t2 = Instant::now();
            stop_total += t1 - t0;
            start_total += t2 - t1;
            worst_stop = worst_stop.max(t1 - t0);
            worst_start = worst_start.max(t2 - t1);
            progress();
        }
        let ran1 = counters_sum(&counters);
        let timed = timed.elapsed();
        assert!(
            ran1 > ran0,
            "{}: the workers made no progress between stops",
            cfg.label()
        );
        let c = census();
        assert_eq!(
            c.stops - stops0,
            1 + p.warmup + p.cycles,
            "{}: rtc_world_census counted a different number of stops",
            cfg.label()
        );
        assert_eq!(c.stopped, 0, "{}: still stopped: {c:?}", cfg.label());

        quit.store(true, Relaxed);
        let per_cycle = |d: Duration| d.as_secs_f64() * 1e6 / p.cycles as f64;
        WorldSample {
            cycle_us: per_cycle(stop_total + start_total),
            stop_us: per_cycle(stop_total),
            start_us: per_cycle(start_total),
            worst_stop_us: worst_stop.as_secs_f64() * 1e6,
            worst_start_us: worst_start.as_secs_f64() * 1e6,
            bumps_per_s: (ran1 - ran0) as f64 / timed.as_secs_f64(),
        }
    });
    // Every worker has detached and exited (scope joined them).
    if cfg.attached {
        detach();
    }
    set_maxprocs(0);
    let c = census();
    assert!(
        c.threads_running + c.threads_runnable + c.threads_blocking + c.threads_waiting == 0
            && c.stopped == 0,
        "{}: threads still attached after the sample: {c:?}",
        cfg.label()
    );
    progress();
    res
}

fn stop_start() {
    let threads = env_list("RTCORE_BENCH_WORLD_THREADS", &[1, 4, 16, 64]);
    let samples = env_u64("RTCORE_BENCH_WORLD_SAMPLES", 7).max(1) as usize;
    let p = WorldParams {
        cycles: env_u64("RTCORE_BENCH_WORLD_CYCLES", 200).max(1),
        warmup: env_u64("RTCORE_BENCH_WORLD_WARMUP", 20),
        gap: Duration::from_micros(env_u64("RTCORE_BENCH_WORLD_GAP_US", 100)),
    };
    let np = nproc() as u32;
    if env_u64("RTCORE_BENCH_CONTROLLER_FIFO", 0) != 0 {
        // Diagnostic: run the controller (this thread) at real-time priority
        // so the kernel never makes it wait behind busy workers.
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: valid thread and parameter.
        let rc =
            unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        assert_eq!(
            rc,
            0,
            "pthread_setschedparam(SCHED_FIFO): {}",
            std::io::Error::from_raw_os_error(rc)
        );
        CONTROLLER_FIFO.store(true, SeqCst);
        println!(
            "controller: SCHED_FIFO priority 1 (RTCORE_BENCH_CONTROLLER_FIFO); workers SCHED_OTHER"
        );
    }
    let mut cfgs = Vec::new();
    for &n in &threads {
        for maxprocs in [np, 0] {
            for attached in [false, true] {
                cfgs.push(Cfg {
                    threads: n,
                    maxprocs,
                    attached,
                });
            }
        }
    }
    let mut results: Vec<Vec<WorldSample>> = (0..cfgs.len()).map(|_| Vec::new()).collect();
    let started = Instant::now();
    let watch = CpuWatch::start();
    for s in 0..samples {
        for j in 0..cfgs.len() {
            let i = (s + j) % cfgs.len();
            phase(format!("stop+start, round {}, {}", s + 1, cfgs[i].label()));
            results[i].push(world_sample(cfgs[i], &p));
        }
        eprintln!(
            "  stop+start: round {}/{samples} done ({:.1} s)",
            s + 1,
            started.elapsed().as_secs_f64()
        );
    }

    println!();
    watch.report("stop+start");
    println!(
        "Stop+start latency, µs per cycle (rtc_stop_the_world + rtc_start_the_world, timed together); \
         {} timed cycles per sample after {} untimed, {samples} samples per configuration, round robin; \
         gap between cycles {} µs (controller sleeps; attached: inside a blocking region)",
        p.cycles,
        p.warmup,
        p.gap.as_micros()
    );
    println!(
        "{:<52} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "configuration",
        "median",
        "min",
        "max",
        "spread",
        "stop",
        "start",
        "max stop",
        "max start",
        "Mbumps/s"
    );
    for (i, cfg) in cfgs.iter().enumerate() {
        let r = &results[i];
        let med =
            |f: fn(&WorldSample) -> f64| Stats::of(&r.iter().map(f).collect::<Vec<_>>()).median;
        let worst = |f: fn(&WorldSample) -> f64| r.iter().map(f).fold(0.0, f64::max);
        let st = Stats::of(&r.iter().map(|x| x.cycle_us).collect::<Vec<_>>());
        println!(
            "{:<52} {:>9.1} {:>9.1} {:>9.1} {:>6.1}% {:>9.1} {:>9.1} {:>10.0} {:>10.0} {:>9.3}",
            cfg.label(),
            st.median,
            st.min,
            st.max,
            st.spread() * 100.0,
            med(|x| x.stop_us),
            med(|x| x.start_us),
            worst(|x| x.worst_stop_us),
            worst(|x| x.worst_start_us),
            med(|x| x.bumps_per_s) / 1e6
        );
    }
    println!(
        "(median/min/max/spread: of the samples' mean stop+start per cycle; stop, start: medians of the \
         samples' mean stop-only and start-only times; max stop, max start: slowest single call over all \
         samples; Mbumps/s: median worker counter bumps per second, all workers, over the timed cycles)"
    );
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    install_panic_exit();
    let a = load();
    // SAFETY: static NUL-terminated string.
    let version = unsafe { CStr::from_ptr((a.version)()) }.to_string_lossy();
    spawn_watchdog(Duration::from_secs(
        env_u64("RTCORE_BENCH_WATCHDOG_S", 60).max(1),
    ));

    // A second thread, blocked for the whole run, so the process is
    // multi-threaded (glibc elides atomics in a single-threaded process).
    let (tx, rx) = mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        let _ = rx.recv();
    });

    println!("rtcore world benchmark");
    println!("library: {} (rtcore {version})", a.path.display());
    println!("machine: {}", machine());
    println!("load average (1 min) at start: {}", loadavg());
    if std::env::var_os("RTCORE_LIB").is_none() {
        warn_if_stale(&a.path);
    }
    println!(
        "method:  every rtcore call goes through a dlsym'd pointer into the dlopen'd cdylib; \
         every status checked; a watchdog thread and one idle thread (both unattached) run throughout."
    );

    let only = std::env::var("RTCORE_BENCH_ONLY").ok();
    match only.as_deref() {
        Some("fast") => fast_paths(),
        Some("world") => stop_start(),
        Some(k) => panic!("RTCORE_BENCH_ONLY={k}: expected fast or world"),
        None => {
            fast_paths();
            stop_start();
        }
    }

    println!();
    println!("load average (1 min) at end: {}", loadavg());
    drop(tx);
    idle.join().unwrap();
}
