//! Lifecycle: uninitialised → running → shut down.
//!
//! Invariants:
//! - `GATE` holds the state in its low byte and the lock-rank mode above it,
//!   so the lock fast path learns both from one relaxed load.
//! - The state only moves forward: UNINIT → RUNNING → SHUT_DOWN. `rtc_init`
//!   is accepted only in UNINIT; first use of any other call moves UNINIT to
//!   RUNNING with defaults. Once SHUT_DOWN, every call answers with a status.
//! - Transitions happen under `TRANSITION`, an inner lock never held while
//!   any other rtcore lock is taken.

use std::sync::atomic::Ordering;

use crate::base::inner::{InnerMutex, InnerRank};

use crate::debug_env;
use crate::lock::order::Mode;
use crate::status::{Error, RTC_ERR_ALREADY_INITIALIZED, RTC_ERR_TOO_LATE, Result};

use crate::base::state::{CLOSING, GATE, MODE_SHIFT, STATE_MASK};
pub use crate::base::state::{RUNNING, SHUT_DOWN, UNINIT};
static TRANSITION: InnerMutex<bool> = InnerMutex::new(InnerRank::Lifecycle, false); // true once rtc_init ran

/// Options for `init`; `None` means the default.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub lockrank: Option<Mode>,
    pub ranks_file: Option<String>,
    pub maxprocs: Option<usize>,
}

/// The lock fast path's view: the mode when running, else None (and the
/// caller takes the full path, which reports the state). One relaxed load.
#[inline(always)]
pub fn running_mode() -> Option<Mode> {
    crate::base::state::running_mode_bits().map(Mode::from_bits)
}

/// The fast-path view: `Ok(mode)` when running.
#[inline]
pub fn enter() -> Result<Mode> {
    let g = GATE.load(Ordering::Relaxed);
    if g & STATE_MASK == RUNNING {
        return Ok(Mode::from_bits(g >> MODE_SHIFT));
    }
    enter_slow()
}

#[cold]
fn enter_slow() -> Result<Mode> {
    hold_transition_across_forks();
    let _t = TRANSITION.lock_spinning();
    let g = GATE.load(Ordering::Acquire);
    match g & STATE_MASK {
        RUNNING => Ok(Mode::from_bits(g >> MODE_SHIFT)),
        SHUT_DOWN => Err(shut_down_error()),
        _ => {
            start(&Options::default())?;
            Ok(Mode::from_bits(GATE.load(Ordering::Relaxed) >> MODE_SHIFT))
        }
    }
}

pub use crate::base::state::shut_down_error;

// A fork while another thread is inside a transition (rtcore starting on
// first use, with the program's other threads already running) would give
// the child a held `TRANSITION` and a half-made start, before the child
// handlers that reset rtcore's locks are even registered. So the forking
// thread holds `TRANSITION` across every fork: a fork waits for a
// transition under way to finish (at most a second: the forking thread may
// be inside one itself, from a signal handler), and the child's copy is
// reset, whole.
// Every wait for `TRANSITION` spins (`lock_spinning`): a thread parked on
// it could be inside parking_lot's table at the fork's instant, which would
// leave the table locked in the child.
// Invariant: FORK_HELD holds the guard exactly between a prepare handler
// that got the lock and the parent or child handler of the same fork, on
// the forking thread.

thread_local! {
    static FORK_HELD: std::cell::RefCell<Option<parking_lot::MutexGuard<'static, bool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Registered as the library loads (`at_load`), before any thread can be
/// inside the `Once` (a fork then would copy it running, for good) and
/// before `TRANSITION` is first taken (glibc holds its handler list's lock
/// while it runs the prepare handlers).
fn hold_transition_across_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain functions, no captured state.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    });
}

extern "C" fn fork_prepare() {
    let got = TRANSITION.lock_for_fork(std::time::Duration::from_secs(1));
    let _ = FORK_HELD.try_with(|h| *h.borrow_mut() = got);
}

extern "C" fn fork_parent() {
    // Dropping the guard unlocks it.
    drop(FORK_HELD.try_with(|h| h.borrow_mut().take()));
}

