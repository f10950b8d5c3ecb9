//! The judge: a rubric, scored twice with the sides' order swapped, asked for structured JSON
//! and read leniently. An answer that cannot be read gets a repair request, then fresh
//! judging calls (each with its repair request) within the retry budget, with backoff.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};

use crate::event::Speaker;
use crate::llm::retry::RetryPolicy;
use crate::llm::{
    ChatRequest, JsonSchema, LanguageModel, LlmError, Message, NoSink, ResponseFormat, Role,
    TokenLogprobs, Usage,
};
use crate::transcript::{
    Criteria, CriteriaReasons, JudgePass, Score, ScoreMethod, Sides, Verdict, Winner,
};

/// The rubric's criteria, in the order the judge scores them.
pub const CRITERIA: [&str; 4] = ["argument", "evidence", "rebuttal", "fidelity"];

/// The neutral labels the judge sees instead of the sides.
const LABELS: [&str; 2] = ["speaker_1", "speaker_2"];

/// Why a judging pass failed.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("the judge could not be reached: {0}")]
    Llm(#[from] LlmError),
    #[error(
        "the judge's reply could not be read in {attempts} attempt(s), each with a repair \
         request: {reason}"
    )]
    Unreadable { reason: String, attempts: u32 },
}

/// How a judging pass calls its model.
#[derive(Debug, Clone, Copy)]
pub struct PassSettings {
    pub max_tokens: u32,
    pub temperature: f32,
    /// How many fresh judging calls follow an answer that cannot be read even repaired
    /// (`max_retries`), and the backoff between them.
    pub retry: RetryPolicy,
}

/// The JSON schema of one pass's reply (the subset that constrained decoders support:
/// objects, required properties, enums, bounded integers and strings). `brief` (small models)
/// asks for bare scores and a short rationale: a reason per score is ten tokens of structure
/// and ten of text, which a small model writes slowly and fills with filler.
///
/// Built once: every judging pass asks for it.
pub fn schema(brief: bool) -> Arc<JsonSchema> {
    static FULL: LazyLock<Arc<JsonSchema>> = LazyLock::new(|| Arc::new(build_schema(false)));
    static BRIEF: LazyLock<Arc<JsonSchema>> = LazyLock::new(|| Arc::new(build_schema(true)));
    if brief { BRIEF.clone() } else { FULL.clone() }
}

fn build_schema(brief: bool) -> JsonSchema {
    let score = json!({"type": "integer", "minimum": 1, "maximum": 10});
    let criterion = if brief {
        score
    } else {
        json!({
            "type": "object",
            "properties": {
                "score": score,
                "reason": {"type": "string", "minLength": 8, "maxLength": 200},
            },
            "required": ["score", "reason"],
            "additionalProperties": false,
        })
    };
    let rationale_max = if brief { 300 } else { 600 };
    let card = json!({
        "type": "object",
        "properties": CRITERIA.iter().map(|c| (c.to_string(), criterion.clone())).collect::<serde_json::Map<_, _>>(),
        "required": CRITERIA,
        "additionalProperties": false,
    });
    JsonSchema::new(
        "debate_verdict",
        json!({
            "type": "object",
            "properties": {
                "speaker_1": card,
                "speaker_2": card,
                "winner": {"type": "string", "enum": ["speaker_1", "speaker_2", "tie"]},
                "rationale": {"type": "string", "minLength": 20, "maxLength": rationale_max},
            },
            "required": ["speaker_1", "speaker_2", "winner", "rationale"],
            "additionalProperties": false,
        }),
    )
}

/// A pass as the judge wrote it, in its own labels.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPass {
    pub scores: [Criteria; 2],
    pub reasons: [CriteriaReasons; 2],
    /// 0 or 1 for a labelled speaker, `None` for a tie.
    pub winner: Option<usize>,
    pub rationale: String,
    /// How the scores were read.
    pub method: ScoreMethod,
}

