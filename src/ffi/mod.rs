//! The C ABI, and nothing else: argument checks, the panic boundary,
//! conversions. Every export is written out by hand (cbindgen must see it)
//! and wraps its body in `boundary` or one of its variants.
//!
//! Invariants:
//! - No panic crosses the boundary: every body runs under `catch_unwind`.
//! - A failing call stores its message in this thread's last-error slot
//!   (except the expected outcomes `RTC_ERR_BUSY` and `RTC_ERR_TIMED_OUT`).
//! - Out-parameters are written only on success.

// Exports take raw pointers from C and check them (NULL, alignment) before
// use; C cannot call an `unsafe fn` differently, so the lint does not apply.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod cond;
pub mod flight;
pub mod general;
pub mod mutex;
pub mod preload;
pub mod ranks;
pub mod rwlock;
pub mod sysmon;
pub mod trace;
pub mod world;

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{
    Error, RTC_ERR_BUSY, RTC_ERR_INVALID_ARGUMENT, RTC_ERR_NULL, RTC_ERR_PANIC, RTC_ERR_TIMED_OUT,
    RTC_OK, Result, rtc_status,
};

#[cfg(panic = "abort")]
compile_error!(
    "rtcore must be built with panic=unwind: its C boundary catches panics so a Python host survives"
);

struct LastError {
    status: rtc_status,
    message: String,
}

thread_local! {
    static LAST: RefCell<LastError> = const {
        RefCell::new(LastError { status: RTC_OK, message: String::new() })
    };
}

pub(crate) fn set_last_error(e: &Error) {
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            l.status = e.status;
            l.message.clear();
            l.message.push_str(&e.message);
        }
    });
}

pub(crate) fn last_error() -> (rtc_status, String) {
    LAST.try_with(|l| {
        let l = l.borrow();
        (l.status, l.message.clone())
    })
    .unwrap_or((RTC_OK, String::new()))
}

pub(crate) fn clear_last_error() {
    let _ = LAST.try_with(|l| {
        let mut l = l.borrow_mut();
        l.status = RTC_OK;
        l.message.clear();
    });
}

pub(crate) use crate::diag::install_panic_hook;

fn panic_error(what: &str) -> Error {
    let detail = crate::diag::take_panic_message().unwrap_or_else(|| "no message".into());
    Error::new(
        RTC_ERR_PANIC,
        format!("rtcore panicked in {what}: {detail}; the panic was caught at the C boundary"),
    )
}

fn store(e: &Error) {
    if e.status != RTC_ERR_BUSY && e.status != RTC_ERR_TIMED_OUT {
        set_last_error(e);
    }
}

/// The one panic boundary: run `f`; if it panics, store the panic's
/// message as this thread's last error, run `on_panic` (itself guarded:
/// it poisons a handle, say) and return what it gives. Every export goes
/// through this, directly or through the wrappers below.
#[inline]
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> T, on_panic: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            set_last_error(&panic_error(what));
            // A panic in `on_panic` too (the wrappers' cannot) leaves no
            // value to return and must not unwind into C: abort.
            catch_unwind(AssertUnwindSafe(on_panic)).unwrap_or_else(|_| std::process::abort())
        }
    }
}

/// A status from a body's result (storing the message of a failure).
#[inline]
fn status_of(r: Result<()>) -> rtc_status {
    match r {
        Ok(()) => RTC_OK,
        Err(e) => {
            store(&e);
            e.status
        }
    }
}

/// Run a status-returning body at the boundary.
#[inline]
pub(crate) fn boundary(what: &str, f: impl FnOnce() -> Result<()>) -> rtc_status {
    guard(what, || status_of(f()), || RTC_ERR_PANIC)
}

/// As `boundary`, and on a panic also run `poison` (marks the handle).
#[inline]
pub(crate) fn boundary_poisoning(
    what: &str,
    f: impl FnOnce() -> Result<()>,
    poison: impl FnOnce(),
) -> rtc_status {
    guard(
        what,
        || status_of(f()),
        || {
            // A panic while poisoning still answers with the panic status.
            let _ = catch_unwind(AssertUnwindSafe(poison));
            RTC_ERR_PANIC
        },
    )
}

/// Run a value-returning body at the boundary; a panic yields `default`.
pub(crate) fn boundary_value<T>(what: &str, default: T, f: impl FnOnce() -> T) -> T {
    guard(what, f, || default)
}

/// A pointer the caller gives for an object or an out-parameter: non-NULL
/// and aligned for `T`, or a status naming the argument.
#[inline]
pub(crate) fn checked_ptr<T>(p: *const T, arg: &str, func: &str) -> Result<()> {
    nonnull(p, arg, func)?;
    if (p as usize) % align_of::<T>() != 0 {
        return Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "{func}: argument '{arg}' ({p:p}) is not aligned to {} bytes",
                align_of::<T>()
            ),
        ));
    }
    Ok(())
}

/// A required out-parameter, checked before any work is done (out-
/// parameters are written only on success: `set` at the end).
pub(crate) struct Out<T> {
    p: *mut T,
}

impl<T> Out<T> {
    /// Write the result.
    #[inline]
    pub(crate) fn set(self, v: T) {
        // SAFETY: checked non-NULL and aligned by `out`; the caller promises
        // it is writable.
        unsafe { self.p.write(v) }
    }
}

/// Check a required out-parameter (NULL or misaligned: a status).
#[inline]
pub(crate) fn out<T>(p: *mut T, arg: &str, func: &str) -> Result<Out<T>> {
    checked_ptr(p, arg, func)?;
    Ok(Out { p })
}

/// Check an optional out-parameter: NULL means "not wanted".
#[inline]
pub(crate) fn opt_out<T>(p: *mut T, arg: &str, func: &str) -> Result<Option<Out<T>>> {
    if p.is_null() {
        return Ok(None);
    }
    out(p, arg, func).map(Some)
}

/// A required pointer.
#[inline]
pub(crate) fn nonnull<T>(p: *const T, arg: &str, func: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::new(
            RTC_ERR_NULL,
            format!("{func}: argument '{arg}' is NULL"),
        ));
    }
    Ok(())
}

/// A required, NUL-terminated UTF-8 string.
pub(crate) fn required_str<'a>(p: *const c_char, arg: &str, func: &str) -> Result<&'a str> {
    nonnull(p, arg, func)?;
    // SAFETY: non-NULL; NUL-terminated by the documented contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!("{func}: argument '{arg}' is not valid UTF-8"),
        )
    })
}

/// Copy `text` NUL-terminated into (buf, len), truncating; return the size
/// needed (including the NUL).
pub(crate) fn copy_out(text: &str, buf: *mut c_char, len: usize) -> usize {
    let bytes = text.as_bytes();
    if !buf.is_null() && len > 0 {
        let n = bytes.len().min(len - 1);
        // SAFETY: caller promises buf is writable for len bytes; n < len.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
    }
    bytes.len() + 1
}
