//! Character Cards (V1, V2 and V3) in and out: read from JSON, from a PNG's `chara` and
//! `ccv3` text chunks, or from a CHARX zip's `card.json`, mapped onto the persona format with
//! a report of every field that had no home; and a persona written out as a CCv3 card with
//! our own fields under `data.extensions.crossfire`, so a round trip loses nothing.
//!
//! Cards in the wild are often malformed (`character_book: null`, lorebook `entries` as an
//! object, `alternate_greetings` as a string): what can be understood is taken, the rest is
//! reported. A card's text is data: it becomes field values in a persona, which the prompt
//! templates insert as values, never as template source; its system prompt and other
//! instructions to a model are not imported at all.

use std::io::{Cursor, Read};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::persona::{Persona, PersonaKind, Position};

/// The largest card file read, and the largest text inside one.
pub const MAX_CARD_BYTES: usize = 8 * 1024 * 1024;

/// Why a card could not be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    #[error("the card is {0} bytes; the limit is {MAX_CARD_BYTES}")]
    TooLarge(usize),
    #[error("not a Character Card: {0}")]
    NotACard(String),
    #[error("the card has no name")]
    NoName,
}

/// A card read and mapped onto a persona.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub persona: Persona,
    /// The persona as a TOML file.
    pub toml: String,
    /// `chara_card_v1`, `chara_card_v2` or `chara_card_v3`.
    pub spec: String,
    /// Every card field that had no home in the persona, or was read only in part, and why.
    pub report: Vec<String>,
}

/// Reads a card file of any of the supported shapes (JSON, PNG, CHARX), found by content.
pub fn import(bytes: &[u8], id: Option<&str>) -> Result<Imported, CardError> {
    if bytes.len() > MAX_CARD_BYTES {
        return Err(CardError::TooLarge(bytes.len()));
    }
    let json = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_card(bytes)?
    } else if bytes.starts_with(b"PK\x03\x04") {
        charx_card(bytes)?
    } else {
        std::str::from_utf8(bytes)
            .map_err(|_| CardError::NotACard("neither JSON, PNG nor CHARX".into()))?
            .to_string()
    };
    let card: Value = serde_json::from_str(json.trim_start_matches('\u{feff}'))
        .map_err(|e| CardError::NotACard(format!("its JSON does not parse: {e}")))?;
    map_card(&card, id)
}

/// The card JSON in a PNG: the `ccv3` text chunk if there is one, else `chara`.
fn png_card(bytes: &[u8]) -> Result<String, CardError> {
    let mut chara = None;
    let mut ccv3 = None;
    let mut at = 8;
    while at + 12 <= bytes.len() {
        let length =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let kind = &bytes[at + 4..at + 8];
        let Some(data) = at
            .checked_add(8)
            .and_then(|start| Some(start..start.checked_add(length)?))
            .and_then(|range| bytes.get(range))
        else {
            break;
        };
        let text = match kind {
            b"tEXt" => data
                .iter()
                .position(|b| *b == 0)
                .map(|nul| (&data[..nul], &data[nul + 1..])),
            // iTXt: keyword, NUL, compression flag, method, language NUL, translation NUL, text.
            b"iTXt" => data.iter().position(|b| *b == 0).and_then(|nul| {
                let rest = data.get(nul + 1..)?;
                if rest.first() != Some(&0) {
                    return None; // compressed: not used by card writers
                }
                let rest = rest.get(2..)?;
                let lang = rest.iter().position(|b| *b == 0)?;
                let rest = rest.get(lang + 1..)?;
                let translated = rest.iter().position(|b| *b == 0)?;
                Some((&data[..nul], rest.get(translated + 1..)?))
            }),
            _ => None,
        };
        if let Some((keyword, text)) = text {
            match keyword.to_ascii_lowercase().as_slice() {
                b"chara" => chara = Some(text.to_vec()),
                b"ccv3" => ccv3 = Some(text.to_vec()),
                _ => {}
            }
        }
        if kind == b"IEND" {
            break;
        }
        at += 12 + length;
    }
    let encoded = ccv3
        .or(chara)
        .ok_or_else(|| CardError::NotACard("a PNG with no `chara` or `ccv3` text chunk".into()))?;
    let cleaned: Vec<u8> = encoded
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
        .map_err(|e| CardError::NotACard(format!("its text chunk is not base64: {e}")))?;
    String::from_utf8(decoded)
        .map_err(|_| CardError::NotACard("its text chunk is not UTF-8 JSON".into()))
}

/// The `card.json` of a CHARX zip.
fn charx_card(bytes: &[u8]) -> Result<String, CardError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| CardError::NotACard(format!("a zip that cannot be read: {e}")))?;
    let file = archive
        .by_name("card.json")
        .map_err(|_| CardError::NotACard("a zip (CHARX) with no card.json at its root".into()))?;
    let mut text = String::new();
    file.take(MAX_CARD_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| CardError::NotACard(format!("its card.json cannot be read: {e}")))?;
    if text.len() > MAX_CARD_BYTES {
        return Err(CardError::TooLarge(text.len()));
    }
    Ok(text)
}

