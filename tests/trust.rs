//! The privacy review's defects, end to end against the real binary: each
//! test failed on the code the review read and passes now.
//!
//! - a re-ingest, or a new `as_of`, is never answered from an old release;
//! - datasets holding the same voters must share a population, whose cap
//!   bounds every spend on all of them;
//! - `share_releases = false` keeps stored answers to the analyst who paid;
//! - ε is exact: a dry run at ε = 30 says 30, and `ci95` is always a number;
//! - the ledger and the dataset files are owner-only.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use testkit::*;

/// Synthesizes `rows` NC voters with `seed` into `dir/nc-SEED.txt`.
fn synth_nc(dir: &Path, rows: usize, seed: u64) -> PathBuf {
    let out = dir.join(format!("nc-{seed}.txt"));
    synth("nc", rows, seed, false, &out);
    out
}

/// Ingests `file` as dataset `name` into `data_dir`.
fn ingest(data_dir: &Path, name: &str, file: &Path) {
    testkit::ingest("nc", name, data_dir, &[file]);
}

/// A config serving `data_dir`, its ledger in `dir`.
fn config(dir: &Path, data_dir: &Path) -> ConfigBuilder {
    ConfigBuilder::new(data_dir, &dir.join("ledger.sqlite"))
}

/// An `nc` dataset that allows large ε (exact answers) per query.
fn dataset(name: &str) -> DatasetSection {
    DatasetSection::nc(name).max_epsilon_per_query(1000.0)
}

fn total(answer: &Answer) -> i64 {
    rows(answer, &[]).iter().map(|(_, c)| c).sum()
}

/// Defect 2: after a re-ingest under the same name, an identical query is a
/// new release over the new data (and spends again); the old release stays
/// in the ledger. A changed `as_of` (other labels) is another key too.
#[test]
fn a_re_ingest_or_a_new_as_of_never_serves_an_old_release() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let alice = TestAnalyst::nc("alice", 1e6);
    let make = |as_of: &str| {
        config(root.path(), &data_dir)
            .dataset(dataset("nc").as_of(as_of).epsilon_total(Some(1e7)))
            .analyst(&alice)
            .write(root.path())
    };
    ingest(&data_dir, "nc", &synth_nc(root.path(), 3_000, 1));
    let q = json!({"dataset": "nc", "group_by": [], "epsilon": 1000.0});
    let server = start(&make("2026-06-30"));
    let before = server.query(&alice.token, &q);
    assert_eq!(before.status, 200, "{}", before.text);
    let first_total = total(&before);
    drop(server);

    // Twice as many voters under the same name.
    ingest(&data_dir, "nc", &synth_nc(root.path(), 6_000, 2));
    let server = start(&make("2026-06-30"));
    let after = server.query(&alice.token, &q);
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(
        after.body["cached"], false,
        "the old data's release was served"
    );
    assert_ne!(after.body["release_id"], before.body["release_id"]);
    assert!(
        (total(&after) - 2 * first_total).abs() < 100,
        "{} voters after the re-ingest, {first_total} before",
        total(&after)
    );
    drop(server);

    // Another reference date relabels the age bands: not the same answer.
    let aged = json!({"dataset": "nc", "group_by": ["age_band"], "epsilon": 1000.0});
    let server = start(&make("2026-06-30"));
    let a = server.query(&alice.token, &aged);
    drop(server);
    let server = start(&make("2040-06-30"));
    let b = server.query(&alice.token, &aged);
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(
        b.body["cached"], false,
        "a release under other age labels was served"
    );
    assert_ne!(a.body["rows"], b.body["rows"]);
    // Every release is still in the ledger (and the audit).
    let releases = server.get("/v1/releases", &alice.token);
    assert_eq!(
        releases.body["releases"].as_array().unwrap().len(),
        4,
        "{}",
        releases.text
    );
}

/// Defect 3: one file ingested under two names holds the same voters. Two
/// populations for it are refused at start-up, naming both datasets; one
/// population bounds every spend on both, and its refusal names it.
#[test]
fn datasets_of_the_same_voters_share_one_population_cap() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let file = synth_nc(root.path(), 2_000, 3);
    ingest(&data_dir, "nc_a", &file);
    ingest(&data_dir, "nc_b", &file);
    let alice = TestAnalyst::on("alice", &[("nc_a", 100.0), ("nc_b", 100.0)]);

    let apart = config(root.path(), &data_dir)
        .dataset(dataset("nc_a").epsilon_total(Some(3.0)))
        .dataset(dataset("nc_b").epsilon_total(Some(3.0)))
        .analyst(&alice)
        .write(root.path());
    let err = try_start(&apart, &[])
        .err()
        .expect("two caps for the same voters were accepted");
    assert!(
        err.contains("nc_a") && err.contains("nc_b") && err.contains("population"),
        "{err}"
    );

    let together = config(root.path(), &data_dir)
        .population("nc-voters", 3.0)
        .dataset(dataset("nc_a").population("nc-voters"))
        .dataset(dataset("nc_b").population("nc-voters"))
        .analyst(&alice)
        .write(root.path());
    let server = start(&together);
    let q = |name: &str, e: f64| json!({"dataset": name, "group_by": ["party"], "epsilon": e});
    assert_eq!(server.query(&alice.token, &q("nc_a", 2.0)).status, 200);
    let refused = server.query(&alice.token, &q("nc_b", 2.0));
    assert_eq!(
        (refused.status, refused.code()),
        (403, "budget_exhausted"),
        "{}",
        refused.text
    );
    assert_eq!(refused.body["error"]["cap"], "population");
    assert_eq!(refused.body["error"]["cap_name"], "nc-voters");
    assert!(refused.text.contains("nc-voters"), "{}", refused.text);
    assert_eq!(server.query(&alice.token, &q("nc_b", 1.0)).status, 200);
    let budget = server.get("/v1/budget", &alice.token);
    for d in budget.body["datasets"].as_array().unwrap() {
        assert_eq!(d["population"], "nc-voters");
        assert_eq!(d["population_remaining"].as_f64(), Some(0.0), "{d}");
    }
}

