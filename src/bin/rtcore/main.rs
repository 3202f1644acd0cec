//! The `rtcore` command: `ranks` checks a rank file; `check`, `stats` and
//! `export` read traces; `stress` and `demo` run rtcore.
//!
//! The entry point is C's `main` (`no_main`): Rust's own start-up would
//! put /dev/null on a closed standard output, and the command would then
//! report success having written nothing. `output::claim_standard_fds`
//! does the same for safety (no file the command opens can land on fd 0-2)
//! but remembers that standard output was closed, so writing to it fails.
#![cfg_attr(not(any(loom, test)), no_main)]
// The unit tests build the command without its entry point.
#![cfg_attr(test, allow(dead_code))]

// Under `--cfg loom` (model checking) the library is cut down to the
// modelled protocols, so the command is an empty stub.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
#[macro_use]
mod output;
#[cfg(not(loom))]
mod demo;
#[cfg(not(loom))]
mod run;
#[cfg(not(loom))]
mod stress;

#[cfg(not(loom))]
use std::process::ExitCode;

#[cfg(not(loom))]
use clap::{Parser, Subcommand};

#[cfg(not(loom))]
#[derive(Parser)]
#[command(
    name = "rtcore",
    version,
    about = "rtcore: lock ranks, a thread monitor and an execution tracer for native programs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[cfg(not(loom))]
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// Chrome JSON Trace Event Format.
    Json,
    /// Perfetto's protobuf trace (TracePacket stream).
    Perfetto,
}

#[cfg(not(loom))]
#[derive(Clone, Copy, clap::ValueEnum)]
enum RunMode {
    /// Report each problem on stderr and let the program go on.
    Report,
    /// Report the first problem, then abort the program.
    Abort,
}

