//! The learned lock order (what lockdep does in the kernel): lock classes,
//! the edges "class B was taken while class A was held" seen so far, and
//! the chain cache that makes a steady-state acquisition a hash look-up.
//!
//! Invariants:
//! - The edges learned form an acyclic graph: an edge that would close a
//!   cycle is reported (with every edge of the cycle) and not added, so a
//!   cycle is reported once, and the search for the next one stays a
//!   search in a DAG.
//! - Instances of one class held together are learned in address order:
//!   ascending and descending are two flags per class, reported once when
//!   both have been seen (an array of locks taken in index order is fine;
//!   two threads taking two of them in opposite orders is not).
//! - A chain (the classes held, in order, and the one wanted) is checked
//!   against the graph once; afterwards it is found in `chains` and
//!   nothing else is done. Chains that reported are cached too: a report
//!   is made once per distinct cycle.
//! - Everything here is behind one inner lock (`learned`), taken only on
//!   a chain not seen before by the calling thread (threads keep their own
//!   cache of chains, `interpose::held`).

use std::collections::{HashMap, HashSet};

/// A lock class: where its locks were initialised (or first used).
pub type Class = u32;

/// Where an edge was first seen: the thread, the sites where the held lock
/// was taken and where the wanted one was taken.
#[derive(Clone, Debug)]
pub struct EdgeSeen {
    pub thread: String,
    pub held_site: usize,
    pub wanted_site: usize,
}

/// What keys a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClassKey {
    /// Locks initialised by `pthread_*_init` at this site (return address):
    /// an array initialised in a loop is one class.
    InitSite(usize),
    /// A lock never initialised by a call (`PTHREAD_MUTEX_INITIALIZER`):
    /// its own class, keyed by its address (as lockdep keys static locks).
    /// Keying it by the site of its first lock call instead would merge
    /// every such lock first taken through one helper function into one
    /// class, hiding cycles among them.
    Static(usize),
}

/// One class's record.
#[derive(Clone, Debug)]
pub struct ClassInfo {
    pub key: ClassKey,
    /// Where it was initialised, or first locked (a static lock).
    pub site: usize,
    ascending: Option<EdgeSeen>,
    descending: Option<EdgeSeen>,
    same_class_reported: bool,
}

/// A lock in an acquisition: its class, address, the site where it is
/// (or was) taken, and whether in read mode (a read/write lock's).
#[derive(Clone, Copy, Debug)]
pub struct LockRef {
    pub class: Class,
    pub addr: usize,
    pub site: usize,
    pub shared: bool,
}

/// What the graph says about an acquisition.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing new, or only new edges that close no cycle.
    Fine,
    /// The edge `held -> wanted` closes a cycle: `path` is the learned
    /// path from `wanted` back to `held` (each edge with where it was
    /// seen), which the new edge would close.
    Cycle {
        held: Class,
        wanted: Class,
        path: Vec<(Class, Class, EdgeSeen)>,
    },
    /// Two instances of `class` were taken in both address orders.
    BothOrders {
        class: Class,
        ascending: EdgeSeen,
        descending: EdgeSeen,
    },
}

/// The learned order.
#[derive(Default)]
pub struct Graph {
    classes: Vec<ClassInfo>,
    by_key: HashMap<ClassKey, Class>,
    /// Successors of each class.
    succ: Vec<Vec<Class>>,
    edges: HashMap<(Class, Class), EdgeSeen>,
    /// Chains checked (hash of the held classes and the wanted one).
    chains: HashSet<u64>,
    /// Edges refused (they would have closed a cycle): not reported again.
    refused: HashSet<(Class, Class)>,
    pub violations: u64,
}

impl Graph {
    /// The class keyed by `key` (made on first sight, at `site`).
    pub fn class_at(&mut self, key: ClassKey, site: usize) -> Class {
        if let Some(&c) = self.by_key.get(&key) {
            return c;
        }
        let c = self.classes.len() as Class;
        self.classes.push(ClassInfo {
            key,
            site,
            ascending: None,
            descending: None,
            same_class_reported: false,
        });
        self.succ.push(Vec::new());
        self.by_key.insert(key, c);
        c
    }

    pub fn class(&self, c: Class) -> &ClassInfo {
        &self.classes[c as usize]
    }

