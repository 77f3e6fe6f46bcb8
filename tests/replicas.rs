//! Several real `rollcall serve` replicas on one real PostgreSQL ledger (a
//! throwaway cluster per test, or one shared database each): the budget
//! stays exact across replicas, under SIGKILLs and a database restart, and a
//! ledger moves from SQLite without losing a spend.
//!
//! PostgreSQL must be installed (`.ci/run` installs Debian's package); these
//! tests fail, they do not skip, without it. Sizes come from the
//! environment so `scripts/replica-test` can run bigger versions:
//! `REPLICA_RACE_QUERIES` (default 3000), `REPLICA_RACE_CLIENTS` (12),
//! `REPLICA_FAULT_REQUESTS` (1500), `REPLICA_FAULT_KILLS` (4),
//! `REPLICA_FAULT_CLIENTS` (12); `REPLICA_FAULT_INJECT_OVERSPEND=1` plants an
//! overspend in the ledger before it is checked, to show the check fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::http;
use testkit::postgres::*;
use testkit::*;

/// ε asked by every query of the race and fault tests: all cost the same, so
/// a cap allows a known number of them.
const ASKED: f64 = 0.01;

/// A small deterministic mixer, so request `i` is the same every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const GROUPS: [&[&str]; 6] = [
    &[],
    &["party"],
    &["gender"],
    &["age_band"],
    &["status"],
    &["race"],
];
const PARTIES: [&[&str]; 5] = [
    &["DEM"],
    &["REP"],
    &["UNA"],
    &["DEM", "REP"],
    &["LIB", "GRE"],
];

/// Status filters of the third round of queries (the first has none).
const STATUSES: [&[&str]; 2] = [&["A"], &["I", "S"]];

/// Query `i`: distinct for every `i` below `counties × 90` (9,000 for NC's
/// 100 counties), all at ε [`ASKED`].
fn distinct_query(i: usize, counties: &[String]) -> Value {
    let n = counties.len();
    let per_round = n * GROUPS.len() * PARTIES.len();
    assert!(i < per_round * 3, "only {} distinct queries", per_round * 3);
    let mut filter = json!({
        "county": [counties[i % n]],
        "party": PARTIES[(i / (n * GROUPS.len())) % PARTIES.len()],
    });
    if i >= per_round {
        filter["status"] = json!(STATUSES[i / per_round - 1]);
    }
    json!({
        "dataset": "nc",
        "group_by": GROUPS[(i / n) % GROUPS.len()],
        "filter": filter,
        "epsilon": ASKED,
    })
}

/// Budget (as the config writes it) of `queries` queries at [`ASKED`].
fn budget_for(queries: i64) -> f64 {
    (queries * charge_nanos(ASKED)) as f64 / 1e9
}

/// What one request got.
#[derive(Debug, Clone)]
enum Got {
    /// 200: the release id, ε spent (nano, 0 when cached), cached.
    Answered {
        release_id: String,
        spent: i64,
        cached: bool,
    },
    /// An error answer: status and code.
    Refused(u16, String),
    /// No answer: connection refused or reset, timeout.
    Lost,
}

fn send(base: &str, token: &str, body: &Value) -> Got {
    let req = http::Request::new("POST", "/v1/query")
        .bearer(token)
        .json(&body.to_string());
    match http::send(base, &req, Duration::from_secs(60)) {
        Err(_) => Got::Lost,
        Ok(r) if r.status == 200 => {
            let text = r.text();
            let b: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("200 without JSON ({e}): {text}"));
            Got::Answered {
                release_id: b["release_id"].as_str().unwrap().to_owned(),
                spent: privacy::Epsilon::from_decimal_f64(b["epsilon_spent"].as_f64().unwrap())
                    .unwrap()
                    .nanos() as i64,
                cached: b["cached"].as_bool().unwrap(),
            }
        }
        Ok(r) => {
            let b: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            Got::Refused(
                r.status,
                b["error"]["code"]
                    .as_str()
                    .unwrap_or("<no code>")
                    .to_owned(),
            )
        }
    }
}

fn counties(server: &Server, token: &str) -> Vec<String> {
    domains(server, token)["county"].clone()
}

