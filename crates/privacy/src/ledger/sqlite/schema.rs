//! The SQLite ledger's schema and its numbered migrations, applied in order
//! at open (and by `rollcall ledger migrate`).
//!
//! Each migration moves the schema from version `n` to `n + 1` inside the
//! same `IMMEDIATE` transaction as the version bump, so a crash mid-way
//! leaves the previous version intact.

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::ledger::{SCHEMA_VERSION, newer};
use crate::{Epsilon, PrivacyError};

/// `strftime` pattern giving RFC 3339 UTC with milliseconds.
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Version 1: releases and spends, ε as REAL.
const V1: &str = r#"
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
"#;

/// Version 2: running totals per (dataset, analyst), kept by triggers inside
/// the transaction that inserts a spend; spends become append-only.
const V2: &str = r#"
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
"#;

/// Version 3, the tables: exact ε (whole nano-ε, INTEGER), the population
/// each spend was charged to, running totals per analyst, dataset and
/// population, releases unique per analyst (a dataset may keep its
/// releases to the analyst who paid, `share_releases = false`), and an
/// always-empty table for timing commits.
const V3_TABLES: &str = r#"
CREATE TABLE releases (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id     TEXT    NOT NULL UNIQUE,
    analyst        TEXT    NOT NULL,
    dataset        TEXT    NOT NULL,
    population     TEXT    NOT NULL,
    query_key      TEXT    NOT NULL,
    query_json     TEXT    NOT NULL,
    rows_json      TEXT    NOT NULL,
    epsilon_nanos  INTEGER NOT NULL CHECK (epsilon_nanos > 0),
    mechanism      TEXT    NOT NULL,
    noise_scale    REAL    NOT NULL,
    ci95           REAL    NOT NULL,
    created_at     TEXT    NOT NULL,
    UNIQUE (dataset, query_key, analyst)
);
CREATE INDEX releases_by_key ON releases (dataset, query_key, seq);
CREATE INDEX releases_by_analyst ON releases (analyst, seq);
CREATE TABLE spends (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    analyst        TEXT    NOT NULL,
    dataset        TEXT    NOT NULL,
    population     TEXT    NOT NULL,
    epsilon_nanos  INTEGER NOT NULL CHECK (epsilon_nanos > 0),
    release_id     TEXT    NOT NULL REFERENCES releases (release_id),
    created_at     TEXT    NOT NULL
);
CREATE TABLE analyst_totals (
    dataset        TEXT    NOT NULL,
    analyst        TEXT    NOT NULL,
    epsilon_nanos  INTEGER NOT NULL,
    releases       INTEGER NOT NULL,
    PRIMARY KEY (dataset, analyst)
) WITHOUT ROWID;
CREATE TABLE dataset_totals (
    dataset        TEXT    NOT NULL PRIMARY KEY,
    epsilon_nanos  INTEGER NOT NULL,
    releases       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE population_totals (
    population     TEXT    NOT NULL,
    dataset        TEXT    NOT NULL,
    epsilon_nanos  INTEGER NOT NULL,
    PRIMARY KEY (population, dataset)
) WITHOUT ROWID;
-- Always empty: the release path times a commit of a release's size here
-- (written and deleted in one transaction) to set its deadlines.
CREATE TABLE rehearsals (
    payload        BLOB    NOT NULL
);
"#;

/// Version 3, the triggers (created after the copy, so copied spends are
/// totalled once, by [`V3_TOTALS`]).
const V3_TRIGGERS: &str = r#"
CREATE TRIGGER spends_add_to_totals AFTER INSERT ON spends BEGIN
    INSERT INTO analyst_totals (dataset, analyst, epsilon_nanos, releases)
        VALUES (NEW.dataset, NEW.analyst, NEW.epsilon_nanos, 1)
        ON CONFLICT (dataset, analyst) DO UPDATE
        SET epsilon_nanos = epsilon_nanos + excluded.epsilon_nanos, releases = releases + 1;
    INSERT INTO dataset_totals (dataset, epsilon_nanos, releases)
        VALUES (NEW.dataset, NEW.epsilon_nanos, 1)
        ON CONFLICT (dataset) DO UPDATE
        SET epsilon_nanos = epsilon_nanos + excluded.epsilon_nanos, releases = releases + 1;
    INSERT INTO population_totals (population, dataset, epsilon_nanos)
        VALUES (NEW.population, NEW.dataset, NEW.epsilon_nanos)
        ON CONFLICT (population, dataset) DO UPDATE
        SET epsilon_nanos = epsilon_nanos + excluded.epsilon_nanos;
END;
CREATE TRIGGER spends_are_append_only_update BEFORE UPDATE ON spends BEGIN
    SELECT RAISE(ABORT, 'spends are append-only');
END;
CREATE TRIGGER spends_are_append_only_delete BEFORE DELETE ON spends BEGIN
    SELECT RAISE(ABORT, 'spends are append-only');
END;
CREATE TRIGGER releases_are_append_only_update BEFORE UPDATE ON releases BEGIN
    SELECT RAISE(ABORT, 'releases are append-only');
END;
CREATE TRIGGER releases_are_append_only_delete BEFORE DELETE ON releases BEGIN
    SELECT RAISE(ABORT, 'releases are append-only');
END;
"#;

/// Version 3, the running totals of the spends copied from version 2.
const V3_TOTALS: &str = r#"
INSERT INTO analyst_totals (dataset, analyst, epsilon_nanos, releases)
    SELECT dataset, analyst, SUM(epsilon_nanos), COUNT(*) FROM spends GROUP BY dataset, analyst;
INSERT INTO dataset_totals (dataset, epsilon_nanos, releases)
    SELECT dataset, SUM(epsilon_nanos), COUNT(*) FROM spends GROUP BY dataset;
INSERT INTO population_totals (population, dataset, epsilon_nanos)
    SELECT population, dataset, SUM(epsilon_nanos) FROM spends GROUP BY population, dataset;
"#;

/// A version-2 amount of ε (REAL) as nano-ε, rounded up: a spend recorded
/// in floating point is never under-counted by the move to exact amounts.
fn nanos_up(column: &str, value: f64) -> rusqlite::Result<i64> {
    let e = Epsilon::ceil_of(value).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(format!("{column} {value}: {e}").into())
    })?;
    Ok(e.nanos().max(1) as i64)
}

