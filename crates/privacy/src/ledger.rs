//! The durable ledger: every spend and every release, in SQLite.
//!
//! The database runs in WAL mode with `synchronous = FULL`, so a commit that
//! returned is on disk. [`Ledger::commit_release`] does the whole budget
//! decision in one `BEGIN IMMEDIATE` transaction: the write lock is taken
//! before the budget is read, so concurrent requests (threads or processes)
//! are serialised and can never spend past a cap together. The budget check
//! reads running totals (`spent_totals`) that triggers keep inside the same
//! transaction as each insert into the append-only `spends`, so its cost does
//! not grow with the number of releases.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{BudgetScope, PrivacyError};

/// Slack for float sums of ε: a spend that brings the total to the cap plus
/// this much is still allowed (sums of decimal ε like 0.1 are not exact).
const TOLERANCE: f64 = 1e-9;

/// How long a writer waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 2;

/// Each migration moves the schema from version `index` to `index + 1`.
const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE releases (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id   TEXT    NOT NULL UNIQUE,
    analyst      TEXT    NOT NULL,
    dataset      TEXT    NOT NULL,
    query_key    TEXT    NOT NULL,
    query_json   TEXT    NOT NULL,
    rows_json    TEXT    NOT NULL,
    epsilon      REAL    NOT NULL,
    mechanism    TEXT    NOT NULL,
    noise_scale  REAL    NOT NULL,
    ci95         REAL    NOT NULL,
    created_at   TEXT    NOT NULL,
    UNIQUE (dataset, query_key)
);
CREATE INDEX releases_by_analyst ON releases (analyst, seq);
CREATE TABLE spends (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    analyst      TEXT    NOT NULL,
    dataset      TEXT    NOT NULL,
    epsilon      REAL    NOT NULL CHECK (epsilon > 0),
    release_id   TEXT    NOT NULL REFERENCES releases (release_id),
    created_at   TEXT    NOT NULL
);
CREATE INDEX spends_by_dataset ON spends (dataset, analyst);
"#,
    // Version 2: running totals per (dataset, analyst). Summing `spends` on each
    // budget check took time in proportion to the releases ever made: three
    // scans per query, a millisecond at a few ten thousand releases. The totals
    // are kept by triggers, inside the very transaction that inserts a spend, so
    // they cannot drift from `spends`; and `spends` becomes append-only, which it
    // always was in practice, so no other path can make them drift either.
    r#"
CREATE TABLE spent_totals (
    dataset      TEXT    NOT NULL,
    analyst      TEXT    NOT NULL,
    epsilon      REAL    NOT NULL,
    releases     INTEGER NOT NULL,
    PRIMARY KEY (dataset, analyst)
) WITHOUT ROWID;
INSERT INTO spent_totals (dataset, analyst, epsilon, releases)
    SELECT dataset, analyst, SUM(epsilon), COUNT(*) FROM spends GROUP BY dataset, analyst;
CREATE TRIGGER spends_add_to_total AFTER INSERT ON spends BEGIN
    INSERT INTO spent_totals (dataset, analyst, epsilon, releases)
        VALUES (NEW.dataset, NEW.analyst, NEW.epsilon, 1)
        ON CONFLICT (dataset, analyst) DO UPDATE
        SET epsilon = epsilon + excluded.epsilon, releases = releases + 1;
END;
CREATE TRIGGER spends_are_append_only_update BEFORE UPDATE ON spends BEGIN
    SELECT RAISE(ABORT, 'spends are append-only');
END;
CREATE TRIGGER spends_are_append_only_delete BEFORE DELETE ON spends BEGIN
    SELECT RAISE(ABORT, 'spends are append-only');
END;
"#,
];

