//! Peer benchmark: rtcore's user events against Tracy's C client API, in one
//! process and one run.
//!
//! rtcore is loaded with dlopen from RTCORE_LIB (default: the repository's
//! target/release/librtcore.so) and every rtcore function is called through
//! a dlsym'd pointer, as a C program calls it; the exported flag
//! `rtc_trace_on` is dlsym'd too and read as the header's RTC_TRACE_ON()
//! reads it (a relaxed atomic load). Tracy's client is linked statically
//! (crate tracy-client-sys, feature `enable`, no server connected).
//!
//! Every variant runs in the same loop skeleton
//! (`for i in 0..n { black_box(i); body }`) in its own non-inlined function;
//! a sample times one loop with CLOCK_MONOTONIC (std::time::Instant) and
//! divides by n. Samples are taken round robin: each round visits every
//! variant once, starting one further along each round, and takes
//! SAMPLES consecutive samples of it; one short warm-up sample of each
//! variant comes first. The figure reported is the median over all samples.
//!
//! Tunables (environment): PEER_ROUNDS (default 7, at least 3), PEER_SAMPLES (samples
//! per variant per round, default 3), PEER_OFF_ITERS (iterations per sample
//! of the untraced variants, default 2_000_000), PEER_ON_ITERS (of the
//! traced rtcore variants, default 500_000), PEER_TRACY_ITERS (of the Tracy
//! variants, default 100_000: with no server Tracy's memory grows with
//! every event, see README.md),
//! RTCORE_LIB (the library to load).

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the floor variant reads the TSC: this benchmark is for x86_64");

use std::ffi::{CStr, c_void};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tracy_client_sys as tracy;

// ---------------------------------------------------------------------------
// Failure: print and end the process at once (rtcore's writer and Tracy's
// worker are running; nothing to unwind into).

#[cold]
#[inline(never)]
fn die(msg: &str) -> ! {
    let _ = std::io::stdout().flush();
    eprintln!("error: {msg}");
    let _ = std::io::stderr().flush();
    // SAFETY: ends the process.
    unsafe { libc::_exit(1) }
}

// ---------------------------------------------------------------------------
// rtcore's C ABI, loaded at run time: the root's bench plumbing
// (benches/common), shared with rtcore's own benchmarks.

#[path = "../../../common/mod.rs"]
mod common;
use common::rtc::{RtcTraceConfig, api, check, env_u64, rtc_fail};
use common::{Stats, floor_event};

/// `RTC_TRACE_SINK_FD`.
const RTC_TRACE_SINK_FD: u32 = 2;

/// Start a trace into `fd` (open on /dev/null): the writer runs, the
/// bytes are discarded by the kernel.
fn trace_start(fd: i32) {
    let r = api();
    let cfg = RtcTraceConfig {
        size: std::mem::size_of::<RtcTraceConfig>() as u32,
        sink_kind: RTC_TRACE_SINK_FD,
        path: std::ptr::null(),
        fd,
        generation_ms: 0,
        write: None,
        user_data: std::ptr::null_mut(),
    };
    // SAFETY: a valid config of the right size.
    check("rtc_trace_start", unsafe { (r.trace_start)(&cfg) });
    // SAFETY: plain call.
    let on = unsafe { (r.trace_enabled)() };
    if on != 1 || r.trace_on.load(Relaxed) == 0 {
        die(&format!(
            "tracing is not on after rtc_trace_start returned RTC_OK (rtc_trace_enabled {on})"
        ));
    }
}

fn trace_stop() {
    let r = api();
    // SAFETY: plain call.
    check("rtc_trace_stop", unsafe { (r.trace_stop)() });
    // SAFETY: plain call.
    let on = unsafe { (r.trace_enabled)() };
    if on != 0 || r.trace_on.load(Relaxed) != 0 {
        die(&format!(
            "tracing still on after rtc_trace_stop (rtc_trace_enabled {on})"
        ));
    }
}

// ---------------------------------------------------------------------------
// Tracy.