    /// Were several locks of class `c` held at once (in some address
    /// order)?
    pub fn nests(&self, c: Class) -> bool {
        let i = &self.classes[c as usize];
        i.ascending.is_some() || i.descending.is_some()
    }

    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Every edge learned, with where it was first seen.
    pub fn edges(&self) -> impl Iterator<Item = (&(Class, Class), &EdgeSeen)> {
        self.edges.iter()
    }

    /// Has the chain `hash` been checked already?
    pub fn chain_known(&self, hash: u64) -> bool {
        self.chains.contains(&hash)
    }

    /// Check and learn the acquisition of `wanted` while `held` are held
    /// (oldest first), then remember the chain `hash`. The verdicts found
    /// (at most one per held lock) are returned. A read lock wanted while
    /// a read lock is held adds no edge (read-read: readers do not wait
    /// for readers).
    pub fn learn(
        &mut self,
        hash: u64,
        held: &[LockRef],
        wanted: &LockRef,
        thread: &str,
    ) -> Vec<Verdict> {
        let (wanted_addr, wanted_site) = (wanted.addr, wanted.site);
        let wanted_shared = wanted.shared;
        let wanted = wanted.class;
        let mut verdicts = Vec::new();
        for r in held {
            let (h, h_addr, h_site) = (r.class, r.addr, r.site);
            if r.shared && wanted_shared {
                continue;
            }
            let seen = EdgeSeen {
                thread: thread.to_string(),
                held_site: h_site,
                wanted_site,
            };
            if h == wanted {
                if h_addr == wanted_addr {
                    continue;
                }
                let info = &mut self.classes[h as usize];
                let slot = if h_addr < wanted_addr {
                    &mut info.ascending
                } else {
                    &mut info.descending
                };
                if slot.is_none() {
                    *slot = Some(seen);
                }
                if !info.same_class_reported {
                    if let (Some(a), Some(d)) = (&info.ascending, &info.descending) {
                        info.same_class_reported = true;
                        self.violations += 1;
                        verdicts.push(Verdict::BothOrders {
                            class: h,
                            ascending: a.clone(),
                            descending: d.clone(),
                        });
                    }
                }
                continue;
            }
            if self.edges.contains_key(&(h, wanted)) || self.refused.contains(&(h, wanted)) {
                continue;
            }
            match self.path(wanted, h) {
                Some(path) => {
                    self.refused.insert((h, wanted));
                    self.violations += 1;
                    verdicts.push(Verdict::Cycle {
                        held: h,
                        wanted,
                        path,
                    });
                }
                None => {
                    self.edges.insert((h, wanted), seen);
                    self.succ[h as usize].push(wanted);
                }
            }
        }
        self.chains.insert(hash);
        verdicts
    }

