#![cfg(not(loom))]
//! The trace reader and validator, from the outside: traces are built by
//! hand with the public encoder (`rtcore::format`) and read back with the
//! public reader (`rtcore::reader`).
//!
//! 1. One valid generation in which every event kind occurs, round-tripped
//!    argument by argument.
//! 2. A mutation corpus: every single-event drop, duplicate and swap of that
//!    trace, checked without panicking; every validator rule is hit by some
//!    mutation (or, where no single mutation can reach it, by a targeted
//!    hand-written one), and every rejection names an event by offset and
//!    time.
//! 3. The verdict does not depend on timestamps or on the order of batch
//!    records in the file.
//! 4. Streams split over several batches still validate; a lost middle
//!    batch is caught by the parser.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rtcore::format::{
    Arg, BatchBuilder, EventKind, RecordKind, Val, file_header, generation_end_body, put_record,
    trace_end_body,
};
use rtcore::reader::{ReadError, Summary, check, parse, validate};

use EventKind as K;

const ID: u64 = 0x7ace_7ace_0001;
/// Bytes before the first record.
const FILE_HEADER_LEN: usize = 24;

// ---- a model of a trace ----------------------------------------------------

/// One argument as the model writes it: strings by text, so a stream's
/// string table can be rebuilt after any mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum A {
    U(u64),
    S(i64),
    /// A `Str` argument; "" is string id 0 (no string).
    T(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Ev {
    kind: EventKind,
    args: Vec<A>,
}

/// The events of one thread (0: the header batch). `String` events are not
/// part of the model: the encoder defines every string a stream uses at the
/// start of its first batch.
#[derive(Clone, Debug)]
struct Stream {
    thread: u64,
    events: Vec<Ev>,
    /// Each event's time (kept by position when a mutation swaps events).
    ts: Vec<u64>,
}

fn u(v: u64) -> A {
    A::U(v)
}
fn s(v: i64) -> A {
    A::S(v)
}
fn t(v: &'static str) -> A {
    A::T(v)
}
fn ev(kind: EventKind, args: &[A]) -> Ev {
    Ev {
        kind,
        args: args.to_vec(),
    }
}

/// A thread status: thread, name, state (1 RUNNING, 2 RUNNABLE, 3 BLOCKING,
/// 4 WAITING), P+1, thread seq, requests, acks, region depth.
#[allow(clippy::too_many_arguments)]
fn status(
    thread: u64,
    name: &'static str,
    state: u64,
    p1: u64,
    seq: u64,
    req: u64,
    ack: u64,
    depth: u64,
) -> Ev {
    ev(
        K::ThreadStatus,
        &[
            u(thread),
            t(name),
            u(state),
            u(p1),
            u(seq),
            u(req),
            u(ack),
            u(depth),
        ],
    )
}

const SYSMON: u64 = 1;
const HOOKS: u64 = 2;
/// Unattached; its stream begins inside a hook run and a stop.
const ROLLED: u64 = 3;
const MAIN: u64 = 10;
const WORKER: u64 = 11;
const SLEEPER: u64 = 12;
const NEWBIE: u64 = 13;
const BLOCKED: u64 = 14;
/// Outside the world (never attached): its stream begins inside a
/// condition wait (`outside status`) and ends inside another.
const OUTSIDER: u64 = 15;
/// Outside the world: its first event resumes a wait begun before the
/// trace.
const LATE: u64 = 16;

/// The valid generation. Ps: P0 RUNNING for 10 (seq 5), P1 IDLE (seq 2),
/// P2 STOPPED (seq 7), P3 SYSCALL for 14 (seq 4); P4 is added by thread 13.
/// Every P's last sequence-carrying event is followed, in its emitter's
/// stream, by an event that needs the state it leaves (or, for a steal, by
/// the victim's exit that waits for it), so dropping any of them is caught.
///
/// Written as one story in a legal global order; each event's time is its
/// place in the story, so timestamps are causally consistent across
/// threads, as a real recorder's would be.
fn valid() -> Vec<Stream> {
    use K::*;
    let header = vec![
        ev(ClockInfo, &[u(1_000_000_000), u(1_700_000_000_000_000_000)]),
        ev(ProcsChange, &[u(4)]),
        ev(ProcStatus, &[u(0), u(1), u(MAIN), u(5)]),
        ev(ProcStatus, &[u(1), u(0), u(0), u(2)]),
        ev(ProcStatus, &[u(2), u(3), u(0), u(7)]),
        ev(ProcStatus, &[u(3), u(2), u(BLOCKED), u(4)]),
        ev(StallStatus, &[u(1), u(MAIN)]),
        // Thread 3's stream begins inside hook 9's run and inside a stop of
        // the world (the generation rolled over meanwhile).
        ev(HookStatus, &[u(ROLLED), u(9)]),
        ev(StwStatus, &[u(ROLLED)]),
        // Thread 15 was waiting on condition 0x7000 when it began.
        ev(OutsideStatus, &[u(OUTSIDER), u(2), u(0x7000)]),
    ];
    // Threads 1 (sysmon) and 2 (the hook thread) are never attached: their
    // events are about others. Thread 13 attaches during the generation
    // (no status); 10, 11, 12 and 14 begin RUNNING, RUNNABLE, WAITING and
    // BLOCKING with their P.
    let story: Vec<(u64, Ev)> = vec![
        (MAIN, status(MAIN, "main", 1, 1, 0, 0, 0, 0)),
        (WORKER, status(WORKER, "worker", 2, 0, 3, 1, 1, 1)),
        (SLEEPER, status(SLEEPER, "sleeper", 4, 0, 7, 0, 0, 0)),
        (BLOCKED, status(BLOCKED, "blocked", 3, 4, 0, 0, 0, 0)),
        (SYSMON, ev(StallResolved, &[u(1), u(MAIN)])),
        (ROLLED, ev(HookEnd, &[u(9)])),
        (ROLLED, ev(StwEnd, &[])),
        (ROLLED, ev(Log, &[t("rolled"), t("over")])),
        (MAIN, ev(RegionBegin, &[t("main region")])),
        (MAIN, ev(TaskBegin, &[u(1), t("load")])),
        (
            MAIN,
            ev(LockContended, &[u(0x1000), t("big lock"), u(WORKER)]),
        ),
        (MAIN, ev(LockAcquired, &[u(0x1000), u(1500), u(WORKER)])),
        (MAIN, ev(Counter, &[t("items"), s(-42)])),
        (MAIN, ev(Log, &[t("info"), t("hello")])),
        (MAIN, ev(RankViolation, &[t("rank A"), t("rank B")])),
        (MAIN, ev(StwBegin, &[t("gc")])),
        (MAIN, ev(StwEnd, &[])),
        (SYSMON, ev(PreemptRequest, &[u(MAIN), u(1), u(1)])),
        (MAIN, ev(PreemptAck, &[u(1)])),
        (MAIN, ev(EnterBlocking, &[u(0), u(6), t("read")])),
        (MAIN, ev(ExitBlockingFast, &[u(0), u(7)])),
        (MAIN, ev(EnterBlocking, &[u(0), u(8), t("write")])),
        (BLOCKED, ev(ExitBlockingFast, &[u(3), u(5)])),
        (BLOCKED, ev(Log, &[t(""), t("back")])),
        // Still open at the end.
        (BLOCKED, ev(TaskBegin, &[u(3), t("never ends")])),
        // Begun before the trace: crosses the start.
        (BLOCKED, ev(TaskEnd, &[u(7)])),
        (BLOCKED, ev(ProcStop, &[u(3), u(6)])),
        (BLOCKED, ev(ProcStart, &[u(3), u(7)])),
        (BLOCKED, ev(Block, &[u(3), u(2), u(3), u(8)])),
        (HOOKS, ev(HookBegin, &[u(1), t("atexit")])),
        (HOOKS, ev(Log, &[t("hook"), t("running")])),
        (SYSMON, ev(ProcSteal, &[u(0), u(9), u(MAIN)])),
        (MAIN, ev(ExitBlockingSlow, &[])),
        (MAIN, ev(ProcStart, &[u(1), u(3)])),
        (WORKER, ev(ProcStart, &[u(0), u(10)])),
        (WORKER, ev(RegionEnd, &[])),
        (SYSMON, ev(StallOpen, &[u(2), u(0x1000)])),
        (MAIN, ev(Block, &[u(1), u(0x1000), u(1), u(4)])),
        (NEWBIE, ev(Attach, &[t("newbie"), u(1)])),
        (NEWBIE, ev(ProcsChange, &[u(5)])),
        (NEWBIE, ev(TaskBegin, &[u(2), t("background")])),
        (NEWBIE, ev(ProcStart, &[u(1), u(5)])),
        (NEWBIE, ev(Log, &[t("info"), t("on P1")])),
        (WORKER, ev(Unblock, &[u(MAIN), u(2), u(WORKER)])),
        (WORKER, ev(Unblock, &[u(SLEEPER), u(8), u(WORKER)])),
        (SYSMON, ev(PreemptRequest, &[u(WORKER), u(2), u(4)])),
        (SYSMON, ev(StallResolved, &[u(2), u(0x1000)])),
        (WORKER, ev(PreemptAck, &[u(2)])),
        // Begun on thread 13.
        (WORKER, ev(TaskEnd, &[u(2)])),
        (WORKER, ev(Block, &[u(2), u(0x2000), u(0), u(11)])),
        // A timeout: the thread wakes itself, no waker.
        (WORKER, ev(Unblock, &[u(WORKER), u(5), u(0)])),
        (WORKER, ev(ProcStart, &[u(0), u(12)])),
        (WORKER, ev(ProcStop, &[u(0), u(13)])),
        (WORKER, ev(ProcStart, &[u(2), u(8)])),
        (WORKER, ev(EnterBlocking, &[u(2), u(9), t("sleep")])),
        (WORKER, ev(ExitBlockingFast, &[u(2), u(10)])),
        (WORKER, ev(Detach, &[u(2), u(11), u(5)])),
        (WORKER, ev(Attach, &[t("worker"), u(6)])),
        (SLEEPER, ev(ProcStart, &[u(2), u(12)])),
        (SLEEPER, ev(Counter, &[t("depth"), s(7)])),
        // Contended before the trace: crosses the start.
        (SLEEPER, ev(LockAcquired, &[u(0x5000), u(7), u(0)])),
        // Still open at the end.
        (SLEEPER, ev(RegionBegin, &[t("tail")])),
        (SLEEPER, ev(Block, &[u(4), u(0), u(2), u(13)])),
        (HOOKS, ev(Unblock, &[u(SLEEPER), u(9), u(HOOKS)])),
        (HOOKS, ev(HookEnd, &[u(1)])),
        // Begun before the trace: crosses the start.
        (HOOKS, ev(RegionEnd, &[])),
        (HOOKS, ev(HookBegin, &[u(2), t("remover")])),
        (HOOKS, ev(HookEnd, &[u(2)])),
        (HOOKS, ev(Unblock, &[u(BLOCKED), u(1), u(HOOKS)])),
        (NEWBIE, ev(ProcStop, &[u(1), u(6)])),
        (MAIN, ev(ProcStart, &[u(1), u(7)])),
        (MAIN, ev(TaskEnd, &[u(1)])),
        (MAIN, ev(RegionEnd, &[])),
        (MAIN, ev(Detach, &[u(1), u(8), u(2)])),
        (MAIN, ev(Log, &[t("info"), t("detached")])),
        (MAIN, ev(Attach, &[t("main"), u(3)])),
        (NEWBIE, ev(ProcStart, &[u(4), u(1)])),
        (NEWBIE, ev(EnterBlocking, &[u(4), u(2), t("poll")])),
        (SYSMON, ev(ProcSteal, &[u(4), u(3), u(NEWBIE)])),
        (SYSMON, ev(StallOpen, &[u(3), u(1)])),
        (NEWBIE, ev(ExitBlockingSlow, &[])),
        (NEWBIE, ev(ProcStart, &[u(4), u(4)])),
        (
            NEWBIE,
            ev(LockContended, &[u(0x3000), t("small lock"), u(SLEEPER)]),
        ),
        (NEWBIE, ev(LockAcquired, &[u(0x3000), u(20), u(SLEEPER)])),
        (
            NEWBIE,
            ev(
                RwLockContended,
                &[u(0x3800), t("table lock"), u(2), u(SLEEPER), u(0)],
            ),
        ),
        (NEWBIE, ev(LockAcquired, &[u(0x3800), u(35), u(SLEEPER)])),
        (NEWBIE, ev(RankViolation, &[t("rank C"), t("")])),
        (NEWBIE, ev(EnterBlocking, &[u(4), u(5), t("final")])),
        (SYSMON, ev(PreemptRequest, &[u(SLEEPER), u(1), u(10)])),
        (SYSMON, ev(PreemptRequest, &[u(BLOCKED), u(1), u(2)])),
        (SLEEPER, ev(ProcStart, &[u(2), u(14)])),
        (SLEEPER, ev(PreemptAck, &[u(1)])),
        (BLOCKED, ev(ProcStart, &[u(3), u(9)])),
        (BLOCKED, ev(Block, &[u(4), u(0), u(3), u(10)])),
        (BLOCKED, ev(Unblock, &[u(BLOCKED), u(3), u(0)])),
        (BLOCKED, ev(ProcStart, &[u(3), u(11)])),
        (BLOCKED, ev(PreemptAck, &[u(1)])),
        (SYSMON, ev(ProcSteal, &[u(4), u(6), u(NEWBIE)])),
        (NEWBIE, ev(ExitBlockingSlow, &[])),
        (SYSMON, ev(StallResolved, &[u(3), u(1)])),
        (SYSMON, ev(Log, &[t("sysmon"), t("done")])),
        // Outside the world: waits in interposed calls, no P.
        (OUTSIDER, ev(OutsideResume, &[])),
        (OUTSIDER, ev(Log, &[t("outside"), t("running")])),
        (OUTSIDER, ev(OutsideWait, &[u(1), u(0x6000)])),
        (
            OUTSIDER,
            ev(LockContended, &[u(0x6000), t("pthread lock"), u(0)]),
        ),
        (OUTSIDER, ev(LockAcquired, &[u(0x6000), u(30), u(0)])),
        (OUTSIDER, ev(OutsideResume, &[])),
        // Still open at the end.
        (OUTSIDER, ev(OutsideWait, &[u(2), u(0x7000)])),
        (LATE, ev(ThreadName, &[t("late one")])),
        // Began waiting before the trace: crosses the start.
        (LATE, ev(OutsideResume, &[])),
        (LATE, ev(Log, &[t("late"), t("resumed")])),
    ];
    let mut streams = vec![Stream {
        thread: 0,
        ts: (0..header.len() as u64)
            .map(|i| 900_000 + i * 100)
            .collect(),
        events: header,
    }];
    for thread in [
        SYSMON, HOOKS, ROLLED, MAIN, WORKER, SLEEPER, NEWBIE, BLOCKED, OUTSIDER, LATE,
    ] {
        let mut st = Stream {
            thread,
            events: vec![],
            ts: vec![],
        };
        for (i, (th, e)) in story.iter().enumerate() {
            if *th == thread {
                st.events.push(e.clone());
                st.ts.push(1_000_000 + i as u64 * 1_000);
            }
        }
        streams.push(st);
    }
    streams
}

// ---- encoding ------------------------------------------------------------

/// How one stream is laid out in batches.
struct Layout {
    /// Added to every event time of the stream.
    offset: u64,
    /// Indices (into the encoded events, strings included) where a new
    /// batch starts; sorted, in 1..len.
    cuts: Vec<usize>,
    /// Per batch: how far before its first event the base timestamp is.
    slack: Vec<u64>,
}

impl Layout {
    fn plain() -> Layout {
        Layout {
            offset: 0,
            cuts: vec![],
            slack: vec![0],
        }
    }
}

/// A stream's strings, in first-use order; id = index + 1.
fn strings(st: &Stream) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for e in &st.events {
        for a in &e.args {
            if let A::T(x) = a {
                if !x.is_empty() && !v.contains(x) {
                    v.push(x);
                }
            }
        }
    }
    v
}

