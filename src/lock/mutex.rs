//! `rtc_mutex`: a ranked, error-checking mutex that C embeds by value.
//!
//! Lock word (`state`): `owner_id << 2 | RESERVED | PARKED` (the protocol:
//! `word.rs`). `owner_id` is the holder's rtcore thread id (never 0, never
//! reused), 0 when unlocked. `PARKED` means threads may be parked on the
//! word's address; `RESERVED`, that a long waiter has claimed the next turn.
//!
//! Invariants:
//! - Uncontended lock is one compare-and-swap (0 → me); uncontended unlock is
//!   one compare-and-swap (me → 0), which also proves ownership.
//! - Unlock never hands ownership to a parked waiter: it clears the owner and
//!   wakes one waiter, which must win a compare-and-swap (barging, until a
//!   waiter has waited 0.5 ms: then it reserves the next turn and newcomers
//!   queue behind it). The world relies on this: a woken waiter takes its P
//!   before it takes the lock, so ownership never sits with a thread that
//!   cannot run.
//! - `PARKED` is only cleared by an unlocker inside the parking lot's bucket
//!   lock, when the queue for this address is empty, so no waiter sleeps on a
//!   word whose unlocker will not wake it.
//! - The order check happens before any blocking; a lock this thread already
//!   holds is refused at once, never waited for.
//! - `flags` RESOLVED is set (Release) only after `rank` is stored, and read
//!   with Acquire, so a resolved rank id is always readable with its closure.
//! - `home` records the address at first use; a mutex found elsewhere was
//!   moved, which is refused.

use std::os::raw::c_char;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::order::{self, HeldLock, LockKind, MAX_HELD, Mode, Wanted, cstr_or, with_held};
use super::report;
use super::word::{LockWord, Try, owner};
use crate::ranks::{self, LEAF, MAX_RANKS};
use crate::status::{
    Error, RTC_ERR_BUSY, RTC_ERR_DESTROYED, RTC_ERR_LOCKED, RTC_ERR_MOVED, RTC_ERR_NOT_OWNER,
    RTC_ERR_POISONED, RTC_ERR_WOULD_DEADLOCK, RTC_ERR_WRONG_STATE, Result,
};

/// A ranked mutex, embeddable by value in C structs.
///
/// Initialise statically with `RTC_MUTEX_INIT` (unranked) or
/// `RTC_MUTEX_INIT_RANKED(name, rank)`, or at run time with `rtc_mutex_init`.
/// An all-zero `rtc_mutex` is a valid unranked mutex. Never copy or move a
/// mutex after its first use (a moved mutex is refused with `RTC_ERR_MOVED`).
/// Fields are private to rtcore except as set by the initialisers.
#[repr(C)]
pub struct rtc_mutex {
    /// Private: the lock word.
    pub state: u64,
    /// Name shown in reports and traces (NUL-terminated, or NULL). A static
    /// initialiser's string must outlive the mutex; `rtc_mutex_init` copies.
    pub name: *const c_char,
    /// Rank name, resolved on first lock (NULL: an unranked leaf).
    pub rank_name: *const c_char,
    /// Private: resolved rank id.
    pub rank: u32,
    /// Private: flags.
    pub flags: u32,
    /// Private: address at first use.
    pub home: usize,
    /// Private: number of acquisitions.
    pub acquisitions: u64,
    /// Reserved: zero.
    pub reserved: [u64; 2],
}

pub const RESOLVED: u32 = 1;
pub const DESTROYED: u32 = 2;
pub const POISONED: u32 = 4;
/// Every flag a mutex may carry: any other bit set means the memory is not
/// an `rtc_mutex` (overwritten, never initialised), and its pointers
/// (name, rank name) must not be read.
const KNOWN_FLAGS: u32 = RESOLVED | DESTROYED | POISONED;

/// What the fast path did (`MutexRef::lock_fast`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// Nothing changed: take the full path.
    No,
    /// Locked and recorded.
    Taken,
    /// Locked, not yet checked or recorded: finish with `record_checked`.
    TakenUnchecked(u32),
    /// As `TakenUnchecked`, by a biased read hold (rwlocks only).
    TakenBiasedUnchecked(u32),
    /// Locked, but not ready for the fast path (not resolved, moved,
    /// destroyed, or the thread's record full): `give_back`, then take
    /// the full path.
    GiveBack,
}