/// Reads a judge's reply, forgiving what models commonly get wrong: code fences, prose
/// around the object, scores as strings ("7", "7/10") or out of range, label spellings
/// ("Speaker 1", "speaker1"), missing reasons.
pub fn parse_lenient(reply: &str) -> Result<RawPass, String> {
    let object = extract_object(reply).ok_or("no JSON object in the reply")?;
    // Small models under a grammar still put raw line breaks inside strings.
    let value: Value = serde_json::from_str(object)
        .or_else(|_| serde_json::from_str(&escape_raw_controls(object)))
        .map_err(|e| format!("invalid JSON: {e}"))?;
    let map = value.as_object().ok_or("the reply is not a JSON object")?;
    let field = |wanted: &str| {
        map.iter()
            .find(|(k, _)| normalize_label(k) == normalize_label(wanted))
            .map(|(_, v)| v)
    };
    let mut scores = [Criteria::default(), Criteria::default()];
    let mut reasons = [CriteriaReasons::default(), CriteriaReasons::default()];
    for (i, label) in LABELS.iter().enumerate() {
        let card = field(label)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("missing the scores of `{label}`"))?;
        for criterion in CRITERIA {
            let entry = card
                .get(criterion)
                .ok_or_else(|| format!("`{label}` has no `{criterion}` score"))?;
            let (score, reason) = match entry {
                Value::Object(o) => (
                    o.get("score").and_then(read_score),
                    o.get("reason").and_then(Value::as_str).unwrap_or(""),
                ),
                other => (read_score(other), ""),
            };
            let score = score.ok_or_else(|| format!("`{label}.{criterion}` is not a score"))?;
            let reason = reason.trim().to_string();
            match criterion {
                "argument" => (scores[i].argument, reasons[i].argument) = (score, reason),
                "evidence" => (scores[i].evidence, reasons[i].evidence) = (score, reason),
                "rebuttal" => (scores[i].rebuttal, reasons[i].rebuttal) = (score, reason),
                _ => (scores[i].fidelity, reasons[i].fidelity) = (score, reason),
            }
        }
    }
    let winner = field("winner")
        .and_then(Value::as_str)
        .ok_or("missing `winner`")?;
    let winner = match normalize_label(winner).as_str() {
        "speaker1" | "1" | "first" => Some(0),
        "speaker2" | "2" | "second" => Some(1),
        "tie" | "draw" | "none" => None,
        other => {
            return Err(format!(
                "`winner` is `{other}`, not speaker_1, speaker_2 or tie"
            ));
        }
    };
    let rationale = field("rationale")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(RawPass {
        scores,
        reasons,
        winner,
        rationale,
        method: ScoreMethod::Sampled,
    })
}

/// Escapes control characters that stand raw inside JSON strings.
fn escape_raw_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '\n' if in_string => {
                out.push_str("\\n");
                continue;
            }
            c if in_string && c.is_control() => {
                out.push(' ');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The outermost `{…}` of a reply, fences and prose around it ignored.
fn extract_object(reply: &str) -> Option<&str> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    (end > start).then(|| &reply[start..=end])
}

fn normalize_label(label: &str) -> String {
    label
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A score from 1 to 10, from a number or a string like "7" or "7/10".
fn read_score(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.split('/').next()?.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then(|| n.round().clamp(1.0, 10.0))
}

/// How the judge's endpoint takes structured output: `json_schema` until it refuses, then
/// `json_object` with the schema beside it, then nothing (the prompt describes the shape,
/// and the reply is read leniently). Remembered, so later passes do not ask again.
#[derive(Debug)]
pub struct StructuredOutput {
    level: AtomicU8,
    /// Which [`schema`] to ask for.
    brief: bool,
    /// Whether the endpoint gave token probabilities when asked (until it does not).
    probabilities: AtomicBool,
}

impl StructuredOutput {
    pub fn new(brief: bool) -> StructuredOutput {
        StructuredOutput {
            level: AtomicU8::new(0),
            brief,
            probabilities: AtomicBool::new(true),
        }
    }

    /// How many alternatives to ask for at each token, while the endpoint answers them.
    fn top_logprobs(&self) -> Option<u8> {
        self.probabilities
            .load(Ordering::Relaxed)
            .then_some(TOP_LOGPROBS)
    }

    /// The endpoint gives no probabilities: ask no more (and say so once).
    fn no_probabilities(&self) {
        if self.probabilities.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "the judge's endpoint gives no token probabilities: scores are read as written"
            );
        }
    }

    fn format(&self) -> Option<ResponseFormat> {
        match self.level.load(Ordering::Relaxed) {
            0 => Some(ResponseFormat::JsonSchema(schema(self.brief))),
            1 => Some(ResponseFormat::JsonObject(schema(self.brief))),
            _ => None,
        }
    }

    /// Steps down from the format the endpoint refused.
    fn refused(&self, format: &ResponseFormat) {
        let level = match format {
            ResponseFormat::JsonSchema(_) => 1,
            ResponseFormat::JsonObject(_) => 2,
        };
        self.level.fetch_max(level, Ordering::Relaxed);
    }
}

