//! The `rollcall serve` and `rollcall token` subcommands.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::{AppState, Config, Live};

/// Arguments of `rollcall serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The server's config file (TOML): listen address, data and ledger
    /// paths, datasets with their budgets, analysts with token hashes.
    /// Relative paths inside it are relative to the current directory.
    #[arg(long, short, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Log format on stderr. Filter with RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `rollcall token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Instead of making a new token, read one line (a token) from stdin and
    /// print its SHA-256, e.g. to put a known demo token into a config.
    #[arg(long)]
    pub hash_stdin: bool,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests calling serve twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `rollcall serve`: validates the config, loads every dataset, opens the
/// ledger, binds, prints `rollcall: listening on http://ADDR` on stdout once
/// ready, and serves until SIGINT/SIGTERM. SIGHUP re-reads the config file
/// (see [`crate::reload`] for what it may change).
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logging(args.log_format);
    let config = Config::from_file(&args.config)
        .with_context(|| format!("invalid config {}", args.config.display()))?;
    let state = AppState::load(config.clone())
        .with_context(|| format!("cannot start with config {}", args.config.display()))?;
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
    let live = Arc::new(Live::new(state, config, Some(args.config.clone())));
    actix_web::rt::System::new().block_on(async move {
        let running = crate::run(live.clone())?;
        watch_sighup(live.clone())?;
        let state = live.snapshot();
        let ready_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            addr = %running.addr,
            analysts = state.analysts.len(),
            datasets = state.datasets.len(),
            ready_ms,
            "listening"
        );
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "rollcall: listening on http://{}", running.addr)?;
            out.flush()?;
        }
        running.server.await?;
        tracing::info!("stopped");
        anyhow::Ok(())
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

/// SHA-256 of a token as lowercase hex, as `token_sha256` wants it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new bearer token: `rc_` and 256 bits from the OS's CSPRNG in hex.
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(format!("rc_{}", hex::encode(bytes)))
}

/// `rollcall token`: prints a new random token and its SHA-256 (or, with
/// `--hash-stdin`, the SHA-256 of a token read from stdin).
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.hash_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading a token from stdin")?;
        let token = line.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!token.is_empty(), "no token on stdin");
        writeln!(out, "{}", token_hash(token))?;
        return Ok(());
    }
    let token = new_token()?;
    writeln!(out, "token:        {token}")?;
    writeln!(out, "token_sha256: {}", token_hash(&token))?;
    writeln!(
        out,
        "# Give the token to the analyst; put only token_sha256 into the [[analyst]] entry."
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(token_hash("abc").len(), 64);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
