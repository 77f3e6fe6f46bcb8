//! Faults: the real `rollcall serve` killed with SIGKILL under load, and the
//! real `rollcall ingest` killed mid-file or running out of disk.
//!
//! The crash test's size comes from the environment so `scripts/crash-test`
//! can run a bigger version of the same code: `CRASH_REQUESTS` (default
//! 1000), `CRASH_KILLS` (3), `CRASH_CLIENTS` (12). `CRASH_INJECT_OVERSPEND=1`
//! adds an overspending spend to the ledger before it is checked, to show
//! that the check (and `scripts/crash-test`, which runs it) fails then.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use privacy::Epsilon;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use testkit::*;

/// A small deterministic mixer, so request `i` is the same query every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The ε of request `i`: unique to it.
fn crash_epsilon(i: usize) -> f64 {
    0.005 + i as f64 * 1e-6
}

/// Request number `i`: distinct for every `i` (its ε is unique).
fn crash_query(i: usize) -> Value {
    let r = mix(i as u64);
    let group_by: &[&str] = match r % 4 {
        0 => &["county"],
        1 => &["age_band", "gender"],
        2 => &["party", "race"],
        _ => &[],
    };
    let epsilon = crash_epsilon(i);
    match (r >> 8) % 3 {
        0 => json!({"dataset": "nc", "group_by": group_by, "epsilon": epsilon}),
        1 => json!({"dataset": "nc", "group_by": group_by,
                    "filter": {"status": ["A"]}, "epsilon": epsilon}),
        _ => json!({"dataset": "nc", "group_by": group_by,
                    "filter": {"party": ["DEM", "UNA"]}, "epsilon": epsilon}),
    }
}

/// What one request got.
#[derive(Debug)]
enum Got {
    /// 200: the release id and ε spent the client was shown.
    Answered { release_id: String, spent: f64 },
    /// An error answer, by code.
    Refused(String),
    /// No answer: connection refused or reset, timeout.
    Lost,
}

#[derive(Debug, Default)]
struct CrashReport {
    sent: usize,
    answered: usize,
    refused: BTreeMap<String, usize>,
    lost: usize,
    kills: usize,
    overspend: usize,
    missing_releases: usize,
    wall: Duration,
}

