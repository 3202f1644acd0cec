#![cfg(not(loom))]
//! The benchmarks call the library through `dlsym` with Rust mirrors of
//! the header's structs (benches/). CI does not run them, so a struct that
//! grows in the header could leave a mirror stale unnoticed (it happened:
//! `rtc_trace_stats` grew and benches/flight.rs's copy did not). Every
//! mirror ("/// Mirror of ... `struct NAME`", with a compile-time size
//! assertion) must have the size gcc gives `struct NAME` from
//! include/rtcore.h.

mod common;

use std::process::Command;

/// (C struct name, mirror's asserted size, where) for every mirror in
/// benches/ and benches/common/.
fn mirrors() -> Vec<(String, usize, String)> {
    let root = common::manifest_dir();
    let mut files = Vec::new();
    for dir in ["benches", "benches/common"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "rs") {
                files.push(e.path());
            }
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(rest) = l.trim_start().strip_prefix("/// Mirror of") else {
                continue;
            };
            let Some(name) = rest
                .split("`struct ")
                .nth(1)
                .and_then(|r| r.split('`').next())
            else {
                continue;
            };
            // The Rust struct the comment stands over.
            let decl = lines[i..]
                .iter()
                .find_map(|l| {
                    let l = l.trim_start().trim_start_matches("pub ");
                    l.strip_prefix("struct ")
                        .map(|r| r.split([' ', '{']).next().unwrap_or_default().to_string())
                })
                .unwrap_or_default();
            let needle = format!("size_of::<{decl}>() == ");
            let size = text
                .lines()
                .find_map(|l| l.split(&needle).nth(1))
                .and_then(|r| r.split(')').next())
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: mirror {decl} of {name} has no size assertion",
                        f.display()
                    )
                });
            out.push((name.to_string(), size, format!("{}: {decl}", f.display())));
        }
    }
    out
}

#[test]
fn every_bench_mirror_has_the_headers_size() {
    let mirrors = mirrors();
    assert!(mirrors.len() >= 7, "{mirrors:?}");
    let dir = std::env::temp_dir().join(format!("rtcore-mirrors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut src = String::from("#include <stdio.h>\n#include \"rtcore.h\"\nint main(void) {\n");
    for (name, _, _) in &mirrors {
        src.push_str(&format!("    printf(\"%zu\\n\", sizeof(struct {name}));\n"));
    }
    src.push_str("    return 0;\n}\n");
    std::fs::write(dir.join("sizes.c"), src).unwrap();
    let st = Command::new("gcc")
        .arg("-I")
        .arg(common::manifest_dir().join("include"))
        .arg("-o")
        .arg(dir.join("sizes"))
        .arg(dir.join("sizes.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(dir.join("sizes")).output().unwrap();
    let sizes: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    for ((name, mirror, at), c) in mirrors.iter().zip(sizes) {
        assert_eq!(
            *mirror, c,
            "{at} mirrors struct {name}: {mirror} bytes, the header says {c}"
        );
    }
}
