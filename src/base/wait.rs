//! Where a lock tells the rest of rtcore that a thread is about to wait and
//! has stopped waiting. The world registers its handlers here (releasing and
//! retaking the thread's processor), so the lock module never imports the
//! world. Until something registers, waiting has no side effects.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, Ordering};

/// What a thread is about to wait for, so sysmon can name it (and sample a
/// mutex's acquisition counter while a thread waits for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Nothing,
    /// An `rtc_mutex` at this address. It stays valid while the thread
    /// waits: the thread is inside a lock call on it.
    Mutex(usize),
    /// An `rtc_cond` at this address.
    Cond(usize),
    /// An `rtc_rwlock` at this address (alive as a mutex target is).
    RwLock(usize),
    /// A running hook (the thread is removing it).
    Hook(u64),
}

thread_local! {
    static TARGET: Cell<Target> = const { Cell::new(Target::Nothing) };
}

/// Set what this thread's next waits are for (`Target::Nothing` after).
#[inline]
pub fn set_target(t: Target) {
    let _ = TARGET.try_with(|c| c.set(t));
}

/// What this thread is waiting for (read by the world's `begin` handler).
pub fn target() -> Target {
    TARGET.try_with(|c| c.get()).unwrap_or(Target::Nothing)
}

/// Handlers run by the waiting thread itself, outside any inner lock.
pub struct WaitHandlers {
    pub begin: fn(),
    pub end: fn(),
    /// Does the calling thread hold the world stopped?
    pub holds_world: fn() -> bool,
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

/// Does the calling thread hold the world stopped? (A wait for another
/// thread's progress would then never end.) False before the world is up.
pub fn holds_world() -> bool {
    let h = HANDLERS.load(Ordering::Acquire);
    // SAFETY: as above.
    !h.is_null() && (unsafe { &*h }.holds_world)()
}
