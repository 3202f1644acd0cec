//! The validator: the state machines of DESIGN.md ("The state machines a
//! trace obeys"), rebuilt per generation from the header's statuses and
//! the per-thread streams.
//!
//! Streams are merged by a frontier, as Go's parser does: each stream's
//! next event is applied when its preconditions hold; an event whose
//! preconditions another stream may still satisfy (a `P start` waiting for
//! the `P steal` that frees the P, an acknowledgement waiting for its
//! request) waits; when no stream can advance, the trace is rejected with
//! the blocked event that can never become legal, or else the earliest
//! blocked one. Sequence numbers order events about one P or thread across
//! streams, so the verdict never depends on timestamps from different
//! threads (only the choice of message may).
//!
//! Ranges may cross the trace's edges: an end whose begin came before the
//! trace (a region, a task, a lock wait) is legal and counted, and so is a
//! range still open at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::decode::Decoder;
use super::parse::{Event, Generation, IdHash, Layout, ReadError, Trace};
use crate::format::EventKind;

use header::{check_proc_owners, header, status};
use step::{TASK_BEGUN, TASK_ENDED, step};

/// What a valid trace contained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub generations: usize,
    pub threads: usize,
    /// Ends whose begins came before the trace (regions, tasks, lock waits).
    pub crossed_start: u64,
    /// Ranges still open at the end (regions, tasks, stops, hooks, lock
    /// waits, stall episodes).
    pub open_at_end: u64,
    /// Events by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// `unblock` events whose waker was another thread.
    pub cross_thread_unblocks: u64,
    /// The largest generation's record bodies, in bytes: what reading the
    /// trace buffers at most.
    pub max_generation_bytes: usize,
    /// Bytes read (the file's size).
    pub bytes: u64,
    /// The trace was cut short (its end marker missing, its last record
    /// incomplete: a program killed while tracing): everything before is
    /// the complete generations, all consistent; what follows is lost.
    pub cut: Option<Cut>,
    /// Generations dropped while recording (a sink fell behind), and what
    /// they held: not checked, not counted in `generations` or `events`.
    pub lost_generations: u64,
    pub lost_events: u64,
    pub lost_bytes: u64,
}

/// Where a trace was cut short.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// The last complete generation (its number in the file).
    pub after_generation: u64,
    /// Where the complete part ends (just after that generation's end).
    pub at_byte: u64,
    /// Bytes after it: the start of a generation that never ended.
    pub lost_bytes: u64,
    /// The reader's message about the end of the input.
    pub why: String,
}

impl Cut {
    /// "cut short after generation 7 at byte 1234 (56 bytes after it
    /// lost): ..."
    pub fn describe(&self) -> String {
        format!(
            "cut short after generation {} at byte {} ({} byte(s) of an unfinished generation after it are lost: at most the last generation, {} ms by default, of recording): {}",
            self.after_generation,
            self.at_byte,
            self.lost_bytes,
            crate::format::DEFAULT_GENERATION_MS,
            self.why
        )
    }
}

/// "12.345678 ms" for a trace timestamp.
pub fn ms(ts: u64) -> String {
    format!("{}.{:06} ms", ts / 1_000_000, ts % 1_000_000)
}

/// A thread's state as the trace describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TS {
    Running(u64),
    Runnable,
    /// Inside a blocking region, with its P (SYSCALL) or without (taken).
    Blocking(Option<u64>),
    Waiting,
    Detached,
}

impl TS {
    fn name(self) -> String {
        match self {
            TS::Running(p) => format!("RUNNING on P {p}"),
            TS::Runnable => "RUNNABLE".into(),
            TS::Blocking(Some(p)) => format!("BLOCKING with P {p}"),
            TS::Blocking(None) => "BLOCKING without a P".into(),
            TS::Waiting => "WAITING".into(),
            TS::Detached => "detached".into(),
        }
    }
}

