//! `crossfire prompts`: the prompt templates — showing the exact prompts a debate would
//! send, without calling a model.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crossfire_engine::prompts::Prompts;

use super::{load_persona, load_story, settings};
use crate::cli::{DebateArgs, PromptsCommand};
use crate::config::Config;

pub fn run(config: &Config, command: PromptsCommand) -> Result<ExitCode> {
    match command {
        PromptsCommand::Render { sides } => render(config, &sides),
    }
}

/// Prints every call of a debate between the sides: its name and its messages.
fn render(config: &Config, args: &DebateArgs) -> Result<ExitCode> {
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
