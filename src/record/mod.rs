//! Event recording: the tracing flag, generations, per-thread buffers
//! behind per-thread gates, and the hand-off of full batches to the writer
//! (`writer`). It knows the format (`crate::format`) and nothing of the
//! world, locks or sysmon: they call `emit` (DESIGN.md, "Tracer").
//!
//! Invariants:
//! - `rtc_trace_on` is 1 exactly while `CURRENT` holds a live generation;
//!   the header's inline macros read it with one relaxed load, so a call
//!   that finds it 0 costs nothing more. (A stale 1 only sends the caller
//!   to `emit`, which re-checks `CURRENT` under its gate.)
//! - Generations are numbered globally (never reused, across traces). A
//!   thread writes generation `g` into `slots[g % 2]`; the tracer collects
//!   `slots[g % 2]` of every thread only after publishing the next value of
//!   `CURRENT` and holding that thread's gate (one pass over all the gates,
//!   `gate::tracer_pass`), so no emitter is writing it.
//! - One thread-local read per event: `MINE`, a plain pointer to the
//!   thread's `ThreadTrace` (no `Arc` or `RefCell` touched per event).
//! - A thread's gate (`gate.rs`, where the protocol's invariants are
//!   written and loom-modelled) is held by an emitter while it reads
//!   `CURRENT`, changes what it is recording and writes the event, and by
//!   the tracer while it writes that thread's status or takes its slot. So
//!   "is tracing on", the event and its buffer are one unit with respect
//!   to start and stop.
//! - Each thread's stream of a generation begins with its status (written
//!   by the tracer after publishing, or by the thread itself if it records
//!   first), or with `attach`.
//! - An emitter never blocks on anything but a gate held by the tracer for
//!   a slot hand-off, and never allocates beyond its own batch buffer
//!   (recycled from the writer when one is spare) and string table
//!   (bounded: `strings.rs`).
//! - Text is the caller's until recorded: a C string is read and checked
//!   (UTF-8) only when its event is recorded, and the trace holds exactly
//!   the text passed (`strings.rs` checks a cached text's bytes).

pub mod clock;
pub mod fatal;
pub mod fault;
pub mod fence;
pub mod gate;
pub mod ring;
pub mod sink;
mod strings;
pub mod writer;

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, LazyLock};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::{BatchBuilder, EventKind, MAX_ARGS, Val, event_head, zigzag};
use strings::Strings;
pub use strings::{MAX_STRING, NotUtf8};

/// 1 while a trace is being recorded. Exported for the header's inline
/// macros (`RTC_TRACE_ON()`), which read it with a relaxed atomic load.
#[unsafe(no_mangle)]
pub static rtc_trace_on: AtomicU32 = AtomicU32::new(0);

/// The generation being recorded (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// The last generation whose header is written: state-changing sections
/// (`gated`) wait while `CURRENT` is ahead of it (a rollover in progress:
/// `gate::emitter_ready`). Start and stop make a generation ready as they
/// publish it (the world is stopped then).
static READY: AtomicU64 = AtomicU64::new(0);
/// The last generation number handed out.
static LAST_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The trace being recorded (its id, for batch headers).
static TRACE_ID: AtomicU64 = AtomicU64::new(0);
/// The first global generation of the trace (file generation = g - first + 1).
static FIRST_GENERATION: AtomicU64 = AtomicU64::new(0);
/// Events dropped (a thread's batch could not be handed over, a sink
/// callback emitted, ...).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Strings cut to `MAX_STRING`.
pub static TRUNCATED: AtomicU64 = AtomicU64::new(0);

/// A batch is handed to the writer once it holds this many bytes (at
/// most: `BATCH_LIMIT`).
pub const BATCH_BYTES: usize = 16 * 1024;
/// The smallest batch limit.
const MIN_BATCH_BYTES: usize = 1024;
/// The batch size of the trace being recorded: `BATCH_BYTES`, or less when
/// the trace's memory bound would not hold a batch per slot of every
/// recording thread (buffer sizes adapt to the bound, not the other way
/// round). Set at start and as threads register.
static BATCH_LIMIT: AtomicUsize = AtomicUsize::new(BATCH_BYTES);
/// The part of a trace's memory bound per-thread buffers may take.
static BUFFER_BUDGET: AtomicU64 = AtomicU64::new(0);
/// Bytes held by threads' batches being filled (their capacity).
pub static BUFFER_BYTES: AtomicU64 = AtomicU64::new(0);

/// Give per-thread buffers `budget` bytes in all (a quarter of the trace's
/// bound; 0: no limit but `BATCH_BYTES`).
pub fn set_buffer_budget(budget: u64) {
    BUFFER_BUDGET.store(budget, SeqCst);
    resize_batches(REGISTRY.lock().len());
}

/// Recompute the batch limit for `threads` recording threads (two slots
/// each may hold a batch).
fn resize_batches(threads: usize) {
    let budget = BUFFER_BUDGET.load(SeqCst);
    let limit = if budget == 0 {
        BATCH_BYTES
    } else {
        let per = budget / (2 * threads.max(1) as u64);
        (per as usize).clamp(MIN_BATCH_BYTES, BATCH_BYTES)
    };
    BATCH_LIMIT.store(limit, Relaxed);
}
/// Room kept beyond `BATCH_BYTES`: any event but a `string` event fits.
const BATCH_SLACK: usize = 512;
/// The most bytes one event without a `Bytes` argument takes.
const MAX_EVENT_BYTES: usize = 1 + 10 * (1 + MAX_ARGS);

pub use crate::base::clock::monotonic_ns;

/// One generation's part of a thread's recording.
#[derive(Default)]
struct Slot {
    generation: u64,
    /// The batch being filled (capacity 0: none yet).
    buf: Vec<u8>,
    /// The timestamp the next event's delta is counted from.
    last_ts: u64,
    /// Batches of this generation already handed to the writer.
    batches: u64,
    /// The size at which the batch being filled is handed over.
    limit: usize,
    /// Its buffer's capacity as counted in `BUFFER_BYTES`.
    counted: usize,
    /// Events in the batch being filled (the writer counts what a dropped
    /// batch held).
    batch_events: u64,
    strings: Strings,
    /// The thread's state is settled for this generation: its status was
    /// written (by the tracer at start, or by the thread), it attached
    /// during it, or it recorded while not attached (no status to write).
    status_written: bool,
    /// The thread's open ranges when its stream of this generation began.
    open_at_start: OpenRanges,
}

