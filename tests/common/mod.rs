//! Shared helpers for integration tests that need the built C library.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding librtcore.so (and .a, and the .so.0 link), built
/// for the profile this test runs under. `cargo test` does not build the
/// cdylib for integration tests, so build it here, once per test binary.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = profile_dir
            .file_name()
            .map(|n| n == "release")
            .unwrap_or(false);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--lib")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(manifest_dir().join("Cargo.toml"));
        if release {
            cmd.arg("--release");
        }
        let target_dir = profile_dir.parent().unwrap();
        cmd.arg("--target-dir").arg(target_dir);
        let st = cmd.status().expect("run cargo build --lib");
        assert!(st.success(), "cargo build --lib failed");
        let so = profile_dir.join("librtcore.so");
        assert!(so.exists(), "{} missing after build", so.display());
        let so0 = profile_dir.join("librtcore.so.0");
        if std::fs::symlink_metadata(&so0).is_err() {
            std::os::unix::fs::symlink("librtcore.so", &so0).expect("make librtcore.so.0 link");
        }
        profile_dir
    })
}

/// Names of the functions the committed header declares.
pub fn header_functions() -> Vec<String> {
    let text = std::fs::read_to_string(manifest_dir().join("include/rtcore.h")).unwrap();
    let mut out = Vec::new();
    // Declarations look like `<type> rtc_name(` at the start of a line
    // (possibly with a pointer star before the name).
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('#') || line.starts_with('*') {
            continue;
        }
        if let Some(paren) = line.find('(') {
            let head = &line[..paren];
            if let Some(name) = head.split([' ', '*']).next_back() {
                if name.starts_with("rtc_") {
                    out.push(name.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Names of the variables the header declares `extern`.
pub fn header_variables() -> Vec<String> {
    let text = std::fs::read_to_string(manifest_dir().join("include/rtcore.h")).unwrap();
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("extern ") && !l.contains('(') && !l.contains("\"C\""))
        .filter_map(|l| {
            l.trim_end_matches(';')
                .split([' ', '*'])
                .next_back()
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out
}

/// Run `rtcore SUBCOMMAND FILE` (the command built with these tests) and
/// return its exit status and its standard output followed by its
/// standard error.
pub fn rtcore_on(subcommand: &str, file: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .arg(subcommand)
        .arg(file)
        .output()
        .expect("run rtcore");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}
