//! rtcore's own (inner) locks, ranked in the same table as user locks
//! (`BUILTIN_RANKS`): each is an `InnerMutex`/`InnerRwLock` that checks,
//! before it blocks, the inner locks this thread already holds. Any
//! violation aborts: it is a bug in rtcore, never the user's.
//!
//! Invariants:
//! - The inner ranks' ids are fixed by the order of `BUILTIN_RANKS` (checked
//!   by a test), so checking needs no table lookup and works while the table
//!   itself is being built (the check is skipped until it is).
//! - Inner locks are never held across a park, a safepoint or a blocking
//!   region: `assert_none_held` aborts if one is.

use std::cell::{Cell, UnsafeCell};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use super::rank_set::{GLOBAL_ALLOWED, GLOBAL_READY};

/// rtcore's inner ranks and their fixed ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum InnerRank {
    /// sysmonlock: all of sysmon's per-tick work runs under it.
    Sysmon = 2,
    Lifecycle = 4,
    Sched = 5,
    RankTable = 6,
    LockReports = 7,
    Names = 8,
    ThreadReason = 9,
    /// The hook registry (never held while a hook runs).
    HookReg = 10,
    /// The registry of lock waiters and each waiter's published wait
    /// (`lock::waiters`; never two at once).
    Waiters = 11,
    /// The tracer's registry of per-thread buffers (the global-buffer lock).
    TraceBuf = 12,
    /// The trace writer's queue.
    TraceQueue = 13,
    /// The flight recorder's ring of generations (`record::ring`).
    FlightRing = 14,
    /// The learned lock order of interposed pthread locks
    /// (`interpose::graph`): classes, edges and the chain cache. Taken with
    /// no other inner lock held; the declared ranks' table is read under it.
    Learned = 15,
}

impl InnerRank {
    pub const ALL: [InnerRank; 13] = [
        InnerRank::Sysmon,
        InnerRank::Lifecycle,
        InnerRank::Sched,
        InnerRank::RankTable,
        InnerRank::LockReports,
        InnerRank::Names,
        InnerRank::ThreadReason,
        InnerRank::HookReg,
        InnerRank::TraceBuf,
        InnerRank::TraceQueue,
        InnerRank::Waiters,
        InnerRank::FlightRing,
        InnerRank::Learned,
    ];
    pub fn name(self) -> &'static str {
        match self {
            InnerRank::Sysmon => "sysmon",
            InnerRank::Lifecycle => "lifecycle",
            InnerRank::Sched => "sched",
            InnerRank::RankTable => "ranktable",
            InnerRank::LockReports => "lockreports",
            InnerRank::Names => "names",
            InnerRank::ThreadReason => "threadreason",
            InnerRank::HookReg => "hookreg",
            InnerRank::TraceBuf => "tracebuf",
            InnerRank::TraceQueue => "tracequeue",
            InnerRank::Waiters => "waiters",
            InnerRank::FlightRing => "flightring",
            InnerRank::Learned => "learned",
        }
    }
    pub fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

thread_local! {
    /// Bit per inner rank id this thread holds.
    static HELD: Cell<u64> = const { Cell::new(0) };
}

fn held() -> u64 {
    HELD.try_with(|h| h.get()).unwrap_or(0)
}

fn set_held(v: u64) {
    let _ = HELD.try_with(|h| h.set(v));
}

/// Why taking `want` while holding the inner ranks in `held` is wrong, if it
/// is. `allowed` is the closure row of `want` (first word: inner ids < 64).
pub fn violation(held: u64, want: InnerRank, allowed: u64) -> Option<String> {
    if held & want.bit() != 0 {
        return Some(format!(
            "rtcore: internal lock order violation: '{}' taken while already held",
            want.name()
        ));
    }
    let bad = held & !allowed;
    if bad == 0 {
        return None;
    }
    let names: Vec<&str> = InnerRank::ALL
        .iter()
        .filter(|r| bad & r.bit() != 0)
        .map(|r| r.name())
        .collect();
    Some(format!(
        "rtcore: internal lock order violation: '{}' taken while holding {:?} (see BUILTIN_RANKS)",
        want.name(),
        names
    ))
}

