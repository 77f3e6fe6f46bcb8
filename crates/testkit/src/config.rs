//! A typed builder for `rollcall serve` configs, so no test writes TOML by
//! hand.
//!
//! ```text
//! use testkit::{ConfigBuilder, DatasetSection, TestAnalyst};
//! let alice = TestAnalyst::nc("alice", 3.0);
//! let toml = ConfigBuilder::new("/data".as_ref(), "/tmp/l.sqlite".as_ref())
//!     .population("nc-voters", 10.0)
//!     .dataset(DatasetSection::nc("nc").population("nc-voters"))
//!     .analyst(&alice)
//!     .to_toml();
//! assert!(toml.contains("[[population]]"));
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The age bands of every test config.
pub const AGE_BANDS: [u16; 7] = [18, 25, 35, 45, 55, 65, 75];

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
        TestAnalyst::on(name, &[("nc", budget)])
    }

    /// An analyst with these budgets.
    pub fn on(name: &'static str, budgets: &[(&'static str, f64)]) -> TestAnalyst {
        TestAnalyst {
            name,
            token: format!("test-token-{name}-5f1d0c9a7e3b"),
            epsilon: budgets.to_vec(),
        }
    }
}

/// SHA-256 hex of a token, as `token_sha256` wants it (what `rollcall token
/// --hash-stdin` prints).
pub fn hash_token(token: &str) -> String {
    server::token::hash(token)
}

/// One `[[dataset]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSection {
    /// `name`.
    pub name: String,
    /// `layout`.
    pub layout: String,
    /// `as_of`.
    pub as_of: String,
    /// `age_bands`.
    pub age_bands: Vec<u16>,
    /// `epsilon_total` (omitted when `None`).
    pub epsilon_total: Option<f64>,
    /// `max_epsilon_per_query`.
    pub max_epsilon_per_query: f64,
    /// `population` (omitted when `None`).
    pub population: Option<String>,
    /// `share_releases` (omitted when `None`).
    pub share_releases: Option<bool>,
    /// `[[dataset.election]]`s: `(id, date, type)`.
    pub elections: Vec<(String, String, String)>,
}

impl DatasetSection {
    /// An `nc`-layout dataset named `name` on 2026-06-30, with the test age
    /// bands, `epsilon_total = 1000` and `max_epsilon_per_query = 1`.
    pub fn nc(name: &str) -> DatasetSection {
        DatasetSection {
            name: name.to_owned(),
            layout: "nc".to_owned(),
            as_of: "2026-06-30".to_owned(),
            age_bands: AGE_BANDS.to_vec(),
            epsilon_total: Some(1000.0),
            max_epsilon_per_query: 1.0,
            population: None,
            share_releases: None,
            elections: Vec::new(),
        }
    }

    /// Another layout.
    pub fn layout(mut self, layout: &str) -> Self {
        self.layout = layout.to_owned();
        self
    }

    /// Another reference date.
    pub fn as_of(mut self, as_of: &str) -> Self {
        self.as_of = as_of.to_owned();
        self
    }

    /// Its own cap (`None`: none, for a dataset in a population).
    pub fn epsilon_total(mut self, total: Option<f64>) -> Self {
        self.epsilon_total = total;
        self
    }

    /// The most ε one query may spend.
    pub fn max_epsilon_per_query(mut self, max: f64) -> Self {
        self.max_epsilon_per_query = max;
        self
    }

    /// In population `name`, with no cap of its own.
    pub fn population(mut self, name: &str) -> Self {
        self.population = Some(name.to_owned());
        self.epsilon_total = None;
        self
    }

    /// `share_releases`.
    pub fn share_releases(mut self, share: bool) -> Self {
        self.share_releases = Some(share);
        self
    }

    /// A `[[dataset.election]]`: `id`, `date` (`YYYY-MM-DD`), `type`.
    pub fn election(mut self, id: &str, date: &str, kind: &str) -> Self {
        self.elections
            .push((id.to_owned(), date.to_owned(), kind.to_owned()));
        self
    }

    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "[[dataset]]\nname = {:?}\nlayout = {:?}\nas_of = {:?}\nage_bands = {:?}\n\
             max_epsilon_per_query = {:?}\n",
            self.name, self.layout, self.as_of, self.age_bands, self.max_epsilon_per_query
        );
        if let Some(t) = self.epsilon_total {
            let _ = writeln!(out, "epsilon_total = {t:?}");
        }
        if let Some(p) = &self.population {
            let _ = writeln!(out, "population = {p:?}");
        }
        if let Some(s) = self.share_releases {
            let _ = writeln!(out, "share_releases = {s}");
        }
        // After every key of the dataset: a table header ends them.
        for (id, date, kind) in &self.elections {
            let _ = write!(
                out,
                "[[dataset.election]]\nid = {id:?}\ndate = {date:?}\ntype = {kind:?}\n"
            );
        }
        out.push('\n');
    }
}

