#![cfg(not(loom))]
//! Runs the C test suite (c-tests/run.sh) against the freshly built library.

mod common;

use std::process::Command;

#[test]
fn c_suite_passes() {
    let lib = common::lib_dir();
    let out = Command::new("bash")
        .arg(common::manifest_dir().join("c-tests/run.sh"))
        .arg("plain")
        .arg(lib)
        .output()
        .expect("run c-tests/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "C suite failed:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("test_")),
        "the C suite ran no program"
    );
}

/// Every export appears in the misuse table of c-tests/test_misuse.c.
#[test]
fn misuse_table_covers_every_header_function() {
    let src =
        std::fs::read_to_string(common::manifest_dir().join("c-tests/test_misuse.c")).unwrap();
    let mut missing = Vec::new();
    for f in common::header_functions() {
        if !src.contains(&format!("MISUSE(\"{f}\"")) {
            missing.push(f);
        }
    }
    assert!(
        missing.is_empty(),
        "header functions with no misuse case in c-tests/test_misuse.c: {missing:?}"
    );
}
