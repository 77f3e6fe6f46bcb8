use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior, params};

use super::*;
use crate::{BudgetScope, Epsilon, PrivacyError};

fn eps(v: f64) -> Epsilon {
    Epsilon::from_decimal_f64(v).unwrap()
}

/// Caps for `analyst` on dataset `nc`, alone in its population `nc`.
fn caps(analyst: &str, analyst_budget: f64, dataset_cap: f64) -> Caps {
    Caps {
        analyst: analyst.into(),
        dataset: "nc".into(),
        population: "nc".into(),
        population_members: vec!["nc".into()],
        analyst_budget: eps(analyst_budget),
        dataset_cap: None,
        population_cap: eps(dataset_cap),
    }
}

fn release(key: &str, epsilon: f64) -> NewRelease {
    NewRelease {
        query_key: key.into(),
        query_json: format!("{{\"key\":\"{key}\"}}"),
        rows_json: "[{\"count\":3}]".into(),
        mechanism: crate::MECHANISM.into(),
        noise_scale: 1.0,
        ci95: 3.4,
        epsilon: eps(epsilon),
    }
}

fn open(dir: &tempfile::TempDir) -> Ledger {
    Ledger::open(&dir.path().join("l.sqlite")).unwrap()
}

#[test]
fn release_is_stored_and_spent() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let out = ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q1", 0.5),
        )
        .unwrap();
    let CommitOutcome::Released(r) = out else {
        panic!("first release came back cached")
    };
    assert_eq!(r.release_id.len(), 32);
    assert!(r.release_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        r.created_at.ends_with('Z') && r.created_at.contains('T'),
        "{}",
        r.created_at
    );
    assert_eq!(r.rows_json, "[{\"count\":3}]");
    assert_eq!(r.population, "nc");
    assert_eq!(ledger.spent("alice", "nc").unwrap(), eps(0.5));
    assert_eq!(ledger.spent("alice", "oh").unwrap(), Epsilon::ZERO);
    assert_eq!(ledger.dataset_spent("nc").unwrap(), eps(0.5));
    assert_eq!(
        ledger.find_release("nc", "q1", Sharing::Everyone).unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        ledger.find_release("oh", "q1", Sharing::Everyone).unwrap(),
        None
    );
    assert_eq!(ledger.releases_for("alice").unwrap(), vec![r]);
    assert!(ledger.releases_for("bob").unwrap().is_empty());
}

#[test]
fn identical_query_is_cached_and_free_for_anyone_when_shared() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let first = ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 1.0),
        )
        .unwrap();
    let mut other = release("q", 1.0);
    other.rows_json = "[{\"count\":999}]".into();
    let again = ledger
        .commit_release(&caps("bob", 3.0, 10.0), Sharing::Everyone, &other)
        .unwrap();
    assert!(again.is_cached());
    assert_eq!(
        again.release(),
        first.release(),
        "a repeat must return the stored noise"
    );
    assert_eq!(ledger.spent("bob", "nc").unwrap(), Epsilon::ZERO);
    assert_eq!(ledger.dataset_spent("nc").unwrap(), eps(1.0));
    // Even when the budget is gone, the stored release is free.
    let mut broke = caps("carol", 1.0, 1.0);
    broke.analyst_budget = Epsilon::ZERO;
    let cached = ledger
        .commit_release(&broke, Sharing::Everyone, &release("q", 1.0))
        .unwrap();
    assert!(cached.is_cached());
}

/// `share_releases = false`: an analyst never gets another's stored
/// release, pays for their own, and is then served their own.
#[test]
fn own_only_keeps_releases_to_the_analyst_who_paid() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let alice = ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::OwnOnly("alice"),
            &release("q", 1.0),
        )
        .unwrap();
    assert!(!alice.is_cached());
    assert!(
        ledger
            .find_release("nc", "q", Sharing::OwnOnly("bob"))
            .unwrap()
            .is_none()
    );
    let bob = ledger
        .commit_release(
            &caps("bob", 3.0, 10.0),
            Sharing::OwnOnly("bob"),
            &release("q", 1.0),
        )
        .unwrap();
    assert!(!bob.is_cached(), "bob was served alice's release");
    assert_ne!(bob.release().release_id, alice.release().release_id);
    assert_eq!(ledger.spent("bob", "nc").unwrap(), eps(1.0));
    assert_eq!(ledger.dataset_spent("nc").unwrap(), eps(2.0));
    let again = ledger
        .commit_release(
            &caps("bob", 3.0, 10.0),
            Sharing::OwnOnly("bob"),
            &release("q", 1.0),
        )
        .unwrap();
    assert_eq!(again, CommitOutcome::Cached(bob.release().clone()));
    // Switched to shared, the oldest is served to anyone.
    let shared = ledger
        .find_release("nc", "q", Sharing::Everyone)
        .unwrap()
        .unwrap();
    assert_eq!(shared.release_id, alice.release().release_id);
}

