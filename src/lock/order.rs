//! The per-thread held-lock record and the lock-order checker.
//!
//! Invariants:
//! - `Held::entries[..len]` are the locks held, oldest first; slots past
//!   `len` are stale and never read (always go through `entries()`).
//! - `Held::ranks` has bit r set iff `counts[r] > 0`, iff some held entry
//!   has rank r (kept in step on every push and remove).
//! - The record is only touched by its own thread; it lives in a thread-local
//!   and is never shared, so it needs no lock.
//! - The order check costs O(WORDS) regardless of how many locks are held:
//!   `held.ranks & !allowed[wanted]` must be empty.
//! - Reports are printed once per (held rank, wanted rank) pair and counted
//!   every time. Report bookkeeping is behind `REPORTS`, an inner lock taken
//!   only on a violation and never while waiting.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::fmt::Write as _;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::base::inner::{InnerMutex, InnerRank};

use crate::ranks::{self, LEAF, MAX_RANKS, RankSet, WORDS};

/// What the checker does on a violation (the trace format's and the C
/// ABI's codes: `format::LockRankMode`).
pub use crate::format::LockRankMode as Mode;

/// One lock this thread holds.
#[derive(Clone, Copy, Debug)]
pub struct HeldLock {
    /// Address of the lock object (identity).
    pub addr: usize,
    /// NUL-terminated name, or NULL. Valid while the lock is held: a held
    /// lock cannot be destroyed or re-initialised.
    pub name: *const c_char,
    pub rank: u32,
    /// Call site (NUL-terminated file, or NULL) of the acquisition.
    pub file: *const c_char,
    pub line: u32,
    /// Acquired by a try-lock (recorded, never order-checked).
    pub tried: bool,
}

/// Most locks one thread may hold at once (Linux's lockdep allows 48).
/// Acquiring one more is refused with `RTC_ERR_WRONG_STATE`.
pub const MAX_HELD: usize = 64;

const EMPTY: HeldLock = HeldLock {
    addr: 0,
    name: std::ptr::null(),
    rank: 0,
    file: std::ptr::null(),
    line: 0,
    tried: false,
};

/// A thread's held record plus its id (one thread-local access for both).
///
/// It has no destructor, so the thread-local needs no registration and is
/// usable until the thread's last instruction (late C++ destructors that
/// unlock included), and its access compiles to a plain TLS address.
pub struct Held {
    pub me: u64,
    len: usize,
    entries: [HeldLock; MAX_HELD],
    /// Bit r set iff `counts[r] > 0`.
    pub ranks: RankSet,
    counts: [u16; MAX_RANKS],
}

thread_local! {
    static HELD: UnsafeCell<Held> = const {
        UnsafeCell::new(Held {
            me: 0,
            len: 0,
            entries: [EMPTY; MAX_HELD],
            ranks: RankSet([0; WORDS]),
            counts: [0; MAX_RANKS],
        })
    };
}

/// Run `f` with this thread's record. `f` must not re-enter `with_held`
/// (nothing it calls does: reports and parking do not touch the record).
#[inline(always)]
pub fn with_held<R>(f: impl FnOnce(&mut Held) -> R) -> R {
    // Only the address is taken inside `with`, so the access stays a small,
    // inlinable TLS lookup and `f` is compiled into the caller.
    //
    // (An initial-exec TLS slot would save the two `__tls_get_addr` calls of
    // a lock+unlock, about 2 ns, but it marks the whole library STATIC_TLS,
    // and a dlopen (Python's ctypes) then fails with "cannot allocate memory
    // in static TLS block" once glibc's small surplus is used up. Measured
    // and rejected; see docs/benchmarks.md.)
    let p: *mut Held = HELD.with(|h| h.get());
    // SAFETY: this thread's own record, valid for the thread's life (it has
    // no destructor); `f` never re-enters, so this is the only reference.
    let h = unsafe { &mut *p };
    if h.me == 0 {
        assign_id(h);
    }
    f(h)
}

/// "mutex 'db' (rank db) locked at file.c:12", for sysmon's reports.
pub fn describe_held(e: &HeldLock) -> String {
    let rank = if e.rank == crate::ranks::LEAF {
        "unranked".to_string()
    } else {
        format!("rank {}", crate::ranks::global().name(e.rank))
    };
    format!(
        "'{}' ({rank}) locked at {}{}",
        cstr_or(e.name, "(unnamed)"),
        site(e.file, e.line),
        if e.tried { " by a try-lock" } else { "" }
    )
}

