//! Statistics of a trace (`rtcore stats`, `rtc_trace_stats_json`, Python's
//! `rtcore.trace_stats`): per thread, the time in each state; blocking
//! reasons with totals; the most contended locks; sysmon's actions; events
//! by kind; ranges that crossed the trace's edges; bytes per event.
//!
//! Computed from a trace the validator accepted, so every state machine it
//! replays is consistent.

use crate::format::StallKind;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::format::EventKind as K;
use crate::reader::{Generation, ReadError, states::states};

/// One thread's time by state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    pub id: u64,
    pub name: String,
    /// Nanoseconds in RUNNING, RUNNABLE, BLOCKING, WAITING (in that order).
    pub state_ns: [u64; 4],
    pub events: u64,
}

pub const STATES: [&str; 4] = ["RUNNING", "RUNNABLE", "BLOCKING", "WAITING"];

/// A blocking-region reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReasonStats {
    pub reason: String,
    pub count: u64,
    pub total_ns: u64,
}

/// A lock wait still open when the trace ends (a deadlock dump shows the
/// threads waiting on each other's lock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenWait {
    pub thread: u64,
    pub lock: u64,
    pub lock_name: String,
    /// Who held it when the thread began to wait (0: none known).
    pub owner: u64,
}

/// One contended lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    pub address: u64,
    pub name: String,
    /// Waits that ended in the trace.
    pub contentions: u64,
    pub wait_total_ns: u64,
    pub wait_max_ns: u64,
    /// Who held it when a thread had to wait, with how often (0: it was
    /// already released when the waiter looked at its owner).
    pub owners: BTreeMap<u64, u64>,
    /// Whose unlock woke a waiter that had gone to sleep, with how often
    /// (waits that ended without sleeping, or by a spin, name nobody).
    pub woken_by: BTreeMap<u64, u64>,
}

/// sysmon's actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysmonStats {
    /// Ps taken back from threads in blocking regions (steals outside a
    /// stop of the world).
    pub retakes: u64,
    /// Ps claimed by a stop of the world from blocking threads.
    pub stop_claims: u64,
    pub preempt_requests: u64,
    pub preempt_acks: u64,
    /// Stall episodes opened, by kind (thread, lock, hook overrun).
    pub thread_stalls: u64,
    pub lock_stalls: u64,
    pub hook_overruns: u64,
    pub stalls_resolved: u64,
}

/// Everything `rtcore stats` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    pub events: u64,
    pub generations: usize,
    /// From the first event to the last, in nanoseconds.
    pub duration_ns: u64,
    pub threads: Vec<ThreadStats>,
    pub blocking: Vec<ReasonStats>,
    /// Most contended first (by total wait).
    pub locks: Vec<LockStats>,
    pub sysmon: SysmonStats,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub crossed_start: u64,
    pub open_at_end: u64,
    pub stops_of_the_world: u64,
    /// The trace was cut short: these statistics cover its complete
    /// generations only.
    pub cut: Option<crate::reader::Cut>,
    /// Lock waits begun and not ended by the end of the trace.
    pub waiting_at_end: Vec<OpenWait>,
    /// Generations dropped while recording, and their events and bytes.
    pub lost_generations: u64,
    pub lost_events: u64,
    pub lost_bytes: u64,
}

/// Validate and summarise a trace in memory.
pub fn stats(bytes: &[u8]) -> Result<Stats, ReadError> {
    stats_reader(bytes)
}

/// Validate and summarise a trace file, reading it one generation at a
/// time (memory bounded by one generation).
pub fn stats_file(path: &std::path::Path) -> std::io::Result<Result<Stats, ReadError>> {
    crate::reader::with_file(path, |f| stats_reader(f))
}

/// Validate and summarise a trace as it is read: each generation is
/// summarised once valid, then dropped.
pub fn stats_reader(input: impl std::io::Read) -> Result<Stats, ReadError> {
    let mut acc = Acc::default();
    let summary = crate::reader::visit_generations(input, |g| acc.add(g))?;
    let mut st = acc.finish();
    st.generations = summary.generations;
    st.bytes = summary.bytes;
    st.events = summary.events;
    st.by_kind = summary.by_kind;
    st.crossed_start = summary.crossed_start;
    st.cut = summary.cut.clone();
    st.lost_generations = summary.lost_generations;
    st.lost_events = summary.lost_events;
    st.lost_bytes = summary.lost_bytes;
    st.open_at_end = summary.open_at_end;
    Ok(st)
}

