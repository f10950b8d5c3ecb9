//! `crossfire debate` and `crossfire perspective`: one run of the engine, streamed to the
//! terminal as it happens or printed as JSON at the end; the exit status says how it ended.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crossfire_engine::event::EventSink;
use crossfire_engine::transcript::new_id;

use super::{engine, finish, load_persona, load_story, runtime, screen_motion};
use crate::cli::DebateArgs;
use crate::config::Config;
use crate::terminal;

/// Runs a two-round debate between the two sides.
pub fn debate(
    config: &Config,
    args: &DebateArgs,
    json: bool,
    seed: Option<u64>,
) -> Result<ExitCode> {
    runtime()?.block_on(run_debate(config, args, json, seed))
}

/// Writes one persona's perspective on a story.
pub fn perspective(config: &Config, story: &str, persona: &str, json: bool) -> Result<ExitCode> {
    runtime()?.block_on(run_perspective(config, story, persona, json))
}

async fn run_debate(
    config: &Config,
    args: &DebateArgs,
    json: bool,
    seed: Option<u64>,
) -> Result<ExitCode> {
    let story = load_story(config, &args.story)?;
    let a = load_persona(config, &args.a)?;
    let b = load_persona(config, &args.b)?;
    let mut engine = engine(config)?;
    engine.seed = seed;
    let motion = engine.check_debate(&story, &a, &b, args.motion.as_deref())?;
    if args.motion.is_some() {
        screen_motion(&engine, &motion).await?;
    }
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

async fn run_perspective(
    config: &Config,
    story: &str,
    persona: &str,
    json: bool,
) -> Result<ExitCode> {
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