#[cfg(not(loom))]
#[derive(Subcommand)]
enum Command {
    /// Run a program you did not write with lock-order checking of its
    /// pthread mutexes (no rebuild: librtcore_preload.so is preloaded; see
    /// docs/preload.md). The order in which lock classes are taken is
    /// learned as the program runs; an acquisition that closes a cycle is
    /// reported before it can deadlock, as are a recursive lock of a
    /// non-recursive mutex and an unlock of a mutex not held. At the end:
    /// a summary on stderr. The program's exit status is passed through
    /// (128 + N if signal N killed it); 2 if it could not be run. A
    /// statically linked or set-user-ID program is refused: it would run
    /// unchecked.
    ///
    /// Example: rtcore run -- /bin/true
    Run {
        /// What a problem does: report it, or report it and abort.
        #[arg(long, value_enum, default_value_t = RunMode::Report)]
        mode: RunMode,
        /// Also run the flight recorder, dumping into DIR
        /// (RTCORE_FLIGHT_RECORDER; docs/tracing.md).
        #[arg(long, value_name = "DIR")]
        flight_recorder: Option<std::path::PathBuf>,
        /// Trace the whole run into FILE (created, or emptied if it is a
        /// regular file; docs/tracing.md): its threads' lock waits on
        /// interposed locks show with their owners. Not with
        /// --flight-recorder (one trace at a time).
        #[arg(long, value_name = "FILE")]
        trace: Option<std::path::PathBuf>,
        /// Also check every order against this rank file (one written by
        /// --learn-ranks, or your own): an order it does not declare, or a
        /// lock class it does not name, is reported.
        #[arg(long, value_name = "FILE")]
        ranks: Option<std::path::PathBuf>,
        /// At the end, write the order learned in this run as a rank file
        /// (docs/ranks.md's language), to check later runs with --ranks.
        #[arg(long, value_name = "OUT")]
        learn_ranks: Option<std::path::PathBuf>,
        /// The program and its arguments (after `--`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM"
        )]
        program: Vec<std::ffi::OsString>,
    },
    /// Check a rank declaration file and print its ranks in a linear order.
    ///
    /// Example: rtcore ranks examples/kv.ranks
    Ranks {
        /// The rank file (the rank language of docs/ranks.md).
        file: String,
        /// Also list rtcore's own ranks.
        #[arg(long)]
        all: bool,
    },
    /// Run the demo: a small multi-threaded key-value store whose ranked
    /// locks catch a deliberate lock-order inversion. Needs no terminal.
    ///
    /// Example: rtcore demo
    Demo,
    /// Check a trace: exit status 0 and a one-line summary if it is
    /// complete and consistent; 3 if it was cut short (a program killed
    /// while tracing) and every complete generation is consistent (the
    /// line says after which generation and byte, and what was lost); 1
    /// and the validator's message (naming the event, thread, byte offset
    /// and time) if it is inconsistent; 2 if the file cannot be read.
    ///
    /// Example: rtcore check rtcore-demo/trace-1.rtctrace
    Check {
        /// The trace file (the format of docs/trace-format.md).
        file: String,
    },
    /// Statistics of a trace: per thread the time in each state, blocking
    /// reasons with totals, the most contended locks (waits, owners),
    /// sysmon's actions, events by kind, ranges crossing the trace's edges,
    /// bytes per event. A plain-text table, or JSON with --json. A trace
    /// cut short: statistics of its complete generations, said on stderr,
    /// exit status 3.
    ///
    /// Example: rtcore stats rtcore-demo/trace-1.rtctrace
    Stats {
        /// The trace file.
        file: String,
        /// JSON instead of text (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Export a trace for a viewer: JSON (Chrome's Trace Event Format) or
    /// Perfetto's own protobuf format, both of which ui.perfetto.dev opens
    /// ("Open trace file"): threads as tracks,
    /// their states and regions as slices, lock waits with an arrow from
    /// the releasing thread, counters, sysmon's actions as instants. A
    /// trace cut short: its complete generations, said on stderr, exit
    /// status 3.
    ///
    /// Example: rtcore export rtcore-demo/trace-1.rtctrace --format perfetto -o trace-1.perfetto-trace
    Export {
        /// The trace file.
        file: String,
        /// The output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Where to write ("-": standard output). Default: beside the
        /// trace, its name with `.json` or `.perfetto-trace` for
        /// `.rtctrace` (trace-1.rtctrace: trace-1.json).
        #[arg(short, long)]
        output: Option<String>,
    },
    /// Start and stop tracing in a loop under a busy multi-threaded
    /// workload and validate every trace (the tracer's stress test). Exit
    /// status 0 when every trace was consistent; with --inject, 0 when an
    /// inconsistency was found.
    ///
    /// Example: rtcore stress --cycles 1000
    Stress {
        /// Attached worker threads (roles assigned in turn: lockers, a pipe
        /// reader and its feeder, a busy spinner, a logger inside a
        /// blocking region, attach/detach churn).
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// Stop after this many start/stop cycles (default: run for
        /// --duration).
        #[arg(long)]
        cycles: Option<u64>,
        /// Seconds to run when --cycles is not given.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// How many workers may run at once (below --threads, so threads
        /// queue for processors).
        #[arg(long, default_value_t = 3)]
        maxprocs: u32,
        /// Milliseconds each trace records.
        #[arg(long, default_value_t = 1.0)]
        trace_ms: f64,
        /// Milliseconds between generations within each trace (0: the
        /// library's default, 1000): with a period shorter than
        /// --trace-ms, rollovers mix with the starts and stops.
        #[arg(long, default_value_t = 0)]
        generation_ms: u32,
        /// Record with the flight recorder: each cycle starts it, takes a
        /// snapshot halfway and one at the end (each rolls the trace over),
        /// stops it, and validates both snapshots.
        #[arg(long)]
        flight_recorder: bool,
        /// Fault injection (for testing the tracer's own tests): start and
        /// stop skip sysmonlock and sysmon parks between its check and its
        /// action; stops at the first inconsistency.
        #[arg(long)]
        inject: bool,
        /// Write the last consistent trace to this file (to look at one).
        #[arg(long, value_name = "FILE")]
        keep_last: Option<String>,
    },
}

/// The process's entry point (see the module's comment). Not in the unit
/// tests' build, whose harness has its own `main`.
#[cfg(not(any(loom, test)))]
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::os::raw::c_int,
    _argv: *const *const std::os::raw::c_char,
) -> std::os::raw::c_int {
    output::claim_standard_fds();
    let code = run();
    // ExitCode has no stable conversion to a number: find its value.
    (0..=255u8)
        .find(|&i| ExitCode::from(i) == code)
        .map_or(1, i32::from)
}