/// The statistics so far, generation by generation.
struct Acc {
    out: Stats,
    threads: BTreeMap<u64, ThreadStats>,
    reasons: HashMap<String, ReasonStats>,
    locks: HashMap<u64, LockStats>,
    /// Each thread's lock wait begun and not yet ended (across
    /// generations).
    pending: BTreeMap<u64, OpenWait>,
    first: u64,
    last: u64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc {
            out: Stats::default(),
            threads: BTreeMap::new(),
            reasons: HashMap::new(),
            locks: HashMap::new(),
            pending: BTreeMap::new(),
            first: u64::MAX,
            last: 0,
        }
    }
}

impl Acc {
    fn add(&mut self, g: &Generation) {
        let Acc {
            out,
            threads,
            reasons,
            locks,
            pending,
            first,
            last,
        } = self;
        let gen_end = g
            .streams
            .values()
            .flat_map(|s| s.events.iter().map(|e| e.ts))
            .max()
            .unwrap_or(0);
        for (id, s) in g.streams.iter().filter(|(id, _)| **id != 0) {
            if let (Some(a), Some(b)) = (s.events.first(), s.events.last()) {
                *first = (*first).min(a.ts);
                *last = (*last).max(b.ts);
            }
            let t = threads.entry(*id).or_insert_with(|| ThreadStats {
                id: *id,
                ..Default::default()
            });
            t.events += s.events.len() as u64;
            for e in &s.events {
                let name = match e.kind {
                    K::ThreadStatus => s.string(e.args[1]),
                    K::Attach | K::ThreadName => s.string(e.args[0]),
                    _ => continue,
                };
                if !name.is_empty() {
                    t.name = name.to_string();
                }
            }
            for sl in states(s, *id, g.streams.get(&0), gen_end) {
                let d = sl.end.saturating_sub(sl.start);
                if let Some(i) = STATES.iter().position(|n| *n == sl.name) {
                    t.state_ns[i] = t.state_ns[i].saturating_add(d);
                }
                if sl.name == "BLOCKING" {
                    let r = reasons
                        .entry(sl.detail.clone())
                        .or_insert_with(|| ReasonStats {
                            reason: sl.detail.clone(),
                            ..Default::default()
                        });
                    r.count += 1;
                    r.total_ns = r.total_ns.saturating_add(d);
                }
            }
            // Locks, sysmon, stops: this stream's own events. A stream may
            // begin inside a stop of its own (`STW status` in the header).
            let mut waiting: Option<(u64, u64)> = None;
            let mut in_stop = g.streams.get(&0).is_some_and(|h| {
                h.events
                    .iter()
                    .any(|e| e.kind == K::StwStatus && e.args[0] == *id)
            });
            for e in &s.events {
                let a = &e.args;
                match e.kind {
                    K::LockContended | K::RwLockContended => {
                        let l = locks.entry(a[0]).or_insert_with(|| LockStats {
                            address: a[0],
                            ..Default::default()
                        });
                        if l.name.is_empty() {
                            l.name = s.string(a[1]).to_string();
                        }
                        // An rwlock's owner is its writer (0: readers).
                        let owner = if e.kind == K::LockContended {
                            a[2]
                        } else {
                            a[3]
                        };
                        waiting = Some((a[0], owner));
                        pending.insert(
                            *id,
                            OpenWait {
                                thread: *id,
                                lock: a[0],
                                lock_name: l.name.clone(),
                                owner,
                            },
                        );
                    }
                    K::LockAcquired => {
                        // A wait whose contention came before the trace has
                        // no owner recorded: counted, without one.
                        let owner = waiting.take().filter(|(l, _)| *l == a[0]).map(|w| w.1);
                        pending.remove(id);
                        let l = locks.entry(a[0]).or_insert_with(|| LockStats {
                            address: a[0],
                            ..Default::default()
                        });
                        l.contentions += 1;
                        l.wait_total_ns = l.wait_total_ns.saturating_add(a[1]);
                        l.wait_max_ns = l.wait_max_ns.max(a[1]);
                        if let Some(o) = owner {
                            *l.owners.entry(o).or_default() += 1;
                        }
                        if a[2] != 0 {
                            *l.woken_by.entry(a[2]).or_default() += 1;
                        }
                    }
                    K::StwBegin => {
                        in_stop = true;
                        out.stops_of_the_world += 1;
                    }
                    K::StwEnd => in_stop = false,
                    K::ProcSteal if in_stop => out.sysmon.stop_claims += 1,
                    K::ProcSteal => out.sysmon.retakes += 1,
                    K::PreemptRequest => out.sysmon.preempt_requests += 1,
                    K::PreemptAck => out.sysmon.preempt_acks += 1,
                    K::StallOpen => match StallKind::from_code(a[0]) {
                        Some(StallKind::Thread) => out.sysmon.thread_stalls += 1,
                        Some(StallKind::Lock) => out.sysmon.lock_stalls += 1,
                        _ => out.sysmon.hook_overruns += 1,
                    },
                    K::StallResolved => out.sysmon.stalls_resolved += 1,
                    _ => {}
                }
            }
        }
    }

