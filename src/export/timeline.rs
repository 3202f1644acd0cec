//! The timeline every export writes: tracks (a thread's, a thread's
//! states', the stop-the-world track) with slices, instants, counter
//! samples, tasks and flows, built once from a trace the validator
//! accepted. `json` and `perfetto` serialize it.
//!
//! Layout:
//! - per thread, a track (keyed by its id) for what the thread did: its
//!   regions and hook runs and its waits for contended locks as slices
//!   (strictly nested: an end closes every slice opened after the one it
//!   ends), its logs, preemption acknowledgements and rank violations, and
//!   sysmon's actions (on sysmon's own track) as instants;
//! - per attached thread, a second track "<name>: state" (keyed by id +
//!   2^40) with its states (RUNNING, RUNNABLE, BLOCKING, WAITING) as
//!   back-to-back slices;
//! - a "stop-the-world" track (key 0) with each stop as a slice;
//! - counters by name; tasks as ranges that may begin and end on different
//!   threads;
//! - a flow from the thread whose unlock woke a lock waiter (on its state
//!   track, at the wake-up) to the last nanosecond of the waiter's
//!   lock-wait slice.
//!
//! Ranges still open at a generation's end are closed there; ends whose
//! begins came before the trace are left out.

use std::collections::{BTreeMap, HashMap};
use std::io;

use crate::format::EventKind as K;
use crate::format::StallKind;
use crate::reader::states::{StateSlice, states};
use crate::reader::{Event, Generation, Stream, Trace};

/// State tracks' tids: the thread's id plus this.
pub const STATE_TID_BASE: u64 = 1 << 40;
/// The stop-the-world track.
pub const STW_TID: u64 = 0;

/// What a timeline holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub slices: u64,
    pub instants: u64,
    pub counters: u64,
    pub flows: u64,
    /// Lock waits whose releaser had no state slice at the wake-up
    /// (unattached, or unknown): no arrow.
    pub flows_skipped: u64,
    pub threads: u64,
}

/// One thing on the timeline. `tid` names a track: a thread's id, its
/// state track (id + `STATE_TID_BASE`) or the stop-the-world track
/// (`STW_TID`).
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Slice {
        tid: u64,
        name: String,
        cat: &'static str,
        start: u64,
        end: u64,
        args: Vec<(&'static str, String)>,
    },
    Instant {
        tid: u64,
        name: String,
        cat: &'static str,
        ts: u64,
        args: Vec<(&'static str, String)>,
    },
    Counter {
        tid: u64,
        name: String,
        ts: u64,
        value: i64,
    },
    TaskBegin {
        tid: u64,
        id: u64,
        name: String,
        ts: u64,
    },
    TaskEnd {
        tid: u64,
        id: u64,
        name: String,
        ts: u64,
    },
    Flow {
        id: u64,
        from_tid: u64,
        from_ts: u64,
        to_tid: u64,
        to_ts: u64,
    },
}

/// A named track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackName {
    pub tid: u64,
    pub name: String,
    /// Display order.
    pub sort: u64,
    /// The thread it belongs to (0: none).
    pub thread: u64,
}

/// The whole timeline.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub tracks: Vec<TrackName>,
    pub items: Vec<Item>,
    pub stats: Stats,
    /// Realtime nanoseconds at the trace's origin (from its clock info).
    pub realtime_origin_ns: u64,
}

struct Builder {
    items: Vec<Item>,
    stats: Stats,
}