/// Sends `requests` distinct queries from `clients` threads while the server
/// is SIGKILLed `kills` times and restarted; then checks the ledger.
fn crash_run(requests: usize, kills: usize, clients: usize) -> CrashReport {
    let dir = tempfile::tempdir().unwrap();
    // Demand: the sum of the ε of all requests. Each of the 4 analysts may
    // spend a fifth of it and the dataset 70%: budgets run out during the
    // run, so refusals are exercised across crashes too.
    let demand: f64 = (0..requests).map(crash_epsilon).sum();
    let analyst_budget = demand * 0.2;
    let analysts: Vec<TestAnalyst> = ["a0", "a1", "a2", "a3"]
        .iter()
        .map(|n| TestAnalyst::nc(n, analyst_budget))
        .collect();
    let dataset_total = demand * 0.7;
    let settings = DatasetSettings {
        epsilon_total: dataset_total,
        max_epsilon_per_query: 1.0,
    };
    let config = write_config(dir.path(), &settings, &analysts, "");
    let ledger_path = dir.path().join("ledger.sqlite");

    let server = Arc::new(Mutex::new(Some(start(&config))));
    let url = Arc::new(RwLock::new(
        server.lock().unwrap().as_ref().unwrap().url.clone(),
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(usize, usize, Got)>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();

    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (url, next, results, analysts) =
                (url.clone(), next.clone(), results.clone(), analysts.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests {
                        break;
                    }
                    let who = (mix(i as u64 ^ 0xA5A5) % analysts.len() as u64) as usize;
                    let base = url.read().unwrap().clone();
                    let req = testkit::http::Request::new("POST", "/v1/query")
                        .bearer(&analysts[who].token)
                        .json(&crash_query(i).to_string());
                    let got = match testkit::http::send(&base, &req, Duration::from_secs(30))
                        .map(|r| (r.status, r.text()))
                    {
                        Err(_) => Got::Lost,
                        Ok((200, text)) => {
                            let body: Value = serde_json::from_str(&text)
                                .unwrap_or_else(|e| panic!("200 without JSON ({e}): {text}"));
                            Got::Answered {
                                release_id: body["release_id"].as_str().unwrap().to_owned(),
                                spent: body["epsilon_spent"].as_f64().unwrap(),
                            }
                        }
                        Ok((status, text)) => {
                            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            let code = body["error"]["code"].as_str().unwrap_or("<no code>");
                            assert!(
                                status < 500,
                                "request {i}: {status} {text} (a crash must not yield a 5xx)"
                            );
                            Got::Refused(format!("{status} {code}"))
                        }
                    };
                    if matches!(got, Got::Lost) {
                        // The server is down: do not burn the whole load on it.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    results.lock().unwrap().push((i, who, got));
                }
            })
        })
        .collect();

    // The killer: at evenly spaced points of the load, SIGKILL and restart.
    let mut kills_done = 0;
    for k in 1..=kills {
        let at = requests * k / (kills + 1);
        while next.load(Ordering::SeqCst) < at {
            std::thread::sleep(Duration::from_millis(5));
        }
        let old = server.lock().unwrap().take().unwrap();
        old.kill();
        kills_done += 1;
        // Let clients hit the dead port for a moment.
        std::thread::sleep(Duration::from_millis(150));
        let fresh = start(&config);
        *url.write().unwrap() = fresh.url.clone();
        *server.lock().unwrap() = Some(fresh);
    }
    for w in workers {
        w.join().expect("a client thread panicked");
    }
    let wall = started.elapsed();
    // One last kill: the checks below read what is on disk, not a clean shutdown.
    if let Some(s) = server.lock().unwrap().take() {
        s.kill();
    }

    let results = std::mem::take(&mut *results.lock().unwrap());
    let mut report = CrashReport {
        sent: results.len(),
        kills: kills_done,
        wall,
        ..CrashReport::default()
    };

    if std::env::var("CRASH_INJECT_OVERSPEND").is_ok_and(|v| v == "1") {
        inject_overspend(&ledger_path, analysts[0].name, analyst_budget);
    }
    let ledger = Connection::open_with_flags(
        &ledger_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let integrity: String = ledger
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "ledger integrity after {kills_done} kills");
    // Exact: whole nano-ε against the caps as the server read them.
    let nanos = |v: f64| Epsilon::from_decimal_f64(v).unwrap().nanos() as i64;
    let mut stmt = ledger
        .prepare(
            "SELECT analyst, dataset, SUM(epsilon_nanos) FROM spends GROUP BY analyst, dataset",
        )
        .unwrap();
    let spends: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut dataset_spent = 0i64;
    for (analyst, dataset, spent) in &spends {
        assert_eq!(dataset, "nc");
        dataset_spent += spent;
        if *spent > nanos(analyst_budget) {
            eprintln!("OVERSPEND: analyst {analyst} spent {spent} nano-ε of {analyst_budget}");
            report.overspend += 1;
        }
    }
    if dataset_spent > nanos(dataset_total) {
        eprintln!("OVERSPEND: dataset spent {dataset_spent} nano-ε of {dataset_total}");
        report.overspend += 1;
    }
    // Every spend row points at a release, every release has one spend.
    let orphans: i64 = ledger
        .query_row(
            "SELECT (SELECT COUNT(*) FROM spends WHERE release_id NOT IN (SELECT release_id FROM releases))
                  + (SELECT COUNT(*) FROM releases WHERE release_id NOT IN (SELECT release_id FROM spends))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "spends and releases must match one to one");
    // The running totals the budget checks read agree with the spends.
    for (totals, keys) in [
        ("analyst_totals", "dataset, analyst"),
        ("dataset_totals", "dataset"),
        ("population_totals", "population, dataset"),
    ] {
        let drift: i64 = ledger
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM (SELECT {keys}, SUM(epsilon_nanos) AS e \
                     FROM spends GROUP BY {keys}) s \
                     FULL JOIN {totals} t USING ({keys}) \
                     WHERE t.epsilon_nanos IS NOT s.e"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(drift, 0, "{totals} must equal the sums of spends");
    }
    let dataset_spent = dataset_spent as f64 / 1e9;

    let mut find = ledger
        .prepare("SELECT epsilon_nanos, analyst FROM releases WHERE release_id = ?1")
        .unwrap();
    for (i, who, got) in &results {
        match got {
            Got::Answered { release_id, spent } => {
                report.answered += 1;
                let stored: Option<(i64, String)> = find
                    .query_row([release_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .ok();
                match stored {
                    None => {
                        eprintln!(
                            "request {i}: release {release_id} was answered but is not in the ledger"
                        );
                        report.missing_releases += 1;
                    }
                    Some((eps, analyst)) => {
                        if *spent > 0.0 {
                            assert!(
                                eps == nanos(*spent) && analyst == analysts[*who].name,
                                "request {i}: shown ε {spent} by {}, ledger has {eps} nano-ε by {analyst}",
                                analysts[*who].name
                            );
                        }
                    }
                }
            }
            Got::Refused(code) => *report.refused.entry(code.clone()).or_default() += 1,
            Got::Lost => report.lost += 1,
        }
    }
    eprintln!(
        "crash test: {} requests sent by {clients} clients, {} answered, {} refused {:?}, \
         {} lost (connection errors), {} kills, {} overspend, {} answered releases missing \
         from the ledger; ledger spent {dataset_spent:.4} of dataset cap {dataset_total:.4}; \
         {:.1}s",
        report.sent,
        report.answered,
        report.refused.values().sum::<usize>(),
        report.refused,
        report.lost,
        report.kills,
        report.overspend,
        report.missing_releases,
        report.wall.as_secs_f64(),
    );
    report
}

/// Writes a release and a spend that take `analyst` one nano-ε past
/// `budget`, as a broken ledger would, for `CRASH_INJECT_OVERSPEND`.
fn inject_overspend(ledger: &Path, analyst: &str, budget: f64) {
    let conn = Connection::open(ledger).unwrap();
    let spent: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(epsilon_nanos), 0) FROM spends WHERE analyst = ?1",
            [analyst],
            |r| r.get(0),
        )
        .unwrap();
    let extra = Epsilon::from_decimal_f64(budget).unwrap().nanos() as i64 - spent + 1;
    conn.execute(
        "INSERT INTO releases (release_id, analyst, dataset, population, query_key, query_json, \
         rows_json, epsilon_nanos, mechanism, noise_scale, ci95, created_at) \
         VALUES ('injected', ?1, 'nc', 'nc', 'injected', '{}', '[]', ?2, 'm', 1, 1, 'x')",
        rusqlite::params![analyst, extra.max(1)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO spends (analyst, dataset, population, epsilon_nanos, release_id, created_at) \
         VALUES (?1, 'nc', 'nc', ?2, 'injected', 'x')",
        rusqlite::params![analyst, extra.max(1)],
    )
    .unwrap();
    eprintln!(
        "CRASH_INJECT_OVERSPEND: added {} nano-ε to {analyst}",
        extra.max(1)
    );
}

