//! fork (Python's multiprocessing forks by default). The child has only
//! the forking thread: the world keeps just that thread, rtcore's inner
//! locks that other threads held are reset, and sysmon and the hook thread
//! start again on first use (the next attach or hook). The prepare and
//! parent handlers do nothing: no lock is taken around the fork, so a fork
//! never waits for rtcore. This file is the registry: each module registers
//! its child handler with `on_child` (the lifecycle does, in order), and
//! keeps what the child must not touch with `keep_forever`.
//!
//! Invariant: the child handler runs before the child returns from fork,
//! on the only thread, so nothing races it. Data an inner lock protected
//! may have been mid-update in the parent; the handlers replace what could
//! be torn (the thread list, sysmon's and the hooks' thread state) rather
//! than read it.

use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};

/// Most child handlers that can be registered.
const MAX_HANDLERS: usize = 16;

/// The child handlers, in registration order (`on_child`). Written only
/// while registering (once per module, at start, under the lifecycle's
/// lock); read by the child handler, on the only thread.
static HANDLERS: [AtomicPtr<()>; MAX_HANDLERS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_HANDLERS];
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Register `f` to run in a forked child, after the handlers registered
/// before it. Each module above registers its own (the lifecycle calls
/// them in the order the child needs); registering the same `f` twice is a
/// no-op.
pub fn on_child(f: fn()) {
    let p = f as *mut ();
    let n = COUNT.load(SeqCst);
    if HANDLERS[..n].iter().any(|h| h.load(SeqCst) == p) {
        return;
    }
    assert!(n < MAX_HANDLERS, "too many fork-child handlers");
    HANDLERS[n].store(p, SeqCst);
    COUNT.store(n + 1, SeqCst);
}

extern "C" fn child() {
    // First, before anything else can park: forget the parking lot queue
    // entries of the parent's threads (see base::parked).
    super::parked::purge_after_fork();
    for h in &HANDLERS[..COUNT.load(SeqCst)] {
        let p = h.load(SeqCst);
        if !p.is_null() {
            // SAFETY: only `fn()` pointers are stored (`on_child`).
            let f: fn() = unsafe { std::mem::transmute::<*mut (), fn()>(p) };
            f();
        }
    }
}

/// Things of the parent that the child must neither use nor drop (a thread
/// list a parent thread may have been changing, handles of threads that do
/// not exist). They are kept here, reachable, for the life of the process,
/// so leak checkers do not count them. Push-only list of leaked nodes: no
/// lock, since the child handler may run after a fork that interrupted
/// anything.
struct Kept {
    _item: Box<dyn std::any::Any + Send>,
    next: *mut Kept,
}

static KEPT: std::sync::atomic::AtomicPtr<Kept> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Keep `item` for good without using or dropping it again.
pub fn keep_forever<T: Send + 'static>(item: T) {
    use std::sync::atomic::Ordering::SeqCst;
    let node = Box::into_raw(Box::new(Kept {
        _item: Box::new(item),
        next: std::ptr::null_mut(),
    }));
    let mut head = KEPT.load(SeqCst);
    loop {
        // SAFETY: `node` is ours until published.
        unsafe { (*node).next = head };
        match KEPT.compare_exchange(head, node, SeqCst, SeqCst) {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

/// Register the child handler (once per process; called at start).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a plain function with no captured state.
        unsafe {
            libc::pthread_atfork(None, None, Some(child));
        }
    });
}