/// A thread's recording state, shared with the tracer through the registry.
pub struct ThreadTrace {
    /// rtcore thread id (batch headers name it).
    pub id: u64,
    gate: gate::Gate,
    /// The writer thread: its events are dropped (and counted, sink
    /// callbacks run on it), and start and stop refuse. Set once by the
    /// writer thread itself before it records anything, never cleared: a
    /// tracer's pass leaves its gate alone (its slots are never written).
    no_record: AtomicBool,
    /// The thread attached to the world at least once (`register_thread`).
    attached_once: AtomicBool,
    /// The thread records as a thread outside the world (`mark_outside`)
    /// and never attached: no other thread's events depend on its, so a
    /// pass may give up on its gate (gate.rs, **bounded wait**); it then
    /// gets `no_record` (but not `writer`) for the rest of the process.
    outside: AtomicBool,
    slots: [UnsafeCell<Slot>; 2],
    /// The writer thread (sink callbacks run on it): start, stop and
    /// shutdown refuse to run on it (`is_no_record`). It also has
    /// `no_record`.
    writer: AtomicBool,
    /// Regions this thread opened in the current trace and has not closed
    /// (the trace's id, the depth): what its status says at the next
    /// generation. Regions opened while not tracing are unknown; their
    /// ends are counted by the reader as crossing the trace's start.
    /// Changed only by the gate's holder.
    regions: UnsafeCell<(u64, u64)>,
    /// The hook run and stop-the-world this thread has begun and not
    /// ended, as its recorded events say (changed only by the gate's
    /// holder): a rollover's header says which are open when each
    /// thread's stream of the new generation begins. Keyed by the trace's
    /// id, as `regions` is: a trace's stop records its own `STW begin`,
    /// whose end falls after it.
    open: UnsafeCell<(u64, OpenRanges)>,
}

/// Ranges a thread's stream may have open across a generation's start.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct OpenRanges {
    pub hook: Option<u64>,
    pub stw: bool,
    /// An `outside wait` (reason, object) not yet resumed: a thread outside
    /// the world blocked in an interposed call across the generation's start.
    pub outside: Option<(u64, u64)>,
}

// SAFETY: `slots` and `regions` are only touched by the holder of `gate`
// (see the module invariants); everything else is atomic.
unsafe impl Sync for ThreadTrace {}
// SAFETY: as above.
unsafe impl Send for ThreadTrace {}

impl ThreadTrace {
    /// Are its events recorded (not the writer, not given up on)? Passes
    /// visit only such threads.
    #[inline(always)]
    fn records(&self) -> bool {
        !self.no_record.load(Relaxed)
    }

    fn new(id: u64) -> ThreadTrace {
        ThreadTrace {
            id,
            gate: gate::Gate::new(),
            no_record: AtomicBool::new(false),
            attached_once: AtomicBool::new(false),
            outside: AtomicBool::new(false),
            writer: AtomicBool::new(false),
            slots: [
                UnsafeCell::new(Slot::default()),
                UnsafeCell::new(Slot::default()),
            ],
            regions: UnsafeCell::new((0, 0)),
            open: UnsafeCell::new((0, OpenRanges::default())),
        }
    }
}

/// Every thread that has recorded (registry lock: inner rank `tracebuf`).
static REGISTRY: LazyLock<InnerMutex<Vec<Arc<ThreadTrace>>>> =
    LazyLock::new(|| InnerMutex::new(InnerRank::TraceBuf, Vec::new()));

/// Held for each pass of the tracer over the gates. Passes are already
/// serialised by the tracer's own locks (`gate`'s "one tracer at a
/// time"); this token is what a fatal-signal dump (`fatal`), which can
/// take no lock, only tries, so it never claims a gate a pass is using.
static PASS: AtomicBool = AtomicBool::new(false);

struct PassToken;

impl PassToken {
    /// Wait for the token (a fatal-signal dump holds it for a bounded
    /// time at most).
    fn take() -> PassToken {
        while PASS
            .compare_exchange_weak(false, true, SeqCst, Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        PassToken
    }

    fn try_take() -> Option<PassToken> {
        PASS.compare_exchange(false, true, SeqCst, Relaxed)
            .ok()
            .map(|_| PassToken)
    }
}

impl Drop for PassToken {
    fn drop(&mut self) {
        PASS.store(false, SeqCst);
    }
}

/// Owns the calling thread's `ThreadTrace` (the registry holds the other
/// reference); when the thread's locals are destroyed, `MINE` is cleared
/// first, so a later event of the thread's exit is dropped instead of
/// recorded into state a stop may free.
struct Owner(Option<Arc<ThreadTrace>>);

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = MINE.try_with(|m| m.set(std::ptr::null()));
    }
}

thread_local! {
    /// The calling thread's recording state: the one thread-local an event
    /// reads (a plain pointer, constant-initialised and without a
    /// destructor, so reading it is one TLS access).
    static MINE: Cell<*const ThreadTrace> = const { Cell::new(std::ptr::null()) };
    static OWNER: RefCell<Owner> = const { RefCell::new(Owner(None)) };
}

/// Mark the calling thread as the writer: its events are dropped (sink
/// callbacks run on it). Called first thing by the writer thread.
pub fn mark_writer_thread() {
    if let Some(t) = my_trace() {
        t.writer.store(true, Relaxed);
        t.no_record.store(true, Relaxed);
    }
}

/// The calling thread's recording state if it has one (never creates it:
/// the tracer calls this before taking the registry's lock).
fn my_trace_existing() -> Option<&'static ThreadTrace> {
    let p = MINE.with(Cell::get);
    // SAFETY: see `my_trace`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The tracer's own gate during a pass over the others' (`gate::tracer_pass`
/// excludes it): held as an emitter for the whole pass, so a signal
/// handler interrupting the tracer records nothing (`RTC_ERR_BUSY`)
/// instead of waiting on a claim only the interrupted thread could
/// release; its own slot is then the tracer's to touch. Returns the
/// tracer's state (if any) and whether it entered its gate (not when the
/// tracer is already inside it).
fn hold_own_gate() -> (Option<&'static ThreadTrace>, bool) {
    let me = my_trace_existing();
    let entered = me.is_some_and(|t| t.gate.enter());
    (me, entered)
}

fn release_own_gate(me: Option<&ThreadTrace>, entered: bool) {
    if let (Some(t), true) = (me, entered) {
        t.gate.exit();
    }
}

fn is_me(t: &Arc<ThreadTrace>, me: Option<&ThreadTrace>) -> bool {
    me.is_some_and(|m| std::ptr::eq(Arc::as_ptr(t), m))
}

/// Is the calling thread the writer or inside a sink callback?
pub fn is_no_record() -> bool {
    let p = MINE.with(Cell::get);
    // SAFETY: see `my_trace`.
    !p.is_null() && unsafe { &*p }.writer.load(Relaxed)
}

