//! Lookups, balances and the commit: the part of the ledger on a query's
//! path. See the module above for the locking argument.

use postgres::GenericClient;

use super::{Postgres, Session, nanos, retryable};
use crate::PrivacyError;
use crate::ledger::{Balances, Caps, CommitOutcome, NewRelease, Sharing, StoredRelease};

/// How many times a commit is run again after a deadlock or serialization
/// failure (neither should happen with ordered locks; this is the net).
const RETRIES: usize = 5;

pub(super) fn release_from_row(row: &postgres::Row) -> Result<StoredRelease, postgres::Error> {
    Ok(StoredRelease {
        release_id: row.try_get(0)?,
        analyst: row.try_get(1)?,
        dataset: row.try_get(2)?,
        population: row.try_get(3)?,
        query_key: row.try_get(4)?,
        query_json: row.try_get(5)?,
        rows_json: row.try_get(6)?,
        epsilon: nanos(row.try_get(7)?),
        mechanism: row.try_get(8)?,
        noise_scale: row.try_get(9)?,
        ci95: row.try_get(10)?,
        created_at: row.try_get(11)?,
    })
}

pub(super) fn find<C: GenericClient>(
    s: &mut Session<'_, C>,
    dataset: &str,
    query_key: &str,
    sharing: Sharing<'_>,
) -> Result<Option<StoredRelease>, postgres::Error> {
    // The first release of the key wins, as on SQLite.
    let row = match sharing {
        Sharing::Everyone => s.query_opt(
            concat!(
                "SELECT ",
                release_columns!(),
                " FROM releases WHERE dataset = $1 AND query_key = $2 ORDER BY seq LIMIT 1"
            ),
            &[&dataset, &query_key],
        )?,
        Sharing::OwnOnly(analyst) => s.query_opt(
            concat!(
                "SELECT ",
                release_columns!(),
                " FROM releases WHERE dataset = $1 AND query_key = $2 AND analyst = $3"
            ),
            &[&dataset, &query_key, &analyst],
        )?,
    };
    row.as_ref().map(release_from_row).transpose()
}

pub(super) fn analyst_spent<C: GenericClient>(
    s: &mut Session<'_, C>,
    analyst: &str,
    dataset: &str,
) -> Result<crate::Epsilon, postgres::Error> {
    let row = s.query_opt(
        "SELECT epsilon_nanos FROM analyst_totals WHERE dataset = $1 AND analyst = $2",
        &[&dataset, &analyst],
    )?;
    Ok(nanos(row.map_or(0, |r| r.get(0))))
}

pub(super) fn dataset_spent<C: GenericClient>(
    s: &mut Session<'_, C>,
    dataset: &str,
) -> Result<crate::Epsilon, postgres::Error> {
    let row = s.query_opt(
        "SELECT epsilon_nanos FROM dataset_totals WHERE dataset = $1",
        &[&dataset],
    )?;
    Ok(nanos(row.map_or(0, |r| r.get(0))))
}

/// Everything spent on the current members, plus what was once charged to
/// the population on datasets no longer in it (as on SQLite).
const POPULATION_SPENT: &str = "SELECT \
     (SELECT COALESCE(SUM(epsilon_nanos), 0) FROM dataset_totals WHERE dataset = ANY($2))::BIGINT \
   + (SELECT COALESCE(SUM(epsilon_nanos), 0) FROM population_totals \
      WHERE population = $1 AND NOT (dataset = ANY($2)))::BIGINT";

pub(super) fn population_spent<C: GenericClient>(
    s: &mut Session<'_, C>,
    population: &str,
    members: &[String],
) -> Result<crate::Epsilon, postgres::Error> {
    let row = s.query_one(POPULATION_SPENT, &[&population, &members])?;
    Ok(nanos(row.get(0)))
}

/// The three balances in one round trip.
pub(super) fn balances<C: GenericClient>(
    s: &mut Session<'_, C>,
    caps: &Caps,
) -> Result<Balances, postgres::Error> {
    let row = s.query_one(
        "SELECT \
           COALESCE((SELECT epsilon_nanos FROM analyst_totals \
                     WHERE dataset = $1 AND analyst = $2), 0), \
           COALESCE((SELECT epsilon_nanos FROM dataset_totals WHERE dataset = $1), 0), \
           (SELECT COALESCE(SUM(epsilon_nanos), 0) FROM dataset_totals \
            WHERE dataset = ANY($4))::BIGINT \
         + (SELECT COALESCE(SUM(epsilon_nanos), 0) FROM population_totals \
            WHERE population = $3 AND NOT (dataset = ANY($4)))::BIGINT",
        &[
            &caps.dataset,
            &caps.analyst,
            &caps.population,
            &caps.population_members,
        ],
    )?;
    Ok(Balances {
        analyst: nanos(row.get(0)),
        dataset: nanos(row.get(1)),
        population: nanos(row.get(2)),
    })
}

