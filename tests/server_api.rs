//! End-to-end tests of `rollcall serve`: the real binary on a free port,
//! spoken to over HTTP, on a synthetic NC dataset whose truth is known.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use testkit::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn huge_epsilon_gives_the_truth() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 1e7);
    let settings = DatasetSettings {
        epsilon_total: 1e8,
        max_epsilon_per_query: 1e6,
    };
    let server = start(&write_config(
        dir.path(),
        &settings,
        std::slice::from_ref(&alice),
        "",
    ));
    let data = nc_data();

    let a = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["county", "age_band"],
                "filter": {"party": ["DEM", "REP"], "status": ["A"]}, "epsilon": 1e6}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let truth = data.counts(&["county", "age_band"], |r| {
        matches!(r.values["party"].as_deref(), Some("DEM" | "REP"))
            && r.values["status"].as_deref() == Some("A")
    });
    let got = rows(&a, &["county", "age_band"]);
    assert_eq!(got.len(), 100 * 9, "every county x age band cell once");
    let mut nonzero = 0;
    for (key, count) in &got {
        let want = truth.get(key).copied().unwrap_or(0) as i64;
        assert!(
            (count - want).abs() <= 1,
            "cell {key:?}: {count} at epsilon 1e6, truth {want}"
        );
        nonzero += usize::from(want > 0);
    }
    assert!(nonzero > 300, "the test data should fill many cells");
    assert!(
        truth.keys().all(|k| got.iter().any(|(g, _)| g == k)),
        "a true group is missing"
    );

    // Empty group_by: one row, the total.
    let total = server.query(&alice.token, &json!({"dataset": "nc", "epsilon": 1e6}));
    assert_eq!(total.status, 200, "{}", total.text);
    let total_rows = total.body["rows"].as_array().unwrap();
    assert_eq!(total_rows.len(), 1);
    assert_eq!(total_rows[0].as_object().unwrap().len(), 1, "only `count`");
    let n = total_rows[0]["count"].as_i64().unwrap();
    assert!((n - ROWS as i64).abs() <= 1, "total {n}, rows {ROWS}");
}

#[test]
fn noise_at_epsilon_one_is_discrete_laplace_scale_one() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 100.0);
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    ));
    let a = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["county", "age_band", "gender"], "epsilon": 1.0}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["mechanism"], "discrete_laplace");
    let scale = a.body["noise_scale"].as_f64().unwrap();
    assert!((scale - 1.0).abs() < 1e-9, "scale {scale}");
    let ci = a.body["ci95"].as_f64().unwrap();
    assert!(
        (2.5..4.5).contains(&ci),
        "ci95 {ci} for scale 1 (opendp says about 3.4)"
    );
    assert_eq!(a.body["epsilon_spent"].as_f64().unwrap(), 1.0);

    let truth = nc_data().counts(&["county", "age_band", "gender"], |_| true);
    let diffs: Vec<f64> = rows(&a, &["county", "age_band", "gender"])
        .into_iter()
        .map(|(k, c)| (c - truth.get(&k).copied().unwrap_or(0) as i64) as f64)
        .collect();
    let n = diffs.len() as f64;
    assert_eq!(n as usize, 100 * 9 * 3);
    let mean = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n;
    let zeros = diffs.iter().filter(|d| **d == 0.0).count() as f64 / n;
    // Discrete Laplace, scale 1: mean 0, variance 2e^-1/(1-e^-1)^2 = 1.84,
    // P(0) = (1-e^-1)/(1+e^-1) = 0.462. With 2700 cells these bounds are
    // more than 6 standard errors wide: they fail only if the mechanism or
    // its scale is wrong (no noise, continuous noise, scale 2 or 1/2).
    assert!(mean.abs() < 0.2, "mean noise {mean}");
    assert!(
        (1.4..2.4).contains(&var),
        "noise variance {var}, want about 1.84"
    );
    assert!(
        (0.40..0.53).contains(&zeros),
        "share of exact cells {zeros}, want about 0.46"
    );
    assert!(
        diffs.iter().all(|d| d.abs() < 25.0),
        "a noise draw beyond 25 at scale 1"
    );
}

