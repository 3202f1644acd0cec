//! A generation's header (clock, the P set and each P's status, open stall
//! episodes) and each thread's status event: what the state machines
//! start from.

use super::*;
use crate::format::{MAX_PROCS, ProcState, ThreadState};

pub(super) fn header(number: u64, h: &[Event], st: &mut Gen) -> Result<(), ReadError> {
    let mut seen_clock = false;
    for e in h.iter() {
        st.kinds[e.kind as usize] += 1;
        match e.kind {
            EventKind::String => {}
            EventKind::ClockInfo => {
                if e.args[0] == 0 {
                    return fail(e, "a clock of 0 ticks per second".into());
                }
                if seen_clock {
                    return fail(e, "a second clock information".into());
                }
                seen_clock = true;
            }
            EventKind::ProcsChange => grow_procs(st, e.args[0], e)?,
            EventKind::ProcStatus => {
                let (p, state, owner, seq) = (e.args[0], e.args[1], e.args[2], e.args[3]);
                if p >= st.procs.len() as u64 {
                    return fail(
                        e,
                        format!("the status of P {p}, beyond the {} Ps", st.procs.len()),
                    );
                }
                let ps = match ProcState::from_code(state) {
                    // A P a stop claimed is free again once the trace runs.
                    Some(ProcState::Idle | ProcState::Stopped) => PS::Idle,
                    Some(ProcState::Running) => PS::Running(owner),
                    Some(ProcState::Syscall) => PS::Syscall(owner),
                    None => return fail(e, format!("P {p} has an unknown state {state}")),
                };
                st.procs[p as usize] = Proc { state: ps, seq };
            }
            EventKind::HookStatus => {
                let r = st.ranges.entry(e.args[0]);
                if r.hook.is_some() {
                    return fail(e, format!("thread {} runs two hooks", e.args[0]));
                }
                r.hook = Some(e.args[1]);
            }
            EventKind::StwStatus => {
                let r = st.ranges.entry(e.args[0]);
                if r.stw_open {
                    return fail(e, format!("thread {} stops the world twice", e.args[0]));
                }
                r.stw_open = true;
            }
            EventKind::OutsideStatus => {
                let r = st.ranges.entry(e.args[0]);
                if r.outside.is_some() {
                    return fail(
                        e,
                        format!("thread {} waits outside the world twice", e.args[0]),
                    );
                }
                r.outside = Some(e.args[2]);
                r.outside_seen = true;
            }
            EventKind::StallStatus => {
                if !st.stalls.insert((e.args[0], e.args[1])) {
                    return fail(e, format!("stall {} {} listed twice", e.args[0], e.args[1]));
                }
            }
            _ => {
                return fail(
                    e,
                    "an event that belongs in a thread's batch, in the header batch".into(),
                );
            }
        }
    }
    if !seen_clock && !h.is_empty() {
        return fail(
            &h[0],
            format!("generation {number}: the header batch has no clock information"),
        );
    }
    Ok(())
}

pub(super) fn grow_procs(st: &mut Gen, n: u64, e: &Event) -> Result<(), ReadError> {
    if n > MAX_PROCS {
        return fail(e, format!("{n} Ps (more than {MAX_PROCS})"));
    }
    while (st.procs.len() as u64) < n {
        st.procs.push(Proc {
            state: PS::Idle,
            seq: 0,
        });
    }
    Ok(())
}

pub(super) fn status(id: u64, e: &Event, st: &mut Gen) -> Result<(), ReadError> {
    if e.args[0] != id {
        return fail(
            e,
            format!("{} carries the status of thread {}", who(st, id), e.args[0]),
        );
    }
    let p = e.args[3].checked_sub(1);
    let state = match (ThreadState::from_code(e.args[2]), p) {
        (Some(ThreadState::Running), Some(p)) => TS::Running(p),
        (Some(ThreadState::Runnable), None) => TS::Runnable,
        (Some(ThreadState::Blocking), p) => TS::Blocking(p),
        (Some(ThreadState::Waiting), None) => TS::Waiting,
        _ => {
            let s = e.args[2];
            return fail(
                e,
                format!(
                    "{} has a status with state {s} and P+1 {}",
                    who(st, id),
                    e.args[3]
                ),
            );
        }
    };
    // The P must agree.
    if let TS::Running(p) | TS::Blocking(Some(p)) = state {
        let want = if matches!(state, TS::Running(_)) {
            PS::Running(id)
        } else {
            PS::Syscall(id)
        };
        match st.procs.get(p as usize) {
            Some(pr) if pr.state == want => {}
            Some(pr) => {
                return fail(
                    e,
                    format!(
                        "{} is {} but P {p} is {}",
                        who(st, id),
                        state.name(),
                        pr.state.name()
                    ),
                );
            }
            None => {
                return fail(
                    e,
                    format!("{} is on P {p}, which does not exist", who(st, id)),
                );
            }
        }
    }
    if e.args[6] > e.args[5] {
        return fail(
            e,
            format!(
                "{} acknowledged preemption request {} of {} made",
                who(st, id),
                e.args[6],
                e.args[5]
            ),
        );
    }
    if st.ranges.entry(id).outside.is_some() {
        return fail(
            e,
            format!(
                "{} has a status (it is attached), but the header has it waiting outside the world",
                who(st, id)
            ),
        );
    }
    st.threads.insert(
        id,
        Thread {
            state: Some(state),
            seq: e.args[4],
            preempt_requested: e.args[5],
            preempt_acked: e.args[6],
        },
    );
    st.ranges.entry(id).regions = e.args[7];
    Ok(())
}

/// Every P the header says is RUNNING or SYSCALL for a thread names a
/// thread whose status says so.
pub(super) fn check_proc_owners(h: &[Event], st: &Gen) -> Result<(), ReadError> {
    for e in h.iter().filter(|e| e.kind == EventKind::ProcStatus) {
        let (p, owner) = (e.args[0], e.args[2]);
        let want = match st.procs[p as usize].state {
            PS::Running(_) => TS::Running(p),
            PS::Syscall(_) => TS::Blocking(Some(p)),
            PS::Idle => continue,
        };
        let has = st.threads.get(&owner).and_then(|t| t.state);
        if has != Some(want) {
            return fail(
                e,
                format!(
                    "P {p} is {} but {} {}",
                    st.procs[p as usize].state.name(),
                    who(st, owner),
                    match has {
                        Some(s) => format!("is {}", s.name()),
                        None => "has no status".into(),
                    }
                ),
            );
        }
    }
    Ok(())
}
