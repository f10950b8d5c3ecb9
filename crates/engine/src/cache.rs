//! What the engine derives from a story or persona (its template value, its claim checker),
//! made once for each version: the hash of the file it was loaded from.

use std::collections::HashMap;
use std::sync::Mutex;

/// Values derived from files, by the file's version.
pub struct ByVersion<V>(Mutex<HashMap<String, V>>);

impl<V> Default for ByVersion<V> {
    fn default() -> ByVersion<V> {
        ByVersion(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> ByVersion<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Versions kept before the cache starts afresh (editors' previews add new ones).
    const MOST: usize = 256;

    /// The value for `version`, made by `make` the first time. Items that were not loaded
    /// from a file have no version, and are made every time.
    pub fn get(&self, version: &str, make: impl FnOnce() -> V) -> V {
        if version.is_empty() {
            return make();
        }
        if let Some(value) = self.lock().get(version) {
            return value.clone();
        }
        // Made outside the lock: others' lookups do not wait on it (two makers at once
        // both make the same value, which is harmless).
        let value = make();
        let mut values = self.lock();
        if values.len() >= Self::MOST {
            values.clear();
        }
        values.insert(version.to_string(), value.clone());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_made_once_and_no_version_every_time() {
        let cache = ByVersion::default();
        let made = std::cell::Cell::new(0);
        let make = |v: u32| {
            made.set(made.get() + 1);
            v
        };
        assert_eq!(cache.get("v1", || make(1)), 1);
        assert_eq!(cache.get("v1", || make(2)), 1);
        assert_eq!(cache.get("v2", || make(3)), 3);
        assert_eq!(made.get(), 2);
        assert_eq!(cache.get("", || make(4)), 4);
        assert_eq!(cache.get("", || make(5)), 5);
        assert_eq!(made.get(), 4);
    }
}
