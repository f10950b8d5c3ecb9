//! `crossfire judge`: calibrating the configured judge on debate pairs in which one side is
//! known to be worse, and keeping the result for verdicts to cite; judging a saved debate
//! again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crossfire_engine::calibrate;
use crossfire_engine::debate::{JudgeMethod, can_judge_again};
use crossfire_engine::event::EventSink;
use crossfire_engine::persona::Persona;
use crossfire_engine::story::Story;
use crossfire_engine::transcript::Transcript;

use super::{calibration_dir, engine, finish, load_persona, load_story, runtime};
use crate::cli::JudgeCommand;
use crate::config::Config;
use crate::terminal;

pub fn run(config: &Config, command: JudgeCommand) -> Result<ExitCode> {
    match command {
        JudgeCommand::Calibrate {
            pairs,
            seed,
            json,
            method,
        } => runtime()?.block_on(calibrate_judge(config, pairs, seed, method, json)),
        JudgeCommand::Again { file, json, out } => {
            runtime()?.block_on(judge_again(config, &file, json, out))
        }
    }
}

/// Judges the transcript in `file` again, prints it, and writes it to `out` if asked.
async fn judge_again(
    config: &Config,
    file: &Path,
    json: bool,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let transcript: Transcript = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a debate transcript", file.display()))?;
    // Refused before the engine (and a model) is loaded.
    can_judge_again(&transcript)?;
    let story = load_story(config, &transcript.story)?;
    let a = load_persona(config, &transcript.personas.a.id)?;
    let b = load_persona(config, &transcript.personas.b.id)?;
    let engine = engine(config)?;
    let judged = engine
        .judge_again(transcript, &story, &a, &b, &EventSink::discard())
        .await?;
    let written = serde_json::to_string_pretty(&judged)?;
    if let Some(path) = &out {
        std::fs::write(path, format!("{written}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        println!("{written}");
    } else {
        terminal::print_summary(&judged);
    }
    finish(
        judged.status,
        judged.error.as_ref().map(|e| e.message.as_str()),
    )
}

/// Scores the judge on `pairs` pairs, keeps the result and prints it.
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