/// Runs one judging pass over `messages`, in which the sides appear in `order`: structured
/// output where the endpoint has it, a lenient read, a repair request; an answer still
/// unreadable is judged again from the start, up to `settings.retry.max_retries` times, with
/// backoff. (Failed calls are retried by the model itself, [`crate::llm::retry`].)
pub async fn run_pass(
    model: &dyn LanguageModel,
    structured: &StructuredOutput,
    messages: Vec<Message>,
    order: [Speaker; 2],
    settings: &PassSettings,
    usage: &mut Usage,
) -> Result<JudgePass, JudgeError> {
    let mut retry = 0;
    loop {
        match read_once(model, structured, messages.clone(), settings, usage).await {
            Ok((raw, repaired)) => return Ok(to_sides(raw, order, repaired)),
            Err(Unreadable(reason)) if retry < settings.retry.max_retries => {
                tracing::info!(retry, %reason, "the judge's answer could not be read, even repaired: judging again");
                let wait = settings.retry.delay(retry, &LlmError::Protocol(reason));
                tokio::time::sleep(wait).await;
                retry += 1;
            }
            Err(Unreadable(reason)) => {
                return Err(JudgeError::Unreadable {
                    reason,
                    attempts: retry + 1,
                });
            }
            Err(Failed(e)) => return Err(e.into()),
        }
    }
}

/// Why one attempt at a pass gave nothing.
enum AttemptError {
    /// The answer and its repair could not be read (why).
    Unreadable(String),
    /// A call failed (after its retries).
    Failed(LlmError),
}

use AttemptError::{Failed, Unreadable};

impl From<LlmError> for AttemptError {
    fn from(e: LlmError) -> AttemptError {
        Failed(e)
    }
}

/// One judging call and, if its answer cannot be read, one repair request: the pass as the
/// judge wrote it, and whether it needed the repair.
async fn read_once(
    model: &dyn LanguageModel,
    structured: &StructuredOutput,
    messages: Vec<Message>,
    settings: &PassSettings,
    usage: &mut Usage,
) -> Result<(RawPass, bool), AttemptError> {
    let mut request = ChatRequest {
        messages,
        max_tokens: settings.max_tokens,
        temperature: settings.temperature,
        seed: None,
        response_format: structured.format(),
        stream: false,
        top_logprobs: structured.top_logprobs(),
        stop: Vec::new(),
        continue_reply: None,
        reader_waiting: false,
    };
    let first = loop {
        match model.complete(&request, &NoSink).await {
            Err(e) if request.top_logprobs.is_some() && e.rejects("logprobs") => {
                structured.no_probabilities();
                request.top_logprobs = None;
            }
            Err(e) if e.rejects_response_format() => match &request.response_format {
                Some(format) => {
                    structured.refused(format);
                    request.response_format = structured.format();
                }
                None => return Err(Failed(e)),
            },
            result => break result?,
        }
    };
    *usage += first.usage;
    if request.top_logprobs.is_some() && first.logprobs.is_none() {
        structured.no_probabilities();
    }
    let (raw, repaired) = match parse_lenient(&first.text) {
        Ok(mut raw) => {
            raw.method = ScoreMethod::Sampled;
            if let Some(expected) = first
                .logprobs
                .as_deref()
                .and_then(|l| expected_scores(&first.text, l))
            {
                raw.scores = expected;
                raw.method = ScoreMethod::Expected;
            }
            (raw, false)
        }
        Err(problem) => {
            request
                .messages
                .push(Message::new(Role::Assistant, first.text));
            request.messages.push(Message::new(
                Role::User,
                format!(
                    "That reply could not be read ({problem}). Reply again with only the JSON \
                     object described, with keys speaker_1, speaker_2, winner and rationale."
                ),
            ));
            let second = model.complete(&request, &NoSink).await?;
            *usage += second.usage;
            (parse_lenient(&second.text).map_err(Unreadable)?, true)
        }
    };
    Ok((raw, repaired))
}

