//! The demo: a small key-value service through the C ABI (the same calls a
//! C program makes; examples/kv.c is the C version). Client threads send
//! requests over socket pairs; worker threads read them inside blocking
//! regions, serve them under ranked locks (index, then a shard, then the
//! stats) with a task and regions per request, and write the replies. Every
//! 200th request also flushes the statistics, holding the stats lock across
//! a short write: the workers that want it then sleep on it, and the trace
//! shows who woke them (lock-wait arrows in Perfetto). A hook samples the
//! queue depths as counters. Midway a "compactor" runs a
//! maintenance pass that takes a shard lock and then the index lock: the
//! inversion is reported the first time it happens (long before it could
//! deadlock). The whole run is traced in several start/stop cycles; every
//! trace is checked and exported as JSON into ./rtcore-demo/.

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rtcore::ffi::general::rtc_shutdown;
use rtcore::ffi::mutex::{rtc_mutex_init, rtc_mutex_lock_at, rtc_mutex_unlock};
use rtcore::ffi::ranks::{rtc_lockrank_last_report, rtc_lockrank_violations, rtc_ranks_load};
use rtcore::ffi::sysmon::{rtc_sysmon_get_stats, rtc_sysmon_hook_add, rtc_sysmon_stats};
use rtcore::ffi::trace::{
    rtc_counter, rtc_region_begin, rtc_region_end, rtc_task_begin, rtc_task_end,
    rtc_trace_check_file, rtc_trace_config, rtc_trace_sink_kind, rtc_trace_start, rtc_trace_stop,
};
use rtcore::ffi::world::{
    rtc_enter_blocking, rtc_exit_blocking, rtc_safepoint, rtc_set_maxprocs, rtc_thread_attach,
    rtc_thread_detach,
};
use rtcore::lock::mutex::rtc_mutex;
use rtcore::status::rtc_status::{self, RTC_OK};

const RANKS: &str = include_str!("../../../examples/kv.ranks");
const SHARDS: usize = 8;
const WORKERS: usize = 4;
/// Requests a client keeps in flight (so queues build up).
const PIPELINE: u64 = 8;
/// How the service is traced: `TRACES` traces, each recording for
/// `TRACE_FOR` with `TRACE_GAP` untraced after it. The traces are checked
/// and exported only after the service stops, so every machine, fast or
/// slow, writes the same number of them.
const TRACES: usize = 5;
const TRACE_FOR: Duration = Duration::from_millis(250);
const TRACE_GAP: Duration = Duration::from_millis(150);
/// The trace (1-based) that includes the maintenance window.
const COMPACTION_TRACE: usize = 3;
/// Where the traces go (relative to the current directory).
pub const OUT_DIR: &str = "rtcore-demo";

/// A C-layout lock, boxed so it never moves.
struct Lock(Box<rtc_mutex>);
// SAFETY: an rtc_mutex is made to be shared between threads.
unsafe impl Send for Lock {}
// SAFETY: as above.
unsafe impl Sync for Lock {}

impl Lock {
    fn new(name: &str, rank: &str) -> Lock {
        // SAFETY: all-zero is a valid rtc_mutex; rtc_mutex_init overwrites it.
        let mut m: Box<rtc_mutex> = Box::new(unsafe { std::mem::zeroed() });
        let n = CString::new(name).expect("no NUL");
        let r = CString::new(rank).expect("no NUL");
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
            rtc_mutex_lock_at(self.ptr(), concat!(file!(), "\0").as_ptr().cast(), line),
            "rtc_mutex_lock",
        );
    }
    fn unlock(&self) {
        check(rtc_mutex_unlock(self.ptr()), "rtc_mutex_unlock");
    }
}

fn check(s: rtc_status, what: &str) {
    super::ffi_ok("demo", s, what);
}

