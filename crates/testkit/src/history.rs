//! Datasets with voting history, made as an office makes them: `rollcall
//! synth --default-elections` (the voter file, its history file or OH's
//! election columns, and the generator's truth), a config naming those
//! elections, then `rollcall ingest --config … --history …`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::cli::{Fixture, run, run_ok};
use crate::config::{ConfigBuilder, DatasetSection, TestAnalyst};

/// A synthesized dataset with voting history, its config and its truth.
/// The dataset is named after the layout (`nc`, `fl`, `oh`).
#[derive(Debug, Clone)]
pub struct HistoryFixture {
    /// The voters' truth; [`Fixture::counts`] answers `vote_<id>` too.
    pub fixture: Fixture,
    /// Layout and dataset name.
    pub dataset: &'static str,
    /// `rollcall.toml`, with one `[[dataset.election]]` per election of the
    /// truth.
    pub config: PathBuf,
    /// The history file (`None`: in-file columns, OH).
    pub history: Option<PathBuf>,
    /// May spend ε 1e6 per query (the noise is then at most 1 per cell).
    pub analyst: TestAnalyst,
}

impl HistoryFixture {
    /// Synthesizes `rows` voters of `layout` with the default elections'
    /// history under `root`, and writes the config; nothing is ingested yet.
    pub fn synth(root: &Path, layout: &'static str, rows: usize, seed: u64) -> HistoryFixture {
        std::fs::create_dir_all(root).unwrap();
        let voters = root.join(format!("{layout}-voters.txt"));
        let truth = root.join(format!("{layout}-truth.json"));
        let history_path = root.join(format!("{layout}-history.txt"));
        let (rows_s, seed_s) = (rows.to_string(), seed.to_string());
        let mut args = vec![
            "synth", "--layout", layout, "--rows", &rows_s, "--seed", &seed_s, "--quirks",
        ];
        args.extend(["--default-elections", "--out", voters.to_str().unwrap()]);
        args.extend(["--truth", truth.to_str().unwrap()]);
        let in_file = layout == "oh";
        if !in_file {
            args.extend(["--history-out", history_path.to_str().unwrap()]);
        }
        run_ok(&args);
        let truth_json: Value =
            serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
        let data_dir = root.join("data");
        let mut f = HistoryFixture {
            fixture: Fixture {
                data_dir,
                source: voters,
                truth: crate::cli::truth_rows(&truth_json),
                truth_json,
            },
            dataset: layout,
            config: root.join("rollcall.toml"),
            history: (!in_file).then_some(history_path),
            analyst: TestAnalyst::on("alice", &[(layout, 1e8)]),
        };
        let ids = f.election_ids();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        f.config = f.config_with(&ids);
        f
    }

    /// Rewrites [`HistoryFixture::config`] to configure only the truth's
    /// elections `ids`, in that order; returns its path.
    pub fn config_with(&self, ids: &[&str]) -> PathBuf {
        let mut dataset = DatasetSection::nc(self.dataset)
            .layout(self.dataset)
            .epsilon_total(Some(1e8))
            .max_epsilon_per_query(1e6);
        let elections = self.truth()["elections"].as_array().unwrap();
        for id in ids {
            let e = elections
                .iter()
                .find(|e| e["id"] == *id)
                .unwrap_or_else(|| panic!("no election {id:?} in the truth"));
            let field = |k: &str| e[k].as_str().unwrap().to_owned();
            dataset = dataset.election(&field("id"), &field("date"), &field("kind"));
        }
        let root = self.fixture.data_dir.parent().expect("root/data");
        ConfigBuilder::new(&self.fixture.data_dir, &root.join("ledger.sqlite"))
            .dataset(dataset)
            .analyst(&self.analyst)
            .write(root)
    }

    /// `rollcall ingest --config CONFIG --dataset NAME VOTERS [--history
    /// HISTORY]`, with the history file(s) given (default: its own).
    pub fn ingest_with(&self, history: Option<&[&Path]>) -> Output {
        let mut args = vec![
            "ingest".to_owned(),
            "--quiet".to_owned(),
            "--config".to_owned(),
            self.config.display().to_string(),
            "--dataset".to_owned(),
            self.dataset.to_owned(),
            self.fixture.source.display().to_string(),
        ];
        let own: Vec<&Path> = self.history.iter().map(PathBuf::as_path).collect();
        let files = history.unwrap_or(&own);
        if !files.is_empty() {
            args.push("--history".to_owned());
            args.extend(files.iter().map(|f| f.display().to_string()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    }

    /// [`HistoryFixture::ingest_with`] its own files; panics unless it
    /// succeeds.
    pub fn ingest(&self) {
        let out = self.ingest_with(None);
        assert!(
            out.status.success(),
            "ingest of {} failed:\n{}",
            self.dataset,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The dataset folder.
    pub fn dataset_dir(&self) -> PathBuf {
        self.fixture.data_dir.join(self.dataset)
    }

    /// The ingested manifest.
    pub fn manifest(&self) -> Value {
        let text = std::fs::read_to_string(self.dataset_dir().join("manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The truth's `history` section.
    pub fn truth(&self) -> &Value {
        &self.fixture.truth_json["history"]
    }

    /// The ids of the configured elections, in order.
    pub fn election_ids(&self) -> Vec<String> {
        self.truth()["elections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }
}
