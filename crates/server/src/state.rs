//! What the server holds while it runs: the datasets in memory, the analysts,
//! the ledger and the limits. Built at start-up from a [`Config`]; a reload
//! ([`crate::reload`]) builds a new snapshot that shares the datasets and the
//! ledger and swaps it in, while in-flight requests keep the one they began with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::{Dataset, DomainSpec, Domains};
use layout::Layout;
use privacy::Ledger;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::{AnalystConfig, Config, ConfigError, DatasetConfig, ServerConfig};

/// A dataset ready to answer queries.
#[derive(Debug)]
pub struct LoadedDataset {
    /// Its configuration.
    pub config: DatasetConfig,
    /// Its public domains (from the layout and config only).
    pub domains: Arc<Domains>,
    /// Its rows as codes.
    pub data: Arc<Dataset>,
}

/// An analyst as the server knows them.
#[derive(Debug)]
pub struct Analyst {
    /// Name.
    pub name: String,
    token_sha256: [u8; 32],
    /// Budget per dataset.
    pub epsilon: BTreeMap<String, f64>,
    /// Queries in flight now; shared with the same-named analyst of the
    /// next snapshot, so a reload does not reset the limit.
    inflight: Arc<AtomicUsize>,
}

/// One snapshot of the server state, read-only but for the ledger and the
/// in-flight counters.
#[derive(Debug)]
pub struct AppState {
    /// `[server]` settings.
    pub server: ServerConfig,
    /// Datasets by name.
    pub datasets: BTreeMap<String, LoadedDataset>,
    /// Analysts, in config order.
    pub analysts: Vec<Analyst>,
    /// The durable ledger.
    pub ledger: Arc<Ledger>,
}

/// Holds one of an analyst's in-flight query slots; frees it on drop.
#[derive(Debug)]
pub struct InflightGuard<'a>(&'a AtomicUsize);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Analyst {
    /// The analyst configured as `a`, counting in-flight queries in
    /// `inflight` (fresh at start-up, carried over by a reload).
    fn new(a: &AnalystConfig, inflight: Arc<AtomicUsize>) -> Analyst {
        Analyst {
            name: a.name.clone(),
            token_sha256: a.token_sha256.0,
            epsilon: a.epsilon.clone(),
            inflight,
        }
    }

    /// Takes a query slot, or `None` if `limit` are already taken.
    pub fn try_enter(&self, limit: usize) -> Option<InflightGuard<'_>> {
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        let guard = InflightGuard(&self.inflight);
        (before < limit).then_some(guard)
    }
}

impl AppState {
    /// Loads every dataset, checks it against its layout and manifest, and
    /// opens the ledger. Errors name the config key that leads to the problem.
    pub fn load(config: Config) -> Result<AppState, ConfigError> {
        let server = config.server;
        if !server.data_dir.is_dir() {
            return Err(ConfigError {
                key: "server.data_dir".into(),
                message: format!("`{}` is not a directory", server.data_dir.display()),
            });
        }
        let mut datasets = BTreeMap::new();
        for (i, d) in config.datasets.into_iter().enumerate() {
            let loaded = load_dataset(i, &server.data_dir, d)?;
            datasets.insert(loaded.config.name.clone(), loaded);
        }
        if let Some(parent) = server.ledger.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            return Err(ConfigError {
                key: "server.ledger".into(),
                message: format!("folder `{}` does not exist", parent.display()),
            });
        }
        let ledger = Ledger::open(&server.ledger).map_err(|e| ConfigError {
            key: "server.ledger".into(),
            message: e.to_string(),
        })?;
        let analysts = config
            .analysts
            .iter()
            .map(|a| Analyst::new(a, Arc::default()))
            .collect();
        Ok(AppState {
            server,
            datasets,
            analysts,
            ledger: Arc::new(ledger),
        })
    }

    /// A new snapshot for `config`, which [`crate::reload::restart_keys`]
    /// found to differ from this one's only in reloadable keys: the same
    /// datasets in memory (with the new budgets), the same ledger, the new
    /// analysts. An analyst who keeps their name keeps their in-flight count;
    /// spends live in the ledger under the name, so they carry over too.
    pub fn reloaded(&self, config: &Config) -> AppState {
        let datasets = config
            .datasets
            .iter()
            .filter_map(|d| {
                let old = self.datasets.get(&d.name)?;
                Some((
                    d.name.clone(),
                    LoadedDataset {
                        config: d.clone(),
                        domains: old.domains.clone(),
                        data: old.data.clone(),
                    },
                ))
            })
            .collect();
        let analysts = config
            .analysts
            .iter()
            .map(|a| {
                let inflight = self
                    .analysts
                    .iter()
                    .find(|old| old.name == a.name)
                    .map(|old| old.inflight.clone())
                    .unwrap_or_default();
                Analyst::new(a, inflight)
            })
            .collect();
        AppState {
            server: config.server.clone(),
            datasets,
            analysts,
            ledger: self.ledger.clone(),
        }
    }

    /// The analyst whose token hashes to the configured hash, compared in
    /// constant time against *every* analyst (no early exit), so response time
    /// says nothing about which hash, or how much of it, matched.
    pub fn authenticate(&self, token: &str) -> Option<&Analyst> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = subtle::Choice::from(0u8);
        let mut index = 0u32;
        for (i, a) in self.analysts.iter().enumerate() {
            let eq = presented.ct_eq(&a.token_sha256);
            index = u32::conditional_select(&index, &(i as u32), eq);
            found |= eq;
        }
        if bool::from(found) {
            self.analysts.get(index as usize)
        } else {
            None
        }
    }
}

