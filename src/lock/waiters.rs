//! Who is parked on which rtcore lock, and what each such thread holds: the
//! wait-for graph's nodes and edges, published for sysmon's deadlock search
//! (`sysmon::deadlock`). Every thread that parks on a mutex or an rwlock
//! publishes, attached to the world or not.
//!
//! A thread publishes just before it parks (not while it spins, so the
//! contended fast paths pay nothing) and withdraws as soon as it wakes; a
//! thread that parks again publishes again, under a new epoch.
//!
//! Invariants:
//! - **alive while published**: a published wait names a lock the thread
//!   is inside a lock call on, and locks it holds; the thread withdraws
//!   under its slot's lock before the lock call returns. So a reader
//!   holding a slot's lock may read the names and words of the locks that
//!   slot names (a held lock cannot be destroyed: destroy refuses a locked
//!   lock).
//! - **epochs are unique**: each publication takes a new epoch from one
//!   global counter, so a waiter seen with the same epoch twice has been
//!   parked on the same lock, holding the same locks, all along. (It may
//!   have been woken and parked again only if it also withdrew and
//!   re-published, which changes the epoch.)
//! - The registry lock and a slot's lock share the inner rank `waiters`
//!   and are never held together.

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use super::order::{HeldLock, LockKind, with_held};
use crate::base::inner::{InnerMutex, InnerRank};

/// What the calling thread is about to wait for (set by the lock's slow
/// path before it may park; read when it does).
#[derive(Clone, Copy, Debug)]
pub struct Want {
    pub addr: usize,
    pub kind: LockKind,
    /// A read lock of an rwlock.
    pub shared: bool,
    pub file: *const c_char,
    pub line: u32,
    /// An interposed lock call's return address (`file` is then NULL).
    pub site: usize,
}

// SAFETY: `file` is a static string (the C API's contract for call sites);
// the rest is plain data.
unsafe impl Send for Want {}
// SAFETY: as above.
unsafe impl Sync for Want {}

/// One published wait.
struct Published {
    epoch: u64,
    want: Want,
    /// The thread's held record when it parked.
    holds: Vec<HeldLock>,
    /// Its attach name, if any (the OS name is read only for a report).
    name: Option<Arc<str>>,
    pthread: libc::pthread_t,
}

/// A thread's slot (one per thread that ever parked on an rtcore lock).
pub struct Slot {
    thread: u64,
    /// `Some` while the thread is parked; the `Vec` is kept for reuse.
    wait: InnerMutex<(bool, Published)>,
}

// SAFETY: the raw pointers inside (`Want::file`, held entries' files) are
// static strings by the C API's contract; the slot is read only under its
// lock.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

static REGISTRY: LazyLock<InnerMutex<Vec<Arc<Slot>>>> =
    LazyLock::new(|| InnerMutex::new(InnerRank::Waiters, Vec::new()));

static EPOCH: AtomicU64 = AtomicU64::new(0);
/// How many threads are published as parked now.
static PARKED_NOW: AtomicUsize = AtomicUsize::new(0);
/// Called when the number of parked threads goes from 0 to 1 (sysmon
/// registers itself: it starts, and wakes from a deep sleep).
static FIRST_WAITER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

thread_local! {
    static WANT: Cell<Option<Want>> = const { Cell::new(None) };
    static MINE: RefCell<Option<Arc<Slot>>> = const { RefCell::new(None) };
}

/// Register the function run when a first thread parks.
pub fn on_first_waiter(f: fn()) {
    FIRST_WAITER.store(f as *mut (), Ordering::Release);
}

/// Are threads parked on rtcore locks now?
pub fn any_parked() -> bool {
    PARKED_NOW.load(Ordering::Relaxed) != 0
}

/// Say what the calling thread's next parks are for (`None` after).
#[inline]
pub fn set_want(w: Option<Want>) {
    let _ = WANT.try_with(|c| c.set(w));
}

fn my_slot() -> Option<Arc<Slot>> {
    MINE.try_with(|m| {
        let mut m = m.try_borrow_mut().ok()?;
        if m.is_none() {
            let slot = Arc::new(Slot {
                thread: crate::ident::current_id(),
                wait: InnerMutex::new(
                    InnerRank::Waiters,
                    (
                        false,
                        Published {
                            epoch: 0,
                            want: Want {
                                addr: 0,
                                kind: LockKind::Mutex,
                                shared: false,
                                file: std::ptr::null(),
                                line: 0,
                                site: 0,
                            },
                            holds: Vec::new(),
                            name: None,
                            pthread: 0,
                        },
                    ),
                ),
            });
            REGISTRY.lock().push(Arc::clone(&slot));
            *m = Some(slot);
        }
        m.clone()
    })
    .ok()
    .flatten()
}