#[test]
fn every_public_cell_once_in_stable_order() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 100.0);
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    ));
    let doms = domains(&server, &alice.token);
    assert_eq!(
        doms.keys().cloned().collect::<BTreeSet<_>>(),
        [
            "county",
            "age_band",
            "gender",
            "race",
            "ethnicity",
            "party",
            "status",
            "registration_year",
            "congressional_district",
            "state_house_district",
            "state_senate_district"
        ]
        .map(String::from)
        .into_iter()
        .collect(),
    );
    assert_eq!(
        doms["age_band"],
        [
            "<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+", "unknown"
        ]
    );
    assert_eq!(doms["registration_year"].first().unwrap(), "1900");
    assert_eq!(
        doms["registration_year"][doms["registration_year"].len() - 2],
        "2026"
    );

    // Filter values given out of order: cells follow the public order.
    let a = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["age_band", "party"],
                "filter": {"party": ["REP", "DEM"], "congressional_district": [1, "2"]},
                "epsilon": 0.1}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let got: Vec<Vec<String>> = rows(&a, &["age_band", "party"])
        .into_iter()
        .map(|r| r.0)
        .collect();
    let mut want = Vec::new();
    for band in &doms["age_band"] {
        for party in ["DEM", "REP"] {
            want.push(vec![band.clone(), party.to_owned()]);
        }
    }
    assert_eq!(
        got, want,
        "one row per public cell, age band major, public order"
    );
    for row in a.body["rows"].as_array().unwrap() {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{row}");
    }

    // A whole dimension: every public value, including ones no voter has.
    let b = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["registration_year"], "epsilon": 0.1}),
    );
    let years: Vec<String> = rows(&b, &["registration_year"])
        .into_iter()
        .map(|r| r.0[0].clone())
        .collect();
    assert_eq!(years, doms["registration_year"]);
}

