//! Plumbing shared by the benchmarks: where the library is, dlopen error
//! text, sample statistics and the load average.
#![allow(dead_code)]

use std::ffi::CStr;
use std::path::PathBuf;

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
