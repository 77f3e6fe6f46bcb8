//! End-to-end tests of the operations side of `rollcall serve`: `/metrics`,
//! request ids in headers and JSON logs, config reload on SIGHUP, and the
//! `rollcall budget` / `rollcall audit` commands against the ledger the real
//! server wrote.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Starts the server with JSON logs.
fn start_json(config: &Path) -> Server {
    try_start(config, &["--log-format", "json"])
        .unwrap_or_else(|e| panic!("server did not start: {e}"))
}

/// A raw HTTP answer with its headers.
struct Raw {
    status: u16,
    request_id: Option<String>,
    text: String,
}

fn raw(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    request_id: Option<&str>,
    body: Option<Value>,
) -> Raw {
    let mut req = testkit::http::Request::new(method, path);
    if let Some(t) = token {
        req = req.bearer(t);
    }
    if let Some(id) = request_id {
        req = req.header("X-Request-Id", id);
    }
    if let Some(b) = body {
        req = req.json(&b.to_string());
    }
    let a = server.request(&req);
    Raw {
        status: a.status,
        request_id: a.request_id,
        text: a.text,
    }
}

/// The value of one sample (`name{labels}`) in a metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The JSON log lines written so far.
fn json_lines(server: &Server) -> Vec<Value> {
    server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until `pred` holds for the server's log (lines are written before
/// the response, but read from the pipe by another thread).
fn wait_log(server: &Server, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        if pred(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGHUP and waits for the reload's outcome line; returns the log.
fn sighup(server: &Server) -> String {
    let outcomes = |log: &str| {
        log.matches("\"config reloaded\"").count()
            + log
                .matches("\"config reload refused; still serving the previous config\"")
                .count()
    };
    let before = outcomes(&server.log());
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    wait_log(server, "the reload's outcome", |log| outcomes(log) > before)
}

fn query_body(group_by: &[&str], epsilon: f64) -> Value {
    json!({"dataset": "nc", "group_by": group_by, "epsilon": epsilon})
}

#[test]
fn metrics_count_requests_and_releases_and_carry_no_data() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 10.0);
    let config = write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    );
    let server = start_json(&config);

    let q = query_body(&["county"], 0.5);
    let first = server.query(&alice.token, &q);
    assert_eq!(first.status, 200, "{}", first.text);
    let charged = first.body["epsilon_spent"].as_f64().unwrap();
    assert!(charged > 0.0 && charged <= 0.5);
    let again = server.query(&alice.token, &q);
    assert_eq!(again.body["cached"], true, "{}", again.text);
    let total = server.query(&alice.token, &query_body(&[], 0.25));
    assert_eq!(total.status, 200, "{}", total.text);
    let total_charged = total.body["epsilon_spent"].as_f64().unwrap();
    // A refused query and an unknown path with an identifying-looking segment.
    let refused = server.query(&alice.token, &query_body(&["county"], 5.0));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        server
            .send("GET", "/v1/voters/NC000123456", None, None)
            .status,
        404
    );

    let m = raw(&server, "GET", "/metrics", None, None, None);
    assert_eq!(m.status, 200, "{}", m.text);
    let text = m.text;
    let v = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no `{s}` in\n{text}"));
    assert_eq!(
        v(r#"rollcall_http_requests_total{route="/v1/query",status="200"}"#),
        3.0
    );
    assert_eq!(
        v(r#"rollcall_http_requests_total{route="/v1/query",status="400"}"#),
        1.0
    );
    assert_eq!(
        v(r#"rollcall_http_requests_total{route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        v(r#"rollcall_http_request_duration_seconds_count{route="/v1/query"}"#),
        4.0
    );
    assert_eq!(
        v(r#"rollcall_http_request_duration_seconds_bucket{route="/v1/query",le="+Inf"}"#),
        4.0
    );
    assert_eq!(
        v(r#"rollcall_releases_total{dataset="nc",kind="new"}"#),
        2.0
    );
    assert_eq!(
        v(r#"rollcall_releases_total{dataset="nc",kind="cached"}"#),
        1.0
    );
    let spent = v(r#"rollcall_epsilon_spent{dataset="nc"}"#);
    assert!(
        (spent - (charged + total_charged)).abs() < 1e-9,
        "metrics say {spent} spent, the API charged {charged} + {total_charged}"
    );
    assert_eq!(v(r#"rollcall_epsilon_total{dataset="nc"}"#), 1000.0);

    // Nothing but our metric families, label names and plain numbers: no
    // raw path, no token, no analyst, no voter count (the dataset's row
    // count and the noisy counts just released appear nowhere).
    let allowed_labels = ["route", "status", "le", "dataset", "kind", "result"];
    let mut noisy: BTreeSet<i64> = first.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .filter(|c| c.abs() > 20)
        .collect();
    noisy.insert(total.body["rows"][0]["count"].as_i64().unwrap());
    noisy.insert(ROWS as i64);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("rollcall_"), "{line}");
        if series.starts_with("rollcall_epsilon_")
            || series.starts_with("rollcall_population_epsilon_")
            || series.starts_with("rollcall_start_time")
        {
            continue; // budgets and a timestamp, checked above
        }
        if let Some((_, labels)) = series.split_once('{') {
            for pair in labels.trim_end_matches('}').split("\",") {
                let name = pair.split('=').next().unwrap();
                assert!(allowed_labels.contains(&name), "label {name} in {line}");
            }
        }
        let value: f64 = value.parse().unwrap_or(f64::INFINITY);
        if value.fract() == 0.0 && value.is_finite() {
            assert!(
                !noisy.contains(&(value as i64)) || value <= 20.0,
                "a count of voters leaked into metrics: {line}"
            );
        }
    }
    for secret in [alice.token.as_str(), "alice", "NC000123456", "/v1/voters"] {
        assert!(!text.contains(secret), "`{secret}` in metrics:\n{text}");
    }

    // The ε spent is read from the ledger: it survives a restart, while
    // the request counters start again.
    drop(server);
    let server = start_json(&config);
    let text = raw(&server, "GET", "/metrics", None, None, None).text;
    let spent_after = sample(&text, r#"rollcall_epsilon_spent{dataset="nc"}"#).unwrap();
    assert!(
        (spent_after - spent).abs() < 1e-12,
        "{spent_after} vs {spent}"
    );
    assert_eq!(
        sample(&text, r#"rollcall_releases_total{dataset="nc",kind="new"}"#),
        None
    );

    // A metrics token, set by a reload: then /metrics needs it.
    let scrape = "metrics-scraper-token-8c1f";
    write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        &format!("metrics_token_sha256 = \"{}\"", hash_token(scrape)),
    );
    let log = sighup(&server);
    assert!(log.contains("\"config reloaded\""), "{log}");
    assert_eq!(
        raw(&server, "GET", "/metrics", None, None, None).status,
        401
    );
    assert_eq!(
        raw(&server, "GET", "/metrics", Some(&alice.token), None, None).status,
        401,
        "an analyst token is not the metrics token"
    );
    let m = raw(&server, "GET", "/metrics", Some(scrape), None, None);
    assert_eq!(m.status, 200, "{}", m.text);
    assert!(
        sample(&m.text, r#"rollcall_config_reloads_total{result="ok"}"#) == Some(1.0),
        "{}",
        m.text
    );
    assert!(
        !server.log().contains(scrape),
        "the metrics token was logged"
    );
}

#[test]
fn request_ids_are_echoed_or_generated_and_on_every_log_line() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 10.0);
    let server = start_json(&write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    ));

    // A valid client id is echoed and tags the access line and the query line.
    let id = "ops-test.42_A";
    let a = raw(
        &server,
        "POST",
        "/v1/query",
        Some(&alice.token),
        Some(id),
        Some(query_body(&["party"], 0.5)),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.request_id.as_deref(), Some(id));
    // The access line is written after the response: wait for it itself
    // (every line of the request, the query line too, names the `request`
    // span, so that alone is not the access line).
    wait_log(&server, "the access line", |log| {
        log.lines()
            .any(|l| l.contains(id) && l.contains("\"message\":\"request\""))
    });
    let tagged = |id: &str| -> Vec<Value> {
        json_lines(&server)
            .into_iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let lines = tagged(id);
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap_or(""))
        .collect();
    assert!(
        messages.contains(&"query") && messages.contains(&"request"),
        "the query and access lines should carry request_id {id}: {lines:?}"
    );
    let query_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "query")
        .unwrap();
    assert_eq!(query_line["fields"]["analyst"], "alice");
    assert_eq!(query_line["fields"]["dataset"], "nc");
    assert_eq!(query_line["fields"]["epsilon"], 0.5);
    assert!(query_line["fields"]["latency_ms"].is_number());
    let access = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request")
        .unwrap();
    assert_eq!(access["fields"]["route"], "/v1/query");
    assert_eq!(access["fields"]["status"], 200);

    // Invalid client ids are replaced by a fresh one; none gets one too.
    let mut seen = BTreeSet::new();
    for bad in [
        Some("has spaces"),
        Some("quote\"d"),
        Some(&*"x".repeat(65)),
        Some("{\"json\":1}"),
        None,
    ] {
        let a = raw(&server, "GET", "/healthz", None, bad, None);
        assert_eq!(a.status, 200);
        let got = a.request_id.expect("every answer has an X-Request-Id");
        assert_ne!(Some(got.as_str()), bad);
        assert_eq!(got.len(), 32, "{got}");
        assert!(got.bytes().all(|b| b.is_ascii_hexdigit()), "{got}");
        assert!(seen.insert(got.clone()), "ids repeat");
        wait_log(&server, "the generated id in the log", |log| {
            log.contains(&got)
        });
    }
    // Errors get an id too, and their lines carry it.
    let e = raw(
        &server,
        "POST",
        "/v1/query",
        Some("not-a-token"),
        Some("err-1"),
        Some(query_body(&[], 0.5)),
    );
    assert_eq!(e.status, 401);
    assert_eq!(e.request_id.as_deref(), Some("err-1"));
    wait_log(&server, "the 401's access line", |log| {
        log.contains("err-1")
    });
    assert!(
        tagged("err-1").iter().any(|l| l["fields"]["status"] == 401),
        "{:?}",
        tagged("err-1")
    );

    // Every JSON line about a request carries its id; none carries a token
    // or a rejected id (they could forge log content).
    let log = server.log();
    for line in json_lines(&server) {
        let msg = line["fields"]["message"].as_str().unwrap_or("");
        if msg == "request" || msg == "query" {
            assert!(
                line["span"]["request_id"].is_string(),
                "a request line without request_id: {line}"
            );
        }
    }
    for secret in [alice.token.as_str(), "has spaces", "not-a-token"] {
        assert!(!log.contains(secret), "`{secret}` in the log");
    }
}

/// The JSON of `rollcall budget|audit ARGS`.
fn ops_json(args: &[&str]) -> Value {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rollcall {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rollcall {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn budget_line<'a>(budget: &'a Value, analyst: &str) -> &'a Value {
    budget["analysts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["analyst"] == analyst && l["dataset"] == "nc")
        .unwrap_or_else(|| panic!("no budget line for {analyst}: {budget}"))
}

#[test]
fn sighup_reloads_analysts_and_budgets_and_keeps_the_ledger() {
    let dir = tempdir();
    let settings = DatasetSettings::default();
    let alice = TestAnalyst::nc("alice", 1.0);
    let bob = TestAnalyst::nc("bob", 1.0);
    let config = write_config(dir.path(), &settings, std::slice::from_ref(&alice), "");
    let config_arg = config.to_str().unwrap();
    let server = start_json(&config);
    let spent = |token: &str| {
        let b = server.get("/v1/budget", token);
        assert_eq!(b.status, 200, "{}", b.text);
        (
            b.body["datasets"][0]["spent"].as_f64().unwrap(),
            b.body["datasets"][0]["remaining"].as_f64().unwrap(),
            b.body["datasets"][0]["budget"].as_f64().unwrap(),
        )
    };
    let mut released = BTreeSet::new();
    let mut ask = |token: &str, group_by: &[&str], eps: f64| {
        let a = server.query(token, &query_body(group_by, eps));
        if a.status == 200 {
            released.insert(a.body["release_id"].as_str().unwrap().to_owned());
        }
        a
    };

    let a = ask(&alice.token, &["county"], 0.5);
    assert_eq!(a.status, 200, "{}", a.text);
    let (alice_spent, ..) = spent(&alice.token);
    assert!(alice_spent > 0.0);
    assert_eq!(server.get("/v1/budget", &bob.token).status, 401);

    // A new analyst: their token works after SIGHUP; alice keeps her spend.
    write_config(dir.path(), &settings, &[alice.clone(), bob.clone()], "");
    let log = sighup(&server);
    assert!(log.contains("\"config reloaded\""), "{log}");
    let b = ask(&bob.token, &["party"], 0.5);
    assert_eq!(b.status, 200, "bob after reload: {}", b.text);
    assert_eq!(spent(&alice.token).0, alice_spent);

    // Raise alice's budget: she can spend more.
    let mut rich = alice.clone();
    rich.epsilon = vec![("nc", 5.0)];
    write_config(dir.path(), &settings, &[rich, bob.clone()], "");
    sighup(&server);
    let (s, remaining, budget) = spent(&alice.token);
    assert_eq!((s, budget), (alice_spent, 5.0));
    assert!((remaining - (5.0 - alice_spent)).abs() < 1e-9);
    let a = ask(&alice.token, &["status"], 1.0);
    assert_eq!(a.status, 200, "{}", a.text);
    let (alice_spent, ..) = spent(&alice.token);
    assert!(alice_spent > 1.0);

    // Lower it below what she spent (and give her a new token): nothing
    // left, queries refused, the spend stays.
    let mut poor = alice.clone();
    poor.epsilon = vec![("nc", 1.0)];
    poor.token = "test-token-alice-rotated-77aa".into();
    write_config(dir.path(), &settings, &[poor.clone(), bob.clone()], "");
    sighup(&server);
    assert_eq!(
        server.get("/v1/budget", &alice.token).status,
        401,
        "the old token must stop working"
    );
    assert_eq!(spent(&poor.token), (alice_spent, 0.0, 1.0));
    let refused = ask(&poor.token, &["gender"], 0.1);
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.code(), "budget_exhausted");
    // A stored release is still free for her.
    let cached = ask(&poor.token, &["county"], 0.5);
    assert_eq!(cached.status, 200, "{}", cached.text);
    assert_eq!(cached.body["cached"], true);

    // A broken config is refused, naming the key; the old one keeps serving.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("epsilon_total = 1000.0", "epsilon_total = -1.0"),
    )
    .unwrap();
    let log = sighup(&server);
    let refusal = json_lines(&server)
        .into_iter()
        .rfind(|l| {
            l["fields"]["message"] == "config reload refused; still serving the previous config"
        })
        .unwrap_or_else(|| panic!("no refusal line in\n{log}"));
    assert_eq!(refusal["level"], "ERROR");
    assert_eq!(
        refusal["fields"]["key"], "dataset[0].epsilon_total",
        "{refusal}"
    );
    let b = ask(&bob.token, &["race"], 0.25);
    assert_eq!(b.status, 200, "bob after a refused reload: {}", b.text);

    // A change that needs a restart is refused, naming the key.
    std::fs::write(
        &config,
        good.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\""),
    )
    .unwrap();
    sighup(&server);
    let refusal = json_lines(&server)
        .into_iter()
        .rfind(|l| {
            l["fields"]["message"] == "config reload refused; still serving the previous config"
        })
        .unwrap();
    assert_eq!(refusal["fields"]["key"], "server.listen", "{refusal}");
    assert_eq!(spent(&poor.token).1, 0.0);

    // Dataset caps and server limits reload too: a lower per-query cap, a
    // dataset total below what all analysts spent, fewer cells.
    let tight = DatasetSettings {
        epsilon_total: 0.5,
        max_epsilon_per_query: 0.2,
    };
    write_config(
        dir.path(),
        &tight,
        &[poor.clone(), bob.clone()],
        "max_cells = 10",
    );
    let log = sighup(&server);
    assert_eq!(log.matches("\"config reloaded\"").count(), 4, "{log}");
    let a = ask(&bob.token, &[], 0.3);
    assert_eq!(a.code(), "invalid_epsilon", "{}", a.text);
    let a = ask(&bob.token, &["county"], 0.1);
    assert_eq!(a.code(), "too_many_cells", "{}", a.text);
    let a = ask(&bob.token, &[], 0.1);
    assert_eq!(
        a.code(),
        "budget_exhausted",
        "dataset cap below spent: {}",
        a.text
    );
    let b = server.get("/v1/budget", &bob.token);
    assert_eq!(
        b.body["datasets"][0]["dataset_remaining"], 0.0,
        "{}",
        b.text
    );
    assert_eq!(b.body["datasets"][0]["max_epsilon_per_query"], 0.2);
    std::fs::write(&config, &good).unwrap();

    // `rollcall budget` (server still running) agrees with the API.
    let budget = ops_json(&["budget", "--config", config_arg, "--format", "json"]);
    let (alice_api, ..) = spent(&poor.token);
    let (bob_api, bob_remaining, _) = spent(&bob.token);
    let a = budget_line(&budget, "alice");
    assert_eq!(a["spent"].as_f64().unwrap(), alice_api);
    assert_eq!(a["remaining"], 0.0, "lowered below spent: {a}");
    assert_eq!(a["budget"], 1.0);
    assert_eq!(a["releases"], 2);
    let b = budget_line(&budget, "bob");
    assert_eq!(b["spent"].as_f64().unwrap(), bob_api);
    assert_eq!(b["remaining"].as_f64().unwrap(), bob_remaining);
    assert_eq!(b["releases"], 2);
    let nc = &budget["datasets"][0];
    assert_eq!(nc["dataset"], "nc");
    assert_eq!(nc["epsilon_total"], 1000.0);
    assert!((nc["spent"].as_f64().unwrap() - (alice_api + bob_api)).abs() < 1e-9);
    assert_eq!(nc["releases"], 4);
    let table = Command::new(bin())
        .args(["budget", "--config", config_arg])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("ANALYST") && table.contains("EPSILON_TOTAL") && table.contains("bob"),
        "{table}"
    );

    // `rollcall audit` lists exactly the releases the API handed out.
    let audit = ops_json(&["audit", "--config", config_arg, "--format", "json"]);
    let ids: BTreeSet<String> = audit["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["release_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, released, "audit vs the release ids the API returned");
    let mut api_ids = BTreeSet::new();
    for token in [&poor.token, &bob.token] {
        for r in server.get("/v1/releases", token).body["releases"]
            .as_array()
            .unwrap()
        {
            api_ids.insert(r["release_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids, api_ids, "audit vs /v1/releases");
    let first = &audit["releases"][0];
    assert_eq!(first["analyst"], "alice");
    assert_eq!(first["group_by"], json!(["county"]));
    assert_eq!(first["cells"], 100);
    assert_eq!(first["mechanism"], "discrete_laplace");
    assert!(first.get("rows").is_none(), "rows only with --with-rows");
    let with_rows = ops_json(&[
        "audit",
        "--config",
        config_arg,
        "--format",
        "json",
        "--with-rows",
    ]);
    assert_eq!(
        with_rows["releases"][0]["rows"], cached.body["rows"],
        "audit rows vs the rows the API served"
    );
    let none = ops_json(&[
        "audit",
        "--config",
        config_arg,
        "--format",
        "json",
        "--since",
        "2999-01-01",
    ]);
    assert_eq!(none["releases"], json!([]));
    let csv_path = dir.path().join("audit.csv");
    let out = Command::new(bin())
        .args(["audit", "--config", config_arg, "--out"])
        .arg(&csv_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().count(), 1 + released.len(), "{csv}");
    assert!(csv.starts_with("release_id,created_at,analyst,dataset,"));
    let bad = Command::new(bin())
        .args(["audit", "--config", config_arg, "--since", "last tuesday"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

#[test]
fn budget_works_without_the_server_and_without_the_data() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 2.0);
    let config = write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    );
    let config_arg = config.to_str().unwrap();
    // No ledger yet: a clear error naming the key.
    let out = Command::new(bin())
        .args(["budget", "--config", config_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.ledger"), "{err}");

    let server = start(&config);
    let a = server.query(&alice.token, &query_body(&["county"], 0.75));
    assert_eq!(a.status, 200, "{}", a.text);
    let charged = a.body["epsilon_spent"].as_f64().unwrap();
    drop(server);

    // The server is gone and the config points at a data dir that no
    // longer exists: budget only needs the config and the ledger.
    let text = std::fs::read_to_string(&config).unwrap();
    let data_dir = nc_data().data_dir.to_str().unwrap().to_owned();
    std::fs::write(&config, text.replace(&data_dir, "/nonexistent/data")).unwrap();
    let budget = ops_json(&["budget", "--config", config_arg, "--format", "json"]);
    let line = budget_line(&budget, "alice");
    assert_eq!(line["spent"].as_f64().unwrap(), charged);
    assert!((line["remaining"].as_f64().unwrap() - (2.0 - charged)).abs() < 1e-12);
    let csv = Command::new(bin())
        .args(["budget", "--config", config_arg, "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("scope,analyst,dataset,population,budget,spent,remaining,releases")
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("analyst,alice,nc,,2,") && l.ends_with(",1")),
        "{csv}"
    );
}
