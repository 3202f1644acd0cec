#![cfg(not(loom))]
//! The `rtcore` command: `ranks` on good and bad files, and the demo end to
//! end (exit status and the summary it promises).

use std::process::Command;

fn rtcore(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(args)
        .env_remove("RTCORE_DEBUG")
        .output()
        .expect("run rtcore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rtcore-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn ranks_prints_a_linear_order_for_a_good_file() {
    let f = temp_file(
        "good.ranks",
        "# ok\nNONE < a;\na < B_GROUP;\nB_GROUP < c, d;\nnestable: d;\n",
    );
    let (code, out, _) = rtcore(&["ranks", &f]);
    assert_eq!(code, 0);
    assert!(out.contains("ok, 3 ranks (1 pseudo-ranks)"), "{out}");
    let pos = |n: &str| {
        out.find(&format!(" {n} "))
            .unwrap_or_else(|| panic!("{n} missing:\n{out}"))
    };
    assert!(pos("a") < pos("c") && pos("a") < pos("d"));
    assert!(out.contains("(nestable)"));
    assert!(!out.contains("hooklock"), "builtin ranks only with --all");
    let (_, all, _) = rtcore(&["ranks", "--all", &f]);
    assert!(all.contains("hooklock"));
}

#[test]
fn ranks_rejects_a_bad_file_with_its_position() {
    let f = temp_file("cycle.ranks", "NONE < a;\np < q;\nq < p;\n");
    let (code, _, err) = rtcore(&["ranks", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cycle.ranks:3:1: graph cycle: p < q < p"),
        "{err}"
    );
    let (code, _, err) = rtcore(&["ranks", "/nonexistent.ranks"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read rank file"), "{err}");
}

#[test]
fn demo_runs_and_reports_the_inversion() {
    let (code, out, err) = rtcore(&["demo"]);
    assert_eq!(code, 0, "demo failed:\n{out}\n{err}");
    assert!(out.contains("requests served      20000"), "{out}");
    assert!(out.contains("order violations     8"), "{out}");
    assert!(
        out.contains("forbidden by examples/kv.ranks:5: index < shard"),
        "{out}"
    );
    assert!(err.contains("'kv-compactor'"), "{err}");
}

#[test]
fn help_shows_an_example_for_each_subcommand() {
    for sub in ["ranks", "demo"] {
        let (code, out, _) = rtcore(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example: rtcore"), "{sub} --help:\n{out}");
    }
}