impl Fast {
    /// As one word (for a call that passes everything in registers).
    #[inline(always)]
    pub fn bits(self) -> u64 {
        match self {
            Fast::No => 0,
            Fast::Taken => 1,
            Fast::GiveBack => 2,
            Fast::TakenUnchecked(rank) => 3 | (u64::from(rank) << 8),
            Fast::TakenBiasedUnchecked(rank) => 4 | (u64::from(rank) << 8),
        }
    }
    pub fn from_bits(b: u64) -> Fast {
        match b & 0xff {
            1 => Fast::Taken,
            2 => Fast::GiveBack,
            3 => Fast::TakenUnchecked((b >> 8) as u32),
            4 => Fast::TakenBiasedUnchecked((b >> 8) as u32),
            _ => Fast::No,
        }
    }
}

/// What the uncontended unlock did (`MutexRef::unlock_fast`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockFast {
    /// Nothing changed: take the full path.
    No,
    /// Released and forgotten.
    Done,
    /// Released; its entry is not the newest: `forget` it.
    Forget,
}

/// A mutex's name and rank, copied (see `MutexRef::snapshot`).
#[derive(Clone, Debug)]
pub struct MutexSnapshot {
    pub kind: LockKind,
    pub name: String,
    pub rank: Option<u32>,
    pub rank_name: Option<String>,
}

impl MutexSnapshot {
    /// As `MutexRef::describe` (takes the rank table's lock).
    pub fn describe(&self) -> String {
        let rank = match (self.rank, &self.rank_name) {
            (Some(LEAF), _) | (None, None) => "unranked".to_string(),
            (Some(r), _) => format!("rank {}", ranks::global().name(r)),
            (None, Some(n)) => format!("rank {n}"),
        };
        format!("{} '{}' ({})", self.kind.name(), self.name, rank)
    }
}

/// Atomic views of a mutex's fields.
///
/// An `rtc_rwlock` shares the layout of everything but the lock word, so
/// `RwLockRef` uses a `MutexRef` of kind `RwLock` for its name, rank, flags,
/// home and counter (and never its word).
pub struct MutexRef {
    p: *mut rtc_mutex,
    kind: LockKind,
}

impl MutexRef {
    /// # Safety
    /// `p` is non-NULL, aligned, and points to a `rtc_mutex` that stays valid
    /// for the lifetime of the `MutexRef`.
    #[inline]
    pub unsafe fn new(p: *mut rtc_mutex) -> MutexRef {
        MutexRef {
            p,
            kind: LockKind::Mutex,
        }
    }

    /// The shared fields of an `rtc_rwlock` (see the type's comment).
    ///
    /// # Safety
    /// As `new`, for an `rtc_rwlock`.
    #[inline]
    pub(crate) unsafe fn rwlock_fields(p: *mut super::rwlock::rtc_rwlock) -> MutexRef {
        MutexRef {
            p: p.cast(),
            kind: LockKind::RwLock,
        }
    }