/// A string field, or a report of why it was not one.
fn text_of(data: &Map<String, Value>, key: &str, report: &mut Vec<String>) -> Option<String> {
    match data.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(Value::Array(items)) => {
            report.push(format!("`{key}` is a list where text was expected: joined"));
            let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            Some(parts.join("\n")).filter(|s| !s.trim().is_empty())
        }
        Some(other) => {
            report.push(format!("`{key}` is not text ({other}): left out"));
            None
        }
    }
}

/// A list of strings, accepting a lone string as a list of one.
fn list_of(data: &Map<String, Value>, key: &str, report: &mut Vec<String>) -> Vec<String> {
    match data.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(Value::String(s)) => {
            report.push(format!(
                "`{key}` is a string where a list was expected: read as one item"
            ));
            vec![s.trim().to_string()]
        }
        Some(Value::Array(items)) => {
            let strings: Vec<String> = items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if strings.len() < items.len() {
                report.push(format!("`{key}`: items that are not text were left out"));
            }
            strings
        }
        Some(other) => {
            report.push(format!("`{key}` is not a list ({other}): left out"));
            Vec::new()
        }
    }
}

/// Sentences of a text, for fields the persona keeps as lists.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '.' | '!' | '?' | '\n') {
            let s = current.trim().to_string();
            if s.chars().any(char::is_alphanumeric) {
                out.push(s);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if rest.chars().any(char::is_alphanumeric) {
        out.push(rest.to_string());
    }
    out
}

/// A persona id made from a name: lowercase letters and digits joined by hyphens.
pub fn id_from_name(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    let id: String = id.trim_end_matches('-').chars().take(64).collect();
    if id.is_empty() {
        "imported".to_string()
    } else {
        id.trim_end_matches('-').to_string()
    }
}

/// The example messages' lines spoken by the character (`{{char}}: …`), without the prefix.
fn example_lines(examples: &str) -> Vec<String> {
    examples
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let (who, said) = line.split_once(':')?;
            let who = who.trim().to_lowercase();
            (who == "{{char}}" || who == "<bot>").then(|| said.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .collect()
}

fn map_card(card: &Value, id: Option<&str>) -> Result<Imported, CardError> {
    let mut report = Vec::new();
    let spec = card
        .get("spec")
        .and_then(Value::as_str)
        .unwrap_or("chara_card_v1")
        .to_string();
    let data = match (spec.as_str(), card.get("data")) {
        ("chara_card_v2" | "chara_card_v3", Some(Value::Object(data))) => data.clone(),
        (_, _) if card.get("name").is_some() => match card.as_object() {
            Some(flat) => flat.clone(),
            None => return Err(CardError::NotACard("its JSON is not an object".into())),
        },
        _ => return Err(CardError::NotACard("no `data` object and no `name`".into())),
    };
    let ours = data
        .get("extensions")
        .and_then(|e| e.get("crossfire"))
        .and_then(Value::as_object)
        .cloned();
    if let Some(ours) = ours {
        // A card we wrote: our fields are the persona, whole.
        let mut fields = ours;
        if let Some(id) = id {
            fields.insert("id".into(), Value::String(id.to_string()));
        }
        fields.remove("version");
        let persona: Persona = serde_json::from_value(Value::Object(fields)).map_err(|e| {
            CardError::NotACard(format!("its `extensions.crossfire` is not a persona: {e}"))
        })?;
        return finish(persona, spec, report);
    }

    let name = text_of(&data, "name", &mut report).ok_or(CardError::NoName)?;
    let description = text_of(&data, "description", &mut report);
    let personality = text_of(&data, "personality", &mut report);
    let examples = text_of(&data, "mes_example", &mut report);
    let mut sample_lines: Vec<String> = Vec::new();
    if let Some(first) = text_of(&data, "first_mes", &mut report) {
        sample_lines.push(first);
    }
    sample_lines.extend(list_of(&data, "alternate_greetings", &mut report));
    if let Some(examples) = &examples {
        let lines = example_lines(examples);
        if lines.is_empty() {
            report.push("`mes_example`: no `{{char}}:` lines found: left out".into());
        }
        sample_lines.extend(lines);
    }
    sample_lines.truncate(12);

    let role = description
        .as_deref()
        .and_then(|d| sentences(d).into_iter().next())
        .map(|s| s.replace('\n', " "))
        .unwrap_or_else(|| format!("{name}, from a Character Card"));
    let bio = description.clone().unwrap_or_else(|| {
        report.push("`description` is empty: the bio is only the name".into());
        format!("{name}.")
    });
    let mut worldview: Vec<String> = personality.as_deref().map(sentences).unwrap_or_default();
    if worldview.is_empty() {
        report.push("`personality` is empty: the worldview is the role alone".into());
        worldview.push(role.clone());
    }
    if worldview.len() > 8 {
        report.push(format!(
            "`personality` has {} sentences: the worldview keeps the first 8",
            worldview.len()
        ));
        worldview.truncate(8);
    }
    let voice = personality
        .clone()
        .unwrap_or_else(|| "As in the sample lines.".to_string());

    for (key, why) in [
        (
            "scenario",
            "a persona has no scenario: it debates the story it is given",
        ),
        ("system_prompt", "instructions to a model are not imported"),
        (
            "post_history_instructions",
            "instructions to a model are not imported",
        ),
        ("creator_notes", "notes for people, not the persona"),
        ("creator", "not a persona field"),
        ("character_version", "not a persona field"),
        ("nickname", "not a persona field"),
        ("source", "not a persona field"),
    ] {
        if let Some(value) = data.get(key)
            && !value.is_null()
            && value.as_str().is_none_or(|s| !s.trim().is_empty())
        {
            report.push(format!("`{key}` left out: {why}"));
        }
    }
    match data.get("character_book") {
        None | Some(Value::Null) => {}
        Some(book) => {
            let entries = match book.get("entries") {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(o)) => {
                    report.push(
                        "`character_book.entries` is an object, not a list: read its values".into(),
                    );
                    o.len()
                }
                _ => 0,
            };
            report.push(format!(
                "`character_book` ({entries} entries) left out: a persona has no lorebook"
            ));
        }
    }
    for key in [
        "assets",
        "group_only_greetings",
        "creator_notes_multilingual",
    ] {
        if data
            .get(key)
            .is_some_and(|v| !v.is_null() && v != &json!([]) && v != &json!({}))
        {
            report.push(format!("`{key}` left out: not a persona field"));
        }
    }
    if let Some(Value::Object(extensions)) = data.get("extensions") {
        for key in extensions.keys() {
            report.push(format!(
                "`extensions.{key}` left out: another program's fields"
            ));
        }
    }
    let persona = Persona {
        id: id.map_or_else(|| id_from_name(&name), str::to_string),
        name,
        kind: PersonaKind::Archetype,
        lived: None,
        role,
        bio,
        worldview,
        voice,
        signature_phrases: Vec::new(),
        sample_lines,
        knowledge_horizon: None,
        debate_style: None,
        positions: Vec::<Position>::new(),
        avoid: Vec::new(),
        tags: list_of(&data, "tags", &mut report),
        version: String::new(),
    };
    report.push(
        "`kind` set to `archetype`: a card does not say whether its figure is historical".into(),
    );
    finish(persona, spec, report)
}

