//! Where a lock tells the rest of rtcore that a thread is about to wait and
//! has stopped waiting. The world registers its handlers here (releasing and
//! retaking the thread's processor), so the lock module never imports the
//! world. Until something registers, waiting has no side effects.

use std::sync::atomic::{AtomicPtr, Ordering};

/// Handlers run by the waiting thread itself, outside any inner lock.
pub struct WaitHandlers {
    pub begin: fn(),
    pub end: fn(),
}

static HANDLERS: AtomicPtr<WaitHandlers> = AtomicPtr::new(std::ptr::null_mut());

/// Register handlers (once; later registrations replace earlier ones).
pub fn register(h: &'static WaitHandlers) {
    HANDLERS.store(
        h as *const WaitHandlers as *mut WaitHandlers,
        Ordering::Release,
    );
}

#[inline]
pub fn begin() {
    super::inner::assert_none_held("a lock or condition wait");
    let h = HANDLERS.load(Ordering::Acquire);
    if !h.is_null() {
        // SAFETY: only &'static handlers are ever stored.
        (unsafe { &*h }.begin)();
    }
}

#[inline]
pub fn end() {
    let h = HANDLERS.load(Ordering::Acquire);
    if !h.is_null() {
        // SAFETY: as above.
        (unsafe { &*h }.end)();
    }
}