/// The calling thread's recording state, created on first use; None once
/// the thread's locals are being destroyed. The reference is valid until
/// then: `Owner` holds an `Arc` (and the registry another), and clears
/// `MINE` before dropping it.
#[inline(always)]
fn my_trace() -> Option<&'static ThreadTrace> {
    let p = MINE.with(Cell::get);
    if !p.is_null() {
        // SAFETY: see above.
        return Some(unsafe { &*p });
    }
    my_trace_slow()
}

#[cold]
fn my_trace_slow() -> Option<&'static ThreadTrace> {
    OWNER
        .try_with(|o| {
            let mut o = o.try_borrow_mut().ok()?;
            if o.0.is_some() {
                // Being destroyed (MINE cleared): too late to record.
                return None;
            }
            let t = Arc::new(ThreadTrace::new(crate::ident::current_id()));
            let n = {
                let mut reg = REGISTRY.lock();
                reg.push(t.clone());
                reg.len()
            };
            resize_batches(n);
            let p = Arc::as_ptr(&t);
            o.0 = Some(t);
            MINE.with(|m| m.set(p));
            // SAFETY: as in `my_trace`.
            Some(unsafe { &*p })
        })
        .ok()
        .flatten()
}

/// An argument for `emit`: strings are interned per (generation, thread).
#[derive(Clone, Copy)]
pub enum A<'a> {
    U(u64),
    S(i64),
    Str(&'a str),
    /// A C string from the caller (NULL: none), checked (UTF-8) only when
    /// it is recorded.
    CStr(*const c_char),
    /// A C string rtcore records whatever it holds (NULL: none): a lock's
    /// name; invalid UTF-8 is recorded with replacement characters.
    CStrLossy(*const c_char),
}

/// Why a user's event was not recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum EmitError {
    /// A text is not UTF-8.
    NotUtf8,
    /// A signal handler interrupted the thread while it recorded an event.
    Busy,
}

/// Make the calling thread's recording state exist now. Called first thing
/// at attach, so that it outlives the attachment at thread exit
/// (thread-locals are destroyed in the reverse order of their first use)
/// and the events of the exit's teardown are still recorded.
pub fn register_thread() {
    if let Some(t) = my_trace() {
        t.attached_once.store(true, SeqCst);
    }
}

/// The calling thread records as a thread outside the world (an
/// unmodified program's thread, `rtcore run`): unless it ever attached, a
/// pass may give up on its gate if its section never ends.
pub fn mark_outside() {
    if let Some(t) = my_trace() {
        if !t.attached_once.load(SeqCst) {
            t.outside.store(true, Relaxed);
        }
    }
}

/// Fault injection (`trace_leave_section`): enter the calling thread's
/// gate and leave without leaving it, as a `longjmp` out of a signal
/// handler that interrupted a section would.
/// Before that, the batch being filled is handed over, as a thread that
/// filled one would have: the writer must count it in the generation's
/// end (`writer::give_up_on`).
pub fn leave_section_held() {
    let Some(t) = my_trace() else { return };
    gate::emitter(&t.gate, &CURRENT, |g| {
        // SAFETY: inside the thread's own gate.
        let slot = unsafe { &mut *t.slots[(g & 1) as usize].get() };
        if g != 0 && slot.generation == g && !slot.buf.is_empty() {
            flush(t.id, slot, true);
        }
    });
    t.gate.enter();
}

/// How long a pass waits for a section of a thread outside the world
/// before giving up on it (gate.rs, **bounded wait**). Sections take
/// microseconds; one that lasts this long was left (`longjmp` out of a
/// signal handler, asynchronous cancellation).
pub const GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// A pass over `threads`' gates (`gate::tracer_pass_bounded`): `f` on
/// each thread out of its section; a thread outside the world still inside
/// one after `GIVE_UP_AFTER` is given up on: it records nothing more
/// (`no_record`, set before its claim is released, so no later pass
/// touches it either: for the rest of the process), and the writer counts the batches it handed over
/// (`writer::give_up_on`).
fn pass_over(threads: &[&Arc<ThreadTrace>], mut f: impl FnMut(&ThreadTrace)) {
    let until = std::time::Instant::now() + GIVE_UP_AFTER;
    gate::tracer_pass_bounded(
        threads.iter().map(|t| &t.gate),
        |i| f(threads[i]),
        || std::time::Instant::now() >= until && !fault::never_give_up(),
        |i| threads[i].outside.load(Relaxed) && !threads[i].attached_once.load(SeqCst),
        |i| {
            threads[i].no_record.store(true, SeqCst);
            writer::give_up_on(threads[i].id);
        },
    );
}

/// A thread's status, as the `thread status` event carries it.
#[derive(Clone, Copy, Debug)]
pub struct Status<'a> {
    pub name: &'a str,
    /// 1 RUNNING, 2 RUNNABLE, 3 BLOCKING, 4 WAITING.
    pub state: u64,
    /// P+1 it runs on (RUNNING) or holds in SYSCALL (BLOCKING); 0 none.
    pub p_plus_1: u64,
    pub thread_seq: u64,
    pub preempt_requested: u64,
    pub preempt_acked: u64,
}

