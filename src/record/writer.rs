//! The writer: one thread per process ("rtcore-trace-writer", started by
//! the first trace and parked between traces) that does the sink I/O of a
//! trace while it runs, holding no rtcore lock while it does. Producers
//! (emitters handing over full batches, the tracer at start and stop) push
//! records onto the queue (inner rank `tracequeue`, held only to push or
//! pop); emitters wake the writer, the tracer does not (a wake-up inside a
//! stopped world only adds to it).
//!
//! The end of a trace is written by `finish`, on the thread stopping the
//! trace, when the sink is one whose writes always complete (a regular
//! file, `/dev/null`): it waits for the writer's write in progress, if
//! any, then writes what is left itself, so no wake-up of another thread
//! stands between the stop and the end of the trace reaching the sink.
//! Any other sink (a pipe, a socket, a terminal, a callback) may block for
//! as long as its reader likes: its end is written by the writer thread
//! and `finish` waits for it, at most for its limit.
//!
//! Invariants:
//! - **one writer at a time**: the sink is in the queue while nobody
//!   writes; whoever writes takes it out (`writing`) and puts it back.
//!   Records reach the sink in queue order; the file header is the first,
//!   the trace-end record the last.
//! - **generations do not interleave**: a batch of a generation after the
//!   one still open (recorded during a rollover, before the open one's end
//!   was queued) is held back and queued right after that end.
//! - A failing sink switches the trace to discard: later records are
//!   dropped (counted) and the error is kept for `finish` to return.
//! - A file descriptor given by the user is never closed; a file opened
//!   from a path is closed when the trace is finished.
//! - A regular file opened from a path is emptied (`Sink::prepare`) by
//!   whoever writes to it first, never inside a stopped world.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::{self, RecordKind};

pub use super::sink::{Opened, Sink, WriteFn};

enum Item {
    Raw(Vec<u8>),
    Record(RecordKind, Vec<u8>),
    /// A thread's batch: its file generation, thread and events (for the
    /// loss accounting), and its body.
    Batch(BatchMeta, Vec<u8>),
}

/// What the writer knows of a batch besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct BatchMeta {
    pub generation: u64,
    pub thread: u64,
    pub events: u64,
}

impl Item {
    /// Bytes counted against the queue's bound.
    fn weight(&self) -> u64 {
        match self {
            Item::Raw(b) | Item::Record(_, b) | Item::Batch(_, b) => b.len() as u64,
        }
    }
}

/// A generation being dropped because the queue reached its bound (a sink
/// falling behind): what of it was lost, per thread (batches, events,
/// bytes).
struct Losing {
    generation: u64,
    per_thread: std::collections::BTreeMap<u64, (u64, u64, u64)>,
}

/// The trace's counters (`rtc_trace_get_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Batches and events handed to the writer, and their bytes.
    pub batches: u64,
    pub events: u64,
    pub bytes: u64,
    /// What was dropped for the bound: whole generations.
    pub lost_generations: u64,
    pub lost_batches: u64,
    pub lost_events: u64,
    pub lost_bytes: u64,
}

struct Queue {
    /// Records to write: a kind and its body (framed, with its CRC, by the
    /// writer, not by the producer), or raw bytes (the file header).
    items: VecDeque<Item>,
    /// A trace is being written: from `begin` until its end is written
    /// (or, abandoned, until the stuck write returns).
    active: bool,
    /// `finish` was called: no more records are accepted.
    closing: bool,
    /// The trace's sink, while nobody is writing to it.
    sink: Option<Sink>,
    /// Emptied already (`Sink::prepare`), or nothing to empty.
    prepared: bool,
    /// The stopping thread writes the end itself (see the module doc).
    finish_inline: bool,
    /// The writer thread exists.
    thread_started: bool,
    thread: Option<std::thread::JoinHandle<()>>,
    /// `shutdown` asks the idle writer thread to return.
    quit: bool,
    /// The sink error, once one happened (the trace then discards).
    error: Option<String>,
    /// The file generation whose records are being queued (its end not yet
    /// queued); batches of the next one wait in `held`.
    open_generation: u64,
    held: Vec<Item>,
    /// The trace's id (for loss records).
    trace_id: u64,
    /// Batches queued per (file generation, thread), for the generation
    /// ends of threads given up on (`give_up_on`); a generation's entries
    /// go with its end.
    received: std::collections::HashMap<(u64, u64), u64>,
    /// Threads of this trace a pass gave up on: the tracer no longer
    /// counts their batches, so each generation end lists what was queued
    /// of theirs; and the ids not yet said (`take_given_up`).
    given_up: std::collections::BTreeSet<u64>,
    unsaid: Vec<u64>,
    /// Bytes queued or being written (`items`, `held`, and what the writer
    /// took out and has not finished): at most `limit`, else a generation
    /// is dropped whole.
    outstanding: u64,
    limit: u64,
    losing: Option<Losing>,
    counters: Counters,
    /// Batch buffers already written, emptied, for recorders to reuse
    /// (`take_spare`): a new batch then needs no allocation and touches
    /// memory already mapped (a first touch is a page fault, ~1.3 µs per
    /// page on this VM; a trace start writes a status into a fresh batch
    /// of every attached thread with the world stopped).
    spare: Vec<Vec<u8>>,
}

