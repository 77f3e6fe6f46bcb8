//! Read-only views for operators (`rollcall budget`, `rollcall audit`) and
//! for an analyst's own history (`GET /v1/releases`), and a whole ledger's
//! export and import (`rollcall ledger copy`).

use rusqlite::{Connection, TransactionBehavior, params};

use super::Sqlite;
use super::commit::{RELEASE_COLUMNS, nanos, release_from_row};
use crate::PrivacyError;
use crate::ledger::copy::{self, LedgerTotals, PopulationSummary};
use crate::ledger::{Backend, DatasetSummary, Record, SpendSummary, StoredRelease, StoredSpend};

fn spend_summary(conn: &Connection) -> rusqlite::Result<Vec<SpendSummary>> {
    let mut stmt = conn.prepare(
        "SELECT analyst, dataset, epsilon_nanos, releases FROM analyst_totals \
         ORDER BY dataset, analyst",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SpendSummary {
            analyst: r.get(0)?,
            dataset: r.get(1)?,
            spent: nanos(r.get(2)?),
            releases: r.get::<_, i64>(3)? as u64,
        })
    })?;
    rows.collect()
}

fn dataset_summary(conn: &Connection) -> rusqlite::Result<Vec<DatasetSummary>> {
    let mut stmt = conn
        .prepare("SELECT dataset, epsilon_nanos, releases FROM dataset_totals ORDER BY dataset")?;
    let rows = stmt.query_map([], |r| {
        Ok(DatasetSummary {
            dataset: r.get(0)?,
            spent: nanos(r.get(1)?),
            releases: r.get::<_, i64>(2)? as u64,
        })
    })?;
    rows.collect()
}

/// Counts, the sum of every spend and every running total.
fn totals(conn: &Connection) -> rusqlite::Result<LedgerTotals> {
    let count = |table: &str| -> rusqlite::Result<u64> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n as u64)
    };
    let mut stmt = conn.prepare(
        "SELECT population, dataset, epsilon_nanos FROM population_totals \
         ORDER BY population, dataset",
    )?;
    let populations = stmt
        .query_map([], |r| {
            Ok(PopulationSummary {
                population: r.get(0)?,
                dataset: r.get(1)?,
                spent: nanos(r.get(2)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(LedgerTotals {
        releases: count("releases")?,
        spends: count("spends")?,
        spent: nanos(conn.query_row(
            "SELECT COALESCE(SUM(epsilon_nanos), 0) FROM spends",
            [],
            |r| r.get(0),
        )?),
        analysts: spend_summary(conn)?,
        datasets: dataset_summary(conn)?,
        populations,
    })
}

fn insert_record(conn: &Connection, record: &Record) -> rusqlite::Result<()> {
    match record {
        Record::Release(r) => conn
            .prepare_cached(&format!(
                "INSERT INTO releases ({RELEASE_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                r.release_id,
                r.analyst,
                r.dataset,
                r.population,
                r.query_key,
                r.query_json,
                r.rows_json,
                r.epsilon.nanos() as i64,
                r.mechanism,
                r.noise_scale,
                r.ci95,
                r.created_at,
            ])
            .map(|_| ()),
        Record::Spend(s) => conn
            .prepare_cached(
                "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                s.analyst,
                s.dataset,
                s.population,
                s.epsilon.nanos() as i64,
                s.release_id,
                s.created_at,
            ])
            .map(|_| ()),
    }
}

impl Sqlite {
    pub(super) fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE analyst = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![analyst], release_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError> {
        Ok(spend_summary(&self.read())?)
    }

    pub(super) fn dataset_summary(&self) -> Result<Vec<DatasetSummary>, PrivacyError> {
        Ok(dataset_summary(&self.read())?)
    }

    /// `since` is already canonical UTC (`2026-06-30T12:00:00.000Z`), the
    /// form `created_at` is stored in, so the strings compare as times.
    pub(super) fn releases_since(
        &self,
        since: Option<&str>,
    ) -> Result<Vec<StoredRelease>, PrivacyError> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE created_at >= ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![since.unwrap_or("")], release_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub(super) fn totals(&self) -> Result<LedgerTotals, PrivacyError> {
        Ok(totals(&self.read())?)
    }

    /// Every release, then every spend, and their totals, all inside one
    /// read transaction (one WAL snapshot, even while a server writes).
    pub(super) fn export(
        &self,
        sink: &mut dyn FnMut(Record) -> Result<(), PrivacyError>,
    ) -> Result<LedgerTotals, PrivacyError> {
        let mut conn = self.read();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT {RELEASE_COLUMNS} FROM releases ORDER BY seq"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                sink(Record::Release(release_from_row(row)?))?;
            }
            let mut stmt = tx.prepare(
                "SELECT analyst, dataset, population, epsilon_nanos, release_id, created_at \
                 FROM spends ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                sink(Record::Spend(StoredSpend {
                    analyst: r.get(0)?,
                    dataset: r.get(1)?,
                    population: r.get(2)?,
                    epsilon: nanos(r.get(3)?),
                    release_id: r.get(4)?,
                    created_at: r.get(5)?,
                }))?;
            }
        }
        let totals = totals(&tx)?;
        tx.commit()?;
        Ok(totals)
    }

    /// In one `BEGIN IMMEDIATE` transaction: refuse a ledger that holds
    /// anything, insert every record of `source` (the triggers keep the
    /// totals), and commit only if the totals equal the source's.
    pub(super) fn import(&self, source: &dyn Backend) -> Result<LedgerTotals, PrivacyError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        copy::refuse_non_empty(&totals(&tx)?)?;
        let theirs = source.export(&mut |record| Ok(insert_record(&tx, &record)?))?;
        let ours = totals(&tx)?;
        copy::verify(&theirs, &ours)?;
        tx.commit()?;
        Ok(ours)
    }
}
