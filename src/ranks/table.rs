//! The rank table: every declared rank, its closure as a bitset, and where
//! each order was declared.
//!
//! Invariants:
//! - Rank ids are stable: loading only appends. Ids are assigned in
//!   definition order, which is a topological order (definitions precede
//!   uses and there are no cycles), so every predecessor has a smaller id.
//! - `allowed[r]` is the set of ranks that may be held when a lock of rank `r`
//!   is acquired: the transitive predecessors of `r` (pseudo-ranks included,
//!   harmlessly, since no lock carries them), plus `r` itself when `r` is
//!   nestable, plus `hooklock` for every user rank. Bits are only ever added,
//!   never removed, so a checker racing a load sees either the old or the new
//!   answer for a new rank and the same answer for every old one.
//! - Rank 0 is the unranked leaf. Nothing may be acquired while a leaf is held:
//!   no `allowed` set contains bit 0, except nothing; `allowed[0]` holds every
//!   other bit.
//! - A load is atomic: it is checked completely before anything is published.
//!
//! The metadata lock (`meta`) is an inner lock: it is never held while any
//! other lock is acquired or across a wait.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::base::inner::{InnerRank, InnerRwLock};

use super::dsl::{self, Name, Pos, Statement};

mod load;
use crate::status::{
    Error, RTC_ERR_RANK_SYNTAX, RTC_ERR_RANK_TABLE_FULL, RTC_ERR_UNKNOWN_RANK, Result,
};

pub use crate::base::rank_set::{
    AllowedMatrix, GLOBAL_ALLOWED, GLOBAL_READY, LEAF, MAX_RANKS, RankSet, WORDS, ZERO_ROW,
    load_allowed,
};

/// Where a rank or an order was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub pos: Pos,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Rank 0.
    Leaf,
    /// One of rtcore's own ranks that user ranks come after (hooklock).
    BuiltinFirst,
    /// One of rtcore's own ranks that comes after every user rank.
    BuiltinInner,
    /// Loaded by the user.
    User,
}

#[derive(Clone, Debug)]
pub struct Rank {
    pub name: String,
    pub pseudo: bool,
    pub nestable: bool,
    pub class: Class,
    pub defined_at: Option<Loc>,
    /// Direct predecessors.
    pub preds: Vec<u32>,
}

struct Meta {
    ranks: Vec<Rank>,
    by_name: HashMap<String, u32>,
    /// (pred, succ) -> where `pred < succ` was written.
    edges: HashMap<(u32, u32), Loc>,
    /// Ids of the ranks that follow every user rank.
    inner: Vec<u32>,
    hooklock: Option<u32>,
}

enum Store {
    Static(&'static AllowedMatrix),
    Owned(Box<AllowedMatrix>),
}

pub struct RankTable {
    allowed: Store,
    meta: InnerRwLock<Meta>,
}

/// rtcore's own ranks. `hooklock` is taken with nothing held; hooks run
/// under it and take user locks, so every user rank follows it. rtcore's inner
/// locks come after everything, including every user rank (a thread may call
/// into rtcore while holding its own locks).
pub const BUILTIN_RANKS: &str = "\
# rtcore's own ranks (see docs/ranks.md). User ranks follow hooklock;
# the ranks after RTCORE_INNER follow every user rank.
NONE < hooklock;
hooklock < sysmon;
sysmon < RTCORE_INNER;
RTCORE_INNER < lifecycle;
lifecycle < sched, ranktable, lockreports, names, threadreason, hookreg, waiters;
sched, ranktable, lockreports, names, threadreason, hookreg, waiters < tracebuf;
tracebuf < tracequeue;
tracequeue < flightring;
flightring < learned;
";

/// Nodes whose successors are the inner ranks: every user rank joins here.
const INNER_ANCHOR: &str = "RTCORE_INNER";

impl RankTable {
    /// In a forked child: reset the table's lock (a loader in the parent
    /// may have held it).
    ///
    /// # Safety
    /// Only from the child's atfork handler.
    pub unsafe fn reset_after_fork(&self) {
        // SAFETY: the caller's guarantee.
        unsafe { self.meta.reset_after_fork() };
    }

    /// A fresh table (for tools and tests) holding rtcore's own ranks.
    pub fn new() -> RankTable {
        let allowed: Box<AllowedMatrix> = Box::new([ZERO_ROW; MAX_RANKS]);
        Self::with_store(Store::Owned(allowed))
    }

    /// The process-wide table over `GLOBAL_ALLOWED`. Call once.
    pub(crate) fn new_global() -> RankTable {
        let t = Self::with_store(Store::Static(&GLOBAL_ALLOWED));
        GLOBAL_READY.store(true, Ordering::Release);
        t
    }

