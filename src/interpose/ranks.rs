//! Lock classes as ranks (docs/ranks.md's language): the learned order
//! written as a rank file (`rtcore run --learn-ranks OUT`), and
//! acquisitions checked against a declared rank file (`rtcore run --ranks
//! FILE`), so an order learned once becomes a declaration every later run
//! is held to.
//!
//! A class's rank name is derived from its name for reports, so it
//! survives a rebuild of unchanged code: a statically initialised lock's
//! variable (`accounts`), else its site ("same_class_scenarios_c_97" for
//! `same_class (scenarios.c:97)`).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::graph::{Class, Graph};
use crate::ranks::table::RankTable;

/// A rank name (`[A-Za-z_][A-Za-z0-9_]*`, not all capitals: that would be
/// a pseudo-rank) made from a class's label.
pub fn rank_name(label: &str) -> String {
    let mut s = String::new();
    let mut gap = false;
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !s.is_empty() {
                s.push('_');
            }
            gap = false;
            s.push(c);
        } else {
            gap = true;
        }
    }
    if s.is_empty() {
        s.push_str("lock");
    }
    if s.as_bytes()[0].is_ascii_digit() {
        s.insert(0, '_');
    }
    if crate::ranks::dsl::is_pseudo(&s) {
        s.push_str("_lock");
    }
    s
}

/// Unique names for `labels` (index = class): a repeated name gets the
/// class's discriminator (`extra`, stable for one binary) appended.
pub fn unique_names(labels: &[(String, String)]) -> Vec<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for (l, _) in labels {
        *count.entry(rank_name(l)).or_default() += 1;
    }
    labels
        .iter()
        .map(|(l, extra)| {
            let n = rank_name(l);
            if count[&n] > 1 {
                format!("{n}_{}", rank_name(extra))
            } else {
                n
            }
        })
        .collect()
}

/// The learned order as a rank file: every class a rank, each with all its
/// learned predecessors in one statement, in an order where every name is
/// defined before it is used; classes whose locks were held together in
/// address order are `nestable:`. `comments[c]` says what class c is.
pub fn learned_file(graph: &Graph, names: &[String], comments: &[String], program: &str) -> String {
    let n = graph.class_count();
    let mut preds: Vec<Vec<Class>> = vec![Vec::new(); n];
    for (&(a, b), _) in graph.edges() {
        preds[b as usize].push(a);
    }
    for p in &mut preds {
        p.sort_by(|x, y| names[*x as usize].cmp(&names[*y as usize]));
    }
    // Topological order (the learned graph is acyclic), ties by name so
    // the file is the same for the same order.
    let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut succ: Vec<Vec<Class>> = vec![Vec::new(); n];
    for (b, ps) in preds.iter().enumerate() {
        for &a in ps {
            succ[a as usize].push(b as Class);
        }
    }
    let mut ready: std::collections::BTreeSet<(String, Class)> = (0..n)
        .filter(|&c| indegree[c] == 0)
        .map(|c| (names[c].clone(), c as Class))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Lock ranks learned by `rtcore run --learn-ranks` from {program}.\n\
         # Each rank is a lock class of the program: a statically initialised\n\
         # lock, or the locks initialised at one site. `a < b;` says b was taken\n\
         # while a was held. Check later runs against it with\n\
         # `rtcore run --ranks FILE -- PROGRAM`: any other order is reported.\n"
    );
    let mut nestable = Vec::new();
    while let Some((name, c)) = ready.pop_first() {
        let ps = &preds[c as usize];
        let left = if ps.is_empty() {
            "NONE".to_string()
        } else {
            ps.iter()
                .map(|p| names[*p as usize].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "{left} < {name};  # {}", comments[c as usize]);
        if graph.nests(c) {
            nestable.push(name.clone());
        }
        for &s in &succ[c as usize] {
            indegree[s as usize] -= 1;
            if indegree[s as usize] == 0 {
                ready.insert((names[s as usize].clone(), s));
            }
        }
    }
    if !nestable.is_empty() {
        nestable.sort();
        let _ = writeln!(
            out,
            "\n# Several locks of these classes were held at once, in address order.\nnestable: {};",
            nestable.join(", ")
        );
    }
    out
}

/// A declared rank file the program's acquisitions are checked against.
/// Loaded once, outside the `learned` lock; afterwards `id` and `allows`
/// read only this struct and the table's matrix, never the table's own
/// lock (inner rank `ranktable`, which may not be taken under `learned`).
pub struct Declared {
    pub table: RankTable,
    pub file: String,
    /// Lockable ranks by name (pseudo-ranks left out).
    by_name: HashMap<String, u32>,
}

/// What a declared check found.
pub enum Finding {
    /// A class's name is not in the file.
    Undeclared(String),
    /// `held` then `wanted` (names, ids) is not allowed.
    Forbidden(String, String, u32, u32),
}