/// Ten analysts with budgets for 60 to 130 queries, and a dataset cap of
/// exactly their sum, 1,000.
fn race_analysts() -> (Vec<TestAnalyst>, [i64; 10], DatasetSettings) {
    let allowed = [60, 70, 80, 90, 100, 110, 120, 110, 130, 130];
    let names = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"];
    let analysts = names
        .iter()
        .zip(allowed)
        .map(|(name, n)| TestAnalyst::nc(name, budget_for(n)))
        .collect();
    let settings = DatasetSettings {
        epsilon_total: budget_for(allowed.iter().sum()),
        max_epsilon_per_query: 1.0,
    };
    (analysts, allowed, settings)
}

/// The race: 3 replicas, thousands of concurrent distinct queries spread
/// across them from several client threads, against caps that allow exactly
/// 1,000: exactly that many answered (each analyst exactly their share),
/// every other `budget_exhausted`, and the ledger holds exactly those spends.
/// Requests come in threes, one analyst's to the three replicas at once, so
/// each analyst's last affordable query is raced for by all three.
#[test]
fn three_replicas_racing_spend_exactly_the_caps() {
    let queries = env_usize("REPLICA_RACE_QUERIES", 3000);
    let clients = env_usize("REPLICA_RACE_CLIENTS", 12);
    let cluster = shared_cluster();
    let db = cluster.fresh_database("race");
    let dir = tempfile::tempdir().unwrap();
    let (analysts, allowed, settings) = race_analysts();
    let config = postgres_config(dir.path(), cluster, &db, &settings, &analysts, "");
    let replicas: Vec<Server> = (0..3).map(|_| start_replica(&config)).collect();
    let counties = counties(&replicas[0], &analysts[0].token);
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();

    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, results, urls, analysts, counties) = (
                next.clone(),
                results.clone(),
                urls.clone(),
                analysts.clone(),
                counties.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= queries {
                        break;
                    }
                    let who = (i / 3) % analysts.len();
                    let got = send(
                        &urls[i % urls.len()],
                        &analysts[who].token,
                        &distinct_query(i, &counties),
                    );
                    results.lock().unwrap().push((who, got));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client thread panicked");
    }
    let wall = started.elapsed();
    let results = std::mem::take(&mut *results.lock().unwrap());
    let mut answered = [0i64; 10];
    let mut refused = BTreeMap::new();
    for (who, got) in &results {
        match got {
            Got::Answered { cached: false, .. } => answered[*who] += 1,
            Got::Answered { cached: true, .. } => panic!("a distinct query came back cached"),
            Got::Refused(status, code) => {
                *refused.entry(format!("{status} {code}")).or_insert(0) += 1
            }
            Got::Lost => panic!("a request got no answer"),
        }
    }
    let total: i64 = answered.iter().sum();
    // What each analyst can be answered: their budget's worth, or all they
    // asked when a small run (REPLICA_RACE_QUERIES) asks less.
    let mut asked = [0i64; 10];
    for i in 0..queries {
        asked[(i / 3) % 10] += 1;
    }
    let expected: Vec<i64> = allowed
        .iter()
        .zip(asked)
        .map(|(a, n)| (*a).min(n))
        .collect();
    let expected_total: i64 = expected.iter().sum();
    assert!(
        queries < 3000 || expected_total == 1000,
        "3,000 queries exhaust every budget"
    );
    eprintln!(
        "race: {queries} distinct queries from {clients} clients on 3 replicas in {:.1}s: \
         {total} answered {answered:?}, refused {refused:?}",
        wall.as_secs_f64()
    );
    assert_eq!(
        answered.to_vec(),
        expected,
        "each analyst gets exactly their budget's worth"
    );
    assert_eq!(
        refused,
        BTreeMap::from([(
            "403 budget_exhausted".to_owned(),
            queries - expected_total as usize
        )])
    );
    let facts = ledger_facts(cluster, &db);
    let c = charge_nanos(ASKED);
    for (k, a) in analysts.iter().enumerate() {
        assert_eq!(
            facts.per_analyst.get(a.name),
            Some(&(expected[k] * c)),
            "{}",
            a.name
        );
    }
    assert_eq!(facts.total, expected_total * c, "the caps, spent exactly");
    assert_eq!(
        (facts.releases, facts.spends),
        (expected_total, expected_total)
    );
    assert_eq!(
        (facts.orphans, facts.drift, facts.duplicate_keys),
        (0, 0, 0)
    );
}