/// The persona as a TOML file, checked as `personas check` would check it.
fn finish(mut persona: Persona, spec: String, report: Vec<String>) -> Result<Imported, CardError> {
    let toml = to_toml(&persona);
    let path = std::path::Path::new(&persona.id).with_extension("toml");
    persona = Persona::parse(&path, toml.as_bytes(), Some(&persona.id)).map_err(|problems| {
        let texts: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        CardError::NotACard(format!("it maps to no valid persona: {}", texts.join("; ")))
    })?;
    Ok(Imported {
        persona,
        toml,
        spec,
        report,
    })
}

/// A persona as a TOML file, its fields in the documented order.
pub fn to_toml(persona: &Persona) -> String {
    let mut value = match toml::Value::try_from(persona) {
        Ok(toml::Value::Table(table)) => table,
        _ => toml::value::Table::new(),
    };
    value.remove("version");
    toml::to_string(&value).unwrap_or_default()
}

/// A persona as a Character Card V3, our own fields whole under `extensions.crossfire`.
pub fn export(persona: &Persona) -> Value {
    let mut ours = serde_json::to_value(persona).unwrap_or(Value::Null);
    if let Some(object) = ours.as_object_mut() {
        object.remove("version");
    }
    let examples: Vec<String> = persona
        .sample_lines
        .iter()
        .map(|l| format!("<START>\n{{{{char}}}}: {l}"))
        .collect();
    json!({
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": persona.name,
            "description": persona.bio,
            "personality": persona.worldview.join(" "),
            "scenario": "",
            "first_mes": persona.sample_lines.first().cloned().unwrap_or_default(),
            "mes_example": examples.join("\n"),
            "creator_notes": match &persona.lived {
                Some(lived) => format!("{} ({lived}). Exported from Crossfire.", persona.role),
                None => format!("{}. Exported from Crossfire.", persona.role),
            },
            "system_prompt": "",
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": persona.tags,
            "creator": "Crossfire",
            "character_version": persona.version,
            "extensions": { "crossfire": ours },
            "group_only_greetings": [],
        }
    })
}

/// A persona as a PNG card: a small portrait-sized image with both the `chara` (V2) and the
/// `ccv3` (V3) text chunks.
pub fn export_png(persona: &Persona) -> Result<Vec<u8>, String> {
    let v3 = export(persona);
    let mut v2 = v3.clone();
    v2["spec"] = json!("chara_card_v2");
    v2["spec_version"] = json!("2.0");
    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let mut out = Vec::new();
    {
        let (width, height) = (64, 64);
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .add_text_chunk("chara".into(), b64(&v2))
            .map_err(|e| e.to_string())?;
        encoder
            .add_text_chunk("ccv3".into(), b64(&v3))
            .map_err(|e| e.to_string())?;
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        let pixels = vec![0x2du8; (width * height * 3) as usize];
        writer
            .write_image_data(&pixels)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}
