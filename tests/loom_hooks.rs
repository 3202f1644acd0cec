//! loom model of the hook run/remove protocol (src/sysmon/hook_protocol.rs):
//! the hook thread runs a hook (find it due, then `begin_run` in a second
//! lock section, as production does), while a remover calls `remove` and
//! `wait_run_over`; and a hook that removes itself. Driving the production
//! functions through the `sync` shim; each broken variant must be caught
//! with the invariant's name (in a child process, as in loom_mutex.rs).
//!
//! Invariant 'removed means stopped': once `remove` has returned, the hook
//! is not running and never runs again.
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test --release --test loom_hooks

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
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use loom::sync::{Arc, Mutex};
    use loom::thread;
    use rtcore::sysmon::hook_protocol::{
        self, HookEntry, Removal, RunState, broken, end_run, wait_run_over, wake_removers,
    };

    const ID: u64 = 5;

    struct Entry {
        id: u64,
        remove_after_run: bool,
    }

    impl HookEntry for Entry {
        fn id(&self) -> u64 {
            self.id
        }
        fn remove_after_run(&mut self) -> &mut bool {
            &mut self.remove_after_run
        }
    }

    type BeginFn = fn(&[Entry], &RunState, u64) -> bool;
    type RemoveFn = fn(&mut Vec<Entry>, &RunState, u64, bool, bool) -> Removal;

    struct M {
        reg: Mutex<Vec<Entry>>,
        st: RunState,
        /// Set when `remove` has returned to the remover.
        removed: AtomicBool,
        /// Runs made (the hook body).
        runs: AtomicUsize,
    }

    fn new_model() -> Arc<M> {
        Arc::new(M {
            reg: Mutex::new(vec![Entry {
                id: ID,
                remove_after_run: false,
            }]),
            st: RunState::new(),
            removed: AtomicBool::new(false),
            runs: AtomicUsize::new(0),
        })
    }

    fn violated(what: &str) -> ! {
        panic!("invariant 'removed means stopped' violated: {what}");
    }

    /// The hook body: it must never run once `remove` has returned.
    fn body(m: &M) {
        if m.removed.load(SeqCst) {
            violated("the hook started after remove returned");
        }
        m.runs.fetch_add(1, SeqCst);
        thread::yield_now();
        if m.removed.load(SeqCst) {
            violated("the hook was still running when remove returned");
        }
    }

    /// One attempt of the hook thread: find the hook due (one lock section),
    /// then begin the run in another (production re-finds it there), run,
    /// and end the run.
    fn hook_thread_once(m: &M, begin: BeginFn, self_remove: Option<RemoveFn>) {
        let due = m.reg.lock().unwrap().iter().any(|e| e.id == ID);
        if !due {
            return;
        }
        let began = {
            let r = m.reg.lock().unwrap();
            begin(&r, &m.st, ID)
        };
        if !began {
            return;
        }
        body(m);
        if let Some(remove) = self_remove {
            let mut r = m.reg.lock().unwrap();
            let d = remove(&mut r, &m.st, ID, true, false);
            assert_eq!(d, Removal::Deferred, "a hook removing itself is deferred");
        }
        {
            let mut r = m.reg.lock().unwrap();
            end_run(&mut r, &m.st, ID);
        }
        wake_removers(&m.st);
    }

    fn remover(m: &M, remove: RemoveFn) {
        let d = {
            let mut r = m.reg.lock().unwrap();
            remove(&mut r, &m.st, ID, false, false)
        };
        match d {
            Removal::MustWait => wait_run_over(&m.st, ID),
            Removal::Removed => {}
            other => panic!("unexpected removal outcome {other:?}"),
        }
        m.removed.store(true, SeqCst);
    }

    /// A remover races the hook thread's two attempts.
    fn race_model(begin: BeginFn, remove: RemoveFn) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let m = new_model();
            let h = {
                let m = m.clone();
                thread::spawn(move || {
                    hook_thread_once(&m, begin, None);
                    hook_thread_once(&m, begin, None);
                })
            };
            remover(&m, remove);
            h.join().unwrap();
            assert!(m.reg.lock().unwrap().is_empty(), "the hook is gone");
            assert_eq!(m.st.running.load(SeqCst), 0);
        });
    }

    /// The hook removes itself in its first run: there is no second run,
    /// and a concurrent remover finds it gone or removes it first.
    fn self_removal_model() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let m = new_model();
            let h = {
                let m = m.clone();
                thread::spawn(move || {
                    hook_thread_once(&m, hook_protocol::begin_run, Some(hook_protocol::remove));
                    hook_thread_once(&m, hook_protocol::begin_run, None);
                })
            };
            h.join().unwrap();
            assert_eq!(m.runs.load(SeqCst), 1, "one run, then removed by itself");
            assert!(m.reg.lock().unwrap().is_empty());
            let mut r = m.reg.lock().unwrap();
            assert_eq!(
                hook_protocol::remove(&mut r, &m.st, ID, false, false),
                Removal::NotFound
            );
        });
    }

    fn run(name: &str, ok: bool) {
        println!("{name}: {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            std::process::exit(1);
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if let Some(i) = args.iter().position(|a| a == "--broken") {
            match args.get(i + 1).map(String::as_str) {
                Some("remove-without-waiting") => {
                    race_model(hook_protocol::begin_run, broken::remove_without_waiting)
                }
                Some("begin-run-unchecked") => {
                    race_model(broken::begin_run_unchecked, hook_protocol::remove)
                }
                other => panic!("unknown broken variant {other:?}"),
            }
            return;
        }
        race_model(hook_protocol::begin_run, hook_protocol::remove);
        run("remove races the hook thread", true);
        self_removal_model();
        run("a hook removes itself", true);
        let mut failed = 0;
        for variant in ["remove-without-waiting", "begin-run-unchecked"] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--broken", variant])
                .output()
                .expect("run the model child");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let caught = !out.status.success()
                && text.contains("invariant 'removed means stopped' violated");
            if !caught {
                eprintln!("broken variant '{variant}' not caught; output:\n{text}");
                failed += 1;
            }
            println!(
                "broken {variant} caught as a violation of 'removed means stopped': {}",
                if caught { "ok" } else { "FAILED" }
            );
        }
        println!("{} passed, {failed} failed", 4 - failed);
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
