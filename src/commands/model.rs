//! `crossfire model`: the embedded model's file — fetching and verifying it, measuring its
//! speed, and showing how it tokenizes text.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::cli::ModelCommand;
use crate::config::Config;

pub fn run(config: &Config, command: ModelCommand) -> Result<ExitCode> {
    match command {
        ModelCommand::Fetch => fetch(config),
        ModelCommand::Bench { tokens, json } => bench(config, tokens, json),
        ModelCommand::Tokenize { text } => tokenize(config, &text),
    }
}

/// Fetches the model file (or verifies the one there) and prints its path.
fn fetch(config: &Config) -> Result<ExitCode> {
    let path = &config.embedded.model_path;
    crossfire_embedded::fetch::fetch(path)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Prints the token ids of `text` as a JSON array.
fn tokenize(config: &Config, text: &str) -> Result<ExitCode> {
    let tokenizer = crossfire_embedded::Model::load_tokenizer(&config.embedded.model_path)?;
    println!("{}", serde_json::to_string(&tokenizer.encode(text)?)?);
    Ok(ExitCode::SUCCESS)
}

/// Measures the model and prints the numbers, as a table or JSON.
fn bench(config: &Config, tokens: usize, json: bool) -> Result<ExitCode> {
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
        println!(
            "prefill x2, x4   {:.0}, {:.0} tokens/s (different 256-token prompts together)",
            report.prefill_two_tok_per_s, report.prefill_four_tok_per_s
        );
        println!(
            "first token      {:.0} ms (1,000-token prompt), {:.0} ms (its first 600 kept)",
            report.first_token_cold_ms, report.first_token_cached_ms
        );
        println!("peak memory      {:.0} MB", report.peak_rss_mb);
    }
    Ok(ExitCode::SUCCESS)
}