#[test]
fn identical_query_is_cached_and_free_for_any_analyst() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 3.0);
    let bob = TestAnalyst::nc("bob", 0.25);
    let carol = TestAnalyst {
        name: "carol",
        token: "test-token-carol-no-datasets".into(),
        epsilon: vec![],
    };
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings::default(),
        &[alice.clone(), bob.clone(), carol.clone()],
        "",
    ));
    let q = json!({"dataset": "nc", "group_by": ["county", "party"],
                   "filter": {"status": ["A", "I"]}, "epsilon": 0.5});
    let first = server.query(&alice.token, &q);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["cached"], false);
    assert_eq!(first.body["epsilon_spent"].as_f64().unwrap(), 0.5);
    assert_eq!(first.body["epsilon_remaining"].as_f64().unwrap(), 2.5);

    let again = server.query(&alice.token, &q);
    assert_eq!(again.body["cached"], true);
    assert_eq!(again.body["epsilon_spent"].as_f64().unwrap(), 0.0);
    assert_eq!(again.body["epsilon_remaining"].as_f64().unwrap(), 2.5);
    assert_eq!(
        again.body["rows"], first.body["rows"],
        "a repeat must return the stored noise"
    );
    assert_eq!(again.body["release_id"], first.body["release_id"]);

    // Same sets in another order, by an analyst whose budget (0.25) is below
    // the query's ε: still the stored release, free. Rows keep the stored order.
    let reordered = json!({"dataset": "nc", "group_by": ["party", "county"],
                           "filter": {"status": ["I", "A", "A"]}, "epsilon": 0.5});
    let by_bob = server.query(&bob.token, &reordered);
    assert_eq!(by_bob.status, 200, "{}", by_bob.text);
    assert_eq!(by_bob.body["cached"], true);
    assert_eq!(by_bob.body["epsilon_spent"].as_f64().unwrap(), 0.0);
    assert_eq!(by_bob.body["rows"], first.body["rows"]);
    let budget = server.get("/v1/budget", &bob.token);
    assert_eq!(budget.body["datasets"][0]["spent"].as_f64().unwrap(), 0.0);

    // A dry run of the released query costs 0; of a new one, its ε.
    let dry = server.query(
        &bob.token,
        &json!({"dataset": "nc", "group_by": ["party", "county"],
        "filter": {"status": ["I", "A"]}, "epsilon": 0.5, "dry_run": true}),
    );
    assert_eq!(dry.body["cached"], true, "{}", dry.text);
    assert_eq!(dry.body["epsilon"].as_f64().unwrap(), 0.0);
    assert!(dry.body.get("rows").is_none());
    let dry_new = server.query(
        &bob.token,
        &json!({"dataset": "nc", "group_by": ["party"],
        "epsilon": 0.5, "dry_run": true}),
    );
    assert_eq!(dry_new.status, 200, "{}", dry_new.text);
    assert_eq!(dry_new.body["epsilon"].as_f64().unwrap(), 0.5);
    assert_eq!(dry_new.body["noise_scale"].as_f64().unwrap(), 2.0);
    assert_eq!(dry_new.body["cells"].as_u64().unwrap(), 9);
    assert_eq!(dry_new.body["affordable"], false, "bob has 0.25 left");

    // Different ε is a different query.
    let other = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["county", "party"],
        "filter": {"status": ["A", "I"]}, "epsilon": 0.25}),
    );
    assert_eq!(other.body["cached"], false);

    // Carol may not read the dataset at all, not even cached releases.
    let by_carol = server.query(&carol.token, &q);
    assert_eq!(
        (by_carol.status, by_carol.code()),
        (403, "forbidden_dataset")
    );

    let releases = server.get("/v1/releases", &alice.token);
    assert_eq!(
        releases.body["releases"].as_array().unwrap().len(),
        2,
        "{}",
        releases.text
    );
    assert!(
        !releases.text.contains("\"count\""),
        "releases list no rows"
    );
    assert!(
        server.get("/v1/releases", &bob.token).body["releases"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn concurrent_queries_never_overspend() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 8.0);
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    ));
    let counties = domains(&server, &alice.token)["county"].clone();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = counties[..40]
            .iter()
            .map(|county| {
                let server = &server;
                let token = &alice.token;
                s.spawn(move || {
                    server.query(
                        token,
                        &json!({"dataset": "nc", "group_by": ["party"],
                        "filter": {"county": [county]}, "epsilon": 1.0}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let answered = answers.iter().filter(|a| a.status == 200).count();
    let refused = answers
        .iter()
        .filter(|a| (a.status, a.code()) == (403, "budget_exhausted"))
        .count();
    let others: Vec<&str> = answers
        .iter()
        .filter(|a| a.status != 200 && a.code() != "budget_exhausted")
        .map(|a| a.text.as_str())
        .collect();
    assert!(others.is_empty(), "unexpected answers: {others:?}");
    assert_eq!(
        (answered, refused),
        (8, 32),
        "40 queries of ε 1 against a budget of 8"
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status == 200)
            .all(|a| a.body["cached"] == false)
    );
    let b = server.get("/v1/budget", &alice.token);
    assert_eq!(
        b.body["datasets"][0]["spent"].as_f64().unwrap(),
        8.0,
        "{}",
        b.text
    );
    assert_eq!(b.body["datasets"][0]["remaining"].as_f64().unwrap(), 0.0);
    assert_eq!(
        server.get("/v1/releases", &alice.token).body["releases"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn restart_keeps_spends_and_releases() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 3.0);
    let config = write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    );
    let q = json!({"dataset": "nc", "group_by": ["gender"], "epsilon": 1.0});
    let server = start(&config);
    let first = server.query(&alice.token, &q);
    assert_eq!(first.status, 200, "{}", first.text);
    let second = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["race"], "epsilon": 0.5}),
    );
    assert_eq!(second.status, 200);
    server.kill(); // SIGKILL: no clean shutdown

    let server = start(&config);
    let b = server.get("/v1/budget", &alice.token);
    assert_eq!(
        b.body["datasets"][0]["spent"].as_f64().unwrap(),
        1.5,
        "{}",
        b.text
    );
    assert_eq!(b.body["datasets"][0]["remaining"].as_f64().unwrap(), 1.5);
    let again = server.query(&alice.token, &q);
    assert_eq!(again.body["cached"], true);
    assert_eq!(again.body["rows"], first.body["rows"]);
    assert_eq!(again.body["release_id"], first.body["release_id"]);
    // What remains is all that can be spent.
    let big = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["party"], "epsilon": 1.0}),
    );
    assert_eq!(big.status, 200);
    let over = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["status"], "epsilon": 1.0}),
    );
    assert_eq!((over.status, over.code()), (403, "budget_exhausted"));
    assert!(
        over.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0.5"),
        "{}",
        over.text
    );
}