/// `strftime` pattern giving RFC 3339 UTC with milliseconds.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A request to spend ε from an analyst's budget on a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRequest {
    /// Who spends.
    pub analyst: String,
    /// On which dataset.
    pub dataset: String,
    /// How much: the ε charged by the release (opendp's map).
    pub epsilon: f64,
    /// The analyst's budget on this dataset.
    pub analyst_budget: f64,
    /// The cap on the sum spent on this dataset by all analysts.
    pub dataset_budget: f64,
}

/// A release to record (drawn before the transaction, shown only after it).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRelease {
    /// Canonical key of the query within the dataset: identical queries
    /// (same group-by set, filter sets, ε) have the same key.
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
    /// Canonical query key.
    pub query_key: String,
    /// The query, as given by the server.
    pub query_json: String,
    /// The released rows, as given by the server.
    pub rows_json: String,
    /// The ε it cost when first released.
    pub epsilon: f64,
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
    /// The same query was already released (possibly by another analyst, or
    /// concurrently): nothing was spent; show this stored release and
    /// discard the freshly drawn one.
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

/// The ledger database. `Send + Sync`: one connection behind a mutex; other
/// processes on the same file are serialised by SQLite's write lock.
pub struct Ledger {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

const RELEASE_COLUMNS: &str = "release_id, analyst, dataset, query_key, query_json, rows_json, \
     epsilon, mechanism, noise_scale, ci95, created_at";

fn release_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRelease> {
    Ok(StoredRelease {
        release_id: row.get(0)?,
        analyst: row.get(1)?,
        dataset: row.get(2)?,
        query_key: row.get(3)?,
        query_json: row.get(4)?,
        rows_json: row.get(5)?,
        epsilon: row.get(6)?,
        mechanism: row.get(7)?,
        noise_scale: row.get(8)?,
        ci95: row.get(9)?,
        created_at: row.get(10)?,
    })
}

fn find(
    conn: &Connection,
    dataset: &str,
    query_key: &str,
) -> rusqlite::Result<Option<StoredRelease>> {
    conn.prepare_cached(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE dataset = ?1 AND query_key = ?2"
    ))?
    .query_row(params![dataset, query_key], release_from_row)
    .optional()
}

/// The ε spent on `dataset` by `analyst`, or by everyone with `None`, from
/// the running totals (one row per analyst who ever spent on the dataset).
fn sum_spent(conn: &Connection, analyst: Option<&str>, dataset: &str) -> rusqlite::Result<f64> {
    match analyst {
        Some(a) => conn
            .prepare_cached(
                "SELECT COALESCE(SUM(epsilon), 0.0) FROM spent_totals \
                 WHERE dataset = ?1 AND analyst = ?2",
            )?
            .query_row(params![dataset, a], |r| r.get(0)),
        None => conn
            .prepare_cached(
                "SELECT COALESCE(SUM(epsilon), 0.0) FROM spent_totals WHERE dataset = ?1",
            )?
            .query_row(params![dataset], |r| r.get(0)),
    }
}

