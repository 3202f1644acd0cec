//! Automatic dumps: an incident (`base::incident`) queues a snapshot into
//! the dump directory, which a thread of its own writes ("rtcore-flight-
//! dumper": sysmon and lock paths never wait for I/O).
//!
//! - Names: `rtcore-PID-YYYYMMDDTHHMMSS-CAUSE.rtctrace` (UTC), created
//!   exclusively (`-2`, `-3`, ... appended if taken): never overwriting.
//! - At most one dump per cause per rate limit.
//! - The directory's budget (dumps and bytes) counts only files named as
//!   rtcore's dumps are; past it, the oldest of those go, never another
//!   file and never the dump just written.
//!
//! Invariants:
//! - `STATE` is held only to read or change the queue and settings, never
//!   across I/O or a wait, so raising an incident never blocks for long
//!   (sysmon raises holding `sysmonlock`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Config;
use crate::base::incident::{self, Cause};
use crate::record::ring::Ring;
use crate::status::{Error, RTC_ERR_IO, Result};

struct State {
    dir: Option<PathBuf>,
    triggers: u32,
    rate_limit_ns: u64,
    dir_max_dumps: u32,
    dir_max_bytes: u64,
    ring: Option<Arc<Ring>>,
    /// When each cause last dumped (ns on rtcore's clock; 0: never).
    last: [u64; 4],
    queue: VecDeque<(Cause, PathBuf)>,
    thread: bool,
    handle: Option<std::thread::JoinHandle<()>>,
    /// The dumper thread returns (rtcore's shutdown).
    quit: bool,
}

static STATE: crate::base::inner::ResettableMutex<State> =
    crate::base::inner::ResettableMutex::new(State {
        dir: None,
        triggers: 0,
        rate_limit_ns: 0,
        dir_max_dumps: 0,
        dir_max_bytes: 0,
        ring: None,
        last: [0; 4],
        queue: VecDeque::new(),
        thread: false,
        handle: None,
        quit: false,
    });
static WAKE: parking_lot::Condvar = parking_lot::Condvar::new();

/// Dumps written and dumps that failed (for tests and stats).
pub static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn bit(c: Cause) -> u32 {
    match c {
        Cause::Stall => super::ON_STALL,
        Cause::Deadlock => super::ON_DEADLOCK,
        Cause::LockOrder => super::ON_LOCK_ORDER,
        Cause::FatalSignal => super::ON_FATAL_SIGNAL,
    }
}

