//! End-to-end tests of a layout's own dimensions: NC's state House and
//! Senate districts, and precincts nested in counties, go from `rollcall
//! synth` through `rollcall ingest` to answers of the real server, checked
//! against the generator's truth at a huge ε (the noise is then at most 1 in
//! every cell).

use std::path::{Path, PathBuf};

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

/// A copy of the shipped config plus a made-up NC precinct list from
/// `rollcall synth --precincts-out`, so the NC layout keeps its optional
/// `precinct`; returns the layout's path and the list's text.
fn nc_with_precincts(root: &Path) -> (PathBuf, String) {
    let config = root.join("config");
    for sub in ["layouts", "reference"] {
        std::fs::create_dir_all(config.join(sub)).unwrap();
        for entry in std::fs::read_dir(repo_root().join("config").join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            if name != "nc_precincts.csv" {
                std::fs::copy(&path, config.join(sub).join(name)).unwrap();
            }
        }
    }
    let layout = config.join("layouts/nc.toml");
    let list = config.join("reference/nc_precincts.csv");
    run_ok(&[
        "synth",
        "--layout",
        layout.to_str().unwrap(),
        "--precincts-out",
        list.to_str().unwrap(),
    ]);
    (layout, std::fs::read_to_string(list).unwrap())
}

#[test]
fn precincts_nest_in_counties() {
    let root = tempfile::tempdir().unwrap();
    let (layout, list) = nc_with_precincts(root.path());
    let layout = layout.to_str().unwrap();
    let data = Fixture::make(
        &root.path().join("fixture"),
        &FixtureSpec {
            layout,
            dataset: "nc",
            rows: 20_000,
            seed: 13,
            quirks: false,
        },
        false,
    );
    let alice = TestAnalyst::nc("alice", 1e7);
    let config = ConfigBuilder::new(&data.data_dir, &root.path().join("ledger.sqlite"))
        .dataset(
            DatasetSection::nc("nc")
                .layout(layout)
                .epsilon_total(Some(1e8))
                .max_epsilon_per_query(1e6),
        )
        .analysts(std::slice::from_ref(&alice))
        .write(root.path());
    let server = start(&config);

    // The config names the layout by its path; analysts see its name only.
    let listed = server.get("/v1/datasets", &alice.token);
    assert_eq!(
        listed.body["datasets"][0]["layout"], "nc",
        "{}",
        listed.text
    );
    assert!(!listed.text.contains(&*root.path().to_string_lossy()));

    // Alone, precinct has its distinct codes: P01..P06 and NA.
    let domains = domains(&server, &alice.token);
    assert_eq!(
        domains["precinct"],
        ["P01", "P02", "P03", "P04", "P05", "P06", "NA"]
    );

    // With the county: exactly the listed pairs, plus NA in every county,
    // each once, however empty; not the 100 x 7 cross product.
    let listed = list.lines().skip(1).count();
    let a = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["county", "precinct"], "epsilon": 1e6}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let got = rows(&a, &["county", "precinct"]);
    assert_eq!(got.len(), listed + 100, "only the valid pairs");
    assert!(got.len() < 100 * 7);
    let truth = data.counts(&["county", "precinct"], |_| true);
    assert!(
        truth.len() > listed / 2,
        "the test data should fill many pairs"
    );
    assert_truth(&got, &truth);

    // The other order gives the same pairs, keys in group-by order.
    let b = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["precinct", "county"], "epsilon": 1e6}),
    );
    assert_eq!(b.status, 200, "{}", b.text);
    let swapped = data.counts(&["precinct", "county"], |_| true);
    assert_truth(&rows(&b, &["precinct", "county"]), &swapped);
    assert_eq!(rows(&b, &["precinct", "county"]).len(), listed + 100);
}
