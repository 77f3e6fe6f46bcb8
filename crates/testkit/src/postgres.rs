//! Helpers for end-to-end tests of several `rollcall serve` replicas on one
//! PostgreSQL ledger: a throwaway cluster (`pgcluster`: initdb + pg_ctl in a
//! temporary folder, failing loudly when PostgreSQL is not installed),
//! configs whose `[server] ledger` is that database, replicas started on
//! free ports, and exact checks read straight from the database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::TestAnalyst;
use crate::server::{DatasetSettings, Server, nc_config, nc_data, try_start};

pub use pgcluster::Cluster;

/// The cluster this test binary's tests share (each in its own database).
pub fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// `[server] ledger` for database `db` of `cluster`, as a table: the
/// password stays in the cluster's file, as an operator would keep it.
pub fn ledger_value(cluster: &Cluster, db: &str) -> String {
    format!(
        "{{ url = {:?}, password_file = {:?}, connect_timeout_secs = 2 }}",
        cluster.url(db),
        cluster.password_file().to_str().unwrap()
    )
}

/// [`crate::write_config`] with the ledger in database `db` of `cluster`.
pub fn postgres_config(
    dir: &Path,
    cluster: &Cluster,
    db: &str,
    settings: &DatasetSettings,
    analysts: &[TestAnalyst],
    extra_server: &str,
) -> PathBuf {
    nc_config(&nc_data().data_dir, dir, settings, analysts, extra_server)
        .ledger(&ledger_value(cluster, db))
        .write(dir)
}

/// Starts a replica, trying again for up to a minute while it fails (the
/// database may be restarting: a server refuses to start without its
/// ledger, as it should).
pub fn start_replica(config: &Path) -> Server {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match try_start(config, &[]) {
            Ok(server) => return server,
            Err(e) if Instant::now() < deadline => {
                eprintln!(
                    "replica did not start yet: {}",
                    e.lines().last().unwrap_or("")
                );
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("replica did not start within a minute: {e}"),
        }
    }
}

/// Exact figures read from a ledger database, in nano-ε.
#[derive(Debug, Default)]
pub struct LedgerFacts {
    /// Sum of spends per analyst (on `nc`).
    pub per_analyst: BTreeMap<String, i64>,
    /// Sum of all spends.
    pub total: i64,
    /// Releases and spends.
    pub releases: i64,
    /// Spends recorded.
    pub spends: i64,
    /// Spends without their release plus releases without their spend.
    pub orphans: i64,
    /// Running totals that differ from the sums of the spends.
    pub drift: i64,
    /// Each release's (ε nano, analyst), by release id.
    pub by_id: BTreeMap<String, (i64, String)>,
    /// Releases per (dataset, query key, analyst): more than one is a bug.
    pub duplicate_keys: i64,
}

/// Reads [`LedgerFacts`] from database `db` directly (not through rollcall).
pub fn ledger_facts(cluster: &Cluster, db: &str) -> LedgerFacts {
    let mut c = cluster.client(db).expect("connect to the ledger database");
    let mut facts = LedgerFacts::default();
    for row in c
        .query(
            "SELECT analyst, SUM(epsilon_nanos)::BIGINT FROM spends GROUP BY analyst",
            &[],
        )
        .unwrap()
    {
        let spent: i64 = row.get(1);
        facts.total += spent;
        facts.per_analyst.insert(row.get(0), spent);
    }
    let one =
        |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    facts.releases = one(&mut c, "SELECT COUNT(*) FROM releases");
    facts.spends = one(&mut c, "SELECT COUNT(*) FROM spends");
    facts.orphans = one(
        &mut c,
        "SELECT (SELECT COUNT(*) FROM spends s WHERE NOT EXISTS \
                 (SELECT 1 FROM releases r WHERE r.release_id = s.release_id)) \
              + (SELECT COUNT(*) FROM releases r WHERE NOT EXISTS \
                 (SELECT 1 FROM spends s WHERE s.release_id = r.release_id))",
    );
    for (totals, keys) in [
        ("analyst_totals", "dataset, analyst"),
        ("dataset_totals", "dataset"),
        ("population_totals", "population, dataset"),
    ] {
        facts.drift += one(
            &mut c,
            &format!(
                "SELECT COUNT(*) FROM (SELECT {keys}, SUM(epsilon_nanos)::BIGINT AS e \
                 FROM spends GROUP BY {keys}) s FULL JOIN {totals} t USING ({keys}) \
                 WHERE t.epsilon_nanos IS DISTINCT FROM s.e"
            ),
        );
    }
    facts.duplicate_keys = one(
        &mut c,
        "SELECT COUNT(*) FROM (SELECT 1 FROM releases GROUP BY dataset, query_key, analyst \
         HAVING COUNT(*) > 1) d",
    );
    for row in c
        .query(
            "SELECT release_id, epsilon_nanos, analyst FROM releases",
            &[],
        )
        .unwrap()
    {
        facts.by_id.insert(row.get(0), (row.get(1), row.get(2)));
    }
    facts
}

/// The ε (nano) charged for a query that asks `asked`: what opendp's map
/// says, rounded up, as the server computes it.
pub fn charge_nanos(asked: f64) -> i64 {
    let asked = privacy::Epsilon::from_decimal_f64(asked).unwrap();
    privacy::charge_for(asked).unwrap().epsilon.nanos() as i64
}