/// A `___tracy_source_location_data` in a static (Tracy keeps its address).
struct SrcLoc(tracy::___tracy_source_location_data);
// SAFETY: read-only data pointing at static strings.
unsafe impl Sync for SrcLoc {}

static ZONE_LOC: SrcLoc = SrcLoc(tracy::___tracy_source_location_data {
    name: c"bench zone".as_ptr(),
    function: c"loop_tracy_zone".as_ptr(),
    file: c"main.rs".as_ptr(),
    line: line!(),
    color: 0,
});

/// TracyMessageSeverityInfo, the severity TracyCMessage / TracyCMessageL use.
const TRACY_INFO: i8 = tracy::TracyMessageSeverity_TracyMessageSeverityInfo as i8;

// ---------------------------------------------------------------------------
// The loops.

const CATEGORY: &CStr = c"bench";
const MESSAGE: &CStr = c"request done";
const REGION: &CStr = c"bench region";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum V {
    Empty,
    Floor,
    Clock,
    RtcMacroOff,
    RtcLogOff,
    RtcMacroOn,
    RtcRegionOn,
    TracyZone,
    TracyMsgLit,
    TracyMsgCopy,
}

impl V {
    const ALL: [V; 10] = [
        V::Empty,
        V::Floor,
        V::Clock,
        V::RtcMacroOff,
        V::RtcLogOff,
        V::RtcMacroOn,
        V::RtcRegionOn,
        V::TracyZone,
        V::TracyMsgLit,
        V::TracyMsgCopy,
    ];
    fn label(self) -> &'static str {
        match self {
            V::Empty => "(0) empty loop",
            V::Floor => "(1) FLOOR rdtsc+16B TLS ring, noinline",
            V::Clock => "(2) clock_gettime(CLOCK_MONOTONIC)",
            V::RtcMacroOff => "(3) rtcore RTC_LOG, off (load+branch)",
            V::RtcLogOff => "(4) rtcore rtc_log() called, off",
            V::RtcMacroOn => "(5) rtcore RTC_LOG, ON",
            V::RtcRegionOn => "(6) rtcore region begin+end, ON (pair)",
            V::TracyZone => "(7) Tracy zone begin+end (pair)",
            V::TracyMsgLit => "(8) Tracy message, literal (L)",
            V::TracyMsgCopy => "(9) Tracy message, copied (+len)",
        }
    }
    /// Runs with an rtcore trace being recorded.
    fn traced(self) -> bool {
        matches!(self, V::RtcMacroOn | V::RtcRegionOn)
    }
    /// Uses the "on" iteration count (records events).
    fn on(self) -> bool {
        matches!(
            self,
            V::RtcMacroOn | V::RtcRegionOn | V::TracyZone | V::TracyMsgLit | V::TracyMsgCopy
        )
    }
    fn tracy(self) -> bool {
        matches!(self, V::TracyZone | V::TracyMsgLit | V::TracyMsgCopy)
    }
    /// Events one iteration records.
    fn events(self) -> u64 {
        match self {
            V::RtcRegionOn | V::TracyZone => 2,
            _ => 1,
        }
    }
}

#[inline(never)]
fn loop_empty(n: u64) {
    for i in 0..n {
        black_box(i);
    }
}

#[inline(never)]
fn loop_floor(n: u64) {
    for i in 0..n {
        floor_event(black_box(i));
    }
}

#[inline(never)]
fn loop_clock(n: u64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    for i in 0..n {
        black_box(i);
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        black_box(&mut ts);
    }
}

/// RTC_LOG(category, message) as the header defines it: a relaxed load of
/// rtc_trace_on and, when non-zero, rtc_log. (The macro discards the
/// status; here the statuses are OR-ed and checked after the loop.)
#[inline(never)]
fn loop_rtc_macro(n: u64) {
    let r = api();
    let (flag, log) = (r.trace_on, r.log);
    let (cat, msg) = (CATEGORY.as_ptr(), MESSAGE.as_ptr());
    let mut bad = 0;
    for i in 0..n {
        black_box(i);
        if flag.load(Relaxed) != 0 {
            // SAFETY: NUL-terminated strings.
            bad |= unsafe { log(cat, msg) };
        }
    }
    check("rtc_log (through RTC_LOG, statuses OR-ed)", bad);
}