fn blocking(reason: &CStr, f: impl FnOnce() -> isize) -> isize {
    check(rtc_enter_blocking(reason.as_ptr()), "rtc_enter_blocking");
    let r = f();
    check(rtc_exit_blocking(), "rtc_exit_blocking");
    r
}

/// Read or write exactly `len` bytes (false at end of file or on error).
fn io_all(fd: i32, buf: *mut u8, len: usize, write: bool) -> bool {
    let mut done = 0;
    while done < len {
        // SAFETY: `buf` has `len` valid bytes; `fd` is open.
        let n = unsafe {
            if write {
                libc::write(fd, buf.add(done).cast(), len - done)
            } else {
                libc::read(fd, buf.add(done).cast(), len - done)
            }
        };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

struct Store {
    index: Lock,
    shards: Vec<Lock>,
    /// Guarded by shards[i].
    data: Vec<std::cell::UnsafeCell<std::collections::HashMap<u64, u64>>>,
    stats: Lock,
    served: AtomicU64,
    /// Requests sent and not yet answered, per worker (the hook samples it).
    depth: Vec<AtomicI64>,
    /// Clients pause while the compactor runs (a maintenance window).
    paused: AtomicBool,
    stop: AtomicBool,
}
// SAFETY: `data[i]` is only touched under `shards[i]`.
unsafe impl Sync for Store {}

/// Requests between two flushes of the statistics.
const STATS_FLUSH_EVERY: u64 = 200;

/// A worker: read a request (op, key) from its socket inside a blocking
/// region, serve it as a task with regions, reply.
fn worker(s: &Store, i: usize, fd: i32) {
    let name = CString::new(format!("kv-worker-{i}")).expect("no NUL");
    check(
        rtc_thread_attach(name.as_ptr(), std::ptr::null_mut()),
        "attach",
    );
    let mut req = [0u64; 2];
    loop {
        let ok = blocking(c"read request", || {
            io_all(fd, req.as_mut_ptr().cast(), 16, false) as isize
        });
        if ok == 0 {
            break;
        }
        let (op, key) = (req[0], req[1]);
        let mut task = 0u64;
        let label = if op == 0 { c"get" } else { c"put" };
        check(rtc_task_begin(label.as_ptr(), &mut task), "rtc_task_begin");
        rtc_region_begin(c"lookup".as_ptr());
        // The declared order: index, then shard, then stats.
        s.index.lock(line!());
        let shard = (key as usize) % SHARDS;
        s.shards[shard].lock(line!());
        s.index.unlock();
        rtc_region_end();
        rtc_region_begin(c"apply".as_ptr());
        // SAFETY: guarded by shards[shard], held.
        let map = unsafe { &mut *s.data[shard].get() };
        let value = if op == 0 {
            map.get(&key).copied().unwrap_or(0)
        } else {
            let v = map.entry(key).or_insert(0);
            *v += 1;
            *v
        };
        s.stats.lock(line!());
        let served = s.served.fetch_add(1, SeqCst) + 1;
        if served % STATS_FLUSH_EVERY == 0 {
            // The flush: a write of about half a millisecond, under the lock.
            blocking(c"flush stats", || {
                std::thread::sleep(Duration::from_micros(500));
                0
            });
        }
        s.stats.unlock();
        s.shards[shard].unlock();
        rtc_region_end();
        check(rtc_task_end(task), "rtc_task_end");
        let mut reply = value;
        blocking(c"write reply", || {
            io_all(fd, (&mut reply as *mut u64).cast(), 8, true) as isize
        });
        s.depth[i].fetch_sub(1, SeqCst);
        rtc_safepoint();
    }
    check(rtc_thread_detach(), "detach");
}

/// A client: keeps up to PIPELINE requests in flight on its socket.
fn client(s: &Store, i: usize, fd: i32) {
    let name = CString::new(format!("kv-client-{i}")).expect("no NUL");
    check(
        rtc_thread_attach(name.as_ptr(), std::ptr::null_mut()),
        "attach",
    );
    let mut in_flight = 0u64;
    let mut n = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
    loop {
        let stopping = s.stop.load(SeqCst);
        let pausing = s.paused.load(SeqCst);
        if !stopping && !pausing && in_flight < PIPELINE {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut req = [(n % 4 == 0) as u64, rng % 10_000];
            n += 1;
            s.depth[i].fetch_add(1, SeqCst);
            blocking(c"send request", || {
                io_all(fd, req.as_mut_ptr().cast(), 16, true) as isize
            });
            in_flight += 1;
            continue;
        }
        if in_flight == 0 {
            if stopping {
                break;
            }
            // Paused with nothing in flight.
            blocking(c"maintenance window", || {
                std::thread::sleep(Duration::from_millis(1));
                0
            });
            continue;
        }
        let mut reply = 0u64;
        blocking(c"read reply", || {
            io_all(fd, (&mut reply as *mut u64).cast(), 8, false) as isize
        });
        in_flight -= 1;
        rtc_safepoint();
    }
    // SAFETY: our end of the pair; the worker then reads end of file.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    check(rtc_thread_detach(), "detach");
}

/// The bug on purpose: a shard lock, then the index. Under load this
/// deadlocks against a worker (index, then shard); it runs in a quiet
/// maintenance window, and rtcore reports it on first use all the same.
fn compactor(s: &Store) {
    check(
        rtc_thread_attach(c"kv-compactor".as_ptr(), std::ptr::null_mut()),
        "attach",
    );
    for shard in 0..SHARDS {
        s.shards[shard].lock(line!());
        s.index.lock(line!()); // inversion: index < shard is declared
        s.index.unlock();
        s.shards[shard].unlock();
    }
    check(rtc_thread_detach(), "detach");
}

/// The hook: the queue depths as counters (only while tracing).
unsafe extern "C" fn sample_depths(user: *mut c_void) {
    // SAFETY: `user` is the Store, alive until the hook is gone (the
    // process's end: the demo shuts rtcore down first).
    let s = unsafe { &*(user as *const Store) };
    if rtcore::record::rtc_trace_on.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        return;
    }
    for (i, d) in s.depth.iter().enumerate() {
        let name = CString::new(format!("queue depth kv-worker-{i}")).expect("no NUL");
        rtc_counter(name.as_ptr(), d.load(SeqCst));
    }
}

/// One trace's files, checked and exported.
struct TraceFile {
    path: PathBuf,
    json: PathBuf,
    perfetto: PathBuf,
    events: u64,
    report: String,
}

/// The names of trace `n`'s files in `dir`.
fn trace_paths(n: usize, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("trace-{n}.rtctrace")),
        dir.join(format!("trace-{n}.json")),
        dir.join(format!("trace-{n}.perfetto-trace")),
    )
}

