//! Hostile input against the real `rollcall serve`: generated requests
//! (from the OpenAPI schema's fields and a mutator), slow clients, and every
//! limit with its error code.
//!
//! `FUZZ_CASES` (default 1500) sets the number of generated requests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::http;
use testkit::*;

/// Every code the error table has, with its status (`internal` is left out
/// on purpose: client input must never produce it).
const KNOWN: &[(&str, u16)] = &[
    ("unauthorized", 401),
    ("forbidden_dataset", 403),
    ("unknown_dataset", 404),
    ("unknown_dimension", 400),
    ("invalid_value", 400),
    ("duplicate_dimension", 400),
    ("empty_filter", 400),
    ("invalid_epsilon", 400),
    ("budget_exhausted", 403),
    ("too_many_cells", 400),
    ("too_many_dimensions", 400),
    ("malformed_json", 400),
    ("payload_too_large", 413),
    ("request_timeout", 408),
    ("too_many_requests", 429),
    ("not_found", 404),
    ("method_not_allowed", 405),
];

/// A seeded xorshift generator: a failing case reproduces from its number.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// One generated request.
struct Case {
    kind: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// Odd strings for dimension names and values.
const ODD: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "county\u{0}",
    "\u{0}county",
    "party\u{0}DEM",
    "DEM\u{0}",
    "ｃｏｕｎｔｙ",
    "COUNTY",
    "county ",
    "\u{202e}ytnuoc",
    "😀",
    "\u{fffd}",
    "é",
    "../../etc/passwd",
    "' OR 1=1 --",
    "%00",
    "\\u0000",
    "null",
    "age_band",
    "race",
];

/// A JSON value of a random shape (for wrong types).
fn wrong_value(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(rng.next() as i64),
        3 => json!(-1.5),
        4 => json!(rng.pick(ODD)),
        5 => json!([1, "a", null]),
        6 => json!({"a": {"b": []}}),
        7 => json!([[["county"]]]),
        _ => json!(u64::MAX),
    }
}

/// A well-formed query to mutate.
fn base_query(rng: &mut Rng, dims: &[String]) -> Value {
    let mut q = json!({"dataset": "nc", "epsilon": 0.01 + rng.below(1000) as f64 * 1e-4});
    if rng.chance(2) {
        let n = rng.below(3);
        let g: Vec<&String> = (0..n).map(|_| rng.pick(dims)).collect();
        q["group_by"] = json!(g);
    }
    if rng.chance(2) {
        q["filter"] = json!({"status": ["A"], "party": ["DEM", "REP"]});
    }
    if rng.chance(4) {
        q["dry_run"] = json!(rng.chance(2));
    }
    q
}

