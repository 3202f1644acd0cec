//! Deadlocks named: sysmon's search of the wait-for graph of threads parked
//! on rtcore mutexes and read/write locks (`lock::waiters`).
//!
//! A node is a parked thread; an edge goes from a thread to each parked
//! thread it waits for:
//! - waiting for a mutex: its owner (the lock word);
//! - waiting to write an rwlock: its writer (the lock word) and every
//!   thread holding it for reading (their published held records);
//! - waiting to read an rwlock: its writer, and every thread parked to
//!   write it (writers are preferred: a parked writer stops new readers).
//!
//! Only parked threads can be on a cycle, and a parked thread holds what
//! its record says for as long as it stays parked, so a cycle among
//! threads that stayed parked under the same epochs across two scans
//! (`SCAN_EVERY_NS` apart) is a deadlock: none of them can be woken by
//! another. It is reported once. Not detected: a cycle through anything
//! but rtcore locks (a condition variable, a blocking region, a
//! `pthread_mutex_t`, a join), a lock whose holder exited, and locks taken
//! while the lock-rank mode was off held for reading (their holders are
//! not recorded).
//!
//! Invariants:
//! - Runs in sysmon's tick, under `sysmonlock`; it reads other threads'
//!   published waits under their slot locks only, and never waits on user
//!   code.
//! - A cycle is reported only when seen with the same epochs in two scans,
//!   and its report is built from a third look at each member under its
//!   slot's lock, so every name in it is read from a live lock.

use std::collections::{HashMap, HashSet};

use crate::lock::order::LockKind;
use crate::lock::waiters::{self, WaiterView};

/// How often the graph is searched while threads are parked. A cycle is
/// reported on the scan after the one that first saw it, so within two
/// periods of it closing (plus one tick).
pub const SCAN_EVERY_NS: u64 = 200_000_000;

/// A cycle's identity: its members and their epochs, sorted.
type CycleKey = Vec<(u64, u64)>;

#[derive(Default)]
pub struct Detector {
    next_scan: u64,
    /// Cycles seen by the last scan (not yet reported).
    seen: HashSet<CycleKey>,
    /// Cycles reported, kept while their members stay parked.
    reported: HashSet<CycleKey>,
    views: Vec<WaiterView>,
}

/// What one scan found.
#[derive(Default)]
pub struct Found {
    pub reports: Vec<String>,
    /// When the next scan is due (while threads are parked).
    pub next_deadline: Option<u64>,
}

impl Detector {
    /// Scan if one is due (`now` on sysmon's clock).
    pub fn tick(&mut self, now: u64) -> Found {
        let mut found = Found::default();
        if !waiters::any_parked() {
            self.seen.clear();
            self.reported.clear();
            self.next_scan = 0;
            return found;
        }
        if self.next_scan == 0 {
            // First sight of parked threads: scan now.
            self.next_scan = now;
        }
        if now >= self.next_scan {
            waiters::snapshot(&mut self.views);
            let cycles = find_cycles(&self.views);
            for cycle in self.confirm(cycles) {
                if let Some(r) = report(&cycle) {
                    found.reports.push(r);
                } else {
                    // A member woke between the scan and the report: not
                    // reported, and not seen again under these epochs.
                    self.reported.remove(&key_of(&cycle));
                }
            }
            self.next_scan = now + SCAN_EVERY_NS;
        }
        found.next_deadline = Some(self.next_scan);
        found
    }
}

impl Detector {
    /// Given the cycles one scan found, those to report now: seen by the
    /// previous scan too, with the same epochs, and not reported yet.
    fn confirm(&mut self, cycles: Vec<Vec<Member>>) -> Vec<Vec<Member>> {
        let mut now_seen = HashSet::new();
        let mut out = Vec::new();
        for cycle in cycles {
            let key = key_of(&cycle);
            if self.seen.contains(&key) && !self.reported.contains(&key) {
                self.reported.insert(key.clone());
                out.push(cycle);
            }
            now_seen.insert(key);
        }
        // Forget reported cycles that no longer exist (a member woke).
        self.reported.retain(|k| now_seen.contains(k));
        self.seen = now_seen;
        out
    }
}

/// A cycle: each member, and the lock it waits for (held by the next).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub thread: u64,
    pub epoch: u64,
}

fn key_of(cycle: &[Member]) -> CycleKey {
    let mut k: CycleKey = cycle.iter().map(|m| (m.thread, m.epoch)).collect();
    k.sort_unstable();
    k
}