impl Builder {
    fn slice(
        &mut self,
        tid: u64,
        name: &str,
        cat: &'static str,
        start: u64,
        end: u64,
        args: Vec<(&'static str, String)>,
    ) -> io::Result<()> {
        self.stats.slices += 1;
        self.items.push(Item::Slice {
            tid,
            name: name.to_string(),
            cat,
            start,
            end: end.max(start),
            args,
        });
        Ok(())
    }

    fn instant(
        &mut self,
        tid: u64,
        name: &str,
        cat: &'static str,
        ts: u64,
        args: Vec<(&'static str, String)>,
    ) -> io::Result<()> {
        self.stats.instants += 1;
        self.items.push(Item::Instant {
            tid,
            name: name.to_string(),
            cat,
            ts,
            args,
        });
        Ok(())
    }
}

/// Build the timeline of a trace the validator accepted.
pub fn build(trace: &Trace) -> Timeline {
    let mut b = TimelineBuilder::default();
    for g in &trace.generations {
        b.add_generation(g);
    }
    b.finish()
}

/// Builds a timeline one generation at a time, so a reader that holds one
/// generation at a time (`reader::visit_generations`) can export: what it
/// keeps between generations is the timeline itself and the thread names.
pub struct TimelineBuilder {
    out: Builder,
    /// From the first generation's clock information.
    realtime_origin_ns: Option<u64>,
    named: BTreeMap<u64, String>,
    with_states: BTreeMap<u64, ()>,
    flow_id: u64,
}

impl Default for TimelineBuilder {
    fn default() -> Self {
        TimelineBuilder {
            out: Builder {
                items: Vec::new(),
                stats: Stats::default(),
            },
            realtime_origin_ns: None,
            named: BTreeMap::new(),
            with_states: BTreeMap::new(),
            flow_id: 0,
        }
    }
}

impl TimelineBuilder {
    /// Add the next generation (of a trace the validator accepted, in
    /// order).
    pub fn add_generation(&mut self, g: &Generation) {
        if self.realtime_origin_ns.is_none() {
            self.realtime_origin_ns = Some(
                g.streams
                    .get(&0)
                    .and_then(|h| h.events.iter().find(|e| e.kind == K::ClockInfo))
                    .map_or(0, |e| e.args[1]),
            );
        }
        match self.add_io(g) {
            Ok(()) => {}
            Err(_) => unreachable!("building in memory does not fail"),
        }
    }

    fn add_io(&mut self, g: &Generation) -> io::Result<()> {
        let gen_end = g
            .streams
            .values()
            .flat_map(|s| s.events.iter().map(|e| e.ts))
            .max()
            .unwrap_or(0);
        // Names, then every attached thread's states (flows need the
        // releasers' states).
        for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
            let name = s.events.iter().find_map(|e| match e.kind {
                K::ThreadStatus => Some(s.string(e.args[1]).to_string()),
                K::Attach | K::ThreadName => Some(s.string(e.args[0]).to_string()),
                _ => None,
            });
            let entry = self.named.entry(*id).or_default();
            match name {
                Some(n) if !n.is_empty() => *entry = format!("{n} ({id})"),
                _ if entry.is_empty() => *entry = format!("thread {id} (unattached)"),
                _ => {}
            }
        }
        let mut state_slices: HashMap<u64, Vec<StateSlice>> = HashMap::new();
        for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
            let v = states(s, *id, g.streams.get(&0), gen_end);
            if !v.is_empty() {
                self.with_states.insert(*id, ());
                state_slices.insert(*id, v);
            }
        }
        for (id, v) in &state_slices {
            for st in v.iter().filter(|st| st.end > st.start) {
                let args = if st.detail.is_empty() {
                    Vec::new()
                } else {
                    vec![("detail", st.detail.clone())]
                };
                self.out.slice(
                    id + STATE_TID_BASE,
                    st.name,
                    "state",
                    st.start,
                    st.end,
                    args,
                )?;
            }
        }
        let mut tasks: HashMap<u64, String> = HashMap::new();
        let mut stw: HashMap<u64, (u64, String)> = HashMap::new();
        for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
            let mut t = Track {
                tid: *id,
                s,
                gen_end,
                states: &state_slices,
                tasks: &mut tasks,
                stw: &mut stw,
                flow_id: &mut self.flow_id,
            };
            t.replay(&mut self.out)?;
        }
        // Stops still in force at the end (the trace stop's own).
        for (stopper, (start, reason)) in stw.drain() {
            self.out.slice(
                STW_TID,
                &format!("stop-the-world: {reason}"),
                "world",
                start,
                gen_end.max(start),
                vec![("stopper", stopper.to_string())],
            )?;
        }
        // Tasks still open at the end.
        let mut open: Vec<(u64, String)> = tasks.drain().collect();
        open.sort();
        for (task, name) in open {
            self.out.items.push(Item::TaskEnd {
                tid: 0,
                id: task,
                name,
                ts: gen_end,
            });
        }
        Ok(())
    }

    /// The timeline, with every track named.
    pub fn finish(self) -> Timeline {
        let mut tracks = vec![TrackName {
            tid: STW_TID,
            name: "stop-the-world".into(),
            sort: 0,
            thread: 0,
        }];
        for (id, name) in &self.named {
            tracks.push(TrackName {
                tid: *id,
                name: name.clone(),
                sort: id * 2 + 1,
                thread: *id,
            });
            if self.with_states.contains_key(id) {
                tracks.push(TrackName {
                    tid: id + STATE_TID_BASE,
                    name: format!("{name}: state"),
                    sort: id * 2 + 2,
                    thread: *id,
                });
            }
        }
        let mut stats = self.out.stats;
        stats.threads = self.named.len() as u64;
        Timeline {
            tracks,
            items: self.out.items,
            stats,
            realtime_origin_ns: self.realtime_origin_ns.unwrap_or(0),
        }
    }
}

