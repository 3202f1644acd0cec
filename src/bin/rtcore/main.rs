//! The `rtcore` command: `ranks` checks a rank file; `demo` shows rtcore at
//! work. Later subcommands (check, stats, export, stress) join here.

// Under `--cfg loom` (model checking) the library is cut down to the
// modelled protocols, so the command is an empty stub.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
mod demo;

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
}

#[cfg(not(loom))]
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ranks { file, all } => ranks(&file, all),
        Command::Demo => demo::run(),
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