/// Builds request number `i`. `fields` come from
/// `/openapi.json`; `dims` from `/v1/datasets`.
fn case(i: usize, token: &str, fields: &[String], dims: &[String]) -> Case {
    let mut rng = Rng::new(i as u64 + 1);
    let auth = |t: &str| {
        vec![(
            "authorization".to_owned(),
            format!("Bearer {t}").into_bytes(),
        )]
    };
    let json_post = |kind, body: Vec<u8>| Case {
        kind,
        method: "POST",
        path: "/v1/query".into(),
        headers: auth(token)
            .into_iter()
            .chain([("content-type".to_owned(), b"application/json".to_vec())])
            .collect(),
        body: Some(body),
    };
    match rng.below(14) {
        0 => {
            // Each schema field replaced by a value of the wrong type.
            let mut q = base_query(&mut rng, dims);
            let name = rng.pick(fields).clone();
            q[name.as_str()] = wrong_value(&mut rng);
            json_post("wrong type", q.to_string().into_bytes())
        }
        1 => {
            // Required fields dropped, unknown fields added.
            let mut q = base_query(&mut rng, dims);
            let obj = q.as_object_mut().unwrap();
            if rng.chance(2) {
                let name = rng.pick(fields);
                obj.remove(name);
            } else {
                obj.insert(rng.pick(ODD).to_string(), wrong_value(&mut rng));
            }
            json_post("missing or extra field", q.to_string().into_bytes())
        }
        2 => {
            // Odd dimension names and values.
            let mut q = base_query(&mut rng, dims);
            let odd = rng.pick(ODD).to_string();
            match rng.below(3) {
                0 => q["group_by"] = json!([odd]),
                1 => q["filter"] = json!({ odd: ["A"] }),
                _ => q["filter"] = json!({ rng.pick(dims).as_str(): [odd] }),
            }
            json_post("odd names", q.to_string().into_bytes())
        }
        3 => {
            // Epsilon edge cases, spelled as raw JSON numbers.
            let eps = *rng.pick(&[
                "NaN",
                "nan",
                "Infinity",
                "-Infinity",
                "1e309",
                "-1e309",
                "1e-400",
                "-0.0",
                "0",
                "-1",
                "1e-7",
                "1.0000001",
                "1e6",
                "\"0.5\"",
                "null",
                "[0.5]",
                "0x10",
                "1_000",
                ".5",
                "5.",
                "+1",
                "0.5e",
                "9999999999999999999999999",
            ]);
            let body = format!(r#"{{"dataset": "nc", "group_by": ["party"], "epsilon": {eps}}}"#);
            json_post("epsilon", body.into_bytes())
        }
        4 => {
            // Huge arrays (under the body limit, mostly).
            let n = *rng.pick(&[1_000usize, 5_000, 20_000]);
            let q = if rng.chance(2) {
                json!({"dataset": "nc", "epsilon": 0.5, "group_by": vec!["party"; n]})
            } else {
                json!({"dataset": "nc", "epsilon": 0.5, "filter": {"county": vec!["WAKE"; n]}})
            };
            json_post("huge array", q.to_string().into_bytes())
        }
        5 => {
            // Deep nesting: 10,000 levels, alone or as a field's value.
            let depth = *rng.pick(&[200usize, 10_000]);
            let nest = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let body = match rng.below(3) {
                0 => nest,
                1 => format!(r#"{{"dataset": "nc", "epsilon": 0.5, "group_by": {nest}}}"#),
                _ => format!(
                    r#"{{"dataset": "nc", "epsilon": 0.5, "filter": {}"x": 1{}}}"#,
                    "{\"a\": ".repeat(depth),
                    "}".repeat(depth)
                ),
            };
            json_post("deep nesting", body.into_bytes())
        }
        6 => {
            // A valid body, mutated byte by byte, truncated or with junk.
            let mut body = base_query(&mut rng, dims).to_string().into_bytes();
            for _ in 0..=rng.below(4) {
                let at = rng.below(body.len());
                match rng.below(5) {
                    0 => body[at] ^= 1 << rng.below(8),
                    1 => body.truncate(at),
                    2 => body.insert(at, *rng.pick(b"{}[]\",:\\\0\xff\xc3\n")),
                    3 => {
                        body.remove(at);
                    }
                    _ => body
                        .splice(at..at, b"\\ud800".iter().copied())
                        .for_each(drop),
                }
                if body.is_empty() {
                    break;
                }
            }
            json_post("mutated bytes", body)
        }
        7 => {
            // Random bytes.
            let n = rng.below(300);
            let body: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            json_post("random bytes", body)
        }
        8 => {
            // Oversized bodies.
            let n = *rng.pick(&[70_000usize, 300_000, 2_000_000]);
            let body = format!(
                r#"{{"dataset": "nc", "epsilon": 0.5, "group_by": ["{}"]}}"#,
                "a".repeat(n)
            );
            json_post("oversized", body.into_bytes())
        }
        9 => {
            // Wrong methods on every route.
            let method = *rng.pick(&["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"]);
            let path = rng.pick(&[
                "/healthz",
                "/openapi.json",
                "/v1/datasets",
                "/v1/query",
                "/v1/budget",
                "/v1/releases",
            ]);
            Case {
                kind: "method",
                method,
                path: path.to_string(),
                headers: auth(token),
                body: rng.chance(2).then(|| b"{}".to_vec()),
            }
        }
        10 => {
            // Wrong paths.
            let path = rng
                .pick(&[
                    "/",
                    "/v1",
                    "/v1/",
                    "/v1/query/",
                    "/v1/QUERY",
                    "//v1/query",
                    "/v1/query/../budget",
                    "/v1/%00",
                    "/v1/%ff%fe",
                    "/v2/query",
                    "/v1/query;x",
                    "/.env",
                    "/v1/datasets?dataset=nc&x=%00",
                ])
                .to_string();
            let path = if rng.chance(8) {
                format!("/{}", "a".repeat(4000))
            } else {
                path
            };
            Case {
                kind: "path",
                method: if rng.chance(2) { "GET" } else { "POST" },
                path,
                headers: auth(token),
                body: None,
            }
        }
        11 => {
            // Content types and encodings.
            let types: [&[u8]; 6] = [
                b"text/plain",
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
                b"application/json; charset=utf-16",
                b"application/json\xff",
                b"",
            ];
            let ct = *rng.pick(&types);
            let mut headers = auth(token);
            headers.push(("content-type".into(), ct.to_vec()));
            if rng.chance(3) {
                headers.push(("content-encoding".into(), b"gzip".to_vec()));
            }
            Case {
                kind: "content type",
                method: "POST",
                path: "/v1/query".into(),
                headers,
                body: Some(base_query(&mut rng, dims).to_string().into_bytes()),
            }
        }
        12 => {
            // Bad authorization headers.
            let value: Vec<u8> = match rng.below(10) {
                0 => b"".to_vec(),
                1 => b"Bearer".to_vec(),
                2 => b"Bearer ".to_vec(),
                3 => b"Basic YWxpY2U6cGFzcw==".to_vec(),
                4 => format!("Bearer {token}x").into_bytes(),
                5 => format!("Bearer {}", &token[..token.len() - 1]).into_bytes(),
                6 => format!("Bearer {}", "t".repeat(6000)).into_bytes(),
                7 => b"Bearer \xff\xfe\x80".to_vec(),
                8 => format!("Token {token}").into_bytes(),
                _ => format!("Bearer\t{token}").into_bytes(),
            };
            let mut headers = vec![("authorization".to_owned(), value)];
            if rng.chance(4) {
                headers.push((
                    "authorization".into(),
                    format!("Bearer {token}").into_bytes(),
                ));
            }
            Case {
                kind: "auth",
                method: if rng.chance(2) { "GET" } else { "POST" },
                path: rng
                    .pick(&["/v1/query", "/v1/budget", "/v1/datasets"])
                    .to_string(),
                headers,
                body: Some(base_query(&mut rng, dims).to_string().into_bytes()),
            }
        }
        _ => {
            // Well-formed queries (some valid, some not): the server must
            // still answer them among the junk.
            let q = base_query(&mut rng, dims);
            json_post("well-formed", q.to_string().into_bytes())
        }
    }
}

/// Checks one answer: no 5xx, errors in the one shape with a known code.
fn check(i: usize, c: &Case, status: u16, text: &str) {
    assert!(status < 500, "case {i} ({}): {status} {text}", c.kind);
    if status < 400 {
        if status == 200 {
            serde_json::from_str::<Value>(text)
                .unwrap_or_else(|e| panic!("case {i} ({}): 200 without JSON ({e})", c.kind));
        }
        return;
    }
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("case {i} ({}): {status} without JSON ({e}): {text}", c.kind));
    let err = body["error"].as_object().unwrap_or_else(|| {
        panic!(
            "case {i} ({}): {status} not an error object: {text}",
            c.kind
        )
    });
    assert_eq!(body.as_object().unwrap().len(), 1, "case {i}: {text}");
    assert_eq!(err.len(), 2, "case {i}: only code and message: {text}");
    let code = err["code"].as_str().unwrap_or("");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "case {i}: {text}"
    );
    let known = KNOWN.iter().find(|(k, _)| *k == code);
    assert!(
        known.is_some(),
        "case {i} ({}): unknown code `{code}`",
        c.kind
    );
    assert_eq!(
        known.unwrap().1,
        status,
        "case {i}: {code} with status {status}"
    );
}

