//! The lock-word protocol of `rtc_rwlock`, apart from ranks, the held
//! record and C memory, so that loom can model it through `sync`.
//!
//! Word: `high << 4 | RBIAS | WRITER | W_PARKED | R_PARKED`, where `high`
//! is the writer's thread id when WRITER is set, else the number of
//! counted readers (biased readers are not counted: see below).
//! Readers park on `key`, writers on `key + 1` (keys are lock addresses, at
//! least 8-aligned, so `key + 1` is no other lock's key).
//!
//! Policy: writer-preferring. A reader enters only while no writer holds
//! the lock and none waits for it (W_PARKED: a writer that found readers
//! in sets it at once, then spins and parks; one that found a writer sets
//! it when its spin is over); so a waiting writer waits only for the
//! readers already in, and usually takes the lock within its spin. A write unlock wakes one parked writer
//! if there is one, else every parked reader. Under a continuous stream of
//! writers, readers may wait until it ends (the price of the preference).
//! Nobody is handed the lock: a woken thread takes it by compare-and-swap
//! once it runs again (after the world's `after_park`).
//!
//! Reader bias (`rwbias`): while RBIAS is set a reader may enter without
//! counting itself in the word, by publishing the lock in its slot of the
//! table of biased holds and then finding RBIAS still set. RBIAS is set by
//! a reader joining a word that is not free but open to readers (almost
//! always: other readers are in, so in effect when readers meet), once the
//! lock's deadline (`bias_after`) has passed; it is cleared by the
//! compare-and-swap that sets WRITER, after which that writer waits for
//! the biased readers to leave, and sets the deadline to nine times that
//! revocation's duration from now (at most `MAX_INHIBIT_TICKS`), so that
//! revoking costs a stream of writers at most about a tenth of their time.
//! A writer that waits for biased readers holds WRITER meanwhile: it polls
//! the table (spinning, then yielding, then, counted as parked, sleeping
//! up to 1 ms between looks), since a biased release is one
//! compare-and-swap on the reader's own slot and wakes nobody.
//!
//! Invariants (checked by the loom models in tests/loom_rwlock.rs):
//! - **exclusion**: WRITER is set only by a compare-and-swap from a word
//!   with no writer and no counted reader; a counted reader enters only by
//!   a compare-and-swap from a word without WRITER; and a writer whose
//!   compare-and-swap cleared RBIAS proceeds only once the biased readers
//!   have left (**bias**). So a writer is alone.
//! - **no lost wake-up (readers)**: a reader parks only while (under the
//!   bucket lock) WRITER or W_PARKED and R_PARKED are set; R_PARKED is
//!   cleared only just before every parked reader is woken: by a write
//!   unlock with no writer parked, or by a release that found W_PARKED
//!   stale (no writer parked after all). A reader stopped by W_PARKED is
//!   woken by the write unlock that follows the parked writer's turn. A
//!   reader that set R_PARKED and then entered without parking leaves it
//!   set: that costs one needless wake-up, never a lost one.
//! - **no lost wake-up (writers)**: a writer parks only while (under its
//!   bucket lock) the lock is held and W_PARKED is set (which may have been
//!   set before a spin, or by another writer). W_PARKED is cleared
//!   only under that bucket lock when no writer remains parked. Every
//!   release that leaves the lock free (a write unlock, the last reader's
//!   unlock) and saw W_PARKED wakes one writer.
//! - **owner-only release**: a write release succeeds only for the writer;
//!   read releases are vouched for by the caller (the held record).
//! - **bias**: a biased reader is in only if, after its slot's publishing
//!   compare-and-swap, it loaded the word with RBIAS set; a writer that
//!   cleared RBIAS (by the compare-and-swap that set WRITER, or by
//!   `try_write`'s) proceeds only once it has loaded every slot without
//!   the lock's address after that. All four accesses are sequentially
//!   consistent, so of a reader and a writer racing, at least one sees the
//!   other (the reader withdraws, or the writer waits). RBIAS is cleared
//!   only with WRITER set; a `try_write` that finds biased readers in
//!   restores it as it gives the lock back, so biased readers are never
//!   in while the word lacks RBIAS and no writer is draining them.

