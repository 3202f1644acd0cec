//! Lock-order checking for programs nobody changed: the side of
//! `librtcore_preload.so` (preload/rtcore_preload.c) that lives in
//! librtcore. The preload library interposes `pthread_mutex_*` and calls
//! these hooks around the real functions; they learn the order of lock
//! classes (`graph`) and report what would deadlock before it does
//! (docs/preload.md).
//!
//! A lock's class is the site that initialised it (the caller of
//! `pthread_mutex_init`), or, for a statically initialised lock, the site
//! of its first lock call. Sites are return addresses, named for reports
//! by `dladdr` (function and offset, or object and offset).
//!
//! Invariants:
//! - Each thread keeps the locks it holds (`HELD`: lock, class, site, depth
//!   for recursive mutexes) and the chains it has already had checked
//!   (`SEEN`); the global graph's lock (`learned`) is taken only for a lock
//!   never seen by the thread or a chain it has not checked, so a
//!   steady-state acquisition is thread-local hash look-ups.
//! - A thread's cache of lock classes is dropped whenever any lock is
//!   destroyed (`EPOCH` moves): an address re-used by a lock of another
//!   class is classed again.
//! - The hooks never call the interposed functions (they take only
//!   rtcore's inner locks, which are not pthread mutexes), and the preload
//!   library never enters them recursively (its own per-thread guard).
//! - A try-lock adds no edge; it is held like any lock once it succeeds.

pub mod graph;
mod sites;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::LockRankMode as Mode;
use graph::{Class, ClassKey, Graph, LockRef, Verdict};
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
    cond_waits: u64,
}

static LEARNED: InnerMutex<Option<Learned>> = InnerMutex::new(InnerRank::Learned, None);
/// Moves when a lock is destroyed: threads drop their class caches.
static EPOCH: AtomicU64 = AtomicU64::new(0);

fn with_learned<R>(f: impl FnOnce(&mut Learned) -> R) -> R {
    let mut g = LEARNED.lock();
    let l = g.get_or_insert_with(|| Learned {
        graph: Graph::default(),
        locks: HashMap::new(),
        waits: HashMap::new(),
        threads: 0,
        recursion_reports: 0,
        unlock_reports: 0,
        cond_waits: 0,
    });
    f(l)
}

/// A lock this thread holds (`depth`: times, for a recursive mutex or
/// read locks taken again).
struct Held {
    lock: LockRef,
    kind: LockKind,
    depth: u32,
}

#[derive(Default)]
struct Mine {
    held: Vec<Held>,
    classes: HashMap<usize, Class>,
    epoch: u64,
    chains: HashSet<u64>,
    counted: bool,
}

thread_local! {
    static MINE: RefCell<Mine> = RefCell::new(Mine::default());
}

fn with_mine<R>(f: impl FnOnce(&mut Mine) -> R) -> Option<R> {
    MINE.try_with(|m| m.try_borrow_mut().ok().map(|mut m| f(&mut m)))
        .ok()
        .flatten()
}

/// The class of the lock at `addr` (classed by `site` on first sight).
fn class_of(mine: &mut Mine, addr: usize, site: usize) -> Class {
    let epoch = EPOCH.load(Relaxed);
    if mine.epoch != epoch {
        mine.classes.clear();
        mine.epoch = epoch;
    }
    if let Some(&c) = mine.classes.get(&addr) {
        return c;
    }
    let first = !mine.counted;
    mine.counted = true;
    let c = with_learned(|l| {
        if first {
            l.threads += 1;
        }
        match l.locks.get(&addr) {
            Some(&c) => c,
            None => {
                let c = l.graph.class_at(ClassKey::Static(addr), site);
                l.locks.insert(addr, c);
                c
            }
        }
    });
    mine.classes.insert(addr, c);
    c
}

/// `pthread_mutex_init` at `site` made the lock at `addr`.
pub fn init(addr: usize, site: usize) {
    with_learned(|l| {
        let c = l.graph.class_at(ClassKey::InitSite(site), site);
        l.locks.insert(addr, c);
    });
    // Another lock may have lived here: classes cached by threads go.
    EPOCH.fetch_add(1, Relaxed);
}

