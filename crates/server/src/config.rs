//! The server's configuration file (`rollcall serve --config FILE`).
//!
//! TOML, read strictly: an unknown key, a missing dataset folder, a layout
//! that does not match the dataset's manifest, a budget that is not a
//! positive finite number, an analyst budget on a dataset that is not
//! configured, a dataset in a population that is not configured, a
//! duplicate name or a token hash that is not 64 hex digits stops start-up
//! with a [`ConfigError`] naming the key
//! (`dataset[0].epsilon_total: must be a finite number above 0`).
//!
//! **Populations.** The unit of privacy is one voter, and several datasets
//! can hold the same voters (two snapshots of a state, a county extract, one
//! file ingested under two names). A `[[population]]` names such a group and
//! its `epsilon_total`, the cap on everything spent on all its datasets by
//! everyone: what bounds one voter's privacy loss. Each dataset that holds
//! those voters says `population = "…"`; a dataset without one is its own
//! population, capped by its own `epsilon_total`. A dataset in a population
//! may still have an `epsilon_total` of its own, which then also holds.
//! Analyst budgets (`[[analyst]] epsilon`) are shares of these caps.
//!
//! Budgets are exact decimals: they are read as written and kept as whole
//! nano-ε ([`privacy::Epsilon`]), so `2.0` affords exactly 40 queries at
//! `0.05`.
//!
//! **Relative paths** (`data_dir`, `ledger`, `password_file`) are resolved
//! against the current working directory, the way `rollcall ingest
//! --data-dir data` is run from the repository root; run the server from
//! the same place or give absolute paths.
//!
//! **The ledger** is a SQLite file (`ledger = "data/ledger.sqlite"`, one
//! server) or a PostgreSQL database that several replicas share, given as a
//! URL (`ledger = "postgres://rollcall@db.internal:5432/rollcall"`) or as a
//! table that keeps the password out of the config:
//!
//! ```toml
//! [server.ledger]
//! url = "postgres://rollcall@db.internal:5432/rollcall"
//! password_file = "/etc/rollcall/ledger-password"   # first line; optional
//! pool_size = 8               # connections kept at most (default 8)
//! connect_timeout_secs = 5    # then a query is answered 503 ledger_unavailable (default 5)
//! ```
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! data_dir = "data"
//! ledger = "data/ledger.sqlite"
//!
//! [[population]]
//! name = "nc-voters"
//! epsilon_total = 10.0
//!
//! [[dataset]]
//! name = "nc"
//! layout = "nc"
//! as_of = "2026-06-30"
//! age_bands = [18, 25, 35, 45, 55, 65, 75]
//! population = "nc-voters"
//! max_epsilon_per_query = 1.0
//! share_releases = true      # the default: stored answers are free for everyone
//!
//! [[dataset.election]]        # turnout of this election is the dimension vote_2024g
//! id = "2024g"
//! date = "2024-11-05"
//! type = "general"            # general | primary | special | runoff | presidential_preference
//!
//! [[analyst]]
//! name = "alice"
//! token_sha256 = "…64 hex digits…"
//! epsilon = { nc = 3.0 }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use privacy::{Epsilon, Location, PostgresSettings};
use serde::Deserialize;

/// Default cap on the number of cells (rows) of one answer.
pub const DEFAULT_MAX_CELLS: u64 = 100_000;
/// Default cap on a request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default time a client has to send its request head, and then its body,
/// in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// Default number of queries one analyst may have in flight at once.
pub const DEFAULT_MAX_CONCURRENT_PER_TOKEN: usize = 64;

/// Default quantum, in milliseconds, of the padding of counting and noise.
pub const DEFAULT_TIMING_QUANTUM_MS: f64 = 0.5;
/// Largest `timing_quantum_ms` accepted.
pub const MAX_TIMING_QUANTUM_MS: f64 = 1000.0;
/// Largest `[server.ledger] pool_size` accepted.
pub const MAX_POOL_SIZE: i64 = 1000;
/// Largest `[server.ledger] connect_timeout_secs` accepted.
pub const MAX_CONNECT_TIMEOUT_SECS: i64 = 300;

