//! rtcore's C API as the benchmarks call it: the library is loaded with
//! `dlopen` and every function called through a `dlsym`'d pointer, as a C
//! program would; the mirrors of the header's structs; the wrappers that
//! check each status (a failed call ends the benchmark with rtcore's own
//! message). One copy for every bench (benches/*.rs hold their variants).
#![allow(dead_code)]

use std::ffi::{CStr, CString, c_char, c_void};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{PHASE, PROGRESS};

/// Mirror of `struct rtc_mutex` in include/rtcore.h (64 bytes, 8-aligned).
#[repr(C)]
pub struct RtcMutex {
    pub state: u64,
    pub name: *const c_char,
    pub rank_name: *const c_char,
    pub rank: u32,
    pub flags: u32,
    pub home: usize,
    pub acquisitions: u64,
    pub reserved: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<RtcMutex>() == 64);
const _: () = assert!(std::mem::align_of::<RtcMutex>() == 8);

/// Mirror of `struct rtc_rwlock` in include/rtcore.h (64 bytes, 8-aligned;
/// all zero is a valid unranked rwlock).
#[repr(C)]
pub struct RtcRwLock {
    pub state: u64,
    pub name: *const c_char,
    pub rank_name: *const c_char,
    pub rank: u32,
    pub flags: u32,
    pub home: usize,
    pub acquisitions: u64,
    pub reserved: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<RtcRwLock>() == 64);
const _: () = assert!(std::mem::align_of::<RtcRwLock>() == 8);

/// Mirror of `struct rtc_census` in include/rtcore.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RtcCensus {
    pub size: u32,
    pub stopped: u32,
    pub threads_running: u32,
    pub threads_runnable: u32,
    pub threads_blocking: u32,
    pub threads_waiting: u32,
    pub procs: u32,
    pub procs_idle: u32,
    pub procs_running: u32,
    pub procs_syscall: u32,
    pub procs_stopped: u32,
    pub stops: u64,
}

/// Mirror of `struct rtc_sysmon_stats` in include/rtcore.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RtcSysmonStats {
    pub size: u32,
    pub running: u32,
    pub ticks: u64,
    pub delay_ns: u64,
    pub deep_sleeps: u64,
    pub retakes: u64,
    pub preempt_requests: u64,
    pub stall_reports: u64,
    pub stalls_resolved: u64,
    pub hook_runs: u64,
    pub hook_overruns: u64,
    pub hooks: u64,
    pub deadlocks: u64,
}

const _: () = assert!(std::mem::size_of::<RtcCensus>() == 56);

const _: () = assert!(std::mem::size_of::<RtcSysmonStats>() == 96);

pub type TraceWriteFn = unsafe extern "C" fn(*const u8, usize, *mut c_void) -> i32;

/// The first 40 bytes of `struct rtc_trace_config` in include/rtcore.h:
/// its size before `max_mb`, which the library still accepts (`size`
/// says which).
#[repr(C)]
pub struct RtcTraceConfig {
    pub size: u32,
    pub sink_kind: u32,
    pub path: *const c_char,
    pub fd: i32,
    pub generation_ms: u32,
    pub write: Option<TraceWriteFn>,
    pub user_data: *mut c_void,
}

const _: () = assert!(std::mem::size_of::<RtcTraceConfig>() == 40);

pub type HookCb = unsafe extern "C" fn(*mut c_void);
pub type MutexInitFn = unsafe extern "C" fn(*mut RtcMutex, *const c_char, *const c_char) -> i32;
pub type MutexFn = unsafe extern "C" fn(*mut RtcMutex) -> i32;
pub type RwLockInitFn = unsafe extern "C" fn(*mut RtcRwLock, *const c_char, *const c_char) -> i32;
pub type RwLockFn = unsafe extern "C" fn(*mut RtcRwLock) -> i32;
pub type RanksLoadFn = unsafe extern "C" fn(*const c_char, *const c_char) -> i32;
pub type SetModeFn = unsafe extern "C" fn(i32) -> i32;
pub type GetModeFn = unsafe extern "C" fn(*mut i32) -> i32;
pub type ViolationsFn = unsafe extern "C" fn(*mut u64) -> i32;
pub type AttachFn = unsafe extern "C" fn(*const c_char, *mut u64) -> i32;
pub type VoidFn = unsafe extern "C" fn() -> i32;
pub type ReasonFn = unsafe extern "C" fn(*const c_char) -> i32;
pub type SetMaxprocsFn = unsafe extern "C" fn(u32, *mut u32) -> i32;
pub type GetMaxprocsFn = unsafe extern "C" fn(*mut u32) -> i32;
pub type CensusFn = unsafe extern "C" fn(*mut RtcCensus) -> i32;
pub type SysmonStatsFn = unsafe extern "C" fn(*mut RtcSysmonStats) -> i32;
pub type HookAddFn = unsafe extern "C" fn(*const c_char, u64, HookCb, *mut c_void, *mut u64) -> i32;
pub type HookRemoveFn = unsafe extern "C" fn(u64) -> i32;
pub type TraceStartFn = unsafe extern "C" fn(*const RtcTraceConfig) -> i32;
pub type LogFn = unsafe extern "C" fn(*const c_char, *const c_char) -> i32;
pub type CheckFileFn = unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> i32;
pub type VersionFn = unsafe extern "C" fn() -> *const c_char;
pub type StatusStrFn = unsafe extern "C" fn(i32) -> *const c_char;
pub type LastErrorFn = unsafe extern "C" fn(*mut c_char, usize) -> usize;

