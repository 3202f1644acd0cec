//! loom models of the rtc_mutex lock-word protocol (src/lock/word.rs) and
//! of the table that finds a thread's held record (src/lock/slots.rs),
//! driving the production code through the `sync` shim, and the
//! deliberately broken variants each model must catch.
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test --release --test loom_mutex
//!
//! Each broken variant runs in a child process (this binary with
//! `--broken NAME`): loom aborts the process when it finds a deadlock, so it
//! cannot be caught in-process. The parent checks the child failed and that
//! its output names the invariant.

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
    use rtcore::lock::slots::{Slot, broken as slots_broken};
    use rtcore::lock::word::{LockWord, broken};

    struct Shared {
        word: AtomicU64,
        inside: AtomicUsize,
        entries: AtomicUsize,
    }

    type Acquire = fn(&LockWord<'_>, u64);
    type Release = fn(&LockWord<'_>, u64);

    fn noop() {}

    fn prod_acquire(w: &LockWord<'_>, me: u64) {
        if !w.acquire_uncontended(me) {
            w.acquire_contended(me, noop, noop);
        }
    }

    /// Thread 2 takes the lock by try-lock (retrying), which may take a
    /// word reserved by thread 1.
    fn try_acquire_spinning(w: &LockWord<'_>, me: u64) {
        if me == 1 {
            return prod_acquire(w, me);
        }
        while w.try_acquire(me) != rtcore::lock::word::Try::Acquired {
            loom::thread::yield_now();
        }
    }

    fn prod_release(w: &LockWord<'_>, me: u64) {
        w.release(me)
            .expect("invariant 'owner-only release': the owner could not release");
    }

    fn word_of(s: &Shared) -> LockWord<'_> {
        LockWord {
            state: &s.word,
            key: &s.word as *const AtomicU64 as usize,
        }
    }

    fn critical(s: &Shared, me: u64, acquire: Acquire, release: Release) {
        let w = word_of(s);
        acquire(&w, me);
        if s.inside.fetch_add(1, SeqCst) != 0 {
            panic!("invariant 'mutual exclusion' violated: two threads hold the word");
        }
        s.entries.fetch_add(1, SeqCst);
        s.inside.fetch_sub(1, SeqCst);
        release(&w, me);
    }

    /// Two threads contend, each taking the lock twice; every execution must
    /// keep mutual exclusion, finish (no lost wake-up: loom reports a deadlock
    /// otherwise), and leave the word clear.
    fn model(acquire: Acquire, release: Release) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let s = Arc::new(Shared {
                word: AtomicU64::new(0),
                inside: AtomicUsize::new(0),
                entries: AtomicUsize::new(0),
            });
            let other = {
                let s = s.clone();
                thread::spawn(move || {
                    for _ in 0..2 {
                        critical(&s, 2, acquire, release);
                    }
                })
            };
            for _ in 0..2 {
                critical(&s, 1, acquire, release);
            }
            other.join().unwrap();
            assert_eq!(s.entries.load(SeqCst), 4, "every acquisition completed");
            assert_eq!(
                s.word.load(SeqCst),
                0,
                "invariant 'no lost wake-up': PARKED left set with nobody waiting"
            );
        });
    }

    // The record table (src/lock/slots.rs). Thread pointers and records
    // are plain numbers here: thread A (pointer 16, record 100, id 1)
    // claims, looks itself up and ends (frees its slot); thread C (pointer
    // 32, record 300, id 3) shares the slot (a hash collision) and claims
    // and looks up concurrently; after A is joined, thread B gets A's
    // pointer (glibc reuses TCBs: record 200, id 2) and looks up before and
    // after its own claim. Every lookup may only return what the thread
    // with that pointer stored itself.
    type Claim = fn(&Slot, u64, u64, u64) -> bool;
    type Free = fn(&Slot, u64);

    fn prod_claim(s: &Slot, tp: u64, rec: u64, me: u64) -> bool {
        s.claim(tp, rec, me)
    }

    fn prod_free(s: &Slot, tp: u64) {
        s.release(tp)
    }

    /// One thread's life on the slot: look up (nothing of its own yet),
    /// claim, look up (its own entry, if the claim won), end.
    fn slot_life(s: &Slot, tp: u64, rec: u64, me: u64, claim: Claim, free: Free) {
        if let Some(got) = s.lookup(tp) {
            panic!(
                "invariant 'freed before reuse' violated: thread {me} found {got:?} before it claimed"
            );
        }
        let won = claim(s, tp, rec, me);
        match s.lookup(tp) {
            Some(got) if got != (me, rec) => panic!(
                "invariant 'own entries only' violated: thread {me} found {got:?}, not its own"
            ),
            Some(_) if !won => panic!(
                "invariant 'own entries only' violated: thread {me} lost the claim but found an entry"
            ),
            None if won => panic!(
                "invariant 'own entries only' violated: thread {me} claimed, but another thread took its slot"
            ),
            _ => {}
        }
        free(s, tp);
    }

    fn slot_model(claim: Claim, free: Free) {
        loom::model(move || {
            let s = Arc::new(Slot::new());
            let c = {
                let s = s.clone();
                thread::spawn(move || slot_life(&s, 32, 300, 3, claim, free))
            };
            let a = {
                let s = s.clone();
                thread::spawn(move || slot_life(&s, 16, 100, 1, claim, free))
            };
            a.join().unwrap();
            // A has ended: B may be given its thread pointer.
            let b = {
                let s = s.clone();
                thread::spawn(move || slot_life(&s, 16, 200, 2, claim, free))
            };
            b.join().unwrap();
            c.join().unwrap();
        });
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if let Some(i) = args.iter().position(|a| a == "--broken") {
            match args.get(i + 1).map(String::as_str) {
                Some("acquire") => model(broken::acquire_check_then_store, prod_release),
                Some("release") => model(prod_acquire, broken::release_forgetting_waiters),
                Some("reserver") => model(prod_acquire, broken::release_ignoring_reserver),
                Some("slot-claim") => slot_model(slots_broken::claim_check_then_store, prod_free),
                Some("slot-free") => slot_model(prod_claim, slots_broken::release_forgetting),
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

        // The production protocol keeps every invariant in every execution,
        // with patient waiters (the plain park path) and impatient ones (the
        // reservation), and a try-lock that may take a reserved word.
        use rtcore::lock::word::{IMPATIENT, PLAIN_PARKS};
        use std::sync::atomic::Ordering::Relaxed;
        IMPATIENT.store(false, Relaxed);
        let r = std::panic::catch_unwind(|| model(prod_acquire, prod_release));
        run(
            "lock word keeps its invariants (patient waiters)",
            r.is_ok(),
        );
        let plain = PLAIN_PARKS.load(Relaxed);
        println!("  executions parked on the plain path {plain} times");
        run("the patient model reaches the plain park path", plain > 0);
        IMPATIENT.store(true, Relaxed);
        let r = std::panic::catch_unwind(|| model(prod_acquire, prod_release));
        run(
            "lock word keeps its invariants (impatient waiters)",
            r.is_ok(),
        );
        let r = std::panic::catch_unwind(|| model(try_acquire_spinning, prod_release));
        run(
            "lock word keeps its invariants (one side try-locks)",
            r.is_ok(),
        );
        // Under loom a waiter woken and beaten once reserves the lock, so the
        // fairness path (reserve, newcomers park behind, the unlock wakes the
        // reserver) is among the executions checked above.
        let reserved = rtcore::lock::word::RESERVATIONS.load(std::sync::atomic::Ordering::Relaxed);
        println!("  executions reached the reservation {reserved} times");
        run("the model reaches the fairness path", reserved > 0);

        let r = std::panic::catch_unwind(|| slot_model(prod_claim, prod_free));
        run("record table keeps its invariants", r.is_ok());

        // Each broken variant is caught, naming the invariant it breaks.
        // A check-then-store acquire lets two threads in; loom's first failing
        // execution shows it either as two holders or as the first holder's
        // release failing because the second overwrote the word.
        let cases: [(&str, &[&str], &str); 5] = [
            (
                "acquire",
                &[
                    "invariant 'mutual exclusion' violated",
                    "invariant 'owner-only release'",
                ],
                "mutual exclusion",
            ),
            ("release", &["deadlock"], "no lost wake-up"),
            ("reserver", &["deadlock"], "eventual fairness"),
            (
                "slot-claim",
                &["invariant 'own entries only' violated"],
                "own entries only",
            ),
            (
                "slot-free",
                &["invariant 'freed before reuse' violated"],
                "freed before reuse",
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
