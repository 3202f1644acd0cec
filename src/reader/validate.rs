//! The validator: the rules a parsed trace's events must obey, per
//! generation. Checked so far: the header batch (clock first, statuses),
//! per-thread attach/detach (nothing after detach, no second attach),
//! regions nesting per thread, task ids begun once and ended once,
//! stop-the-world begin/end pairing per stopper. The world's, locks' and
//! sysmon's state machines (DESIGN.md, "The state machines a trace obeys")
//! join as their events are recorded.
//!
//! Ranges may cross the trace's edges: an end whose begin came before the
//! trace (a region, a task) is legal and counted, and so is a range still
//! open at the end. The verdict never depends on timestamps from different
//! threads.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::parse::{Event, Generation, ReadError, Stream, Trace};
use crate::format::EventKind;

/// What a valid trace contained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub generations: usize,
    pub threads: usize,
    /// Ends whose begins came before the trace (regions, tasks).
    pub crossed_start: u64,
    /// Ranges still open at the end (regions, tasks, stops).
    pub open_at_end: u64,
    /// Events by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// "12.345678 ms" for a trace timestamp.
pub fn ms(ts: u64) -> String {
    format!("{}.{:06} ms", ts / 1_000_000, ts % 1_000_000)
}

struct ThreadState {
    detached: bool,
    attached: bool,
    regions: u64,
    stw_open: bool,
}

fn who(thread: u64, names: &HashMap<u64, String>) -> String {
    match names.get(&thread) {
        Some(n) if !n.is_empty() => format!("thread {thread} ({n})"),
        _ => format!("thread {thread}"),
    }
}

fn fail<T>(e: &Event, what: String) -> Result<T, ReadError> {
    Err(ReadError {
        message: format!("{what} at {}, {}", e.kind.name(), ms(e.ts)),
        offset: e.offset,
    })
}

/// Validate a parsed trace.
pub fn validate(t: &Trace) -> Result<Summary, ReadError> {
    let mut sum = Summary {
        events: t.events,
        generations: t.generations.len(),
        ..Default::default()
    };
    if t.generations.is_empty() {
        return Err(ReadError {
            message: "a trace with no generation (nothing was recorded between the header and the end marker)".into(),
            offset: super::parse::first_record_offset(),
        });
    }
    let mut all_threads = HashSet::new();
    for g in &t.generations {
        generation(g, &mut sum)?;
        all_threads.extend(g.streams.keys().copied().filter(|id| *id != 0));
    }
    sum.threads = all_threads.len();
    Ok(sum)
}

fn generation(g: &Generation, sum: &mut Summary) -> Result<(), ReadError> {
    let mut names: HashMap<u64, String> = HashMap::new();
    let mut states: HashMap<u64, ThreadState> = HashMap::new();
    // The header batch: clock information first, then statuses.
    let Some(h) = g.streams.get(&0) else {
        let offset = g
            .streams
            .values()
            .find_map(|s| s.events.first().map(|e| e.offset))
            .unwrap_or(0);
        return Err(ReadError {
            message: format!(
                "generation {} has no header batch (clock and statuses)",
                g.number
            ),
            offset,
        });
    };
    {
        let mut seen_clock = false;
        for e in h.events.iter() {
            *sum.by_kind.entry(e.kind.name()).or_default() += 1;
            match e.kind {
                EventKind::String => {}
                EventKind::ClockInfo => {
                    if e.args[0] == 0 {
                        return fail(e, "a clock of 0 ticks per second".into());
                    }
                    seen_clock = true;
                }
                EventKind::ProcStatus | EventKind::ProcsChange => {}
                _ => {
                    return fail(
                        e,
                        "an event that belongs in a thread's batch, in the header batch".into(),
                    );
                }
            }
        }
        if !seen_clock && !h.events.is_empty() {
            return Err(ReadError {
                message: format!(
                    "generation {}: the header batch has no clock information",
                    g.number
                ),
                offset: h.events[0].offset,
            });
        }
    }
    // Names from statuses and attach events (for messages).
    for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
        for e in &s.events {
            let name = match e.kind {
                EventKind::Attach => s.string(e.args[0]),
                EventKind::ThreadStatus => s.string(e.args[1]),
                _ => continue,
            };
            names.entry(*id).or_insert_with(|| name.to_string());
        }
    }
    let mut tasks_begun: HashSet<u64> = HashSet::new();
    let mut tasks_ended: HashSet<u64> = HashSet::new();
    for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
        let st = states.entry(*id).or_insert(ThreadState {
            detached: false,
            attached: false,
            regions: 0,
            stw_open: false,
        });
        thread(*id, s, st, &names, &mut tasks_begun, &mut tasks_ended, sum)?;
    }
    for st in states.values() {
        sum.open_at_end = sum
            .open_at_end
            .saturating_add(st.regions)
            .saturating_add(st.stw_open as u64);
    }
    sum.open_at_end += tasks_begun.difference(&tasks_ended).count() as u64;
    // Ended here, begun before the trace (or the generation): legal.
    sum.crossed_start += tasks_ended.difference(&tasks_begun).count() as u64;
    Ok(())
}