/// In a forked child: reset the report lock (its holder may not exist).
pub fn after_fork_child() {
    // SAFETY: called from the child's atfork handler (only this thread).
    unsafe { REPORTS.reset_after_fork() };
    // SAFETY: as above.
    unsafe { super::mutex::NAMES.reset_after_fork() };
}

/// The rank id of `hooklock` (fixed by `BUILTIN_RANKS`: the first rank).
pub const HOOKLOCK_RANK: u32 = 1;

/// The hook thread holds `hooklock` while a hook runs: it is recorded like
/// a held lock, so the user locks a hook takes are checked against it.
///
/// Taking it is order-checked like any lock (before it is taken, by the
/// caller of `lock_hooklock`): a thread that holds one of its own locks
/// and starts or stops a trace is reported, since a hook may need that
/// lock while the tracer waits for the hook (DESIGN.md, "Ranks").
pub fn hooklock_check(what: &std::ffi::CStr) {
    let Some(mode) = crate::base::state::running_mode_bits().map(Mode::from_bits) else {
        return;
    };
    if mode == Mode::Off {
        return;
    }
    with_held(|h| {
        check(
            h,
            mode,
            &Wanted {
                kind: "lock",
                name: what.as_ptr(),
                rank: HOOKLOCK_RANK,
                file: std::ptr::null(),
                line: 0,
            },
        )
    })
}

pub fn hooklock_enter(addr: usize) {
    with_held(|h| {
        if !h.is_full() {
            h.push(HeldLock {
                addr,
                name: c"hooklock".as_ptr(),
                rank: HOOKLOCK_RANK,
                file: std::ptr::null(),
                line: 0,
                tried: false,
            });
        }
    })
}

/// The hook's run returned: `hooklock` is no longer held.
pub fn hooklock_exit(addr: usize) {
    with_held(|h| {
        h.remove(addr);
    })
}

#[cold]
#[inline(never)]
fn assign_id(h: &mut Held) {
    h.me = crate::ident::current_id();
}

impl Held {
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len == MAX_HELD
    }

    /// Record an acquisition. The caller checked `!is_full()`.
    #[inline(always)]
    pub fn push(&mut self, e: HeldLock) {
        let r = e.rank as usize;
        if self.counts[r] == 0 {
            self.ranks.insert(e.rank);
        }
        self.counts[r] += 1;
        self.entries[self.len] = e;
        self.len += 1;
    }

    /// Remove the most recent entry for `addr`; releases may be out of order.
    #[inline(always)]
    pub fn remove(&mut self, addr: usize) -> Option<HeldLock> {
        let i = if self.len > 0 && self.entries[self.len - 1].addr == addr {
            self.len - 1
        } else {
            self.entries[..self.len]
                .iter()
                .rposition(|e| e.addr == addr)?
        };
        let e = self.entries[i];
        if i + 1 < self.len {
            self.entries.copy_within(i + 1..self.len, i);
        }
        self.len -= 1;
        let r = e.rank as usize;
        self.counts[r] -= 1;
        if self.counts[r] == 0 {
            self.ranks.remove(e.rank);
        }
        Some(e)
    }

    pub fn entries(&self) -> &[HeldLock] {
        &self.entries[..self.len]
    }

    pub fn find(&self, addr: usize) -> Option<&HeldLock> {
        self.entries().iter().rev().find(|e| e.addr == addr)
    }

    /// Ranks held that may not be held when acquiring `wanted`.
    #[inline(always)]
    pub fn conflicts(&self, wanted: u32) -> RankSet {
        let allowed = ranks::table::load_allowed(&ranks::table::GLOBAL_ALLOWED, wanted);
        let mut out = [0u64; WORDS];
        for (o, (h, a)) in out
            .iter_mut()
            .zip(self.ranks.0.iter().zip(allowed.0.iter()))
        {
            *o = h & !a;
        }
        RankSet(out)
    }
}

/// What a thread wants to acquire, for reports.
pub struct Wanted<'a> {
    pub kind: &'a str,
    pub name: *const c_char,
    pub rank: u32,
    pub file: *const c_char,
    pub line: u32,
}

