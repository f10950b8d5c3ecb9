//! Prompt prefixes kept for reuse, so a story block is computed once per story rather than
//! once per call: in memory across calls ([`Kept`]: finished sequences, least recently used
//! out, within a byte budget), and on disk across processes ([`DiskCache`]: a prefix two
//! prompts shared, keyed by the model file's hash and the exact tokens, and checked whole —
//! header, shape, tokens and checksum — before it is used).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::transformer::KvCache;

/// Finished sequences' tokens and caches, for new prompts that start the same way.
pub struct Kept {
    entries: Vec<Entry>,
    bytes: usize,
    budget: usize,
    clock: u64,
}

struct Entry {
    tokens: Vec<u32>,
    /// How many of `tokens` were the prompt (the rest were generated).
    prompt_len: usize,
    cache: KvCache,
    used: u64,
}

impl Entry {
    fn parts(&self) -> (&[u32], usize, &KvCache) {
        (self.tokens.as_slice(), self.prompt_len, &self.cache)
    }
}

impl Kept {
    /// Keeps at most `budget` bytes of caches.
    pub fn new(budget: usize) -> Kept {
        Kept {
            entries: Vec::new(),
            bytes: 0,
            budget,
            clock: 0,
        }
    }

    /// Keeps a sequence's computed tokens and cache, dropping the least recently used
    /// entries to stay within the budget (an entry larger than the budget is not kept).
    pub fn insert(&mut self, mut tokens: Vec<u32>, prompt_len: usize, cache: KvCache) {
        tokens.truncate(cache.len());
        if cache.is_empty() {
            return;
        }
        let size = cache.bytes();
        while self.bytes + size > self.budget && !self.entries.is_empty() {
            let oldest = (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].used)
                .unwrap_or(0);
            let gone = self.entries.swap_remove(oldest);
            self.bytes -= gone.cache.bytes();
        }
        if size > self.budget {
            return;
        }
        self.clock += 1;
        self.bytes += size;
        self.entries.push(Entry {
            tokens,
            prompt_len,
            cache,
            used: self.clock,
        });
    }

    /// Every entry: its tokens, how many were the prompt, and its cache.
    pub fn iter(&self) -> impl Iterator<Item = (&[u32], usize, &KvCache)> {
        self.entries.iter().map(Entry::parts)
    }

    /// Entry `index`, as [`Kept::iter`] gives it.
    pub fn get(&self, index: usize) -> Option<(&[u32], usize, &KvCache)> {
        self.entries.get(index).map(Entry::parts)
    }

    /// Marks an entry as just used.
    pub fn touch(&mut self, index: usize) {
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(index) {
            entry.used = self.clock;
        }
    }

    /// Bytes of caches kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Prefixes are saved and looked up at multiples of this many tokens.
pub const DISK_BLOCK: usize = 64;

/// What a file starts with. The version changes with the cache's format and whenever the
/// kernels compute other bits (v002: a prompt's attention as matrix products; v003: keys and
/// values as bytes with a scale), so a build never reads keys another build's arithmetic
/// wrote: a seed gives the same speeches whichever build ran before.
const MAGIC: &[u8; 8] = b"CFKVv003";

/// Prompt prefixes on disk, for one model file.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    /// SHA-256 of the model file.
    model: [u8; 32],
    /// Bytes the folder may hold; the files used least recently go first.
    budget: u64,
}