/// The same new query sent to all three replicas at the same moment, again
/// and again: each time one release and one spend; the other replicas return
/// that release, free. And a query released by one replica is free on the
/// others afterwards.
#[test]
fn the_same_query_on_three_replicas_is_released_once() {
    let cluster = shared_cluster();
    let db = cluster.fresh_database("same");
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 100.0);
    let config = postgres_config(
        dir.path(),
        cluster,
        &db,
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    );
    let replicas: Arc<Vec<Server>> = Arc::new((0..3).map(|_| start_replica(&config)).collect());
    let rounds = 20;
    let c = charge_nanos(ASKED);
    let counties = counties(&replicas[0], &alice.token);
    for round in 0..rounds {
        let query = distinct_query(round, &counties);
        let start = Arc::new(Barrier::new(3));
        let handles: Vec<_> = (0..3)
            .map(|k| {
                let (replicas, start, query, token) = (
                    replicas.clone(),
                    start.clone(),
                    query.clone(),
                    alice.token.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    send(&replicas[k].url, &token, &query)
                })
            })
            .collect();
        let got: Vec<Got> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut fresh = 0;
        let mut ids = Vec::new();
        for g in &got {
            let Got::Answered {
                release_id,
                spent,
                cached,
            } = g
            else {
                panic!("round {round}: {g:?}")
            };
            if *cached {
                assert_eq!(*spent, 0, "round {round}: a cached answer cost ε");
            } else {
                assert_eq!(*spent, c);
                fresh += 1;
            }
            ids.push(release_id.clone());
        }
        assert_eq!(fresh, 1, "round {round}: {got:?}");
        assert!(ids.iter().all(|id| id == &ids[0]), "round {round}: {ids:?}");
    }
    // Released by one replica, free on another.
    let query = distinct_query(rounds, &counties);
    let first = send(&replicas[0].url, &alice.token, &query);
    let later = send(&replicas[2].url, &alice.token, &query);
    match (first, later) {
        (
            Got::Answered {
                release_id: a,
                cached: false,
                ..
            },
            Got::Answered {
                release_id: b,
                cached: true,
                spent: 0,
            },
        ) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }
    let facts = ledger_facts(cluster, &db);
    let n = rounds as i64 + 1;
    assert_eq!((facts.releases, facts.spends, facts.total), (n, n, n * c));
    assert_eq!(
        (facts.orphans, facts.drift, facts.duplicate_keys),
        (0, 0, 0)
    );
    let b = replicas[1].get("/v1/budget", &alice.token);
    let spent = b.body["datasets"][0]["spent"].as_f64().unwrap();
    assert_eq!(
        privacy::Epsilon::from_decimal_f64(spent).unwrap().nanos() as i64,
        n * c
    );
}

#[derive(Debug, Default)]
struct FaultReport {
    sent: usize,
    answered: usize,
    refused: BTreeMap<String, usize>,
    lost: usize,
    replica_kills: usize,
    database_restarts: usize,
    overspend: usize,
    missing_releases: usize,
}

/// Writes a release and a spend that take analyst `who` one nano-ε past
/// `budget`, as a broken ledger would (`REPLICA_FAULT_INJECT_OVERSPEND`).
fn inject_overspend(cluster: &Cluster, db: &str, who: &str, budget: i64) {
    let mut c = cluster.client(db).unwrap();
    let spent: i64 = c
        .query_one(
            "SELECT COALESCE(SUM(epsilon_nanos), 0)::BIGINT FROM spends WHERE analyst = $1",
            &[&who],
        )
        .unwrap()
        .get(0);
    let extra = (budget - spent + 1).max(1);
    c.execute(
        "INSERT INTO releases (release_id, analyst, dataset, population, query_key, query_json, \
         rows_json, epsilon_nanos, mechanism, noise_scale, ci95, created_at) \
         VALUES ('injected', $1, 'nc', 'nc', 'injected', '{}', '[]', $2, 'm', 1, 1, 'x')",
        &[&who, &extra],
    )
    .unwrap();
    c.execute(
        "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, created_at) \
         VALUES ($1, 'nc', 'nc', $2, 'injected', 'x')",
        &[&who, &extra],
    )
    .unwrap();
    eprintln!("REPLICA_FAULT_INJECT_OVERSPEND: added {extra} nano-ε to {who}");
}

