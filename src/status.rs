//! Status codes and the crate's error type.
//!
//! Invariant: a status value, once published, is never renumbered or reused.
//! New statuses are appended with the next free number; a retired one stays
//! here as a comment.

use std::fmt;

/// Result of every fallible rtcore call. `RTC_OK` (0) is success.
///
/// The values are fixed forever: they may be stored, logged and compared
/// across library versions. Functions that *take* a status (such as
/// `rtc_status_str`) take a plain `int32_t`, so an unknown value is never
/// undefined behaviour.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum rtc_status {
    /// Success.
    RTC_OK = 0,
    /// A required pointer argument was NULL.
    RTC_ERR_NULL = 1,
    /// An argument was out of range or malformed (for example not UTF-8).
    RTC_ERR_INVALID_ARGUMENT = 2,
    /// rtcore panicked inside the call; the panic was caught at the C boundary.
    RTC_ERR_PANIC = 3,
    /// The object is poisoned: an earlier call on it panicked.
    RTC_ERR_POISONED = 4,
    /// `rtc_shutdown` has run; rtcore no longer accepts calls.
    RTC_ERR_SHUT_DOWN = 5,
    /// `rtc_init` was already called.
    RTC_ERR_ALREADY_INITIALIZED = 6,
    /// `rtc_init` was called after rtcore was first used.
    RTC_ERR_TOO_LATE = 7,
    /// A rank declaration has a syntax or semantic error.
    RTC_ERR_RANK_SYNTAX = 8,
    /// A rank name is not declared, or names a pseudo-rank.
    RTC_ERR_UNKNOWN_RANK = 9,
    /// The rank table has no room for more ranks.
    RTC_ERR_RANK_TABLE_FULL = 10,
    /// An operating-system I/O call failed (the message carries errno's text).
    RTC_ERR_IO = 11,
    /// The call would wait forever on a lock this thread already holds.
    RTC_ERR_WOULD_DEADLOCK = 12,
    /// The lock is not held by this thread.
    RTC_ERR_NOT_OWNER = 13,
    /// A try-lock found the lock held (an expected outcome: no last-error message is stored).
    RTC_ERR_BUSY = 14,
    /// The object is locked or in use and cannot be destroyed or re-initialised.
    RTC_ERR_LOCKED = 15,
    /// The object was destroyed.
    RTC_ERR_DESTROYED = 16,
    /// A timed wait reached its deadline (an expected outcome: no last-error message is stored).
    RTC_ERR_TIMED_OUT = 17,
    /// An object embedded by value was moved after its first use.
    RTC_ERR_MOVED = 18,
    /// The calling thread is in the wrong state for this call.
    RTC_ERR_WRONG_STATE = 19,
    /// A trace failed validation (the report says where and why).
    RTC_ERR_BAD_TRACE = 20,
    /// A trace was cut short (a program killed while tracing): every
    /// complete generation is consistent, what came after the last one is
    /// lost (the report says where).
    RTC_ERR_TRACE_CUT = 21,
}

pub use rtc_status::*;

impl rtc_status {
    /// Every status, in numeric order (used by `rtc_status_str` and tests).
    pub const ALL: [rtc_status; 22] = [
        RTC_OK,
        RTC_ERR_NULL,
        RTC_ERR_INVALID_ARGUMENT,
        RTC_ERR_PANIC,
        RTC_ERR_POISONED,
        RTC_ERR_SHUT_DOWN,
        RTC_ERR_ALREADY_INITIALIZED,
        RTC_ERR_TOO_LATE,
        RTC_ERR_RANK_SYNTAX,
        RTC_ERR_UNKNOWN_RANK,
        RTC_ERR_RANK_TABLE_FULL,
        RTC_ERR_IO,
        RTC_ERR_WOULD_DEADLOCK,
        RTC_ERR_NOT_OWNER,
        RTC_ERR_BUSY,
        RTC_ERR_LOCKED,
        RTC_ERR_DESTROYED,
        RTC_ERR_TIMED_OUT,
        RTC_ERR_MOVED,
        RTC_ERR_WRONG_STATE,
        RTC_ERR_BAD_TRACE,
        RTC_ERR_TRACE_CUT,
    ];

    pub fn from_i32(v: i32) -> Option<rtc_status> {
        Self::ALL.iter().copied().find(|s| *s as i32 == v)
    }

    /// A short, static, NUL-terminated description.
    pub fn describe(self) -> &'static str {
        match self {
            RTC_OK => "success\0",
            RTC_ERR_NULL => "a required pointer argument was NULL\0",
            RTC_ERR_INVALID_ARGUMENT => "invalid argument\0",
            RTC_ERR_PANIC => "rtcore panicked inside the call (caught at the C boundary)\0",
            RTC_ERR_POISONED => "object poisoned by an earlier panic\0",
            RTC_ERR_SHUT_DOWN => "rtcore has been shut down\0",
            RTC_ERR_ALREADY_INITIALIZED => "rtc_init was already called\0",
            RTC_ERR_TOO_LATE => "rtc_init called after first use\0",
            RTC_ERR_RANK_SYNTAX => "error in rank declarations\0",
            RTC_ERR_UNKNOWN_RANK => "unknown rank\0",
            RTC_ERR_RANK_TABLE_FULL => "rank table full\0",
            RTC_ERR_IO => "I/O error\0",
            RTC_ERR_WOULD_DEADLOCK => {
                "would deadlock: the call would wait for something this thread holds up\0"
            }
            RTC_ERR_NOT_OWNER => "lock not held by this thread\0",
            RTC_ERR_BUSY => "busy: the lock is held\0",
            RTC_ERR_LOCKED => "object is locked or in use\0",
            RTC_ERR_DESTROYED => "object was destroyed\0",
            RTC_ERR_TIMED_OUT => "timed out\0",
            RTC_ERR_MOVED => "object moved after first use\0",
            RTC_ERR_WRONG_STATE => "wrong state for this call\0",
            RTC_ERR_BAD_TRACE => "the trace is inconsistent or corrupt\0",
            RTC_ERR_TRACE_CUT => {
                "the trace was cut short; its complete generations are consistent\0"
            }
        }
    }
}

/// An rtcore error: a status and a message that names the object and the
/// rule broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: rtc_status,
    pub message: String,
}

impl Error {
    pub fn new(status: rtc_status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Build an `Err(Error)` with a formatted message.
#[macro_export]
macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {
        Err($crate::status::Error::new($status, format!($($arg)*)))
    };
}