#[test]
fn analyst_budget_is_enforced_with_remaining() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    for i in 0..10 {
        ledger
            .commit_release(
                &caps("alice", 1.0, 10.0),
                Sharing::Everyone,
                &release(&format!("q{i}"), 0.1),
            )
            .unwrap_or_else(|e| panic!("spend {i}: {e}"));
    }
    let err = ledger
        .commit_release(
            &caps("alice", 1.0, 10.0),
            Sharing::Everyone,
            &release("q10", 0.1),
        )
        .unwrap_err();
    match err {
        PrivacyError::BudgetExhausted {
            scope: BudgetScope::Analyst,
            name,
            remaining,
        } => assert_eq!((name.as_str(), remaining), ("alice", Epsilon::ZERO)),
        other => panic!("expected analyst budget exhausted, got {other}"),
    }
    assert!(
        ledger
            .find_release("nc", "q10", Sharing::Everyone)
            .unwrap()
            .is_none(),
        "refused release stored"
    );
    assert_eq!(ledger.spent("alice", "nc").unwrap(), eps(1.0));
}

/// Exact amounts: 0.1 + 0.2 fills a cap of 0.3 exactly (in floating point
/// the sum is 0.30000000000000004, above the cap, which a tolerance let
/// through), and a budget of 2.0 affords exactly 40 spends of 0.05.
#[test]
fn decimal_budgets_add_up_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    for (key, e) in [("a", 0.1), ("b", 0.2)] {
        ledger
            .commit_release(
                &caps("alice", 0.3, 10.0),
                Sharing::Everyone,
                &release(key, e),
            )
            .unwrap();
    }
    let spent = ledger.spent("alice", "nc").unwrap();
    assert_eq!(spent, eps(0.3));
    assert!(spent <= eps(0.3), "spent {spent} is above the cap");
    assert!(
        ledger
            .commit_release(
                &caps("alice", 0.3, 10.0),
                Sharing::Everyone,
                &release("c", 0.000001)
            )
            .is_err(),
        "a spend past a full cap was allowed"
    );

    let mut answered = 0;
    for i in 0..50 {
        let r = ledger.commit_release(
            &caps("bob", 2.0, 10.0),
            Sharing::Everyone,
            &release(&format!("t{i}"), 0.05),
        );
        match r {
            Ok(_) => answered += 1,
            Err(PrivacyError::BudgetExhausted { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(answered, 40);
    assert_eq!(ledger.spent("bob", "nc").unwrap(), eps(2.0));
}

#[test]
fn dataset_cap_is_enforced_across_analysts() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let capped = |analyst: &str| {
        let mut c = caps(analyst, 3.0, 100.0);
        c.dataset_cap = Some(eps(5.0));
        c
    };
    ledger
        .commit_release(&capped("alice"), Sharing::Everyone, &release("a1", 2.0))
        .unwrap();
    ledger
        .commit_release(&capped("bob"), Sharing::Everyone, &release("b1", 2.0))
        .unwrap();
    let err = ledger
        .commit_release(&capped("carol"), Sharing::Everyone, &release("c1", 2.0))
        .unwrap_err();
    match err {
        PrivacyError::BudgetExhausted {
            scope: BudgetScope::Dataset,
            name,
            remaining,
        } => assert_eq!((name.as_str(), remaining), ("nc", eps(1.0))),
        other => panic!("expected dataset cap, got {other}"),
    }
    assert_eq!(ledger.spent("carol", "nc").unwrap(), Epsilon::ZERO);
    ledger
        .commit_release(&capped("carol"), Sharing::Everyone, &release("c2", 1.0))
        .unwrap();
    assert_eq!(ledger.dataset_spent("nc").unwrap(), eps(5.0));
}

/// Two datasets holding the same voters share one population cap: spends
/// on either count against it, atomically, and a refusal names it.
#[test]
fn a_population_cap_bounds_spends_on_all_its_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let on = |dataset: &str| Caps {
        analyst: "alice".into(),
        dataset: dataset.into(),
        population: "nc-voters".into(),
        population_members: vec!["nc2025".into(), "nc2026".into()],
        analyst_budget: eps(10.0),
        dataset_cap: None,
        population_cap: eps(3.0),
    };
    ledger
        .commit_release(&on("nc2025"), Sharing::Everyone, &release("q", 2.0))
        .unwrap();
    let err = ledger
        .commit_release(&on("nc2026"), Sharing::Everyone, &release("q", 2.0))
        .unwrap_err();
    match err {
        PrivacyError::BudgetExhausted {
            scope: BudgetScope::Population,
            name,
            remaining,
        } => assert_eq!((name.as_str(), remaining), ("nc-voters", eps(1.0))),
        other => panic!("expected the population cap, got {other}"),
    }
    ledger
        .commit_release(&on("nc2026"), Sharing::Everyone, &release("q", 1.0))
        .unwrap();
    let members = on("nc2026").population_members;
    assert_eq!(
        ledger.population_spent("nc-voters", &members).unwrap(),
        eps(3.0)
    );
    // A dataset that leaves the population still counts against it.
    assert_eq!(
        ledger
            .population_spent("nc-voters", &["nc2026".to_owned()])
            .unwrap(),
        eps(3.0)
    );
    // A dataset that joins brings its earlier spends along.
    let solo = Caps {
        population: "oh".into(),
        population_members: vec!["oh".into()],
        dataset: "oh".into(),
        ..on("oh")
    };
    ledger
        .commit_release(&solo, Sharing::Everyone, &release("q", 0.5))
        .unwrap();
    let joined = ["nc2025".to_owned(), "nc2026".to_owned(), "oh".to_owned()];
    assert_eq!(
        ledger.population_spent("nc-voters", &joined).unwrap(),
        eps(3.5)
    );
}

#[test]
fn balances_are_what_the_commit_checks() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let c = caps("alice", 1.0, 10.0);
    ledger
        .commit_release(&c, Sharing::Everyone, &release("a", 0.75))
        .unwrap();
    let b = ledger.balances(&c).unwrap();
    assert_eq!(b.analyst, eps(0.75));
    assert_eq!(b.remaining(&c), eps(0.25));
    assert!(b.check(&c, eps(0.25)).is_ok());
    assert!(matches!(
        b.check(&c, eps(0.26)),
        Err(PrivacyError::BudgetExhausted {
            scope: BudgetScope::Analyst,
            ..
        })
    ));
}

