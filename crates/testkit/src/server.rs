//! Servers for tests: the real `rollcall serve` process on a free port
//! ([`Server`]), the same app in process on port 0 ([`spawn_app`]), and the
//! shared NC dataset most server tests query ([`nc_data`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::cli::{Fixture, FixtureSpec, bin};
use crate::config::{ConfigBuilder, DatasetSection, TestAnalyst};
use crate::http::{self, Body, Request};

/// Rows in the shared synthetic dataset.
pub const ROWS: usize = 50_000;
/// Its generator seed (a failure reproduces from it).
pub const SEED: u64 = 20_260_630;

/// The shared dataset: `data_dir/nc` ingested from a clean synthetic NC
/// file, and the generator's truth. Made once per build of the binary
/// ([`Fixture::shared`]).
pub fn nc_data() -> &'static Fixture {
    static DATA: OnceLock<Fixture> = OnceLock::new();
    DATA.get_or_init(|| {
        let spec = FixtureSpec {
            layout: "nc",
            dataset: "nc",
            rows: ROWS,
            seed: SEED,
            quirks: false,
        };
        Fixture::shared(&spec)
    })
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

/// Writes `dir/rollcall.toml` for the shared dataset `nc`; the ledger is
/// `dir/ledger.sqlite`. `extra_server` (TOML lines) is added to `[server]`.
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
    nc_config(data_dir, dir, settings, analysts, extra_server).write(dir)
}

/// The builder behind [`write_config_for`], to change further (e.g. the
/// ledger) before writing.
pub fn nc_config(
    data_dir: &Path,
    dir: &Path,
    settings: &DatasetSettings,
    analysts: &[TestAnalyst],
    extra_server: &str,
) -> ConfigBuilder {
    ConfigBuilder::new(data_dir, &dir.join("ledger.sqlite"))
        .server_lines(extra_server)
        .dataset(
            DatasetSection::nc("nc")
                .epsilon_total(Some(settings.epsilon_total))
                .max_epsilon_per_query(settings.max_epsilon_per_query),
        )
        .analysts(analysts)
}

/// A server on the shared dataset for one analyst, `alice`, whose budget
/// (and the dataset's) never runs out; `extra_server` is added to
/// `[server]`. Keep the folder alive as long as the server.
pub fn start_alice(extra_server: &str) -> (tempfile::TempDir, Server, TestAnalyst) {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 1e8);
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

/// An HTTP answer: status, JSON body (`Null` if not JSON), text, request id.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
    /// The `X-Request-Id` header of the answer.
    pub request_id: Option<String>,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no code>")
    }
}

/// Something that answers HTTP at `url`: a [`Server`] process or an [`App`]
/// in process.
pub trait Speak {
    /// `http://127.0.0.1:PORT`.
    fn url(&self) -> &str;

    /// Sends a request (60 s timeout); panics if there is no answer at all.
    fn request(&self, req: &Request) -> Answer {
        let r = http::send(self.url(), req, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{} {}: no answer: {e}", req.method, req.path));
        let text = r.text();
        Answer {
            status: r.status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            request_id: r.header("x-request-id").map(str::to_owned),
            text,
        }
    }

    /// Sends a request with an optional bearer token and JSON body text.
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<String>) -> Answer {
        let mut req = Request::new(method, path);
        if let Some(t) = token {
            req = req.bearer(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.request(&req)
    }

    /// `GET path` with a token.
    fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, Some(token), None)
    }

    /// `POST /v1/query` with a JSON body.
    fn query(&self, token: &str, body: &Value) -> Answer {
        self.send("POST", "/v1/query", Some(token), Some(body.to_string()))
    }
}

/// A running `rollcall serve` process. Killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<String>>,
    out: Arc<Mutex<String>>,
}

impl Speak for Server {
    fn url(&self) -> &str {
        &self.url
    }
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

    /// Kills the server (SIGKILL: the ledger must survive a crash), waits,
    /// and returns its log.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app of [`server::create_app`] served in this process, on a real
/// socket on port 0, by [`server::run`] on its own actix system. Stopped on
/// drop.
pub struct App {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Speak for App {
    fn url(&self) -> &str {
        &self.url
    }
}

/// Serves `live` in process (its `server.listen` should be port 0) and
/// returns once it listens.
pub fn spawn_app(live: Arc<server::Live>) -> App {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let running = server::run(live).expect("bind");
            tx.send((running.addr, running.server.handle())).unwrap();
            let _ = running.server.await;
        });
    });
    let (addr, handle) = rx.recv().expect("the app started");
    App {
        url: format!("http://{addr}"),
        handle,
        thread: Some(thread),
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::System::new().block_on(handle.stop(true));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

/// The public values of each dimension of the first dataset, from
/// `/v1/datasets`.
pub fn domains(server: &impl Speak, token: &str) -> BTreeMap<String, Vec<String>> {
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

/// A raw chunked-body request, for tests of streamed bodies.
pub fn chunked(method: &str, path: &str, body: Vec<u8>) -> Request {
    Request::new(method, path).body(Body::Chunked(body))
}
