#![cfg(not(loom))]
//! Runs the C test suite (c-tests/run.sh) against the freshly built
//! library, one test per program.

mod common;

use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Build and run one program of the C suite (c-tests/run.sh plain LIB
/// NAME): the test is named after it, so a failure names the program, and
/// its log is printed.
fn run_program(name: &str) {
    // One at a time, as the suite always ran: several programs hold time
    // bounds that two at once on a 2-core machine would stretch.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lib = common::lib_dir();
    let out = Command::new("bash")
        .arg(common::manifest_dir().join("c-tests/run.sh"))
        .arg("plain")
        .arg(lib)
        .arg(name)
        .env("RTCORE_BIN", env!("CARGO_BIN_EXE_rtcore"))
        .output()
        .expect("run c-tests/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "c-tests/{name}.c failed:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with(&format!("{name}: "))),
        "c-tests/{name}.c did not run"
    );
}

macro_rules! c_programs {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_program(stringify!($name));
            }
        )*
        const PROGRAMS: &[&str] = &[$(stringify!($name)),*];
    };
}

c_programs!(
    test_cpp,
    test_cut,
    test_deadlock,
    test_dlclose,
    test_flight,
    test_fork,
    test_hooks,
    test_hostile_lifecycle,
    test_hostile_sinks,
    test_lifecycle,
    test_loss,
    test_many_threads,
    test_misuse,
    test_rwlock,
    test_scenarios,
    test_stress,
    test_sysmon,
    test_thread_reuse,
    test_trace,
    test_trace_mutations,
    test_world,
    test_world_stress,
);

/// Every c-tests/test_*.c has its test above (a new program is not left
/// out by forgetting the list).
#[test]
fn every_c_program_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(common::manifest_dir().join("c-tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("test_") && (n.ends_with(".c") || n.ends_with(".cpp")))
        .map(|n| {
            n.trim_end_matches(".cpp")
                .trim_end_matches(".c")
                .to_string()
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = PROGRAMS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "tests/c_suite.rs's list differs from c-tests/"
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
