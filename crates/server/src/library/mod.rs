//! The editors' files as the service serves them: one validated set of stories, personas and
//! prompt templates, swapped whole when the files change.
//!
//! A change is parsed and checked in full before it goes live, in one atomic swap, so no
//! request sees half of an edit. A set with any problem is rejected: the last good set keeps
//! serving, and the problems (`file:line:col: message`) are kept for `GET /api/editor/lint`
//! and logged. Runs hold the set they started with, so an edit never changes a debate midway.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use notify_debouncer_full::notify::RecursiveMode;
use serde::Serialize;

mod catalog;
mod problem;

pub use catalog::Catalog;
use crossfire_engine::config::Library;
use crossfire_engine::debate::Engine;
use crossfire_engine::prompts::Prompts;
use crossfire_engine::screen::Policy;
pub use problem::LintProblem;

/// How long the files must be still before a change is read: an editor's save is often
/// several writes (a temporary file, then a rename).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// One validated set of the editors' files, and the engine that renders its templates.
pub struct LiveSet {
    pub catalog: Catalog,
    pub engine: Arc<Engine>,
    /// A hash over every story, persona and template of the set.
    pub version: String,
    /// When the set went live (RFC 3339).
    pub loaded_at: String,
}

/// A set that was read and refused, with why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// When it was read (RFC 3339).
    pub at: String,
    pub problems: Vec<LintProblem>,
}

/// The live set, and the last set refused since it went live.
pub struct Live {
    paths: Library,
    current: ArcSwap<LiveSet>,
    rejected: Mutex<Option<Rejected>>,
}

impl LiveSet {
    /// The set of `catalog`, with `engine` judging against its stories.
    fn new(catalog: Catalog, mut engine: Engine) -> LiveSet {
        engine.stories = catalog.stories.values().cloned().collect();
        LiveSet {
            version: version_of(&catalog, &engine.prompts, engine.screener.policy()),
            catalog,
            engine: Arc::new(engine),
            loaded_at: crossfire_engine::transcript::now_rfc3339(),
        }
    }
}

impl Live {
    /// The set as the service starts with it: a bad file is left out (and reported), so one
    /// typo cannot keep the service from starting.
    pub fn start(paths: Library, catalog: Catalog, engine: Engine) -> Live {
        Live {
            paths,
            current: ArcSwap::from_pointee(LiveSet::new(catalog, engine)),
            rejected: Mutex::new(None),
        }
    }

    /// Where the files are read from.
    pub fn paths(&self) -> &Library {
        &self.paths
    }

    /// The set live now. Hold it for the whole of a request or run.
    pub fn current(&self) -> Arc<LiveSet> {
        self.current.load_full()
    }

    /// The last set refused since the live one went live, if any.
    pub fn rejected(&self) -> Option<Rejected> {
        self.rejected.lock().ok().and_then(|r| r.clone())
    }

    /// Reads the files again; puts them live if they are all good, else keeps the live set
    /// and records why. Blocking (file reads, parsing): call it off the async runtime.
    pub fn reload(&self) -> Result<Arc<LiveSet>, Rejected> {
        let old = self.current();
        let problems_of = |text: String| Rejected {
            at: crossfire_engine::transcript::now_rfc3339(),
            problems: vec![LintProblem::unlocated(text)],
        };
        let outcome = match (
            Catalog::load(&self.paths),
            Prompts::load(&self.paths.prompts_dir),
            Policy::load_dir(&self.paths.policy_dir),
        ) {
            (Err(e), _, _) => Err(problems_of(e)),
            (_, Err(e), _) => Err(problems_of(e.to_string())),
            (_, _, Err(problems)) => Err(Rejected {
                at: crossfire_engine::transcript::now_rfc3339(),
                problems: problems.iter().map(LintProblem::from).collect(),
            }),
            (Ok(catalog), _, _) if !catalog.problems.is_empty() => Err(Rejected {
                at: crossfire_engine::transcript::now_rfc3339(),
                problems: catalog.problems,
            }),
            (Ok(catalog), Ok(prompts), Ok(policy)) => {
                let engine = old.engine.with_prompts(Arc::new(prompts));
                let screener = engine.screener.with_policy(Arc::new(policy));
                Ok(Arc::new(LiveSet::new(
                    catalog,
                    engine.with_screener(screener),
                )))
            }
        };
        match outcome {
            Ok(set) => {
                self.current.store(set.clone());
                if let Ok(mut rejected) = self.rejected.lock() {
                    *rejected = None;
                }
                Ok(set)
            }
            Err(rejected) => {
                if let Ok(mut slot) = self.rejected.lock() {
                    *slot = Some(rejected.clone());
                }
                Err(rejected)
            }
        }
    }

    /// Watches the four folders and reloads on every settled change, for as long as the
    /// returned watcher lives.
    pub fn watch(self: &Arc<Self>) -> Result<impl Drop + use<>, String> {
        let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let mut debouncer = notify_debouncer_full::new_debouncer(
            DEBOUNCE,
            None,
            move |events: notify_debouncer_full::DebounceEventResult| {
                if events.is_ok_and(|e| !e.is_empty()) {
                    let _ = changed.send(Instant::now());
                }
            },
        )
        .map_err(|e| format!("cannot watch the editors' files: {e}"))?;
        for dir in [
            &self.paths.personas_dir,
            &self.paths.prompts_dir,
            &self.paths.stories_dir,
            &self.paths.policy_dir,
        ] {
            debouncer
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        }
        let live = self.clone();
        tokio::spawn(async move {
            while let Some(noticed) = changes.recv().await {
                // Changes that came while reading are covered by the read that follows.
                while changes.try_recv().is_ok() {}
                let reloading = live.clone();
                let outcome = tokio::task::spawn_blocking(move || reloading.reload()).await;
                match outcome {
                    Ok(Ok(set)) => tracing::info!(
                        version = %set.version,
                        "the editors' files changed: a new set is live, {} ms after the change settled",
                        noticed.elapsed().as_millis()
                    ),
                    Ok(Err(rejected)) => {
                        for p in &rejected.problems {
                            tracing::warn!(
                                "the editors' files changed but are not live: {}",
                                p.text
                            );
                        }
                    }
                    Err(e) => tracing::error!("reload failed: {e}"),
                }
            }
        });
        Ok(debouncer)
    }
}

/// The set's version: a hash over its stories', personas', templates' and policy's own
/// versions.
fn version_of(catalog: &Catalog, prompts: &Prompts, policy: &Policy) -> String {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(
        catalog
            .stories
            .values()
            .map(|s| format!("s {} {}", s.id, s.version)),
    );
    parts.extend(
        catalog
            .personas
            .values()
            .map(|p| format!("p {} {}", p.id, p.version)),
    );
    parts.push(format!("t {}", prompts.version()));
    parts.push(format!("r {}", policy.version));
    let hash = crossfire_engine::sha256_hex(parts.join("\n").as_bytes());
    hash.chars().take(16).collect()
}