/// The lock at `addr` was destroyed.
pub fn destroyed(addr: usize) {
    with_learned(|l| l.locks.remove(&addr));
    EPOCH.fetch_add(1, Relaxed);
}

/// Before a blocking lock call: check recursion and the learned order,
/// reporting what would deadlock (as `mode` says) before it does.
pub fn wanted(addr: usize, site: usize, kind: LockKind, mode: Mode) {
    if mode == Mode::Off {
        return;
    }
    let mut reports = Vec::new();
    with_mine(|mine| {
        let class = class_of(mine, addr, site);
        if let Some(h) = mine.held.iter().find(|h| h.lock.addr == addr) {
            if kind.hangs_when_held(h.lock.shared) {
                let text = format!(
                    "rtcore: recursive locking: thread {} locks {} {:#x} {} at {} ({}) while it already holds it ({}, taken at {}): this call never returns",
                    thread_name(),
                    kind.noun(),
                    addr,
                    class_label(class),
                    site_name(site),
                    mode_word(kind.shared()),
                    mode_word(h.lock.shared),
                    site_name(h.lock.site),
                );
                with_learned(|l| l.recursion_reports += 1);
                reports.push(text);
            }
            return;
        }
        let wanted = LockRef {
            class,
            addr,
            site,
            shared: kind.shared(),
        };
        let hash = graph::chain_hash(mine.held.iter().map(|h| &h.lock), &wanted);
        if mine.chains.contains(&hash) {
            return;
        }
        let held: Vec<LockRef> = mine.held.iter().map(|h| h.lock).collect();
        let verdicts = with_learned(|l| {
            if l.graph.chain_known(hash) {
                return Vec::new();
            }
            l.graph.learn(hash, &held, &wanted, &thread_name())
        });
        mine.chains.insert(hash);
        for v in verdicts {
            reports.push(describe(&v, &wanted, kind, &mine.held));
        }
    });
    deliver(reports, mode);
}

fn mode_word(shared: bool) -> &'static str {
    if shared { "for reading" } else { "exclusively" }
}

/// After a successful lock call (`tried`: a try-lock, which adds no edge;
/// `after_wait`: a condition wait took its mutex again; `waited_ns`: how
/// long the call blocked, 0 if it did not).
pub fn acquired(
    addr: usize,
    site: usize,
    kind: LockKind,
    tried: bool,
    after_wait: bool,
    waited_ns: u64,
) {
    let _ = tried;
    if after_wait {
        with_learned(|l| l.cond_waits += 1);
    }
    with_mine(|mine| {
        let class = class_of(mine, addr, site);
        if let Some(h) = mine.held.iter_mut().find(|h| h.lock.addr == addr) {
            h.depth += 1;
        } else {
            mine.held.push(Held {
                lock: LockRef {
                    class,
                    addr,
                    site,
                    shared: kind.shared(),
                },
                kind,
                depth: 1,
            });
        }
        if waited_ns > 0 {
            with_learned(|l| {
                let w = l.waits.entry(class).or_default();
                w.0 += 1;
                w.1 += waited_ns;
                w.2 = w.2.max(waited_ns);
            });
        }
    });
}

/// After an unlock call; reports an unlock of a lock this thread does not
/// hold.
pub fn released(addr: usize, site: usize, mode: Mode) {
    let held = with_mine(
        |mine| match mine.held.iter().rposition(|h| h.lock.addr == addr) {
            Some(i) => {
                mine.held[i].depth -= 1;
                if mine.held[i].depth == 0 {
                    mine.held.remove(i);
                }
                true
            }
            None => false,
        },
    );
    if held == Some(false) && mode != Mode::Off {
        with_learned(|l| l.unlock_reports += 1);
        deliver(
            vec![format!(
                "rtcore: unlock of a lock not held: thread {} unlocks {:#x} at {}, which it does not hold",
                thread_name(),
                addr,
                site_name(site)
            )],
            mode,
        );
    }
}

