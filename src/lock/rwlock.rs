//! `rtc_rwlock`: a ranked, error-checking read/write lock that C embeds by
//! value. The word's protocol and policy (writer-preferring) are in
//! `rwword.rs`; the name, rank, flags, home and counter fields are laid out
//! as an `rtc_mutex`'s and handled by the same code (`MutexRef` of kind
//! rwlock).
//!
//! Invariants:
//! - Every hold, read or write, is in the holder's held record, whatever
//!   the lock-rank mode: a read hold is known only there (the word counts
//!   readers, it does not name them; a biased read is not even counted
//!   there, but published in the table of `rwbias`), and unlock decides
//!   from it whether the caller reads (counted or biased), writes or holds
//!   nothing. (Between the fast path's compare-and-swap, or a biased
//!   read's publishing, and its record or give-back, within one lock call,
//!   only the word or the slot has it; no unlock of this thread can come
//!   between.)
//! - A thread holds one lock at most once: a second acquisition of a lock
//!   it holds in any mode is refused with `RTC_ERR_WOULD_DEADLOCK` (a
//!   recursive read would wait forever behind a writer parked between the
//!   two, since parked writers stop new readers).
//! - The order check (both modes) happens before any blocking, as for the
//!   mutex; a read lock is recorded in shared mode, with its key.

use std::os::raw::c_char;

use super::mutex::{Fast, MutexRef};
use super::order::{self, Held, HeldLock, Hold, LockKind, MAX_HELD, Mode, Wanted, with_held};
use super::report;
use super::rwbias;
use super::rwword::{RwWord, TryRw, readers, writer};
use crate::status::{Error, RTC_ERR_BUSY, RTC_ERR_WOULD_DEADLOCK, RTC_ERR_WRONG_STATE, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// Called on a branch to mark it unlikely, so that the compiler places it
/// out of the fast path's straight line (`std::hint::cold_path` is newer
/// than rtcore's minimum Rust).
#[cold]
#[inline(always)]
fn unlikely() {}

/// A ranked read/write lock, embeddable by value in C structs.
///
/// Initialise statically with `RTC_RWLOCK_INIT` (unranked) or
/// `RTC_RWLOCK_INIT_RANKED(name, rank)`, or at run time with
/// `rtc_rwlock_init`. An all-zero `rtc_rwlock` is a valid unranked lock.
/// Never copy or move it after its first use. Fields are private to rtcore
/// except as set by the initialisers.
#[repr(C)]
pub struct rtc_rwlock {
    /// Private: the lock word.
    pub state: u64,
    /// Name shown in reports and traces (NUL-terminated, or NULL). A static
    /// initialiser's string must outlive the lock; `rtc_rwlock_init` copies.
    pub name: *const c_char,
    /// Rank name, resolved on first lock (NULL: an unranked leaf).
    pub rank_name: *const c_char,
    /// Private: resolved rank id.
    pub rank: u32,
    /// Private: flags.
    pub flags: u32,
    /// Private: address at first use.
    pub home: usize,
    /// Private: number of acquisitions (write, and read except biased
    /// reads, which do not write the lock's memory).
    pub acquisitions: u64,
    /// Private: `reserved[0]` is the time before which readers do not turn
    /// reader bias on again; `reserved[1]` is zero.
    pub reserved: [u64; 2],
}

// The shared code reads an rwlock's fields through an rtc_mutex view.
const _: () = {
    use super::mutex::rtc_mutex;
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<rtc_rwlock>() == size_of::<rtc_mutex>());
    assert!(align_of::<rtc_rwlock>() == align_of::<rtc_mutex>());
    assert!(offset_of!(rtc_rwlock, name) == offset_of!(rtc_mutex, name));
    assert!(offset_of!(rtc_rwlock, rank_name) == offset_of!(rtc_mutex, rank_name));
    assert!(offset_of!(rtc_rwlock, rank) == offset_of!(rtc_mutex, rank));
    assert!(offset_of!(rtc_rwlock, flags) == offset_of!(rtc_mutex, flags));
    assert!(offset_of!(rtc_rwlock, home) == offset_of!(rtc_mutex, home));
    assert!(offset_of!(rtc_rwlock, acquisitions) == offset_of!(rtc_mutex, acquisitions));
};

/// What the fast unlock did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockFast {
    /// Nothing: take the full path.
    No,
    Done,
    /// Released; the caller wakes the parked writer (`wake_writer`).
    DoneWakeWriter,
    /// Released, but its entry is not the newest: the caller `forget`s it
    /// (out of line), and wakes the parked writer if `true`.
    Forget(bool),
}

