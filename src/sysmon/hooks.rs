//! Hooks: user callbacks run on a period by one hook thread
//! ("rtcore-hooks"), outside the world (never attached, never stopped), each
//! run under `hooklock`. sysmon watches the hook thread and reports a run
//! that overruns its budget; it can, because it never waits for hooks.
//!
//! The run/remove protocol (when a run may begin, what `remove` decides,
//! how a remover waits) is in `hook_protocol`, modelled with loom.
//!
//! Invariants:
//! - The registry (`reg`, inner rank `hookreg`) is never held while a hook
//!   runs, so sysmon, `add` and `remove` never wait on user code for it.
//! - Every `hook_protocol` transition is made under `reg`.
//! - `hooklock` is held for the whole of each run, and only by the hook
//!   thread; trace start and stop take it before stopping
//!   the world so no hook runs meanwhile.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use super::hook_protocol::{self, HookEntry, Removal, RunState};
use crate::base::inner::{InnerMutex, InnerRank, ResettableMutex};
use crate::status::{
    Error, RTC_ERR_INVALID_ARGUMENT, RTC_ERR_WOULD_DEADLOCK, RTC_ERR_WRONG_STATE, Result,
};

/// A hook's function, called with its `user_data`.
pub type HookFn = unsafe extern "C" fn(*mut c_void);

/// Shortest period accepted (a hook is not a busy loop).
pub const MIN_PERIOD_NS: u64 = 100_000;
/// Longest period accepted (10^18 ns, about 31 years: deadline arithmetic
/// never overflows).
pub const MAX_PERIOD_NS: u64 = 1_000_000_000_000_000_000;

struct Hook {
    id: u64,
    name: String,
    period_ns: u64,
    f: HookFn,
    user_data: usize,
    next_run: u64,
    /// Removed by itself during its run: dropped when the run returns.
    remove_after_run: bool,
}

impl HookEntry for Hook {
    fn id(&self) -> u64 {
        self.id
    }
    fn remove_after_run(&mut self) -> &mut bool {
        &mut self.remove_after_run
    }
}

struct Registry {
    hooks: Vec<Hook>,
    next_id: u64,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The running hook's name (kept for reports even if it is removed
    /// while it runs).
    running_name: String,
}

/// Counters for `rtc_sysmon_get_stats`.
#[derive(Default)]
pub struct HookStats {
    pub runs: AtomicU64,
    pub overruns: AtomicU64,
}

pub struct Hooks {
    reg: InnerMutex<Registry>,
    /// Held by the hook thread for each run (user code runs under it).
    hooklock: ResettableMutex<()>,
    /// Which hook runs (see `hook_protocol`).
    run: RunState,
    /// When the current run began (ns on the sysmon clock).
    run_started: AtomicU64,
    /// Runs begun so far (sysmon's episode key for overruns).
    run_seq: AtomicU64,
    /// The hook thread's OS tid (for reports).
    tid: AtomicU64,
    /// Set (under `reg`) while the registry's list changes shape (a push,
    /// a removal): a fork that lands then leaves the child a list it must
    /// not trust. Other sections under `reg` only read it or change fields.
    reshaping: AtomicBool,
    /// Hooks added so far (sysmon re-checks it before a deep sleep).
    adds: AtomicU64,
    /// Bumped to wake the hook thread (a hook added, quit).
    wakes: AtomicU64,
    /// Tells the hook thread to return. Written under `reg`.
    quit: AtomicBool,
    /// Sticky, written under `reg`: set by `rtc_shutdown` and at process
    /// exit. Once set, no hook is added and no hook thread is started.
    closed: AtomicBool,
    pub stats: HookStats,
}

static HOOKS: std::sync::LazyLock<Hooks> = std::sync::LazyLock::new(|| Hooks {
    reg: InnerMutex::new(
        InnerRank::HookReg,
        Registry {
            hooks: Vec::new(),
            next_id: 1,
            thread: None,
            running_name: String::new(),
        },
    ),
    hooklock: ResettableMutex::new(()),
    run: RunState::new(),
    run_started: AtomicU64::new(0),
    run_seq: AtomicU64::new(0),
    tid: AtomicU64::new(0),
    reshaping: AtomicBool::new(false),
    adds: AtomicU64::new(0),
    wakes: AtomicU64::new(0),
    quit: AtomicBool::new(false),
    closed: AtomicBool::new(false),
    stats: HookStats::default(),
});