impl DiskCache {
    /// The cache in `dir` for the model file at `model_path` (its hash is computed once and
    /// remembered by the file's size and modification time).
    pub fn open(dir: &Path, model_path: &Path, budget: u64) -> std::io::Result<DiskCache> {
        fs::create_dir_all(dir)?;
        let model = model_hash(dir, model_path)?;
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            model,
            budget,
        })
    }

    fn path(&self, tokens: &[u32]) -> PathBuf {
        let mut hasher = Sha256::new();
        hasher.update(MAGIC);
        // Another CPU's kernels compute other bits too.
        hasher.update([crate::cpu::Kernels::detect() as u8]);
        hasher.update(self.model);
        for t in tokens {
            hasher.update(t.to_le_bytes());
        }
        self.dir
            .join(format!("{}.kv", hex::encode(hasher.finalize())))
    }

    /// Whether the prefix `tokens` (a whole number of blocks) is saved.
    pub fn has(&self, tokens: &[u32]) -> bool {
        let len = tokens.len() / DISK_BLOCK * DISK_BLOCK;
        len > 0 && self.path(&tokens[..len]).exists()
    }

    /// The longest saved prefix of `prompt`'s first `up_to` tokens that is longer than
    /// `known`, checked whole, shaped as `empty` (a new cache of the model). A file that
    /// fails a check is deleted.
    pub fn find(
        &self,
        prompt: &[u32],
        known: usize,
        up_to: usize,
        empty: &KvCache,
    ) -> Option<KvCache> {
        let longest = up_to.min(prompt.len()) / DISK_BLOCK * DISK_BLOCK;
        let shortest = (known / DISK_BLOCK + 1) * DISK_BLOCK;
        for len in (shortest..=longest).rev().step_by(DISK_BLOCK) {
            let path = self.path(&prompt[..len]);
            let Ok(bytes) = fs::read(&path) else {
                continue;
            };
            match self.decode(&bytes, &prompt[..len], empty) {
                Some(cache) => {
                    // Used now: the last to go when the folder is over its budget.
                    if let Ok(file) = fs::File::options().append(true).open(&path) {
                        let _ = file.set_modified(SystemTime::now());
                    }
                    return Some(cache);
                }
                None => {
                    tracing::warn!("{}: not a valid prompt cache file; removed", path.display());
                    let _ = fs::remove_file(&path);
                }
            }
        }
        None
    }

    /// Saves the first `len` positions of `cache` (rounded down to a whole block), computed
    /// for `tokens`, unless saved already; then trims the folder to its budget.
    pub fn save(&self, tokens: &[u32], cache: &KvCache, len: usize) -> std::io::Result<()> {
        let len = len.min(cache.len()).min(tokens.len()) / DISK_BLOCK * DISK_BLOCK;
        if len == 0 {
            return Ok(());
        }
        let path = self.path(&tokens[..len]);
        if path.exists() {
            return Ok(());
        }
        let bytes = self.encode(&tokens[..len], &cache.prefix(len));
        // The folder may have been cleared since the cache opened.
        fs::create_dir_all(&self.dir)?;
        // Written whole under another name, then renamed: a reader never sees half a file.
        let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        drop(file);
        fs::rename(&temporary, &path)?;
        self.trim()
    }

    fn encode(&self, tokens: &[u32], cache: &KvCache) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + tokens.len() * 4 + cache.bytes());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.model);
        let (vectors, width) = cache.shape();
        for n in [vectors, width, tokens.len()] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for t in tokens {
            out.extend_from_slice(&t.to_le_bytes());
        }
        cache.write_values(&mut out);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    fn decode(&self, bytes: &[u8], tokens: &[u32], empty: &KvCache) -> Option<KvCache> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != sum {
            return None;
        }
        let rest = body.strip_prefix(MAGIC)?;
        let (model, rest) = rest.split_at_checked(32)?;
        if model != self.model {
            return None;
        }
        let mut numbers = [0usize; 3];
        let mut rest = rest;
        for n in &mut numbers {
            let (word, tail) = rest.split_at_checked(4)?;
            *n = u32::from_le_bytes(word.try_into().ok()?) as usize;
            rest = tail;
        }
        let [vectors, width, count] = numbers;
        if (vectors, width) != empty.shape() || count != tokens.len() {
            return None;
        }
        let (stored, values) = rest.split_at_checked(count.checked_mul(4)?)?;
        let same = stored
            .chunks_exact(4)
            .zip(tokens)
            .all(|(b, t)| b == t.to_le_bytes());
        if !same {
            return None;
        }
        KvCache::read_values(empty, values, count)
    }

    /// Deletes the files used least recently until the folder is within its budget.
    fn trim(&self) -> std::io::Result<()> {
        let mut files: Vec<(SystemTime, u64, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "kv"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, size, path) in files {
            if total <= self.budget {
                break;
            }
            fs::remove_file(&path)?;
            total -= size;
        }
        Ok(())
    }
}