/// The exit summary: threads, classes, learned edges, violations, the
/// five most contended classes.
pub fn summary() -> String {
    with_learned(|l| {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rtcore run: {} thread(s) took interposed locks; {} lock class(es), {} learned order edge(s), {} condition wait(s); {} order violation(s), {} recursive lock(s), {} unlock(s) of a lock not held",
            l.threads,
            l.graph.class_count(),
            l.graph.edge_count(),
            l.cond_waits,
            l.graph.violations,
            l.recursion_reports,
            l.unlock_reports
        );
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

/// "[class: initialised at SITE]", or for a statically initialised lock
/// "[NAME, first locked at SITE]" (its variable's name where the symbol
/// table has it).
fn class_label(c: Class) -> String {
    with_learned(|l| label(&l.graph, c))
}

fn label(g: &Graph, c: Class) -> String {
    let i = g.class(c);
    let (key, site) = (i.key, i.site);
    match key {
        ClassKey::InitSite(_) => format!("[class: initialised at {}]", site_name(site)),
        ClassKey::Static(addr) => format!(
            "[{}, first locked at {}]",
            sites::object_name(addr)
                .map_or_else(|| format!("static {addr:#x}"), |n| format!("'{n}'")),
            site_name(site)
        ),
    }
}

fn describe(v: &Verdict, wanted: &LockRef, kind: LockKind, held: &[Held]) -> String {
    let mut s = String::new();
    match v {
        Verdict::Cycle { held: h, path, .. } => {
            let holding = held.iter().find(|x| x.lock.class == *h);
            let _ = writeln!(
                s,
                "rtcore: lock order violation (learned order)\n  thread {} wants {} {:#x} {} at {} ({})\n  while holding{}",
                thread_name(),
                kind.noun(),
                wanted.addr,
                class_label(wanted.class),
                site_name(wanted.site),
                mode_word(wanted.shared),
                holding.map_or(format!(" {}", class_label(*h)), |x| format!(
                    " {} {:#x} {} taken at {} ({})",
                    x.kind.noun(),
                    x.lock.addr,
                    class_label(*h),
                    site_name(x.lock.site),
                    mode_word(x.lock.shared)
                )),
            );
            let _ = write!(
                s,
                "  the opposite order was learned before (each class before the next):"
            );
            for (from, to, seen) in path {
                let _ = write!(
                    s,
                    "\n    {} then {}: thread {} took the second at {} holding the first, taken at {}",
                    class_label(*from),
                    class_label(*to),
                    seen.thread,
                    site_name(seen.wanted_site),
                    site_name(seen.held_site)
                );
            }
        }
        Verdict::BothOrders {
            class,
            ascending,
            descending,
        } => {
            let _ = write!(
                s,
                "rtcore: lock order violation (learned order)\n  two locks of one class {} taken in both address orders\n    ascending: thread {} at {} while holding one taken at {}\n    descending: thread {} at {} while holding one taken at {}",
                class_label(*class),
                ascending.thread,
                site_name(ascending.wanted_site),
                site_name(ascending.held_site),
                descending.thread,
                site_name(descending.wanted_site),
                site_name(descending.held_site),
            );
        }
        Verdict::Fine => {}
    }
    s
}

fn deliver(reports: Vec<String>, mode: Mode) {
    for r in &reports {
        crate::diag::eprintln(r.trim_end());
    }
    if !reports.is_empty() && mode == Mode::Abort {
        crate::diag::eprintln("rtcore: lock-rank mode abort: aborting");
        std::process::abort();
    }
}

/// "N 'name' (tid T)" for the calling thread.
fn thread_name() -> String {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: a valid buffer of its length for the calling thread's name.
    let rc = unsafe { libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr(), buf.len()) };
    // SAFETY: plain syscall.
    let tid = unsafe { libc::gettid() };
    let name = if rc == 0 {
        // SAFETY: NUL-terminated by pthread_getname_np on success.
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    format!("'{name}' (tid {tid})")
}