pub fn hooks() -> &'static Hooks {
    &HOOKS
}

/// Is the calling thread running a hook? (Calls that would wait for the
/// hook thread, stop the world or start a trace refuse from there.)
pub fn in_hook() -> bool {
    crate::base::state::in_hook()
}

/// The hook currently running, as sysmon sees it.
#[derive(Clone, Debug)]
pub struct RunView {
    pub id: u64,
    pub seq: u64,
    pub started: u64,
    pub name: String,
    pub tid: u64,
}

impl Hooks {
    /// The run in progress, if any. Takes `reg` briefly (never held across
    /// user code), so sysmon may call it under `sysmonlock`.
    pub fn current_run(&self) -> Option<RunView> {
        let r = self.reg.lock();
        let id = self.run.running.load(SeqCst);
        if id == 0 {
            return None;
        }
        let name = r.running_name.clone();
        Some(RunView {
            id,
            seq: self.run_seq.load(SeqCst),
            started: self.run_started.load(SeqCst),
            name,
            tid: self.tid.load(SeqCst),
        })
    }

    /// While no hook runs: the earliest moment a run could exceed `budget`
    /// (a run starts no earlier than it is due, nor than `now`). sysmon
    /// caps its deep sleep there instead of being woken for every run; a
    /// run in progress is timed by its overrun episode instead.
    pub fn overrun_deadline(&self, budget: u64, now: u64) -> Option<u64> {
        if budget == 0 {
            return None;
        }
        let r = self.reg.lock();
        if self.run.running.load(SeqCst) != 0 {
            return None;
        }
        r.hooks
            .iter()
            .map(|x| x.next_run)
            .min()
            .map(|due| due.max(now).saturating_add(budget))
    }

    /// Hooks added so far.
    pub fn adds(&self) -> u64 {
        self.adds.load(SeqCst)
    }

    /// Runs begun so far.
    pub fn run_seq(&self) -> u64 {
        self.run_seq.load(SeqCst)
    }

    /// Number of hooks registered.
    pub fn count(&self) -> usize {
        self.reg.lock().hooks.len()
    }
}

fn now_ns() -> u64 {
    crate::base::clock::now_ns()
}

fn wake_thread(h: &Hooks) {
    h.wakes.fetch_add(1, SeqCst);
    // SAFETY: no callback.
    unsafe {
        parking_lot_core::unpark_all(
            &h.wakes as *const AtomicU64 as usize,
            parking_lot_core::DEFAULT_UNPARK_TOKEN,
        );
    }
}

/// Park on `key` while `still` holds, until `deadline` (None: no limit).
fn park_while(key: usize, still: impl Fn() -> bool, deadline: Option<Instant>) {
    // SAFETY: the validate callback only reads atomics.
    unsafe {
        crate::base::parked::park(key, still, deadline);
    }
}

/// Take `hooklock`: no hook runs until the guard is dropped (the tracer's
/// start and stop take it before stopping the world). Recorded in the
/// held-lock record like the hook thread's hold, so a user lock held by
/// the caller is reported as an inversion.
pub fn lock_hooklock() -> HooklockGuard {
    let h = hooks();
    crate::lock::order::hooklock_check(c"hooklock");
    // Wait as a lock wait: an attached caller gives up its P meanwhile, so
    // a stop (by another start, say) never waits for it.
    let g = match h.hooklock.get().try_lock() {
        Some(g) => g,
        None => {
            crate::base::wait::begin();
            let g = h.hooklock.lock();
            crate::base::wait::end();
            g
        }
    };
    crate::lock::order::hooklock_enter(&h.hooklock as *const _ as usize);
    HooklockGuard { _g: g }
}

