//! End-to-end tests of a layout's own dimensions: NC's state House and
//! Senate districts go from `rollcall synth` through `rollcall ingest` to
//! answers of the real server, checked against the generator's truth at a
//! huge ε (the noise is then at most 1 in every cell).

use serde_json::json;
use testkit::*;

/// The server on the shared NC dataset, and an analyst who may spend ε 1e6
/// per query.
fn huge_epsilon_server(dir: &std::path::Path) -> (Server, TestAnalyst) {
    let alice = TestAnalyst::nc("alice", 1e7);
    let settings = DatasetSettings {
        epsilon_total: 1e8,
        max_epsilon_per_query: 1e6,
    };
    let config = write_config(dir, &settings, std::slice::from_ref(&alice), "");
    (start(&config), alice)
}

/// Every cell of `got` is within 1 of `truth` (a missing truth key is 0),
/// and every true group is one of the cells.
fn assert_truth(got: &[(Vec<String>, i64)], truth: &std::collections::BTreeMap<Vec<String>, u64>) {
    for (key, count) in got {
        let want = truth.get(key).copied().unwrap_or(0) as i64;
        assert!(
            (count - want).abs() <= 1,
            "cell {key:?}: {count}, truth {want}"
        );
    }
    for key in truth.keys() {
        assert!(
            got.iter().any(|(k, _)| k == key),
            "true group {key:?} missing"
        );
    }
}

#[test]
fn own_districts_are_listed_and_answer_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice) = huge_epsilon_server(dir.path());
    let data = nc_data();

    // `/v1/datasets` lists them after the standard dimensions, with every
    // public code (from the layout's reference CSVs, not from the data).
    let domains = domains(&server, &alice.token);
    assert_eq!(domains["state_house_district"].len(), 121);
    assert_eq!(domains["state_senate_district"].len(), 51);
    assert_eq!(domains["state_house_district"][0], "1");
    assert_eq!(domains["state_house_district"][120], "NA");

    let by_house = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["state_house_district"], "epsilon": 1e6}),
    );
    assert_eq!(by_house.status, 200, "{}", by_house.text);
    let got = rows(&by_house, &["state_house_district"]);
    assert_eq!(
        got.len(),
        121,
        "every district once, empty ones as noisy zeros"
    );
    let truth = data.counts(&["state_house_district"], |_| true);
    assert!(
        truth.len() > 100,
        "the test data should fill most districts"
    );
    assert_truth(&got, &truth);

    // A filter on the Senate district, grouped by a standard dimension.
    let senate = ["1", "17", "50"];
    let filtered = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["party"],
                "filter": {"state_senate_district": senate}, "epsilon": 1e6}),
    );
    assert_eq!(filtered.status, 200, "{}", filtered.text);
    let truth = data.counts(&["party"], |r| {
        r.values["state_senate_district"]
            .as_deref()
            .is_some_and(|d| senate.contains(&d))
    });
    assert!(
        truth.values().sum::<u64>() > 1000,
        "three districts hold voters"
    );
    assert_truth(&rows(&filtered, &["party"]), &truth);
}

#[test]
fn a_query_touches_at_most_eight_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let (server, alice) = huge_epsilon_server(dir.path());
    let a = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["gender", "ethnicity"],
                "filter": {"party": ["DEM"], "status": ["A"], "race": ["W"],
                           "congressional_district": ["1"], "state_house_district": ["1"],
                           "state_senate_district": ["1"], "age_band": ["75+"]},
                "epsilon": 1.0}),
    );
    assert_eq!(
        (a.status, a.code()),
        (400, "too_many_dimensions"),
        "{}",
        a.text
    );
}
