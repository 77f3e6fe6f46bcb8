//! Shared helpers for the server's end-to-end tests: synthesize and ingest a
//! small NC dataset once, write server configs, run the real `rollcall serve`
//! binary on a free port, and speak HTTP to it.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

/// The `rollcall` binary Cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rollcall"))
}

/// Rows in the shared synthetic dataset.
pub const ROWS: usize = 50_000;
/// Its generator seed (a failure reproduces from it).
pub const SEED: u64 = 20_260_630;

/// One row of the generator's truth file.
#[derive(Debug, Clone)]
pub struct TruthRow {
    /// Dimension name → value (`None`: null in the truth file).
    pub values: BTreeMap<String, Option<String>>,
    /// How many voters have exactly these values.
    pub count: u64,
}

/// The shared dataset: `data_dir/nc` ingested from a synthetic file, and the
/// generator's truth.
pub struct NcData {
    /// Folder holding `nc/`.
    pub data_dir: PathBuf,
    /// The truth rows.
    pub truth: Vec<TruthRow>,
}

/// Age band label of a birth year on 2026 with bands [18, 25, ..., 75], as
/// the server's config in these tests defines them.
pub fn age_band(birth_year: Option<&str>) -> String {
    let Some(year) = birth_year.and_then(|y| y.parse::<i32>().ok()) else {
        return "unknown".into();
    };
    if !(1880..=2026).contains(&year) {
        return "unknown".into();
    }
    let age = 2026 - year;
    let edges = [18, 25, 35, 45, 55, 65, 75];
    if age < edges[0] {
        return "<18".into();
    }
    for w in edges.windows(2) {
        if age < w[1] {
            return format!("{}-{}", w[0], w[1] - 1);
        }
    }
    "75+".into()
}

impl NcData {
    /// Exact counts by `dims` (dimension names; `age_band` derived) over the
    /// rows passing `keep`.
    pub fn counts(
        &self,
        dims: &[&str],
        keep: impl Fn(&TruthRow) -> bool,
    ) -> BTreeMap<Vec<String>, u64> {
        let mut out = BTreeMap::new();
        for row in self.truth.iter().filter(|r| keep(r)) {
            let key = dims
                .iter()
                .map(|d| match *d {
                    "age_band" => age_band(row.values["birth_year"].as_deref()),
                    other => row.values[other]
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                })
                .collect();
            *out.entry(key).or_insert(0) += row.count;
        }
        out
    }
}

/// Runs `rollcall ARGS` and panics with its stderr unless it succeeds.
pub fn run_ok(args: &[&str]) {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run rollcall");
    assert!(
        out.status.success(),
        "rollcall {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A whole number from the environment variable `name`, or `default`: lets
/// the scripts run bigger versions of the same tests.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Ingests the NC file `file` as dataset `nc` into `data_dir`.
pub fn ingest_nc(data_dir: &Path, file: &Path) {
    run_ok(&[
        "ingest",
        "--layout",
        "nc",
        "--dataset",
        "nc",
        "--data-dir",
        data_dir.to_str().unwrap(),
        file.to_str().unwrap(),
        "--quiet",
    ]);
}

/// Synthesizes and ingests the shared dataset once per test binary.
pub fn nc_data() -> &'static NcData {
    static DATA: OnceLock<NcData> = OnceLock::new();
    DATA.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("server-e2e-nc");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let raw = root.join("nc.txt");
        let truth = root.join("truth.json");
        let data_dir = root.join("data");
        run_ok(&[
            "synth",
            "--layout",
            "nc",
            "--rows",
            &ROWS.to_string(),
            "--seed",
            &SEED.to_string(),
            "--out",
            raw.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
        ]);
        ingest_nc(&data_dir, &raw);
        let _ = std::fs::remove_file(&raw);
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
        let truth = json["rows"]
            .as_array()
            .expect("truth has rows")
            .iter()
            .map(|r| {
                let obj = r.as_object().unwrap();
                let values = obj
                    .iter()
                    .filter(|(k, _)| k.as_str() != "count")
                    .map(|(k, v)| {
                        let s = match v {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        };
                        (k.clone(), s)
                    })
                    .collect();
                TruthRow {
                    values,
                    count: obj["count"].as_u64().unwrap(),
                }
            })
            .collect();
        NcData { data_dir, truth }
    })
}

