//! Reloading the config on SIGHUP without a restart and without touching the
//! ledger.
//!
//! [`Live`] holds the current [`AppState`] snapshot behind a lock; every
//! request takes the snapshot once (when it authenticates) and keeps it to
//! the end, so an in-flight query finishes with the budgets it started with.
//! The ledger's commit transaction still checks the budgets passed
//! in atomically, so a reload can never let two queries overspend together.
//!
//! What a reload may change:
//!
//! | key | on SIGHUP |
//! |-----|-----------|
//! | `[[analyst]]` (add, remove, `token_sha256`, `epsilon`) | applied |
//! | `dataset[i].epsilon_total`, `max_epsilon_per_query`, `share_releases` | applied |
//! | `population[i].epsilon_total` | applied |
//! | `server.max_cells`, `server.max_concurrent_per_token`, `server.metrics_token_sha256` | applied |
//! | `server.listen`, `data_dir`, `ledger`, `max_body_bytes`, `request_timeout_secs`, `workers`, `timing_quantum_ms` | refused: restart |
//! | adding or removing a `[[dataset]]`, its `layout`, `as_of`, `age_bands`, `population` | refused: restart |
//! | adding or removing a `[[population]]` | refused: restart |
//!
//! A budget lowered below what is already spent is allowed: the ledger keeps
//! the spend, `remaining` shows 0 and queries get `budget_exhausted`.
//! A reload that is refused (invalid file, or a key that needs a restart)
//! changes nothing: the server keeps serving with the old config, and the
//! log names the key.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::{Config, ConfigError, ServerConfig};
use crate::metrics::Metrics;
use crate::state::AppState;

/// Why a reload was refused (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file does not parse or validate.
    #[error("invalid config: {0}")]
    Invalid(#[from] ConfigError),
    /// The new file changes keys that only a restart can apply.
    #[error("{}", restart_message(.0))]
    NeedsRestart(Vec<RestartKey>),
}

impl ReloadError {
    /// The config key (or keys, comma-separated) the refusal is about.
    pub fn key(&self) -> String {
        match self {
            ReloadError::Invalid(e) => e.key.clone(),
            ReloadError::NeedsRestart(keys) => {
                let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
                names.join(",")
            }
        }
    }
}

/// A changed key that a reload cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartKey {
    /// The key, as in config errors (`server.listen`, `dataset[0].as_of`).
    pub key: String,
    /// What changed.
    pub why: String,
}

fn restart_message(keys: &[RestartKey]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|k| format!("{}: {}", k.key, k.why))
        .collect();
    format!("needs a restart: {}", list.join("; "))
}

/// What a successful reload changed, for the log (names and counts only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadSummary {
    /// Analysts in the new config.
    pub analysts: usize,
    /// Analysts that are new.
    pub added: Vec<String>,
    /// Analysts that are gone.
    pub removed: Vec<String>,
}