#[test]
fn every_error_code() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 1.5);
    let carol = TestAnalyst {
        name: "carol",
        token: "test-token-carol-no-datasets".into(),
        epsilon: vec![],
    };
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings {
            epsilon_total: 100.0,
            max_epsilon_per_query: 1.0,
        },
        &[alice.clone(), carol.clone()],
        "max_cells = 1000\nmax_body_bytes = 4096",
    ));
    let t = alice.token.as_str();
    let ok = json!({"dataset": "nc", "group_by": ["party"], "epsilon": 1.0});
    let post = |token: Option<&str>, body: &str| {
        server.send("POST", "/v1/query", token, Some(body.to_owned()))
    };
    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        ("no token", post(None, &ok.to_string()), 401, "unauthorized"),
        ("wrong token", post(Some("nope"), &ok.to_string()), 401, "unauthorized"),
        ("no token, datasets", server.send("GET", "/v1/datasets", None, None), 401, "unauthorized"),
        ("no token, budget", server.send("GET", "/v1/budget", None, None), 401, "unauthorized"),
        ("carol", post(Some(&carol.token), &ok.to_string()), 403, "forbidden_dataset"),
        ("unknown dataset", server.query(t, &json!({"dataset": "oh", "epsilon": 1.0})), 404, "unknown_dataset"),
        ("unknown dim", server.query(t, &json!({"dataset": "nc", "group_by": ["name"], "epsilon": 1.0})), 400, "unknown_dimension"),
        ("unknown filter dim", server.query(t, &json!({"dataset": "nc", "filter": {"ssn": ["1"]}, "epsilon": 1.0})), 400, "unknown_dimension"),
        ("invalid value", server.query(t, &json!({"dataset": "nc", "filter": {"party": ["XYZ"]}, "epsilon": 1.0})), 400, "invalid_value"),
        ("duplicate dim", server.query(t, &json!({"dataset": "nc", "group_by": ["party", "party"], "epsilon": 1.0})), 400, "duplicate_dimension"),
        ("empty filter", server.query(t, &json!({"dataset": "nc", "filter": {"party": []}, "epsilon": 1.0})), 400, "empty_filter"),
        ("epsilon 0", server.query(t, &json!({"dataset": "nc", "epsilon": 0.0})), 400, "invalid_epsilon"),
        ("epsilon < 0", server.query(t, &json!({"dataset": "nc", "epsilon": -1.0})), 400, "invalid_epsilon"),
        ("epsilon tiny", server.query(t, &json!({"dataset": "nc", "epsilon": 1e-9})), 400, "invalid_epsilon"),
        ("epsilon > max", server.query(t, &json!({"dataset": "nc", "epsilon": 1.5})), 400, "invalid_epsilon"),
        ("too many cells", server.query(t, &json!({"dataset": "nc", "group_by": ["county", "age_band", "gender"], "epsilon": 1.0})), 400, "too_many_cells"),
        ("syntax", post(Some(t), "{\"dataset\": "), 400, "malformed_json"),
        ("not JSON", post(Some(t), "dataset=nc"), 400, "malformed_json"),
        ("wrong type", post(Some(t), r#"{"dataset": "nc", "epsilon": "1"}"#), 400, "malformed_json"),
        ("missing field", post(Some(t), r#"{"dataset": "nc"}"#), 400, "malformed_json"),
        ("unknown field", post(Some(t), r#"{"dataset": "nc", "epsilon": 1, "noise": 0}"#), 400, "malformed_json"),
        ("group_by not a list", post(Some(t), r#"{"dataset": "nc", "epsilon": 1, "group_by": "party"}"#), 400, "malformed_json"),
        ("infinite epsilon", post(Some(t), r#"{"dataset": "nc", "epsilon": 1e999}"#), 400, "malformed_json"),
        ("too large", post(Some(t), &format!(r#"{{"dataset": "nc", "epsilon": 1, "group_by": [{}]}}"#, vec!["\"party\""; 1000].join(","))), 413, "payload_too_large"),
        ("no route", server.get("/v1/nothing", t), 404, "not_found"),
        ("no route, no token", server.send("GET", "/", None, None), 404, "not_found"),
        ("wrong method", server.send("GET", "/v1/query", Some(t), None), 405, "method_not_allowed"),
        ("wrong method 2", server.send("DELETE", "/v1/budget", Some(t), None), 405, "method_not_allowed"),
    ];
    for (what, a, status, code) in &cases {
        assert_eq!((a.status, a.code()), (*status, *code), "{what}: {}", a.text);
        let msg = a.body["error"]["message"].as_str().unwrap_or("");
        assert!(!msg.is_empty(), "{what}: no message");
    }
    let invalid = &cases.iter().find(|c| c.0 == "invalid value").unwrap().1;
    assert!(
        invalid.text.contains("DEM") && invalid.text.contains("UNA"),
        "lists allowed values: {}",
        invalid.text
    );
    let unknown = &cases.iter().find(|c| c.0 == "unknown dim").unwrap().1;
    assert!(
        unknown.text.contains("age_band"),
        "lists allowed dimensions: {}",
        unknown.text
    );

    // Budget: 1.5; spend 1.0, then a 1.0 query is refused saying 0.5 remains.
    let spend = server.query(t, &ok);
    assert_eq!(spend.status, 200, "{}", spend.text);
    let refused = server.query(
        t,
        &json!({"dataset": "nc", "group_by": ["gender"], "epsilon": 1.0}),
    );
    assert_eq!(
        (refused.status, refused.code()),
        (403, "budget_exhausted"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("0.5"),
        "says what remains: {}",
        refused.text
    );
    let b = server.get("/v1/budget", t);
    assert_eq!(
        b.body["datasets"][0]["spent"].as_f64().unwrap(),
        1.0,
        "refusals spend nothing"
    );

    let health = server.send("GET", "/healthz", None, None);
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let api = server.send("GET", "/openapi.json", None, None);
    assert_eq!(api.status, 200);
    for path in [
        "/healthz",
        "/v1/datasets",
        "/v1/query",
        "/v1/budget",
        "/v1/releases",
    ] {
        assert!(
            api.body["paths"].get(path).is_some(),
            "openapi lacks {path}"
        );
    }
    assert!(
        api.body["components"]["schemas"]
            .get("QueryRequest")
            .is_some()
    );
    assert!(!server.log().contains("status=500"), "no 5xx");
}

#[test]
fn logs_carry_no_counts_and_no_tokens() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 1e7);
    let settings = DatasetSettings {
        epsilon_total: 1e8,
        max_epsilon_per_query: 1e6,
    };
    let config = write_config(dir.path(), &settings, std::slice::from_ref(&alice), "");
    let server = try_start(&config, &["--log-format", "json"]).unwrap();
    let mut released = BTreeSet::new();
    for (group_by, filter) in [
        (json!(["party"]), json!({})),
        (json!(["county"]), json!({"status": ["A"]})),
        (json!(["gender", "race"]), json!({})),
        (json!([]), json!({})),
    ] {
        let a = server.query(
            &alice.token,
            &json!({"dataset": "nc", "group_by": group_by,
            "filter": filter, "epsilon": 1e6}),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        for r in a.body["rows"].as_array().unwrap() {
            released.insert(r["count"].as_i64().unwrap());
        }
        // A cached repeat and a dry run, too.
        server.query(
            &alice.token,
            &json!({"dataset": "nc", "group_by": group_by,
            "filter": filter, "epsilon": 1e6}),
        );
    }
    server.query(
        "wrong-token-value-1234",
        &json!({"dataset": "nc", "epsilon": 1.0}),
    );
    let truth = nc_data();
    let mut exact: BTreeSet<i64> = truth
        .counts(&["party"], |_| true)
        .values()
        .chain(truth.counts(&["gender", "race"], |_| true).values())
        .map(|&c| c as i64)
        .collect();
    exact.insert(ROWS as i64);
    let log = server.kill();
    assert!(
        log.contains("\"query\""),
        "the log should have query lines: {log}"
    );
    // The noise comes from opendp reading OpenSSL as it ships (no buffer of
    // its own; docs/privacy.md), and the log says which OpenSSL.
    assert!(
        log.contains("\"noise source\"")
            && log.contains("RAND_priv_bytes")
            && log.contains("OpenSSL 3.")
            && !log.contains("buffered"),
        "the log should name the noise source: {log}"
    );
    assert!(
        !log.contains(&alice.token) && !log.contains("wrong-token-value-1234"),
        "token in the log"
    );
    assert!(
        !log.contains(&hash_token(&alice.token)),
        "token hash in the log"
    );
    // Remove the fields that are numbers by nature (time, HTTP status,
    // latency, ids, the public cell count), then no remaining number may
    // equal a count.
    let forbidden: BTreeSet<String> = released
        .iter()
        .chain(&exact)
        .filter(|c| **c >= 100)
        .map(|c| c.to_string())
        .collect();
    for line in log.lines() {
        let Ok(mut v) = serde_json::from_str::<Value>(line) else {
            panic!("not a JSON log line: {line}");
        };
        let obj = v.as_object_mut().unwrap();
        obj.remove("timestamp");
        // Request ids are random hex: their digit runs are not counts.
        if let Some(span) = obj.get_mut("span").and_then(Value::as_object_mut) {
            span.remove("request_id");
        }
        if let Some(spans) = obj.get_mut("spans").and_then(Value::as_array_mut) {
            for span in spans.iter_mut().filter_map(Value::as_object_mut) {
                span.remove("request_id");
            }
        }
        if let Some(fields) = obj.get_mut("fields").and_then(Value::as_object_mut) {
            // `status` is the HTTP status (200 could equal a count).
            for k in [
                "status",
                "latency_ms",
                "ready_ms",
                "release_id",
                "addr",
                "cells",
                "seconds",
            ] {
                fields.remove(k);
            }
        }
        let rest = v.to_string();
        for number in rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
        {
            assert!(
                !forbidden.contains(number),
                "a count ({number}) in the log line: {line}"
            );
        }
    }
}

#[test]
fn bad_config_stops_startup_naming_the_key() {
    let dir = tempdir();
    let alice = TestAnalyst::nc("alice", 3.0);
    let good = std::fs::read_to_string(write_config(
        dir.path(),
        &DatasetSettings::default(),
        &[alice],
        "",
    ))
    .unwrap();
    let cases = [
        (
            good.replace("epsilon_total = 1000.0", "epsilon_total = -1.0"),
            "dataset[0].epsilon_total",
        ),
        (
            good.replace("max_epsilon_per_query = 1.0", "max_epsilon_per_query = nan"),
            "dataset[0].max_epsilon_per_query",
        ),
        (
            good.replace("nc = 3.0", "nc = 0.0"),
            "analyst[0].epsilon.nc",
        ),
        (
            good.replace("nc = 3.0", "fl = 3.0"),
            "analyst[0].epsilon.fl",
        ),
        (good.replace("[server]", "[server]\nport = 8080"), "port"),
        (
            good.replace("name = \"nc\"", "name = \"missing\"")
                .replace("nc = 3.0", "missing = 3.0"),
            "dataset[0].name",
        ),
        (
            good.replace("layout = \"nc\"", "layout = \"oh\""),
            "dataset[0].layout",
        ),
        (
            good.replace("layout = \"nc\"", "layout = \"texas\""),
            "dataset[0].layout",
        ),
        (
            good.replace("token_sha256 = \"", "token_sha256 = \"zz"),
            "analyst[0].token_sha256",
        ),
        (
            good.replace("as_of = \"2026-06-30\"", "as_of = \"30/06/2026\""),
            "dataset[0].as_of",
        ),
        (
            format!(
                "{good}\n[[analyst]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\n",
                "ab".repeat(32)
            ),
            "analyst[1].name",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(bin())
            .args(["serve", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} ({key}) started");
        assert!(
            stderr.contains(key),
            "case {i}: stderr does not name `{key}`:\n{stderr}"
        );
    }
}

#[test]
fn token_command_prints_a_fresh_token_and_its_hash() {
    let run = || {
        let out = std::process::Command::new(bin())
            .arg("token")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    let field = |text: &str, name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let token = field(&a, "token:");
    let hash = field(&a, "token_sha256:");
    assert!(token.len() >= 3 + 32, "at least 128 bits: {token}");
    assert_eq!(hash.len(), 64);
    assert_eq!(hash_token(&token), hash);
}