/// A configuration problem, naming the key (`dataset[1].layout`) or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key (or file) that is wrong.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The file as written (before validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: ServerFile,
    #[serde(default)]
    population: Vec<PopulationFile>,
    #[serde(default)]
    dataset: Vec<DatasetFile>,
    #[serde(default)]
    analyst: Vec<AnalystFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PopulationFile {
    name: String,
    epsilon_total: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: String,
    data_dir: PathBuf,
    /// A string (a path or a URL) or a `[server.ledger]` table: read by
    /// [`validate_ledger`], so each mistake names its key.
    ledger: toml::Value,
    max_cells: Option<u64>,
    max_body_bytes: Option<usize>,
    request_timeout_secs: Option<u64>,
    max_concurrent_per_token: Option<usize>,
    workers: Option<usize>,
    metrics_token_sha256: Option<String>,
    timing_quantum_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetFile {
    name: String,
    layout: String,
    as_of: String,
    age_bands: Vec<u16>,
    epsilon_total: Option<f64>,
    max_epsilon_per_query: f64,
    population: Option<String>,
    share_releases: Option<bool>,
    #[serde(default)]
    election: Vec<ElectionFile>,
}

/// One `[[dataset.election]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElectionFile {
    id: String,
    date: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalystFile {
    name: String,
    token_sha256: String,
    #[serde(default)]
    epsilon: BTreeMap<String, f64>,
}

/// `[server]`: where to listen, where the data and the ledger are, limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to bind, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub listen: String,
    /// Where `rollcall ingest --data-dir` wrote the datasets.
    pub data_dir: PathBuf,
    /// The ledger: a SQLite file (created if missing) or a PostgreSQL
    /// database shared by several replicas.
    pub ledger: Location,
    /// Most cells one query may have (`too_many_cells` above).
    pub max_cells: u64,
    /// Largest request body accepted (`payload_too_large` above).
    pub max_body_bytes: usize,
    /// Seconds a client has to send its request head, and then as many to
    /// send its body (`request_timeout` above).
    pub request_timeout_secs: u64,
    /// Queries one analyst may have in flight (`too_many_requests` above).
    pub max_concurrent_per_token: usize,
    /// HTTP worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// SHA-256 of the bearer token `GET /metrics` requires; `None`: the
    /// endpoint is open (firewall it: it carries no data or secrets, but
    /// shows traffic and ε spent).
    pub metrics_token_sha256: Option<TokenHash>,
    /// A fresh release answers at a deadline fixed per public shape (see
    /// `release::timing`), a multiple of this many milliseconds (fractions
    /// allowed; 0: no padding), so the response time does not tell the
    /// size of the noise drawn.
    pub timing_quantum_ms: f64,
}

/// One `[[population]]`: datasets holding the same voters, and the cap on
/// all that is spent on them.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationConfig {
    /// Name, as recorded in the ledger with every spend charged to it.
    pub name: String,
    /// Cap on the ε spent on all its datasets by all analysts together.
    pub epsilon_total: Epsilon,
}

/// One `[[dataset]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetConfig {
    /// Name: the folder under `data_dir` and the name queries use.
    pub name: String,
    /// Layout name or path; gives the public domains.
    pub layout: String,
    /// The reference date, `YYYY-MM-DD`.
    pub as_of: String,
    /// Its year: age = as_of year − birth year.
    pub as_of_year: i16,
    /// Lower edges of the age bands.
    pub age_bands: Vec<u16>,
    /// Its own cap on the ε spent on it by all analysts together: required
    /// when it has no population (it is then its own), optional otherwise.
    pub epsilon_total: Option<Epsilon>,
    /// The most ε one query may spend.
    pub max_epsilon_per_query: Epsilon,
    /// The `[[population]]` its voters belong to; `None`: its own.
    pub population: Option<String>,
    /// Whether a stored release is served free to any analyst (`true`, the
    /// default) or only to the analyst who paid for it.
    pub share_releases: bool,
    /// `[[dataset.election]]`: the elections whose turnout is public, each
    /// a dimension `vote_<id>` once an ingest with history has stored it.
    pub elections: Vec<layout::Election>,
}

/// The SHA-256 of a bearer token. Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(…)")
    }
}