/// One encoded batch.
struct Batch {
    thread: u64,
    body: Vec<u8>,
}

/// Encode one stream as batches (in batch-seq order).
fn encode(st: &Stream, layout: &Layout) -> Vec<Batch> {
    let table = strings(st);
    let id = |x: &str| -> u64 {
        if x.is_empty() {
            0
        } else {
            table.iter().position(|y| *y == x).expect("collected") as u64 + 1
        }
    };
    let t0 = st.ts.first().copied().unwrap_or(0) + layout.offset;
    // (kind, ts, vals)
    let mut all: Vec<(EventKind, u64, Vec<Val<'static>>)> = table
        .iter()
        .enumerate()
        .map(|(i, x)| {
            (
                K::String,
                t0,
                vec![Val::U(i as u64 + 1), Val::Bytes(x.as_bytes())],
            )
        })
        .collect();
    for (i, e) in st.events.iter().enumerate() {
        assert!(
            schema_ok(e),
            "thread {} event {i} ({}) does not match its schema {:?}: {:?}",
            st.thread,
            e.kind.name(),
            e.kind.args(),
            e.args
        );
        let vals = e
            .args
            .iter()
            .map(|a| match *a {
                A::U(v) => Val::U(v),
                A::S(v) => Val::S(v),
                A::T(x) => Val::U(id(x)),
            })
            .collect();
        all.push((e.kind, st.ts[i] + layout.offset, vals));
    }
    let mut bounds = vec![0];
    bounds.extend(
        layout
            .cuts
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < all.len()),
    );
    bounds.push(all.len());
    bounds.dedup();
    let mut out = Vec::new();
    for (seq, w) in bounds.windows(2).enumerate() {
        let first_ts = all.get(w[0]).map_or(t0, |x| x.1);
        let slack = layout.slack.get(seq).copied().unwrap_or(0);
        let mut b = BatchBuilder::new(ID, 1, st.thread, seq as u64, first_ts.saturating_sub(slack));
        for (kind, ts, vals) in &all[w[0]..w[1]] {
            b.event(*kind, *ts, vals);
        }
        out.push(Batch {
            thread: st.thread,
            body: b.body,
        });
    }
    out
}

