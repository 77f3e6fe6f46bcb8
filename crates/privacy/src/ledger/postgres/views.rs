//! Read-only views (`rollcall budget`, `audit`, `GET /v1/releases`) and a
//! whole ledger's export and import (`rollcall ledger copy`). Names are
//! ordered bytewise (`COLLATE "C"`), as SQLite orders them, whatever the
//! database's collation.

use postgres::GenericClient;
use postgres::fallible_iterator::FallibleIterator;

use super::commit::release_from_row;
use super::{Postgres, Session, nanos};
use crate::PrivacyError;
use crate::ledger::copy::{self, LedgerTotals, PopulationSummary};
use crate::ledger::{Backend, DatasetSummary, Record, SpendSummary, StoredRelease, StoredSpend};

fn releases(rows: Vec<postgres::Row>) -> Result<Vec<StoredRelease>, postgres::Error> {
    rows.iter().map(release_from_row).collect()
}

pub(super) fn releases_for<C: GenericClient>(
    s: &mut Session<'_, C>,
    analyst: &str,
) -> Result<Vec<StoredRelease>, postgres::Error> {
    releases(s.query(
        concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE analyst = $1 ORDER BY seq"
        ),
        &[&analyst],
    )?)
}

/// `since` is canonical UTC, the form `created_at` is stored in.
pub(super) fn releases_since<C: GenericClient>(
    s: &mut Session<'_, C>,
    since: Option<&str>,
) -> Result<Vec<StoredRelease>, postgres::Error> {
    releases(s.query(
        concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE created_at >= $1 ORDER BY seq"
        ),
        &[&since.unwrap_or("")],
    )?)
}

pub(super) fn spend_summary<C: GenericClient>(
    s: &mut Session<'_, C>,
) -> Result<Vec<SpendSummary>, postgres::Error> {
    let rows = s.query(
        "SELECT analyst, dataset, epsilon_nanos, releases FROM analyst_totals \
         ORDER BY dataset COLLATE \"C\", analyst COLLATE \"C\"",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(SpendSummary {
                analyst: r.try_get(0)?,
                dataset: r.try_get(1)?,
                spent: nanos(r.try_get(2)?),
                releases: r.try_get::<_, i64>(3)? as u64,
            })
        })
        .collect()
}

pub(super) fn dataset_summary<C: GenericClient>(
    s: &mut Session<'_, C>,
) -> Result<Vec<DatasetSummary>, postgres::Error> {
    let rows = s.query(
        "SELECT dataset, epsilon_nanos, releases FROM dataset_totals \
         ORDER BY dataset COLLATE \"C\"",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(DatasetSummary {
                dataset: r.try_get(0)?,
                spent: nanos(r.try_get(1)?),
                releases: r.try_get::<_, i64>(2)? as u64,
            })
        })
        .collect()
}

/// Counts, the sum of every spend and every running total.
pub(super) fn totals<C: GenericClient>(
    s: &mut Session<'_, C>,
) -> Result<LedgerTotals, postgres::Error> {
    let counts = s.query_one(
        "SELECT (SELECT COUNT(*) FROM releases), (SELECT COUNT(*) FROM spends), \
                (SELECT COALESCE(SUM(epsilon_nanos), 0) FROM spends)::BIGINT",
        &[],
    )?;
    let populations = s
        .query(
            "SELECT population, dataset, epsilon_nanos FROM population_totals \
             ORDER BY population COLLATE \"C\", dataset COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(PopulationSummary {
                population: r.try_get(0)?,
                dataset: r.try_get(1)?,
                spent: nanos(r.try_get(2)?),
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()?;
    Ok(LedgerTotals {
        releases: counts.get::<_, i64>(0) as u64,
        spends: counts.get::<_, i64>(1) as u64,
        spent: nanos(counts.get(2)),
        analysts: spend_summary(s)?,
        datasets: dataset_summary(s)?,
        populations,
    })
}

fn insert_record<C: GenericClient>(
    s: &mut Session<'_, C>,
    record: &Record,
) -> Result<(), postgres::Error> {
    match record {
        Record::Release(r) => s.execute(
            concat!(
                "INSERT INTO releases (",
                release_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &r.release_id,
                &r.analyst,
                &r.dataset,
                &r.population,
                &r.query_key,
                &r.query_json,
                &r.rows_json,
                &(r.epsilon.nanos() as i64),
                &r.mechanism,
                &r.noise_scale,
                &r.ci95,
                &r.created_at,
            ],
        ),
        Record::Spend(sp) => s.execute(
            "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &sp.analyst,
                &sp.dataset,
                &sp.population,
                &(sp.epsilon.nanos() as i64),
                &sp.release_id,
                &sp.created_at,
            ],
        ),
    }
    .map(|_| ())
}

impl Postgres {
    /// Every release, then every spend, and their totals, from one
    /// `REPEATABLE READ` snapshot (read-only): consistent even while
    /// servers write. Rows are streamed, not held in memory.
    pub(super) fn export(
        &self,
        sink: &mut dyn FnMut(Record) -> Result<(), PrivacyError>,
    ) -> Result<LedgerTotals, PrivacyError> {
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        let mut tx = conn
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        {
            let sql = concat!("SELECT ", release_columns!(), " FROM releases ORDER BY seq");
            let mut rows = tx.query_raw(sql, std::iter::empty::<i32>())?;
            while let Some(row) = rows.next()? {
                sink(Record::Release(release_from_row(&row)?))?;
            }
            drop(rows);
            let mut rows = tx.query_raw(
                "SELECT analyst, dataset, population, epsilon_nanos, release_id, created_at \
                 FROM spends ORDER BY seq",
                std::iter::empty::<i32>(),
            )?;
            while let Some(r) = rows.next()? {
                sink(Record::Spend(StoredSpend {
                    analyst: r.try_get(0)?,
                    dataset: r.try_get(1)?,
                    population: r.try_get(2)?,
                    epsilon: nanos(r.try_get(3)?),
                    release_id: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                }))?;
            }
        }
        let totals = totals(&mut Session {
            client: &mut tx,
            prepared: &mut conn.prepared,
        })?;
        tx.commit()?;
        Ok(totals)
    }

    /// In one transaction that first takes `EXCLUSIVE` locks on the
    /// releases and spends (so no server can commit meanwhile): refuse a
    /// ledger that holds anything, insert every record of `source` (the
    /// trigger keeps the totals), and commit only if the totals equal the
    /// source's.
    pub(super) fn import(&self, source: &dyn Backend) -> Result<LedgerTotals, PrivacyError> {
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        let mut tx = conn.client.transaction()?;
        tx.batch_execute("LOCK TABLE releases, spends IN EXCLUSIVE MODE")?;
        let mut s = Session {
            client: &mut tx,
            prepared: &mut conn.prepared,
        };
        copy::refuse_non_empty(&totals(&mut s)?)?;
        let theirs = source.export(&mut |record| Ok(insert_record(&mut s, &record)?))?;
        let ours = totals(&mut s)?;
        copy::verify(&theirs, &ours)?;
        tx.commit()?;
        Ok(ours)
    }
}
