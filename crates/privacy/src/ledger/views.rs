//! Read-only views for operators (`rollcall budget`, `rollcall audit`) and
//! for an analyst's own history (`GET /v1/releases`).

use rusqlite::params;

use super::Ledger;
use super::StoredRelease;
use super::commit::{RELEASE_COLUMNS, nanos, release_from_row};
use crate::{Epsilon, PrivacyError};

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

impl Ledger {
    /// The releases an analyst paid for, oldest first.
    pub fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError> {
        let conn = self.read();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE analyst = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![analyst], release_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every (analyst, dataset) with a spend: the sum spent and the number
    /// of releases paid for, ordered by dataset then analyst.
    pub fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError> {
        let conn = self.read();
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
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every dataset with a spend, by name.
    pub fn dataset_summary(&self) -> Result<Vec<DatasetSummary>, PrivacyError> {
        let conn = self.read();
        let mut stmt = conn.prepare(
            "SELECT dataset, epsilon_nanos, releases FROM dataset_totals ORDER BY dataset",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DatasetSummary {
                dataset: r.get(0)?,
                spent: nanos(r.get(1)?),
                releases: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every release of every analyst, oldest first; with `since`, only
    /// those committed at or after it. `since` is an SQLite time string:
    /// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or `±HH:MM`
    /// (converted to UTC); anything else is an error.
    pub fn releases_since(&self, since: Option<&str>) -> Result<Vec<StoredRelease>, PrivacyError> {
        let conn = self.read();
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
