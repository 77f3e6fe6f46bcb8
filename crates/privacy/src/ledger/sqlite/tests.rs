//! Tests of the SQLite backend alone: its file, its history of schema
//! versions. The semantics both backends share are in `ledger/tests.rs`.

use rusqlite::{Connection, TransactionBehavior, params};

use super::schema;
use crate::Epsilon;
use crate::ledger::{Caps, Ledger, NewRelease, Sharing};

fn eps(v: f64) -> Epsilon {
    Epsilon::from_decimal_f64(v).unwrap()
}

fn caps(analyst: &str) -> Caps {
    Caps {
        analyst: analyst.into(),
        dataset: "nc".into(),
        population: "nc".into(),
        population_members: vec!["nc".into()],
        analyst_budget: eps(3.0),
        dataset_cap: None,
        population_cap: eps(10.0),
    }
}

fn release(key: &str, epsilon: f64) -> NewRelease {
    NewRelease {
        query_key: key.into(),
        query_json: "{}".into(),
        rows_json: "[]".into(),
        mechanism: crate::MECHANISM.into(),
        noise_scale: 1.0,
        ci95: 3.4,
        epsilon: eps(epsilon),
    }
}

/// A version-2 ledger (REAL ε, one population per dataset) migrates to
/// exact amounts rounded up, each dataset its own population, totals that
/// agree with the spends, and keeps every release.
#[test]
fn a_version_two_ledger_migrates_to_exact_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        schema::apply_up_to(&tx, 2).unwrap();
        for (i, (analyst, e)) in [("alice", 0.1), ("alice", 0.2), ("bob", 1.5)]
            .iter()
            .enumerate()
        {
            tx.execute(
                "INSERT INTO releases (release_id, analyst, dataset, query_key, query_json, \
                 rows_json, epsilon, mechanism, noise_scale, ci95, created_at) \
                 VALUES (?1, ?2, 'nc', ?1, '{}', '[]', ?3, 'm', 1.0, 1.0, 'x')",
                params![format!("r{i}"), analyst, e],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO spends (analyst, dataset, epsilon, release_id, created_at) \
                 VALUES (?1, 'nc', ?2, ?3, 'x')",
                params![analyst, e, format!("r{i}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    // The REAL 0.1 is 0.1000000000000000055…: rounded up to one nano-ε more.
    assert_eq!(ledger.spent("alice", "nc").unwrap().nanos(), 300_000_002);
    assert_eq!(ledger.spent("bob", "nc").unwrap(), eps(1.5));
    assert_eq!(
        ledger
            .population_spent("nc", &["nc".to_owned()])
            .unwrap()
            .nanos(),
        1_800_000_002
    );
    let all = ledger.releases_since(None).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.population == "nc"));
    ledger
        .commit_release(&caps("alice"), Sharing::Everyone, &release("new", 0.5))
        .unwrap();
    let summary = ledger.spend_summary().unwrap();
    assert_eq!(summary.len(), 2);
    assert_eq!(
        (summary[0].analyst.as_str(), summary[0].releases),
        ("alice", 3)
    );
    let conn = Connection::open(&path).unwrap();
    let from_spends: i64 = conn
        .query_row("SELECT SUM(epsilon_nanos) FROM spends", [], |r| r.get(0))
        .unwrap();
    let totals: i64 = conn
        .query_row("SELECT SUM(epsilon_nanos) FROM dataset_totals", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(from_spends, totals);
}

/// The ledger holds every release and spend: it is created owner-only.
#[test]
fn the_ledger_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    ledger
        .commit_release(&caps("alice"), Sharing::Everyone, &release("q", 0.5))
        .unwrap();
    for name in ["l.sqlite", "l.sqlite-wal", "l.sqlite-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
}
