//! Privacy regressions, against the real `rollcall serve`:
//! (a) released counts equal the exact ones as often as discrete Laplace
//!     says (P(noise = 0) = tanh(ε/2)), never almost always;
//! (b) the server's log and the files it writes outside `data_dir` hold no
//!     exact count of a non-trivial cell;
//! (c) with unknown codes and counties in the file, no answer has a group key
//!     outside the public domains of `/v1/datasets`;
//! (d) errors never echo data values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};
use testkit::*;

/// Whole-number occurrences of `n` in `hay`: not next to a digit, a letter
/// or a dot (so not inside a hex id, a float or a longer number).
fn contains_number(hay: &[u8], n: u64) -> bool {
    let needle = n.to_string();
    let needle = needle.as_bytes();
    let edge = |b: u8| !(b.is_ascii_alphanumeric() || b == b'.');
    hay.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && (i == 0 || edge(hay[i - 1]))
            && hay.get(i + needle.len()).is_none_or(|&b| edge(b))
    })
}

#[test]
fn exact_counts_come_out_as_often_as_discrete_laplace_says() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 1000.0);
    let server = start(&write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    ));
    let data = nc_data();
    let groupings: &[&[&str]] = &[
        &["county", "gender"],
        &["county", "age_band"],
        &["county", "party"],
        &["age_band", "party", "gender"],
        &["county", "status"],
        &["race", "age_band", "gender"],
    ];
    for epsilon in [0.5f64, 1.0] {
        let mut n = 0u64;
        let mut exact = 0u64;
        for dims in groupings {
            let a = server.query(
                &alice.token,
                &json!({"dataset": "nc", "group_by": dims, "epsilon": epsilon}),
            );
            assert_eq!(a.status, 200, "{}", a.text);
            let truth = data.counts(dims, |_| true);
            for (key, count) in rows(&a, dims) {
                let want = truth.get(&key).copied().unwrap_or(0);
                if want >= 50 {
                    n += 1;
                    exact += u64::from(count == want as i64);
                }
            }
        }
        let p = (epsilon / 2.0).tanh();
        let observed = exact as f64 / n as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        eprintln!(
            "epsilon {epsilon}: {exact} of {n} cells (true count >= 50) released exactly: \
             {observed:.3}, discrete Laplace P(0) = tanh(eps/2) = {p:.3} (sd {sd:.3})"
        );
        assert!(n >= 400, "too few non-trivial cells ({n}) for the test");
        // 5 standard deviations: fails by chance about once in 3 million runs,
        // and whenever the noise is off, too small or missing.
        assert!(
            (observed - p).abs() <= 5.0 * sd,
            "epsilon {epsilon}: exact answers {observed:.3} of the time, expected {p:.3} ± {:.3}",
            5.0 * sd
        );
        assert!(observed < 0.9, "exact counts leak: {observed}");
    }
}

