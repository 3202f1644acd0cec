//! The asymmetric fence behind the gates (`gate.rs`): emitters, which run
//! on every event, pay only a compiler fence; the tracer, which runs a few
//! times per trace, pays for both sides with one
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every
//! running thread of the process execute a full memory barrier (and a
//! thread that is not running passes one when it is switched back in).
//! Userspace RCU and Folly's `asymmetricHeavyBarrier` use the same pairing.
//!
//! Invariants:
//! - **one mode for a process's life**: the mode is chosen before the first
//!   gate is entered (`mode()` initialises it on first use; `init` is
//!   called by `lifecycle` at start) and changes only in a forked child,
//!   where one thread exists.
//! - **the pairing**: in `Membarrier` mode, `light()` is a compiler fence
//!   and `heavy()` the system call; in `Fences` mode (the kernel refused to
//!   register, the architecture has no such call, or `RTCORE_DEBUG=
//!   gate_fences` forced it) both are full `SeqCst` fences. Either way, of
//!   an emitter's "store mine, light(), load theirs" and the tracer's
//!   "store mine, heavy(), load theirs", at least one load sees the other
//!   side's store (the store-buffering outcome is excluded).
//! - Under loom both are `SeqCst` fences: loom cannot model the system
//!   call, so the model states what it guarantees (a full fence on the
//!   emitter's side, at the point where `light()` stands), and its broken
//!   variant drops the fence (`tests/loom_trace.rs`); `tests/gate_stress.rs`
//!   runs the real call and catches its removal on the hardware.

// The mode is process configuration, not part of the modelled protocol:
// plain std atomics even under loom.
use std::sync::atomic::{AtomicU32, Ordering};

/// How the fences are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Emitters: a compiler fence; the tracer: `membarrier`.
    Membarrier,
    /// Both sides: a full fence (a locked instruction on x86).
    Fences,
}

const UNSET: u32 = 0;
const MEMBARRIER: u32 = 1;
const FENCES: u32 = 2;
/// Deliberately broken, for `tests/gate_stress.rs` only: both sides
/// compiler fences. Never in production.
const BROKEN: u32 = 3;

static MODE: AtomicU32 = AtomicU32::new(UNSET);

#[cfg(all(target_os = "linux", not(loom)))]
fn register_membarrier() -> bool {
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        let q = libc::syscall(libc::SYS_membarrier, libc::MEMBARRIER_CMD_QUERY, 0, 0);
        if q < 0 || q & libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED as libc::c_long == 0 {
            return false;
        }
        libc::syscall(
            libc::SYS_membarrier,
            libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
            0,
        ) == 0
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn register_membarrier() -> bool {
    false
}

/// Choose the mode (once; later calls return the chosen one). With
/// `force_fences`, full fences whatever the kernel offers.
pub fn init(force_fences: bool) -> Mode {
    if MODE.load(Ordering::Acquire) == UNSET {
        let want = if !force_fences && register_membarrier() {
            MEMBARRIER
        } else {
            FENCES
        };
        let _ = MODE.compare_exchange(UNSET, want, Ordering::AcqRel, Ordering::Acquire);
    }
    current()
}

fn current() -> Mode {
    match MODE.load(Ordering::Acquire) {
        MEMBARRIER | BROKEN => Mode::Membarrier,
        _ => Mode::Fences,
    }
}

/// The mode, chosen now if nobody chose it yet.
#[inline]
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        MEMBARRIER | BROKEN => Mode::Membarrier,
        FENCES => Mode::Fences,
        _ => init(false),
    }
}

/// The emitter's side, between its store and its load.
#[inline(always)]
pub fn light() {
    #[cfg(loom)]
    {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }
    #[cfg(not(loom))]
    {
        let m = MODE.load(Ordering::Relaxed);
        if m == MEMBARRIER || m == BROKEN {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            light_slow();
        }
    }
}

#[cfg(not(loom))]
#[cold]
fn light_slow() {
    if mode() == Mode::Membarrier {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// The tracer's side, between its stores and its loads. If the kernel
/// refuses the call after registering (it should not), the tracer cannot
/// order the emitters' compiler-fenced accesses: it waits until every
/// thread has been switched out and in again (`sched_yield` loops would
/// not guarantee it), so this aborts rather than record a trace that may
/// be inconsistent.
#[inline]
pub fn heavy() {
    #[cfg(loom)]
    {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }
    #[cfg(not(loom))]
    {
        if MODE.load(Ordering::Relaxed) == BROKEN {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            return;
        }
        match mode() {
            Mode::Fences => std::sync::atomic::fence(Ordering::SeqCst),
            Mode::Membarrier => membarrier(),
        }
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
fn membarrier() {
    // SAFETY: a system call with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED,
            0,
            0,
        )
    };
    if r != 0 {
        crate::diag::eprintln(
            "rtcore: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registering; aborting",
        );
        std::process::abort();
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
fn membarrier() {
    std::sync::atomic::fence(Ordering::SeqCst);
}

/// In a forked child (one thread): the registration belongs to the
/// parent's address space; register again, or fall back to fences.
pub fn after_fork_child() {
    if MODE.load(Ordering::Relaxed) == MEMBARRIER && !register_membarrier() {
        MODE.store(FENCES, Ordering::SeqCst);
    }
}

/// For `tests/gate_stress.rs` only: make both sides compiler fences, so
/// the store-buffering outcome the fences exclude can happen.
#[doc(hidden)]
pub fn break_for_test() {
    MODE.store(BROKEN, Ordering::SeqCst);
}
