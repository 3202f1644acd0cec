//! Chrome JSON Trace Event Format (the "JSON Array/Object Format" of the
//! Trace Event Format document), as Perfetto UI imports it.
//!
//! Layout, one process (pid 1) named "rtcore trace":
//! - per thread, a track (tid = its id) for what the thread did: its
//!   regions and hook runs and its waits for contended locks as slices
//!   (strictly nested: an end closes every slice opened after the one it
//!   ends), its logs, preemption acknowledgements and rank violations, and
//!   sysmon's actions (on sysmon's own track) as instants;
//! - per attached thread, a second track "<name>: state" (tid = id + 2^40)
//!   with its states (RUNNING, RUNNABLE, BLOCKING, WAITING) as back-to-back
//!   slices;
//! - a "stop-the-world" track (tid 0) with each stop as a slice;
//! - counters as counter tracks; tasks as async slices;
//! - a flow arrow from the thread whose unlock woke a lock waiter (on its
//!   state track, at the wake-up) to the end of the waiter's lock-wait
//!   slice.
//!
//! Timestamps are microseconds (the format's unit) with nanosecond
//! fractions. Ranges still open at a generation's end are closed there;
//! ends whose begins came before the trace are left out.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use crate::format::EventKind as K;
use crate::reader::states::{StateSlice, states};
use crate::reader::{Event, Stream, Trace};

const PID: u64 = 1;
/// State tracks' tids: the thread's id plus this.
pub const STATE_TID_BASE: u64 = 1 << 40;
/// The stop-the-world track.
const STW_TID: u64 = 0;

/// What an export wrote.
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

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Nanoseconds to the format's microseconds.
fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

struct Out<'w, W: Write> {
    w: &'w mut W,
    first: bool,
    stats: Stats,
}

impl<W: Write> Out<'_, W> {
    fn raw(&mut self, obj: String) -> io::Result<()> {
        if !self.first {
            self.w.write_all(b",\n")?;
        }
        self.first = false;
        self.w.write_all(obj.as_bytes())
    }

    fn slice(
        &mut self,
        tid: u64,
        name: &str,
        cat: &str,
        start: u64,
        end: u64,
        args: &str,
    ) -> io::Result<()> {
        self.stats.slices += 1;
        self.raw(format!(
            "{{\"ph\":\"X\",\"pid\":{PID},\"tid\":{tid},\"name\":{},\"cat\":{},\"ts\":{},\"dur\":{},\"args\":{{{args}}}}}",
            esc(name),
            esc(cat),
            us(start),
            us(end.saturating_sub(start))
        ))
    }

    fn instant(&mut self, tid: u64, name: &str, cat: &str, ts: u64, args: &str) -> io::Result<()> {
        self.stats.instants += 1;
        self.raw(format!(
            "{{\"ph\":\"i\",\"s\":\"t\",\"pid\":{PID},\"tid\":{tid},\"name\":{},\"cat\":{},\"ts\":{},\"args\":{{{args}}}}}",
            esc(name),
            esc(cat),
            us(ts)
        ))
    }

    fn thread_name(&mut self, tid: u64, name: &str, sort: u64) -> io::Result<()> {
        self.raw(format!(
            "{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{tid},\"name\":\"thread_name\",\"args\":{{\"name\":{}}}}}",
            esc(name)
        ))?;
        self.raw(format!(
            "{{\"ph\":\"M\",\"pid\":{PID},\"tid\":{tid},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{sort}}}}}"
        ))
    }
}