#[derive(Default)]
struct Thread {
    /// None: not attached (never seen attached in this generation).
    state: Option<TS>,
    seq: u64,
    preempt_requested: u64,
    preempt_acked: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PS {
    Idle,
    Running(u64),
    Syscall(u64),
}

impl PS {
    fn name(self) -> String {
        match self {
            PS::Idle => "IDLE".into(),
            PS::Running(t) => format!("RUNNING for thread {t}"),
            PS::Syscall(t) => format!("SYSCALL for thread {t}"),
        }
    }
}

struct Proc {
    state: PS,
    seq: u64,
}

/// Per-stream ranges.
#[derive(Default)]
struct Ranges {
    regions: u64,
    stw_open: bool,
    hook: Option<u64>,
    lock_wait: Option<u64>,
    /// An `outside wait` not yet resumed: its object.
    outside: Option<u64>,
    /// The stream had an `outside wait` or `outside resume`, or began
    /// inside an outside wait (`outside status`), in this generation: a
    /// resume with no wait open is then impossible, not a wait begun
    /// before the trace.
    outside_seen: bool,
}

/// A verdict's message, formatted only when the generation is being
/// explained (`Gen::explain`): checking decides first and formats only to
/// explain a rejection, so a valid trace formats nothing.
macro_rules! why {
    ($st:expr, $($fmt:tt)*) => {
        if $st.explain {
            explain(format_args!($($fmt)*))
        } else {
            String::new()
        }
    };
}

/// Out of line and cold: keeps the formatting machinery out of `step`,
/// whose frame it would otherwise bloat for every event.
#[cold]
#[inline(never)]
fn explain(args: std::fmt::Arguments<'_>) -> String {
    args.to_string()
}

/// Why an event cannot be applied (yet).
enum Verdict {
    Ok,
    /// Another stream may still make it legal.
    Wait(String),
    /// It can never become legal.
    Bad(String),
}

use Verdict::{Bad, Ok as Apply, Wait};

/// Per-thread records keyed by thread id: a vector, an index by id with
/// the reader's cheap hasher (SipHash was a quarter of checking a demo
/// trace), and the last id looked up, found again without hashing (a
/// stream's events mostly concern its own thread).
struct Table<T> {
    index: HashMap<u64, usize, IdHash>,
    slots: Vec<T>,
    /// (id, slot) of the last lookup; slot `usize::MAX`: none yet.
    last: std::cell::Cell<(u64, usize)>,
}

impl<T: Default> Table<T> {
    fn new() -> Self {
        Table {
            index: HashMap::default(),
            slots: Vec::new(),
            last: std::cell::Cell::new((0, usize::MAX)),
        }
    }
    fn slot(&self, id: u64) -> Option<usize> {
        let (last_id, last_slot) = self.last.get();
        if last_slot != usize::MAX && last_id == id {
            return Some(last_slot);
        }
        let i = *self.index.get(&id)?;
        self.last.set((id, i));
        Some(i)
    }
    fn get(&self, id: &u64) -> Option<&T> {
        self.slot(*id).map(|i| &self.slots[i])
    }
    fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        self.slot(*id).map(|i| &mut self.slots[i])
    }
    /// The record of `id`, made (default) if there is none.
    fn entry(&mut self, id: u64) -> &mut T {
        let i = match self.slot(id) {
            Some(i) => i,
            None => {
                self.slots.push(T::default());
                let i = self.slots.len() - 1;
                self.index.insert(id, i);
                i
            }
        };
        &mut self.slots[i]
    }
    fn insert(&mut self, id: u64, v: T) {
        *self.entry(id) = v;
    }
    fn values(&self) -> std::slice::Iter<'_, T> {
        self.slots.iter()
    }
}