/// Record trace `n` while the service runs: `during` runs first, inside
/// the trace, then the trace goes on until `TRACE_FOR` has passed (or ends
/// as soon as `during` returns, if it took longer).
fn record_trace(n: usize, dir: &Path, during: impl FnOnce()) {
    let (path, _, _) = trace_paths(n, dir);
    let cpath = CString::new(path.to_string_lossy().as_bytes()).expect("no NUL");
    let cfg = rtc_trace_config {
        size: std::mem::size_of::<rtc_trace_config>() as u32,
        sink_kind: rtc_trace_sink_kind::RTC_TRACE_SINK_PATH as u32,
        path: cpath.as_ptr(),
        fd: -1,
        generation_ms: 0,
        write: None,
        user_data: std::ptr::null_mut(),
        max_mb: 0,
        reserved: 0,
    };
    check(rtc_trace_start(&cfg), "rtc_trace_start");
    let started = Instant::now();
    during();
    std::thread::sleep(TRACE_FOR.saturating_sub(started.elapsed()));
    check(rtc_trace_stop(), "rtc_trace_stop");
}

/// Check trace `n` (exit 1 if it is inconsistent) and export it for a
/// viewer, as JSON and as a Perfetto trace (exit 2 if that fails).
fn check_and_export(n: usize, dir: &Path) -> TraceFile {
    let (path, json, perfetto) = trace_paths(n, dir);
    let cpath = CString::new(path.to_string_lossy().as_bytes()).expect("no NUL");
    let mut report = vec![0u8; 4096];
    let st = rtc_trace_check_file(cpath.as_ptr(), report.as_mut_ptr().cast(), report.len());
    let end = report.iter().position(|b| *b == 0).unwrap_or(0);
    let report = String::from_utf8_lossy(&report[..end]).into_owned();
    if st != RTC_OK {
        say_err!("rtcore demo: {} is inconsistent: {report}", path.display());
        std::process::exit(1);
    }
    let events = report
        .strip_prefix("consistent trace: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // `create_new`: the demo cleared its own earlier files first, so a
    // name that exists now is not the demo's to overwrite.
    let create = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let exported = std::fs::read(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|b| rtcore::reader::parse(&b).map_err(|e| e.to_string()))
        .and_then(|t| {
            let mut w = create(&json)?;
            rtcore::export::json::write(&t, &mut w).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut w).map_err(|e| e.to_string())?;
            let mut w = create(&perfetto)?;
            rtcore::export::perfetto::write(&t, &mut w).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut w).map_err(|e| e.to_string())
        });
    if let Err(e) = exported {
        say_err!("rtcore demo: cannot export trace {n}: {e}");
        std::process::exit(2);
    }
    TraceFile {
        path,
        json,
        perfetto,
        events,
        report,
    }
}

