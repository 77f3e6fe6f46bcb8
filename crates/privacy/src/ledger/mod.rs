//! The durable ledger: every spend and every release, in SQLite.
//!
//! The database runs in WAL mode with `synchronous = FULL`, so a commit that
//! returned is on disk. [`Ledger::commit_release`] makes the whole budget
//! decision in one `BEGIN IMMEDIATE` transaction: the write lock is taken
//! before any total is read, so concurrent requests (threads or processes)
//! are serialised and can never spend past a cap together. Amounts are
//! whole nano-ε ([`Epsilon`]), added and compared as integers: no tolerance.
//!
//! Three caps bound every spend (see [`Caps`]): the analyst's budget on the
//! dataset, the dataset's own cap (optional) and the population's cap, the
//! sum spent on every dataset that holds the same voters. Running totals of
//! each are kept by triggers on the append-only `spends` table, inside the
//! transaction that inserts the spend, so they cannot drift from it.
//!
//! - [`schema`]: the tables and their numbered migrations;
//! - [`commit`]: lookups, balances and the commit;
//! - [`views`]: read-only views for operators (`rollcall budget`, `audit`).

mod commit;
pub(crate) mod schema;
mod views;

#[cfg(test)]
mod tests;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{BudgetScope, Epsilon, PrivacyError};

pub use views::{DatasetSummary, SpendSummary};

/// How long a writer waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The caps one spend must fit under, all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Who spends.
    pub analyst: String,
    /// On which dataset.
    pub dataset: String,
    /// The population the dataset's voters belong to (a dataset without one
    /// is its own population, named after it).
    pub population: String,
    /// Every dataset the config puts in the population now, including
    /// `dataset`. Spends on any of them count against the population, as do
    /// spends once charged to it on datasets no longer in it.
    pub population_members: Vec<String>,
    /// The analyst's budget on this dataset.
    pub analyst_budget: Epsilon,
    /// The dataset's own cap on all analysts' spends, if it has one.
    pub dataset_cap: Option<Epsilon>,
    /// The population's cap on all spends on all its datasets.
    pub population_cap: Epsilon,
}

/// What has been spent against each of a [`Caps`]' caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    /// By the analyst on the dataset.
    pub analyst: Epsilon,
    /// On the dataset by everyone.
    pub dataset: Epsilon,
    /// On the population's datasets by everyone.
    pub population: Epsilon,
}

impl Balances {
    /// The one affordability rule, used both before any work (read-only) and
    /// inside the commit (the authority): `charge` must fit under every cap.
    pub fn check(&self, caps: &Caps, charge: Epsilon) -> Result<(), PrivacyError> {
        let fits = |spent: Epsilon, cap: Epsilon| {
            spent.checked_add(charge).is_some_and(|total| total <= cap)
        };
        let refuse = |scope, name: &str, spent: Epsilon, cap: Epsilon| {
            Err(PrivacyError::BudgetExhausted {
                scope,
                name: name.to_owned(),
                remaining: cap.saturating_sub(spent),
            })
        };
        if !fits(self.analyst, caps.analyst_budget) {
            return refuse(
                BudgetScope::Analyst,
                &caps.analyst,
                self.analyst,
                caps.analyst_budget,
            );
        }
        if let Some(cap) = caps.dataset_cap
            && !fits(self.dataset, cap)
        {
            return refuse(BudgetScope::Dataset, &caps.dataset, self.dataset, cap);
        }
        if !fits(self.population, caps.population_cap) {
            return refuse(
                BudgetScope::Population,
                &caps.population,
                self.population,
                caps.population_cap,
            );
        }
        Ok(())
    }

    /// What remains of the tightest cap (never negative).
    pub fn remaining(&self, caps: &Caps) -> Epsilon {
        let mut left = caps.analyst_budget.saturating_sub(self.analyst);
        if let Some(cap) = caps.dataset_cap {
            left = left.min(cap.saturating_sub(self.dataset));
        }
        left.min(caps.population_cap.saturating_sub(self.population))
    }
}

/// Which stored releases a query may be answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing<'a> {
    /// Any analyst's (`share_releases = true`, the default): an identical
    /// query already paid for by anyone is returned free.
    Everyone,
    /// Only this analyst's own (`share_releases = false`): analysts cannot
    /// see, or learn of, each other's questions.
    OwnOnly(&'a str),
}

/// A release to record (drawn before the transaction, shown only after it).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRelease {
    /// Canonical key of the query within the dataset: identical queries on
    /// the same data version have the same key.
    pub query_key: String,
    /// The query as the server wants to show it back.
    pub query_json: String,
    /// The released rows (noisy counts only) as the server will send them.
    pub rows_json: String,
    /// Mechanism name, e.g. [`crate::MECHANISM`].
    pub mechanism: String,
    /// Noise scale used.
    pub noise_scale: f64,
    /// 95% half-width per cell.
    pub ci95: f64,
    /// The ε charged (the release's [`crate::Charge`]).
    pub epsilon: Epsilon,
}

