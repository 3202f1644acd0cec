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
//! shared mutex; total operations per second, from the earliest start to the
//! latest finish. Variants: rtc ranked (each thread holds its own bench_a
//! mutex, the shared one is bench_b, checking on) with the threads
//! unattached, and the same with both threads attached (rtc_thread_attach
//! before the loop, rtc_thread_detach after, outside the timed span;
//! maxprocs = nproc); pthread_mutex; parking_lot::Mutex<()>. Runs round
//! robin; ratios of medians against pthread and against parking_lot. Goal,
//! for both rtc variants: >= 1.0x parking_lot and >= 1.6x pthread.
//!
//! Part 3, starvation bound: a hog thread does lock/increment/unlock in a
//! tight loop on one mutex for the whole run; a waiter thread does 200
//! acquisitions, each: sleep 1 ms outside the lock (inside a blocking region
//! when attached), then lock, timed (from just before the call to just after
//! it returns), increment, unlock. The value of a run is the waiter's longest
//! wait; the hog stops when the waiter is done. A run that exceeds its time
//! budget (1 s) stops the hog (so a starving lock cannot stall the benchmark)
//! and is reported as a lower bound (">"). Variants: rtc (bench_b, checking
//! on) unattached and with both threads attached, pthread_mutex,
//! parking_lot::Mutex<()>; 3 runs each, round robin; reports every run's
//! longest wait, the best (smallest) of them, the median wait and the hog's
//! rate. Goal: rtc best-of-three longest wait <= 2 ms. For information, the
//! same best-of-three with each wait less the time the waiter or the hog
//! spent waiting for a CPU during it (run-queue delay from
//! /proc/.../schedstat, read outside the timed span): on a busy machine the
//! raw longest wait is often one scheduler time slice, not the lock.
//!
//! Part 4, rwlocks (skipped, with "rtc_rwlock not in this library: skipped",
//! when the library has no `rtc_rwlock_init`):
//!   (a) uncontended rdlock+unlock and wrlock+unlock pairs, ns per pair, as in
//!       part 1: rtc_rwlock ranked bench_b with a bench_a mutex held, checking
//!       on; pthread_rwlock (default attributes); parking_lot::RwLock<()>.
//!       Goal: rtc read <= 1.1x pthread_rwlock_rdlock (write: information).
//!   (b) mixed: 4 reader threads loop { read lock; read 4 shared words; check
//!       they are equal and never went backwards; unlock } back to back, and
//!       one writer loops { write lock; check the words are what it last
//!       wrote; write all 4 +1; unlock; spin 2 us outside the lock } for 300
//!       ms per run, 5 threads on however many CPUs; total, read and write
//!       operations per second. A failed check ends the benchmark (the lock
//!       did not exclude). 7 runs per variant, round robin. Goal: rtc total
//!       >= 1.0x pthread_rwlock.
//!
//! All parts run with maxprocs = nproc (set at start, restored at the end).
//! Each part prints the CPU time the rest of the machine used while it ran.
//!
//! Tunables (environment): RTCORE_BENCH_ITERS (pairs per uncontended sample,
//! parts 1 and 4a, default 10_000_000), RTCORE_BENCH_SAMPLES (default 9),
//! RTCORE_BENCH_CONTENDED_ITERS (per thread, default 2_000_000),
//! RTCORE_BENCH_CONTENDED_RUNS (default 9), RTCORE_BENCH_STARVE_ACQUIRES
//! (default 200), RTCORE_BENCH_STARVE_GAP_US (the waiter's sleep, default
//! 1000), RTCORE_BENCH_STARVE_CAP_MS (a run's budget, default 1000),
//! RTCORE_BENCH_STARVE_RUNS (default 3), RTCORE_BENCH_RW_MS (a mixed run,
//! default 300), RTCORE_BENCH_RW_WRITER_PAUSE_NS (default 2000),
//! RTCORE_BENCH_RW_RUNS (default 7), RTCORE_BENCH_PARTS (a comma-separated
//! subset of uncontended,contended,starve,rwlock; default all),
//! RTCORE_BENCH_WATCHDOG_S (abort if nothing progresses for this long,
//! default 60), RTCORE_BENCH_ONLY (one variant key, looped on for `perf`:
//! part 1 `a` `a0` `b` `c` `d` `e`; part 2 `contended-rtc`,
//! `contended-rtc-attached`, `contended-pthread`, `contended-parking_lot`;
//! part 3 `starve-rtc`, `starve-rtc-attached`, `starve-pthread`,
//! `starve-parking_lot`; part 4 `rw-read-rtc`, `rw-read-pthread`,
//! `rw-read-parking_lot`, `rw-write-rtc`, `rw-write-pthread`,
//! `rw-write-parking_lot`, `rw-mixed-rtc`, `rw-mixed-pthread`,
//! `rw-mixed-parking_lot`).

