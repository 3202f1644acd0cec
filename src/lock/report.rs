//! Lock-order reports: what a violation produces in each lock-rank mode.
//!
//! - report: printed once per (held rank, wanted rank) pair, counted always;
//! - abort: printed, then the process aborts;
//! - callback: every violation is passed to the callback set with
//!   `rtc_lockrank_set_callback`, on the violating thread;
//! - queue: every violation is queued (at most `QUEUE_BOUND` pending) for
//!   `rtc_lockrank_next_report`.
//!
//! Invariants:
//! - Report bookkeeping (`REPORTS`, `QUEUE`, `CALLBACK`) sits behind inner
//!   locks taken only on a violation or by the polling and setting calls,
//!   never while waiting and never while a callback runs.
//! - A callback runs on the violating thread with no inner lock held and
//!   without the held record borrowed (the check stores the report in
//!   `PENDING`; the lock call delivers it before it blocks), so it may take
//!   locks itself. A violation made inside a callback is printed (report
//!   mode), never passed to the callback again: no recursion.
//! - A report carries the whole held stack, copied: the queue outlives the
//!   locks it names.
//! - Once `set_callback` returns `Ok` from outside a callback, no call of
//!   a callback set before it is running or about to start: each setting
//!   is a generation, calls in flight are counted per generation from the
//!   moment a caller reads the callback (under `CALLBACK`'s lock) to their
//!   return, and the setter waits (its P given back) for the earlier
//!   generations to drain; calls of the new one do not hold it up. So a C
//!   caller may free `user`, and Python may finalize, after clearing it.
//!   From inside a callback it does not wait (two callbacks clearing it
//!   would wait for each other); a thread holding the world stopped gets
//!   `RTC_ERR_WOULD_DEADLOCK` instead of a wait that may never end.
//! - The queue never grows past `QUEUE_BOUND`: a report arriving at a full
//!   queue is dropped and counted (`dropped`), the oldest kept.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, c_void};
use std::fmt::Write as _;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

use super::order::{Held, HeldLock, LockKind, Mode, Wanted, cstr_or, held_verb, site};
use crate::base::inner::{InnerMutex, InnerRank};
use crate::ranks::{self, LEAF, RankSet};

/// Why an acquisition was reported (`RTC_LOCKRANK_REASON_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A held rank may not be held when the wanted one is acquired.
    Order = 1,
    /// A nestable rank's locks taken out of increasing key order.
    KeyOrder = 2,
    /// An interposed lock (`rtcore run`) taken again by the thread that
    /// holds it, which would never return.
    Recursion = 3,
    /// An interposed lock unlocked by a thread that does not hold it.
    UnlockNotHeld = 4,
    /// A thread ended holding interposed locks.
    ExitHolding = 5,
}

/// Most reports the queue keeps before dropping new ones.
pub const QUEUE_BOUND: usize = 256;

/// One lock in a report (`rtc_lockrank_lock`). Strings are owned by the
/// report that holds it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rtc_lockrank_lock {
    /// The lock's address.
    pub addr: usize,
    /// Its name ("(unnamed)" if it has none).
    pub name: *const c_char,
    /// Its rank's name, or "unranked".
    pub rank: *const c_char,
    /// `RTC_LOCK_KIND_MUTEX` (1), `RTC_LOCK_KIND_RWLOCK` (2) or
    /// `RTC_LOCK_KIND_RTCORE` (3: one of rtcore's own, such as `hooklock`).
    pub kind: u32,
    /// `RTC_LOCK_EXCLUSIVE` (1: a mutex, or a write lock) or
    /// `RTC_LOCK_SHARED` (2: a read lock).
    pub mode: u32,
    /// The nesting key: the lock's address unless the caller gave one.
    pub key: u64,
    /// The call site's file ("" when none was given) and line.
    pub file: *const c_char,
    pub line: u32,
    /// `RTC_LOCKRANK_HELD_TRIED` (1): taken by a try-lock;
    /// `RTC_LOCKRANK_HELD_CONFLICTS` (2): a held lock the wanted one may
    /// not follow.
    pub flags: u32,
}

