//! The durable ledger: every spend and every release, in SQLite (the
//! embedded default, one server) or PostgreSQL (one ledger shared by several
//! replicas). [`Ledger`] is the one type everyone uses; which database is
//! behind it is chosen by where it is opened ([`Location`]), and both
//! backends give the same semantics, checked by one test suite run against
//! each (`tests.rs`).
//!
//! [`Ledger::commit_release`] makes the whole budget decision in one
//! transaction: look the query key up again (a stored release is returned
//! free), read what has been spent against the three caps, check them with
//! [`Balances::check`], record the spend and the release, commit; only then
//! may the release be shown. Amounts are whole nano-ε ([`Epsilon`]), added
//! and compared as integers (SQLite `INTEGER`, PostgreSQL `BIGINT`): no
//! tolerance. What serialises concurrent commits:
//!
//! - **SQLite**: `BEGIN IMMEDIATE` takes the database's write lock before any
//!   total is read, so every commit, from any thread or process, runs alone
//!   (WAL, `synchronous = FULL`: a commit that returned is on disk).
//! - **PostgreSQL**: `READ COMMITTED` transactions that first lock, with
//!   `SELECT … FOR UPDATE` in name order, one row of `ledger_locks` for the
//!   population and one for each of its datasets. Every writer of a total
//!   that a commit reads holds one of those locks (a spend on dataset `d`
//!   locks `d` and its population), so no total can change between the
//!   read and the commit, whichever replica writes and even while replicas
//!   disagree about which datasets a population holds (mid-rollout of a
//!   config). Commits on unrelated datasets do not wait for each other; two
//!   replicas racing on the same new query are serialised by the dataset's
//!   lock, and the second finds the first's release. See `postgres/` for why
//!   row locks rather than `SERIALIZABLE` with retries.
//!
//! Three caps bound every spend (see [`Caps`]): the analyst's budget on the
//! dataset, the dataset's own cap (optional) and the population's cap, the
//! sum spent on every dataset that holds the same voters. Running totals of
//! each are kept by triggers on the append-only `spends` table, inside the
//! transaction that inserts the spend, so they cannot drift from it.
//!
//! - [`sqlite`] and [`postgres`]: each backend's schema (numbered migrations,
//!   one version number for both), commit and views;
//! - [`copy`]: moving a whole ledger between backends, verified by totals.

mod copy;
mod postgres;
mod since;
mod sqlite;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{BudgetScope, Epsilon, PrivacyError};

pub use copy::{LedgerTotals, PopulationSummary};

/// The schema version this code writes, on either backend.
pub const SCHEMA_VERSION: i64 = 3;

/// Connections a server keeps to PostgreSQL at most, by default.
pub const DEFAULT_POOL_SIZE: u32 = 8;
/// How long a request waits for a PostgreSQL connection, by default, before
/// it is answered `ledger_unavailable`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several servers.
    Postgres(PostgresSettings),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is a PostgreSQL database (the
    /// URL is checked here); anything else is the path of a SQLite file.
    pub fn parse(text: &str) -> Result<Location, PrivacyError> {
        if PostgresSettings::is_url(text) {
            Ok(Location::Postgres(PostgresSettings::new(text)?))
        } else {
            Ok(Location::Sqlite(PathBuf::from(text)))
        }
    }

    /// For messages and logs: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(p) => p.redacted_url(),
        }
    }
}

/// How to reach a PostgreSQL ledger.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/database` (any libpq-style URL the
    /// `postgres` crate reads; a password in it is allowed but a
    /// `password_file` keeps it out of the config).
    pub url: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Connections kept at most.
    pub pool_size: u32,
    /// How long to wait for a connection (to connect, or for a busy pool)
    /// before the ledger counts as unavailable.
    pub connect_timeout: Duration,
}