/// Views of an rwlock's word and fields.
pub struct RwLockRef {
    p: *mut rtc_rwlock,
    fields: MutexRef,
}

impl RwLockRef {
    /// # Safety
    /// `p` is non-NULL, aligned, and points to an `rtc_rwlock` that stays
    /// valid for the lifetime of the `RwLockRef`.
    #[inline]
    pub unsafe fn new(p: *mut rtc_rwlock) -> RwLockRef {
        RwLockRef {
            p,
            // SAFETY: forwarded.
            fields: unsafe { MutexRef::rwlock_fields(p) },
        }
    }

    #[inline]
    pub fn addr(&self) -> usize {
        self.p as usize
    }

    #[inline(always)]
    pub(super) fn word(&self) -> RwWord<'_> {
        // SAFETY: `p` valid and 8-aligned (new); all concurrent accesses to
        // the word are atomic.
        let state = unsafe { AtomicU64::from_ptr(&raw mut (*self.p).state) };
        // SAFETY: as above; every access to the deadline is atomic.
        let bias_after = unsafe { AtomicU64::from_ptr(&raw mut (*self.p).reserved[0]) };
        RwWord {
            state,
            key: self.addr(),
            slots: &rwbias::TABLE,
            bias_after,
        }
    }

    pub fn describe(&self) -> String {
        self.fields.describe()
    }

    pub fn mark_poisoned(&self) {
        self.fields.mark_poisoned()
    }

    pub fn init(&self, name: *const c_char, rank_name: *const c_char) -> Result<()> {
        self.fields.init(name, rank_name)?;
        rwbias::forget(&rwbias::TABLE, self.addr());
        Ok(())
    }

    fn wanted(&self, rank: u32, shared: bool, key: u64, file: *const c_char, line: u32) -> Wanted {
        Wanted {
            addr: self.addr(),
            kind: LockKind::RwLock,
            shared,
            name: self.fields.name_ptr(),
            rank,
            file,
            line,
            key,
        }
    }

    fn entry(w: &Wanted, tried: bool) -> HeldLock {
        HeldLock::new(
            w.addr,
            w.file,
            w.key,
            w.line,
            w.rank,
            LockKind::RwLock,
            w.shared,
            tried,
        )
    }

    /// The refusal for a lock this thread already holds, in any mode.
    fn already_held(&self, e: &HeldLock, what: &str, file: *const c_char, line: u32) -> Error {
        let how = if e.shared() {
            "for reading"
        } else {
            "for writing"
        };
        Error::new(
            RTC_ERR_WOULD_DEADLOCK,
            format!(
                "{what} of {} at {} by {}, which already holds it {how} (locked at {}): {}",
                self.describe(),
                order::site(file, line),
                crate::ident::describe_current(),
                order::site(e.file, e.line),
                if e.shared() && what.starts_with("read") {
                    "a recursive read waits forever behind a writer that arrives between the two"
                } else {
                    "it would wait forever"
                }
            ),
        )
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

    /// The uncontended path, lock-free and panic-free (it runs outside the
    /// C boundary). A read loads the word first: a biased word is entered
    /// by `lock_biased`, a word with readers in is joined by
    /// `join_readers`. Otherwise one compare-and-swap as if the lock were
    /// free; won, this thread cannot hold it already, and the fields and the
    /// record are tested only after it (a test before it is a branch on a
    /// load that the locked instruction, which executes only once
    /// everything before it is done, would wait for): a lock not ready or
    /// a full record is `Fast::GiveBack` (the caller releases, then takes
    /// the full path). Lost, to readers only, a reader joins them by
    /// `join_readers`. Returns `Fast::No`, having changed nothing, when
    /// the compare-and-swap is lost and the lock cannot be joined (a
    /// writer holds or waits, this thread may hold it, the lock is not
    /// ready, the record is full); the caller then takes the full path.
    #[inline(always)]
    pub fn lock_fast(
        &self,
        shared: bool,
        mode: Mode,
        key: u64,
        file: *const c_char,
        line: u32,
    ) -> Fast {
        // SAFETY: nothing below takes the record again.
        let (me, held) = unsafe { order::me_and_held() };
        if me == 0 {
            return Fast::No;
        }
        let word = self.word();
        // A read loads the word first, for the bias: under it, a
        // compare-and-swap would take the word's line from the other
        // readers' caches each time. A word with readers in is joined at
        // once (a compare-and-swap from a free word would fail). A free
        // word (never biased) is tested first and the rest placed out of
        // the way, so that the uncontended read runs straight through:
        // a median of 1.355x against 1.459x pthread_rwlock in alternate
        // runs of benches/floor (docs/benchmarks.md, "Round eight");
        // biased and joining reads pay a jump.
        let won = if shared {
            let s = word.load();
            if s == 0 {
                word.read_from_free()
            } else {
                unlikely();
                if RwWord::biased_may_enter(s) {
                    if let Some(taken) = self.lock_biased(me, held, mode, key, file, line) {
                        return taken;
                    }
                }
                Err(s)
            }
        } else if word.write_uncontended(me) {
            Ok(())
        } else {
            return Fast::No;
        };
        let rank = match won {
            // Taken from a free word: not held by this thread before.
            Ok(()) => match self.fields.fast_ready() {
                Some(rank) if !held.is_full() => rank,
                _ => return Fast::GiveBack,
            },
            // Readers in (a read lock only).
            Err(s) => match self.join_readers(held, s) {
                Some(rank) => rank,
                None => return Fast::No,
            },
        };
        self.fields.count_acquisition();
        let hold = if shared { Hold::Read } else { Hold::Exclusive };
        Self::record_fast(held, mode, self.addr(), hold, rank, key, file, line)
    }

    /// The end of a fast acquisition: record it, checked in the same
    /// step, or say `record_checked` must (when the check has something to
    /// say). Recorded even with checking off: unlock tells a read hold, and
    /// a biased one, from the record.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn record_fast(
        held: &mut Held,
        mode: Mode,
        addr: usize,
        hold: Hold,
        rank: u32,
        key: u64,
        file: *const c_char,
        line: u32,
    ) -> Fast {
        let biased = hold == Hold::BiasedRead;
        let entry = HeldLock::new(
            addr,
            file,
            key,
            line,
            rank,
            LockKind::RwLock,
            hold != Hold::Exclusive,
            false,
        )
        .biased_if(biased);
        match (held.push_fast(entry, mode != Mode::Off), biased) {
            (true, _) => Fast::Taken,
            (false, false) => Fast::TakenUnchecked(rank),
            (false, true) => Fast::TakenBiasedUnchecked(rank),
        }
    }

    /// A read lock of a biased word: the lock's fields and the record are
    /// tested first (a biased hold has no give-back), then the hold is
    /// published. None, with nothing changed, sends the caller on to the
    /// word (the full path says why, if it must refuse).
    #[inline(always)]
    fn lock_biased(
        &self,
        me: u64,
        held: &mut Held,
        mode: Mode,
        key: u64,
        file: *const c_char,
        line: u32,
    ) -> Option<Fast> {
        let rank = self.fields.fast_ready()?;
        if held.is_full()
            || (held.may_hold_rank(rank) && held.holds(self.addr()))
            || !self.word().read_biased(me)
        {
            return None;
        }
        // Not counted in `acquisitions`: that would write the lock's line.
        Some(Self::record_fast(
            held,
            mode,
            self.addr(),
            Hold::BiasedRead,
            rank,
            key,
            file,
            line,
        ))
    }

    /// A read lock that found readers in (`s`, from the compare-and-swap
    /// that lost): join them, unless this thread may be one of them (then
    /// the full path refuses it), the record is full or the lock is not
    /// ready. The rank, or None with nothing changed.
    #[inline(always)]
    fn join_readers(&self, held: &Held, s: u64) -> Option<u32> {
        if held.is_full() {
            return None;
        }
        let rank = self.fields.fast_ready()?;
        // Held already (misuse, for the full path to report)? Only if its
        // rank is: the scan runs only then. (A lock re-initialised with
        // another rank by another thread while this one holds it, a race
        // the contract of `rtc_rwlock_init` forbids, escapes this test.)
        if held.may_hold_rank(rank) && held.holds(self.addr()) {
            return None;
        }
        self.word().read_joining(s).then_some(rank)
    }

    /// Undo a `Fast::GiveBack` acquisition (waking a writer that may have
    /// parked meanwhile), in the mode it was taken.
    #[cold]
    pub fn give_back(&self, shared: bool) {
        let word = self.word();
        if shared {
            word.read_release();
        } else {
            let me = with_held(|h| h.me);
            // Cannot fail: the word names this thread as its writer.
            let released = word.write_release(me);
            debug_assert!(released.is_ok(), "{released:?}");
        }
    }

    /// The end of a fast acquisition the order check has something to say
    /// about: check, record, deliver a pending report.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn record_checked(
        &self,
        shared: bool,
        biased: bool,
        mode: Mode,
        rank: u32,
        key: u64,
        file: *const c_char,
        line: u32,
    ) {
        let wanted = self.wanted(rank, shared, key, file, line);
        let pending = with_held(|held| {
            let pending = order::check(held, mode, &wanted);
            held.push(Self::entry(&wanted, false).biased_if(biased));
            pending
        });
        if pending {
            report::deliver();
        }
    }

    /// The uncontended unlock of this thread's hold, read or write; false
    /// (nothing changed) sends the caller to `unlock`.
    #[inline(always)]
    pub fn unlock_fast(&self) -> UnlockFast {
        // SAFETY: nothing below takes the record again.
        let (me, held) = unsafe { order::me_and_held() };
        if me == 0 {
            return UnlockFast::No;
        }
        // The record says how this thread holds it; the word is changed
        // at once, with no load first (which, under contention, would
        // fetch its line once to read and again to write).
        let word = self.word();
        let wake = match held.find(self.addr()).map(HeldLock::hold) {
            Some(Hold::BiasedRead) => {
                if !word.read_release_biased(me) {
                    return UnlockFast::No;
                }
                false
            }
            Some(Hold::Read) => match word.read_release_vouched() {
                Some(wake) => wake,
                None => return UnlockFast::No,
            },
            Some(Hold::Exclusive) => {
                if !word.write_release_uncontended(me) {
                    return UnlockFast::No;
                }
                false
            }
            None => return UnlockFast::No,
        };
        if !held.pop_top(self.addr()) {
            return UnlockFast::Forget(wake);
        }
        if wake {
            UnlockFast::DoneWakeWriter
        } else {
            UnlockFast::Done
        }
    }

    /// After `UnlockFast::Forget`: drop the entry (out of line: the shift
    /// is a call to memmove).
    #[cold]
    pub fn forget(&self) {
        with_held(|held| held.remove(self.addr()));
    }

    /// After `UnlockFast::DoneWakeWriter`: the last reader left while a
    /// writer was parked.
    #[cold]
    pub fn wake_writer(&self) {
        self.word().wake_writer_or_readers();
    }

    /// Read- or write-lock, checking misuse and order first; blocks if
    /// contended. `key` orders locks of a nestable rank (None: the address).
    pub fn lock(
        &self,
        shared: bool,
        mode: Mode,
        key: Option<u64>,
        file: *const c_char,
        line: u32,
    ) -> Result<()> {
        let rank = self.fields.ready()?;
        let key = key.unwrap_or(self.addr() as u64);
        let what = if shared { "read lock" } else { "write lock" };
        let wanted = self.wanted(rank, shared, key, file, line);
        let (must_wait, pending, biased) = with_held(|held| {
            if held.is_full() {
                return Err(self.full_error(what));
            }
            if let Some(e) = held.find(self.addr()) {
                return Err(self.already_held(e, what, file, line));
            }
            let me = held.me;
            let word = self.word();
            let biased =
                shared && RwWord::biased_may_enter(word.load()) && me != 0 && word.read_biased(me);
            // A write to a free biased word (RBIAS and nothing else) is
            // not contended: `try_write` takes it if no biased reader is in.
            let got = if shared {
                biased || word.read_retrying()
            } else {
                word.write_uncontended(me) || word.try_write(me) == TryRw::Acquired
            };
            // Checked before blocking (after, when nothing blocked).
            let pending = order::check(held, mode, &wanted);
            if got {
                held.push(Self::entry(&wanted, false).biased_if(biased));
            }
            Ok(((!got).then_some(me), pending, biased))
        })?;
        if pending {
            report::deliver();
        }
        if let Some(me) = must_wait {
            self.wait(shared, me, file, line);
            with_held(|held| {
                if held.is_full() {
                    // A callback (the report delivered above) returned
                    // holding locks and filled the record meanwhile: give
                    // this one back rather than hold it unseen.
                    if shared {
                        self.word().read_release();
                    } else {
                        let _ = self.word().write_release(me);
                    }
                    return Err(self.full_error(what));
                }
                held.push(Self::entry(&wanted, false));
                Ok(())
            })?;
        }
        // (A biased read is not counted: that would write the lock.)
        if !biased {
            self.fields.count_acquisition();
        }
        Ok(())
    }

    /// The contended wait, traced like the mutex's: the waiting thread
    /// records a contended event (with the mode and the writer, if one
    /// holds it) and, once it holds the lock, an acquired one.
    #[cold]
    fn wait(&self, shared: bool, me: u64, file: *const c_char, line: u32) {
        let traced = crate::record::rtc_trace_on.load(Ordering::Relaxed) != 0;
        let started = if traced {
            let s = self.word().load();
            crate::record::emit(
                crate::format::EventKind::RwLockContended,
                &[
                    crate::record::A::U(self.addr() as u64),
                    crate::record::A::CStrLossy(self.fields.name_ptr()),
                    crate::record::A::U(if shared { 2 } else { 1 }),
                    crate::record::A::U(writer(s).unwrap_or(0)),
                    crate::record::A::U(readers(s) + self.word().biased_readers()),
                ],
            );
            crate::record::monotonic_ns()
        } else {
            0
        };
        crate::base::wait::set_target(crate::base::wait::Target::RwLock(self.addr()));
        super::waiters::set_want(Some(super::waiters::Want {
            addr: self.addr(),
            kind: LockKind::RwLock,
            shared,
            file,
            line,
            site: 0,
        }));
        let (begin, end) = (super::waiters::before_park, super::waiters::after_park);
        let waker = if shared {
            self.word().read_contended(begin, end)
        } else {
            self.word().write_contended(me, begin, end)
        };
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

    /// Try to read- or write-lock without blocking: recorded, never
    /// order-checked.
    pub fn try_lock(&self, shared: bool, file: *const c_char, line: u32) -> Result<()> {
        let rank = self.fields.ready()?;
        let what = if shared {
            "try-read-lock"
        } else {
            "try-write-lock"
        };
        with_held(|held| {
            if held.is_full() {
                return Err(self.full_error(what));
            }
            if let Some(e) = held.find(self.addr()) {
                return Err(self.already_held(e, what, file, line));
            }
            let word = self.word();
            let r = if shared {
                word.try_read()
            } else {
                word.try_write(held.me)
            };
            match r {
                TryRw::Acquired => {}
                TryRw::WriteLockedBy(_) | TryRw::Busy => {
                    return Err(Error::new(RTC_ERR_BUSY, String::new()));
                }
            }
            let w = self.wanted(rank, shared, self.addr() as u64, file, line);
            held.push(Self::entry(&w, true));
            Ok(())
        })?;
        self.fields.count_acquisition();
        Ok(())
    }

    /// Release this thread's hold, read or write.
    pub fn unlock(&self) -> Result<()> {
        with_held(|held| {
            let me = held.me;
            let word = self.word();
            let s = word.load();
            if writer(s) == Some(me) {
                word.write_release(me).map_err(|_| {
                    self.fields
                        .not_held_error("it changed under the call".into())
                })?;
                held.remove(self.addr());
                return Ok(());
            }
            match held.find(self.addr()) {
                Some(e) if e.biased() => {
                    held.remove(self.addr());
                    if word.read_release_biased(me) {
                        return Ok(());
                    }
                    Err(self.fields.not_held_error(
                        "its read hold is gone: was it re-initialised while held?".into(),
                    ))
                }
                Some(e) if e.shared() && readers(s) > 0 => {
                    held.remove(self.addr());
                    word.read_release();
                    Ok(())
                }
                _ => {
                    // Not ours (any more: re-initialised under us, say):
                    // forget any entry for it so later checks see no ghost.
                    held.remove(self.addr());
                    let n = readers(s) + word.biased_readers();
                    let who = match writer(s) {
                        Some(w) => format!("it is write-locked by thread {w}"),
                        None if n > 0 => format!("it is read-locked by {n} other thread(s)"),
                        None => "it is not locked".to_string(),
                    };
                    Err(self.fields.not_held_error(who))
                }
            }
        })
    }

    pub fn destroy(&self) -> Result<()> {
        let s = self.word().load();
        let n = readers(s) + self.word().biased_readers();
        let busy = match writer(s) {
            Some(w) => Some(format!("write-locked by thread {w}")),
            None if n > 0 => Some(format!("read-locked by {n} thread(s)")),
            None if super::rwword::flags(s) != 0 => Some("waited for by parked threads".into()),
            None => None,
        };
        self.fields.destroy_unless(busy)
    }
}