impl Declared {
    pub fn load(path: &str) -> Result<Declared, String> {
        let src = crate::ranks::read_file(path).map_err(|e| e.to_string())?;
        let table = RankTable::new();
        table.load(&src, path).map_err(|e| e.to_string())?;
        let by_name = table
            .ranks()
            .into_iter()
            .enumerate()
            .filter(|(_, r)| !r.pseudo)
            .map(|(i, r)| (r.name, i as u32))
            .collect();
        Ok(Declared {
            table,
            file: path.to_string(),
            by_name,
        })
    }

    fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name class `base`/`extra` has in the file: `base`, or, where two
    /// classes shared it when the file was learned, `base_extra`
    /// (`unique_names`).
    pub fn resolve(&self, base: &str, extra: &str) -> String {
        if self.id(base).is_some() {
            return base.to_string();
        }
        let long = format!("{base}_{}", rank_name(extra));
        if self.id(&long).is_some() {
            return long;
        }
        base.to_string()
    }

    /// Is taking a lock of rank `wanted` while holding one of rank `held`
    /// (names) what the file declares? None if so.
    pub fn check(&self, held: &str, wanted: &str) -> Option<Finding> {
        for name in [held, wanted] {
            if self.id(name).is_none() {
                return Some(Finding::Undeclared(name.to_string()));
            }
        }
        let (h, w) = (self.id(held)?, self.id(wanted)?);
        if self.table.allows(h, w) {
            return None;
        }
        Some(Finding::Forbidden(
            held.to_string(),
            wanted.to_string(),
            h,
            w,
        ))
    }

    /// The text of a finding (reads the table: call it outside `learned`).
    pub fn describe(&self, f: &Finding) -> String {
        match f {
            Finding::Undeclared(name) => {
                format!("lock class '{name}' is not declared in {}", self.file)
            }
            Finding::Forbidden(held, wanted, h, w) => format!(
                "'{wanted}' taken while holding '{held}', which {} does not allow: {}",
                self.file,
                self.table.explain(*h, *w)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpose::graph::{ClassKey, LockRef, chain_hash};

    #[test]
    fn rank_names_are_identifiers_and_never_pseudo_ranks() {
        assert_eq!(
            rank_name("same_class (scenarios.c:97)"),
            "same_class_scenarios_c_97"
        );
        assert_eq!(rank_name("accounts"), "accounts");
        assert_eq!(rank_name("LOCK"), "LOCK_lock");
        assert_eq!(rank_name("9lives+0x10 (x)"), "_9lives_0x10_x");
        assert_eq!(rank_name("???"), "lock");
        let names = unique_names(&[
            ("count".into(), "a.c+0x10".into()),
            ("count".into(), "b.c+0x20".into()),
            ("other".into(), "c".into()),
        ]);
        assert_eq!(names, vec!["count_a_c_0x10", "count_b_c_0x20", "other"]);
    }

    #[test]
    fn the_learned_file_loads_and_allows_exactly_the_learned_order() {
        let mut g = Graph::default();
        let a = g.class_at(ClassKey::Static(1), 1);
        let b = g.class_at(ClassKey::Static(2), 2);
        let c = g.class_at(ClassKey::InitSite(3), 3);
        let lock = |class, addr| LockRef {
            class,
            addr,
            site: 0,
            shared: false,
        };
        for (held, wanted) in [
            (vec![lock(a, 1)], lock(b, 2)),
            (vec![lock(a, 1), lock(b, 2)], lock(c, 30)),
            (vec![lock(c, 30)], lock(c, 40)),
        ] {
            let h = chain_hash(held.iter(), &wanted);
            assert!(g.learn(h, &held, &wanted, "t").is_empty());
        }
        let names: Vec<String> = vec!["accounts".into(), "audit".into(), "items".into()];
        let comments = vec!["x".to_string(); 3];
        let text = learned_file(&g, &names, &comments, "prog");
        assert!(text.contains("NONE < accounts;"), "{text}");
        assert!(text.contains("accounts < audit;"), "{text}");
        assert!(text.contains("accounts, audit < items;"), "{text}");
        assert!(text.contains("nestable: items;"), "{text}");
        let dir = std::env::temp_dir().join(format!("rtcore-learned-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("learned.ranks");
        std::fs::write(&path, &text).unwrap();
        let d = Declared::load(path.to_str().unwrap()).unwrap();
        assert!(d.check("accounts", "audit").is_none());
        assert!(d.check("accounts", "items").is_none());
        assert!(d.check("items", "items").is_none());
        let bad = d.check("audit", "accounts").expect("the opposite order");
        let text = d.describe(&bad);
        assert!(text.contains("does not allow"), "{text}");
        let new = d.check("accounts", "stats").expect("a class not declared");
        assert!(d.describe(&new).contains("'stats' is not declared"));
        assert_eq!(d.resolve("count", "a.c+0x10"), "count");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