/// Edges of the wait-for graph over `views` (indices into it).
pub fn edges(views: &[WaiterView]) -> Vec<Vec<usize>> {
    let by_thread: HashMap<u64, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.thread, i))
        .collect();
    // Readers holding each rwlock, and threads parked to write each rwlock;
    // holders of each interposed lock (their lock words are glibc's: the
    // holds the waiters published say who holds what), by mode.
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut writers_parked: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut external: HashMap<usize, Vec<(usize, bool)>> = HashMap::new();
    for (i, v) in views.iter().enumerate() {
        for h in &v.holds {
            if h.kind == LockKind::RwLock && h.shared {
                readers.entry(h.addr).or_default().push(i);
            }
            if h.kind == LockKind::Pthread {
                external.entry(h.addr).or_default().push((i, h.shared));
            }
        }
        if v.want.kind == LockKind::RwLock && !v.want.shared {
            writers_parked.entry(v.want.addr).or_default().push(i);
        }
    }
    views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut out: Vec<usize> = Vec::new();
            if let Some(&j) = by_thread.get(&v.exclusive_holder) {
                out.push(j);
            }
            if v.want.kind == LockKind::Pthread {
                // A reader waits for writers holding it; a writer for all.
                let holders = external.get(&v.want.addr).into_iter().flatten();
                out.extend(
                    holders
                        .filter(|(_, shared)| !(v.want.shared && *shared))
                        .map(|(j, _)| *j),
                );
            }
            if v.want.kind == LockKind::RwLock {
                let more = if v.want.shared {
                    writers_parked.get(&v.want.addr)
                } else {
                    readers.get(&v.want.addr)
                };
                out.extend(more.into_iter().flatten().copied());
            }
            out.retain(|&j| j != i);
            out.sort_unstable();
            out.dedup();
            out
        })
        .collect()
}

