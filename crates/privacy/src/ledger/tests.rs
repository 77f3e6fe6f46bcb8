//! The ledger's semantics, one suite run against both backends: every
//! `fn name(kind: Kind)` below is a test on SQLite (`on_sqlite::name`) and on
//! PostgreSQL (`on_postgres::name`, in a throwaway cluster shared by the
//! tests of this binary, one fresh database per test). Backend-specific
//! tests are in `sqlite/tests.rs` and `postgres/tests.rs`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::*;
use crate::{BudgetScope, Epsilon, PrivacyError};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

/// The cluster the PostgreSQL tests of this binary share (each in its own
/// database); stopped when the test process exits.
pub(crate) fn cluster() -> &'static pgcluster::Cluster {
    static CLUSTER: OnceLock<pgcluster::Cluster> = OnceLock::new();
    CLUSTER.get_or_init(pgcluster::Cluster::start)
}

/// Settings for database `db` of `cluster`, password from its file.
pub(crate) fn settings_for(cluster: &pgcluster::Cluster, db: &str) -> PostgresSettings {
    PostgresSettings {
        password_file: Some(cluster.password_file()),
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        ..PostgresSettings::new(&cluster.url(db)).unwrap()
    }
}

/// A fresh, empty place for a ledger: a file in a temporary folder, or a new
/// database.
pub(crate) struct Place {
    pub(crate) location: Location,
    _dir: Option<tempfile::TempDir>,
}

impl Place {
    pub(crate) fn new(kind: Kind) -> Place {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Place {
                    location: Location::Sqlite(dir.path().join("l.sqlite")),
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => {
                let db = cluster().fresh_database("ledger");
                Place {
                    location: Location::Postgres(settings_for(cluster(), &db)),
                    _dir: None,
                }
            }
        }
    }

    pub(crate) fn open(&self) -> Ledger {
        Ledger::open_at(&self.location).unwrap()
    }
}

/// Runs each listed `fn name(kind: Kind)` as a test on both backends.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $name() { super::$name(super::Kind::Sqlite) })*
        }
        mod on_postgres {
            $(#[test] fn $name() { super::$name(super::Kind::Postgres) })*
        }
    };
}

on_both!(
    release_is_stored_and_spent,
    identical_query_is_cached_and_free_for_anyone_when_shared,
    own_only_keeps_releases_to_the_analyst_who_paid,
    analyst_budget_is_enforced_with_remaining,
    decimal_budgets_add_up_as_written,
    dataset_cap_is_enforced_across_analysts,
    a_population_cap_bounds_spends_on_all_its_datasets,
    balances_are_what_the_commit_checks,
    reopening_keeps_spends_and_releases,
    concurrent_spends_never_pass_the_budget_one_ledger,
    concurrent_spends_never_pass_the_budget_many_ledgers,
    racing_on_one_new_query_releases_it_once,
    spends_and_releases_are_append_only,
    newer_schema_is_refused,
    migrate_reports_what_it_applied,
    read_only_views_while_a_writer_is_open,
    a_rehearsed_commit_records_nothing,
    a_copy_moves_every_spend_and_refuses_a_full_target,
    a_check_reaches_the_database,
);

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

