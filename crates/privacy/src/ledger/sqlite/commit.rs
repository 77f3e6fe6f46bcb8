//! Lookups, balances and the commit: the part of the ledger on a query's path.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Sqlite;
use super::schema::NOW;
use crate::ledger::{Balances, Caps, CommitOutcome, NewRelease, Sharing, StoredRelease};
use crate::{Epsilon, PrivacyError};

pub(super) const RELEASE_COLUMNS: &str = "release_id, analyst, dataset, population, query_key, \
     query_json, rows_json, epsilon_nanos, mechanism, noise_scale, ci95, created_at";

pub(super) fn release_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRelease> {
    Ok(StoredRelease {
        release_id: row.get(0)?,
        analyst: row.get(1)?,
        dataset: row.get(2)?,
        population: row.get(3)?,
        query_key: row.get(4)?,
        query_json: row.get(5)?,
        rows_json: row.get(6)?,
        epsilon: nanos(row.get(7)?),
        mechanism: row.get(8)?,
        noise_scale: row.get(9)?,
        ci95: row.get(10)?,
        created_at: row.get(11)?,
    })
}

/// Amounts are stored as INTEGER nano-ε; the CHECK constraints and triggers
/// keep them non-negative.
pub(super) fn nanos(value: i64) -> Epsilon {
    Epsilon::from_nanos(u64::try_from(value).unwrap_or(0))
}

fn find(
    conn: &Connection,
    dataset: &str,
    query_key: &str,
    sharing: Sharing<'_>,
) -> rusqlite::Result<Option<StoredRelease>> {
    // The first release of the key wins: a per-analyst dataset may hold
    // several, one per analyst, and switching it to shared serves the oldest.
    match sharing {
        Sharing::Everyone => conn
            .prepare_cached(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases \
                 WHERE dataset = ?1 AND query_key = ?2 ORDER BY seq LIMIT 1"
            ))?
            .query_row(params![dataset, query_key], release_from_row)
            .optional(),
        Sharing::OwnOnly(analyst) => conn
            .prepare_cached(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases \
                 WHERE dataset = ?1 AND query_key = ?2 AND analyst = ?3"
            ))?
            .query_row(params![dataset, query_key, analyst], release_from_row)
            .optional(),
    }
}

fn total(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<Epsilon> {
    let value: Option<i64> = conn
        .prepare_cached(sql)?
        .query_row(args, |r| r.get(0))
        .optional()?;
    Ok(nanos(value.unwrap_or(0)))
}

pub(super) fn analyst_spent(
    conn: &Connection,
    analyst: &str,
    dataset: &str,
) -> rusqlite::Result<Epsilon> {
    total(
        conn,
        "SELECT epsilon_nanos FROM analyst_totals WHERE dataset = ?1 AND analyst = ?2",
        params![dataset, analyst],
    )
}

pub(super) fn dataset_spent(conn: &Connection, dataset: &str) -> rusqlite::Result<Epsilon> {
    total(
        conn,
        "SELECT epsilon_nanos FROM dataset_totals WHERE dataset = ?1",
        params![dataset],
    )
}

/// Spent against a population: everything spent on its current member
/// datasets, plus what was once charged to it on datasets no longer in it.
/// A spend is never left out, whichever way the config has moved datasets.
pub(super) fn population_spent(
    conn: &Connection,
    population: &str,
    members: &[String],
) -> rusqlite::Result<Epsilon> {
    let mut sum = 0u64;
    for member in members {
        sum += dataset_spent(conn, member)?.nanos();
    }
    let mut stmt = conn.prepare_cached(
        "SELECT dataset, epsilon_nanos FROM population_totals WHERE population = ?1",
    )?;
    let mut rows = stmt.query(params![population])?;
    while let Some(r) = rows.next()? {
        let dataset: String = r.get(0)?;
        if !members.contains(&dataset) {
            sum += nanos(r.get(1)?).nanos();
        }
    }
    Ok(Epsilon::from_nanos(sum))
}

fn balances(conn: &Connection, caps: &Caps) -> rusqlite::Result<Balances> {
    Ok(Balances {
        analyst: analyst_spent(conn, &caps.analyst, &caps.dataset)?,
        dataset: dataset_spent(conn, &caps.dataset)?,
        population: population_spent(conn, &caps.population, &caps.population_members)?,
    })
}

fn insert(
    conn: &Connection,
    release_id: &str,
    caps: &Caps,
    release: &NewRelease,
) -> rusqlite::Result<String> {
    let epsilon = release.epsilon.nanos() as i64;
    let created_at: String = conn
        .prepare_cached(&format!(
            "INSERT INTO releases ({RELEASE_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, {NOW}) RETURNING created_at"
        ))?
        .query_row(
            params![
                release_id,
                caps.analyst,
                caps.dataset,
                caps.population,
                release.query_key,
                release.query_json,
                release.rows_json,
                epsilon,
                release.mechanism,
                release.noise_scale,
                release.ci95,
            ],
            |r| r.get(0),
        )?;
    conn.prepare_cached(
        "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        caps.analyst,
        caps.dataset,
        caps.population,
        epsilon,
        release_id,
        created_at
    ])?;
    Ok(created_at)
}

impl Sqlite {
    pub(super) fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<StoredRelease>, PrivacyError> {
        Ok(find(&self.read(), dataset, query_key, sharing)?)
    }

    pub(super) fn balances(&self, caps: &Caps) -> Result<Balances, PrivacyError> {
        Ok(balances(&self.read(), caps)?)
    }

    /// In one `BEGIN IMMEDIATE` transaction (the write lock first): the
    /// lookup, the check and the spend; see [`crate::Ledger::commit_release`].
    pub(super) fn commit_release(
        &self,
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
        release_id: String,
    ) -> Result<CommitOutcome, PrivacyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = find(&tx, &caps.dataset, &release.query_key, sharing)? {
            tx.commit()?;
            return Ok(CommitOutcome::Cached(existing));
        }
        balances(&tx, caps)?.check(caps, release.epsilon)?;
        let created_at = insert(&tx, &release_id, caps, release)?;
        tx.commit()?;
        Ok(CommitOutcome::Released(
            release.stored(release_id, caps, created_at),
        ))
    }

    /// A row of `bytes` bytes written to the always-empty `rehearsals`
    /// table and deleted, in one durable transaction (the same WAL writes
    /// and fsync as a release's commit).
    pub(super) fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO rehearsals (payload) VALUES (zeroblob(?1))")?
            .execute(params![bytes as i64])?;
        tx.prepare_cached("DELETE FROM rehearsals")?.execute([])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn spent(&self, analyst: &str, dataset: &str) -> Result<Epsilon, PrivacyError> {
        Ok(analyst_spent(&self.read(), analyst, dataset)?)
    }

    pub(super) fn dataset_spent(&self, dataset: &str) -> Result<Epsilon, PrivacyError> {
        Ok(dataset_spent(&self.read(), dataset)?)
    }

    pub(super) fn population_spent(
        &self,
        population: &str,
        members: &[String],
    ) -> Result<Epsilon, PrivacyError> {
        Ok(population_spent(&self.read(), population, members)?)
    }
}