/// An open slice on a thread's track.
struct Open {
    name: String,
    cat: &'static str,
    start: u64,
    /// What ends it: a region (0), a hook run (its id), a lock wait (the
    /// lock's address).
    key: (u8, u64),
}

/// Close the innermost open slice with `key` at `ts`, and with it every
/// slice opened after it (strict nesting). Returns when the closed slice
/// began, if there was one.
fn close_to(
    out: &mut Builder,
    tid: u64,
    stack: &mut Vec<Open>,
    key: (u8, u64),
    ts: u64,
) -> io::Result<Option<u64>> {
    let Some(pos) = stack.iter().rposition(|o| o.key == key) else {
        return Ok(None);
    };
    let start = stack[pos].start;
    while stack.len() > pos {
        let o = stack.pop().expect("non-empty");
        out.slice(tid, &o.name, o.cat, o.start, ts, Vec::new())?;
    }
    Ok(Some(start))
}

/// One thread's stream of one generation, replayed onto its track.
struct Track<'a> {
    tid: u64,
    s: &'a Stream,
    gen_end: u64,
    /// Every attached thread's state slices (for the flows' sources).
    states: &'a HashMap<u64, Vec<StateSlice>>,
    /// Open tasks by id (a task may end on another thread).
    tasks: &'a mut HashMap<u64, String>,
    /// Open stops by stopper: (begin, reason).
    stw: &'a mut HashMap<u64, (u64, String)>,
    flow_id: &'a mut u64,
}