#[test]
fn generated_requests_never_get_a_5xx_and_errors_have_one_shape() {
    let cases = env_usize("FUZZ_CASES", 1500);
    let (_dir, server, alice) = start_alice("request_timeout_secs = 5");

    // The schema: QueryRequest's fields.
    let api = server.send("GET", "/openapi.json", None, None);
    assert_eq!(api.status, 200);
    let props = api.body["components"]["schemas"]["QueryRequest"]["properties"]
        .as_object()
        .expect("QueryRequest properties in the OpenAPI document");
    let fields: Vec<String> = props.keys().cloned().collect();
    assert!(fields.len() >= 4, "{fields:?}");
    let ds = server.get("/v1/datasets", &alice.token);
    let dims: Vec<String> = ds.body["datasets"][0]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..cases {
        let c = case(i, &alice.token, &fields, &dims);
        let mut req = http::Request::new(c.method, &c.path);
        for (k, v) in &c.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &c.body {
            req = req.body(http::Body::Bytes(b.clone()));
        }
        let t = Instant::now();
        let resp = http::send(&server.url, &req, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("case {i} ({}): no answer: {e}", c.kind));
        let status = resp.status;
        let text = resp.text();
        slowest = slowest.max(t.elapsed());
        check(i, &c, status, &text);
        *by_status.entry(status).or_default() += 1;
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "-".into());
        *by_code.entry(code).or_default() += 1;
    }
    eprintln!(
        "http fuzz: {cases} cases in {:.1}s (slowest {:.0} ms); by status {by_status:?}; by code {by_code:?}",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    );
    assert!(
        by_status.get(&200).copied().unwrap_or(0) > cases / 50,
        "too few successes: the generator may be broken"
    );

    // Still alive and answering.
    let health = server.send("GET", "/healthz", None, None);
    assert_eq!(health.status, 200);
    let q = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": ["party"], "epsilon": 0.123}),
    );
    assert_eq!(q.status, 200, "{}", q.text);
    let log = server.log();
    assert!(!log.contains("status=500"), "a 5xx was logged");
    assert!(!log.contains("panicked"), "a panic was logged");
}