#[test]
fn reopening_keeps_spends_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir)
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 0.75),
        )
        .unwrap();
    let ledger = open(&dir);
    assert_eq!(ledger.spent("alice", "nc").unwrap(), eps(0.75));
    let again = ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 0.75),
        )
        .unwrap();
    assert_eq!(again, CommitOutcome::Cached(first.release().clone()));
    assert_eq!(ledger.releases_for("alice").unwrap().len(), 1);
}

/// The ledger holds every release and spend: it is created owner-only.
#[test]
fn the_ledger_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 0.5),
        )
        .unwrap();
    for name in ["l.sqlite", "l.sqlite-wal", "l.sqlite-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
}

fn race(ledgers: Vec<Arc<Ledger>>) {
    let threads = 40;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let ledger = ledgers[i % ledgers.len()].clone();
            std::thread::spawn(move || {
                ledger.commit_release(
                    &caps("alice", 8.0, 100.0),
                    Sharing::Everyone,
                    &release(&format!("q{i}"), 1.0),
                )
            })
        })
        .collect();
    let mut released = 0;
    let mut refused = 0;
    for h in handles {
        match h.join().unwrap() {
            Ok(CommitOutcome::Released(_)) => released += 1,
            Ok(CommitOutcome::Cached(_)) => panic!("distinct keys came back cached"),
            Err(PrivacyError::BudgetExhausted { .. }) => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(released, 8, "40 spends of 1.0 against a budget of 8.0");
    assert_eq!(refused, 32);
    assert_eq!(ledgers[0].spent("alice", "nc").unwrap(), eps(8.0));
    assert_eq!(ledgers[0].releases_for("alice").unwrap().len(), 8);
}

#[test]
fn concurrent_spends_never_pass_the_budget_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    race(vec![Arc::new(open(&dir))]);
}

/// Separate connections, as separate server processes would have: the
/// IMMEDIATE transaction (SQLite's write lock) serialises them.
#[test]
fn concurrent_spends_never_pass_the_budget_many_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ledgers = (0..8).map(|_| Arc::new(open(&dir))).collect();
    race(ledgers);
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
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("new", 0.5),
        )
        .unwrap();
    let summary = ledger.spend_summary().unwrap();
    assert_eq!(summary.len(), 2);
    assert_eq!(
        (summary[0].analyst.as_str(), summary[0].releases),
        ("alice", 3)
    );
    let conn = ledger.conn();
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