/// Maps a pass from the judge's labels back to the sides.
fn to_sides(raw: RawPass, order: [Speaker; 2], repaired: bool) -> JudgePass {
    let index_of = |side: Speaker| usize::from(order[0] != side);
    let winner = match raw.winner {
        None => Winner::Tie,
        Some(i) if order[i] == Speaker::A => Winner::A,
        Some(_) => Winner::B,
    };
    JudgePass {
        order,
        winner,
        scores: Sides {
            a: raw.scores[index_of(Speaker::A)],
            b: raw.scores[index_of(Speaker::B)],
        },
        reasons: Sides {
            a: raw.reasons[index_of(Speaker::A)].clone(),
            b: raw.reasons[index_of(Speaker::B)].clone(),
        },
        rationale: raw.rationale,
        repaired,
        method: raw.method,
    }
}

/// Alternatives asked for at each token of a verdict.
const TOP_LOGPROBS: u8 = 10;

/// The scores of a reply as expected values: at each score's place in the text, the
/// integers 1–10 among the token's alternatives, weighted by their probabilities. `None`
/// unless every score of both speakers can be read so.
fn expected_scores(text: &str, tokens: &[TokenLogprobs]) -> Option<[Criteria; 2]> {
    // Where each token starts in the text (the tokens are the text, in order).
    let mut starts = Vec::with_capacity(tokens.len());
    let mut at = 0;
    for token in tokens {
        starts.push(at);
        at += token.token.len();
    }
    if at != text.len() {
        return None;
    }
    let mut scores = [Criteria::default(), Criteria::default()];
    let mut filled = [[false; 4]; 2];
    for place in score_places(text) {
        let i = starts
            .partition_point(|&s| s <= place.offset)
            .checked_sub(1)?;
        let value = expected_value(&tokens[i].top)?;
        let c = CRITERIA.iter().position(|c| *c == place.criterion)?;
        let slot = match c {
            0 => &mut scores[place.label].argument,
            1 => &mut scores[place.label].evidence,
            2 => &mut scores[place.label].rebuttal,
            _ => &mut scores[place.label].fidelity,
        };
        *slot = value;
        filled[place.label][c] = true;
    }
    filled.iter().flatten().all(|f| *f).then_some(scores)
}

/// The expected integer score over alternatives whose text is a score from 1 to 10.
fn expected_value(top: &[(String, f32)]) -> Option<f64> {
    let (mut weight, mut sum) = (0.0f64, 0.0f64);
    for (token, logprob) in top {
        let digits = token.trim_matches(|c: char| !c.is_ascii_digit());
        if let Ok(v) = digits.parse::<u8>()
            && (1..=10).contains(&v)
            && logprob.is_finite()
        {
            let p = f64::from(*logprob).exp();
            weight += p;
            sum += p * f64::from(v);
        }
    }
    (weight > 0.0).then(|| sum / weight)
}

/// Where a score is written in a reply: which speaker's card (0 or 1), which criterion.
struct ScorePlace {
    offset: usize,
    label: usize,
    criterion: &'static str,
}

/// The score numbers of a verdict's JSON, found by the keys before them: a criterion's
/// value, or the `score` inside a criterion's object, under `speaker_1` or `speaker_2`.
fn score_places(text: &str) -> Vec<ScorePlace> {
    let bytes = text.as_bytes();
    let mut places = Vec::new();
    let (mut label, mut criterion): (Option<usize>, Option<&'static str>) = (None, None);
    let mut last_key: Option<String> = None;
    let mut after_colon = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let string = text.get(start..i.min(text.len())).unwrap_or("");
                let is_key = text[i.min(text.len())..]
                    .trim_start_matches('"')
                    .trim_start()
                    .starts_with(':');
                if is_key {
                    let key = normalize_label(string);
                    match LABELS.iter().position(|l| normalize_label(l) == key) {
                        Some(n) => label = Some(n),
                        None => {
                            if let Some(c) = CRITERIA.iter().find(|c| **c == key) {
                                criterion = Some(c);
                            }
                        }
                    }
                    last_key = Some(key);
                }
                after_colon = false;
            }
            b':' => after_colon = true,
            b if b.is_ascii_digit() && after_colon => {
                let key = last_key.as_deref();
                let is_score = key == Some("score") || key.is_some_and(|k| CRITERIA.contains(&k));
                if let (true, Some(label), Some(criterion)) = (is_score, label, criterion) {
                    places.push(ScorePlace {
                        offset: i,
                        label,
                        criterion,
                    });
                }
                while i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
                    i += 1;
                }
                after_colon = false;
            }
            b' ' | b'\n' | b'\t' | b'\r' => {}
            _ => after_colon = false,
        }
        i += 1;
    }
    places
}