    /// A path of learned edges from `from` to `to`, if any (depth-first).
    fn path(&self, from: Class, to: Class) -> Option<Vec<(Class, Class, EdgeSeen)>> {
        let mut parent: HashMap<Class, Class> = HashMap::new();
        let mut stack = vec![from];
        let mut seen = HashSet::from([from]);
        while let Some(c) = stack.pop() {
            if c == to {
                let mut path = Vec::new();
                let mut cur = to;
                while cur != from {
                    let p = parent[&cur];
                    path.push((p, cur, self.edges[&(p, cur)].clone()));
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &n in &self.succ[c as usize] {
                if seen.insert(n) {
                    parent.insert(n, c);
                    stack.push(n);
                }
            }
        }
        None
    }
}

/// The chain hash of the `held` locks followed by the `wanted` one (FNV-1a
/// over the class ids and modes; the order matters). A held lock of the
/// wanted class also adds whether its address is below the wanted one's:
/// address order is part of what is checked for one class.
pub fn chain_hash<'a>(held: impl Iterator<Item = &'a LockRef>, wanted: &LockRef) -> u64 {
    let (addr, shared) = (wanted.addr, wanted.shared);
    let wanted = wanted.class;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for r in held {
        mix(u64::from(r.class) + 1 + (u64::from(r.shared) << 33));
        if r.class == wanted {
            mix(if r.addr < addr { 1 << 40 } else { 2 << 40 });
        }
    }
    mix(u64::from(wanted) + 1 + (u64::from(shared) << 33));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(class: Class, addr: usize) -> LockRef {
        LockRef {
            class,
            addr,
            site: 0,
            shared: false,
        }
    }

    fn learn(g: &mut Graph, held: &[(Class, usize)], wanted: Class, addr: usize) -> Vec<Verdict> {
        let held: Vec<LockRef> = held.iter().map(|&(c, a)| lock(c, a)).collect();
        let w = lock(wanted, addr);
        let hash = chain_hash(held.iter(), &w);
        g.learn(hash, &held, &w, "t")
    }

    #[test]
    fn read_then_read_adds_no_edge_but_read_then_write_does() {
        let mut g = Graph::default();
        let (a, b) = (
            g.class_at(ClassKey::Static(1), 1),
            g.class_at(ClassKey::Static(2), 2),
        );
        let read = |c, addr| LockRef {
            shared: true,
            ..lock(c, addr)
        };
        let h = [read(a, 1)];
        assert!(
            g.learn(chain_hash(h.iter(), &read(b, 2)), &h, &read(b, 2), "t")
                .is_empty()
        );
        assert_eq!(g.edge_count(), 0);
        // The mode is part of the chain.
        assert_ne!(
            chain_hash(h.iter(), &read(b, 2)),
            chain_hash(h.iter(), &lock(b, 2))
        );
        assert!(
            g.learn(chain_hash(h.iter(), &lock(b, 2)), &h, &lock(b, 2), "t")
                .is_empty()
        );
        assert_eq!(g.edge_count(), 1);
        // b (written) then a (read) closes the cycle.
        let h = [lock(b, 2)];
        let v = g.learn(chain_hash(h.iter(), &read(a, 1)), &h, &read(a, 1), "t");
        assert!(matches!(&v[..], [Verdict::Cycle { .. }]), "{v:?}");
    }

    #[test]
    fn an_edge_closing_a_cycle_is_reported_once_with_its_path() {
        let mut g = Graph::default();
        let (a, b, c) = (
            g.class_at(ClassKey::InitSite(1), 1),
            g.class_at(ClassKey::InitSite(2), 2),
            g.class_at(ClassKey::Static(3), 3),
        );
        assert!(learn(&mut g, &[(a, 10)], b, 20).is_empty());
        assert!(learn(&mut g, &[(b, 20)], c, 30).is_empty());
        // c -> a closes a -> b -> c -> a.
        let v = learn(&mut g, &[(c, 30)], a, 10);
        match &v[..] {
            [Verdict::Cycle { held, wanted, path }] => {
                assert_eq!((*held, *wanted), (c, a));
                let hops: Vec<(Class, Class)> = path.iter().map(|p| (p.0, p.1)).collect();
                assert_eq!(hops, vec![(a, b), (b, c)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(g.violations, 1);
        // Not reported again, not learned.
        assert!(learn(&mut g, &[(c, 30)], a, 10).is_empty());
        assert_eq!(g.edge_count(), 2);
    }

    #[test]
    fn instances_of_one_class_are_fine_in_one_address_order_and_reported_in_both() {
        let mut g = Graph::default();
        let items = g.class_at(ClassKey::InitSite(7), 7);
        assert!(learn(&mut g, &[(items, 100)], items, 200).is_empty());
        assert!(learn(&mut g, &[(items, 300)], items, 400).is_empty());
        // The chain cache tells the two orders apart.
        assert_ne!(
            chain_hash([lock(items, 100)].iter(), &lock(items, 200)),
            chain_hash([lock(items, 400)].iter(), &lock(items, 100))
        );
        let v = learn(&mut g, &[(items, 400)], items, 100);
        assert!(matches!(&v[..], [Verdict::BothOrders { .. }]), "{v:?}");
        assert!(learn(&mut g, &[(items, 500)], items, 100).is_empty());
    }

    #[test]
    fn chains_differ_by_order_and_are_remembered() {
        let h12 = chain_hash([lock(1, 8), lock(2, 16)].iter(), &lock(3, 24));
        assert_ne!(
            h12,
            chain_hash([lock(2, 16), lock(1, 8)].iter(), &lock(3, 24))
        );
        assert_ne!(
            chain_hash([].iter(), &lock(0, 8)),
            chain_hash([lock(0, 8)].iter(), &lock(0, 8))
        );
        let mut g = Graph::default();
        let (a, b) = (
            g.class_at(ClassKey::Static(1), 1),
            g.class_at(ClassKey::Static(2), 2),
        );
        let h = chain_hash([lock(a, 1)].iter(), &lock(b, 2));
        assert!(!g.chain_known(h));
        learn(&mut g, &[(a, 1)], b, 2);
        assert!(g.chain_known(h));
    }
}
