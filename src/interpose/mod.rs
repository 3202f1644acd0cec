//! Lock-order checking for programs nobody changed: the side of
//! `librtcore_preload.so` (preload/rtcore_preload.c) that lives in
//! librtcore. The preload library interposes the pthread lock functions,
//! keeps each thread's held locks and a per-thread cache of lock classes
//! and of chains already checked; it calls these hooks only on a cache
//! miss: to class a lock, and to check a chain (held classes, then the
//! wanted one) against the learned order (`graph`), reporting what would
//! deadlock before it does (docs/preload.md).
//!
//! A lock initialised by `pthread_*_init` belongs to the class of that
//! call's site; a lock never initialised by a call is its own class
//! (`graph::ClassKey`). Sites are return addresses, named for reports by
//! `sites`.
//!
//! Invariants:
//! - `EPOCH` moves whenever an address's class may change (a lock
//!   destroyed, or initialised where another class's lock was known),
//!   after the map of classes changed: the preload library reads the epoch
//!   before it asks for a class and tags the cached class with it, so a
//!   class it cached just before a change is tagged with an epoch that has
//!   moved on, and is asked for again.
//! - Every chain is learned once (the graph's chain cache); a thread's
//!   repeated acquisitions of a checked chain never reach here.
//! - The hooks take only rtcore's inner locks (never a pthread mutex), and
//!   the preload library never enters them recursively (its per-thread
//!   `busy` flag).

pub mod graph;
pub mod ranks;
mod report;
mod sites;
mod waits;

use report::{
    Finding, Reason, deliver, describe, held_phrase, label, mode_word, thread_name, wanted_phrase,
};
pub use waits::{begin as wait_begin, end as wait_end, outside_resume, outside_wait};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::LockRankMode as Mode;
use graph::{Class, ClassKey, Graph, LockRef};
pub use sites::site_name;

/// What an interposed lock call takes: a mutex of one of glibc's types
/// (its `__kind`'s low bits, 0-3), or a read/write lock for reading (4) or
/// writing (5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Normal,
    Recursive,
    ErrorCheck,
    Adaptive,
    Read,
    Write,
}

impl LockKind {
    pub fn from_bits(bits: u32) -> Option<LockKind> {
        match bits {
            0 => Some(LockKind::Normal),
            1 => Some(LockKind::Recursive),
            2 => Some(LockKind::ErrorCheck),
            3 => Some(LockKind::Adaptive),
            4 => Some(LockKind::Read),
            5 => Some(LockKind::Write),
            _ => None,
        }
    }

    fn shared(self) -> bool {
        self == LockKind::Read
    }

    fn noun(self) -> &'static str {
        match self {
            LockKind::Read | LockKind::Write => "rwlock",
            _ => "mutex",
        }
    }

    /// Does taking this lock again, while held as `held_shared` says,
    /// never return? (A recursive mutex counts; an error-checking one
    /// returns EDEADLK; reading again while reading is allowed: glibc's
    /// default read/write locks prefer readers.)
    fn hangs_when_held(self, held_shared: bool) -> bool {
        match self {
            LockKind::Normal | LockKind::Adaptive => true,
            LockKind::Recursive | LockKind::ErrorCheck => false,
            LockKind::Read => !held_shared,
            LockKind::Write => true,
        }
    }
}

struct Learned {
    graph: Graph,
    /// Lock address -> its class (set at init, or at first use).
    locks: HashMap<usize, Class>,
    /// Per class: (acquisitions that waited, total ns waited, longest).
    waits: HashMap<Class, (u64, u64, u64)>,
    threads: u64,
    recursion_reports: u64,
    unlock_reports: u64,
    /// Threads that ended holding interposed locks.
    exit_reports: u64,
    /// Robust mutexes taken with `EOWNERDEAD`.
    owner_died: u64,
    cond_waits: u64,
    /// Acquisitions the declared ranks did not allow (reported once per
    /// pair of names, and once per name not declared).
    declared_reports: u64,
    declared_seen: std::collections::HashSet<(String, String)>,
    /// Kernel thread id -> rtcore thread id, for threads that took locks.
    by_tid: HashMap<i32, u64>,
    /// Each class's (label, rank name), made when first needed.
    names: Vec<Option<ClassNames>>,
}

