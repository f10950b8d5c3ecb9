//! What each command does, a module per command or group of commands, and what they share:
//! the async runtime, loading stories and personas, building the engine, and turning a
//! run's end or an error into what the terminal shows.

pub mod debate;
pub mod judge;
pub mod model;
pub mod personas;
pub mod prompts;
pub mod serve;
pub mod users;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crossfire_engine::calibrate;
use crossfire_engine::debate::{Engine, Settings};
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::Prompts;
use crossfire_engine::screen::endpoint::moderation;
use crossfire_engine::screen::{Policy, Screener, Verdict};
use crossfire_engine::story::Story;
use crossfire_engine::transcript::Status;

use crate::backends;
use crate::config::Config;

/// The async runtime of the commands that call a model, a database or the network.
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

/// The engine with the configured prompts, debaters' and judge's models, and settings.
fn engine(config: &Config) -> Result<Engine> {
    let prompts = Prompts::load(&config.library.prompts_dir)?;
    let policy = Policy::load_dir(&config.library.policy_dir).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the screening policy has problems: {}", lines.join("; "))
    })?;
    let models = backends::models(config)?;
    let mut engine = Engine::new(
        Arc::new(prompts),
        models.debater,
        models.judge,
        settings(config),
    )
    .with_screener(screener(config, policy));
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

/// The policy, and the moderation endpoint if one is configured.
fn screener(config: &Config, policy: Policy) -> Screener {
    let screener = Screener::new(Arc::new(policy));
    match &config.moderation {
        Some(endpoint) => screener.with_endpoint(moderation(endpoint), endpoint.on_error),
        None => screener,
    }
}

/// A reader's motion screened: a refused one ends the command before anything runs, with
/// one line naming the category.
async fn screen_motion(engine: &Engine, motion: &str) -> Result<()> {
    match engine.screen_motion(motion).await? {
        Verdict::Refused(refusal) => {
            bail!("motion refused ({}): {}", refusal.category, refusal.message)
        }
        Verdict::Flagged { .. } | Verdict::Allowed => Ok(()),
    }
}

/// Where judges' calibrations are kept.
fn calibration_dir() -> PathBuf {
    crossfire_engine::config::cache_dir().join("calibration")
}

fn settings(config: &Config) -> Settings {
    Settings::new(&config.llm, &config.judge, config.allow_living_personas)
}

/// A run's exit: success when it is done, else its error.
fn finish(status: Status, error: Option<&str>) -> Result<ExitCode> {
    match (status, error) {
        (Status::Done, _) => Ok(ExitCode::SUCCESS),
        (_, Some(message)) => bail!("{message}"),
        (status, None) => bail!("ended as {status:?}"),
    }
}

/// The whole cause chain on one line, each cause once (library errors already name their
/// source in their message), and no backtrace.
pub fn one_line(error: &anyhow::Error) -> String {
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
