//! Plumbing shared by the benchmarks: where the library is, dlopen error
//! text, sample statistics and the load average.
#![allow(dead_code)]

use std::ffi::{CStr, CString, c_void};
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod rtc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub fn lib_path() -> PathBuf {
    if let Some(p) = std::env::var_os("RTCORE_LIB") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/librtcore.so")
}

pub fn dlerror_text() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "(no dlerror message)".into()
    } else {
        // SAFETY: non-NULL, NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(xs: &[f64]) -> Stats {
        let mut v = xs.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
    pub fn spread(&self) -> f64 {
        (self.max - self.min) / self.median
    }
}

/// The 1-minute load average: other work on the machine skews the numbers.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Open the library under test (`lib_path()`): exits with a clear message
/// when it is missing or does not load. Returns its path and a symbol
/// lookup that panics on a missing symbol.
pub fn open_library() -> (PathBuf, impl Fn(&str) -> *mut c_void) {
    let path = lib_path();
    if !path.exists() {
        eprintln!(
            "error: {} not found.\n\
             Build the shared library first: cd {} && cargo build --release\n\
             (or point RTCORE_LIB at a built librtcore.so)",
            path.display(),
            env!("CARGO_MANIFEST_DIR")
        );
        std::process::exit(1);
    }
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).expect("path has a NUL");
    // SAFETY: valid NUL-terminated path.
    let h = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        eprintln!(
            "error: dlopen({}) failed: {}\nRebuild it with: cargo build --release",
            path.display(),
            dlerror_text()
        );
        std::process::exit(1);
    }
    let shown = path.display().to_string();
    let sym = move |name: &str| -> *mut c_void {
        let c = CString::new(name).unwrap();
        // SAFETY: valid handle and NUL-terminated name.
        let p = unsafe { libc::dlsym(h, c.as_ptr()) };
        if p.is_null() {
            panic!(
                "dlsym({name}) failed in {}: {} (is the library up to date? cargo build --release)",
                shown,
                dlerror_text()
            );
        }
        p
    };
    (path, sym)
}

/// "what returned N (STATUS): last error", read through the library's own
/// `rtc_status_str` and `rtc_last_error_message`.
pub fn failure(
    status_str: unsafe extern "C" fn(i32) -> *const std::ffi::c_char,
    last_error: unsafe extern "C" fn(*mut std::ffi::c_char, usize) -> usize,
    what: &str,
    status: i32,
) -> String {
    // SAFETY: rtc_status_str returns a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(status_str(status)) }
        .to_string_lossy()
        .into_owned();
    let mut buf = vec![0 as std::ffi::c_char; 1024];
    // SAFETY: buf is writable for its length.
    unsafe { last_error(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: always NUL-terminated when len > 0.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    format!("{what} returned {status} ({name}): {msg}")
}

/// Available CPUs (at least 1).
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Bumped by the benchmark as it goes; the watchdog ends a run that stops
/// moving.
pub static PROGRESS: AtomicU64 = AtomicU64::new(0);
/// What the benchmark is doing now (for the watchdog's message).
pub static PHASE: Mutex<String> = Mutex::new(String::new());

pub fn progress() {
    PROGRESS.fetch_add(1, Relaxed);
}

pub fn phase(s: String) {
    *PHASE.lock().unwrap() = s;
    progress();
}

/// A failed check ends the process at once: other threads may be blocked
/// or parked inside rtcore, so unwinding and joining could hang.
pub fn install_panic_exit() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        eprintln!(
            "benchmark failed: exiting (other threads may be blocked or parked inside rtcore)"
        );
        // SAFETY: ends the process without running destructors.
        unsafe { libc::_exit(101) };
    }));
}

/// CPU time so far, in clock ticks: (all CPUs busy, this process), from
/// /proc/stat and /proc/self/stat: what the rest of the machine did during
/// a window.
pub fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum();
    let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = me.rsplit_once(')').map_or("", |x| x.1);
    let g: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the comm.
    let own = g.get(11).copied().unwrap_or(0) + g.get(12).copied().unwrap_or(0);
    (busy, own)
}