/// A lock-order violation report (`rtc_lockrank_report`). Everything it
/// points to belongs to it.
#[repr(C)]
pub struct rtc_lockrank_report {
    /// Numbers the reports passed to a callback or queued, from 1, in the
    /// order they were queued (a report dropped from a full queue leaves a
    /// gap).
    pub sequence: u64,
    /// The violating thread's rtcore id and name ("" when it has none).
    pub thread_id: u64,
    pub thread_name: *const c_char,
    /// `RTC_LOCKRANK_REASON_ORDER` (1), `RTC_LOCKRANK_REASON_KEY_ORDER`
    /// (2: a nestable rank's locks out of increasing key order),
    /// `RTC_LOCKRANK_REASON_RECURSION` (3: an interposed lock taken again
    /// by its holder), `RTC_LOCKRANK_REASON_UNLOCK_NOT_HELD` (4: an
    /// interposed lock unlocked by a thread that does not hold it) or
    /// `RTC_LOCKRANK_REASON_EXIT_HOLDING` (5: a thread ended holding
    /// interposed locks).
    pub reason: u32,
    /// The lock the thread wants (`flags` is 0).
    pub wanted: rtc_lockrank_lock,
    /// Every lock the thread holds, oldest first (`held_count` of them).
    pub held: *const rtc_lockrank_lock,
    pub held_count: usize,
    /// The report as text, as the report mode prints it.
    pub text: *const c_char,
}

/// A report and the memory it points into. `report` comes first, so the
/// pointer handed to C is the pointer to the whole (`rtc_lockrank_report_free`).
#[repr(C)]
pub struct OwnedReport {
    report: rtc_lockrank_report,
    _strings: Vec<CString>,
    _locks: Vec<rtc_lockrank_lock>,
}

// SAFETY: every pointer in an OwnedReport points into buffers it owns
// (its strings and lock array), which move with it and are only read.
unsafe impl Send for OwnedReport {}

/// A lock-order violation callback (`rtc_lockrank_set_callback`).
#[allow(non_camel_case_types)]
pub type rtc_lockrank_callback =
    Option<unsafe extern "C" fn(report: *const rtc_lockrank_report, user: *mut c_void)>;
/// The callback, set.
pub type Callback = unsafe extern "C" fn(report: *const rtc_lockrank_report, user: *mut c_void);

/// Report bookkeeping (violations only).
struct Reports {
    /// (held rank, wanted rank) -> occurrences.
    pairs: HashMap<(u32, u32), u64>,
    last: Option<String>,
}

static REPORTS: InnerMutex<Option<Reports>> = InnerMutex::new(InnerRank::LockReports, None);
static QUEUE: InnerMutex<VecDeque<Box<OwnedReport>>> =
    InnerMutex::new(InnerRank::LockReports, VecDeque::new());
/// The callback, its generation, and calls in flight per generation.
struct Slot {
    cb: Option<(Callback, usize)>,
    generation: u64,
    /// (generation, calls in flight), only generations with calls.
    in_flight: Vec<(u64, u64)>,
}

static CALLBACK: InnerMutex<Slot> = InnerMutex::new(
    InnerRank::LockReports,
    Slot {
        cb: None,
        generation: 0,
        in_flight: Vec::new(),
    },
);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// A report waiting for this thread's callback (see the invariants).
    static PENDING: RefCell<Option<Box<OwnedReport>>> = const { RefCell::new(None) };
    /// This thread is inside the callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Total order violations seen (every occurrence, in every mode but off).
pub fn violation_count() -> u64 {
    VIOLATIONS.load(Ordering::Relaxed)
}

/// The most recent report text, if any.
pub fn last_report() -> Option<String> {
    REPORTS.lock().as_ref().and_then(|r| r.last.clone())
}

/// Occurrences of one (held, wanted) pair.
pub fn pair_count(held: u32, wanted: u32) -> u64 {
    REPORTS
        .lock()
        .as_ref()
        .and_then(|r| r.pairs.get(&(held, wanted)).copied())
        .unwrap_or(0)
}

/// Reports dropped because the queue was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Set (or with None, clear) the callback; returns its generation, for
/// `wait_for_earlier_calls`.
pub fn swap_callback(cb: Option<(Callback, usize)>) -> u64 {
    let mut g = CALLBACK.lock();
    g.cb = cb;
    g.generation += 1;
    g.generation
}