mod common;
use common::rtc::*;
use common::{CpuWatch, Stats, install_panic_exit, loadavg, nproc, phase};
use std::cell::UnsafeCell;
use std::ffi::CString;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};
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
    fn lock(&self) {
        // SAFETY: initialised mutex.
        let rc = unsafe { libc::pthread_mutex_lock(self.ptr()) };
        if rc != 0 {
            pthread_fail("pthread_mutex_lock", rc);
        }
    }
    fn unlock(&self) {
        // SAFETY: held by this thread.
        let rc = unsafe { libc::pthread_mutex_unlock(self.ptr()) };
        if rc != 0 {
            pthread_fail("pthread_mutex_unlock", rc);
        }
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

/// "MET" or "MISSED".
fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// The variants of a part: a key for RTCORE_BENCH_ONLY and a label.
trait Variant: Copy + PartialEq {
    fn key(self) -> &'static str;
    fn label(self) -> &'static str;
}

/// The variant RTCORE_BENCH_ONLY names.
fn pick<V: Variant>(all: &[V], k: &str) -> V {
    *all.iter()
        .find(|v| v.key() == k)
        .unwrap_or_else(|| panic!("RTCORE_BENCH_ONLY={k}: unknown variant"))
}

fn position<V: Variant>(all: &[V], v: V) -> usize {
    all.iter().position(|x| *x == v).unwrap()
}

// ---------------------------------------------------------------------------
// Part 2: two-thread contended throughput.

#[derive(Clone, Copy, PartialEq, Eq)]
enum CVar {
    Rtc,
    RtcAttached,
    Pthread,
    ParkingLot,
}

impl CVar {
    const ALL: [CVar; 4] = [
        CVar::Rtc,
        CVar::RtcAttached,
        CVar::Pthread,
        CVar::ParkingLot,
    ];
}

impl Variant for CVar {
    fn key(self) -> &'static str {
        match self {
            CVar::Rtc => "contended-rtc",
            CVar::RtcAttached => "contended-rtc-attached",
            CVar::Pthread => "contended-pthread",
            CVar::ParkingLot => "contended-parking_lot",
        }
    }
    fn label(self) -> &'static str {
        match self {
            CVar::Rtc => "rtc ranked (bench_a held), checking on",
            CVar::RtcAttached => "rtc as above, both threads attached",
            CVar::Pthread => "pthread_mutex (default type)",
            CVar::ParkingLot => "parking_lot::Mutex<()>",
        }
    }
}

/// One contended run: two threads, `iters` lock/increment/unlock each.
/// Returns total operations per second, from the earliest start to the
/// latest finish. Attaching and detaching are outside the timed span.
fn contended_run(v: CVar, iters: u64) -> f64 {
    const THREADS: usize = 2;
    let counter = Counter(Line(UnsafeCell::new(0)));
    let barrier = Barrier::new(THREADS);
    let rtc = RtcBox::new("bench contended", Some("bench_b"));
    let pth = PthreadBox::new();
    let pl = parking_lot::Mutex::new(());
    if matches!(v, CVar::Rtc | CVar::RtcAttached) {
        set_mode(MODE_REPORT);
    }
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|i| {
                let (counter, barrier, rtc, pth, pl) = (&counter, &barrier, &rtc, &pth, &pl);
                sc.spawn(move || {
                    let c = counter.0.0.get();
                    match v {
                        CVar::Rtc | CVar::RtcAttached => {
                            let attached = v == CVar::RtcAttached;
                            if attached {
                                attach(&format!("bench contended {i}"));
                            }
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
                            drop(outer);
                            if attached {
                                detach();
                            }
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
        let v = pick(&CVar::ALL, k);
        for _ in 0..runs {
            phase(format!("contended {k}"));
            println!("{}: {:.2} Mops/s", v.label(), contended_run(v, iters) / 1e6);
        }
        return;
    }
    for v in CVar::ALL {
        phase(format!("contended warm-up {}", v.key()));
        contended_run(v, iters / 10);
    }
    let results = common::round_robin(
        &CVar::ALL,
        runs,
        |_, v| {
            phase(format!("contended {}", v.key()));
            contended_run(v, iters)
        },
        |_| {},
    );
    let stats: Vec<Stats> = results.iter().map(|r| Stats::of(r)).collect();
    let med = |v: CVar| stats[position(&CVar::ALL, v)].median;
    let (pth, pl) = (med(CVar::Pthread), med(CVar::ParkingLot));
    println!();
    println!(
        "Contended: 2 threads x {iters} lock/increment/unlock on one mutex, total Mops/s ({runs} runs per variant, round robin; higher is better)"
    );
    println!(
        "{}",
        common::stats_header(46, &format!("{:>10} {:>10}", "/pthread", "/p_lot"))
    );
    for (i, v) in CVar::ALL.iter().enumerate() {
        let st = &stats[i];
        println!(
            "{} {:>9.3}x {:>9.3}x",
            common::stats_row(46, v.label(), st, 1e6),
            st.median / pth,
            st.median / pl
        );
    }
    println!();
    for (v, name) in [(CVar::Rtc, "unattached"), (CVar::RtcAttached, "attached  ")] {
        let (rp, rl) = (med(v) / pth, med(v) / pl);
        println!(
            "Goal rtc {name} contended >= 1.00x parking_lot and >= 1.60x pthread: {} ({rl:.3}x parking_lot, {rp:.3}x pthread)",
            met(rl >= 1.0 && rp >= 1.6)
        );
    }
}

// ---------------------------------------------------------------------------
// Part 3: starvation bound.

#[derive(Clone, Copy, PartialEq, Eq)]
enum SVar {
    Rtc,
    RtcAttached,
    Pthread,
    ParkingLot,
}

impl SVar {
    const ALL: [SVar; 4] = [
        SVar::Rtc,
        SVar::RtcAttached,
        SVar::Pthread,
        SVar::ParkingLot,
    ];
}

impl Variant for SVar {
    fn key(self) -> &'static str {
        match self {
            SVar::Rtc => "starve-rtc",
            SVar::RtcAttached => "starve-rtc-attached",
            SVar::Pthread => "starve-pthread",
            SVar::ParkingLot => "starve-parking_lot",
        }
    }
    fn label(self) -> &'static str {
        match self {
            SVar::Rtc => "rtc ranked, checking on",
            SVar::RtcAttached => "rtc as above, both threads attached",
            SVar::Pthread => "pthread_mutex (default type)",
            SVar::ParkingLot => "parking_lot::Mutex<()>",
        }
    }
}

/// One mutex of the kind a variant measures.
enum AnyMutex {
    Rtc(RtcBox),
    Pthread(PthreadBox),
    ParkingLot(parking_lot::Mutex<()>),
}

impl AnyMutex {
    /// Run `f` with the mutex held.
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            AnyMutex::Rtc(m) => {
                m.lock();
                let r = f();
                m.unlock();
                r
            }
            AnyMutex::Pthread(m) => {
                m.lock();
                let r = f();
                m.unlock();
                r
            }
            AnyMutex::ParkingLot(m) => {
                let g = m.lock();
                let r = f();
                drop(g);
                r
            }
        }
    }
}

