//! The trace as a fatal-signal handler can reach it: the flight
//! recorder's complete generations and, when every recording thread can be
//! reached in time, the generation in progress, closed where the signal
//! found it (`flight::signals` writes the file).
//!
//! The handler may run on any thread, at any moment, while the others go
//! on. So it never waits without a bound and never allocates:
//! - It only *tries* the tracer's pass token, the registry's lock and the
//!   ring's lock; one held means a start, stop, rollover or snapshot is
//!   under way, and the generation in progress is left out.
//! - It claims every recording thread's gate at once (`gate::bounded_claim`)
//!   and waits for every thread to be outside its section, in attempts of
//!   `ATTEMPT_NS` (between them all claims are released, so a thread held
//!   up by another spinning on its claimed gate can finish) until a
//!   deadline. A thread still inside then (the crashing thread itself, if
//!   the signal struck inside its section, or one waiting for a lock the
//!   crashing thread holds) is skipped and named.
//! - Recording threads wait at their gates while the dump is written (its
//!   length is the I/O's, not bounded by the deadline; the process is
//!   dying).
//! - Locks are tried without rank bookkeeping
//!   (`try_lock_in_signal_handler`): no thread-local is touched.
//! - While the claims are held no section runs, so what the reached
//!   threads' slots hold is a consistent cut, as at a rollover's rest.
//! - Records are framed in static scratch space (`SCRATCH`, one user at a
//!   time: `flight::signals` lets one handler in per process).
//!
//! Invariants:
//! - The generation in progress is written only if it is complete up to
//!   the cut: every recording thread reached, the ring holds the
//!   generation's header batch and every batch the threads handed over
//!   (`Ring`'s `open_counts` equals the threads' counts, waited for until
//!   the deadline: the writer thread goes on meanwhile), and no rollover
//!   began. Its end lists each thread's batches, the one being filled
//!   included, so the reader checks it like any other.
//! - Otherwise, if the ring's last complete generation is the one before,
//!   the generation is written as lost (a loss record: the reader skips it,
//!   as it does a generation a slow sink lost), naming the threads not
//!   reached with zeros; else nothing of it is written.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use super::ring::Ring;
use super::{CURRENT, PassToken, READY, REGISTRY, file_generation, gate};
use crate::format::{RECORD_FRAME_LEN, RECORD_MAGIC, RecordKind, crc32};

/// The most recording threads whose generation in progress a dump writes.
pub const MAX_THREADS: usize = 4096;
/// Skipped threads named in the outcome (the count is exact).
pub const NAMED: usize = 16;
/// One attempt to find every thread outside its section at once.
const ATTEMPT_NS: u64 = 5_000_000;

/// What happened to the generation in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InProgress {
    /// Written and closed at the cut: `threads` threads' batches.
    Written { generation: u64, threads: usize },
    /// Written as lost (a loss record).
    Lost { generation: u64, why: &'static str },
    /// Not written.
    Left { why: &'static str },
}

/// A dump's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// The last generation written (None: nothing was, not even the
    /// header; the caller removes the file).
    pub last: Option<u64>,
    pub in_progress: InProgress,
    /// Threads not reached before the deadline: how many, and the first
    /// `NAMED` of their ids.
    pub skipped: usize,
    pub skipped_ids: [u64; NAMED],
    /// The trace's id (from the ring's file header), for the trace end.
    pub trace_id: u64,
}

/// Static room for one record (a generation end of `MAX_THREADS` threads
/// at most 20 bytes each, or a loss record at most 40 bytes each).
const SCRATCH_LEN: usize = RECORD_FRAME_LEN + 32 + 40 * MAX_THREADS;

struct Scratch {
    rec: UnsafeCell<[u8; SCRATCH_LEN]>,
    /// Which of the registry's threads were reached (their claims kept).
    reached: UnsafeCell<[bool; MAX_THREADS]>,
    /// Which of them record (the writer thread does not): read once, so
    /// claims, counts and releases agree.
    counted: UnsafeCell<[bool; MAX_THREADS]>,
}
// SAFETY: used only by the holder of `IN_USE`.
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch {
    rec: UnsafeCell::new([0; SCRATCH_LEN]),
    reached: UnsafeCell::new([false; MAX_THREADS]),
    counted: UnsafeCell::new([false; MAX_THREADS]),
};
static IN_USE: AtomicBool = AtomicBool::new(false);

/// A record framed in place.
struct Rec<'a> {
    b: &'a mut [u8; SCRATCH_LEN],
    n: usize,
}