/// A file from batch records in the given order, then the generation end
/// (with the batch counts seen) and the trace end.
fn assemble(batches: &[Batch]) -> Vec<u8> {
    let mut out = file_header(ID).to_vec();
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for b in batches {
        put_record(&mut out, RecordKind::Batch, &b.body);
        *counts.entry(b.thread).or_default() += 1;
    }
    let counts: Vec<(u64, u64)> = counts.into_iter().collect();
    put_record(
        &mut out,
        RecordKind::GenerationEnd,
        &generation_end_body(ID, 1, &counts),
    );
    put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 1));
    out
}

/// The plain file: one batch per stream, in stream order.
fn build(streams: &[Stream]) -> Vec<u8> {
    let batches: Vec<Batch> = streams
        .iter()
        .flat_map(|s| encode(s, &Layout::plain()))
        .collect();
    assemble(&batches)
}

// ---- a deterministic PRNG --------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A random variant of the same trace: every stream shifted in time by its
/// own offset, cut into 1 to 3 batches with random base timestamps, and the
/// batch records interleaved in a random order (each thread's batches stay
/// in sequence order, as the format requires).
fn variant(streams: &[Stream], rng: &mut Rng) -> Vec<u8> {
    let mut queues: Vec<VecDeque<Batch>> = streams
        .iter()
        .map(|st| {
            let n = st.events.len() + strings(st).len();
            let mut cuts: Vec<usize> = (0..rng.below(3))
                .map(|_| 1 + rng.below(n.saturating_sub(1) as u64) as usize)
                .collect();
            cuts.sort_unstable();
            let layout = Layout {
                offset: rng.below(5_000_000_000),
                cuts,
                slack: (0..3).map(|_| rng.below(2_000_000)).collect(),
            };
            encode(st, &layout).into()
        })
        .collect();
    let mut order = Vec::new();
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|&i| !queues[i].is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        let q = live[rng.below(live.len() as u64) as usize];
        order.push(queues[q].pop_front().expect("live"));
    }
    assemble(&order)
}

// ---- checking helpers ------------------------------------------------------

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The model event's arguments agree with the kind's schema.
fn schema_ok(e: &Ev) -> bool {
    e.args.len() == e.kind.args().len()
        && e.args.iter().zip(e.kind.args()).all(|(a, s)| {
            matches!(
                (a, s),
                (A::U(_), Arg::U) | (A::S(_), Arg::S) | (A::T(_), Arg::Str)
            )
        })
}

/// A rejection names the offending event: its offset is that event's kind
/// byte, its time that event's time, its message ends with the event's name,
/// and its display ends with the time in ms.
fn assert_error_shape(bytes: &[u8], e: &ReadError, what: &str) {
    assert!(
        e.offset >= FILE_HEADER_LEN && e.offset < bytes.len(),
        "{what}: offset {:#x} outside the records: {e}",
        e.offset
    );
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("offset {:#x}", e.offset)),
        "{what}: {shown}"
    );
    let trace = parse(bytes).expect("mutations keep framing and strings valid");
    let event = trace
        .generations
        .iter()
        .flat_map(|g| g.streams.values())
        .flat_map(|s| s.events.iter())
        .find(|x| x.offset == e.offset)
        .unwrap_or_else(|| panic!("{what}: offset {:#x} is no event's: {e}", e.offset));
    assert_eq!(
        e.time,
        Some(event.ts),
        "{what}: time is not the named event's: {e}"
    );
    assert!(shown.ends_with(" ms"), "{what}: no time shown: {shown}");
    assert!(
        e.message.ends_with(&format!(" at {}", event.kind.name())),
        "{what}: message does not name the event at its offset ({}): {e}",
        event.kind.name()
    );
}