fn acquire(want: InnerRank) {
    let h = held();
    if h != 0 && GLOBAL_READY.load(Ordering::Acquire) {
        let allowed = GLOBAL_ALLOWED[want as usize][0].load(Ordering::Relaxed);
        if let Some(msg) = violation(h, want, allowed) {
            fatal(&msg);
        }
    }
    set_held(h | want.bit());
}

fn release(r: InnerRank) {
    set_held(held() & !r.bit());
}

#[cold]
fn fatal(msg: &str) -> ! {
    crate::diag::eprintln(msg);
    std::process::abort();
}

/// Abort if this thread holds an inner lock at `place` (a park, a
/// safepoint, a blocking region).
#[inline]
pub fn assert_none_held(place: &str) {
    assert_none_held_but(&[], place);
}

/// As `assert_none_held`, allowing the ranks in `but`.
#[inline]
pub fn assert_none_held_but(but: &[InnerRank], place: &str) {
    let allowed = but.iter().fold(0u64, |m, r| m | r.bit());
    let h = held() & !allowed;
    if h != 0 {
        let names: Vec<&str> = InnerRank::ALL
            .iter()
            .filter(|r| h & r.bit() != 0)
            .map(|r| r.name())
            .collect();
        fatal(&format!(
            "rtcore: inner lock(s) {names:?} held across {place}; inner locks must never be"
        ));
    }
}

/// A parking_lot mutex that a forked child can reset: its holder may have
/// been a thread that does not exist in the child. (Resetting writes the
/// raw lock state through the `UnsafeCell`, the only legal way to write
/// through a shared reference.)
pub struct ResettableMutex<T> {
    m: UnsafeCell<parking_lot::Mutex<T>>,
}

// SAFETY: shared access goes through the parking_lot mutex, which is Sync
// for Send data; the only other access is `reset_after_fork`, made when no
// other thread exists.
unsafe impl<T: Send> Sync for ResettableMutex<T> {}
// SAFETY: as parking_lot::Mutex.
unsafe impl<T: Send> Send for ResettableMutex<T> {}

impl<T> ResettableMutex<T> {
    pub const fn new(v: T) -> Self {
        ResettableMutex {
            m: UnsafeCell::new(parking_lot::Mutex::new(v)),
        }
    }
    #[inline]
    pub fn get(&self) -> &parking_lot::Mutex<T> {
        // SAFETY: only `reset_after_fork` writes through the cell, and only
        // when no reference obtained here can be in use (no other thread).
        unsafe { &*self.m.get() }
    }
    pub fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
        self.get().lock()
    }
    pub fn is_locked(&self) -> bool {
        self.get().is_locked()
    }

    /// Mark the mutex unlocked, with no waiters, touching nothing else: for
    /// a `pthread_atfork` child handler that may run before `base::fork`'s
    /// (which forgets the parent's threads' parking-lot entries: until then
    /// the parking lot's table may be locked by a thread that is gone).
    ///
    /// # Safety
    /// Only in a forked child before other threads exist, on a lock the
    /// calling thread held through the fork (so the data is whole), or
    /// whose parked waiters were forgotten (`reset_after_fork`).
    pub unsafe fn reset_raw_after_fork(&self) {
        use parking_lot::lock_api::RawMutex as _;
        let base = self.m.get();
        // SAFETY: the raw state lies inside the cell; the pointer is derived
        // from `UnsafeCell::get`; nobody else uses the lock (caller).
        unsafe {
            let offset =
                (self.get().raw() as *const parking_lot::RawMutex as usize) - (base as usize);
            let raw = base
                .cast::<u8>()
                .add(offset)
                .cast::<parking_lot::RawMutex>();
            std::ptr::write(raw, parking_lot::RawMutex::INIT);
        }
    }

    /// Mark the mutex unlocked, with no waiters; the data is left as it is.
    ///
    /// # Safety
    /// Only in a forked child before other threads exist, and only when the
    /// calling thread does not hold the lock.
    pub unsafe fn reset_after_fork(&self) {
        // Threads of the parent parked on it: drop their queue entries
        // (see base::parked). parking_lot parks a mutex's waiters on its
        // raw lock's address.
        // SAFETY: only the address is taken.
        let key = unsafe { self.get().raw() } as *const parking_lot::RawMutex as usize;
        super::parked::unpark_all(key);
        // SAFETY: the caller's guarantees; nobody waits on it now.
        unsafe { self.reset_raw_after_fork() };
    }
}