impl<'a> Rec<'a> {
    fn new(b: &'a mut [u8; SCRATCH_LEN], kind: RecordKind) -> Self {
        b[..4].copy_from_slice(&RECORD_MAGIC);
        b[4] = kind as u8;
        b[5..8].fill(0);
        Rec {
            b,
            n: RECORD_FRAME_LEN,
        }
    }
    fn bytes(&mut self, v: &[u8]) {
        self.b[self.n..self.n + v.len()].copy_from_slice(v);
        self.n += v.len();
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.b[self.n] = (v as u8) | 0x80;
            self.n += 1;
            v >>= 7;
        }
        self.b[self.n] = v as u8;
        self.n += 1;
    }
    fn finish(&mut self) -> &[u8] {
        let len = (self.n - RECORD_FRAME_LEN) as u32;
        let crc = crc32(&self.b[RECORD_FRAME_LEN..self.n]);
        self.b[8..12].copy_from_slice(&len.to_le_bytes());
        self.b[12..16].copy_from_slice(&crc.to_le_bytes());
        &self.b[..self.n]
    }
}

/// A record's frame for a body written separately.
fn frame(kind: RecordKind, body: &[u8]) -> [u8; RECORD_FRAME_LEN] {
    let mut f = [0u8; RECORD_FRAME_LEN];
    f[..4].copy_from_slice(&RECORD_MAGIC);
    f[4] = kind as u8;
    f[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
    f[12..16].copy_from_slice(&crc32(body).to_le_bytes());
    f
}

/// Write what the ring holds, and the generation in progress if it can be
/// reached by `deadline` (ns on `base::clock::monotonic_ns`), through `out`
/// (false: a write failed; the dump goes on, best effort). The caller
/// writes the trace end after `Outcome::last`.
pub fn dump(ring: &Ring, deadline: u64, out: &mut dyn FnMut(&[u8]) -> bool) -> Outcome {
    let mut outcome = Outcome {
        last: None,
        in_progress: InProgress::Left { why: "" },
        skipped: 0,
        skipped_ids: [0; NAMED],
        trace_id: 0,
    };
    if IN_USE.swap(true, SeqCst) {
        outcome.in_progress = InProgress::Left {
            why: "another dump is being written",
        };
        return outcome;
    }
    // SAFETY: IN_USE is ours until the end of this function.
    let (rec, reached, counted) = unsafe {
        (
            &mut *SCRATCH.rec.get(),
            &mut *SCRATCH.reached.get(),
            &mut *SCRATCH.counted.get(),
        )
    };
    dump_with(ring, deadline, out, rec, reached, counted, &mut outcome);
    IN_USE.store(false, SeqCst);
    outcome
}

fn expired(deadline: u64) -> bool {
    crate::base::clock::monotonic_ns() >= deadline
}

fn pause() {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 500_000,
    };
    // SAFETY: nanosleep is async-signal-safe; a valid timespec.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// The trace's id as the file header the ring keeps says it.
fn header_trace_id(view: &super::ring::View<'_>) -> u64 {
    view.header()
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The ring's complete generations only (the header first).
fn write_done(view: &super::ring::View<'_>, out: &mut dyn FnMut(&[u8]) -> bool) -> Option<u64> {
    if view.header().is_empty() {
        return None;
    }
    out(view.header());
    let mut last = None;
    for k in view.done() {
        out(&k.bytes);
        last = Some(k.number);
    }
    last
}

fn dump_with(
    ring: &Ring,
    deadline: u64,
    out: &mut dyn FnMut(&[u8]) -> bool,
    rec: &mut [u8; SCRATCH_LEN],
    reached: &mut [bool; MAX_THREADS],
    counted_now: &mut [bool; MAX_THREADS],
    outcome: &mut Outcome,
) {
    let done_only = |outcome: &mut Outcome, out: &mut dyn FnMut(&[u8]) -> bool, why| {
        outcome.in_progress = InProgress::Left { why };
        loop {
            if let Some(view) = ring.try_view() {
                outcome.last = write_done(&view, out);
                outcome.trace_id = header_trace_id(&view);
                return;
            }
            if expired(deadline) {
                return;
            }
            pause();
        }
    };
    let g = CURRENT.load(SeqCst);
    if g == 0 {
        return done_only(outcome, out, "not recording");
    }
    if READY.load(SeqCst) != g {
        return done_only(outcome, out, "a rollover was under way");
    }
    let Some(pass) = PassToken::try_take() else {
        return done_only(outcome, out, "the tracer was in a pass over the threads");
    };
    let Some(reg) = REGISTRY.try_lock_in_signal_handler() else {
        drop(pass);
        return done_only(outcome, out, "the thread registry was locked");
    };
    let threads: &[std::sync::Arc<super::ThreadTrace>] = &reg;
    let n = threads.len();
    if n > MAX_THREADS {
        drop(reg);
        drop(pass);
        return done_only(outcome, out, "more recording threads than a dump can list");
    }
    // The writer thread never records: its gate is not claimed.
    for (c, t) in counted_now.iter_mut().zip(threads.iter()) {
        *c = t.records();
    }
    let counted = |i: usize| counted_now[i];
    let gate_of = |i: usize| counted(i).then(|| &threads[i].gate);
    // Attempts of a few ms each: between them every claim is released, so
    // a thread held up by one spinning on its claimed gate can finish.
    gate::claim_all_at_once(
        n,
        gate_of,
        reached,
        crate::base::clock::monotonic_ns,
        ATTEMPT_NS,
        deadline,
        pause,
    );
    for (i, t) in threads.iter().enumerate() {
        if counted(i) && !reached[i] {
            if outcome.skipped < NAMED {
                outcome.skipped_ids[outcome.skipped] = t.id;
            }
            outcome.skipped += 1;
        }
    }
    let fg = file_generation(g);
    let slot_of = |i: usize| {
        // SAFETY: thread i's gate is claimed by us (reached) and no
        // section is running: its slot is not being written.
        unsafe { &*threads[i].slots[(g & 1) as usize].get() }
    };
    // What the ring must hold of generation g: its header batch and every
    // batch the threads handed over.
    let in_generation = |i: usize| reached[i] && counted(i) && slot_of(i).generation == g;
    let expected = 1
        + (0..n)
            .filter(|&i| in_generation(i))
            .map(|i| slot_of(i).batches)
            .sum::<u64>();
    let rolled = CURRENT.load(SeqCst) != g;
    let complete = outcome.skipped == 0 && !rolled;
    let mut view = None;
    loop {
        if let Some(v) = ring.try_view() {
            let (number, batches, header) = v.open_counts();
            if !complete || (number == fg && batches == expected && header) {
                view = Some(v);
                break;
            }
            if expired(deadline) {
                view = Some(v);
                break;
            }
        } else if expired(deadline) {
            break;
        }
        pause();
    }
    if let Some(view) = view {
        outcome.last = write_done(&view, out);
        let (number, batches, header) = view.open_counts();
        let all_there = number == fg && batches == expected && header;
        let trace_id = header_trace_id(&view);
        outcome.trace_id = trace_id;
        if outcome.last.is_none() && view.header().is_empty() {
            outcome.in_progress = InProgress::Left {
                why: "the recorder had written nothing yet",
            };
        } else if complete && all_there {
            out(view.open());
            let mut end = Rec::new(rec, RecordKind::GenerationEnd);
            end.bytes(&trace_id.to_le_bytes());
            end.uvarint(fg);
            // The count, then the pairs: counted first, written second.
            // The header batch (thread 0) is listed first, as every
            // generation end lists it.
            // (Every counted thread was reached: `complete`.)
            let listed = (0..n).filter(|&i| in_generation(i)).count();
            end.uvarint(listed as u64 + 1);
            end.uvarint(0);
            end.uvarint(1);
            for (i, t) in threads.iter().enumerate() {
                if !in_generation(i) {
                    continue;
                }
                let slot = slot_of(i);
                let mut count = slot.batches;
                if slot.buf.capacity() != 0 {
                    out(&frame(RecordKind::Batch, &slot.buf));
                    out(&slot.buf);
                    count += 1;
                }
                end.uvarint(t.id);
                end.uvarint(count);
            }
            out(end.finish());
            outcome.last = Some(fg);
            outcome.in_progress = InProgress::Written {
                generation: fg,
                threads: listed,
            };
        } else if view.last_done() + 1 == fg && !view.header().is_empty() {
            let why = if outcome.skipped > 0 {
                "threads were inside their sections"
            } else if rolled {
                "a rollover began"
            } else {
                "the writer had not handed all of its batches to the recorder"
            };
            let mut loss = Rec::new(rec, RecordKind::Loss);
            loss.bytes(&trace_id.to_le_bytes());
            loss.uvarint(fg);
            let listed = (0..n).filter(|&i| counted(i) && !reached[i]).count()
                + (0..n).filter(|&i| in_generation(i)).count();
            loss.uvarint(listed as u64);
            for (i, t) in threads.iter().enumerate() {
                if !counted(i) {
                    continue;
                }
                if !reached[i] {
                    // Not reached: what it lost is unknown.
                    loss.uvarint(t.id);
                    loss.uvarint(0);
                    loss.uvarint(0);
                    loss.uvarint(0);
                } else if in_generation(i) {
                    // Its batches of the generation, and the events and
                    // bytes of the one being filled.
                    let slot = slot_of(i);
                    let partial = u64::from(slot.buf.capacity() != 0);
                    loss.uvarint(t.id);
                    loss.uvarint(slot.batches + partial);
                    loss.uvarint(slot.batch_events);
                    loss.uvarint(slot.buf.len() as u64);
                }
            }
            out(loss.finish());
            outcome.last = Some(fg);
            outcome.in_progress = InProgress::Lost {
                generation: fg,
                why,
            };
        } else {
            outcome.in_progress = InProgress::Left {
                why: "the writer was more than a generation behind",
            };
        }
        drop(view);
    } else {
        outcome.in_progress = InProgress::Left {
            why: "the recorder's memory stayed locked",
        };
    }
    gate::release_claims(n, gate_of, |i| reached[i]);
    drop(reg);
    drop(pass);
}
