//! Tests of the PostgreSQL backend alone: connections, the lock rows, the
//! database going away and coming back, migrations racing. The semantics
//! both backends share are in `ledger/tests.rs`.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::ledger::tests::{cluster, settings_for};
use crate::ledger::{Caps, CommitOutcome, Ledger, Location, NewRelease, PostgresSettings, Sharing};
use crate::{Epsilon, PrivacyError};

fn eps(v: f64) -> Epsilon {
    Epsilon::from_decimal_f64(v).unwrap()
}

fn caps(dataset: &str, population: &str, members: &[&str]) -> Caps {
    Caps {
        analyst: "alice".into(),
        dataset: dataset.into(),
        population: population.into(),
        population_members: members.iter().map(|m| m.to_string()).collect(),
        analyst_budget: eps(10.0),
        dataset_cap: None,
        population_cap: eps(10.0),
    }
}

fn release(key: &str) -> NewRelease {
    NewRelease {
        query_key: key.into(),
        query_json: "{}".into(),
        rows_json: "[]".into(),
        mechanism: crate::MECHANISM.into(),
        noise_scale: 1.0,
        ci95: 3.4,
        epsilon: eps(0.5),
    }
}

fn fresh() -> (String, Location) {
    let db = cluster().fresh_database("pg");
    let location = Location::Postgres(settings_for(cluster(), &db));
    (db, location)
}

/// The database stopped: every call is `LedgerUnavailable` (after at most
/// the connect timeout), nothing is recorded; started again, the same
/// ledger works again without being reopened.
#[test]
fn a_database_that_goes_away_is_unavailable_then_recovers() {
    let own = pgcluster::Cluster::start();
    own.create_database("l");
    let settings = PostgresSettings {
        connect_timeout: Duration::from_secs(1),
        pool_size: 2,
        ..settings_for(&own, "l")
    };
    let ledger = Ledger::open_at(&Location::Postgres(settings)).unwrap();
    let c = caps("nc", "nc", &["nc"]);
    ledger
        .commit_release(&c, Sharing::Everyone, &release("before"))
        .unwrap();
    own.stop();
    let started = Instant::now();
    let err = ledger
        .commit_release(&c, Sharing::Everyone, &release("during"))
        .unwrap_err();
    assert!(matches!(err, PrivacyError::LedgerUnavailable(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    for e in [
        ledger.check().unwrap_err(),
        ledger.balances(&c).unwrap_err(),
        ledger.spent("alice", "nc").unwrap_err(),
    ] {
        assert!(matches!(e, PrivacyError::LedgerUnavailable(_)), "{e}");
    }
    own.start_again();
    ledger.check().unwrap();
    let after = ledger
        .commit_release(&c, Sharing::Everyone, &release("after"))
        .unwrap();
    assert!(!after.is_cached());
    let totals = ledger.totals().unwrap();
    assert_eq!((totals.releases, totals.spends), (2, 2), "{totals:?}");
    assert!(
        ledger
            .find_release("nc", "during", Sharing::Everyone)
            .unwrap()
            .is_none()
    );
}

/// Replicas started at the same moment on an empty database: each migration
/// is applied once (under the advisory lock), every replica opens.
#[test]
fn replicas_starting_together_migrate_once() {
    let (db, location) = fresh();
    let start = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (location, start) = (location.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                Ledger::migrate_at(&location).unwrap()
            })
        })
        .collect();
    let applied: Vec<Vec<i64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        applied.iter().filter(|a| !a.is_empty()).count(),
        1,
        "{applied:?}"
    );
    let mut client = cluster().client(&db).unwrap();
    let rows: i64 = client
        .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

