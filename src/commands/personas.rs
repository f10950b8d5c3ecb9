//! `crossfire personas`: the persona files — checking them, importing and exporting
//! Character Cards, and probing a persona against the model for a scorecard.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crossfire_engine::persona::Persona;
use crossfire_engine::story::Story;

use super::{engine, load_persona, load_story, runtime};
use crate::cli::PersonasCommand;
use crate::config::Config;

pub fn run(config: &Config, command: PersonasCommand) -> Result<ExitCode> {
    match command {
        PersonasCommand::Check { dir } => {
            check(&dir.unwrap_or_else(|| config.library.personas_dir.clone()))
        }
        PersonasCommand::Import { card, id, force } => {
            import_card(config, &card, id.as_deref(), force)
        }
        PersonasCommand::Export { id, png } => export_card(config, &id, png.as_deref()),
        PersonasCommand::Probe { id, story, json } => {
            runtime()?.block_on(probe(config, &id, story.as_deref(), json))
        }
    }
}

/// Validates every persona file in `dir`, printing each problem; fails if there is one.
fn check(dir: &Path) -> Result<ExitCode> {
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

/// Writes a Character Card as a persona file, and reports what had no home in it.
fn import_card(config: &Config, card: &Path, id: Option<&str>, force: bool) -> Result<ExitCode> {
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

/// Prints the persona as a Character Card V3: JSON on standard output, or a PNG file.
fn export_card(config: &Config, id: &str, png: Option<&Path>) -> Result<ExitCode> {
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

/// Puts the persona's probes to the model, keeps the scorecard and prints it against the
/// one before.
async fn probe(config: &Config, id: &str, story: Option<&str>, json: bool) -> Result<ExitCode> {
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