struct StarveParams {
    acquires: u64,
    gap: Duration,
    budget: Duration,
}

/// One starvation run.
struct StarveRun {
    /// The longest of the waiter's lock() times.
    longest: Duration,
    /// Their median.
    median: Duration,
    /// The longest wait less the time the waiter or the hog spent waiting
    /// for a CPU during it (run-queue delay, from schedstat): an estimate of
    /// the lock's own share, the machine's noise taken out.
    longest_less_runq: Duration,
    /// The run hit its time budget: the hog stopped while the waiter was
    /// still waiting, so `longest` is only a lower bound.
    capped: bool,
    /// The hog's lock/unlock pairs per second.
    hog_rate: f64,
}

/// A thread's total run-queue delay so far, ns: the second field of its
/// schedstat (0 if unreadable).
fn runq_ns(schedstat: &str) -> u64 {
    std::fs::read_to_string(schedstat)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// One starvation run: a hog thread locks/increments/unlocks in a tight loop
/// until the waiter is done; the waiter does `acquires` times: sleep `gap`
/// outside the lock (inside a blocking region when attached), then lock,
/// timed, increment, unlock. The hog also stops (and the run is marked
/// capped) when the run exceeds `budget`, so a lock that starves the waiter
/// cannot stall the benchmark.
fn starve_run(v: SVar, p: &StarveParams) -> StarveRun {
    let m = match v {
        SVar::Rtc | SVar::RtcAttached => {
            set_mode(MODE_REPORT);
            AnyMutex::Rtc(RtcBox::new("bench starve", Some("bench_b")))
        }
        SVar::Pthread => AnyMutex::Pthread(PthreadBox::new()),
        SVar::ParkingLot => AnyMutex::ParkingLot(parking_lot::Mutex::new(())),
    };
    let attached = v == SVar::RtcAttached;
    let counter = Counter(Line(UnsafeCell::new(0)));
    let stop = AtomicBool::new(false);
    let capped = AtomicBool::new(false);
    let barrier = Barrier::new(2);
    let hog_tid = AtomicI32::new(0);
    let (hog, mut waits) = std::thread::scope(|sc| {
        let (m, counter, stop, capped, barrier, hog_tid) =
            (&m, &counter, &stop, &capped, &barrier, &hog_tid);
        let hog = sc.spawn(move || {
            if attached {
                attach("bench starve hog");
            }
            let c = counter.0.0.get();
            // SAFETY: gettid has no preconditions.
            hog_tid.store(unsafe { libc::gettid() }, Relaxed);
            barrier.wait();
            let t0 = Instant::now();
            let mut n = 0u64;
            loop {
                // SAFETY: the mutex is held.
                m.with(|| unsafe { *c += 1 });
                n += 1;
                if stop.load(Relaxed) {
                    break;
                }
                if n % 1024 == 0 && t0.elapsed() > p.budget {
                    capped.store(true, Relaxed);
                    break;
                }
            }
            let rate = n as f64 / t0.elapsed().as_secs_f64();
            if attached {
                detach();
            }
            (n, rate)
        });
        let waiter = sc.spawn(move || {
            if attached {
                attach("bench starve waiter");
            }
            let c = counter.0.0.get();
            let mut waits = Vec::with_capacity(p.acquires as usize);
            barrier.wait();
            let me = "/proc/thread-self/schedstat";
            let hog = format!("/proc/self/task/{}/schedstat", hog_tid.load(Relaxed));
            for _ in 0..p.acquires {
                if capped.load(Relaxed) {
                    break;
                }
                if attached {
                    enter_blocking(c"bench starve gap");
                    std::thread::sleep(p.gap);
                    exit_blocking();
                } else {
                    std::thread::sleep(p.gap);
                }
                // Outside the timed span: both threads' run-queue delay.
                let rq0 = runq_ns(me) + runq_ns(&hog);
                let t = Instant::now();
                let (w, rq1) = m.with(|| {
                    let w = t.elapsed();
                    // SAFETY: the mutex is held.
                    unsafe { *c += 1 };
                    (w, runq_ns(me) + runq_ns(&hog))
                });
                let rq = Duration::from_nanos(rq1.saturating_sub(rq0));
                waits.push((w, w.saturating_sub(rq)));
            }
            stop.store(true, Relaxed);
            if attached {
                detach();
            }
            waits
        });
        (hog.join().unwrap(), waiter.join().unwrap())
    });
    // SAFETY: the threads are joined.
    let total = unsafe { *counter.0.0.get() };
    assert_eq!(
        total,
        hog.0 + waits.len() as u64,
        "{}: lost updates: the mutex did not exclude",
        v.label()
    );
    waits.sort();
    StarveRun {
        longest: waits.last().map_or(Duration::ZERO, |w| w.0),
        median: waits.get(waits.len() / 2).map_or(Duration::ZERO, |w| w.0),
        longest_less_runq: waits.iter().map(|w| w.1).max().unwrap_or_default(),
        capped: capped.load(Relaxed),
        hog_rate: hog.1,
    }
}

/// A longest wait in ms; ">" marks a lower bound (the run was capped).
fn fmt_wait(r: &StarveRun) -> String {
    format!(
        "{}{:.3}",
        if r.capped { ">" } else { "" },
        r.longest.as_secs_f64() * 1e3
    )
}

/// The smallest longest-wait-less-run-queue-delay of some runs, in ms
/// (">": every run was capped, a lower bound).
fn fmt_less_runq(rs: &[StarveRun]) -> String {
    let (capped, d) = rs
        .iter()
        .map(|r| (r.capped, r.longest_less_runq))
        .min()
        .unwrap();
    format!(
        "{}{:.3}",
        if capped { ">" } else { "" },
        d.as_secs_f64() * 1e3
    )
}

fn starve(only: Option<&str>) {
    let p = StarveParams {
        acquires: env_u64("RTCORE_BENCH_STARVE_ACQUIRES", 200).max(1),
        gap: Duration::from_micros(env_u64("RTCORE_BENCH_STARVE_GAP_US", 1000)),
        budget: Duration::from_millis(env_u64("RTCORE_BENCH_STARVE_CAP_MS", 1000).max(1)),
    };
    let runs = env_u64("RTCORE_BENCH_STARVE_RUNS", 3).max(1) as usize;
    if let Some(k) = only {
        let v = pick(&SVar::ALL, k);
        for _ in 0..runs {
            phase(format!("starvation {k}"));
            let r = starve_run(v, &p);
            println!(
                "{}: longest wait {} ms ({:.3} ms less run-queue delay), median {:.1} us, hog {:.2} Mops/s",
                v.label(),
                fmt_wait(&r),
                r.longest_less_runq.as_secs_f64() * 1e3,
                r.median.as_secs_f64() * 1e6,
                r.hog_rate / 1e6
            );
        }
        return;
    }
    let results = common::round_robin(
        &SVar::ALL,
        runs,
        |_, v| {
            phase(format!("starvation {}", v.key()));
            starve_run(v, &p)
        },
        |_| {},
    );
    // The best run: the smallest longest wait (a capped run counts as its
    // lower bound, so it is best only if every run was capped).
    let best = |rs: &[StarveRun]| -> usize {
        (0..rs.len())
            .min_by_key(|&i| (rs[i].capped, rs[i].longest))
            .unwrap()
    };
    println!();
    println!(
        "Starvation: one thread does lock/increment/unlock in a tight loop; another does {} acquisitions, \
         each after sleeping {} us outside the lock, timing lock(); longest wait of a run, ms \
         ({runs} runs per variant, round robin; a run stops after {} ms: \">\" marks a capped run, \
         a lower bound; lower is better). less runq: the best run by the same measure with each wait \
         less the time the waiter or the hog spent waiting for a CPU during it (schedstat run-queue \
         delay): an estimate of the lock's own share on a busy machine",
        p.acquires,
        p.gap.as_micros(),
        p.budget.as_millis()
    );
    let runs_hdr: String = (1..=runs)
        .map(|i| format!(" {:>9}", format!("run {i}")))
        .collect();
    println!(
        "{:<46} {:>9}{runs_hdr} {:>10} {:>10} {:>10}",
        "variant", "best", "less runq", "median us", "hog Mops/s"
    );
    for (i, v) in SVar::ALL.iter().enumerate() {
        let rs = &results[i];
        let all: String = rs.iter().map(|r| format!(" {:>9}", fmt_wait(r))).collect();
        let medians: Vec<f64> = rs.iter().map(|r| r.median.as_secs_f64() * 1e6).collect();
        let rates: Vec<f64> = rs.iter().map(|r| r.hog_rate / 1e6).collect();
        println!(
            "{:<46} {:>9}{all} {:>10} {:>10.1} {:>10.2}",
            v.label(),
            fmt_wait(&rs[best(rs)]),
            fmt_less_runq(rs),
            Stats::of(&medians).median,
            Stats::of(&rates).median
        );
    }
    println!();
    for (v, name) in [(SVar::Rtc, "unattached"), (SVar::RtcAttached, "attached  ")] {
        let rs = &results[position(&SVar::ALL, v)];
        let b = &rs[best(rs)];
        println!(
            "Goal rtc {name} longest wait <= 2 ms (best of {runs} runs): {} ({} ms)",
            met(!b.capped && b.longest <= Duration::from_millis(2)),
            fmt_wait(b)
        );
    }
    println!(
        "(information) rtc longest wait less run-queue delay, best of {runs} runs: unattached {} ms, attached {} ms",
        fmt_less_runq(&results[position(&SVar::ALL, SVar::Rtc)]),
        fmt_less_runq(&results[position(&SVar::ALL, SVar::RtcAttached)])
    );
}

// ---------------------------------------------------------------------------
// Part 4: rwlocks.

fn rw() -> &'static RwLockApi {
    api()
        .rwlock
        .as_ref()
        .expect("rtc_rwlock not in this library")
}

