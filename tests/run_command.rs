#![cfg(not(loom))]
//! `rtcore run` on plain pthread programs nobody wrote for rtcore
//! (tests/preload/scenarios.c): the learned lock order reports AB-BA in
//! one thread and across two, three- and four-class cycles (with every
//! edge's sites), locks of one class in both address orders, recursion on
//! a non-recursive mutex (before it hangs, with `--mode abort`), an unlock
//! of a mutex not held, an inversion through a read lock across two
//! threads, a read lock written by its reader; and stays quiet on a clean
//! contended program, a try-lock in the opposite order, one class in
//! address order, a recursive mutex, a fork, readers in both orders and a
//! producer and consumer on a condition variable (whose old symbol
//! version, bound explicitly, is interposed too). The exit status is passed through; static
//! and set-user-ID programs are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The scenario program, compiled once into this test's own directory.
fn scenarios() -> &'static Path {
    static DIR: OnceLock<Dir> = OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rtcore-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let src = common::manifest_dir().join("tests/preload/scenarios.c");
        let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
            .arg(d.join("scenarios"))
            .arg(&src)
            .status()
            .expect("run the C compiler");
        assert!(st.success(), "compiling {} failed", src.display());
        Dir(d)
    });
    // librtcore.so (the preload library loads the one beside it).
    common::lib_dir();
    &d.0
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], scenario: &str) -> Run {
    let exe = scenarios().join("scenarios");
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .arg("run")
        .args(args)
        .arg("--")
        .arg(&exe)
        .arg(scenario)
        .env_remove("RTCORE_DEBUG")
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run rtcore run");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// tests/preload/NAME.c compiled and linked with librtcore (rpath to it),
/// into the scenarios' directory.
fn linked_program(name: &str) -> std::path::PathBuf {
    let lib = common::lib_dir();
    let exe = scenarios().join(name);
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-g", "-pthread", "-Wall", "-Werror", "-I"])
        .arg(common::manifest_dir().join("include"))
        .arg("-o")
        .arg(&exe)
        .arg(common::manifest_dir().join(format!("tests/preload/{name}.c")))
        .arg("-L")
        .arg(lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lrtcore")
        .status()
        .unwrap();
    assert!(st.success(), "compiling tests/preload/{name}.c failed");
    exe
}

/// The count the summary gives for `what` ("order violation(s)", ...).
fn summary_count(stderr: &str, what: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("rtcore run: ") && l.contains("lock class(es)"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let at = line
        .find(what)
        .unwrap_or_else(|| panic!("no '{what}' in: {line}"));
    line[..at]
        .trim_end()
        .rsplit([' ', ';'])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before '{what}' in: {line}"))
}

/// The line of scenarios.c holding `text` (its first occurrence).
fn line_of(text: &str) -> usize {
    let src =
        std::fs::read_to_string(common::manifest_dir().join("tests/preload/scenarios.c")).unwrap();
    src.lines()
        .position(|l| l.contains(text))
        .expect("in scenarios.c")
        + 1
}

#[test]
fn ab_ba_across_two_threads_is_reported_with_both_sites() {
    // pair(x, y) locks x, then y.
    let (x, y) = (
        line_of("pthread_mutex_lock(x);"),
        line_of("pthread_mutex_lock(y);"),
    );
    let r = run(&[], "abba-threads");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("lock order violation (learned order)"),
        "{}",
        r.stderr
    );
    // The acquisition that closes the cycle, with the lock held and where.
    assert!(
        r.stderr.contains("wants mutex")
            && r.stderr.contains(&format!(
                "['a', first locked at pair (scenarios.c:{x})] at pair (scenarios.c:{y})"
            )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("while holding mutex"), "{}", r.stderr);
    // The order learned before, with its sites.
    assert!(
        r.stderr.contains(&format!("['a', first locked at pair (scenarios.c:{x})] then ['b', first locked at pair (scenarios.c:{y})]")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("thread 'pairer'"), "{}", r.stderr);
    assert_eq!(summary_count(&r.stderr, "order violation(s)"), 1);
}

#[test]
fn ab_ba_in_one_thread_is_reported() {
    let r = run(&[], "abba-one-thread");
    assert_eq!(
        summary_count(&r.stderr, "order violation(s)"),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn three_and_four_class_cycles_list_every_edge() {
    for (scenario, edges) in [("cycle3", 2), ("cycle4", 3)] {
        let r = run(&[], scenario);
        assert_eq!(
            summary_count(&r.stderr, "order violation(s)"),
            1,
            "{}",
            r.stderr
        );
        let listed = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("    [") && l.contains(" then "))
            .count();
        assert_eq!(listed, edges, "{scenario}:\n{}", r.stderr);
    }
}

#[test]
fn a_clean_contended_program_gets_no_report_and_its_waits_are_summed() {
    let r = run(&[], "clean");
    assert_eq!(r.code, 0);
    assert!(!r.stderr.contains("violation ("), "{}", r.stderr);
    assert_eq!(summary_count(&r.stderr, "order violation(s)"), 0);
    assert_eq!(summary_count(&r.stderr, "thread(s)"), 4, "{}", r.stderr);
    assert_eq!(
        summary_count(&r.stderr, "learned order edge(s)"),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn a_try_lock_in_the_opposite_order_adds_no_edge() {
    let r = run(&[], "trylock-reverse");
    assert_eq!(
        summary_count(&r.stderr, "order violation(s)"),
        0,
        "{}",
        r.stderr
    );
    assert_eq!(summary_count(&r.stderr, "learned order edge(s)"), 1);
}

#[test]
fn one_class_in_address_order_is_fine_and_in_both_orders_is_reported() {
    let ok = run(&[], "same-class");
    assert_eq!(
        summary_count(&ok.stderr, "order violation(s)"),
        0,
        "{}",
        ok.stderr
    );
    assert_eq!(
        summary_count(&ok.stderr, "lock class(es)"),
        1,
        "{}",
        ok.stderr
    );
    let bad = run(&[], "same-class-reverse");
    assert!(
        bad.stderr.contains("taken in both address orders"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr
            .contains("[class: initialised at same_class (scenarios.c:"),
        "{}",
        bad.stderr
    );
    assert_eq!(summary_count(&bad.stderr, "order violation(s)"), 1);
}

#[test]
fn recursion_on_a_normal_mutex_is_reported_before_it_hangs() {
    let r = run(&["--mode", "abort"], "recursion");
    assert!(
        r.stderr.contains("rtcore: recursive locking: thread"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("this call never returns"), "{}", r.stderr);
    // Aborted by rtcore (SIGABRT): 128 + 6.
    assert_eq!(r.code, 134, "{}", r.stderr);
    assert!(r.stderr.contains("was killed by signal 6"), "{}", r.stderr);
}

#[test]
fn a_recursive_mutex_may_be_locked_again() {
    let r = run(&[], "recursive-ok");
    assert_eq!(r.code, 0);
    assert_eq!(
        summary_count(&r.stderr, "recursive lock(s)"),
        0,
        "{}",
        r.stderr
    );
    assert_eq!(summary_count(&r.stderr, "order violation(s)"), 0);
}

#[test]
fn an_unlock_of_a_mutex_not_held_is_reported_and_the_program_goes_on() {
    let r = run(&[], "unlock-not-held");
    assert!(
        r.stderr.contains("rtcore: unlock of a lock not held"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("unlock_not_held (scenarios.c:"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.trim(), "unlock: EPERM");
    assert_eq!(summary_count(&r.stderr, "unlock(s) of a lock not held"), 1);
}

#[test]
fn a_forked_child_runs_checked_and_is_counted() {
    let r = run(&[], "fork");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "child: 7");
    assert!(
        r.stderr
            .contains("1 other process(es) it started were checked too"),
        "{}",
        r.stderr
    );
}

/// The child after `fork`: 200 forks while another thread keeps
/// librtcore busy (starting it, classing new locks): every child locks a
/// new mutex and exits. A child that inherited librtcore's locks held by
/// the busy thread (its start, its learned graph), or a `Once` caught
/// running, would hang until its 10 s alarm: none may.
#[test]
fn forks_while_another_thread_is_inside_librtcore_never_hang_the_child() {
    let r = run(&[], "fork-busy");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "children that did not exit cleanly: 0",
        "{}",
        r.stderr
    );
}

/// Thread exit: a thread that ends holding a lock (returning from its
/// start routine, calling `pthread_exit`, or cancelled) is reported with
/// the lock and where it was taken; one that ends holding none is not.
#[test]
fn a_thread_that_ends_holding_a_lock_is_reported() {
    let r = run(&[], "exit-holding");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "joined");
    for (lock, routine) in [
        ("kept1", "returns_holding"),
        ("kept2", "exits_holding"),
        ("kept3", "cancelled_holding"),
    ] {
        let want = format!(
            "['{lock}', first locked at {routine} (scenarios.c:{line})] taken at {routine} (scenarios.c:{line})",
            line = line_of(&format!("pthread_mutex_lock(&{lock});"))
        );
        assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
    }
    assert_eq!(
        r.stderr
            .matches("rtcore: thread ended holding locks")
            .count(),
        3,
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "thread(s) ended holding locks"),
        3,
        "{}",
        r.stderr
    );
}

/// A robust mutex whose owner died: the next lock call returns
/// `EOWNERDEAD` and holds it (the program makes it consistent and unlocks
/// it: no unlock-not-held report), and it is flagged and counted.
#[test]
fn a_robust_mutex_taken_from_a_dead_owner_is_held_and_flagged() {
    let r = run(&[], "robust");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "lock: EOWNERDEAD");
    assert!(
        r.stderr
            .contains("with EOWNERDEAD: its owner died holding it"),
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "robust lock(s) taken from a dead owner"),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "unlock(s) of a lock not held"),
        0,
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "thread(s) ended holding locks"),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn readers_in_both_orders_are_fine() {
    let r = run(&[], "rw-read-read");
    assert_eq!(r.code, 0);
    assert_eq!(
        summary_count(&r.stderr, "order violation(s)"),
        0,
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "learned order edge(s)"),
        0,
        "{}",
        r.stderr
    );
}

#[test]
fn an_inversion_through_a_read_lock_across_two_threads_is_reported() {
    let r = run(&[], "rw-inversion");
    assert!(r.stderr.contains("wants rwlock"), "{}", r.stderr);
    assert!(
        r.stderr.contains("(for reading)\n  while holding mutex"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("['r1', first locked at write_r1_then_a (scenarios.c:"),
        "{}",
        r.stderr
    );
    assert_eq!(summary_count(&r.stderr, "order violation(s)"), 1);
}

#[test]
fn writing_a_read_lock_the_thread_holds_is_reported_before_it_hangs() {
    let r = run(&["--mode", "abort"], "rw-read-then-write");
    assert!(
        r.stderr.contains("locks rwlock")
            && r.stderr
                .contains("(exclusively) while it already holds it (for reading"),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 134, "{}", r.stderr);
}

#[test]
fn condition_waits_release_and_retake_their_mutex_without_false_reports() {
    let r = run(&[], "cond");
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.trim(), "consumed 1000");
    assert_eq!(
        summary_count(&r.stderr, "order violation(s)"),
        0,
        "{}",
        r.stderr
    );
    assert_eq!(summary_count(&r.stderr, "unlock(s) of a lock not held"), 0);
    assert!(
        summary_count(&r.stderr, "condition wait(s)") > 0,
        "{}",
        r.stderr
    );
}

/// A binary bound to glibc's old condition-variable version (GLIBC_2.2.5):
/// its waits go through the preload library's old-version definitions.
#[test]
fn the_old_condition_variable_symbol_version_is_interposed_too() {
    let d = scenarios();
    let exe = d.join("old_cond");
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-g", "-pthread", "-o"])
        .arg(&exe)
        .arg(common::manifest_dir().join("tests/preload/old_cond.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let nm = Command::new("nm")
        .args(["-D", "--with-symbol-versions"])
        .arg(&exe)
        .output()
        .unwrap();
    let syms = String::from_utf8_lossy(&nm.stdout);
    assert!(syms.contains("pthread_cond_wait@GLIBC_2.2.5"), "{syms}");
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--"])
        .arg(&exe)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "old condition: woken, then timed out: yes");
    assert_eq!(summary_count(&stderr, "condition wait(s)"), 2, "{stderr}");
}

/// One process, one rtcore: a program linked with librtcore, and Python
/// importing the package, under `rtcore run`, each map exactly one
/// librtcore (the preload library and the package use the one loaded).
#[test]
fn a_linked_program_and_python_under_rtcore_run_have_one_rtcore() {
    let (d, lib) = (scenarios(), common::lib_dir());
    let exe = linked_program("linked");
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--"])
        .arg(&exe)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "librtcore copies: 1", "{stderr}");
    assert_eq!(summary_count(&stderr, "thread(s)"), 1, "{stderr}");

    let script = "import os, rtcore\n\
copies = {l.split(None, 5)[5].strip() for l in open('/proc/self/maps') if 'librtcore.so' in l and len(l.split(None, 5)) == 6}\n\
print('python librtcore copies:', len(copies), rtcore.LIBRARY_PATH in copies)\n";
    // Another copy of the library (another file) than the preload
    // library's: the package must not load it.
    let copy = d.join("librtcore-copy.so");
    std::fs::copy(lib.join("librtcore.so"), &copy).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--", "python3", "-c", script])
        .env("PYTHONPATH", common::manifest_dir().join("python"))
        .env("RTCORE_LIB", &copy)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "python librtcore copies: 1 True", "{stderr}");
}

/// Reports go through the lock-rank mode the program selects, as rtcore's
/// own do: a program linked with librtcore that selects the queue mode
/// reads the order cycle and the unlock not held found in its pthread lock
/// calls with `rtc_lockrank_next_report`; one that sets a callback gets
/// them passed to it on the violating thread. Nothing is printed.
#[test]
fn interposed_reports_go_through_the_queue_and_callback_modes() {
    let exe = linked_program("modes");
    for how in ["queue", "callback"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
            .args(["run", "--"])
            .arg(&exe)
            .arg(how)
            .env_remove("LD_PRELOAD")
            .env_remove("RTCORE_DEBUG")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let word = if how == "queue" { "queued" } else { "callback" };
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{word}: reason 1, wanted kind 1 at a site, held 1, conflicting 1, text ok"
                )
                .as_str(),
                format!(
                    "{word}: reason 4, wanted kind 1 at a site, held 0, conflicting 0, text ok"
                )
                .as_str(),
                "done",
            ],
            "{stderr}"
        );
        // Passed on, not printed (the summary still counts them).
        assert!(!stderr.contains("rtcore: lock order violation"), "{stderr}");
        assert_eq!(summary_count(&stderr, "order violation(s)"), 1, "{stderr}");
    }
}

