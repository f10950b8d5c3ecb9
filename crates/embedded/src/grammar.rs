//! Constrained decoding for JSON schemas: a byte-at-a-time matcher that says whether text can
//! still grow into a document the schema accepts. The generator asks it about each candidate
//! token and never picks one that would break the schema, so the reply always parses.
//!
//! The subset is what structured output usually needs (and what the judge uses): objects
//! (properties written in schema order, all of them), arrays with bounds, strings with length
//! bounds, enums, bounded integers, numbers, booleans and null. Whitespace between tokens is
//! allowed but bounded, and every string and array has a bound, so every document ends.

use std::sync::Arc;

use serde_json::Value;

/// Why a schema cannot be used for constrained decoding.
#[derive(Debug, thiserror::Error)]
#[error("JSON schema not supported for constrained decoding at {path}: {reason}")]
pub struct SchemaError {
    path: String,
    reason: String,
}

/// Whitespace allowed in one gap between tokens: one character. Compact JSON costs the
/// fewest tokens, and a small model given room for indentation fills it.
const MAX_GAP: u8 = 1;
/// Bounds where the schema gives none.
const DEFAULT_MAX_STRING: usize = 2000;
const DEFAULT_MAX_ITEMS: usize = 64;
/// Longest number text.
const MAX_NUMBER: u8 = 16;
/// Deepest nesting of objects and arrays.
const MAX_DEPTH: usize = 15;
/// Most options of an enum: the matcher keeps the ones still alive as bits of a `u64`.
const MAX_OPTIONS: usize = 64;

/// A node's place in its schema's arena.
type NodeId = u32;

/// A compiled schema node.
#[derive(Debug, Clone)]
enum Node {
    /// Properties in order: each key's literal (JSON-encoded with its quotes) and its value.
    Object(Vec<(NodeId, NodeId)>),
    Array {
        items: NodeId,
        min: usize,
        max: usize,
    },
    String {
        min: usize,
        max: usize,
    },
    /// JSON-encoded alternatives (`"tie"`, `true`, `null`).
    Literal(Vec<String>),
    Integer {
        min: i64,
        max: i64,
    },
    Number,
}

/// A compiled schema: its nodes in one arena, which matchers refer to by index.
#[derive(Debug, Clone)]
pub struct Schema {
    nodes: Vec<Node>,
    root: NodeId,
}

impl Schema {
    /// Compiles a JSON schema, or says which part of it cannot be enforced. Compiled, it
    /// is shared by the matchers of every generation that follows it.
    pub fn compile(schema: &Value) -> Result<Arc<Schema>, SchemaError> {
        let mut nodes = Vec::new();
        let root = compile(schema, "$", 0, &mut nodes)?;
        Ok(Arc::new(Schema { nodes, root }))
    }

