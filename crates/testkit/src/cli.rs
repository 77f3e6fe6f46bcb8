//! The real `rollcall` binary, and datasets made with it the way a user
//! makes them: `rollcall synth` (a file in a layout's exact format, with its
//! ground truth), then `rollcall ingest`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `rollcall` binary of this build: `$ROLLCALL_BIN`, else the one next
/// to the running test executable (`target/<profile>/rollcall`, whatever
/// `CARGO_TARGET_DIR` is).
pub fn bin() -> PathBuf {
    if let Some(b) = std::env::var_os("ROLLCALL_BIN") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/rollcall
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test executable under target/<profile>/deps");
    let path = profile_dir.join("rollcall");
    assert!(
        path.is_file(),
        "no rollcall binary at {} (build it: `cargo build -p rollcall`, or set ROLLCALL_BIN)",
        path.display()
    );
    path
}

/// The repository root, so `config/` is found as a user would run it.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/tmp`, wherever the target folder is.
fn scratch_base() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("a test executable under target/<profile>/deps")
        .join("tmp")
}

/// A folder for this test binary's shared fixtures, next to cargo's other
/// build output (`target/tmp/<test binary>`), emptied on first use.
pub fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = scratch_base().join(stem).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `rollcall ARGS` from the repository root and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run rollcall")
}

/// Runs `rollcall ARGS` and panics with its stderr unless it succeeds.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "rollcall {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A whole number from the environment variable `name`, or `default`: lets
/// the scripts run bigger versions of the same tests.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One row of the generator's truth: values by output column, and how many
/// voters have exactly them.
#[derive(Debug, Clone)]
pub struct TruthRow {
    /// Column name → value (`None`: null in the truth file).
    pub values: BTreeMap<String, Option<String>>,
    /// How many voters have exactly these values.
    pub count: u64,
    /// Per election of the truth's `history` (in its order): the category
    /// of these voters, an index into [`layout::CATEGORIES`].
    pub votes: Vec<u8>,
}

/// A dataset made by `rollcall synth` and `rollcall ingest`.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Folder holding the dataset folder.
    pub data_dir: PathBuf,
    /// The synthetic file (kept only with [`Fixture::keep_source`]).
    pub source: PathBuf,
    /// The generator's truth, as written by `synth --truth`.
    pub truth_json: Value,
    /// Its rows.
    pub truth: Vec<TruthRow>,
}

/// How to make a [`Fixture`].
#[derive(Debug, Clone)]
pub struct FixtureSpec<'a> {
    /// Layout name or path.
    pub layout: &'a str,
    /// Dataset name.
    pub dataset: &'a str,
    /// Data lines.
    pub rows: usize,
    /// Generator seed.
    pub seed: u64,
    /// Real-file quirks (rejects, duplicates, unknown codes...).
    pub quirks: bool,
}

impl Fixture {
    /// Synthesizes and ingests `spec` under `root` (`root/data/NAME`); the
    /// synthetic file is deleted unless `keep_source`.
    pub fn make(root: &Path, spec: &FixtureSpec<'_>, keep_source: bool) -> Fixture {
        std::fs::create_dir_all(root).unwrap();
        let source = root.join(source_name(spec));
        let data_dir = root.join("data");
        let truth_path = root.join(format!("{}-truth.json", spec.dataset));
        let rows = spec.rows.to_string();
        let seed = spec.seed.to_string();
        let mut args = vec![
            "synth",
            "--layout",
            spec.layout,
            "--rows",
            &rows,
            "--seed",
            &seed,
            "--out",
            source.to_str().unwrap(),
            "--truth",
            truth_path.to_str().unwrap(),
        ];
        if spec.quirks {
            args.push("--quirks");
        }
        run_ok(&args);
        ingest(spec.layout, spec.dataset, &data_dir, &[&source]);
        if !keep_source {
            let _ = std::fs::remove_file(&source);
        }
        Fixture::load(root, spec)
    }