/// At most this many spare buffers are kept (with 16.5 KiB batches, about
/// 1 MiB).
const SPARE_MAX: usize = 64;

/// The queue's default bound (bytes queued or being written).
pub const DEFAULT_LIMIT: u64 = 64 << 20;

static QUEUE: LazyLock<InnerMutex<Queue>> = LazyLock::new(|| {
    InnerMutex::new(
        InnerRank::TraceQueue,
        Queue {
            items: VecDeque::new(),
            active: false,
            closing: false,
            sink: None,
            prepared: true,
            finish_inline: false,
            thread_started: false,
            thread: None,
            quit: false,
            error: None,
            open_generation: 1,
            held: Vec::new(),
            trace_id: 0,
            received: std::collections::HashMap::new(),
            given_up: std::collections::BTreeSet::new(),
            unsaid: Vec::new(),
            outstanding: 0,
            limit: DEFAULT_LIMIT,
            losing: None,
            counters: Counters {
                batches: 0,
                events: 0,
                bytes: 0,
                lost_generations: 0,
                lost_batches: 0,
                lost_events: 0,
                lost_bytes: 0,
            },
            spare: Vec::new(),
        },
    )
});

/// Set when `finish` gave up waiting: the writer stops touching the sink
/// (after at most the write in progress), so a caller that reuses its fd
/// or frees its callback's data after a failed stop is not written to.
pub(super) static ABANDONED: AtomicBool = AtomicBool::new(false);

/// Bumped on every wake; the writer parks while it is unchanged.
static WAKES: AtomicU64 = AtomicU64::new(0);
/// True while the sink is out of the queue being written (a mirror of
/// `Queue::sink.is_none()` during a trace, for parking on).
static WRITING: AtomicBool = AtomicBool::new(false);
/// Bumped when a trace is finished by the writer thread.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Bytes written to sinks (stats).
pub static BYTES: AtomicU64 = AtomicU64::new(0);
/// Records dropped: pushed with no trace, or after a sink failure.
pub static DISCARDED: AtomicU64 = AtomicU64::new(0);

fn key<T>(a: &T) -> usize {
    a as *const T as usize
}

/// After a start: wake the writer to empty the file and write the header,
/// unless there is nothing to empty and the end will be written inline
/// (/dev/null, a descriptor on a regular file: the writer's next round, or
/// the stop, writes the header; a wake-up costs the starting thread a
/// system call).
pub fn started() {
    let q = QUEUE.lock();
    // A regular file is emptied promptly (by the writer, outside any
    // stop): until then it holds the previous trace, which a crash would
    // leave looking whole.
    let wanted = !q.finish_inline || !q.prepared;
    drop(q);
    if wanted {
        wake();
    }
}

/// Wake the writer thread.
pub fn wake() {
    WAKES.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(key(&WAKES));
}

/// A written batch buffer to reuse, if one is spare.
pub fn take_spare() -> Option<Vec<u8>> {
    QUEUE.lock().spare.pop()
}

/// Keep the written batch bodies of `items` as spares (up to `SPARE_MAX`,
/// those of a recorder's size only).
fn keep_spares(items: VecDeque<Item>) {
    let mut bodies: Vec<Vec<u8>> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Record(RecordKind::Batch, b) | Item::Batch(_, b)
                if b.capacity() >= super::BATCH_BYTES =>
            {
                Some(b)
            }
            _ => None,
        })
        .collect();
    if bodies.is_empty() {
        return;
    }
    let mut q = QUEUE.lock();
    while q.spare.len() < SPARE_MAX {
        let Some(b) = bodies.pop() else { break };
        q.spare.push(b);
    }
    drop(q);
    // The rest are freed here, outside the lock.
    drop(bodies);
}

