//! The demo: a small key-value store served by worker threads through the C
//! ABI (the same functions a C program calls), with ranked locks. A
//! "compactor" thread takes a shard lock and then the index lock: the
//! inversion is caught on its first occurrence and reported, long before it
//! could deadlock. Later issues add the world, sysmon and tracing here.

use std::ffi::CString;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtcore::ffi::cond::{rtc_cond_broadcast, rtc_cond_signal, rtc_cond_timedwait};
use rtcore::ffi::general::rtc_shutdown;
use rtcore::ffi::mutex::{rtc_mutex_init, rtc_mutex_lock_at, rtc_mutex_unlock};
use rtcore::ffi::ranks::{rtc_lockrank_last_report, rtc_lockrank_violations, rtc_ranks_load};
use rtcore::lock::cond::rtc_cond;
use rtcore::lock::mutex::rtc_mutex;
use rtcore::status::rtc_status::{self, RTC_ERR_TIMED_OUT, RTC_OK};

const RANKS: &str = include_str!("../../../examples/kv.ranks");
const SHARDS: usize = 8;
const WORKERS: usize = 4;
const REQUESTS: u64 = 20_000;

/// A C-layout lock, pinned in a Box so it never moves.
struct Lock(Box<rtc_mutex>);
unsafe impl Send for Lock {}
unsafe impl Sync for Lock {}

impl Lock {
    fn new(name: &str, rank: &str) -> Lock {
        // SAFETY: all-zero is a valid rtc_mutex; rtc_mutex_init overwrites it.
        let mut m: Box<rtc_mutex> = Box::new(unsafe { std::mem::zeroed() });
        let n = CString::new(name).unwrap();
        let r = CString::new(rank).unwrap();
        check(
            rtc_mutex_init(&mut *m, n.as_ptr(), r.as_ptr()),
            "rtc_mutex_init",
        );
        Lock(m)
    }
    fn ptr(&self) -> *mut rtc_mutex {
        &*self.0 as *const rtc_mutex as *mut rtc_mutex
    }
    fn lock(&self, line: u32) {
        check(
            rtc_mutex_lock_at(
                self.ptr(),
                concat!(file!(), "\0").as_ptr() as *const _,
                line,
            ),
            "rtc_mutex_lock",
        );
    }
    fn unlock(&self) {
        check(rtc_mutex_unlock(self.ptr()), "rtc_mutex_unlock");
    }
}

struct Cond(Box<rtc_cond>);
unsafe impl Send for Cond {}
unsafe impl Sync for Cond {}
impl Cond {
    fn ptr(&self) -> *mut rtc_cond {
        &*self.0 as *const rtc_cond as *mut rtc_cond
    }
}

fn check(s: rtc_status, what: &str) {
    if s != RTC_OK {
        let mut buf = vec![0u8; 1024];
        rtcore::ffi::general::rtc_last_error_message(buf.as_mut_ptr() as *mut _, buf.len());
        let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
        panic!("{what} failed: {}", String::from_utf8_lossy(&buf[..end]));
    }
}

struct Store {
    queue: Lock,
    queue_cv: Cond,
    pending: std::cell::UnsafeCell<Vec<u64>>, // guarded by `queue`
    index: Lock,
    shards: Vec<Lock>,
    data: Vec<std::cell::UnsafeCell<std::collections::HashMap<u64, u64>>>, // guarded by shards[i]
    stats: Lock,
    served: AtomicU64,
    done: AtomicBool,
}
unsafe impl Sync for Store {}

fn worker(s: &Store) {
    loop {
        // Take a request from the queue (condition wait with a timeout).
        s.queue.lock(line!());
        // SAFETY: guarded by `queue`, held.
        let key = loop {
            if let Some(k) = unsafe { &mut *s.pending.get() }.pop() {
                break Some(k);
            }
            if s.done.load(Ordering::Acquire) {
                break None;
            }
            let st = rtc_cond_timedwait(s.queue_cv.ptr(), s.queue.ptr(), 5_000_000);
            if st != RTC_ERR_TIMED_OUT {
                check(st, "rtc_cond_timedwait");
            }
        };
        s.queue.unlock();
        let Some(key) = key else { return };
        // Serve it: index, then shard, then stats (the declared order).
        s.index.lock(line!());
        let shard = (key as usize) % SHARDS;
        s.shards[shard].lock(line!());
        s.index.unlock();
        // SAFETY: guarded by shards[shard], held.
        *unsafe { &mut *s.data[shard].get() }.entry(key).or_insert(0) += 1;
        s.stats.lock(line!());
        s.served.fetch_add(1, Ordering::Relaxed);
        s.stats.unlock();
        s.shards[shard].unlock();
    }
}