// ---- 1. round trip -----------------------------------------------------------

#[test]
fn the_model_follows_the_event_schemas() {
    for st in valid() {
        for (i, e) in st.events.iter().enumerate() {
            assert!(
                schema_ok(e),
                "thread {} event {i} ({}) does not match its schema {:?}: {:?}",
                st.thread,
                e.kind.name(),
                e.kind.args(),
                e.args
            );
        }
    }
}

#[test]
fn every_event_kind_round_trips_and_the_trace_validates() {
    let streams = valid();
    let bytes = build(&streams);
    let trace = parse(&bytes).expect("valid trace parses");
    assert_eq!(trace.trace_id, ID);
    assert_eq!(trace.generations.len(), 1);
    let g = &trace.generations[0];
    assert!(g.ended);
    assert_eq!(
        g.streams.keys().copied().collect::<Vec<_>>(),
        streams.iter().map(|s| s.thread).collect::<Vec<_>>()
    );
    let mut expected_by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut total = 0u64;
    for st in &streams {
        let parsed = &g.streams[&st.thread];
        let table = strings(st);
        // The strings come first, in id order.
        for (i, text) in table.iter().enumerate() {
            let e = &parsed.events[i];
            assert_eq!(e.kind, K::String);
            assert_eq!(e.args[0], i as u64 + 1);
            // The length argument, and the text in the stream's table.
            assert_eq!(e.args[1], text.len() as u64);
            assert_eq!(parsed.string(i as u64 + 1), *text);
        }
        let rest = &parsed.events[table.len()..];
        assert_eq!(rest.len(), st.events.len(), "thread {}", st.thread);
        for (i, (want, got)) in st.events.iter().zip(rest).enumerate() {
            let at = format!("thread {} event {i} ({})", st.thread, want.kind.name());
            assert_eq!(got.kind, want.kind, "{at}");
            assert_eq!(got.thread, st.thread, "{at}");
            assert_eq!(got.generation, 1, "{at}");
            assert_eq!(got.ts, st.ts[i], "{at}");
            // The event's first byte: its kind in the low 6 bits.
            assert_eq!(
                bytes[got.offset] & rtcore::format::KIND_MASK,
                want.kind as u8,
                "{at}"
            );
            assert_eq!(got.args.len(), want.args.len(), "{at}");
            for (j, (a, v)) in want.args.iter().zip(&got.args).enumerate() {
                match *a {
                    A::U(x) => assert_eq!(*v, x, "{at} arg {j}"),
                    A::S(x) => assert_eq!(unzigzag(*v), x, "{at} arg {j}"),
                    A::T(x) => assert_eq!(parsed.string(*v), x, "{at} arg {j}"),
                }
            }
        }
        *expected_by_kind.entry(K::String.name()).or_default() += table.len() as u64;
        for e in &st.events {
            *expected_by_kind.entry(e.kind.name()).or_default() += 1;
        }
        total += (table.len() + st.events.len()) as u64;
    }
    assert_eq!(trace.events, total);
    expected_by_kind.retain(|_, n| *n > 0);

    let sum: Summary = validate(&trace).unwrap_or_else(|e| panic!("valid trace rejected: {e}"));
    assert_eq!(check(&bytes), Ok(sum.clone()));
    assert_eq!(sum.events, total);
    assert_eq!(sum.generations, 1);
    assert_eq!(sum.threads, streams.len() - 1);
    assert_eq!(sum.by_kind, expected_by_kind, "every event was applied");
    // Unblocks by 11 (of 10 and 12) and by the hook thread (of 12 and 14);
    // the two timeouts have no waker.
    assert_eq!(sum.cross_thread_unblocks, 4);
    // The hook thread's region end, 12's lock acquired, 14's task end,
    // 16's outside resume.
    assert_eq!(sum.crossed_start, 4);
    // 12's region "tail", 14's task 3, 15's last outside wait.
    assert_eq!(sum.open_at_end, 3);
}

#[test]
fn the_round_trip_trace_covers_every_event_kind() {
    let bytes = build(&valid());
    let trace = parse(&bytes).unwrap();
    let seen: BTreeSet<EventKind> = trace.generations[0]
        .streams
        .values()
        .flat_map(|s| s.events.iter().map(|e| e.kind))
        .collect();
    let all: BTreeSet<EventKind> = EventKind::ALL.iter().copied().collect();
    let missing: Vec<&str> = all.difference(&seen).map(|k| k.name()).collect();
    assert!(
        missing.is_empty(),
        "event kinds without a round-trip case: {missing:?}"
    );
    assert_eq!(seen, all);
    // And ALL is every code the format decodes.
    let decodable: BTreeSet<EventKind> = (0..=255u8).filter_map(EventKind::from_u8).collect();
    assert_eq!(decodable, all);
}

// ---- 2. the mutation corpus ----------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Drop,
    Dup,
    Swap,
}

struct Mutation {
    op: Op,
    /// The mutated event's thread and kind (for a swap, the first one).
    thread: u64,
    kind: EventKind,
    desc: String,
    streams: Vec<Stream>,
}

/// Every single-event drop, duplicate and swap-with-successor, in every
/// stream including the header batch's.
fn mutations(valid: &[Stream]) -> Vec<Mutation> {
    let mut v = Vec::new();
    for (si, st) in valid.iter().enumerate() {
        let n = st.events.len();
        for i in 0..n {
            let name = st.events[i].kind.name();
            for op in [Op::Drop, Op::Dup, Op::Swap] {
                let mut streams = valid.to_vec();
                let evs = &mut streams[si].events;
                let desc = match op {
                    Op::Drop => {
                        evs.remove(i);
                        streams[si].ts.remove(i);
                        format!("drop thread {} #{i} ({name})", st.thread)
                    }
                    Op::Dup => {
                        let e = evs[i].clone();
                        evs.insert(i + 1, e);
                        let ts = streams[si].ts[i];
                        streams[si].ts.insert(i + 1, ts);
                        format!("duplicate thread {} #{i} ({name})", st.thread)
                    }
                    Op::Swap => {
                        if i + 1 >= n || evs[i] == evs[i + 1] {
                            continue;
                        }
                        evs.swap(i, i + 1);
                        format!(
                            "swap thread {} #{i} ({name}) with #{} ({})",
                            st.thread,
                            i + 1,
                            st.events[i + 1].kind.name()
                        )
                    }
                };
                v.push(Mutation {
                    op,
                    thread: st.thread,
                    kind: st.events[i].kind,
                    desc,
                    streams,
                });
            }
        }
    }
    v
}