#[test]
fn sigkill_under_load_never_overspends_or_loses_a_release() {
    let requests = env_usize("CRASH_REQUESTS", 1000);
    let kills = env_usize("CRASH_KILLS", 3);
    let clients = env_usize("CRASH_CLIENTS", 12);
    let r = crash_run(requests, kills, clients);
    assert_eq!(r.sent, requests);
    assert_eq!(r.kills, kills);
    assert_eq!(r.overspend, 0, "budget overspent after crashes");
    assert_eq!(
        r.missing_releases, 0,
        "an answer was sent whose release is not in the ledger"
    );
    assert!(
        r.answered > requests / 4,
        "too few answers ({}) for the test to mean anything",
        r.answered
    );
    assert!(
        r.refused.keys().any(|k| k.ends_with("budget_exhausted")),
        "the budgets should run out during the run: {:?}",
        r.refused
    );
    for code in r.refused.keys() {
        assert!(
            code.ends_with("budget_exhausted"),
            "unexpected refusal {code}"
        );
    }
}

// ----- ingest interrupted -------------------------------------------------

/// A data folder with version 1 of `nc` ingested, its manifest and rows.
struct Versioned {
    _root: tempfile::TempDir,
    root: PathBuf,
    data_dir: PathBuf,
    manifest: String,
    rows: std::collections::HashMap<Vec<Option<String>>, u64>,
}

fn ingest_args(data_dir: &Path, file: &Path) -> Vec<String> {
    vec![
        "ingest".into(),
        "--layout".into(),
        "nc".into(),
        "--dataset".into(),
        "nc".into(),
        "--data-dir".into(),
        data_dir.to_str().unwrap().into(),
        file.to_str().unwrap().into(),
        "--quiet".into(),
    ]
}

fn version_one() -> Versioned {
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path().to_owned();
    let data_dir = root.join("data");
    let v1 = root.join("v1.txt");
    synth("nc", 5_000, 1, false, &v1);
    ingest_nc(&data_dir, &v1);
    let manifest = std::fs::read_to_string(data_dir.join("nc/manifest.json")).unwrap();
    let rows = read_rows(&data_dir.join("nc"));
    Versioned {
        _root: root_dir,
        root,
        data_dir,
        manifest,
        rows,
    }
}