/// The learned-ranks workflow: a run learns the order (a then b) into a
/// rank file; a later run checked against it reports b then a as a
/// violation of the declaration although that run alone has no cycle, and
/// a lock class the file does not name. A run that keeps to the file gets
/// no report.
#[test]
fn learned_ranks_become_a_declaration_later_runs_are_held_to() {
    let d = scenarios();
    let file = d.join("learned.ranks");
    let _ = std::fs::remove_file(&file);
    let f = file.to_str().unwrap();
    let r = run(&["--learn-ranks", f], "clean");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("learned order written to"),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("NONE < a;"), "{text}");
    assert!(text.contains("a < b;"), "{text}");
    assert!(text.contains("NONE < c;"), "{text}");
    // It is a rank file rtcore's own checker accepts.
    let ranks = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["ranks", f])
        .output()
        .unwrap();
    assert!(
        ranks.status.success(),
        "{}",
        String::from_utf8_lossy(&ranks.stderr)
    );

    let ok = run(&["--ranks", f], "clean");
    assert!(!ok.stderr.contains("violation ("), "{}", ok.stderr);
    assert!(
        ok.stderr.contains("0 acquisition(s) it does not declare"),
        "{}",
        ok.stderr
    );

    let bad = run(&["--ranks", f], "b-then-a");
    assert!(
        bad.stderr.contains("lock order violation (declared ranks)"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("'a' taken while holding 'b'"),
        "{}",
        bad.stderr
    );
    assert_eq!(
        summary_count(&bad.stderr, "order violation(s)"),
        0,
        "no learned cycle: {}",
        bad.stderr
    );

    let new = run(&["--ranks", f], "rw-inversion");
    assert!(
        new.stderr.contains("lock class 'r1' is not declared"),
        "{}",
        new.stderr
    );

    // A bad rank file is refused before the program runs.
    let broken = d.join("broken.ranks");
    std::fs::write(&broken, "b < c;\n").unwrap();
    let r = run(&["--ranks", broken.to_str().unwrap()], "clean");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--ranks:") && r.stderr.contains("missing definition"),
        "{}",
        r.stderr
    );
    // The output may not be a directory.
    let r = run(&["--learn-ranks", d.to_str().unwrap()], "clean");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is a directory"), "{}", r.stderr);
}

