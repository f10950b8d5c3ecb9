//! The model's tokenizer, built from the vocabulary and merges in the GGUF file: a byte-level
//! BPE that splits digits one by one and adds no prefix space, which gives llama.cpp's ids.
//!
//! Control tokens (`<|im_start|>`, `<|im_end|>`, …) are recognised only in text the chat
//! template itself wrote. Text from users or other models is encoded with a tokenizer that
//! knows no control tokens, so a motion containing `<|im_end|>` stays plain text.

use std::collections::HashMap;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use super::gguf::{Gguf, GgufError};

/// Why the tokenizer cannot be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("tokenizer model `{0}` is not supported (byte-level BPE, `gpt2`, is)")]
    Kind(String),
    #[error("tokenizer: {0}")]
    Build(String),
}

/// GGUF token type of control tokens.
const CONTROL: i64 = 3;

/// Encodes text to ids and ids back to bytes.
pub struct Tokenizer {
    with_control: tokenizers::Tokenizer,
    plain: tokenizers::Tokenizer,
    /// Each token's bytes; empty for control tokens.
    bytes: Vec<Vec<u8>>,
    control: Vec<bool>,
    ids: HashMap<String, u32>,
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes.
    pub fn from_gguf(gguf: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let kind = gguf.str("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(TokenizerError::Kind(kind.to_string()));
        }
        let tokens = gguf.strings("tokenizer.ggml.tokens")?;
        let merges = gguf.strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = match gguf.metadata.get("tokenizer.ggml.token_type") {
            Some(super::gguf::Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    super::gguf::Value::Int(t) => *t,
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let control: Vec<bool> = (0..tokens.len())
            .map(|i| types.get(i) == Some(&CONTROL))
            .collect();
        let ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .filter_map(|m| m.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>();
        let build = |with_control: bool| -> Result<tokenizers::Tokenizer, TokenizerError> {
            let bpe = BPE::builder()
                .vocab_and_merges(
                    ids.iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect::<tokenizers::models::bpe::Vocab>(),
                    merges.clone(),
                )
                .build()
                .map_err(|e| TokenizerError::Build(e.to_string()))?;
            let mut tokenizer = tokenizers::Tokenizer::new(bpe);
            tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ]))));
            if with_control {
                let special: Vec<AddedToken> = (0..tokens.len())
                    .filter(|&i| control[i])
                    .map(|i| AddedToken::from(tokens[i].to_string(), true))
                    .collect();
                tokenizer
                    .add_special_tokens(special)
                    .map_err(|e| TokenizerError::Build(e.to_string()))?;
            }
            Ok(tokenizer)
        };
        let decode = byte_decoder();
        let bytes = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| match control[i] {
                true => Vec::new(),
                false => t
                    .chars()
                    .map(|c| decode.get(&c).copied().unwrap_or(b'?'))
                    .collect(),
            })
            .collect();
        Ok(Tokenizer {
            with_control: build(true)?,
            plain: build(false)?,
            bytes,
            control,
            ids,
        })
    }

    /// Encodes text that may not contain control tokens: any `<|…|>` in it is plain text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        encode_with(&self.plain, text)
    }

    /// Encodes text written by the chat template, where control tokens are recognised.
    pub fn encode_template(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        encode_with(&self.with_control, text)
    }

    /// The bytes token `id` stands for (nothing for control tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether `id` is a control token.
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// The id of a token given by its text, e.g. `<|im_end|>`.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }
}

fn encode_with(tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
    tokenizer
        .encode_fast(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| TokenizerError::Build(e.to_string()))
}

/// GPT-2's map from the printable characters byte-level BPE uses back to bytes.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut shifted = 0u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap_or('?')
            };
            (c, b)
        })
        .collect()
}

/// Turns a stream of token bytes into text, holding back an incomplete UTF-8 sequence until
/// the token that completes it arrives.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes and returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Bytes that can never become valid (a model can emit any byte) are replaced.
            Err(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return text;
            }
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        text
    }

    /// Whatever is left at the end.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_decoder_is_a_bijection_onto_bytes() {
        let map = byte_decoder();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'Ġ'], b' ');
        assert_eq!(map[&'Ċ'], b'\n');
        assert_eq!(map[&'a'], b'a');
    }

    #[test]
    fn utf8_stream_holds_back_split_characters() {
        let mut s = Utf8Stream::default();
        let euro = "€".as_bytes();
        assert_eq!(s.push(&euro[..1]), "");
        assert_eq!(s.push(&euro[1..]), "€");
        assert_eq!(s.push(b"ok"), "ok");
        assert_eq!(s.push(&[0xff]), "\u{fffd}");
        assert_eq!(s.push(&euro[..2]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