/// A ranked inner mutex.
pub struct InnerMutex<T> {
    rank: InnerRank,
    m: ResettableMutex<T>,
}

pub struct InnerGuard<'a, T> {
    g: parking_lot::MutexGuard<'a, T>,
    rank: InnerRank,
}

impl<T> InnerMutex<T> {
    pub const fn new(rank: InnerRank, v: T) -> Self {
        InnerMutex {
            rank,
            m: ResettableMutex::new(v),
        }
    }
    pub fn lock(&self) -> InnerGuard<'_, T> {
        acquire(self.rank);
        InnerGuard {
            g: self.m.lock(),
            rank: self.rank,
        }
    }

    /// As `lock`, but waiting by spinning and yielding, never by parking:
    /// for a lock held across forks (`lock_for_fork`). A thread parked in
    /// parking_lot holds, for an instant, a lock of parking_lot's own
    /// table; a fork in that instant leaves the table locked in the child,
    /// whose fork handlers then hang on it. Threads that only spin are
    /// never in that table.
    pub fn lock_spinning(&self) -> InnerGuard<'_, T> {
        acquire(self.rank);
        loop {
            if let Some(g) = self.m.get().try_lock() {
                return InnerGuard { g, rank: self.rank };
            }
            std::thread::yield_now();
        }
    }

    /// Lock it if it is free, never waiting (a fatal-signal handler's
    /// best effort: waiting there could never end).
    pub fn try_lock(&self) -> Option<InnerGuard<'_, T>> {
        let g = self.m.get().try_lock()?;
        set_held(held() | self.rank.bit());
        Some(InnerGuard { g, rank: self.rank })
    }

    /// As `try_lock`, for a fatal-signal handler: no rank bookkeeping, so
    /// no thread-local is touched (a thread's first use of one may
    /// allocate when the library was loaded with `dlopen`).
    pub fn try_lock_in_signal_handler(&self) -> Option<parking_lot::MutexGuard<'_, T>> {
        self.m.get().try_lock()
    }

    /// Is it locked now (a snapshot; for the fork handler).
    pub fn get_is_locked(&self) -> bool {
        self.m.is_locked()
    }

    /// A `pthread_atfork` prepare handler's lock: held across the fork by
    /// the forking thread, so the child inherits the data whole (the parent
    /// drops the guard after the fork; the child forgets it and resets the
    /// lock, `reset_after_fork`). No rank bookkeeping: it is no critical
    /// section of the thread's. Gives up after `patience` (None): the
    /// forking thread may itself hold it, in a signal handler that
    /// interrupted it.
    pub fn lock_for_fork(
        &self,
        patience: std::time::Duration,
    ) -> Option<parking_lot::MutexGuard<'_, T>> {
        // Spinning, as `lock_spinning` (and for the same reason).
        let until = std::time::Instant::now() + patience;
        loop {
            if let Some(g) = self.m.get().try_lock() {
                return Some(g);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// `ResettableMutex::reset_raw_after_fork`, for the lock a prepare
    /// handler held through the fork (`lock_for_fork`).
    ///
    /// # Safety
    /// As there.
    pub unsafe fn reset_raw_after_fork(&self) {
        // SAFETY: the caller's guarantees.
        unsafe { self.m.reset_raw_after_fork() };
    }

    /// In a forked child, unlock a lock that a thread of the parent held
    /// (that thread does not exist here). The data is left as it was.
    ///
    /// # Safety
    /// Only in the child after fork, before any other thread exists, and
    /// only when the calling thread does not hold the lock.
    pub unsafe fn reset_after_fork(&self) {
        // SAFETY: the caller's guarantees.
        unsafe { self.m.reset_after_fork() };
    }
}

impl<T> Drop for InnerGuard<'_, T> {
    fn drop(&mut self) {
        release(self.rank);
    }
}