/// Take `hooklock` waiting at most `limit`, as a lock wait (an attached
/// caller gives up its P meanwhile); `Err` names the hook whose run holds
/// it and for how long it has run. For `rtc_shutdown`, which must not hang
/// on a hook that never returns.
pub fn lock_hooklock_for(limit: Duration) -> std::result::Result<HooklockGuard, String> {
    let h = hooks();
    crate::lock::order::hooklock_check(c"hooklock");
    let g = match h.hooklock.get().try_lock() {
        Some(g) => Some(g),
        None => {
            crate::base::wait::begin();
            let g = h.hooklock.get().try_lock_for(limit);
            crate::base::wait::end();
            g
        }
    };
    match g {
        Some(g) => {
            crate::lock::order::hooklock_enter(&h.hooklock as *const _ as usize);
            Ok(HooklockGuard { _g: g })
        }
        None => {
            let id = h.run.running.load(SeqCst);
            let name = h.reg.lock().running_name.clone();
            let ran_ms = now_ns().saturating_sub(h.run_started.load(SeqCst)) / 1_000_000;
            Err(if id != 0 {
                format!("hook {id} ('{name}') has been running for {ran_ms} ms")
            } else {
                "hooklock is held (a trace start or stop in progress)".to_string()
            })
        }
    }
}

/// Close the registry while the caller holds `hooklock` (so no run is in
/// progress): no hook is added or run from here on. The hook thread is
/// joined by `shutdown`.
pub fn close_for_shutdown(_held: &HooklockGuard) {
    let h = hooks();
    close_registry(h, &mut h.reg.lock());
}

/// No hook is added or run from here on (under `reg`, where the hook
/// thread checks `quit` before each run).
fn close_registry(h: &Hooks, r: &mut Registry) {
    h.closed.store(true, SeqCst);
    h.quit.store(true, SeqCst);
    h.reshaping.store(true, SeqCst);
    r.hooks.clear();
    h.reshaping.store(false, SeqCst);
}

/// Try to take `hooklock` for at most `limit` (the exit handler).
pub fn try_lock_hooklock(limit: Duration) -> Option<HooklockGuard> {
    let h = hooks();
    let g = h.hooklock.get().try_lock_for(limit)?;
    crate::lock::order::hooklock_enter(&h.hooklock as *const _ as usize);
    Some(HooklockGuard { _g: g })
}

/// Holds `hooklock` (see `lock_hooklock`).
pub struct HooklockGuard {
    _g: parking_lot::MutexGuard<'static, ()>,
}

impl Drop for HooklockGuard {
    fn drop(&mut self) {
        crate::lock::order::hooklock_exit(&hooks().hooklock as *const _ as usize);
    }
}

/// Register a hook; returns its id (never reused). Starts the hook thread
/// if it is not running.
pub fn add(name: &str, period_ns: u64, f: HookFn, user_data: *mut c_void) -> Result<u64> {
    if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&period_ns) {
        return Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "rtc_sysmon_hook_add: period_ns {period_ns} is outside {MIN_PERIOD_NS} ns (100 µs) to {MAX_PERIOD_NS} ns (about 31 years)"
            ),
        ));
    }
    let h = hooks();
    let first_due = now_ns().saturating_add(period_ns);
    let mut r = h.reg.lock();
    if h.closed.load(SeqCst) {
        return Err(Error::new(
            RTC_ERR_WRONG_STATE,
            "rtc_sysmon_hook_add: rtcore is shutting down or the process is exiting; hooks no longer run",
        ));
    }
    let id = r.next_id;
    r.next_id += 1;
    h.reshaping.store(true, SeqCst);
    r.hooks.push(Hook {
        id,
        name: name.to_string(),
        period_ns,
        f,
        user_data: user_data as usize,
        next_run: first_due,
        remove_after_run: false,
    });
    h.reshaping.store(false, SeqCst);
    if r.thread.is_none() {
        h.quit.store(false, SeqCst);
        match std::thread::Builder::new()
            .name("rtcore-hooks".into())
            .spawn(run)
        {
            Ok(j) => r.thread = Some(j),
            Err(e) => {
                h.reshaping.store(true, SeqCst);
                r.hooks.pop();
                h.reshaping.store(false, SeqCst);
                return Err(Error::new(
                    crate::status::RTC_ERR_IO,
                    format!("rtc_sysmon_hook_add: cannot start the hook thread: {e}"),
                ));
            }
        }
    }
    h.adds.fetch_add(1, SeqCst);
    drop(r);
    wake_thread(h);
    // sysmon watches hooks whenever hooks run, attached threads or not (it
    // otherwise starts with the first attach).
    super::monitor::ensure_started();
    // sysmon's deep sleep is capped by the hooks' overrun deadlines
    // (`overrun_deadline`): wake it if this hook's comes sooner.
    let budget = super::settings::get(super::settings::Setting::HookBudget);
    if budget != 0 {
        super::monitor::kick_before(first_due.saturating_add(budget));
    }
    Ok(id)
}

