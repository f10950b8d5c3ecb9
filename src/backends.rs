//! The composition root: builds the debaters' and the judge's models from configuration.
//! Nothing below the binary builds a backend, so the engine never depends on the embedded
//! model or the server (docs/architecture.md).

use std::sync::Arc;

use crossfire_embedded::EmbeddedModel;
use crossfire_engine::config::{Backend, LlmConfig};
use crossfire_engine::llm::openai::OpenAiClient;
use crossfire_engine::llm::retry::{RetryPolicy, Retrying};
use crossfire_engine::llm::{LanguageModel, LlmError};

use crate::config::Config;

/// The debaters' model and the judge's.
pub struct Models {
    pub debater: Arc<dyn LanguageModel>,
    pub judge: Arc<dyn LanguageModel>,
}

/// Builds both roles' models, with retries around each. When both use the embedded backend
/// they share one loaded model (and its batching).
pub fn models(config: &Config) -> Result<Models, LlmError> {
    let mut embedded: Option<Arc<EmbeddedModel>> = None;
    let mut build = |role: &LlmConfig| -> Result<Arc<dyn LanguageModel>, LlmError> {
        let policy = RetryPolicy::from_config(role);
        match role.backend {
            Backend::Openai => Ok(Arc::new(Retrying::new(OpenAiClient::new(role)?, policy))),
            Backend::Embedded => {
                let model = match &embedded {
                    Some(model) => model.clone(),
                    None => {
                        let model = EmbeddedModel::start(&config.embedded, &role.model)
                            .map(Arc::new)
                            .map_err(|e| LlmError::Unavailable(e.to_string()))?;
                        embedded = Some(model.clone());
                        model
                    }
                };
                Ok(Arc::new(Retrying::new(model, policy)))
            }
        }
    };
    Ok(Models {
        debater: build(&config.llm)?,
        judge: build(&config.judge)?,
    })
}