/// A validator rule: every fragment must occur in its message.
struct Rule {
    name: &'static str,
    fragments: &'static [&'static str],
    /// None: some corpus mutation must hit it. Some: no single drop,
    /// duplicate or swap of the valid trace reaches it, and this targeted
    /// mutation does.
    targeted: Option<fn() -> Vec<u8>>,
}

impl Rule {
    fn matches(&self, message: &str) -> bool {
        self.fragments.iter().all(|f| message.contains(f))
    }
}

/// The valid trace with thread `thread`'s events edited by `f`.
fn edit(thread: u64, f: impl FnOnce(&mut Vec<Ev>)) -> Vec<u8> {
    let mut streams = valid();
    let st = streams
        .iter_mut()
        .find(|s| s.thread == thread)
        .expect("thread in the model");
    f(&mut st.events);
    // Times stay by position; an added event shares the last one's.
    let last = st.ts.last().copied().unwrap_or(0);
    st.ts.resize(st.events.len(), last);
    build(&streams)
}

/// Replace event `i` by one of the same kind (a changed argument).
fn put(evs: &mut [Ev], i: usize, with: Ev) {
    assert_eq!(
        evs[i].kind,
        with.kind,
        "event {i} is not a {}",
        with.kind.name()
    );
    evs[i] = with;
}