/// The password never appears, nor the URL's.
impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &self.redacted_url())
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PostgresSettings {
    /// Settings for `url` with the default pool and timeout; refuses a URL
    /// the client cannot read (the message does not repeat it: it may hold a
    /// password).
    pub fn new(url: &str) -> Result<PostgresSettings, PrivacyError> {
        postgres::parse_url(url)?;
        Ok(PostgresSettings {
            url: url.to_owned(),
            password_file: None,
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// Whether `text` is a PostgreSQL URL rather than a file path.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// `postgres://user@host:port/database`, without any password.
    pub fn redacted_url(&self) -> String {
        postgres::redacted(&self.url)
    }
}

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

impl NewRelease {
    /// The stored release this becomes once committed for `caps` with
    /// `release_id` at `created_at`: rebuilt rather than read back (the rows
    /// are tens of kB).
    pub(crate) fn stored(
        &self,
        release_id: String,
        caps: &Caps,
        created_at: String,
    ) -> StoredRelease {
        StoredRelease {
            release_id,
            analyst: caps.analyst.clone(),
            dataset: caps.dataset.clone(),
            population: caps.population.clone(),
            query_key: self.query_key.clone(),
            query_json: self.query_json.clone(),
            rows_json: self.rows_json.clone(),
            epsilon: self.epsilon,
            mechanism: self.mechanism.clone(),
            noise_scale: self.noise_scale,
            ci95: self.ci95,
            created_at,
        }
    }
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

/// What one analyst has spent on one dataset, from the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendSummary {
    /// The analyst (as recorded; may no longer be in the config).
    pub analyst: String,
    /// The dataset.
    pub dataset: String,
    /// The sum of ε spent.
    pub spent: Epsilon,
    /// The number of releases paid for.
    pub releases: u64,
}

/// What has been spent on one dataset by everyone.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSummary {
    /// The dataset (as recorded; may no longer be in the config).
    pub dataset: String,
    /// The sum of ε spent on it.
    pub spent: Epsilon,
    /// The number of releases.
    pub releases: u64,
}

/// One spend as stored: what [`Ledger::copy_to`] moves with the releases.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpend {
    /// Who spent.
    pub analyst: String,
    /// On which dataset.
    pub dataset: String,
    /// The population it was charged to.
    pub population: String,
    /// How much.
    pub epsilon: Epsilon,
    /// The release it paid for.
    pub release_id: String,
    /// When, RFC 3339 UTC.
    pub created_at: String,
}

/// A row of a whole ledger, in the order [`Backend::export`] gives them:
/// every release (oldest first), then every spend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Release(StoredRelease),
    Spend(StoredSpend),
}

/// What each backend does; [`Ledger`] adds the checks both share.
pub(crate) trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<StoredRelease>, PrivacyError>;
    fn balances(&self, caps: &Caps) -> Result<Balances, PrivacyError>;
    /// The commit, with a fresh `release_id` and an ε above zero.
    fn commit_release(
        &self,
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
        release_id: String,
    ) -> Result<CommitOutcome, PrivacyError>;
    fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError>;
    fn spent(&self, analyst: &str, dataset: &str) -> Result<Epsilon, PrivacyError>;
    fn dataset_spent(&self, dataset: &str) -> Result<Epsilon, PrivacyError>;
    fn population_spent(
        &self,
        population: &str,
        members: &[String],
    ) -> Result<Epsilon, PrivacyError>;
    fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError>;
    fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError>;
    fn dataset_summary(&self) -> Result<Vec<DatasetSummary>, PrivacyError>;
    /// Releases committed at or after `since` (canonical UTC, as stored).
    fn releases_since(&self, since: Option<&str>) -> Result<Vec<StoredRelease>, PrivacyError>;
    /// A round trip to the database: `Ok` if it answers now.
    fn check(&self) -> Result<(), PrivacyError>;
    /// Every record, in one consistent snapshot, and the totals of that
    /// snapshot.
    fn export(
        &self,
        sink: &mut dyn FnMut(Record) -> Result<(), PrivacyError>,
    ) -> Result<LedgerTotals, PrivacyError>;
    /// Copies every record of `source` into this (empty) ledger in one
    /// transaction, committed only if this ledger's totals then equal the
    /// source's.
    fn import(&self, source: &dyn Backend) -> Result<LedgerTotals, PrivacyError>;
    fn totals(&self) -> Result<LedgerTotals, PrivacyError>;
    /// Runs `sql` on the writing connection (tests of the schema only).
    #[cfg(test)]
    fn execute_raw(&self, sql: &str) -> Result<(), PrivacyError>;
    /// Rows in `table` (tests only).
    #[cfg(test)]
    fn count_rows(&self, table: &str) -> i64;
}