use super::rwbias::{self, SlotLine, ticks};
use super::word::spin;
use crate::sync::{AtomicU64, Ordering, park};

pub const R_PARKED: u64 = 1;
pub const W_PARKED: u64 = 2;
pub const WRITER: u64 = 4;
/// Readers may enter biased (see the module's comment).
pub const RBIAS: u64 = 8;
const SHIFT: u32 = 4;
pub const ONE_READER: u64 = 1 << SHIFT;
const FLAGS: u64 = R_PARKED | W_PARKED | WRITER;
/// Longest pause (spin hints) between a reader's lost compare-and-swaps.
const MAX_READ_PAUSE: u32 = 64;
/// After a revocation that took d, readers do not bias again for this
/// many times d.
const INHIBIT_FACTOR: u64 = 9;
/// The longest inhibition, in `rwbias::ticks` (about 0.1 s at 2.5 GHz, or
/// 0.27 s where ticks are nanoseconds).
const MAX_INHIBIT_TICKS: u64 = 1 << 28;
/// The longest sleep between two looks of a writer waiting for a biased
/// reader to leave.
#[cfg(not(loom))]
const DRAIN_MAX_SLEEP: std::time::Duration = std::time::Duration::from_millis(1);

/// The writer's id, if write-locked.
#[inline(always)]
pub fn writer(s: u64) -> Option<u64> {
    (s & WRITER != 0).then_some(s >> SHIFT)
}

/// The number of readers in (0 when write-locked).
#[inline(always)]
pub fn readers(s: u64) -> u64 {
    if s & WRITER != 0 { 0 } else { s >> SHIFT }
}

/// A view of one rwlock word, its parking keys, the table of biased read
/// holds and the lock's bias deadline (in `rwbias::ticks`).
pub struct RwWord<'a> {
    pub state: &'a AtomicU64,
    pub key: usize,
    pub slots: &'a [SlotLine],
    pub bias_after: &'a AtomicU64,
}

/// Outcome of a try-acquire.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRw {
    Acquired,
    /// Write-locked by this thread id.
    WriteLockedBy(u64),
    /// Read-locked (or a writer waits, for a reader).
    Busy,
}

