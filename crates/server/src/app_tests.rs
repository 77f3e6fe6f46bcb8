//! The whole app in process, through [`crate::create_app`] (actix's test
//! service) and over a real socket on port 0 ([`crate::run`]): the same
//! release path as `rollcall serve`, over a dataset built in memory.

use std::io::{Read, Write};
use std::sync::Arc;

use actix_web::test as web_test;
use engine::{Dataset, Dim, DomainSpec, Domains};
use layout::Layout;
use privacy::Ledger;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{AppState, Config, Live, create_app};

const TOKEN: &str = "in-process-token-alice";

/// A config for one in-memory NC dataset and `alice` with `budget` on it.
fn config(budget: f64, dir: &std::path::Path) -> Config {
    let hash = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nledger = {:?}\ntiming_quantum_ms = 1\n\n\
         [[dataset]]\nname = \"nc\"\nlayout = \"nc\"\nas_of = \"2026-06-30\"\n\
         age_bands = [18, 25, 35, 45, 55, 65, 75]\nepsilon_total = 100\nmax_epsilon_per_query = 10\n\n\
         [[analyst]]\nname = \"alice\"\ntoken_sha256 = \"{hash}\"\nepsilon = {{ nc = {budget:?} }}\n",
        dir.to_str().unwrap(),
        dir.join("ledger.sqlite").to_str().unwrap(),
    ))
    .unwrap()
}

/// The app's live state over 5,000 voters spread over the first 20
/// counties, in the first code of every other dimension.
fn live(budget: f64, dir: &std::path::Path) -> Arc<Live> {
    let config = config(budget, dir);
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
            let codes = (0..5_000u32)
                .map(|i| {
                    if d.dim == Dim::County {
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

fn query(body: Value) -> web_test::TestRequest {
    web_test::TestRequest::post()
        .uri("/v1/query")
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .set_json(body)
}

#[actix_web::test]
async fn the_release_path_answers_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let app = web_test::init_service(create_app(live(5.0, dir.path()))).await;

    let q = json!({"dataset": "nc", "group_by": ["county"], "epsilon": 4.0});
    let first: Value = web_test::call_and_read_body_json(&app, query(q.clone()).to_request()).await;
    assert_eq!(first["cached"], false, "{first}");
    let rows = first["rows"].as_array().unwrap();
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
    assert_eq!(first["epsilon_spent"], 4.0);
    assert_eq!(first["epsilon_remaining"], 1.0);
    let again: Value = web_test::call_and_read_body_json(&app, query(q).to_request()).await;
    assert_eq!(
        (again["cached"].clone(), again["release_id"].clone()),
        (json!(true), first["release_id"].clone())
    );

    // Errors come out of the one table, with their codes.
    let bad = web_test::call_service(
        &app,
        query(json!({"dataset": "nc", "group_by": ["shoe_size"], "epsilon": 1.0})).to_request(),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let body: Value = web_test::read_body_json(bad).await;
    assert_eq!(body["error"]["code"], "unknown_dimension");
    let broke = web_test::call_service(
        &app,
        query(json!({"dataset": "nc", "group_by": ["party"], "epsilon": 1.5})).to_request(),
    )
    .await;
    assert_eq!(broke.status(), 403);
    let body: Value = web_test::read_body_json(broke).await;
    assert_eq!(body["error"]["code"], "budget_exhausted");
    assert_eq!(body["error"]["cap"], "analyst");
}

/// The codes are an enum the OpenAPI document lists, and the error body
/// points at it.
#[actix_web::test]
async fn the_openapi_schema_lists_every_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let app = web_test::init_service(create_app(live(1.0, dir.path()))).await;
    let doc: Value = web_test::call_and_read_body_json(
        &app,
        web_test::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;
    let listed: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no ErrorCode enum in {}", doc["components"]["schemas"]))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = crate::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, ours);
    assert_eq!(
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}

/// The same app on a real socket, as `rollcall serve` binds it.
#[test]
fn the_same_app_answers_over_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let live = live(5.0, dir.path());
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let running = crate::run(live).unwrap();
            tx.send((running.addr, running.server.handle())).unwrap();
            running.server.await
        })
    });
    let (addr, handle) = rx.recv().unwrap();
    let body = json!({"dataset": "nc", "group_by": ["party"], "epsilon": 1.0}).to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-request-id"),
        "{response}"
    );
    let json_start = response.find("\r\n\r\n").unwrap() + 4;
    let answer: Value = serde_json::from_str(&response[json_start..]).unwrap();
    assert_eq!(answer["rows"].as_array().unwrap().len(), 9);
    actix_web::rt::System::new().block_on(handle.stop(true));
    server.join().unwrap().unwrap();
}
