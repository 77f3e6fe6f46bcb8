//! Lookups, balances and the commit: the part of the ledger on a query's path.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::schema::NOW;
use super::{Balances, Caps, CommitOutcome, Ledger, NewRelease, Sharing, StoredRelease};
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

/// A random 128-bit id in hex, from opendp's sampler (OpenSSL's CSPRNG).
fn new_release_id() -> Result<String, PrivacyError> {
    let mut bytes = [0u8; 16];
    opendp::traits::samplers::fill_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

impl Ledger {
    /// The stored release of `query_key` on `dataset` that `sharing` allows.
    pub fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<StoredRelease>, PrivacyError> {
        Ok(find(&self.read(), dataset, query_key, sharing)?)
    }

    /// What has been spent against each of `caps`' caps, read without the
    /// write lock: the check before any work. The commit checks again.
    pub fn balances(&self, caps: &Caps) -> Result<Balances, PrivacyError> {
        Ok(balances(&self.read(), caps)?)
    }

    /// In one `BEGIN IMMEDIATE` transaction: if a release of this query key
    /// that `sharing` allows exists, return it as [`CommitOutcome::Cached`]
    /// (nothing spent); otherwise check that the release's ε fits under
    /// every cap of `caps` ([`Balances::check`], exact), record the spend
    /// and the release, and commit. Returns only after the commit is durable;
    /// on any error nothing was recorded and nothing may be shown.
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
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = find(&tx, &caps.dataset, &release.query_key, sharing)? {
            tx.commit()?;
            return Ok(CommitOutcome::Cached(existing));
        }
        balances(&tx, caps)?.check(caps, release.epsilon)?;
        // The stored release is what was inserted plus the commit time, so
        // it is rebuilt here rather than read back (the rows are tens of kB).
        let created_at = insert(&tx, &release_id, caps, release)?;
        tx.commit()?;
        Ok(CommitOutcome::Released(StoredRelease {
            release_id,
            analyst: caps.analyst.clone(),
            dataset: caps.dataset.clone(),
            population: caps.population.clone(),
            query_key: release.query_key.clone(),
            query_json: release.query_json.clone(),
            rows_json: release.rows_json.clone(),
            epsilon: release.epsilon,
            mechanism: release.mechanism.clone(),
            noise_scale: release.noise_scale,
            ci95: release.ci95,
            created_at,
        }))
    }

    /// Times what a commit of a release of `bytes` bytes costs without
    /// recording anything: a row of that size written to the always-empty
    /// `rehearsals` table and deleted, in one durable transaction (so the
    /// same WAL writes and fsync as a release's commit). The release path
    /// includes it when it sets a deadline; no spend, release or data is
    /// written.
    pub fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO rehearsals (payload) VALUES (zeroblob(?1))")?
            .execute(params![bytes as i64])?;
        tx.prepare_cached("DELETE FROM rehearsals")?.execute([])?;
        tx.commit()?;
        Ok(())
    }

    /// The ε an analyst has spent on a dataset.
    pub fn spent(&self, analyst: &str, dataset: &str) -> Result<Epsilon, PrivacyError> {
        Ok(analyst_spent(&self.read(), analyst, dataset)?)
    }

    /// The ε spent on a dataset by all analysts together.
    pub fn dataset_spent(&self, dataset: &str) -> Result<Epsilon, PrivacyError> {
        Ok(dataset_spent(&self.read(), dataset)?)
    }

    /// The ε spent against a population whose datasets are now `members`.
    pub fn population_spent(
        &self,
        population: &str,
        members: &[String],
    ) -> Result<Epsilon, PrivacyError> {
        Ok(population_spent(&self.read(), population, members)?)
    }
}
