//! `rtcore stress`: the tracer's start/stop stress as a tool (the seed's
//! test: start and stop never break a trace).
//!
//! Workers (attached, under a maxprocs below their count) cycle through the
//! roles below — contended ranked mutexes with regions and timed condition
//! waits, a reader of a pipe inside blocking regions and the thread that
//! feeds it, a busy loop with safepoints and a 12 ms stretch without one, a
//! thread logging in a tight loop while BLOCKING, attach/detach churn — plus
//! an unattached thread logging in a tight loop and a hook that locks a
//! worker mutex. sysmon's stall thresholds are 100 µs. The controller loops
//! start / about 1 ms / stop and validates every trace.
//!
//! Everything goes through the C ABI (`rtcore::ffi`), as a C program would.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CString, c_void};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtcore::ffi::cond::*;
use rtcore::ffi::general::*;
use rtcore::ffi::mutex::*;
use rtcore::ffi::ranks::*;
use rtcore::ffi::sysmon::*;
use rtcore::ffi::trace::*;
use rtcore::ffi::world::*;
use rtcore::lock::cond::rtc_cond;
use rtcore::lock::mutex::rtc_mutex;
use rtcore::status::rtc_status;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Attached workers (roles assigned in turn).
    pub threads: usize,
    /// Stop after this many cycles (else after `duration`).
    pub cycles: Option<u64>,
    pub duration: Duration,
    pub maxprocs: u32,
    /// Fault injection: start/stop skip `sysmonlock` and sysmon parks
    /// between its check and its action; stop at the first inconsistency.
    pub inject: bool,
    /// How long each trace records.
    pub trace_for: Duration,
    /// Milliseconds between generations (0: the library's default).
    pub generation_ms: u32,
    /// Record with the flight recorder instead of a trace: each cycle
    /// starts it, takes two snapshots (each rolls the trace over) and
    /// stops it; every snapshot is validated.
    pub flight_recorder: bool,
    /// Print a progress line every few seconds.
    pub progress: bool,
    /// Write the last consistent trace here at the end.
    pub keep_last: Option<String>,
}

