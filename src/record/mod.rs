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
//!   `CURRENT` and locking that thread's gate, so no emitter is writing it.
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
//!   a slot hand-off, and never allocates beyond its own batch buffer and
//!   string table.

pub mod fault;
pub mod gate;
pub mod sink;
pub mod writer;

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::{BatchBuilder, EventKind, Val};

/// 1 while a trace is being recorded. Exported for the header's inline
/// macros (`RTC_TRACE_ON()`), which read it with a relaxed atomic load.
#[unsafe(no_mangle)]
pub static rtc_trace_on: AtomicU32 = AtomicU32::new(0);

/// The generation being recorded (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// The last generation number handed out.
static LAST_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The trace being recorded (its id, for batch headers).
static TRACE_ID: AtomicU64 = AtomicU64::new(0);
/// The first global generation of the trace (file generation = g - first + 1).
static FIRST_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The trace clock's origin, in CLOCK_MONOTONIC ns.
static ORIGIN_NS: AtomicU64 = AtomicU64::new(0);
/// Events dropped (a thread's batch could not be handed over, a sink
/// callback emitted, ...).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A batch is handed to the writer once it holds this many bytes.
pub const BATCH_BYTES: usize = 16 * 1024;

pub use crate::base::clock::monotonic_ns;

/// Nanoseconds on the trace clock.
#[inline]
pub fn now() -> u64 {
    monotonic_ns().saturating_sub(ORIGIN_NS.load(SeqCst))
}

/// One generation's part of a thread's recording.
#[derive(Default)]
struct Slot {
    generation: u64,
    batch: Option<BatchBuilder>,
    /// Batches of this generation already handed to the writer.
    batches: u64,
    strings: HashMap<String, u64>,
    /// The thread's state is known to this generation: its status was
    /// written (by the tracer at start), or it attached during it.
    status_written: bool,
}

/// A thread's recording state, shared with the tracer through the registry.
pub struct ThreadTrace {
    /// rtcore thread id (batch headers name it).
    pub id: u64,
    gate: gate::Gate,
    slots: [UnsafeCell<Slot>; 2],
    /// Regions this thread opened in the current trace and has not closed
    /// (the trace's id, the depth): what its status says at the next
    /// generation. Regions opened while not tracing are unknown; their
    /// ends are counted by the reader as crossing the trace's start.
    /// Changed only by the gate's holder.
    regions: UnsafeCell<(u64, u64)>,
}

// SAFETY: `slots` are only touched by the holder of `gate` (see the module
// invariants); everything else is atomic.
unsafe impl Sync for ThreadTrace {}
// SAFETY: as above.
unsafe impl Send for ThreadTrace {}

impl ThreadTrace {
    fn new(id: u64) -> ThreadTrace {
        ThreadTrace {
            id,
            gate: gate::Gate::new(),
            slots: [
                UnsafeCell::new(Slot::default()),
                UnsafeCell::new(Slot::default()),
            ],
            regions: UnsafeCell::new((0, 0)),
        }
    }
}

/// Every thread that has recorded (registry lock: inner rank `tracebuf`).
static REGISTRY: LazyLock<InnerMutex<Vec<Arc<ThreadTrace>>>> =
    LazyLock::new(|| InnerMutex::new(InnerRank::TraceBuf, Vec::new()));