impl RwWord<'_> {
    /// A reader may enter this word.
    #[inline(always)]
    fn reader_may_enter(s: u64) -> bool {
        s & (WRITER | W_PARKED) == 0
    }

    /// A biased reader may enter this word: RBIAS set (so no writer
    /// holds it) and no writer waiting.
    #[inline(always)]
    pub fn biased_may_enter(s: u64) -> bool {
        s & (RBIAS | W_PARKED) == RBIAS
    }

    /// A counted read acquire without blocking: one compare-and-swap as
    /// if the lock were free, then one to join the readers found in. (The
    /// product's fast path does the same in its own order, with the
    /// record's tests between; the loom models use this one.)
    #[inline(always)]
    pub fn read_uncontended(&self) -> bool {
        match self.read_from_free() {
            Ok(()) => true,
            Err(s) => self.read_joining(s),
        }
    }

    /// The first step of `read_uncontended`: one compare-and-swap as if
    /// the lock were free (no load first: under contention a load would
    /// fetch the word's line once to read and again to write). `Err` has
    /// the word it found. Won only when nobody held the lock, so the
    /// caller knows it did not hold it already.
    #[inline(always)]
    pub fn read_from_free(&self) -> Result<(), u64> {
        self.state
            .compare_exchange(0, ONE_READER, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
    }

    /// The second step: join the readers in the word `s` that
    /// `read_from_free` found, by one more compare-and-swap, if a reader
    /// may enter it.
    /// Readers meet here, so this is where RBIAS is set, if the lock's
    /// deadline has passed.
    #[inline(always)]
    pub fn read_joining(&self, s: u64) -> bool {
        if !Self::reader_may_enter(s) {
            return false;
        }
        let bias = if s & RBIAS == 0 && self.bias_allowed() {
            RBIAS
        } else {
            0
        };
        self.state
            .compare_exchange(
                s,
                (s + ONE_READER) | bias,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The lock's bias deadline has passed.
    #[inline(always)]
    fn bias_allowed(&self) -> bool {
        ticks() >= self.bias_after.load(Ordering::Relaxed)
    }

    /// The biased read acquire (the caller saw RBIAS in the word): publish
    /// the lock in this thread's slot, then enter if RBIAS is still set.
    /// False, with the slot left as it was, if the slot is taken (another
    /// of this thread's holds, or another thread's with the same id modulo
    /// the table's lines) or RBIAS is gone: the caller counts itself in
    /// the word instead. `me` is not 0.
    #[inline(always)]
    pub fn read_biased(&self, me: u64) -> bool {
        let slot = rwbias::slot(self.slots, me, self.key);
        if slot
            .compare_exchange(0, self.key as u64, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SeqCst (invariant **bias**); also an acquire of the last
        // writer's release, which the RMW that set RBIAS continued.
        Self::loom_sc_fence();
        if Self::biased_may_enter(self.state.load(Ordering::SeqCst)) {
            return true;
        }
        slot.store(0, Ordering::Release);
        false
    }

    /// Nothing, except under loom: loom does not give sequentially
    /// consistent loads and stores their total order (tokio-rs/loom#180)
    /// but does model `fence(SeqCst)`, which between the two accesses of
    /// each side of the **bias** handshake gives the same guarantee.
    #[inline(always)]
    pub(crate) fn loom_sc_fence() {
        #[cfg(loom)]
        crate::sync::fence(Ordering::SeqCst);
    }

    /// Release a biased read hold of thread `me` (its record says so).
    /// False, with nothing changed, if the slot does not hold the lock:
    /// only a lock re-initialised while held (which `rtc_rwlock_init`'s
    /// contract forbids: it forgets the lock's slots) or overwritten
    /// memory can cause that, and the slot may by then be another hold's.
    #[inline(always)]
    pub fn read_release_biased(&self, me: u64) -> bool {
        rwbias::slot(self.slots, me, self.key)
            .compare_exchange(self.key as u64, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Readers in by biased holds (a scan of the table).
    pub fn biased_readers(&self) -> u64 {
        rwbias::count(self.slots, self.key)
    }

    /// After a compare-and-swap that set WRITER and cleared RBIAS: wait
    /// until no biased reader is in, then set the bias deadline.
    #[cold]
    fn drain_biased(&self, before_park: fn(), after_park: fn()) {
        let start = ticks();
        // Once spinning is over the writer counts as parked (its P given
        // back, its wait published) until the drain ends: one wait, which
        // sysmon's deadlock search and stall tracking can see whole.
        let mut parked = false;
        for line in self.slots {
            for slot in &line.0 {
                let mut round = 0;
                #[cfg(not(loom))]
                let mut sleep = std::time::Duration::from_micros(20);
                // SeqCst (invariant **bias**).
                while slot.load(Ordering::SeqCst) == self.key as u64 {
                    if spin(&mut round) {
                        continue;
                    }
                    if !parked {
                        before_park();
                        parked = true;
                    }
                    #[cfg(not(loom))]
                    {
                        std::thread::sleep(sleep);
                        sleep = (sleep * 2).min(DRAIN_MAX_SLEEP);
                    }
                    #[cfg(loom)]
                    crate::sync::spin_hint();
                }
            }
        }
        if parked {
            after_park();
        }
        // (A time-stamp counter may step back between CPUs: no negative
        // durations, and a bounded inhibition whatever the clock did.)
        let end = ticks();
        let took = end
            .saturating_sub(start)
            .min(MAX_INHIBIT_TICKS / INHIBIT_FACTOR);
        self.bias_after
            .store(end.saturating_add(took * INHIBIT_FACTOR), Ordering::Relaxed);
    }

    /// The read acquire without blocking: compare-and-swaps retried while
    /// the lock stays open to readers and they lose only to other readers
    /// coming and going (lock-free: every loss is another's success),
    /// each after a pause that doubles with each loss. The pause leaves
    /// the word with one CPU for a run of acquisitions instead of moving
    /// it between CPUs on every one. False as soon as a writer holds or
    /// waits.
    pub fn read_retrying(&self) -> bool {
        let mut pause = 1u32;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if !Self::reader_may_enter(s) {
                return false;
            }
            if self
                .state
                .compare_exchange(s, s + ONE_READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            // (Under loom one hint: each is a scheduling point.)
            #[cfg(not(loom))]
            for _ in 0..pause {
                crate::sync::spin_hint();
            }
            #[cfg(loom)]
            crate::sync::spin_hint();
            pause = (pause * 2).min(MAX_READ_PAUSE);
        }
    }

    /// The uncontended write acquire: one compare-and-swap from 0.
    #[inline(always)]
    pub fn write_uncontended(&self, me: u64) -> bool {
        self.state
            .compare_exchange(
                0,
                (me << SHIFT) | WRITER,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    pub fn try_read(&self) -> TryRw {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if let Some(w) = writer(s) {
                return TryRw::WriteLockedBy(w);
            }
            if !Self::reader_may_enter(s) {
                return TryRw::Busy;
            }
            match self.state.compare_exchange_weak(
                s,
                s + ONE_READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return TryRw::Acquired,
                Err(now) => s = now,
            }
        }
    }

    pub fn try_write(&self, me: u64) -> TryRw {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if let Some(w) = writer(s) {
                return TryRw::WriteLockedBy(w);
            }
            if readers(s) != 0 {
                return TryRw::Busy;
            }
            match self.state.compare_exchange_weak(
                s,
                (me << SHIFT) | WRITER | (s & (R_PARKED | W_PARKED)),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_)
                    if s & RBIAS != 0 && {
                        Self::loom_sc_fence();
                        self.biased_readers() != 0
                    } =>
                {
                    self.write_release_restoring_bias(me);
                    return TryRw::Busy;
                }
                Ok(_) => return TryRw::Acquired,
                Err(now) => s = now,
            }
        }
    }

    /// Give back a write hold taken by clearing RBIAS while biased readers
    /// are still in: RBIAS goes back up with the release (invariant
    /// **bias**), and whoever parked meanwhile is woken.
    #[cold]
    fn write_release_restoring_bias(&self, me: u64) {
        let released = self.release_writer(me, RBIAS);
        debug_assert!(released.is_ok(), "{released:?}");
    }

    pub fn load(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
    }

    /// Block until read-locked. Returns the id of the thread whose unlock
    /// last woke the caller (0: never woken by one).
    #[cold]
    pub fn read_contended(&self, before_park: fn(), after_park: fn()) -> u64 {
        let mut waker = 0;
        let mut round = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if Self::reader_may_enter(s) {
                if self
                    .state
                    .compare_exchange_weak(s, s + ONE_READER, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return waker;
                }
                continue;
            }
            if s & R_PARKED == 0 {
                if spin(&mut round) {
                    continue;
                }
                if self
                    .state
                    .compare_exchange_weak(s, s | R_PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
            }
            before_park();
            let state = self.state;
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                park::park(self.key, || {
                    let s = state.load(Ordering::Relaxed);
                    !Self::reader_may_enter(s) && s & R_PARKED != 0
                });
            }
            waker = match park::last_waker() {
                0 => waker,
                w => w,
            };
            after_park();
            round = 0;
        }
    }

    /// Block until write-locked. Returns as `read_contended`.
    #[cold]
    pub fn write_contended(&self, me: u64, before_park: fn(), after_park: fn()) -> u64 {
        let mut waker = 0;
        let mut round = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & WRITER == 0 && readers(s) == 0 {
                if self
                    .state
                    .compare_exchange_weak(
                        s,
                        (me << SHIFT) | WRITER | (s & (R_PARKED | W_PARKED)),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    if s & RBIAS != 0 {
                        Self::loom_sc_fence();
                        self.drain_biased(before_park, after_park);
                    }
                    return waker;
                }
                continue;
            }
            // Against readers, W_PARKED goes up before spinning: no new
            // reader enters, and those in leave within their critical
            // sections, so the spin usually ends in the lock rather than
            // in a park (which a stream of readers would otherwise force,
            // each keeping the count above zero). Against a writer it goes
            // up only when the spin is over.
            if s & W_PARKED == 0 {
                if readers(s) == 0 && spin(&mut round) {
                    continue;
                }
                let _ = self.state.compare_exchange_weak(
                    s,
                    s | W_PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                continue;
            }
            if spin(&mut round) {
                continue;
            }
            before_park();
            let state = self.state;
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                park::park(self.key + 1, || {
                    let s = state.load(Ordering::Relaxed);
                    (s & WRITER != 0 || readers(s) != 0) && s & W_PARKED != 0
                });
            }
            waker = match park::last_waker() {
                0 => waker,
                w => w,
            };
            after_park();
            round = 0;
        }
    }

    /// Release one read hold (the caller holds one: the held record says
    /// so). Wakes a writer if this was the last reader and one is parked.
    #[inline(always)]
    pub fn read_release(&self) {
        if self.read_release_no_wake() {
            self.wake_writer_or_readers();
        }
    }

    /// `read_release` without the wake: true when the caller must call
    /// `wake_writer_or_readers` (the last reader left, a writer parked).
    #[inline(always)]
    pub fn read_release_no_wake(&self) -> bool {
        let old = self.state.fetch_sub(ONE_READER, Ordering::Release);
        debug_assert!(old & WRITER == 0 && readers(old) > 0);
        readers(old) == 1 && old & W_PARKED != 0
    }

    /// `read_release_no_wake` for a caller whose record says it holds a
    /// read hold, with no load first (under reader contention a load
    /// would fetch the word's line once to read and again to write; a
    /// compare-and-swap would fail whenever another reader came or went).
    /// Checked after the fact: None if the word had a writer or no reader,
    /// the subtraction then undone. Only memory overwritten, or a lock
    /// re-initialised while this thread held it (a race the contract of
    /// `rtc_rwlock_init` forbids), can cause that; other threads may see
    /// the word wrong until it is undone, as they may see any such race.
    /// The caller's full path reports it.
    #[inline(always)]
    pub fn read_release_vouched(&self) -> Option<bool> {
        let old = self.state.fetch_sub(ONE_READER, Ordering::Release);
        if old & WRITER != 0 || old >> SHIFT == 0 {
            self.state.fetch_add(ONE_READER, Ordering::Relaxed);
            return None;
        }
        Some(old >> SHIFT == 1 && old & W_PARKED != 0)
    }

    /// The uncontended write release: one compare-and-swap, which also
    /// proves ownership; false: nothing changed.
    #[inline(always)]
    pub fn write_release_uncontended(&self, me: u64) -> bool {
        let mine = (me << SHIFT) | WRITER;
        self.state
            .compare_exchange(mine, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Release the write lock; `Err(word)` if `me` is not the writer.
    pub fn write_release(&self, me: u64) -> Result<(), u64> {
        if self.write_release_uncontended(me) {
            return Ok(());
        }
        self.write_release_slow(me)
    }

    #[cold]
    fn write_release_slow(&self, me: u64) -> Result<(), u64> {
        self.release_writer(me, 0)
    }

    /// Release `me`'s write hold, leaving the parked flags and `keep` in
    /// the word, and wake whoever parked; `Err(word)` if `me` is not the
    /// writer.
    fn release_writer(&self, me: u64, keep: u64) -> Result<(), u64> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if writer(s) != Some(me) {
                return Err(s);
            }
            match self.state.compare_exchange_weak(
                s,
                (s & (R_PARKED | W_PARKED)) | keep,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & W_PARKED != 0 {
            self.wake_writer_or_readers();
        } else if s & R_PARKED != 0 {
            self.wake_readers();
        }
        Ok(())
    }

    /// Wake one parked writer. W_PARKED may be stale (its writer took the
    /// lock without parking after all); then nobody is woken, the flag is
    /// cleared, and readers parked behind it are woken instead.
    #[cold]
    pub fn wake_writer_or_readers(&self) {
        let state = self.state;
        // SAFETY: the callback only updates an atomic.
        let woke = unsafe {
            park::unpark_one(self.key + 1, |more| {
                if !more {
                    state.fetch_and(!W_PARKED, Ordering::Relaxed);
                }
            })
        };
        if !woke && self.state.load(Ordering::Relaxed) & R_PARKED != 0 {
            self.wake_readers();
        }
    }

    #[cold]
    fn wake_readers(&self) {
        // Cleared before the wake: a reader validating after this sees it
        // clear and does not park; one parked before is woken below.
        self.state.fetch_and(!R_PARKED, Ordering::Relaxed);
        // SAFETY: no callback.
        unsafe { park::unpark_all(self.key) };
    }
}

/// Read the word's flags (for tests and reports).
pub fn flags(s: u64) -> u64 {
    s & FLAGS
}

/// Deliberately broken variants, each violating one invariant above, so the
/// loom models can show they catch it. Never used outside the models.
#[cfg(loom)]
pub mod broken {
    use super::*;

    /// Breaks **exclusion**: a reader that ignores WRITER.
    pub fn read_ignoring_writer(w: &RwWord<'_>, _me: u64) -> bool {
        w.state.fetch_add(ONE_READER, Ordering::Acquire);
        false
    }

    /// Breaks **bias**: a biased reader that publishes its hold and enters
    /// without looking at the word again (a writer may have cleared RBIAS
    /// and scanned the table in between). True: biased.
    pub fn read_biased_unchecked(w: &RwWord<'_>, me: u64) -> bool {
        if RwWord::biased_may_enter(w.load()) {
            let slot = super::rwbias::slot(w.slots, me, w.key);
            if slot
                .compare_exchange(0, w.key as u64, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        if !w.read_uncontended() && !w.read_retrying() {
            w.read_contended(|| {}, || {});
        }
        false
    }

    /// Breaks **bias**: a try-write that finds biased readers in and gives
    /// the lock back without restoring RBIAS (the next writer, seeing no
    /// bias, does not wait for them).
    pub fn try_write_dropping_bias(w: &RwWord<'_>, me: u64) -> TryRw {
        let s = w.state.load(Ordering::Relaxed);
        if s & WRITER != 0 || readers(s) != 0 {
            return TryRw::Busy;
        }
        let mine = (me << SHIFT) | WRITER | (s & (R_PARKED | W_PARKED));
        if w.state
            .compare_exchange(s, mine, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return TryRw::Busy;
        }
        RwWord::loom_sc_fence();
        if s & RBIAS != 0 && w.biased_readers() != 0 {
            let _ = w.write_release(me);
            return TryRw::Busy;
        }
        TryRw::Acquired
    }

    /// Breaks **no lost wake-up (writers)**: the last reader leaves without
    /// waking the parked writer.
    pub fn read_release_forgetting_writer(w: &RwWord<'_>, me: u64, biased: bool) {
        if biased {
            w.read_release_biased(me);
        } else {
            w.state.fetch_sub(ONE_READER, Ordering::Release);
        }
    }
}