/// The ledger: `Send + Sync`, shared by every request of a server. Each
/// method is one transaction (or one read) on the database behind it.
pub struct Ledger {
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating it owner-only, mode 0600, if needed) the SQLite
    /// ledger at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Ledger, PrivacyError> {
        Ledger::open_at(&Location::Sqlite(path.to_owned()))
    }

    /// Opens the ledger at `location` and brings its schema up to date
    /// (PostgreSQL: several servers starting at once apply each migration
    /// once, under an advisory lock).
    pub fn open_at(location: &Location) -> Result<Ledger, PrivacyError> {
        Ledger::open_migrating(location).map(|(ledger, _)| ledger)
    }

    /// Applies any pending migrations to the SQLite ledger at `path`
    /// (creating it if needed) and returns the versions applied.
    pub fn migrate(path: &Path) -> Result<Vec<i64>, PrivacyError> {
        Ledger::migrate_at(&Location::Sqlite(path.to_owned()))
    }

    /// Applies any pending migrations at `location` and returns the versions
    /// applied: `rollcall ledger migrate`.
    pub fn migrate_at(location: &Location) -> Result<Vec<i64>, PrivacyError> {
        Ledger::open_migrating(location).map(|(_, applied)| applied)
    }

    fn open_migrating(location: &Location) -> Result<(Ledger, Vec<i64>), PrivacyError> {
        let (backend, applied): (Box<dyn Backend>, _) = match location {
            Location::Sqlite(path) => {
                let (l, applied) = sqlite::Sqlite::open(path)?;
                (Box::new(l), applied)
            }
            Location::Postgres(settings) => {
                let (l, applied) = postgres::Postgres::open(settings, false)?;
                (Box::new(l), applied)
            }
        };
        Ok((Ledger { backend }, applied))
    }

    /// Opens an existing SQLite ledger read-only: safe while a server writes
    /// to it. Refuses a file that is missing, not a ledger, or not of this
    /// program's schema version.
    pub fn open_read_only(path: &Path) -> Result<Ledger, PrivacyError> {
        Ledger::open_read_only_at(&Location::Sqlite(path.to_owned()))
    }

    /// Opens an existing ledger read-only (PostgreSQL: every transaction
    /// read-only), for `rollcall budget` and `audit`, safe while servers
    /// write. Refuses a ledger that is missing or of another schema version.
    pub fn open_read_only_at(location: &Location) -> Result<Ledger, PrivacyError> {
        let backend: Box<dyn Backend> = match location {
            Location::Sqlite(path) => Box::new(sqlite::Sqlite::open_read_only(path)?),
            Location::Postgres(settings) => Box::new(postgres::Postgres::open(settings, true)?.0),
        };
        Ok(Ledger { backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether every call is a round trip over the network (PostgreSQL):
    /// such calls belong on blocking threads, never on an async one.
    pub fn is_remote(&self) -> bool {
        self.backend.name() == "postgres"
    }

    /// `Ok` if the database answers now; [`PrivacyError::LedgerUnavailable`]
    /// if it cannot be reached.
    pub fn check(&self) -> Result<(), PrivacyError> {
        self.backend.check()
    }

    /// The stored release of `query_key` on `dataset` that `sharing` allows.
    pub fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<StoredRelease>, PrivacyError> {
        self.backend.find_release(dataset, query_key, sharing)
    }

    /// What has been spent against each of `caps`' caps, read outside any
    /// commit: the check before any work. The commit checks again.
    pub fn balances(&self, caps: &Caps) -> Result<Balances, PrivacyError> {
        self.backend.balances(caps)
    }

    /// In one transaction: if a release of this query key that `sharing`
    /// allows exists, return it as [`CommitOutcome::Cached`] (nothing
    /// spent); otherwise check that the release's ε fits under every cap of
    /// `caps` ([`Balances::check`], exact), record the spend and the release,
    /// and commit. Returns only after the commit is durable; on any error
    /// nothing may be shown (and, but for a connection lost during the
    /// commit itself, nothing was recorded: a spend recorded then is a spend
    /// without an answer, never an answer without a spend).
    pub fn commit_release(
        &self,
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
    ) -> Result<CommitOutcome, PrivacyError> {
        if release.epsilon == Epsilon::ZERO {
            return Err(PrivacyError::InvalidEpsilon {
                epsilon: 0.0,
                reason: "a release must cost more than 0".into(),
            });
        }
        let release_id = new_release_id()?;
        self.backend
            .commit_release(caps, sharing, release, release_id)
    }

    /// Times what a commit of a release of `bytes` bytes costs without
    /// recording anything: a row of that size written to the always-empty
    /// `rehearsals` table and deleted, in one durable transaction. The
    /// release path includes it when it sets a deadline; no spend, release
    /// or data is written.
    pub fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError> {
        self.backend.rehearse_commit(bytes)
    }

    /// The ε an analyst has spent on a dataset.
    pub fn spent(&self, analyst: &str, dataset: &str) -> Result<Epsilon, PrivacyError> {
        self.backend.spent(analyst, dataset)
    }

    /// The ε spent on a dataset by all analysts together.
    pub fn dataset_spent(&self, dataset: &str) -> Result<Epsilon, PrivacyError> {
        self.backend.dataset_spent(dataset)
    }

    /// The ε spent against a population whose datasets are now `members`:
    /// everything spent on them, plus what was once charged to it on
    /// datasets no longer in it.
    pub fn population_spent(
        &self,
        population: &str,
        members: &[String],
    ) -> Result<Epsilon, PrivacyError> {
        self.backend.population_spent(population, members)
    }

    /// The releases an analyst paid for, oldest first.
    pub fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError> {
        self.backend.releases_for(analyst)
    }

    /// Every (analyst, dataset) with a spend: the sum spent and the number
    /// of releases paid for, ordered by dataset then analyst (bytewise).
    pub fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError> {
        self.backend.spend_summary()
    }

    /// Every dataset with a spend, by name (bytewise).
    pub fn dataset_summary(&self) -> Result<Vec<DatasetSummary>, PrivacyError> {
        self.backend.dataset_summary()
    }

    /// Every release of every analyst, oldest first; with `since`, only
    /// those committed at or after it. `since` is `YYYY-MM-DD` (UTC), or
    /// `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or `±HH:MM` (converted to
    /// UTC; no zone means UTC); anything else is an error.
    pub fn releases_since(&self, since: Option<&str>) -> Result<Vec<StoredRelease>, PrivacyError> {
        let since = since.map(since::to_utc).transpose()?;
        self.backend.releases_since(since.as_deref())
    }

    /// Release and spend counts and every running total, for checking a
    /// copy (`rollcall ledger copy`).
    pub fn totals(&self) -> Result<LedgerTotals, PrivacyError> {
        self.backend.totals()
    }
}

/// A read-only opener's check: the ledger at `place` must be of this
/// program's schema version (an older one is migrated by a server's start or
/// `rollcall ledger migrate`, never by a reader).
pub(crate) fn check_version(place: &str, version: i64) -> Result<(), PrivacyError> {
    match version {
        v if v == SCHEMA_VERSION => Ok(()),
        v if v > SCHEMA_VERSION => Err(newer(v)),
        0 => Err(PrivacyError::Ledger(format!(
            "{place} is not a rollcall ledger yet (has a server run with this config? \
             `rollcall ledger migrate` creates its tables)"
        ))),
        v => Err(PrivacyError::Ledger(format!(
            "{place}: ledger schema version {v} is older than this program's {SCHEMA_VERSION}; \
             start the server once (or run `rollcall ledger migrate`) to migrate it"
        ))),
    }
}

/// The error for a ledger written by a newer rollcall.
pub(crate) fn newer(version: i64) -> PrivacyError {
    PrivacyError::Ledger(format!(
        "ledger schema version {version} is newer than this program's {SCHEMA_VERSION}"
    ))
}

/// A random 128-bit id in hex, from opendp's sampler (OpenSSL's CSPRNG).
fn new_release_id() -> Result<String, PrivacyError> {
    let mut bytes = [0u8; 16];
    opendp::traits::samplers::fill_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
