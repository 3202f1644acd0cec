#![cfg(not(loom))]
//! The layering test (Go's go/build/deps_test.go, for rtcore): derive the
//! graph of rtcore's top-level modules from the source and check every
//! edge against the order declared in src/layering.ranks, written in
//! rtcore's own rank language and loaded with its own rank table. A
//! broken fixture (a bottom module reaching up) shows the check fails.
//!
//! An edge is any path from a file of one top-level module into another:
//! `crate::x` (in `use` lists, re-exports and expressions alike, braces
//! expanded: `use crate::{a, b::c}`), and `super::` chains that climb out
//! of a module to the crate root and on into another. Items of the crate
//! root itself (lib.rs) are not modules and are allowed everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module of a file under `src` (None for lib.rs and the binaries).
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().map(String::as_str) == Some("bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?.to_string();
    if parts.is_empty() && stem == "lib" {
        return None;
    }
    if stem != "mod" {
        parts.push(stem);
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn ident_at(b: &[u8], mut i: usize) -> (String, usize) {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    let s = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&b[s..i]).into_owned(), i)
}

/// First path segments after `crate::` at byte `i` (expanding one level of
/// braces).
fn heads_after(b: &[u8], i: usize) -> Vec<String> {
    let mut j = i;
    while j < b.len() && b[j].is_ascii_whitespace() {
        j += 1;
    }
    if j < b.len() && b[j] == b'{' {
        let mut depth = 0;
        let mut heads = Vec::new();
        let mut expect = true;
        while j < b.len() {
            match b[j] {
                b'{' => {
                    depth += 1;
                    expect = depth == 1;
                    j += 1;
                }
                b'}' => {
                    depth -= 1;
                    j += 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 1 => {
                    expect = true;
                    j += 1;
                }
                c if expect && depth == 1 && (c.is_ascii_alphabetic() || c == b'_') => {
                    let (id, k) = ident_at(b, j);
                    heads.push(id);
                    expect = false;
                    j = k;
                }
                _ => j += 1,
            }
        }
        heads
    } else {
        vec![ident_at(b, j).0]
    }
}

/// The Rust files under `src` and the top-level modules they make up.
fn files_and_modules(src: &Path) -> (Vec<PathBuf>, BTreeSet<String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules = files
        .iter()
        .filter_map(|f| module_path(src, f))
        .filter_map(|p| p.first().cloned())
        .collect();
    (files, modules)
}

/// Every (from, to) edge between top-level modules under `src`.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let (files, modules) = files_and_modules(src);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(path) = module_path(src, f) else {
            continue;
        };
        let me = path[0].clone();
        let text = std::fs::read_to_string(f).unwrap();
        let b = text.as_bytes();
        let mut add = |to: &str| {
            if modules.contains(to) && to != me {
                out.entry(me.clone()).or_default().insert(to.to_string());
            }
        };
        let mut i = 0;
        while i < b.len() {
            let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            if word_start && b[i..].starts_with(b"crate::") {
                for h in heads_after(b, i + 7) {
                    add(&h);
                }
                i += 7;
            } else if word_start && b[i..].starts_with(b"super::") {
                // Climb: each `super` leaves one level of the file's module.
                let mut depth = path.len();
                let mut j = i;
                while b[j..].starts_with(b"super::") {
                    depth = depth.saturating_sub(1);
                    j += 7;
                }
                if depth == 0 {
                    for h in heads_after(b, j) {
                        add(&h);
                    }
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
    out
}

/// The edges the declared order forbids, and modules it does not declare.
fn violations(src: &Path, layering: &str) -> Vec<String> {
    let table = rtcore::ranks::RankTable::new();
    table
        .load(layering, "src/layering.ranks")
        .unwrap_or_else(|e| panic!("src/layering.ranks: {}", e.message));
    let id = |m: &str| table.lookup(&format!("mod_{m}")).ok();
    let mut bad = Vec::new();
    let graph = edges(src);
    let (_, modules) = files_and_modules(src);
    for m in &modules {
        if id(m).is_none() {
            bad.push(format!(
                "module '{m}' is not declared in src/layering.ranks"
            ));
        }
    }
    for (from, tos) in &graph {
        let Some(f) = id(from) else {
            continue;
        };
        let allowed = rtcore::ranks::table::load_allowed(table.matrix(), f);
        for to in tos {
            match id(to) {
                Some(t) if allowed.contains(t) => {}
                Some(_) => bad.push(format!(
                    "'{from}' uses '{to}', which the layering puts above it (or beside it)"
                )),
                None => {}
            }
        }
    }
    bad
}

fn layering_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/layering.ranks")).unwrap()
}

#[test]
fn the_module_graph_follows_the_declared_layering() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let g = edges(src);
    // The extraction finds what is surely there (so an empty graph cannot
    // pass by accident).
    assert!(
        g["ffi"].contains("lifecycle") && g["world"].contains("lock"),
        "{g:?}"
    );
    assert!(g["trace"].contains("sysmon"), "{g:?}");
    let bad = violations(src, &layering_text());
    assert!(
        bad.is_empty(),
        "layering violations:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn a_broken_fixture_is_caught() {
    let dir = std::env::temp_dir().join(format!("rtcore-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    for (file, text) in [
        (
            "lib.rs",
            "pub mod base;\npub mod world;\npub mod lock;\npub mod status;\n",
        ),
        // The bottom layer reaching up, through a braced import.
        ("base/mod.rs", "use crate::{status::Error, world};\n"),
        ("base/inner.rs", "fn f() {}\n"),
        // Fine: down.
        ("world/mod.rs", "use crate::lock::x;\n"),
        // A climb out of lock/mutex.rs into world: up.
        ("lock/mod.rs", "pub mod mutex;\n"),
        ("lock/mutex.rs", "fn g() { super::super::world::stop(); }\n"),
        ("status.rs", "\n"),
        // Not declared at all.
        ("extra.rs", "\n"),
    ] {
        let p = src.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let g = edges(&src);
    assert_eq!(
        g["base"],
        ["status", "world"].iter().map(|s| s.to_string()).collect()
    );
    assert!(g["lock"].contains("world"), "{g:?}");
    let bad = violations(&src, &layering_text());
    let text = bad.join("\n");
    assert!(text.contains("'base' uses 'world'"), "{text}");
    assert!(text.contains("'lock' uses 'world'"), "{text}");
    assert!(text.contains("module 'extra' is not declared"), "{text}");
    assert!(!text.contains("'world' uses 'lock'"), "{text}");
    assert!(!text.contains("'base' uses 'status'"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