thread_local! {
    static MINE: std::cell::RefCell<Option<Arc<ThreadTrace>>> = const { std::cell::RefCell::new(None) };
    /// Set on the writer thread and inside sink callbacks: their events are
    /// dropped (and counted), and start/stop refuse.
    static NO_RECORD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while this thread is inside its own gated section (set before
    /// the gate is taken, cleared after it is released). A signal handler
    /// that records an event while the thread it interrupted was recording
    /// one finds it set: the event is dropped (`gated`) or refused
    /// (`in_own_gate`), where taking the gate again would spin forever.
    /// (A handler making any other rtcore call, which is not supported,
    /// would have its state change run without the gate: no memory is at
    /// stake, only the trace's consistency.)
    static IN_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Is the calling thread inside its own gated section? (Only a signal
/// handler that interrupted it can ask and get true.)
pub fn in_own_gate() -> bool {
    IN_GATE.try_with(|c| c.get()).unwrap_or(false)
}

/// Mark the calling thread as one whose events are dropped (the writer).
pub fn set_no_record(v: bool) {
    let _ = NO_RECORD.try_with(|c| c.set(v));
}

/// Is the calling thread the writer or inside a sink callback?
pub fn is_no_record() -> bool {
    NO_RECORD.try_with(|c| c.get()).unwrap_or(false)
}

/// The calling thread's recording state, created on first use. The
/// pointer stays valid until the thread's `MINE` is destroyed at its exit
/// (it owns an `Arc`, and the registry another), so callers on this thread
/// use it without cloning the `Arc` (two atomic operations per event).
fn my_trace() -> Option<*const ThreadTrace> {
    MINE.try_with(|m| {
        if let Ok(b) = m.try_borrow() {
            if let Some(t) = b.as_ref() {
                return Some(Arc::as_ptr(t));
            }
        }
        let mut m = m.try_borrow_mut().ok()?;
        let t = Arc::new(ThreadTrace::new(crate::ident::current_id()));
        REGISTRY.lock().push(t.clone());
        let p = Arc::as_ptr(&t);
        *m = Some(t);
        Some(p)
    })
    .ok()
    .flatten()
}

/// An argument for `emit`: strings are interned per (generation, thread).
pub enum A<'a> {
    U(u64),
    S(i64),
    Str(&'a str),
}

/// Make the calling thread's recording state exist now. Called first thing
/// at attach, so that it outlives the attachment at thread exit
/// (thread-locals are destroyed in the reverse order of their first use)
/// and the events of the exit's teardown are still recorded.
pub fn register_thread() {
    let _ = my_trace();
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

/// Record one event on the calling thread (any thread, attached or not).
/// Cheap when tracing is off: one relaxed load. If this is the thread's
/// first event in the generation and nobody wrote its status yet, its
/// status (as it is now, before whatever the event records) goes first.
#[inline]
pub fn emit(kind: EventKind, args: &[A<'_>]) {
    if rtc_trace_on.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        return;
    }
    emit_slow(kind, args);
}

#[cold]
fn emit_slow(kind: EventKind, args: &[A<'_>]) {
    gated(|e| e.event(kind, args));
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
        let slot = unsafe { &mut *t.slots[(self.g % 2) as usize].get() };
        write_event(t, slot, self.g, kind, args);
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
    if is_no_record() {
        if rtc_trace_on.load(SeqCst) != 0 {
            DROPPED.fetch_add(1, SeqCst);
        }
        return f(&mut Emitter { t: None, g: 0 });
    }
    let Some(t) = my_trace() else {
        // Too late in the thread's exit to record.
        if rtc_trace_on.load(SeqCst) != 0 {
            DROPPED.fetch_add(1, SeqCst);
        }
        return f(&mut Emitter { t: None, g: 0 });
    };
    // SAFETY: see `my_trace`: this thread's own state, alive until its exit.
    let t = unsafe { &*t };
    if IN_GATE.try_with(|c| c.replace(true)).unwrap_or(true) {
        // Re-entered (a signal handler), or too late in the thread's exit:
        // the gate is this thread's own; dropped, never waited for.
        if rtc_trace_on.load(SeqCst) != 0 {
            DROPPED.fetch_add(1, SeqCst);
        }
        return f(&mut Emitter { t: None, g: 0 });
    }
    let r = gate::emitter(&t.gate, &CURRENT, |g| {
        if g != 0 {
            // SAFETY: we hold the gate.
            let slot = unsafe { &mut *t.slots[(g % 2) as usize].get() };
            fresh_slot(slot, g);
            if !slot.status_written {
                with_my_status(&mut |st| write_status_event(t, slot, g, st));
            }
        }
        f(&mut Emitter { t: Some(t), g })
    });
    let _ = IN_GATE.try_with(|c| c.set(false));
    r
}

/// Record the calling thread's attach: `join` makes it visible to the
/// tracer (adds it to the world's thread list), then the generation is
/// read, all inside its gate. The tracer publishes a generation before it
/// lists the threads, so either it lists this one (and writes its status
/// in its gate, after this) or this one reads the new generation and its
/// `attach` begins its stream. (Reading the generation before joining
/// would leave a window where neither happens.)
pub fn attach(join: impl FnOnce(), name: &str, thread_seq: u64) {
    let t = if is_no_record() { None } else { my_trace() };
    let Some(t) = t else {
        join();
        return;
    };
    // SAFETY: see `my_trace`.
    let t = unsafe { &*t };
    gate::joining(&t.gate, &CURRENT, join, |g| {
        if g != 0 {
            // SAFETY: we hold the gate.
            let slot = unsafe { &mut *t.slots[(g % 2) as usize].get() };
            write_event(
                t,
                slot,
                g,
                EventKind::Attach,
                &[A::Str(name), A::U(thread_seq)],
            );
        }
    });
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
    if c.generation == 0 || c.generation < FIRST_GENERATION.load(SeqCst) || is_no_record() {
        return;
    }
    let Some(t) = my_trace() else { return };
    // SAFETY: see `my_trace`.
    let t = unsafe { &*t };
    // The generation was read at the check (under sysmonlock): the gate
    // only keeps the buffer to one writer.
    t.gate.lock();
    // SAFETY: we hold the gate.
    let slot = unsafe { &mut *t.slots[(c.generation % 2) as usize].get() };
    write_event(t, slot, c.generation, kind, args);
    t.gate.unlock();
}

fn file_generation(g: u64) -> u64 {
    g.saturating_sub(FIRST_GENERATION.load(SeqCst)) + 1
}

fn fresh_slot(slot: &mut Slot, g: u64) {
    if slot.generation != g {
        *slot = Slot {
            generation: g,
            ..Default::default()
        };
    }
}

fn write_status_event(t: &ThreadTrace, slot: &mut Slot, g: u64, st: &Status<'_>) {
    // SAFETY: the caller holds the gate.
    let (trace, depth) = unsafe { *t.regions.get() };
    let depth = if trace == TRACE_ID.load(SeqCst) {
        depth
    } else {
        0
    };
    write_event(
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

fn write_event(t: &ThreadTrace, slot: &mut Slot, g: u64, kind: EventKind, args: &[A<'_>]) {
    fresh_slot(slot, g);
    match kind {
        // The thread's state is now known to the generation (attach), or
        // no longer described by anything (detach: a later attach in the
        // same generation is recorded again).
        EventKind::Attach => slot.status_written = true,
        EventKind::Detach => slot.status_written = false,
        EventKind::RegionBegin | EventKind::RegionEnd => {
            // SAFETY: the caller holds the gate.
            let r = unsafe { &mut *t.regions.get() };
            let id = TRACE_ID.load(SeqCst);
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
    let ts = now();
    // Intern strings first (each may add a `string` event).
    let mut vals: [Val<'_>; 8] = [Val::U(0); 8];
    for (i, a) in args.iter().enumerate().take(8) {
        vals[i] = match a {
            A::U(v) => Val::U(*v),
            A::S(v) => Val::S(*v),
            A::Str(s) => Val::U(intern(t, slot, g, ts, s)),
        };
    }
    let b = batch(t, slot, g, ts);
    b.event(kind, ts, &vals[..args.len()]);
    if b.len() >= BATCH_BYTES {
        flush(t, slot);
    }
}

fn batch<'s>(t: &ThreadTrace, slot: &'s mut Slot, g: u64, ts: u64) -> &'s mut BatchBuilder {
    let seq = slot.batches;
    // A whole batch is reserved at once (plus room for the event that
    // crosses the threshold), so recording an event does not allocate;
    // only a new string does (its table entry).
    slot.batch.get_or_insert_with(|| {
        BatchBuilder::with_capacity(
            BATCH_BYTES + 512,
            TRACE_ID.load(SeqCst),
            file_generation(g),
            t.id,
            seq,
            ts,
        )
    })
}

/// Strings longer than this are cut (at a character boundary) and counted
/// in `TRUNCATED`: one event must fit a record (`MAX_RECORD_BODY`).
pub const MAX_STRING: usize = 64 * 1024;
/// Strings cut to `MAX_STRING`.
pub static TRUNCATED: AtomicU64 = AtomicU64::new(0);

fn cut(s: &str) -> &str {
    if s.len() <= MAX_STRING {
        return s;
    }
    TRUNCATED.fetch_add(1, SeqCst);
    let mut end = MAX_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn intern(t: &ThreadTrace, slot: &mut Slot, g: u64, ts: u64, s: &str) -> u64 {
    let s = cut(s);
    if s.is_empty() {
        return 0;
    }
    if let Some(id) = slot.strings.get(s) {
        return *id;
    }
    let id = slot.strings.len() as u64 + 1;
    slot.strings.insert(s.to_string(), id);
    batch(t, slot, g, ts).event(
        EventKind::String,
        ts,
        &[Val::U(id), Val::Bytes(s.as_bytes())],
    );
    id
}

/// Hand the slot's current batch to the writer.
fn flush(_t: &ThreadTrace, slot: &mut Slot) {
    if let Some(b) = slot.batch.take() {
        slot.batches += 1;
        writer::push_batch(b.body);
    }
}

// ---- the tracer's side (called by `trace` with the world stopped) ----------

/// Prepare a new generation of trace `trace_id` (returned; not yet
/// published). The tracer then publishes it and writes each attached
/// thread's status inside that thread's gate (`write_status_of`); a thread
/// that records first writes its own (`gated`), so each status precedes
/// every event of its thread in the generation.
pub fn prepare_start(trace_id: u64) -> u64 {
    let g = LAST_GENERATION.fetch_add(1, SeqCst) + 1;
    TRACE_ID.store(trace_id, SeqCst);
    FIRST_GENERATION.store(g, SeqCst);
    ORIGIN_NS.store(monotonic_ns(), SeqCst);
    g
}

/// Publish generation `g`: emitters record into it from now on.
pub fn publish(g: u64) {
    gate::publish(&CURRENT, g);
    rtc_trace_on.store(1, SeqCst);
    generation_changed();
}

/// Write thread `id`'s status as the first event of its stream in
/// generation `g` (published), unless the thread already wrote it itself
/// (it does when it records before the tracer gets here). `status` is
/// called holding the thread's gate, so it describes the thread between
/// its gated transitions. Threads without recording state are skipped:
/// every attached thread has one (`register_thread` at attach).
/// The caller holds no inner lock below `tracebuf` (a gate's holder may be
/// waiting for `sched`).
pub fn write_status_of(g: u64, id: u64, status: impl FnOnce(&mut dyn FnMut(&Status<'_>))) {
    let t = {
        let reg = REGISTRY.lock();
        reg.iter().find(|t| t.id == id).cloned()
    };
    let Some(t) = t else { return };
    gate::tracer(&t.gate, || {
        // SAFETY: we hold the gate.
        let slot = unsafe { &mut *t.slots[(g % 2) as usize].get() };
        fresh_slot(slot, g);
        if !slot.status_written {
            status(&mut |st| write_status_event(&t, slot, g, st));
        }
    });
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

/// Stop recording: unpublish the generation, then take every thread's last
/// batch of it (locking each gate, so no emitter is writing), hand them to
/// the writer, and return the batch counts per thread for the generation
/// end. Threads that exited are dropped from the registry.
/// A stopped generation's per-thread state (string tables, mostly), to be
/// dropped by the caller after the world restarts: freeing a large string
/// table took milliseconds of stopped world.
pub struct Leftovers(#[allow(dead_code)] Vec<Slot>);

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
    let mut reg = REGISTRY.lock();
    for t in reg.iter() {
        gate::tracer(&t.gate, || {
            // SAFETY: we hold the gate.
            let slot = unsafe { &mut *t.slots[(g % 2) as usize].get() };
            if slot.generation == g {
                flush(t, slot);
                if slot.batches > 0 {
                    counts.push((t.id, slot.batches));
                }
                leftovers.push(std::mem::take(slot));
            }
        });
    }
    // Threads that exited (only the registry holds them) go now.
    reg.retain(|t| Arc::strong_count(t) > 1);
    counts.sort();
    Some((counts, Leftovers(leftovers)))
}

/// Emit an event into the header batch of the current generation (thread 0),
/// built by the tracer under the world stop: returned as a batch body.
pub fn header_batch(g: u64, build: impl FnOnce(&mut HeaderBuilder)) -> Vec<u8> {
    let ts = now();
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
        let ts = now();
        let mut vals: Vec<Val<'_>> = Vec::with_capacity(args.len());
        let mut ids = Vec::new();
        for a in args {
            if let A::Str(s) = a {
                let s = cut(s);
                let next = self.strings.len() as u64 + 1;
                let id = if s.is_empty() {
                    0
                } else {
                    *self.strings.entry(s.to_string()).or_insert(next)
                };
                if id == next {
                    self.b.event(
                        EventKind::String,
                        ts,
                        &[Val::U(id), Val::Bytes(s.as_bytes())],
                    );
                }
                ids.push(id);
            }
        }
        let mut ids = ids.into_iter();
        for a in args {
            vals.push(match a {
                A::U(v) => Val::U(*v),
                A::S(v) => Val::S(*v),
                A::Str(_) => Val::U(ids.next().unwrap_or(0)),
            });
        }
        self.b.event(kind, ts, &vals);
    }
}

/// In a forked child: tracing is off and the parent's buffers are gone
/// (DESIGN.md, "Deadlock freedom" 5). The registry may have been locked.
pub fn after_fork_child() {
    CURRENT.store(0, SeqCst);
    rtc_trace_on.store(0, SeqCst);
    // SAFETY: only the forking thread exists.
    unsafe { REGISTRY.reset_after_fork() };
    let old = std::mem::take(&mut *REGISTRY.lock());
    crate::base::fork::keep_forever(old);
    let _ = MINE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            *m = None;
        }
    });
    writer::after_fork_child();
}
