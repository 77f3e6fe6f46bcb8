//! The whole app in process: [`server::create_app`] served on a real socket
//! on port 0 by `testkit::spawn_app` — the same release path as `rollcall
//! serve` — over a dataset built in memory, and the OpenAPI document's
//! error codes.

use std::sync::Arc;

use engine::{Dataset, DomainSpec, Domains};
use layout::Layout;
use privacy::Ledger;
use serde_json::{Value, json};
use server::{AppState, Config, Live};
use testkit::{ConfigBuilder, DatasetSection, Speak, TestAnalyst, spawn_app};

/// The app's live state for `alice` (budget `budget` on `nc`), over 5,000
/// voters spread over the first 20 counties, in the first code of every
/// other dimension.
fn live(alice: &TestAnalyst, dir: &std::path::Path) -> Arc<Live> {
    let text = ConfigBuilder::new(dir, &dir.join("ledger.sqlite"))
        .server("timing_quantum_ms", "1")
        .dataset(
            DatasetSection::nc("nc")
                .epsilon_total(Some(100.0))
                .max_epsilon_per_query(10.0),
        )
        .analyst(alice)
        .to_toml();
    let config = Config::from_toml(&text).unwrap();
    let layout = Layout::resolve("nc").unwrap();
    let spec = DomainSpec {
        age_bands: testkit::config::AGE_BANDS.to_vec(),
        as_of_year: 2026,
    };
    let domains = Arc::new(Domains::new(&layout, &spec).unwrap());
    let columns = domains
        .dims()
        .iter()
        .map(|d| {
            let codes = (0..5_000u32)
                .map(|i| {
                    if d.name == "county" {
                        (i % 20) as u16
                    } else {
                        0
                    }
                })
                .collect();
            (d.dim, codes)
        })
        .collect();
    let data = Arc::new(Dataset::from_codes(domains.clone(), columns).unwrap());
    let ledger = Ledger::open_at(&config.server.ledger).unwrap();
    let state = AppState::from_parts(&config, vec![(data, domains)], ledger).unwrap();
    Arc::new(Live::new(state, config, None))
}

#[test]
fn the_release_path_answers_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 5.0);
    let app = spawn_app(live(&alice, dir.path()));

    let q = json!({"dataset": "nc", "group_by": ["county"], "epsilon": 4.0});
    let first = app.query(&alice.token, &q);
    assert_eq!(
        (first.status, &first.body["cached"]),
        (200, &json!(false)),
        "{}",
        first.text
    );
    assert!(first.request_id.is_some(), "no X-Request-Id");
    let rows = first.body["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        100,
        "every public county, empty ones as noisy zeros"
    );
    assert_eq!(rows[0]["county"], "ALAMANCE");
    assert!(
        (rows[0]["count"].as_i64().unwrap() - 250).abs() <= 10,
        "{}",
        rows[0]
    );
    assert_eq!(first.body["epsilon_spent"], 4.0);
    assert_eq!(first.body["epsilon_remaining"], 1.0);
    let again = app.query(&alice.token, &q);
    assert_eq!(
        (
            again.body["cached"].clone(),
            again.body["release_id"].clone()
        ),
        (json!(true), first.body["release_id"].clone())
    );

    // Errors come out of the one table, with their codes.
    let bad = app.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["shoe_size"], "epsilon": 1.0}),
    );
    assert_eq!((bad.status, bad.code()), (400, "unknown_dimension"));
    let broke = app.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["party"], "epsilon": 1.5}),
    );
    assert_eq!((broke.status, broke.code()), (403, "budget_exhausted"));
    assert_eq!(broke.body["error"]["cap"], "analyst");
}

/// Another dimension through the same socket: every party code of the
/// layout is a cell, as `rollcall serve` would answer.
#[test]
fn the_app_answers_a_party_query_over_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 5.0);
    let app = spawn_app(live(&alice, dir.path()));
    let q = json!({"dataset": "nc", "group_by": ["party"], "epsilon": 1.0});
    let answer = app.query(&alice.token, &q);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.request_id.is_some(), "no X-Request-Id");
    assert_eq!(answer.body["rows"].as_array().unwrap().len(), 9);
}

/// The codes are an enum the OpenAPI document lists, and the error body
/// points at it.
#[test]
fn the_openapi_schema_lists_every_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 1.0);
    let app = spawn_app(live(&alice, dir.path()));
    let doc: Value = app.send("GET", "/openapi.json", None, None).body;
    let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no ErrorCode enum in {}", doc["components"]["schemas"]))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = server::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, ours);
    assert_eq!(
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}