/// The maps keyed by ids from the trace (threads, tasks) use the reader's
/// cheap hasher.
struct Gen {
    names: HashMap<u64, String, IdHash>,
    threads: Table<Thread>,
    procs: Vec<Proc>,
    stalls: BTreeSet<(u64, u64)>,
    /// Tasks seen: `TASK_BEGUN` and/or `TASK_ENDED` (one map, so a task's
    /// end finds the entry its begin made).
    tasks: HashMap<u64, u8, IdHash>,
    ranges: Table<Ranges>,
    /// Events by kind code (folded into the summary's map at the end: a
    /// map update per event cost more than the rest of the step).
    kinds: [u64; 256],
    /// Format verdicts' messages (see `why!`).
    explain: bool,
}

fn fail<T>(e: &Event, what: String) -> Result<T, ReadError> {
    Err(ReadError {
        message: format!("{what} at {}", e.kind.name()),
        offset: e.offset,
        time: Some(e.ts),
    })
}

/// Validate a parsed trace.
pub fn validate(t: &Trace) -> Result<Summary, ReadError> {
    let mut sum = Summary {
        events: t.events,
        generations: t.generations.len(),
        bytes: t.bytes as u64,
        ..Default::default()
    };
    if t.generations.is_empty() && t.lost.is_empty() {
        return Err(no_generation());
    }
    for (_, lost) in &t.lost {
        sum.lost_generations += 1;
        sum.lost_events += lost.iter().map(|l| l.events).sum::<u64>();
        sum.lost_bytes += lost.iter().map(|l| l.bytes).sum::<u64>();
    }
    let mut all_threads = HashSet::new();
    for g in &t.generations {
        generation(g, &mut sum)?;
        all_threads.extend(g.streams.keys().copied().filter(|id| *id != 0));
        sum.max_generation_bytes = sum.max_generation_bytes.max(g.bytes);
    }
    sum.threads = all_threads.len();
    Ok(sum)
}

/// The error for a trace that ended before any generation.
pub fn no_generation() -> ReadError {
    ReadError {
        message: "a trace with no generation (nothing was recorded between the header and the end marker)".into(),
        offset: super::parse::first_record_offset(),
        time: None,
    }
}

/// A stream's events, one at a time, as the frontier consumes them.
trait Source {
    fn thread(&self) -> u64;
    /// The next events, not consumed (empty at the end of the stream).
    fn ahead(&mut self) -> Result<&[Event], ReadError>;
    /// Consume the first `n` events `ahead` returned.
    fn consume(&mut self, n: usize);
    /// The next event, not consumed.
    fn peek(&mut self) -> Result<Option<&Event>, ReadError> {
        Ok(self.ahead()?.first())
    }
}

/// A parsed stream.
struct InMemory<'a> {
    thread: u64,
    events: &'a [Event],
    pos: usize,
}

