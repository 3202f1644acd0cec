//! Benchmark of sysmon and hooks, measured through the C ABI.
//!
//! The built cdylib (`RTCORE_LIB`, default `target/release/librtcore.so`
//! under the crate root) is loaded with `dlopen` and every rtcore function is
//! called through a `dlsym`'d function pointer, as a C program would call it;
//! no rtcore Rust function is called directly.
//!
//! Run: `cargo build --release && cargo bench --bench sysmon`
//!
//! Part 1, sysmon's CPU. sysmon's thread is found by its name
//! ("rtcore-sysmon") in /proc/self/task/*/comm. Over a window (10 s by
//! default) the benchmark reads its CPU time from
//! /proc/self/task/TID/schedstat (first field: ns on a CPU) and from
//! /proc/self/task/TID/stat (utime + stime, in clock ticks: 10 ms each, so
//! 0.1% of a core over 10 s is one tick), and sysmon's own counters
//! (`rtc_sysmon_get_stats`: ticks, deep sleeps, retakes, preemption
//! requests). Scenarios:
//!   (a) all blocked: 4 attached threads, each inside a blocking region
//!       (`rtc_enter_blocking`) reading an empty pipe for the whole window;
//!   (b) nothing attached: every thread detached, nothing to watch;
//!   (c) running: 2 attached threads busy, `rtc_safepoint()` after every
//!       ~1 µs of work;
//!   (d) running, rare safepoints: 2 attached threads busy, a safepoint
//!       after every ~50 ms of work, so sysmon asks them to reach one after
//!       10 ms (preemption requests).
//! Each window starts after the scenario is set up and checked (census) and
//! has settled for 200 ms. Scenarios run round robin (rotating the first
//! one each round), 3 rounds by default. The goal for (a) is at most 0.1% of
//! one core.
//!
//! Part 2, the cost of a hook run, beside a peer in the same run. A hook is
//! registered with `rtc_sysmon_hook_add` with the minimum period (100 µs);
//! its body increments an atomic counter and records its start and end
//! times (CLOCK_MONOTONIC). The peer is a plain thread doing the same body
//! on the same schedule with `clock_nanosleep(TIMER_ABSTIME)`: a hand-rolled
//! timer thread. Both follow rtcore's documented rule: the next run is due
//! one period after the previous due time, and a run that ends past its
//! next due time is followed by a full period of rest. Lateness = start of
//! the body - due time, the due times computed with that rule from the
//! registration time (the peer's own start for the peer). CPU per run =
//! the hook thread's (or the peer's) schedstat ns over the sample / runs;
//! sysmon's CPU over the same sample is shown too (a hook run wakes sysmon
//! from deep sleep). Samples of 2 s alternate between the two (rotating),
//! 3 each. Then the cost of an `rtc_sysmon_hook_add` + `rtc_sysmon_hook_remove`
//! pair (a hook with a 1 s period, never run).
//!
//! Tunables (environment): RTCORE_BENCH_SYSMON_SECS (window per scenario,
//! default 10), RTCORE_BENCH_SYSMON_ROUNDS (default 3),
//! RTCORE_BENCH_HOOK_SECS (per hook sample, default 2),
//! RTCORE_BENCH_HOOK_PERIOD_US (default 100), RTCORE_BENCH_HOOK_ROUNDS
//! (default 3), RTCORE_BENCH_HOOK_PAIRS (add+remove pairs per sample,
//! default 2000; 5 samples), RTCORE_BENCH_WATCHDOG_S (abort if nothing
//! progresses for this long, default 60 + 2 windows),
//! RTCORE_BENCH_ONLY (`cpu` or `hooks`), RTCORE_BENCH_HOOK_SYSMON_AWAKE=1 (a
//! diagnostic for part 2: one attached thread waits outside any blocking
//! region, so its P stays RUNNING and sysmon never deep-sleeps; this
//! separates what a hook run costs when it has to wake sysmon).

mod common;
use common::rtc::*;
use common::{Stats, cpu_ticks, install_panic_exit, loadavg, nproc, phase, progress};
use std::ffi::{CStr, c_void};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The C ABI, loaded at run time.

impl RtcCensus {
    fn attached(&self) -> u32 {
        self.threads_running + self.threads_runnable + self.threads_blocking + self.threads_waiting
    }
}

fn safepoint() {
    // SAFETY: plain call.
    check("rtc_safepoint", unsafe { (api().safepoint)() });
}

fn sysmon_stats() -> RtcSysmonStats {
    let mut s = RtcSysmonStats {
        size: std::mem::size_of::<RtcSysmonStats>() as u32,
        ..Default::default()
    };
    // SAFETY: valid out-pointer with `size` set.
    check("rtc_sysmon_get_stats", unsafe {
        (api().sysmon_get_stats)(&mut s)
    });
    s
}

fn hook_add(name: &CStr, period_ns: u64, f: HookCb, user_data: *mut c_void) -> u64 {
    let mut id = 0u64;
    // SAFETY: NUL-terminated name, a valid callback, valid out-pointer;
    // `user_data` outlives the hook (removed before it is dropped).
    check("rtc_sysmon_hook_add", unsafe {
        (api().hook_add)(name.as_ptr(), period_ns, f, user_data, &mut id)
    });
    assert_ne!(id, 0, "rtc_sysmon_hook_add returned id 0");
    id
}

fn hook_remove(id: u64) {
    // SAFETY: plain call.
    check("rtc_sysmon_hook_remove", unsafe { (api().hook_remove)(id) });
}