/// Warn when a source file is newer than the library being measured.
pub fn warn_if_stale(lib: &Path) {
    let Ok(lib_time) = std::fs::metadata(lib).and_then(|m| m.modified()) else {
        return;
    };
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("src/bin") {
                stack.push(p);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                if t > lib_time {
                    eprintln!(
                        "warning: {} is newer than {}: run cargo build --release to measure the current source",
                        p.display(),
                        lib.display()
                    );
                    return;
                }
            }
        }
    }
}

/// "CPU model, nproc N (M in /proc/cpuinfo), Linux K, glibc G".
pub fn machine_base() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    // SAFETY: returns a static NUL-terminated string.
    let glibc = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }.to_string_lossy();
    format!(
        "{model}, nproc {} ({cpus} in /proc/cpuinfo), Linux {kernel}, glibc {glibc}",
        nproc()
    )
}

/// The kernel's clocksource ("tsc", ...).
pub fn clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Measures how busy the machine was with other work during a part.
pub struct CpuWatch {
    t: std::time::Instant,
    ticks: (u64, u64),
}

impl CpuWatch {
    pub fn start() -> CpuWatch {
        CpuWatch {
            t: std::time::Instant::now(),
            ticks: cpu_ticks(),
        }
    }
    pub fn report(&self, part: &str) {
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

/// Take `rounds` samples of every variant, round robin: each round visits
/// every variant once, starting one further along each time, so drift
/// (another process, frequency changes) hits all variants alike. `sample`
/// gets the round and the variant; `after_round` the round just done (for
/// progress). Returns the samples per variant, in `variants`' order.
pub fn round_robin<V: Copy, T>(
    variants: &[V],
    rounds: usize,
    mut sample: impl FnMut(usize, V) -> T,
    mut after_round: impl FnMut(usize),
) -> Vec<Vec<T>> {
    let n = variants.len();
    let mut out: Vec<Vec<T>> = (0..n).map(|_| Vec::with_capacity(rounds)).collect();
    for r in 0..rounds {
        for j in 0..n {
            let i = (r + j) % n;
            out[i].push(sample(r, variants[i]));
        }
        after_round(r);
    }
    out
}

/// The header of a statistics table: the variant column `width` wide,
/// then median, min, max, spread and the caller's extra columns.
pub fn stats_header(width: usize, extra: &str) -> String {
    format!(
        "{:<width$} {:>8} {:>8} {:>8} {:>7} {extra}",
        "variant", "median", "min", "max", "spread"
    )
}

/// One row of a statistics table (values divided by `scale`), to which the
/// caller appends its extra columns.
pub fn stats_row(width: usize, label: &str, st: &Stats, scale: f64) -> String {
    format!(
        "{:<width$} {:>8.2} {:>8.2} {:>8.2} {:>6.1}%",
        label,
        st.median / scale,
        st.min / scale,
        st.max / scale,
        st.spread() * 100.0
    )
}

thread_local! {
    /// The floor's ring: 256 records of 16 bytes.
    static FLOOR_RING: std::cell::RefCell<([u64; 512], usize)> =
        const { std::cell::RefCell::new(([0; 512], 0)) };
}

/// The floor the tracer's costs are compared with: a bare `rdtsc` and a
/// 16-byte record (the time and a value) into a thread-local buffer,
/// through a non-inlined call.
#[inline(never)]
pub fn floor_event(v: u64) {
    // SAFETY: `rdtsc` has no preconditions on x86-64.
    let t = unsafe { core::arch::x86_64::_rdtsc() };
    FLOOR_RING.with(|r| {
        let mut r = r.borrow_mut();
        let i = r.1;
        r.0[i] = t;
        r.0[i + 1] = v;
        r.1 = (i + 2) % 512;
    });
}