impl Source for InMemory<'_> {
    fn thread(&self) -> u64 {
        self.thread
    }
    fn ahead(&mut self) -> Result<&[Event], ReadError> {
        Ok(&self.events[self.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// Events decoded at a time per stream: decoding a run of events, then
/// validating them, keeps each loop's code and branch history warm (about
/// a tenth faster on the demo's traces than alternating event by event;
/// 16 was slower, 256 no faster), and holds only this many decoded events
/// per stream.
const DECODE_AHEAD: usize = 64;

/// A stream decoded as the frontier reaches it, `DECODE_AHEAD` events at
/// a time: only those are held.
struct Decoded<'a> {
    decoder: Decoder<'a>,
    /// `ahead[pos..filled]` are decoded and not yet consumed. Slots are
    /// made as needed (up to `DECODE_AHEAD`) and reused: a stream of a few
    /// events costs a few slots, so many tiny streams stay cheap.
    ahead: Vec<Event>,
    pos: usize,
    filled: usize,
}

impl<'a> Decoded<'a> {
    fn new(decoder: Decoder<'a>) -> Self {
        Decoded {
            decoder,
            ahead: Vec::new(),
            pos: 0,
            filled: 0,
        }
    }
}

impl Source for Decoded<'_> {
    fn thread(&self) -> u64 {
        self.decoder.thread()
    }
    fn ahead(&mut self) -> Result<&[Event], ReadError> {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
            while self.filled < DECODE_AHEAD {
                if self.filled == self.ahead.len() {
                    // Doubling from one slot (not `Vec`'s four): an empty
                    // stream costs one event.
                    let n = self.ahead.len().clamp(1, DECODE_AHEAD - self.ahead.len());
                    self.ahead.reserve_exact(n);
                    self.ahead.push(Event::empty());
                }
                if !self.decoder.next_into(&mut self.ahead[self.filled])? {
                    break;
                }
                self.filled += 1;
            }
        }
        Ok(&self.ahead[self.pos..self.filled])
    }
    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

/// Validate one parsed generation, adding to `sum` (events by kind,
/// ranges).
pub fn generation(g: &Generation, sum: &mut Summary) -> Result<(), ReadError> {
    let Some(h) = g.streams.get(&0) else {
        let offset = g
            .streams
            .values()
            .find_map(|s| s.events.first().map(|e| e.offset))
            .unwrap_or(0);
        return Err(no_header(g.number, offset));
    };
    let mut st = Gen::new();
    // Names (for messages) from statuses and attaches.
    for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
        for e in &s.events {
            let name = match e.kind {
                EventKind::Attach => s.string(e.args[0]),
                EventKind::ThreadStatus => s.string(e.args[1]),
                _ => continue,
            };
            st.names.entry(*id).or_insert_with(|| name.to_string());
        }
    }
    let sources = g
        .streams
        .iter()
        .filter(|(id, _)| **id != 0)
        .map(|(&thread, s)| InMemory {
            thread,
            events: &s.events,
            pos: 0,
        })
        .collect();
    run(g.number, &h.events, sources, st, sum)
}

/// Validate one generation straight from its bytes, decoding each
/// stream's events as the frontier reaches them (none is kept once
/// applied). A rejection is then explained by validating the generation
/// parsed, so that its message is the one `generation` gives: the first
/// decoding error in the input, thread names, the same blocked event.
pub fn check_generation(l: &Layout, data: &[u8], sum: &mut Summary) -> Result<(), ReadError> {
    let fast = (|| {
        if !l.threads.contains_key(&0) {
            return Err(no_header(l.number, 0));
        }
        let mut header = Vec::new();
        let mut d = l.decoder(data, 0);
        while let Some(e) = d.next_event()? {
            header.push(e);
        }
        let sources = l
            .threads
            .keys()
            .filter(|id| **id != 0)
            .map(|&thread| Decoded::new(l.decoder(data, thread)))
            .collect();
        let quiet = Gen {
            explain: false,
            ..Gen::new()
        };
        run(l.number, &header, sources, quiet, sum)
    })();
    match fast {
        Ok(()) => Ok(()),
        Err(quick) => {
            let g = l.materialise(data)?;
            generation(&g, &mut Summary::default())?;
            // Both ways reject the same traces; should they ever
            // disagree, the rejection found stands.
            Err(quick)
        }
    }
}

fn no_header(number: u64, offset: usize) -> ReadError {
    ReadError {
        message: format!("generation {number} has no header batch (clock and statuses)"),
        offset,
        time: None,
    }
}

impl Gen {
    fn new() -> Gen {
        Gen {
            names: HashMap::default(),
            threads: Table::new(),
            procs: Vec::new(),
            stalls: BTreeSet::new(),
            tasks: HashMap::default(),
            ranges: Table::new(),
            kinds: [0; 256],
            explain: true,
        }
    }
}

