//! The service's shared state: configuration, the store, the live set of editors' files,
//! the hub of running runs and the metrics, handed to every handler and background task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::budget::Budget;
use crate::config::ServerConfig;
use crate::library::{Catalog, Live, LiveSet};
use crate::limits::Limiter;
use crate::live::Hub;
use crate::metrics::{Metered, Metrics, ScreenCounter};
use crate::store::{Claim, Store, now_ms};
use crossfire_engine::config::Library;
use crossfire_engine::debate::Engine;

/// Reports one visitor or reader may send per hour: enough for anyone reading, not for a
/// script.
const REPORTS_PER_HOUR: usize = 10;
/// How long a story's prefilled beginning is taken to stay useful (the model keeps recent
/// prefixes): it is computed again at most this often ([`crate::runs::prefill`]).
const STORY_PREFILL_EVERY: Duration = Duration::from_secs(10 * 60);

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Store,
    /// The editors' files as served now, and the engine that renders their templates.
    pub live: Arc<Live>,
    pub hub: Arc<Hub>,
    pub login_limiter: Arc<Limiter>,
    /// Sign-ups per client address and hour (`None`: unlimited).
    pub signup_limiter: Option<Arc<Limiter>>,
    /// Reports per shared link's visitor (by address) or reader, per hour.
    pub report_limiter: Arc<Limiter>,
    /// Stories whose debates' beginning was computed ahead lately ([`crate::runs::prefill`]).
    pub story_prefills: Arc<Limiter>,
    /// The deployment's daily model token budget.
    pub budget: Arc<Budget>,
    pub metrics: Arc<Metrics>,
    /// This instance's name in the runs it claims (see [`recovery`]).
    pub instance: Arc<str>,
    running: Arc<Running>,
}

/// Counts runs in flight, so a shutdown can wait for them.
#[derive(Default)]
struct Running {
    count: AtomicUsize,
    idle: Notify,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        library: Library,
        store: Store,
        engine: Engine,
        catalog: Catalog,
    ) -> AppState {
        let metrics = Arc::new(Metrics::default());
        // Every model call is counted and timed.
        let engine = engine.with_models(
            Metered::wrap(engine.debater.clone(), "debater", metrics.clone()),
            Metered::wrap(engine.judge.clone(), "judge", metrics.clone()),
        );
        let screener = engine
            .screener
            .observed(Arc::new(ScreenCounter(metrics.clone())));
        let engine = engine.with_screener(screener);
        let instance = config
            .instance
            .clone()
            .unwrap_or_else(|| format!("instance-{:016x}", rand::random::<u64>()));
        let signup_limiter = signup_limiter(config.signups_per_hour);
        let config_budget = config.daily_token_budget;
        AppState {
            instance: instance.into(),
            config: Arc::new(config),
            live: Arc::new(Live::start(library, catalog, engine)),
            hub: Hub::start(store.clone()),
            store,
            metrics,
            login_limiter: Arc::new(Limiter::new(
                10,
                Duration::from_secs(15 * 60),
                "login attempts",
            )),
            signup_limiter,
            report_limiter: Arc::new(Limiter::new(
                REPORTS_PER_HOUR,
                Duration::from_secs(3600),
                "reports from this address",
            )),
            story_prefills: Arc::new(Limiter::new(1, STORY_PREFILL_EVERY, "story prefills")),
            budget: Arc::new(Budget::new(config_budget)),
            running: Arc::default(),
        }
    }

    /// Where the editors' files live.
    pub fn library(&self) -> &Library {
        self.live.paths()
    }

    /// The set of stories, personas and templates live now: hold it for a whole request.
    pub fn set(&self) -> Arc<LiveSet> {
        self.live.current()
    }

    /// Runs work in its own task: it goes on whether or not any client listens.
    pub(crate) fn spawn_run(&self, work: impl Future<Output = ()> + Send + 'static) {
        let running = self.running.clone();
        running.count.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            work.await;
            if running.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                running.idle.notify_waiters();
            }
        });
    }

    /// Waits until no run is in flight, or `grace` has passed; returns how many are left.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.running.idle.notified();
            let left = self.running.count.load(Ordering::SeqCst);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.running.count.load(Ordering::SeqCst);
            }
        }
    }

    /// This instance's claim on a run, from now for one lease.
    pub fn claim(&self) -> Claim<'_> {
        let lease = i64::try_from(self.config.run_lease.as_millis()).unwrap_or(i64::MAX);
        Claim {
            owner: &self.instance,
            until: now_ms().saturating_add(lease),
        }
    }
}

/// The sign-up limit, from `server.signups_per_hour` (0: none).
fn signup_limiter(per_hour: u32) -> Option<Arc<Limiter>> {
    (per_hour > 0).then(|| {
        Arc::new(Limiter::new(
            per_hour as usize,
            Duration::from_secs(3600),
            "sign-ups from this address",
        ))
    })
}