/// The lock rows a commit under `caps` takes: every dataset of the
/// population (its own included) and the population, as (kinds, names).
fn lock_keys(caps: &Caps) -> Vec<(&'static str, String)> {
    let mut datasets: Vec<&String> = caps.population_members.iter().collect();
    datasets.push(&caps.dataset);
    datasets.sort();
    datasets.dedup();
    let mut keys: Vec<(&'static str, String)> = datasets
        .into_iter()
        .map(|d| ("dataset", d.clone()))
        .collect();
    keys.push(("population", caps.population.clone()));
    keys
}

fn columns<'a>(keys: &'a [(&'static str, String)]) -> (Vec<&'static str>, Vec<&'a str>) {
    keys.iter().map(|(k, n)| (*k, n.as_str())).unzip()
}

impl Postgres {
    /// Inserts the lock rows not yet seen to exist (each statement commits
    /// alone; a row, once there, stays).
    fn ensure_lock_rows(
        &self,
        s: &mut Session<'_, postgres::Client>,
        keys: &[(&'static str, String)],
        trust_cache: bool,
    ) -> Result<(), postgres::Error> {
        let mut known = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if trust_cache && keys.iter().all(|k| known.contains(k)) {
            return Ok(());
        }
        let (kinds, names) = columns(keys);
        s.execute(
            "INSERT INTO ledger_locks (kind, name) \
             SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            &[&kinds, &names],
        )?;
        known.extend(keys.iter().cloned());
        Ok(())
    }

    /// See [`crate::Ledger::commit_release`]: the locks, the lookup, the
    /// check, the spend, in one transaction, run again after a deadlock or
    /// a serialization failure.
    pub(super) fn commit_release(
        &self,
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
        release_id: String,
    ) -> Result<CommitOutcome, PrivacyError> {
        let keys = lock_keys(caps);
        let mut conn = self.conn()?;
        self.ensure_lock_rows(&mut conn.session(), &keys, true)?;
        let mut attempt = 0;
        loop {
            match self.attempt(&mut conn, &keys, caps, sharing, release, &release_id) {
                Ok(Attempt::Done(outcome)) => return *outcome,
                Ok(Attempt::LockRowsMissing) if attempt == 0 => {
                    self.ensure_lock_rows(&mut conn.session(), &keys, false)?;
                }
                Ok(Attempt::LockRowsMissing) => {
                    return Err(PrivacyError::Ledger(
                        "the rows of ledger_locks could not be created".into(),
                    ));
                }
                Err(e) if retryable(&e) && attempt < RETRIES => {}
                Err(e) => return Err(e.into()),
            }
            attempt += 1;
        }
    }

    fn attempt(
        &self,
        conn: &mut super::Conn,
        keys: &[(&'static str, String)],
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
        release_id: &str,
    ) -> Result<Attempt, postgres::Error> {
        let mut tx = conn.client.transaction()?;
        let mut s = Session {
            client: &mut tx,
            prepared: &mut conn.prepared,
        };
        let (kinds, names) = columns(keys);
        let locked = s.query(
            "SELECT l.kind, l.name FROM ledger_locks l \
             JOIN unnest($1::text[], $2::text[]) AS k (kind, name) USING (kind, name) \
             ORDER BY l.kind, l.name FOR UPDATE OF l",
            &[&kinds, &names],
        )?;
        if locked.len() != keys.len() {
            tx.rollback()?;
            return Ok(Attempt::LockRowsMissing);
        }
        if let Some(existing) = find(&mut s, &caps.dataset, &release.query_key, sharing)? {
            tx.commit()?;
            return Ok(Attempt::Done(Box::new(Ok(CommitOutcome::Cached(existing)))));
        }
        if let Err(refused) = balances(&mut s, caps)?.check(caps, release.epsilon) {
            tx.rollback()?;
            return Ok(Attempt::Done(Box::new(Err(refused))));
        }
        let epsilon = release.epsilon.nanos() as i64;
        let created_at: String = s
            .query_one(
                concat!(
                    "INSERT INTO releases (",
                    release_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ",
                    now!(),
                    ") RETURNING created_at"
                ),
                &[
                    &release_id,
                    &caps.analyst,
                    &caps.dataset,
                    &caps.population,
                    &release.query_key,
                    &release.query_json,
                    &release.rows_json,
                    &epsilon,
                    &release.mechanism,
                    &release.noise_scale,
                    &release.ci95,
                ],
            )?
            .get(0);
        s.execute(
            "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &caps.analyst,
                &caps.dataset,
                &caps.population,
                &epsilon,
                &release_id,
                &created_at,
            ],
        )?;
        tx.commit()?;
        let stored = release.stored(release_id.to_owned(), caps, created_at);
        Ok(Attempt::Done(Box::new(Ok(CommitOutcome::Released(stored)))))
    }

    /// A row of `bytes` bytes sent, written to the always-empty
    /// `rehearsals` table and deleted, in one committed transaction: the
    /// same bytes on the wire, WAL write and flush as a release's commit.
    pub(super) fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError> {
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        let mut tx = conn.client.transaction()?;
        let mut s = Session {
            client: &mut tx,
            prepared: &mut conn.prepared,
        };
        let payload = vec![0u8; bytes];
        s.execute("INSERT INTO rehearsals (payload) VALUES ($1)", &[&payload])?;
        s.execute("DELETE FROM rehearsals", &[])?;
        tx.commit()?;
        Ok(())
    }
}

/// How one run of the commit's transaction ended.
enum Attempt {
    /// Committed, found cached, or refused (rolled back).
    Done(Box<Result<CommitOutcome, PrivacyError>>),
    /// Fewer lock rows than keys: they must be (re)created first.
    LockRowsMissing,
}