/// The header, the statuses, then the frontier over `sources`.
fn run<S: Source>(
    number: u64,
    header_events: &[Event],
    mut sources: Vec<S>,
    mut st: Gen,
    sum: &mut Summary,
) -> Result<(), ReadError> {
    // Stream i's thread has slot i in both tables (`step`'s `me`).
    for s in &sources {
        st.threads.entry(s.thread());
        st.ranges.entry(s.thread());
    }
    header(number, header_events, &mut st)?;
    // Statuses: the first event of a stream (after its strings) describes
    // the thread when the generation began.
    for s in sources.iter_mut() {
        let id = s.thread();
        while let Some(e) = s.peek()? {
            if e.kind != EventKind::String {
                break;
            }
            st.kinds[e.kind as usize] += 1;
            s.consume(1);
        }
        if let Some(e) = s.peek()? {
            if e.kind == EventKind::ThreadStatus {
                st.kinds[e.kind as usize] += 1;
                status(id, e, &mut st)?;
                s.consume(1);
            }
        }
    }
    check_proc_owners(header_events, &st)?;
    // The frontier.
    loop {
        let mut progressed = false;
        let mut blocked: Vec<(Event, u64, Verdict)> = Vec::new();
        for (me, s) in sources.iter_mut().enumerate() {
            let id = s.thread();
            // Apply the stream's events a run at a time, until one cannot.
            loop {
                let events = s.ahead()?;
                if events.is_empty() {
                    break;
                }
                let mut applied = 0;
                let mut stop = None;
                for e in events {
                    match step(id, me, e, &mut st, sum) {
                        Apply => {
                            st.kinds[e.kind as usize] += 1;
                            applied += 1;
                        }
                        v => {
                            stop = Some((*e, id, v));
                            break;
                        }
                    }
                }
                progressed |= applied > 0;
                s.consume(applied);
                if let Some(b) = stop {
                    blocked.push(b);
                    break;
                }
            }
        }
        if blocked.is_empty() {
            break;
        }
        if !progressed {
            return stuck(blocked);
        }
    }
    for r in st.ranges.values() {
        sum.open_at_end = sum
            .open_at_end
            .saturating_add(r.regions)
            .saturating_add(r.stw_open as u64)
            .saturating_add(r.hook.is_some() as u64)
            .saturating_add(r.lock_wait.is_some() as u64)
            .saturating_add(r.outside.is_some() as u64);
    }
    let tasks = |flags: u8| st.tasks.values().filter(|f| **f == flags).count() as u64;
    sum.open_at_end += tasks(TASK_BEGUN);
    sum.open_at_end += st.stalls.len() as u64;
    for k in crate::format::EventKind::ALL {
        if st.kinds[*k as usize] > 0 {
            *sum.by_kind.entry(k.name()).or_default() += st.kinds[*k as usize];
        }
    }
    // Ended here, begun before the trace (or the generation): legal.
    sum.crossed_start += tasks(TASK_ENDED);
    Ok(())
}

/// No stream can advance: report the event that can never become legal
/// (the earliest such), else the earliest waiting one.
fn stuck(mut blocked: Vec<(Event, u64, Verdict)>) -> Result<(), ReadError> {
    blocked.sort_by_key(|(e, id, v)| (!matches!(v, Bad(_)), e.ts, *id));
    let (e, _, v) = blocked.swap_remove(0);
    match v {
        Bad(m) => fail(&e, m),
        Wait(m) => fail(&e, format!("{m} (no stream can advance)")),
        Apply => unreachable!("only blocked events are kept"),
    }
}

fn who(st: &Gen, thread: u64) -> String {
    match st.names.get(&thread) {
        Some(n) if !n.is_empty() => format!("thread {thread} ({n})"),
        _ => format!("thread {thread}"),
    }
}

