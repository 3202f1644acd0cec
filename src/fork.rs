//! fork (Python's multiprocessing forks by default). The child has only
//! the forking thread: the world keeps just that thread, rtcore's inner
//! locks that other threads held are reset, and sysmon and the hook thread
//! start again on first use (the next attach or hook). The prepare and
//! parent handlers do nothing: no lock is taken around the fork, so a fork
//! never waits for rtcore.
//!
//! Invariant: the child handler runs before the child returns from fork,
//! on the only thread, so nothing races it. Data an inner lock protected
//! may have been mid-update in the parent; the handlers replace what could
//! be torn (the thread list, sysmon's and the hooks' thread state) rather
//! than read it.

use std::sync::Once;

extern "C" fn child() {
    // First, before anything else can park: forget the parking lot queue
    // entries of the parent's threads (see lock::parked).
    crate::lock::parked::purge_after_fork();
    crate::lifecycle::after_fork_child();
    // SAFETY: the child's atfork handler, on the only thread.
    unsafe { crate::ranks::global().reset_after_fork() };
    crate::lock::order::after_fork_child();
    crate::world::world().after_fork_child();
    crate::sysmon::monitor::after_fork_child();
    crate::sysmon::hooks::after_fork_child();
    crate::record::after_fork_child();
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
