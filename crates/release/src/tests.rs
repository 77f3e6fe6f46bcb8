//! The release path in process: a small dataset in memory, a real ledger in
//! a temporary folder, real opendp noise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{Dataset, DomainSpec, Domains};
use layout::Layout;
use privacy::{BudgetScope, Epsilon, Ledger};

use super::*;

fn eps(v: f64) -> Epsilon {
    Epsilon::from_decimal_f64(v).unwrap()
}

/// An NC dataset of `rows` voters, every one in the first code of every
/// dimension but the county, spread over the first ten counties.
fn nc_target(name: &str, rows: usize) -> Target {
    let layout = Layout::resolve("nc").unwrap();
    let spec = DomainSpec {
        age_bands: vec![18, 25, 35, 45, 55, 65, 75],
        as_of_year: 2026,
    };
    let domains = Arc::new(Domains::new(&layout, &spec).unwrap());
    let columns = domains
        .dims()
        .iter()
        .map(|d| {
            let codes = (0..rows)
                .map(|i| {
                    if d.name == "county" {
                        (i % 10) as u16
                    } else {
                        0
                    }
                })
                .collect();
            (d.dim, codes)
        })
        .collect();
    let data = Arc::new(Dataset::from_codes(domains.clone(), columns).unwrap());
    Target {
        name: name.to_owned(),
        version: Target::version_of(&data, &domains),
        data,
        domains,
        policy: Policy {
            population: name.to_owned(),
            population_members: vec![name.to_owned()],
            population_cap: eps(1000.0),
            dataset_cap: None,
            max_epsilon_per_query: eps(100.0),
            share_releases: true,
        },
    }
}

fn service(dir: &tempfile::TempDir, quantum: Duration) -> ReleaseService {
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    ReleaseService::new(Arc::new(ledger), quantum)
}

fn ask(group_by: &[&str], epsilon: f64) -> Ask {
    Ask {
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        filter: Vec::new(),
        epsilon,
        dry_run: false,
        max_cells: 100_000,
    }
}

fn who(name: &str, budget: f64) -> Spender<'_> {
    Spender {
        name,
        budget: eps(budget),
    }
}

fn released(answer: Answer) -> Released {
    match answer {
        Answer::Release(r) => r,
        Answer::Cost(c) => panic!("a dry run answer: {c:?}"),
    }
}

#[test]
fn a_release_is_committed_then_served_free() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(&dir, Duration::ZERO);
    let t = nc_target("nc", 1000);
    let first = released(
        s.answer(&t, who("alice", 5.0), &ask(&["county"], 0.5))
            .unwrap(),
    );
    assert!(!first.cached);
    assert_eq!(first.cells, 100);
    assert_eq!(first.release.epsilon, eps(0.5));
    assert_eq!(first.analyst_remaining, eps(4.5));
    // From memory, then from the ledger through a fresh service.
    let again = s
        .answer_stored(&t, who("bob", 5.0), &ask(&["county"], 0.5))
        .unwrap();
    let again = released(again.expect("kept in memory"));
    assert!(again.cached);
    assert_eq!(again.release, first.release);
    let fresh = service(&dir, Duration::ZERO);
    let later = released(
        fresh
            .answer(&t, who("bob", 5.0), &ask(&["county"], 0.5))
            .unwrap(),
    );
    assert!(later.cached && later.release == first.release);
    assert_eq!(later.analyst_remaining, eps(5.0));
}