impl<T> Deref for InnerGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.g
    }
}

impl<T> DerefMut for InnerGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.g
    }
}

/// A ranked inner reader-writer lock.
pub struct InnerRwLock<T> {
    rank: InnerRank,
    l: UnsafeCell<parking_lot::RwLock<T>>,
}

// SAFETY: as for `ResettableMutex`.
unsafe impl<T: Send + Sync> Sync for InnerRwLock<T> {}
// SAFETY: as parking_lot::RwLock.
unsafe impl<T: Send> Send for InnerRwLock<T> {}

pub struct InnerReadGuard<'a, T> {
    g: parking_lot::RwLockReadGuard<'a, T>,
    rank: InnerRank,
}

pub struct InnerWriteGuard<'a, T> {
    g: parking_lot::RwLockWriteGuard<'a, T>,
    rank: InnerRank,
}

impl<T> InnerRwLock<T> {
    pub const fn new(rank: InnerRank, v: T) -> Self {
        InnerRwLock {
            rank,
            l: UnsafeCell::new(parking_lot::RwLock::new(v)),
        }
    }

    fn lock_ref(&self) -> &parking_lot::RwLock<T> {
        // SAFETY: as `ResettableMutex::get`.
        unsafe { &*self.l.get() }
    }

    /// As `InnerMutex::reset_after_fork`.
    ///
    /// # Safety
    /// Only in the child after fork, before any other thread exists, and
    /// only when the calling thread does not hold the lock.
    pub unsafe fn reset_after_fork(&self) {
        use parking_lot::lock_api::RawRwLock as _;
        // As for the mutex; a parking_lot RwLock parks on its address and
        // the next one.
        // SAFETY: only the address is taken.
        let key = unsafe { self.lock_ref().raw() } as *const parking_lot::RawRwLock as usize;
        super::parked::unpark_all(key);
        super::parked::unpark_all(key + 1);
        let base = self.l.get();
        // SAFETY: as `ResettableMutex::reset_after_fork`.
        unsafe {
            let offset =
                (self.lock_ref().raw() as *const parking_lot::RawRwLock as usize) - (base as usize);
            let raw = base
                .cast::<u8>()
                .add(offset)
                .cast::<parking_lot::RawRwLock>();
            std::ptr::write(raw, parking_lot::RawRwLock::INIT);
        }
    }
    pub fn read(&self) -> InnerReadGuard<'_, T> {
        acquire(self.rank);
        InnerReadGuard {
            g: self.lock_ref().read(),
            rank: self.rank,
        }
    }
    pub fn write(&self) -> InnerWriteGuard<'_, T> {
        acquire(self.rank);
        InnerWriteGuard {
            g: self.lock_ref().write(),
            rank: self.rank,
        }
    }
}

impl<T> Drop for InnerReadGuard<'_, T> {
    fn drop(&mut self) {
        release(self.rank);
    }
}
impl<T> Drop for InnerWriteGuard<'_, T> {
    fn drop(&mut self) {
        release(self.rank);
    }
}
impl<T> Deref for InnerReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.g
    }
}
impl<T> Deref for InnerWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.g
    }
}
impl<T> DerefMut for InnerWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.g
    }
}