// ----- slow clients and limits ----------------------------------------------

/// A server with small limits: 2 s to send a request, 4 KiB bodies, 1000
/// cells, one query in flight per analyst.
fn limited() -> (tempfile::TempDir, Server, TestAnalyst) {
    start_alice(
        "request_timeout_secs = 2\nmax_body_bytes = 4096\nmax_cells = 1000\nmax_concurrent_per_token = 1",
    )
}

fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// What a slow client saw: when the server cut it off and what it answered.
#[derive(Debug)]
struct Cut {
    /// Until the server closed the connection.
    after: Duration,
    /// Until the first byte of an answer.
    answered: Option<Duration>,
    response: String,
}

/// Sends `head` then `body` one byte every `gap`, until the server closes
/// the connection (or 30 s pass); returns when and what it answered.
fn trickle(addr: &str, head: &[u8], body: &[u8], slow_head: bool, gap: Duration) -> Cut {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let bytes: Vec<u8> = if slow_head {
        head.to_vec()
    } else {
        s.write_all(head).unwrap();
        body.to_vec()
    };
    let mut buf = [0u8; 4096];
    let mut closed = false;
    let mut answered = None;
    for b in bytes.iter().cycle() {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        if s.write_all(&[*b]).is_err() {
            closed = true;
        }
        match s.read(&mut buf) {
            Ok(0) => closed = true,
            Ok(n) => {
                answered.get_or_insert(started.elapsed());
                response.extend_from_slice(&buf[..n]);
            }
            Err(_) => {}
        }
        if closed {
            break;
        }
        std::thread::sleep(gap);
    }
    // Read whatever is left of the answer.
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        answered.get_or_insert(started.elapsed());
        response.extend_from_slice(&buf[..n]);
    }
    Cut {
        after: started.elapsed(),
        answered,
        response: String::from_utf8_lossy(&response).into_owned(),
    }
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    let (_dir, server, alice) = limited();
    let addr = addr(&server);
    let body = r#"{"dataset": "nc", "group_by": ["party"], "epsilon": 0.5}"#;
    let head_only = format!(
        "POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        alice.token,
        body.len() * 10
    );
    let slow: Vec<_> = (0..8)
        .map(|k| {
            let (addr, head) = (addr.clone(), head_only.clone());
            std::thread::spawn(move || {
                trickle(
                    &addr,
                    head.as_bytes(),
                    body.as_bytes(),
                    k % 2 == 0,
                    Duration::from_millis(100),
                )
            })
        })
        .collect();

    // Meanwhile, ordinary clients are served promptly.
    let mut served = 0;
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(4) {
        i += 1;
        let t = Instant::now();
        let a = server.query(
            &alice.token,
            &json!({"dataset": "nc", "group_by": ["gender"], "epsilon": 0.01 + i as f64 * 1e-5}),
        );
        worst = worst.max(t.elapsed());
        assert_eq!(a.status, 200, "{}", a.text);
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        worst < Duration::from_secs(2),
        "an ordinary query took {worst:?} while slow clients were connected"
    );

    for (k, h) in slow.into_iter().enumerate() {
        let cut = h.join().unwrap();
        let what = if k % 2 == 0 { "head" } else { "body" };
        eprintln!(
            "slow {what} client {k}: answered after {:.1}s, closed after {:.1}s, answer {:?}",
            cut.answered.map_or(f64::NAN, |d| d.as_secs_f64()),
            cut.after.as_secs_f64(),
            cut.response.lines().next().unwrap_or("<none>")
        );
        assert!(
            cut.after < Duration::from_secs(8),
            "a client sending its {what} a byte at a time was not cut off: {:?}",
            cut.after
        );
        if !cut.response.is_empty() {
            assert!(
                cut.response.starts_with("HTTP/1.1 408"),
                "slow {what}: {}",
                cut.response
            );
        }
        if what == "body" {
            // The body timeout is ours: a JSON error.
            assert!(
                cut.response.contains(r#""code":"request_timeout""#),
                "slow body: {}",
                cut.response
            );
        }
    }
    eprintln!("{served} ordinary queries served meanwhile, slowest {worst:?}");
}