/// One `[[analyst]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalystConfig {
    /// Name, as recorded in the ledger.
    pub name: String,
    /// SHA-256 of the analyst's bearer token.
    pub token_sha256: TokenHash,
    /// The analyst's own budget per dataset; only these datasets may be queried.
    pub epsilon: BTreeMap<String, Epsilon>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[population]]`, in file order.
    pub populations: Vec<PopulationConfig>,
    /// `[[dataset]]`, in file order.
    pub datasets: Vec<DatasetConfig>,
    /// `[[analyst]]`, in file order.
    pub analysts: Vec<AnalystConfig>,
}

/// The population a dataset's spends are charged to: its name, its cap and
/// every dataset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulationOf {
    /// The population's name (the dataset's own for a dataset without one).
    pub name: String,
    /// Its cap.
    pub cap: Epsilon,
    /// Its datasets, in config order.
    pub members: Vec<String>,
}

impl Config {
    /// The population of dataset `d` (one of this config's).
    pub fn population_of(&self, d: &DatasetConfig) -> PopulationOf {
        match &d.population {
            Some(name) => PopulationOf {
                name: name.clone(),
                cap: self
                    .populations
                    .iter()
                    .find(|p| &p.name == name)
                    .map_or(Epsilon::ZERO, |p| p.epsilon_total),
                members: self
                    .datasets
                    .iter()
                    .filter(|m| m.population.as_ref() == Some(name))
                    .map(|m| m.name.clone())
                    .collect(),
            },
            None => PopulationOf {
                name: d.name.clone(),
                cap: d.epsilon_total.unwrap_or(Epsilon::ZERO),
                members: vec![d.name.clone()],
            },
        }
    }
}

/// A budget as written: a finite number above 0, kept as exact nano-ε
/// (rounded down past nine decimals).
fn budget(key: String, value: f64) -> Result<Epsilon, ConfigError> {
    let refuse = || {
        ConfigError::new(
            key.clone(),
            format!("must be a finite number above 0 (at least 0.000000001), got {value}"),
        )
    };
    match Epsilon::from_decimal_f64(value) {
        Ok(e) if e > Epsilon::ZERO => Ok(e),
        _ => Err(refuse()),
    }
}

/// Parses a token hash: 64 hex digits. The error never echoes the value: it
/// is a (hashed) credential.
fn parse_token_hash(key: String, text: &str) -> Result<TokenHash, ConfigError> {
    let hex_ok = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let mut hash = [0u8; 32];
    if !hex_ok || hex::decode_to_slice(text, &mut hash).is_err() {
        return Err(ConfigError::new(
            key,
            "must be the SHA-256 of the token as 64 hex digits (`rollcall token` prints one)",
        ));
    }
    Ok(TokenHash(hash))
}

fn check_name(key: String, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!(
                "`{name}` is not a valid name (1-64 of A-Z a-z 0-9 _ - ., not starting with .)"
            ),
        ))
    }
}

/// Parses `YYYY-MM-DD` and returns its year.
fn parse_date(key: String, text: &str) -> Result<i16, ConfigError> {
    let bad = || ConfigError::new(key.clone(), format!("`{text}` is not a date YYYY-MM-DD"));
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let year: i16 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day == 0 || day > days {
        return Err(bad());
    }
    Ok(year)
}

impl Config {
    /// Reads and validates a config file. Does not look at the data; see
    /// [`crate::state::AppState::load`] for the checks against the datasets.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        Config::from_toml(&text).map_err(|e| {
            if e.key.is_empty() {
                ConfigError::new(path.display().to_string(), e.message)
            } else {
                e
            }
        })
    }

    /// Parses and validates config text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        validate(file)
    }
}

/// Turns a TOML/serde error into one that names the key where possible.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().to_owned();
    // The span points at the offending key or value; give its line.
    let at = e
        .span()
        .map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text
                .get(span.clone())
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .trim();
            if snippet.is_empty() {
                format!("line {line}")
            } else {
                format!("line {line} (`{snippet}`)")
            }
        })
        .unwrap_or_default();
    ConfigError::new(String::new(), format!("{at}: {message}"))
}

fn validate(file: ConfigFile) -> Result<Config, ConfigError> {
    let server = validate_server(file.server)?;
    let populations = validate_populations(file.population)?;
    let datasets = validate_datasets(file.dataset, &populations)?;
    let analysts = validate_analysts(file.analyst, &datasets)?;
    Ok(Config {
        server,
        populations,
        datasets,
        analysts,
    })
}

fn validate_server(s: ServerFile) -> Result<ServerConfig, ConfigError> {
    if s.listen.trim().is_empty() {
        return Err(ConfigError::new("server.listen", "must not be empty"));
    }
    if s.listen.parse::<std::net::SocketAddr>().is_err() && !s.listen.contains(':') {
        return Err(ConfigError::new(
            "server.listen",
            format!("`{}` is not HOST:PORT", s.listen),
        ));
    }
    let positive = |key: &str, v: Option<u64>, default: u64| -> Result<u64, ConfigError> {
        match v {
            Some(0) => Err(ConfigError::new(
                format!("server.{key}"),
                "must be at least 1",
            )),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    let max_cells = positive("max_cells", s.max_cells, DEFAULT_MAX_CELLS)?;
    if max_cells > engine::MAX_CELLS {
        return Err(ConfigError::new(
            "server.max_cells",
            format!("at most {} is supported", engine::MAX_CELLS),
        ));
    }
    let max_body_bytes = positive(
        "max_body_bytes",
        s.max_body_bytes.map(|v| v as u64),
        DEFAULT_MAX_BODY_BYTES as u64,
    )? as usize;
    let request_timeout_secs = positive(
        "request_timeout_secs",
        s.request_timeout_secs,
        DEFAULT_REQUEST_TIMEOUT_SECS,
    )?;
    let max_concurrent_per_token = positive(
        "max_concurrent_per_token",
        s.max_concurrent_per_token.map(|v| v as u64),
        DEFAULT_MAX_CONCURRENT_PER_TOKEN as u64,
    )? as usize;
    let workers = match s.workers {
        Some(0) => return Err(ConfigError::new("server.workers", "must be at least 1")),
        w => w,
    };
    let metrics_token_sha256 = s
        .metrics_token_sha256
        .as_deref()
        .map(|h| parse_token_hash("server.metrics_token_sha256".into(), h))
        .transpose()?;
    let timing_quantum_ms = s.timing_quantum_ms.unwrap_or(DEFAULT_TIMING_QUANTUM_MS);
    if !(0.0..=MAX_TIMING_QUANTUM_MS).contains(&timing_quantum_ms) {
        return Err(ConfigError::new(
            "server.timing_quantum_ms",
            format!("must be from 0 to {MAX_TIMING_QUANTUM_MS} milliseconds (0 turns padding off)"),
        ));
    }
    Ok(ServerConfig {
        listen: s.listen,
        data_dir: s.data_dir,
        ledger: validate_ledger(s.ledger)?,
        max_cells,
        max_body_bytes,
        request_timeout_secs,
        max_concurrent_per_token,
        workers,
        metrics_token_sha256,
        timing_quantum_ms,
    })
}

/// `ledger = "PATH"`, `ledger = "postgres://…"` or a `[server.ledger]`
/// table (PostgreSQL only: `url`, `password_file`, `pool_size`,
/// `connect_timeout_secs`).
fn validate_ledger(value: toml::Value) -> Result<Location, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::new(format!("server.{key}"), message);
    let table = match value {
        toml::Value::String(text) if text.trim().is_empty() => {
            return Err(invalid("ledger", "must not be empty".into()));
        }
        toml::Value::String(text) => {
            return Location::parse(&text).map_err(|e| invalid("ledger", e.to_string()));
        }
        toml::Value::Table(table) => table,
        _ => {
            return Err(invalid(
                "ledger",
                "must be a SQLite file path or a postgres:// URL (a string), or a                  [server.ledger] table with `url`"
                    .into(),
            ));
        }
    };
    const KEYS: [&str; 4] = ["url", "password_file", "pool_size", "connect_timeout_secs"];
    if let Some(unknown) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(
            &format!("ledger.{unknown}"),
            format!("unknown key (expected one of: {})", KEYS.join(", ")),
        ));
    }
    let url = match table.get("url") {
        Some(toml::Value::String(url)) if PostgresSettings::is_url(url) => url,
        Some(_) => {
            return Err(invalid(
                "ledger.url",
                "must be a postgres:// URL (a SQLite file is given as ledger = \"PATH\")".into(),
            ));
        }
        None => return Err(invalid("ledger.url", "missing".into())),
    };
    let mut settings =
        PostgresSettings::new(url).map_err(|e| invalid("ledger.url", e.to_string()))?;
    if let Some(v) = table.get("password_file") {
        let path = v
            .as_str()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| invalid("ledger.password_file", "must be a file path".into()))?;
        settings.password_file = Some(PathBuf::from(path));
    }
    let whole = |key: &str, max: i64| -> Result<Option<i64>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (1..=max).contains(n) => Ok(Some(*n)),
            Some(_) => Err(invalid(
                &format!("ledger.{key}"),
                format!("must be a whole number from 1 to {max}"),
            )),
        }
    };
    if let Some(n) = whole("pool_size", MAX_POOL_SIZE)? {
        settings.pool_size = n as u32;
    }
    if let Some(n) = whole("connect_timeout_secs", MAX_CONNECT_TIMEOUT_SECS)? {
        settings.connect_timeout = std::time::Duration::from_secs(n as u64);
    }
    Ok(Location::Postgres(settings))
}

fn validate_populations(file: Vec<PopulationFile>) -> Result<Vec<PopulationConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(file.len());
    for (i, p) in file.into_iter().enumerate() {
        let key = |k: &str| format!("population[{i}].{k}");
        check_name(key("name"), &p.name)?;
        if !names.insert(p.name.clone()) {
            return Err(ConfigError::new(
                key("name"),
                format!("population `{}` is configured twice", p.name),
            ));
        }
        out.push(PopulationConfig {
            epsilon_total: budget(key("epsilon_total"), p.epsilon_total)?,
            name: p.name,
        });
    }
    Ok(out)
}

fn validate_datasets(
    file: Vec<DatasetFile>,
    populations: &[PopulationConfig],
) -> Result<Vec<DatasetConfig>, ConfigError> {
    if file.is_empty() {
        return Err(ConfigError::new(
            "dataset",
            "no [[dataset]] is configured; the server would have nothing to answer",
        ));
    }
    let mut names = HashSet::new();
    let mut datasets = Vec::with_capacity(file.len());
    for (i, d) in file.into_iter().enumerate() {
        let key = |k: &str| format!("dataset[{i}].{k}");
        check_name(key("name"), &d.name)?;
        if !names.insert(d.name.clone()) {
            return Err(ConfigError::new(
                key("name"),
                format!("dataset `{}` is configured twice", d.name),
            ));
        }
        datasets.push(validate_dataset(&key, d, populations)?);
    }
    check_population_names(&datasets, populations)?;
    Ok(datasets)
}

/// `[[dataset.election]]`: each well formed, no id and no (date, type) twice.
fn validate_elections(
    key: &dyn Fn(&str) -> String,
    file: &[ElectionFile],
) -> Result<Vec<layout::Election>, ConfigError> {
    let mut out: Vec<layout::Election> = Vec::with_capacity(file.len());
    for (j, e) in file.iter().enumerate() {
        let at = |field: &str| key(&format!("election[{j}].{field}"));
        let election = layout::Election::new(&e.id, &e.date, &e.kind)
            .map_err(|(field, message)| ConfigError::new(at(field), message))?;
        if let Some(k) = out.iter().position(|o| o.id == election.id) {
            return Err(ConfigError::new(
                at("id"),
                format!("`{}` is also election[{k}]'s id", e.id),
            ));
        }
        if let Some(k) = out
            .iter()
            .position(|o| o.date == election.date && o.kind == election.kind)
        {
            return Err(ConfigError::new(
                at("date"),
                format!("election[{k}] has the same date and type"),
            ));
        }
        out.push(election);
    }
    if out.len() > layout::MAX_ELECTIONS {
        return Err(ConfigError::new(
            key("election"),
            format!("at most {} elections per dataset", layout::MAX_ELECTIONS),
        ));
    }
    Ok(out)
}

fn validate_dataset(
    key: &dyn Fn(&str) -> String,
    d: DatasetFile,
    populations: &[PopulationConfig],
) -> Result<DatasetConfig, ConfigError> {
    if d.layout.trim().is_empty() {
        return Err(ConfigError::new(key("layout"), "must not be empty"));
    }
    let as_of_year = parse_date(key("as_of"), &d.as_of)?;
    if d.age_bands.is_empty() {
        return Err(ConfigError::new(
            key("age_bands"),
            "must list at least one edge",
        ));
    }
    if d.age_bands.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ConfigError::new(
            key("age_bands"),
            format!("must be strictly increasing, got {:?}", d.age_bands),
        ));
    }
    if let Some(p) = &d.population
        && !populations.iter().any(|c| &c.name == p)
    {
        let known: Vec<&str> = populations.iter().map(|c| c.name.as_str()).collect();
        return Err(ConfigError::new(
            key("population"),
            format!(
                "no [[population]] is named `{p}` (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let epsilon_total = match (d.epsilon_total, &d.population) {
        (Some(v), _) => Some(budget(key("epsilon_total"), v)?),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(ConfigError::new(
                key("epsilon_total"),
                "missing: a dataset with no `population` is its own population and needs \
                 its own cap (or name a [[population]] that holds its voters)",
            ));
        }
    };
    let elections = validate_elections(key, &d.election)?;
    Ok(DatasetConfig {
        elections,
        name: d.name,
        layout: d.layout,
        as_of: d.as_of,
        as_of_year,
        age_bands: d.age_bands,
        epsilon_total,
        max_epsilon_per_query: budget(key("max_epsilon_per_query"), d.max_epsilon_per_query)?,
        population: d.population,
        share_releases: d.share_releases.unwrap_or(true),
    })
}

/// A dataset without a population is its own population, named after it,
/// so no `[[population]]` may take the name of such a dataset; and every
/// population must hold a dataset (else its name is probably a typo).
fn check_population_names(
    datasets: &[DatasetConfig],
    populations: &[PopulationConfig],
) -> Result<(), ConfigError> {
    for (i, p) in populations.iter().enumerate() {
        if let Some(d) = datasets
            .iter()
            .find(|d| d.population.is_none() && d.name == p.name)
        {
            return Err(ConfigError::new(
                format!("population[{i}].name"),
                format!(
                    "`{}` is also a dataset with no `population`, which is its own population \
                     of that name; rename one, or give dataset `{}` population = \"{}\"",
                    p.name, d.name, p.name
                ),
            ));
        }
        if !datasets
            .iter()
            .any(|d| d.population.as_ref() == Some(&p.name))
        {
            return Err(ConfigError::new(
                format!("population[{i}].name"),
                format!("no [[dataset]] has population = \"{}\"", p.name),
            ));
        }
    }
    Ok(())
}

fn validate_analysts(
    file: Vec<AnalystFile>,
    datasets: &[DatasetConfig],
) -> Result<Vec<AnalystConfig>, ConfigError> {
    let mut analyst_names = HashSet::new();
    let mut hashes = HashSet::new();
    let mut analysts = Vec::with_capacity(file.len());
    for (i, a) in file.into_iter().enumerate() {
        let key = |k: &str| format!("analyst[{i}].{k}");
        check_name(key("name"), &a.name)?;
        if !analyst_names.insert(a.name.clone()) {
            return Err(ConfigError::new(
                key("name"),
                format!("analyst `{}` is configured twice", a.name),
            ));
        }
        let TokenHash(hash) = parse_token_hash(key("token_sha256"), &a.token_sha256)?;
        if !hashes.insert(hash) {
            return Err(ConfigError::new(
                key("token_sha256"),
                "the same token hash is given to another analyst",
            ));
        }
        let mut epsilon = BTreeMap::new();
        for (dataset, value) in a.epsilon {
            let k = format!("analyst[{i}].epsilon.{dataset}");
            if !datasets.iter().any(|d| d.name == dataset) {
                return Err(ConfigError::new(
                    k,
                    format!("no [[dataset]] is named `{dataset}`"),
                ));
            }
            epsilon.insert(dataset, budget(k, value)?);
        }
        analysts.push(AnalystConfig {
            name: a.name,
            token_sha256: TokenHash(hash),
            epsilon,
        });
    }
    Ok(analysts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The token hash of [`base`]'s analyst.
    pub(crate) const HASH: &str =
        "0000000000000000000000000000000000000000000000000000000000000000";

    /// A valid config (one dataset, one analyst) that tests vary by replacing
    /// text; shared with the reload tests.
    pub(crate) fn base() -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"
ledger = "data/ledger.sqlite"

[[dataset]]
name = "nc"
layout = "nc"
as_of = "2026-06-30"
age_bands = [18, 25, 35, 45, 55, 65, 75]
epsilon_total = 10.0
max_epsilon_per_query = 1.0

[[analyst]]
name = "alice"
token_sha256 = "{HASH}"
epsilon = {{ nc = 3.0 }}
"#
        )
    }

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn base_config_is_valid() {
        let c = Config::from_toml(&base()).unwrap();
        assert_eq!(c.server.max_cells, DEFAULT_MAX_CELLS);
        assert_eq!(c.datasets[0].as_of_year, 2026);
        assert_eq!(
            c.analysts[0].epsilon["nc"],
            Epsilon::from_nanos(3_000_000_000)
        );
        assert!(c.datasets[0].share_releases);
        let own = c.population_of(&c.datasets[0]);
        assert_eq!((own.name.as_str(), own.members.len()), ("nc", 1));
    }

    /// The ledger is a path, a URL, or a table for PostgreSQL (keeping the
    /// password in a file); each mistake names its key, none shows a
    /// password.
    #[test]
    fn the_ledger_is_a_path_a_url_or_a_table() {
        let sqlite = Config::from_toml(&base()).unwrap().server.ledger;
        assert_eq!(sqlite, Location::Sqlite("data/ledger.sqlite".into()));
        let url = "postgres://rollcall@db.internal:5432/rollcall";
        let by_url = base().replace("\"data/ledger.sqlite\"", &format!("{url:?}"));
        let Location::Postgres(p) = Config::from_toml(&by_url).unwrap().server.ledger else {
            panic!("a URL is PostgreSQL")
        };
        assert_eq!(
            (p.url.as_str(), p.pool_size),
            (url, privacy::DEFAULT_POOL_SIZE)
        );
        assert_eq!(p.connect_timeout, privacy::DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(p.password_file, None);
        let table = |body: &str| {
            base()
                .replace("ledger = \"data/ledger.sqlite\"\n", "")
                .replace(
                    "[[dataset]]",
                    &format!("[server.ledger]\n{body}\n[[dataset]]"),
                )
        };
        let full = table(&format!(
            "url = {url:?}\npassword_file = \"/etc/rollcall/pw\"\npool_size = 3\n\
             connect_timeout_secs = 2\n"
        ));
        let Location::Postgres(p) = Config::from_toml(&full).unwrap().server.ledger else {
            panic!("a table is PostgreSQL")
        };
        assert_eq!(p.password_file, Some("/etc/rollcall/pw".into()));
        assert_eq!((p.pool_size, p.connect_timeout.as_secs()), (3, 2));

        let cases: Vec<(String, &str)> = vec![
            (
                base().replace("\"data/ledger.sqlite\"", "\"\""),
                "server.ledger",
            ),
            (
                base().replace("\"data/ledger.sqlite\"", "3"),
                "server.ledger",
            ),
            (table("path = \"l.sqlite\""), "server.ledger.path"),
            (table("password_file = \"pw\""), "server.ledger.url"),
            (table("url = \"data/ledger.sqlite\""), "server.ledger.url"),
            (
                table(&format!("url = {url:?}\npool_size = 0")),
                "server.ledger.pool_size",
            ),
            (
                table(&format!("url = {url:?}\nconnect_timeout_secs = \"5\"")),
                "server.ledger.connect_timeout_secs",
            ),
            (
                table(&format!("url = {url:?}\npassword_file = 7")),
                "server.ledger.password_file",
            ),
            (
                base().replace(
                    "\"data/ledger.sqlite\"",
                    "\"postgres://u:s3cret@h:notaport/db\"",
                ),
                "server.ledger",
            ),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(
                e.starts_with(&format!("{key}:")),
                "error `{e}` does not name `{key}`"
            );
            assert!(!e.contains("s3cret"), "{e}");
        }
        let secret = base().replace(
            "\"data/ledger.sqlite\"",
            "\"postgres://u:s3cret@h:5432/db\"",
        );
        let c = Config::from_toml(&secret).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                base().replace("epsilon_total = 10.0", "epsilon_total = -1.0"),
                "dataset[0].epsilon_total",
            ),
            (
                base().replace("epsilon_total = 10.0", "epsilon_total = nan"),
                "dataset[0].epsilon_total",
            ),
            (
                base().replace("max_epsilon_per_query = 1.0", "max_epsilon_per_query = 0.0"),
                "dataset[0].max_epsilon_per_query",
            ),
            (
                base().replace("nc = 3.0", "oh = 3.0"),
                "analyst[0].epsilon.oh",
            ),
            (
                base().replace("nc = 3.0", "nc = -3.0"),
                "analyst[0].epsilon.nc",
            ),
            (base().replace(HASH, "abc"), "analyst[0].token_sha256"),
            (
                base().replace("[server]", "[server]\nmetrics_token_sha256 = \"xyz\""),
                "server.metrics_token_sha256",
            ),
            (
                base().replace(HASH, &"g".repeat(64)),
                "analyst[0].token_sha256",
            ),
            (
                base().replace("2026-06-30", "2026-02-30"),
                "dataset[0].as_of",
            ),
            (
                base().replace("[18, 25, 35", "[18, 18, 35"),
                "dataset[0].age_bands",
            ),
            (
                base().replace(
                    "max_epsilon_per_query = 1.0",
                    "max_epsilon_per_query = 1.0\nbudget = 3",
                ),
                "budget",
            ),
            (base().replace("ledger = ", "ledgr = "), "ledgr"),
            (
                format!(
                    "{}\n[[dataset]]\nname = \"nc\"\nlayout = \"nc\"\nas_of = \"2026-01-01\"\nage_bands = [18]\nepsilon_total = 1.0\nmax_epsilon_per_query = 1.0\n",
                    base()
                ),
                "dataset[1].name",
            ),
            (
                format!(
                    "{}\n[[analyst]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\n",
                    base(),
                    "1".repeat(64)
                ),
                "analyst[1].name",
            ),
            (
                base()
                    .replace("max_cells", "x")
                    .replace("[server]", "[server]\nmax_cells = 0"),
                "server.max_cells",
            ),
            (
                base().replace("[server]", "[server]\ntiming_quantum_ms = 5000"),
                "server.timing_quantum_ms",
            ),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(e.contains(key), "error `{e}` does not name `{key}`");
        }
    }

    /// Two snapshots of one state's voters: one population, one cap.
    fn two_snapshots() -> String {
        base()
            .replace(
                "[[dataset]]",
                "[[population]]\nname = \"nc-voters\"\nepsilon_total = 10\n\n[[dataset]]",
            )
            .replace("epsilon_total = 10.0\n", "population = \"nc-voters\"\n")
            + "\n[[dataset]]\nname = \"nc2025\"\nlayout = \"nc\"\nas_of = \"2025-06-30\"\n\
               age_bands = [18]\npopulation = \"nc-voters\"\nepsilon_total = 2.5\n\
               max_epsilon_per_query = 1.0\nshare_releases = false\n"
    }

    #[test]
    fn populations_group_datasets_under_one_cap() {
        let c = Config::from_toml(&two_snapshots()).unwrap();
        assert_eq!(c.populations.len(), 1);
        let p = c.population_of(&c.datasets[0]);
        assert_eq!(p.name, "nc-voters");
        assert_eq!(p.cap, Epsilon::from_nanos(10_000_000_000));
        assert_eq!(p.members, ["nc", "nc2025"]);
        assert_eq!(c.population_of(&c.datasets[1]), p);
        assert_eq!(c.datasets[0].epsilon_total, None);
        assert_eq!(
            c.datasets[1].epsilon_total,
            Some(Epsilon::from_nanos(2_500_000_000))
        );
        assert!(c.datasets[0].share_releases);
        assert!(!c.datasets[1].share_releases);
    }

    #[test]
    fn population_mistakes_name_the_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                two_snapshots().replace(
                    "population = \"nc-voters\"\nmax",
                    "population = \"nc-voter\"\nmax",
                ),
                "dataset[0].population",
            ),
            (
                base().replace("epsilon_total = 10.0\n", ""),
                "dataset[0].epsilon_total",
            ),
            (
                base().replace(
                    "[[dataset]]",
                    "[[population]]\nname = \"nc\"\nepsilon_total = 1\n\n[[dataset]]",
                ),
                "population[0].name",
            ),
            (
                base().replace(
                    "[[dataset]]",
                    "[[population]]\nname = \"unused\"\nepsilon_total = 1\n\n[[dataset]]",
                ),
                "population[0].name",
            ),
            (
                two_snapshots().replace("epsilon_total = 10\n", "epsilon_total = 0\n"),
                "population[0].epsilon_total",
            ),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(e.contains(key), "error `{e}` does not name `{key}`");
        }
    }

    #[test]
    fn token_hash_is_not_echoed() {
        let secret = "f".repeat(63) + "z";
        let e = err(&base().replace(HASH, &secret));
        assert!(!e.contains(&secret), "{e}");
        let c = Config::from_toml(&base().replace(HASH, &"ab".repeat(32))).unwrap();
        assert!(!format!("{c:?}").contains("abab"));
    }
}
