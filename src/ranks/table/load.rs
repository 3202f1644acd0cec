//! Loading declarations into the rank table, in stages: each checks one
//! rule over the whole load and nothing is published until every stage has
//! passed (a load is atomic). `publish` then appends the new ranks with ids
//! in definition order, which is topological.

use super::*;

/// An edge's end: `Ok(id)` of a rank already in the table, or `Err(i)`,
/// the `i`th rank this load defines.
type End = std::result::Result<u32, usize>;

/// One load in progress.
struct Load<'a> {
    file: Arc<str>,
    stmts: &'a [Statement],
    /// rtcore's own declarations (classes assigned) rather than a user's.
    builtin: bool,
    new_names: Vec<Name>,
    new_index: HashMap<String, usize>,
    /// Per new rank: its predecessors, with where each edge was written.
    new_preds: Vec<Vec<(End, Pos)>>,
    nestable: Vec<End>,
}

impl RankTable {
    pub(super) fn load_with_class(&self, src: &str, file: &str, builtin: bool) -> Result<Vec<u32>> {
        let file: Arc<str> = Arc::from(file);
        let stmts = dsl::parse(src).map_err(|e| {
            Error::new(
                RTC_ERR_RANK_SYNTAX,
                format!("{}:{}: {}", file, e.pos, e.message),
            )
        })?;
        let mut meta = self.meta.write();
        let mut load = Load {
            file,
            stmts: &stmts,
            builtin,
            new_names: Vec::new(),
            new_index: HashMap::new(),
            new_preds: Vec::new(),
            nestable: Vec::new(),
        };
        load.definitions(&meta)?;
        load.edges(&meta)?;
        load.check_cycles()?;
        load.check_definition_order()?;
        load.directives(&meta)?;
        load.check_capacity(&meta)?;
        Ok(load.publish(&mut meta, self.matrix()))
    }
}