    fn with_store(allowed: Store) -> RankTable {
        let leaf = Rank {
            name: "(unranked)".into(),
            pseudo: false,
            nestable: false,
            class: Class::Leaf,
            defined_at: None,
            preds: Vec::new(),
        };
        let t = RankTable {
            allowed,
            meta: InnerRwLock::new(
                InnerRank::RankTable,
                Meta {
                    ranks: vec![leaf],
                    by_name: HashMap::new(),
                    edges: HashMap::new(),
                    inner: Vec::new(),
                    hooklock: None,
                },
            ),
        };
        // Holding a leaf forbids everything: allowed[LEAF] is every bit but
        // its own. Bits of ids not yet assigned are never held.
        for (i, w) in t.matrix()[LEAF as usize].iter().enumerate() {
            w.store(if i == 0 { !1u64 } else { !0u64 }, Ordering::Relaxed);
        }
        t.load_with_class(BUILTIN_RANKS, "<rtcore builtin>", true)
            .expect("builtin ranks are well formed");
        t
    }

    pub fn matrix(&self) -> &AllowedMatrix {
        match &self.allowed {
            Store::Static(m) => m,
            Store::Owned(b) => b,
        }
    }

    /// Load user rank declarations. On error nothing is added.
    pub fn load(&self, src: &str, file: &str) -> Result<Vec<u32>> {
        self.load_with_class(src, file, false)
    }

    /// Look a lockable rank up by name.
    pub fn lookup(&self, name: &str) -> Result<u32> {
        let meta = self.meta.read();
        match meta.by_name.get(name) {
            Some(&id) if meta.ranks[id as usize].pseudo => Err(Error::new(
                RTC_ERR_UNKNOWN_RANK,
                format!(
                    "rank '{name}' is a pseudo-rank (all capitals): it orders other ranks and no lock may carry it"
                ),
            )),
            Some(&id) => Ok(id),
            None => Err(Error::new(
                RTC_ERR_UNKNOWN_RANK,
                format!(
                    "rank '{name}' is not declared (load declarations with rtc_ranks_load, rtc_ranks_load_file or rtc_config.ranks_file)"
                ),
            )),
        }
    }

    pub fn rank(&self, id: u32) -> Option<Rank> {
        self.meta.read().ranks.get(id as usize).cloned()
    }

    pub fn name(&self, id: u32) -> String {
        self.meta
            .read()
            .ranks
            .get(id as usize)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("<bad rank {id}>"))
    }

    pub fn len(&self) -> usize {
        self.meta.read().ranks.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// May a lock of rank `held` be held when one of rank `wanted` is acquired?
    pub fn allows(&self, held: u32, wanted: u32) -> bool {
        load_allowed(self.matrix(), wanted).contains(held)
    }

    /// All ranks in id order (a linear extension of the declared order).
    pub fn ranks(&self) -> Vec<Rank> {
        self.meta.read().ranks.clone()
    }

    /// Why is holding `held` while acquiring `wanted` forbidden? Names the
    /// declaration(s) responsible.
    pub fn explain(&self, held: u32, wanted: u32) -> String {
        let meta = self.meta.read();
        let rank = |id: u32| &meta.ranks[id as usize];
        let at = |id: u32| {
            rank(id)
                .defined_at
                .as_ref()
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into())
        };
        if held == LEAF {
            return "the rule that unranked locks are leaves: nothing may be acquired while one is held".into();
        }
        if wanted == LEAF {
            // Cannot happen (allowed[LEAF] holds every rank), kept for safety.
            return "unranked lock".into();
        }
        if held == wanted {
            return format!(
                "{}: rank '{}' does not nest with itself (opt in with 'nestable: {};')",
                at(wanted),
                rank(wanted).name,
                rank(wanted).name
            );
        }
        // Is wanted a transitive predecessor of held? Then the path from
        // wanted to held is what forbids it.
        if let Some(path) = path_between(&meta.ranks, wanted, held) {
            let mut s = String::new();
            for w in path.windows(2) {
                if !s.is_empty() {
                    s.push_str("; ");
                }
                let loc = meta
                    .edges
                    .get(&(w[0], w[1]))
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into());
                let _ = write!(s, "{}: {} < {}", loc, rank(w[0]).name, rank(w[1]).name);
            }
            return s;
        }
        if rank(wanted).preds.is_empty() && rank(wanted).class != Class::User {
            return format!("{}: NONE < {}", at(wanted), rank(wanted).name);
        }
        if rank(wanted).class == Class::User && rank(held).class == Class::BuiltinInner {
            return format!(
                "{}: rtcore's inner rank '{}' follows every user rank",
                at(held),
                rank(held).name
            );
        }
        let wanted_none = if rank(wanted).preds.is_empty() && rank(wanted).class == Class::User {
            format!(" ({}: NONE < {})", at(wanted), rank(wanted).name)
        } else {
            String::new()
        };
        format!(
            "the declared order, which never puts '{}' before '{}'{} ('{}' defined at {}, '{}' at {})",
            rank(held).name,
            rank(wanted).name,
            wanted_none,
            rank(held).name,
            at(held),
            rank(wanted).name,
            at(wanted)
        )
    }
}

