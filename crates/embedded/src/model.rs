//! A loaded model: weights, tokenizer, chat template, and the threads that run it.

use std::path::Path;
use std::time::{Duration, Instant};

use super::chat::{ChatError, ChatTemplate};
use super::fetch::{self, ModelError};
use super::gguf::{Gguf, GgufError};
use super::team::Team;
use super::tokenizer::{Tokenizer, TokenizerError};
use super::transformer::{KvCache, LoadError, Row, Transformer};
use crossfire_engine::llm::Message;

/// Why the embedded model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    File(#[from] ModelError),
    #[error("{path}: {source}")]
    Gguf { path: String, source: GgufError },
    #[error("{path}: {source}")]
    Load { path: String, source: LoadError },
    #[error("{path}: {source}")]
    Tokenizer {
        path: String,
        source: TokenizerError,
    },
    #[error("{path}: {source}")]
    Chat { path: String, source: ChatError },
    #[error("{path}: the vocabulary has no end-of-turn token")]
    NoEndOfTurn { path: String },
    #[error("cannot start the model's threads: {0}")]
    Threads(String),
}

/// A model ready to run.
pub struct Model {
    pub transformer: Transformer,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    /// The token that ends an assistant turn (`<|im_end|>` for ChatML models).
    pub end_of_turn: u32,
    pub load_time: Duration,
    team: Team,
}

impl Model {
    /// Loads the GGUF file at `path` to run on `threads` threads. The default model's file is
    /// checked against its known SHA-256 first.
    pub fn load(path: &Path, threads: usize) -> Result<Model, EmbeddedError> {
        let started = Instant::now();
        let shown = path.display().to_string();
        let team = Team::new(threads, "crossfire-model")
            .map_err(|e| EmbeddedError::Threads(e.to_string()))?;
        let bytes = read(path)?;
        let gguf = parse(path, &bytes)?;
        // The tokenizer and the layers' weights are made ready side by side, on as many
        // threads as the model runs on.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| EmbeddedError::Threads(e.to_string()))?;
        let (transformer, tokenizer) = pool.install(|| {
            rayon::join(
                || Transformer::load(&gguf, &bytes),
                || Tokenizer::from_gguf(&gguf),
            )
        });
        drop(pool);
        let transformer = transformer.map_err(|source| EmbeddedError::Load {
            path: shown.clone(),
            source,
        })?;
        drop(bytes);
        let tokenizer = tokenizer.map_err(|source| EmbeddedError::Tokenizer {
            path: shown.clone(),
            source,
        })?;
        let chat =
            ChatTemplate::new(gguf.str("tokenizer.chat_template").ok()).map_err(|source| {
                EmbeddedError::Chat {
                    path: shown.clone(),
                    source,
                }
            })?;
        let end_of_turn = tokenizer
            .id("<|im_end|>")
            .or_else(|| {
                gguf.int("tokenizer.ggml.eos_token_id")
                    .ok()
                    .map(|id| id as u32)
            })
            .ok_or(EmbeddedError::NoEndOfTurn { path: shown })?;
        Ok(Model {
            transformer,
            tokenizer,
            chat,
            end_of_turn,
            load_time: started.elapsed(),
            team,
        })
    }

    /// Only the tokenizer of the model file at `path` (for `crossfire model tokenize`).
    pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbeddedError> {
        let bytes = read(path)?;
        Tokenizer::from_gguf(&parse(path, &bytes)?).map_err(|source| EmbeddedError::Tokenizer {
            path: path.display().to_string(),
            source,
        })
    }

    /// The prompt of a chat, as token ids.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>, ChatError> {
        self.chat.encode(&self.tokenizer, messages)
    }

    /// One forward pass on the model's threads ([`Transformer::forward`]).
    pub fn forward(&self, rows: &[Row], caches: &mut [KvCache], logits: &mut Vec<f32>) {
        self.team
            .install(|| self.transformer.forward(rows, caches, logits))
    }

    /// Threads the model runs on.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }
}

/// Whether `path` is the default model's file, whose checksum is known.
fn is_default(path: &Path) -> bool {
    path.file_name() == fetch::default_path().file_name()
}

/// The model file's bytes; the default model's checked against its SHA-256 before anything
/// reads them (parsing a damaged file could fail in ways that hide what happened).
fn read(path: &Path) -> Result<Vec<u8>, EmbeddedError> {
    let bytes = std::fs::read(path).map_err(|source| {
        EmbeddedError::File(match source.kind() {
            std::io::ErrorKind::NotFound => ModelError::Missing { path: path.into() },
            _ => ModelError::Io {
                path: path.into(),
                source,
            },
        })
    })?;
    if is_default(path) {
        fetch::expect(path, fetch::sha256(&bytes))?;
    }
    Ok(bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Gguf, EmbeddedError> {
    Gguf::parse(bytes).map_err(|source| EmbeddedError::Gguf {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_default_model_is_reported_as_corrupt_not_as_unreadable() {
        let dir = std::env::temp_dir().join(format!("crossfire-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let default = dir.join(fetch::default_path().file_name().unwrap());
        std::fs::write(&default, b"GGUF and then nothing a model has").unwrap();
        let error = Model::load(&default, 2).err().unwrap().to_string();
        assert!(error.contains("is corrupt (sha256 "), "{error}");
        // Any other file is taken as it is: the same bytes fail as a GGUF file.
        let other = dir.join("other.gguf");
        std::fs::copy(&default, &other).unwrap();
        let error = Model::load(&other, 2).err().unwrap().to_string();
        assert!(
            !error.contains("corrupt") && error.contains("other.gguf"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