/// Wait until no call of a callback set before `generation` is in flight
/// (see the invariants for when it does not).
pub fn wait_for_earlier_calls(generation: u64) -> crate::status::Result<()> {
    if IN_CALLBACK.try_with(Cell::get).unwrap_or(false) {
        return Ok(());
    }
    let mut rounds = 0u32;
    loop {
        let busy = CALLBACK
            .lock()
            .in_flight
            .iter()
            .any(|&(gen_, n)| gen_ < generation && n > 0);
        if !busy {
            return Ok(());
        }
        if crate::base::wait::holds_world() {
            return Err(crate::status::Error::new(
                crate::status::RTC_ERR_WOULD_DEADLOCK,
                "the lock-rank callback was changed, but a call of the earlier one is still running and this thread holds the world stopped: that call may be stopped until the world starts; not waited for",
            ));
        }
        // Callbacks are short and rare: a sleep keeps this simple. The P
        // is given back meanwhile, as in any wait.
        crate::base::wait::begin();
        std::thread::sleep(std::time::Duration::from_micros(if rounds < 100 {
            20
        } else {
            1000
        }));
        crate::base::wait::end();
        rounds = rounds.saturating_add(1);
    }
}

pub fn has_callback() -> bool {
    CALLBACK.lock().cb.is_some()
}

/// The oldest queued report, if any; the caller owns it (`free`).
pub fn next() -> Option<*mut rtc_lockrank_report> {
    let r = QUEUE.lock().pop_front()?;
    Some(Box::into_raw(r).cast())
}

/// Free a report returned by `next`.
///
/// # Safety
/// `p` came from `next` and was not freed before.
pub unsafe fn free(p: *mut rtc_lockrank_report) {
    // SAFETY: `p` is the first field of a boxed OwnedReport (`next`).
    drop(unsafe { Box::from_raw(p.cast::<OwnedReport>()) });
}

/// In a forked child: reset the report locks (their holder may not exist).
pub fn after_fork_child() {
    // SAFETY: called from the child's atfork handler (only this thread).
    unsafe {
        REPORTS.reset_after_fork();
        QUEUE.reset_after_fork();
        CALLBACK.reset_after_fork();
    }
    // Calls in flight were the parent's threads', which the child has not.
    CALLBACK.lock().in_flight.clear();
}

/// A violation found by `order::check`. Returns true when a report waits
/// in `PENDING` for `deliver`.
#[cold]
#[inline(never)]
pub(super) fn violation(
    held: &Held,
    mode: Mode,
    wanted: &Wanted,
    reason: Reason,
    bad: RankSet,
) -> bool {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    let table = ranks::global();
    // A held lock conflicts by rank, or (same nestable rank) by key; both
    // may happen at once, and the reason names the rank one first.
    let conflicts =
        |e: &HeldLock| bad.contains(e.rank()) || (e.rank() == wanted.rank && e.key >= wanted.key);
    let conflicting: Vec<&HeldLock> = held.entries().iter().filter(|e| conflicts(e)).collect();
    // Count every pair; a report is printed if any pair is new.
    let mut first = false;
    {
        let mut g = REPORTS.lock();
        let r = g.get_or_insert_with(|| Reports {
            pairs: HashMap::new(),
            last: None,
        });
        let mut seen = RankSet::default();
        for e in &conflicting {
            if seen.contains(e.rank()) {
                continue;
            }
            seen.insert(e.rank());
            let c = r.pairs.entry((e.rank(), wanted.rank)).or_insert(0);
            *c += 1;
            if *c == 1 {
                first = true;
            }
        }
    }
    if crate::record::rtc_trace_on.load(Ordering::Relaxed) != 0 {
        if let Some(e) = conflicting.first() {
            // Trace: the violating thread's own event (stop or gate).
            let held_name = table.name(e.rank());
            let wanted_name = table.name(wanted.rank);
            crate::record::emit(
                crate::format::EventKind::RankViolation,
                &[
                    crate::record::A::Str(&held_name),
                    crate::record::A::Str(&wanted_name),
                ],
            );
        }
    }
    // A flight recorder dumps on it (queued: written by its own thread).
    if let Some(note) = crate::base::incident::raise(crate::base::incident::Cause::LockOrder) {
        crate::diag::eprintln(&format!("rtcore: lock-order violation: {note}"));
    }
    let in_callback = IN_CALLBACK.try_with(Cell::get).unwrap_or(false);
    let mode = match mode {
        Mode::Callback if in_callback => Mode::Report,
        m => m,
    };
    if mode == Mode::Report && !first {
        return false;
    }
    let text = format_report(table, mode, wanted, reason, held, bad);
    if let Some(r) = REPORTS.lock().as_mut() {
        r.last = Some(text.clone());
    }
    match mode {
        Mode::Off => false,
        Mode::Report => {
            crate::diag::eprint(&text);
            false
        }
        Mode::Abort => {
            crate::diag::eprint(&text);
            crate::diag::eprintln("rtcore: aborting (lock-rank mode abort)");
            std::process::abort();
        }
        Mode::Queue => {
            enqueue(build(table, wanted, reason, held, &conflicts, text));
            false
        }
        Mode::Callback => {
            let mut r = build(table, wanted, reason, held, &conflicts, text);
            r.report.sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
            PENDING.try_with(|p| *p.borrow_mut() = Some(r)).is_ok()
        }
    }
}