impl Default for RankTable {
    fn default() -> Self {
        Self::new()
    }
}

/// A path `from < ... < to` following declared edges, if any.
fn path_between(ranks: &[Rank], from: u32, to: u32) -> Option<Vec<u32>> {
    // Walk predecessors back from `to` (breadth first gives a shortest path).
    let mut prev: HashMap<u32, u32> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([to]);
    while let Some(n) = queue.pop_front() {
        if n == from {
            let mut path = vec![from];
            let mut cur = from;
            while cur != to {
                cur = prev[&cur];
                path.push(cur);
            }
            return Some(path);
        }
        for &p in &ranks[n as usize].preds {
            if p != to && !prev.contains_key(&p) {
                prev.insert(p, n);
                queue.push_back(p);
            }
        }
    }
    None
}

/// Find a cycle among new ranks; returns indices `a, b, ..., a` where each is a
/// predecessor of the next.
fn find_cycle(preds: &[Vec<(std::result::Result<u32, usize>, Pos)>]) -> Option<Vec<usize>> {
    // Iterative DFS over "pred" edges with colours.
    let n = preds.len();
    let mut colour = vec![0u8; n]; // 0 white, 1 grey, 2 black
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let edges = &preds[node];
            if *next < edges.len() {
                let e = &edges[*next].0;
                *next += 1;
                if let Err(p) = *e {
                    match colour[p] {
                        0 => {
                            colour[p] = 1;
                            stack.push((p, 0));
                        }
                        1 => {
                            // Stack holds node <- ... chain; p is on it.
                            let idx = stack.iter().position(|(x, _)| *x == p).unwrap();
                            // stack[idx..] is p, q, ..., node with each the
                            // successor of the next: reverse for pred order.
                            let mut cyc: Vec<usize> =
                                stack[idx..].iter().map(|(x, _)| *x).collect();
                            cyc.reverse();
                            cyc.push(cyc[0]);
                            return Some(cyc);
                        }
                        _ => {}
                    }
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_err(t: &RankTable, src: &str) -> String {
        let e = t.load(src, "t.ranks").unwrap_err();
        assert_eq!(e.status, RTC_ERR_RANK_SYNTAX, "{}", e.message);
        e.message
    }

    #[test]
    fn every_semantic_error_names_line_and_column() {
        let t = RankTable::new();
        assert_eq!(
            load_err(&t, "NONE < a;\nb < NONE;"),
            "t.ranks:2:5: NONE cannot be defined: it only stands first, as in 'NONE < x;'"
        );
        assert_eq!(
            load_err(&t, "NONE, q < a;"),
            "t.ranks:1:1: NONE must stand alone, as in 'NONE < x, y;'"
        );
        assert!(
            load_err(&t, "NONE < a;\nNONE < a;")
                .starts_with("t.ranks:2:8: multiple definitions for 'a' (first at 1:8)")
        );
        assert!(
            load_err(&t, "NONE < a;\nmissing < b;")
                .starts_with("t.ranks:2:1: missing definition for 'missing'")
        );
        assert_eq!(
            load_err(&t, "NONE < b;\na < c;\nb < a;"),
            "t.ranks:2:1: use of 'a' before its definition at 3:5"
        );
        assert_eq!(
            load_err(
                &t,
                "NONE < x;\nx < y;\ny < z;\nz < x2;\nx2, z < w;\nw < y2;\ny2 < x3;\nx3 < y3;\n# fine so far\nNONE < p;\nq < p2;\np2 < q;"
            ),
            "t.ranks:12:1: graph cycle: q < p2 < q"
        );
        assert!(
            load_err(&t, "NONE < a;\nnestable: b;")
                .starts_with("t.ranks:2:11: nestable: 'b' is not defined")
        );
        assert!(load_err(&t, "NONE < A_B;\nnestable: A_B;").contains("pseudo-rank"));
        assert!(load_err(&t, "nestable: sysmon;").contains("one of rtcore's own ranks"));
        // Nothing from a failed load was added.
        assert!(t.lookup("x").is_err());
        assert!(t.lookup("a").is_err());
    }

    #[test]
    fn rtcore_ranks_other_than_hooklock_cannot_precede_user_ranks() {
        let t = RankTable::new();
        for own in ["ranktable", "sysmon", "RTCORE_INNER", "lockreports"] {
            let m = load_err(&t, &format!("{own} < x_{own};"));
            assert!(m.contains("one of rtcore's own ranks"), "{m}");
        }
        t.load("hooklock < hx;", "ok.ranks").unwrap();
        // And the closure stays acyclic: nothing user-defined comes before
        // an inner rank that comes before it.
        let (hx, inner) = (t.lookup("hx").unwrap(), t.lookup("ranktable").unwrap());
        assert!(t.allows(hx, inner) && !t.allows(inner, hx));
    }

    #[test]
    fn explanations_never_invent_declarations() {
        let t = RankTable::new();
        t.load("hooklock < b;\nNONE < c;\n", "u.ranks").unwrap();
        let (b, c) = (t.lookup("b").unwrap(), t.lookup("c").unwrap());
        let e = t.explain(c, b);
        assert!(
            !e.contains("NONE < b"),
            "b is declared 'hooklock < b', not 'NONE < b': {e}"
        );
        assert!(
            t.explain(b, c).contains("u.ranks:2: NONE < c"),
            "{}",
            t.explain(b, c)
        );
    }

    #[test]
    fn longer_cycles_report_their_path() {
        let t = RankTable::new();
        let m = load_err(&t, "NONE < s;\na < b;\nb < c;\nc < a;\n");
        assert_eq!(m, "t.ranks:4:1: graph cycle: c < a < b < c");
    }

    #[test]
    fn redefinition_across_loads_is_refused_and_names_the_first() {
        let t = RankTable::new();
        t.load("NONE < a;", "one.ranks").unwrap();
        let e = t.load("NONE < z;\nNONE < a;", "two.ranks").unwrap_err();
        assert_eq!(
            e.message,
            "two.ranks:2:8: rank 'a' is already defined at one.ranks:1:8; loading never redefines a rank"
        );
        assert!(t.lookup("z").is_err(), "a failed load adds nothing");
        assert!(load_err(&t, "NONE < hooklock;").contains("already defined at <rtcore builtin>"));
    }

    #[test]
    fn closure_pseudo_ranks_and_builtin_placement() {
        let t = RankTable::new();
        let before = t.len();
        t.load(
            "# example\nNONE < a;\na < b, c;\nb, c < GROUP;\nGROUP < d;\nnestable: d;\n",
            "ex.ranks",
        )
        .unwrap();
        assert_eq!(t.len(), before + 5);
        let id = |n: &str| t.lookup(n).unwrap();
        let (a, b, c, d) = (id("a"), id("b"), id("c"), id("d"));
        assert!(t.allows(a, b) && t.allows(a, c) && t.allows(a, d));
        assert!(t.allows(b, d) && t.allows(c, d), "through the pseudo-rank");
        assert!(!t.allows(b, c) && !t.allows(c, b), "siblings are unordered");
        assert!(!t.allows(b, a), "no inversion");
        assert!(!t.allows(a, a) && t.allows(d, d), "only d nests");
        assert!(
            t.lookup("GROUP")
                .unwrap_err()
                .message
                .contains("pseudo-rank")
        );
        // hooklock may be held when taking any user rank; a user rank may be
        // held when taking an inner rank, never when taking hooklock.
        let hook = id("hooklock");
        let inner = id("ranktable");
        assert!(t.allows(hook, a) && t.allows(hook, d));
        assert!(t.allows(a, inner) && t.allows(d, inner));
        assert!(!t.allows(a, hook));
        assert!(!t.allows(inner, a));
        // Unranked leaves: nothing may be taken while one is held.
        assert!(!t.allows(LEAF, a) && !t.allows(LEAF, LEAF));
        assert!(t.allows(a, LEAF) && t.allows(inner, LEAF));
        // Ids are stable across later loads.
        t.load("d < e;", "more.ranks").unwrap();
        assert_eq!(id("a"), a);
        assert!(t.allows(a, id("e")) && t.allows(d, id("e")));
        assert!(
            t.allows(id("e"), inner),
            "inner ranks follow ranks loaded later too"
        );
    }

    #[test]
    fn explanations_name_declarations() {
        let t = RankTable::new();
        t.load(
            "NONE < db;\ndb < cache;\ncache < log;\nNONE < other;\n",
            "ranks.txt",
        )
        .unwrap();
        let id = |n: &str| t.lookup(n).unwrap();
        assert_eq!(t.explain(id("cache"), id("db")), "ranks.txt:2: db < cache");
        assert_eq!(
            t.explain(id("log"), id("db")),
            "ranks.txt:2: db < cache; ranks.txt:3: cache < log"
        );
        assert!(
            t.explain(id("other"), id("db"))
                .contains("never puts 'other' before 'db'")
        );
        assert!(
            t.explain(id("db"), id("db"))
                .contains("does not nest with itself")
        );
        assert!(
            t.explain(LEAF, id("db"))
                .contains("unranked locks are leaves")
        );
    }

    #[test]
    fn table_capacity_is_enforced_atomically() {
        let t = RankTable::new();
        let mut src = String::from("NONE < r0;\n");
        for i in 1..MAX_RANKS {
            src.push_str(&format!("r{} < r{};\n", i - 1, i));
        }
        let e = t.load(&src, "big.ranks").unwrap_err();
        assert_eq!(e.status, RTC_ERR_RANK_TABLE_FULL);
        assert!(t.lookup("r0").is_err());
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Property: for random DAGs, `allows(h, w)` holds exactly when `h` is a
    /// transitive predecessor of `w` in the declared graph (so no allowed
    /// order is ever reported, and every other order is).
    #[test]
    fn random_dags_allow_exactly_their_order() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for round in 0..300 {
            let n = 2 + rng.below(20) as usize;
            // Edges only from lower to higher index: a DAG by construction.
            let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
            for (j, pj) in preds.iter_mut().enumerate().skip(1) {
                for i in 0..j {
                    if rng.below(4) == 0 {
                        pj.push(i);
                    }
                }
            }
            let mut src = String::new();
            for (j, pj) in preds.iter().enumerate() {
                if pj.is_empty() {
                    src.push_str(&format!("NONE < n{j};\n"));
                } else {
                    let names: Vec<String> = pj.iter().map(|i| format!("n{i}")).collect();
                    src.push_str(&format!("{} < n{j};\n", names.join(", ")));
                }
            }
            let t = RankTable::new();
            t.load(&src, "dag.ranks")
                .unwrap_or_else(|e| panic!("round {round}: {e}\n{src}"));
            // Reference closure by brute force.
            let mut reach = vec![vec![false; n]; n]; // reach[i][j]: i <* j
            for j in 0..n {
                for &i in &preds[j] {
                    reach[i][j] = true;
                    for row in reach.iter_mut() {
                        if row[i] {
                            row[j] = true;
                        }
                    }
                }
            }
            let ids: Vec<u32> = (0..n)
                .map(|i| t.lookup(&format!("n{i}")).unwrap())
                .collect();
            for i in 0..n {
                for j in 0..n {
                    assert_eq!(
                        t.allows(ids[i], ids[j]),
                        reach[i][j],
                        "round {round}: holding n{i} while taking n{j}\n{src}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod inner_rank_tests {
    //! rtcore's inner locks (base::inner) check their ranks against the
    //! fixed ids declared here: the two must agree.
    use super::RankTable;
    use crate::base::inner::{InnerRank, violation};

    #[test]
    fn fixed_ids_match_the_builtin_declarations() {
        let t = RankTable::new();
        for r in InnerRank::ALL {
            assert_eq!(t.lookup(r.name()).unwrap(), r as u32, "{}", r.name());
        }
    }

    #[test]
    fn the_checker_follows_the_declared_inner_order() {
        let t = RankTable::new();
        let allowed = |r: InnerRank| -> u64 {
            let row = crate::ranks::table::load_allowed(t.matrix(), r as u32);
            row.0[0]
        };
        let sched = InnerRank::Sched.bit();
        let lifecycle = InnerRank::Lifecycle.bit();
        // lifecycle < sched: fine one way, reported the other.
        assert!(violation(lifecycle, InnerRank::Sched, allowed(InnerRank::Sched)).is_none());
        let m = violation(sched, InnerRank::Lifecycle, allowed(InnerRank::Lifecycle)).unwrap();
        assert!(
            m.contains("'lifecycle' taken while holding [\"sched\"]"),
            "{m}"
        );
        // Siblings are unordered, and nothing nests with itself.
        assert!(violation(sched, InnerRank::RankTable, allowed(InnerRank::RankTable)).is_some());
        assert!(violation(sched, InnerRank::Sched, allowed(InnerRank::Sched)).is_some());
    }
}