/// What a run found.
#[derive(Default)]
pub struct Outcome {
    pub cycles: u64,
    pub inconsistent: u64,
    /// The first inconsistency: cycle, message, where its trace was kept.
    pub first: Option<(u64, String, String)>,
    pub totals: BTreeMap<&'static str, u64>,
    pub cross_thread_unblocks: u64,
    pub bytes: u64,
    pub events: u64,
    /// Generations in the consistent traces (more than one per trace when they
    /// roll over during it).
    pub generations: u64,
    /// Traces in which a worker attached throughout had no events.
    pub missing_workers: u64,
    pub elapsed: Duration,
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

/// A failed call the workload cannot do without ends the process: the
/// stress would measure nothing meaningful after it.
fn ok(st: rtc_status, what: &str) {
    super::ffi_ok("stress", st, what);
}

// ---- the sink: an in-memory buffer ------------------------------------------

static SINK: Mutex<Vec<u8>> = Mutex::new(Vec::new());

unsafe extern "C" fn sink(data: *const u8, len: usize, _user: *mut c_void) -> i32 {
    // SAFETY: rtcore passes `len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(data, len) };
    match SINK.lock() {
        Ok(mut b) => {
            b.extend_from_slice(bytes);
            0
        }
        Err(_) => -1,
    }
}

/// One flight-recorder cycle: start it, take a snapshot halfway and one
/// at the end (each rolls the trace over, beside sysmon's own rollovers),
/// stop it. Returns the snapshots.
fn flight_cycle(o: &Options) -> Vec<Vec<u8>> {
    use rtcore::ffi::flight::*;
    let cfg = rtc_flight_recorder_config {
        size: std::mem::size_of::<rtc_flight_recorder_config>() as u32,
        max_mb: 8,
        min_age_ms: o.generation_ms.saturating_mul(4),
        triggers: 0,
        dump_dir: std::ptr::null(),
        rate_limit_ms: 0,
        dir_max_dumps: 0,
        dir_max_mb: 0,
        reserved: 0,
    };
    ok(rtc_flight_recorder_start(&cfg), "rtc_flight_recorder_start");
    let snapshot = || {
        SINK.lock().expect("sink").clear();
        let sink = rtc_trace_config {
            size: std::mem::size_of::<rtc_trace_config>() as u32,
            sink_kind: rtc_trace_sink_kind::RTC_TRACE_SINK_CALLBACK as u32,
            path: std::ptr::null(),
            fd: -1,
            generation_ms: 0,
            write: Some(sink),
            user_data: std::ptr::null_mut(),
            max_mb: 0,
            reserved: 0,
        };
        ok(
            rtc_flight_recorder_write(&sink),
            "rtc_flight_recorder_write",
        );
        std::mem::take(&mut *SINK.lock().expect("sink"))
    };
    std::thread::sleep(o.trace_for / 2);
    let first = snapshot();
    std::thread::sleep(o.trace_for / 2);
    let second = snapshot();
    ok(rtc_flight_recorder_stop(), "rtc_flight_recorder_stop");
    vec![first, second]
}

fn start_trace(generation_ms: u32) {
    SINK.lock().expect("sink").clear();
    let cfg = rtc_trace_config {
        size: std::mem::size_of::<rtc_trace_config>() as u32,
        sink_kind: rtc_trace_sink_kind::RTC_TRACE_SINK_CALLBACK as u32,
        path: std::ptr::null(),
        fd: -1,
        generation_ms,
        write: Some(sink),
        user_data: std::ptr::null_mut(),
        max_mb: 0,
        reserved: 0,
    };
    ok(rtc_trace_start(&cfg), "rtc_trace_start");
}

// ---- shared objects -----------------------------------------------------------

/// Mutexes, a condition and a pipe shared by the workers (leaked: they live
/// as long as the process).
struct Shared {
    a: *mut rtc_mutex,
    b: *mut rtc_mutex,
    cond: *mut rtc_cond,
    pipe: [i32; 2],
    stop: AtomicBool,
    hook_runs: AtomicU64,
}
// SAFETY: the pointers are to leaked rtcore objects made for sharing.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn new_mutex(name: &str, rank: &str) -> *mut rtc_mutex {
    // SAFETY: all-zero is rtc_mutex's unranked static initialiser.
    let m: &'static mut rtc_mutex = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
    ok(
        rtc_mutex_init(m, c(name).as_ptr(), c(rank).as_ptr()),
        "rtc_mutex_init",
    );
    m
}

fn shared() -> &'static Shared {
    ok(
        rtc_ranks_load(
            c("NONE < stress_a; stress_a < stress_b;").as_ptr(),
            c("rtcore-stress").as_ptr(),
        ),
        "rtc_ranks_load",
    );
    // SAFETY: all-zero is rtc_cond's static initialiser.
    let cond: &'static mut rtc_cond = Box::leak(Box::new(unsafe { std::mem::zeroed() }));
    ok(rtc_cond_init(cond), "rtc_cond_init");
    let mut pipe = [0i32; 2];
    // SAFETY: a valid out-array of two ints.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        say_err!("rtcore stress: pipe: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    Box::leak(Box::new(Shared {
        a: new_mutex("stress-a", "stress_a"),
        b: new_mutex("stress-b", "stress_b"),
        cond,
        pipe,
        stop: AtomicBool::new(false),
        hook_runs: AtomicU64::new(0),
    }))
}

fn attach(name: &str) -> u64 {
    let mut id = 0u64;
    ok(
        rtc_thread_attach(c(name).as_ptr(), &mut id),
        "rtc_thread_attach",
    );
    id
}

/// `RTC_LOG`: the header's macro reads the exported flag first.
fn log(cat: &CString, msg: &CString) {
    if rtcore::record::rtc_trace_on.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        rtc_log(cat.as_ptr(), msg.as_ptr());
    }
}

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

// ---- roles ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Locker,
    Piper,
    Feeder,
    Spinner,
    BlockingLogger,
    Churner,
}

/// Roles in the order workers get them (the first 8 are the mix).
const ROLES: [Role; 8] = [
    Role::Locker,
    Role::Piper,
    Role::Feeder,
    Role::Spinner,
    Role::BlockingLogger,
    Role::Locker,
    Role::Churner,
    Role::Locker,
];