/// Is a trace still being written (a previous trace still shutting down)?
pub fn busy() -> bool {
    QUEUE.lock().active
}

/// Start the writer thread if it does not exist yet. Called by the start
/// before it stops the world (no thread is created inside a stop).
pub fn ensure_thread() -> Result<(), String> {
    let mut q = QUEUE.lock();
    if q.thread_started {
        return Ok(());
    }
    let j = std::thread::Builder::new()
        .name("rtcore-trace-writer".into())
        .spawn(run)
        .map_err(|e| format!("cannot start the trace writer thread: {e}"))?;
    q.thread = Some(j);
    q.thread_started = true;
    Ok(())
}

/// At `rtc_shutdown`, after the trace stopped: the writer thread returns
/// and is joined. (A writer still stuck in the write of an abandoned trace
/// is left alone: it returns when that write does.)
pub fn shutdown() {
    let j = {
        let mut q = QUEUE.lock();
        if !q.thread_started || q.active {
            return;
        }
        q.quit = true;
        q.thread.take()
    };
    wake();
    if let Some(j) = j {
        let _ = j.join();
    }
    let mut q = QUEUE.lock();
    q.thread_started = false;
    q.quit = false;
}

/// Does writing to `sink` always complete (a regular file, `/dev/null`)?
fn completes(sink: &Sink) -> bool {
    use std::os::fd::AsRawFd;
    let fd = match sink {
        Sink::File { file, .. } => file.as_raw_fd(),
        Sink::Fd(fd) => *fd,
        // Memory: a write always completes at once.
        Sink::Ring(_) => return true,
        _ => return false,
    };
    // SAFETY: fstat into a zeroed struct; a bad fd just fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    let kind = st.st_mode & libc::S_IFMT;
    kind == libc::S_IFREG
        || (kind == libc::S_IFCHR && libc::major(st.st_rdev) == 1 && libc::minor(st.st_rdev) == 3)
}

/// Begin a new trace's writing: the file header goes first. Called inside
/// the start's stopped world: no I/O, no thread created, nobody woken.
pub fn begin(sink: Sink, trace_id: u64, limit: u64) -> Result<(), String> {
    let finish_inline = completes(&sink);
    let mut q = QUEUE.lock();
    if q.active {
        return Err("the previous trace's writer is still draining".into());
    }
    if !q.thread_started {
        return Err("the trace writer thread was not started".into());
    }
    q.items.clear();
    q.held.clear();
    q.open_generation = 1;
    q.trace_id = trace_id;
    q.received.clear();
    q.given_up.clear();
    q.outstanding = 0;
    q.limit = limit;
    q.losing = None;
    q.counters = Counters::default();
    q.items
        .push_back(Item::Raw(format::file_header(trace_id).to_vec()));
    q.prepared = !matches!(sink, Sink::File { regular: true, .. });
    q.sink = Some(sink);
    q.finish_inline = finish_inline;
    q.closing = false;
    q.error = None;
    q.active = true;
    ABANDONED.store(false, SeqCst);
    WRITING.store(false, SeqCst);
    Ok(())
}

/// Queue a record (the writer frames it), without waking the writer (the
/// tracer, inside a stop).
pub fn push_record(kind: RecordKind, body: &[u8]) {
    push_owned(kind, body.to_vec(), None, false);
}

/// Queue the end of file generation `generation`: the next generation's
/// batches, held back until now, follow it. A generation being dropped
/// ends with a loss record instead (`format::loss_body`).
pub fn push_generation_end(generation: u64, counts: &[(u64, u64)]) {
    let mut q = QUEUE.lock();
    if !q.active || q.closing {
        DISCARDED.fetch_add(1, SeqCst);
        return;
    }
    // Threads given up on: what they had queued of the generation (the
    // tracer did not count it). A batch of theirs queued later is dropped
    // (`push_thread_batch`).
    let mut counts = counts.to_vec();
    let q = &mut *q;
    for t in &q.given_up {
        if let Some(n) = q.received.get(&(generation, *t)) {
            if !counts.iter().any(|(c, _)| c == t) {
                counts.push((*t, *n));
            }
        }
    }
    q.received.retain(|(g, _), _| *g > generation);
    counts.sort();
    let body = format::generation_end_body(q.trace_id, generation, &counts);
    let item = match q.losing.take() {
        Some(l) if l.generation == generation => {
            let lost: Vec<(u64, u64, u64, u64)> = l
                .per_thread
                .iter()
                .map(|(t, (b, e, n))| (*t, *b, *e, *n))
                .collect();
            q.counters.lost_generations += 1;
            Item::Record(
                RecordKind::Loss,
                format::loss_body(q.trace_id, generation, &lost),
            )
        }
        other => {
            q.losing = other;
            Item::Record(RecordKind::GenerationEnd, body)
        }
    };
    q.outstanding += item.weight();
    q.items.push_back(item);
    q.open_generation = generation + 1;
    let held = std::mem::take(&mut q.held);
    q.items.extend(held);
}

