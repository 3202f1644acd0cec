//! Benchmark of ranked mutexes, measured through the C ABI.
//!
//! The built cdylib (`RTCORE_LIB`, default `target/release/librtcore.so`
//! under the crate root) is loaded with `dlopen` and every rtcore function is
//! called through a `dlsym`'d function pointer, as a C program would call it;
//! no rtcore Rust function is called directly.
//!
//! Run: `cargo build --release && cargo bench --bench mutex`
//!
//! Part 1, uncontended: the cost in ns of one lock+unlock pair, for
//!   (a)  rtc_mutex of rank `bench_b` while this thread holds a `bench_a`
//!        mutex (so the order check compares against a held rank), checking on;
//!   (a0) an unranked rtc_mutex with nothing held, checking on (for reference);
//!   (b)  as (a) with checking off (`rtc_lockrank_set_mode(1)`);
//!   (c)  pthread_mutex_lock/unlock (default mutex type);
//!   (d)  parking_lot::Mutex<()> lock/drop;
//!   (e)  two empty calls through a dlsym'd pointer (`rtc_version`): the floor.
//! Samples are taken round robin across the variants so drift hits all alike.
//! A second thread stays alive (blocked) for the whole run, since glibc skips
//! atomics in a single-threaded process.
//!
//! Part 2, contended: two threads each do N lock/increment/unlock on one
//! shared mutex; total operations per second.
//!
//! Tunables (environment): RTCORE_BENCH_ITERS (pairs per uncontended sample,
//! default 10_000_000), RTCORE_BENCH_SAMPLES (default 9),
//! RTCORE_BENCH_CONTENDED_ITERS (per thread, default 2_000_000),
//! RTCORE_BENCH_CONTENDED_RUNS (default 9), RTCORE_BENCH_ONLY (a variant
//! key such as `a` or `contended-rtc` to loop on one variant, for `perf`).

mod common;
use common::rtc::*;
use common::{Stats, loadavg};
use std::cell::UnsafeCell;
use std::ffi::CString;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The C ABI, loaded at run time.

const MODE_OFF: i32 = 1;
const MODE_REPORT: i32 = 2;

#[cold]
#[inline(never)]
fn pthread_fail(what: &str, rc: i32) -> ! {
    panic!(
        "{what} returned {rc} ({})",
        std::io::Error::from_raw_os_error(rc)
    );
}

// ---------------------------------------------------------------------------
// Lock objects, each on its own cache line.

#[repr(C, align(64))]
struct Line<T>(T);

/// A heap-allocated rtc_mutex (its address never changes: rtcore refuses a
/// mutex moved after first use).
struct RtcBox(Box<Line<UnsafeCell<RtcMutex>>>);

impl RtcBox {
    fn new(name: &str, rank: Option<&str>) -> RtcBox {
        // SAFETY: all-zero is a valid (unranked) rtc_mutex.
        let b = RtcBox(Box::new(Line(UnsafeCell::new(unsafe {
            std::mem::zeroed()
        }))));
        let name = CString::new(name).unwrap();
        let rank = rank.map(|r| CString::new(r).unwrap());
        // SAFETY: valid mutex memory and NUL-terminated strings (copied).
        let s = unsafe {
            (api().mutex_init)(
                b.ptr(),
                name.as_ptr(),
                rank.as_ref().map_or(std::ptr::null(), |r| r.as_ptr()),
            )
        };
        check("rtc_mutex_init", s);
        b
    }
    fn ptr(&self) -> *mut RtcMutex {
        self.0.0.get()
    }
    fn lock(&self) {
        // SAFETY: initialised mutex.
        check("rtc_mutex_lock", unsafe { (api().mutex_lock)(self.ptr()) });
    }
    fn unlock(&self) {
        // SAFETY: initialised mutex.
        check("rtc_mutex_unlock", unsafe {
            (api().mutex_unlock)(self.ptr())
        });
    }
}