/// Nothing can take a spend or a release back, so totals cannot drift.
#[test]
fn spends_and_releases_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 0.5),
        )
        .unwrap();
    let conn = ledger.conn();
    for sql in [
        "DELETE FROM spends",
        "UPDATE spends SET epsilon_nanos = 1",
        "DELETE FROM releases",
        "UPDATE releases SET rows_json = '[]'",
    ] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    drop(Ledger::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Ledger::open(&path).unwrap_err().to_string();
    assert!(err.contains("99"), "{err}");
}

#[test]
fn migrate_reports_what_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    assert_eq!(Ledger::migrate(&path).unwrap(), vec![1, 2, 3]);
    assert!(Ledger::migrate(&path).unwrap().is_empty());
}

#[test]
fn read_only_views_while_a_writer_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    assert!(Ledger::open_read_only(&path).is_err(), "missing file");
    let writer = Ledger::open(&path).unwrap();
    for (analyst, key, e) in [
        ("alice", "a1", 0.5),
        ("alice", "a2", 0.25),
        ("bob", "b1", 1.0),
    ] {
        writer
            .commit_release(
                &caps(analyst, 3.0, 10.0),
                Sharing::Everyone,
                &release(key, e),
            )
            .unwrap();
    }
    let reader = Ledger::open_read_only(&path).unwrap();
    assert_eq!(
        reader.spend_summary().unwrap(),
        vec![
            SpendSummary {
                analyst: "alice".into(),
                dataset: "nc".into(),
                spent: eps(0.75),
                releases: 2
            },
            SpendSummary {
                analyst: "bob".into(),
                dataset: "nc".into(),
                spent: eps(1.0),
                releases: 1
            },
        ]
    );
    assert_eq!(
        reader.dataset_summary().unwrap(),
        vec![DatasetSummary {
            dataset: "nc".into(),
            spent: eps(1.75),
            releases: 3
        }]
    );
    let all = reader.releases_since(None).unwrap();
    let keys: Vec<&str> = all.iter().map(|r| r.query_key.as_str()).collect();
    assert_eq!(keys, ["a1", "a2", "b1"]);
    // The writer keeps writing while the reader is open; the reader sees it.
    writer
        .commit_release(
            &caps("bob", 3.0, 10.0),
            Sharing::Everyone,
            &release("b2", 1.0),
        )
        .unwrap();
    assert_eq!(reader.releases_since(None).unwrap().len(), 4);
    // A reader cannot write.
    assert!(
        reader
            .commit_release(
                &caps("carol", 3.0, 10.0),
                Sharing::Everyone,
                &release("c1", 1.0)
            )
            .is_err()
    );
    assert_eq!(writer.dataset_spent("nc").unwrap(), eps(2.75));
    // `since`: a day before and after; offsets are converted to UTC.
    assert_eq!(reader.releases_since(Some("2000-01-01")).unwrap().len(), 4);
    assert!(
        reader
            .releases_since(Some("2999-01-01"))
            .unwrap()
            .is_empty()
    );
    let first = &all[0].created_at;
    assert_eq!(reader.releases_since(Some(first)).unwrap().len(), 4);
    assert_eq!(
        reader
            .releases_since(Some("2999-01-01T01:00:00+02:00"))
            .unwrap()
            .len(),
        0
    );
    let err = reader.releases_since(Some("yesterday")).unwrap_err();
    assert!(err.to_string().contains("yesterday"), "{err}");
    drop(reader);
    drop(writer);
    let reader = Ledger::open_read_only(&path).unwrap();
    assert_eq!(reader.spend_summary().unwrap().len(), 2);
    assert_eq!(reader.releases_since(None).unwrap().len(), 4);
}

#[test]
fn ledger_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Ledger>();
}

/// A rehearsal commits durably and leaves nothing behind.
#[test]
fn a_rehearsed_commit_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    ledger.rehearse_commit(40_000).unwrap();
    let conn = ledger.conn();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM rehearsals", [], |r| r.get(0))
        .unwrap();
    let spends: i64 = conn
        .query_row("SELECT COUNT(*) FROM spends", [], |r| r.get(0))
        .unwrap();
    assert_eq!((rows, spends), (0, 0));
}