#[cfg(not(loom))]
fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ranks { file, all } => ranks(&file, all),
        Command::Demo => demo::run(),
        Command::Run {
            mode,
            flight_recorder,
            trace,
            ranks,
            learn_ranks,
            program,
        } => run::main(run::Options {
            trace,
            ranks,
            learn_ranks,
            mode: match mode {
                RunMode::Report => "report",
                RunMode::Abort => "abort",
            }
            .to_string(),
            flight_recorder,
            program,
        }),
        Command::Check { file } => check(&file),
        Command::Stats { file, json } => stats(&file, json),
        Command::Export {
            file,
            format,
            output,
        } => {
            let output = output.unwrap_or_else(|| default_export_name(&file, format));
            export(&file, format, &output)
        }
        Command::Stress {
            threads,
            cycles,
            duration,
            maxprocs,
            trace_ms,
            generation_ms,
            flight_recorder,
            inject,
            keep_last,
        } => {
            let duration_ok = duration.is_finite() && duration > 0.0;
            let trace_ms_ok = trace_ms.is_finite() && (0.0..=60_000.0).contains(&trace_ms);
            if threads == 0 || !duration_ok || !trace_ms_ok {
                say_err!(
                    "rtcore stress: --threads must be at least 1, --duration above 0, --trace-ms between 0 and 60000"
                );
                return ExitCode::from(2);
            }
            stress::main(stress::Options {
                threads,
                cycles,
                duration: std::time::Duration::from_secs_f64(duration.min(1e9)),
                maxprocs,
                inject,
                trace_for: std::time::Duration::from_secs_f64(trace_ms / 1e3),
                generation_ms,
                flight_recorder,
                progress: true,
                keep_last,
            })
        }
    }
}

/// A status from the C ABI the caller cannot do without: on failure, say
/// which call failed and why (rtcore's last error) and exit with 2. For
/// the demo and the stress, which use the library as a C program would.
#[cfg(not(loom))]
fn ffi_ok(tool: &str, st: rtcore::status::rtc_status, what: &str) {
    if st != rtcore::status::rtc_status::RTC_OK {
        let mut buf = vec![0u8; 1024];
        let n = rtcore::ffi::general::rtc_last_error_message(buf.as_mut_ptr().cast(), buf.len());
        buf.truncate(n.min(buf.len() - 1));
        say_err!(
            "rtcore {tool}: {what} failed: {st:?}: {}",
            String::from_utf8_lossy(&buf)
        );
        std::process::exit(2);
    }
}