impl Drop for RtcBox {
    fn drop(&mut self) {
        // SAFETY: initialised, unlocked mutex.
        let s = unsafe { (api().mutex_destroy)(self.ptr()) };
        if s != 0 && !std::thread::panicking() {
            rtc_fail("rtc_mutex_destroy", s);
        }
    }
}

struct PthreadBox(Box<Line<UnsafeCell<libc::pthread_mutex_t>>>);

impl PthreadBox {
    fn new() -> PthreadBox {
        PthreadBox(Box::new(Line(UnsafeCell::new(
            libc::PTHREAD_MUTEX_INITIALIZER,
        ))))
    }
    fn ptr(&self) -> *mut libc::pthread_mutex_t {
        self.0.0.get()
    }
}

impl Drop for PthreadBox {
    fn drop(&mut self) {
        // SAFETY: initialised, unlocked mutex.
        let rc = unsafe { libc::pthread_mutex_destroy(self.ptr()) };
        if rc != 0 && !std::thread::panicking() {
            pthread_fail("pthread_mutex_destroy", rc);
        }
    }
}

// Shared between the contended threads: all access is through the locks.
unsafe impl Sync for RtcBox {}
unsafe impl Sync for PthreadBox {}

struct Counter(Line<UnsafeCell<u64>>);
// SAFETY: only touched under the benchmark's mutex.
unsafe impl Sync for Counter {}

// ---------------------------------------------------------------------------
// Uncontended loops. Every status is checked (a predicted, never-taken branch
// to a cold function), for rtcore and pthread alike.