// ---------------------------------------------------------------------------
// Failure handling: a panic anywhere ends the process at once, since other
// threads may be blocked on a pipe or inside rtcore and joining them would
// hang. A watchdog ends the process if nothing progresses for too long.

// ---------------------------------------------------------------------------
// Environment, machine, /proc.

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

fn machine() -> String {
    format!("{}, CLK_TCK {}", common::machine_base(), clk_tck())
}

/// CLOCK_MONOTONIC in ns (the clock `Instant` and rtcore's sysmon use).
#[inline]
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { libc::gettid() }
}

/// Threads of this process whose name (comm) is exactly `name`.
fn tasks_named(name: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .flatten()
    {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
            if c.trim_end_matches('\n') == name {
                out.push(tid);
            }
        }
    }
    out
}

/// The one thread named `name`: panics if there is none or more than one
/// after 5 s (a new thread names itself once it runs).
fn task_named(name: &str) -> i32 {
    let t = Instant::now();
    let mut v = tasks_named(name);
    while v.is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
        v = tasks_named(name);
    }
    assert!(
        v.len() == 1,
        "expected exactly one thread named '{name}' in /proc/self/task/*/comm, found {v:?}"
    );
    v[0]
}

/// A thread's CPU time: schedstat's ns on a CPU and number of times it ran
/// (None if the kernel has no schedstat), and stat's utime + stime ticks.
#[derive(Clone, Copy, Debug)]
struct TaskCpu {
    sched_ns: Option<u64>,
    slices: Option<u64>,
    ticks: u64,
    /// Context switches from /proc/self/task/TID/status: voluntary (the
    /// thread slept or waited) and involuntary (it was preempted).
    voluntary: u64,
    involuntary: u64,
}

fn task_cpu(tid: i32) -> TaskCpu {
    let base = format!("/proc/self/task/{tid}");
    let stat = std::fs::read_to_string(format!("{base}/stat"))
        .unwrap_or_else(|e| panic!("read {base}/stat: {e} (did the thread exit?)"));
    let after = stat.rsplit_once(')').expect("stat has a comm").1;
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the comm.
    let ticks = f[11] + f[12];
    let ss = std::fs::read_to_string(format!("{base}/schedstat")).ok();
    let mut it = ss.as_deref().unwrap_or("").split_whitespace();
    let sched_ns = it.next().and_then(|x| x.parse().ok());
    let _wait = it.next();
    let slices = it.next().and_then(|x| x.parse().ok());
    let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    TaskCpu {
        sched_ns,
        slices,
        ticks,
        voluntary: field("voluntary_ctxt_switches:"),
        involuntary: field("nonvoluntary_ctxt_switches:"),
    }
}

/// CPU used by everything but this process over a window, as % of the
/// whole machine (nproc cores).
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
    /// (others % of the machine, this process % of the machine)
    fn end(&self) -> (f64, f64) {
        let (busy, own) = cpu_ticks();
        let cap = self.t.elapsed().as_secs_f64() * nproc() as f64;
        let own = (own - self.ticks.1) as f64 / clk_tck();
        let others = ((busy - self.ticks.0) as f64 / clk_tck() - own).max(0.0);
        (others / cap * 100.0, own / cap * 100.0)
    }
}

// ---------------------------------------------------------------------------
// Calibrated busy work.

/// `n` rounds of dependent integer work the optimiser cannot remove.
#[inline(never)]
fn spin(n: u64) -> u64 {
    let mut x = 1u64;
    for i in 0..n {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// Rounds of `spin` per µs, measured now (best of 5).
fn calibrate_spin() -> f64 {
    let n = 5_000_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        black_box(spin(n));
        best = best.min(t.elapsed().as_secs_f64());
    }
    n as f64 / (best * 1e6)
}

// ---------------------------------------------------------------------------
// Part 1: sysmon's CPU.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scen {
    Blocked,
    Nothing,
    Running,
    RareSafepoints,
}

impl Scen {
    const ALL: [Scen; 4] = [
        Scen::Blocked,
        Scen::Nothing,
        Scen::Running,
        Scen::RareSafepoints,
    ];
    fn label(self) -> &'static str {
        match self {
            Scen::Blocked => "(a) all blocked: 4 threads in a blocking region",
            Scen::Nothing => "(b) nothing attached",
            Scen::Running => "(c) running: 2 threads, safepoint every ~1 us",
            Scen::RareSafepoints => "(d) running: 2 threads, safepoint every ~50 ms",
        }
    }
    fn threads(self) -> usize {
        match self {
            Scen::Blocked => BLOCKED_THREADS,
            Scen::Nothing => 0,
            Scen::Running | Scen::RareSafepoints => RUNNING_THREADS,
        }
    }
}

const BLOCKED_THREADS: usize = 4;
const RUNNING_THREADS: usize = 2;
const SETTLE: Duration = Duration::from_millis(200);

struct CpuSample {
    secs: f64,
    /// sysmon's ns on a CPU (schedstat), if the kernel has it.
    sched_ns: Option<u64>,
    /// sysmon's utime + stime, clock ticks.
    ticks: u64,
    /// sysmon's wake-ups (schedstat's third field).
    slices: Option<u64>,
    d: RtcSysmonStats,
    /// sysmon's counters from before the threads were started to the start
    /// of the window (setup and settling).
    setup: RtcSysmonStats,
    delay_end_ns: u64,
    /// Safepoints per second per worker (running scenarios).
    safepoints_per_s: f64,
    /// Census at the end of the window.
    end: RtcCensus,
    others_pct: f64,
}