fn load_dataset(i: usize, data_dir: &Path, d: DatasetConfig) -> Result<LoadedDataset, ConfigError> {
    let key = |k: &str| format!("dataset[{i}].{k}");
    let layout = Layout::resolve(&d.layout).map_err(|e| ConfigError {
        key: key("layout"),
        message: e.to_string(),
    })?;
    let dir = data_dir.join(&d.name);
    if !dir.is_dir() {
        return Err(ConfigError {
            key: key("name"),
            message: format!(
                "no dataset folder `{}` (run `rollcall ingest --dataset {} --data-dir {}` first)",
                dir.display(),
                d.name,
                data_dir.display()
            ),
        });
    }
    let manifest_path = dir.join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).map_err(|e| ConfigError {
        key: key("name"),
        message: format!("cannot read `{}`: {e}", manifest_path.display()),
    })?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).map_err(|e| ConfigError {
        key: key("name"),
        message: format!("`{}` is not valid JSON: {e}", manifest_path.display()),
    })?;
    match manifest.get("layout").and_then(|v| v.as_str()) {
        Some(name) if name == layout.name => {}
        Some(name) => {
            return Err(ConfigError {
                key: key("layout"),
                message: format!(
                    "is `{}` but `{}` says the dataset was ingested with layout `{name}`",
                    layout.name,
                    manifest_path.display()
                ),
            });
        }
        None => {
            return Err(ConfigError {
                key: key("name"),
                message: format!("`{}` has no `layout`", manifest_path.display()),
            });
        }
    }
    let spec = DomainSpec {
        age_bands: d.age_bands.clone(),
        as_of_year: d.as_of_year,
    };
    let domains = Arc::new(Domains::new(&layout, &spec).map_err(|e| ConfigError {
        key: key("age_bands"),
        message: e.to_string(),
    })?);
    let data = Dataset::load(&dir, &layout, domains.clone()).map_err(|e| ConfigError {
        key: key("name"),
        message: format!("cannot load dataset: {e}"),
    })?;
    let data = Arc::new(data);
    // Pre-aggregated levels make most queries independent of the number of
    // voters; building them takes about a second per ten million rows, so
    // the server starts answering at once (by scanning rows) and switches to
    // the levels when they are ready. Counts are the same either way.
    let building = data.clone();
    let name = d.name.clone();
    std::thread::Builder::new()
        .name(format!("rollups-{name}"))
        .spawn(move || {
            let started = std::time::Instant::now();
            building.build_rollups();
            tracing::info!(
                dataset = %name,
                seconds = started.elapsed().as_secs_f64(),
                "pre-aggregated levels ready"
            );
        })
        .map_err(|e| ConfigError {
            key: key("name"),
            message: format!("cannot start a thread: {e}"),
        })?;
    Ok(LoadedDataset {
        config: d,
        domains,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::Live;

    fn config(analysts: &[(&str, &str, f64)]) -> Config {
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nledger = \"l.sqlite\"\n\n\
             [[dataset]]\nname = \"nc\"\nlayout = \"nc\"\nas_of = \"2026-06-30\"\n\
             age_bands = [18]\nepsilon_total = 10.0\nmax_epsilon_per_query = 1.0\n",
        );
        for (name, token, budget) in analysts {
            let hash = hex::encode(Sha256::digest(token.as_bytes()));
            text += &format!(
                "\n[[analyst]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nepsilon = {{ nc = {budget:?} }}\n"
            );
        }
        Config::from_toml(&text).unwrap()
    }

    /// The state `AppState::load` would build, without datasets (the
    /// snapshot logic does not look at them).
    fn state(config: &Config, dir: &Path) -> AppState {
        AppState {
            server: config.server.clone(),
            datasets: BTreeMap::new(),
            analysts: config
                .analysts
                .iter()
                .map(|a| Analyst::new(a, Arc::default()))
                .collect(),
            ledger: Arc::new(Ledger::open(&dir.join("l.sqlite")).unwrap()),
        }
    }

    #[test]
    fn a_reload_swaps_the_snapshot_but_not_the_one_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let old = config(&[("alice", "tok-a", 1.0)]);
        let live = Live::new(state(&old, dir.path()), old, None);
        let before = live.snapshot();
        // alice has a query in flight on the old snapshot.
        let slot = before.authenticate("tok-a").unwrap().try_enter(1).unwrap();

        let summary = live
            .apply(config(&[("alice", "tok-a2", 5.0), ("bob", "tok-b", 2.0)]))
            .unwrap();
        assert_eq!(summary.added, ["bob"]);
        assert!(summary.removed.is_empty());
        let after = live.snapshot();

        // The request that started before keeps its view.
        assert!(before.authenticate("tok-b").is_none());
        assert_eq!(before.authenticate("tok-a").unwrap().epsilon["nc"], 1.0);
        // New requests see the new config: new analyst, rotated token, new budget.
        assert_eq!(after.authenticate("tok-b").unwrap().name, "bob");
        assert!(after.authenticate("tok-a").is_none());
        let alice = after.authenticate("tok-a2").unwrap();
        assert_eq!(alice.epsilon["nc"], 5.0);
        // The same ledger, and alice's in-flight query still counts.
        assert!(Arc::ptr_eq(&before.ledger, &after.ledger));
        assert!(alice.try_enter(1).is_none(), "in-flight count was reset");
        drop(slot);
        assert!(alice.try_enter(1).is_some());

        // A refused reload changes nothing.
        let mut moved = config(&[("carol", "tok-c", 1.0)]);
        moved.server.listen = "127.0.0.1:1".into();
        assert!(live.apply(moved).is_err());
        assert!(live.snapshot().authenticate("tok-c").is_none());
        assert!(Arc::ptr_eq(&live.snapshot(), &after));
        assert_eq!(live.reload_counts(), (1, 1));
    }
}