#[inline(never)]
fn loop_rtc(m: *mut RtcMutex, iters: u64) -> Duration {
    let a = api();
    let (lock, unlock) = (a.mutex_lock, a.mutex_unlock);
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: initialised mutex, not held by this thread.
        let s = unsafe { lock(black_box(m)) };
        if s != 0 {
            rtc_fail("rtc_mutex_lock", s);
        }
        // SAFETY: held by this thread.
        let s = unsafe { unlock(black_box(m)) };
        if s != 0 {
            rtc_fail("rtc_mutex_unlock", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_pthread(m: *mut libc::pthread_mutex_t, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: initialised mutex, not held by this thread.
        let rc = unsafe { libc::pthread_mutex_lock(black_box(m)) };
        if rc != 0 {
            pthread_fail("pthread_mutex_lock", rc);
        }
        // SAFETY: held by this thread.
        let rc = unsafe { libc::pthread_mutex_unlock(black_box(m)) };
        if rc != 0 {
            pthread_fail("pthread_mutex_unlock", rc);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_parking_lot(m: &parking_lot::Mutex<()>, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let g = black_box(m).lock();
        drop(black_box(g));
    }
    t.elapsed()
}

#[inline(never)]
fn loop_floor(iters: u64) -> Duration {
    let f = api().version;
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: rtc_version has no preconditions.
        black_box(unsafe { black_box(f)() });
        // SAFETY: as above.
        black_box(unsafe { black_box(f)() });
    }
    t.elapsed()
}

// ---------------------------------------------------------------------------
// Statistics.

// ---------------------------------------------------------------------------
// Machine description.

fn machine() -> String {
    common::machine_base()
}

// ---------------------------------------------------------------------------
// Part 1: uncontended.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Var {
    RtcRankedOn,
    RtcLeafOn,
    RtcRankedOff,
    Pthread,
    ParkingLot,
    Floor,
}

impl Var {
    const ALL: [Var; 6] = [
        Var::RtcRankedOn,
        Var::RtcLeafOn,
        Var::RtcRankedOff,
        Var::Pthread,
        Var::ParkingLot,
        Var::Floor,
    ];
    fn key(self) -> &'static str {
        match self {
            Var::RtcRankedOn => "a",
            Var::RtcLeafOn => "a0",
            Var::RtcRankedOff => "b",
            Var::Pthread => "c",
            Var::ParkingLot => "d",
            Var::Floor => "e",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Var::RtcRankedOn => "(a)  rtc ranked, bench_a held, checking on",
            Var::RtcLeafOn => "(a0) rtc unranked, nothing held, checking on",
            Var::RtcRankedOff => "(b)  rtc ranked, bench_a held, checking off",
            Var::Pthread => "(c)  pthread_mutex (default type)",
            Var::ParkingLot => "(d)  parking_lot::Mutex<()>",
            Var::Floor => "(e)  floor: 2 empty dlsym'd calls",
        }
    }
}

struct Uncontended {
    outer: RtcBox,
    inner: RtcBox,
    leaf: RtcBox,
    pthread: PthreadBox,
    pl: parking_lot::Mutex<()>,
}

impl Uncontended {
    fn sample(&self, v: Var, iters: u64) -> f64 {
        let d = match v {
            Var::RtcRankedOn => {
                set_mode(MODE_REPORT);
                loop_rtc(self.inner.ptr(), iters)
            }
            Var::RtcLeafOn => {
                set_mode(MODE_REPORT);
                // Release the held bench_a mutex so nothing is held.
                self.outer.unlock();
                let d = loop_rtc(self.leaf.ptr(), iters);
                self.outer.lock();
                d
            }
            Var::RtcRankedOff => {
                set_mode(MODE_OFF);
                let d = loop_rtc(self.inner.ptr(), iters);
                set_mode(MODE_REPORT);
                d
            }
            Var::Pthread => loop_pthread(self.pthread.ptr(), iters),
            Var::ParkingLot => loop_parking_lot(&self.pl, iters),
            Var::Floor => loop_floor(iters),
        };
        d.as_nanos() as f64 / iters as f64
    }
}

fn uncontended(only: Option<&str>) {
    let iters = env_u64("RTCORE_BENCH_ITERS", 10_000_000);
    let samples = env_u64("RTCORE_BENCH_SAMPLES", 9).max(1) as usize;
    let u = Uncontended {
        outer: RtcBox::new("bench outer", Some("bench_a")),
        inner: RtcBox::new("bench inner", Some("bench_b")),
        leaf: RtcBox::new("bench leaf", None),
        pthread: PthreadBox::new(),
        pl: parking_lot::Mutex::new(()),
    };
    // Held for the whole run (released only around the (a0) samples).
    u.outer.lock();
    let v0 = violations();

    if let Some(k) = only {
        let v = *Var::ALL
            .iter()
            .find(|v| v.key() == k)
            .unwrap_or_else(|| panic!("RTCORE_BENCH_ONLY={k}: unknown variant"));
        for _ in 0..samples {
            println!("{}: {:.2} ns/pair", v.label(), u.sample(v, iters));
        }
        u.outer.unlock();
        return;
    }

    // Warm up every variant once (not recorded).
    for v in Var::ALL {
        u.sample(v, iters / 10);
    }
    let results = common::round_robin(&Var::ALL, samples, |_, v| u.sample(v, iters), |_| {});
    u.outer.unlock();
    let v1 = violations();
    assert_eq!(
        v0, v1,
        "the benchmark's lock order is bench_a < bench_b: no violation expected"
    );

    let stats: Vec<Stats> = results.iter().map(|r| Stats::of(r)).collect();
    let idx = |v: Var| Var::ALL.iter().position(|x| *x == v).unwrap();
    let pth = stats[idx(Var::Pthread)].median;
    println!();
    println!(
        "Uncontended lock+unlock pair, ns per pair ({iters} pairs per sample, {samples} samples per variant, round robin)"
    );
    println!(
        "{}",
        common::stats_header(46, &format!("{:>10}", "/pthread"))
    );
    for (i, v) in Var::ALL.iter().enumerate() {
        let st = &stats[i];
        println!(
            "{} {:>9.3}x",
            common::stats_row(46, v.label(), st, 1.0),
            st.median / pth
        );
    }
    let a = stats[idx(Var::RtcRankedOn)].median / pth;
    let b = stats[idx(Var::RtcRankedOff)].median / pth;
    let d = stats[idx(Var::ParkingLot)].median / pth;
    let floor = stats[idx(Var::Floor)].median;
    println!();
    println!("Ratios of medians: a/pthread {a:.3}  b/pthread {b:.3}  d/pthread {d:.3}");
    let pmin = stats[idx(Var::Pthread)].min;
    println!(
        "Ratios of minimums (least disturbed samples): a/pthread {:.3}  b/pthread {:.3}  d/pthread {:.3}",
        stats[idx(Var::RtcRankedOn)].min / pmin,
        stats[idx(Var::RtcRankedOff)].min / pmin,
        stats[idx(Var::ParkingLot)].min / pmin
    );
    println!(
        "Above the call floor ({floor:.2} ns): a {:.2} ns, b {:.2} ns, pthread {:.2} ns",
        stats[idx(Var::RtcRankedOn)].median - floor,
        stats[idx(Var::RtcRankedOff)].median - floor,
        pth - floor
    );
    println!(
        "Goal checking off <= 1.00x pthread: {}",
        verdict(b <= 1.0, b)
    );
    println!(
        "Goal checking on  <= 1.05x pthread: {}",
        verdict(a <= 1.05, a)
    );
}

fn verdict(met: bool, ratio: f64) -> String {
    format!("{} ({ratio:.3}x)", if met { "MET" } else { "MISSED" })
}

// ---------------------------------------------------------------------------
// Part 2: two-thread contended throughput.

#[derive(Clone, Copy, PartialEq, Eq)]
enum CVar {
    Rtc,
    Pthread,
    ParkingLot,
}

impl CVar {
    const ALL: [CVar; 3] = [CVar::Rtc, CVar::Pthread, CVar::ParkingLot];
    fn key(self) -> &'static str {
        match self {
            CVar::Rtc => "contended-rtc",
            CVar::Pthread => "contended-pthread",
            CVar::ParkingLot => "contended-parking_lot",
        }
    }
    fn label(self) -> &'static str {
        match self {
            CVar::Rtc => "rtc ranked (bench_a held), checking on",
            CVar::Pthread => "pthread_mutex (default type)",
            CVar::ParkingLot => "parking_lot::Mutex<()>",
        }
    }
}