fn read_rows(dir: &Path) -> std::collections::HashMap<Vec<Option<String>>, u64> {
    multiset(read_dataset(dir).1)
}

impl Versioned {
    /// The previous version is still there, whole and readable, and no
    /// half-written dataset is visible under its name.
    fn assert_intact(&self, after: &str) {
        let manifest = std::fs::read_to_string(self.data_dir.join("nc/manifest.json")).unwrap();
        assert_eq!(manifest, self.manifest, "manifest changed after {after}");
        assert_eq!(
            read_rows(&self.data_dir.join("nc")),
            self.rows,
            "rows changed after {after}"
        );
        let names: Vec<String> = std::fs::read_dir(self.data_dir.join("nc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains("spill") || n.contains("incoming")),
            "temporary files inside the dataset after {after}: {names:?}"
        );
    }

    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "nc")
            .collect()
    }

    /// `rollcall serve` on this data folder starts and lists only `nc`.
    fn assert_served(&self) {
        let dir = self.root.join("serve");
        std::fs::create_dir_all(&dir).unwrap();
        let alice = TestAnalyst::nc("alice", 10.0);
        let config = write_config_for(
            &self.data_dir,
            &dir,
            &DatasetSettings::default(),
            std::slice::from_ref(&alice),
            "",
        );
        let server = start(&config);
        let a = server.get("/v1/datasets", &alice.token);
        assert_eq!(a.status, 200, "{}", a.text);
        let names: Vec<&str> = a.body["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["nc"]);
        let q = server.query(&alice.token, &json!({"dataset": "nc", "epsilon": 1.0}));
        assert_eq!(q.status, 200, "{}", q.text);
    }
}

#[test]
fn sigkill_mid_ingest_keeps_the_previous_version() {
    let v = version_one();
    let big = v.root.join("v2.txt");
    synth("nc", 400_000, 2, false, &big);
    let mut kills = 0;
    // Kill at several points: reading/parsing (spill growing), and later.
    for delay_ms in [150u64, 400, 900] {
        let mut child = Command::new(bin())
            .args(ingest_args(&v.data_dir, &big))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        if finished {
            // Too fast to interrupt at this point on this machine.
            eprintln!("ingest finished before {delay_ms} ms; not counted as a kill");
            // It succeeded: restore version 1 for the next round.
            ingest_nc(&v.data_dir, &v.root.join("v1.txt"));
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        v.assert_intact(&format!("SIGKILL at {delay_ms} ms"));
        let left = v.leftovers();
        assert!(
            left.iter().all(|n| n.starts_with(".nc.incoming-")),
            "unexpected entries in the data folder: {left:?}"
        );
        // Leftovers are hidden folders the server never loads.
        v.assert_served();
    }
    assert!(kills >= 1, "no ingest was interrupted");
    eprintln!("ingest interrupted {kills} times; previous version intact each time");

    // The next ingest removes stale temporary folders of killed ingests.
    ingest_nc(&v.data_dir, &v.root.join("v1.txt"));
    assert_eq!(
        v.leftovers(),
        Vec::<String>::new(),
        "stale folders not cleaned"
    );
}

#[test]
fn disk_full_mid_ingest_fails_clearly_and_keeps_the_previous_version() {
    let v = version_one();
    let big = v.root.join("v2.txt");
    synth("nc", 60_000, 3, false, &big);
    let mut cmd = String::from("trap '' XFSZ; ulimit -f 256; exec");
    for a in
        std::iter::once(bin().to_str().unwrap().to_owned()).chain(ingest_args(&v.data_dir, &big))
    {
        cmd.push_str(&format!(" '{a}'"));
    }
    // A file may grow to 128 KiB (dash counts 512-byte blocks): the spill file
    // of 60,000 rows (720 KB) is larger, so a write fails with EFBIG as on a full disk.
    let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "ingest with a 128 KiB file size limit: {:?}\n{stderr}",
        out.status
    );
    assert_eq!(out.status.code(), Some(1), "a clean failure, not a crash");
    assert!(
        stderr.contains("File too large") && stderr.contains(v.data_dir.to_str().unwrap()),
        "the error names the file and the cause: {stderr}"
    );
    v.assert_intact("a full disk");
    assert_eq!(
        v.leftovers(),
        Vec::<String>::new(),
        "a failed ingest removes its temporary folder"
    );
    v.assert_served();
}
