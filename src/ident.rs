//! Per-thread identity: a 64-bit id that is never reused, the OS thread id and
//! a name for reports. Any thread has one, attached to the world or not.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Ids start at 1: 0 means "no thread" in lock words. Ids stay below 2^62 so
/// a lock word can hold one shifted left with flag bits below it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static ID: Cell<u64> = const { Cell::new(0) };
    static NAME: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// This thread's rtcore id, assigned on first call.
#[inline]
pub fn current_id() -> u64 {
    ID.with(|c| {
        let v = c.get();
        if v != 0 {
            return v;
        }
        let v = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        c.set(v);
        v
    })
}

/// The OS thread id (Linux `gettid`).
pub fn os_tid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as i64 }
}

/// Set the name used in reports (the world's attach does this).
pub fn set_name(name: Option<String>) {
    let _ = NAME.try_with(|n| {
        if let Ok(mut b) = n.try_borrow_mut() {
            *b = name.map(Arc::from);
        }
    });
}

/// The attach name, if one was set (shared, so copying it is cheap).
pub fn attach_name() -> Option<Arc<str>> {
    NAME.try_with(|n| n.try_borrow().ok().and_then(|b| b.clone()))
        .ok()
        .flatten()
}

/// The name used in reports: the attach name, else the OS thread name.
pub fn name() -> String {
    // try_with: this may run from a thread-exit destructor after NAME's.
    if let Some(n) = attach_name() {
        return n.to_string();
    }
    // SAFETY: pthread_self is always valid.
    os_name_of(unsafe { libc::pthread_self() })
}

/// The OS name of thread `t` ("?" if it cannot be read).
///
/// `t` must be a thread that is alive for the whole call.
pub fn os_name_of(t: libc::pthread_t) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: buf is writable for its length; the caller keeps `t` alive.
    let rc =
        unsafe { libc::pthread_getname_np(t, buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::from("?")
    }
}

/// "thread 3 'worker' (tid 1234)"
pub fn describe_current() -> String {
    format!("thread {} '{}' (tid {})", current_id(), name(), os_tid())
}