/// Distinct queries from several clients to 3 replicas while replicas are
/// SIGKILLed at random and restarted, and PostgreSQL is stopped (as by a
/// crash) and started once mid-load; then the ledger is checked exactly.
fn fault_run(requests: usize, kills: usize, clients: usize) -> FaultReport {
    let cluster = Arc::new(Cluster::start());
    cluster.create_database("faults");
    let dir = tempfile::tempdir().unwrap();
    // Each analyst may answer 40% of their requests, the dataset 90% of
    // that: budgets run out during the run, both kinds.
    let per_analyst = (requests / 3) as i64 * 2 / 5;
    let analysts: Vec<TestAnalyst> = ["f0", "f1", "f2"]
        .iter()
        .map(|n| TestAnalyst::nc(n, budget_for(per_analyst)))
        .collect();
    let dataset_queries = per_analyst * 3 * 9 / 10;
    let settings = DatasetSettings {
        epsilon_total: budget_for(dataset_queries),
        max_epsilon_per_query: 1.0,
    };
    let config = postgres_config(dir.path(), &cluster, "faults", &settings, &analysts, "");
    let replicas: Arc<Mutex<Vec<Option<Server>>>> = Arc::new(Mutex::new(
        (0..3).map(|_| Some(start_replica(&config))).collect(),
    ));
    let counties = {
        let r = replicas.lock().unwrap();
        counties(r[0].as_ref().unwrap(), &analysts[0].token)
    };
    let urls = Arc::new(RwLock::new(
        replicas
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.as_ref().unwrap().url.clone())
            .collect::<Vec<_>>(),
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(usize, Got)>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, results, urls, analysts, counties) = (
                next.clone(),
                results.clone(),
                urls.clone(),
                analysts.clone(),
                counties.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests {
                        break;
                    }
                    let who = i % analysts.len();
                    let base = urls.read().unwrap()[(mix(i as u64) % 3) as usize].clone();
                    let got = send(&base, &analysts[who].token, &distinct_query(i, &counties));
                    if let Got::Refused(status, code) = &got {
                        assert!(
                            *status != 500 && (*status < 500 || code == "ledger_unavailable"),
                            "request {i}: {status} {code} (only ledger_unavailable may be a 5xx)"
                        );
                    }
                    if matches!(got, Got::Lost | Got::Refused(503, _)) {
                        // Down: do not burn the whole load on it.
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    results.lock().unwrap().push((who, got));
                }
            })
        })
        .collect();

    // The chaos: replica kills at evenly spaced points of the load (which
    // replica by a seeded draw), and one database restart halfway.
    let mut report = FaultReport::default();
    let mut restarted_db = false;
    for k in 1..=kills {
        let at = requests * k / (kills + 1);
        while next.load(Ordering::SeqCst) < at {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !restarted_db && k > kills / 2 {
            cluster.stop();
            std::thread::sleep(Duration::from_millis(1500));
            cluster.start_again();
            report.database_restarts += 1;
            restarted_db = true;
        }
        let victim = (mix(k as u64 ^ 0x5EED) % 3) as usize;
        let old = replicas.lock().unwrap()[victim].take().unwrap();
        old.kill();
        report.replica_kills += 1;
        std::thread::sleep(Duration::from_millis(150));
        let fresh = start_replica(&config);
        urls.write().unwrap()[victim] = fresh.url.clone();
        replicas.lock().unwrap()[victim] = Some(fresh);
    }
    for w in workers {
        w.join().expect("a client thread panicked");
    }
    // The checks read what is in the database, not a clean shutdown.
    for r in replicas.lock().unwrap().iter_mut() {
        if let Some(s) = r.take() {
            s.kill();
        }
    }
    if std::env::var("REPLICA_FAULT_INJECT_OVERSPEND").is_ok_and(|v| v == "1") {
        inject_overspend(
            &cluster,
            "faults",
            analysts[0].name,
            per_analyst * charge_nanos(ASKED),
        );
    }

    let c = charge_nanos(ASKED);
    let facts = ledger_facts(&cluster, "faults");
    assert_eq!(
        facts.orphans, 0,
        "spends and releases must match one to one"
    );
    assert_eq!(
        facts.drift, 0,
        "running totals must equal the sums of spends"
    );
    assert_eq!(facts.duplicate_keys, 0, "a query released twice");
    for a in &analysts {
        let spent = facts.per_analyst.get(a.name).copied().unwrap_or(0);
        if spent > per_analyst * c {
            eprintln!(
                "OVERSPEND: analyst {} spent {spent} of {} nano-ε",
                a.name,
                per_analyst * c
            );
            report.overspend += 1;
        }
    }
    if facts.total > dataset_queries * c {
        eprintln!(
            "OVERSPEND: population spent {} of {} nano-ε",
            facts.total,
            dataset_queries * c
        );
        report.overspend += 1;
    }
    let results = std::mem::take(&mut *results.lock().unwrap());
    report.sent = results.len();
    for (who, got) in &results {
        match got {
            Got::Answered {
                release_id, spent, ..
            } => {
                report.answered += 1;
                match facts.by_id.get(release_id) {
                    None => {
                        eprintln!("release {release_id} was answered but is not in the ledger");
                        report.missing_releases += 1;
                    }
                    Some((eps, analyst)) if *spent > 0 => assert!(
                        *eps == *spent && analyst == analysts[*who].name,
                        "shown {spent} nano-ε to {}, ledger has {eps} by {analyst}",
                        analysts[*who].name
                    ),
                    Some(_) => {}
                }
            }
            Got::Refused(status, code) => {
                *report
                    .refused
                    .entry(format!("{status} {code}"))
                    .or_default() += 1
            }
            Got::Lost => report.lost += 1,
        }
    }
    eprintln!(
        "replica fault test: {} requests sent by {clients} clients to 3 replicas, {} answered, \
         {} refused {:?}, {} lost (connection errors); {} replica kills, {} database restarts; \
         {} overspend, {} answered releases missing from the ledger; ledger spent {} of \
         population cap {} nano-ε",
        report.sent,
        report.answered,
        report.refused.values().sum::<usize>(),
        report.refused,
        report.lost,
        report.replica_kills,
        report.database_restarts,
        report.overspend,
        report.missing_releases,
        facts.total,
        dataset_queries * c,
    );
    report
}