/// Defect 4: with `share_releases = false`, another analyst's stored
/// release is neither served nor revealed by a dry run's `cached`.
#[test]
fn unshared_releases_are_per_analyst() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    ingest(&data_dir, "nc", &synth_nc(root.path(), 2_000, 4));
    let alice = TestAnalyst::nc("alice", 10.0);
    let bob = TestAnalyst::nc("bob", 10.0);
    let server = start(
        &config(root.path(), &data_dir)
            .dataset(
                dataset("nc")
                    .epsilon_total(Some(100.0))
                    .share_releases(false),
            )
            .analysts(&[alice.clone(), bob.clone()])
            .write(root.path()),
    );
    let q = json!({"dataset": "nc", "group_by": ["county"], "epsilon": 0.5});
    let a = server.query(&alice.token, &q);
    assert_eq!(
        (a.status, &a.body["cached"]),
        (200, &Value::Bool(false)),
        "{}",
        a.text
    );
    let mut dry = q.clone();
    dry["dry_run"] = json!(true);
    let d = server.query(&bob.token, &dry);
    assert_eq!(
        d.body["cached"], false,
        "bob learned that someone asked: {}",
        d.text
    );
    assert_eq!(d.body["epsilon"].as_f64(), Some(0.5));
    let b = server.query(&bob.token, &q);
    assert_eq!(b.body["cached"], false, "bob was served alice's release");
    assert_eq!(b.body["epsilon_spent"].as_f64(), Some(0.5));
    assert_ne!(b.body["release_id"], a.body["release_id"]);
    let again = server.query(&alice.token, &q);
    assert_eq!(
        (
            again.body["cached"].clone(),
            again.body["release_id"].clone()
        ),
        (json!(true), a.body["release_id"].clone())
    );
    let info = server.get("/v1/datasets", &bob.token);
    assert_eq!(info.body["datasets"][0]["share_releases"], false);
}

/// Defect 7: what is charged is printed exactly (a dry run at ε = 30 said
/// 29.999999999999996) and `ci95` is a finite number at any ε (it was null
/// from ε ≈ 745 on). Defect 9: the ledger and the dataset's files are
/// owner-only.
#[test]
fn amounts_are_exact_and_files_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    ingest(&data_dir, "nc", &synth_nc(root.path(), 2_000, 5));
    let alice = TestAnalyst::nc("alice", 2.0);
    let server = start(
        &config(root.path(), &data_dir)
            .dataset(dataset("nc").epsilon_total(Some(100.0)))
            .analyst(&alice)
            .write(root.path()),
    );
    for (e, want) in [(30.0, "30.0"), (0.05, "0.05"), (0.3, "0.3")] {
        let d = server.query(
            &alice.token,
            &json!({"dataset": "nc", "group_by": ["county"], "epsilon": e, "dry_run": true}),
        );
        assert_eq!(d.status, 200, "{}", d.text);
        assert!(
            d.text.contains(&format!("\"epsilon\":{want},")),
            "ε {e} is not charged as {want}: {}",
            d.text
        );
    }
    let big = server.query(
        &alice.token,
        &json!({"dataset": "nc", "group_by": [], "epsilon": 1000.0, "dry_run": true}),
    );
    let ci = big.body["ci95"].as_f64();
    assert!(
        ci.is_some_and(|c| c.is_finite() && c >= 0.0),
        "{}",
        big.text
    );
    // A budget of 2 affords exactly 40 distinct queries at 0.05.
    let counties = domains(&server, &alice.token)["county"].clone();
    let answered = counties[..45]
        .iter()
        .filter(|county| {
            let q = json!({"dataset": "nc", "group_by": ["party"],
                           "filter": {"county": [county]}, "epsilon": 0.05});
            server.query(&alice.token, &q).status == 200
        })
        .count();
    assert_eq!(answered, 40);
    let budget = server.get("/v1/budget", &alice.token);
    assert_eq!(
        budget.body["datasets"][0]["spent"].as_f64(),
        Some(2.0),
        "{}",
        budget.text
    );
    drop(server);

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for name in ["ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"] {
        let path = root.path().join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name} is {:o}", mode(&path));
        }
    }
    let ds = data_dir.join("nc");
    assert_eq!(mode(&ds), 0o700, "the dataset folder is {:o}", mode(&ds));
    for entry in std::fs::read_dir(&ds).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            mode(&path),
            0o600,
            "{} is {:o}",
            path.display(),
            mode(&path)
        );
    }
}

/// Defect 8: the noise comes from opendp as it ships, reading a supported
/// OpenSSL (3.5 or newer), and `rollcall version` says which.
#[test]
fn version_names_a_supported_openssl() {
    let out = std::process::Command::new(bin())
        .arg("version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let version = text
        .split("OpenSSL ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no OpenSSL version in {text}"));
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    assert!(
        parts.len() >= 2 && (parts[0], parts[1]) >= (3, 5),
        "linked OpenSSL {version}"
    );
    assert!(text.contains("opendp"), "{text}");
}