/// The directory must exist (it is made if missing) and be a writable
/// directory.
pub fn check_dir(dir: &Path) -> Result<()> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(Error::new(
            RTC_ERR_IO,
            format!(
                "flight recorder: cannot make the dump directory '{}': {e}",
                dir.display()
            ),
        ));
    }
    let ok = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .ok()
        // SAFETY: a NUL-terminated path.
        .is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0);
    if !dir.is_dir() || !ok {
        return Err(Error::new(
            RTC_ERR_IO,
            format!(
                "flight recorder: '{}' is not a writable directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Set up (or, with None, end) automatic dumps for a recorder.
pub fn configure(with: Option<(&Config, Arc<Ring>)>) {
    let mut s = STATE.lock();
    match with {
        Some((c, ring)) => {
            s.dir = c.dump_dir.clone();
            s.triggers = c.triggers;
            s.rate_limit_ns = u64::from(c.rate_limit_ms) * 1_000_000;
            s.dir_max_dumps = c.dir_max_dumps.max(1);
            s.dir_max_bytes = c.dir_max_bytes;
            s.ring = Some(ring);
            s.last = [0; 4];
            if s.dir.is_some() && !s.thread {
                s.quit = false;
                match std::thread::Builder::new()
                    .name("rtcore-flight-dumper".into())
                    .spawn(dumper)
                {
                    Ok(h) => {
                        s.thread = true;
                        s.handle = Some(h);
                    }
                    Err(e) => crate::diag::eprintln(&format!(
                        "rtcore: flight recorder: cannot start its dump thread ({e}): no automatic dumps"
                    )),
                }
            }
            incident::register(Some(on_incident));
        }
        None => {
            incident::register(None);
            s.dir = None;
            s.ring = None;
            s.queue.clear();
        }
    }
}

/// `base::incident`'s handler: queue a dump, say where it will be.
fn on_incident(cause: Cause) -> Option<String> {
    let mut s = STATE.lock();
    let dir = s.dir.clone()?;
    if s.triggers & bit(cause) == 0 || !s.thread {
        return None;
    }
    let now = crate::base::clock::now_ns();
    let i = cause as usize;
    if s.last[i] != 0 && now.saturating_sub(s.last[i]) < s.rate_limit_ns {
        return None;
    }
    s.last[i] = now;
    let path = dir.join(dump_name(std::process::id(), unix_now(), cause));
    s.queue.push_back((cause, path.clone()));
    WAKE.notify_one();
    Some(format!("flight recorder: writing {}", path.display()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// "rtcore-4242-20261206T170102-deadlock.rtctrace"
pub fn dump_name(pid: u32, unix_secs: u64, cause: Cause) -> String {
    format!(
        "rtcore-{pid}-{}-{}.rtctrace",
        utc_stamp(unix_secs),
        cause.name()
    )
}

/// "YYYYMMDDTHHMMSS" in UTC (civil date from days since 1970-01-01).
pub fn utc_stamp(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}")
}

/// (year, month, day, hour, minute, second) of `secs` after the epoch, UTC.
pub fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil, for days after 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Is `name` one of rtcore's dump names?
pub fn is_dump_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("rtcore-")
        .and_then(|r| r.strip_suffix(".rtctrace"))
    else {
        return false;
    };
    let mut it = rest.split('-');
    let pid_ok = it
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let stamp_ok = it
        .next()
        .is_some_and(|t| t.len() == 15 && t.as_bytes()[8] == b'T');
    let cause_ok = it
        .next()
        .is_some_and(|c| Cause::ALL.iter().any(|k| k.name() == c));
    let suffix_ok = it
        .next()
        .is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    pid_ok && stamp_ok && cause_ok && suffix_ok && it.next().is_none()
}

fn dumper() {
    loop {
        let (cause, path) = {
            let mut s = STATE.lock();
            loop {
                if let Some(item) = s.queue.pop_front() {
                    break item;
                }
                if s.quit {
                    return;
                }
                WAKE.wait(&mut s);
            }
        };
        write_dump(cause, &path);
    }
}

/// rtcore's shutdown: the dumper thread writes what is queued, returns and
/// is joined.
pub fn shutdown() {
    let h = {
        let mut s = STATE.lock();
        s.quit = true;
        s.thread = false;
        WAKE.notify_all();
        s.handle.take()
    };
    if let Some(h) = h {
        let _ = h.join();
    }
}

/// In a forked child: the dumper thread does not exist; nothing is queued
/// or configured (the parent's recorder does not record here).
///
/// # Safety
/// Only in the child's atfork handler, on the only thread.
pub unsafe fn after_fork_child() {
    // SAFETY: the caller's guarantee (its holder does not exist here).
    unsafe { STATE.reset_after_fork() };
    let mut s = STATE.lock();
    s.queue.clear();
    s.dir = None;
    s.ring = None;
    s.thread = false;
    if let Some(h) = s.handle.take() {
        crate::base::fork::keep_forever(h);
    }
    incident::register(None);
}

/// Write one dump: a snapshot into a file created exclusively, then the
/// directory's budget.
fn write_dump(cause: Cause, path: &Path) {
    let control = super::CONTROL.lock();
    let Some(active) = control.as_ref() else {
        return;
    };
    let (file, path) = match create_exclusive(path) {
        Ok(x) => x,
        Err(e) => {
            FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::diag::eprintln(&format!(
                "rtcore: flight recorder: cannot create {}: {e}",
                path.display()
            ));
            return;
        }
    };
    let sink = crate::record::writer::Sink::File {
        file,
        regular: false,
    };
    match super::snapshot_into(&active.ring, sink) {
        Ok(n) => {
            WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::diag::eprintln(&format!(
                "rtcore: flight recorder: wrote {} ({n} bytes; cause: {})",
                path.display(),
                cause.name()
            ));
            let (max_dumps, max_bytes) = {
                let s = STATE.lock();
                (s.dir_max_dumps, s.dir_max_bytes)
            };
            if let Some(dir) = path.parent() {
                enforce_budget(dir, &path, max_dumps, max_bytes);
            }
        }
        Err(e) => {
            FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = std::fs::remove_file(&path);
            crate::diag::eprintln(&format!(
                "rtcore: flight recorder: could not write {}: {}",
                path.display(),
                e.message
            ));
        }
    }
}

/// Create `path` exclusively; if it exists, `path` with `-2`, `-3`, ...
/// before the extension.
fn create_exclusive(path: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let stem = path.with_extension("");
    for n in 1..=100 {
        let p = if n == 1 {
            path.to_path_buf()
        } else {
            PathBuf::from(format!("{}-{n}.rtctrace", stem.display()))
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&p)
        {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "100 dumps of the same second and cause already exist",
    ))
}

/// Remove the oldest of rtcore's dumps in `dir` (never `keep`) while more
/// than `max_dumps` or `max_bytes` of them remain.
pub fn enforce_budget(dir: &Path, keep: &Path, max_dumps: u32, max_bytes: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dumps: Vec<(std::time::SystemTime, String, PathBuf, u64)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if !is_dump_name(&name) {
                return None;
            }
            let m = e.metadata().ok()?;
            if !m.is_file() {
                return None;
            }
            Some((m.modified().ok()?, name, e.path(), m.len()))
        })
        .collect();
    // Oldest first (by time, then by name: the seconds in the name).
    dumps.sort();
    let mut count = dumps.len() as u64;
    let mut bytes: u64 = dumps.iter().map(|d| d.3).sum();
    for (_, _, p, len) in dumps {
        if count <= u64::from(max_dumps) && bytes <= max_bytes {
            break;
        }
        if p == keep {
            continue;
        }
        if std::fs::remove_file(&p).is_ok() {
            count -= 1;
            bytes = bytes.saturating_sub(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dated_in_utc_and_recognised() {
        // 2026-12-06T17:01:02Z
        assert_eq!(utc_stamp(1_796_576_462), "20261206T170102");
        assert_eq!(utc_stamp(0), "19700101T000000");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000");
        let n = dump_name(4242, 1_796_576_462, Cause::Deadlock);
        assert_eq!(n, "rtcore-4242-20261206T170102-deadlock.rtctrace");
        assert!(is_dump_name(&n));
        assert!(is_dump_name("rtcore-1-20261206T170102-stall-3.rtctrace"));
        for other in [
            "rtcore-x-20261206T170102-stall.rtctrace",
            "rtcore-1-20261206T170102-boom.rtctrace",
            "rtcore-1-2026-stall.rtctrace",
            "my-trace.rtctrace",
            "rtcore-1-20261206T170102-stall.rtctrace.bak",
            "rtcore-1-20261206T170102-stall--.rtctrace",
        ] {
            assert!(!is_dump_name(other), "{other}");
        }
    }

    #[test]
    fn the_budget_removes_the_oldest_dumps_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("rtcore-dump-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut made = Vec::new();
        for i in 0..5u64 {
            let p = dir.join(dump_name(7, 1_796_576_462 + i, Cause::Stall));
            std::fs::write(&p, vec![0u8; 100]).unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
            made.push(p);
        }
        let user_file = dir.join("notes.txt");
        std::fs::write(&user_file, b"mine").unwrap();
        enforce_budget(&dir, &made[4], 3, u64::MAX);
        let left: Vec<bool> = made.iter().map(|p| p.exists()).collect();
        assert_eq!(left, vec![false, false, true, true, true]);
        assert!(user_file.exists());
        // By bytes: 250 bytes allow two of 100.
        enforce_budget(&dir, &made[4], 100, 250);
        let left: Vec<bool> = made.iter().map(|p| p.exists()).collect();
        assert_eq!(left, vec![false, false, false, true, true]);
        // The one just written stays even past the budget.
        enforce_budget(&dir, &made[3], 0, 0);
        assert!(made[3].exists() && !made[4].exists());
        assert!(user_file.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn creation_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("rtcore-dump-excl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(dump_name(7, 0, Cause::Deadlock));
        std::fs::write(&p, b"precious").unwrap();
        let (_, q) = create_exclusive(&p).unwrap();
        assert_ne!(p, q);
        assert!(q.to_str().unwrap().ends_with("-deadlock-2.rtctrace"));
        assert_eq!(std::fs::read(&p).unwrap(), b"precious");
        assert!(is_dump_name(q.file_name().unwrap().to_str().unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