#[test]
fn the_exit_status_is_passed_through() {
    let exe = scenarios().join("scenarios");
    for code in ["0", "3", "42"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
            .args(["run", "--"])
            .arg(&exe)
            .args(["exit", code])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code.parse().unwrap()));
    }
}

/// `--trace FILE`: the whole run is traced (started as librtcore loads,
/// ended at exit); the trace checks consistent and its statistics show the
/// interposed lock's wait, under the lock's class name, with its owner.
#[test]
fn trace_records_waits_on_interposed_locks_with_their_owners() {
    let d = scenarios();
    let trace = d.join("contend.rtctrace");
    let _ = std::fs::remove_file(&trace);
    let r = run(&["--trace", trace.to_str().unwrap()], "contend");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, out) = common::rtcore_on("check", &trace);
    assert_eq!(code, Some(0), "{out}");
    let (_, text) = common::rtcore_on("stats", &trace);
    let line = text
        .lines()
        .skip_while(|l| !l.starts_with("most contended locks"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        line.contains("['a', first locked at contend (scenarios.c:"),
        "{text}"
    );
    assert!(
        line.contains("1 waits") && line.contains("held by thread"),
        "{text}"
    );
    // Not together with the flight recorder.
    let both = run(
        &[
            "--trace",
            trace.to_str().unwrap(),
            "--flight-recorder",
            d.to_str().unwrap(),
        ],
        "contend",
    );
    assert_eq!(both.code, 2);
    assert!(both.stderr.contains("one at a time"), "{}", both.stderr);
}

