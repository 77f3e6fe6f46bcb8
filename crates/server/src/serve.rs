//! Running the server from a config file until it is told to stop: what
//! `rollcall serve` calls once it has parsed its arguments and set up logging.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::{AppState, Config, ConfigError, Live};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file is unreadable or invalid (nothing was loaded).
    #[error("invalid config {path}: {source}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        source: ConfigError,
    },
    /// A dataset, layout or the ledger the config names could not be loaded.
    #[error("cannot start with config {path}: {source}")]
    Load {
        /// The config file.
        path: PathBuf,
        /// What failed.
        source: ConfigError,
    },
    /// Binding the listen address, or serving, failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Validates the config at `config_path`, loads every dataset, opens the
/// ledger, binds, calls `on_ready` with the bound address, and serves until
/// SIGINT/SIGTERM. SIGHUP re-reads the config file (see [`crate::reload`]
/// for what it may change).
pub fn serve(
    config_path: &Path,
    on_ready: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> Result<(), ServeError> {
    let started = Instant::now();
    let path = config_path.to_path_buf();
    let config = Config::from_file(config_path).map_err(|source| ServeError::Config {
        path: path.clone(),
        source,
    })?;
    let state = AppState::load(config.clone()).map_err(|source| ServeError::Load {
        path: path.clone(),
        source,
    })?;
    // The number of rows is an exact count of the data: it is not logged.
    for (name, d) in &state.datasets {
        tracing::info!(
            dataset = %name,
            layout = %d.config.layout,
            dimensions = ?d.target.domains.dim_names(),
            population = %d.target.policy.population,
            "dataset loaded"
        );
    }
    tracing::info!(source = %privacy::noise_source(), "noise source");
    let live = Arc::new(Live::new(state, config, Some(path)));
    actix_web::rt::System::new().block_on(async move {
        let running = crate::run(live.clone())?;
        watch_sighup(live.clone())?;
        let state = live.snapshot();
        tracing::info!(
            addr = %running.addr,
            analysts = state.analysts.len(),
            datasets = state.datasets.len(),
            ready_ms = started.elapsed().as_secs_f64() * 1e3,
            "listening"
        );
        on_ready(running.addr)?;
        running.server.await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Reloads the config on every SIGHUP, one reload at a time, on a blocking
/// thread. Installed before the server reports it is listening, so a SIGHUP
/// sent after that line can never hit the default action (terminate).
#[cfg(unix)]
fn watch_sighup(live: Arc<Live>) -> std::io::Result<()> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hup.recv().await.is_some() {
            let live = live.clone();
            // Reading and validating the file is blocking I/O: off the
            // async thread.
            let _ = actix_web::rt::task::spawn_blocking(move || live.reload_logged()).await;
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn watch_sighup(_live: Arc<Live>) -> std::io::Result<()> {
    Ok(())
}
