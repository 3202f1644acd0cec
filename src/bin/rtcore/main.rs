//! The `rtcore` command: `ranks` checks a rank file; `demo` shows rtcore at
//! work. Later subcommands (check, stats, export, stress) join here.

// Under `--cfg loom` (model checking) the library is cut down to the
// modelled protocols, so the command is an empty stub.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
mod demo;
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
#[derive(Subcommand)]
enum Command {
    /// Check a rank declaration file and print its ranks in a linear order.
    ///
    /// Example: rtcore ranks docs/examples/kv.ranks
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
    /// consistent, 1 and the validator's message (naming the event, thread,
    /// byte offset and time) if not.
    ///
    /// Example: rtcore check rtcore-demo/trace-1.rtctrace
    Check {
        /// The trace file (the format of docs/trace-format.md).
        file: String,
    },
    /// Start and stop tracing in a loop under a busy multi-threaded
    /// workload and validate every trace (the tracer's stress test). Exit
    /// status 0 when every trace was consistent; with --inject, 0 when an
    /// inconsistency was found.
    ///
    /// Example: rtcore stress --cycles 2000
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
        /// Fault injection (for testing the tracer's own tests): start and
        /// stop skip sysmonlock and sysmon parks between its check and its
        /// action; stops at the first inconsistency.
        #[arg(long)]
        inject: bool,
    },
}

#[cfg(not(loom))]
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ranks { file, all } => ranks(&file, all),
        Command::Demo => demo::run(),
        Command::Check { file } => check(&file),
        Command::Stress {
            threads,
            cycles,
            duration,
            maxprocs,
            trace_ms,
            inject,
        } => {
            let duration_ok = duration.is_finite() && duration > 0.0;
            let trace_ms_ok = trace_ms.is_finite() && (0.0..=60_000.0).contains(&trace_ms);
            if threads == 0 || !duration_ok || !trace_ms_ok {
                eprintln!(
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
                progress: true,
            })
        }
    }
}

/// `rtcore check FILE`.
#[cfg(not(loom))]
fn check(file: &str) -> ExitCode {
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rtcore check: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match rtcore::reader::check(&data) {
        Ok(s) => {
            println!(
                "{file}: consistent: {} events, {} generation(s), {} thread(s), {} bytes; {} range(s) crossing the start, {} open at the end",
                s.events,
                s.generations,
                s.threads,
                data.len(),
                s.crossed_start,
                s.open_at_end
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{file}: inconsistent: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(loom))]
fn ranks(file: &str, all: bool) -> ExitCode {
    let table = rtcore::ranks::RankTable::new();
    let builtin = table.len();
    if let Err(e) = rtcore::ranks::load_file(&table, file) {
        eprintln!("rtcore ranks: {}", e.message);
        return ExitCode::FAILURE;
    }
    let ranks = table.ranks();
    let user: Vec<_> = ranks.iter().skip(builtin).filter(|r| !r.pseudo).collect();
    println!(
        "{file}: ok, {} ranks ({} pseudo-ranks); a linear order (each rank may be held when any later one is acquired, if the declarations allow it):",
        user.len(),
        ranks.iter().skip(builtin).filter(|r| r.pseudo).count()
    );
    for (i, r) in ranks.iter().enumerate() {
        if r.pseudo || (i < builtin && !all) || i == 0 {
            continue;
        }
        let loc = r
            .defined_at
            .as_ref()
            .map(|l| format!("{}:{}", l.file, l.pos.line))
            .unwrap_or_default();
        let nest = if r.nestable { "  (nestable)" } else { "" };
        println!("  {:>4}  {:<24} {loc}{nest}", i, r.name);
    }
    ExitCode::SUCCESS
}