impl Track<'_> {
    fn replay(&mut self, out: &mut Builder) -> io::Result<()> {
        let (tid, s, gen_end) = (self.tid, self.s, self.gen_end);
        const REGION: u8 = 0;
        const HOOK: u8 = 1;
        const LOCK: u8 = 2;
        let mut stack: Vec<Open> = Vec::new();
        for e in &s.events {
            let a = &e.args;
            match e.kind {
                K::RegionBegin => stack.push(Open {
                    name: s.string(a[0]).to_string(),
                    cat: "region",
                    start: e.ts,
                    key: (REGION, 0),
                }),
                K::RegionEnd => {
                    close_to(out, tid, &mut stack, (REGION, 0), e.ts)?;
                }
                K::HookBegin => stack.push(Open {
                    name: format!("hook {}", s.string(a[1])),
                    cat: "hook",
                    start: e.ts,
                    key: (HOOK, a[0]),
                }),
                K::HookEnd => {
                    close_to(out, tid, &mut stack, (HOOK, a[0]), e.ts)?;
                }
                K::LockContended => stack.push(Open {
                    name: format!("wait for lock {}", lock_name(s.string(a[1]), a[0])),
                    cat: "lock",
                    start: e.ts,
                    key: (LOCK, a[0]),
                }),
                K::RwLockContended => stack.push(Open {
                    name: format!(
                        "wait to {} rwlock {}",
                        if a[2] == 2 { "read" } else { "write" },
                        lock_name(s.string(a[1]), a[0])
                    ),
                    cat: "lock",
                    start: e.ts,
                    key: (LOCK, a[0]),
                }),
                K::LockAcquired => {
                    let began = close_to(out, tid, &mut stack, (LOCK, a[0]), e.ts)?;
                    let releaser = a[2];
                    match began {
                        // The arrow ends on the wait's last nanosecond: a wait
                        // of no length has none.
                        Some(start) if releaser != 0 && e.ts > start => {
                            flow(out, self.flow_id, self.states, releaser, tid, e)?
                        }
                        Some(_) if releaser != 0 => out.stats.flows_skipped += 1,
                        _ => {}
                    }
                }
                K::StwBegin => {
                    self.stw
                        .insert(e.thread, (e.ts, s.string(a[0]).to_string()));
                }
                K::StwEnd => {
                    if let Some((start, reason)) = self.stw.remove(&e.thread) {
                        out.slice(
                            STW_TID,
                            &format!("stop-the-world: {reason}"),
                            "world",
                            start,
                            e.ts,
                            vec![("stopper", e.thread.to_string())],
                        )?;
                    }
                }
                K::Log => {
                    let cat = s.string(a[0]);
                    let msg = s.string(a[1]);
                    out.instant(
                        tid,
                        if cat.is_empty() { "log" } else { cat },
                        "log",
                        e.ts,
                        vec![("category", cat.to_string()), ("message", msg.to_string())],
                    )?;
                }
                K::Counter => {
                    out.stats.counters += 1;
                    out.items.push(Item::Counter {
                        tid,
                        name: s.string(a[0]).to_string(),
                        ts: e.ts,
                        value: crate::format::unzigzag(a[1]),
                    });
                }
                K::TaskBegin => {
                    let name = s.string(a[1]).to_string();
                    out.items.push(Item::TaskBegin {
                        tid,
                        id: a[0],
                        name: name.clone(),
                        ts: e.ts,
                    });
                    self.tasks.insert(a[0], name);
                }
                K::TaskEnd => {
                    // Begun before the trace: nothing to end.
                    if let Some(name) = self.tasks.remove(&a[0]) {
                        out.items.push(Item::TaskEnd {
                            tid,
                            id: a[0],
                            name,
                            ts: e.ts,
                        });
                    }
                }
                K::ProcSteal => out.instant(
                    tid,
                    &format!("P steal: P {} from thread {}", a[0], a[2]),
                    "sysmon",
                    e.ts,
                    Vec::new(),
                )?,
                K::PreemptRequest => out.instant(
                    tid,
                    &format!("preemption request {} to thread {}", a[1], a[0]),
                    "sysmon",
                    e.ts,
                    Vec::new(),
                )?,
                K::StallOpen | K::StallResolved => out.instant(
                    tid,
                    &format!(
                        "stall {}: {}",
                        if e.kind == K::StallOpen {
                            "opened"
                        } else {
                            "resolved"
                        },
                        match StallKind::from_code(a[0]) {
                            Some(k) => k.describe(a[1]),
                            None => format!("kind {} key {}", a[0], a[1]),
                        }
                    ),
                    "sysmon",
                    e.ts,
                    Vec::new(),
                )?,
                K::PreemptAck => out.instant(
                    tid,
                    &format!("preemption acknowledged ({})", a[0]),
                    "world",
                    e.ts,
                    Vec::new(),
                )?,
                K::RankViolation => out.instant(
                    tid,
                    &format!(
                        "rank violation: {} held, {} wanted",
                        s.string(a[0]),
                        s.string(a[1])
                    ),
                    "lock",
                    e.ts,
                    Vec::new(),
                )?,
                _ => {}
            }
        }
        // Open at the generation's end: closed there, innermost first.
        while let Some(o) = stack.pop() {
            out.slice(
                tid,
                &o.name,
                o.cat,
                o.start,
                gen_end.max(o.start),
                Vec::new(),
            )?;
        }
        Ok(())
    }
}

fn lock_name(name: &str, addr: u64) -> String {
    if name.is_empty() {
        format!("{addr:#x}")
    } else {
        format!("'{name}'")
    }
}

/// An arrow from the releaser's state slice at the wake-up to the waiter's
/// lock-wait slice, which ends at `e.ts` (bound to its last nanosecond).
fn flow(
    out: &mut Builder,
    flow_id: &mut u64,
    states: &HashMap<u64, Vec<StateSlice>>,
    releaser: u64,
    waiter: u64,
    e: &Event,
) -> io::Result<()> {
    let on_releaser = states.get(&releaser).is_some_and(|v| {
        v.iter()
            .any(|st| st.start <= e.ts && e.ts < st.end && st.end > st.start)
    });
    if !on_releaser {
        out.stats.flows_skipped += 1;
        return Ok(());
    }
    *flow_id += 1;
    out.stats.flows += 1;
    out.items.push(Item::Flow {
        id: *flow_id,
        from_tid: releaser + STATE_TID_BASE,
        from_ts: e.ts,
        to_tid: waiter,
        to_ts: e.ts.saturating_sub(1),
    });
    Ok(())
}