/// A rule some corpus mutation must hit.
fn hit(name: &'static str, fragments: &'static [&'static str]) -> Rule {
    Rule {
        name,
        fragments,
        targeted: None,
    }
}

/// A rule no single mutation of the valid trace is reported with (each use
/// says why), hit by a hand-written mutation instead.
fn targeted(name: &'static str, fragments: &'static [&'static str], make: fn() -> Vec<u8>) -> Rule {
    Rule {
        name,
        fragments,
        targeted: Some(make),
    }
}

fn rules() -> Vec<Rule> {
    use K::*;
    vec![
        // ---- the header batch. Values out of range cannot come from
        // dropping, duplicating or swapping well-formed events: targeted.
        targeted(
            "clock of 0 ticks",
            &["a clock of 0 ticks per second"],
            || edit(0, |e| put(e, 0, ev(ClockInfo, &[u(0), u(0)]))),
        ),
        hit("a second clock", &["a second clock information"]),
        hit("P status beyond the Ps", &["the status of P", "beyond the"]),
        targeted("P unknown state", &["has an unknown state"], || {
            edit(0, |e| put(e, 3, ev(ProcStatus, &[u(1), u(9), u(0), u(2)])))
        }),
        hit("stall listed twice", &["listed twice"]),
        hit("a thread running two hooks", &["runs two hooks"]),
        hit(
            "a thread stopping the world twice",
            &["stops the world twice"],
        ),
        // Only thread streams' events can be misplaced into the header by
        // hand.
        targeted(
            "thread event in the header",
            &["belongs in a thread's batch, in the header batch"],
            || edit(0, |e| e.push(ev(Log, &[t(""), t("")]))),
        ),
        // The only corpus rejection without a time (see assert_error_shape).
        hit(
            "header without clock",
            &["the header batch has no clock information"],
        ),
        targeted("too many Ps (header)", &["Ps (more than"], || {
            edit(0, |e| put(e, 1, ev(ProcsChange, &[u(1 << 20)])))
        }),
        // ---- statuses: wrong field values, targeted.
        targeted(
            "status of another thread",
            &["carries the status of thread"],
            || {
                edit(MAIN, |e| {
                    put(e, 0, status(SLEEPER, "main", 1, 1, 0, 0, 0, 0))
                })
            },
        ),
        targeted(
            "status with a bad state",
            &["has a status with state"],
            || {
                edit(WORKER, |e| {
                    put(e, 0, status(WORKER, "worker", 2, 3, 3, 1, 1, 1))
                })
            },
        ),
        hit(
            "status disagrees with its P",
            &[" but P ", "at thread status"],
        ),
        targeted(
            "status on a P that does not exist",
            &["which does not exist"],
            || edit(MAIN, |e| put(e, 0, status(MAIN, "main", 3, 10, 0, 0, 0, 0))),
        ),
        targeted(
            "status acks more than requested",
            &["acknowledged preemption request"],
            || {
                edit(WORKER, |e| {
                    put(e, 0, status(WORKER, "worker", 2, 0, 3, 1, 2, 1))
                })
            },
        ),
        hit("P owner has no status", &["but thread", "has no status"]),
        targeted(
            "P owner has another state",
            &["is RUNNING for thread", "but thread", "is RUNNABLE"],
            || edit(MAIN, |e| put(e, 0, status(MAIN, "main", 2, 0, 0, 0, 0, 0))),
        ),
        // ---- thread streams
        hit("status not first", &["'s status is not its first event"]),
        targeted(
            "header event in a thread",
            &["records a header event"],
            || edit(MAIN, |e| e.insert(1, ev(StallStatus, &[u(1), u(2)]))),
        ),
        targeted("too many Ps (thread)", &["Ps (more than"], || {
            edit(NEWBIE, |e| put(e, 1, ev(ProcsChange, &[u(1 << 20)])))
        }),
        hit("already attached", &["is already attached"]),
        hit("not attached", &["is not attached at"]),
        // Needs an event naming a P the thread does not hold: a changed
        // argument, not a moved event.
        targeted("runs on another P", &["runs on P", ", not P"], || {
            edit(MAIN, |e| {
                put(e, 11, ev(EnterBlocking, &[u(1), u(6), t("read")]))
            })
        }),
        hit("not RUNNING", &[", not RUNNING"]),
        hit(
            "P does not exist",
            &["does not exist (no stream can advance)"],
        ),
        // The next four are reachable by single mutations in principle (a
        // dropped P status leaves a sequence gap, a dropped P stop leaves a
        // P busy, a dropped unblock a thread-sequence gap, a duplicated one
        // a repeat), but no single drop, duplicate or swap of the valid
        // trace is reported with them: a gap or a busy P is a Wait, and a
        // stuck trace is blamed on a Bad event first (another event the
        // same mutation broke).
        // A duplicated unblock is judged once its thread is RUNNABLE again,
        // as "not WAITING". So: targeted mutations whose stuck event is the
        // only one left.
        targeted("P sequence gap", &["and this event is"], || {
            edit(BLOCKED, |e| put(e, 11, ev(ProcStart, &[u(3), u(12)])))
        }),
        hit("P sequence repeats", &["sequence number", "repeats (P"]),
        targeted("P not IDLE", &["not IDLE"], || {
            // 10, attached again at its end, starts on the P 14 holds.
            edit(MAIN, |e| e.push(ev(ProcStart, &[u(3), u(12)])))
        }),
        hit("not RUNNABLE", &[", not RUNNABLE"]),
        targeted(
            "exit blocking on another P",
            &["is BLOCKING with P", ", not P "],
            || edit(MAIN, |e| put(e, 12, ev(ExitBlockingFast, &[u(1), u(7)]))),
        ),
        targeted(
            "fast exit after a steal",
            &["lost its P to a steal"],
            || {
                // 10's slow exit after sysmon's steal of P0 becomes a fast one.
                edit(MAIN, |e| {
                    assert_eq!(e[14].kind, ExitBlockingSlow);
                    e[14] = ev(ExitBlockingFast, &[u(0), u(10)]);
                })
            },
        ),
        hit("not BLOCKING", &[", not BLOCKING"]),
        hit("steal of a P not in SYSCALL", &["not SYSCALL for"]),
        hit(
            "slow exit without a steal",
            &["no steal of it was recorded"],
        ),
        targeted("unblock sequence gap", &["and this unblock is"], || {
            // 12 ends waiting; its own wake-up skips thread seq 10.
            edit(SLEEPER, |e| {
                e.push(ev(Block, &[u(1), u(0x9), u(2), u(15)]));
                e.push(ev(Unblock, &[u(SLEEPER), u(12), u(0)]));
            })
        }),
        targeted("unblock sequence repeats", &["repeats (it is at"], || {
            // 14's own timeout wake-up reuses the hook thread's seq 1.
            edit(BLOCKED, |e| {
                put(e, 10, ev(Unblock, &[u(BLOCKED), u(1), u(0)]))
            })
        }),
        hit("not WAITING", &[", not WAITING"]),
        // A dropped or duplicated request is caught first by the thread's
        // sequence number (the next two rules); these need a request whose
        // sequence number is right and whose request number is not.
        targeted("preempt request skips", &["skips request"], || {
            edit(SYSMON, |e| {
                e.push(ev(PreemptRequest, &[u(SLEEPER), u(3), u(11)]))
            })
        }),
        targeted(
            "preempt request repeats",
            &["repeats (requests made"],
            || {
                edit(SYSMON, |e| {
                    e.push(ev(PreemptRequest, &[u(SLEEPER), u(1), u(11)]))
                })
            },
        ),
        hit(
            "thread sequence repeats",
            &["'s sequence number", "repeats (it is at"],
        ),
        targeted("attach out of sequence", &["attaches at sequence"], || {
            // 11 attaches again with a number that skips one after its detach.
            edit(WORKER, |e| {
                let i = e
                    .iter()
                    .position(|x| x.kind == Attach)
                    .expect("11 attaches");
                put(e, i, ev(Attach, &[t("worker"), u(9)]))
            })
        }),
        targeted("detach behind its sequence", &["behind its"], || {
            // 10 detaches at a number below the request made to it.
            edit(MAIN, |e| {
                let i = e
                    .iter()
                    .position(|x| x.kind == Detach)
                    .expect("10 detaches");
                put(e, i, ev(Detach, &[u(1), u(8), u(0)]))
            })
        }),
        // Every request in the trace names an attached thread.
        targeted(
            "preempt request of an unattached thread",
            &["which is not attached"],
            || edit(SYSMON, |e| e.push(ev(PreemptRequest, &[u(99), u(1), u(1)]))),
        ),
        hit(
            "preempt ack repeats",
            &["acknowledges preemption request", "again"],
        ),
        hit(
            "preempt ack never requested",
            &["never recorded as requested"],
        ),
        hit("stall already open", &["is already open"]),
        hit("stall never opened", &["never opened"]),
        hit("hook inside a hook", &["begins a hook while hook"]),
        // Hooks on one thread do not interleave: ending the wrong one needs
        // a changed hook id.
        targeted("ends another hook", &["ends hook", "but hook"], || {
            edit(HOOKS, |e| put(e, 3, ev(HookEnd, &[u(2)])))
        }),
        hit(
            "ends a hook not running",
            &["ends hook", "which is not running"],
        ),
        hit(
            "STW inside STW",
            &["begins a stop-the-world inside its own"],
        ),
        hit(
            "STW end without begin",
            &["ends a stop-the-world it did not begin"],
        ),
        hit("task begun twice", &["which was already begun"]),
        targeted("task 0", &["task ids start at 1"], || {
            edit(MAIN, |e| e.push(ev(TaskBegin, &[u(0), t("zero")])))
        }),
        hit("task ended twice", &["ends task", "twice"]),
        hit(
            "contends while waiting",
            &["contends for lock", "while waiting"],
        ),
        // Likewise lock waits: acquiring another lock needs a changed
        // address.
        targeted(
            "acquires another lock",
            &["acquires lock", "while waiting"],
            || {
                edit(MAIN, |e| {
                    put(e, 4, ev(LockAcquired, &[u(0x2000), u(1500), u(WORKER)]))
                })
            },
        ),
        // ---- threads outside the world
        hit("outside status twice", &["waits outside the world twice"]),
        hit(
            "outside wait while waiting",
            &["waits outside the world for", "while waiting for"],
        ),
        hit("resume without a wait", &["resumes without waiting"]),
        // No thread in the valid trace is both attached and outside: these
        // need an event the model does not have where it is put.
        targeted(
            "outside wait of an attached thread",
            &["records outside wait while attached"],
            || edit(NEWBIE, |e| e.push(ev(OutsideWait, &[u(1), u(0x10)]))),
        ),
        targeted(
            "attach while waiting outside",
            &["attaches while it waits outside the world"],
            || edit(OUTSIDER, |e| e.push(ev(Attach, &[t("late"), u(1)]))),
        ),
        targeted(
            "a status and an outside status",
            &["has a status (it is attached), but the header has it waiting"],
            || edit(0, |e| e.push(ev(OutsideStatus, &[u(MAIN), u(1), u(0x10)]))),
        ),
        hit("no stream can advance", &["(no stream can advance)"]),
    ]
}

/// The kinds that carry a P sequence number (dropping one must be caught).
fn carries_p_seq(k: EventKind) -> bool {
    matches!(
        k,
        K::ProcStatus
            | K::Detach
            | K::ProcStart
            | K::ProcStop
            | K::EnterBlocking
            | K::ExitBlockingFast
            | K::ProcSteal
            | K::Block
    )
}

struct Verdict {
    m: Mutation,
    result: Result<Summary, ReadError>,
    /// The rejected event's thread and kind.
    blamed: Option<(u64, EventKind)>,
}

/// The thread and kind of the event at a rejection's offset.
fn blamed(bytes: &[u8], e: &ReadError) -> Option<(u64, EventKind)> {
    parse(bytes)
        .ok()?
        .generations
        .iter()
        .flat_map(|g| g.streams.values())
        .flat_map(|s| s.events.iter())
        .find(|x| x.offset == e.offset)
        .map(|x| (x.thread, x.kind))
}

fn run_corpus() -> Vec<Verdict> {
    mutations(&valid())
        .into_iter()
        .map(|m| {
            let bytes = build(&m.streams);
            let result = std::panic::catch_unwind(|| check(&bytes))
                .unwrap_or_else(|_| panic!("the checker panicked on: {}", m.desc));
            if let Err(e) = &result {
                assert_error_shape(&bytes, e, &m.desc);
            }
            let blamed = result.as_ref().err().and_then(|e| blamed(&bytes, e));
            Verdict { m, result, blamed }
        })
        .collect()
}

#[test]
fn every_single_event_mutation_is_judged_and_every_rule_is_hit() {
    let verdicts = run_corpus();
    let rules = rules();
    let by_op = |op: Op| verdicts.iter().filter(|v| v.m.op == op).count();
    eprintln!(
        "{} mutations: {} drops, {} duplicates, {} swaps; {} rejected",
        verdicts.len(),
        by_op(Op::Drop),
        by_op(Op::Dup),
        by_op(Op::Swap),
        verdicts.iter().filter(|v| v.result.is_err()).count()
    );
    assert!(verdicts.len() > 250, "{}", verdicts.len());

    // Which rule each rejection hit, per mutation kind.
    let mut unmatched = Vec::new();
    let mut hits: BTreeMap<&str, BTreeMap<Op, (usize, String)>> = BTreeMap::new();
    for v in &verdicts {
        let Err(e) = &v.result else { continue };
        let mut any = false;
        for r in rules.iter().filter(|r| r.matches(&e.message)) {
            any = true;
            let slot = hits
                .entry(r.name)
                .or_default()
                .entry(v.m.op)
                .or_insert((0, format!("{} -> {}", v.m.desc, e.message)));
            slot.0 += 1;
        }
        if !any {
            unmatched.push(format!("{} -> {e}", v.m.desc));
        }
    }
    assert!(
        unmatched.is_empty(),
        "rejections matching no rule in the table:\n{}",
        unmatched.join("\n")
    );
    let mut missing = Vec::new();
    for r in &rules {
        match (hits.get(r.name), r.targeted) {
            (Some(ops), _) => {
                for (op, (n, example)) in ops {
                    eprintln!("rule {:?}: {n} x {op:?}, e.g. {example}", r.name);
                }
            }
            (None, Some(make)) => {
                let bytes = make();
                let e = check(&bytes).expect_err(r.name);
                assert!(r.matches(&e.message), "targeted {:?}: {e}", r.name);
                assert_error_shape(&bytes, &e, r.name);
                eprintln!("rule {:?}: targeted only: {e}", r.name);
            }
            (None, None) => missing.push(r.name),
        }
    }
    assert!(
        missing.is_empty(),
        "rules no mutation hit: {missing:?} (add a targeted mutation, and say why)"
    );

    // No rejection may blame a waiting thread's `P start` in a stream the
    // mutation did not touch, for a mutation that is not about waiting:
    // that event is legal once the thread is unblocked (it waits), so such
    // a blame would point at the wrong event (a bug this test found; see
    // `a_stuck_trace_blames_the_event_that_can_never_apply`).
    let misblamed: Vec<String> = verdicts
        .iter()
        .filter_map(|v| {
            let e = v.result.as_ref().err()?;
            let (thread, kind) = v.blamed?;
            let about_waiting = matches!(v.m.kind, K::Block | K::Unblock);
            (kind == K::ProcStart
                && e.message.contains("is WAITING, not RUNNABLE")
                && thread != v.m.thread
                && !about_waiting)
                .then(|| format!("{} -> {}", v.m.desc, e.message))
        })
        .collect();
    eprintln!(
        "{} rejections blame a waiting thread's legal P start:",
        misblamed.len()
    );
    for m in &misblamed {
        eprintln!("  misblamed: {m}");
    }
    assert!(
        misblamed.is_empty(),
        "{} misblamed rejections",
        misblamed.len()
    );

    for v in verdicts.iter().filter(|v| v.result.is_err()) {
        eprintln!(
            "REJ {} -> {}",
            v.m.desc,
            v.result.as_ref().unwrap_err().message
        );
    }
    // Accepted mutations: listed, never a dropped P-seq or thread-seq carrier.
    for v in verdicts.iter().filter(|v| v.result.is_ok()) {
        eprintln!("accepted: {}", v.m.desc);
    }
    for v in &verdicts {
        if v.m.op == Op::Drop && (carries_p_seq(v.m.kind) || v.m.kind == K::Unblock) {
            assert!(
                v.result.is_err(),
                "dropping a sequence-carrying event was accepted: {}",
                v.m.desc
            );
        }
    }
    // Swapping the status away from the front is always caught; so is
    // duplicating any event that moves a thread or a P.
    for v in &verdicts {
        let moves = carries_p_seq(v.m.kind)
            || matches!(
                v.m.kind,
                K::ThreadStatus
                    | K::Attach
                    | K::ExitBlockingSlow
                    | K::Unblock
                    | K::PreemptRequest
                    | K::PreemptAck
            );
        if v.m.op == Op::Dup && v.m.thread != 0 && moves {
            assert!(v.result.is_err(), "accepted: {}", v.m.desc);
        }
    }
}

/// Every targeted mutation hits its rule even when the corpus hits it too
/// (so the table's targeted entries stay honest).
#[test]
fn targeted_mutations_hit_their_rules() {
    let mut wrong = Vec::new();
    for r in rules() {
        if let Some(make) = r.targeted {
            let bytes = make();
            match check(&bytes) {
                Ok(_) => wrong.push(format!("{}: accepted", r.name)),
                Err(e) if !r.matches(&e.message) => wrong.push(format!("{}: {e}", r.name)),
                Err(e) => assert_error_shape(&bytes, &e, r.name),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "targeted mutations missing their rule:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn whole_trace_rejections() {
    // No generation at all.
    let mut out = file_header(ID).to_vec();
    put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 0));
    let e = check(&out).unwrap_err();
    assert!(e.message.contains("no generation"), "{e}");
    assert_eq!(e.offset, FILE_HEADER_LEN);

    // A generation without its header batch: no event is to blame, so no
    // time; the offset is the first event's.
    let streams: Vec<Stream> = valid().into_iter().filter(|s| s.thread != 0).collect();
    let bytes = build(&streams);
    let e = check(&bytes).unwrap_err();
    assert!(e.message.contains("has no header batch"), "{e}");
    assert!(e.offset > FILE_HEADER_LEN && e.offset < bytes.len());
}

// ---- 3. timestamp and record-order invariance -------------------------------------

#[test]
fn verdicts_do_not_depend_on_timestamps_or_record_order() {
    let verdicts = run_corpus();
    let mut cases: Vec<(String, Vec<Stream>, bool)> = vec![("valid".into(), valid(), true)];
    let rejected: Vec<&Verdict> = verdicts.iter().filter(|v| v.result.is_err()).collect();
    let accepted: Vec<&Verdict> = verdicts.iter().filter(|v| v.result.is_ok()).collect();
    // A spread of rejected mutations of every kind, and a few accepted ones.
    for v in rejected.iter().step_by(rejected.len() / 24 + 1) {
        cases.push((v.m.desc.clone(), v.m.streams.clone(), false));
    }
    for v in accepted.iter().step_by(accepted.len() / 6 + 1) {
        cases.push((v.m.desc.clone(), v.m.streams.clone(), true));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (desc, streams, ok) in &cases {
        assert_eq!(check(&build(streams)).is_ok(), *ok, "{desc}");
        for i in 0..50 {
            let bytes = variant(streams, &mut rng);
            let r = check(&bytes);
            assert_eq!(
                r.is_ok(),
                *ok,
                "{desc}: variant {i} changed the verdict: {r:?}"
            );
            if let Err(e) = &r {
                assert_error_shape(&bytes, e, desc);
            }
        }
    }
    eprintln!("{} traces x 50 variants", cases.len());
}

// ---- 4. several batches per thread --------------------------------------------------

/// The valid trace with every thread stream cut into three batches.
fn split_batches() -> Vec<Vec<Batch>> {
    valid()
        .iter()
        .map(|st| {
            let n = st.events.len() + strings(st).len();
            let cuts = if st.thread == 0 {
                vec![]
            } else {
                vec![n / 3, 2 * n / 3]
            };
            encode(
                st,
                &Layout {
                    offset: 0,
                    cuts,
                    slack: vec![0, 5, 17],
                },
            )
        })
        .collect()
}

#[test]
fn streams_split_over_several_batches_validate() {
    let per_stream = split_batches();
    for (st, b) in valid().iter().zip(&per_stream) {
        assert_eq!(b.len(), if st.thread == 0 { 1 } else { 3 }, "{}", st.thread);
    }
    // Round-robin: batch 0 of every thread, then batch 1, then batch 2.
    let mut order = Vec::new();
    let mut queues: Vec<VecDeque<Batch>> = per_stream.into_iter().map(Into::into).collect();
    while queues.iter().any(|q| !q.is_empty()) {
        for q in queues.iter_mut() {
            if let Some(b) = q.pop_front() {
                order.push(b);
            }
        }
    }
    let bytes = assemble(&order);
    let trace = parse(&bytes).unwrap();
    let g = &trace.generations[0];
    assert_eq!(g.batches[&0], 1);
    assert_eq!(g.batches[&MAIN], 3);
    let sum = validate(&trace).unwrap_or_else(|e| panic!("split trace rejected: {e}"));
    // The same content; only the bytes it took differ (batch headers).
    let whole = check(&build(&valid())).unwrap();
    assert!(whole.max_generation_bytes < sum.max_generation_bytes);
    assert_eq!(
        Summary {
            max_generation_bytes: sum.max_generation_bytes,
            bytes: sum.bytes,
            ..whole
        },
        sum
    );

    // A lost middle batch (the generation end still counts it): the parser
    // sees batch 2 where batch 1 was due.
    for victim in [MAIN, SYSMON, NEWBIE] {
        let mut queues: Vec<VecDeque<Batch>> =
            split_batches().into_iter().map(Into::into).collect();
        let mut order = Vec::new();
        for q in queues.iter_mut() {
            order.extend(q.drain(..));
        }
        let pos = order
            .iter()
            .enumerate()
            .filter(|(_, b)| b.thread == victim)
            .nth(1)
            .map(|(i, _)| i)
            .unwrap();
        // Keep the writer's count: build the file by hand.
        let mut out = file_header(ID).to_vec();
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        for (i, b) in order.iter().enumerate() {
            *counts.entry(b.thread).or_default() += 1;
            if i != pos {
                put_record(&mut out, RecordKind::Batch, &b.body);
            }
        }
        let counts: Vec<(u64, u64)> = counts.into_iter().collect();
        put_record(
            &mut out,
            RecordKind::GenerationEnd,
            &generation_end_body(ID, 1, &counts),
        );
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 1));
        let e = parse(&out).unwrap_err();
        assert!(
            e.message.contains(&format!(
                "batch 1 of thread {victim} in generation 1 is missing (found batch 2)"
            )),
            "{e}"
        );
        assert!(check(&out).is_err());
    }
}

// ---- blame ---------------------------------------------------------------------

/// A regression test for a validator bug this file found: `step` judged the
/// `P start` of a WAITING thread `Bad` ("can never become legal"), though
/// another stream's `unblock` makes it legal (in the valid trace itself,
/// thread 12's first `P start` waits on the frontier's first pass). A stuck
/// trace prefers to blame a `Bad` event, so rejections named that legal
/// `P start` instead of the event that can really never apply. Now it
/// waits.
#[test]
fn a_stuck_trace_blames_the_event_that_can_never_apply() {
    let cases: [(&str, u64, usize, Op, &str); 3] = [
        // P1's status lost: 10's `P start` (1, 3) can never be applied.
        (
            "drop P1's status",
            0,
            3,
            Op::Drop,
            "P 1 is at sequence 0, and this event is 3",
        ),
        // The header's stall resolved twice.
        (
            "duplicate a stall resolved",
            SYSMON,
            0,
            Op::Dup,
            "never opened",
        ),
        // 10's acknowledgement of a request never made.
        (
            "drop a preempt request",
            SYSMON,
            1,
            Op::Drop,
            "never recorded as requested",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, thread, i, op, want) in cases {
        let mut streams = valid();
        let st = streams.iter_mut().find(|s| s.thread == thread).unwrap();
        match op {
            Op::Drop => {
                st.events.remove(i);
                st.ts.remove(i);
            }
            Op::Dup => {
                let (e, ts) = (st.events[i].clone(), st.ts[i]);
                st.events.insert(i + 1, e);
                st.ts.insert(i + 1, ts);
            }
            Op::Swap => st.events.swap(i, i + 1),
        }
        let e = check(&build(&streams)).expect_err(what);
        if !e.message.contains(want) {
            wrong.push(format!("{what}: wanted {want:?}, got: {e}"));
        }
    }
    assert!(wrong.is_empty(), "misplaced blame:\n{}", wrong.join("\n"));
}

/// Two threads handing work back and forth many times: each hand-off makes
/// one stream wait for the other, far past the events the checker decodes
/// ahead of its validator. The streaming check must count every event and
/// agree with parsing everything first.
#[test]
fn long_streams_that_wait_on_each_other_validate_exactly() {
    use K::*;
    const A: u64 = 20;
    const B: u64 = 21;
    const N: u64 = 700;
    let header = vec![
        ev(ClockInfo, &[u(1_000_000_000), u(0)]),
        ev(ProcsChange, &[u(2)]),
        ev(ProcStatus, &[u(0), u(1), u(A), u(0)]),
        ev(ProcStatus, &[u(1), u(1), u(B), u(0)]),
    ];
    let mut a = vec![status(A, "a", 1, 1, 0, 0, 0, 0)];
    let mut b = vec![status(B, "b", 1, 2, 0, 0, 0, 0)];
    for i in 0..N {
        // A blocks (P 0 goes IDLE), B wakes it (thread sequence i + 1), A
        // takes P 0 back.
        a.push(ev(Block, &[u(1), u(0x2000), u(0), u(2 * i + 1)]));
        a.push(ev(ProcStart, &[u(0), u(2 * i + 2)]));
        b.push(ev(Log, &[t("b"), t("working")]));
        b.push(ev(Unblock, &[u(A), u(i + 1), u(B)]));
    }
    let streams: Vec<Stream> = [(0, header), (A, a), (B, b)]
        .into_iter()
        .map(|(thread, events)| Stream {
            thread,
            ts: (1..=events.len() as u64).map(|i| i * 10).collect(),
            events,
        })
        .collect();
    let bytes = build(&streams);
    let checked = check(&bytes).unwrap_or_else(|e| panic!("rejected: {e}"));
    assert_eq!(Ok(checked.clone()), validate(&parse(&bytes).unwrap()));
    for (kind, n) in [("block", N), ("unblock", N), ("P start", N), ("log", N)] {
        assert_eq!(checked.by_kind[kind], n, "{kind}");
    }
    assert_eq!(checked.cross_thread_unblocks, N);
    // The header's 4, two statuses, 4 per hand-off, and the strings "a"
    // (A's), "b" and "working" (B's).
    assert_eq!(checked.events, 4 + 2 + 4 * N + 3);
}