/// A heap-allocated rtc_rwlock (its address never changes).
struct RtcRwBox(Box<Line<UnsafeCell<RtcRwLock>>>);

impl RtcRwBox {
    fn new(name: &str, rank: Option<&str>) -> RtcRwBox {
        // SAFETY: all-zero is a valid (unranked) rtc_rwlock.
        let b = RtcRwBox(Box::new(Line(UnsafeCell::new(unsafe {
            std::mem::zeroed()
        }))));
        let name = CString::new(name).unwrap();
        let rank = rank.map(|r| CString::new(r).unwrap());
        // SAFETY: valid rwlock memory and NUL-terminated strings (copied).
        let s = unsafe {
            (rw().init)(
                b.ptr(),
                name.as_ptr(),
                rank.as_ref().map_or(std::ptr::null(), |r| r.as_ptr()),
            )
        };
        check("rtc_rwlock_init", s);
        b
    }
    fn ptr(&self) -> *mut RtcRwLock {
        self.0.0.get()
    }
    fn rdlock(&self) {
        // SAFETY: initialised rwlock.
        check("rtc_rwlock_rdlock", unsafe { (rw().rdlock)(self.ptr()) });
    }
    fn wrlock(&self) {
        // SAFETY: initialised rwlock.
        check("rtc_rwlock_wrlock", unsafe { (rw().wrlock)(self.ptr()) });
    }
    fn unlock(&self) {
        // SAFETY: initialised rwlock.
        check("rtc_rwlock_unlock", unsafe { (rw().unlock)(self.ptr()) });
    }
}