fn push_owned(kind: RecordKind, body: Vec<u8>, generation: Option<u64>, wake_writer: bool) {
    {
        let mut q = QUEUE.lock();
        if !q.active || q.closing {
            DISCARDED.fetch_add(1, SeqCst);
            return;
        }
        let item = Item::Record(kind, body);
        q.outstanding += item.weight();
        match generation {
            Some(g) if g > q.open_generation => q.held.push(item),
            _ => q.items.push_back(item),
        }
    }
    if wake_writer {
        wake();
    }
}

/// Queue a thread's full batch (no copy, no CRC on the producer's thread),
/// waking the writer unless `quiet` (the tracer, inside a stop or a
/// rollover: `finish` or the writer's next round writes it). Past the
/// queue's bound the batch's whole generation is dropped: what is queued
/// of it goes, what comes of it is counted and dropped, and its end
/// becomes a loss record (so the reader skips it and goes on with the
/// next, self-contained generation).
pub fn push_thread_batch(meta: BatchMeta, body: Vec<u8>, quiet: bool) {
    let mut q = QUEUE.lock();
    if !q.active || q.closing {
        DISCARDED.fetch_add(1, SeqCst);
        return;
    }
    let len = body.len() as u64;
    if meta.generation < q.open_generation {
        // Its generation's end is queued already: only a thread given up
        // on (gate.rs, **bounded wait**) can be this late. Its end did not
        // count it: dropped, and counted as lost.
        q.counters.lost_batches += 1;
        q.counters.lost_events += meta.events;
        q.counters.lost_bytes += len;
        return;
    }
    *q.received
        .entry((meta.generation, meta.thread))
        .or_default() += 1;
    q.counters.batches += 1;
    q.counters.events += meta.events;
    q.counters.bytes += len;
    let losing_it = q
        .losing
        .as_ref()
        .is_some_and(|l| l.generation == meta.generation);
    if !losing_it && q.losing.is_none() && q.outstanding + len > q.limit {
        start_losing(&mut q, meta.generation);
    }
    if q.losing
        .as_ref()
        .is_some_and(|l| l.generation == meta.generation)
    {
        lose(&mut q, &meta, len);
        drop(q);
        drop(body);
        return;
    }
    let item = Item::Batch(meta, body);
    q.outstanding += len;
    if meta.generation > q.open_generation {
        q.held.push(item);
    } else {
        q.items.push_back(item);
    }
    drop(q);
    if !quiet {
        wake();
    }
}

/// A pass gave up on thread `id` (record's `pass_over`): from now on in
/// this trace, generation ends list the batches it queued.
pub fn give_up_on(id: u64) {
    let mut q = QUEUE.lock();
    if q.given_up.insert(id) {
        q.unsaid.push(id);
    }
}

/// The threads given up on since the last call, each once.
pub fn take_given_up() -> Vec<u64> {
    std::mem::take(&mut QUEUE.lock().unsaid)
}

/// Begin dropping `generation`: take its batches out of the queue.
fn start_losing(q: &mut Queue, generation: u64) {
    q.losing = Some(Losing {
        generation,
        per_thread: std::collections::BTreeMap::new(),
    });
    let mut kept = VecDeque::with_capacity(q.items.len());
    let items = std::mem::take(&mut q.items);
    for item in items {
        match item {
            Item::Batch(m, b) if m.generation == generation => {
                q.outstanding -= b.len() as u64;
                lose(q, &m, b.len() as u64);
            }
            other => kept.push_back(other),
        }
    }
    q.items = kept;
}

fn lose(q: &mut Queue, meta: &BatchMeta, len: u64) {
    q.counters.lost_batches += 1;
    q.counters.lost_events += meta.events;
    q.counters.lost_bytes += len;
    if let Some(l) = q.losing.as_mut() {
        let e = l.per_thread.entry(meta.thread).or_default();
        e.0 += 1;
        e.1 += meta.events;
        e.2 += len;
    }
}