    /// A matcher at the start of a document; it shares the schema.
    pub fn matcher(self: &Arc<Schema>) -> Matcher {
        let mut state = State {
            frames: [Frame::Done; MAX_DEPTH + 2],
            depth: 0,
        };
        state.push(Frame::Value(self.root, 0));
        Matcher {
            schema: self.clone(),
            state,
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// A literal node's options.
    fn options(&self, id: NodeId) -> &[String] {
        match self.node(id) {
            Node::Literal(options) => options,
            _ => &[],
        }
    }

    /// An object node's fields.
    fn fields(&self, id: NodeId) -> &[(NodeId, NodeId)] {
        match self.node(id) {
            Node::Object(fields) => fields,
            _ => &[],
        }
    }
}

fn add(nodes: &mut Vec<Node>, node: Node) -> NodeId {
    nodes.push(node);
    (nodes.len() - 1) as NodeId
}

fn compile(
    schema: &Value,
    path: &str,
    depth: usize,
    nodes: &mut Vec<Node>,
) -> Result<NodeId, SchemaError> {
    let fail = |reason: &str| SchemaError {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if depth > MAX_DEPTH {
        return Err(fail("nested too deeply"));
    }
    let usize_of = |key: &str, default: usize| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .map_or(default, |v| v as usize)
    };
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if options.is_empty() {
            return Err(fail("empty enum"));
        }
        if options.len() > MAX_OPTIONS {
            return Err(fail(&format!(
                "an enum of {} options (at most {MAX_OPTIONS})",
                options.len()
            )));
        }
        let literal = Node::Literal(options.iter().map(Value::to_string).collect());
        return Ok(add(nodes, literal));
    }
    if let Some(value) = schema.get("const") {
        return Ok(add(nodes, Node::Literal(vec![value.to_string()])));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let properties = schema
                .get("properties")
                .and_then(Value::as_object)
                .ok_or_else(|| fail("an object needs `properties`"))?;
            // Properties are written in the order of `required` (JSON maps may come sorted),
            // then any others.
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut ordered: Vec<(&String, &Value)> = required
                .iter()
                .filter_map(|name| properties.get_key_value(*name))
                .collect();
            ordered.extend(
                properties
                    .iter()
                    .filter(|(name, _)| !required.contains(&name.as_str())),
            );
            let fields = ordered
                .into_iter()
                .map(|(name, sub)| {
                    let key = Value::String(name.clone()).to_string();
                    let key = add(nodes, Node::Literal(vec![key]));
                    Ok((
                        key,
                        compile(sub, &format!("{path}.{name}"), depth + 1, nodes)?,
                    ))
                })
                .collect::<Result<_, SchemaError>>()?;
            Ok(add(nodes, Node::Object(fields)))
        }
        Some("array") => {
            let items = schema
                .get("items")
                .ok_or_else(|| fail("an array needs `items`"))?;
            let (min, max) = (
                usize_of("minItems", 0),
                usize_of("maxItems", DEFAULT_MAX_ITEMS),
            );
            if min > max {
                return Err(fail("minItems exceeds maxItems"));
            }
            let items = compile(items, &format!("{path}[]"), depth + 1, nodes)?;
            Ok(add(nodes, Node::Array { items, min, max }))
        }
        Some("string") => {
            let (min, max) = (
                usize_of("minLength", 0),
                usize_of("maxLength", DEFAULT_MAX_STRING),
            );
            if min > max {
                return Err(fail("minLength exceeds maxLength"));
            }
            Ok(add(nodes, Node::String { min, max }))
        }
        Some("integer") => {
            let bound = |key: &str, default: i64| {
                schema.get(key).and_then(Value::as_i64).unwrap_or(default)
            };
            let (min, max) = (
                bound("minimum", -999_999_999),
                bound("maximum", 999_999_999),
            );
            if min > max {
                return Err(fail("minimum exceeds maximum"));
            }
            Ok(add(nodes, Node::Integer { min, max }))
        }
        Some("number") => Ok(add(nodes, Node::Number)),
        Some("boolean") => Ok(add(
            nodes,
            Node::Literal(vec!["true".into(), "false".into()]),
        )),
        Some("null") => Ok(add(nodes, Node::Literal(vec!["null".into()]))),
        Some(other) => Err(fail(&format!("type `{other}`"))),
        None => Err(fail("no `type`")),
    }
}

/// Where the matcher is inside one value.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// A value is due; `u8` counts the whitespace already seen before it.
    Value(NodeId, u8),
    /// Matching a literal's options (those whose bit is set in `alive`), `at` bytes in.
    Literal { node: NodeId, alive: u64, at: usize },
    /// Inside a string: characters so far, and the escape state.
    String {
        min: usize,
        max: usize,
        chars: usize,
        escape: Escape,
    },
    /// An integer: its value so far (sign applied at the end), digits, sign.
    Integer {
        min: i64,
        max: i64,
        value: i64,
        digits: u8,
        negative: bool,
    },
    /// A number: length so far, and what may come next.
    Number { len: u8, state: NumberState },
    /// An object: the next property, and what is due.
    Object {
        node: NodeId,
        next: usize,
        due: Due,
        gap: u8,
    },
    /// An array: items so far, and what is due.
    Array {
        items: NodeId,
        min: usize,
        max: usize,
        count: usize,
        due: Due,
        gap: u8,
    },
    /// Nothing more.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Escape {
    None,
    Backslash,
    /// Hex digits still due in `\uXXXX`.
    Hex(u8),
    /// Continuation bytes still due in a UTF-8 character (tokens can split characters; the
    /// text must still be valid UTF-8 when it is whole).
    Utf8(u8),
}