impl Drop for RtcRwBox {
    fn drop(&mut self) {
        // SAFETY: initialised, unlocked rwlock.
        let s = unsafe { (rw().destroy)(self.ptr()) };
        if s != 0 && !std::thread::panicking() {
            rtc_fail("rtc_rwlock_destroy", s);
        }
    }
}

struct PthreadRwBox(Box<Line<UnsafeCell<libc::pthread_rwlock_t>>>);

impl PthreadRwBox {
    /// Default attributes (glibc: prefer readers).
    fn new() -> PthreadRwBox {
        PthreadRwBox(Box::new(Line(UnsafeCell::new(
            libc::PTHREAD_RWLOCK_INITIALIZER,
        ))))
    }
    fn ptr(&self) -> *mut libc::pthread_rwlock_t {
        self.0.0.get()
    }
    fn rdlock(&self) {
        // SAFETY: initialised rwlock.
        let rc = unsafe { libc::pthread_rwlock_rdlock(self.ptr()) };
        if rc != 0 {
            pthread_fail("pthread_rwlock_rdlock", rc);
        }
    }
    fn wrlock(&self) {
        // SAFETY: initialised rwlock.
        let rc = unsafe { libc::pthread_rwlock_wrlock(self.ptr()) };
        if rc != 0 {
            pthread_fail("pthread_rwlock_wrlock", rc);
        }
    }
    fn unlock(&self) {
        // SAFETY: held by this thread.
        let rc = unsafe { libc::pthread_rwlock_unlock(self.ptr()) };
        if rc != 0 {
            pthread_fail("pthread_rwlock_unlock", rc);
        }
    }
}

impl Drop for PthreadRwBox {
    fn drop(&mut self) {
        // SAFETY: initialised, unlocked rwlock.
        let rc = unsafe { libc::pthread_rwlock_destroy(self.ptr()) };
        if rc != 0 && !std::thread::panicking() {
            pthread_fail("pthread_rwlock_destroy", rc);
        }
    }
}

unsafe impl Sync for RtcRwBox {}
unsafe impl Sync for PthreadRwBox {}

#[inline(never)]
fn loop_rtc_rw(l: *mut RtcRwLock, write: bool, iters: u64) -> Duration {
    let a = rw();
    let (lock, what) = if write {
        (a.wrlock, "rtc_rwlock_wrlock")
    } else {
        (a.rdlock, "rtc_rwlock_rdlock")
    };
    let unlock = a.unlock;
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: initialised rwlock, not held by this thread.
        let s = unsafe { lock(black_box(l)) };
        if s != 0 {
            rtc_fail(what, s);
        }
        // SAFETY: held by this thread.
        let s = unsafe { unlock(black_box(l)) };
        if s != 0 {
            rtc_fail("rtc_rwlock_unlock", s);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_pthread_rw<const WRITE: bool>(l: *mut libc::pthread_rwlock_t, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: initialised rwlock, not held by this thread.
        let rc = unsafe {
            if WRITE {
                libc::pthread_rwlock_wrlock(black_box(l))
            } else {
                libc::pthread_rwlock_rdlock(black_box(l))
            }
        };
        if rc != 0 {
            pthread_fail("pthread_rwlock_(rd|wr)lock", rc);
        }
        // SAFETY: held by this thread.
        let rc = unsafe { libc::pthread_rwlock_unlock(black_box(l)) };
        if rc != 0 {
            pthread_fail("pthread_rwlock_unlock", rc);
        }
    }
    t.elapsed()
}

#[inline(never)]
fn loop_parking_lot_rw<const WRITE: bool>(l: &parking_lot::RwLock<()>, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        if WRITE {
            let g = black_box(l).write();
            drop(black_box(g));
        } else {
            let g = black_box(l).read();
            drop(black_box(g));
        }
    }
    t.elapsed()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RVar {
    ReadRtc,
    ReadPthread,
    ReadParkingLot,
    WriteRtc,
    WritePthread,
    WriteParkingLot,
}

impl RVar {
    const ALL: [RVar; 6] = [
        RVar::ReadRtc,
        RVar::ReadPthread,
        RVar::ReadParkingLot,
        RVar::WriteRtc,
        RVar::WritePthread,
        RVar::WriteParkingLot,
    ];
    /// The pthread variant of the same mode (the ratio's denominator).
    fn pthread(self) -> RVar {
        match self {
            RVar::ReadRtc | RVar::ReadPthread | RVar::ReadParkingLot => RVar::ReadPthread,
            _ => RVar::WritePthread,
        }
    }
}

impl Variant for RVar {
    fn key(self) -> &'static str {
        match self {
            RVar::ReadRtc => "rw-read-rtc",
            RVar::ReadPthread => "rw-read-pthread",
            RVar::ReadParkingLot => "rw-read-parking_lot",
            RVar::WriteRtc => "rw-write-rtc",
            RVar::WritePthread => "rw-write-pthread",
            RVar::WriteParkingLot => "rw-write-parking_lot",
        }
    }
    fn label(self) -> &'static str {
        match self {
            RVar::ReadRtc => "read:  rtc_rwlock ranked, bench_a held, on",
            RVar::ReadPthread => "read:  pthread_rwlock (default attr)",
            RVar::ReadParkingLot => "read:  parking_lot::RwLock<()>",
            RVar::WriteRtc => "write: rtc_rwlock ranked, bench_a held, on",
            RVar::WritePthread => "write: pthread_rwlock (default attr)",
            RVar::WriteParkingLot => "write: parking_lot::RwLock<()>",
        }
    }
}