#[test]
fn logs_and_files_outside_data_dir_hold_no_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestAnalyst::nc("alice", 1000.0);
    let config = write_config(
        dir.path(),
        &DatasetSettings::default(),
        std::slice::from_ref(&alice),
        "",
    );
    // Debug level: the most the server ever logs.
    let server = try_start_with_log_level(&config, &[], "debug").unwrap();
    let data = nc_data();
    let groupings: &[&[&str]] = &[
        &[],
        &["gender"],
        &["party"],
        &["status"],
        &["age_band"],
        &["race"],
        &["ethnicity"],
        &["party", "gender"],
        &["age_band", "status"],
    ];
    let mut exact: BTreeSet<u64> = BTreeSet::new();
    let mut released: BTreeSet<i64> = BTreeSet::new();
    for (i, dims) in groupings.iter().enumerate() {
        // Small ε: a noisy count equals the exact one with probability
        // tanh(0.005) = 0.5%; such coincidences are excluded below.
        for (epsilon, filter) in [
            (0.01 + i as f64 * 1e-4, json!({})),
            (0.02 + i as f64 * 1e-4, json!({"status": ["A", "I"]})),
        ] {
            let a = server.query(
                &alice.token,
                &json!({"dataset": "nc", "group_by": dims, "filter": filter, "epsilon": epsilon}),
            );
            assert_eq!(a.status, 200, "{}", a.text);
            // A cached repeat, and (below) the listings, for the log.
            assert_eq!(
                server
                    .query(
                        &alice.token,
                        &json!({"dataset": "nc", "group_by": dims, "filter": filter,
                                "epsilon": epsilon}),
                    )
                    .status,
                200
            );
            let keep = |r: &TruthRow| {
                filter.get("status").is_none()
                    || matches!(r.values["status"].as_deref(), Some("A" | "I"))
            };
            let truth = data.counts(dims, keep);
            for (key, count) in rows(&a, dims) {
                released.insert(count);
                let want = truth.get(&key).copied().unwrap_or(0);
                exact.insert(want);
            }
        }
    }
    let _ = server.get("/v1/releases", &alice.token);
    let _ = server.get("/v1/budget", &alice.token);
    let stdout = server.stdout();
    let log = server.kill();
    assert!(log.contains("release stage"), "debug logging was on: {log}");

    // Distinctive: at least 4 digits. Not year-like (timestamps hold years)
    // and not equal to any released (noisy) count.
    let distinctive: Vec<u64> = exact
        .iter()
        .copied()
        .filter(|&c| c >= 1000 && !(1900..=2100).contains(&c) && !released.contains(&(c as i64)))
        .collect();
    assert!(
        distinctive.len() >= 20,
        "too few distinctive counts ({}) for the test",
        distinctive.len()
    );
    let mut files = vec![
        ("server log (stderr)".to_owned(), log.into_bytes()),
        ("server stdout".to_owned(), stdout.into_bytes()),
    ];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        assert!(!path.starts_with(&data.data_dir));
        files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    eprintln!(
        "searched {names:?} for {} distinctive exact counts",
        distinctive.len()
    );
    for (name, bytes) in &files {
        for &c in &distinctive {
            assert!(
                !contains_number(bytes, c),
                "{name} holds the exact count {c} of a cell"
            );
        }
    }
    assert!(
        names.iter().any(|n| n.ends_with("ledger.sqlite")),
        "the ledger was searched"
    );
}

/// A data folder with an NC file full of quirks (unknown party and race
/// codes, unknown counties) ingested, and its manifest.
fn quirks_data(root: &Path) -> (std::path::PathBuf, Value) {
    let raw = root.join("quirks.txt");
    let data_dir = root.join("data");
    synth("nc", 20_000, 99, true, &raw);
    ingest_nc(&data_dir, &raw);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir.join("nc/manifest.json")).unwrap())
            .unwrap();
    (data_dir, manifest)
}