fn thread(
    id: u64,
    s: &Stream,
    st: &mut ThreadState,
    names: &HashMap<u64, String>,
    tasks_begun: &mut HashSet<u64>,
    tasks_ended: &mut HashSet<u64>,
    sum: &mut Summary,
) -> Result<(), ReadError> {
    let mut first = true;
    for e in &s.events {
        *sum.by_kind.entry(e.kind.name()).or_default() += 1;
        if e.kind == EventKind::String {
            continue;
        }
        let was_first = std::mem::replace(&mut first, false);
        match e.kind {
            EventKind::ThreadStatus => {
                // Written by the tracer, first, for a thread attached when
                // the generation began.
                if !was_first {
                    return fail(
                        e,
                        format!("{}'s status is not its first event", who(id, names)),
                    );
                }
                if e.args[0] != id {
                    return fail(
                        e,
                        format!(
                            "{} carries the status of thread {}",
                            who(id, names),
                            e.args[0]
                        ),
                    );
                }
                st.attached = true;
                st.regions = e.args[6];
            }
            EventKind::ClockInfo | EventKind::ProcStatus | EventKind::ProcsChange => {
                return fail(e, format!("{} records a header event", who(id, names)));
            }
            EventKind::Attach => {
                if st.attached {
                    return fail(e, format!("{} is already attached", who(id, names)));
                }
                st.attached = true;
                st.detached = false;
            }
            EventKind::Detach => {
                if !st.attached {
                    return fail(e, format!("{} is not attached", who(id, names)));
                }
                st.attached = false;
                st.detached = true;
            }
            EventKind::RegionBegin => st.regions = st.regions.saturating_add(1),
            EventKind::RegionEnd => {
                if st.regions == 0 {
                    // Begun before the trace: legal, counted.
                    sum.crossed_start += 1;
                } else {
                    st.regions -= 1;
                }
            }
            EventKind::TaskBegin => {
                let task = e.args[0];
                if task == 0 || !tasks_begun.insert(task) {
                    return fail(
                        e,
                        format!(
                            "{} begins task {task}, which was already begun",
                            who(id, names)
                        ),
                    );
                }
            }
            EventKind::TaskEnd => {
                let task = e.args[0];
                // A task may end on another thread than it began, and
                // threads are visited one after the other: whether it began
                // in this generation is decided after all of them.
                if !tasks_ended.insert(task) {
                    return fail(e, format!("{} ends task {task} twice", who(id, names)));
                }
            }
            EventKind::StwBegin => {
                if st.stw_open {
                    return fail(
                        e,
                        format!("{} begins a stop-the-world inside its own", who(id, names)),
                    );
                }
                st.stw_open = true;
            }
            EventKind::StwEnd => {
                if !st.stw_open {
                    return fail(
                        e,
                        format!("{} ends a stop-the-world it did not begin", who(id, names)),
                    );
                }
                st.stw_open = false;
            }
            _ => {}
        }
    }
    Ok(())
}

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
                        Val::U(1),
                        Val::U(1),
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
        assert!(e.message.contains(" ms"), "messages carry the time: {e}");
    }

    #[test]
    fn empty_traces_missing_headers_and_huge_depths() {
        let mut out = file_header(ID).to_vec();
        put_record(&mut out, RecordKind::TraceEnd, &trace_end_body(ID, 0));
        let e = check(&out).unwrap_err();
        assert!(e.message.contains("no generation"), "{e}");

        let mut out = file_header(ID).to_vec();
        let mut b = BatchBuilder::new(ID, 1, 5, 0, 0);
        b.event(Detach, 0, &[]);
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
                    Val::U(1),
                    Val::U(0),
                    Val::U(0),
                    Val::U(0),
                    Val::U(u64::MAX),
                    Val::U(0),
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
        rejected(&[(8, vec![(Detach, vec![])])], "thread 8 is not attached");
        rejected(
            &[(5, vec![(Detach, vec![]), (Detach, vec![])])],
            "thread 5 (main) is not attached at detach",
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
            5,
            vec![
                (Detach, vec![]),
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