/// Combines the two passes: scores averaged; a winner only if both passes agree, else a
/// contested tie. Rationales name the personas instead of the neutral labels. A single pass
/// (the other could not be read) gives a single-pass verdict of low confidence.
pub fn combine(passes: Vec<JudgePass>, names: &Sides<String>) -> Verdict {
    let mean = |passes: &[JudgePass], side: fn(&Sides<Criteria>) -> &Criteria| {
        let n = passes.len().max(1) as f64;
        let sum = passes.iter().fold(Criteria::default(), |acc, p| {
            let c = side(&p.scores);
            Criteria {
                argument: acc.argument + c.argument,
                evidence: acc.evidence + c.evidence,
                rebuttal: acc.rebuttal + c.rebuttal,
                fidelity: acc.fidelity + c.fidelity,
            }
        });
        let criteria = Criteria {
            argument: sum.argument / n,
            evidence: sum.evidence / n,
            rebuttal: sum.rebuttal / n,
            fidelity: sum.fidelity / n,
        };
        Score {
            total: criteria.total(),
            criteria,
        }
    };
    let winners: Vec<Winner> = passes.iter().map(|p| p.winner).collect();
    let agreed = winners.windows(2).all(|w| w[0] == w[1]);
    let (winner, contested) = match (agreed, winners.first()) {
        (true, Some(&w)) => (w, false),
        _ => (Winner::Tie, true),
    };
    let scores = Sides {
        a: mean(&passes, |s| &s.a),
        b: mean(&passes, |s| &s.b),
    };
    let single_pass = passes.len() == 1;
    let mut passes = passes;
    for pass in &mut passes {
        pass.rationale = name_labels(&pass.rationale, pass.order, names);
        for reasons in [&mut pass.reasons.a, &mut pass.reasons.b] {
            for text in [
                &mut reasons.argument,
                &mut reasons.evidence,
                &mut reasons.rebuttal,
                &mut reasons.fidelity,
            ] {
                *text = name_labels(text, pass.order, names);
            }
        }
    }
    let rationale = passes
        .iter()
        .map(|p| p.rationale.as_str())
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    // One method when every pass used it; mixed passes are no better than sampled.
    let method = match passes.first() {
        Some(first) if passes.iter().all(|p| p.method == first.method) => first.method,
        _ => ScoreMethod::Sampled,
    };
    Verdict {
        winner,
        contested,
        margin: (scores.a.total - scores.b.total).abs(),
        scores,
        rationale,
        passes,
        method,
        // One pass alone never claims two: it says so, and says little.
        low_confidence: single_pass,
        single_pass,
    }
}