// After `why!`, which they use (macros are in scope from their definition on).
mod header;
mod step;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        BatchBuilder, RecordKind, Val, file_header, generation_end_body, put_record, trace_end_body,
    };

    const ID: u64 = 77;

    /// A thread and the events of its one batch.
    type ThreadEvents = (u64, Vec<(EventKind, Vec<Val<'static>>)>);

    /// A one-generation trace: a header batch with a clock and a status of
    /// thread 5, then one batch per (thread, events) given.
    fn trace(threads: &[ThreadEvents]) -> Vec<u8> {
        let mut out = file_header(ID).to_vec();
        let mut h = BatchBuilder::new(ID, 1, 0, 0, 0);
        h.event(EventKind::ClockInfo, 0, &[Val::U(1_000_000_000), Val::U(0)]);
        put_record(&mut out, RecordKind::Batch, &h.body);
        let mut counts = vec![(0, 1)];
        // Thread 5 ('main') was attached when the generation began: its
        // stream starts with its status.
        let mut all: Vec<ThreadEvents> = threads.to_vec();
        if !all.iter().any(|(t, _)| *t == 5) {
            all.push((5, vec![]));
        }
        for (thread, events) in &all {
            let mut b = BatchBuilder::new(ID, 1, *thread, 0, 10);
            b.event(EventKind::String, 10, &[Val::U(1), Val::Bytes(b"main")]);
            if *thread == 5 {
                b.event(
                    EventKind::ThreadStatus,
                    10,
                    &[
                        Val::U(5),
                        Val::U(1),
                        Val::U(2),
                        Val::U(0),
                        Val::U(0),
                        Val::U(0),
                        Val::U(0),
                        Val::U(0),
                    ],
                );
            }
            for (i, (k, v)) in events.iter().enumerate() {
                b.event(*k, 10 + i as u64, v);
            }
            put_record(&mut out, RecordKind::Batch, &b.body);
            counts.push((*thread, 1));
        }
        counts.sort();
        put_record(
            &mut out,
            RecordKind::GenerationEnd,
            &generation_end_body(ID, 1, &counts),
        );
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 1));
        out
    }

    fn check(bytes: &[u8]) -> Result<Summary, ReadError> {
        validate(&crate::reader::parse(bytes)?)
    }

    use EventKind::*;

    #[test]
    fn ranges_may_cross_the_edges_and_are_counted() {
        let s = check(&trace(&[
            (
                5,
                vec![
                    (RegionEnd, vec![]),
                    (RegionBegin, vec![Val::U(1)]),
                    (TaskEnd, vec![Val::U(9)]),
                ],
            ),
            (
                8,
                vec![
                    (TaskBegin, vec![Val::U(3), Val::U(1)]),
                    (StwBegin, vec![Val::U(1)]),
                ],
            ),
        ]))
        .unwrap();
        assert_eq!(
            s.crossed_start, 2,
            "a region and a task ended before their begins"
        );
        assert_eq!(s.open_at_end, 3, "a region, a task and a stop still open");
        assert_eq!(s.threads, 2);
        assert_eq!(s.by_kind["region end"], 1);
    }

    #[test]
    fn a_task_may_end_on_another_thread() {
        let s = check(&trace(&[
            (5, vec![(TaskEnd, vec![Val::U(4)])]),
            (8, vec![(TaskBegin, vec![Val::U(4), Val::U(1)])]),
        ]))
        .unwrap();
        assert_eq!((s.crossed_start, s.open_at_end), (0, 0));
    }

    fn rejected(threads: &[ThreadEvents], wanted: &str) {
        let e = check(&trace(threads)).unwrap_err();
        assert!(e.message.contains(wanted), "{e}");
        assert!(
            e.to_string().ends_with(" ms") && e.time.is_some(),
            "messages carry the time: {e}"
        );
    }

    #[test]
    fn empty_traces_missing_headers_and_huge_depths() {
        let mut out = file_header(ID).to_vec();
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 0));
        let e = check(&out).unwrap_err();
        assert!(e.message.contains("no generation"), "{e}");

        let mut out = file_header(ID).to_vec();
        let mut b = BatchBuilder::new(ID, 1, 5, 0, 0);
        b.event(Log, 0, &[Val::U(0), Val::U(0)]);
        put_record(&mut out, RecordKind::Batch, &b.body);
        put_record(
            &mut out,
            RecordKind::GenerationEnd,
            &generation_end_body(ID, 1, &[(5, 1)]),
        );
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 1));
        let e = check(&out).unwrap_err();
        assert!(e.message.contains("no header batch"), "{e}");

        // A hostile status with an absurd open-region depth: no overflow.
        let mut out = file_header(ID).to_vec();
        let mut h = BatchBuilder::new(ID, 1, 0, 0, 0);
        h.event(ClockInfo, 0, &[Val::U(1), Val::U(0)]);
        put_record(&mut out, RecordKind::Batch, &h.body);
        for t in [5u64, 6] {
            let mut b = BatchBuilder::new(ID, 1, t, 0, 0);
            b.event(
                ThreadStatus,
                0,
                &[
                    Val::U(t),
                    Val::U(0),
                    Val::U(2),
                    Val::U(0),
                    Val::U(0),
                    Val::U(0),
                    Val::U(0),
                    Val::U(u64::MAX),
                ],
            );
            if t == 5 {
                b.event(RegionBegin, 0, &[Val::U(0)]);
            }
            put_record(&mut out, RecordKind::Batch, &b.body);
        }
        put_record(
            &mut out,
            RecordKind::GenerationEnd,
            &generation_end_body(ID, 1, &[(0, 1), (5, 1), (6, 1)]),
        );
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 1));
        assert_eq!(check(&out).unwrap().open_at_end, u64::MAX);
    }

    #[test]
    fn every_rule_rejects_its_violation_with_its_message() {
        rejected(
            &[(5, vec![(Attach, vec![Val::U(1), Val::U(0)])])],
            "thread 5 (main) is already attached",
        );
        rejected(
            &[(8, vec![(Detach, vec![Val::U(0), Val::U(1), Val::U(0)])])],
            "thread 8 is not attached",
        );
        rejected(
            &[(5, vec![(Detach, vec![Val::U(0), Val::U(1), Val::U(0)])])],
            "thread 5 (main) is RUNNABLE, not RUNNING at detach",
        );
        rejected(
            &[(
                8,
                vec![
                    (Log, vec![Val::U(1), Val::U(1)]),
                    (
                        ThreadStatus,
                        vec![
                            Val::U(8),
                            Val::U(0),
                            Val::U(1),
                            Val::U(0),
                            Val::U(0),
                            Val::U(0),
                            Val::U(0),
                            Val::U(0),
                        ],
                    ),
                ],
            )],
            "thread 8's status is not its first event",
        );
        // Detached, a thread may go on recording user events, and attach again.
        check(&trace(&[(
            8,
            vec![
                (Attach, vec![Val::U(1), Val::U(0)]),
                (ProcsChange, vec![Val::U(1)]),
                (ProcStart, vec![Val::U(0), Val::U(1)]),
                (Detach, vec![Val::U(0), Val::U(2), Val::U(0)]),
                (Log, vec![Val::U(1), Val::U(1)]),
                (Attach, vec![Val::U(1), Val::U(1)]),
            ],
        )]))
        .unwrap();
        rejected(
            &[
                (5, vec![(TaskBegin, vec![Val::U(2), Val::U(0)])]),
                (8, vec![(TaskBegin, vec![Val::U(2), Val::U(0)])]),
            ],
            "begins task 2, which was already begun",
        );
        rejected(
            &[(
                5,
                vec![(TaskEnd, vec![Val::U(2)]), (TaskEnd, vec![Val::U(2)])],
            )],
            "ends task 2 twice",
        );
        rejected(
            &[(5, vec![(StwEnd, vec![])])],
            "ends a stop-the-world it did not begin",
        );
        rejected(
            &[(
                5,
                vec![(StwBegin, vec![Val::U(0)]), (StwBegin, vec![Val::U(0)])],
            )],
            "begins a stop-the-world inside its own",
        );
        rejected(
            &[(
                5,
                vec![(ProcStatus, vec![Val::U(0), Val::U(0), Val::U(0), Val::U(0)])],
            )],
            "records a header event",
        );
    }
}