struct RwUncontended {
    outer: RtcBox,
    rtc: RtcRwBox,
    pthread: PthreadRwBox,
    pl: parking_lot::RwLock<()>,
}

impl RwUncontended {
    fn sample(&self, v: RVar, iters: u64) -> f64 {
        let d = match v {
            RVar::ReadRtc => loop_rtc_rw(self.rtc.ptr(), false, iters),
            RVar::WriteRtc => loop_rtc_rw(self.rtc.ptr(), true, iters),
            RVar::ReadPthread => loop_pthread_rw::<false>(self.pthread.ptr(), iters),
            RVar::WritePthread => loop_pthread_rw::<true>(self.pthread.ptr(), iters),
            RVar::ReadParkingLot => loop_parking_lot_rw::<false>(&self.pl, iters),
            RVar::WriteParkingLot => loop_parking_lot_rw::<true>(&self.pl, iters),
        };
        d.as_nanos() as f64 / iters as f64
    }
}

fn rw_uncontended(only: Option<&str>) {
    let iters = env_u64("RTCORE_BENCH_ITERS", 10_000_000);
    let samples = env_u64("RTCORE_BENCH_SAMPLES", 9).max(1) as usize;
    set_mode(MODE_REPORT);
    let u = RwUncontended {
        outer: RtcBox::new("bench rw outer", Some("bench_a")),
        rtc: RtcRwBox::new("bench rw", Some("bench_b")),
        pthread: PthreadRwBox::new(),
        pl: parking_lot::RwLock::new(()),
    };
    // Held for the whole part, as in (a).
    u.outer.lock();
    let v0 = violations();
    if let Some(k) = only {
        let v = pick(&RVar::ALL, k);
        for _ in 0..samples {
            phase(format!("rwlock {k}"));
            println!("{}: {:.2} ns/pair", v.label(), u.sample(v, iters));
        }
        u.outer.unlock();
        return;
    }
    for v in RVar::ALL {
        phase(format!("rwlock warm-up {}", v.key()));
        u.sample(v, iters / 10);
    }
    let results = common::round_robin(
        &RVar::ALL,
        samples,
        |_, v| {
            phase(format!("rwlock {}", v.key()));
            u.sample(v, iters)
        },
        |_| {},
    );
    u.outer.unlock();
    assert_eq!(
        v0,
        violations(),
        "the benchmark's lock order is bench_a < bench_b: no violation expected"
    );
    let stats: Vec<Stats> = results.iter().map(|r| Stats::of(r)).collect();
    let st = |v: RVar| &stats[position(&RVar::ALL, v)];
    println!();
    println!(
        "rwlock uncontended lock+unlock pair, ns per pair ({iters} pairs per sample, {samples} samples per variant, round robin)"
    );
    println!(
        "{}",
        common::stats_header(46, &format!("{:>10}", "/pthread"))
    );
    for (i, v) in RVar::ALL.iter().enumerate() {
        println!(
            "{} {:>9.3}x",
            common::stats_row(46, v.label(), &stats[i], 1.0),
            stats[i].median / st(v.pthread()).median
        );
    }
    let r = st(RVar::ReadRtc).median / st(RVar::ReadPthread).median;
    let w = st(RVar::WriteRtc).median / st(RVar::WritePthread).median;
    println!();
    println!(
        "Ratios of minimums (least disturbed samples): rtc read/pthread {:.3}  rtc write/pthread {:.3}",
        st(RVar::ReadRtc).min / st(RVar::ReadPthread).min,
        st(RVar::WriteRtc).min / st(RVar::WritePthread).min
    );
    println!(
        "Goal rtc read <= 1.10x pthread_rwlock_rdlock: {}",
        verdict(r <= 1.1, r)
    );
    println!("(for information) rtc write / pthread_rwlock_wrlock: {w:.3}x");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MVar {
    Rtc,
    Pthread,
    ParkingLot,
}

impl MVar {
    const ALL: [MVar; 3] = [MVar::Rtc, MVar::Pthread, MVar::ParkingLot];
}

impl Variant for MVar {
    fn key(self) -> &'static str {
        match self {
            MVar::Rtc => "rw-mixed-rtc",
            MVar::Pthread => "rw-mixed-pthread",
            MVar::ParkingLot => "rw-mixed-parking_lot",
        }
    }
    fn label(self) -> &'static str {
        match self {
            MVar::Rtc => "rtc_rwlock ranked (bench_a held), checking on",
            MVar::Pthread => "pthread_rwlock (default attr)",
            MVar::ParkingLot => "parking_lot::RwLock<()>",
        }
    }
}

/// One rwlock of the kind a variant measures.
enum AnyRwLock {
    Rtc(RtcRwBox),
    Pthread(PthreadRwBox),
    ParkingLot(parking_lot::RwLock<()>),
}

