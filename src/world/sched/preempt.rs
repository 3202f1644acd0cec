//! Preemption requests as the thread sees them: the user's handler, called once the rtcore call that acknowledged a request has finished.

use super::*;

/// A user function told of each preemption request this thread
/// acknowledges (`rtc_set_preempt_handler`).
pub type PreemptFn = unsafe extern "C" fn(request: u64, user_data: *mut std::ffi::c_void);

struct PreemptHandler {
    f: PreemptFn,
    user_data: usize,
}

/// The current handler (null: none). Replaced handlers are leaked, not
/// freed: another thread may be calling one at that moment. (They are few:
/// one per call of `rtc_set_preempt_handler`.)
static PREEMPT_HANDLER: std::sync::atomic::AtomicPtr<PreemptHandler> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

pub fn set_preempt_handler(f: Option<PreemptFn>, user_data: *mut std::ffi::c_void) {
    let new = match f {
        Some(f) => Box::into_raw(Box::new(PreemptHandler {
            f,
            user_data: user_data as usize,
        })),
        None => std::ptr::null_mut(),
    };
    let old = PREEMPT_HANDLER.swap(new, SeqCst);
    if !old.is_null() {
        // Kept reachable (leak checkers see it) but never freed.
        static RETIRED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
        if let Ok(mut r) = RETIRED.lock() {
            r.push(old as usize);
        }
    }
}

thread_local! {
    /// A preemption request this thread acknowledged and whose handler has
    /// not run yet (0: none).
    pub(super) static PREEMPT_DUE: Cell<u64> = const { Cell::new(0) };
}

/// Run the preemption handler for a request acknowledged during the
/// calling rtcore function (`rtc_safepoint`, `rtc_enter_blocking`), as its
/// last step: the world's own work is complete and no record is held.
#[inline]
pub fn deliver_preemption() {
    let req = PREEMPT_DUE.try_with(|c| c.replace(0)).unwrap_or(0);
    if req != 0 {
        call_preempt_handler(req);
    }
}

#[cold]
fn call_preempt_handler(request: u64) {
    // SAFETY: handlers are leaked, never freed, so the pointer stays valid.
    if let Some(h) = unsafe { PREEMPT_HANDLER.load(SeqCst).as_ref() } {
        // SAFETY: the user registered `f` to be called with `user_data`.
        unsafe { (h.f)(request, h.user_data as *mut std::ffi::c_void) };
    }
}