static LEARNED: InnerMutex<Option<Learned>> = InnerMutex::new(InnerRank::Learned, None);
/// Moves when a lock is destroyed: threads drop their class caches.
static EPOCH: AtomicU64 = AtomicU64::new(0);

fn with_learned<R>(f: impl FnOnce(&mut Learned) -> R) -> R {
    hold_learned_across_forks();
    // Never parks (`lock_spinning`): a fork may come while this waits.
    let mut g = LEARNED.lock_spinning();
    let l = g.get_or_insert_with(|| Learned {
        graph: Graph::default(),
        locks: HashMap::new(),
        waits: HashMap::new(),
        threads: 0,
        recursion_reports: 0,
        unlock_reports: 0,
        exit_reports: 0,
        owner_died: 0,
        cond_waits: 0,
        declared_reports: 0,
        declared_seen: std::collections::HashSet::new(),
        by_tid: HashMap::new(),
        names: Vec::new(),
    });
    f(l)
}

// Fork. The child of a fork has only the forking thread; another thread
// of the parent may have held `learned` in the middle of an update (a
// program's threads call into it whenever they meet a new lock or chain).
// Resetting the lock in the child, as rtcore does with its short inner
// locks, could hand the child half-updated maps. Instead the forking
// thread holds `learned` across the fork (a prepare handler: glibc runs
// those before it takes malloc's locks, so a holder that allocates still
// finishes), and both sides release it after.
// Invariant: FORK_HELD is true exactly between a prepare handler that got
// the lock and the parent or child handler of the same fork, on the
// forking thread (thread-local: two threads may fork at once; the child's
// copy is the forking thread's).

type LearnedGuard = parking_lot::MutexGuard<'static, Option<Learned>>;

thread_local! {
    static FORK_HELD: std::cell::RefCell<Option<LearnedGuard>> = const { std::cell::RefCell::new(None) };
}

/// Registered by the preload library's constructor (`epoch`: the program
/// has no other thread yet that could be inside the `Once`, which a fork
/// would copy running, for good), and before `learned` is first taken
/// (glibc's fork holds its handler list's lock while it runs the prepare
/// handlers).
fn hold_learned_across_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain functions, no captured state.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    });
}

extern "C" fn fork_prepare() {
    // Bounded: the forking thread may hold it itself (a fork from a signal
    // handler that interrupted it); it then releases it when it resumes.
    let got = LEARNED.lock_for_fork(std::time::Duration::from_secs(1));
    let _ = FORK_HELD.try_with(|h| *h.borrow_mut() = got);
}

extern "C" fn fork_parent() {
    // Dropping the guard unlocks it.
    drop(FORK_HELD.try_with(|h| h.borrow_mut().take()));
}

extern "C" fn fork_child() {
    let held = FORK_HELD.try_with(|h| h.borrow_mut().take()).ok().flatten();
    if let Some(g) = held {
        // Not unlocked through the guard: parking_lot would look for the
        // parent's waiters, whose queue entries do not exist here.
        std::mem::forget(g);
        // SAFETY: the only thread; it took the lock before the fork, so no
        // thread of the parent was inside it (the data is whole). Raw: this
        // handler may run before `base::fork`'s, while the parking lot's
        // table may still be locked by a thread of the parent.
        unsafe { LEARNED.reset_raw_after_fork() };
    }
}

/// The rank file `RTCORE_PRELOAD_RANKS` names (`rtcore run --ranks`),
/// loaded once outside `learned` (its table's lock ranks after it); a file
/// that cannot be loaded is said once and not used.
fn declared() -> Option<&'static ranks::Declared> {
    static DECLARED: std::sync::OnceLock<Option<ranks::Declared>> = std::sync::OnceLock::new();
    DECLARED
        .get_or_init(|| {
            let path = std::env::var("RTCORE_PRELOAD_RANKS").ok().filter(|p| !p.is_empty())?;
            match ranks::Declared::load(&path) {
                Ok(d) => Some(d),
                Err(e) => {
                    crate::diag::eprintln(&format!(
                        "rtcore: cannot use the declared ranks ({e}): checking the learned order only"
                    ));
                    None
                }
            }
        })
        .as_ref()
}