/// Remove a hook: when this returns it is not running and will not run
/// again. From the hook itself it takes effect when the run returns.
/// A caller holding the world stopped is refused if the hook is running
/// (waiting for it could deadlock).
pub fn remove(id: u64) -> Result<()> {
    let holds_world = crate::world::assert_world_stopped().is_ok();
    let h = hooks();
    let mut r = h.reg.lock();
    let name = r
        .hooks
        .iter()
        .find(|x| x.id == id)
        .map(|x| x.name.clone())
        .unwrap_or_default();
    h.reshaping.store(true, SeqCst);
    let decision = hook_protocol::remove(&mut r.hooks, &h.run, id, in_hook(), holds_world);
    h.reshaping.store(false, SeqCst);
    match decision {
        Removal::Removed | Removal::Deferred => Ok(()),
        Removal::NotFound => Err(Error::new(
            RTC_ERR_INVALID_ARGUMENT,
            format!(
                "rtc_sysmon_hook_remove: no hook with id {id} (never added, or already removed)"
            ),
        )),
        Removal::WouldDeadlock => Err(Error::new(
            RTC_ERR_WOULD_DEADLOCK,
            format!(
                "rtc_sysmon_hook_remove: hook {id} ('{name}') is running and this thread holds the world stopped; the hook may be waiting for a stopped thread (start the world first)"
            ),
        )),
        Removal::MustWait => {
            drop(r);
            // Wait for the run to end, as a lock wait would (an attached
            // caller gives up its P meanwhile, so the world can still be
            // stopped).
            crate::base::wait::set_target(crate::base::wait::Target::Hook(id));
            crate::base::wait::begin();
            hook_protocol::wait_run_over(&h.run, id);
            crate::base::wait::end();
            crate::base::wait::set_target(crate::base::wait::Target::Nothing);
            Ok(())
        }
    }
}

/// The hook thread.
fn run() {
    let h = hooks();
    h.tid.store(crate::ident::os_tid() as u64, SeqCst);
    loop {
        let seen = h.wakes.load(SeqCst);
        let due = {
            let r = h.reg.lock();
            if h.quit.load(SeqCst) {
                return;
            }
            let now = now_ns();
            match r.hooks.iter().min_by_key(|x| x.next_run) {
                None => Err(None),
                Some(x) if x.next_run > now => Err(Some(x.next_run - now)),
                Some(x) => Ok(x.id),
            }
        };
        let id = match due {
            Ok(id) => id,
            Err(wait) => {
                park_while(
                    &h.wakes as *const AtomicU64 as usize,
                    || h.wakes.load(SeqCst) == seen && !h.quit.load(SeqCst),
                    wait.and_then(|ns| Instant::now().checked_add(Duration::from_nanos(ns))),
                );
                continue;
            }
        };
        run_one(h, id);
    }
}