/// Write `trace` as a JSON object with a `traceEvents` array.
pub fn write<W: Write>(trace: &Trace, w: &mut W) -> io::Result<Stats> {
    w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
    let mut out = Out {
        w,
        first: true,
        stats: Stats::default(),
    };
    out.raw(format!(
        "{{\"ph\":\"M\",\"pid\":{PID},\"name\":\"process_name\",\"args\":{{\"name\":\"rtcore trace\"}}}}"
    ))?;
    out.thread_name(STW_TID, "stop-the-world", 0)?;
    let mut named: BTreeMap<u64, String> = BTreeMap::new();
    let mut with_states: BTreeMap<u64, ()> = BTreeMap::new();
    let mut flow_id = 0u64;
    for g in &trace.generations {
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
                K::Attach => Some(s.string(e.args[0]).to_string()),
                _ => None,
            });
            let entry = named.entry(*id).or_default();
            match name {
                Some(n) if !n.is_empty() => *entry = format!("{n} ({id})"),
                _ if entry.is_empty() => *entry = format!("thread {id} (unattached)"),
                _ => {}
            }
        }
        let mut state_slices: HashMap<u64, Vec<StateSlice>> = HashMap::new();
        for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
            let v = states(s, gen_end);
            if !v.is_empty() {
                with_states.insert(*id, ());
                state_slices.insert(*id, v);
            }
        }
        for (id, v) in &state_slices {
            for st in v.iter().filter(|st| st.end > st.start) {
                let args = if st.detail.is_empty() {
                    String::new()
                } else {
                    format!("\"detail\":{}", esc(&st.detail))
                };
                out.slice(
                    id + STATE_TID_BASE,
                    st.name,
                    "state",
                    st.start,
                    st.end,
                    &args,
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
                flow_id: &mut flow_id,
            };
            t.replay(&mut out)?;
        }
        // Stops still in force at the end (the trace stop's own).
        for (stopper, (start, reason)) in stw.drain() {
            out.slice(
                STW_TID,
                &format!("stop-the-world: {reason}"),
                "world",
                start,
                gen_end.max(start),
                &format!("\"stopper\":{stopper}"),
            )?;
        }
        // Tasks still open at the end.
        for (task, name) in tasks.drain() {
            out.raw(format!(
                "{{\"ph\":\"e\",\"pid\":{PID},\"tid\":0,\"cat\":\"task\",\"id\":{task},\"name\":{},\"ts\":{}}}",
                esc(&name),
                us(gen_end)
            ))?;
        }
    }
    for (id, name) in &named {
        out.thread_name(*id, name, id * 2 + 1)?;
        if with_states.contains_key(id) {
            out.thread_name(id + STATE_TID_BASE, &format!("{name}: state"), id * 2 + 2)?;
        }
    }
    out.stats.threads = named.len() as u64;
    let stats = out.stats.clone();
    out.w.write_all(b"\n]}\n")?;
    Ok(stats)
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
fn close_to<W: Write>(
    out: &mut Out<'_, W>,
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
        out.slice(tid, &o.name, o.cat, o.start, ts, "")?;
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
    fn replay<W: Write>(&mut self, out: &mut Out<'_, W>) -> io::Result<()> {
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
                            &format!("\"stopper\":{}", e.thread),
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
                        &format!("\"category\":{},\"message\":{}", esc(cat), esc(msg)),
                    )?;
                }
                K::Counter => {
                    out.stats.counters += 1;
                    out.raw(format!(
                    "{{\"ph\":\"C\",\"pid\":{PID},\"tid\":{tid},\"name\":{},\"ts\":{},\"args\":{{\"value\":{}}}}}",
                    esc(s.string(a[0])),
                    us(e.ts),
                    crate::format::unzigzag(a[1])
                ))?;
                }
                K::TaskBegin => {
                    let name = s.string(a[1]).to_string();
                    out.raw(format!(
                    "{{\"ph\":\"b\",\"pid\":{PID},\"tid\":{tid},\"cat\":\"task\",\"id\":{},\"name\":{},\"ts\":{}}}",
                    a[0],
                    esc(&name),
                    us(e.ts)
                ))?;
                    self.tasks.insert(a[0], name);
                }
                K::TaskEnd => {
                    // Begun before the trace: nothing to end.
                    if let Some(name) = self.tasks.remove(&a[0]) {
                        out.raw(format!(
                        "{{\"ph\":\"e\",\"pid\":{PID},\"tid\":{tid},\"cat\":\"task\",\"id\":{},\"name\":{},\"ts\":{}}}",
                        a[0],
                        esc(&name),
                        us(e.ts)
                    ))?;
                    }
                }
                K::ProcSteal => out.instant(
                    tid,
                    &format!("P steal: P {} from thread {}", a[0], a[2]),
                    "sysmon",
                    e.ts,
                    "",
                )?,
                K::PreemptRequest => out.instant(
                    tid,
                    &format!("preemption request {} to thread {}", a[1], a[0]),
                    "sysmon",
                    e.ts,
                    "",
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
                        match a[0] {
                            1 => format!("thread {}", a[1]),
                            2 => format!("lock {:#x}", a[1]),
                            3 => format!("hook run {}", a[1]),
                            k => format!("kind {k} key {}", a[1]),
                        }
                    ),
                    "sysmon",
                    e.ts,
                    "",
                )?,
                K::PreemptAck => out.instant(
                    tid,
                    &format!("preemption acknowledged ({})", a[0]),
                    "world",
                    e.ts,
                    "",
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
                    "",
                )?,
                _ => {}
            }
        }
        // Open at the generation's end: closed there, innermost first.
        while let Some(o) = stack.pop() {
            out.slice(tid, &o.name, o.cat, o.start, gen_end.max(o.start), "")?;
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
fn flow<W: Write>(
    out: &mut Out<'_, W>,
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
    let end_ts = e.ts.saturating_sub(1);
    out.raw(format!(
        "{{\"ph\":\"s\",\"pid\":{PID},\"tid\":{},\"cat\":\"lock\",\"name\":\"unlock woke a waiter\",\"id\":{},\"ts\":{}}}",
        releaser + STATE_TID_BASE,
        flow_id,
        us(e.ts)
    ))?;
    out.raw(format!(
        "{{\"ph\":\"f\",\"bp\":\"e\",\"pid\":{PID},\"tid\":{waiter},\"cat\":\"lock\",\"name\":\"unlock woke a waiter\",\"id\":{},\"ts\":{}}}",
        flow_id,
        us(end_ts)
    ))
}