/// Is `name` one of the files the demo writes (`trace-N.rtctrace`,
/// `trace-N.json`, `trace-N.perfetto-trace`)?
fn is_demo_output(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("trace-") else {
        return false;
    };
    let Some((n, ext)) = rest.split_once('.') else {
        return false;
    };
    // trace-1, trace-12: the names the demo writes, never trace-007.
    !n.is_empty()
        && !n.starts_with('0')
        && n.bytes().all(|b| b.is_ascii_digit())
        && matches!(ext, "rtctrace" | "json" | "perfetto-trace")
}

/// Remove the demo's own files from an earlier run in `dir` (any number of
/// traces); anything else there is left alone. Returns how many went.
fn clear_earlier_output(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        // A symbolic link under such a name is removed itself, never
        // followed: the demo writes only files it creates anew.
        if name.to_str().is_some_and(is_demo_output) {
            if entry.file_type()?.is_dir() {
                // Found now, not when the export fails after the whole run.
                return Err(std::io::Error::other(format!(
                    "{} is a directory where the demo writes a file",
                    entry.path().display()
                )));
            }
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// How to call this command again, as the user can type it: `rtcore` when
/// the `rtcore` found first on PATH is this very program, else its path
/// (relative to the current directory when it lies under it, such as
/// `target/release/rtcore`).
pub fn command_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "rtcore".to_string();
    };
    use std::os::unix::fs::PermissionsExt;
    // The shell runs the first `rtcore` on PATH that is an executable file.
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("rtcore"))
            .find(|c| {
                std::fs::metadata(c)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .and_then(|c| std::fs::canonicalize(c).ok())
            .is_some_and(|c| c == me)
    });
    if on_path {
        return "rtcore".to_string();
    }
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize);
    let path = match cwd
        .ok()
        .and_then(|d| me.strip_prefix(d).ok().map(Path::to_path_buf))
    {
        // A bare name would be looked up on PATH, not here.
        Some(rel) if rel.components().count() == 1 => format!("./{}", rel.display()),
        Some(rel) => rel.display().to_string(),
        None => me.display().to_string(),
    };
    shell_quoted(&path)
}