impl CpuSample {
    fn sched_pct(&self) -> Option<f64> {
        self.sched_ns
            .map(|ns| ns as f64 / (self.secs * 1e9) * 100.0)
    }
    fn tick_pct(&self) -> f64 {
        self.ticks as f64 / clk_tck() / self.secs * 100.0
    }
    /// The measure used for the goal: schedstat when there is one.
    fn pct(&self) -> f64 {
        self.sched_pct().unwrap_or_else(|| self.tick_pct())
    }
}

fn stats_delta(a: &RtcSysmonStats, b: &RtcSysmonStats) -> RtcSysmonStats {
    RtcSysmonStats {
        size: b.size,
        running: b.running,
        ticks: b.ticks - a.ticks,
        delay_ns: b.delay_ns,
        deep_sleeps: b.deep_sleeps - a.deep_sleeps,
        retakes: b.retakes - a.retakes,
        preempt_requests: b.preempt_requests - a.preempt_requests,
        stall_reports: b.stall_reports - a.stall_reports,
        stalls_resolved: b.stalls_resolved - a.stalls_resolved,
        hook_runs: b.hook_runs - a.hook_runs,
        hook_overruns: b.hook_overruns - a.hook_overruns,
        hooks: b.hooks,
        deadlocks: b.deadlocks - a.deadlocks,
    }
}

/// Measure sysmon over `secs` while the scenario holds; `counters` are the
/// workers' safepoint counts (read at both ends).
fn measure_window(
    pre: &RtcSysmonStats,
    sysmon: i32,
    secs: f64,
    counters: &[AtomicU64],
    check: &dyn Fn(&RtcCensus) -> Result<(), String>,
) -> CpuSample {
    let c0 = census();
    if let Err(e) = check(&c0) {
        panic!("scenario not in place at the start of the window: {e}; census: {c0:?}");
    }
    let watch = CpuWatch::start();
    let s0 = sysmon_stats();
    let n0: u64 = counters.iter().map(|c| c.load(Relaxed)).sum();
    let t0 = Instant::now();
    let cpu0 = task_cpu(sysmon);
    // Sleep in steps so the watchdog sees progress.
    let end = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep((end - Instant::now()).min(Duration::from_secs(1)));
        progress();
    }
    let cpu1 = task_cpu(sysmon);
    let secs = t0.elapsed().as_secs_f64();
    let n1: u64 = counters.iter().map(|c| c.load(Relaxed)).sum();
    let s1 = sysmon_stats();
    let (others_pct, _) = watch.end();
    let c1 = census();
    if let Err(e) = check(&c1) {
        panic!("scenario not in place at the end of the window: {e}; census: {c1:?}");
    }
    assert_eq!(s1.running, 1, "sysmon stopped running: {s1:?}");
    let d = stats_delta(&s0, &s1);
    CpuSample {
        secs,
        sched_ns: cpu0.sched_ns.zip(cpu1.sched_ns).map(|(a, b)| b - a),
        ticks: cpu1.ticks - cpu0.ticks,
        slices: cpu0.slices.zip(cpu1.slices).map(|(a, b)| b - a),
        d,
        setup: stats_delta(pre, &s0),
        delay_end_ns: s1.delay_ns,
        safepoints_per_s: if counters.is_empty() {
            0.0
        } else {
            (n1 - n0) as f64 / secs / counters.len() as f64
        },
        end: c1,
        others_pct,
    }
}

fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn cpu_sample(scen: Scen, sysmon: i32, secs: f64, spin_per_us: f64) -> CpuSample {
    let c = census();
    assert!(
        c.attached() == 0 && c.stopped == 0,
        "{}: threads still attached before the sample: {c:?}",
        scen.label()
    );
    let n = scen.threads();
    let pre = sysmon_stats();
    match scen {
        Scen::Nothing => {
            std::thread::sleep(SETTLE);
            measure_window(&pre, sysmon, secs, &[], &|c| {
                if c.attached() == 0 && c.stopped == 0 {
                    Ok(())
                } else {
                    Err("a thread is attached".into())
                }
            })
        }
        Scen::Blocked => {
            let mut fds = [0i32; 2];
            // SAFETY: valid array of two ints.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe()");
            let (rfd, wfd) = (fds[0], fds[1]);
            let ready = AtomicUsize::new(0);
            let sample = std::thread::scope(|sc| {
                for i in 0..n {
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
                wait_until("the threads to block", Duration::from_secs(10), || {
                    ready.load(SeqCst) == n && census().threads_blocking as usize == n
                });
                std::thread::sleep(SETTLE);
                let s = measure_window(&pre, sysmon, secs, &[], &|c| {
                    if c.threads_blocking as usize == n && c.attached() as usize == n {
                        Ok(())
                    } else {
                        Err(format!("expected {n} threads BLOCKING and nothing else"))
                    }
                });
                let buf = vec![b'x'; n];
                // SAFETY: valid fd and buffer.
                let w = unsafe { libc::write(wfd, buf.as_ptr().cast(), n) };
                assert_eq!(w, n as isize, "write to the pipe");
                s
            });
            // SAFETY: our own fds, no longer used.
            unsafe {
                libc::close(rfd);
                libc::close(wfd);
            }
            sample
        }
        Scen::Running | Scen::RareSafepoints => {
            let work = match scen {
                Scen::Running => spin_per_us.max(1.0) as u64,
                _ => (spin_per_us * 50_000.0) as u64,
            };
            let quit = AtomicBool::new(false);
            let ready = AtomicUsize::new(0);
            let counters: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            std::thread::scope(|sc| {
                for (i, counter) in counters.iter().enumerate() {
                    let (quit, ready) = (&quit, &ready);
                    std::thread::Builder::new()
                        .name(format!("bench busy {i}"))
                        .spawn_scoped(sc, move || {
                            attach(&format!("bench busy {i}"));
                            ready.fetch_add(1, SeqCst);
                            while !quit.load(Relaxed) {
                                black_box(spin(work));
                                safepoint();
                                counter.store(counter.load(Relaxed) + 1, Relaxed);
                            }
                            detach();
                        })
                        .expect("spawn busy thread");
                }
                wait_until("the threads to attach", Duration::from_secs(10), || {
                    ready.load(SeqCst) == n
                });
                std::thread::sleep(SETTLE);
                let s = measure_window(&pre, sysmon, secs, &counters, &|c| {
                    if c.attached() as usize == n && c.threads_blocking == 0 && c.stopped == 0 {
                        Ok(())
                    } else {
                        Err(format!("expected {n} threads attached, none blocking"))
                    }
                });
                quit.store(true, Relaxed);
                assert!(
                    s.safepoints_per_s > 0.0,
                    "{}: the workers passed no safepoint",
                    scen.label()
                );
                s
            })
        }
    }
}

fn fmt_opt(x: Option<f64>, prec: usize) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.prec$}"))
}

