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
use common::CpuWatch;
use common::rtc::*;
use common::{Stats, install_panic_exit, loadavg, nproc, phase, progress};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The C ABI, loaded at run time.

// ---------------------------------------------------------------------------
// Failure handling: a panic anywhere (a failed status, a failed check) ends
// the process at once, since other threads may be parked inside rtcore for
// good (a world held stopped) and joining them would hang. A watchdog ends
// the process, with a census, if nothing progresses for too long.

// ---------------------------------------------------------------------------
// Statistics.

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
    let results = common::round_robin(&Fast::ALL, samples, |_, v| fast_sample(v, iters), |_| {});
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
        "{}",
        common::stats_header(52, &format!("{:>9} {:>12}", "/floor", "above floor"))
    );
    for (i, v) in Fast::ALL.iter().enumerate() {
        let st = &stats[i];
        println!(
            "{} {:>8.2}x {:>9.2} ns",
            common::stats_row(52, v.label(), st, 1.0),
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
    let _a = load();
    spawn_watchdog(Duration::from_secs(
        env_u64("RTCORE_BENCH_WATCHDOG_S", 60).max(1),
    ));

    // A second thread, blocked for the whole run, so the process is
    // multi-threaded (glibc elides atomics in a single-threaded process).
    let (tx, rx) = mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        let _ = rx.recv();
    });

    common::rtc::banner("world", &machine());
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