/// The keys whose change between `old` and `new` needs a restart; empty when
/// `new` can be applied by a reload.
pub fn restart_keys(old: &Config, new: &Config) -> Vec<RestartKey> {
    let mut out = Vec::new();
    let mut push = |key: String, why: String| out.push(RestartKey { key, why });
    let (o, n) = (&old.server, &new.server);
    let changed = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        format!("{a:?} -> {b:?} (the server keeps {a:?})")
    };
    // Every `[server]` key is named here, once, so one added later does not
    // compile until someone decides whether a reload may change it.
    macro_rules! server_keys {
        (restart: $($key:ident),*; reloadable: $($free:ident),*) => {
            let ServerConfig { $($key,)* $($free: _,)* } = n;
            $(
                if o.$key != *$key {
                    push(concat!("server.", stringify!($key)).into(), changed(&o.$key, $key));
                }
            )*
        };
    }
    server_keys!(
        restart: listen, data_dir, ledger, max_body_bytes, request_timeout_secs, workers,
            timing_quantum_ms;
        // The new snapshot takes these.
        reloadable: max_cells, max_concurrent_per_token, metrics_token_sha256
    );

    for (i, d) in new.datasets.iter().enumerate() {
        let key = |k: &str| format!("dataset[{i}].{k}");
        let Some(before) = old.datasets.iter().find(|b| b.name == d.name) else {
            push(
                key("name"),
                format!(
                    "dataset `{}` is new; adding a dataset needs a restart",
                    d.name
                ),
            );
            continue;
        };
        if before.layout != d.layout {
            push(key("layout"), changed(&before.layout, &d.layout));
        }
        if before.as_of != d.as_of {
            push(key("as_of"), changed(&before.as_of, &d.as_of));
        }
        if before.age_bands != d.age_bands {
            push(key("age_bands"), changed(&before.age_bands, &d.age_bands));
        }
        if before.population != d.population {
            push(
                key("population"),
                changed(&before.population, &d.population),
            );
        }
    }
    let names =
        |c: &Config| -> Vec<String> { c.populations.iter().map(|p| p.name.clone()).collect() };
    if names(old) != names(new) {
        push(
            "population".into(),
            format!(
                "populations {:?} -> {:?}; adding or removing a population needs a restart",
                names(old),
                names(new)
            ),
        );
    }
    for d in &old.datasets {
        if !new.datasets.iter().any(|n| n.name == d.name) {
            push(
                "dataset".into(),
                format!(
                    "dataset `{}` was removed; removing a dataset needs a restart",
                    d.name
                ),
            );
        }
    }
    out
}

/// The server's live state: the current snapshot, the config it came from,
/// where to re-read it, and the metrics (which outlive snapshots).
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<AppState>>,
    /// The config of the current snapshot; its lock also serialises reloads.
    config: Mutex<Config>,
    config_path: Option<PathBuf>,
    /// Request, release and reload counters.
    pub metrics: Metrics,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
}

impl Live {
    /// Wraps the state loaded from `config` (read from `config_path`, if
    /// any: without one, [`Live::reload`] re-reads nothing).
    pub fn new(state: AppState, config: Config, config_path: Option<PathBuf>) -> Live {
        Live {
            current: RwLock::new(Arc::new(state)),
            config: Mutex::new(config),
            config_path,
            metrics: Metrics::default(),
            reloads_ok: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
        }
    }

    /// The current snapshot. Take it once per request and keep it.
    pub fn snapshot(&self) -> Arc<AppState> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `new` if it differs only in reloadable keys; otherwise
    /// changes nothing and says which keys need a restart.
    pub fn apply(&self, new: Config) -> Result<ReloadSummary, ReloadError> {
        let mut config = self.config.lock().unwrap_or_else(|p| p.into_inner());
        let keys = restart_keys(&config, &new);
        if !keys.is_empty() {
            self.reloads_refused.fetch_add(1, Ordering::Relaxed);
            return Err(ReloadError::NeedsRestart(keys));
        }
        let old = self.snapshot();
        let next = Arc::new(old.reloaded(&new));
        let summary = ReloadSummary {
            analysts: next.analysts.len(),
            added: next
                .analysts
                .iter()
                .filter(|a| !old.analysts.iter().any(|o| o.name == a.name))
                .map(|a| a.name.clone())
                .collect(),
            removed: old
                .analysts
                .iter()
                .filter(|o| !next.analysts.iter().any(|a| a.name == o.name))
                .map(|o| o.name.clone())
                .collect(),
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        *config = new;
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        Ok(summary)
    }

    /// Re-reads the config file and [`Live::apply`]s it. Nothing changes on
    /// error.
    pub fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let Some(path) = &self.config_path else {
            return Ok(ReloadSummary::default());
        };
        let new = Config::from_file(path).inspect_err(|_| {
            self.reloads_refused.fetch_add(1, Ordering::Relaxed);
        })?;
        self.apply(new)
    }