/// A class's names: its label in reports, its rank name, and what tells it
/// apart when two classes would get one rank name (its site's offset in
/// its object, or its first lock's site).
#[derive(Clone)]
struct ClassNames {
    label: String,
    rank: String,
    extra: String,
}

/// Class `c`'s names, made once.
fn names_of(l: &mut Learned, c: Class) -> ClassNames {
    let i = c as usize;
    if l.names.len() <= i {
        l.names.resize(i + 1, None);
    }
    if l.names[i].is_none() {
        let info = l.graph.class(c);
        let (key, site) = (info.key, info.site);
        let (base, extra) = match key {
            ClassKey::Static(addr) => (
                sites::object_name(addr).unwrap_or_else(|| format!("static {}", site_name(site))),
                site_name(site),
            ),
            ClassKey::InitSite(_) => (site_name(site), sites::object_offset(site)),
        };
        l.names[i] = Some(ClassNames {
            label: label(&l.graph, c),
            rank: ranks::rank_name(&base),
            extra,
        });
    }
    l.names[i].clone().expect("just made")
}

/// Every class's rank name, unique (repeated names get what tells their
/// classes apart), and label.
fn all_rank_names(l: &mut Learned) -> (Vec<String>, Vec<String>) {
    let n = l.graph.class_count();
    let all: Vec<ClassNames> = (0..n).map(|c| names_of(l, c as Class)).collect();
    let pairs: Vec<(String, String)> = all
        .iter()
        .map(|x| (x.rank.clone(), x.extra.clone()))
        .collect();
    let labels = all.into_iter().map(|x| x.label).collect();
    (ranks::unique_names(&pairs), labels)
}

/// The learned order as a rank file (`rtcore run --learn-ranks`).
pub fn learned_ranks(program: &str) -> String {
    with_learned(|l| {
        let (names, labels) = all_rank_names(l);
        ranks::learned_file(&l.graph, &names, &labels, program)
    })
}

/// A lock in a check: the address, the site of its (wanted or done)
/// acquisition, its kind and class.
#[derive(Clone, Copy, Debug)]
pub struct Lock {
    pub addr: usize,
    pub site: usize,
    pub kind: LockKind,
    pub class: Class,
}

impl Lock {
    fn as_ref(&self) -> LockRef {
        LockRef {
            class: self.class,
            addr: self.addr,
            site: self.site,
            shared: self.kind.shared(),
        }
    }
}

thread_local! {
    /// This thread has been counted in the summary's threads.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The epoch word the preload library's class caches are tagged with.
pub fn epoch() -> &'static AtomicU64 {
    hold_learned_across_forks();
    &EPOCH
}

/// The class of the lock at `addr` (a lock never initialised by a call is
/// made its own class here, first seen at `site`).
pub fn class_of(addr: usize, site: usize) -> Class {
    let first = COUNTED.try_with(|c| !c.replace(true)).unwrap_or(false);
    // The thread's kernel id and rtcore id, to name lock owners in traces
    // (glibc's mutexes keep their owner's kernel id).
    // SAFETY: plain syscall.
    let ids = first.then(|| (unsafe { libc::gettid() }, crate::ident::current_id()));
    with_learned(|l| {
        if let Some((tid, id)) = ids {
            l.threads += 1;
            l.by_tid.insert(tid, id);
        }
        match l.locks.get(&addr) {
            Some(&c) => c,
            None => {
                let c = l.graph.class_at(ClassKey::Static(addr), site);
                l.locks.insert(addr, c);
                c
            }
        }
    })
}

/// Is `class` a class handed out?
pub fn class_exists(class: Class) -> bool {
    with_learned(|l| (class as usize) < l.graph.class_count())
}