/// Names for `LockKind::Pthread` locks (interposed: registered by
/// `interpose`, above this module): (lock address, call site) -> "pthread
/// mutex 0x... ['a', first locked at ...]", and a call site's name.
pub type DescribeExternal = fn(usize) -> String;
static DESCRIBE_EXTERNAL: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
static NAME_SITE: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Register how interposed locks and their call sites are named.
pub fn register_external(describe: DescribeExternal, site: DescribeExternal) {
    DESCRIBE_EXTERNAL.store(describe as *mut (), Ordering::Release);
    NAME_SITE.store(site as *mut (), Ordering::Release);
}

fn call_external(f: &AtomicPtr<()>, v: usize) -> String {
    let f = f.load(Ordering::Acquire);
    if f.is_null() {
        return format!("pthread lock {v:#x}");
    }
    // SAFETY: only `DescribeExternal`s are stored.
    let f = unsafe { std::mem::transmute::<*mut (), DescribeExternal>(f) };
    f(v)
}

/// Where a published wait is made: its file and line, or for an
/// interposed lock its call site named by `interpose`.
pub fn want_site(w: &Want) -> String {
    if w.kind == LockKind::Pthread {
        call_external(&NAME_SITE, w.site)
    } else {
        super::order::site(w.file, w.line)
    }
}

/// Where a published held lock was taken: its file and line, or for an
/// interposed lock its call site named by `interpose`.
pub fn held_site(h: &HeldView) -> String {
    if h.kind == LockKind::Pthread {
        call_external(&NAME_SITE, h.key as usize)
    } else {
        super::order::site(h.file, h.line)
    }
}

/// An interposed lock call (`rtcore run`) is about to block on `want`
/// while its thread holds `holds` (kind `Pthread`, sites in `key`):
/// published like an rtcore lock's park, for the deadlock search.
pub fn publish_external(want: Want, holds: &[HeldLock]) {
    publish_with(want, |out| out.extend_from_slice(holds));
}

/// The interposed call returned.
pub fn withdraw_external() {
    withdraw();
}

/// Before a park: publish the wait, then tell the world (`base::wait`).
/// Passed to the lock words as their `before_park`.
pub fn before_park() {
    publish();
    crate::base::wait::begin();
}

/// After a park: tell the world, then withdraw.
pub fn after_park() {
    crate::base::wait::end();
    withdraw();
}

fn publish() {
    let Some(want) = WANT.try_with(Cell::get).ok().flatten() else {
        return;
    };
    // The record is not borrowed here: the lock paths park outside
    // `with_held`.
    publish_with(want, |out| {
        with_held(|h| out.extend_from_slice(h.entries()))
    });
}

fn publish_with(want: Want, holds: impl FnOnce(&mut Vec<HeldLock>)) {
    let Some(slot) = my_slot() else {
        return;
    };
    let name = crate::ident::attach_name();
    {
        let mut g = slot.wait.lock();
        let (active, p) = &mut *g;
        p.epoch = EPOCH.fetch_add(1, Ordering::Relaxed) + 1;
        p.want = want;
        p.holds.clear();
        holds(&mut p.holds);
        p.name = name;
        // SAFETY: no preconditions.
        p.pthread = unsafe { libc::pthread_self() };
        *active = true;
    }
    if PARKED_NOW.fetch_add(1, Ordering::Relaxed) == 0 {
        let f = FIRST_WAITER.load(Ordering::Acquire);
        if !f.is_null() {
            // SAFETY: only `fn()`s are stored.
            let f = unsafe { std::mem::transmute::<*mut (), fn()>(f) };
            f();
        }
    }
}

