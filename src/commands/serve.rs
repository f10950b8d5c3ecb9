//! `crossfire serve`: the HTTP service, from binding its address to a graceful shutdown on
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::{engine, runtime};
use crate::config::Config;

/// Serves until SIGTERM or Ctrl-C, then gives running debates `grace_s` seconds to finish;
/// debaters sample from `seed` when one is given.
pub fn run(config: Config, grace_s: u64, seed: Option<u64>) -> Result<ExitCode> {
    runtime()?.block_on(serve(config, grace_s, seed))
}

async fn serve(config: Config, grace_s: u64, seed: Option<u64>) -> Result<ExitCode> {
    return_large_allocations_to_the_os();
    let mut engine = engine(&config)?;
    engine.seed = seed;
    let listener = crossfire_server::bind(&config.server.addr).await?;
    let local = listener.local_addr()?;
    let mut server = config.server;
    // Restarted in its place (same host, same port), an instance knows its runs at once.
    server
        .instance
        .get_or_insert_with(|| format!("{}:{}", hostname(), local.port()));
    let state = crossfire_server::prepare(server, config.library, engine).await?;
    tracing::info!("listening on http://{local}");
    crossfire_server::serve(
        listener,
        state,
        shutdown_signal(),
        Duration::from_secs(grace_s),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// This machine's name, for the default instance name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Password hashing allocates 19 MiB per hash (argon2id's memory cost) on whichever blocking
/// thread runs it; glibc's adaptive mmap threshold then keeps such blocks in per-thread
/// arenas for good, and a handful of sign-ups would pin hundreds of MB. A fixed threshold
/// makes large blocks go back to the system when freed.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the server starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: no new requests; running debates get their grace period");
}
