//! `rollcall token`.

use std::io::{BufRead, Write};

use anyhow::Context;

/// Print a new random bearer token and the SHA-256 the config wants.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Instead of making a new token, read one line (a token) from stdin and
    /// print its SHA-256, e.g. to put a known demo token into a config.
    #[arg(long)]
    hash_stdin: bool,
}

/// Runs the subcommand: prints a new random token and its SHA-256 (or, with
/// `--hash-stdin`, the SHA-256 of a token read from stdin).
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.hash_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading a token from stdin")?;
        let token = line.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!token.is_empty(), "no token on stdin");
        writeln!(out, "{}", server::token::hash(token))?;
        return Ok(());
    }
    let token = server::token::generate().map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    writeln!(out, "token:        {token}")?;
    writeln!(out, "token_sha256: {}", server::token::hash(&token))?;
    writeln!(
        out,
        "# Give the token to the analyst; put only token_sha256 into the [[analyst]] entry."
    )?;
    Ok(())
}