/// A random 128-bit id in hex, from opendp's sampler (OpenSSL's CSPRNG).
fn new_release_id() -> Result<String, PrivacyError> {
    let mut bytes = [0u8; 16];
    opendp::traits::samplers::fill_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn check_amount(what: &str, value: f64, positive: bool) -> Result<(), PrivacyError> {
    let ok = value.is_finite() && if positive { value > 0.0 } else { value >= 0.0 };
    if ok {
        Ok(())
    } else {
        Err(PrivacyError::InvalidEpsilon {
            epsilon: value,
            reason: format!(
                "{what} must be a finite number {}",
                if positive { "above 0" } else { "of at least 0" }
            ),
        })
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` and brings its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<Ledger, PrivacyError> {
        let mut conn = Connection::open(path)
            .map_err(|e| PrivacyError::Ledger(format!("cannot open {}: {e}", path.display())))?;
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
        migrate(&mut conn)?;
        Ok(Ledger {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done write (every
        // write is one transaction that rolls back on drop), so a poisoned
        // lock is safe to take.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up a stored release by its canonical query key (any analyst).
    pub fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
    ) -> Result<Option<StoredRelease>, PrivacyError> {
        Ok(find(&self.conn(), dataset, query_key)?)
    }

    /// In one `BEGIN IMMEDIATE` transaction: if a release with this query
    /// key exists on the dataset, return it as [`CommitOutcome::Cached`]
    /// (nothing spent); otherwise check that the analyst's spent + ε and the
    /// dataset's total spent + ε stay within their budgets (tolerance 1e-9),
    /// record the spend and the release, and commit. Returns only after the
    /// commit is durable; on any error nothing was recorded and nothing may
    /// be shown.
    pub fn commit_release(
        &self,
        req: &SpendRequest,
        release: &NewRelease,
    ) -> Result<CommitOutcome, PrivacyError> {
        check_amount("epsilon", req.epsilon, true)?;
        check_amount("analyst budget", req.analyst_budget, false)?;
        check_amount("dataset budget", req.dataset_budget, false)?;
        let release_id = new_release_id()?;

        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = find(&tx, &req.dataset, &release.query_key)? {
            tx.commit()?;
            return Ok(CommitOutcome::Cached(existing));
        }
        let analyst_spent = sum_spent(&tx, Some(&req.analyst), &req.dataset)?;
        if analyst_spent + req.epsilon > req.analyst_budget + TOLERANCE {
            return Err(PrivacyError::BudgetExhausted {
                scope: BudgetScope::Analyst,
                remaining: (req.analyst_budget - analyst_spent).max(0.0),
            });
        }
        let dataset_spent = sum_spent(&tx, None, &req.dataset)?;
        if dataset_spent + req.epsilon > req.dataset_budget + TOLERANCE {
            return Err(PrivacyError::BudgetExhausted {
                scope: BudgetScope::Dataset,
                remaining: (req.dataset_budget - dataset_spent).max(0.0),
            });
        }
        // The stored release is what was inserted plus the commit time, so
        // it is rebuilt here rather than read back (the rows are tens of kB).
        let created_at: String = tx
            .prepare_cached(&format!(
                "INSERT INTO releases ({RELEASE_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, {NOW}) RETURNING created_at"
            ))?
            .query_row(
                params![
                    release_id,
                    req.analyst,
                    req.dataset,
                    release.query_key,
                    release.query_json,
                    release.rows_json,
                    req.epsilon,
                    release.mechanism,
                    release.noise_scale,
                    release.ci95,
                ],
                |r| r.get(0),
            )?;
        tx.prepare_cached(
            "INSERT INTO spends (analyst, dataset, epsilon, release_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            req.analyst,
            req.dataset,
            req.epsilon,
            release_id,
            created_at
        ])?;
        tx.commit()?;
        Ok(CommitOutcome::Released(StoredRelease {
            release_id,
            analyst: req.analyst.clone(),
            dataset: req.dataset.clone(),
            query_key: release.query_key.clone(),
            query_json: release.query_json.clone(),
            rows_json: release.rows_json.clone(),
            epsilon: req.epsilon,
            mechanism: release.mechanism.clone(),
            noise_scale: release.noise_scale,
            ci95: release.ci95,
            created_at,
        }))
    }

    /// The ε an analyst has spent on a dataset.
    pub fn spent(&self, analyst: &str, dataset: &str) -> Result<f64, PrivacyError> {
        Ok(sum_spent(&self.conn(), Some(analyst), dataset)?)
    }

    /// The ε spent on a dataset by all analysts together.
    pub fn dataset_spent(&self, dataset: &str) -> Result<f64, PrivacyError> {
        Ok(sum_spent(&self.conn(), None, dataset)?)
    }

    /// The releases an analyst paid for, oldest first.
    pub fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE analyst = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![analyst], release_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
    pub spent: f64,
    /// The number of releases paid for.
    pub releases: u64,
}

/// Read-only views for operators (`rollcall budget`, `rollcall audit`).
impl Ledger {
    /// Opens an existing ledger read-only: safe while a server writes to it
    /// (WAL lets readers see the last committed state without blocking the
    /// writer). Refuses a file that is missing, not a ledger, or of a newer
    /// schema than this program knows.
    pub fn open_read_only(path: &Path) -> Result<Ledger, PrivacyError> {
        use rusqlite::OpenFlags;
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
        let version: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(|e| {
                PrivacyError::Ledger(format!("{} is not a rollcall ledger: {e}", path.display()))
            })?;
        match version {
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(PrivacyError::Ledger(format!(
                    "ledger schema version {v} is newer than this program's {SCHEMA_VERSION}"
                )));
            }
            v => {
                return Err(PrivacyError::Ledger(format!(
                    "{}: ledger schema version {} is older than this program's \
                     {SCHEMA_VERSION}; start the server once to migrate it",
                    path.display(),
                    v.unwrap_or(0)
                )));
            }
        }
        Ok(Ledger {
            conn: Mutex::new(conn),
        })
    }

    /// Every (analyst, dataset) with a spend: the sum spent and the number
    /// of releases paid for, ordered by dataset then analyst.
    pub fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT analyst, dataset, epsilon, releases FROM spent_totals \
             ORDER BY dataset, analyst",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SpendSummary {
                analyst: r.get(0)?,
                dataset: r.get(1)?,
                spent: r.get(2)?,
                releases: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every release of every analyst, oldest first; with `since`, only
    /// those committed at or after it. `since` is an SQLite time string:
    /// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or `±HH:MM`
    /// (converted to UTC); anything else is an error.
    pub fn releases_since(&self, since: Option<&str>) -> Result<Vec<StoredRelease>, PrivacyError> {
        let conn = self.conn();
        let Some(since) = since else {
            let mut stmt = conn.prepare(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases ORDER BY seq"
            ))?;
            let rows = stmt.query_map([], release_from_row)?;
            return Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        };
        let utc: Option<String> = conn.query_row(
            "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1)",
            params![since],
            |r| r.get(0),
        )?;
        let utc = utc.ok_or_else(|| {
            PrivacyError::Ledger(format!(
                "`{since}` is not a time (YYYY-MM-DD or RFC 3339, e.g. 2026-06-30T12:00:00Z)"
            ))
        })?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE created_at >= ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![utc], release_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), PrivacyError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(PrivacyError::Ledger(format!(
            "ledger schema version {current} is newer than this program's {SCHEMA_VERSION}"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            &format!("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, {NOW})"),
            params![index as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn request(
        analyst: &str,
        epsilon: f64,
        analyst_budget: f64,
        dataset_budget: f64,
    ) -> SpendRequest {
        SpendRequest {
            analyst: analyst.into(),
            dataset: "nc".into(),
            epsilon,
            analyst_budget,
            dataset_budget,
        }
    }

    fn release(key: &str) -> NewRelease {
        NewRelease {
            query_key: key.into(),
            query_json: format!("{{\"key\":\"{key}\"}}"),
            rows_json: "[{\"count\":3}]".into(),
            mechanism: crate::MECHANISM.into(),
            noise_scale: 1.0,
            ci95: 3.4,
        }
    }

    #[test]
    fn release_is_stored_and_spent() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let out = ledger
            .commit_release(&request("alice", 0.5, 3.0, 10.0), &release("q1"))
            .unwrap();
        let CommitOutcome::Released(r) = out else {
            panic!("first release came back cached")
        };
        assert_eq!(r.release_id.len(), 32);
        assert!(r.release_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            r.created_at.ends_with('Z') && r.created_at.contains('T'),
            "{}",
            r.created_at
        );
        assert_eq!(r.rows_json, "[{\"count\":3}]");
        assert_eq!(ledger.spent("alice", "nc").unwrap(), 0.5);
        assert_eq!(ledger.spent("alice", "oh").unwrap(), 0.0);
        assert_eq!(ledger.dataset_spent("nc").unwrap(), 0.5);
        assert_eq!(ledger.find_release("nc", "q1").unwrap(), Some(r.clone()));
        assert_eq!(ledger.find_release("oh", "q1").unwrap(), None);
        assert_eq!(ledger.releases_for("alice").unwrap(), vec![r]);
        assert!(ledger.releases_for("bob").unwrap().is_empty());
    }

    #[test]
    fn identical_query_is_cached_and_free_for_anyone() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let first = ledger
            .commit_release(&request("alice", 1.0, 3.0, 10.0), &release("q"))
            .unwrap();
        let mut other = release("q");
        other.rows_json = "[{\"count\":999}]".into();
        let again = ledger
            .commit_release(&request("bob", 1.0, 3.0, 10.0), &other)
            .unwrap();
        assert!(again.is_cached());
        assert_eq!(
            again.release(),
            first.release(),
            "a repeat must return the stored noise"
        );
        assert_eq!(ledger.spent("bob", "nc").unwrap(), 0.0);
        assert_eq!(ledger.dataset_spent("nc").unwrap(), 1.0);
        // Even when the budget is gone, the stored release is free.
        let cached = ledger
            .commit_release(&request("carol", 1.0, 0.0, 0.0), &release("q"))
            .unwrap();
        assert!(cached.is_cached());
    }

    #[test]
    fn analyst_budget_is_enforced_with_remaining() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        // Ten spends of 0.1 reach a budget of 1.0 despite float rounding.
        for i in 0..10 {
            ledger
                .commit_release(
                    &request("alice", 0.1, 1.0, 10.0),
                    &release(&format!("q{i}")),
                )
                .unwrap_or_else(|e| panic!("spend {i}: {e}"));
        }
        let err = ledger
            .commit_release(&request("alice", 0.1, 1.0, 10.0), &release("q10"))
            .unwrap_err();
        match err {
            PrivacyError::BudgetExhausted {
                scope: BudgetScope::Analyst,
                remaining,
            } => assert!(remaining < 1e-9, "{remaining}"),
            other => panic!("expected analyst budget exhausted, got {other}"),
        }
        assert!(
            ledger.find_release("nc", "q10").unwrap().is_none(),
            "refused release stored"
        );
        assert!((ledger.spent("alice", "nc").unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn dataset_cap_is_enforced_across_analysts() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .commit_release(&request("alice", 2.0, 3.0, 5.0), &release("a1"))
            .unwrap();
        ledger
            .commit_release(&request("bob", 2.0, 3.0, 5.0), &release("b1"))
            .unwrap();
        let err = ledger
            .commit_release(&request("carol", 2.0, 3.0, 5.0), &release("c1"))
            .unwrap_err();
        match err {
            PrivacyError::BudgetExhausted {
                scope: BudgetScope::Dataset,
                remaining,
            } => assert!((remaining - 1.0).abs() < 1e-9, "{remaining}"),
            other => panic!("expected dataset cap, got {other}"),
        }
        assert!(ledger.spent("carol", "nc").unwrap() == 0.0);
        // What remains can still be spent.
        ledger
            .commit_release(&request("carol", 1.0, 3.0, 5.0), &release("c2"))
            .unwrap();
        assert!((ledger.dataset_spent("nc").unwrap() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn bad_amounts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        for (eps, ab, db) in [
            (0.0, 1.0, 1.0),
            (-1.0, 1.0, 1.0),
            (f64::NAN, 1.0, 1.0),
            (0.5, f64::INFINITY, 1.0),
            (0.5, 1.0, -1.0),
        ] {
            let err = ledger
                .commit_release(&request("alice", eps, ab, db), &release("q"))
                .unwrap_err();
            assert!(matches!(err, PrivacyError::InvalidEpsilon { .. }), "{err}");
        }
        assert_eq!(ledger.dataset_spent("nc").unwrap(), 0.0);
    }

    #[test]
    fn reopening_keeps_spends_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let first = {
            let ledger = Ledger::open(&path).unwrap();
            ledger
                .commit_release(&request("alice", 0.75, 3.0, 10.0), &release("q"))
                .unwrap()
        };
        let ledger = Ledger::open(&path).unwrap();
        assert_eq!(ledger.spent("alice", "nc").unwrap(), 0.75);
        let again = ledger
            .commit_release(&request("alice", 0.75, 3.0, 10.0), &release("q"))
            .unwrap();
        assert_eq!(again, CommitOutcome::Cached(first.release().clone()));
        assert_eq!(ledger.releases_for("alice").unwrap().len(), 1);
    }

    fn race(ledgers: Vec<Arc<Ledger>>) {
        let threads = 40;
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let ledger = ledgers[i % ledgers.len()].clone();
                std::thread::spawn(move || {
                    ledger.commit_release(
                        &request("alice", 1.0, 8.0, 100.0),
                        &release(&format!("q{i}")),
                    )
                })
            })
            .collect();
        let mut released = 0;
        let mut refused = 0;
        for h in handles {
            match h.join().unwrap() {
                Ok(CommitOutcome::Released(_)) => released += 1,
                Ok(CommitOutcome::Cached(_)) => panic!("distinct keys came back cached"),
                Err(PrivacyError::BudgetExhausted { .. }) => refused += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(released, 8, "40 spends of 1.0 against a budget of 8.0");
        assert_eq!(refused, 32);
        assert_eq!(ledgers[0].spent("alice", "nc").unwrap(), 8.0);
        assert_eq!(ledgers[0].releases_for("alice").unwrap().len(), 8);
    }

    #[test]
    fn concurrent_spends_never_pass_the_budget_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::open(&dir.path().join("l.sqlite")).unwrap());
        race(vec![ledger]);
    }

    /// Separate connections, as separate server processes would have: the
    /// IMMEDIATE transaction (SQLite's write lock) serialises them.
    #[test]
    fn concurrent_spends_never_pass_the_budget_many_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let ledgers = (0..8)
            .map(|_| Arc::new(Ledger::open(&path).unwrap()))
            .collect();
        race(ledgers);
    }

    /// A version-1 ledger (sums taken from `spends`) migrates to running
    /// totals that agree with its spends, and they keep agreeing.
    #[test]
    fn totals_migrate_from_version_one_and_track_spends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 'x');",
            )
            .unwrap();
            tx.execute_batch(MIGRATIONS[0]).unwrap();
            for (i, (analyst, eps)) in [("alice", 0.1), ("alice", 0.2), ("bob", 1.5)]
                .iter()
                .enumerate()
            {
                tx.execute(
                    "INSERT INTO releases (release_id, analyst, dataset, query_key, query_json, \
                     rows_json, epsilon, mechanism, noise_scale, ci95, created_at) \
                     VALUES (?1, ?2, 'nc', ?1, '{}', '[]', ?3, 'm', 1.0, 1.0, 'x')",
                    params![format!("r{i}"), analyst, eps],
                )
                .unwrap();
                tx.execute(
                    "INSERT INTO spends (analyst, dataset, epsilon, release_id, created_at) \
                     VALUES (?1, 'nc', ?2, ?3, 'x')",
                    params![analyst, eps, format!("r{i}")],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        assert!((ledger.spent("alice", "nc").unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(ledger.spent("bob", "nc").unwrap(), 1.5);
        assert!((ledger.dataset_spent("nc").unwrap() - 1.8).abs() < 1e-12);
        ledger
            .commit_release(&request("alice", 0.5, 3.0, 10.0), &release("new"))
            .unwrap();
        let summary = ledger.spend_summary().unwrap();
        assert_eq!(summary.len(), 2);
        assert_eq!(
            (summary[0].analyst.as_str(), summary[0].releases),
            ("alice", 3)
        );
        assert!((summary[0].spent - 0.8).abs() < 1e-12);
        let conn = ledger.conn();
        let from_spends: f64 = conn
            .query_row("SELECT SUM(epsilon) FROM spends", [], |r| r.get(0))
            .unwrap();
        assert!((from_spends - ledger_total(&conn)).abs() < 1e-12);
    }

    fn ledger_total(conn: &Connection) -> f64 {
        conn.query_row("SELECT SUM(epsilon) FROM spent_totals", [], |r| r.get(0))
            .unwrap()
    }

    /// Nothing can take a spend back, so the totals cannot drift from it.
    #[test]
    fn spends_are_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        ledger
            .commit_release(&request("alice", 0.5, 3.0, 10.0), &release("q"))
            .unwrap();
        let conn = ledger.conn();
        for sql in ["DELETE FROM spends", "UPDATE spends SET epsilon = 0.1"] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
        assert_eq!(ledger_total(&conn), 0.5);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        drop(Ledger::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')",
            [],
        )
        .unwrap();
        drop(conn);
        let err = Ledger::open(&path).unwrap_err().to_string();
        assert!(err.contains("99"), "{err}");
    }

    #[test]
    fn read_only_views_while_a_writer_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        assert!(Ledger::open_read_only(&path).is_err(), "missing file");
        let writer = Ledger::open(&path).unwrap();
        writer
            .commit_release(&request("alice", 0.5, 3.0, 10.0), &release("a1"))
            .unwrap();
        writer
            .commit_release(&request("alice", 0.25, 3.0, 10.0), &release("a2"))
            .unwrap();
        writer
            .commit_release(&request("bob", 1.0, 3.0, 10.0), &release("b1"))
            .unwrap();
        let reader = Ledger::open_read_only(&path).unwrap();
        assert_eq!(
            reader.spend_summary().unwrap(),
            vec![
                SpendSummary {
                    analyst: "alice".into(),
                    dataset: "nc".into(),
                    spent: 0.75,
                    releases: 2
                },
                SpendSummary {
                    analyst: "bob".into(),
                    dataset: "nc".into(),
                    spent: 1.0,
                    releases: 1
                },
            ]
        );
        let all = reader.releases_since(None).unwrap();
        let keys: Vec<&str> = all.iter().map(|r| r.query_key.as_str()).collect();
        assert_eq!(keys, ["a1", "a2", "b1"]);
        // The writer keeps writing while the reader is open; the reader sees it.
        writer
            .commit_release(&request("bob", 1.0, 3.0, 10.0), &release("b2"))
            .unwrap();
        assert_eq!(reader.releases_since(None).unwrap().len(), 4);
        // A reader cannot write.
        assert!(
            reader
                .commit_release(&request("carol", 1.0, 3.0, 10.0), &release("c1"))
                .is_err()
        );
        assert_eq!(writer.dataset_spent("nc").unwrap(), 2.75);
        // `since`: a day before and after; offsets are converted to UTC.
        assert_eq!(reader.releases_since(Some("2000-01-01")).unwrap().len(), 4);
        assert!(
            reader
                .releases_since(Some("2999-01-01"))
                .unwrap()
                .is_empty()
        );
        let first = &all[0].created_at;
        assert_eq!(reader.releases_since(Some(first)).unwrap().len(), 4);
        assert_eq!(
            reader
                .releases_since(Some("2999-01-01T01:00:00+02:00"))
                .unwrap()
                .len(),
            0
        );
        let err = reader.releases_since(Some("yesterday")).unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
        // With no writer left (its -wal and -shm checkpointed away), a reader
        // still opens and sees everything.
        drop(reader);
        drop(writer);
        let reader = Ledger::open_read_only(&path).unwrap();
        assert_eq!(reader.spend_summary().unwrap().len(), 2);
        assert_eq!(reader.releases_since(None).unwrap().len(), 4);
    }

    #[test]
    fn ledger_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Ledger>();
    }
}
