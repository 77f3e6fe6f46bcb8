//! `rollcall serve`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Serve differentially private counts over HTTP.
///
/// Prints `rollcall: listening on http://ADDR` on stdout once ready; SIGHUP
/// re-reads the config, SIGINT/SIGTERM stop.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The server's config file (TOML): listen address, data and ledger
    /// paths, datasets with their budgets, analysts with token hashes.
    /// Relative paths inside it are relative to the current directory.
    #[arg(long, short, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// Log format on stderr. Filter with RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the subcommand.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    server::serve(&args.config, |addr| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "rollcall: listening on http://{addr}")?;
        out.flush()
    })?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
