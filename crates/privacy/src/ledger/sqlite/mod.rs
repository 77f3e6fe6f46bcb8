//! The SQLite backend: one file, one server (or several processes on one
//! machine). WAL mode with `synchronous = FULL`, so a commit that returned is
//! on disk; every commit is one `BEGIN IMMEDIATE` transaction, which takes
//! the write lock before any total is read, so concurrent commits (threads
//! or processes) run one at a time.
//!
//! - [`schema`]: the tables and their numbered migrations;
//! - [`commit`]: lookups, balances and the commit;
//! - [`views`]: read-only views for operators (`rollcall budget`, `audit`)
//!   and the export and import of a whole ledger.

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

use super::copy::LedgerTotals;
use super::{
    Backend, Balances, Caps, CommitOutcome, DatasetSummary, NewRelease, Record, Sharing,
    SpendSummary, StoredRelease, check_version,
};
use crate::{Epsilon, PrivacyError};

/// How long a writer waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A SQLite ledger: a writing connection behind a mutex (other processes on
/// the same file are serialised by SQLite's write lock) and a reading one,
/// so lookups and balances never wait for a commit's fsync (WAL readers see
/// the last committed state).
pub(crate) struct Sqlite {
    conn: Mutex<Connection>,
    reader: Option<Mutex<Connection>>,
}

impl Sqlite {
    /// Opens (creating it owner-only, mode 0600, if needed) the ledger at
    /// `path`, brings its schema up to date and returns the versions applied.
    pub(crate) fn open(path: &Path) -> Result<(Sqlite, Vec<i64>), PrivacyError> {
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
        let ledger = Sqlite {
            conn: Mutex::new(conn),
            reader: Some(Mutex::new(reader)),
        };
        Ok((ledger, applied))
    }

    /// Opens an existing ledger read-only: safe while a server writes to it
    /// (WAL lets readers see the last committed state without blocking the
    /// writer). Refuses a file that is missing, not a ledger, or not of this
    /// program's schema version.
    pub(crate) fn open_read_only(path: &Path) -> Result<Sqlite, PrivacyError> {
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
        check_version(&path.display().to_string(), version)?;
        Ok(Sqlite {
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

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<StoredRelease>, PrivacyError> {
        Sqlite::find_release(self, dataset, query_key, sharing)
    }

    fn balances(&self, caps: &Caps) -> Result<Balances, PrivacyError> {
        Sqlite::balances(self, caps)
    }

    fn commit_release(
        &self,
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
        release_id: String,
    ) -> Result<CommitOutcome, PrivacyError> {
        Sqlite::commit_release(self, caps, sharing, release, release_id)
    }

    fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError> {
        Sqlite::rehearse_commit(self, bytes)
    }

    fn spent(&self, analyst: &str, dataset: &str) -> Result<Epsilon, PrivacyError> {
        Sqlite::spent(self, analyst, dataset)
    }

    fn dataset_spent(&self, dataset: &str) -> Result<Epsilon, PrivacyError> {
        Sqlite::dataset_spent(self, dataset)
    }

    fn population_spent(
        &self,
        population: &str,
        members: &[String],
    ) -> Result<Epsilon, PrivacyError> {
        Sqlite::population_spent(self, population, members)
    }

    fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError> {
        Sqlite::releases_for(self, analyst)
    }

    fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError> {
        Sqlite::spend_summary(self)
    }

    fn dataset_summary(&self) -> Result<Vec<DatasetSummary>, PrivacyError> {
        Sqlite::dataset_summary(self)
    }

    fn releases_since(&self, since: Option<&str>) -> Result<Vec<StoredRelease>, PrivacyError> {
        Sqlite::releases_since(self, since)
    }

    /// A local file: there is nothing to reach, but a read shows the file
    /// is still a readable ledger.
    fn check(&self) -> Result<(), PrivacyError> {
        schema::version(&self.read())?;
        Ok(())
    }

    fn export(
        &self,
        sink: &mut dyn FnMut(Record) -> Result<(), PrivacyError>,
    ) -> Result<LedgerTotals, PrivacyError> {
        Sqlite::export(self, sink)
    }

    fn import(&self, source: &dyn Backend) -> Result<LedgerTotals, PrivacyError> {
        Sqlite::import(self, source)
    }

    fn totals(&self) -> Result<LedgerTotals, PrivacyError> {
        Sqlite::totals(self)
    }

    #[cfg(test)]
    fn execute_raw(&self, sql: &str) -> Result<(), PrivacyError> {
        Ok(self.conn().execute_batch(sql)?)
    }

    #[cfg(test)]
    fn count_rows(&self, table: &str) -> i64 {
        self.conn()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}