/// Version 2 → 3. Before version 3 every dataset was its own population, so
/// copied spends are charged to the population named after their dataset.
fn v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP TRIGGER spends_add_to_total;
         DROP TRIGGER spends_are_append_only_update;
         DROP TRIGGER spends_are_append_only_delete;
         ALTER TABLE releases RENAME TO releases_v2;
         ALTER TABLE spends RENAME TO spends_v2;
         DROP INDEX releases_by_analyst;
         DROP INDEX spends_by_dataset;",
    )?;
    tx.execute_batch(V3_TABLES)?;
    {
        let mut read = tx.prepare(
            "SELECT release_id, analyst, dataset, query_key, query_json, rows_json, epsilon, \
             mechanism, noise_scale, ci95, created_at FROM releases_v2 ORDER BY seq",
        )?;
        let mut write = tx.prepare(
            "INSERT INTO releases (release_id, analyst, dataset, population, query_key, \
             query_json, rows_json, epsilon_nanos, mechanism, noise_scale, ci95, created_at) \
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let epsilon: f64 = r.get(6)?;
            write.execute(params![
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                nanos_up("releases.epsilon", epsilon)?,
                r.get::<_, String>(7)?,
                r.get::<_, f64>(8)?,
                r.get::<_, f64>(9)?,
                r.get::<_, String>(10)?,
            ])?;
        }
    }
    {
        let mut read = tx.prepare(
            "SELECT analyst, dataset, epsilon, release_id, created_at FROM spends_v2 ORDER BY seq",
        )?;
        let mut write = tx.prepare(
            "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, \
             created_at) VALUES (?1, ?2, ?2, ?3, ?4, ?5)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let epsilon: f64 = r.get(2)?;
            write.execute(params![
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                nanos_up("spends.epsilon", epsilon)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ])?;
        }
    }
    tx.execute_batch(V3_TOTALS)?;
    tx.execute_batch(V3_TRIGGERS)?;
    tx.execute_batch(
        "DROP TABLE spent_totals;
         DROP TABLE spends_v2;
         DROP TABLE releases_v2;",
    )?;
    Ok(())
}

/// One migration: from version `index` to `index + 1`.
type Migration = fn(&Transaction<'_>) -> rusqlite::Result<()>;

const MIGRATIONS: [Migration; 3] = [|tx| tx.execute_batch(V1), |tx| tx.execute_batch(V2), v3];
const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// The schema version of an open ledger (0 for an empty database).
pub(super) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
}

/// Brings the schema up to [`SCHEMA_VERSION`]; returns the versions applied.
pub(super) fn migrate(conn: &mut Connection) -> Result<Vec<i64>, PrivacyError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         )",
    )?;
    let current = version(&tx)?;
    if current > SCHEMA_VERSION {
        return Err(newer(current));
    }
    let mut applied = Vec::new();
    for (index, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        step(&tx)?;
        let v = index as i64 + 1;
        tx.execute(
            &format!("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, {NOW})"),
            params![v],
        )?;
        applied.push(v);
    }
    tx.commit()?;
    Ok(applied)
}

#[cfg(test)]
pub(super) fn apply_up_to(tx: &Transaction<'_>, version: usize) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    for (index, step) in MIGRATIONS.iter().enumerate().take(version) {
        step(tx)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 'x')",
            params![index as i64 + 1],
        )?;
    }
    Ok(())
}