/// An analyst for a test config.
#[derive(Debug, Clone)]
pub struct TestAnalyst {
    /// Name.
    pub name: &'static str,
    /// Bearer token (its SHA-256 goes into the config).
    pub token: String,
    /// Budget per dataset (empty: may query nothing).
    pub epsilon: Vec<(&'static str, f64)>,
}

impl TestAnalyst {
    /// An analyst with a budget on `nc`.
    pub fn nc(name: &'static str, budget: f64) -> TestAnalyst {
        TestAnalyst {
            name,
            token: format!("test-token-{name}-5f1d0c9a7e3b"),
            epsilon: vec![("nc", budget)],
        }
    }
}

/// SHA-256 hex of a token, computed by `rollcall token --hash-stdin`.
pub fn hash_token(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(["token", "--hash-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A server on the shared dataset for one analyst, `alice`, whose budget
/// (and the dataset's) never runs out; `extra_server` is appended to
/// `[server]`. Keep the folder alive as long as the server.
pub fn start_alice(extra_server: &str) -> (tempfile::TempDir, Server, TestAnalyst) {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 1e9);
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings {
            epsilon_total: 1e9,
            max_epsilon_per_query: 1.0,
        },
        std::slice::from_ref(&alice),
        extra_server,
    ));
    (dir, server, alice)
}

/// Dataset-level settings of a test config.
#[derive(Debug, Clone)]
pub struct DatasetSettings {
    /// `epsilon_total`.
    pub epsilon_total: f64,
    /// `max_epsilon_per_query`.
    pub max_epsilon_per_query: f64,
}

impl Default for DatasetSettings {
    fn default() -> Self {
        DatasetSettings {
            epsilon_total: 1000.0,
            max_epsilon_per_query: 1.0,
        }
    }
}

/// Writes `dir/rollcall.toml` for the shared dataset; the ledger is
/// `dir/ledger.sqlite`. `extra_server` is appended to `[server]`.
pub fn write_config(
    dir: &Path,
    settings: &DatasetSettings,
    analysts: &[TestAnalyst],
    extra_server: &str,
) -> PathBuf {
    write_config_for(&nc_data().data_dir, dir, settings, analysts, extra_server)
}

/// [`write_config`] for an `nc` dataset ingested into `data_dir` (not the
/// shared one).
pub fn write_config_for(
    data_dir: &Path,
    dir: &Path,
    settings: &DatasetSettings,
    analysts: &[TestAnalyst],
    extra_server: &str,
) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nledger = {:?}\n{extra_server}\n\n\
         [[dataset]]\nname = \"nc\"\nlayout = \"nc\"\nas_of = \"2026-06-30\"\n\
         age_bands = [18, 25, 35, 45, 55, 65, 75]\nepsilon_total = {:?}\nmax_epsilon_per_query = {:?}\n",
        data_dir.to_str().unwrap(),
        dir.join("ledger.sqlite").to_str().unwrap(),
        settings.epsilon_total,
        settings.max_epsilon_per_query,
    );
    for a in analysts {
        let budgets: Vec<String> = a
            .epsilon
            .iter()
            .map(|(d, e)| format!("{d} = {e:?}"))
            .collect();
        text += &format!(
            "\n[[analyst]]\nname = \"{}\"\ntoken_sha256 = \"{}\"\nepsilon = {{ {} }}\n",
            a.name,
            hash_token(&a.token),
            budgets.join(", ")
        );
    }
    let path = dir.join("rollcall.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `rollcall serve` process. Killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<String>>,
    out: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

/// Starts `rollcall serve --config CONFIG [extra args]` and waits until it
/// prints its address; `Err(stderr)` if it exits first.
pub fn try_start(config: &Path, extra: &[&str]) -> Result<Server, String> {
    try_start_with_log_level(config, extra, "info")
}

/// [`try_start`] with `RUST_LOG` set to `level`.
pub fn try_start_with_log_level(
    config: &Path,
    extra: &[&str],
    level: &str,
) -> Result<Server, String> {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("RUST_LOG", level)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rollcall serve");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let stderr_done = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("rollcall: listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
            let mut out = sink.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => Ok(Server {
            child,
            url,
            log,
            out,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let _ = stderr_done.join();
            let text = log.lock().unwrap().clone();
            Err(format!("exit {status}: {text}"))
        }
    }
}

/// Starts the server or panics with its stderr.
pub fn start(config: &Path) -> Server {
    try_start(config, &[]).unwrap_or_else(|e| panic!("server did not start: {e}"))
}

/// The rows of an answer as (key values in `dims` order, count).
pub fn rows(answer: &Answer, dims: &[&str]) -> Vec<(Vec<String>, i64)> {
    answer.body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {}", answer.text))
        .iter()
        .map(|r| {
            let key = dims
                .iter()
                .map(|d| {
                    r[*d]
                        .as_str()
                        .unwrap_or_else(|| panic!("row without {d}: {r}"))
                        .to_owned()
                })
                .collect();
            (key, r["count"].as_i64().unwrap())
        })
        .collect()
}

/// The public values of each dimension, from `/v1/datasets`.
pub fn domains(server: &Server, token: &str) -> BTreeMap<String, Vec<String>> {
    let a = server.get("/v1/datasets", token);
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["datasets"][0]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// An HTTP answer: status and JSON body (`Null` if not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no code>")
    }
}

impl Server {
    /// What the server has written to stderr (its log) so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Kills the server (SIGKILL: the ledger must survive a crash) and waits.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }

    /// Sends a request with an optional bearer token and raw body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    /// `GET path` with a token.
    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, Some(token), None)
    }

    /// `POST /v1/query` with a JSON body.
    pub fn query(&self, token: &str, body: &Value) -> Answer {
        self.send("POST", "/v1/query", Some(token), Some(body.to_string()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