#[inline(never)]
fn loop_rtc_log(n: u64) {
    let log = api().log;
    let (cat, msg) = (CATEGORY.as_ptr(), MESSAGE.as_ptr());
    for i in 0..n {
        black_box(i);
        // SAFETY: NUL-terminated strings.
        let s = unsafe { log(cat, msg) };
        if s != 0 {
            rtc_fail("rtc_log", s);
        }
    }
}

#[inline(never)]
fn loop_rtc_region(n: u64) {
    let r = api();
    let (begin, end) = (r.region_begin, r.region_end);
    let name = REGION.as_ptr();
    for i in 0..n {
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
}

/// TracyCZoneN(ctx, ..., 1) + TracyCZoneEnd(ctx) with a static source
/// location.
#[inline(never)]
fn loop_tracy_zone(n: u64) {
    for i in 0..n {
        black_box(i);
        // SAFETY: a static source location; zones nest properly.
        let ctx = unsafe { tracy::___tracy_emit_zone_begin(&ZONE_LOC.0, 1) };
        // SAFETY: the context just returned, on the same thread.
        unsafe { tracy::___tracy_emit_zone_end(ctx) };
    }
}

/// TracyCMessageL(MESSAGE): the text's address is queued (a literal).
#[inline(never)]
fn loop_tracy_msg_lit(n: u64) {
    let msg = MESSAGE.as_ptr();
    for i in 0..n {
        black_box(i);
        // SAFETY: a static NUL-terminated string.
        unsafe { tracy::___tracy_emit_logStringL(TRACY_INFO, 0, 0, msg) };
    }
}

/// TracyCMessage(MESSAGE, len): the text is copied (tracy_malloc + memcpy).
#[inline(never)]
fn loop_tracy_msg_copy(n: u64) {
    let msg = MESSAGE.as_ptr();
    let len = MESSAGE.to_bytes().len();
    for i in 0..n {
        black_box(i);
        // SAFETY: `len` bytes readable at `msg`.
        unsafe { tracy::___tracy_emit_logString(TRACY_INFO, 0, 0, len, msg) };
    }
}

fn run(v: V, n: u64) {
    match v {
        V::Empty => loop_empty(n),
        V::Floor => loop_floor(n),
        V::Clock => loop_clock(n),
        V::RtcMacroOff | V::RtcMacroOn => loop_rtc_macro(n),
        V::RtcLogOff => loop_rtc_log(n),
        V::RtcRegionOn => loop_rtc_region(n),
        V::TracyZone => loop_tracy_zone(n),
        V::TracyMsgLit => loop_tracy_msg_lit(n),
        V::TracyMsgCopy => loop_tracy_msg_copy(n),
    }
}

// ---------------------------------------------------------------------------
// Samples and statistics.

fn minflt() -> u64 {
    // SAFETY: zeroed rusage is valid; valid out-pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_minflt as u64
}

/// Resident set size, bytes (/proc/self/statm).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

#[derive(Clone, Copy)]
struct Sample {
    /// ns per iteration.
    ns: f64,
    /// Minor page faults per 1000 iterations (this thread).
    flt_k: f64,
    /// Resident set growth, bytes per iteration.
    rss_b: f64,
    /// Tracy samples: the cost of a first touch of fresh memory measured
    /// right after the sample, ns per 4 KiB page (NaN for the others).
    fault_ns: f64,
}

/// Fresh-memory probes, kept mapped until the end so that their pages are
/// not handed back to Tracy's queue (which would make its next faults
/// cheaper).
struct Probes(Vec<(*mut c_void, usize)>);

impl Probes {
    /// Map PROBE_PAGES fresh pages, write one byte into each, and return the
    /// time per page: what a page Tracy's queue takes costs at this moment.
    fn probe(&mut self) -> f64 {
        const PROBE_PAGES: usize = 256;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = PROBE_PAGES * page;
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            die(&format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let base = p as *mut u8;
        let t = Instant::now();
        for k in 0..PROBE_PAGES {
            // SAFETY: inside the mapping.
            unsafe { std::ptr::write_volatile(base.add(k * page), 1) };
        }
        let d = t.elapsed();
        self.0.push((p, len));
        d.as_nanos() as f64 / PROBE_PAGES as f64
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for &(p, len) in &self.0 {
            // SAFETY: mappings made by probe().
            unsafe { libc::munmap(p, len) };
        }
    }
}

fn sample(v: V, n: u64, probes: &mut Probes) -> Sample {
    let r = api();
    let on = r.trace_on.load(Relaxed) != 0;
    if on != v.traced() {
        die(&format!(
            "{}: rtc_trace_on is {on} before the sample",
            v.label()
        ));
    }
    let (m0, f0) = (rss(), minflt());
    let t = Instant::now();
    run(v, n);
    let d = t.elapsed();
    let (f1, m1) = (minflt(), rss());
    Sample {
        ns: d.as_nanos() as f64 / n as f64,
        flt_k: (f1 - f0) as f64 * 1000.0 / n as f64,
        rss_b: (m1 as f64 - m0 as f64) / n as f64,
        fault_ns: if v.tracy() { probes.probe() } else { f64::NAN },
    }
}

// ---------------------------------------------------------------------------
// Machine.

fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        format!("nproc: {nproc} (online {online}, {cpus} in /proc/cpuinfo)"),
        format!("CPU model: {model}"),
        format!(
            "clocksource: {}",
            read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        ),
        format!("kernel: {}", read("/proc/sys/kernel/osrelease")),
        format!(
            "load average at start: {}",
            read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ]
}

// ---------------------------------------------------------------------------

fn main() {
    let rounds = env_u64("PEER_ROUNDS", 7).max(3) as usize;
    let samples = env_u64("PEER_SAMPLES", 3).max(1) as usize;
    let off_iters = env_u64("PEER_OFF_ITERS", 2_000_000).max(1);
    let on_iters = env_u64("PEER_ON_ITERS", 500_000).max(1);
    let tracy_iters = env_u64("PEER_TRACY_ITERS", 100_000).max(1);
    let verbose = env_u64("PEER_VERBOSE", 0) != 0;
    let iters = |v: V| {
        if v.tracy() {
            tracy_iters
        } else if v.on() {
            on_iters
        } else {
            off_iters
        }
    };

    let rss_start = rss();
    common::install_panic_exit();
    if std::env::var_os("RTCORE_LIB").is_none() {
        // The library built at the repository's root (the shared loader's
        // default is relative to the package it is compiled into).
        // SAFETY: single-threaded so far: nothing reads the environment
        // concurrently.
        unsafe {
            std::env::set_var(
                "RTCORE_LIB",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../../target/release/librtcore.so"
                ),
            )
        };
    }
    let r = common::rtc::load();
    // SAFETY: static NUL-terminated string.
    let version = unsafe { CStr::from_ptr((r.version)()) }.to_string_lossy();
    // SAFETY: plain call.
    let connected = unsafe { tracy::___tracy_connected() };

    println!("rtcore vs Tracy: user-event cost, one process, one run");
    for l in machine() {
        println!("{l}");
    }
    println!("rtcore: {} (rtcore {version})", r.path.display());
    println!(
        "Tracy: tracy-client-sys 0.30.1 (Tracy client 0.14.1), features enable + only-localhost \
         (no ondemand, broadcast, sampling, system/context-switch tracing, crash handler, \
         verify); profiler server connected: {}",
        if connected != 0 { "yes" } else { "no" }
    );
    println!();
    println!("Method:");
    println!(
        "  every variant is one non-inlined loop `for i in 0..n {{ black_box(i); body }}`; a \
         sample times one loop with CLOCK_MONOTONIC and divides by n (n = {off_iters} for \
         (0)-(4), {on_iters} for (5)-(6), {tracy_iters} for (7)-(9));"
    );
    println!(
        "  {rounds} rounds; each round visits every variant once (the first one rotating by one \
         each round) and takes {samples} consecutive samples of it; one warm-up sample \
         (n/10) of each first; figures are medians over the {} samples per variant;",
        rounds * samples
    );
    println!(
        "  FLOOR: a non-inlined function doing rdtsc and storing a 16-byte record (tsc, sequence \
         number) into a thread-local ring of 256 records (4 KiB, wraps);"
    );
    println!(
        "  rtcore: dlopen'd, called through dlsym'd pointers; RTC_LOG = relaxed load of the \
         exported rtc_trace_on + rtc_log(\"bench\", \"request done\") when set (statuses OR-ed, \
         checked after the loop); region = rtc_region_begin(\"bench region\") + rtc_region_end(), \
         each status checked; (5)(6) run while a trace is recorded (rtc_trace_start, FD sink on \
         /dev/null: the writer runs, the kernel discards the bytes), started before a variant's \
         samples in a round and stopped after them; (3)(4) with no trace;"
    );
    println!(
        "  Tracy: ___tracy_emit_zone_begin(&static srcloc, 1) + ___tracy_emit_zone_end; messages \
         ___tracy_emit_logStringL(Info, 0, 0, \"request done\") (TracyCMessageL: the pointer is \
         queued) and ___tracy_emit_logString(Info, 0, 0, 12, \"request done\") (TracyCMessage: \
         the text is copied);"
    );
    println!(
        "  NO SERVER: with no server connected (and no ondemand) Tracy keeps every event in its \
         queue until one connects: memory grows without bound (32 B per queued item, plus the \
         copied text), and every 4 KiB of it is a page fault on fresh memory, timed with the \
         event. After each Tracy sample a probe maps and touches 256 fresh pages (kept mapped) \
         to price such a fault at that moment; 'Tracy less faults' = sample - (faults per \
         iteration x probe ns per page), an estimate of Tracy's cost without its memory growth;"
    );
    println!(
        "  ratios: / FLOOR and / clock = a variant's median over the floor's and \
         clock_gettime's medians; per event = per pair / 2."
    );
    println!();
    let _ = std::io::stdout().flush();

    // The sink: /dev/null, open for the whole run.
    let devnull = c"/dev/null";
    // SAFETY: NUL-terminated path.
    let fd = unsafe { libc::open(devnull.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        die(&format!(
            "open /dev/null: {}",
            std::io::Error::last_os_error()
        ));
    }
    // One checked call of each traced function before anything is timed.
    trace_start(fd);
    // SAFETY: NUL-terminated strings.
    check("rtc_log", unsafe {
        (r.log)(CATEGORY.as_ptr(), MESSAGE.as_ptr())
    });
    // SAFETY: NUL-terminated name.
    check("rtc_region_begin", unsafe {
        (r.region_begin)(REGION.as_ptr())
    });
    // SAFETY: plain call.
    check("rtc_region_end", unsafe { (r.region_end)() });
    trace_stop();

    let mut probes = Probes(Vec::new());
    let vs = V::ALL;
    let nv = vs.len();
    let t_all = Instant::now();
    // Warm-up.
    for &v in &vs {
        if v.traced() {
            trace_start(fd);
        }
        sample(v, (iters(v) / 10).max(1), &mut probes);
        if v.traced() {
            trace_stop();
        }
    }
    let mut res: Vec<Vec<Sample>> = (0..nv).map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for j in 0..nv {
            let i = (round + j) % nv;
            let v = vs[i];
            if v.traced() {
                trace_start(fd);
            }
            for _ in 0..samples {
                let x = sample(v, iters(v), &mut probes);
                if verbose {
                    eprintln!(
                        "    round {} {:<40} {:>8.2} ns  minflt/1k {:>6.2}  probe {:>6.0} ns/page  \
                         RSS {:>7.1} MiB",
                        round + 1,
                        v.label(),
                        x.ns,
                        x.flt_k,
                        x.fault_ns,
                        rss() as f64 / 1048576.0
                    );
                }
                res[i].push(x);
            }
            if v.traced() {
                trace_stop();
            }
        }
        eprintln!(
            "  round {}/{rounds} done ({:.1} s)",
            round + 1,
            t_all.elapsed().as_secs_f64()
        );
    }
    let elapsed = t_all.elapsed().as_secs_f64();
    let rss_end = rss();
    // SAFETY: plain call.
    let connected_end = unsafe { tracy::___tracy_connected() };
    let probe_bytes: usize = probes.0.iter().map(|x| x.1).sum();
    drop(probes);

    let idx = |v: V| vs.iter().position(|&x| x == v).unwrap();
    let col =
        |v: V, f: fn(&Sample) -> f64| Stats::of(&res[idx(v)].iter().map(f).collect::<Vec<_>>());
    let med = |v: V| col(v, |x| x.ns).median;
    // Tracy less its page faults, per sample, then the median.
    let adj = |v: V| {
        Stats::of(
            &res[idx(v)]
                .iter()
                .map(|x| x.ns - x.flt_k / 1000.0 * x.fault_ns)
                .collect::<Vec<_>>(),
        )
        .median
    };
    let floor = med(V::Floor);
    let clock = med(V::Clock);

    println!(
        "Results: ns per iteration (per begin+end pair for (6) and (7)), {} samples per variant",
        rounds * samples
    );
    println!(
        "{:<40} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>10} {:>9}",
        "variant", "median", "min", "max", "spread", "/ FLOOR", "/ clock", "minflt/1k", "RSS B/it"
    );
    for &v in &vs {
        let s = col(v, |x| x.ns);
        println!(
            "{:<40} {:>9.2} {:>8.2} {:>8.2} {:>6.1}% {:>7.2}x {:>7.2}x {:>10.2} {:>9.1}",
            v.label(),
            s.median,
            s.min,
            s.max,
            (s.max - s.min) / s.median * 100.0,
            s.median / floor,
            s.median / clock,
            col(v, |x| x.flt_k).median,
            col(v, |x| x.rss_b).median
        );
    }
    println!();
    println!(
        "Tracy's page faults (no server): probe = ns per fresh 4 KiB page after each sample \
         (median [min, max]); less faults = median over samples of (ns - faults/it x probe)"
    );
    for v in [V::TracyZone, V::TracyMsgLit, V::TracyMsgCopy] {
        let p = col(v, |x| x.fault_ns);
        let a = adj(v);
        println!(
            "  {:<40} {:>6.4} faults/it  probe {:>6.0} [{:>5.0}, {:>6.0}] ns/page  -> less faults \
             {:>7.2} ns ({:.2}x FLOOR, {:.2}x clock)",
            v.label(),
            col(v, |x| x.flt_k).median / 1000.0,
            p.median,
            p.min,
            p.max,
            a,
            a / floor,
            a / clock
        );
    }
    println!();
    let row = |name: &str, ns: f64| {
        println!(
            "  {name:<46} {ns:>8.2} ns  {:>6.2}x FLOOR  {:>6.2}x clock",
            ns / floor,
            ns / clock
        )
    };
    println!("Per event (medians):");
    row("FLOOR (rdtsc + 16 B record)", floor);
    row("clock_gettime(CLOCK_MONOTONIC)", clock);
    row("rtcore RTC_LOG ON", med(V::RtcMacroOn));
    row(
        "rtcore region, per event (pair / 2)",
        med(V::RtcRegionOn) / 2.0,
    );
    row("rtcore region, per pair", med(V::RtcRegionOn));
    row("Tracy zone, per event (pair / 2)", med(V::TracyZone) / 2.0);
    row("Tracy zone, per pair", med(V::TracyZone));
    row("Tracy message, literal", med(V::TracyMsgLit));
    row("Tracy message, copied", med(V::TracyMsgCopy));
    row("Tracy zone per event, less faults", adj(V::TracyZone) / 2.0);
    row("Tracy message literal, less faults", adj(V::TracyMsgLit));
    row("Tracy message copied, less faults", adj(V::TracyMsgCopy));
    row("rtcore RTC_LOG off (load + branch)", med(V::RtcMacroOff));
    row("rtcore rtc_log() called off", med(V::RtcLogOff));
    row("empty loop", med(V::Empty));
    println!();
    let cmp = |a: &str, x: f64, b: &str, y: f64| {
        println!("  {a:<12} / {b:<34} {x:>7.2} / {y:>7.2} ns = {:.2}x", x / y)
    };
    let log_on = med(V::RtcMacroOn);
    let pair = med(V::RtcRegionOn);
    println!("rtcore vs Tracy (below 1: rtcore cheaper):");
    cmp(
        "RTC_LOG ON",
        log_on,
        "Tracy message literal",
        med(V::TracyMsgLit),
    );
    cmp(
        "RTC_LOG ON",
        log_on,
        "Tracy message copied",
        med(V::TracyMsgCopy),
    );
    cmp(
        "RTC_LOG ON",
        log_on,
        "Tracy zone per event",
        med(V::TracyZone) / 2.0,
    );
    cmp("region pair", pair, "Tracy zone pair", med(V::TracyZone));
    cmp(
        "RTC_LOG ON",
        log_on,
        "Tracy message literal, less faults",
        adj(V::TracyMsgLit),
    );
    cmp(
        "RTC_LOG ON",
        log_on,
        "Tracy message copied, less faults",
        adj(V::TracyMsgCopy),
    );
    cmp(
        "region pair",
        pair,
        "Tracy zone pair, less faults",
        adj(V::TracyZone),
    );
    println!();
    let tracy_events: u64 = vs
        .iter()
        .filter(|v| v.tracy())
        .map(|&v| v.events() * (iters(v) * (rounds * samples) as u64 + (iters(v) / 10).max(1)))
        .sum();
    let growth = rss_end as f64 - rss_start as f64 - probe_bytes as f64;
    println!(
        "Memory: RSS {:.1} MiB before loading rtcore, {:.1} MiB at the end, {:.1} MiB of it the \
         probes: {:+.1} MiB else; Tracy events queued with no server: {tracy_events} ({:.1} B \
         per Tracy event if all that growth is Tracy's); rtcore's traced variants: RSS growth \
         per iteration in the table. Tracy server connected at the end: {}",
        rss_start as f64 / 1048576.0,
        rss_end as f64 / 1048576.0,
        probe_bytes as f64 / 1048576.0,
        growth / 1048576.0,
        growth / tracy_events as f64,
        if connected_end != 0 { "yes" } else { "no" }
    );
    println!("timed part {elapsed:.1} s");
    println!(
        "SUMMARY tracy floor={floor:.2} clock={clock:.2} empty={:.2} rtc_log_on={log_on:.2} \
         region_pair={pair:.2} region_event={:.2} rtc_log_off_call={:.2} rtc_macro_off={:.2} \
         tracy_zone_pair={:.2} tracy_zone_event={:.2} tracy_msg_lit={:.2} tracy_msg_copy={:.2} \
         tracy_zone_pair_lessfaults={:.2} tracy_msg_lit_lessfaults={:.2} \
         tracy_msg_copy_lessfaults={:.2} probe_ns_per_page={:.0}",
        med(V::Empty),
        pair / 2.0,
        med(V::RtcLogOff),
        med(V::RtcMacroOff),
        med(V::TracyZone),
        med(V::TracyZone) / 2.0,
        med(V::TracyMsgLit),
        med(V::TracyMsgCopy),
        adj(V::TracyZone),
        adj(V::TracyMsgLit),
        adj(V::TracyMsgCopy),
        col(V::TracyZone, |x| x.fault_ns).median,
    );
    let _ = std::io::stdout().flush();
    // SAFETY: closing our own descriptor, no trace running.
    unsafe { libc::close(fd) };
}