/// Defect 2: a new version of the data (a re-ingest, another `as_of`,
/// other age bands) is never answered from an old release, and it spends
/// from the same caps. (The key used to be dataset, group-by, filter and ε.)
#[test]
fn a_new_data_version_is_never_served_an_old_release() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(&dir, Duration::ZERO);
    let old = nc_target("nc", 1000);
    let first = released(
        s.answer(&old, who("alice", 5.0), &ask(&["county"], 1.0))
            .unwrap(),
    );
    let mut new = nc_target("nc", 2000);
    new.version = format!("re-ingested.{}", new.domains.digest());
    let second = released(
        s.answer(&new, who("alice", 5.0), &ask(&["county"], 1.0))
            .unwrap(),
    );
    assert!(
        !second.cached,
        "the old data's release was served for new data"
    );
    assert_ne!(second.release.release_id, first.release.release_id);
    assert_eq!(second.analyst_remaining, eps(3.0), "the same caps");
    // New domains (another reference year): another key too.
    let layout = Layout::resolve("nc").unwrap();
    let spec = DomainSpec {
        age_bands: vec![18, 65],
        as_of_year: 2025,
    };
    let relabelled = Domains::new(&layout, &spec).unwrap();
    assert_ne!(relabelled.digest(), old.domains.digest());
    // Both releases stay in the ledger.
    assert_eq!(s.ledger().releases_for("alice").unwrap().len(), 2);
}

/// Defect 4: with `share_releases = false` an analyst is never served, nor
/// told of (`cached` in a dry run), another analyst's release.
#[test]
fn unshared_releases_stay_with_the_analyst_who_paid() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(&dir, Duration::ZERO);
    let mut t = nc_target("nc", 1000);
    t.policy.share_releases = false;
    let q = ask(&["county"], 0.5);
    let alice = released(s.answer(&t, who("alice", 5.0), &q).unwrap());
    let mut dry = q.clone();
    dry.dry_run = true;
    match s.answer(&t, who("bob", 5.0), &dry).unwrap() {
        Answer::Cost(c) => {
            assert!(!c.cached, "a dry run told bob that alice asked this");
            assert_eq!(c.epsilon, eps(0.5));
        }
        other => panic!("{other:?}"),
    }
    assert!(s.answer_stored(&t, who("bob", 5.0), &q).unwrap().is_none());
    let bob = released(s.answer(&t, who("bob", 5.0), &q).unwrap());
    assert!(!bob.cached);
    assert_ne!(bob.release.release_id, alice.release.release_id);
    let bob_again = released(s.answer(&t, who("bob", 5.0), &q).unwrap());
    assert!(bob_again.cached && bob_again.release == bob.release);
}

/// Defect 3: two datasets holding the same voters spend from one
/// population cap, and the refusal names it.
#[test]
fn datasets_of_one_population_share_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(&dir, Duration::ZERO);
    let members = vec!["nc2025".to_owned(), "nc2026".to_owned()];
    let mut a = nc_target("nc2025", 500);
    let mut b = nc_target("nc2026", 500);
    for t in [&mut a, &mut b] {
        t.policy.population = "nc-voters".into();
        t.policy.population_members = members.clone();
        t.policy.population_cap = eps(1.5);
    }
    s.answer(&a, who("alice", 10.0), &ask(&["county"], 1.0))
        .unwrap();
    let err = s
        .answer(&b, who("alice", 10.0), &ask(&["county"], 1.0))
        .unwrap_err();
    match err {
        ReleaseError::BudgetExhausted {
            scope: BudgetScope::Population,
            name,
            remaining,
        } => assert_eq!((name.as_str(), remaining), ("nc-voters", eps(0.5))),
        other => panic!("expected the population's cap, got {other}"),
    }
    s.answer(&b, who("alice", 10.0), &ask(&["county"], 0.5))
        .unwrap();
}