fn locker(s: &'static Shared, i: u64) {
    let (cat, msg, region) = (c("locker"), c("iteration"), c("critical"));
    let counter = c("locker-n");
    let mut n = 0u64;
    while !s.stop.load(SeqCst) {
        n += 1;
        ok(rtc_mutex_lock(s.a), "lock stress-a");
        rtc_region_begin(region.as_ptr());
        if n % 2 == 0 {
            ok(rtc_mutex_lock(s.b), "lock stress-b");
            spin(Duration::from_micros(20));
            ok(rtc_mutex_unlock(s.b), "unlock stress-b");
        }
        if n % 50 == i % 50 {
            // Signalled by the feeder, or times out.
            let _ = rtc_cond_timedwait(s.cond, s.a, 300_000);
        }
        spin(Duration::from_micros(10));
        rtc_region_end();
        ok(rtc_mutex_unlock(s.a), "unlock stress-a");
        log(&cat, &msg);
        rtc_safepoint();
        if n % 100 == 0 {
            rtc_counter(counter.as_ptr(), n as i64);
        }
    }
}

fn piper(s: &'static Shared) {
    let reason = c("pipe read");
    let mut buf = [0u8; 1];
    while !s.stop.load(SeqCst) {
        ok(rtc_enter_blocking(reason.as_ptr()), "rtc_enter_blocking");
        // SAFETY: a valid one-byte buffer.
        let _ = unsafe { libc::read(s.pipe[0], buf.as_mut_ptr().cast(), 1) };
        ok(rtc_exit_blocking(), "rtc_exit_blocking");
        rtc_safepoint();
    }
}

fn feeder(s: &'static Shared) {
    let reason = c("sleep");
    while !s.stop.load(SeqCst) {
        ok(rtc_enter_blocking(reason.as_ptr()), "rtc_enter_blocking");
        std::thread::sleep(Duration::from_micros(300));
        ok(rtc_exit_blocking(), "rtc_exit_blocking");
        // SAFETY: a valid one-byte buffer.
        let _ = unsafe { libc::write(s.pipe[1], b"x".as_ptr().cast(), 1) };
        rtc_cond_signal(s.cond);
        rtc_safepoint();
    }
}

fn spinner(s: &'static Shared) {
    let mut n = 0u64;
    while !s.stop.load(SeqCst) {
        n += 1;
        // Now and then 12 ms without a safepoint: sysmon asks for one.
        spin(Duration::from_micros(if n % 200 == 0 {
            12_000
        } else {
            50
        }));
        rtc_safepoint();
    }
}