/// The lock and condition waits of threads outside the world are their
/// states in the trace: three named threads wait on a condition and a
/// contended mutex while generations roll every 5 ms. The trace checks
/// consistent (the validator's rules for threads outside the world), the
/// waits cross generation starts (`outside status`), and the statistics
/// give each thread its name and its time WAITING.
#[test]
fn waits_of_threads_outside_the_world_are_thread_states_in_the_trace() {
    let d = scenarios();
    let trace = d.join("waits.rtctrace");
    let _ = std::fs::remove_file(&trace);
    let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--trace", trace.to_str().unwrap(), "--"])
        .arg(d.join("scenarios"))
        .arg("waits")
        .env("RTCORE_TRACE_GENERATION_MS", "5")
        .env_remove("RTCORE_DEBUG")
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let (code, text) = common::rtcore_on("check", &trace);
    assert_eq!(code, Some(0), "{text}");
    let (_, stats) = common::rtcore_on("stats", &trace);
    let kind = |name: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(kind("outside wait") >= 100, "{stats}");
    assert_eq!(kind("outside wait"), kind("outside resume"), "{stats}");
    assert!(kind("outside status") >= 1, "{stats}");
    for name in ["sleeper-0", "sleeper-1", "sleeper-2"] {
        let row = stats
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no thread {name} in:\n{stats}"));
        // id, name, RUNNING, ms, RUNNABLE, ms, BLOCKING, ms, WAITING, ms.
        let waiting: f64 = row.split_whitespace().nth(8).unwrap().parse().unwrap();
        assert!(waiting > 10.0, "{row}");
    }
}