fn withdraw() {
    let Some(slot) = MINE
        .try_with(|m| m.try_borrow().ok().and_then(|m| m.clone()))
        .ok()
        .flatten()
    else {
        return;
    };
    let mut g = slot.wait.lock();
    if std::mem::replace(&mut g.0, false) {
        PARKED_NOW.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A held lock as a waiter published it.
#[derive(Clone, Debug)]
pub struct HeldView {
    pub addr: usize,
    pub kind: LockKind,
    pub shared: bool,
    pub file: *const c_char,
    pub line: u32,
    /// The nesting key; for an interposed lock, its call site.
    pub key: u64,
}

// SAFETY: as for `Want`.
unsafe impl Send for HeldView {}
// SAFETY: as for `Want`.
unsafe impl Sync for HeldView {}

/// One parked thread, as sysmon sees it.
#[derive(Clone, Debug)]
pub struct WaiterView {
    pub thread: u64,
    pub epoch: u64,
    pub want: Want,
    /// The target's exclusive holder by its lock word: a mutex's owner, an
    /// rwlock's writer (0: none).
    pub exclusive_holder: u64,
    pub holds: Vec<HeldView>,
}

/// Every thread parked now (threads that exited are forgotten here).
pub fn snapshot(out: &mut Vec<WaiterView>) {
    out.clear();
    let slots: Vec<Arc<Slot>> = {
        let mut reg = REGISTRY.lock();
        reg.retain(|s| Arc::strong_count(s) > 1);
        reg.clone()
    };
    for s in slots {
        let g = s.wait.lock();
        let (active, p) = &*g;
        if !*active {
            continue;
        }
        // The target is alive: the thread is inside a lock call on it.
        let exclusive_holder = exclusive_holder(&p.want);
        out.push(WaiterView {
            thread: s.thread,
            epoch: p.epoch,
            want: p.want,
            exclusive_holder,
            holds: p
                .holds
                .iter()
                .map(|h| HeldView {
                    addr: h.addr,
                    kind: h.kind(),
                    shared: h.shared(),
                    file: h.file,
                    line: h.line,
                    key: h.key,
                })
                .collect(),
        });
    }
}

fn exclusive_holder(w: &Want) -> u64 {
    match w.kind {
        LockKind::Mutex => {
            // SAFETY: alive (module invariant); only the word is read.
            let m = unsafe { super::mutex::MutexRef::new(w.addr as *mut super::mutex::rtc_mutex) };
            m.word().current_owner()
        }
        LockKind::RwLock => {
            // SAFETY: as above.
            let r =
                unsafe { super::rwlock::RwLockRef::new(w.addr as *mut super::rwlock::rtc_rwlock) };
            super::rwword::writer(r.word().load()).unwrap_or(0)
        }
        // Found from the other waiters' holds (`sysmon::deadlock`).
        LockKind::Rtcore | LockKind::Pthread => 0,
    }
}

/// What a report says about one parked thread, read again under its slot's
/// lock: `None` if it is no longer parked under `epoch`.
pub struct Described {
    pub thread_name: String,
    /// "mutex 'b' (rank db)"
    pub target: String,
    /// Each held lock's description, by address.
    pub holds: Vec<(usize, String)>,
}

/// Describe thread `thread`'s wait if it is still the one of `epoch`.
pub fn describe(thread: u64, epoch: u64) -> Option<Described> {
    let slot = REGISTRY
        .lock()
        .iter()
        .find(|s| s.thread == thread)
        .cloned()?;
    let g = slot.wait.lock();
    let (active, p) = &*g;
    if !*active || p.epoch != epoch {
        return None;
    }
    // Names are read from the locks, alive while the slot is published
    // (module invariant); the OS name from a thread that is parked.
    let thread_name = match &p.name {
        Some(n) => n.to_string(),
        None => crate::ident::os_name_of(p.pthread),
    };
    let describe_lock = |addr: usize, kind: LockKind| -> String {
        match kind {
            LockKind::Mutex => {
                // SAFETY: alive (module invariant).
                unsafe { super::mutex::MutexRef::new(addr as *mut super::mutex::rtc_mutex) }
                    .describe()
            }
            LockKind::RwLock => {
                // SAFETY: alive (module invariant).
                unsafe { super::rwlock::RwLockRef::new(addr as *mut super::rwlock::rtc_rwlock) }
                    .describe()
            }
            LockKind::Rtcore => "hooklock".to_string(),
            LockKind::Pthread => call_external(&DESCRIBE_EXTERNAL, addr),
        }
    };
    Some(Described {
        thread_name,
        target: describe_lock(p.want.addr, p.want.kind),
        holds: p
            .holds
            .iter()
            .map(|h| (h.addr, describe_lock(h.addr, h.kind())))
            .collect(),
    })
}

/// In a forked child: the parent's other threads do not exist. Every slot
/// is dropped, this thread's too (sysmon may have held its lock at the
/// fork), and the registry's lock may have been held.
pub fn after_fork_child() {
    // SAFETY: only the forking thread exists.
    unsafe { REGISTRY.reset_after_fork() };
    let old = std::mem::take(&mut *REGISTRY.lock());
    crate::base::fork::keep_forever(old);
    let _ = MINE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if let Some(s) = m.take() {
                crate::base::fork::keep_forever(s);
            }
        }
    });
    PARKED_NOW.store(0, Ordering::Relaxed);
}