#[test]
fn replicas_killed_and_a_database_restart_never_overspend() {
    let requests = env_usize("REPLICA_FAULT_REQUESTS", 1500);
    let kills = env_usize("REPLICA_FAULT_KILLS", 4);
    let clients = env_usize("REPLICA_FAULT_CLIENTS", 12);
    let r = fault_run(requests, kills, clients);
    assert_eq!(r.sent, requests);
    assert_eq!((r.replica_kills, r.database_restarts), (kills, 1));
    assert_eq!(r.overspend, 0, "budget overspent");
    assert_eq!(
        r.missing_releases, 0,
        "an answer was sent whose release is not in the ledger"
    );
    assert!(
        r.answered > requests / 5,
        "too few answers ({}) for the test to mean anything",
        r.answered
    );
    assert!(
        r.refused.contains_key("403 budget_exhausted"),
        "the budgets should run out during the run: {:?}",
        r.refused
    );
    for code in r.refused.keys() {
        assert!(
            code == "403 budget_exhausted" || code == "503 ledger_unavailable",
            "unexpected refusal {code}"
        );
    }
}

/// PostgreSQL stopped: a new query is answered 503 `ledger_unavailable`
/// and nothing is released; `/healthz` says so with 503; once the database
/// is back the same server answers again by itself, and the query that
/// failed is a fresh release (the failure recorded nothing). A wrong
/// password stops start-up with a message naming the key.
#[test]
fn a_database_outage_is_503_and_the_server_recovers_by_itself() {
    let cluster = Cluster::start();
    cluster.create_database("outage");
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 100.0);
    let config = postgres_config(
        dir.path(),
        &cluster,
        "outage",
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    );
    let server = start_replica(&config);
    let health = server.send("GET", "/healthz", None, None);
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(
        health.body,
        json!({"status": "ok", "ledger": {"backend": "postgres", "state": "ok"}})
    );
    let q1 = json!({"dataset": "nc", "group_by": ["party"], "epsilon": 0.5});
    let q2 = json!({"dataset": "nc", "group_by": ["gender"], "epsilon": 0.5});
    assert_eq!(server.query(&alice.token, &q1).status, 200);

    cluster.stop();
    let down = server.query(&alice.token, &q2);
    assert_eq!(
        (down.status, down.code()),
        (503, "ledger_unavailable"),
        "{}",
        down.text
    );
    assert!(down.body.get("rows").is_none());
    let health = server.send("GET", "/healthz", None, None);
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.body["status"], "ledger_unavailable");
    assert_eq!(health.body["ledger"]["state"], "unavailable");
    let budget = server.get("/v1/budget", &alice.token);
    assert_eq!((budget.status, budget.code()), (503, "ledger_unavailable"));

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.send("GET", "/healthz", None, None).status != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    let up = server.query(&alice.token, &q2);
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!(up.body["cached"], false, "the failed query was recorded");
    let again = server.query(&alice.token, &q1);
    assert_eq!(again.body["cached"], true);
    let log = server.log();
    assert!(log.contains("ledger_unavailable"), "the failure is logged");
    assert!(!log.contains(cluster.password()), "a password in the log");
    let facts = ledger_facts(&cluster, "outage");
    assert_eq!((facts.releases, facts.spends), (2, 2));

    // A wrong password: start-up stops, naming the key, showing no password.
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        cluster.password_file().to_str().unwrap(),
        wrong.to_str().unwrap(),
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let err = try_start(&bad, &[])
        .err()
        .expect("started with a wrong password");
    assert!(err.contains("server.ledger"), "{err}");
    assert!(!err.contains("not-it"), "{err}");
}

