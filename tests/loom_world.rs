//! loom models of the world's handshake (src/world/handshake.rs): the
//! blocking-exit fast path against a stop, a safepoint against a stop, and
//! the blocking-exit fast path against sysmon's retake (one region, and a
//! second region entered after resuming from the first), driving the
//! production functions through the `sync` shim; each broken
//! variant must be caught with the invariant's name (in a child process, as
//! in tests/loom_mutex.rs).
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test --release --test loom_world

#[cfg(not(loom))]
fn main() {
    println!("loom models: build with RUSTFLAGS=\"--cfg loom\" to run them (.ci/run does)");
}

#[cfg(loom)]
fn main() {
    models::main();
}

#[cfg(loom)]
mod models {
    use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;
    use rtcore::world::handshake::{
        self, Claim, Exit, P_IDLE, P_RUNNING, P_STOPPED, P_SYSCALL, broken, pstate, pword,
    };

    const W: u64 = 7; // the worker's id
    const OTHER: u64 = 9; // the waiting thread sysmon hands a retaken P to

    /// A counter threads wait on to change (the stopper's epoch and the
    /// restart), blocking rather than spinning so loom's search stays finite.
    struct Event {
        n: Mutex<u64>,
        cv: Condvar,
    }

    impl Event {
        fn new() -> Event {
            Event {
                n: Mutex::new(0),
                cv: Condvar::new(),
            }
        }
        fn get(&self) -> u64 {
            *self.n.lock().unwrap()
        }
        fn bump(&self) {
            *self.n.lock().unwrap() += 1;
            self.cv.notify_all();
        }
        fn wait_change(&self, seen: u64) {
            let mut g = self.n.lock().unwrap();
            while *g == seen {
                g = self.cv.wait(g).unwrap();
            }
        }
    }

    struct M {
        p: AtomicU64,
        stop: AtomicBool,
        world_stopped: AtomicBool,
        /// Bumped when the worker parks or enters a region during a stop.
        epoch: Event,
        /// Bumped once, at the restart.
        restart: Event,
    }

    type EnterFn = fn(&AtomicU64, u64, &AtomicBool) -> bool;
    type ClaimFn = fn(&AtomicU64) -> Claim;
    type RetakeFn = fn(&AtomicU64, u64) -> bool;

    fn new_model() -> Arc<M> {
        Arc::new(M {
            p: AtomicU64::new(pword(P_RUNNING, W)),
            stop: AtomicBool::new(false),
            world_stopped: AtomicBool::new(false),
            epoch: Event::new(),
            restart: Event::new(),
        })
    }

    fn wait_restart(m: &M) {
        m.restart.wait_change(0);
    }

    /// The worker detaches at the end: its P goes idle and a waiting
    /// stopper is woken (World::release_p does both under `sched`).
    fn detach(m: &M) {
        let w = m.p.load(SeqCst);
        assert_eq!(
            w,
            pword(P_RUNNING, W),
            "invariant 'one winner' violated: the worker's P changed hands while it held it"
        );
        m.p.store(pword(P_IDLE, 0), SeqCst);
        m.epoch.bump();
    }

    fn user_code(m: &M) {
        assert!(
            !m.world_stopped.load(SeqCst),
            "invariant 'stop' violated: a thread ran while the world was stopped"
        );
    }

    fn stopper(m: &M, claim: ClaimFn) {
        handshake::StopFlag::announce(&m.stop);
        loop {
            let seen = m.epoch.get();
            match claim(&m.p) {
                Claim::Stopped | Claim::Stolen(_) => break,
                // Sleep until the owner parks or enters a blocking region.
                Claim::Running(_) => m.epoch.wait_change(seen),
            }
        }
        m.world_stopped.store(true, SeqCst);
        m.world_stopped.store(false, SeqCst);
        // Restart: the parked owner gets its P back; a claimed P goes idle.
        m.stop.store(false, SeqCst);
        let w = m.p.load(SeqCst);
        if w == pword(P_STOPPED, W) {
            m.p.store(pword(P_RUNNING, W), SeqCst);
        } else if pstate(w) == P_STOPPED {
            m.p.store(pword(P_IDLE, 0), SeqCst);
        }
        m.restart.bump();
    }