/// The `rtc_rwlock` functions (a later addition to the ABI: absent from an
/// older library, so looked up without failing).
pub struct RwLockApi {
    pub init: RwLockInitFn,
    pub rdlock: RwLockFn,
    pub wrlock: RwLockFn,
    pub unlock: RwLockFn,
    pub destroy: RwLockFn,
}

/// Every rtcore function the benchmarks call, looked up once with `dlsym`.
pub struct Api {
    pub path: PathBuf,
    pub mutex_init: MutexInitFn,
    pub mutex_lock: MutexFn,
    pub mutex_unlock: MutexFn,
    pub mutex_destroy: MutexFn,
    pub ranks_load: RanksLoadFn,
    pub set_mode: SetModeFn,
    pub get_mode: GetModeFn,
    pub violations: ViolationsFn,
    pub thread_attach: AttachFn,
    pub thread_detach: VoidFn,
    pub safepoint: VoidFn,
    pub enter_blocking: ReasonFn,
    pub exit_blocking: VoidFn,
    pub stop_the_world: ReasonFn,
    pub start_the_world: VoidFn,
    pub set_maxprocs: SetMaxprocsFn,
    pub get_maxprocs: GetMaxprocsFn,
    pub census: CensusFn,
    pub sysmon_get_stats: SysmonStatsFn,
    pub hook_add: HookAddFn,
    pub hook_remove: HookRemoveFn,
    pub trace_start: TraceStartFn,
    pub trace_stop: VoidFn,
    pub trace_enabled: VoidFn,
    pub log: LogFn,
    pub region_begin: ReasonFn,
    pub region_end: VoidFn,
    pub trace_check_file: CheckFileFn,
    pub version: VersionFn,
    pub status_str: StatusStrFn,
    pub last_error: LastErrorFn,
    /// The exported `uint32_t rtc_trace_on`.
    pub trace_on: &'static AtomicU32,
    /// `rtc_rwlock_*`, or None when the library has no `rtc_rwlock_init`.
    pub rwlock: Option<RwLockApi>,
}

/// Look `name` up in the library at `path` (already loaded by `load`),
/// without failing: NULL when it is not there.
fn optional_sym(path: &std::path::Path, name: &str) -> *mut c_void {
    let Ok(cpath) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return std::ptr::null_mut();
    };
    // SAFETY: valid NUL-terminated path; RTLD_NOLOAD only returns a handle
    // to the library `load` already opened (one more reference, never
    // closed, as the library never is).
    let h = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if h.is_null() {
        return std::ptr::null_mut();
    }
    let c = CString::new(name).unwrap();
    // SAFETY: valid handle and NUL-terminated name.
    unsafe { libc::dlsym(h, c.as_ptr()) }
}

/// The `rtc_rwlock_*` functions, all or none (None when the library
/// predates them).
fn load_rwlock(path: &std::path::Path) -> Option<RwLockApi> {
    let init = optional_sym(path, "rtc_rwlock_init");
    if init.is_null() {
        return None;
    }
    let need = |name: &str| {
        let p = optional_sym(path, name);
        assert!(
            !p.is_null(),
            "{name} not found in {} though rtc_rwlock_init is",
            path.display()
        );
        p
    };
    // SAFETY: each symbol is the function of that name in include/rtcore.h,
    // with the signature spelled out by the type it is transmuted to.
    unsafe {
        Some(RwLockApi {
            init: std::mem::transmute::<*mut c_void, RwLockInitFn>(init),
            rdlock: std::mem::transmute::<*mut c_void, RwLockFn>(need("rtc_rwlock_rdlock")),
            wrlock: std::mem::transmute::<*mut c_void, RwLockFn>(need("rtc_rwlock_wrlock")),
            unlock: std::mem::transmute::<*mut c_void, RwLockFn>(need("rtc_rwlock_unlock")),
            destroy: std::mem::transmute::<*mut c_void, RwLockFn>(need("rtc_rwlock_destroy")),
        })
    }
}