/// `s` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_quoted(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `bytes` for a person: "87.3 MB".
fn human_size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// The traces' statistics, summed: where the threads' time went, why they
/// blocked, the most contended lock.
fn print_trace_stats(all: &[rtcore::stats::Stats]) {
    use std::collections::BTreeMap;
    let mut state_ns = [0u64; 4];
    let mut reasons: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut locks: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut bytes = 0;
    let mut events = 0;
    for s in all {
        bytes += s.bytes;
        events += s.events;
        for t in &s.threads {
            for (i, ns) in t.state_ns.iter().enumerate() {
                state_ns[i] += ns;
            }
        }
        for r in &s.blocking {
            let e = reasons.entry(r.reason.clone()).or_default();
            e.0 += r.count;
            e.1 += r.total_ns;
        }
        for l in &s.locks {
            let e = locks.entry(l.name.clone()).or_default();
            e.0 += l.contentions;
            e.1 += l.wait_total_ns;
        }
    }
    let total: u64 = state_ns.iter().sum::<u64>().max(1);
    let shares: Vec<String> = rtcore::stats::STATES
        .iter()
        .zip(state_ns)
        .map(|(n, ns)| format!("{n} {:.0}%", ns as f64 * 100.0 / total as f64))
        .collect();
    say!(
        "  threads' time        {} (rtcore stats, over every trace)",
        shares.join(", ")
    );
    say!("                       RUNNING: on a processor; RUNNABLE: waiting for one of the 2;");
    say!("                       BLOCKING: in a blocking call, its processor free for others;");
    say!("                       WAITING: for a lock another thread holds");
    let mut by_time: Vec<_> = reasons.into_iter().collect();
    by_time.sort_by_key(|(_, (_, ns))| std::cmp::Reverse(*ns));
    let top: Vec<String> = by_time
        .iter()
        .take(3)
        .map(|(r, (n, ns))| format!("'{r}' {n} x, {:.0} ms", *ns as f64 / 1e6))
        .collect();
    say!("  blocked most in      {}", top.join("; "));
    if let Some((name, (n, ns))) = locks.iter().max_by_key(|(_, (_, ns))| *ns) {
        say!(
            "  most contended lock  '{name}': {n} waits, {:.1} ms waited in all",
            *ns as f64 / 1e6
        );
    }
    say!(
        "  trace size           {:.1} bytes per event",
        bytes as f64 / events.max(1) as f64
    );
}