    /// A worker enters a blocking region and leaves it while a stop happens.
    fn blocking_exit_model(enter: EnterFn, claim: ClaimFn) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let m = new_model();
            let w = {
                let m = m.clone();
                thread::spawn(move || {
                    if enter(&m.p, W, &m.stop) {
                        m.epoch.bump(); // wake the stopper to claim the P
                    }
                    match handshake::exit_fast(&m.p, W, &m.stop) {
                        Exit::Resumed { stop_pending } => {
                            assert_eq!(
                                m.p.load(SeqCst),
                                pword(P_RUNNING, W),
                                "invariant 'one winner' violated: the P was claimed after its owner took it back"
                            );
                            if stop_pending {
                                handshake::stop_at_safepoint(&m.p, W);
                                m.epoch.bump();
                                wait_restart(&m);
                            }
                        }
                        Exit::Claimed => {
                            wait_restart(&m);
                            // After the restart the claimed P is idle: take it.
                            assert!(
                                m.p.compare_exchange(pword(P_IDLE, 0), pword(P_RUNNING, W), SeqCst, SeqCst)
                                    .is_ok(),
                                "the claimed P was not idle after the restart"
                            );
                        }
                    }
                    user_code(&m);
                    detach(&m);
                })
            };
            stopper(&m, claim);
            w.join().unwrap();
        });
    }

    /// A worker stays inside its blocking region (a long read) until the
    /// world restarts: the stop must complete without it, so a stopper that
    /// saw its P RUNNING must be woken when it enters the region.
    fn long_region_model(enter: EnterFn) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let m = new_model();
            let w = {
                let m = m.clone();
                thread::spawn(move || {
                    if enter(&m.p, W, &m.stop) {
                        m.epoch.bump();
                    }
                    wait_restart(&m); // the read returns after the restart
                    match handshake::exit_fast(&m.p, W, &m.stop) {
                        Exit::Resumed { .. } => {}
                        Exit::Claimed => {
                            assert!(
                                m.p.compare_exchange(
                                    pword(P_IDLE, 0),
                                    pword(P_RUNNING, W),
                                    SeqCst,
                                    SeqCst
                                )
                                .is_ok(),
                                "the claimed P was not idle after the restart"
                            );
                        }
                    }
                    user_code(&m);
                    detach(&m);
                })
            };
            stopper(&m, handshake::claim);
            w.join().unwrap();
        });
    }

    /// A running worker reaches a safepoint while a stop happens.
    fn safepoint_model(claim: ClaimFn) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let m = new_model();
            let w = {
                let m = m.clone();
                thread::spawn(move || {
                    for _ in 0..2 {
                        user_code(&m);
                        // The safepoint check of Worlds::safepoint_rec.
                        if m.stop.load(SeqCst) {
                            handshake::stop_at_safepoint(&m.p, W);
                            m.epoch.bump();
                            wait_restart(&m);
                        }
                    }
                    detach(&m);
                })
            };
            stopper(&m, claim);
            w.join().unwrap();
        });
    }

    /// Set (outside loom, across the whole search) when an execution of
    /// `retake_model` retook the P in the worker's second region with the
    /// word sysmon observed in its first: the P word is ABA-prone.
    static RETAKE_ABA_REACHED: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    struct R {
        p: AtomicU64,
        /// Never set: no stop in this model (the handshake wants a flag).
        stop: AtomicBool,
        /// The worker's safepoint count (`ThreadRec::safepoints`), bumped by
        /// the safepoint at the entry of each blocking region.
        safepoints: AtomicU64,
    }

    /// sysmon's retake of a SYSCALL P against its owner's `exit_fast`.
    ///
    /// The worker enters a blocking region and leaves it by the fast path;
    /// with `regions == 2`, having resumed, it enters a second region and
    /// leaves it again. A worker whose P was retaken takes the slow path
    /// (`acquire_p` under `sched`, outside this model) and never touches
    /// the P again. sysmon observes the P twice as monitor.rs does (word and
    /// owner's safepoints folded into one value), and retakes with the last
    /// word seen only if the two values agree; a successful retake is
    /// followed by `World::hand_off`'s grant to a waiting thread OTHER
    /// (RUNNING(OTHER)), which then runs on it.
    ///
    /// Checked, per execution: the owner never runs on a P that was retaken
    /// (nor OTHER on one its old owner took back); sysmon retook exactly when
    /// the owner's `exit_fast` reported `Claimed` (one winner per region);
    /// the P word ends RUNNING(OTHER) after a retake, RUNNING(owner) if not.
    ///
    /// ABA: the P word alone does not tell the two regions apart (both are
    /// SYSCALL(owner)), so a word observed in the first region can retake
    /// the P in the second; `retake_model(_, 2)` asserts that the search
    /// reaches this. The safepoint count folded into sysmon's observation
    /// only restarts the policy's clock when it sees a new region (so that
    /// a region is not retaken for the time spent in an earlier one); it
    /// cannot close the window between the observation and the
    /// compare-and-swap, and neither can the `sched` lock that
    /// `World::observe` and `World::retake` take, since the owner's fast
    /// exit and entry do not take it. Nothing needs to close it: a retake
    /// is correct at any moment of any region in which the word is still
    /// SYSCALL(owner), because it is one compare-and-swap against the
    /// owner's one compare-and-swap, and the owner that loses simply takes
    /// the slow path; the model checks that the invariants above hold in
    /// the ABA executions too. What is lost is only the policy's precision
    /// (the second region may be retaken before it has been in SYSCALL for
    /// a tick), as with Go's `retake`, whose CAS on the P status is just
    /// as ABA-prone.
    fn retake_model(retake: RetakeFn, regions: u64) {
        let mut b = loom::model::Builder::new();
        // The ABA execution needs four preemptions: into the worker's first
        // region, back to sysmon to observe it twice, into the worker's
        // second region, back to sysmon to retake before the worker leaves.
        b.preemption_bound = Some(4);
        b.check(move || {
            let m = Arc::new(R {
                p: AtomicU64::new(pword(P_RUNNING, W)),
                stop: AtomicBool::new(false),
                safepoints: AtomicU64::new(0),
            });
            let w = {
                let m = m.clone();
                thread::spawn(move || {
                    // The region (1-based) whose exit found the P retaken.
                    let mut claimed = None;
                    for region in 1..=regions {
                        // World::enter_blocking: a safepoint, then the word.
                        m.safepoints.fetch_add(1, SeqCst);
                        handshake::enter_syscall(&m.p, W, &m.stop);
                        match handshake::exit_fast(&m.p, W, &m.stop) {
                            Exit::Resumed { .. } => {
                                // User code on its P.
                                assert_eq!(
                                    m.p.load(SeqCst),
                                    pword(P_RUNNING, W),
                                    "invariant 'one winner' violated: the owner resumed on a P sysmon retook"
                                );
                            }
                            Exit::Claimed => {
                                claimed = Some(region);
                                break;
                            }
                        }
                    }
                    claimed
                })
            };
            // sysmon: two ticks' observations (World::observe), folded as
            // monitor.rs folds them.
            let observe = || {
                let word = m.p.load(SeqCst);
                let sp = m.safepoints.load(SeqCst);
                (word, sp, word ^ sp.rotate_left(32))
            };
            let (_, _, v1) = observe();
            let (seen, seen_sp, v2) = observe();
            let retook = pstate(seen) == P_SYSCALL && v1 == v2 && retake(&m.p, seen);
            if retook {
                // World::hand_off: the P goes to the waiting thread, which runs.
                m.p.store(pword(P_RUNNING, OTHER), SeqCst);
                assert_eq!(
                    m.p.load(SeqCst),
                    pword(P_RUNNING, OTHER),
                    "invariant 'one winner' violated: the owner took back a P sysmon handed on"
                );
            }
            let claimed = w.join().unwrap();
            if retook {
                assert!(
                    claimed.is_some(),
                    "invariant 'one winner' violated: sysmon retook a P whose owner resumed on it"
                );
            } else {
                assert!(
                    claimed.is_none(),
                    "invariant 'one winner' violated: the owner found its P retaken but sysmon did not retake it"
                );
            }
            let end = m.p.load(SeqCst);
            let expect = if retook {
                pword(P_RUNNING, OTHER)
            } else {
                pword(P_RUNNING, W)
            };
            assert_eq!(end, expect, "the P word ends inconsistent");
            if claimed.is_some_and(|r| r > seen_sp) {
                RETAKE_ABA_REACHED.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        if regions > 1 {
            assert!(
                RETAKE_ABA_REACHED.load(std::sync::atomic::Ordering::SeqCst),
                "the search never retook a second region with a word seen in the first"
            );
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if let Some(i) = args.iter().position(|a| a == "--broken") {
            match args.get(i + 1).map(String::as_str) {
                Some("enter-silent") => long_region_model(broken::enter_syscall_silent),
                Some("claim-by-store") => {
                    blocking_exit_model(handshake::enter_syscall, broken::claim_by_store)
                }
                Some("claim-not-waiting") => safepoint_model(broken::claim_not_waiting),
                Some("retake-by-store") => retake_model(broken::retake_by_store, 2),
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
        let r = std::panic::catch_unwind(|| {
            blocking_exit_model(handshake::enter_syscall, handshake::claim)
        });
        run(
            "blocking-exit fast path against a stop keeps 'stop' and 'one winner'",
            r.is_ok(),
        );
        let r = std::panic::catch_unwind(|| long_region_model(handshake::enter_syscall));
        run(
            "a stop completes while a thread stays in a blocking region (Dekker pair)",
            r.is_ok(),
        );
        let r = std::panic::catch_unwind(|| safepoint_model(handshake::claim));
        run("safepoint against a stop keeps 'stop'", r.is_ok());
        let r = std::panic::catch_unwind(|| retake_model(handshake::retake, 1));
        run(
            "blocking-exit fast path against sysmon's retake keeps 'one winner'",
            r.is_ok(),
        );
        let r = std::panic::catch_unwind(|| retake_model(handshake::retake, 2));
        run(
            "a retake with a word seen in an earlier region (ABA) keeps 'one winner'",
            r.is_ok(),
        );

        // Each broken variant with what the model may report first: a
        // stopper that does not wait shows either as a thread running during
        // the stop or as that thread finding its P taken.
        let cases: [(&str, &[&str], &str); 4] = [
            (
                "enter-silent",
                &["deadlock"],
                "Dekker pair: the stopper is never woken",
            ),
            (
                "claim-by-store",
                &["invariant 'one winner' violated"],
                "one winner",
            ),
            (
                "claim-not-waiting",
                &[
                    "invariant 'stop' violated",
                    "invariant 'one winner' violated",
                ],
                "stop",
            ),
            (
                "retake-by-store",
                &["invariant 'one winner' violated"],
                "one winner",
            ),
        ];
        for (variant, expect, invariant) in cases {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--broken", variant])
                .output()
                .expect("run the model child");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let hit = expect.iter().find(|e| text.contains(*e));
            let caught = !out.status.success() && hit.is_some();
            if !caught {
                eprintln!("broken variant '{variant}' not caught; output:\n{text}");
            }
            run(
                &format!(
                    "broken {variant} caught as a violation of '{invariant}' ({})",
                    hit.unwrap_or(&"-")
                ),
                caught,
            );
        }
        println!("{passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
