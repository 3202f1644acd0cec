//! Plumbing shared by the benchmarks: where the library is, dlopen error
//! text, sample statistics and the load average.
#![allow(dead_code)]

use std::ffi::{CStr, CString, c_void};
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