/// A release as stored in the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRelease {
    /// Random 128-bit id, 32 lowercase hex digits.
    pub release_id: String,
    /// The analyst who paid for it.
    pub analyst: String,
    /// The dataset.
    pub dataset: String,
    /// The population it was charged to.
    pub population: String,
    /// Canonical query key.
    pub query_key: String,
    /// The query, as given by the server.
    pub query_json: String,
    /// The released rows, as given by the server.
    pub rows_json: String,
    /// The ε it cost when first released.
    pub epsilon: Epsilon,
    /// Mechanism name.
    pub mechanism: String,
    /// Noise scale.
    pub noise_scale: f64,
    /// 95% half-width per cell.
    pub ci95: f64,
    /// When it was committed, RFC 3339 UTC (`2026-06-30T12:00:00.000Z`).
    pub created_at: String,
}

/// What [`Ledger::commit_release`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// The spend and the release were committed; show this release.
    Released(StoredRelease),
    /// The same query was already released (possibly concurrently, and by
    /// another analyst when releases are shared): nothing was spent; show
    /// this stored release and discard the freshly drawn one.
    Cached(StoredRelease),
}

impl CommitOutcome {
    /// The release to show, whichever way it came.
    pub fn release(&self) -> &StoredRelease {
        match self {
            CommitOutcome::Released(r) | CommitOutcome::Cached(r) => r,
        }
    }

    /// Whether this is a stored release returned for free.
    pub fn is_cached(&self) -> bool {
        matches!(self, CommitOutcome::Cached(_))
    }
}

/// The ledger database. `Send + Sync`: a writing connection behind a mutex
/// (other processes on the same file are serialised by SQLite's write lock)
/// and a reading one, so lookups and balances never wait for a commit's
/// fsync (WAL readers see the last committed state).
pub struct Ledger {
    conn: Mutex<Connection>,
    reader: Option<Mutex<Connection>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating it owner-only, mode 0600, if needed) the ledger at
    /// `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Ledger, PrivacyError> {
        Ledger::open_migrating(path).map(|(ledger, _)| ledger)
    }

    /// Applies any pending migrations to the ledger at `path` (creating it if
    /// needed) and returns the versions applied: `rollcall ledger migrate`.
    pub fn migrate(path: &Path) -> Result<Vec<i64>, PrivacyError> {
        Ledger::open_migrating(path).map(|(_, applied)| applied)
    }

    fn open_migrating(path: &Path) -> Result<(Ledger, Vec<i64>), PrivacyError> {
        let cannot = |e: &dyn std::fmt::Display| {
            PrivacyError::Ledger(format!("cannot open {}: {e}", path.display()))
        };
        // SQLite creates `-wal` and `-shm` with the database file's mode, so
        // creating the file owner-only first covers all three.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| cannot(&e))?;
        let mut conn = Connection::open(path).map_err(|e| cannot(&e))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(PrivacyError::Ledger(format!(
                "{}: could not switch to WAL (journal_mode is {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let applied = schema::migrate(&mut conn)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| cannot(&e))?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        let ledger = Ledger {
            conn: Mutex::new(conn),
            reader: Some(Mutex::new(reader)),
        };
        Ok((ledger, applied))
    }

    /// Opens an existing ledger read-only: safe while a server writes to it
    /// (WAL lets readers see the last committed state without blocking the
    /// writer). Refuses a file that is missing, not a ledger, or not of this
    /// program's schema version.
    pub fn open_read_only(path: &Path) -> Result<Ledger, PrivacyError> {
        if !path.is_file() {
            return Err(PrivacyError::Ledger(format!(
                "no ledger at {} (has the server run with this config?)",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| PrivacyError::Ledger(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let version = schema::version(&conn).map_err(|e| {
            PrivacyError::Ledger(format!("{} is not a rollcall ledger: {e}", path.display()))
        })?;
        match version {
            v if v == schema::SCHEMA_VERSION => {}
            v if v > schema::SCHEMA_VERSION => return Err(schema::newer(v)),
            v => {
                return Err(PrivacyError::Ledger(format!(
                    "{}: ledger schema version {v} is older than this program's {}; \
                     start the server once (or run `rollcall ledger migrate`) to migrate it",
                    path.display(),
                    schema::SCHEMA_VERSION
                )));
            }
        }
        Ok(Ledger {
            conn: Mutex::new(conn),
            reader: None,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done write (every
        // write is one transaction that rolls back on drop), so a poisoned
        // lock is safe to take.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection for reads outside a commit.
    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        match &self.reader {
            Some(r) => r.lock().unwrap_or_else(|p| p.into_inner()),
            None => self.conn(),
        }
    }
}