impl Load<'_> {
    fn syntax(&self, pos: &Pos, msg: String) -> Error {
        Error::new(RTC_ERR_RANK_SYNTAX, format!("{}:{pos}: {msg}", self.file))
    }

    fn resolve(&self, meta: &Meta, n: &Name) -> Option<End> {
        if let Some(&i) = self.new_index.get(&n.text) {
            Some(Err(i))
        } else {
            meta.by_name.get(&n.text).map(|&id| Ok(id))
        }
    }

    /// Every name right of a `<` is defined here; none may be defined twice, in this load or an earlier one, and NONE only stands first.
    fn definitions(&mut self, meta: &Meta) -> Result<()> {
        // 1. Definitions: every list after the first in a chain.
        let mut new_names: Vec<Name> = Vec::new();
        let mut new_index: HashMap<String, usize> = HashMap::new();
        for st in self.stmts {
            let Statement::Chain(lists) = st else {
                continue;
            };
            for (k, list) in lists.iter().enumerate() {
                for n in list {
                    if n.text == "NONE" {
                        if k > 0 {
                            return Err(self.syntax(
                                &n.pos,
                                "NONE cannot be defined: it only stands first, as in 'NONE < x;'"
                                    .into(),
                            ));
                        }
                        if list.len() > 1 {
                            return Err(self.syntax(
                                &n.pos,
                                "NONE must stand alone, as in 'NONE < x, y;'".into(),
                            ));
                        }
                        continue;
                    }
                    if k == 0 {
                        continue;
                    }
                    if let Some(&old) = meta.by_name.get(&n.text) {
                        let at = meta.ranks[old as usize]
                            .defined_at
                            .as_ref()
                            .map(|l| format!(" at {}:{}", l.file, l.pos))
                            .unwrap_or_default();
                        return Err(self.syntax(
                            &n.pos,
                            format!(
                                "rank '{}' is already defined{at}; loading never redefines a rank",
                                n.text
                            ),
                        ));
                    }
                    match new_index.entry(n.text.clone()) {
                        Entry::Occupied(e) => {
                            return Err(self.syntax(
                                &n.pos,
                                format!(
                                    "multiple definitions for '{}' (first at {}); list every predecessor in one statement: 'x, y < {};'",
                                    n.text,
                                    new_names[*e.get()].pos,
                                    n.text
                                ),
                            ));
                        }
                        Entry::Vacant(v) => {
                            v.insert(new_names.len());
                            new_names.push(n.clone());
                        }
                    }
                }
            }
        }
        self.new_names = new_names;
        self.new_index = new_index;
        Ok(())
    }

    /// The order's edges; every name left of a `<` must be defined, and user ranks may follow only hooklock among rtcore's own.
    fn edges(&mut self, meta: &Meta) -> Result<()> {
        // 2. Edges, and uses that are never defined.
        // Edge endpoints: Ok(old id) or Err(index into new_names).
        let mut new_preds: Vec<Vec<(End, Pos)>> = vec![Vec::new(); self.new_names.len()];
        for st in self.stmts {
            let Statement::Chain(lists) = st else {
                continue;
            };
            for w in lists.windows(2) {
                for a in &w[0] {
                    if a.text == "NONE" {
                        continue;
                    }
                    if !self.builtin {
                        if let Some(&old) = meta.by_name.get(&a.text) {
                            let c = meta.ranks[old as usize].class;
                            if c != Class::User && a.text != "hooklock" {
                                return Err(self.syntax(
                                    &a.pos,
                                    format!(
                                        "'{}' is one of rtcore's own ranks: user ranks may follow only 'hooklock' (and follow it implicitly)",
                                        a.text
                                    ),
                                ));
                            }
                        }
                    }
                    let Some(ea) = self.resolve(meta, a) else {
                        return Err(self.syntax(
                            &a.pos,
                            format!(
                                "missing definition for '{0}': every rank must be defined (appear right of '<') in this load or an earlier one; if '{0}' may be taken with none of your locks held, start with `NONE < {0};`",
                                a.text
                            ),
                        ));
                    };
                    for b in &w[1] {
                        let Some(Err(bi)) = self.resolve(meta, b) else {
                            unreachable!("right-hand names are new definitions")
                        };
                        new_preds[bi].push((ea, a.pos.clone()));
                    }
                }
            }
        }
        self.new_preds = new_preds;
        Ok(())
    }

    /// No cycle among the new ranks (old ranks never gain predecessors, so a cycle can only run through new ones).
    fn check_cycles(&self) -> Result<()> {
        // 3. Cycles among the new ranks (old ranks never gain predecessors,
        // so a cycle can only run through new ones).
        if let Some(cycle) = find_cycle(&self.new_preds) {
            // cycle: indices i0 -> i1 -> ... -> i0 where each is a pred of the next.
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| self.new_names[i].text.as_str())
                .collect();
            // Point at the edge written last: the one that closed the cycle.
            let closing = cycle
                .windows(2)
                .filter_map(|w| {
                    self.new_preds[w[1]]
                        .iter()
                        .find(|(e, _)| *e == Err(w[0]))
                        .map(|(_, p)| p.clone())
                })
                .max_by_key(|p| (p.line, p.col))
                .unwrap_or_else(|| self.new_names[cycle[0]].pos.clone());
            return Err(self.syntax(&closing, format!("graph cycle: {}", names.join(" < "))));
        }
        Ok(())
    }

    /// Definitions precede uses (as in Go's mklockrank).
    fn check_definition_order(&self) -> Result<()> {
        // 4. Definitions must precede uses (as in Go's mklockrank).
        for st in self.stmts {
            let Statement::Chain(lists) = st else {
                continue;
            };
            for list in &lists[..lists.len() - 1] {
                for a in list {
                    if let Some(&i) = self.new_index.get(&a.text) {
                        let d = &self.new_names[i].pos;
                        if (d.line, d.col) > (a.pos.line, a.pos.col) {
                            return Err(self.syntax(
                                &a.pos,
                                format!("use of '{}' before its definition at {}", a.text, d),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `nestable:` names real ranks, defined, and (for a user) the user's own.
    fn directives(&mut self, meta: &Meta) -> Result<()> {
        // 5. Directives.
        let mut nestable: Vec<End> = Vec::new();
        for st in self.stmts {
            let Statement::Nestable(list) = st else {
                continue;
            };
            for n in list {
                match self.resolve(meta, n) {
                    None => {
                        return Err(
                            self.syntax(&n.pos, format!("nestable: '{}' is not defined", n.text))
                        );
                    }
                    Some(_) if dsl::is_pseudo(&n.text) => {
                        return Err(self.syntax(
                            &n.pos,
                            format!(
                                "nestable: '{}' is a pseudo-rank (all capitals); only real ranks can nest",
                                n.text
                            ),
                        ));
                    }
                    Some(Ok(old))
                        if !self.builtin && meta.ranks[old as usize].class != Class::User =>
                    {
                        return Err(self.syntax(
                            &n.pos,
                            format!("nestable: '{}' is one of rtcore's own ranks", n.text),
                        ));
                    }
                    Some(e) => nestable.push(e),
                }
            }
        }
        self.nestable = nestable;
        Ok(())
    }

    /// The table has room for every new rank.
    fn check_capacity(&self, meta: &Meta) -> Result<()> {
        // 6. Capacity.
        if meta.ranks.len() + self.new_names.len() > MAX_RANKS {
            return Err(Error::new(
                RTC_ERR_RANK_TABLE_FULL,
                format!(
                    "{}: loading {} ranks would exceed the table's capacity of {MAX_RANKS} (it holds {})",
                    self.file,
                    self.new_names.len(),
                    meta.ranks.len()
                ),
            ));
        }
        Ok(())
    }

    /// Append the new ranks (ids in definition order), their closure bits and edges, and the nestable flags; returns the new ids.
    fn publish(&mut self, meta: &mut Meta, m: &AllowedMatrix) -> Vec<u32> {
        // 7. Publish. Ids in definition order are topological.
        let base = meta.ranks.len() as u32;
        let id_of = |e: End| -> u32 {
            match e {
                Ok(id) => id,
                Err(i) => base + i as u32,
            }
        };
        let mut new_ids = Vec::with_capacity(self.new_names.len());
        let mut new_class: Vec<Class> = Vec::with_capacity(self.new_names.len());
        for (i, n) in self.new_names.iter().enumerate() {
            let id = base + i as u32;
            let pseudo = dsl::is_pseudo(&n.text);
            // In rtcore's own declarations, everything after the anchor is
            // inner; before it, "first" (user ranks follow hooklock).
            let class = if !self.builtin {
                Class::User
            } else if self.new_preds[i].iter().any(|(p, _)| match *p {
                Err(j) => {
                    self.new_names[j].text == INNER_ANCHOR || new_class[j] == Class::BuiltinInner
                }
                Ok(old) => {
                    meta.ranks[old as usize].name == INNER_ANCHOR
                        || meta.ranks[old as usize].class == Class::BuiltinInner
                }
            }) {
                Class::BuiltinInner
            } else {
                Class::BuiltinFirst
            };
            new_class.push(class);
            let mut set = RankSet::default();
            let mut preds = Vec::new();
            for (p, pos) in &self.new_preds[i] {
                let pid = id_of(*p);
                preds.push(pid);
                set.insert(pid);
                let prow = load_allowed(m, pid);
                for (w, pw) in set.0.iter_mut().zip(prow.0.iter()) {
                    *w |= *pw;
                }
                meta.edges.insert(
                    (pid, id),
                    Loc {
                        file: self.file.clone(),
                        pos: pos.clone(),
                    },
                );
            }
            // Ranks after the anchor are inner: record them so user ranks
            // loaded later are added to their closure.
            if class == Class::BuiltinInner && !pseudo {
                meta.inner.push(id);
            }
            if class == Class::User {
                if let Some(h) = meta.hooklock {
                    set.insert(h);
                }
            }
            if self.nestable.iter().any(|e| id_of(*e) == id) {
                set.insert(id);
            }
            // LEAF is never allowed to be held when acquiring anything.
            set.remove(LEAF);
            for (w, v) in m[id as usize].iter().zip(set.0.iter()) {
                w.fetch_or(*v, Ordering::Relaxed);
            }
            if n.text == "hooklock" && self.builtin {
                meta.hooklock = Some(id);
            }
            meta.by_name.insert(n.text.clone(), id);
            meta.ranks.push(Rank {
                name: n.text.clone(),
                pseudo,
                nestable: false,
                class,
                defined_at: Some(Loc {
                    file: self.file.clone(),
                    pos: n.pos.clone(),
                }),
                preds,
            });
            new_ids.push(id);
        }
        // Nestable flags (including old ranks opting in now).
        for e in std::mem::take(&mut self.nestable) {
            let id = id_of(e);
            meta.ranks[id as usize].nestable = true;
            m[id as usize][id as usize / 64].fetch_or(1 << (id % 64), Ordering::Relaxed);
        }
        // Every user rank may be held when an inner rank is acquired.
        if !self.builtin {
            for &inner in &meta.inner {
                for &id in &new_ids {
                    m[inner as usize][id as usize / 64].fetch_or(1 << (id % 64), Ordering::Relaxed);
                }
            }
        }
        // A later Acquire load of a mutex's resolved rank pairs with this.
        std::sync::atomic::fence(Ordering::Release);
        new_ids
    }
}