    /// [`Live::reload`], logging the outcome: `config reloaded` at info, or
    /// `config reload refused` at error naming the key (never a value of a
    /// token hash: config errors don't echo them).
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(s) => tracing::info!(
                analysts = s.analysts,
                added = ?s.added,
                removed = ?s.removed,
                "config reloaded"
            ),
            Err(e) => tracing::error!(
                key = %e.key(),
                error = %e,
                "config reload refused; still serving the previous config"
            ),
        }
    }

    /// Reloads applied and refused since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_refused.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::tests::{HASH, base};

    fn keys(new: &str) -> Vec<String> {
        let old = Config::from_toml(&base()).unwrap();
        let new = Config::from_toml(new).unwrap();
        restart_keys(&old, &new)
            .into_iter()
            .map(|k| k.key)
            .collect()
    }

    #[test]
    fn budgets_analysts_and_soft_limits_are_reloadable() {
        let cases = [
            base(),
            base().replace("nc = 3.0", "nc = 0.5"),
            base().replace("nc = 3.0", "nc = 300.0"),
            base().replace("epsilon_total = 10.0", "epsilon_total = 2.0"),
            base().replace("max_epsilon_per_query = 1.0", "max_epsilon_per_query = 0.1"),
            base().replace(HASH, &"1".repeat(64)),
            base().replace("[server]", "[server]\nmax_cells = 10"),
            base().replace("[server]", "[server]\nmax_concurrent_per_token = 3"),
            base().replace(
                "[server]",
                &format!("[server]\nmetrics_token_sha256 = \"{}\"", "2".repeat(64)),
            ),
            format!(
                "{}\n[[analyst]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\nepsilon = {{ nc = 1.0 }}\n",
                base(),
                "3".repeat(64)
            ),
            // Removing every analyst is allowed: nobody can query.
            base().split("[[analyst]]").next().unwrap().to_owned(),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_eq!(keys(text), Vec::<String>::new(), "case {i} should reload");
        }
    }

    #[test]
    fn restart_keys_are_named() {
        let cases: Vec<(String, &str)> = vec![
            (
                base().replace("127.0.0.1:0", "127.0.0.1:9"),
                "server.listen",
            ),
            (
                base().replace("data_dir = \"data\"", "data_dir = \"other\""),
                "server.data_dir",
            ),
            (base().replace("data/ledger", "x/ledger"), "server.ledger"),
            (
                base().replace("[server]", "[server]\nmax_body_bytes = 10"),
                "server.max_body_bytes",
            ),
            (
                base().replace("[server]", "[server]\nrequest_timeout_secs = 3"),
                "server.request_timeout_secs",
            ),
            (
                base().replace("[server]", "[server]\nworkers = 1"),
                "server.workers",
            ),
            (
                base().replace("[server]", "[server]\ntiming_quantum_ms = 5"),
                "server.timing_quantum_ms",
            ),
            (
                base().replace("2026-06-30", "2025-06-30"),
                "dataset[0].as_of",
            ),
            (
                base().replace("[18, 25,", "[18, 21, 25,"),
                "dataset[0].age_bands",
            ),
            (
                base().replace("layout = \"nc\"", "layout = \"oh\""),
                "dataset[0].layout",
            ),
            (
                base()
                    .replace("name = \"nc\"", "name = \"nc2\"")
                    .replace("nc = 3.0", "nc2 = 3.0"),
                "dataset[0].name",
            ),
        ];
        for (text, key) in cases {
            let got = keys(&text);
            assert!(
                got.iter().any(|k| k == key),
                "changing {key} should need a restart, got {got:?}"
            );
        }
        // A renamed dataset is one added and one removed.
        let renamed = base()
            .replace("name = \"nc\"", "name = \"nc2\"")
            .replace("nc = 3.0", "nc2 = 3.0");
        assert_eq!(keys(&renamed), vec!["dataset[0].name", "dataset"]);
    }

    #[test]
    fn refusal_message_names_every_key() {
        let e = ReloadError::NeedsRestart(vec![
            RestartKey {
                key: "server.listen".into(),
                why: "a -> b".into(),
            },
            RestartKey {
                key: "dataset[0].as_of".into(),
                why: "c -> d".into(),
            },
        ]);
        let text = e.to_string();
        assert!(
            text.contains("server.listen") && text.contains("dataset[0].as_of"),
            "{text}"
        );
        assert_eq!(e.key(), "server.listen,dataset[0].as_of");
    }
}