/// Defect 7: exact amounts. A budget of 2.0 affords exactly 40 releases at
/// ε = 0.05, and a dry run at ε = 30 says 30 (it said 29.999999999999996).
#[test]
fn charges_are_exact_and_add_up_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(&dir, Duration::ZERO);
    let t = nc_target("nc", 100);
    let mut answered = 0;
    for i in 0..45 {
        let mut q = ask(&[], 0.05);
        q.filter = vec![(
            "county".into(),
            vec![t.domains.by_name("county").unwrap().values[i].clone()],
        )];
        match s.answer(&t, who("alice", 2.0), &q) {
            Ok(_) => answered += 1,
            Err(ReleaseError::BudgetExhausted { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(answered, 40);
    assert_eq!(s.ledger().spent("alice", "nc").unwrap(), eps(2.0));
    let mut dry = ask(&["county"], 30.0);
    dry.dry_run = true;
    match s.answer(&t, who("bob", 100.0), &dry).unwrap() {
        Answer::Cost(c) => {
            assert_eq!(c.epsilon, eps(30.0));
            assert_eq!(c.epsilon.to_f64().to_string(), "30");
            assert!(c.ci95.is_finite());
        }
        other => panic!("{other:?}"),
    }
}

/// Defect 5: a query nobody can pay for is refused before any counting or
/// noise, so it neither waits at the gate nor holds it. Here a release holds
/// the gate for 300 ms; the unaffordable query behind it comes back at once.
/// (It used to be refused by the commit, after the gate and the noise.)
#[test]
fn an_unaffordable_query_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(service(&dir, Duration::from_millis(300)));
    let t = Arc::new(nc_target("nc", 1000));
    let holder = {
        let (s, t) = (s.clone(), t.clone());
        std::thread::spawn(move || s.answer(&t, who("alice", 5.0), &ask(&["county"], 0.5)))
    };
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let err = s
        .answer(&t, who("bob", 0.1), &ask(&["age_band"], 0.5))
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ReleaseError::BudgetExhausted {
                scope: BudgetScope::Analyst,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        took < Duration::from_millis(150),
        "the refusal waited {took:?} behind the gate"
    );
    holder.join().unwrap().unwrap();
    assert_eq!(s.ledger().spent("bob", "nc").unwrap(), Epsilon::ZERO);
}

/// Defect 6a: a release holds the gate for its whole deadline, so a query
/// queued behind it waits that fixed time, not the release's unpadded (noise
/// dependent) work. (Padding used to happen after leaving the gate.)
#[test]
fn the_wait_behind_the_gate_is_padded_too() {
    let dir = tempfile::tempdir().unwrap();
    let quantum = Duration::from_millis(100);
    let s = Arc::new(service(&dir, quantum));
    let t = Arc::new(nc_target("nc", 1000));
    // Calibrate both classes first (the calibration runs hold the gate too).
    s.answer(&t, who("alice", 50.0), &ask(&["county"], 0.9))
        .unwrap();
    s.answer(&t, who("alice", 50.0), &ask(&[], 0.9)).unwrap();
    for round in 0..3 {
        let started = Instant::now();
        let first = {
            let (s, t) = (s.clone(), t.clone());
            let e = 0.5 + round as f64 * 0.01;
            std::thread::spawn(move || s.answer(&t, who("alice", 50.0), &ask(&["county"], e)))
        };
        std::thread::sleep(Duration::from_millis(20));
        let e = 0.6 + round as f64 * 0.01;
        s.answer(&t, who("alice", 50.0), &ask(&[], e)).unwrap();
        let queued = started.elapsed();
        first.join().unwrap().unwrap();
        // The first holds the gate for a whole deadline (≥ 100 ms although
        // its work takes a few), then the second for its own.
        assert!(
            queued >= 2 * quantum - Duration::from_millis(5),
            "round {round}: the queued release answered after {queued:?}"
        );
    }
}

/// A release's response time is its class's deadline, whatever the noise:
/// at small ε (large noise) and large ε (none) alike.
#[test]
fn response_time_is_the_deadline_whatever_the_noise() {
    let dir = tempfile::tempdir().unwrap();
    let quantum = Duration::from_millis(40);
    let s = service(&dir, quantum);
    let t = nc_target("nc", 1000);
    let mut times = Vec::new();
    for (i, e) in [0.001, 90.0, 0.002, 80.0, 0.003, 70.0]
        .into_iter()
        .enumerate()
    {
        let mut q = ask(&["county"], e);
        q.filter = vec![(
            "party".into(),
            vec![["DEM", "REP", "UNA", "LIB", "GRE", "CST"][i].into()],
        )];
        let started = Instant::now();
        s.answer(&t, who("alice", 500.0), &q).unwrap();
        times.push(started.elapsed());
    }
    // The first answer also calibrated its class; the rest are the deadline
    // plus a commit.
    for t in &times[1..] {
        assert!(*t >= quantum, "{times:?}");
        assert!(*t < quantum * 2 + Duration::from_millis(30), "{times:?}");
    }
}