impl Escape {
    /// One byte of a `\uXXXX` escape or a UTF-8 character taken: one fewer due.
    fn next(self) -> Escape {
        match self {
            Escape::Hex(1) | Escape::Utf8(1) => Escape::None,
            Escape::Hex(n) => Escape::Hex(n - 1),
            Escape::Utf8(n) => Escape::Utf8(n - 1),
            other => other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumberState {
    Sign,
    Int,
    Dot,
    Fraction,
}

/// What an object or array waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Due {
    /// Just opened: the first key or item, or the close.
    First,
    /// After a comma in an object: a key.
    Key,
    /// After a key: the colon.
    Colon,
    /// A member's value is being matched (it sits above).
    Value,
    /// After a member: a comma or the close.
    CommaOrClose,
}

impl Frame {
    /// The count of whitespace bytes in the current gap, for frames between tokens.
    fn gap_mut(&mut self) -> Option<&mut u8> {
        match self {
            Frame::Value(_, gap) | Frame::Object { gap, .. } | Frame::Array { gap, .. } => {
                Some(gap)
            }
            _ => None,
        }
    }
}

/// Matching one document, incrementally: it keeps its place between tokens, so each token
/// costs only its own bytes.
#[derive(Debug, Clone)]
pub struct Matcher {
    schema: Arc<Schema>,
    state: State,
}

/// Where a matcher is. It is `Copy` (nodes are indices), so trying a token is a copy.
#[derive(Debug, Clone, Copy)]
struct State {
    frames: [Frame; MAX_DEPTH + 2],
    depth: usize,
}

impl Matcher {
    /// The document is complete: only the end may follow.
    pub fn is_complete(&self) -> bool {
        self.state.depth == 0
    }

    /// Whether `bytes` can follow; if so the matcher has taken them (if not, it is spent).
    pub fn advance(&mut self, bytes: &[u8]) -> bool {
        self.state.advance(&self.schema, bytes)
    }

    /// Whether the text so far followed by `bytes` can still be completed.
    pub fn allows(&self, bytes: &[u8]) -> bool {
        let mut copy = self.state;
        copy.advance(&self.schema, bytes)
    }

    /// Whether `bytes` can follow and the document can then still be completed in at most
    /// `budget` more bytes. Every ASCII character is a token of a byte-level vocabulary, so
    /// a budget in tokens is at least as large: a generation that checks each token against
    /// its remaining `max_tokens` always finishes its document.
    pub fn allows_within(&self, bytes: &[u8], budget: usize) -> bool {
        let mut copy = self.state;
        copy.advance(&self.schema, bytes) && copy.shortest_completion(&self.schema) <= budget
    }

    /// The fewest bytes that complete the document from here.
    pub fn shortest_completion(&self) -> usize {
        self.state.shortest_completion(&self.schema)
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

impl State {
    fn push(&mut self, frame: Frame) -> bool {
        if self.depth >= self.frames.len() {
            return false;
        }
        self.frames[self.depth] = frame;
        self.depth += 1;
        true
    }

    fn advance(&mut self, schema: &Schema, bytes: &[u8]) -> bool {
        !bytes.is_empty() && bytes.iter().all(|&b| self.byte(schema, b))
    }

    fn shortest_completion(&self, schema: &Schema) -> usize {
        self.frames[..self.depth]
            .iter()
            .map(|frame| match *frame {
                Frame::Done => 0,
                Frame::Value(node, _) => shortest(schema, node),
                Frame::Literal { node, alive, at } => (0..schema.options(node).len())
                    .filter(|i| alive & (1 << i) != 0)
                    .map(|i| schema.options(node)[i].len() - at)
                    .min()
                    .unwrap_or(0),
                Frame::String {
                    min, chars, escape, ..
                } => {
                    let pending = match escape {
                        Escape::None => 0,
                        Escape::Backslash => 1,
                        Escape::Hex(n) | Escape::Utf8(n) => n as usize,
                    };
                    pending + min.saturating_sub(chars) + 1
                }
                Frame::Integer {
                    min,
                    max,
                    value,
                    digits,
                    negative,
                } => {
                    let signed = if negative { -value } else { value };
                    if digits > 0 && (min..=max).contains(&signed) {
                        0
                    } else {
                        // No more digits than the wider bound has.
                        min.to_string().len().max(max.to_string().len())
                    }
                }
                Frame::Number { state, .. } => match state {
                    NumberState::Int | NumberState::Fraction => 0,
                    NumberState::Sign | NumberState::Dot => 1,
                },
                Frame::Object {
                    node, next, due, ..
                } => {
                    let fields = schema.fields(node);
                    let field = |(key, value): &(NodeId, NodeId)| {
                        key_len(schema, *key) + 1 + shortest(schema, *value)
                    };
                    let rest = |from: usize| -> usize {
                        fields[from.min(fields.len())..]
                            .iter()
                            .map(|f| 1 + field(f))
                            .sum()
                    };
                    1 + match due {
                        // The first field needs no comma.
                        Due::First | Due::Key => rest(next).saturating_sub(1),
                        Due::Colon => {
                            1 + fields.get(next).map_or(0, |f| shortest(schema, f.1))
                                + rest(next + 1)
                        }
                        Due::Value => rest(next + 1),
                        Due::CommaOrClose => rest(next),
                    }
                }
                Frame::Array {
                    items, min, count, ..
                } => 1 + min.saturating_sub(count) * (shortest(schema, items) + 1),
            })
            .sum()
    }

    /// Finishes the top value and hands control to its parent.
    fn pop(&mut self) {
        self.depth -= 1;
        if let Some(parent) = self.depth.checked_sub(1).map(|i| &mut self.frames[i]) {
            match parent {
                Frame::Object { next, due, gap, .. } => {
                    *next += 1;
                    *due = Due::CommaOrClose;
                    *gap = 0;
                }
                Frame::Array {
                    count, due, gap, ..
                } => {
                    *count += 1;
                    *due = Due::CommaOrClose;
                    *gap = 0;
                }
                _ => {}
            }
        }
    }

    fn byte(&mut self, schema: &Schema, b: u8) -> bool {
        let Some(top) = self.depth.checked_sub(1) else {
            return false;
        };
        // Whitespace between tokens, where a frame allows it.
        if is_space(b)
            && let Some(gap) = self.frames[top].gap_mut()
        {
            *gap += 1;
            return *gap <= MAX_GAP;
        }
        match self.frames[top] {
            Frame::Done => false,
            Frame::Value(id, _) => {
                self.depth -= 1;
                let frame = match schema.node(id) {
                    Node::Object(_) if b == b'{' => Frame::Object {
                        node: id,
                        next: 0,
                        due: Due::First,
                        gap: 0,
                    },
                    Node::Array { items, min, max } if b == b'[' => Frame::Array {
                        items: *items,
                        min: *min,
                        max: *max,
                        count: 0,
                        due: Due::First,
                        gap: 0,
                    },
                    Node::String { min, max } if b == b'"' => Frame::String {
                        min: *min,
                        max: *max,
                        chars: 0,
                        escape: Escape::None,
                    },
                    Node::Literal(options) => {
                        let alive = options
                            .iter()
                            .enumerate()
                            .filter(|(_, o)| o.as_bytes().first() == Some(&b))
                            .fold(0u64, |m, (i, _)| m | 1 << i);
                        if alive == 0 {
                            return false;
                        }
                        let frame = Frame::Literal {
                            node: id,
                            alive,
                            at: 1,
                        };
                        return self.push(frame) && self.settle_literal(schema);
                    }
                    Node::Integer { min, max } if b == b'-' || b.is_ascii_digit() => {
                        let frame = Frame::Integer {
                            min: *min,
                            max: *max,
                            value: 0,
                            digits: 0,
                            negative: false,
                        };
                        return self.push(frame) && self.byte(schema, b);
                    }
                    Node::Number if b == b'-' || b.is_ascii_digit() => {
                        let frame = Frame::Number {
                            len: 0,
                            state: NumberState::Sign,
                        };
                        return self.push(frame) && self.byte(schema, b);
                    }
                    _ => return false,
                };
                self.push(frame)
            }
            Frame::Literal { node, alive, at } => {
                let options = schema.options(node);
                let alive = (0..options.len())
                    .filter(|i| alive & (1 << i) != 0)
                    .filter(|&i| options[i].as_bytes().get(at) == Some(&b))
                    .fold(0u64, |m, i| m | 1 << i);
                if alive == 0 {
                    return false;
                }
                self.frames[top] = Frame::Literal {
                    node,
                    alive,
                    at: at + 1,
                };
                self.settle_literal(schema)
            }
            Frame::String {
                min,
                max,
                chars,
                escape,
            } => {
                let (chars, escape) = match escape {
                    Escape::Backslash if b == b'u' => (chars, Escape::Hex(4)),
                    Escape::Backslash if b"\"\\/bfnrt".contains(&b) => (chars, Escape::None),
                    Escape::Backslash => return false,
                    Escape::Hex(_) if b.is_ascii_hexdigit() => (chars, escape.next()),
                    Escape::Hex(_) => return false,
                    Escape::Utf8(_) if (0x80..0xC0).contains(&b) => (chars, escape.next()),
                    Escape::Utf8(_) => return false,
                    Escape::None if b == b'"' => {
                        if chars < min {
                            return false;
                        }
                        self.pop();
                        return true;
                    }
                    Escape::None if b < 0x20 => return false,
                    Escape::None if chars >= max => return false,
                    Escape::None if b >= 0x80 => match b {
                        0xC2..=0xDF => (chars + 1, Escape::Utf8(1)),
                        0xE0..=0xEF => (chars + 1, Escape::Utf8(2)),
                        0xF0..=0xF4 => (chars + 1, Escape::Utf8(3)),
                        _ => return false,
                    },
                    Escape::None if b == b'\\' => (chars + 1, Escape::Backslash),
                    Escape::None => (chars + 1, Escape::None),
                };
                self.frames[top] = Frame::String {
                    min,
                    max,
                    chars,
                    escape,
                };
                true
            }
            Frame::Integer {
                min,
                max,
                value,
                digits,
                negative,
            } => {
                if b == b'-' && digits == 0 && !negative && min < 0 {
                    self.frames[top] = Frame::Integer {
                        min,
                        max,
                        value,
                        digits,
                        negative: true,
                    };
                    return true;
                }
                if b.is_ascii_digit() {
                    // No leading zeros, and the number must still be able to land in range.
                    if digits == 1 && value == 0 || digits >= 12 {
                        return false;
                    }
                    let value = value * 10 + (b - b'0') as i64;
                    if !reachable(value, negative, digits + 1, min, max) {
                        return false;
                    }
                    self.frames[top] = Frame::Integer {
                        min,
                        max,
                        value,
                        digits: digits + 1,
                        negative,
                    };
                    return true;
                }
                let signed = if negative { -value } else { value };
                if digits == 0 || !(min..=max).contains(&signed) {
                    return false;
                }
                self.pop();
                self.byte(schema, b)
            }
            Frame::Number { len, state } => {
                use NumberState::*;
                let next = match (state, b) {
                    (Sign, b'-') => Some(Sign),
                    (Sign | Int, b'0'..=b'9') => Some(Int),
                    (Int, b'.') => Some(Dot),
                    (Dot | Fraction, b'0'..=b'9') => Some(Fraction),
                    _ => None,
                };
                match next {
                    Some(_) if len >= MAX_NUMBER => false,
                    Some(state) => {
                        self.frames[top] = Frame::Number {
                            len: len + 1,
                            state,
                        };
                        true
                    }
                    None if matches!(state, Int | Fraction) => {
                        self.pop();
                        self.byte(schema, b)
                    }
                    None => false,
                }
            }
            Frame::Object {
                node, next, due, ..
            } => {
                let fields = schema.fields(node);
                let all_written = next >= fields.len();
                let due = match (due, b) {
                    (Due::First | Due::CommaOrClose, b'}') if all_written => {
                        self.pop();
                        return true;
                    }
                    (Due::CommaOrClose, b',') if !all_written => Due::Key,
                    (Due::First | Due::Key, b'"') if !all_written => {
                        self.frames[top] = Frame::Object {
                            node,
                            next,
                            due: Due::Colon,
                            gap: 0,
                        };
                        let key = Frame::Literal {
                            node: fields[next].0,
                            alive: 1,
                            at: 1,
                        };
                        return self.push(key);
                    }
                    (Due::Colon, b':') => {
                        self.frames[top] = Frame::Object {
                            node,
                            next,
                            due: Due::Value,
                            gap: 0,
                        };
                        return self.push(Frame::Value(fields[next].1, 0));
                    }
                    _ => return false,
                };
                self.frames[top] = Frame::Object {
                    node,
                    next,
                    due,
                    gap: 0,
                };
                true
            }
            Frame::Array {
                items,
                min,
                max,
                count,
                due,
                ..
            } => match (due, b) {
                (Due::First | Due::CommaOrClose, b']') if count >= min => {
                    self.pop();
                    true
                }
                (Due::CommaOrClose, b',') if count < max => self.push(Frame::Value(items, 0)),
                (Due::First, _) if max > 0 => {
                    self.push(Frame::Value(items, 0)) && self.byte(schema, b)
                }
                _ => false,
            },
        }
    }

    /// A literal that has matched one option completely is finished (options are JSON
    /// values or keys, so none is a proper prefix of another but bare numbers, not used here).
    fn settle_literal(&mut self, schema: &Schema) -> bool {
        let top = self.depth - 1;
        if let Frame::Literal { node, alive, at } = self.frames[top]
            && schema
                .options(node)
                .iter()
                .enumerate()
                .any(|(i, o)| alive & (1 << i) != 0 && o.len() == at)
        {
            let is_key = top > 0
                && matches!(
                    self.frames[top - 1],
                    Frame::Object {
                        due: Due::Colon,
                        ..
                    }
                );
            if is_key {
                self.depth -= 1;
            } else {
                self.pop();
            }
        }
        true
    }
}

/// Whether an integer whose first `digits` digits make `value` can still end up in range.
fn reachable(value: i64, negative: bool, digits: u8, min: i64, max: i64) -> bool {
    // A lone zero takes no more digits.
    let more = if value == 0 {
        0
    } else {
        12u32.saturating_sub(digits as u32)
    };
    (0..=more).any(|k| {
        let scale = 10i64.pow(k);
        let lo = value * scale;
        let hi = lo + scale - 1;
        let (lo, hi) = if negative { (-hi, -lo) } else { (lo, hi) };
        lo <= max && hi >= min
    })
}

/// The length of a key literal (JSON-encoded, with its quotes).
fn key_len(schema: &Schema, key: NodeId) -> usize {
    schema.options(key).first().map_or(0, String::len)
}

/// The length of the shortest JSON text `node` accepts.
fn shortest(schema: &Schema, id: NodeId) -> usize {
    match schema.node(id) {
        Node::Object(fields) => {
            let members: usize = fields
                .iter()
                .map(|(k, n)| key_len(schema, *k) + 1 + shortest(schema, *n))
                .sum();
            2 + members + fields.len().saturating_sub(1)
        }
        Node::Array { items, min, .. } => {
            2 + min * (shortest(schema, *items) + 1) - usize::from(*min > 0)
        }
        Node::String { min, .. } => 2 + min,
        Node::Literal(options) => options.iter().map(String::len).min().unwrap_or(0),
        Node::Integer { min, max } => {
            let closest = if *min > 0 {
                *min
            } else if *max < 0 {
                *max
            } else {
                0
            };
            closest.to_string().len()
        }
        Node::Number => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accepts(schema: &Arc<Schema>, text: &str) -> bool {
        let mut m = schema.matcher();
        m.advance(text.as_bytes()) && m.is_complete()
    }

    #[test]
    fn judge_schema_accepts_a_verdict_and_rejects_what_breaks_it() {
        let schema = Schema::compile(crossfire_engine::judge::schema(false).schema()).unwrap();
        let card = |s: u8| {
            crossfire_engine::judge::CRITERIA
                .iter()
                .map(|c| {
                    format!("\"{c}\": {{\"score\": {s}, \"reason\": \"Cites \\\"facts\\\" — ok\"}}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let verdict = format!(
            "{{\n\"speaker_1\": {{{}}},\n\"speaker_2\": {{{}}},\n\"winner\": \"tie\", \"rationale\": \"Even, on every count.\"}}",
            card(7),
            card(10)
        );
        assert!(accepts(&schema, &verdict), "{verdict}");
        serde_json::from_str::<serde_json::Value>(&verdict).unwrap();
        for broken in [
            verdict.replace("\"tie\"", "\"draw\""),
            verdict.replace("\"score\": 10", "\"score\": 11"),
            verdict.replace("\"score\": 7", "\"score\": 0"),
            verdict.replace("\"score\": 7", "\"score\": \"7\""),
            verdict.replace("\"winner\"", "\"victor\""),
            verdict.replace("Even, on every count.", &"x".repeat(601)),
            verdict.replace("Even, on every count.", "Too short."),
            verdict.replace("Even, on every count.", "line\nbreak in a long rationale"),
            format!("{verdict} "),
        ] {
            assert!(!accepts(&schema, &broken), "accepted {broken}");
        }
        // Every prefix of the verdict can still be completed; it is not complete early.
        let mut m = schema.matcher();
        for (i, b) in verdict.bytes().enumerate() {
            assert!(!m.is_complete(), "complete after {i} bytes");
            assert!(m.advance(&[b]), "rejected byte {i}");
        }
    }

    #[test]
    fn integers_arrays_numbers_and_literals() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": -5, "maximum": 120},
                "xs": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 2},
                "ok": {"type": "boolean"},
                "s": {"type": "string", "minLength": 2, "maxLength": 3},
            },
            "required": ["n", "xs", "ok", "s"],
        }))
        .unwrap();
        assert!(accepts(
            &schema,
            r#"{"n":-5,"xs":[1.5, -2],"ok":true,"s":"é\u00e9"}"#
        ));
        assert!(accepts(
            &schema,
            r#"{"n":120,"xs":[0],"ok":false,"s":"ab"}"#
        ));
        for bad in [
            r#"{"n":121,"xs":[0],"ok":false,"s":"ab"}"#,
            r#"{"n":-6,"xs":[0],"ok":false,"s":"ab"}"#,
            r#"{"n":007,"xs":[0],"ok":false,"s":"ab"}"#,
            r#"{"n":1,"xs":[],"ok":false,"s":"ab"}"#,
            r#"{"n":1,"xs":[1,2,3],"ok":false,"s":"ab"}"#,
            r#"{"n":1,"xs":[1.],"ok":false,"s":"ab"}"#,
            r#"{"n":1,"xs":[1],"ok":yes,"s":"ab"}"#,
            r#"{"n":1,"xs":[1],"ok":true,"s":"a"}"#,
            r#"{"n":1,"xs":[1],"ok":true,"s":"abcd"}"#,
            r#"{"n":1,"xs":[1],"ok":true}"#,
            r#"{"xs":[1],"n":1,"ok":true,"s":"ab"}"#,
        ] {
            assert!(!accepts(&schema, bad), "accepted {bad}");
        }
        let mut m = schema.matcher();
        assert!(m.advance(br#"{"n":12"#));
        assert!(!m.allows(b"1"), "121 > 120");
        assert!(!m.allows(b"00"), "1200 > 120");
        assert!(m.allows(b"0,"));
        assert!(m.allows(b" ,") && !m.allows(b"  ,"), "gaps are bounded");
        // Strings stay valid UTF-8, even when a character arrives split across tokens.
        let mut m = schema.matcher();
        assert!(m.advance(br#"{"n":1,"xs":[1],"ok":true,"s":""#));
        assert!(!m.allows(&[0x80]), "a lone continuation byte");
        assert!(!m.allows(&[0xC3, b'"']), "a cut character");
        assert!(m.allows(&[0xC3]) && m.allows(&[0xC3, 0xA9, b'a', b'"']));
    }

    #[test]
    fn the_brief_judge_schema_wants_bare_scores_and_a_short_rationale() {
        let schema = Schema::compile(crossfire_engine::judge::schema(true).schema()).unwrap();
        let verdict = |card: &str, rationale: &str| {
            format!(
                r#"{{"speaker_1": {card}, "speaker_2": {card}, "winner": "tie", "rationale": "{rationale}"}}"#
            )
        };
        let bare = r#"{"argument": 7, "evidence": 6, "rebuttal": 5, "fidelity": 8}"#;
        let reasoned = r#"{"argument": {"score": 7, "reason": "Clear and direct"}, "evidence": 6, "rebuttal": 5, "fidelity": 8}"#;
        let why = "Both cited the story's figures.";
        assert!(accepts(&schema, &verdict(bare, why)));
        assert!(!accepts(&schema, &verdict(reasoned, why)));
        assert!(!accepts(&schema, &verdict(bare, &"x".repeat(301))));
        let parsed = crossfire_engine::judge::parse_lenient(&verdict(bare, why)).unwrap();
        assert_eq!(parsed.scores[0].fidelity, 8.0);
        // The shortest brief verdict is well under half the full one.
        let full = Schema::compile(crossfire_engine::judge::schema(false).schema()).unwrap();
        assert!(schema.matcher().shortest_completion() * 2 < full.matcher().shortest_completion());
    }

    #[test]
    fn a_budget_always_leaves_room_to_finish() {
        let schema = Schema::compile(crossfire_engine::judge::schema(false).schema()).unwrap();
        let start = schema.matcher();
        let least = start.shortest_completion();
        // Writing the shortest document byte by byte takes exactly that many bytes.
        let mut m = schema.matcher();
        let mut written = 0;
        while !m.is_complete() {
            let left = m.shortest_completion();
            let next = (0x20u8..0x7f)
                .find(|&b| m.allows_within(&[b], left - 1))
                .unwrap_or_else(|| panic!("stuck after {written} bytes"));
            assert!(m.advance(&[next]));
            written += 1;
        }
        assert_eq!(written, least);
        // A budget too small for even that refuses everything; a larger one allows text.
        assert!(!start.allows_within(b"{", least - 2));
        let mut m = schema.matcher();
        assert!(m.advance(br#"{"speaker_1":{"argument":{"score":7,"reason":""#));
        let left = m.shortest_completion();
        // Sixteen characters fill the minimum of eight, so eight fewer bytes remain due.
        assert!(m.allows_within(b"Clear and direct", left - 8));
        assert!(!m.allows_within(b"Clear and direct", left - 9));
        // Once the string is long enough and the budget is down to the minimum, only closing
        // the string makes progress.
        assert!(m.advance(b"Clear and direct"));
        let left = m.shortest_completion();
        assert!(!m.allows_within(b" x", left - 1), "no room for more text");
        assert!(m.allows_within(b"\"", left - 1));
    }

    #[test]
    fn unsupported_schemas_name_the_place() {
        let err =
            Schema::compile(&json!({"type": "object", "properties": {"a": {"type": "date"}}}))
                .unwrap_err();
        assert!(err.to_string().contains("$.a"), "{err}");
        assert!(Schema::compile(&json!({"type": "array"})).is_err());
    }

    #[test]
    fn enums_past_64_options_are_refused_at_compile_time() {
        let options =
            |n: usize| json!({"enum": (0..n).map(|i| format!("o{i}")).collect::<Vec<_>>()});
        let largest = Schema::compile(&options(64)).unwrap();
        assert!(
            accepts(&largest, "\"o63\""),
            "the 64th option still matches"
        );
        let err = Schema::compile(&options(65)).unwrap_err().to_string();
        assert!(err.contains("65 options"), "{err}");
    }

    #[test]
    fn a_matcher_keeps_its_place_between_tokens() {
        let schema = Schema::compile(crossfire_engine::judge::schema(true).schema()).unwrap();
        let text = br#"{"speaker_1":{"argument":7"#;
        let mut piecewise = schema.matcher();
        for piece in text.chunks(3) {
            assert!(piecewise.advance(piece));
        }
        let mut whole = schema.matcher();
        assert!(whole.advance(text));
        assert_eq!(piecewise.shortest_completion(), whole.shortest_completion());
        assert!(!piecewise.allows(b"x") && piecewise.allows(b","));
    }

    proptest::proptest! {
        #[test]
        /// Fed any bytes, keeping those it allows, the matcher agrees with a fresh matcher
        /// given them in one piece, and what it calls complete is JSON.
        #[test]
        fn what_the_matcher_takes_is_consistent_and_complete_documents_parse(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let schema = Schema::compile(crossfire_engine::judge::schema(false).schema()).unwrap();
            let mut m = schema.matcher();
            let mut taken = Vec::new();
            for b in bytes {
                if m.allows(&[b]) {
                    proptest::prop_assert!(m.advance(&[b]));
                    taken.push(b);
                }
            }
            let mut again = schema.matcher();
            proptest::prop_assert!(taken.is_empty() || again.advance(&taken));
            proptest::prop_assert_eq!(again.is_complete(), m.is_complete());
            proptest::prop_assert_eq!(again.shortest_completion(), m.shortest_completion());
            if m.is_complete() {
                proptest::prop_assert!(serde_json::from_slice::<Value>(&taken).is_ok());
            }
        }
    }
}