/// The model file's SHA-256, remembered in `dir` by the file's path, size and modification
/// time, so a process does not read the whole model again to know it.
fn model_hash(dir: &Path, model_path: &Path) -> std::io::Result<[u8; 32]> {
    let meta = fs::metadata(model_path)?;
    let modified = meta
        .modified()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let absolute = fs::canonicalize(model_path)?;
    let key = format!("{}\n{}\n{modified}", absolute.display(), meta.len());
    let memo = dir.join(format!(
        "model-{}.sha256",
        &hex::encode(Sha256::digest(key.as_bytes()))[..16]
    ));
    if let Ok(text) = fs::read_to_string(&memo)
        && let Some(hash) = text
            .strip_prefix(&format!("{key}\n"))
            .and_then(|h| hex::decode(h.trim()).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
    {
        return Ok(hash);
    }
    let text = super::fetch::file_sha256(model_path).map_err(std::io::Error::other)?;
    let hash = hex::decode(&text)
        .ok()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| std::io::Error::other("a SHA-256 is 32 bytes"))?;
    fs::write(&memo, format!("{key}\n{text}\n"))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_prefixes_stay_within_their_budget_and_the_least_recently_used_go_first() {
        // Each cache: 2 vectors × 4 wide × 10 positions, keys and values, a byte each and a
        // 4-byte scale a position.
        let cache = || KvCache::zeroed(2, 4, 10);
        let size = cache().bytes();
        assert_eq!(size, 320);
        let mut kept = Kept::new(3 * size);
        for first in 0..3 {
            kept.insert(vec![first; 10], 10, cache());
        }
        assert_eq!((kept.len(), kept.bytes()), (3, 3 * size));
        kept.touch(0); // the first is used again: the second is now the oldest
        kept.insert(vec![3; 10], 10, cache());
        let firsts: Vec<u32> = kept.iter().map(|(tokens, _, _)| tokens[0]).collect();
        assert_eq!(kept.len(), 3);
        assert!(firsts.contains(&0) && !firsts.contains(&1), "{firsts:?}");
        // An entry larger than the whole budget is not kept, and pushes nothing out wrongly.
        let mut small = Kept::new(size / 2);
        small.insert(vec![9; 10], 10, cache());
        assert!(small.is_empty());
        assert_eq!(small.bytes(), 0);
    }

    #[test]
    fn a_saved_prefix_reads_back_only_for_its_model_tokens_and_shape() {
        let dir = std::env::temp_dir().join(format!("crossfire-kv-{}", std::process::id()));
        let model = dir.join("model.gguf");
        fs::create_dir_all(&dir).unwrap();
        fs::write(&model, b"weights").unwrap();
        let disk = DiskCache::open(&dir, &model, 1 << 20).unwrap();
        let tokens: Vec<u32> = (0..130).collect();
        // Two vectors of keys and two of values: 130 positions of four bytes, then a scale
        // each.
        let mut values = Vec::new();
        for vector in 0..4u32 {
            values.extend((0..130 * 4).map(|i| ((i + vector) % 251) as u8));
            for position in 0..130u32 {
                values.extend_from_slice(&(0.01 * (position + vector) as f32).to_le_bytes());
            }
        }
        let cache = KvCache::read_values(&KvCache::zeroed(2, 4, 0), &values, 130).unwrap();
        disk.save(&tokens, &cache, 130).unwrap();
        let shape = KvCache::zeroed(2, 4, 0);
        let found = disk.find(&tokens, 0, 130, &shape).expect("saved at 128");
        assert_eq!(found.len(), 128);
        let (mut written, mut read) = (Vec::new(), Vec::new());
        cache.prefix(128).write_values(&mut written);
        found.write_values(&mut read);
        assert_eq!(written, read, "the values read back are the ones saved");
        let mut other = tokens.clone();
        other[5] = 999;
        assert!(disk.find(&other, 0, 130, &shape).is_none(), "other tokens");
        assert!(
            disk.find(&tokens, 128, 130, &shape).is_none(),
            "nothing longer"
        );
        assert!(
            disk.find(&tokens, 0, 130, &KvCache::zeroed(3, 4, 0))
                .is_none(),
            "another shape"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
