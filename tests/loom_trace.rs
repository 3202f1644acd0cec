//! loom model of the tracer's gate protocol (src/record/gate.rs): a trace
//! start (publish a generation, then write each listed thread's status
//! inside its gate) races a thread that changes state outside the stop's
//! protection (a wake-up: WAITING -> RUNNABLE) or attaches. Drives the
//! production section functions through the `sync` shim; each broken
//! variant must be caught, with the invariant's name, in a child process
//! (as in loom_mutex.rs).
//!
//! A third model races a rollover (a new generation without stopping the
//! world: publish it not ready, one pass over the gates, read the world
//! for its header, make it ready) against a state-changing section that
//! waits for a generation to be ready (`gate::emitter_ready`); its broken
//! variant does not wait.
//!
//! Invariant 'status and events agree': in the new generation, the
//! thread's stream either begins with a status that already shows the
//! change and holds no event for it, or begins with a status from before
//! the change followed by the change's event; a thread attached at the end
//! has a status or an attach event.
//!
//! Run: RUSTFLAGS="--cfg loom" cargo test --release --test loom_trace

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
    use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
    use loom::sync::{Arc, Mutex};
    use loom::thread;
    use rtcore::record::gate::{self, Gate, broken};

    const WAITING: u32 = 4;
    const RUNNABLE: u32 = 2;
    const GEN: u64 = 1;

    /// What the thread's stream of generation GEN holds.
    #[derive(Clone, Debug, PartialEq)]
    enum Ev {
        Status(u32),
        Unblock,
        Attach,
    }

    struct M {
        gate: Gate,
        current: AtomicU64,
        state: AtomicU32,
        /// Is the thread in the tracer's list?
        listed: Mutex<bool>,
        /// The thread's buffer for generation GEN (the gate's holder
        /// writes it; the mutex only satisfies Rust).
        stream: Mutex<Vec<Ev>>,
    }

    fn new_model(state: u32, listed: bool) -> Arc<M> {
        Arc::new(M {
            gate: Gate::new(),
            current: AtomicU64::new(0),
            state: AtomicU32::new(state),
            listed: Mutex::new(listed),
            stream: Mutex::new(Vec::new()),
        })
    }

    fn violated(what: &str, stream: &[Ev]) -> ! {
        panic!("invariant 'status and events agree' violated: {what}: {stream:?}");
    }

    /// The tracer's start: publish, then each listed thread's status in
    /// its gate (unless the thread wrote it itself).
    fn tracer(m: &M, section: TracerFn) {
        gate::publish(&m.current, GEN);
        let listed = *m.listed.lock().unwrap();
        if listed {
            section(&m.gate, &mut || {
                let mut s = m.stream.lock().unwrap();
                if !s.iter().any(|e| matches!(e, Ev::Status(_) | Ev::Attach)) {
                    s.push(Ev::Status(m.state.load(SeqCst)));
                }
            });
        }
    }

    type Section<'a> = Box<dyn FnOnce(u64) + 'a>;
    type Join<'a> = Box<dyn FnOnce() + 'a>;
    type EmitterFn = for<'a> fn(&'a Gate, &'a AtomicU64, Section<'a>);
    type TracerFn = fn(&Gate, &mut dyn FnMut());

    fn tracer_ok(g: &Gate, f: &mut dyn FnMut()) {
        gate::tracer(g, f)
    }
    fn tracer_without_fence(g: &Gate, f: &mut dyn FnMut()) {
        broken::tracer_without_fence(g, f)
    }
    type JoiningFn = for<'a> fn(&'a Gate, &'a AtomicU64, Join<'a>, Section<'a>);

    fn emitter_ok<'a>(g: &'a Gate, c: &'a AtomicU64, f: Section<'a>) {
        gate::emitter(g, c, f).expect("not re-entered");
    }
    fn emitter_broken<'a>(g: &'a Gate, c: &'a AtomicU64, f: Section<'a>) {
        broken::emitter_without_gate(g, c, f);
    }
    fn emitter_without_fence<'a>(g: &'a Gate, c: &'a AtomicU64, f: Section<'a>) {
        broken::emitter_without_fence(g, c, f);
    }
    fn joining_ok<'a>(g: &'a Gate, c: &'a AtomicU64, j: Join<'a>, f: Section<'a>) {
        gate::joining(g, c, j, f).expect("not re-entered");
    }
    fn joining_broken<'a>(g: &'a Gate, c: &'a AtomicU64, j: Join<'a>, f: Section<'a>) {
        broken::joining_after_reading(g, c, j, f);
    }

    /// A WAITING thread (listed) wakes while a start runs.
    fn wake_model(emit: EmitterFn, section: TracerFn) {
        loom::model(move || {
            let m = new_model(WAITING, true);
            let m2 = m.clone();
            let t = thread::spawn(move || {
                let m = &*m2;
                emit(
                    &m.gate,
                    &m.current,
                    Box::new(move |g| {
                        if g == GEN {
                            let mut s = m.stream.lock().unwrap();
                            // The status before the change, if nobody wrote one.
                            if !s.iter().any(|e| matches!(e, Ev::Status(_))) {
                                s.push(Ev::Status(m.state.load(SeqCst)));
                            }
                        }
                        m.state.store(RUNNABLE, SeqCst);
                        if g == GEN {
                            m.stream.lock().unwrap().push(Ev::Unblock);
                        }
                    }),
                );
            });
            tracer(&m, section);
            t.join().unwrap();
            let s = m.stream.lock().unwrap().clone();
            let ok = s == [Ev::Status(RUNNABLE)] || s == [Ev::Status(WAITING), Ev::Unblock];
            if !ok {
                violated("the wake-up does not follow from the status", &s);
            }
        });
    }

    /// A thread attaches (joins the list) while a start runs.
    fn attach_model(join: JoiningFn) {
        loom::model(move || {
            let m = new_model(RUNNABLE, false);
            let m2 = m.clone();
            let t = thread::spawn(move || {
                let m = &*m2;
                join(
                    &m.gate,
                    &m.current,
                    Box::new(move || *m.listed.lock().unwrap() = true),
                    Box::new(move |g| {
                        if g == GEN {
                            m.stream.lock().unwrap().push(Ev::Attach);
                        }
                    }),
                );
            });
            tracer(&m, tracer_ok);
            t.join().unwrap();
            let s = m.stream.lock().unwrap().clone();
            let ok = s == [Ev::Status(RUNNABLE)] || s == [Ev::Attach];
            if !ok {
                violated(
                    "an attached thread is neither in the status list nor attached",
                    &s,
                );
            }
        });
    }

    /// A rollover (publish generation 2 not ready, one pass over the gate,
    /// read the world for the header, make 2 ready) races a thread's
    /// state-changing section (A -> B and its event). Invariant: the new
    /// generation's header plus its events give the final state: its
    /// stream holds the change's event exactly when the header shows the
    /// state before it.
    fn rollover_model(quiesce: bool) {
        const A: u32 = 1;
        const B: u32 = 2;
        loom::model(move || {
            let m = new_model(A, true);
            let ready = Arc::new(AtomicU64::new(GEN));
            m.current.store(GEN, SeqCst);
            let (m2, r2) = (m.clone(), ready.clone());
            let t = thread::spawn(move || {
                let m = &*m2;
                let section = move |g: u64| {
                    m.state.store(B, SeqCst);
                    if g == GEN + 1 {
                        m.stream.lock().unwrap().push(Ev::Unblock);
                    }
                };
                if quiesce {
                    gate::emitter_ready(&m.gate, &m.current, &r2, section).expect("entered");
                } else {
                    gate::emitter(&m.gate, &m.current, section).expect("entered");
                }
            });
            gate::publish(&m.current, GEN + 1);
            gate::tracer(&m.gate, || {});
            let header = m.state.load(SeqCst);
            gate::make_ready(&ready, GEN + 1);
            t.join().unwrap();
            let s = m.stream.lock().unwrap().clone();
            let changed_in_new = s == [Ev::Unblock];
            let ok = (changed_in_new && header == A) || (s.is_empty() && header == B);
            if !ok {
                violated(&format!("the rollover's header shows state {header}"), &s);
            }
        });
    }

    /// A thread outside the world records while a pass that gives up at
    /// once (its deadline already past) goes over its gate: the pass either
    /// reaches the thread out of its section, or gives up on it and leaves
    /// its state alone (**bounded wait**). The broken variant proceeds as
    /// if it had reached it.
    fn give_up_model(proceed_anyway: bool) {
        loom::model(move || {
            let m = new_model(RUNNABLE, true);
            let inside = Arc::new(AtomicU32::new(0));
            let (m2, inside2) = (m.clone(), inside.clone());
            let t = thread::spawn(move || {
                let _ = gate::emitter(&m2.gate, &m2.current, |_| {
                    inside2.store(1, SeqCst);
                    m2.stream.lock().unwrap().push(Ev::Unblock);
                    inside2.store(0, SeqCst);
                });
            });
            gate::publish(&m.current, GEN);
            let touch = |_| {
                if inside.load(SeqCst) != 0 {
                    let s = m.stream.lock().unwrap().clone();
                    violated("the pass read a thread inside its section", &s);
                }
            };
            if proceed_anyway {
                broken::tracer_pass_proceeding(std::iter::once(&m.gate), touch);
            } else {
                gate::tracer_pass_bounded(
                    std::iter::once(&m.gate),
                    touch,
                    || true,
                    |_| true,
                    |_| {},
                );
            }
            t.join().unwrap();
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
                Some("emitter-without-gate") => wake_model(emitter_broken, tracer_ok),
                Some("gate-without-fence") => {
                    wake_model(emitter_without_fence, tracer_without_fence)
                }
                Some("joining-after-reading") => attach_model(joining_broken),
                Some("rollover-without-quiescence") => rollover_model(false),
                Some("give-up-proceeding") => give_up_model(true),
                other => panic!("unknown broken variant {other:?}"),
            }
            return;
        }
        wake_model(emitter_ok, tracer_ok);
        run("a wake-up races a trace start", true);
        attach_model(joining_ok);
        run("an attach races a trace start", true);
        rollover_model(true);
        run("a state change races a rollover", true);
        give_up_model(false);
        run("a section races a pass that gives up on it", true);
        let mut failed = 0;
        for variant in [
            "emitter-without-gate",
            "gate-without-fence",
            "joining-after-reading",
            "rollover-without-quiescence",
            "give-up-proceeding",
        ] {
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
                && text.contains("invariant 'status and events agree' violated");
            if !caught {
                eprintln!("broken variant '{variant}' not caught; output:\n{text}");
                failed += 1;
            }
            println!(
                "broken {variant} caught as a violation of 'status and events agree': {}",
                if caught { "ok" } else { "FAILED" }
            );
        }
        println!("{} passed, {failed} failed", 9 - failed);
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