/// Replaces "speaker_1", "Speaker 1" and the like with the persona's name.
fn name_labels(text: &str, order: [Speaker; 2], names: &Sides<String>) -> String {
    let mut out = text.to_string();
    for (i, side) in order.iter().enumerate() {
        let name = names.get(*side);
        for label in [
            format!("speaker_{}", i + 1),
            format!("Speaker_{}", i + 1),
            format!("Speaker {}", i + 1),
            format!("speaker {}", i + 1),
        ] {
            out = out.replace(&label, name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each character a token; a digit after a `:` weighs itself 3 to 1 against one more.
    fn tokens_of(text: &str) -> Vec<TokenLogprobs> {
        let mut out = Vec::new();
        let mut before = String::new();
        for c in text.chars() {
            let token = c.to_string();
            let top = match c.to_digit(10) {
                Some(d) if before.trim_end().ends_with(':') => vec![
                    (token.clone(), 0.75f32.ln()),
                    ((d + 1).to_string(), 0.25f32.ln()),
                    ("\"".to_string(), -3.0),
                ],
                _ => vec![(token.clone(), 0.0)],
            };
            before.push(c);
            out.push(TokenLogprobs { token, top });
        }
        out
    }

    #[test]
    fn expected_scores_are_read_at_each_score_and_nowhere_else() {
        let text = r#"{"speaker_1": {"argument": {"score": 7, "reason": "a: 9 out of 10"}, "evidence": {"score": 6, "reason": "x"}, "rebuttal": {"score": 5, "reason": "x"}, "fidelity": {"score": 8, "reason": "x"}}, "speaker_2": {"argument": 4, "evidence": 3, "rebuttal": 2, "fidelity": 1}, "winner": "speaker_1", "rationale": "speaker_1: 2 ahead"}"#;
        let [one, two] = expected_scores(text, &tokens_of(text)).expect("every score placed");
        let rounded = |c: Criteria| {
            [c.argument, c.evidence, c.rebuttal, c.fidelity].map(|v| (v * 1e6).round() / 1e6)
        };
        assert_eq!(rounded(one), [7.25, 6.25, 5.25, 8.25]);
        assert_eq!(rounded(two), [4.25, 3.25, 2.25, 1.25]);
        // Tokens that do not make up the text, or a missing score, give none.
        assert!(expected_scores(text, &tokens_of("{}")).is_none());
        let partial = r#"{"speaker_1": {"argument": 7}}"#;
        assert!(expected_scores(partial, &tokens_of(partial)).is_none());
    }

    fn reply(winner: &str) -> String {
        let card = |s: u8| {
            format!(
                r#"{{"argument": {{"score": {s}, "reason": "r"}}, "evidence": {{"score": "{s}/10", "reason": "r"}}, "rebuttal": {s}, "fidelity": {{"score": 12, "reason": "r"}}}}"#
            )
        };
        format!(
            "Here is my verdict:\n```json\n{{\"Speaker 1\": {}, \"speaker2\": {}, \"winner\": \"{winner}\", \"rationale\": \"speaker_1 was sharper than Speaker 2.\"}}\n```",
            card(8),
            card(5)
        )
    }

    #[test]
    fn lenient_parse_accepts_common_deviations() {
        let raw = parse_lenient(&reply("Speaker 1")).unwrap();
        assert_eq!(raw.winner, Some(0));
        assert_eq!(raw.scores[0].evidence, 8.0);
        assert_eq!(raw.scores[0].fidelity, 10.0, "clamped to the scale");
        assert_eq!(raw.scores[1].argument, 5.0);
    }

    #[test]
    fn raw_line_breaks_inside_strings_are_read() {
        let reply = reply("speaker_2").replace("was sharper than", "was\nsharper\tthan");
        let raw = parse_lenient(&reply).unwrap();
        assert_eq!(raw.winner, Some(1));
        assert_eq!(raw.rationale, "speaker_1 was\nsharper than Speaker 2.");
    }

    #[test]
    fn lenient_parse_rejects_what_cannot_be_read() {
        assert!(parse_lenient("I think the first speaker won.").is_err());
        assert!(
            parse_lenient(&reply("the better one"))
                .unwrap_err()
                .contains("winner")
        );
        assert!(parse_lenient(r#"{"speaker_1": {}, "speaker_2": {}, "winner": "tie"}"#).is_err());
    }

    #[test]
    fn passes_map_back_to_sides_and_disagreement_is_a_contested_tie() {
        let raw = parse_lenient(&reply("speaker_1")).unwrap();
        let first = to_sides(raw.clone(), [Speaker::A, Speaker::B], false);
        let swapped = to_sides(raw, [Speaker::B, Speaker::A], false);
        assert_eq!(first.winner, Winner::A);
        assert_eq!(
            swapped.winner,
            Winner::B,
            "the same label is the other side when swapped"
        );
        assert_eq!(swapped.scores.b.argument, 8.0);

        let names = Sides {
            a: "Churchill".to_string(),
            b: "Kennan".to_string(),
        };
        let verdict = combine(vec![first.clone(), swapped], &names);
        assert_eq!((verdict.winner, verdict.contested), (Winner::Tie, true));
        assert_eq!(verdict.scores.a.criteria.argument, 6.5);

        let verdict = combine(vec![first.clone(), first], &names);
        assert_eq!((verdict.winner, verdict.contested), (Winner::A, false));
        assert!(
            verdict
                .rationale
                .starts_with("Churchill was sharper than Kennan."),
            "{}",
            verdict.rationale
        );
    }
}