    /// "rtc_mutex" or "rtc_rwlock".
    fn type_name(&self) -> &'static str {
        match self.kind {
            LockKind::RwLock => "rtc_rwlock",
            _ => "rtc_mutex",
        }
    }
    #[inline]
    pub fn addr(&self) -> usize {
        self.p as usize
    }
    #[inline]
    fn state(&self) -> &AtomicU64 {
        // SAFETY: `p` valid and 8-aligned (MutexRef::new); all concurrent
        // accesses to this field are atomic.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.p).state) }
    }
    #[inline]
    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(&raw mut (*self.p).flags) }
    }
    #[inline]
    fn rank_cell(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(&raw mut (*self.p).rank) }
    }
    #[inline]
    fn home(&self) -> &AtomicUsize {
        // SAFETY: as above.
        unsafe { AtomicUsize::from_ptr(&raw mut (*self.p).home) }
    }
    #[inline]
    fn acquisitions(&self) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.p).acquisitions) }
    }
    #[inline]
    #[cold]
    fn trace_contended(&self) {
        // The name is read (and checked) only when the trace records it
        // for the first time on this thread in the generation; a name
        // that is not UTF-8 is recorded with replacement characters.
        crate::record::emit(
            crate::format::EventKind::LockContended,
            &[
                crate::record::A::U(self.addr() as u64),
                crate::record::A::CStrLossy(self.name_ptr()),
                crate::record::A::U(self.word().current_owner()),
            ],
        );
    }

    pub fn name_ptr(&self) -> *const c_char {
        // SAFETY: plain read of a pointer field written before first use (by
        // the static initialiser or rtc_mutex_init, which must not race use).
        unsafe { (*self.p).name }
    }
    fn rank_name_ptr(&self) -> *const c_char {
        // SAFETY: as for name_ptr.
        unsafe { (*self.p).rank_name }
    }

    /// What `describe` needs, copied without taking any lock (sysmon reads
    /// it under a thread's detail lock, where the rank table's lock may not
    /// be taken).
    pub fn snapshot(&self) -> MutexSnapshot {
        if self.is_garbage() {
            return MutexSnapshot {
                kind: self.kind,
                name: self.describe(),
                rank: None,
                rank_name: None,
            };
        }
        let resolved = self.flags().load(Ordering::Acquire) & RESOLVED != 0;
        MutexSnapshot {
            kind: self.kind,
            name: cstr_or(self.name_ptr(), "(unnamed)").into_owned(),
            rank: resolved.then(|| self.rank_cell().load(Ordering::Relaxed)),
            rank_name: (!self.rank_name_ptr().is_null())
                .then(|| cstr_or(self.rank_name_ptr(), "?").into_owned()),
        }
    }

    /// Flags no mutex can have: the memory is not a mutex.
    fn is_garbage(&self) -> bool {
        self.flags().load(Ordering::Acquire) & !KNOWN_FLAGS != 0
    }

    pub fn describe(&self) -> String {
        if self.is_garbage() {
            return format!(
                "the mutex at {:#x} (corrupted: flags {:#x})",
                self.addr(),
                self.flags().load(Ordering::Relaxed)
            );
        }
        let rank = if self.flags().load(Ordering::Acquire) & RESOLVED != 0 {
            let r = self.rank_cell().load(Ordering::Relaxed);
            if r == LEAF {
                "unranked".to_string()
            } else {
                format!("rank {}", ranks::global().name(r))
            }
        } else if self.rank_name_ptr().is_null() {
            "unranked".to_string()
        } else {
            format!("rank {}", cstr_or(self.rank_name_ptr(), "?"))
        };
        format!(
            "{} '{}' ({})",
            self.kind.name(),
            cstr_or(self.name_ptr(), "(unnamed)"),
            rank
        )
    }

    pub fn mark_poisoned(&self) {
        self.flags().fetch_or(POISONED, Ordering::Release);
    }

    /// The rank, if the lock is resolved, in place and sane: what a fast
    /// path may rely on (anything else takes the full path, `ready`).
    #[inline(always)]
    pub(crate) fn fast_ready(&self) -> Option<u32> {
        // flags first (Acquire): `rank` and `home` are published before
        // RESOLVED (Release), so they must be read after it.
        let f = self.flags().load(Ordering::Acquire);
        let r = self.rank_cell().load(Ordering::Relaxed);
        (f == RESOLVED
            && self.home().load(Ordering::Relaxed) == self.addr()
            && (r as usize) < MAX_RANKS)
            .then_some(r)
    }

    /// Resolve the rank and validate flags. Returns the rank id.
    #[inline]
    pub(crate) fn ready(&self) -> Result<u32> {
        let f = self.flags().load(Ordering::Acquire);
        let r = self.rank_cell().load(Ordering::Relaxed);
        if f == RESOLVED
            && self.home().load(Ordering::Relaxed) == self.addr()
            && (r as usize) < MAX_RANKS
        {
            return Ok(r);
        }
        self.ready_slow(f)
    }

    #[cold]
    fn ready_slow(&self, f: u32) -> Result<u32> {
        // Checked first: the other messages read the name pointers.
        if f & !KNOWN_FLAGS != 0 {
            return Err(Error::new(
                crate::status::RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "{} is not an initialised {} (overwritten memory?)",
                    self.describe(),
                    self.type_name()
                ),
            ));
        }
        if f & POISONED != 0 {
            return Err(Error::new(
                RTC_ERR_POISONED,
                format!(
                    "{} is poisoned: an earlier call on it panicked",
                    self.describe()
                ),
            ));
        }
        if f & DESTROYED != 0 {
            return Err(Error::new(
                RTC_ERR_DESTROYED,
                format!(
                    "{} was destroyed ({}_init it again to reuse it)",
                    self.describe(),
                    self.type_name()
                ),
            ));
        }
        if f & RESOLVED != 0 {
            let home = self.home().load(Ordering::Relaxed);
            if home != self.addr() {
                return Err(Error::new(
                    RTC_ERR_MOVED,
                    format!(
                        "{} was moved from {:#x} to {:#x} after first use; a {} must stay where it was first used",
                        self.describe(),
                        home,
                        self.addr(),
                        self.kind.name()
                    ),
                ));
            }
            let r = self.rank_cell().load(Ordering::Relaxed);
            if r as usize >= MAX_RANKS {
                return Err(Error::new(
                    crate::status::RTC_ERR_INVALID_ARGUMENT,
                    format!(
                        "{} is corrupted (rank id {r} out of range)",
                        self.describe()
                    ),
                ));
            }
            return Ok(r);
        }
        let rank = resolve_rank(self.rank_name_ptr())
            .map_err(|e| Error::new(e.status, format!("{}: {}", self.describe(), e.message)))?;
        self.rank_cell().store(rank, Ordering::Relaxed);
        self.home().store(self.addr(), Ordering::Relaxed);
        self.flags().fetch_or(RESOLVED, Ordering::Release);
        Ok(rank)
    }

    #[inline(always)]
    pub(super) fn word(&self) -> LockWord<'_> {
        LockWord {
            state: self.state(),
            key: self.addr(),
        }
    }

    /// The uncontended path, lock-free and panic-free (so it can run outside
    /// the C boundary's `catch_unwind`): one compare-and-swap, then the order
    /// check against the held set, then the record. Returns false, having
    /// changed nothing, whenever anything is unusual (contended, not yet
    /// resolved, destroyed, moved, record full); the caller then takes the
    /// full path, which does every check and reports every error.
    ///
    /// The CAS comes first so the lock word's cache line is fetched once, for
    /// writing; the fields read afterwards sit on the same line.
    #[inline(always)]
    pub fn lock_fast(&self, mode: Mode, key: u64, file: *const c_char, line: u32) -> Fast {
        // SAFETY: nothing below takes the record again.
        let (me, held) = unsafe { order::me_and_held() };
        {
            if me == 0 {
                return Fast::No;
            }
            let word = self.word();
            if !word.acquire_uncontended(me) {
                return Fast::No;
            }
            // flags first (Acquire): `rank` and `home` are published before
            // RESOLVED (Release), so they must be read after it.
            let flags = self.flags().load(Ordering::Acquire);
            let rank = self.rank_cell().load(Ordering::Relaxed);
            if flags != RESOLVED
                || self.home().load(Ordering::Relaxed) != self.addr()
                || rank as usize >= MAX_RANKS
            {
                // Not ours to take on this path: the caller gives it back
                // (`give_back`), out of line.
                return Fast::GiveBack;
            }
            // A full record (64 locks held: rare) gives the lock back. Tested
            // only now, after the compare-and-swap: a test before it is a
            // branch on a load of the record that the locked instruction,
            // which executes only once everything before it is done, would
            // wait for.
            if mode != Mode::Off && held.is_full() {
                return Fast::GiveBack;
            }
            self.count_acquisition();
            // With checking off nothing reads the record's ranks, so the fast
            // path skips it (misuse checks use the lock word). Unlock always
            // removes an entry if there is one, so switching modes with locks
            // held leaves no stale entry; locks taken while off are simply not
            // checked against after checking is switched back on.
            if mode == Mode::Off {
                return Fast::Taken;
            }
            let entry = HeldLock::new(
                self.addr(),
                file,
                key,
                line,
                rank,
                LockKind::Mutex,
                false,
                false,
            );
            if !held.push_fast(entry, true) {
                // Held, but the check has something to say (or wide
                // ranks): the caller finishes on `record_checked`, out of
                // line, so this path saves no registers for it.
                return Fast::TakenUnchecked(rank);
            }
            Fast::Taken
        }
    }

    /// Undo a `Fast::GiveBack` acquisition (waking a waiter that may have
    /// parked meanwhile).
    #[cold]
    pub fn give_back(&self) {
        let me = with_held(|h| h.me);
        let _ = self.word().release(me);
    }

    /// The fast path under contention: while another thread holds the lock
    /// and nobody waits for it, yield (reading, not writing, the word after
    /// each yield: `word::spin_yielding`, which says why no pause loop) and
    /// retry the fast path when it looks free. Bounded; the full path
    /// takes over (order check, then park) when the spin is over or
    /// anything is unusual. Spinning is not blocking: the order check of
    /// an acquisition it wins comes after, as on the uncontended path.
    #[cold]
    #[inline(never)]
    pub fn lock_fast_spinning(&self, mode: Mode, key: u64, file: *const c_char, line: u32) -> Fast {
        let me = with_held(|h| h.me);
        let mut round = 0;
        loop {
            let s = self.state().load(Ordering::Relaxed);
            if s & super::word::FLAGS != 0 || owner(s) == me {
                return Fast::No;
            }
            if owner(s) == 0 {
                match self.lock_fast(mode, key, file, line) {
                    Fast::No => {}
                    Fast::GiveBack => {
                        self.give_back();
                        return Fast::No;
                    }
                    r => return r,
                }
            }
            if !super::word::spin_yielding(&mut round) {
                return Fast::No;
            }
        }
    }

    /// The end of a fast acquisition whose order check has something to
    /// say (a violation, or a nestable rank's keys to compare): check,
    /// record, and deliver a pending report.
    #[cold]
    #[inline(never)]
    pub fn record_checked(&self, mode: Mode, rank: u32, key: u64, file: *const c_char, line: u32) {
        let wanted = self.wanted(rank, key, file, line);
        let pending = with_held(|held| {
            let pending = order::check(held, mode, &wanted);
            held.push(self.entry(&wanted, false));
            pending
        });
        if pending {
            report::deliver();
        }
    }

    #[inline(always)]
    fn wanted(&self, rank: u32, key: u64, file: *const c_char, line: u32) -> Wanted {
        Wanted {
            addr: self.addr(),
            kind: LockKind::Mutex,
            shared: false,
            name: self.name_ptr(),
            rank,
            file,
            line,
            key,
        }
    }

    #[inline(always)]
    fn entry(&self, w: &Wanted, tried: bool) -> HeldLock {
        HeldLock::new(
            self.addr(),
            w.file,
            w.key,
            w.line,
            w.rank,
            LockKind::Mutex,
            false,
            tried,
        )
    }

    /// The uncontended unlock: the newest entry popped if it is this
    /// mutex's, then one compare-and-swap, which also proves ownership.
    /// `UnlockFast::No` sends the caller to `unlock` (the entry may be
    /// gone: `unlock` removes it anyway, and a mutex is never recorded
    /// twice); `Forget`, released but recorded below the newest entry (an
    /// out-of-order release), to `forget`.
    ///
    /// The release comes first and the record's pop after it (measured:
    /// docs/benchmarks.md, round five), although the mutex is then free
    /// a few instructions longer before the thread's next lock, a window
    /// in which a spinning waiter takes it.
    #[inline(always)]
    pub fn unlock_fast(&self) -> UnlockFast {
        // SAFETY: nothing below takes the record again.
        let (me, held) = unsafe { order::me_and_held() };
        if me == 0 {
            return UnlockFast::No;
        }
        // Read while still held (a held mutex's rank cannot change).
        let rank = self.rank_cell().load(Ordering::Relaxed);
        if !self.word().release_uncontended(me) {
            return UnlockFast::No;
        }
        // The record after the release: before it, its loads and branches
        // would hold the locked instruction back (it executes only once
        // everything before it is done). A signal handler that runs in
        // between and takes locks finds this one still recorded; its own
        // entries go above and come off before this returns.
        if held.pop_top(self.addr()) {
            return UnlockFast::Done;
        }
        // Not on top: an entry further down, or none (taken with checking
        // off, the usual case then). None for sure if no entry has its
        // rank (the record's ranks are exact), which spares the scan.
        if !held.may_hold_rank(rank) || !held.holds(self.addr()) {
            return UnlockFast::Done;
        }
        UnlockFast::Forget
    }

    /// After `UnlockFast::Forget`: drop the entry (out of line: the
    /// shift is a call to memmove).
    #[cold]
    pub fn forget(&self) {
        with_held(|held| held.remove(self.addr()));
    }

    /// Only the holder writes the counter, so a plain load and store (no
    /// read-modify-write) is exact; sysmon only samples it.
    #[inline(always)]
    pub(crate) fn count_acquisition(&self) {
        let a = self.acquisitions();
        a.store(a.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    fn full_error(&self, what: &str) -> Error {
        Error::new(
            RTC_ERR_WRONG_STATE,
            format!(
                "{what} of {} refused: this thread already holds {MAX_HELD} locks, the most rtcore tracks",
                self.describe()
            ),
        )
    }

    /// Lock, checking misuse and order first; blocks if contended. `key`
    /// orders locks of a nestable rank (`None`: the address).
    pub fn lock(&self, mode: Mode, key: Option<u64>, file: *const c_char, line: u32) -> Result<()> {
        let key = key.unwrap_or(self.addr() as u64);
        let rank = self.ready()?;
        // Checks (and the uncontended acquisition) in one look at the record;
        // the wait, if any, outside it: waiting tells the world, which reads
        // this thread's record to publish what it holds, so the record must
        // not be borrowed across the wait.
        let must_wait = with_held(|held| {
            if held.is_full() {
                return Err(self.full_error("lock"));
            }
            let me = held.me;
            let word = self.word();
            let wanted = self.wanted(rank, key, file, line);
            if word.acquire_uncontended(me) {
                // Nothing blocked: the order check may come after, and the
                // lock is recorded before a callback hears of it (as on the
                // fast path).
                self.count_acquisition();
                let pending = order::check(held, mode, &wanted);
                held.push(self.entry(&wanted, false));
                return Ok((None, pending));
            }
            // A lock this thread holds is refused before the order check: it
            // is a certain self-deadlock, not an ordering question, and must
            // answer with a status even in abort mode.
            if word.current_owner() == me {
                let at = held
                    .find(self.addr())
                    .map(|e| format!(" (locked at {})", order::site(e.file, e.line)))
                    .unwrap_or_default();
                return Err(Error::new(
                    RTC_ERR_WOULD_DEADLOCK,
                    format!(
                        "lock of {} at {} by {}, which already holds it{at}: it would wait forever",
                        self.describe(),
                        order::site(file, line),
                        crate::ident::describe_current()
                    ),
                ));
            }
            // Checked before blocking.
            let pending = order::check(held, mode, &wanted);
            Ok((Some(me), pending))
        })?;
        if must_wait.1 {
            report::deliver();
        }
        let Some(me) = must_wait.0 else {
            return Ok(());
        };
        {
            // Trace: recorded by the waiting thread itself. Attached and
            // RUNNING, it is protected by the stop (the contended event
            // comes before it gives up its P, the acquired one after it
            // has a P again); otherwise by its gate (`record::emit`).
            let traced = crate::record::rtc_trace_on.load(Ordering::Relaxed) != 0;
            let started = if traced {
                self.trace_contended();
                crate::record::monotonic_ns()
            } else {
                0
            };
            crate::base::wait::set_target(crate::base::wait::Target::Mutex(self.addr()));
            super::waiters::set_want(Some(super::waiters::Want {
                addr: self.addr(),
                kind: LockKind::Mutex,
                shared: false,
                file,
                line,
                site: 0,
            }));
            let waker = self.word().acquire_contended(
                me,
                super::waiters::before_park,
                super::waiters::after_park,
            );
            super::waiters::set_want(None);
            crate::base::wait::set_target(crate::base::wait::Target::Nothing);
            if crate::record::rtc_trace_on.load(Ordering::Relaxed) != 0 {
                let waited = if traced {
                    crate::record::monotonic_ns().saturating_sub(started)
                } else {
                    0
                };
                crate::record::emit(
                    crate::format::EventKind::LockAcquired,
                    &[
                        crate::record::A::U(self.addr() as u64),
                        crate::record::A::U(waited),
                        crate::record::A::U(waker),
                    ],
                );
            }
        }
        self.count_acquisition();
        let entry = self.entry(&self.wanted(rank, key, file, line), false);
        with_held(|held| {
            if held.is_full() {
                // A callback returned holding locks and filled the record
                // meanwhile: give this one back rather than hold it unseen.
                let _ = self.word().release(held.me);
                return Err(self.full_error("lock"));
            }
            held.push(entry);
            Ok(())
        })
    }

    /// Try to lock without blocking: recorded, never order-checked.
    pub fn try_lock(&self, file: *const c_char, line: u32) -> Result<()> {
        let rank = self.ready()?;
        with_held(|held| {
            if held.is_full() {
                return Err(self.full_error("try-lock"));
            }
            match self.word().try_acquire(held.me) {
                Try::Acquired => {}
                Try::HeldByMe => {
                    return Err(Error::new(
                        RTC_ERR_WOULD_DEADLOCK,
                        format!(
                            "try-lock of {} which this thread already holds: it can never succeed",
                            self.describe()
                        ),
                    ));
                }
                Try::Busy(_) => return Err(Error::new(RTC_ERR_BUSY, String::new())),
            }
            self.count_acquisition();
            held.push(self.entry(&self.wanted(rank, self.addr() as u64, file, line), true));
            Ok(())
        })
    }

    /// Unlock; only the holder may.
    pub fn unlock(&self) -> Result<()> {
        with_held(|held| {
            if let Err(actual) = self.word().release(held.me) {
                // Not ours (any more: re-initialised under us, say): forget
                // any entry for it so later checks do not see a ghost.
                held.remove(self.addr());
                let who = if actual == 0 {
                    "it is not locked".to_string()
                } else {
                    format!("it is held by thread {actual}")
                };
                return Err(self.not_held_error(who));
            }
            held.remove(self.addr());
            Ok(())
        })
    }

    /// sysmon's sample: (acquisitions so far, holder's id or 0). Racy by
    /// design: two samples that agree mean "same holder, no new acquisition".
    pub fn sample(&self) -> (u64, u64) {
        (
            self.acquisitions().load(Ordering::Relaxed),
            self.word().current_owner(),
        )
    }

    /// Is this mutex held by the calling thread?
    pub fn held_by_me(&self) -> bool {
        let me = with_held(|h| h.me);
        self.word().current_owner() == me
    }

    /// `rtc_mutex_init`: the memory may hold anything (it may never have
    /// been initialised), so only this thread's own record is consulted.
    pub fn init(&self, name: *const c_char, rank_name: *const c_char) -> Result<()> {
        // Only this thread's record is consulted: the memory may be
        // uninitialised, so its lock word means nothing yet. (With checking
        // off, the fast path keeps no record, so this is not detected then.)
        if with_held(|h| h.find(self.addr()).is_some()) {
            return Err(Error::new(
                RTC_ERR_LOCKED,
                format!("init of {} which this thread holds", self.describe()),
            ));
        }
        let rank = resolve_rank(rank_name).map_err(|e| {
            Error::new(
                e.status,
                format!(
                    "init of {} '{}': {}",
                    self.kind.name(),
                    cstr_or(name, "(unnamed)"),
                    e.message
                ),
            )
        })?;
        let name = intern(name);
        // SAFETY: exclusive by contract (init must not race other use).
        unsafe {
            self.p.write(rtc_mutex {
                state: 0,
                name,
                rank_name: intern(rank_name),
                rank,
                flags: RESOLVED,
                home: self.addr(),
                acquisitions: 0,
                reserved: [0; 2],
            });
        }
        Ok(())
    }

    pub fn destroy(&self) -> Result<()> {
        let s = self.state().load(Ordering::Acquire);
        let busy = if owner(s) != 0 {
            let me = with_held(|h| h.me);
            Some(if owner(s) == me {
                "locked by this thread".to_string()
            } else {
                format!("locked by thread {}", owner(s))
            })
        } else if s & super::word::RESERVED != 0 {
            Some("about to be taken by a waiting thread".to_string())
        } else {
            None
        };
        self.destroy_unless(busy)
    }

    /// Mark destroyed unless `busy` says why not (the lock word's reading,
    /// which differs between a mutex and an rwlock), or it moved.
    pub(crate) fn destroy_unless(&self, busy: Option<String>) -> Result<()> {
        if let Some(why) = busy {
            return Err(Error::new(
                RTC_ERR_LOCKED,
                format!("destroy of {} which is {why}", self.describe()),
            ));
        }
        let f = self.flags().load(Ordering::Acquire);
        if f & RESOLVED != 0 && self.home().load(Ordering::Relaxed) != self.addr() {
            return Err(Error::new(
                RTC_ERR_MOVED,
                format!(
                    "destroy of {} which was moved after first use",
                    self.describe()
                ),
            ));
        }
        self.flags().fetch_or(DESTROYED, Ordering::Release);
        Ok(())
    }

    /// The unlock refusal for a lock this thread does not hold: the memory
    /// is not a lock, it was destroyed, or it is simply not held.
    pub(crate) fn not_held_error(&self, who: String) -> Error {
        let f = self.flags().load(Ordering::Acquire);
        if f & !KNOWN_FLAGS != 0 {
            return Error::new(
                crate::status::RTC_ERR_INVALID_ARGUMENT,
                format!(
                    "unlock of {}: it is not an initialised {} (overwritten memory?)",
                    self.describe(),
                    self.type_name()
                ),
            );
        }
        if f & DESTROYED != 0 {
            return Error::new(
                RTC_ERR_DESTROYED,
                format!("unlock of {} which was destroyed", self.describe()),
            );
        }
        Error::new(
            RTC_ERR_NOT_OWNER,
            format!(
                "unlock of {} which this thread does not hold ({who})",
                self.describe()
            ),
        )
    }
}

/// Resolve a rank name (NULL: unranked leaf).
pub(crate) fn resolve_rank(rank_name: *const c_char) -> Result<u32> {
    if rank_name.is_null() {
        return Ok(LEAF);
    }
    // SAFETY: NUL-terminated by contract.
    let s = unsafe { std::ffi::CStr::from_ptr(rank_name) };
    let s = s.to_str().map_err(|_| {
        Error::new(
            crate::status::RTC_ERR_INVALID_ARGUMENT,
            "rank name is not valid UTF-8",
        )
    })?;
    let table = ranks::global();
    let id = table.lookup(s)?;
    if table.rank(id).map(|r| r.class) != Some(ranks::table::Class::User) {
        return Err(Error::new(
            crate::status::RTC_ERR_UNKNOWN_RANK,
            format!("rank '{s}' is one of rtcore's own ranks; a user lock cannot carry it"),
        ));
    }
    Ok(id)
}

/// Interned names (see `intern`).
pub(crate) static NAMES: crate::base::inner::InnerMutex<
    Option<std::collections::HashSet<std::ffi::CString>>,
> = crate::base::inner::InnerMutex::new(crate::base::inner::InnerRank::Names, None);

/// Copy a C string into storage that lives for the rest of the process.
/// Names are few (one per distinct name), so they are kept, deduplicated.
pub(crate) fn intern(p: *const c_char) -> *const c_char {
    use std::ffi::CStr;
    if p.is_null() {
        return std::ptr::null();
    }
    // SAFETY: NUL-terminated by contract.
    let c = unsafe { CStr::from_ptr(p) };
    let mut g = NAMES.lock();
    let set = g.get_or_insert_with(std::collections::HashSet::new);
    if let Some(existing) = set.get(c) {
        return existing.as_ptr();
    }
    let owned = c.to_owned();
    // The CString's heap buffer does not move when the CString moves into
    // the set, and entries are never removed.
    let ptr = owned.as_ptr();
    set.insert(owned);
    ptr
}