impl AnyRwLock {
    /// Run `f` with the lock held for reading.
    #[inline(always)]
    fn read<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            AnyRwLock::Rtc(l) => {
                l.rdlock();
                let r = f();
                l.unlock();
                r
            }
            AnyRwLock::Pthread(l) => {
                l.rdlock();
                let r = f();
                l.unlock();
                r
            }
            AnyRwLock::ParkingLot(l) => {
                let g = l.read();
                let r = f();
                drop(g);
                r
            }
        }
    }
    /// Run `f` with the lock held for writing.
    #[inline(always)]
    fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            AnyRwLock::Rtc(l) => {
                l.wrlock();
                let r = f();
                l.unlock();
                r
            }
            AnyRwLock::Pthread(l) => {
                l.wrlock();
                let r = f();
                l.unlock();
                r
            }
            AnyRwLock::ParkingLot(l) => {
                let g = l.write();
                let r = f();
                drop(g);
                r
            }
        }
    }
}

/// The words the mixed run's rwlock guards.
struct Words(Line<UnsafeCell<[u64; 4]>>);
// SAFETY: only touched under the benchmark's rwlock.
unsafe impl Sync for Words {}

const MIXED_READERS: usize = 4;

struct MixedParams {
    duration: Duration,
    writer_pause: Duration,
}

/// What one thread of a mixed run did: operations, start, end.
type Span = (u64, Instant, Instant);

/// One mixed run: reads and writes per second.
struct MixedRun {
    reads: f64,
    writes: f64,
}