/// `p` is NULL or a NUL-terminated string valid for the call (the header's
/// contract for names and call sites).
pub(crate) fn cstr_or<'a>(p: *const c_char, default: &'a str) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        std::borrow::Cow::Borrowed(default)
    } else {
        // SAFETY: callers pass NUL-terminated strings that outlive the call
        // (documented in the header for names and sites).
        unsafe { CStr::from_ptr(p) }.to_string_lossy()
    }
}

pub(crate) fn site(file: *const c_char, line: u32) -> String {
    if file.is_null() {
        "(call site not given)".into()
    } else {
        format!("{}:{}", cstr_or(file, "?"), line)
    }
}

/// Report bookkeeping (inner lock; violations only).
struct Reports {
    /// (held rank, wanted rank) -> occurrences.
    pairs: HashMap<(u32, u32), u64>,
    last: Option<String>,
}

static REPORTS: InnerMutex<Option<Reports>> = InnerMutex::new(InnerRank::LockReports, None);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);

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

/// Check `wanted` against everything `held` holds; on a violation, report it
/// as `mode` says. Returns normally unless the mode is abort.
#[inline(always)]
pub fn check(held: &Held, mode: Mode, wanted: &Wanted<'_>) {
    if mode == Mode::Off {
        return;
    }
    let bad = held.conflicts(wanted.rank);
    if !bad.is_empty() {
        // This may run on a lock's fast path, outside the C boundary: a
        // panic while reporting must not unwind from here.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            violation(held, mode, wanted, bad)
        }));
    }
}

#[cold]
#[inline(never)]
fn violation(held: &Held, mode: Mode, wanted: &Wanted<'_>, bad: RankSet) {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    let table = ranks::global();
    let conflicting: Vec<&HeldLock> = held
        .entries()
        .iter()
        .filter(|e| bad.contains(e.rank))
        .collect();
    // Count every pair; print if any pair is new.
    let mut first = false;
    {
        let mut g = REPORTS.lock();
        let r = g.get_or_insert_with(|| Reports {
            pairs: HashMap::new(),
            last: None,
        });
        let mut seen = RankSet::default();
        for e in &conflicting {
            if seen.contains(e.rank) {
                continue;
            }
            seen.insert(e.rank);
            let c = r.pairs.entry((e.rank, wanted.rank)).or_insert(0);
            *c += 1;
            if *c == 1 {
                first = true;
            }
        }
    }
    if crate::record::rtc_trace_on.load(Ordering::Relaxed) != 0 {
        if let Some(e) = conflicting.first() {
            // Trace: the violating thread's own event (stop or gate).
            let held_name = table.name(e.rank);
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
    if !first && mode != Mode::Abort {
        return;
    }
    let text = format_report(table, mode, wanted, &conflicting);
    crate::diag::eprint(&text);
    {
        let mut g = REPORTS.lock();
        if let Some(r) = g.as_mut() {
            r.last = Some(text);
        }
    }
    if mode == Mode::Abort {
        crate::diag::eprintln("rtcore: aborting (lock-rank mode abort)");
        std::process::abort();
    }
}

fn rank_label(table: &ranks::RankTable, rank: u32) -> String {
    if rank == LEAF {
        "unranked".into()
    } else {
        format!("rank {}", table.name(rank))
    }
}

fn format_report(
    table: &ranks::RankTable,
    mode: Mode,
    wanted: &Wanted<'_>,
    conflicting: &[&HeldLock],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rtcore: lock order violation (lock-rank mode {})",
        mode.name()
    );
    let _ = writeln!(
        s,
        "  {} wants {} '{}' ({}) at {}",
        crate::ident::describe_current(),
        wanted.kind,
        cstr_or(wanted.name, "(unnamed)"),
        rank_label(table, wanted.rank),
        site(wanted.file, wanted.line)
    );
    for e in conflicting {
        let _ = writeln!(
            s,
            "  while holding mutex '{}' ({}) {} at {}",
            cstr_or(e.name, "(unnamed)"),
            rank_label(table, e.rank),
            if e.tried { "try-locked" } else { "locked" },
            site(e.file, e.line)
        );
        let _ = writeln!(s, "    forbidden by {}", table.explain(e.rank, wanted.rank));
    }
    s
}