/// The trace's counters so far.
pub fn counters() -> Counters {
    QUEUE.lock().counters
}

/// Bytes queued or being written now.
pub fn queued_bytes() -> u64 {
    QUEUE.lock().outstanding
}

/// Queue a full batch body of file generation `generation` (the header
/// batch), without waking the writer.
pub fn push_batch_quiet(generation: u64, body: Vec<u8>) {
    push_owned(RecordKind::Batch, body, Some(generation), false);
}

/// Write `parts` to `sink` on the calling thread, outside any trace (a
/// flight-recorder snapshot): a path is opened as a trace's is (a regular
/// file created or emptied, never blocking), a descriptor is written and
/// left open, a callback called. Returns the bytes written.
pub fn write_out(sink: Sink, parts: &[&[u8]]) -> Result<u64, String> {
    let Opened { mut sink, .. } = sink.open()?;
    sink.prepare()?;
    let mut n = 0u64;
    for p in parts {
        sink.write_all(p)?;
        n += p.len() as u64;
    }
    sink.flush()?;
    Ok(n)
}

/// Write `items` to `sink` (emptying it first if not yet done); a failure
/// switches to discarding. Called with the sink taken out of the queue.
fn write_items(
    sink: &mut Sink,
    items: VecDeque<Item>,
    prepared: &mut bool,
    error: &mut Option<String>,
) {
    if !*prepared && error.is_none() {
        *prepared = true;
        if let Err(e) = sink.prepare() {
            *error = Some(e);
        }
    }
    let mut framed = Vec::new();
    for item in &items {
        if error.is_some() || ABANDONED.load(SeqCst) {
            DISCARDED.fetch_add(1, SeqCst);
            continue;
        }
        let rec: &[u8] = match item {
            Item::Raw(b) => b,
            Item::Record(kind, body) => {
                framed.clear();
                format::put_record(&mut framed, *kind, body);
                &framed
            }
            Item::Batch(_, body) => {
                framed.clear();
                format::put_record(&mut framed, RecordKind::Batch, body);
                &framed
            }
        };
        match sink.write_all(rec) {
            Ok(()) => {
                BYTES.fetch_add(rec.len() as u64, SeqCst);
            }
            Err(e) => *error = Some(e),
        }
    }
    let written: u64 = items.iter().map(Item::weight).sum();
    {
        let mut q = QUEUE.lock();
        q.outstanding = q.outstanding.saturating_sub(written);
    }
    keep_spares(items);
}

/// Take the sink and every queued record out of the queue (the caller
/// now writes), if nobody is writing.
fn take_work(q: &mut Queue) -> Option<(Sink, VecDeque<Item>, bool, Option<String>)> {
    if !q.active || q.sink.is_none() {
        return None;
    }
    let sink = q.sink.take()?;
    WRITING.store(true, SeqCst);
    Some((
        sink,
        std::mem::take(&mut q.items),
        q.prepared,
        q.error.clone(),
    ))
}

/// Put the sink back after writing (or close it, when the trace is over).
fn put_back(sink: Sink, prepared: bool, error: Option<String>) {
    let mut q = QUEUE.lock();
    q.prepared = prepared;
    if error.is_some() && q.error.is_none() {
        q.error = error;
    }
    q.sink = Some(sink);
    WRITING.store(false, SeqCst);
    drop(q);
    crate::base::parked::unpark_all(key(&WRITING));
}