extern "C" fn fork_child() {
    if let Some(g) = FORK_HELD.try_with(|h| h.borrow_mut().take()).ok().flatten() {
        // Not unlocked through the guard: parking_lot would look for the
        // parent's waiters, whose queue entries do not exist here.
        std::mem::forget(g);
        // SAFETY: the only thread; it held the lock through the fork. Raw:
        // this handler may run before `base::fork`'s, while the parking
        // lot's table may still be locked by a thread of the parent.
        unsafe { TRANSITION.reset_raw_after_fork() };
    }
}

/// Apply options and move to RUNNING. Called with `TRANSITION` held.
fn start(opts: &Options) -> Result<()> {
    // First: the gates' fence mode is chosen before any thread (sysmon
    // included) enters a gate, and the trace clock's calibration begins.
    let env = debug_env::from_env();
    crate::record::fence::init(env.gate_fences);
    crate::record::clock::force_monotonic(env.trace_clock_monotonic);
    crate::record::clock::calibration_start();
    crate::diag::install_panic_hook();
    crate::world::install();
    crate::sysmon::install();
    // sysmon's tick rolls the trace's generations.
    crate::sysmon::monitor::register_tick_hook(crate::trace::tick);
    register_fork_handlers();
    register_at_exit();
    for (setting, ns) in &env.sysmon {
        crate::sysmon::settings::set(*setting, *ns);
    }
    if let Some(n) = env.procs_cap {
        crate::world::set_procs_cap(n);
    }
    if env.trace_skip_sysmonlock || env.sysmon_park_after_check {
        crate::record::fault::set(env.trace_skip_sysmonlock, env.sysmon_park_after_check);
    }
    if env.trace_leave_section || env.trace_never_give_up {
        crate::record::fault::set_outside(env.trace_leave_section, env.trace_never_give_up);
    }
    if env.rollover_no_quiesce {
        crate::record::fault::set_no_quiesce(true);
    }
    // The environment is the operator's override, as GODEBUG is.
    let mode = env.lockrank.or(opts.lockrank).unwrap_or(Mode::Report);
    let table = crate::ranks::global();
    if let Some(path) = &opts.ranks_file {
        crate::ranks::load_file(table, path)?;
    }
    if let Some(n) = opts.maxprocs {
        crate::world::world().set_maxprocs(n)?;
    }
    GATE.store(RUNNING | (mode.bits() << MODE_SHIFT), Ordering::Release);
    Ok(())
}

/// What a forked child must reset, in this order (after the parking lot's
/// queue, which `base::fork` purges first).
fn register_fork_handlers() {
    use crate::base::fork::on_child;
    on_child(after_fork_child);
    on_child(|| {
        // SAFETY: the child's atfork handler, on the only thread.
        unsafe { crate::ranks::global().reset_after_fork() }
    });
    on_child(crate::lock::order::after_fork_child);
    on_child(crate::lock::waiters::after_fork_child);
    on_child(|| crate::world::world().after_fork_child());
    on_child(crate::sysmon::monitor::after_fork_child);
    on_child(crate::sysmon::hooks::after_fork_child);
    on_child(crate::record::after_fork_child);
    on_child(crate::flight::after_fork_child);
    crate::base::fork::register();
}