static API: OnceLock<Api> = OnceLock::new();

/// The loaded library (after `load`).
pub fn api() -> &'static Api {
    API.get().expect("rtcore not loaded")
}

/// Load the library (`common::open_library`) and look every function up.
pub fn load() -> &'static Api {
    let (path, sym) = super::open_library();
    let flag = sym("rtc_trace_on");
    assert!(
        (flag as usize) % std::mem::align_of::<AtomicU32>() == 0,
        "rtc_trace_on is not aligned for a 32-bit atomic"
    );
    // SAFETY: each symbol is the function of that name in include/rtcore.h,
    // with the signature spelled out by the type it is transmuted to;
    // `rtc_trace_on` is a `uint32_t` the library only changes atomically and
    // that lives as long as the library (never closed).
    let loaded = unsafe {
        Api {
            path: path.clone(),
            mutex_init: std::mem::transmute::<*mut c_void, MutexInitFn>(sym("rtc_mutex_init")),
            mutex_lock: std::mem::transmute::<*mut c_void, MutexFn>(sym("rtc_mutex_lock")),
            mutex_unlock: std::mem::transmute::<*mut c_void, MutexFn>(sym("rtc_mutex_unlock")),
            mutex_destroy: std::mem::transmute::<*mut c_void, MutexFn>(sym("rtc_mutex_destroy")),
            ranks_load: std::mem::transmute::<*mut c_void, RanksLoadFn>(sym("rtc_ranks_load")),
            set_mode: std::mem::transmute::<*mut c_void, SetModeFn>(sym("rtc_lockrank_set_mode")),
            get_mode: std::mem::transmute::<*mut c_void, GetModeFn>(sym("rtc_lockrank_get_mode")),
            violations: std::mem::transmute::<*mut c_void, ViolationsFn>(sym(
                "rtc_lockrank_violations",
            )),
            thread_attach: std::mem::transmute::<*mut c_void, AttachFn>(sym("rtc_thread_attach")),
            thread_detach: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_thread_detach")),
            safepoint: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_safepoint")),
            enter_blocking: std::mem::transmute::<*mut c_void, ReasonFn>(sym("rtc_enter_blocking")),
            exit_blocking: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_exit_blocking")),
            stop_the_world: std::mem::transmute::<*mut c_void, ReasonFn>(sym("rtc_stop_the_world")),
            start_the_world: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_start_the_world")),
            set_maxprocs: std::mem::transmute::<*mut c_void, SetMaxprocsFn>(sym(
                "rtc_set_maxprocs",
            )),
            get_maxprocs: std::mem::transmute::<*mut c_void, GetMaxprocsFn>(sym(
                "rtc_get_maxprocs",
            )),
            census: std::mem::transmute::<*mut c_void, CensusFn>(sym("rtc_world_census")),
            sysmon_get_stats: std::mem::transmute::<*mut c_void, SysmonStatsFn>(sym(
                "rtc_sysmon_get_stats",
            )),
            hook_add: std::mem::transmute::<*mut c_void, HookAddFn>(sym("rtc_sysmon_hook_add")),
            hook_remove: std::mem::transmute::<*mut c_void, HookRemoveFn>(sym(
                "rtc_sysmon_hook_remove",
            )),
            trace_start: std::mem::transmute::<*mut c_void, TraceStartFn>(sym("rtc_trace_start")),
            trace_stop: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_trace_stop")),
            trace_enabled: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_trace_enabled")),
            log: std::mem::transmute::<*mut c_void, LogFn>(sym("rtc_log")),
            region_begin: std::mem::transmute::<*mut c_void, ReasonFn>(sym("rtc_region_begin")),
            region_end: std::mem::transmute::<*mut c_void, VoidFn>(sym("rtc_region_end")),
            trace_check_file: std::mem::transmute::<*mut c_void, CheckFileFn>(sym(
                "rtc_trace_check_file",
            )),
            version: std::mem::transmute::<*mut c_void, VersionFn>(sym("rtc_version")),
            status_str: std::mem::transmute::<*mut c_void, StatusStrFn>(sym("rtc_status_str")),
            last_error: std::mem::transmute::<*mut c_void, LastErrorFn>(sym(
                "rtc_last_error_message",
            )),
            trace_on: &*(flag as *const AtomicU32),
            rwlock: load_rwlock(&path),
        }
    };
    if API.set(loaded).is_err() {
        panic!("rtcore loaded twice");
    }
    api()
}