fn sysmon_cpu(sysmon: i32, spin_per_us: f64) {
    let secs = env_u64("RTCORE_BENCH_SYSMON_SECS", 10).max(1) as f64;
    let rounds = env_u64("RTCORE_BENCH_SYSMON_ROUNDS", 3).max(1) as usize;
    let mut results: Vec<Vec<CpuSample>> = (0..Scen::ALL.len()).map(|_| Vec::new()).collect();
    let started = Instant::now();
    println!();
    println!(
        "Part 1: sysmon's CPU, {secs:.0} s window per sample, {rounds} rounds round robin \
         (settle {} ms before each window); per-sample lines as they come:",
        SETTLE.as_millis()
    );
    println!(
        "{:<50} {:>10} {:>9} {:>7} {:>8} {:>7} {:>8} {:>7} {:>7} {:>9} {:>10} {:>7} {:>13}",
        "scenario",
        "sched %",
        "tick %",
        "ticks",
        "us/tick",
        "deep",
        "wakeups",
        "retake",
        "preempt",
        "delay us",
        "sp/s/thr",
        "others",
        "setup tk/rt"
    );
    for r in 0..rounds {
        for j in 0..Scen::ALL.len() {
            let i = (r + j) % Scen::ALL.len();
            let scen = Scen::ALL[i];
            phase(format!("sysmon CPU, round {}, {}", r + 1, scen.label()));
            let s = cpu_sample(scen, sysmon, secs, spin_per_us);
            match scen {
                Scen::Blocked => {
                    assert_eq!(
                        s.end.threads_blocking as usize, BLOCKED_THREADS,
                        "(a): threads were not BLOCKING"
                    );
                }
                Scen::RareSafepoints => {
                    assert!(
                        s.d.preempt_requests > 0,
                        "(d): sysmon sent no preemption request in {secs} s to threads \
                         running 50 ms between safepoints"
                    );
                }
                _ => {}
            }
            println!(
                "{:<50} {:>9}% {:>8.3}% {:>7} {:>8} {:>7} {:>8} {:>7} {:>7} {:>9.0} {:>10.0} {:>6.1}% {:>13}",
                scen.label(),
                fmt_opt(s.sched_pct(), 4),
                s.tick_pct(),
                s.d.ticks,
                fmt_opt(
                    s.sched_ns
                        .map(|ns| ns as f64 / 1e3 / s.d.ticks.max(1) as f64),
                    2
                ),
                s.d.deep_sleeps,
                s.slices.map_or("n/a".into(), |x| x.to_string()),
                s.d.retakes,
                s.d.preempt_requests,
                s.delay_end_ns as f64 / 1e3,
                s.safepoints_per_s,
                s.others_pct,
                format!("{}/{}", s.setup.ticks, s.setup.retakes)
            );
            results[i].push(s);
        }
        eprintln!(
            "  sysmon CPU: round {}/{rounds} done ({:.0} s)",
            r + 1,
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "(sched %: sysmon's ns on a CPU from /proc/self/task/TID/schedstat over the window, as % of \
         one core; tick %: the same from utime+stime in /proc/self/task/TID/stat, 1 tick = {:.0} ms; \
         ticks, deep, retake, preempt: sysmon's counters over the window (rtc_sysmon_get_stats); \
         wakeups: times sysmon's thread was put on a CPU (schedstat); delay us: sysmon's delay at \
         the end; sp/s/thr: safepoints per second per busy thread; setup tk/rt: sysmon's ticks and \
         retakes from starting the threads to the start of the window; others: CPU used by the rest of \
         the machine, % of all {} cores)",
        1000.0 / clk_tck(),
        nproc()
    );

    println!();
    println!("Summary over the {rounds} rounds (median, min, max of the samples):");
    println!(
        "{:<50} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "scenario", "sched %", "min", "max", "tick %", "ticks/s", "deep/s"
    );
    for (i, scen) in Scen::ALL.iter().enumerate() {
        let r = &results[i];
        let st = Stats::of(&r.iter().map(CpuSample::pct).collect::<Vec<_>>());
        let tick = Stats::of(&r.iter().map(CpuSample::tick_pct).collect::<Vec<_>>());
        let tps = Stats::of(
            &r.iter()
                .map(|s| s.d.ticks as f64 / s.secs)
                .collect::<Vec<_>>(),
        );
        let dps = Stats::of(
            &r.iter()
                .map(|s| s.d.deep_sleeps as f64 / s.secs)
                .collect::<Vec<_>>(),
        );
        println!(
            "{:<50} {:>9.4}% {:>9.4}% {:>9.4}% {:>9.3}% {:>10.1} {:>10.2}",
            scen.label(),
            st.median,
            st.min,
            st.max,
            tick.median,
            tps.median,
            dps.median
        );
    }
    let blocked = &results[0];
    let worst = blocked.iter().map(CpuSample::pct).fold(0.0, f64::max);
    let source = if blocked.iter().all(|s| s.sched_ns.is_some()) {
        "schedstat"
    } else {
        "utime+stime ticks"
    };
    println!(
        "goal: (a) all blocked, sysmon <= 0.1% of a core: worst sample {worst:.4}% ({source}): {}",
        if worst <= 0.1 { "MET" } else { "NOT MET" }
    );
    if blocked.iter().any(|s| s.d.deep_sleeps == 0) {
        println!(
            "NOTE: sysmon entered no deep sleep in an (a) window although every attached thread \
             was blocked"
        );
    }
}

// ---------------------------------------------------------------------------
// Part 2: the cost of a hook run, beside a hand-rolled timer thread.

/// What a run records: shared by the hook and the peer, one writer each.
struct Rec {
    count: AtomicU64,
    start: Box<[AtomicU64]>,
    end: Box<[AtomicU64]>,
}

impl Rec {
    fn new(cap: usize) -> Rec {
        Rec {
            count: AtomicU64::new(0),
            start: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            end: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The periodic work, the same for both: count the run and record when it
/// started and ended. Returns the end time.
#[inline(always)]
fn body(r: &Rec) -> u64 {
    let t = mono_ns();
    let k = r.count.fetch_add(1, SeqCst) as usize;
    if k < r.start.len() {
        r.start[k].store(t, Relaxed);
    }
    let e = mono_ns();
    if k < r.end.len() {
        r.end[k].store(e, Relaxed);
    }
    e
}

unsafe extern "C" fn hook_body(user_data: *mut c_void) {
    // SAFETY: user_data is the &Rec given to rtc_sysmon_hook_add, alive
    // until the hook is removed.
    let r = unsafe { &*(user_data as *const Rec) };
    body(r);
}

/// Lateness of each run (start - due) under the rule both follow: the
/// first run is due `period` after `anchor`; the next is due one period
/// after the previous due time, or one period after the previous end if
/// that end was already past it. Returns (lateness ns, runs rescheduled).
fn lateness(r: &Rec, n: usize, anchor: u64, period: u64) -> (Vec<f64>, u64) {
    let mut due = anchor + period;
    let mut out = Vec::with_capacity(n);
    let mut rephased = 0;
    for k in 0..n {
        let s = r.start[k].load(Relaxed);
        let e = r.end[k].load(Relaxed);
        out.push(s as f64 - due as f64);
        let mut next = due + period;
        if next <= e {
            next = e + period;
            rephased += 1;
        }
        due = next;
    }
    (out, rephased)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timer {
    Hook,
    Peer,
}

impl Timer {
    fn label(self) -> &'static str {
        match self {
            Timer::Hook => "rtcore hook (rtc_sysmon_hook_add)",
            Timer::Peer => "peer: thread + clock_nanosleep(ABSTIME)",
        }
    }
}

struct TimerSample {
    runs: u64,
    secs: f64,
    /// The timer thread's ns on a CPU per run.
    cpu_ns_per_run: f64,
    /// Times the timer thread was put on a CPU, per run.
    wakeups_per_run: f64,
    /// The timer thread's voluntary and involuntary context switches per run.
    vol_per_run: f64,
    invol_per_run: f64,
    /// sysmon's ns on a CPU over the sample, per run.
    sysmon_ns_per_run: f64,
    /// sysmon ticks over the sample, per run.
    sysmon_ticks_per_run: f64,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    rephased: u64,
    /// Upper bound of the anchor's error (the add call's duration), ns.
    anchor_err_ns: u64,
    /// CPU used by the rest of the machine, % of all cores.
    others_pct: f64,
}

/// The peer: waits for a start time on `go`, runs until `stop`, reports.
struct Peer {
    go: mpsc::Sender<(u64, &'static Rec)>,
    done: mpsc::Receiver<u64>,
    stop: &'static AtomicBool,
    tid: i32,
}

fn spawn_peer(period: u64) -> Peer {
    let (go_tx, go_rx) = mpsc::channel::<(u64, &'static Rec)>();
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let (tid_tx, tid_rx) = mpsc::channel::<i32>();
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    std::thread::Builder::new()
        .name("bench peer".into())
        .spawn(move || {
            tid_tx.send(gettid()).unwrap();
            while let Ok((anchor, rec)) = go_rx.recv() {
                let mut due = anchor + period;
                while !stop.load(Relaxed) {
                    let ts = libc::timespec {
                        tv_sec: (due / 1_000_000_000) as libc::time_t,
                        tv_nsec: (due % 1_000_000_000) as libc::c_long,
                    };
                    loop {
                        // SAFETY: valid timespec; no remainder wanted.
                        let rc = unsafe {
                            libc::clock_nanosleep(
                                libc::CLOCK_MONOTONIC,
                                libc::TIMER_ABSTIME,
                                &ts,
                                std::ptr::null_mut(),
                            )
                        };
                        if rc == 0 {
                            break;
                        }
                        assert_eq!(rc, libc::EINTR, "clock_nanosleep failed: {rc}");
                    }
                    let end = body(rec);
                    let mut next = due + period;
                    if next <= end {
                        next = end + period;
                    }
                    due = next;
                }
                done_tx.send(rec.count.load(SeqCst)).unwrap();
            }
        })
        .expect("spawn peer");
    let tid = tid_rx.recv().unwrap();
    Peer {
        go: go_tx,
        done: done_rx,
        stop,
        tid,
    }
}

fn timer_sample(
    which: Timer,
    period: u64,
    secs: f64,
    sysmon: i32,
    hooks_tid: i32,
    peer: &Peer,
) -> TimerSample {
    let cap = (secs * 1e9 / period as f64) as usize * 2 + 1000;
    // Leaked so the peer can hold it across the channel; a few MB per sample.
    let rec: &'static Rec = Box::leak(Box::new(Rec::new(cap)));
    let tid = match which {
        Timer::Hook => hooks_tid,
        Timer::Peer => peer.tid,
    };
    let watch = CpuWatch::start();
    let stats0 = sysmon_stats();
    let sys0 = task_cpu(sysmon);
    let cpu0 = task_cpu(tid);
    let t_before = mono_ns();
    let (anchor, anchor_err, id) = match which {
        Timer::Hook => {
            let id = hook_add(
                c"bench periodic",
                period,
                hook_body,
                rec as *const Rec as *mut c_void,
            );
            let t_after = mono_ns();
            (t_before, t_after - t_before, Some(id))
        }
        Timer::Peer => {
            peer.stop.store(false, SeqCst);
            peer.go.send((t_before, rec)).unwrap();
            (t_before, 0, None)
        }
    };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(500)));
        progress();
    }
    let runs = match id {
        Some(id) => {
            hook_remove(id);
            rec.count.load(SeqCst)
        }
        None => {
            peer.stop.store(true, SeqCst);
            peer.done.recv().unwrap()
        }
    };
    let secs = (mono_ns() - t_before) as f64 / 1e9;
    let cpu1 = task_cpu(tid);
    let sys1 = task_cpu(sysmon);
    let stats1 = sysmon_stats();
    let (others_pct, _) = watch.end();
    assert!(runs > 0, "{}: no run in {secs:.1} s", which.label());
    assert!(
        (runs as usize) < cap,
        "{}: {runs} runs overflowed the record ({cap})",
        which.label()
    );
    if which == Timer::Hook {
        assert_eq!(
            stats1.hook_runs - stats0.hook_runs,
            runs,
            "rtc_sysmon_get_stats counted a different number of hook runs than the hook did"
        );
        assert_eq!(
            rec.count.load(SeqCst),
            runs,
            "the hook ran after rtc_sysmon_hook_remove returned"
        );
    }
    let n = runs as usize;
    let (mut late, rephased) = lateness(rec, n, anchor, period);
    let mean = late.iter().sum::<f64>() / n as f64;
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let thread_ns = cpu0
        .sched_ns
        .zip(cpu1.sched_ns)
        .map(|(a, b)| (b - a) as f64)
        .unwrap_or_else(|| (cpu1.ticks - cpu0.ticks) as f64 / clk_tck() * 1e9);
    let sysmon_ns = sys0
        .sched_ns
        .zip(sys1.sched_ns)
        .map(|(a, b)| (b - a) as f64)
        .unwrap_or_else(|| (sys1.ticks - sys0.ticks) as f64 / clk_tck() * 1e9);
    let wakeups = cpu0
        .slices
        .zip(cpu1.slices)
        .map_or(f64::NAN, |(a, b)| (b - a) as f64);
    TimerSample {
        runs,
        secs,
        cpu_ns_per_run: thread_ns / n as f64,
        wakeups_per_run: wakeups / n as f64,
        vol_per_run: (cpu1.voluntary - cpu0.voluntary) as f64 / n as f64,
        invol_per_run: (cpu1.involuntary - cpu0.involuntary) as f64 / n as f64,
        sysmon_ns_per_run: sysmon_ns / n as f64,
        sysmon_ticks_per_run: (stats1.ticks - stats0.ticks) as f64 / n as f64,
        mean_us: mean / 1e3,
        p50_us: percentile(&late, 0.5) / 1e3,
        p99_us: percentile(&late, 0.99) / 1e3,
        max_us: late[n - 1] / 1e3,
        rephased,
        anchor_err_ns: anchor_err,
        others_pct,
    }
}

fn hooks_part(sysmon: i32) {
    let period = env_u64("RTCORE_BENCH_HOOK_PERIOD_US", 100).max(100) * 1000;
    let secs = env_u64("RTCORE_BENCH_HOOK_SECS", 2).max(1) as f64;
    let rounds = env_u64("RTCORE_BENCH_HOOK_ROUNDS", 3).max(1) as usize;
    let c = census();
    assert!(
        c.attached() == 0,
        "hooks are measured with nothing attached; census: {c:?}"
    );
    // Diagnostic: one attached thread waits outside any blocking region, so
    // its P stays RUNNING and sysmon never deep-sleeps (it asks that thread
    // once to reach a safepoint, then ticks every 10 ms); a hook run's wake
    // of sysmon then finds it awake.
    let awake = env_u64("RTCORE_BENCH_HOOK_SYSMON_AWAKE", 0) != 0;
    let (awake_tx, awake_rx) = mpsc::channel::<()>();
    let awake_thread = awake.then(|| {
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let j = std::thread::Builder::new()
            .name("bench awake".into())
            .spawn(move || {
                attach("bench awake");
                ready_tx.send(()).unwrap();
                let _ = awake_rx.recv();
                detach();
            })
            .expect("spawn awake thread");
        ready_rx.recv().unwrap();
        let c = census();
        assert!(
            c.threads_running == 1 && c.procs_running == 1,
            "the awake thread is not RUNNING on a P: {c:?}"
        );
        j
    });
    let peer = spawn_peer(period);

    // Warm-up: starts the hook thread (the first add) so it can be found.
    phase("hooks: warm-up".into());
    let warm: &'static Rec = Box::leak(Box::new(Rec::new(100_000)));
    let id = hook_add(
        c"bench warm-up",
        period,
        hook_body,
        warm as *const Rec as *mut c_void,
    );
    std::thread::sleep(Duration::from_millis(200));
    hook_remove(id);
    assert!(
        warm.count.load(SeqCst) > 0,
        "the warm-up hook never ran in 200 ms"
    );
    let hooks_tid = task_named("rtcore-hooks");
    println!();
    println!(
        "Part 2: hook runs, period {} us, {secs:.0} s per sample, {rounds} samples each, \
         alternating (hook thread tid {hooks_tid}, peer tid {}); {}",
        period / 1000,
        peer.tid,
        if awake {
            "DIAGNOSTIC: one attached thread RUNNING (waiting outside a blocking region), sysmon awake"
        } else {
            "nothing attached"
        }
    );
    let all = [Timer::Hook, Timer::Peer];
    let mut results: Vec<Vec<TimerSample>> = vec![Vec::new(), Vec::new()];
    for r in 0..rounds {
        for j in 0..all.len() {
            let i = (r + j) % all.len();
            phase(format!("hooks, round {}, {}", r + 1, all[i].label()));
            let s = timer_sample(all[i], period, secs, sysmon, hooks_tid, &peer);
            println!(
                "  {:<42} runs {:>6} ({:>7.0}/s)  cpu/run {:>6.2} us  wakeups/run {:>5.2} \
                 (switches/run: voluntary {:.2}, preempted {:.2})  sysmon/run {:>6.2} us ({:.2} ticks)  late mean {:>6.1} p50 {:>6.1} p99 {:>7.1} \
                 max {:>8.1} us  rescheduled {}  (anchor error <= {:.1} us)  others {:.1}%",
                all[i].label(),
                s.runs,
                s.runs as f64 / s.secs,
                s.cpu_ns_per_run / 1e3,
                s.wakeups_per_run,
                s.vol_per_run,
                s.invol_per_run,
                s.sysmon_ns_per_run / 1e3,
                s.sysmon_ticks_per_run,
                s.mean_us,
                s.p50_us,
                s.p99_us,
                s.max_us,
                s.rephased,
                s.anchor_err_ns as f64 / 1e3,
                s.others_pct
            );
            results[i].push(s);
        }
    }
    let med = |i: usize, f: &dyn Fn(&TimerSample) -> f64| -> Stats {
        Stats::of(&results[i].iter().map(f).collect::<Vec<_>>())
    };
    println!();
    println!("Summary (median of the samples; [min, max]):");
    println!(
        "{:<42} {:>9} {:>20} {:>11} {:>12} {:>16} {:>10} {:>20} {:>9}",
        "timer",
        "runs/s",
        "thread cpu/run us",
        "wakeups/run",
        "sysmon/run us",
        "total cpu/run us",
        "late mean",
        "late p99 us",
        "late max"
    );
    for (i, t) in all.iter().enumerate() {
        let rps = med(i, &|s| s.runs as f64 / s.secs);
        let cpu = med(i, &|s| s.cpu_ns_per_run / 1e3);
        let wk = med(i, &|s| s.wakeups_per_run);
        let sy = med(i, &|s| s.sysmon_ns_per_run / 1e3);
        let tot = med(i, &|s| (s.cpu_ns_per_run + s.sysmon_ns_per_run) / 1e3);
        let mean = med(i, &|s| s.mean_us);
        let p99 = med(i, &|s| s.p99_us);
        let mx = med(i, &|s| s.max_us);
        println!(
            "{:<42} {:>9.0} {:>6.2} [{:>5.2},{:>5.2}] {:>11.2} {:>12.2} {:>16.2} {:>10.1} {:>6.1} [{:>5.1},{:>5.1}] {:>9.0}",
            t.label(),
            rps.median,
            cpu.median,
            cpu.min,
            cpu.max,
            wk.median,
            sy.median,
            tot.median,
            mean.median,
            p99.median,
            p99.min,
            p99.max,
            mx.median
        );
    }
    let ratio = |f: &dyn Fn(&TimerSample) -> f64| med(0, f).median / med(1, f).median;
    println!(
        "rtcore / peer: thread CPU per run {:.2}x; with sysmon's share {:.2}x; mean lateness {:.2}x; \
         p99 lateness {:.2}x; runs/s {:.3}x",
        ratio(&|s| s.cpu_ns_per_run),
        ratio(&|s| s.cpu_ns_per_run + s.sysmon_ns_per_run),
        ratio(&|s| s.mean_us),
        ratio(&|s| s.p99_us),
        ratio(&|s| s.runs as f64 / s.secs)
    );
    println!(
        "(lateness: body start - due time, due times from the registration time (peer: its start) \
         by the rule both follow; the hook's anchor is taken just before rtc_sysmon_hook_add, so its \
         lateness may be overstated by up to that call's duration, shown per sample; cpu/run: the \
         timer thread's schedstat ns / runs; wakeups/run: times it was put on a CPU / runs; \
         switches/run: its voluntary and involuntary context switches (/proc/self/task/TID/status) \
         / runs; others: CPU used by the rest of the machine during the sample, % of all cores; sysmon/run: sysmon's schedstat ns over the same sample / runs)"
    );
    drop(peer);
    drop(awake_tx);
    if let Some(j) = awake_thread {
        j.join().unwrap();
    }

    // (ii) add + remove.
    let pairs = env_u64("RTCORE_BENCH_HOOK_PAIRS", 2000).max(1);
    let never: &'static Rec = Box::leak(Box::new(Rec::new(16)));
    let mut per_pair = Vec::new();
    let mut hook_cpu = Vec::new();
    phase("hooks: add+remove".into());
    for _ in 0..5 {
        let c0 = task_cpu(hooks_tid);
        let t = Instant::now();
        for _ in 0..pairs {
            let id = hook_add(
                c"bench add-remove",
                1_000_000_000,
                hook_body,
                never as *const Rec as *mut c_void,
            );
            hook_remove(id);
        }
        let d = t.elapsed();
        let c1 = task_cpu(hooks_tid);
        per_pair.push(d.as_nanos() as f64 / pairs as f64);
        if let (Some(a), Some(b)) = (c0.sched_ns, c1.sched_ns) {
            hook_cpu.push((b - a) as f64 / pairs as f64);
        }
        progress();
    }
    // Isolated pairs: 1 ms apart, so each add finds the hook thread parked
    // and wakes it.
    let isolated_n = 200;
    let mut isolated = Vec::new();
    let c0 = task_cpu(hooks_tid);
    for _ in 0..isolated_n {
        std::thread::sleep(Duration::from_millis(1));
        let t = Instant::now();
        let id = hook_add(
            c"bench add-remove",
            1_000_000_000,
            hook_body,
            never as *const Rec as *mut c_void,
        );
        hook_remove(id);
        isolated.push(t.elapsed().as_nanos() as f64);
    }
    let c1 = task_cpu(hooks_tid);
    progress();
    assert_eq!(
        never.count.load(SeqCst),
        0,
        "a hook with a 1 s period ran during add+remove"
    );
    assert_eq!(sysmon_stats().hooks, 0, "hooks left registered");
    let st = Stats::of(&per_pair);
    println!();
    println!(
        "rtc_sysmon_hook_add + rtc_sysmon_hook_remove (period 1 s, never runs), caller's wall time \
         per pair, {pairs} pairs x 5 samples: median {:.2} us, min {:.2}, max {:.2}, spread {:.0}%; \
         hook thread CPU per pair: {} us (back to back, its wake-ups coalesce)",
        st.median / 1e3,
        st.min / 1e3,
        st.max / 1e3,
        st.spread() * 100.0,
        if hook_cpu.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.2}", Stats::of(&hook_cpu).median / 1e3)
        }
    );
    let st = Stats::of(&isolated);
    println!(
        "isolated pairs ({isolated_n}, 1 ms apart, each add wakes the parked hook thread): median \
         {:.2} us, min {:.2}, max {:.2}; hook thread CPU per pair {} us, wake-ups per pair {}",
        st.median / 1e3,
        st.min / 1e3,
        st.max / 1e3,
        c0.sched_ns
            .zip(c1.sched_ns)
            .map_or("n/a".into(), |(a, b)| format!(
                "{:.2}",
                (b - a) as f64 / 1e3 / isolated_n as f64
            )),
        c0.slices
            .zip(c1.slices)
            .map_or("n/a".into(), |(a, b)| format!(
                "{:.2}",
                (b - a) as f64 / isolated_n as f64
            ))
    );
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    install_panic_exit();
    let a = load();
    let secs = env_u64("RTCORE_BENCH_SYSMON_SECS", 10).max(1);
    spawn_watchdog(Duration::from_secs(env_u64(
        "RTCORE_BENCH_WATCHDOG_S",
        60 + 2 * secs,
    )));

    common::rtc::banner("sysmon", &machine());
    println!(
        "method:  every rtcore call goes through a dlsym'd pointer into the dlopen'd cdylib; \
         every status checked; the main thread stays unattached and sleeps during windows; a \
         watchdog thread (unattached) runs throughout."
    );

    let mut mp = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_get_maxprocs", unsafe { (a.get_maxprocs)(&mut mp) });
    assert_eq!(mp, 0, "maxprocs should be unlimited (0) at start");

    // sysmon starts with the first attach.
    attach("bench main");
    detach();
    wait_until("sysmon to run", Duration::from_secs(5), || {
        sysmon_stats().running == 1
    });
    let sysmon = task_named("rtcore-sysmon");
    let have_schedstat = task_cpu(sysmon).sched_ns.is_some();
    println!(
        "sysmon: thread 'rtcore-sysmon' tid {sysmon}; per-thread schedstat {}",
        if have_schedstat {
            "available (used for the percentages)"
        } else {
            "NOT available (percentages from 10 ms clock ticks)"
        }
    );
    let spin_per_us = calibrate_spin();
    println!("busy work: {spin_per_us:.0} rounds of spin() per us (best of 5)");

    let only = std::env::var("RTCORE_BENCH_ONLY").ok();
    match only.as_deref() {
        Some("cpu") => sysmon_cpu(sysmon, spin_per_us),
        Some("hooks") => hooks_part(sysmon),
        Some(k) => panic!("RTCORE_BENCH_ONLY={k}: expected cpu or hooks"),
        None => {
            sysmon_cpu(sysmon, spin_per_us);
            hooks_part(sysmon);
        }
    }

    println!();
    println!("load average (1 min) at end: {}", loadavg());
}
