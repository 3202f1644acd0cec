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
    use rtcore::lock::rwbias::SlotLine;
    use rtcore::lock::rwword::{R_PARKED, RBIAS, RwWord, TryRw, broken};

    struct Shared {
        word: AtomicU64,
        /// A table of biased holds of two lines (the product's has 64).
        slots: Vec<SlotLine>,
        bias_after: AtomicU64,
        /// Writers inside, readers inside.
        writers: AtomicUsize,
        readers: AtomicUsize,
        done: AtomicUsize,
    }

    /// A read acquire by thread `me`: true if the hold is biased.
    type Read = fn(&RwWord<'_>, u64) -> bool;
    type ReadRelease = fn(&RwWord<'_>, u64, bool);
    type TryWrite = fn(&RwWord<'_>, u64) -> TryRw;

    fn prod_try_write(w: &RwWord<'_>, me: u64) -> TryRw {
        w.try_write(me)
    }

    fn noop() {}

    /// As the product: a biased hold if the word allows one, else the
    /// fast path's one try, the full path's retries, then the blocking
    /// wait.
    fn prod_read(w: &RwWord<'_>, me: u64) -> bool {
        if RwWord::biased_may_enter(w.load()) && w.read_biased(me) {
            return true;
        }
        if !w.read_uncontended() && !w.read_retrying() {
            w.read_contended(noop, noop);
        }
        false
    }

    /// As the product's unlock fast path (the record vouches for the hold
    /// and says whether it is biased).
    fn prod_read_release(w: &RwWord<'_>, me: u64, biased: bool) {
        if biased {
            w.read_release_biased(me);
            return;
        }
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
            // A fixed key: the slot a reader takes depends on it, and
            // loom needs every execution of the model to be deterministic
            // (the word's address varies from one to the next).
            key: 0x1000,
            slots: &s.slots,
            bias_after: &s.bias_after,
        }
    }

    fn reader(s: &Shared, me: u64, read: Read, release: ReadRelease) {
        let w = word_of(s);
        let biased = read(&w, me);
        s.readers.fetch_add(1, SeqCst);
        assert_eq!(
            s.writers.load(SeqCst),
            0,
            "invariant 'exclusion' violated: a reader is in with a writer"
        );
        s.readers.fetch_sub(1, SeqCst);
        release(&w, me, biased);
        s.done.fetch_add(1, SeqCst);
    }

    fn writer(s: &Shared, me: u64) {
        let w = word_of(s);
        if !w.write_uncontended(me) {
            w.write_contended(me, noop, noop);
        }
        alone_then_release(s, &w, me);
        s.done.fetch_add(1, SeqCst);
    }

    /// A writer's turn: no other writer and no reader in; then release.
    fn alone_then_release(s: &Shared, w: &RwWord<'_>, me: u64) {
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
    }

    /// A try-write: if it takes the lock, it must be alone.
    fn try_writer(s: &Shared, me: u64, try_write: TryWrite) {
        let w = word_of(s);
        if try_write(&w, me) == TryRw::Acquired {
            alone_then_release(s, &w, me);
        }
    }

    /// A model's shared state from `word`, and a reader (id 3) started on
    /// a thread of its own.
    fn start(word: u64, read: Read, release: ReadRelease) -> (Arc<Shared>, thread::JoinHandle<()>) {
        let s = Arc::new(Shared {
            word: AtomicU64::new(word),
            slots: vec![SlotLine::new(), SlotLine::new()],
            bias_after: AtomicU64::new(0),
            writers: AtomicUsize::new(0),
            readers: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        });
        let r = {
            let s = s.clone();
            thread::spawn(move || reader(&s, 3, read, release))
        };
        (s, r)
    }

    /// Readers biased from the start against a try-write (which, finding
    /// them in, must give the lock back with the bias restored) and a
    /// blocking writer after it: exclusion, and no reader left behind.
    fn try_write_model(try_write: TryWrite) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(move || {
            let (s, r) = start(RBIAS, prod_read, prod_read_release);
            try_writer(&s, 1, try_write);
            writer(&s, 2);
            r.join().unwrap();
            assert_eq!(
                s.done.load(SeqCst),
                2,
                "every blocking acquisition completed"
            );
            assert_eq!(
                s.word.load(SeqCst) & !(R_PARKED | RBIAS),
                0,
                "invariant 'no lost wake-up': a writer flag left set with nobody waiting"
            );
        });
    }

    /// A reader and a writer on their own threads and one more of each on
    /// the main thread: every execution keeps exclusion, finishes (no lost
    /// wake-up: loom reports a deadlock otherwise) and leaves the word clear.
    /// `word` is the word to start from: 0, or RBIAS (readers biased from
    /// the start; from 0 they turn bias on when two of them meet). The
    /// readers' ids are 3 and `second_reader`.
    fn model(read: Read, release: ReadRelease, word: u64, second_reader: u64) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(move || {
            let (s, r) = start(word, read, release);
            let wt = {
                let s = s.clone();
                thread::spawn(move || writer(&s, 2))
            };
            writer(&s, 1);
            reader(&s, second_reader, read, release);
            r.join().unwrap();
            wt.join().unwrap();
            assert_eq!(s.done.load(SeqCst), 4, "every acquisition completed");
            // R_PARKED may be left by a reader that did not park after all
            // (see the invariants); nothing else may remain.
            assert_eq!(
                s.word.load(SeqCst) & !(R_PARKED | RBIAS),
                0,
                "invariant 'no lost wake-up': a writer flag left set with nobody waiting"
            );
            let w = word_of(&s);
            for me in [3, 4] {
                assert_eq!(
                    rtcore::lock::rwbias::slot(w.slots, me, w.key).load(SeqCst),
                    0,
                    "a biased hold left in the table"
                );
            }
        });
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if let Some(i) = args.iter().position(|a| a == "--broken") {
            match args.get(i + 1).map(String::as_str) {
                Some("read") => model(broken::read_ignoring_writer, prod_read_release, 0, 4),
                Some("release") => model(prod_read, broken::read_release_forgetting_writer, 0, 4),
                Some("bias") => model(broken::read_biased_unchecked, prod_read_release, RBIAS, 4),
                Some("try-write") => try_write_model(broken::try_write_dropping_bias),
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

        let r = std::panic::catch_unwind(|| model(prod_read, prod_read_release, 0, 4));
        run("rwlock word keeps its invariants", r.is_ok());
        let r = std::panic::catch_unwind(|| model(prod_read, prod_read_release, RBIAS, 4));
        run(
            "rwlock word keeps its invariants with readers biased from the start",
            r.is_ok(),
        );
        // Reader ids 3 and 5 map to one slot of the two-line table: the
        // second to publish finds it taken and counts itself in the word.
        let r = std::panic::catch_unwind(|| model(prod_read, prod_read_release, RBIAS, 5));
        run(
            "rwlock word keeps its invariants with two biased readers on one slot",
            r.is_ok(),
        );

        let r = std::panic::catch_unwind(|| try_write_model(prod_try_write));
        run(
            "try-write against biased readers keeps exclusion and the bias",
            r.is_ok(),
        );

        let cases: [(&str, &[&str], &str); 4] = [
            ("bias", &["invariant 'exclusion' violated"], "bias"),
            ("try-write", &["invariant 'exclusion' violated"], "bias"),
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