/// Every elementary cycle reachable by a depth-first search, each once,
/// rotated to start at its smallest thread id. (Not every elementary cycle
/// of a dense graph, only those closed by a back edge of the search; each
/// deadlocked group has at least one.)
pub fn find_cycles(views: &[WaiterView]) -> Vec<Vec<Member>> {
    let adj = edges(views);
    let n = views.len();
    // 0 unvisited, 1 on the stack, 2 done.
    let mut color = vec![0u8; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut cycles: Vec<Vec<Member>> = Vec::new();
    let mut keys: HashSet<CycleKey> = HashSet::new();
    for root in 0..n {
        if color[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, next edge index).
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = 1;
        stack.push(root);
        while let Some(&mut (u, ref mut k)) = work.last_mut() {
            if *k < adj[u].len() {
                let v = adj[u][*k];
                *k += 1;
                match color[v] {
                    0 => {
                        color[v] = 1;
                        stack.push(v);
                        work.push((v, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&x| x == v).unwrap_or(0);
                        let mut c: Vec<Member> = stack[from..]
                            .iter()
                            .map(|&x| Member {
                                thread: views[x].thread,
                                epoch: views[x].epoch,
                            })
                            .collect();
                        let min = (0..c.len()).min_by_key(|&i| c[i].thread).unwrap_or(0);
                        c.rotate_left(min);
                        if keys.insert(key_of(&c)) {
                            cycles.push(c);
                        }
                    }
                    _ => {}
                }
            } else {
                color[u] = 2;
                stack.pop();
                work.pop();
            }
        }
    }
    cycles
}

/// "deadlock: thread 3 'worker-1' waits for mutex 'b' (rank db) at kv.c:40,
/// held by thread 4 'compactor' (locked at kv.c:20), which waits for ..."
/// Built from a fresh look at each member; `None` if one woke meanwhile.
fn report(cycle: &[Member]) -> Option<String> {
    // The views of this scan, again under each slot's lock.
    let mut views = Vec::new();
    waiters::snapshot(&mut views);
    let view = |m: &Member| {
        views
            .iter()
            .find(|v| v.thread == m.thread && v.epoch == m.epoch)
            .cloned()
    };
    let mut parts = Vec::new();
    for (i, m) in cycle.iter().enumerate() {
        let next = &cycle[(i + 1) % cycle.len()];
        let v = view(m)?;
        let d = waiters::describe(m.thread, m.epoch)?;
        let nv = view(next)?;
        let nd = waiters::describe(next.thread, next.epoch)?;
        let how = match (v.want.kind, v.want.shared) {
            (LockKind::RwLock, true) => "waits to read",
            (LockKind::RwLock, false) => "waits to write",
            _ => "waits for",
        };
        // How the next member stands in the way: holding the lock (with
        // the site it took it at, if recorded), or parked to write it.
        let held = nv.holds.iter().find(|h| h.addr == v.want.addr);
        let by = match held {
            Some(h) if h.kind == LockKind::RwLock && h.shared => {
                format!(
                    "read-held by thread {} '{}' (locked at {})",
                    next.thread,
                    nd.thread_name,
                    waiters::held_site(h)
                )
            }
            Some(h) => format!(
                "held by thread {} '{}' (locked at {})",
                next.thread,
                nd.thread_name,
                waiters::held_site(h)
            ),
            None if v.exclusive_holder == next.thread => {
                format!("held by thread {} '{}'", next.thread, nd.thread_name)
            }
            None => format!(
                "behind thread {} '{}', parked to write it (writers go first)",
                next.thread, nd.thread_name
            ),
        };
        let who = if i == 0 {
            format!("thread {} '{}' ", m.thread, d.thread_name)
        } else {
            "which ".to_string()
        };
        parts.push(format!(
            "{who}{how} {} at {}, {by}",
            d.target,
            waiters::want_site(&v.want)
        ));
    }
    Some(format!(
        "rtcore: deadlock: {} ({} threads parked for good)",
        parts.join(", "),
        cycle.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::waiters::{HeldView, Want};

    fn want(addr: usize, kind: LockKind, shared: bool) -> Want {
        Want {
            addr,
            kind,
            shared,
            file: std::ptr::null(),
            line: 0,
            site: 0,
        }
    }

    fn held(addr: usize, kind: LockKind, shared: bool) -> HeldView {
        HeldView {
            addr,
            kind,
            shared,
            file: std::ptr::null(),
            line: 0,
            key: 0,
        }
    }

    fn view(thread: u64, w: Want, holder: u64, holds: Vec<HeldView>) -> WaiterView {
        WaiterView {
            thread,
            epoch: thread * 10,
            want: w,
            exclusive_holder: holder,
            holds,
        }
    }

    fn threads(c: &[Member]) -> Vec<u64> {
        c.iter().map(|m| m.thread).collect()
    }

    fn cycle(members: &[(u64, u64)]) -> Vec<Member> {
        members
            .iter()
            .map(|&(thread, epoch)| Member { thread, epoch })
            .collect()
    }

    #[test]
    fn a_cycle_is_reported_once_after_two_sightings() {
        let mut d = Detector::default();
        let c = cycle(&[(1, 10), (2, 20)]);
        assert!(d.confirm(vec![c.clone()]).is_empty(), "seen once: not yet");
        assert_eq!(d.confirm(vec![c.clone()]), vec![c.clone()]);
        assert!(d.confirm(vec![c.clone()]).is_empty(), "reported already");
        // It resolves; the same threads deadlock again later, under new
        // epochs: a new deadlock.
        assert!(d.confirm(vec![]).is_empty());
        let again = cycle(&[(1, 11), (2, 21)]);
        assert!(d.confirm(vec![again.clone()]).is_empty());
        assert_eq!(d.confirm(vec![again.clone()]), vec![again]);
    }

    #[test]
    fn a_cycle_whose_member_parked_again_is_not_confirmed() {
        // Two momentary cycles of the same threads, each seen once: a
        // member woke and parked again in between (a new epoch).
        let mut d = Detector::default();
        assert!(d.confirm(vec![cycle(&[(1, 10), (2, 20)])]).is_empty());
        assert!(d.confirm(vec![cycle(&[(1, 10), (2, 22)])]).is_empty());
        assert!(d.confirm(vec![cycle(&[(1, 12), (2, 22)])]).is_empty());
    }

    #[test]
    fn two_mutexes_crossed_make_one_cycle() {
        let (a, b) = (0x100, 0x200);
        let v = vec![
            view(
                3,
                want(b, LockKind::Mutex, false),
                4,
                vec![held(a, LockKind::Mutex, false)],
            ),
            view(
                4,
                want(a, LockKind::Mutex, false),
                3,
                vec![held(b, LockKind::Mutex, false)],
            ),
        ];
        let c = find_cycles(&v);
        assert_eq!(c.len(), 1);
        assert_eq!(threads(&c[0]), vec![3, 4]);
    }

    /// Interposed pthread locks: no owner in the lock word rtcore can read,
    /// so the holders come from the published holds. Writers crossed make
    /// a cycle; a reader does not wait for a reader.
    #[test]
    fn interposed_locks_crossed_make_a_cycle_found_from_the_holds() {
        let (a, b) = (0x100, 0x200);
        let p = LockKind::Pthread;
        let v = vec![
            view(5, want(b, p, false), 0, vec![held(a, p, false)]),
            view(6, want(a, p, false), 0, vec![held(b, p, false)]),
        ];
        let c = find_cycles(&v);
        assert_eq!(c.len(), 1);
        assert_eq!(threads(&c[0]), vec![5, 6]);
        // Both read what the other read-holds: no wait, no cycle.
        let r = vec![
            view(5, want(b, p, true), 0, vec![held(a, p, true)]),
            view(6, want(a, p, true), 0, vec![held(b, p, true)]),
        ];
        assert!(find_cycles(&r).is_empty());
        // A writer waits for a reader.
        let w = vec![
            view(5, want(b, p, false), 0, vec![held(a, p, true)]),
            view(6, want(a, p, false), 0, vec![held(b, p, true)]),
        ];
        assert_eq!(find_cycles(&w).len(), 1);
    }

    #[test]
    fn a_chain_is_not_a_cycle() {
        let (a, b) = (0x100, 0x200);
        // 3 waits for 4, 4 waits for 5, which is not parked.
        let v = vec![
            view(
                3,
                want(b, LockKind::Mutex, false),
                4,
                vec![held(a, LockKind::Mutex, false)],
            ),
            view(
                4,
                want(0x300, LockKind::Mutex, false),
                5,
                vec![held(b, LockKind::Mutex, false)],
            ),
        ];
        assert!(find_cycles(&v).is_empty());
    }

    #[test]
    fn an_inversion_through_a_read_lock() {
        let (r, m) = (0x100, 0x200);
        // 3 reads r and waits for mutex m; 4 holds m and waits to write r.
        let v = vec![
            view(
                3,
                want(m, LockKind::Mutex, false),
                4,
                vec![held(r, LockKind::RwLock, true)],
            ),
            view(
                4,
                want(r, LockKind::RwLock, false),
                0,
                vec![held(m, LockKind::Mutex, false)],
            ),
        ];
        let c = find_cycles(&v);
        assert_eq!(c.len(), 1);
        assert_eq!(threads(&c[0]), vec![3, 4]);
    }

    #[test]
    fn a_reader_behind_a_parked_writer() {
        let (r, m) = (0x100, 0x200);
        // 3 reads r, waits for m; 4 holds m, waits to read r behind 5,
        // parked to write r, which waits for 3's read.
        let v = vec![
            view(
                3,
                want(m, LockKind::Mutex, false),
                4,
                vec![held(r, LockKind::RwLock, true)],
            ),
            view(
                4,
                want(r, LockKind::RwLock, true),
                0,
                vec![held(m, LockKind::Mutex, false)],
            ),
            view(5, want(r, LockKind::RwLock, false), 0, vec![]),
        ];
        let c = find_cycles(&v);
        assert_eq!(c.len(), 1);
        assert_eq!(threads(&c[0]), vec![3, 4, 5]);
    }

    #[test]
    fn readers_waiting_on_readers_do_not_deadlock() {
        let r = 0x100;
        let v = vec![
            view(3, want(r, LockKind::RwLock, true), 0, vec![]),
            view(
                4,
                want(r, LockKind::RwLock, true),
                0,
                vec![held(r, LockKind::RwLock, true)],
            ),
        ];
        assert!(find_cycles(&v).is_empty());
    }

    #[test]
    fn two_separate_cycles_and_a_bystander() {
        let v = vec![
            view(
                1,
                want(0x20, LockKind::Mutex, false),
                2,
                vec![held(0x10, LockKind::Mutex, false)],
            ),
            view(
                2,
                want(0x10, LockKind::Mutex, false),
                1,
                vec![held(0x20, LockKind::Mutex, false)],
            ),
            view(
                3,
                want(0x40, LockKind::Mutex, false),
                4,
                vec![held(0x30, LockKind::Mutex, false)],
            ),
            view(
                4,
                want(0x50, LockKind::Mutex, false),
                5,
                vec![held(0x40, LockKind::Mutex, false)],
            ),
            view(
                5,
                want(0x30, LockKind::Mutex, false),
                3,
                vec![held(0x50, LockKind::Mutex, false)],
            ),
            view(6, want(0x10, LockKind::Mutex, false), 1, vec![]),
        ];
        let mut c: Vec<Vec<u64>> = find_cycles(&v).iter().map(|c| threads(c)).collect();
        c.sort();
        assert_eq!(c, vec![vec![1, 2], vec![3, 4, 5]]);
    }
}