/// A commit locks the rows of its population and of every dataset in it:
/// while another transaction holds the population's row, the commit waits,
/// and it goes through once that transaction ends.
#[test]
fn a_commit_waits_for_its_population_lock() {
    let (db, location) = fresh();
    let ledger = Arc::new(Ledger::open_at(&location).unwrap());
    let c = caps("nc2026", "nc-voters", &["nc2025", "nc2026"]);
    ledger
        .commit_release(&c, Sharing::Everyone, &release("first"))
        .unwrap();
    let mut client = cluster().client(&db).unwrap();
    let locks: Vec<(String, String)> = client
        .query(
            "SELECT kind, name FROM ledger_locks ORDER BY kind, name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = [
        ("dataset", "nc2025"),
        ("dataset", "nc2026"),
        ("population", "nc-voters"),
    ]
    .map(|(k, n)| (k.to_owned(), n.to_owned()));
    assert_eq!(locks, want);

    // Another replica's commit on the other dataset of the population,
    // caught between its lock and its commit.
    let mut holder = client.transaction().unwrap();
    holder
        .execute(
            "SELECT 1 FROM ledger_locks WHERE kind = 'population' AND name = 'nc-voters' \
             FOR UPDATE",
            &[],
        )
        .unwrap();
    let waiting = {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            let c = caps("nc2025", "nc-voters", &["nc2025", "nc2026"]);
            ledger.commit_release(&c, Sharing::Everyone, &release("second"))
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !waiting.is_finished(),
        "the commit did not wait for the population's lock"
    );
    holder.commit().unwrap();
    let outcome = waiting.join().unwrap().unwrap();
    assert!(matches!(outcome, CommitOutcome::Released(_)));
}

/// Totals change only through the spends' trigger.
#[test]
fn totals_cannot_be_edited() {
    let (db, location) = fresh();
    let ledger = Ledger::open_at(&location).unwrap();
    ledger
        .commit_release(&caps("nc", "nc", &["nc"]), Sharing::Everyone, &release("q"))
        .unwrap();
    let mut client = cluster().client(&db).unwrap();
    for sql in [
        "UPDATE dataset_totals SET epsilon_nanos = 0",
        "DELETE FROM analyst_totals",
        "UPDATE population_totals SET epsilon_nanos = 0",
        "TRUNCATE spends CASCADE",
    ] {
        let err = client.batch_execute(sql).unwrap_err();
        let text = format!("{err} {:?}", err.as_db_error().map(|d| d.message()));
        assert!(text.contains("append-only"), "{sql}: {text}");
    }
    assert_eq!(ledger.dataset_spent("nc").unwrap(), eps(0.5));
}

/// Connection mistakes are named, and no message or `Debug` shows a
/// password.
#[test]
fn connection_settings_are_checked_and_passwords_never_shown() {
    let c = cluster();
    let db = c.fresh_database("conn");
    // A password in the URL works too.
    let inline = PostgresSettings::new(&c.url_with_password(&db)).unwrap();
    assert!(!format!("{inline:?}").contains(c.password()));
    assert!(!inline.redacted_url().contains(c.password()));
    assert_eq!(
        inline.redacted_url(),
        format!("postgres://rollcall@127.0.0.1:{}/{db}", c.port())
    );
    Ledger::open_at(&Location::Postgres(inline.clone())).unwrap();

    let both = PostgresSettings {
        password_file: Some(c.password_file()),
        ..inline
    };
    let err = Ledger::open_at(&Location::Postgres(both))
        .unwrap_err()
        .to_string();
    assert!(err.contains("one place"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let wrong_file = dir.path().join("pw");
    std::fs::write(&wrong_file, "not-the-password\n").unwrap();
    let wrong = PostgresSettings {
        password_file: Some(wrong_file),
        ..PostgresSettings::new(&c.url(&db)).unwrap()
    };
    let err = Ledger::open_at(&Location::Postgres(wrong)).unwrap_err();
    assert!(matches!(err, PrivacyError::LedgerUnavailable(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(&c.url(&db)), "names where: {text}");
    assert!(!text.contains("not-the-password"), "{text}");

    let missing = PostgresSettings {
        password_file: Some(dir.path().join("absent")),
        ..PostgresSettings::new(&c.url(&db)).unwrap()
    };
    let err = Ledger::open_at(&Location::Postgres(missing))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("password_file") && err.contains("absent"),
        "{err}"
    );

    for (url, says) in [
        ("postgres://u@h/db?sslmode=require", "sslmode=require"),
        ("postgres://u:secret@h:notaport/db", "not a PostgreSQL URL"),
    ] {
        let err = PostgresSettings::new(url).unwrap_err().to_string();
        assert!(
            err.contains(says) && !err.contains("secret"),
            "{url}: {err}"
        );
    }
    assert!(matches!(
        Location::parse("data/ledger.sqlite").unwrap(),
        Location::Sqlite(_)
    ));
    assert!(matches!(
        Location::parse("postgresql://u@h/db").unwrap(),
        Location::Postgres(_)
    ));
}