/// A lock in a report about locks rtcore does not own: a program's
/// pthread locks, interposed by `rtcore run` (src/interpose).
pub struct ForeignLock {
    pub addr: usize,
    /// Its class, as the interposition names it.
    pub name: String,
    /// Its rank's name (the class's learned or declared rank).
    pub rank: String,
    pub rwlock: bool,
    pub shared: bool,
    /// Where it was (or is to be) taken, as a site name.
    pub site: String,
    /// One of the held locks the wanted one may not follow.
    pub conflicts: bool,
}

/// A report about interposed locks, through the lock-rank mode as rtcore's
/// own are (`mode`: the process's): printed, aborting, queued, or passed
/// to the callback on the calling thread. The caller found it outside
/// every rtcore lock and dedupes itself (report mode prints each one).
/// `wanted` is the lock wanted (for an unlock not held: the lock unlocked).
#[cold]
pub fn foreign(
    reason: Reason,
    wanted: ForeignLock,
    held: Vec<ForeignLock>,
    text: String,
    mode: Mode,
) {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    let in_callback = IN_CALLBACK.try_with(Cell::get).unwrap_or(false);
    let mode = match mode {
        Mode::Callback if in_callback => Mode::Report,
        m => m,
    };
    let text = if text.ends_with('\n') {
        text
    } else {
        text + "\n"
    };
    REPORTS
        .lock()
        .get_or_insert_with(|| Reports {
            pairs: HashMap::new(),
            last: None,
        })
        .last = Some(text.clone());
    match mode {
        Mode::Off => {}
        Mode::Report => crate::diag::eprint(&text),
        Mode::Abort => {
            crate::diag::eprint(&text);
            crate::diag::eprintln("rtcore: aborting (lock-rank mode abort)");
            std::process::abort();
        }
        Mode::Queue | Mode::Callback => {
            let mut r = build_foreign(reason, &wanted, &held, text);
            if mode == Mode::Queue {
                enqueue(r);
            } else {
                r.report.sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
                call_back(&r);
            }
        }
    }
}

