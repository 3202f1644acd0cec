//! `rtc_cond`: a condition variable used with an `rtc_mutex`.
//!
//! Invariants:
//! - `seq` increases on every signal and broadcast. A waiter reads it before
//!   releasing the mutex and parks only while it is unchanged (checked under
//!   the parking lot's bucket lock), so a signal made after the waiter
//!   released the mutex is never lost.
//! - `waiters` counts threads between "about to read seq" and "woke up"; a
//!   signal with no waiters skips the parking lot. Both sides use SeqCst so
//!   that either the signaller sees the waiter or the waiter sees the new seq.
//! - A wait releases its mutex in the held record and retakes it through the
//!   ordinary lock path (order check included) before returning, also on
//!   timeout, with the key it was taken with.

use std::os::raw::c_char;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::mutex::MutexRef;
use super::order::{Mode, site, with_held};
use crate::status::{
    Error, RTC_ERR_DESTROYED, RTC_ERR_LOCKED, RTC_ERR_NOT_OWNER, RTC_ERR_POISONED,
    RTC_ERR_TIMED_OUT, Result,
};

/// A condition variable, embeddable by value. Initialise with
/// `RTC_COND_INIT` or all zeroes. Never move it after first use.
#[repr(C)]
pub struct rtc_cond {
    /// Private: signal sequence.
    pub seq: u32,
    /// Private: number of waiters.
    pub waiters: u32,
    /// Private: flags.
    pub flags: u32,
    /// Reserved: zero.
    pub pad: u32,
    /// Reserved: zero.
    pub reserved: [u64; 2],
}

const DESTROYED: u32 = 2;
const POISONED: u32 = 4;

pub struct CondRef {
    p: *mut rtc_cond,
}

impl CondRef {
    /// # Safety
    /// `p` is non-NULL, aligned and valid for the lifetime of the `CondRef`.
    pub unsafe fn new(p: *mut rtc_cond) -> CondRef {
        CondRef { p }
    }
    fn seq(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned; only accessed atomically.
        unsafe { AtomicU32::from_ptr(&raw mut (*self.p).seq) }
    }
    fn waiters(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(&raw mut (*self.p).waiters) }
    }
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(&raw mut (*self.p).flags) }
    }
    fn key(&self) -> usize {
        self.p as usize
    }

    pub fn mark_poisoned(&self) {
        self.flags().fetch_or(POISONED, Ordering::Release);
    }

    fn ready(&self) -> Result<()> {
        let f = self.flags().load(Ordering::Acquire);
        if f & POISONED != 0 {
            return Err(Error::new(
                RTC_ERR_POISONED,
                "condition variable is poisoned: an earlier call on it panicked",
            ));
        }
        if f & DESTROYED != 0 {
            return Err(Error::new(
                RTC_ERR_DESTROYED,
                "condition variable was destroyed",
            ));
        }
        Ok(())
    }

    /// Wait until signalled (or `timeout` passes: `RTC_ERR_TIMED_OUT`, with
    /// the mutex retaken).
    pub fn wait(
        &self,
        m: &MutexRef,
        mode: Mode,
        timeout: Option<Duration>,
        file: *const c_char,
        line: u32,
    ) -> Result<()> {
        self.ready()?;
        if !m.held_by_me() {
            return Err(Error::new(
                RTC_ERR_NOT_OWNER,
                format!(
                    "wait on a condition with {} which this thread does not hold (at {})",
                    m.describe(),
                    site(file, line)
                ),
            ));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        self.waiters().fetch_add(1, Ordering::SeqCst);
        let seq0 = self.seq().load(Ordering::SeqCst);
        // The held entry's original site is kept for the relock.
        let (efile, eline, ekey) = with_held(|h| {
            h.find(m.addr())
                .map(|e| (e.file, e.line, Some(e.key)))
                .unwrap_or((file, line, None))
        });
        if let Err(e) = m.unlock() {
            self.waiters().fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        crate::base::wait::set_target(crate::base::wait::Target::Cond(self.key()));
        crate::base::wait::begin();
        let seq = self.seq();
        // SAFETY: the validate callback only reads an atomic.
        let r = unsafe {
            crate::base::parked::park(self.key(), || seq.load(Ordering::SeqCst) == seq0, deadline)
        };
        crate::base::wait::end();
        crate::base::wait::set_target(crate::base::wait::Target::Nothing);
        self.waiters().fetch_sub(1, Ordering::SeqCst);
        m.lock(mode, ekey, efile, eline)?;
        if r == parking_lot_core::ParkResult::TimedOut {
            return Err(Error::new(RTC_ERR_TIMED_OUT, String::new()));
        }
        Ok(())
    }

    pub fn signal(&self) -> Result<()> {
        self.ready()?;
        self.seq().fetch_add(1, Ordering::SeqCst);
        if self.waiters().load(Ordering::SeqCst) > 0 {
            // SAFETY: the callback does nothing that could panic.
            let token = crate::base::parked::waker_token();
            unsafe {
                parking_lot_core::unpark_one(self.key(), |_| token);
            }
        }
        Ok(())
    }

    pub fn broadcast(&self) -> Result<()> {
        self.ready()?;
        self.seq().fetch_add(1, Ordering::SeqCst);
        if self.waiters().load(Ordering::SeqCst) > 0 {
            // SAFETY: no callback.
            unsafe {
                parking_lot_core::unpark_all(self.key(), crate::base::parked::waker_token());
            }
        }
        Ok(())
    }

    /// Re-initialising a condition with waiters would strand them.
    pub fn init(&self) -> Result<()> {
        // The memory may hold anything before a first init: a waiter count
        // is trusted only when the flags look sane too.
        let w = self.waiters().load(Ordering::SeqCst);
        let f = self.flags().load(Ordering::SeqCst);
        if w != 0 && f & !(DESTROYED | POISONED) == 0 && w < 1 << 20 {
            return Err(Error::new(
                RTC_ERR_LOCKED,
                format!("init of a condition variable with {w} waiting thread(s)"),
            ));
        }
        self.init_unchecked();
        Ok(())
    }

    fn init_unchecked(&self) {
        // SAFETY: exclusive by contract.
        unsafe {
            self.p.write(rtc_cond {
                seq: 0,
                waiters: 0,
                flags: 0,
                pad: 0,
                reserved: [0; 2],
            })
        }
    }

    pub fn destroy(&self) -> Result<()> {
        let w = self.waiters().load(Ordering::SeqCst);
        if w != 0 {
            return Err(Error::new(
                RTC_ERR_LOCKED,
                format!("destroy of a condition variable with {w} waiting thread(s)"),
            ));
        }
        self.flags().fetch_or(DESTROYED, Ordering::Release);
        Ok(())
    }
}