/// `rtcore stats FILE [--json]`: exit 1 for an inconsistent trace.
#[cfg(not(loom))]
fn stats(file: &str, json: bool) -> ExitCode {
    // Read one generation at a time: memory stays bounded by one.
    let stats = match rtcore::stats::stats_file(std::path::Path::new(file)) {
        Ok(s) => s,
        Err(e) => {
            say_err!("rtcore stats: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match stats {
        Ok(s) => {
            if json {
                say!("{}", s.to_json());
            } else {
                say_raw!("{file}\n{}", s.to_text());
            }
            match &s.cut {
                Some(c) => {
                    say_err!(
                        "rtcore stats: {file} was {}; the statistics cover its {} complete generation(s)",
                        c.describe(),
                        s.generations
                    );
                    ExitCode::from(3)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            say_err!("rtcore stats: {file} is not a consistent trace: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rtcore check FILE`.
#[cfg(not(loom))]
fn check(file: &str) -> ExitCode {
    // Read as it is checked: memory stays bounded by one generation.
    let checked = match rtcore::reader::check_file(std::path::Path::new(file)) {
        Ok(c) => c,
        Err(e) => {
            say_err!("rtcore check: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match checked {
        Ok(s) if s.cut.is_some() => {
            let c = s.cut.as_ref().map(|c| c.describe()).unwrap_or_default();
            say!(
                "{file}: {c}; the {} complete generation(s) are consistent: {} events, {} thread(s)",
                s.generations,
                s.events,
                s.threads
            );
            ExitCode::from(3)
        }
        Ok(s) => {
            let lost = if s.lost_generations > 0 {
                format!(
                    "; {} generation(s) lost while recording (a sink fell behind, or a crash dump could not reach every thread: {} events, {} bytes)",
                    s.lost_generations, s.lost_events, s.lost_bytes
                )
            } else {
                String::new()
            };
            say!(
                "{file}: consistent: {} events, {} generation(s), {} thread(s), {} bytes; {} range(s) crossing the start, {} open at the end{lost}",
                s.events,
                s.generations,
                s.threads,
                s.bytes,
                s.crossed_start,
                s.open_at_end
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("{file}: inconsistent: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(loom))]
/// `export`'s output when none is given: beside the trace, its name with
/// the format's extension in place of `.rtctrace` (added to any other
/// name, so it never names the trace itself).
fn default_export_name(file: &str, format: ExportFormat) -> String {
    let ext = match format {
        ExportFormat::Json => "json",
        ExportFormat::Perfetto => "perfetto-trace",
    };
    let base = file.strip_suffix(".rtctrace").unwrap_or(file);
    format!("{base}.{ext}")
}

/// `rtcore export FILE --format json|perfetto -o OUT`: only a consistent
/// trace is exported (the export replays its state machines). The trace is
/// read as it is checked, one generation at a time (as `check` does): a
/// file that is not a trace is refused at its header, whatever its size,
/// and memory holds one generation's events beside the timeline being
/// built. Nothing is written until the whole trace was found consistent.
#[cfg(not(loom))]
fn export(file: &str, format: ExportFormat, output: &str) -> ExitCode {
    use rtcore::export::timeline::TimelineBuilder;
    let mut builder = TimelineBuilder::default();
    let mut cut = false;
    let checked = rtcore::reader::with_file(std::path::Path::new(file), |f| {
        rtcore::reader::visit_generations(f, |g| builder.add_generation(g))
    });
    match checked {
        Err(e) => {
            say_err!("rtcore export: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
        Ok(Err(e)) => {
            say_err!("rtcore export: {file} is not a consistent trace: {e}");
            return ExitCode::FAILURE;
        }
        Ok(Ok(s)) => {
            if let Some(c) = &s.cut {
                say_err!(
                    "rtcore export: {file} was {}; exporting its {} complete generation(s)",
                    c.describe(),
                    s.generations
                );
                cut = true;
            }
        }
    }
    let timeline = builder.finish();
    // 3: the trace was cut short and its complete part was exported.
    let done = |cut: bool| {
        if cut {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        }
    };
    let write = |w: &mut dyn std::io::Write| match format {
        ExportFormat::Json => rtcore::export::json::write_timeline(&timeline, &mut &mut *w),
        ExportFormat::Perfetto => rtcore::export::perfetto::write_timeline(&timeline, &mut &mut *w),
    };
    if output == "-" {
        let stdout = match output::stdout() {
            Ok(s) => s,
            Err(e) => output::stdout_failed(&e),
        };
        let mut w = std::io::BufWriter::new(stdout.lock());
        let r = write(&mut w).and_then(|_| {
            use std::io::Write;
            w.flush()
        });
        if let Err(e) = r {
            output::stdout_failed(&e);
        }
        return done(cut);
    }
    match output::write_to_path(std::path::Path::new(output), write) {
        Ok(s) => {
            say!(
                "{output}: {} thread(s), {} slices, {} instants, {} counter samples, {} lock-wait arrows",
                s.threads,
                s.slices,
                s.instants,
                s.counters,
                s.flows
            );
            done(cut)
        }
        Err(e) => {
            say_err!("rtcore export: cannot write {output}: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(loom))]
fn ranks(file: &str, all: bool) -> ExitCode {
    let table = rtcore::ranks::RankTable::new();
    let builtin = table.len();
    if let Err(e) = rtcore::ranks::load_file(&table, file) {
        say_err!("rtcore ranks: {}", e.message);
        // As every subcommand: 2 for input that cannot be read, 1 for a
        // bad file.
        return if e.status == rtcore::status::RTC_ERR_IO {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        };
    }
    let ranks = table.ranks();
    let user: Vec<_> = ranks.iter().skip(builtin).filter(|r| !r.pseudo).collect();
    say!(
        "{file}: ok, {} ranks ({} pseudo-ranks); numbered in a linear order (each rank may be held when any later one is acquired, if the declarations allow it):",
        user.len(),
        ranks.iter().skip(builtin).filter(|r| r.pseudo).count()
    );
    // Numbered from 1 in the listing; the rank ids locks keep (rtcore's
    // own ranks come first) are not shown and do not change.
    let listed = ranks
        .iter()
        .enumerate()
        .filter(|&(i, r)| !(r.pseudo || (i < builtin && !all) || i == 0))
        .map(|(_, r)| r);
    for (i, r) in listed.enumerate() {
        let i = i + 1;
        let loc = r
            .defined_at
            .as_ref()
            .map(|l| format!("{}:{}", l.file, l.pos.line))
            .unwrap_or_default();
        let nest = if r.nestable { "  (nestable)" } else { "" };
        say!("  {:>4}  {:<24} {loc}{nest}", i, r.name);
    }
    ExitCode::SUCCESS
}
