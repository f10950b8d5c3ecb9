//! The `crossfire` command line (docs/cli.md), and the composition root that wires the
//! engine, the embedded model and the server together from configuration: the command tree
//! is in `cli`, each command in `commands/`.

mod backends;
mod cli;
mod commands;
mod config;
mod terminal;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use commands::{debate, judge, model, personas, prompts, serve, users};
use config::{Config, Overrides};

// The service allocates small buffers for every token it relays; mimalloc's per-thread heaps
// cost less CPU under load than glibc's (docs/benchmarks.md has the numbers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once rather than 10 ms later, and no transparent
/// huge pages, which mimalloc asks for on its arenas: both lower peak memory under load and
/// on the embedded model (docs/benchmarks.md).
fn tune_memory() {
    // SAFETY: sets an integer option and a process flag, before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    tune_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", commands::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The service logs its requests to stdout; the other commands keep stdout for their output
/// and log only problems, to stderr (RUST_LOG=crossfire=debug shows each embedded
/// generation's timings).
fn init_logs(serving: bool) {
    let filter = |default: &str| {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into())
    };
    let logs = tracing_subscriber::fmt();
    if serving {
        logs.with_env_filter(filter("info,sqlx=warn")).init();
    } else {
        logs.with_writer(std::io::stderr)
            .with_env_filter(filter("warn"))
            .init();
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    init_logs(matches!(cli.command, Command::Serve { .. }));
    let overrides = Overrides {
        personas_dir: cli.personas_dir,
        prompts_dir: cli.prompts_dir,
        stories_dir: cli.stories_dir,
    };
    let config = Config::from_env(cli.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Debate { sides, json, seed } => debate::debate(&config, &sides, json, seed),
        Command::Perspective {
            story,
            persona,
            json,
        } => debate::perspective(&config, &story, &persona, json),
        Command::Personas { command } => personas::run(&config, command),
        Command::Prompts { command } => prompts::run(&config, command),
        Command::Serve { grace_s, seed } => serve::run(config, grace_s, seed),
        Command::Model { command } => model::run(&config, command),
        Command::Judge { command } => judge::run(&config, command),
        Command::Users { command } => users::run(&config, command),
    }
}