fn release_is_stored_and_spent(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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

fn identical_query_is_cached_and_free_for_anyone_when_shared(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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
fn own_only_keeps_releases_to_the_analyst_who_paid(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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

fn analyst_budget_is_enforced_with_remaining(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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
fn decimal_budgets_add_up_as_written(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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

fn dataset_cap_is_enforced_across_analysts(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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
fn a_population_cap_bounds_spends_on_all_its_datasets(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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

fn balances_are_what_the_commit_checks(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
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

fn reopening_keeps_spends_and_releases(kind: Kind) {
    let place = Place::new(kind);
    let first = place
        .open()
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 0.75),
        )
        .unwrap();
    let ledger = place.open();
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

fn concurrent_spends_never_pass_the_budget_one_ledger(kind: Kind) {
    let place = Place::new(kind);
    race(vec![Arc::new(place.open())]);
}

/// Separate ledgers on one database, as separate server processes (or
/// replicas) would have: SQLite's write lock, or PostgreSQL's lock rows,
/// serialise them.
fn concurrent_spends_never_pass_the_budget_many_ledgers(kind: Kind) {
    let place = Place::new(kind);
    let ledgers = (0..8).map(|_| Arc::new(place.open())).collect();
    race(ledgers);
}

/// Replicas racing on the same new query, each with its own noise: one
/// release, one spend, and every other gets that release back, free.
fn racing_on_one_new_query_releases_it_once(kind: Kind) {
    let place = Place::new(kind);
    let ledgers: Vec<Arc<Ledger>> = (0..4).map(|_| Arc::new(place.open())).collect();
    let start = Arc::new(std::sync::Barrier::new(12));
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let (ledger, start) = (ledgers[i % ledgers.len()].clone(), start.clone());
            std::thread::spawn(move || {
                let mut r = release("same", 0.5);
                r.rows_json = format!("[{{\"count\":{i}}}]");
                start.wait();
                ledger
                    .commit_release(
                        &caps(&format!("a{}", i % 3), 3.0, 10.0),
                        Sharing::Everyone,
                        &r,
                    )
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<CommitOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let released: Vec<&StoredRelease> = outcomes
        .iter()
        .filter(|o| !o.is_cached())
        .map(CommitOutcome::release)
        .collect();
    assert_eq!(
        released.len(),
        1,
        "the same query was released more than once"
    );
    for o in &outcomes {
        assert_eq!(
            o.release(),
            released[0],
            "a loser did not get the winner's release"
        );
    }
    assert_eq!(ledgers[0].dataset_spent("nc").unwrap(), eps(0.5));
    assert_eq!(ledgers[0].totals().unwrap().spends, 1);
}

/// Nothing can take a spend or a release back, so totals cannot drift.
fn spends_and_releases_are_append_only(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
    ledger
        .commit_release(
            &caps("alice", 3.0, 10.0),
            Sharing::Everyone,
            &release("q", 0.5),
        )
        .unwrap();
    for sql in [
        "DELETE FROM spends",
        "UPDATE spends SET epsilon_nanos = 1",
        "DELETE FROM releases",
        "UPDATE releases SET rows_json = '[]'",
    ] {
        let err = ledger.backend.execute_raw(sql).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(ledger.totals().unwrap().spends, 1);
}

fn newer_schema_is_refused(kind: Kind) {
    let place = Place::new(kind);
    place
        .open()
        .backend
        .execute_raw("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'x')")
        .unwrap();
    for err in [
        Ledger::open_at(&place.location).unwrap_err(),
        Ledger::open_read_only_at(&place.location).unwrap_err(),
    ] {
        assert!(err.to_string().contains("99"), "{err}");
    }
}

/// SQLite ledgers went through versions 1 to 3; PostgreSQL ones start at 3.
fn migrate_reports_what_it_applied(kind: Kind) {
    let place = Place::new(kind);
    let all = match kind {
        Kind::Sqlite => vec![1, 2, 3],
        Kind::Postgres => vec![3],
    };
    assert_eq!(all.last(), Some(&SCHEMA_VERSION));
    assert_eq!(Ledger::migrate_at(&place.location).unwrap(), all);
    assert!(Ledger::migrate_at(&place.location).unwrap().is_empty());
    place.open();
    assert!(Ledger::migrate_at(&place.location).unwrap().is_empty());
}

fn read_only_views_while_a_writer_is_open(kind: Kind) {
    let place = Place::new(kind);
    let path = &place.location;
    assert!(
        Ledger::open_read_only_at(path).is_err(),
        "no ledger there yet"
    );
    let writer = Ledger::open_at(path).unwrap();
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
    let reader = Ledger::open_read_only_at(path).unwrap();
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
    let reader = Ledger::open_read_only_at(path).unwrap();
    assert_eq!(reader.spend_summary().unwrap().len(), 2);
    assert_eq!(reader.releases_since(None).unwrap().len(), 4);
}

#[test]
fn ledger_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Ledger>();
}

/// A rehearsal commits durably and leaves nothing behind.
fn a_rehearsed_commit_records_nothing(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
    ledger.rehearse_commit(40_000).unwrap();
    let rows = ledger.backend.count_rows("rehearsals");
    let spends = ledger.backend.count_rows("spends");
    assert_eq!((rows, spends), (0, 0));
}

/// Spends on two datasets of one population, by two analysts, one shared
/// and one kept to its analyst.
fn fill(ledger: &Ledger) {
    let on = |analyst: &str, dataset: &str| Caps {
        analyst: analyst.into(),
        dataset: dataset.into(),
        population: "nc-voters".into(),
        population_members: vec!["nc2025".into(), "nc2026".into()],
        analyst_budget: eps(10.0),
        dataset_cap: None,
        population_cap: eps(10.0),
    };
    for (i, (analyst, dataset, e)) in [
        ("alice", "nc2025", 0.1),
        ("alice", "nc2026", 0.2),
        ("bob", "nc2026", 0.3),
        ("bob", "nc2026", 0.000000001),
    ]
    .into_iter()
    .enumerate()
    {
        ledger
            .commit_release(
                &on(analyst, dataset),
                Sharing::OwnOnly(analyst),
                &release(&format!("q{i}"), e),
            )
            .unwrap();
    }
}

/// A copy between the two backends, either way: every release and spend
/// arrives (same ids, times and rows), the totals match, the copy can be
/// spent from; a target that holds anything is refused and left as it was.
fn a_copy_moves_every_spend_and_refuses_a_full_target(kind: Kind) {
    let other = match kind {
        Kind::Sqlite => Kind::Postgres,
        Kind::Postgres => Kind::Sqlite,
    };
    let (from, to) = (Place::new(other), Place::new(kind));
    let source = from.open();
    fill(&source);
    let target = to.open();
    let copied = source.copy_to(&target).unwrap();
    assert_eq!(copied, source.totals().unwrap());
    assert_eq!((copied.releases, copied.spends), (4, 4));
    assert_eq!(copied.spent.nanos(), 600_000_001);
    assert_eq!(
        target.releases_since(None).unwrap(),
        source.releases_since(None).unwrap()
    );
    assert_eq!(
        target.spend_summary().unwrap(),
        source.spend_summary().unwrap()
    );
    let members = ["nc2025".to_owned(), "nc2026".to_owned()];
    assert_eq!(
        target.population_spent("nc-voters", &members).unwrap(),
        source.population_spent("nc-voters", &members).unwrap()
    );
    let again = source.copy_to(&target).unwrap_err().to_string();
    assert!(again.contains("not empty"), "{again}");
    assert_eq!(target.totals().unwrap(), copied);
    // The copy is a working ledger: its spends count against new commits.
    let mut c = caps("alice", 10.0, 10.0);
    c.analyst_budget = eps(0.4);
    c.dataset = "nc2026".into();
    let err = target
        .commit_release(&c, Sharing::OwnOnly("alice"), &release("new", 0.25))
        .unwrap_err();
    assert!(matches!(err, PrivacyError::BudgetExhausted { .. }), "{err}");
}

fn a_check_reaches_the_database(kind: Kind) {
    let place = Place::new(kind);
    let ledger = place.open();
    ledger.check().unwrap();
    assert_eq!(ledger.is_remote(), kind == Kind::Postgres);
    assert_eq!(
        ledger.backend_name(),
        match kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    );
}