/// `key` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A whole config: `[server]`, populations, datasets, analysts.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    data_dir: PathBuf,
    /// `[server] ledger`'s value as TOML (a quoted path, a URL, a table).
    ledger: String,
    server: Vec<(String, String)>,
    populations: Vec<(String, f64)>,
    datasets: Vec<DatasetSection>,
    analysts: Vec<TestAnalyst>,
}

impl ConfigBuilder {
    /// A config serving datasets from `data_dir` with the SQLite ledger at
    /// `ledger`, listening on a free port.
    pub fn new(data_dir: &Path, ledger: &Path) -> ConfigBuilder {
        ConfigBuilder {
            data_dir: data_dir.to_owned(),
            ledger: format!("{:?}", ledger.to_str().expect("UTF-8 paths in tests")),
            server: Vec::new(),
            populations: Vec::new(),
            datasets: Vec::new(),
            analysts: Vec::new(),
        }
    }

    /// `[server] ledger` set to `toml_value` (e.g. a PostgreSQL table
    /// `{ url = "...", password_file = "..." }`) instead of the SQLite path.
    pub fn ledger(mut self, toml_value: &str) -> Self {
        self.ledger = toml_value.to_owned();
        self
    }

    /// A `[server]` key, its value written as given (TOML: `2`, `"x"`).
    pub fn server(mut self, key: &str, toml_value: &str) -> Self {
        self.server.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// Extra `[server]` lines as TOML text (`key = value`, one per line).
    pub fn server_lines(mut self, text: &str) -> Self {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("`key = value` lines");
            self.server.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        self
    }

    /// A `[[population]]`.
    pub fn population(mut self, name: &str, epsilon_total: f64) -> Self {
        self.populations.push((name.to_owned(), epsilon_total));
        self
    }

    /// A `[[dataset]]`.
    pub fn dataset(mut self, d: DatasetSection) -> Self {
        self.datasets.push(d);
        self
    }

    /// An `[[analyst]]`.
    pub fn analyst(mut self, a: &TestAnalyst) -> Self {
        self.analysts.push(a.clone());
        self
    }

    /// Every analyst of `analysts`.
    pub fn analysts(self, analysts: &[TestAnalyst]) -> Self {
        analysts.iter().fold(self, |b, a| b.analyst(a))
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nledger = {}\n",
            self.data_dir.to_str().expect("UTF-8 paths in tests"),
            self.ledger,
        );
        for (k, v) in &self.server {
            let _ = writeln!(out, "{k} = {v}");
        }
        out.push('\n');
        for (name, total) in &self.populations {
            let _ = write!(
                out,
                "[[population]]\nname = {name:?}\nepsilon_total = {total:?}\n\n"
            );
        }
        for d in &self.datasets {
            d.write(&mut out);
        }
        for a in &self.analysts {
            let budgets: Vec<String> = a
                .epsilon
                .iter()
                .map(|(d, e)| format!("{} = {e:?}", toml_key(d)))
                .collect();
            let _ = write!(
                out,
                "[[analyst]]\nname = {:?}\ntoken_sha256 = \"{}\"\nepsilon = {{ {} }}\n\n",
                a.name,
                hash_token(&a.token),
                budgets.join(", ")
            );
        }
        out
    }

    /// Writes the config to `dir/rollcall.toml` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("rollcall.toml");
        std::fs::write(&path, self.to_toml()).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the builder writes is what the server reads.
    #[test]
    fn built_configs_parse() {
        let alice = TestAnalyst::on("alice", &[("nc", 3.0), ("nc_b", 1.0)]);
        let text = ConfigBuilder::new("data".as_ref(), "l.sqlite".as_ref())
            .server("max_cells", "500")
            .server_lines("timing_quantum_ms = 0\nworkers = 1")
            .population("nc-voters", 10.0)
            .dataset(
                DatasetSection::nc("nc")
                    .population("nc-voters")
                    .share_releases(false),
            )
            .dataset(
                DatasetSection::nc("nc_b")
                    .population("nc-voters")
                    .as_of("2025-06-30")
                    .election("2024g", "2024-11-05", "general")
                    .election("2024p", "2024-03-05", "primary"),
            )
            .analyst(&alice)
            .to_toml();
        let c = server::Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.server.max_cells, 500);
        assert_eq!(c.populations.len(), 1);
        assert_eq!(c.population_of(&c.datasets[1]).members, ["nc", "nc_b"]);
        assert!(!c.datasets[0].share_releases);
        assert_eq!(c.analysts[0].epsilon.len(), 2);
        let ids: Vec<&str> = c.datasets[1]
            .elections
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(
            (c.datasets[0].elections.len(), ids),
            (0, vec!["2024g", "2024p"])
        );
    }
}