/// Set when rtcore started as the library was loaded, because
/// `RTCORE_FLIGHT_RECORDER` asked for the flight recorder: the program
/// did not use rtcore yet, so one `rtc_init` may still come, and its
/// options are applied then.
static STARTED_AT_LOAD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run as the library is loaded (before `main` for a program linked to
/// it; inside `dlopen` for one that loads it). Does nothing unless
/// `RTCORE_FLIGHT_RECORDER` or `RTCORE_TRACE` is set: then rtcore starts
/// and the flight recorder records, or a trace is written into the file
/// `RTCORE_TRACE` names until the process exits (`rtcore run --trace`),
/// with no call from the program. (One trace at a time: the flight
/// recorder wins if both are set, and the trace's failure to start says
/// so.)
extern "C" fn at_load() {
    // Before any thread of the program can be inside rtcore's start: the
    // child handler that resets rtcore's locks (registered here, not in
    // `start` under `TRANSITION`: before glibc 2.36, `pthread_atfork`
    // waits for a fork's prepare handlers, one of which waits for
    // `TRANSITION`), then the handlers that hold `TRANSITION` across forks.
    crate::base::fork::register();
    hold_transition_across_forks();
    let flight = std::env::var_os("RTCORE_FLIGHT_RECORDER").is_some();
    let trace = std::env::var_os("RTCORE_TRACE").is_some_and(|v| !v.is_empty());
    if !flight && !trace {
        return;
    }
    if enter().is_ok() {
        STARTED_AT_LOAD.store(true, Ordering::SeqCst);
        if flight {
            crate::flight::start_from_env();
        }
        if trace {
            crate::trace::start_from_env();
        }
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static AT_LOAD: extern "C" fn() = at_load;

/// `rtc_init`'s options on an rtcore started at load (`at_load`): each can
/// still be applied.
fn apply_late(opts: &Options) -> Result<()> {
    if let Some(path) = &opts.ranks_file {
        crate::ranks::load_file(crate::ranks::global(), path)?;
    }
    if let Some(n) = opts.maxprocs {
        crate::world::world().set_maxprocs(n)?;
    }
    let env = debug_env::from_env();
    if let (Some(m), None) = (opts.lockrank, env.lockrank) {
        set_mode(m)?;
    }
    Ok(())
}

/// `rtc_init`: once, before first use.
pub fn init(opts: &Options) -> Result<()> {
    let mut inited = TRANSITION.lock_spinning();
    match GATE.load(Ordering::Acquire) & STATE_MASK {
        RUNNING if !*inited && STARTED_AT_LOAD.load(Ordering::SeqCst) => {
            *inited = true;
            drop(inited);
            apply_late(opts)
        }
        UNINIT => {
            start(opts)?;
            *inited = true;
            drop(inited);
            crate::sysmon::ensure_started();
            Ok(())
        }
        RUNNING if *inited => Err(Error::new(
            RTC_ERR_ALREADY_INITIALIZED,
            "rtc_init was already called; it may be called once",
        )),
        RUNNING => Err(Error::new(
            RTC_ERR_TOO_LATE,
            "rtc_init called after rtcore was first used; call it before any other rtcore call (or not at all: defaults apply)",
        )),
        _ => Err(shut_down_error()),
    }
}

/// At process exit (also at dlclose: glibc runs a library's atexit
/// handlers then) stop the hook thread and sysmon with bounded waits, so
/// no rtcore thread runs user code or touches the library while the
/// process tears down.
fn register_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        extern "C" fn at_exit() {
            crate::trace::stop_at_exit();
            crate::sysmon::stop_at_exit();
        }
        // SAFETY: registering a plain function.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}

/// In a forked child: the lifecycle lock may have been held by a thread
/// that does not exist here.
pub fn after_fork_child() {
    // SAFETY: called from the child's atfork handler (only this thread).
    unsafe { TRANSITION.reset_after_fork() };
}

/// Is an `rtc_shutdown` in progress? (A trace must not start then: nothing
/// would stop it.)
pub use crate::base::state::closing;

/// `rtc_shutdown`. The waits (leaving a blocking region, a hook's run,
/// joining rtcore's threads) happen without `TRANSITION` held: a hook may
/// call into rtcore (and take it) while shutdown waits for that hook.
/// Set while an `rtc_shutdown` is under way (a second one is refused); the
/// public `closing()` flag is set only once the shutdown can no longer fail.
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long `rtc_shutdown` waits for a hook run in progress to return
/// before giving up (and changing nothing).
pub const SHUTDOWN_HOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn shutdown() -> Result<()> {
    if crate::sysmon::hooks::in_hook() {
        return Err(Error::new(
            crate::status::RTC_ERR_WOULD_DEADLOCK,
            "rtc_shutdown called from a hook: shutdown waits for the hook thread to finish, which would be this very call",
        ));
    }
    if crate::record::is_no_record() {
        return Err(Error::new(
            crate::status::RTC_ERR_WOULD_DEADLOCK,
            "rtc_shutdown called from the trace writer or a sink callback: shutdown stops the trace, which waits for the writer, which would be this very call",
        ));
    }
    {
        let _t = TRANSITION.lock_spinning();
        let g = GATE.load(Ordering::Acquire);
        match g & STATE_MASK {
            SHUT_DOWN => return Err(shut_down_error()),
            RUNNING => {}
            _ => {
                // Never used: nothing to stop.
                GATE.store(SHUT_DOWN | (g & !STATE_MASK), Ordering::Release);
                return Ok(());
            }
        }
        if SHUTTING_DOWN.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                crate::status::RTC_ERR_WRONG_STATE,
                "rtc_shutdown is already in progress on another thread",
            ));
        }
    }
    // A world this thread holds stopped is restarted first (as shutdown
    // always did): a running hook may wait for a stopped thread, and a
    // trace start on another thread holds hooklock while it waits to stop
    // the world, so waiting for hooklock with the world stopped could only
    // time out.
    let me = crate::ident::current_id();
    if crate::world::world().holds_world(me) {
        if let Err(e) = crate::world::world().start(me) {
            SHUTTING_DOWN.store(false, Ordering::Release);
            return Err(e);
        }
    }
    // No hook may be running past this point: wait a bounded time for a
    // run in progress; a hook that does not return leaves rtcore as it
    // was (shutdown may be tried again).
    let hooklock = match crate::sysmon::hooks::lock_hooklock_for(SHUTDOWN_HOOK_WAIT) {
        Ok(g) => g,
        Err(what) => {
            SHUTTING_DOWN.store(false, Ordering::Release);
            return Err(Error::new(
                crate::status::RTC_ERR_TIMED_OUT,
                format!(
                    "rtc_shutdown: {what} and did not return within {} s; nothing was shut down (make the hook return, then call rtc_shutdown again)",
                    SHUTDOWN_HOOK_WAIT.as_secs()
                ),
            ));
        }
    };
    if let Err(e) = crate::world::world().shutdown_prepare() {
        SHUTTING_DOWN.store(false, Ordering::Release);
        return Err(e);
    }
    // From here shutdown goes through. Set under hooklock, which every
    // trace start holds while it checks `closing()`: no trace starts after
    // the stop below, and none was refused while shutdown could still
    // fail.
    CLOSING.store(true, Ordering::Release);
    crate::sysmon::hooks::close_for_shutdown(&hooklock);
    // Released before the trace stop, which takes it itself.
    drop(hooklock);
    // The flight recorder (if it records) stops first: the trace is its.
    crate::flight::shutdown();
    // A trace in progress ends with its end marker. A sink error is not a
    // reason to stay up: it was reported on stderr and the trace is over.
    if let Err(e) = crate::trace::stop() {
        crate::diag::eprintln(&format!(
            "rtcore: rtc_shutdown: stopping the trace: {}",
            e.message
        ));
    }
    crate::record::writer::shutdown();
    crate::sysmon::hooks::shutdown();
    crate::sysmon::stop_and_join();
    let _t = TRANSITION.lock_spinning();
    let g = GATE.load(Ordering::Acquire);
    GATE.store(SHUT_DOWN | (g & !STATE_MASK), Ordering::Release);
    Ok(())
}

pub fn state() -> u32 {
    GATE.load(Ordering::Acquire) & STATE_MASK
}

/// Change the lock-rank mode at run time.
pub fn set_mode(mode: Mode) -> Result<()> {
    set_mode_with(mode, || Ok(()))
}

/// Change the lock-rank mode, running `with` first in the same transition
/// (nothing else changes the mode between the two): the mode is stored
/// only if `with` succeeds. `with` may take inner locks ranked after the
/// lifecycle's (the lock reports').
pub fn set_mode_with(mode: Mode, with: impl FnOnce() -> Result<()>) -> Result<()> {
    enter()?;
    let _t = TRANSITION.lock_spinning();
    let g = GATE.load(Ordering::Acquire);
    if g & STATE_MASK != RUNNING {
        return Err(shut_down_error());
    }
    with()?;
    GATE.store(
        (g & STATE_MASK) | (mode.bits() << MODE_SHIFT),
        Ordering::Release,
    );
    Ok(())
}