/// Queue the last record, then see the trace's end into the sink: written
/// here when the sink's writes always complete, else by the writer thread,
/// waited for at most `limit`. Returns the sink's error, if any; a timeout
/// is an error too (the writer keeps going and a new trace must wait).
pub fn finish(last: Option<(RecordKind, Vec<u8>)>, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let seen_done = DONE.load(SeqCst);
    let inline = {
        let mut q = QUEUE.lock();
        if !q.active || q.closing {
            return Ok(());
        }
        if let Some((kind, body)) = last {
            q.items.push_back(Item::Record(kind, body));
        }
        q.closing = true;
        q.finish_inline
    };
    if inline {
        loop {
            let work = take_work(&mut QUEUE.lock());
            if let Some((mut sink, items, mut prepared, mut error)) = work {
                write_items(&mut sink, items, &mut prepared, &mut error);
                if error.is_none() {
                    if let Err(e) = sink.flush() {
                        error = Some(e);
                    }
                }
                drop(sink);
                let mut q = QUEUE.lock();
                let error = error.or(q.error.take());
                q.active = false;
                q.closing = false;
                WRITING.store(false, SeqCst);
                return match error {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            // The writer thread is writing: wait for it to put the sink
            // back.
            if Instant::now() >= deadline {
                return Err(give_up(limit));
            }
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                crate::base::parked::park(key(&WRITING), || WRITING.load(SeqCst), Some(deadline));
            }
        }
    }
    wake();
    while DONE.load(SeqCst) == seen_done {
        if Instant::now() >= deadline {
            return Err(give_up(limit));
        }
        // SAFETY: the validate callback only reads an atomic.
        unsafe {
            crate::base::parked::park(
                key(&DONE),
                || DONE.load(SeqCst) == seen_done,
                Some(deadline),
            );
        }
    }
    match QUEUE.lock().error.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn give_up(limit: Duration) -> String {
    ABANDONED.store(true, SeqCst);
    wake();
    format!(
        "the trace writer did not finish within {} ms (a stalled sink?); the trace may be incomplete",
        limit.as_millis()
    )
}

/// The writer thread: write whatever is queued; finish a closing trace
/// whose sink may block; park until woken (or 100 ms, to notice an
/// abandoned trace).
fn run() {
    super::mark_writer_thread();
    // A pipe or socket sink whose reader went away must fail the trace, not
    // kill the process: SIGPIPE is blocked on this thread (a write then
    // fails with EPIPE; the signal stays pending on this thread).
    // SAFETY: plain signal-mask calls on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    loop {
        let seen = WAKES.load(SeqCst);
        let (work, closing, active) = {
            let mut q = QUEUE.lock();
            if q.quit && !q.active {
                return;
            }
            let closing = q.closing && !q.finish_inline;
            let has_items = !q.items.is_empty();
            let work = if has_items || closing || (!q.prepared && q.active) {
                take_work(&mut q)
            } else {
                None
            };
            (work, closing, q.active)
        };
        match work {
            Some((mut sink, items, mut prepared, mut error)) => {
                let was_empty = items.is_empty();
                write_items(&mut sink, items, &mut prepared, &mut error);
                let abandoned = ABANDONED.load(SeqCst);
                if (closing && was_empty) || abandoned {
                    // The trace's end (or an abandoned trace): close it.
                    if error.is_none() && !abandoned {
                        if let Err(e) = sink.flush() {
                            error = Some(e);
                        }
                    }
                    drop(sink);
                    let mut q = QUEUE.lock();
                    if error.is_some() && q.error.is_none() {
                        q.error = error;
                    }
                    q.items.clear();
                    q.active = false;
                    q.closing = false;
                    WRITING.store(false, SeqCst);
                    drop(q);
                    DONE.fetch_add(1, SeqCst);
                    crate::base::parked::unpark_all(key(&DONE));
                    crate::base::parked::unpark_all(key(&WRITING));
                } else {
                    put_back(sink, prepared, error);
                }
                continue;
            }
            None => {
                // During a trace, every 100 ms (an abandoned trace is
                // noticed, the header written); between traces, only when
                // woken.
                let deadline = active.then(|| Instant::now() + Duration::from_millis(100));
                // SAFETY: the validate callback only reads an atomic.
                unsafe {
                    crate::base::parked::park(key(&WAKES), || WAKES.load(SeqCst) == seen, deadline);
                }
            }
        }
    }
}

/// The sink failed during this trace?
pub fn failed() -> Option<String> {
    QUEUE.lock().error.clone()
}

/// In a forked child: no writer thread exists; the parent's queue and
/// sink are dropped unread (a file the parent opened stays open in it:
/// kept, never closed, as the parent's descriptor).
pub fn after_fork_child() {
    // SAFETY: only the forking thread exists.
    unsafe { QUEUE.reset_after_fork() };
    let mut q = QUEUE.lock();
    crate::base::fork::keep_forever(std::mem::take(&mut q.items));
    if let Some(s) = q.sink.take() {
        crate::base::fork::keep_forever(s);
    }
    q.active = false;
    q.closing = false;
    q.thread_started = false;
    q.quit = false;
    if let Some(j) = q.thread.take() {
        crate::base::fork::keep_forever(j);
    }
    WRITING.store(false, SeqCst);
}