fn blocking_logger(s: &'static Shared) {
    let (cat, msg, reason) = (c("blocking"), c("tight loop"), c("logging"));
    while !s.stop.load(SeqCst) {
        ok(rtc_enter_blocking(reason.as_ptr()), "rtc_enter_blocking");
        for _ in 0..200 {
            log(&cat, &msg);
        }
        ok(rtc_exit_blocking(), "rtc_exit_blocking");
        rtc_safepoint();
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn churner(s: &'static Shared, name: &str) {
    let (cat, msg) = (c("churn"), c("attached"));
    while !s.stop.load(SeqCst) {
        attach(name);
        log(&cat, &msg);
        rtc_safepoint();
        ok(rtc_mutex_lock(s.a), "lock stress-a");
        ok(rtc_mutex_unlock(s.a), "unlock stress-a");
        ok(rtc_thread_detach(), "rtc_thread_detach");
        log(&cat, &msg);
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn unattached_logger(s: &'static Shared) {
    let (cat, msg) = (c("unattached"), c("tight loop"));
    while !s.stop.load(SeqCst) {
        for _ in 0..100 {
            log(&cat, &msg);
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

unsafe extern "C" fn hook(user: *mut c_void) {
    // SAFETY: `user` is the leaked Shared.
    let s = unsafe { &*(user as *const Shared) };
    rtc_mutex_lock(s.a);
    spin(Duration::from_micros(5));
    rtc_mutex_unlock(s.a);
    s.hook_runs.fetch_add(1, SeqCst);
}

// ---- the run ----------------------------------------------------------------------

/// Run the stress. Initialises rtcore (once per process).
pub fn run(o: &Options) -> Outcome {
    if o.inject {
        rtcore::record::fault::set(true, true);
    }
    // The thresholds below make sysmon report constantly: count, trace,
    // but do not print.
    rtcore::sysmon::monitor::set_print_reports(false);
    let cfg = rtc_config {
        size: std::mem::size_of::<rtc_config>() as u32,
        lockrank_mode: 0,
        ranks_file: std::ptr::null(),
        maxprocs: o.maxprocs,
        reserved: 0,
    };
    ok(rtc_init(&cfg), "rtc_init");
    let s = shared();
    let threshold = rtc_sysmon_setting::RTC_SYSMON_THREAD_STALL_NS as u32;
    ok(
        rtc_sysmon_set_threshold(threshold, 100_000, std::ptr::null_mut()),
        "rtc_sysmon_set_threshold",
    );
    let threshold = rtc_sysmon_setting::RTC_SYSMON_LOCK_STALL_NS as u32;
    ok(
        rtc_sysmon_set_threshold(threshold, 100_000, std::ptr::null_mut()),
        "rtc_sysmon_set_threshold",
    );
    let mut hook_id = 0u64;
    ok(
        rtc_sysmon_hook_add(
            c("lock stress-a").as_ptr(),
            1_000_000,
            Some(hook),
            s as *const Shared as *mut c_void,
            &mut hook_id,
        ),
        "rtc_sysmon_hook_add",
    );

    // Workers attached throughout (not the churners): each must appear in
    // every trace.
    let steady = Arc::new(Mutex::new(Vec::new()));
    let mut steady_count = 0;
    let mut pipers = 0;
    let mut threads = Vec::new();
    for i in 0..o.threads {
        let role = ROLES[i % ROLES.len()];
        let name = format!("{role:?}-{i}").to_lowercase();
        match role {
            Role::Churner => {
                threads.push(std::thread::spawn(move || churner(s, &name)));
            }
            _ => {
                steady_count += 1;
                pipers += (role == Role::Piper) as usize;
                let ids = steady.clone();
                threads.push(std::thread::spawn(move || {
                    let id = attach(&name);
                    ids.lock().expect("ids").push(id);
                    match role {
                        Role::Locker => locker(s, i as u64),
                        Role::Piper => piper(s),
                        Role::Feeder => feeder(s),
                        Role::Spinner => spinner(s),
                        Role::BlockingLogger => blocking_logger(s),
                        Role::Churner => unreachable!("handled above"),
                    }
                    ok(rtc_thread_detach(), "rtc_thread_detach");
                }));
            }
        }
    }
    threads.push(std::thread::spawn(move || unattached_logger(s)));
    while steady.lock().expect("ids").len() < steady_count {
        std::thread::sleep(Duration::from_millis(1));
    }
    let steady: Vec<u64> = steady.lock().expect("ids").clone();

    let mut out = Outcome::default();
    let mut last_valid: Vec<u8> = Vec::new();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        let done = match o.cycles {
            Some(n) => out.cycles >= n,
            None => started.elapsed() >= o.duration,
        };
        if done || (o.inject && out.inconsistent > 0) {
            break;
        }
        let bytes = if o.flight_recorder {
            flight_cycle(o)
        } else {
            start_trace(o.generation_ms);
            std::thread::sleep(o.trace_for);
            ok(rtc_trace_stop(), "rtc_trace_stop");
            vec![std::mem::take(&mut *SINK.lock().expect("sink"))]
        };
        for bytes in bytes {
            out.cycles += 1;
            out.bytes += bytes.len() as u64;
            let checked = rtcore::reader::parse(&bytes).and_then(|t| {
                let streams: HashSet<u64> = t
                    .generations
                    .iter()
                    .flat_map(|g| g.streams.keys().copied())
                    .collect();
                rtcore::reader::validate(&t).map(|s| (s, streams))
            });
            match checked {
                Ok((sum, streams)) => {
                    out.events += sum.events;
                    out.generations += sum.generations as u64;
                    for (k, v) in sum.by_kind {
                        *out.totals.entry(k).or_default() += v;
                    }
                    out.cross_thread_unblocks += sum.cross_thread_unblocks;
                    if steady.iter().any(|w| !streams.contains(w)) {
                        out.missing_workers += 1;
                    }
                    if o.keep_last.is_some() {
                        last_valid = bytes;
                    }
                }
                Err(e) => {
                    out.inconsistent += 1;
                    if out.first.is_none() {
                        let keep = std::env::temp_dir().join(format!(
                            "rtcore-stress-{}-cycle-{}.trace",
                            std::process::id(),
                            out.cycles
                        ));
                        let kept = match std::fs::write(&keep, &bytes) {
                            Ok(()) => keep.display().to_string(),
                            Err(err) => format!("(not kept: {err})"),
                        };
                        out.first = Some((out.cycles, e.to_string(), kept));
                    }
                }
            }
        }
        if o.progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let total = match o.cycles {
                Some(n) => format!("{}/{n} cycles", out.cycles),
                None => format!(
                    "{} cycles, {:.0}/{:.0} s",
                    out.cycles,
                    started.elapsed().as_secs_f64(),
                    o.duration.as_secs_f64()
                ),
            };
            say!(
                "  {total}: {} inconsistent, {} events",
                out.inconsistent,
                out.events
            );
        }
    }
    out.elapsed = started.elapsed();
    s.stop.store(true, SeqCst);
    // Pipe readers left without a feeder get a byte each.
    for _ in 0..pipers {
        // SAFETY: a valid one-byte buffer.
        let _ = unsafe { libc::write(s.pipe[1], b"x".as_ptr().cast(), 1) };
    }
    for t in threads {
        if t.join().is_err() {
            say_err!("rtcore stress: a worker panicked");
            std::process::exit(2);
        }
    }
    ok(rtc_sysmon_hook_remove(hook_id), "rtc_sysmon_hook_remove");
    if let Some(path) = &o.keep_last {
        if last_valid.is_empty() {
            say_err!("rtcore stress: no consistent trace to keep in {path}");
        } else if let Err(e) = std::fs::write(path, &last_valid) {
            say_err!("rtcore stress: cannot write {path}: {e}");
        } else {
            say!("the last consistent trace: {path}");
        }
    }
    out
}

/// The summary printed at the end (the tests parse the lines that start
/// with "inconsistent:", "first inconsistency:" and "per kind:").
pub fn print_summary(out: &Outcome) {
    let traces = out.cycles;
    say!(
        "rtcore stress: {} cycles in {:.1} s; {} traces validated",
        out.cycles,
        out.elapsed.as_secs_f64(),
        traces
    );
    say!(
        "inconsistent: {}; generations in the consistent traces: {}",
        out.inconsistent,
        out.generations
    );
    if let Some((cycle, msg, kept)) = &out.first {
        say!("first inconsistency: cycle {cycle}: {msg}");
        say!("  its trace: {kept}");
    }
    let valid = traces - out.inconsistent;
    say!(
        "events per consistent trace: {:.0} ({} in all), {:.1} bytes per event, {} cross-thread unblocks",
        out.events as f64 / valid.max(1) as f64,
        out.events,
        out.bytes as f64 / out.events.max(1) as f64,
        out.cross_thread_unblocks
    );
    say!(
        "traces missing a worker attached throughout: {}",
        out.missing_workers
    );
    let kinds: Vec<String> = out.totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
    say!("per kind: {}", kinds.join(", "));
}

/// `rtcore stress`: exit 0 when every trace was consistent (with
/// `--inject`: when an inconsistency was found), 1 otherwise.
pub fn main(o: Options) -> ExitCode {
    say!(
        "rtcore stress: {} workers, maxprocs {}, traces of {} ms, {}{}",
        o.threads,
        o.maxprocs,
        o.trace_for.as_secs_f64() * 1e3,
        match o.cycles {
            Some(n) => format!("{n} cycles"),
            None => format!("for {:.0} s", o.duration.as_secs_f64()),
        },
        if o.inject {
            " (fault injection: looking for an inconsistency)"
        } else {
            ""
        }
    );
    let out = run(&o);
    print_summary(&out);
    let ok = if o.inject {
        out.inconsistent > 0
    } else {
        out.inconsistent == 0 && out.missing_workers == 0
    };
    if o.inject && !ok {
        say!("no inconsistency found with the fault injection");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