/// A gate left held (a thread outside the world that left a recording
/// section by `longjmp` from a signal handler, simulated by the fault
/// injection `trace_leave_section`) is waited for only a bounded time: the
/// next rollover gives up on the thread after 500 ms, says so on stderr
/// and in the trace, and the run ends with a complete trace that checks
/// consistent. With `trace_never_give_up` (the broken variant: passes wait
/// for ever) the trace never gets its end: the check catches it.
#[test]
fn a_recording_section_left_held_is_given_up_on() {
    let d = scenarios();
    let run_waits = |debug: &str, name: &str| {
        let trace = d.join(name);
        let _ = std::fs::remove_file(&trace);
        let t0 = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
            .args(["run", "--trace", trace.to_str().unwrap(), "--"])
            .arg(d.join("scenarios"))
            .arg("waits")
            .env("RTCORE_TRACE_GENERATION_MS", "20")
            .env("RTCORE_DEBUG", debug)
            .env_remove("LD_PRELOAD")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        (trace, stderr, t0.elapsed())
    };
    let (trace, stderr, took) = run_waits("trace_leave_section=1", "left-held.rtctrace");
    assert!(
        stderr.contains("stayed inside a recording section for 500 ms")
            && stderr.contains("given up on"),
        "{stderr}"
    );
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let (code, text) = common::rtcore_on("check", &trace);
    assert_eq!(code, Some(0), "{text}");
    let (_, stats) = common::rtcore_on("stats", &trace);
    assert!(
        stats
            .lines()
            .any(|l| l.trim_start().starts_with("log") && !l.contains(" 0")),
        "the give-up is a log event: {stats}"
    );

    // The broken variant: every thread that records ends up waiting for a
    // rollover that waits for ever. Caught: the run has not ended after
    // 15 s (ten times what the fixed one takes); ended with SIGTERM (which
    // `rtcore run` forwards), its trace has no end.
    let trace = d.join("never-give-up.rtctrace");
    let _ = std::fs::remove_file(&trace);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--trace", trace.to_str().unwrap(), "--"])
        .arg(d.join("scenarios"))
        .arg("waits")
        .env("RTCORE_TRACE_GENERATION_MS", "20")
        .env(
            "RTCORE_DEBUG",
            "trace_leave_section=1,trace_never_give_up=1",
        )
        .env_remove("LD_PRELOAD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut ended = None;
    while t0.elapsed() < std::time::Duration::from_secs(15) {
        if let Some(st) = child.try_wait().unwrap() {
            ended = Some(st);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if ended.is_none() {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    let _ = child.wait();
    let (code, text) = common::rtcore_on("check", &trace);
    assert!(
        ended.is_none() || code != Some(0),
        "the broken variant ended with a trace that checks: {text}"
    );
}

/// Threads of unmodified programs never block a stop: a thread spinning
/// with no call at all does not hold up the trace's start at load or its
/// stop at exit (the run ends promptly and the trace checks).
#[test]
fn a_spinning_thread_does_not_hold_up_the_trace() {
    let d = scenarios();
    let trace = d.join("spin.rtctrace");
    let _ = std::fs::remove_file(&trace);
    let t0 = std::time::Instant::now();
    let r = run(&["--trace", trace.to_str().unwrap()], "spin");
    let took = t0.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "exiting with the spinner spinning");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let (code, out) = common::rtcore_on("check", &trace);
    assert_eq!(code, Some(0), "{out}");
}

/// glibc 2.30's clock variants (`pthread_mutex_clocklock`,
/// `pthread_rwlock_clockrdlock`, `pthread_cond_clockwait`) go through the
/// checker: the inversion they make is reported and the wait counted.
#[test]
fn the_clock_variants_are_interposed() {
    let r = run(&[], "clock");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "clockwait: timed out");
    assert_eq!(
        summary_count(&r.stderr, "order violation(s)"),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "condition wait(s)"),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(
        summary_count(&r.stderr, "learned order edge(s)"),
        2,
        "{}",
        r.stderr
    );
}

/// A real deadlock of interposed mutexes: sysmon follows the published
/// waits, names the cycle (both threads, both locks by variable, the sites)
/// within seconds, and the flight recorder dumps a trace that checks.
#[test]
fn a_real_deadlock_of_pthread_mutexes_is_named_and_dumped() {
    use std::io::BufRead;
    let d = scenarios();
    let dumps = d.join("deadlock-dumps");
    let _ = std::fs::remove_dir_all(&dumps);
    std::fs::create_dir_all(&dumps).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--flight-recorder"])
        .arg(&dumps)
        .arg("--")
        .arg(d.join("scenarios"))
        .arg("deadlock")
        .env_remove("LD_PRELOAD")
        .env_remove("RTCORE_DEBUG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let t0 = std::time::Instant::now();
    let mut report = None;
    let mut all = String::new();
    while report.is_none() && t0.elapsed() < std::time::Duration::from_secs(15) {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("rtcore: deadlock:") {
                report = Some(line);
            }
        }
    }
    let report = report.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no deadlock report within 15 s:\n{all}")
    });
    assert!(
        report.contains("'payer'") && report.contains("'payee'"),
        "{report}"
    );
    assert!(
        report.contains("['a', first locked at crosser (scenarios.c:")
            && report.contains("['b', first"),
        "{report}"
    );
    assert!(report.contains("(2 threads parked for good)"), "{report}");
    // The dump the deadlock triggers.
    let dump = loop {
        let found = std::fs::read_dir(&dumps)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-deadlock.rtctrace"));
        if let Some(p) = found {
            if common::rtcore_on("check", &p).0 == Some(0) {
                break p;
            }
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "no consistent deadlock dump in {}",
            dumps.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // SAFETY: signalling our own child (passed on to the program).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(128 + 15));
    assert!(dump.exists());
}

/// SIGTERM sent to `rtcore run` reaches the program (which dies of it:
/// 128 + 15), instead of leaving it running without its wrapper.
#[test]
fn sigterm_to_the_command_is_passed_on_to_the_program() {
    use std::io::BufRead;
    let exe = scenarios().join("scenarios");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtcore"))
        .args(["run", "--"])
        .arg(&exe)
        .arg("pause")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "pausing\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the program did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(128 + 15));
}

#[test]
fn static_set_user_id_and_missing_programs_are_refused() {
    let d = scenarios();
    let rtcore = |prog: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_rtcore"))
            .args(["run", "--"])
            .arg(prog)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A set-user-ID copy.
    let suid = d.join("suid");
    std::fs::copy(d.join("scenarios"), &suid).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let (code, err) = rtcore(&suid);
    assert_eq!(code, Some(2));
    assert!(err.contains("set-user-ID"), "{err}");
    // Missing.
    let (code, err) = rtcore(&d.join("no-such-program"));
    assert_eq!(code, Some(2));
    assert!(err.contains("no-such-program"), "{err}");
    // Static (where the C library's static archive is installed).
    let st = d.join("static");
    let built = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-static", "-pthread", "-o"])
        .arg(&st)
        .arg(common::manifest_dir().join("tests/preload/scenarios.c"))
        .status()
        .unwrap();
    assert!(built.success(), "cc -static failed (libc6-dev has libc.a)");
    let (code, err) = rtcore(&st);
    assert_eq!(code, Some(2));
    assert!(err.contains("statically linked"), "{err}");
}