/// A server's SQLite ledger moved to PostgreSQL: `rollcall ledger migrate`
/// prepares the database, `rollcall ledger copy` moves every release and
/// spend (and refuses to copy twice), `rollcall budget` and `audit` read the
/// same figures from both, and a replica on the copy serves the old
/// releases free and keeps counting from the same spends.
#[test]
fn a_sqlite_ledger_moves_to_postgres_without_losing_a_spend() {
    let cluster = shared_cluster();
    let db = cluster.fresh_database("moved");
    let old_dir = tempfile::tempdir().unwrap();
    let new_dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 1.25);
    let settings = DatasetSettings::default();
    let old = write_config(old_dir.path(), &settings, std::slice::from_ref(&alice), "");
    let new = postgres_config(
        new_dir.path(),
        cluster,
        &db,
        &settings,
        std::slice::from_ref(&alice),
        "",
    );
    let queries: Vec<Value> = ["party", "gender", "race"]
        .iter()
        .map(|g| json!({"dataset": "nc", "group_by": [g], "epsilon": 0.4}))
        .collect();
    let mut ids = Vec::new();
    {
        let server = start(&old);
        for q in &queries {
            let a = server.query(&alice.token, q);
            assert_eq!(a.status, 200, "{}", a.text);
            ids.push(a.body["release_id"].as_str().unwrap().to_owned());
        }
        let refused = server.query(
            &alice.token,
            &json!({"dataset": "nc", "group_by": ["status"], "epsilon": 0.4}),
        );
        assert_eq!(refused.code(), "budget_exhausted");
        server.kill();
    }
    let run = |args: &[&str]| run(args);
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let new_s = new.to_str().unwrap();
    let out = run(&["ledger", "migrate", "--config", new_s]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("applied migration(s) 3"),
        "{}",
        text(&out)
    );
    let out = run(&["ledger", "migrate", "--config", new_s]);
    assert!(
        text(&out).contains("already at schema version 3"),
        "{}",
        text(&out)
    );

    let sqlite = old_dir.path().join("ledger.sqlite");
    let (url, password_file) = (cluster.url(&db), cluster.password_file());
    let copy = [
        "ledger",
        "copy",
        "--from",
        sqlite.to_str().unwrap(),
        "--to",
        &url,
        "--to-password-file",
        password_file.to_str().unwrap(),
    ];
    let out = run(&copy);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("copied 3 releases and 3 spends"),
        "{}",
        text(&out)
    );
    let out = run(&copy);
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));

    for args in [
        vec!["budget", "--format", "json"],
        vec!["audit", "--format", "json", "--with-rows"],
    ] {
        let on = |config: &std::path::Path| {
            let mut a = args.clone();
            a.extend(["--config", config.to_str().unwrap()]);
            let out = run(&a);
            assert!(out.status.success(), "{a:?}: {}", text(&out));
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(on(&old), on(&new), "{args:?} differs between the backends");
    }

    let replica = start_replica(&new);
    for (q, id) in queries.iter().zip(&ids) {
        let a = replica.query(&alice.token, q);
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            (a.body["cached"].as_bool(), a.body["release_id"].as_str()),
            (Some(true), Some(id.as_str()))
        );
    }
    let refused = replica.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["status"], "epsilon": 0.4}),
    );
    assert_eq!(
        refused.code(),
        "budget_exhausted",
        "the copy forgot a spend"
    );
}