/// Before a blocking acquisition of `wanted` while `held` are held (oldest
/// first): report, as `mode` says, a lock taken again that would never
/// return, and an order that closes a cycle with the order learned so far.
pub fn check(held: &[Lock], wanted: Lock, mode: Mode) {
    if mode == Mode::Off {
        return;
    }
    let mut reports = Vec::new();
    let finding = |reason, text, conflicting| Finding {
        reason,
        text,
        wanted,
        held: held.to_vec(),
        conflicting,
    };
    if let Some(h) = held.iter().find(|h| h.addr == wanted.addr) {
        if wanted.kind.hangs_when_held(h.kind.shared()) {
            let text = format!(
                "rtcore: recursive locking: thread {} locks {} while it already holds it ({}, taken at {}): this call never returns",
                thread_name(),
                wanted_phrase(&wanted),
                mode_word(h.kind.shared()),
                site_name(h.site),
            );
            reports.push(finding(Reason::Recursion, text, vec![h.addr]));
            with_learned(|l| l.recursion_reports += 1);
        }
        deliver(reports, mode);
        return;
    }
    let refs: Vec<LockRef> = held.iter().map(Lock::as_ref).collect();
    let w = wanted.as_ref();
    let hash = graph::chain_hash(refs.iter(), &w);
    let decl = declared();
    let (verdicts, found) = with_learned(|l| {
        if l.graph.chain_known(hash) {
            return (Vec::new(), Vec::new());
        }
        let verdicts = l.graph.learn(hash, &refs, &w, &thread_name());
        let mut found = Vec::new();
        if let Some(d) = decl {
            for h in held {
                if h.kind.shared() && wanted.kind.shared() {
                    continue;
                }
                let (hn, wn) = (names_of(l, h.class), names_of(l, wanted.class));
                let (hn, wn) = (
                    d.resolve(&hn.rank, &hn.extra),
                    d.resolve(&wn.rank, &wn.extra),
                );
                let Some(f) = d.check(&hn, &wn) else { continue };
                let key = match &f {
                    ranks::Finding::Undeclared(n) => (n.clone(), String::new()),
                    ranks::Finding::Forbidden(a, b, _, _) => (a.clone(), b.clone()),
                };
                if l.declared_seen.insert(key) {
                    l.declared_reports += 1;
                    found.push((f, *h));
                }
            }
        }
        (verdicts, found)
    });
    let declared: Vec<(String, Lock)> = found
        .into_iter()
        .filter_map(|(f, h)| decl.map(|d| (d.describe(&f), h)))
        .collect();
    for v in verdicts {
        let (reason, conflicting) = match &v {
            graph::Verdict::Cycle { held: c, .. } => (Reason::Order, addrs_of_class(held, *c)),
            graph::Verdict::BothOrders { class, .. } => {
                (Reason::KeyOrder, addrs_of_class(held, *class))
            }
            graph::Verdict::Fine => continue,
        };
        reports.push(finding(reason, describe(&v, &wanted, held), conflicting));
    }
    for (why, h) in declared {
        let text = format!(
            "rtcore: lock order violation (declared ranks)\n  thread {} wants {}\n  while holding {}\n  {why}",
            thread_name(),
            wanted_phrase(&wanted),
            held_phrase(&h),
        );
        reports.push(finding(Reason::Order, text, vec![h.addr]));
    }
    deliver(reports, mode);
}

/// The addresses of the held locks of class `c`.
fn addrs_of_class(held: &[Lock], c: Class) -> Vec<usize> {
    held.iter()
        .filter(|h| h.class == c)
        .map(|h| h.addr)
        .collect()
}

/// A lock call on a lock of `class` blocked `ns`; or (`cond_wait`) a
/// condition wait took its mutex again.
pub fn waited(class: Class, ns: u64, cond_wait: bool) {
    with_learned(|l| {
        if cond_wait {
            l.cond_waits += 1;
            return;
        }
        let w = l.waits.entry(class).or_default();
        w.0 += 1;
        w.1 += ns;
        w.2 = w.2.max(ns);
    });
}

/// A robust mutex of `class` was taken from an owner that died holding it
/// (`EOWNERDEAD`): held by the caller now, flagged (what it protects may
/// be half-updated; the program must make it consistent) and counted.
pub fn owner_died(class: Class) {
    let label = with_learned(|l| {
        l.owner_died += 1;
        label(&l.graph, class)
    });
    crate::diag::eprintln(&format!(
        "rtcore: robust mutex of class {label} taken by thread {} with EOWNERDEAD: its owner died holding it",
        thread_name()
    ));
}

