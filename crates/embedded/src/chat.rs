//! The model's own chat template (`tokenizer.chat_template`, a Jinja template in the GGUF
//! file), rendered with minijinja.
//!
//! Message text never passes through the template as text: the template is rendered with a
//! placeholder per message, the template's own text is encoded with control tokens, and each
//! message's text is encoded as plain text in its place.

use minijinja::{Environment, context};

use super::tokenizer::{Tokenizer, TokenizerError};
use crossfire_engine::llm::Message;

/// Why the prompt cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the model's chat template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("the model's chat template dropped or repeated a message")]
    Placeholders,
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// ChatML, for models whose file carries no template.
const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Marks a message's place in the rendered template; private-use characters no template writes.
fn placeholder(i: usize) -> String {
    format!("\u{F8F0}{i}\u{F8F1}")
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Compiles `source`, or ChatML when the model has none.
    pub fn new(source: Option<&str>) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_string())?;
        Ok(ChatTemplate { env })
    }

    /// The prompt's token ids: the messages, then the start of the assistant's turn.
    pub fn encode(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
    ) -> Result<Vec<u32>, ChatError> {
        let slots: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| context! { role => m.role.as_str(), content => placeholder(i) })
            .collect();
        let rendered = self.env.get_template("chat")?.render(context! {
            messages => slots,
            add_generation_prompt => true,
            bos_token => "",
            eos_token => "",
        })?;
        let mut ids = Vec::new();
        let mut rest = rendered.as_str();
        for (i, message) in messages.iter().enumerate() {
            let marker = placeholder(i);
            let (before, after) = rest.split_once(&marker).ok_or(ChatError::Placeholders)?;
            ids.extend(tokenizer.encode_template(before)?);
            ids.extend(tokenizer.encode(&message.content)?);
            rest = after;
        }
        if rest.contains('\u{F8F0}') {
            return Err(ChatError::Placeholders);
        }
        ids.extend(tokenizer.encode_template(rest)?);
        Ok(ids)
    }
}