/// A failed rtcore call: panic with the status name and the last error.
#[cold]
#[inline(never)]
pub fn rtc_fail(what: &str, status: i32) -> ! {
    let a = api();
    panic!(
        "{}",
        super::failure(a.status_str, a.last_error, what, status)
    );
}

#[inline(always)]
pub fn check(what: &str, status: i32) {
    if status != 0 {
        rtc_fail(what, status);
    }
}

pub fn attach(name: &str) -> u64 {
    let c = CString::new(name).unwrap();
    let mut id = 0u64;
    // SAFETY: NUL-terminated name, valid out-pointer.
    check("rtc_thread_attach", unsafe {
        (api().thread_attach)(c.as_ptr(), &mut id)
    });
    id
}

pub fn detach() {
    // SAFETY: plain call.
    check("rtc_thread_detach", unsafe { (api().thread_detach)() });
}

pub fn enter_blocking(reason: &CStr) {
    // SAFETY: NUL-terminated reason.
    check("rtc_enter_blocking", unsafe {
        (api().enter_blocking)(reason.as_ptr())
    });
}

pub fn exit_blocking() {
    // SAFETY: plain call.
    check("rtc_exit_blocking", unsafe { (api().exit_blocking)() });
}

pub fn stop_world() {
    // SAFETY: NUL-terminated reason.
    check("rtc_stop_the_world", unsafe {
        (api().stop_the_world)(c"bench".as_ptr())
    });
}

pub fn start_world() {
    // SAFETY: plain call.
    check("rtc_start_the_world", unsafe { (api().start_the_world)() });
}

pub fn census() -> RtcCensus {
    let mut c = RtcCensus {
        size: std::mem::size_of::<RtcCensus>() as u32,
        ..Default::default()
    };
    // SAFETY: valid out-pointer with `size` set.
    check("rtc_world_census", unsafe { (api().census)(&mut c) });
    c
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

pub fn set_maxprocs(n: u32) -> u32 {
    let mut prev = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_set_maxprocs", unsafe {
        (api().set_maxprocs)(n, &mut prev)
    });
    let mut got = u32::MAX;
    // SAFETY: valid out-pointer.
    check("rtc_get_maxprocs", unsafe {
        (api().get_maxprocs)(&mut got)
    });
    assert_eq!(got, n, "rtc_get_maxprocs after rtc_set_maxprocs({n})");
    prev
}

pub fn spawn_watchdog(limit: Duration) {
    std::thread::Builder::new()
        .name("bench watchdog".into())
        .spawn(move || {
            let mut last = PROGRESS.load(Relaxed);
            let mut since = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let now = PROGRESS.load(Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                    continue;
                }
                if since.elapsed() < limit {
                    continue;
                }
                let ph = PHASE.lock().map(|p| p.clone()).unwrap_or_default();
                eprintln!(
                    "\nbenchmark HUNG: no progress for {:?} in phase: {ph}",
                    since.elapsed()
                );
                // The census takes the world's inner lock: ask from another
                // thread and give up on it after 2 s.
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(census());
                });
                match rx.recv_timeout(Duration::from_secs(2)) {
                    Ok(c) => eprintln!("census: {c:?}"),
                    Err(_) => eprintln!("census: rtc_world_census did not return within 2 s"),
                }
                let _ = std::io::stderr().flush();
                // SAFETY: ends the process.
                unsafe { libc::_exit(2) };
            }
        })
        .expect("spawn watchdog");
}

pub fn set_mode(mode: i32) {
    let a = api();
    // SAFETY: plain call.
    check("rtc_lockrank_set_mode", unsafe { (a.set_mode)(mode) });
    let mut got = -1;
    // SAFETY: valid out-pointer.
    check("rtc_lockrank_get_mode", unsafe { (a.get_mode)(&mut got) });
    assert_eq!(got, mode, "rtc_lockrank_get_mode after set_mode({mode})");
}

pub fn violations() -> u64 {
    let mut n = 0;
    // SAFETY: valid out-pointer.
    check("rtc_lockrank_violations", unsafe {
        (api().violations)(&mut n)
    });
    n
}

/// The lines every benchmark opens with: what it is, which library (and
/// its version), the machine, the load, and a warning if the library is
/// older than the source.
pub fn banner(bench: &str, machine: &str) {
    let a = api();
    // SAFETY: rtc_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr((a.version)()) }.to_string_lossy();
    println!("rtcore {bench} benchmark");
    println!("library: {} (rtcore {version})", a.path.display());
    println!("machine: {machine}");
    println!("load average (1 min) at start: {}", super::loadavg());
    if std::env::var_os("RTCORE_LIB").is_none() {
        super::warn_if_stale(&a.path);
    }
}