#[test]
fn group_keys_stay_in_the_public_domains_and_errors_echo_no_data() {
    let root = tempfile::tempdir().unwrap();
    let (data_dir, manifest) = quirks_data(root.path());
    let unknown: BTreeMap<String, Vec<String>> = manifest["unknown_codes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(col, codes)| {
            (
                col.clone(),
                codes.as_object().unwrap().keys().cloned().collect(),
            )
        })
        .collect();
    assert!(
        unknown.get("party").is_some_and(|c| !c.is_empty())
            && unknown.get("race").is_some_and(|c| !c.is_empty()),
        "the quirks file should hold unknown party and race codes: {unknown:?}"
    );
    assert!(
        manifest["rejects_by_reason"]["unknown_county"].as_u64() > Some(0),
        "the quirks file should hold unknown counties: {}",
        manifest["rejects_by_reason"]
    );

    let serve_dir = root.path().join("serve");
    std::fs::create_dir_all(&serve_dir).unwrap();
    let alice = TestAnalyst::nc("alice", 1e6);
    let server = start(&write_config_for(
        &data_dir,
        &serve_dir,
        &DatasetSettings {
            epsilon_total: 1e7,
            max_epsilon_per_query: 1e4,
        },
        std::slice::from_ref(&alice),
        "",
    ));
    let public = domains(&server, &alice.token);
    let dims: Vec<&str> = public.keys().map(String::as_str).collect();
    assert!(dims.len() >= 8, "{dims:?}");

    // (c) Every dimension alone and every pair: each key of each row is a
    // public value of its dimension; each public cell appears once. Huge ε:
    // the answer is nearly exact, so data-driven keys would show.
    let mut answers = Vec::new();
    let mut queries = 0;
    for (i, a) in dims.iter().enumerate() {
        for b in dims.iter().skip(i) {
            let group_by: Vec<&str> = if a == b { vec![a] } else { vec![a, b] };
            let cells: usize = group_by.iter().map(|d| public[*d].len()).product();
            if cells > 20_000 {
                continue;
            }
            let r = server.query(
                &alice.token,
                &json!({"dataset": "nc", "group_by": group_by, "epsilon": 1e4}),
            );
            queries += 1;
            assert_eq!(r.status, 200, "{group_by:?}: {}", r.text);
            let rows = r.body["rows"].as_array().unwrap();
            assert_eq!(rows.len(), cells, "{group_by:?}: every public cell once");
            let mut seen = BTreeSet::new();
            for row in rows {
                let obj = row.as_object().unwrap();
                assert_eq!(obj.len(), group_by.len() + 1, "{row}");
                let mut key = Vec::new();
                for (k, v) in obj {
                    if k == "count" {
                        continue;
                    }
                    let v = v.as_str().unwrap_or_else(|| panic!("{row}"));
                    assert!(
                        public
                            .get(k)
                            .is_some_and(|vals| vals.iter().any(|p| p == v)),
                        "group key {k}={v:?} is not in the public domain"
                    );
                    key.push(v.to_owned());
                }
                assert!(seen.insert(key), "{row} twice");
            }
            answers.push(r.text);
        }
    }
    eprintln!(
        "{queries} group-by queries over {} dimensions: every key public",
        dims.len()
    );

    // (d) Errors never echo data: not the unknown codes found in the file,
    // and not a count.
    let t = alice.token.as_str();
    let bad = [
        json!({"dataset": "nc", "filter": {"party": ["NOPE"]}, "epsilon": 1.0}),
        json!({"dataset": "nc", "filter": {"race": ["Q9"]}, "epsilon": 1.0}),
        json!({"dataset": "nc", "filter": {"county": ["ATLANTIS"]}, "epsilon": 1.0}),
        json!({"dataset": "nc", "group_by": ["ssn"], "epsilon": 1.0}),
        json!({"dataset": "nc", "group_by": ["party", "party"], "epsilon": 1.0}),
        json!({"dataset": "nc", "filter": {"party": []}, "epsilon": 1.0}),
        json!({"dataset": "nc", "epsilon": 1e9}),
        json!({"dataset": "oh", "epsilon": 1.0}),
        json!({"dataset": "nc", "group_by": ["county", "age_band", "gender", "party", "race", "status"], "epsilon": 1.0}),
        json!({"dataset": "nc", "epsilon": "1"}),
    ];
    let truth_total = manifest["rows_written"].as_u64().unwrap();
    let mut errors = 0;
    for body in &bad {
        let r = server.query(t, body);
        assert!((400..500).contains(&r.status), "{body}: {}", r.text);
        errors += 1;
        for codes in unknown.values() {
            for code in codes.iter().filter(|c| c.len() >= 2) {
                assert!(
                    !r.text.contains(&format!("\"{code}\""))
                        && !r.text.contains(&format!("`{code}`"))
                        && !r.text.contains(&format!(" {code},")),
                    "error echoes the unknown code {code:?} found in the data: {}",
                    r.text
                );
            }
        }
        assert!(
            !contains_number(r.text.as_bytes(), truth_total),
            "error holds the row count: {}",
            r.text
        );
    }
    // The answers themselves never name an unknown code either.
    for text in &answers {
        for (col, codes) in &unknown {
            for code in codes {
                let public_too = public.get(col).is_some_and(|v| v.contains(code));
                assert!(
                    public_too || !text.contains(&format!("\"{col}\":\"{code}\"")),
                    "answer names the unknown {col} code {code:?}"
                );
            }
        }
    }
    eprintln!("{errors} error answers checked: no data values echoed");
}