pub fn run() -> ExitCode {
    let t0 = Instant::now();
    let dir = PathBuf::from(OUT_DIR);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        say_err!("rtcore demo: cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let cleared = match clear_earlier_output(&dir) {
        Ok(n) => n,
        Err(e) => {
            say_err!(
                "rtcore demo: cannot clear the earlier traces in {}: {e}",
                dir.display()
            );
            return ExitCode::from(2);
        }
    };
    say!(
        "rtcore demo: a key-value service ({WORKERS} workers, {WORKERS} clients over socket pairs, {SHARDS} shards, maxprocs 2), traced"
    );
    say!("\nRank declarations (examples/kv.ranks):");
    for l in RANKS.lines().filter(|l| !l.starts_with('#')) {
        say!("    {l}");
    }
    let text = CString::new(RANKS).expect("no NUL");
    check(
        rtc_ranks_load(text.as_ptr(), c"examples/kv.ranks".as_ptr()),
        "rtc_ranks_load",
    );
    // Fewer processors than threads: threads queue for a P, and sysmon
    // retakes the P of a thread sitting in a blocking region.
    check(
        rtc_set_maxprocs(2, std::ptr::null_mut()),
        "rtc_set_maxprocs",
    );

    let store = Arc::new(Store {
        index: Lock::new("index", "index"),
        shards: (0..SHARDS)
            .map(|i| Lock::new(&format!("shard-{i}"), "shard"))
            .collect(),
        data: (0..SHARDS).map(|_| Default::default()).collect(),
        stats: Lock::new("stats", "stats"),
        served: AtomicU64::new(0),
        depth: (0..WORKERS).map(|_| AtomicI64::new(0)).collect(),
        paused: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let mut hook = 0u64;
    check(
        rtc_sysmon_hook_add(
            c"sample queue depths".as_ptr(),
            2_000_000,
            Some(sample_depths),
            Arc::as_ptr(&store) as *mut c_void,
            &mut hook,
        ),
        "rtc_sysmon_hook_add",
    );

    let mut threads = Vec::new();
    for i in 0..WORKERS {
        let mut fds = [0i32; 2];
        // SAFETY: a valid out-array of two ints.
        if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } != 0 {
            say_err!(
                "rtcore demo: socketpair: {}",
                std::io::Error::last_os_error()
            );
            return ExitCode::from(2);
        }
        let (s1, s2) = (store.clone(), store.clone());
        threads.push(std::thread::spawn(move || worker(&s1, i, fds[0])));
        threads.push(std::thread::spawn(move || client(&s2, i, fds[1])));
    }

    if cleared > 0 {
        say!(
            "\n(cleared {cleared} file(s) of an earlier run from {}/)",
            dir.display()
        );
    }
    say!(
        "\nServing for {:.1} s, traced {TRACES} times for {} ms with {} ms untraced between...",
        ((TRACE_FOR + TRACE_GAP) * TRACES as u32).as_secs_f64(),
        TRACE_FOR.as_millis(),
        TRACE_GAP.as_millis()
    );
    for n in 1..=TRACES {
        record_trace(n, &dir, || {
            if n == COMPACTION_TRACE {
                // The maintenance window, wholly inside this trace however
                // slow the machine: clients pause, the workers drain, the
                // compactor runs, clients resume.
                std::thread::sleep(Duration::from_millis(50));
                store.paused.store(true, SeqCst);
                while store.depth.iter().any(|d| d.load(SeqCst) > 0) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let s = store.clone();
                std::thread::spawn(move || compactor(&s))
                    .join()
                    .expect("compactor");
                store.paused.store(false, SeqCst);
            }
        });
        std::thread::sleep(TRACE_GAP);
    }
    store.stop.store(true, SeqCst);
    for t in threads {
        t.join().expect("a demo thread panicked");
    }
    say!("Checking and exporting the traces...");
    let mut traces = Vec::new();
    let mut written = 0u64;
    for n in 1..=TRACES {
        let t = check_and_export(n, &dir);
        let note = if n == COMPACTION_TRACE {
            " (includes the maintenance window: the compactor runs)"
        } else {
            ""
        };
        say!(
            "  trace {n}: {} events, consistent{note}; {}, {} and {}",
            t.events,
            t.path.display(),
            t.json.display(),
            t.perfetto.display()
        );
        written += [&t.path, &t.json, &t.perfetto]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>();
        traces.push(t);
    }

    let mut violations = 0u64;
    check(
        rtc_lockrank_violations(&mut violations),
        "rtc_lockrank_violations",
    );
    let mut buf = vec![0u8; 8192];
    let mut need = 0usize;
    check(
        rtc_lockrank_last_report(buf.as_mut_ptr().cast(), buf.len(), &mut need),
        "rtc_lockrank_last_report",
    );
    let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
    let report = String::from_utf8_lossy(&buf[..end]).into_owned();
    // SAFETY: plain data; `size` set below.
    let mut sm: rtc_sysmon_stats = unsafe { std::mem::zeroed() };
    sm.size = std::mem::size_of::<rtc_sysmon_stats>() as u32;
    check(rtc_sysmon_get_stats(&mut sm), "rtc_sysmon_get_stats");
    let keys: usize = store
        .data
        .iter()
        // SAFETY: every worker has exited; no lock is needed.
        .map(|d| unsafe { &*d.get() }.len())
        .sum();
    let events: u64 = traces.iter().map(|t| t.events).sum();
    // What the traces say, through `rtcore stats`'s own code.
    let trace_stats: Vec<rtcore::stats::Stats> = traces
        .iter()
        .filter_map(|t| std::fs::read(&t.path).ok())
        .filter_map(|b| rtcore::stats::stats(&b).ok())
        .collect();
    let with_violation = traces
        .iter()
        .filter(|t| t.report.contains("rank violation"))
        .count();

    say!("\nSummary");
    say!("  requests served      {}", store.served.load(SeqCst));
    say!("  keys stored          {keys} across {SHARDS} shards");
    say!(
        "  traces               {} written, {} consistent, {events} events; {with_violation} with the rank violation",
        traces.len(),
        traces.len()
    );
    say!("  order violations     {violations} (the compactor's shard -> index, once per shard)");
    // The model's words, each with what it means here (docs/world.md).
    say!("  sysmon, rtcore's monitor thread:");
    say!(
        "    processors retaken  {:<8} a thread sat in a blocking call (a socket read) holding one of the",
        sm.retakes
    );
    say!(
        "                                 2 processors (run slots) while another waited to run; sysmon gave"
    );
    say!("                                 the slot to the waiting thread");
    say!(
        "    preemption requests {:<8} a thread ran 10 ms without a safepoint and was asked to let others run",
        sm.preempt_requests
    );
    say!(
        "    stall reports       {:<8} a lock held over 1 s while others waited (none is good)",
        sm.stall_reports
    );
    say!(
        "    hook runs           {:<8} the queue-depth sampler, a user callback sysmon runs every 2 ms",
        sm.hook_runs
    );
    print_trace_stats(&trace_stats);
    say!("  elapsed              {:.2} s", t0.elapsed().as_secs_f64());
    say!("\nThe report (also printed above on stderr as it happened):");
    for l in report.lines() {
        say!("  | {l}");
    }
    say!(
        "\nUnder load the compactor would deadlock against a worker that holds the index and wants"
    );
    say!(
        "the same shard. rtcore reported it the first time the order occurred, in a quiet window."
    );
    say!("Fix: take the index before the shard, as examples/kv.ranks declares.");
    say!(
        "\nThe traces are in {}/: {} files, {} (trace-N.rtctrace; trace-N.json and trace-N.perfetto-trace for a viewer);",
        dir.display(),
        traces.len() * 3,
        human_size(written)
    );
    say!("the next run of the demo replaces them. Try:");
    let me = command_name();
    say!("  {me} check {}/trace-1.rtctrace", dir.display());
    say!(
        "  {me} stats {}/trace-{COMPACTION_TRACE}.rtctrace",
        dir.display()
    );
    say!(
        "  open https://ui.perfetto.dev, choose \"Open trace file\", and pick {}/trace-1.perfetto-trace (or trace-1.json)",
        dir.display()
    );
    let _ = rtc_shutdown();
    if violations != SHARDS as u64 || report.is_empty() || traces.is_empty() || with_violation == 0
    {
        say_err!(
            "rtcore demo: expected {SHARDS} violations, a report and a trace holding them; got {violations} violations, {with_violation} such traces"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_demos_own_names_are_its_output() {
        for n in [
            "trace-1.rtctrace",
            "trace-5.json",
            "trace-12.perfetto-trace",
        ] {
            assert!(is_demo_output(n), "{n}");
        }
        for n in [
            "trace-007.json",
            "trace-.json",
            "trace-1.txt",
            "trace-1",
            "notes.txt",
            "trace-1.json.bak",
            "xtrace-1.json",
        ] {
            assert!(!is_demo_output(n), "{n}");
        }
    }

    #[test]
    fn hints_are_one_shell_word_each() {
        assert_eq!(
            shell_quoted("target/release/rtcore"),
            "target/release/rtcore"
        );
        assert_eq!(shell_quoted("/my dir/rtcore"), "'/my dir/rtcore'");
        assert_eq!(shell_quoted("/it's/rtcore"), "'/it'\\''s/rtcore'");
        assert_eq!(shell_quoted(""), "''");
    }
}
