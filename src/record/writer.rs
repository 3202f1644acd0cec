//! The writer: one thread per trace ("rtcore-trace-writer") that alone does
//! sink I/O (through `sink`), holding no rtcore lock while it does. Producers (emitters
//! handing over full batches, the tracer at start and stop) push framed
//! records onto the queue (inner rank `tracequeue`, held only to push or
//! pop) and wake it.
//!
//! Invariants:
//! - Records reach the sink in queue order; the file header is the first,
//!   the trace-end record the last.
//! - A failing sink switches the writer to discard: later records are
//!   dropped (counted) and the error is kept for `finish` to return.
//! - A file descriptor given by the user is never closed; a file opened
//!   from a path is closed when the writer is done.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::base::inner::{InnerMutex, InnerRank};
use crate::format::{self, RecordKind};

pub use super::sink::{Opened, Sink, WriteFn};

enum Item {
    Raw(Vec<u8>),
    Record(RecordKind, Vec<u8>),
}

struct Queue {
    /// Records to write: a kind and its body (framed, with its CRC, by the
    /// writer, not by the producer), or raw bytes (the file header).
    items: VecDeque<Item>,
    /// A writer thread exists (from `begin` until it has returned).
    active: bool,
    /// `finish` was called: after the queue drains, the writer returns.
    closing: bool,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The sink error, once one happened (the writer then discards).
    error: Option<String>,
}

static QUEUE: LazyLock<InnerMutex<Queue>> = LazyLock::new(|| {
    InnerMutex::new(
        InnerRank::TraceQueue,
        Queue {
            items: VecDeque::new(),
            active: false,
            closing: false,
            thread: None,
            error: None,
        },
    )
});

/// Set when `finish` gave up waiting: the writer stops touching the sink
/// (after at most the write in progress), so a caller that reuses its fd
/// or frees its callback's data after a failed stop is not written to.
pub(super) static ABANDONED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Bumped on every push; the writer parks while it is unchanged.
static WAKES: AtomicU64 = AtomicU64::new(0);
/// Bumped when the writer returns.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Bytes the writer has written (stats).
pub static BYTES: AtomicU64 = AtomicU64::new(0);
/// Records dropped: pushed with no writer, or after a sink failure.
pub static DISCARDED: AtomicU64 = AtomicU64::new(0);

fn wake() {
    WAKES.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(&WAKES as *const AtomicU64 as usize);
}

/// Is a writer still running (a previous trace still shutting down)?
pub fn busy() -> bool {
    QUEUE.lock().active
}

/// Start a writer for a new trace: the file header goes first.
pub fn begin(sink: Sink, trace_id: u64) -> Result<(), String> {
    let mut q = QUEUE.lock();
    if q.active {
        return Err("the previous trace's writer is still draining".into());
    }
    q.items.clear();
    q.items
        .push_back(Item::Raw(format::file_header(trace_id).to_vec()));
    q.closing = false;
    q.error = None;
    ABANDONED.store(false, SeqCst);
    let j = std::thread::Builder::new()
        .name("rtcore-trace-writer".into())
        .spawn(move || run(sink))
        .map_err(|e| format!("cannot start the trace writer thread: {e}"))?;
    q.thread = Some(j);
    q.active = true;
    Ok(())
}

/// Queue a record (the writer frames it).
pub fn push_record(kind: RecordKind, body: &[u8]) {
    push_owned(kind, body.to_vec());
}

fn push_owned(kind: RecordKind, body: Vec<u8>) {
    {
        let mut q = QUEUE.lock();
        if !q.active || q.closing {
            DISCARDED.fetch_add(1, SeqCst);
            return;
        }
        q.items.push_back(Item::Record(kind, body));
    }
    wake();
}

/// Queue a batch body (no copy, no CRC on the producer's thread).
pub fn push_batch(body: Vec<u8>) {
    push_owned(RecordKind::Batch, body);
}

