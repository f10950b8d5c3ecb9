//! Reading GGUF files: the metadata (hyper-parameters, vocabulary, chat template) and where
//! each tensor's bytes lie. The tensor data itself stays in the file buffer and is borrowed.

use std::collections::HashMap;

/// Why a GGUF file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (bad magic)")]
    Magic,
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    Version(u32),
    #[error("the file ends early: it is truncated or not GGUF")]
    Truncated,
    #[error("unknown metadata value type {0}")]
    ValueType(u32),
    #[error("metadata `{0}` is missing")]
    Missing(String),
    #[error("metadata `{key}` has the wrong type (expected {expected})")]
    Type { key: String, expected: &'static str },
    #[error("tensor `{name}` lies outside the file")]
    TensorBounds { name: String },
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

/// Where a tensor lies and what it holds.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// ggml dimensions, innermost first: a weight matrix is `[inputs, outputs]`.
    pub dims: Vec<usize>,
    /// ggml type number (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, …).
    pub kind: u32,
    /// Byte range in the file.
    pub start: usize,
}

/// The parsed header of a GGUF file.
#[derive(Debug)]
pub struct Gguf {
    pub metadata: HashMap<String, Value>,
    pub tensors: HashMap<String, TensorInfo>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Deepest arrays of arrays a header may hold (llama files use none).
const MAX_NESTING: usize = 4;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self.at.checked_add(n).ok_or(GgufError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(GgufError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, GgufError> {
        let n = self.u64()?;
        // A length longer than the file is a corrupt header, not an allocation to try.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or(GgufError::Truncated)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.len()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn value(&mut self, kind: u32) -> Result<Value, GgufError> {
        self.value_within(kind, 0)
    }

    /// A value; arrays may hold arrays, but not deeper than [`MAX_NESTING`], so a hostile
    /// header cannot recurse the reader off its stack.
    fn value_within(&mut self, kind: u32, depth: usize) -> Result<Value, GgufError> {
        Ok(match kind {
            0 => Value::Int(self.array::<1>()?[0] as i64),
            1 => Value::Int(self.array::<1>()?[0] as i8 as i64),
            2 => Value::Int(u16::from_le_bytes(self.array()?) as i64),
            3 => Value::Int(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth >= MAX_NESTING => return Err(GgufError::ValueType(kind)),
            9 => {
                let item = self.u32()?;
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    items.push(self.value_within(item, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Int(self.u64()? as i64),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(GgufError::ValueType(other)),
        })
    }
}

impl Gguf {
    /// Parses the header of a whole GGUF file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != b"GGUF" {
            return Err(GgufError::Magic);
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        let n_tensors = r.len()?;
        let n_kv = r.len()?;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let kind = r.u32()?;
            metadata.insert(key, r.value(kind)?);
        }
        // Counts are believed only as far as the bytes that follow them go.
        let mut infos = Vec::with_capacity(n_tensors.min(1 << 12));
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()? as usize;
            let dims = (0..n_dims.min(4))
                .map(|_| r.len())
                .collect::<Result<Vec<_>, _>>()?;
            let kind = r.u32()?;
            let offset = r.len()?;
            infos.push((name, dims, kind, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            Some(Value::Int(a)) if *a > 0 => *a as usize,
            _ => 32,
        };
        let data_start = r.at.div_ceil(alignment) * alignment;
        let tensors = infos
            .into_iter()
            .map(|(name, dims, kind, offset)| {
                let start = data_start + offset;
                if start > bytes.len() {
                    return Err(GgufError::TensorBounds { name });
                }
                Ok((name, TensorInfo { dims, kind, start }))
            })
            .collect::<Result<_, _>>()?;
        Ok(Gguf { metadata, tensors })
    }

    fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata
            .get(key)
            .ok_or_else(|| GgufError::Missing(key.to_string()))
    }

    /// An integer metadata value.
    pub fn int(&self, key: &str) -> Result<i64, GgufError> {
        match self.get(key)? {
            Value::Int(v) => Ok(*v),
            _ => Err(type_error(key, "integer")),
        }
    }

    /// A float metadata value (integers are accepted).
    pub fn float(&self, key: &str) -> Result<f64, GgufError> {
        match self.get(key)? {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            _ => Err(type_error(key, "number")),
        }
    }

    /// A string metadata value.
    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key)? {
            Value::Str(v) => Ok(v),
            _ => Err(type_error(key, "string")),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.as_str()),
                    _ => Err(type_error(key, "array of strings")),
                })
                .collect(),
            _ => Err(type_error(key, "array of strings")),
        }
    }
}

fn type_error(key: &str, expected: &'static str) -> GgufError {
    GgufError::Type {
        key: key.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(Gguf::parse(b"nope"), Err(GgufError::Magic)));
        assert!(matches!(Gguf::parse(b"GG"), Err(GgufError::Truncated)));
        let mut header = b"GGUF".to_vec();
        header.extend(3u32.to_le_bytes());
        header.extend(u64::MAX.to_le_bytes());
        assert!(matches!(Gguf::parse(&header), Err(GgufError::Truncated)));
    }

    #[test]
    fn arrays_nested_past_a_few_levels_are_refused() {
        let mut file = b"GGUF".to_vec();
        file.extend(3u32.to_le_bytes());
        file.extend(0u64.to_le_bytes());
        file.extend(1u64.to_le_bytes());
        file.extend(1u64.to_le_bytes());
        file.push(b'k');
        file.extend(9u32.to_le_bytes());
        // 100,000 arrays, each holding one array: deep enough to overflow a recursive reader.
        for _ in 0..100_000 {
            file.extend(9u32.to_le_bytes());
            file.extend(1u64.to_le_bytes());
        }
        assert!(matches!(Gguf::parse(&file), Err(GgufError::ValueType(9))));
    }
}