/// Tells `f` the calling thread's status if it is attached (the world
/// registers it: the recorder knows nothing of the world).
pub type StatusFn = fn(f: &mut dyn FnMut(&Status<'_>));

static STATUS_FN: std::sync::atomic::AtomicPtr<()> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

pub fn register_status_fn(f: StatusFn) {
    STATUS_FN.store(f as *mut (), SeqCst);
}

fn with_my_status(f: &mut dyn FnMut(&Status<'_>)) {
    let p = STATUS_FN.load(SeqCst);
    if !p.is_null() {
        // SAFETY: only `StatusFn`s are stored.
        let sf: StatusFn = unsafe { std::mem::transmute::<*mut (), StatusFn>(p) };
        sf(f);
    }
}

/// Is the calling thread attached to the world (it has a status)? Only the
/// thread itself attaches and detaches, so the answer holds until it does.
pub fn attached() -> bool {
    let mut attached = false;
    with_my_status(&mut |_| attached = true);
    attached
}

/// Record one event on the calling thread (any thread, attached or not).
/// Cheap when tracing is off: one relaxed load. If this is the thread's
/// first event in the generation and nobody wrote its status yet, its
/// status (as it is now, before whatever the event records) goes first.
#[inline]
pub fn emit(kind: EventKind, args: &[A<'_>]) {
    if rtc_trace_on.load(Relaxed) == 0 {
        return;
    }
    let _ = emit_slow(kind, args);
}

/// A user's event (the C API): as `emit`, telling why it was not recorded.
/// Its C strings are read only if it is recorded.
#[inline]
pub fn emit_user(kind: EventKind, args: &[A<'_>]) -> Result<(), EmitError> {
    if rtc_trace_on.load(Relaxed) == 0 {
        return Ok(());
    }
    emit_slow(kind, args)
}

fn dropped() {
    if rtc_trace_on.load(Relaxed) != 0 {
        DROPPED.fetch_add(1, Relaxed);
    }
}

/// The calling thread's recording state, if its events are recorded: not
/// the writer (sink callbacks run on it), and not too late in the thread's
/// exit.
#[inline(always)]
fn recorder() -> Option<&'static ThreadTrace> {
    my_trace().filter(|t| t.records())
}

#[inline(never)]
fn emit_slow(kind: EventKind, args: &[A<'_>]) -> Result<(), EmitError> {
    let Some(t) = recorder() else {
        dropped();
        return Ok(());
    };
    // Waits while a rollover is under way (`gate::emitter_ready`): the
    // thread's status in a new generation is written at the rollover's
    // rest, never before it.
    let section = |g: u64| {
        if g == 0 {
            return Ok(());
        }
        record_in(t, g, kind, args)
    };
    let r = if fault::no_quiesce() {
        gate::emitter(&t.gate, &CURRENT, section)
    } else {
        gate::emitter_ready(&t.gate, &CURRENT, &READY, section)
    };
    match r {
        Some(r) => r.map_err(|NotUtf8| EmitError::NotUtf8),
        None => {
            // Re-entered from a signal handler: the gate is this thread's
            // own; dropped, never waited for.
            dropped();
            Err(EmitError::Busy)
        }
    }
}

/// Record into generation `g` (not 0) holding `t`'s gate: the thread's
/// status first if the generation has none yet.
#[inline(always)]
fn record_in(t: &ThreadTrace, g: u64, kind: EventKind, args: &[A<'_>]) -> Result<(), NotUtf8> {
    // SAFETY: the caller holds the gate.
    let slot = unsafe { &mut *t.slots[(g & 1) as usize].get() };
    if slot.generation != g || !slot.status_written {
        first_in_generation(t, slot, g);
    }
    write_event(t, slot, g, kind, args)
}

#[cold]
fn first_in_generation(t: &ThreadTrace, slot: &mut Slot, g: u64) {
    fresh_slot(t, slot, g);
    if !slot.status_written {
        with_my_status(&mut |st| write_status_event(t, slot, g, st));
        if !slot.status_written {
            // Not attached: no status, but a name (each generation is
            // self-contained).
            write_os_name(t, slot, g);
        }
        // Settled for the generation: written, or the thread is not
        // attached and has no status (an attach later records `attach`).
        // Asking again on every event of an unattached thread would cost
        // a call into the world each time.
        slot.status_written = true;
    }
}

/// The calling thread's OS name (`pthread_setname_np`'s) as a `thread
/// name` event: one system call (`prctl`), no allocation for a UTF-8 name.
#[cold]
fn write_os_name(t: &ThreadTrace, slot: &mut Slot, g: u64) {
    let mut buf = [0u8; 16];
    // SAFETY: the buffer is writable for its length (the kernel's names
    // are at most 15 bytes and a NUL); pthread_self is the caller.
    let rc = unsafe {
        libc::pthread_getname_np(
            libc::pthread_self(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if rc != 0 {
        return;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if end == 0 {
        return;
    }
    let name = String::from_utf8_lossy(&buf[..end]);
    let _ = write_event(t, slot, g, EventKind::ThreadName, &[A::Str(&name)]);
}

/// The calling thread's events inside its gate (`gated`).
pub struct Emitter<'a> {
    t: Option<&'a ThreadTrace>,
    g: u64,
}

impl Emitter<'_> {
    /// Is a generation being recorded (events are kept)?
    pub fn on(&self) -> bool {
        self.g != 0 && self.t.is_some()
    }

    pub fn event(&mut self, kind: EventKind, args: &[A<'_>]) {
        let Some(t) = self.t else { return };
        if self.g == 0 {
            return;
        }
        // SAFETY: the gate is held (see `gated`).
        let slot = unsafe { &mut *t.slots[(self.g & 1) as usize].get() };
        let _ = write_event(t, slot, self.g, kind, args);
    }
}

/// Run `f` holding the calling thread's gate, with the generation read
/// inside it: "is tracing on", the state change `f` makes and the event it
/// records are one unit with respect to start and stop, which publish the
/// generation and then take each gate. The thread's status (as it is
/// before `f`) is written first if this generation has none yet. `f` must
/// not wait for anything but inner locks (start and stop hold the world
/// stopped while they wait for the gate).
pub fn gated<R>(f: impl FnOnce(&mut Emitter<'_>) -> R) -> R {
    let Some(t) = recorder() else {
        dropped();
        return f(&mut Emitter { t: None, g: 0 });
    };
    let mut f = Some(f);
    let section = |g: u64| {
        if g != 0 {
            // SAFETY: we hold the gate.
            let slot = unsafe { &mut *t.slots[(g & 1) as usize].get() };
            if slot.generation != g || !slot.status_written {
                first_in_generation(t, slot, g);
            }
        }
        let f = f.take().expect("called once");
        f(&mut Emitter { t: Some(t), g })
    };
    let r = if fault::no_quiesce() {
        gate::emitter(&t.gate, &CURRENT, section)
    } else {
        gate::emitter_ready(&t.gate, &CURRENT, &READY, section)
    };
    match r {
        Some(r) => r,
        None => {
            // Re-entered (a signal handler): the state change runs without
            // the gate, its event dropped.
            dropped();
            let f = f.take().expect("not called");
            f(&mut Emitter { t: None, g: 0 })
        }
    }
}

/// `gated` while a trace is recorded; with tracing off, `f` runs at once
/// with an emitter that records nothing. Only for transitions of a thread
/// a trace start or stop must wait for (RUNNING on a P, or about to win
/// its P back by a compare-and-swap a stop would make fail): the flag
/// changes only inside a stopped world, so it cannot change under such a
/// transition, and a rollover happens only while it is set.
#[inline]
pub fn gated_if_tracing<R>(f: impl FnOnce(&mut Emitter<'_>) -> R) -> R {
    if rtc_trace_on.load(Relaxed) == 0 {
        return f(&mut Emitter { t: None, g: 0 });
    }
    gated(f)
}

/// Record the calling thread's attach: `join` makes it visible to the
/// tracer (adds it to the world's thread list), then the generation is
/// read, all inside its gate. The tracer publishes a generation before it
/// lists the threads, so either it lists this one (and writes its status
/// in its gate, after this) or this one reads the new generation and its
/// `attach` begins its stream. (Reading the generation before joining
/// would leave a window where neither happens.)
pub fn attach(join: impl FnOnce(), name: &str, thread_seq: u64) {
    let Some(t) = recorder() else {
        join();
        return;
    };
    let mut join = Some(join);
    let r = gate::joining(
        &t.gate,
        &CURRENT,
        || (join.take().expect("once"))(),
        |g| {
            if g != 0 {
                // SAFETY: we hold the gate.
                let slot = unsafe { &mut *t.slots[(g & 1) as usize].get() };
                fresh_slot(t, slot, g);
                let _ = write_event(
                    t,
                    slot,
                    g,
                    EventKind::Attach,
                    &[A::Str(name), A::U(thread_seq)],
                );
            }
        },
    );
    if r.is_none() {
        if let Some(j) = join.take() {
            j();
        }
    }
}

/// A generation read by sysmon at its "is tracing on?" check, to record
/// into after its state change (`emit_checked`). Under `sysmonlock` it is
/// still the current one then (start and stop take `sysmonlock` to
/// publish); the fault injection makes it stale on purpose.
#[derive(Clone, Copy, Debug)]
pub struct Checked {
    pub generation: u64,
    changes: u64,
}

/// Bumped whenever a generation is published or stopped (the fault
/// injection waits for it).
static GEN_CHANGES: AtomicU64 = AtomicU64::new(0);

/// sysmon's "is tracing on?" check.
pub fn check() -> Checked {
    Checked {
        generation: CURRENT.load(SeqCst),
        changes: GEN_CHANGES.load(SeqCst),
    }
}

impl Checked {
    /// Has a start or stop published since the check?
    pub fn changed(&self) -> bool {
        GEN_CHANGES.load(SeqCst) != self.changes
    }
}

/// The key the fault injection parks on (woken at every publish).
pub fn generation_change_key() -> usize {
    &GEN_CHANGES as *const AtomicU64 as usize
}

fn generation_changed() {
    GEN_CHANGES.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(generation_change_key());
}

/// Record into the generation `c` names (sysmon: after its check and its
/// state change; protected by `sysmonlock`).
pub fn emit_checked(c: Checked, kind: EventKind, args: &[A<'_>]) {
    // (A generation of an earlier trace only reaches here with the fault
    // injection: the event is dropped, as it would be lost anyway.)
    if c.generation == 0 || c.generation < FIRST_GENERATION.load(SeqCst) {
        return;
    }
    let Some(t) = recorder() else { return };
    // The generation was read at the check (under sysmonlock): the gate
    // only keeps the buffer to one writer.
    if !t.gate.enter() {
        return;
    }
    // SAFETY: we hold the gate.
    let slot = unsafe { &mut *t.slots[(c.generation & 1) as usize].get() };
    fresh_slot(t, slot, c.generation);
    let _ = write_event(t, slot, c.generation, kind, args);
    t.gate.exit();
}

/// Generation `g`'s number in the file (1 for the trace's first).
pub fn file_generation_of(g: u64) -> u64 {
    file_generation(g)
}

fn file_generation(g: u64) -> u64 {
    g.saturating_sub(FIRST_GENERATION.load(SeqCst)) + 1
}

/// Make `slot` generation `g`'s (a slot left from generation `g - 2` is
/// emptied; its string table's few allocations are freed here).
/// The thread's open ranges in the current trace. The caller holds the
/// thread's gate.
fn open_ranges(t: &ThreadTrace) -> OpenRanges {
    // SAFETY: the caller holds the gate.
    let (trace, o) = unsafe { *t.open.get() };
    if trace == TRACE_ID.load(Relaxed) {
        o
    } else {
        OpenRanges::default()
    }
}

fn fresh_slot(t: &ThreadTrace, slot: &mut Slot, g: u64) {
    if slot.generation != g {
        *slot = Slot {
            generation: g,
            open_at_start: open_ranges(t),
            ..Default::default()
        };
    }
}

fn write_status_event(t: &ThreadTrace, slot: &mut Slot, g: u64, st: &Status<'_>) {
    // SAFETY: the caller holds the gate.
    let (trace, depth) = unsafe { *t.regions.get() };
    let depth = if trace == TRACE_ID.load(Relaxed) {
        depth
    } else {
        0
    };
    let _ = write_event(
        t,
        slot,
        g,
        EventKind::ThreadStatus,
        &[
            A::U(t.id),
            A::Str(st.name),
            A::U(st.state),
            A::U(st.p_plus_1),
            A::U(st.thread_seq),
            A::U(st.preempt_requested),
            A::U(st.preempt_acked),
            A::U(depth),
        ],
    );
    slot.status_written = true;
}

/// Append `v` as a varint at `p`, returning the byte after it.
///
/// # Safety
/// `p` has room for 10 bytes.
#[inline(always)]
unsafe fn put_varint(mut p: *mut u8, mut v: u64) -> *mut u8 {
    // SAFETY: the caller's room.
    unsafe {
        while v >= 0x80 {
            *p = (v as u8) | 0x80;
            p = p.add(1);
            v >>= 7;
        }
        *p = v as u8;
        p.add(1)
    }
}

/// Append one event (no `Bytes` argument) to the batch: its first byte
/// (kind and a small timestamp delta, `format::event_head`), the delta if
/// it did not fit, the arguments as varints. A timestamp before the previous one (a TSC
/// read on another CPU) is recorded as a zero delta.
#[inline(always)]
fn encode(buf: &mut Vec<u8>, last_ts: &mut u64, kind: EventKind, ts: u64, vals: &[u64]) {
    debug_assert!(vals.len() <= MAX_ARGS);
    buf.reserve(MAX_EVENT_BYTES);
    // SAFETY: `reserve` made room for the largest event; `set_len` covers
    // exactly the bytes written.
    unsafe {
        let start = buf.as_mut_ptr().add(buf.len());
        let ts = ts.max(*last_ts);
        let (head, follows) = event_head(kind, ts - *last_ts);
        *start = head;
        let mut p = start.add(1);
        if follows {
            p = put_varint(p, ts - *last_ts);
        }
        *last_ts = ts;
        for &v in vals {
            p = put_varint(p, v);
        }
        let n = p.offset_from(start) as usize;
        buf.set_len(buf.len() + n);
    }
}

fn write_event(
    t: &ThreadTrace,
    slot: &mut Slot,
    g: u64,
    kind: EventKind,
    args: &[A<'_>],
) -> Result<(), NotUtf8> {
    let ts = clock::now();
    if slot.buf.capacity() == 0 {
        new_batch(t, slot, g, ts);
    }
    // Intern strings first (each may add a `string` event), so that a
    // text refused leaves no state changed.
    let mut vals = [0u64; MAX_ARGS];
    let n = args.len().min(MAX_ARGS);
    for i in 0..n {
        vals[i] = match args[i] {
            A::U(v) => v,
            A::S(v) => zigzag(v),
            A::Str(s) => {
                let r = slot.strings.intern_str(s);
                define(slot, ts, r)
            }
            A::CStr(p) if p.is_null() => 0,
            // SAFETY: the C API's contract: a readable NUL-terminated
            // string.
            A::CStr(p) => {
                let r = unsafe { slot.strings.intern_cstr(p) }?;
                define(slot, ts, r)
            }
            A::CStrLossy(p) if p.is_null() => 0,
            // SAFETY: as above (the mutex's name contract).
            A::CStrLossy(p) => match unsafe { slot.strings.intern_cstr(p) } {
                Ok(r) => define(slot, ts, r),
                Err(NotUtf8) => {
                    // SAFETY: as above.
                    let text = unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy();
                    let r = slot.strings.intern_str(&text);
                    define(slot, ts, r)
                }
            },
        };
    }
    match kind {
        // The thread's state is now known to the generation (attach), or
        // no longer described by anything (detach: a later attach in the
        // same generation is recorded again).
        EventKind::Attach => slot.status_written = true,
        EventKind::Detach => slot.status_written = false,
        EventKind::HookBegin
        | EventKind::HookEnd
        | EventKind::StwBegin
        | EventKind::StwEnd
        | EventKind::OutsideWait
        | EventKind::OutsideResume => {
            let mut o = open_ranges(t);
            match kind {
                EventKind::HookBegin => o.hook = Some(vals[0]),
                EventKind::HookEnd => o.hook = None,
                EventKind::StwBegin => o.stw = true,
                EventKind::StwEnd => o.stw = false,
                EventKind::OutsideWait => o.outside = Some((vals[0], vals[1])),
                _ => o.outside = None,
            }
            // SAFETY: the caller holds the gate.
            unsafe { *t.open.get() = (TRACE_ID.load(Relaxed), o) };
        }
        EventKind::RegionBegin | EventKind::RegionEnd => {
            // SAFETY: the caller holds the gate.
            let r = unsafe { &mut *t.regions.get() };
            let id = TRACE_ID.load(Relaxed);
            if r.0 != id {
                *r = (id, 0);
            }
            r.1 = if kind == EventKind::RegionBegin {
                r.1.saturating_add(1)
            } else {
                r.1.saturating_sub(1)
            };
        }
        _ => {}
    }
    encode(&mut slot.buf, &mut slot.last_ts, kind, ts, &vals[..n]);
    slot.batch_events += 1;
    if slot.buf.len() >= slot.limit {
        // The next event starts a new batch.
        flush(t.id, slot, true);
    }
    Ok(())
}

/// The id of an interned text, writing its `string` event if it is new.
#[inline(always)]
fn define(slot: &mut Slot, ts: u64, r: strings::Interned) -> u64 {
    if let Some((word, len)) = r.new {
        define_new(slot, ts, r.id, word, len);
    }
    r.id
}

#[cold]
fn define_new(slot: &mut Slot, ts: u64, id: u64, word: u32, len: u32) {
    let bytes = slot.strings.bytes(word, len);
    encode(
        &mut slot.buf,
        &mut slot.last_ts,
        EventKind::String,
        ts,
        &[id, u64::from(len)],
    );
    slot.buf.extend_from_slice(bytes);
    slot.batch_events += 1;
}

/// Start the slot's next batch: its header, then room for a whole batch
/// (so recording an event does not allocate).
#[cold]
fn new_batch(t: &ThreadTrace, slot: &mut Slot, g: u64, ts: u64) {
    let limit = BATCH_LIMIT.load(Relaxed);
    slot.limit = limit;
    // A spare is a full-size buffer: taken only when batches are.
    let spare = if limit == BATCH_BYTES {
        writer::take_spare()
    } else {
        None
    };
    let body = spare.unwrap_or_else(|| Vec::with_capacity(limit + BATCH_SLACK));
    slot.counted = body.capacity();
    BUFFER_BYTES.fetch_add(slot.counted as u64, Relaxed);
    let b = BatchBuilder::reuse(
        body,
        TRACE_ID.load(Relaxed),
        file_generation(g),
        t.id,
        slot.batches,
        ts,
    );
    slot.buf = b.body;
    slot.last_ts = ts;
}

/// Bytes of batches handed to the writer since the generation began (a
/// rollover or start resets it): sysmon rolls over early past a size.
pub static GENERATION_BYTES: AtomicU64 = AtomicU64::new(0);

/// Hand the slot's current batch to the writer (waking it, unless the
/// tracer does this inside a stop).
fn flush(thread: u64, slot: &mut Slot, wake: bool) {
    if slot.buf.capacity() != 0 {
        slot.batches += 1;
        GENERATION_BYTES.fetch_add(slot.buf.len() as u64, Relaxed);
        let body = std::mem::take(&mut slot.buf);
        BUFFER_BYTES.fetch_sub(std::mem::take(&mut slot.counted) as u64, Relaxed);
        let meta = writer::BatchMeta {
            generation: file_generation(slot.generation),
            thread,
            events: std::mem::take(&mut slot.batch_events),
        };
        writer::push_thread_batch(meta, body, !wake);
    }
}

// ---- the tracer's side (called by `trace` with the world stopped) ----------

/// Prepare a new generation of trace `trace_id` (returned, with the
/// trace's clock; not yet published). The tracer then publishes it and
/// writes each attached thread's status inside that thread's gate
/// (`write_statuses`); a thread that records first writes its own
/// (`gated`), so each status precedes every event of its thread in the
/// generation.
pub fn prepare_start(trace_id: u64) -> (u64, clock::TraceClock) {
    let g = LAST_GENERATION.fetch_add(1, SeqCst) + 1;
    TRACE_ID.store(trace_id, SeqCst);
    FIRST_GENERATION.store(g, SeqCst);
    let c = clock::begin_trace();
    (g, c)
}

/// Publish generation `g`: emitters record into it from now on.
pub fn publish(g: u64) {
    GENERATION_BYTES.store(0, Relaxed);
    gate::make_ready(&READY, g);
    gate::publish(&CURRENT, g);
    rtc_trace_on.store(1, SeqCst);
    generation_changed();
}

// ---- rollover: the next generation without stopping the world ------------

/// A rollover, step 1 (under `sysmonlock`, so sysmon's actions cannot
/// interleave, and serialised with start and stop by it): publish the next
/// generation, not ready. Returns (old, new), or None when not tracing.
/// From here, state-changing sections wait (`gated`); event-only sections
/// record into the new generation at once (they change nothing the
/// header describes).
pub fn begin_rollover() -> Option<(u64, u64)> {
    let old = CURRENT.load(SeqCst);
    if old == 0 {
        return None;
    }
    let new = LAST_GENERATION.fetch_add(1, SeqCst) + 1;
    gate::publish(&CURRENT, new);
    GENERATION_BYTES.store(0, Relaxed);
    generation_changed();
    Some((old, new))
}

/// A rollover, step 2: one pass over every recording thread's gate,
/// handing its last batch of `old` to the writer and noting its batch
/// count. When the pass ends, every section that read `old` has ended, and
/// none can begin until `finish_rollover` but an attach (which records its
/// own `attach`): the world is at rest. Returns the batch counts for
/// `old`'s end and its string tables (to drop outside `sysmonlock`).
pub fn rollover_collect(old: u64) -> (Vec<(u64, u64)>, Leftovers) {
    let mut counts = Vec::new();
    let mut leftovers = Vec::new();
    each_thread_gated(|t| close_slot(t, old, true, &mut counts, &mut leftovers));
    counts.sort();
    (counts, Leftovers(leftovers))
}

/// A rollover, step 3, at rest: a second pass over the gates writing each
/// thread's status for `new` (`status(id, f)` tells `f` the thread's
/// status if it is attached), unless it attached in `new`. Statuses are
/// read at rest, like the header, so a change one thread makes to
/// another's state (a stopper's claim of a P in a blocking region) cannot
/// fall between a status and the header. Returns the threads whose
/// streams of `new` begin inside a hook run or a stop of the world.
pub fn rollover_statuses(
    new: u64,
    mut status: impl FnMut(u64, &mut dyn FnMut(&Status<'_>)),
) -> Vec<(u64, OpenRanges)> {
    let mut open = Vec::new();
    each_thread_gated(|t| {
        // SAFETY: the caller holds the thread's gate (or is the thread).
        let next = unsafe { &mut *t.slots[(new & 1) as usize].get() };
        fresh_slot(t, next, new);
        if next.open_at_start != OpenRanges::default() {
            open.push((t.id, next.open_at_start));
        }
        if !next.status_written {
            // Sets `status_written` if the thread is attached; one that is
            // not writes its name at its first event (`first_in_generation`).
            status(t.id, &mut |st| write_status_event(t, next, new, st));
        }
    });
    open.sort_by_key(|(id, _)| *id);
    open
}

/// Close thread `t`'s slot of generation `g` (the caller holds its gate, or
/// is the thread): hand its last batch to the writer (waking it if
/// `wake`), note its batch count and keep its string table for the caller
/// to drop.
fn close_slot(
    t: &ThreadTrace,
    g: u64,
    wake: bool,
    counts: &mut Vec<(u64, u64)>,
    leftovers: &mut Vec<Strings>,
) {
    // SAFETY: the caller holds the thread's gate (or is the thread).
    let slot = unsafe { &mut *t.slots[(g & 1) as usize].get() };
    if slot.generation == g {
        flush(t.id, slot, wake);
        if slot.batches > 0 {
            counts.push((t.id, slot.batches));
        }
        leftovers.push(std::mem::take(&mut slot.strings));
        slot.generation = 0;
        slot.batches = 0;
        slot.status_written = false;
    }
}

/// Run `f` on every recording thread (the writer excepted) holding its
/// gate: one pass, one heavy fence (the tracer's own gate held as an
/// emitter's meanwhile, as at start and stop). Threads that exited leave
/// the registry here.
fn each_thread_gated(mut f: impl FnMut(&ThreadTrace)) {
    let pass = PassToken::take();
    let (me, entered) = hold_own_gate();
    // Threads that exited are visited too (their last batches of the
    // generation are counted and their last buffer handed over: dropping
    // them first left batches in the file that the generation's end did
    // not list); they leave the registry after the pass.
    let threads: Vec<Arc<ThreadTrace>> = REGISTRY
        .lock()
        .iter()
        .filter(|t| t.records())
        .cloned()
        .collect();
    if let Some(t) = threads.iter().find(|t| is_me(t, me)) {
        f(t);
    }
    let others: Vec<&Arc<ThreadTrace>> = threads.iter().filter(|t| !is_me(t, me)).collect();
    pass_over(&others, f);
    release_own_gate(me, entered);
    drop(pass);
    drop(others);
    drop(threads);
    // Only the registry holds a thread that exited.
    REGISTRY.lock().retain(|t| Arc::strong_count(t) > 1);
}

/// A rollover, last step: the new generation's header is queued; waiting
/// state-changing sections go on.
pub fn finish_rollover(new: u64) {
    gate::make_ready(&READY, new);
}

/// Write the status of each thread in `ids` as the first event of its
/// stream in generation `g` (published), unless the thread already wrote
/// it itself (it does when it records before the tracer gets here).
/// `status(i, f)` is called holding thread `ids[i]`'s gate, so it
/// describes the thread between its gated transitions. Threads without
/// recording state are skipped: every attached thread has one
/// (`register_thread` at attach). One pass over the gates, one heavy
/// fence. The caller holds no inner lock below `tracebuf` (a gate's
/// holder may be waiting for `sched`).
pub fn write_statuses(
    g: u64,
    ids: &[u64],
    mut status: impl FnMut(usize, &mut dyn FnMut(&Status<'_>)),
) {
    let _pass = PassToken::take();
    let (me, entered) = hold_own_gate();
    let threads: Vec<(usize, Arc<ThreadTrace>)> = {
        let reg = REGISTRY.lock();
        let by_id: HashMap<u64, &Arc<ThreadTrace>> = reg.iter().map(|t| (t.id, t)).collect();
        ids.iter()
            .enumerate()
            .filter_map(|(i, id)| by_id.get(id).map(|t| (i, Arc::clone(t))))
            .collect()
    };
    let mut write = |i: usize, t: &ThreadTrace| {
        // SAFETY: the caller holds the thread's gate (or is the thread).
        let slot = unsafe { &mut *t.slots[(g & 1) as usize].get() };
        fresh_slot(t, slot, g);
        if !slot.status_written {
            status(i, &mut |st| write_status_event(t, slot, g, st));
        }
    };
    if let Some((i, t)) = threads.iter().find(|(_, t)| is_me(t, me)) {
        write(*i, t);
    }
    let others: Vec<&(usize, Arc<ThreadTrace>)> =
        threads.iter().filter(|(_, t)| !is_me(t, me)).collect();
    gate::tracer_pass(others.iter().map(|(_, t)| &t.gate), |k| {
        let (i, t) = others[k];
        write(*i, t);
    });
    release_own_gate(me, entered);
}

/// The generation being recorded (0: none), and its number in the file.
pub fn current() -> (u64, u64) {
    let g = CURRENT.load(SeqCst);
    if g == 0 {
        (0, 0)
    } else {
        (g, file_generation(g))
    }
}

pub fn trace_id() -> u64 {
    TRACE_ID.load(SeqCst)
}

/// A stopped generation's per-thread string tables, to be dropped by the
/// caller after the world restarts (freeing is not work for a stopped
/// world).
pub struct Leftovers(#[allow(dead_code)] Vec<Strings>);

/// Stop recording: unpublish the generation, then take every thread's last
/// batch of it (in one pass over the gates, so no emitter is writing),
/// hand them to the writer, and return the batch counts per thread for
/// the generation end. Threads that exited are dropped from the registry.
pub fn publish_stop() -> Option<(Vec<(u64, u64)>, Leftovers)> {
    let g = gate::publish(&CURRENT, 0);
    rtc_trace_on.store(0, SeqCst);
    generation_changed();
    if g == 0 {
        // Not tracing (or another stop got here first).
        return None;
    }
    let mut counts = Vec::new();
    let mut leftovers = Vec::new();
    let mut take_last = |t: &ThreadTrace| close_slot(t, g, false, &mut counts, &mut leftovers);
    let pass = PassToken::take();
    let (me, entered) = hold_own_gate();
    let mut reg = REGISTRY.lock();
    if let Some(t) = reg.iter().find(|t| is_me(t, me)) {
        take_last(t);
    }
    // The writer never records (its slots are never touched): no gate of
    // its to wait for.
    let others: Vec<&Arc<ThreadTrace>> = reg
        .iter()
        .filter(|t| t.records() && !is_me(t, me))
        .collect();
    pass_over(&others, take_last);
    drop(others);
    // Threads that exited (only the registry holds them) go now.
    reg.retain(|t| Arc::strong_count(t) > 1);
    drop(reg);
    release_own_gate(me, entered);
    drop(pass);
    counts.sort();
    Some((counts, Leftovers(leftovers)))
}

/// Emit an event into the header batch of the current generation (thread 0),
/// built by the tracer under the world stop: returned as a batch body.
pub fn header_batch(g: u64, build: impl FnOnce(&mut HeaderBuilder)) -> Vec<u8> {
    let ts = clock::now();
    let mut h = HeaderBuilder {
        b: BatchBuilder::new(TRACE_ID.load(SeqCst), file_generation(g), 0, 0, ts),
        strings: HashMap::new(),
    };
    build(&mut h);
    h.b.body
}

/// Builds the header batch (thread 0) with its own string table.
pub struct HeaderBuilder {
    b: BatchBuilder,
    strings: HashMap<String, u64>,
}

impl HeaderBuilder {
    pub fn event(&mut self, kind: EventKind, args: &[A<'_>]) {
        let ts = clock::now();
        let mut vals: Vec<Val<'_>> = Vec::with_capacity(args.len());
        for a in args {
            vals.push(match a {
                A::U(v) => Val::U(*v),
                A::S(v) => Val::S(*v),
                A::Str(s) => Val::U(self.intern(ts, s)),
                A::CStr(_) | A::CStrLossy(_) => Val::U(0),
            });
        }
        self.b.event(kind, ts, &vals);
    }

    fn intern(&mut self, ts: u64, s: &str) -> u64 {
        let mut end = s.len().min(MAX_STRING);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let s = &s[..end];
        if s.is_empty() {
            return 0;
        }
        if let Some(id) = self.strings.get(s) {
            return *id;
        }
        let id = self.strings.len() as u64 + 1;
        self.strings.insert(s.to_string(), id);
        self.b.event(
            EventKind::String,
            ts,
            &[Val::U(id), Val::Bytes(s.as_bytes())],
        );
        id
    }
}

/// In a forked child: tracing is off and the parent's buffers are gone
/// (DESIGN.md, "Deadlock freedom" 5). The registry may have been locked.
pub fn after_fork_child() {
    CURRENT.store(0, SeqCst);
    // A pass of the parent's tracer thread (which does not exist here)
    // may have held the token.
    PASS.store(false, SeqCst);
    rtc_trace_on.store(0, SeqCst);
    fence::after_fork_child();
    // SAFETY: only the forking thread exists.
    unsafe { REGISTRY.reset_after_fork() };
    let old = std::mem::take(&mut *REGISTRY.lock());
    crate::base::fork::keep_forever(old);
    MINE.with(|m| m.set(std::ptr::null()));
    let _ = OWNER.try_with(|o| {
        if let Ok(mut o) = o.try_borrow_mut() {
            if let Some(t) = o.0.take() {
                crate::base::fork::keep_forever(t);
            }
        }
    });
    writer::after_fork_child();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal handler interrupting the tracer during its pass over the
    /// gates records on the tracer's own thread: it must be refused
    /// (`Busy`), not spin on a claim of the tracer's own gate (which only
    /// the interrupted tracer could release). The status callback runs
    /// inside the pass, where such a handler would.
    #[test]
    fn recording_from_inside_the_tracers_own_pass_is_refused() {
        let (ok_tx, ok_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                ok_rx.recv_timeout(std::time::Duration::from_secs(20))
            {
                eprintln!("the tracer's pass hung");
                std::process::abort();
            }
        });
        let (g, _) = prepare_start(0xabc);
        publish(g);
        register_thread();
        let me = my_trace().expect("this thread records").id;
        let (id_tx, id_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            register_thread();
            id_tx.send(my_trace().expect("records").id).unwrap();
            let _ = done_rx.recv();
        });
        let other_id = id_rx.recv().unwrap();
        let mut results = Vec::new();
        write_statuses(g, &[me, other_id], |_, _| {
            results.push(emit_user(
                EventKind::Log,
                &[A::Str("signal"), A::Str("in a handler")],
            ));
        });
        let stopped = publish_stop();
        done_tx.send(()).unwrap();
        other.join().unwrap();
        let _ = ok_tx.send(());
        assert_eq!(results, vec![Err(EmitError::Busy), Err(EmitError::Busy)]);
        assert!(stopped.is_some());
    }
}