/// Run hook `id` once under `hooklock`, if it is still registered.
fn run_one(h: &Hooks, id: u64) {
    let _hooklock = h.hooklock.lock();
    let (f, user_data, scheduled, period) = {
        let mut r = h.reg.lock();
        if h.quit.load(SeqCst) {
            return;
        }
        let Some(x) = r.hooks.iter().find(|x| x.id == id) else {
            return; // removed meanwhile
        };
        let run = (x.f, x.user_data, x.next_run, x.period_ns);
        r.running_name = x.name.clone();
        h.run_started.store(now_ns(), SeqCst);
        h.run_seq.fetch_add(1, SeqCst);
        if !hook_protocol::begin_run(&r.hooks, &h.run, id) {
            return;
        }
        run
    };
    crate::lock::order::hooklock_enter(&h.hooklock as *const _ as usize);
    // Trace: the hook thread's, protected by `hooklock` (held by this run;
    // start and stop take it first).
    if crate::record::rtc_trace_on.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        let name = h.reg.lock().running_name.clone();
        crate::record::emit(
            crate::format::EventKind::HookBegin,
            &[crate::record::A::U(id), crate::record::A::Str(&name)],
        );
    }
    crate::base::state::set_in_hook(true);
    // SAFETY: the caller of rtc_sysmon_hook_add promised `f` may be called
    // with `user_data` until the hook is removed; it is not removed (the
    // registry says so under `reg`, and removers wait for `running`).
    unsafe { f(user_data as *mut c_void) };
    crate::base::state::set_in_hook(false);
    crate::record::emit(
        crate::format::EventKind::HookEnd,
        &[crate::record::A::U(id)],
    );
    crate::lock::order::hooklock_exit(&h.hooklock as *const _ as usize);
    let end = now_ns();
    {
        let mut r = h.reg.lock();
        h.stats.runs.fetch_add(1, SeqCst);
        h.reshaping.store(true, SeqCst);
        let kept = hook_protocol::end_run(&mut r.hooks, &h.run, id);
        h.reshaping.store(false, SeqCst);
        if let Some(pos) = kept {
            // Keep the phase; a run that overran its period is followed by a
            // full period of rest rather than back-to-back runs.
            let mut next = scheduled.saturating_add(period);
            if next <= end {
                next = end.saturating_add(period);
            }
            r.hooks[pos].next_run = next;
        }
    }
    hook_protocol::wake_removers(&h.run);
}

/// `rtc_shutdown`: remove every hook, wait for a run in progress, and join
/// the hook thread.
pub fn shutdown() {
    let h = hooks();
    let j = {
        let mut r = h.reg.lock();
        close_registry(h, &mut r);
        r.thread.take()
    };
    wake_thread(h);
    if let Some(j) = j {
        let _ = j.join();
    }
}

/// At process exit: stop running hooks, waiting at most `limit` for a run
/// in progress (never for the calling thread's own run).
pub fn stop_at_exit(limit: Duration) {
    let h = hooks();
    {
        // Under `reg`: the hook thread checks `quit` there before each run,
        // so once this section ends no new run begins.
        let _r = h.reg.lock();
        h.closed.store(true, SeqCst);
        h.quit.store(true, SeqCst);
    }
    wake_thread(h);
    if in_hook() {
        return;
    }
    let deadline = Instant::now() + limit;
    while h.run.running.load(SeqCst) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// In a forked child: the hook thread does not exist. Forget it (and a run
/// it was making) so the next `add` or first attach starts a new one; the
/// registrations stay. The registry lock may have been held by a thread
/// that does not exist here: it is replaced, not waited for.
pub fn after_fork_child() {
    let h = hooks();
    if in_hook() {
        // A hook forked: the hook thread is the forking thread and exists
        // in the child, mid-run, holding `hooklock` (and not `reg`). Its
        // run ends normally; nothing is reset.
        return;
    }
    let torn = h.reg.get_is_locked() && h.reshaping.load(SeqCst);
    // SAFETY: only the forking thread exists; nobody else touches `reg`.
    unsafe { h.reg.reset_after_fork() };
    {
        let mut r = h.reg.lock();
        if torn {
            // A parent thread was changing the registry's list at the fork:
            // it may be half-updated. The child starts without hooks.
            crate::base::fork::keep_forever(std::mem::take(&mut r.hooks));
        }
        if let Some(j) = r.thread.take() {
            // The thread does not exist here: never join it.
            crate::base::fork::keep_forever(j);
        }
        h.run.running.store(0, SeqCst);
        h.quit.store(false, SeqCst);
    }
    // SAFETY: held (if at all) by the parent's hook thread, which does
    // not exist here; only the forking thread runs.
    unsafe { h.hooklock.reset_after_fork() };
}

/// Start the hook thread again if hooks are registered but it is not
/// running (after fork).
pub fn ensure_thread() {
    let h = hooks();
    let mut r = h.reg.lock();
    if !h.closed.load(SeqCst) && r.thread.is_none() && !r.hooks.is_empty() {
        h.quit.store(false, SeqCst);
        if let Ok(j) = std::thread::Builder::new()
            .name("rtcore-hooks".into())
            .spawn(run)
        {
            r.thread = Some(j);
        }
    }
}