/// Spin (not sleep) for `d`.
fn spin_for(d: Duration) {
    if d.is_zero() {
        return;
    }
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// One mixed run: MIXED_READERS readers loop { read lock; read the 4 words
/// and check they are equal and never went backwards; unlock } and one
/// writer loops { write lock; check the words are what it last wrote; write
/// them all +1; unlock; spin `writer_pause` }, for `duration`.
fn mixed_run(v: MVar, p: &MixedParams) -> MixedRun {
    let l = match v {
        MVar::Rtc => {
            set_mode(MODE_REPORT);
            AnyRwLock::Rtc(RtcRwBox::new("bench rw mixed", Some("bench_b")))
        }
        MVar::Pthread => AnyRwLock::Pthread(PthreadRwBox::new()),
        MVar::ParkingLot => AnyRwLock::ParkingLot(parking_lot::RwLock::new(())),
    };
    let words = Words(Line(UnsafeCell::new([0; 4])));
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(MIXED_READERS + 2);
    let label = v.label();
    let (readers, writer): (Vec<Span>, Span) = std::thread::scope(|sc| {
        let (l, words, stop, barrier) = (&l, &words, &stop, &barrier);
        // Each rtc thread holds its own bench_a mutex, as in (a).
        let outer = move || {
            (v == MVar::Rtc).then(|| {
                let o = RtcBox::new("bench rw mixed outer", Some("bench_a"));
                o.lock();
                o
            })
        };
        let readers: Vec<_> = (0..MIXED_READERS)
                .map(|_| {
                    sc.spawn(move || {
                        let o = outer();
                        let w = words.0.0.get() as *const u64;
                        let mut last = 0u64;
                        let mut n = 0u64;
                        barrier.wait();
                        let t0 = Instant::now();
                        while !stop.load(Relaxed) {
                            // SAFETY: read under the read lock.
                            let x = l.read(|| unsafe {
                                [
                                    w.read_volatile(),
                                    w.add(1).read_volatile(),
                                    w.add(2).read_volatile(),
                                    w.add(3).read_volatile(),
                                ]
                            });
                            if x[1] != x[0] || x[2] != x[0] || x[3] != x[0] || x[0] < last {
                                panic!(
                                    "{label}: a reader saw {x:?} after {last}: the rwlock did not exclude the writer"
                                );
                            }
                            last = x[0];
                            n += 1;
                        }
                        let t1 = Instant::now();
                        if let Some(o) = o {
                            o.unlock();
                        }
                        (n, t0, t1)
                    })
                })
                .collect();
        let writer = sc.spawn(move || {
                let o = outer();
                let w = words.0.0.get() as *mut u64;
                let mut n = 0u64;
                barrier.wait();
                let t0 = Instant::now();
                while !stop.load(Relaxed) {
                    // SAFETY: read and written under the write lock.
                    let seen = l.write(|| unsafe {
                        let seen = w.read_volatile();
                        for i in 0..4 {
                            w.add(i).write_volatile(seen + 1);
                        }
                        seen
                    });
                    if seen != n {
                        panic!(
                            "{label}: the writer found {seen}, having written {n}: the rwlock did not exclude"
                        );
                    }
                    n += 1;
                    spin_for(p.writer_pause);
                }
                let t1 = Instant::now();
                if let Some(o) = o {
                    o.unlock();
                }
                (n, t0, t1)
            });
        barrier.wait();
        std::thread::sleep(p.duration);
        stop.store(true, Relaxed);
        (
            readers.into_iter().map(|h| h.join().unwrap()).collect(),
            writer.join().unwrap(),
        )
    });
    // SAFETY: the threads are joined.
    let final_words = unsafe { *words.0.0.get() };
    assert_eq!(
        final_words, [writer.0; 4],
        "{label}: the words are not what the writer last wrote"
    );
    let start = readers.iter().map(|r| r.1).chain([writer.1]).min().unwrap();
    let end = readers.iter().map(|r| r.2).chain([writer.2]).max().unwrap();
    let secs = (end - start).as_secs_f64();
    MixedRun {
        reads: readers.iter().map(|r| r.0).sum::<u64>() as f64 / secs,
        writes: writer.0 as f64 / secs,
    }
}

fn rw_mixed(only: Option<&str>) {
    let p = MixedParams {
        duration: Duration::from_millis(env_u64("RTCORE_BENCH_RW_MS", 300).max(1)),
        writer_pause: Duration::from_nanos(env_u64("RTCORE_BENCH_RW_WRITER_PAUSE_NS", 2000)),
    };
    let runs = env_u64("RTCORE_BENCH_RW_RUNS", 7).max(1) as usize;
    if let Some(k) = only {
        let v = pick(&MVar::ALL, k);
        for _ in 0..runs {
            phase(format!("rwlock {k}"));
            let r = mixed_run(v, &p);
            println!(
                "{}: {:.2} Mops/s ({:.2} M reads/s, {:.1} k writes/s)",
                v.label(),
                (r.reads + r.writes) / 1e6,
                r.reads / 1e6,
                r.writes / 1e3
            );
        }
        return;
    }
    let warm = MixedParams {
        duration: p.duration / 5,
        writer_pause: p.writer_pause,
    };
    for v in MVar::ALL {
        phase(format!("rwlock warm-up {}", v.key()));
        mixed_run(v, &warm);
    }
    let results = common::round_robin(
        &MVar::ALL,
        runs,
        |_, v| {
            phase(format!("rwlock {}", v.key()));
            mixed_run(v, &p)
        },
        |_| {},
    );
    let totals: Vec<Stats> = results
        .iter()
        .map(|rs| Stats::of(&rs.iter().map(|r| r.reads + r.writes).collect::<Vec<_>>()))
        .collect();
    let median_of = |rs: &[MixedRun], f: fn(&MixedRun) -> f64| {
        Stats::of(&rs.iter().map(f).collect::<Vec<_>>()).median
    };
    let pth = totals[position(&MVar::ALL, MVar::Pthread)].median;
    println!();
    println!(
        "rwlock mixed: {MIXED_READERS} reader threads (read lock, read 4 words, check them, unlock; back to back) \
         + 1 writer (write lock, check and bump the 4 words, unlock, then spin {} ns outside the lock) \
         on one lock for {} ms per run; total Mops/s ({runs} runs per variant, round robin; higher is better); \
         reads and writes: medians over the runs",
        p.writer_pause.as_nanos(),
        p.duration.as_millis()
    );
    println!(
        "{}",
        common::stats_header(
            46,
            &format!(
                "{:>10} {:>11} {:>11}",
                "/pthread", "M reads/s", "k writes/s"
            )
        )
    );
    for (i, v) in MVar::ALL.iter().enumerate() {
        println!(
            "{} {:>9.3}x {:>11.2} {:>11.1}",
            common::stats_row(46, v.label(), &totals[i], 1e6),
            totals[i].median / pth,
            median_of(&results[i], |r| r.reads) / 1e6,
            median_of(&results[i], |r| r.writes) / 1e3
        );
    }
    let r = totals[position(&MVar::ALL, MVar::Rtc)].median / pth;
    println!();
    println!(
        "Goal rtc mixed throughput >= 1.00x pthread_rwlock: {}",
        verdict(r >= 1.0, r)
    );
}

fn rwlock(only: Option<&str>) {
    if api().rwlock.is_none() {
        println!();
        println!("rtc_rwlock not in this library: skipped");
        return;
    }
    match only {
        Some(k) if k.starts_with("rw-mixed") => rw_mixed(Some(k)),
        Some(k) => rw_uncontended(Some(k)),
        None => {
            rw_uncontended(None);
            rw_mixed(None);
        }
    }
}

// ---------------------------------------------------------------------------

const PARTS: [&str; 4] = ["uncontended", "contended", "starve", "rwlock"];

fn main() {
    // `cargo bench` passes `--bench`; ignore any arguments.
    install_panic_exit();
    let a = load();
    spawn_watchdog(Duration::from_secs(
        env_u64("RTCORE_BENCH_WATCHDOG_S", 60).max(1),
    ));

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
    let procs = nproc() as u32;
    let prev_procs = set_maxprocs(procs);

    common::rtc::banner("mutex", &machine());
    println!(
        "method:  every rtcore call goes through a dlsym'd pointer into the dlopen'd cdylib; \
         pthread through libc (PLT); parking_lot inlined. \
         One idle thread blocked and a watchdog thread throughout (process is multi-threaded). \
         Ranks: NONE < bench_a; bench_a < bench_b. Every status checked. maxprocs = {procs} (nproc). \
         rtc_rwlock: {}.",
        if a.rwlock.is_some() {
            "present"
        } else {
            "absent"
        }
    );

    let only = std::env::var("RTCORE_BENCH_ONLY").ok();
    match only.as_deref() {
        Some(k) if k.starts_with("contended") => contended(Some(k)),
        Some(k) if k.starts_with("starve") => starve(Some(k)),
        Some(k) if k.starts_with("rw-") => rwlock(Some(k)),
        Some(k) => uncontended(Some(k)),
        None => {
            let parts = std::env::var("RTCORE_BENCH_PARTS").unwrap_or_else(|_| PARTS.join(","));
            let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
            for p in &parts {
                assert!(
                    PARTS.contains(p),
                    "RTCORE_BENCH_PARTS: unknown part {p} (expected some of {})",
                    PARTS.join(",")
                );
            }
            for (i, part) in PARTS.iter().enumerate() {
                if !parts.contains(part) {
                    continue;
                }
                let w = CpuWatch::start();
                match *part {
                    "uncontended" => uncontended(None),
                    "contended" => contended(None),
                    "starve" => starve(None),
                    _ => rwlock(None),
                }
                w.report(&format!("part {} ({part})", i + 1));
            }
        }
    }

    set_maxprocs(prev_procs);
    println!();
    println!("load average (1 min) at end: {}", loadavg());
    drop(tx);
    idle.join().unwrap();
}
