//! `rollcall ledger`: the ledger's schema and moving it between databases.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use privacy::{Ledger, LedgerTotals, Location, SCHEMA_VERSION};
use server::Config;

/// Migrate the ledger's schema, or copy a whole ledger to another database.
#[derive(Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Apply pending schema migrations to the config's ledger (`server.ledger`,
    /// SQLite or PostgreSQL), creating its tables if needed, and exit.
    ///
    /// Servers migrate at start-up too; run this ahead of a rollout so that
    /// replicas on the old version are never surprised by a migration made
    /// by the first new one (each migration runs once, in one transaction).
    #[command(after_help = "Example:\n  rollcall ledger migrate --config config/rollcall.toml")]
    Migrate {
        /// The server's config file (for `server.ledger`).
        #[arg(long, short, env = "ROLLCALL_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Copy every release and spend of one ledger into another, empty one
    /// (e.g. a server's SQLite file into the PostgreSQL database replicas
    /// will share), in one transaction verified by totals.
    ///
    /// The source is opened read-only and read from one consistent snapshot;
    /// the target is created or migrated, must hold nothing, and is committed
    /// only if its release and spend counts, its sum of all spends and every
    /// running total (per analyst and dataset, per dataset, per population)
    /// equal the source's: a copy is whole or absent. Stop the servers
    /// writing to the source first, or the spends they make after the
    /// snapshot stay behind.
    #[command(
        after_help = "Example:\n  rollcall ledger copy --from data/ledger.sqlite \\\n    \
                      --to postgres://rollcall@db.internal:5432/rollcall \\\n    \
                      --to-password-file /etc/rollcall/ledger-password"
    )]
    Copy {
        /// The ledger to copy: a SQLite file or a postgres:// URL.
        #[arg(long, value_name = "PATH|URL")]
        from: String,
        /// The ledger to copy into: a postgres:// URL or a SQLite file.
        #[arg(long, value_name = "URL|PATH")]
        to: String,
        /// A file whose first line is the password of `--from`'s database.
        #[arg(long, value_name = "FILE")]
        from_password_file: Option<PathBuf>,
        /// A file whose first line is the password of `--to`'s database.
        #[arg(long, value_name = "FILE")]
        to_password_file: Option<PathBuf>,
    },
}

/// Runs `rollcall ledger`.
pub fn run(args: LedgerArgs) -> anyhow::Result<()> {
    match args.command {
        LedgerCommand::Migrate { config } => migrate(&config),
        LedgerCommand::Copy {
            from,
            to,
            from_password_file,
            to_password_file,
        } => copy(
            &location("--from", &from, from_password_file)?,
            &location("--to", &to, to_password_file)?,
        ),
    }
}

fn migrate(config: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::from_file(config)
        .with_context(|| format!("invalid config {}", config.display()))?;
    let at = &config.server.ledger;
    let applied = Ledger::migrate_at(at).context("server.ledger")?;
    let mut out = std::io::stdout().lock();
    if applied.is_empty() {
        writeln!(
            out,
            "ledger {}: already at schema version {SCHEMA_VERSION}",
            at.describe()
        )?;
    } else {
        let list: Vec<String> = applied.iter().map(i64::to_string).collect();
        writeln!(
            out,
            "ledger {}: applied migration(s) {}; now at schema version {SCHEMA_VERSION}",
            at.describe(),
            list.join(", ")
        )?;
    }
    Ok(())
}

/// A `--from`/`--to` argument and its password file.
fn location(flag: &str, text: &str, password_file: Option<PathBuf>) -> anyhow::Result<Location> {
    let mut location = Location::parse(text).with_context(|| flag.to_owned())?;
    match (&mut location, password_file) {
        (Location::Postgres(p), file) => p.password_file = file,
        (Location::Sqlite(_), Some(_)) => {
            anyhow::bail!("{flag}-password-file: {flag} is a SQLite file, which has no password")
        }
        (Location::Sqlite(_), None) => {}
    }
    Ok(location)
}

fn copy(from: &Location, to: &Location) -> anyhow::Result<()> {
    anyhow::ensure!(from != to, "--from and --to are the same ledger");
    let source = Ledger::open_read_only_at(from).context("--from")?;
    let target = Ledger::open_at(to).context("--to")?;
    let totals = source
        .copy_to(&target)
        .with_context(|| format!("copying {} to {}", from.describe(), to.describe()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(report(from, to, &totals).as_bytes())?;
    Ok(())
}

fn report(from: &Location, to: &Location, t: &LedgerTotals) -> String {
    let mut text = format!(
        "copied {} releases and {} spends (ε {} in all) from {} to {}\n\
         verified equal: counts, the sum of all spends, {} analyst, {} dataset and {} \
         population totals\n",
        t.releases,
        t.spends,
        t.spent,
        from.describe(),
        to.describe(),
        t.analysts.len(),
        t.datasets.len(),
        t.populations.len(),
    );
    for d in &t.datasets {
        text += &format!(
            "  dataset {}: {} releases, ε {}\n",
            d.dataset, d.releases, d.spent
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_belongs_to_a_postgres_side() {
        let pg = location("--to", "postgres://u@h/db", Some("/pw".into())).unwrap();
        let Location::Postgres(p) = pg else {
            panic!("a URL is PostgreSQL")
        };
        assert_eq!(p.password_file, Some("/pw".into()));
        let err = location("--from", "l.sqlite", Some("/pw".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--from-password-file"), "{err}");
        assert!(matches!(
            location("--from", "l.sqlite", None).unwrap(),
            Location::Sqlite(_)
        ));
    }
}
