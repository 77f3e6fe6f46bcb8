//! The PostgreSQL ledger's schema and its numbered migrations, applied at
//! start-up (and by `rollcall ledger migrate`).
//!
//! The version numbers are the SQLite ledger's: a PostgreSQL ledger starts at
//! version 3, the schema SQLite reached (exact nano-ε, populations, running
//! totals kept by triggers, append-only spends and releases), since versions
//! 1 and 2 never existed here. A future version 4 is one migration on each
//! backend. Every migration runs in one transaction with its version row,
//! under a transaction-scoped advisory lock: replicas starting at the same
//! moment apply each migration once, and the others wait and find it done.

use postgres::Client;

use crate::PrivacyError;
use crate::ledger::{SCHEMA_VERSION, newer};

/// Key of the advisory lock migrations hold (any constant that no other
/// program on the database uses: `rollcall` in ASCII).
const MIGRATION_LOCK: i64 = 0x726f_6c6c_6361_6c6c;

/// Version 3: the tables, the triggers that keep the totals, and the rows
/// that commits lock.
const V3: &str = r#"
CREATE TABLE releases (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    release_id     TEXT             NOT NULL UNIQUE,
    analyst        TEXT             NOT NULL,
    dataset        TEXT             NOT NULL,
    population     TEXT             NOT NULL,
    query_key      TEXT             NOT NULL,
    query_json     TEXT             NOT NULL,
    rows_json      TEXT             NOT NULL,
    epsilon_nanos  BIGINT           NOT NULL CHECK (epsilon_nanos > 0),
    mechanism      TEXT             NOT NULL,
    noise_scale    DOUBLE PRECISION NOT NULL,
    ci95           DOUBLE PRECISION NOT NULL,
    created_at     TEXT             NOT NULL,
    UNIQUE (dataset, query_key, analyst)
);
CREATE INDEX releases_by_key ON releases (dataset, query_key, seq);
CREATE INDEX releases_by_analyst ON releases (analyst, seq);
CREATE INDEX releases_by_time ON releases (created_at);
CREATE TABLE spends (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    analyst        TEXT   NOT NULL,
    dataset        TEXT   NOT NULL,
    population     TEXT   NOT NULL,
    epsilon_nanos  BIGINT NOT NULL CHECK (epsilon_nanos > 0),
    release_id     TEXT   NOT NULL REFERENCES releases (release_id),
    created_at     TEXT   NOT NULL
);
CREATE TABLE analyst_totals (
    dataset        TEXT   NOT NULL,
    analyst        TEXT   NOT NULL,
    epsilon_nanos  BIGINT NOT NULL,
    releases       BIGINT NOT NULL,
    PRIMARY KEY (dataset, analyst)
);
CREATE TABLE dataset_totals (
    dataset        TEXT   NOT NULL PRIMARY KEY,
    epsilon_nanos  BIGINT NOT NULL,
    releases       BIGINT NOT NULL
);
CREATE TABLE population_totals (
    population     TEXT   NOT NULL,
    dataset        TEXT   NOT NULL,
    epsilon_nanos  BIGINT NOT NULL,
    PRIMARY KEY (population, dataset)
);
-- Always empty: the release path times a commit of a release's size here
-- (written and deleted in one transaction) to set its deadlines.
CREATE TABLE rehearsals (
    payload        BYTEA  NOT NULL
);
-- One row per dataset and per population, never deleted: a commit locks
-- those of its dataset's population and of every dataset in it
-- (SELECT ... FOR UPDATE, in name order) before it reads a total.
CREATE TABLE ledger_locks (
    kind           TEXT   NOT NULL CHECK (kind IN ('dataset', 'population')),
    name           TEXT   NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE FUNCTION spends_add_to_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analyst_totals (dataset, analyst, epsilon_nanos, releases)
        VALUES (NEW.dataset, NEW.analyst, NEW.epsilon_nanos, 1)
        ON CONFLICT (dataset, analyst) DO UPDATE
        SET epsilon_nanos = analyst_totals.epsilon_nanos + EXCLUDED.epsilon_nanos,
            releases = analyst_totals.releases + 1;
    INSERT INTO dataset_totals (dataset, epsilon_nanos, releases)
        VALUES (NEW.dataset, NEW.epsilon_nanos, 1)
        ON CONFLICT (dataset) DO UPDATE
        SET epsilon_nanos = dataset_totals.epsilon_nanos + EXCLUDED.epsilon_nanos,
            releases = dataset_totals.releases + 1;
    INSERT INTO population_totals (population, dataset, epsilon_nanos)
        VALUES (NEW.population, NEW.dataset, NEW.epsilon_nanos)
        ON CONFLICT (population, dataset) DO UPDATE
        SET epsilon_nanos = population_totals.epsilon_nanos + EXCLUDED.epsilon_nanos;
    RETURN NULL;
END
$$;
CREATE TRIGGER spends_add_to_totals AFTER INSERT ON spends
    FOR EACH ROW EXECUTE FUNCTION spends_add_to_totals();

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER spends_are_append_only BEFORE UPDATE OR DELETE ON spends
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER spends_are_never_truncated BEFORE TRUNCATE ON spends
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER releases_are_append_only BEFORE UPDATE OR DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER releases_are_never_truncated BEFORE TRUNCATE ON releases
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
-- The totals change only through the trigger above.
CREATE TRIGGER totals_follow_spends BEFORE UPDATE OR DELETE ON analyst_totals
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION refuse_change();
CREATE TRIGGER totals_follow_spends BEFORE UPDATE OR DELETE ON dataset_totals
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION refuse_change();
CREATE TRIGGER totals_follow_spends BEFORE UPDATE OR DELETE ON population_totals
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION refuse_change();
"#;

/// Every migration as (the version it makes, its SQL), in order.
const MIGRATIONS: [(i64, &str); 1] = [(3, V3)];
const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].0 == SCHEMA_VERSION);

const CREATE_VERSIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    applied_at TEXT   NOT NULL
)";

/// The schema version of the database (0 when it has no ledger yet).
pub(super) fn version(client: &mut Client) -> Result<i64, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .map(|r| r.get(0))
}

/// Brings the schema up to [`SCHEMA_VERSION`]; returns the versions applied.
pub(super) fn migrate(client: &mut Client) -> Result<Vec<i64>, PrivacyError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(CREATE_VERSIONS)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(newer(current));
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)?;
        tx.execute(
            concat!(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, ",
                now!(),
                ")"
            ),
            &[version],
        )?;
        applied.push(*version);
    }
    tx.commit()?;
    Ok(applied)
}