/// One contended run: two threads, `iters` lock/increment/unlock each.
/// Returns total operations per second, from the earliest start to the
/// latest finish.
fn contended_run(v: CVar, iters: u64) -> f64 {
    const THREADS: usize = 2;
    let counter = Counter(Line(UnsafeCell::new(0)));
    let barrier = Barrier::new(THREADS);
    let rtc = RtcBox::new("bench contended", Some("bench_b"));
    let pth = PthreadBox::new();
    let pl = parking_lot::Mutex::new(());
    if v == CVar::Rtc {
        set_mode(MODE_REPORT);
    }
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                let (counter, barrier, rtc, pth, pl) = (&counter, &barrier, &rtc, &pth, &pl);
                sc.spawn(move || {
                    let c = counter.0.0.get();
                    match v {
                        CVar::Rtc => {
                            // Each thread holds its own bench_a mutex, as in (a).
                            let outer = RtcBox::new("bench contended outer", Some("bench_a"));
                            outer.lock();
                            let a = api();
                            let (lock, unlock) = (a.mutex_lock, a.mutex_unlock);
                            let m = rtc.ptr();
                            barrier.wait();
                            let t0 = Instant::now();
                            for _ in 0..iters {
                                // SAFETY: initialised mutex.
                                let s = unsafe { lock(m) };
                                if s != 0 {
                                    rtc_fail("rtc_mutex_lock", s);
                                }
                                // SAFETY: the mutex is held.
                                unsafe { *c += 1 };
                                // SAFETY: held by this thread.
                                let s = unsafe { unlock(m) };
                                if s != 0 {
                                    rtc_fail("rtc_mutex_unlock", s);
                                }
                            }
                            let t1 = Instant::now();
                            outer.unlock();
                            (t0, t1)
                        }
                        CVar::Pthread => {
                            let m = pth.ptr();
                            barrier.wait();
                            let t0 = Instant::now();
                            for _ in 0..iters {
                                // SAFETY: initialised mutex.
                                let rc = unsafe { libc::pthread_mutex_lock(m) };
                                if rc != 0 {
                                    pthread_fail("pthread_mutex_lock", rc);
                                }
                                // SAFETY: the mutex is held.
                                unsafe { *c += 1 };
                                // SAFETY: held by this thread.
                                let rc = unsafe { libc::pthread_mutex_unlock(m) };
                                if rc != 0 {
                                    pthread_fail("pthread_mutex_unlock", rc);
                                }
                            }
                            (t0, Instant::now())
                        }
                        CVar::ParkingLot => {
                            barrier.wait();
                            let t0 = Instant::now();
                            for _ in 0..iters {
                                let g = pl.lock();
                                // SAFETY: the mutex is held.
                                unsafe { *c += 1 };
                                drop(g);
                            }
                            (t0, Instant::now())
                        }
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // SAFETY: the threads are joined.
    let total = unsafe { *counter.0.0.get() };
    assert_eq!(
        total,
        iters * THREADS as u64,
        "{}: lost updates: the mutex did not exclude",
        v.label()
    );
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    (iters * THREADS as u64) as f64 / (end - start).as_secs_f64()
}

fn contended(only: Option<&str>) {
    let iters = env_u64("RTCORE_BENCH_CONTENDED_ITERS", 2_000_000);
    let runs = env_u64("RTCORE_BENCH_CONTENDED_RUNS", 9).max(1) as usize;
    if let Some(k) = only {
        let v = *CVar::ALL
            .iter()
            .find(|v| v.key() == k)
            .unwrap_or_else(|| panic!("RTCORE_BENCH_ONLY={k}: unknown variant"));
        for _ in 0..runs {
            println!("{}: {:.2} Mops/s", v.label(), contended_run(v, iters) / 1e6);
        }
        return;
    }
    for v in CVar::ALL {
        contended_run(v, iters / 10);
    }
    let results = common::round_robin(&CVar::ALL, runs, |_, v| contended_run(v, iters), |_| {});
    let stats: Vec<Stats> = results.iter().map(|r| Stats::of(r)).collect();
    let pth = stats[1].median;
    println!();
    println!(
        "Contended: 2 threads x {iters} lock/increment/unlock on one mutex, total Mops/s ({runs} runs per variant, round robin; higher is better)"
    );
    println!(
        "{}",
        common::stats_header(46, &format!("{:>10}", "/pthread"))
    );
    for (i, v) in CVar::ALL.iter().enumerate() {
        let st = &stats[i];
        println!(
            "{} {:>9.3}x",
            common::stats_row(46, v.label(), st, 1e6),
            st.median / pth
        );
    }
    let r = stats[0].median / pth;
    println!();
    println!(
        "Goal contended throughput >= 1.00x pthread: {}",
        verdict(r >= 1.0, r)
    );
}

// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    let a = load();

    // A second thread, blocked for the whole run, so the process is
    // multi-threaded (glibc elides atomics in a single-threaded process).
    let (tx, rx) = mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        let _ = rx.recv();
    });

    let ranks = CString::new("NONE < bench_a;\nbench_a < bench_b;\n").unwrap();
    let src = CString::new("benches/mutex.rs").unwrap();
    // SAFETY: NUL-terminated strings.
    check("rtc_ranks_load", unsafe {
        (a.ranks_load)(ranks.as_ptr(), src.as_ptr())
    });
    set_mode(MODE_REPORT);

    common::rtc::banner("mutex", &machine());
    println!(
        "method:  every rtcore call goes through a dlsym'd pointer into the dlopen'd cdylib; \
         pthread through libc (PLT); parking_lot inlined. \
         One idle thread blocked throughout (process is multi-threaded). \
         Ranks: NONE < bench_a; bench_a < bench_b. Every status checked."
    );

    let only = std::env::var("RTCORE_BENCH_ONLY").ok();
    match only.as_deref() {
        Some(k) if k.starts_with("contended") => contended(Some(k)),
        Some(k) => uncontended(Some(k)),
        None => {
            uncontended(None);
            contended(None);
        }
    }

    println!();
    println!("load average (1 min) at end: {}", loadavg());
    drop(tx);
    idle.join().unwrap();
}