    fn finish(self) -> Stats {
        let Acc {
            mut out,
            threads,
            reasons,
            locks,
            pending,
            first,
            last,
        } = self;
        out.waiting_at_end = pending.into_values().collect();
        out.duration_ns = last.saturating_sub(first.min(last));
        out.threads = threads.into_values().collect();
        out.blocking = reasons.into_values().collect();
        out.blocking
            .sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.reason.cmp(&b.reason)));
        out.locks = locks.into_values().filter(|l| l.contentions > 0).collect();
        out.locks.sort_by(|a, b| {
            b.wait_total_ns
                .cmp(&a.wait_total_ns)
                .then(a.address.cmp(&b.address))
        });
        out
    }
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

impl Stats {
    pub fn bytes_per_event(&self) -> f64 {
        self.bytes as f64 / self.events.max(1) as f64
    }

    /// The plain-text report (`rtcore stats`).
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "trace: {} events in {} generation(s) over {}, {} bytes ({:.1} bytes per event)",
            self.events,
            self.generations,
            ms(self.duration_ns),
            self.bytes,
            self.bytes_per_event()
        );
        if self.lost_generations > 0 {
            let _ = writeln!(
                o,
                "lost while recording (a sink fell behind): {} generation(s), {} events, {} bytes",
                self.lost_generations, self.lost_events, self.lost_bytes
            );
        }
        if let Some(c) = &self.cut {
            let _ = writeln!(
                o,
                "this trace was {}; these statistics cover its {} complete generation(s)",
                c.describe(),
                self.generations
            );
        }
        let _ = writeln!(
            o,
            "ranges crossing the start: {}; open at the end: {}; stops of the world: {}",
            self.crossed_start, self.open_at_end, self.stops_of_the_world
        );
        let _ = writeln!(o, "\nthreads: time in each state");
        let _ = writeln!(
            o,
            "  {:>6}  {:<24} {:>14} {:>14} {:>14} {:>14} {:>9}",
            "id", "name", STATES[0], STATES[1], STATES[2], STATES[3], "events"
        );
        for t in &self.threads {
            let name = if t.name.is_empty() {
                "(unattached)"
            } else {
                &t.name
            };
            let _ = writeln!(
                o,
                "  {:>6}  {:<24} {:>14} {:>14} {:>14} {:>14} {:>9}",
                t.id,
                name,
                ms(t.state_ns[0]),
                ms(t.state_ns[1]),
                ms(t.state_ns[2]),
                ms(t.state_ns[3]),
                t.events
            );
        }
        let _ = writeln!(o, "\nblocking regions by reason");
        if self.blocking.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for r in &self.blocking {
            let reason = if r.reason.is_empty() {
                "(no reason given)"
            } else {
                &r.reason
            };
            let _ = writeln!(
                o,
                "  {:<32} {:>8} regions {:>14}",
                reason,
                r.count,
                ms(r.total_ns)
            );
        }
        let _ = writeln!(o, "\nmost contended locks");
        if self.locks.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for l in self.locks.iter().take(10) {
            let name = if l.name.is_empty() {
                format!("{:#x}", l.address)
            } else {
                format!("'{}' ({:#x})", l.name, l.address)
            };
            let owners: Vec<String> = l
                .owners
                .iter()
                .map(|(o, n)| match o {
                    // The lock was free again when the waiter looked.
                    0 => format!("released x{n}"),
                    o => format!("thread {o} x{n}"),
                })
                .collect();
            let woken: Vec<String> = l
                .woken_by
                .iter()
                .map(|(t, n)| format!("thread {t} x{n}"))
                .collect();
            let _ = writeln!(
                o,
                "  {:<36} {:>7} waits, {:>12} in all, {:>12} at most; held by {}{}",
                name,
                l.contentions,
                ms(l.wait_total_ns),
                ms(l.wait_max_ns),
                if owners.is_empty() {
                    "(not recorded)".to_string()
                } else {
                    owners.join(", ")
                },
                if woken.is_empty() {
                    String::new()
                } else {
                    format!("; sleepers woken by {}", woken.join(", "))
                }
            );
        }
        if !self.waiting_at_end.is_empty() {
            let _ = writeln!(o, "\nstill waiting for a lock when the trace ends");
            let name_of = |id: u64| {
                self.threads
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| format!("thread {id} '{}'", t.name))
                    .unwrap_or_else(|| format!("thread {id}"))
            };
            for w in &self.waiting_at_end {
                let _ = writeln!(
                    o,
                    "  {} waits for '{}' ({:#x}), held by {}",
                    name_of(w.thread),
                    w.lock_name,
                    w.lock,
                    if w.owner == 0 {
                        "nobody known".to_string()
                    } else {
                        name_of(w.owner)
                    }
                );
            }
        }
        let s = &self.sysmon;
        let _ = writeln!(o, "\nsysmon");
        let _ = writeln!(
            o,
            "  retakes {}, Ps claimed by stops {}, preemption requests {} (acknowledged {}), stalls: threads {}, locks {}, hook overruns {} ({} resolved)",
            s.retakes,
            s.stop_claims,
            s.preempt_requests,
            s.preempt_acks,
            s.thread_stalls,
            s.lock_stalls,
            s.hook_overruns,
            s.stalls_resolved
        );
        let _ = writeln!(o, "\nevents by kind");
        for (k, n) in &self.by_kind {
            let _ = writeln!(o, "  {k:<32} {n:>10}");
        }
        o
    }

    /// The same as JSON (`rtcore stats --json`, `rtc_trace_stats_json`).
    pub fn to_json(&self) -> String {
        let mut o = String::from("{");
        let _ = write!(
            o,
            "\"bytes\":{},\"events\":{},\"bytes_per_event\":{:.3},\"generations\":{},\"duration_ns\":{},\"crossed_start\":{},\"open_at_end\":{},\"stops_of_the_world\":{},",
            self.bytes,
            self.events,
            self.bytes_per_event(),
            self.generations,
            self.duration_ns,
            self.crossed_start,
            self.open_at_end,
            self.stops_of_the_world
        );
        let _ = write!(
            o,
            "\"lost\":{{\"generations\":{},\"events\":{},\"bytes\":{}}},",
            self.lost_generations, self.lost_events, self.lost_bytes
        );
        if let Some(c) = &self.cut {
            let _ = write!(
                o,
                "\"cut\":{{\"after_generation\":{},\"at_byte\":{},\"lost_bytes\":{}}},",
                c.after_generation, c.at_byte, c.lost_bytes
            );
        }
        o.push_str("\"threads\":[");
        for (i, t) in self.threads.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(
                o,
                "{{\"id\":{},\"name\":{},\"events\":{},\"state_ns\":{{",
                t.id,
                crate::export::json::esc(&t.name),
                t.events
            );
            for (j, s) in STATES.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                let _ = write!(o, "\"{s}\":{}", t.state_ns[j]);
            }
            o.push_str("}}");
        }
        o.push_str("],\"blocking\":[");
        for (i, r) in self.blocking.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(
                o,
                "{{\"reason\":{},\"count\":{},\"total_ns\":{}}}",
                crate::export::json::esc(&r.reason),
                r.count,
                r.total_ns
            );
        }
        o.push_str("],\"locks\":[");
        for (i, l) in self.locks.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let owners: Vec<String> = l
                .owners
                .iter()
                .map(|(t, n)| format!("\"{t}\":{n}"))
                .collect();
            let woken: Vec<String> = l
                .woken_by
                .iter()
                .map(|(t, n)| format!("\"{t}\":{n}"))
                .collect();
            let _ = write!(
                o,
                "{{\"address\":{},\"name\":{},\"contentions\":{},\"wait_total_ns\":{},\"wait_max_ns\":{},\"owners\":{{{}}},\"woken_by\":{{{}}}}}",
                l.address,
                crate::export::json::esc(&l.name),
                l.contentions,
                l.wait_total_ns,
                l.wait_max_ns,
                owners.join(","),
                woken.join(",")
            );
        }
        o.push_str("],\"waiting_at_end\":[");
        for (i, w) in self.waiting_at_end.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(
                o,
                "{{\"thread\":{},\"lock\":{},\"name\":{},\"owner\":{}}}",
                w.thread,
                w.lock,
                crate::export::json::esc(&w.lock_name),
                w.owner
            );
        }
        let s = &self.sysmon;
        let _ = write!(
            o,
            "],\"sysmon\":{{\"retakes\":{},\"stop_claims\":{},\"preempt_requests\":{},\"preempt_acks\":{},\"thread_stalls\":{},\"lock_stalls\":{},\"hook_overruns\":{},\"stalls_resolved\":{}}},\"by_kind\":{{",
            s.retakes,
            s.stop_claims,
            s.preempt_requests,
            s.preempt_acks,
            s.thread_stalls,
            s.lock_stalls,
            s.hook_overruns,
            s.stalls_resolved
        );
        for (i, (k, n)) in self.by_kind.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{}:{n}", crate::export::json::esc(k));
        }
        o.push_str("}}");
        o
    }
}