/// The bug on purpose: holds a shard and then takes the index. Under load
/// this deadlocks against a worker (index, then shard); the demo runs it
/// while the store is idle, and rtcore still reports it on first use.
fn compactor(s: &Store) {
    for shard in 0..SHARDS {
        s.shards[shard].lock(line!());
        s.index.lock(line!()); // inversion: index < shard is declared
        s.index.unlock();
        s.shards[shard].unlock();
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn run() -> ExitCode {
    let t0 = Instant::now();
    println!(
        "rtcore demo: a key-value store with ranked locks ({WORKERS} workers, {SHARDS} shards)"
    );
    println!("\nRank declarations (examples/kv.ranks):");
    for l in RANKS.lines().filter(|l| !l.starts_with('#')) {
        println!("    {l}");
    }
    let text = CString::new(RANKS).unwrap();
    check(
        rtc_ranks_load(text.as_ptr(), c"examples/kv.ranks".as_ptr()),
        "rtc_ranks_load",
    );

    let store = Arc::new(Store {
        queue: Lock::new("request-queue", "queue"),
        // SAFETY: all-zero is a valid rtc_cond.
        queue_cv: Cond(Box::new(unsafe { std::mem::zeroed() })),
        pending: std::cell::UnsafeCell::new(Vec::new()),
        index: Lock::new("index", "index"),
        shards: (0..SHARDS)
            .map(|i| Lock::new(&format!("shard-{i}"), "shard"))
            .collect(),
        data: (0..SHARDS).map(|_| Default::default()).collect(),
        stats: Lock::new("stats", "stats"),
        served: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });

    println!("\nServing {REQUESTS} requests...");
    let mut threads = Vec::new();
    for i in 0..WORKERS {
        let s = store.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("kv-worker-{i}"))
                .spawn(move || worker(&s))
                .unwrap(),
        );
    }
    // The client: enqueue requests in batches.
    for batch in 0..(REQUESTS / 100) {
        store.queue.lock(line!());
        // SAFETY: guarded by `queue`, held.
        let p = unsafe { &mut *store.pending.get() };
        for k in 0..100 {
            p.push(batch * 100 + k);
        }
        check(
            rtc_cond_broadcast(store.queue_cv.ptr()),
            "rtc_cond_broadcast",
        );
        store.queue.unlock();
    }
    // Wait until served.
    while store.served.load(Ordering::Relaxed) < REQUESTS {
        std::thread::sleep(Duration::from_millis(1));
    }
    store.done.store(true, Ordering::Release);
    store.queue.lock(line!());
    check(rtc_cond_signal(store.queue_cv.ptr()), "rtc_cond_signal");
    check(
        rtc_cond_broadcast(store.queue_cv.ptr()),
        "rtc_cond_broadcast",
    );
    store.queue.unlock();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "Served. Now a maintenance pass: the compactor takes a shard lock, then the index lock...\n"
    );
    let s = store.clone();
    std::thread::Builder::new()
        .name("kv-compactor".into())
        .spawn(move || compactor(&s))
        .unwrap()
        .join()
        .unwrap();

    let mut violations = 0u64;
    check(
        rtc_lockrank_violations(&mut violations),
        "rtc_lockrank_violations",
    );
    let mut buf = vec![0u8; 8192];
    let mut need = 0usize;
    check(
        rtc_lockrank_last_report(buf.as_mut_ptr() as *mut _, buf.len(), &mut need),
        "rtc_lockrank_last_report",
    );
    let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
    let report = String::from_utf8_lossy(&buf[..end]).into_owned();
    let keys: usize = store
        .data
        .iter()
        // SAFETY: every worker has exited; no lock is needed.
        .map(|d| unsafe { &*d.get() }.len())
        .sum();

    println!("\nSummary");
    println!(
        "  requests served      {}",
        store.served.load(Ordering::Relaxed)
    );
    println!("  keys stored          {keys} across {SHARDS} shards");
    println!(
        "  order violations     {violations} (the compactor's shard -> index, once per shard)"
    );
    println!(
        "  reports printed      1 (rtcore reports each pair of ranks once and counts the rest)"
    );
    println!("  elapsed              {:.2} s", t0.elapsed().as_secs_f64());
    println!("\nThe report (also printed above on stderr as it happened):");
    for l in report.lines() {
        println!("  | {l}");
    }
    println!("\nUnder load the compactor would deadlock against a worker that holds the index and");
    println!(
        "wants the same shard. rtcore reported it the first time the order occurred, while the"
    );
    println!(
        "store was idle. Fix: take the index before the shard, as examples/kv.ranks declares."
    );
    let _ = rtc_shutdown();
    if violations != SHARDS as u64 || report.is_empty() {
        eprintln!("demo: expected {SHARDS} violations and a report; got {violations}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
