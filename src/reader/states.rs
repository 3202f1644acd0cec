//! A thread's states over time, replayed from its own stream (a thread's
//! state changes only by its own events; another stream's steal takes its
//! P, not its state). Used by the exports and the statistics, on traces
//! the validator accepted.

use super::Stream;
use crate::format::EventKind as K;
use crate::format::{BlockReason, ThreadState};

/// One state slice of a thread.
#[derive(Clone, Debug)]
pub struct StateSlice {
    pub start: u64,
    pub end: u64,
    /// RUNNING, RUNNABLE, BLOCKING or WAITING.
    pub name: &'static str,
    /// The P it runs on, why it blocks, or what it waits for.
    pub detail: String,
}

fn state_name(code: u64) -> &'static str {
    ThreadState::from_code(code).map_or("unknown", ThreadState::name)
}

/// Replay a thread's own events into its state slices (its state changes
/// only by its own events; a steal takes its P, not its state).
pub fn states(s: &Stream, gen_end: u64) -> Vec<StateSlice> {
    let mut out = Vec::new();
    let mut cur: Option<(u64, &'static str, String)> = None;
    let mut set = |cur: &mut Option<(u64, &'static str, String)>,
                   ts: u64,
                   next: Option<(&'static str, String)>| {
        if let Some((start, name, detail)) = cur.take() {
            out.push(StateSlice {
                start,
                end: ts,
                name,
                detail,
            });
        }
        *cur = next.map(|(n, d)| (ts, n, d));
    };
    for e in &s.events {
        let next = match e.kind {
            K::ThreadStatus => Some((state_name(e.args[2]), String::new())),
            K::Attach | K::ProcStop | K::ExitBlockingSlow | K::Unblock => {
                Some(("RUNNABLE", String::new()))
            }
            K::ProcStart | K::ExitBlockingFast => Some(("RUNNING", format!("P {}", e.args[0]))),
            K::EnterBlocking => Some(("BLOCKING", s.string(e.args[2]).to_string())),
            K::Block => Some((
                "WAITING",
                BlockReason::from_code(e.args[0])
                    .map(|r| r.describe(e.args[1]))
                    .unwrap_or_default(),
            )),
            K::Detach => {
                set(&mut cur, e.ts, None);
                continue;
            }
            _ => continue,
        };
        set(&mut cur, e.ts, next);
    }
    set(&mut cur, gen_end, None);
    out
}