#[test]
fn each_limit_has_its_error_code() {
    let (_dir, server, alice) = limited();
    let t = alice.token.as_str();

    // payload_too_large: by Content-Length and by a chunked body.
    let big = format!(
        r#"{{"dataset": "nc", "epsilon": 0.5, "group_by": [{}]}}"#,
        vec!["\"party\""; 600].join(",")
    );
    let a = server.send("POST", "/v1/query", Some(t), Some(big.clone()));
    assert_eq!(
        (a.status, a.code()),
        (413, "payload_too_large"),
        "{}",
        a.text
    );
    let chunked =
        server.request(&testkit::chunked("POST", "/v1/query", big.into_bytes()).bearer(t));
    assert_eq!(chunked.status, 413);
    let v: Value = chunked.body;
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("4096"),
        "names the limit: {v}"
    );

    // A gzip bomb: 2 KB on the wire, 2 MB decoded. The limit counts
    // decoded bytes.
    let mut gzip = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = gzip.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&vec![b' '; 2 << 20]).unwrap());
    let bomb = gzip.wait_with_output().unwrap().stdout;
    writer.join().unwrap();
    assert!(bomb.len() < 4096, "{} bytes compressed", bomb.len());
    let r = server.request(
        &http::Request::new("POST", "/v1/query")
            .bearer(t)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(http::Body::Bytes(bomb)),
    );
    assert_eq!(r.status, 413, "gzip bomb");
    let v: Value = r.body;
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("4096"),
        "names the limit: {v}"
    );

    // too_many_cells.
    let a = server.query(
        t,
        &json!({"dataset": "nc", "group_by": ["county", "age_band", "gender"], "epsilon": 0.5}),
    );
    assert_eq!((a.status, a.code()), (400, "too_many_cells"), "{}", a.text);

    // request_timeout: headers sent, body never finished.
    let cut = trickle(
        &addr(&server),
        format!(
            "POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 50\r\n\r\n"
        )
        .as_bytes(),
        b"{",
        false,
        Duration::from_millis(500),
    );
    assert!(
        cut.response.starts_with("HTTP/1.1 408")
            && cut
                .response
                .contains(r#"{"error":{"code":"request_timeout","message":"#),
        "{cut:?}"
    );
    assert!(cut.after < Duration::from_secs(5), "{cut:?}");

    // too_many_requests: many queries of one analyst at once, limit 1.
    let mut seen_429 = 0;
    let mut ok = 0;
    let counter = Arc::new(AtomicUsize::new(0));
    for round in 0..10 {
        let n = 16;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (barrier, url, token, counter) = (
                    barrier.clone(),
                    server.url.clone(),
                    alice.token.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || {
                    let k = counter.fetch_add(1, Ordering::SeqCst);
                    barrier.wait();
                    let body = json!({"dataset": "nc", "group_by": ["county", "age_band"],
                                      "epsilon": 0.01 + k as f64 * 1e-6});
                    let req = http::Request::new("POST", "/v1/query")
                        .bearer(&token)
                        .json(&body.to_string());
                    let r = http::send(&url, &req, Duration::from_secs(120)).unwrap();
                    (r.status, serde_json::from_str::<Value>(&r.text()).unwrap())
                })
            })
            .collect();
        for h in handles {
            let (status, body) = h.join().unwrap();
            match status {
                200 => ok += 1,
                429 => {
                    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
                    seen_429 += 1;
                }
                other => panic!("round {round}: {other} {body}"),
            }
        }
        if seen_429 > 0 && ok > 0 {
            break;
        }
    }
    eprintln!("concurrency limit 1: {ok} answered, {seen_429} too_many_requests");
    assert!(
        seen_429 > 0,
        "16 simultaneous queries never hit a limit of 1"
    );
    assert!(ok > 0);
    // The slot is released: a lone query passes.
    let a = server.query(t, &json!({"dataset": "nc", "epsilon": 0.777}));
    assert_eq!(a.status, 200, "{}", a.text);
}