    /// [`Fixture::make`] once for every test process of this build: test
    /// runners that start a process per test (`cargo nextest`) would
    /// otherwise remake it per test, each wiping the others' folder. The
    /// first process builds it in a folder of its own and renames it into
    /// place; the others wait for the rename or lose the race and use the
    /// winner's. The folder's name carries the binary's size and mtime, so a
    /// rebuilt binary makes a fresh fixture.
    pub fn shared(spec: &FixtureSpec<'_>) -> Fixture {
        // A digest rather than the sizes themselves: tests look for exact
        // counts (the row count among them) in every file and path the
        // server sees.
        let mut h = std::hash::DefaultHasher::new();
        (spec.layout, spec.dataset, spec.rows, spec.seed, spec.quirks).hash(&mut h);
        let root = shared_root().join(format!("{:016x}", h.finish()));
        if !root.join(READY).is_file() {
            let own = root.with_extension(format!("tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&own);
            Fixture::make(&own, spec, false);
            std::fs::write(own.join(READY), b"").unwrap();
            if std::fs::rename(&own, &root).is_err() {
                // Another process renamed first: its fixture is the same.
                let _ = std::fs::remove_dir_all(&own);
            }
        }
        assert!(
            root.join(READY).is_file(),
            "no fixture at {}",
            root.display()
        );
        Fixture::load(&root, spec)
    }

    /// The fixture [`Fixture::make`] left under `root`.
    fn load(root: &Path, spec: &FixtureSpec<'_>) -> Fixture {
        let truth_path = root.join(format!("{}-truth.json", spec.dataset));
        let truth_json: Value =
            serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
        Fixture {
            data_dir: root.join("data"),
            source: root.join(source_name(spec)),
            truth: truth_rows(&truth_json),
            truth_json,
        }
    }

    /// Exact counts by `dims` (output column names; `age_band` derived with
    /// [`age_band`]; `vote_<id>` the category name in election `id`) over
    /// the truth rows passing `keep`.
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
                    vote if vote.starts_with(layout::VOTE_PREFIX) => self.vote(row, vote).into(),
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

impl Fixture {
    /// The category name of `row`'s voters in the election of dimension
    /// `vote_<id>`.
    pub fn vote(&self, row: &TruthRow, dimension: &str) -> &'static str {
        let id = &dimension[layout::VOTE_PREFIX.len()..];
        let elections = self.truth_json["history"]["elections"]
            .as_array()
            .expect("a truth with voting history");
        let i = elections
            .iter()
            .position(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("no election {id:?} in the truth"));
        layout::CATEGORIES[usize::from(row.votes[i])].0
    }
}

/// Marks a finished shared fixture.
const READY: &str = ".ready";

fn source_name(spec: &FixtureSpec<'_>) -> String {
    format!(
        "{}-{}-{}.txt",
        spec.layout.replace('/', "_"),
        spec.rows,
        spec.seed
    )
}

/// `target/tmp/fixtures/<binary stamp>`: shared by every test process that
/// runs the same `rollcall` binary.
fn shared_root() -> PathBuf {
    let bin = bin();
    let meta = std::fs::metadata(&bin).expect("the rollcall binary");
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let target = scratch_base();
    let root = target
        .join("fixtures")
        .join(format!("{:x}-{mtime:x}", meta.len()));
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// `rollcall synth --layout LAYOUT --rows ROWS --seed SEED [--quirks] --out OUT`.
pub fn synth(layout: &str, rows: usize, seed: u64, quirks: bool, out: &Path) {
    let (rows, seed) = (rows.to_string(), seed.to_string());
    let mut args = vec![
        "synth", "--layout", layout, "--rows", &rows, "--seed", &seed,
    ];
    if quirks {
        args.push("--quirks");
    }
    args.extend(["--out", out.to_str().unwrap()]);
    run_ok(&args);
}

/// `rollcall ingest --layout LAYOUT --dataset NAME --data-dir DIR FILES…`.
pub fn ingest(layout: &str, dataset: &str, data_dir: &Path, files: &[&Path]) {
    let mut args = vec![
        "ingest",
        "--layout",
        layout,
        "--dataset",
        dataset,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--quiet",
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    run_ok(&args);
}

pub(crate) fn truth_rows(json: &Value) -> Vec<TruthRow> {
    json["rows"]
        .as_array()
        .expect("truth has rows")
        .iter()
        .map(|r| {
            let obj = r.as_object().unwrap();
            let values = obj
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "count" | "votes"))
                .map(|(k, v)| {
                    let s = match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    };
                    (k.clone(), s)
                })
                .collect();
            let votes = obj
                .get("votes")
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |v| {
                    v.iter()
                        .map(|c| {
                            c.as_u64()
                                .and_then(|c| u8::try_from(c).ok())
                                .expect("a category index")
                        })
                        .collect()
                });
            TruthRow {
                values,
                count: obj["count"].as_u64().unwrap(),
                votes,
            }
        })
        .collect()
}

/// The age band of a birth year on 2026 with the bands
/// `[18, 25, 35, 45, 55, 65, 75]` ([`crate::config::AGE_BANDS`]), as the
/// test configs define them.
pub fn age_band(birth_year: Option<&str>) -> String {
    let Some(year) = birth_year.and_then(|y| y.parse::<i32>().ok()) else {
        return "unknown".into();
    };
    if !(1880..=2026).contains(&year) {
        return "unknown".into();
    }
    let age = 2026 - year;
    let edges = crate::config::AGE_BANDS;
    if age < i32::from(edges[0]) {
        return format!("<{}", edges[0]);
    }
    for w in edges.windows(2) {
        if age < i32::from(w[1]) {
            return format!("{}-{}", w[0], w[1] - 1);
        }
    }
    format!("{}+", edges[edges.len() - 1])
}

/// Ingests the NC file `file` as dataset `nc` into `data_dir`.
pub fn ingest_nc(data_dir: &Path, file: &Path) {
    ingest("nc", "nc", data_dir, &[file]);
}
