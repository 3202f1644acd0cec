//! loom models of the rtc_rwlock lock-word protocol (src/lock/rwword.rs),
//! driving the production code through the `sync` shim, and the
//! deliberately broken variants each model must catch.
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test --release --test loom_rwlock
//!
//! Each broken variant runs in a child process (this binary with
//! `--broken NAME`): loom aborts the process when it finds a deadlock. The
//! parent checks the child failed and that its output names the invariant.

#[cfg(not(loom))]
fn main() {
    println!("loom models: build with RUSTFLAGS=\"--cfg loom\" to run them (.ci/run does)");
}

#[cfg(loom)]
fn main() {
    models::main();
}

#[cfg(loom)]
#[path = "loom_support/mod.rs"]
mod loom_support;

#[cfg(loom)]
mod models {
    use super::loom_support;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
    use loom::thread;
    use rtcore::lock::rwword::{RwWord, broken};

    struct Shared {
        word: AtomicU64,
        /// Writers inside, readers inside.
        writers: AtomicUsize,
        readers: AtomicUsize,
        done: AtomicUsize,
    }

    type Read = fn(&RwWord<'_>);
    type ReadRelease = fn(&RwWord<'_>);

    fn noop() {}

    /// As the product: the fast path's one try, the full path's retries,
    /// then the blocking wait.
    fn prod_read(w: &RwWord<'_>) {
        if !w.read_uncontended() && !w.read_retrying() {
            w.read_contended(noop, noop);
        }
    }

    /// As the product's unlock fast path (the record vouches for the hold).
    fn prod_read_release(w: &RwWord<'_>) {
        match w.read_release_vouched() {
            Some(true) => w.wake_writer_or_readers(),
            Some(false) => {}
            None => panic!(
                "invariant 'exclusion' violated: a read release found a writer (or no reader) in the word"
            ),
        }
    }

    fn word_of(s: &Shared) -> RwWord<'_> {
        RwWord {
            state: &s.word,
            key: &s.word as *const AtomicU64 as usize,
        }
    }

    fn reader(s: &Shared, read: Read, release: ReadRelease) {
        let w = word_of(s);
        read(&w);
        s.readers.fetch_add(1, SeqCst);
        assert_eq!(
            s.writers.load(SeqCst),
            0,
            "invariant 'exclusion' violated: a reader is in with a writer"
        );
        s.readers.fetch_sub(1, SeqCst);
        release(&w);
        s.done.fetch_add(1, SeqCst);
    }

    fn writer(s: &Shared, me: u64) {
        let w = word_of(s);
        if !w.write_uncontended(me) {
            w.write_contended(me, noop, noop);
        }
        assert_eq!(
            s.writers.fetch_add(1, SeqCst),
            0,
            "invariant 'exclusion' violated: two writers"
        );
        assert_eq!(
            s.readers.load(SeqCst),
            0,
            "invariant 'exclusion' violated: a writer is in with a reader"
        );
        s.writers.fetch_sub(1, SeqCst);
        w.write_release(me)
            .expect("invariant 'owner-only release': the writer could not release");
        s.done.fetch_add(1, SeqCst);
    }

    /// A reader and a writer on their own threads and one more of each on
    /// the main thread: every execution keeps exclusion, finishes (no lost
    /// wake-up: loom reports a deadlock otherwise) and leaves the word clear.
    fn model(read: Read, release: ReadRelease, preemptions: usize) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(preemptions);
        b.check(move || {
            let s = Arc::new(Shared {
                word: AtomicU64::new(0),
                writers: AtomicUsize::new(0),
                readers: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
            });
            let r = {
                let s = s.clone();
                thread::spawn(move || reader(&s, read, release))
            };
            let wt = {
                let s = s.clone();
                thread::spawn(move || writer(&s, 2))
            };
            writer(&s, 1);
            reader(&s, read, release);
            r.join().unwrap();
            wt.join().unwrap();
            assert_eq!(s.done.load(SeqCst), 4, "every acquisition completed");
            // R_PARKED may be left by a reader that did not park after all
            // (see the invariants); nothing else may remain.
            assert_eq!(
                s.word.load(SeqCst) & !rtcore::lock::rwword::R_PARKED,
                0,
                "invariant 'no lost wake-up': a writer flag left set with nobody waiting"
            );
        });
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if let Some(i) = args.iter().position(|a| a == "--broken") {
            match args.get(i + 1).map(String::as_str) {
                Some("read") => model(broken::read_ignoring_writer, prod_read_release, 2),
                Some("release") => model(prod_read, broken::read_release_forgetting_writer, 2),
                other => panic!("unknown broken variant {other:?}"),
            }
            return;
        }
        let mut passed = 0;
        let mut failed = 0;
        let mut run = |name: &str, ok: bool| {
            println!("{name}: {}", if ok { "ok" } else { "FAILED" });
            if ok { passed += 1 } else { failed += 1 }
        };

        let r = std::panic::catch_unwind(|| model(prod_read, prod_read_release, 2));
        run("rwlock word keeps its invariants", r.is_ok());

        let cases: [(&str, &[&str], &str); 2] = [
            ("read", &["invariant 'exclusion' violated"], "exclusion"),
            (
                "release",
                &["deadlock", "invariant 'no lost wake-up'"],
                "no lost wake-up (writers)",
            ),
        ];
        for (variant, expect, invariant) in cases {
            let caught = loom_support::broken_caught(variant, expect);
            run(
                &format!("broken {variant} caught as a violation of '{invariant}'"),
                caught,
            );
        }
        println!("{passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
