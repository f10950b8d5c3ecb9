//! Rendered blocks kept for reuse. A block's text depends only on the template variables it
//! reads (templates and filters are fixed for a [`super::Prompts`]), so each rendered block
//! is kept with what those variables were, found by watching the template's lookups. A
//! later render whose variables agree on them gets the text without running the template.
//!
//! The system message of a debate's speeches is the same for every reader who picks the
//! same story, personas and motion, and rendering it showed in profiles (docs/benchmarks.md).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use minijinja::Value;
use minijinja::value::{Enumerator, Object};

/// A template's variables, each with a print that identifies its content (a file version, or
/// the value itself), or no print if it is not worth keeping a render for (a speech).
/// Lookups are recorded, one bit per variable.
#[derive(Debug, Default)]
pub(super) struct Vars {
    names: Vec<&'static str>,
    values: Vec<Value>,
    prints: Vec<Option<String>>,
    read: AtomicU64,
}

impl Vars {
    /// Most variables a template can be given (one bit each).
    const MOST: usize = 64;

    fn add(mut self, name: &'static str, value: Value, print: Option<String>) -> Vars {
        // The engine gives a handful; a 65th would alias a bit and reuse texts wrongly.
        assert!(self.names.len() < Vars::MOST, "too many template variables");
        self.names.push(name);
        self.values.push(value);
        self.prints.push(print);
        self
    }

    /// A short value that is its own print: a motion, a number, a flag.
    pub fn with(self, name: &'static str, value: impl Into<Value> + Display) -> Vars {
        let print = value.to_string();
        self.add(name, value.into(), Some(print))
    }

    /// A value converted from a file: `version` identifies it (none if it was not loaded
    /// from a file).
    pub fn versioned(self, name: &'static str, value: Value, version: &str) -> Vars {
        let print = (!version.is_empty()).then(|| version.to_string());
        self.add(name, value, print)
    }

    /// A value renders that read it are not kept for.
    pub fn unkept(self, name: &'static str, value: impl Into<Value>) -> Vars {
        self.add(name, value.into(), None)
    }

    /// The variables read since the last call.
    pub fn take_read(&self) -> u64 {
        self.read.swap(0, Ordering::Relaxed)
    }

    /// The prints of the variables in `read`, or `None` if one of them has none.
    fn prints_of(&self, read: u64) -> Option<Vec<String>> {
        (0..self.names.len())
            .filter(|i| read & (1 << i) != 0)
            .map(|i| self.prints[i].clone())
            .collect()
    }
}

impl Object for Vars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let i = self.names.iter().position(|&name| name == key)?;
        self.read.fetch_or(1 << i, Ordering::Relaxed);
        Some(self.values[i].clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        // Whatever lists the variables (`debug()`) may show any of them.
        self.read.store(u64::MAX, Ordering::Relaxed);
        Enumerator::Values(self.names.iter().map(|&name| Value::from(name)).collect())
    }
}

/// Where a kept text came from: a template's block, given these prints of what it read.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    template: &'static str,
    block: &'static str,
    read: u64,
    prints: Vec<String>,
}

/// Rendered blocks by what they read.
#[derive(Default)]
pub(super) struct Kept(Mutex<KeptInner>);

#[derive(Default)]
struct KeptInner {
    /// The sets of variables each block's renders have read: usually one, more when a
    /// condition decides what else is read.
    reads: HashMap<(&'static str, &'static str), Vec<u64>>,
    texts: HashMap<Key, String>,
}

impl Kept {
    /// Texts kept before starting afresh (every new story, persona or motion adds some).
    const MOST: usize = 512;

    fn lock(&self) -> MutexGuard<'_, KeptInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().texts.len()
    }

    /// The text of `block` rendered with variables that agree with `vars` on all it read.
    pub fn get(&self, template: &'static str, block: &'static str, vars: &Vars) -> Option<String> {
        let inner = self.lock();
        inner
            .reads
            .get(&(template, block))?
            .iter()
            .find_map(|&read| {
                let key = Key {
                    template,
                    block,
                    read,
                    prints: vars.prints_of(read)?,
                };
                inner.texts.get(&key).cloned()
            })
    }

    /// Keeps a block's text, rendered from `vars` having read the variables in `read`.
    pub fn put(
        &self,
        template: &'static str,
        block: &'static str,
        vars: &Vars,
        read: u64,
        text: &str,
    ) {
        let Some(prints) = vars.prints_of(read) else {
            return;
        };
        let mut inner = self.lock();
        if inner.texts.len() >= Kept::MOST {
            *inner = KeptInner::default();
        }
        let reads = inner.reads.entry((template, block)).or_default();
        if !reads.contains(&read) {
            reads.push(read);
        }
        let key = Key {
            template,
            block,
            read,
            prints,
        };
        inner.texts.insert(key, text.to_string());
    }
}
