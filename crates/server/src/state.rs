//! What the server holds while it runs: the datasets in memory, the analysts,
//! the release service (which owns the ledger) and the limits. Built at
//! start-up from a [`Config`]; a reload ([`crate::reload`]) builds a new
//! snapshot that shares the datasets and the service and swaps it in, while
//! in-flight requests keep the one they began with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::{Dataset, DomainSpec, Domains};
use layout::Layout;
use privacy::{Epsilon, Ledger};
use release::{Policy, ReleaseService, Target};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::{AnalystConfig, Config, ConfigError, DatasetConfig, ServerConfig};

/// A dataset ready to answer queries.
#[derive(Debug)]
pub struct LoadedDataset {
    /// Its configuration.
    pub config: DatasetConfig,
    /// What the release path needs of it: data, domains, version, caps.
    pub target: Target,
}

/// An analyst as the server knows them. Its `Debug` shows the name only.
pub struct Analyst {
    /// Name.
    pub name: String,
    token_sha256: [u8; 32],
    /// Budget per dataset.
    pub epsilon: BTreeMap<String, Epsilon>,
    /// Queries in flight now; shared with the same-named analyst of the
    /// next snapshot, so a reload does not reset the limit.
    inflight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Analyst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyst")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One snapshot of the server state, read-only but for the service (gate,
/// deadlines, stored releases, ledger) and the in-flight counters. Its
/// `Debug` names datasets and analysts, nothing more.
pub struct AppState {
    /// `[server]` settings.
    pub server: ServerConfig,
    /// Datasets by name.
    pub datasets: BTreeMap<String, LoadedDataset>,
    /// Analysts, in config order.
    pub analysts: Vec<Analyst>,
    /// The release path, shared by every snapshot.
    pub service: Arc<ReleaseService>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let analysts: Vec<&str> = self.analysts.iter().map(|a| a.name.as_str()).collect();
        f.debug_struct("AppState")
            .field("datasets", &self.datasets.keys().collect::<Vec<_>>())
            .field("analysts", &analysts)
            .finish_non_exhaustive()
    }
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
        let server = &config.server;
        if !server.data_dir.is_dir() {
            return Err(ConfigError {
                key: "server.data_dir".into(),
                message: format!("`{}` is not a directory", server.data_dir.display()),
            });
        }
        let loaded = config
            .datasets
            .iter()
            .enumerate()
            .map(|(i, d)| load_dataset(i, &server.data_dir, d))
            .collect::<Result<Vec<_>, _>>()?;
        if let privacy::Location::Sqlite(path) = &server.ledger
            && let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            return Err(ConfigError {
                key: "server.ledger".into(),
                message: format!("folder `{}` does not exist", parent.display()),
            });
        }
        let ledger = Ledger::open_at(&server.ledger).map_err(|e| ConfigError {
            key: "server.ledger".into(),
            message: e.to_string(),
        })?;
        tracing::info!(
            backend = ledger.backend_name(),
            at = %server.ledger.describe(),
            "ledger open"
        );
        AppState::from_parts(&config, loaded, ledger)
    }

    /// The state for `config` over datasets already in memory (one per
    /// `config.datasets`, in order) and an open ledger: what [`AppState::load`]
    /// builds once it has read the files, and what in-process tests build
    /// from `engine::Dataset::from_codes`.
    pub fn from_parts(
        config: &Config,
        loaded: Vec<(Arc<Dataset>, Arc<Domains>)>,
        ledger: Ledger,
    ) -> Result<AppState, ConfigError> {
        let datasets = config
            .datasets
            .iter()
            .zip(loaded)
            .map(|(d, (data, domains))| {
                let loaded = LoadedDataset {
                    config: d.clone(),
                    target: target(config, d, data, domains),
                };
                (d.name.clone(), loaded)
            })
            .collect();
        check_shared_sources(config, &datasets)?;
        let analysts = config
            .analysts
            .iter()
            .map(|a| Analyst::new(a, Arc::default()))
            .collect();
        let quantum = std::time::Duration::from_secs_f64(config.server.timing_quantum_ms / 1e3);
        Ok(AppState {
            server: config.server.clone(),
            datasets,
            analysts,
            service: Arc::new(ReleaseService::new(Arc::new(ledger), quantum)),
        })
    }

    /// The ledger, through the release service that owns it.
    pub fn ledger(&self) -> &Ledger {
        self.service.ledger()
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
                let t = &old.target;
                let target = target(config, d, t.data.clone(), t.domains.clone());
                Some((
                    d.name.clone(),
                    LoadedDataset {
                        config: d.clone(),
                        target,
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
            service: self.service.clone(),
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

/// The release path's view of dataset `d`: its data, domains, version and
/// the caps the config gives it.
fn target(config: &Config, d: &DatasetConfig, data: Arc<Dataset>, domains: Arc<Domains>) -> Target {
    let population = config.population_of(d);
    Target {
        name: d.name.clone(),
        version: Target::version_of(&data, &domains),
        data,
        domains,
        policy: Policy {
            population: population.name,
            population_members: population.members,
            population_cap: population.cap,
            dataset_cap: d.epsilon_total,
            max_epsilon_per_query: d.max_epsilon_per_query,
            share_releases: d.share_releases,
        },
    }
}

/// Two datasets ingested from one same file hold the same voters: they must
/// be in one population, or each would get its own cap and a voter's loss
/// would be the sum.
fn check_shared_sources(
    config: &Config,
    datasets: &BTreeMap<String, LoadedDataset>,
) -> Result<(), ConfigError> {
    for (j, b) in config.datasets.iter().enumerate() {
        for a in &config.datasets[..j] {
            let (ta, tb) = (&datasets[&a.name].target, &datasets[&b.name].target);
            let shared = tb
                .data
                .source_hashes()
                .iter()
                .find(|h| ta.data.source_hashes().contains(h));
            if let Some(hash) = shared
                && ta.policy.population != tb.policy.population
            {
                return Err(ConfigError {
                    key: format!("dataset[{j}].population"),
                    message: format!(
                        "datasets `{}` and `{}` were both ingested from a file with SHA-256 {}, \
                         so they hold the same voters, but they are not in one population; \
                         add a [[population]] and give both `population = \"…\"`",
                        a.name,
                        b.name,
                        &hash[..hash.len().min(16)]
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The layout with the dataset's configured elections that its last ingest
/// stored (same id, date and type in the manifest's `history`): an
/// election added to the config is a dimension after the next ingest, one
/// whose date was changed only after an ingest with the new date.
fn with_stored_elections(
    layout: Layout,
    d: &DatasetConfig,
    manifest: &serde_json::Value,
    key: &dyn Fn(&str) -> String,
) -> Result<Layout, ConfigError> {
    let stored = manifest
        .get("history")
        .and_then(|h| h.get("elections"))
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    let field =
        |s: &serde_json::Value, k: &str| s.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let (kept, missing): (Vec<_>, Vec<_>) = d.elections.iter().cloned().partition(|e| {
        stored.iter().any(|s| {
            field(s, "id").as_deref() == Some(e.id.as_str())
                && field(s, "date") == Some(e.date_text())
                && field(s, "type").as_deref() == Some(e.kind.as_str())
        })
    });
    for e in &missing {
        tracing::warn!(
            dataset = %d.name,
            election = %e.id,
            "election not in the last ingest (re-ingest with history to answer on it)"
        );
    }
    layout
        .with_elections(kept)
        .map_err(|(j, message)| ConfigError {
            key: key(&format!("election[{j}]")),
            message,
        })
}

fn load_dataset(
    i: usize,
    data_dir: &Path,
    d: &DatasetConfig,
) -> Result<(Arc<Dataset>, Arc<Domains>), ConfigError> {
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
    let layout = with_stored_elections(layout, d, &manifest, &key)?;
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
    Ok((data, domains))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::Live;

    fn eps(v: f64) -> Epsilon {
        Epsilon::from_decimal_f64(v).unwrap()
    }

    fn config(analysts: &[(&str, &str, f64)]) -> Config {
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nledger = \"l.sqlite\"\n\n\
             [[dataset]]\nname = \"nc\"\nlayout = \"nc\"\nas_of = \"2026-06-30\"\n\
             age_bands = [18]\nepsilon_total = 10.0\nmax_epsilon_per_query = 1.0\n",
        );
        for (name, token, budget) in analysts {
            let hash = crate::token::hash(token);
            text += &format!(
                "\n[[analyst]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nepsilon = {{ nc = {budget:?} }}\n"
            );
        }
        Config::from_toml(&text).unwrap()
    }

    /// The state `AppState::load` would build, without datasets (the
    /// snapshot logic does not look at them).
    fn state(config: &Config, dir: &Path) -> AppState {
        let ledger = Arc::new(Ledger::open(&dir.join("l.sqlite")).unwrap());
        AppState {
            server: config.server.clone(),
            datasets: BTreeMap::new(),
            analysts: config
                .analysts
                .iter()
                .map(|a| Analyst::new(a, Arc::default()))
                .collect(),
            service: Arc::new(ReleaseService::new(ledger, std::time::Duration::ZERO)),
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
        assert_eq!(
            before.authenticate("tok-a").unwrap().epsilon["nc"],
            eps(1.0)
        );
        // New requests see the new config: new analyst, rotated token, new budget.
        assert_eq!(after.authenticate("tok-b").unwrap().name, "bob");
        assert!(after.authenticate("tok-a").is_none());
        let alice = after.authenticate("tok-a2").unwrap();
        assert_eq!(alice.epsilon["nc"], eps(5.0));
        // The same service (and ledger), and alice's in-flight query still counts.
        assert!(Arc::ptr_eq(&before.service, &after.service));
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