fn build_foreign(
    reason: Reason,
    wanted: &ForeignLock,
    held: &[ForeignLock],
    text: String,
) -> Box<OwnedReport> {
    let mut strings: Vec<CString> = Vec::new();
    // A CString's buffer does not move when the CString moves into the Vec.
    let mut keep = |t: &str| -> *const c_char {
        let c = CString::new(t.replace('\0', "?")).unwrap_or_default();
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let mut lock = |l: &ForeignLock, flags: u32| rtc_lockrank_lock {
        addr: l.addr,
        name: keep(&l.name),
        rank: keep(&l.rank),
        kind: if l.rwlock { 2 } else { 1 },
        mode: if l.shared { 2 } else { 1 },
        key: l.addr as u64,
        file: keep(&l.site),
        line: 0,
        flags,
    };
    let w = lock(wanted, 0);
    let locks: Vec<rtc_lockrank_lock> = held
        .iter()
        .map(|h| lock(h, if h.conflicts { 2 } else { 0 }))
        .collect();
    assemble(reason, w, locks, strings, text)
}

/// Queue a report for `rtc_lockrank_next_report`, numbered in queue order
/// (a report dropped from a full queue leaves a gap).
fn enqueue(mut r: Box<OwnedReport>) {
    let mut q = QUEUE.lock();
    r.report.sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
    if q.len() >= QUEUE_BOUND {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    } else {
        q.push_back(r);
    }
}

/// The report of the calling thread: `wanted`, `locks` (held), the text;
/// `strings` owns every string the locks point to.
fn assemble(
    reason: Reason,
    wanted: rtc_lockrank_lock,
    locks: Vec<rtc_lockrank_lock>,
    mut strings: Vec<CString>,
    text: String,
) -> Box<OwnedReport> {
    let mut keep = |t: String| -> *const c_char {
        let c = CString::new(t.replace('\0', "?")).unwrap_or_default();
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let thread_name = keep(crate::ident::name());
    let text = keep(text);
    // Neither the lock array's buffer nor a CString's moves with its Vec.
    let report = rtc_lockrank_report {
        sequence: 0,
        thread_id: crate::ident::current_id(),
        thread_name,
        reason: reason as u32,
        wanted,
        held: locks.as_ptr(),
        held_count: locks.len(),
        text,
    };
    Box::new(OwnedReport {
        report,
        _strings: strings,
        _locks: locks,
    })
}

/// Pass this thread's pending report to the callback (see the invariants).
/// Called by the lock that found the violation, with the held record not
/// borrowed and before it blocks.
#[cold]
#[inline(never)]
pub fn deliver() {
    let Some(r) = PENDING.try_with(|p| p.borrow_mut().take()).ok().flatten() else {
        return;
    };
    call_back(&r);
}

/// Call the callback with `r` on this thread, no inner lock held (see the
/// invariants); printed if the callback was cleared meanwhile.
fn call_back(r: &OwnedReport) {
    let (cb, generation) = {
        let mut g = CALLBACK.lock();
        let generation = g.generation;
        if g.cb.is_some() {
            match g.in_flight.iter_mut().find(|e| e.0 == generation) {
                Some(e) => e.1 += 1,
                None => g.in_flight.push((generation, 1)),
            }
        }
        (g.cb, generation)
    };
    let Some((f, user)) = cb else {
        // The callback was cleared meanwhile: print instead.
        // SAFETY: `text` points into the report's own strings.
        let text = unsafe { std::ffi::CStr::from_ptr(r.report.text) };
        crate::diag::eprint(&text.to_string_lossy());
        return;
    };
    let _ = IN_CALLBACK.try_with(|c| c.set(true));
    // SAFETY: the report stays alive for the call; the callback's contract
    // (the header) says it may not keep the pointer.
    unsafe { f(&r.report, user as *mut c_void) };
    let _ = IN_CALLBACK.try_with(|c| c.set(false));
    let mut g = CALLBACK.lock();
    if let Some(i) = g.in_flight.iter().position(|e| e.0 == generation) {
        g.in_flight[i].1 -= 1;
        if g.in_flight[i].1 == 0 {
            g.in_flight.swap_remove(i);
        }
    }
}

fn rank_label(table: &ranks::RankTable, rank: u32) -> String {
    if rank == LEAF {
        "unranked".into()
    } else {
        format!("rank {}", table.name(rank))
    }
}

fn rank_name(table: &ranks::RankTable, rank: u32) -> String {
    if rank == LEAF {
        "unranked".into()
    } else {
        table.name(rank).to_string()
    }
}

/// "mutex 'db' (rank db)" or, for a nestable rank, "(rank row, key 7)".
fn describe_lock(
    table: &ranks::RankTable,
    kind: LockKind,
    name: *const c_char,
    rank: u32,
    key: Option<u64>,
) -> String {
    let key = key.map(|k| format!(", key {k:#x}")).unwrap_or_default();
    format!(
        "{} '{}' ({}{key})",
        kind.name(),
        cstr_or(name, "(unnamed)"),
        rank_label(table, rank)
    )
}

fn format_report(
    table: &ranks::RankTable,
    mode: Mode,
    wanted: &Wanted,
    reason: Reason,
    held: &Held,
    bad: RankSet,
) -> String {
    let keyed = reason == Reason::KeyOrder;
    let by_key =
        |e: &HeldLock| !bad.contains(e.rank()) && e.rank() == wanted.rank && e.key >= wanted.key;
    let conflicts = |e: &HeldLock| bad.contains(e.rank()) || by_key(e);
    let nested = held.entries().iter().any(by_key);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rtcore: lock {}order violation (lock-rank mode {})",
        if keyed { "key " } else { "" },
        mode.name()
    );
    let _ = writeln!(
        s,
        "  {} wants {}{} at {}",
        crate::ident::describe_current(),
        describe_lock(
            table,
            wanted.kind,
            wanted.name,
            wanted.rank,
            (keyed || nested).then_some(wanted.key)
        ),
        if wanted.shared { " for reading" } else { "" },
        site(wanted.file, wanted.line)
    );
    for e in held.entries().iter().filter(|e| conflicts(e)) {
        let _ = writeln!(
            s,
            "  while holding {} {} at {}",
            describe_lock(
                table,
                e.kind(),
                e.name(),
                e.rank(),
                by_key(e).then_some(e.key)
            ),
            if e.tried() {
                "try-locked"
            } else {
                held_verb(e)
            },
            site(e.file, e.line)
        );
        if by_key(e) {
            let _ = writeln!(
                s,
                "    rank {} is nestable: its locks must be taken in increasing key order",
                table.name(e.rank())
            );
        } else {
            let _ = writeln!(
                s,
                "    forbidden by {}",
                table.explain(e.rank(), wanted.rank)
            );
        }
    }
    for e in held.entries().iter().filter(|e| !conflicts(e)) {
        let _ = writeln!(
            s,
            "  also holding {} {} at {}",
            describe_lock(table, e.kind(), e.name(), e.rank(), None),
            if e.tried() {
                "try-locked"
            } else {
                held_verb(e)
            },
            site(e.file, e.line)
        );
    }
    s
}

/// Copy a report into memory that owns all it points to.
fn build(
    table: &ranks::RankTable,
    wanted: &Wanted,
    reason: Reason,
    held: &Held,
    conflicts: &dyn Fn(&HeldLock) -> bool,
    text: String,
) -> Box<OwnedReport> {
    let mut strings: Vec<CString> = Vec::new();
    // A CString's buffer does not move when the CString moves into the Vec.
    let mut keep = |t: String| -> *const c_char {
        let c = CString::new(t.replace('\0', "?")).unwrap_or_default();
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let mut lock = |kind: LockKind,
                    name: *const c_char,
                    rank: u32,
                    shared: bool,
                    key: u64,
                    file: *const c_char,
                    line: u32,
                    flags: u32| rtc_lockrank_lock {
        addr: 0,
        name: keep(cstr_or(name, "(unnamed)").into_owned()),
        rank: keep(rank_name(table, rank)),
        kind: kind as u32,
        mode: if shared { 2 } else { 1 },
        key,
        file: keep(cstr_or(file, "").into_owned()),
        line,
        flags,
    };
    let w = rtc_lockrank_lock {
        addr: wanted.addr,
        ..lock(
            wanted.kind,
            wanted.name,
            wanted.rank,
            wanted.shared,
            wanted.key,
            wanted.file,
            wanted.line,
            0,
        )
    };
    let locks: Vec<rtc_lockrank_lock> = held
        .entries()
        .iter()
        .map(|e| {
            let flags = u32::from(e.tried()) | if conflicts(e) { 2 } else { 0 };
            rtc_lockrank_lock {
                addr: e.addr,
                ..lock(
                    e.kind(),
                    e.name(),
                    e.rank(),
                    e.shared(),
                    e.key,
                    e.file,
                    e.line,
                    flags,
                )
            }
        })
        .collect();
    assemble(reason, w, locks, strings, text)
}