/// `pthread_*_init` at `site` made the lock at `addr`.
pub fn init(addr: usize, site: usize) {
    let changed = with_learned(|l| {
        let c = l.graph.class_at(ClassKey::InitSite(site), site);
        l.locks.insert(addr, c).is_some_and(|old| old != c)
    });
    // A lock of another class lived here (freed without being destroyed):
    // classes cached by threads go.
    if changed {
        EPOCH.fetch_add(1, Relaxed);
    }
}

/// The lock at `addr` was destroyed: its address may next hold a lock of
/// another class.
pub fn destroyed(addr: usize) {
    if with_learned(|l| l.locks.remove(&addr)).is_some() {
        EPOCH.fetch_add(1, Relaxed);
    }
}

/// An unlock, at `site`, of a lock the calling thread does not hold.
pub fn unlock_not_held(addr: usize, site: usize, mode: Mode) {
    if mode == Mode::Off {
        return;
    }
    let class = with_learned(|l| {
        l.unlock_reports += 1;
        l.locks.get(&addr).copied()
    });
    let text = format!(
        "rtcore: unlock of a lock not held: thread {} unlocks {:#x} at {}, which it does not hold",
        thread_name(),
        addr,
        site_name(site)
    );
    let unlocked = Lock {
        addr,
        site,
        kind: LockKind::Normal,
        // A lock never classed names no class (`deliver` says so).
        class: class.unwrap_or(Class::MAX),
    };
    deliver(
        vec![Finding {
            reason: Reason::UnlockNotHeld,
            text,
            wanted: unlocked,
            held: Vec::new(),
            conflicting: Vec::new(),
        }],
        mode,
    );
}

/// The calling thread ends holding `held` (oldest first).
pub fn thread_exit(held: &[Lock], mode: Mode) {
    with_learned(|l| l.exit_reports += 1);
    if mode == Mode::Off || held.is_empty() {
        return;
    }
    let mut text = format!(
        "rtcore: thread ended holding locks: thread {} ends holding {} lock(s), which nobody can unlock now (a robust mutex goes to its next locker with EOWNERDEAD):",
        thread_name(),
        held.len()
    );
    for h in held {
        let _ = write!(text, "\n  {}", held_phrase(h));
    }
    deliver(
        vec![Finding {
            reason: Reason::ExitHolding,
            text,
            wanted: held[held.len() - 1],
            held: held.to_vec(),
            conflicting: held.iter().map(|h| h.addr).collect(),
        }],
        mode,
    );
}

/// The exit summary: threads, classes, learned edges, violations, the
/// five most contended classes.
pub fn summary() -> String {
    let decl = declared();
    with_learned(|l| {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rtcore run: {} thread(s) took interposed locks; {} lock class(es), {} learned order edge(s), {} condition wait(s); {} order violation(s), {} recursive lock(s), {} unlock(s) of a lock not held, {} thread(s) ended holding locks, {} robust lock(s) taken from a dead owner",
            l.threads,
            l.graph.class_count(),
            l.graph.edge_count(),
            l.cond_waits,
            l.graph.violations,
            l.recursion_reports,
            l.unlock_reports,
            l.exit_reports,
            l.owner_died
        );
        if let Some(d) = decl {
            let _ = writeln!(
                s,
                "  checked against {}: {} acquisition(s) it does not declare",
                d.file, l.declared_reports
            );
        }
        let mut waits: Vec<(&Class, &(u64, u64, u64))> = l.waits.iter().collect();
        waits.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(b.0)));
        if waits.is_empty() {
            let _ = writeln!(s, "  no lock call waited");
        } else {
            let _ = writeln!(s, "  most contended lock classes (waits, total, longest):");
            for (c, (n, total, longest)) in waits.iter().take(5) {
                let _ = writeln!(
                    s,
                    "    {}: {} wait(s), {:.3} ms total, {:.3} ms longest",
                    label(&l.graph, **c),
                    n,
                    *total as f64 / 1e6,
                    *longest as f64 / 1e6
                );
            }
        }
        s
    })
}
