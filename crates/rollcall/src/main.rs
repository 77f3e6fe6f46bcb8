//! `rollcall`: the command-line front end. Each subcommand parses its
//! arguments and calls a library crate; nothing else lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit_cmd;
mod budget_cmd;
mod ingest_cmd;
mod layout_cmd;
mod ledger_cmd;
mod serve_cmd;
mod synth_cmd;
mod token_cmd;

/// Differentially private statistics over a voter registration file.
///
/// An election office ingests its voter file once (`rollcall ingest`), keeping
/// only the columns aggregate statistics need; analysts then query noisy
/// counts over HTTP (`rollcall serve`) within a privacy budget that cannot be
/// overspent.
#[derive(Parser)]
#[command(name = "rollcall", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest voter file(s) into a minimized Parquet dataset.
    Ingest(ingest_cmd::IngestArgs),
    /// Check a layout, alone or against the first lines of a voter file.
    Layout(layout_cmd::LayoutArgs),
    /// Write a synthetic voter file in a layout's exact format.
    Synth(synth_cmd::SynthArgs),
    /// Serve differentially private counts over HTTP (see `--config`).
    Serve(serve_cmd::ServeArgs),
    /// Print a new random bearer token and the SHA-256 the config wants.
    Token(token_cmd::TokenArgs),
    /// Show budgets, spends and remainders from the config and the ledger.
    Budget(budget_cmd::BudgetArgs),
    /// Export every release from the ledger (CSV or JSON) for oversight.
    Audit(audit_cmd::AuditArgs),
    /// Migrate the ledger's schema, or copy a ledger to another database
    /// (SQLite to PostgreSQL for replicas).
    Ledger(ledger_cmd::LedgerArgs),
    /// Print the version, and which opendp sampler and OpenSSL the noise
    /// comes from.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => ingest_cmd::run(args),
        Command::Layout(args) => layout_cmd::run(args),
        Command::Synth(args) => synth_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Token(args) => token_cmd::run(args),
        Command::Budget(args) => budget_cmd::run(args),
        Command::Audit(args) => audit_cmd::run(args),
        Command::Ledger(args) => ledger_cmd::run(args),
        Command::Version => {
            println!("rollcall {}", env!("CARGO_PKG_VERSION"));
            println!("noise: {}", privacy::noise_source());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rollcall: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