/// Queue the last record, then wait (at most `limit`) for the writer to
/// drain and return. Returns the sink's error, if any; a timeout is an
/// error too (the writer keeps going and a new trace must wait for it).
pub fn finish(last: Option<(RecordKind, Vec<u8>)>, limit: Duration) -> Result<(), String> {
    let seen_done = DONE.load(SeqCst);
    {
        let mut q = QUEUE.lock();
        if !q.active {
            return Ok(());
        }
        if let Some((kind, body)) = last {
            q.items.push_back(Item::Record(kind, body));
        }
        q.closing = true;
    }
    wake();
    let deadline = Instant::now() + limit;
    while DONE.load(SeqCst) == seen_done {
        if Instant::now() >= deadline {
            ABANDONED.store(true, SeqCst);
            wake();
            return Err(format!(
                "the trace writer did not finish within {} ms (a stalled sink?); the trace may be incomplete",
                limit.as_millis()
            ));
        }
        // SAFETY: the validate callback only reads an atomic.
        unsafe {
            crate::base::parked::park(
                &DONE as *const AtomicU64 as usize,
                || DONE.load(SeqCst) == seen_done,
                Some(deadline),
            );
        }
    }
    let j = QUEUE.lock().thread.take();
    match j.map(|j| j.join()) {
        Some(Ok(r)) => r,
        Some(Err(_)) => Err("the trace writer thread panicked".into()),
        None => Ok(()),
    }
}

fn run(mut sink: Sink) -> Result<(), String> {
    super::set_no_record(true);
    // A pipe or socket sink whose reader went away must fail the trace, not
    // kill the process: SIGPIPE is blocked on this thread (a write then
    // fails with EPIPE; the signal stays pending on this thread and goes
    // with it).
    // SAFETY: plain signal-mask calls on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    // Only the winning start gets here: now the file may be emptied.
    let mut error: Option<String> = sink.prepare().err();
    if let Some(e) = &error {
        QUEUE.lock().error = Some(e.clone());
    }
    loop {
        let seen = WAKES.load(SeqCst);
        let (batch, closing) = {
            let mut q = QUEUE.lock();
            (std::mem::take(&mut q.items), q.closing)
        };
        if ABANDONED.load(SeqCst) && error.is_none() {
            error = Some("abandoned: the writer did not finish in time".into());
        }
        let mut framed = Vec::new();
        for item in &batch {
            let rec: &[u8] = match item {
                Item::Raw(b) => b,
                Item::Record(kind, body) => {
                    framed.clear();
                    format::put_record(&mut framed, *kind, body);
                    &framed
                }
            };
            if error.is_none() {
                match sink.write_all(rec) {
                    Ok(()) => {
                        BYTES.fetch_add(rec.len() as u64, SeqCst);
                    }
                    Err(e) => {
                        QUEUE.lock().error = Some(e.clone());
                        error = Some(e);
                    }
                }
            } else {
                DISCARDED.fetch_add(1, SeqCst);
            }
        }
        if (closing && batch.is_empty()) || ABANDONED.load(SeqCst) {
            break;
        }
        if batch.is_empty() {
            // SAFETY: the validate callback only reads an atomic.
            unsafe {
                crate::base::parked::park(
                    &WAKES as *const AtomicU64 as usize,
                    || WAKES.load(SeqCst) == seen,
                    Some(Instant::now() + Duration::from_millis(100)),
                );
            }
        }
    }
    if error.is_none() {
        if let Err(e) = sink.flush() {
            error = Some(e);
        }
    }
    drop(sink);
    QUEUE.lock().active = false;
    DONE.fetch_add(1, SeqCst);
    crate::base::parked::unpark_all(&DONE as *const AtomicU64 as usize);
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The sink failed during this trace?
pub fn failed() -> Option<String> {
    QUEUE.lock().error.clone()
}

/// In a forked child: no writer thread exists; the parent's queue is
/// dropped unread.
pub fn after_fork_child() {
    // SAFETY: only the forking thread exists.
    unsafe { QUEUE.reset_after_fork() };
    let mut q = QUEUE.lock();
    crate::base::fork::keep_forever(std::mem::take(&mut q.items));
    if let Some(j) = q.thread.take() {
        crate::base::fork::keep_forever(j);
    }
    q.active = false;
    q.closing = false;
}
