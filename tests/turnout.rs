//! Voting history end to end, for each state's format (NC's and FL's
//! separate history files, OH's election columns): `rollcall synth` writes
//! voters, history and the generator's truth, `rollcall ingest --config …
//! --history …` joins them, and the real server's turnout answers at a huge
//! ε (noise at most 1 per cell) equal the truth cell by cell. The manifest's
//! history totals (lines read, rejects by reason with their line numbers,
//! other elections, unmatched ids, duplicates, unknown methods) equal the
//! truth's exactly, and no identifier reaches Parquet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};
use testkit::*;

/// Voters per state (`TURNOUT_ROWS` runs bigger files through the same
/// checks).
fn rows_per_state() -> usize {
    env_usize("TURNOUT_ROWS", 4000)
}

/// Every cell of `got` equals `truth` within 1 (a missing key is 0), and
/// every true cell is answered.
fn assert_cells(what: &str, got: &[(Vec<String>, i64)], truth: &BTreeMap<Vec<String>, u64>) {
    for (key, count) in got {
        let want = truth.get(key).copied().unwrap_or(0) as i64;
        assert!(
            (count - want).abs() <= 1,
            "{what}: cell {key:?} is {count}, truth {want}"
        );
    }
    let answered: BTreeSet<&Vec<String>> = got.iter().map(|(k, _)| k).collect();
    for (key, n) in truth {
        assert!(
            answered.contains(key),
            "{what}: true cell {key:?} ({n}) not answered"
        );
    }
}

/// The manifest's history totals are the truth's, and `history_rejects.tsv`
/// lists exactly the truth's rejected lines, by reason, without content.
fn assert_history_totals(f: &HistoryFixture) {
    let manifest = f.manifest();
    let got = &manifest["history"];
    let want = f.truth();
    let ids: Vec<&str> = got["elections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, f.election_ids(), "{}: elections stored", f.dataset);
    for key in [
        "lines_read",
        "other_elections",
        "unmatched",
        "duplicates",
        "unknown_methods",
    ] {
        assert_eq!(got[key], want[key], "{}: history.{key}", f.dataset);
    }
    let want_rejects: BTreeMap<String, Vec<u64>> =
        serde_json::from_value(want["rejected"].clone()).unwrap();
    let counted: BTreeMap<String, u64> =
        serde_json::from_value(got["rejects_by_reason"].clone()).unwrap();
    let want_counts: BTreeMap<String, u64> = want_rejects
        .iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(r, lines)| (r.clone(), lines.len() as u64))
        .collect();
    let counted: BTreeMap<String, u64> = counted.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(counted, want_counts, "{}: rejects by reason", f.dataset);
    if f.history.is_some() {
        assert!(
            !want_counts.is_empty() && want["duplicates"].as_u64() > Some(0),
            "{}: the quirks should make rejects and duplicates",
            f.dataset
        );
        assert!(
            want["unmatched"].as_u64() > Some(0),
            "{}: unmatched ids",
            f.dataset
        );
    }

    let path = f.dataset_dir().join(dataset::HISTORY_REJECTS);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut listed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "file, line, key, reason only: {line:?}");
        let n: u64 = fields[1]
            .parse()
            .unwrap_or_else(|_| panic!("a line number: {line:?}"));
        listed.entry(fields[3].to_owned()).or_default().push(n);
    }
    for lines in listed.values_mut() {
        lines.sort_unstable();
    }
    let want_listed: BTreeMap<String, Vec<u64>> = want_rejects
        .into_iter()
        .filter(|(_, lines)| !lines.is_empty())
        .collect();
    assert_eq!(listed, want_listed, "{}: rejected line numbers", f.dataset);
}

/// Parquet holds the declared dimensions and one code column per election,
/// nothing else; no voter id from the history file is anywhere in it.
fn assert_no_identifiers(f: &HistoryFixture) {
    let (columns, rows) = read_dataset(&f.dataset_dir());
    for id in f.election_ids() {
        let col = format!("vote_{id}");
        assert!(
            columns.contains(&col),
            "{}: no column {col}: {columns:?}",
            f.dataset
        );
    }
    for forbidden in [
        "ncid",
        "voter_reg_num",
        "voter_id",
        "sos_voterid",
        "pct_label",
    ] {
        assert!(
            !columns.iter().any(|c| c.eq_ignore_ascii_case(forbidden)),
            "{}: column {forbidden} in Parquet",
            f.dataset
        );
    }
    let categories: BTreeSet<&str> = layout::CATEGORIES.iter().map(|c| c.0).collect();
    for (i, c) in columns.iter().enumerate() {
        if c.starts_with(layout::VOTE_PREFIX) {
            for row in &rows {
                let v = row[i].as_deref().unwrap_or("<null>");
                assert!(
                    categories.contains(v) || v.parse::<u8>().is_ok_and(|k| k < 8),
                    "{c}: {v:?} is no category"
                );
            }
        }
    }
    // The ids the history file joins on: none reaches any file of the dataset.
    let Some(history) = &f.history else { return };
    let text = std::fs::read(history).unwrap();
    let ids = sample_ids(&text, f.dataset);
    assert!(
        ids.len() > 50,
        "{}: ids sampled from the history file",
        f.dataset
    );
    for entry in std::fs::read_dir(f.dataset_dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for id in &ids {
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_slice()),
                "{}: id {:?} found in the dataset folder",
                f.dataset,
                String::from_utf8_lossy(id)
            );
        }
    }
}

/// Long voter ids from the history file (NC's ncid, FL's voter id): long
/// enough that finding one by chance in binary files is impossible.
fn sample_ids(text: &[u8], dataset: &str) -> BTreeSet<Vec<u8>> {
    let column = if dataset == "nc" { 10 } else { 1 };
    text.split(|&b| b == b'\n')
        .skip(usize::from(dataset == "nc"))
        .step_by(97)
        .filter_map(|line| line.split(|&b| b == b'\t').nth(column))
        .map(|f| {
            f.iter()
                .copied()
                .filter(|&b| b != b'"')
                .collect::<Vec<u8>>()
        })
        .filter(|id| id.len() >= 8)
        .collect()
}

/// Turnout of every election by county, two elections crossed, and age
/// band by the last election: each cell equals the truth.
fn assert_turnout_answers(f: &HistoryFixture) {
    let server = start(&f.config);
    let token = &f.analyst.token;
    let domains = domains(&server, token);
    let layout =
        layout::Layout::from_file(&repo_root().join(format!("config/layouts/{}.toml", f.dataset)))
            .unwrap();
    let want_values: Vec<String> = layout
        .history
        .as_ref()
        .unwrap()
        .categories()
        .iter()
        .map(|&c| layout::CATEGORIES[usize::from(c)].0.to_owned())
        .collect();
    let ids = f.election_ids();
    for id in &ids {
        let dim = format!("vote_{id}");
        assert_eq!(domains[&dim], want_values, "{}: values of {dim}", f.dataset);
    }

    let ask = |group_by: &[&str]| {
        let a = server.query(
            token,
            &json!({"dataset": f.dataset, "group_by": group_by, "epsilon": 1e6}),
        );
        assert_eq!(a.status, 200, "{group_by:?}: {}", a.text);
        rows(&a, group_by)
    };
    for id in &ids {
        let dims = ["county", &format!("vote_{id}")];
        let got = ask(&dims);
        let truth = f.fixture.counts(&dims, |_| true);
        assert_cells(&format!("{} {dims:?}", f.dataset), &got, &truth);
        assert_by_county(f, id, &truth);
    }
    let first = format!("vote_{}", ids[ids.len() - 5]);
    let last = format!("vote_{}", ids[ids.len() - 1]);
    for dims in [
        vec![first.as_str(), last.as_str()],
        vec!["age_band", last.as_str()],
    ] {
        let got = ask(&dims);
        let truth = f.fixture.counts(&dims, |_| true);
        assert_cells(&format!("{} {dims:?}", f.dataset), &got, &truth);
    }

    // A filter on an election: how those who stayed home in the last
    // election voted in an earlier one.
    let a = server.query(
        token,
        &json!({"dataset": f.dataset, "group_by": [first], "filter": {&last: ["did_not_vote"]},
                "epsilon": 1e6}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let truth = f
        .fixture
        .counts(&[&first], |r| f.fixture.vote(r, &last) == "did_not_vote");
    assert_cells(
        &format!("{} filtered", f.dataset),
        &rows(&a, &[&first]),
        &truth,
    );
}

/// The truth's per-county summary agrees with its per-voter rows (two
/// views the generator keeps of the same history).
fn assert_by_county(f: &HistoryFixture, id: &str, cells: &BTreeMap<Vec<String>, u64>) {
    let election = f.truth()["elections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap();
    let totals: u64 = election["categories"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        totals,
        cells.values().sum::<u64>(),
        "{}: {id} voters",
        f.dataset
    );
    let per_county: u64 = election["by_county"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_county, totals, "{}: {id} by county", f.dataset);
}

fn check_state(layout: &'static str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let f = HistoryFixture::synth(dir.path(), layout, rows_per_state(), seed);
    f.ingest();
    assert_history_totals(&f);
    assert_no_identifiers(&f);
    assert_turnout_answers(&f);
}

#[test]
fn nc_history_file_gives_the_true_turnout() {
    check_state("nc", 11);
}

#[test]
fn fl_history_files_give_the_true_turnout() {
    check_state("fl", 12);
}

#[test]
fn oh_election_columns_give_the_true_turnout() {
    check_state("oh", 13);
}

/// A history file in another state's format is refused before anything is
/// swapped, naming the layout key it breaks; the earlier ingest stands.
#[test]
fn a_history_file_of_the_wrong_layout_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let nc = HistoryFixture::synth(&dir.path().join("nc"), "nc", 500, 21);
    let fl = HistoryFixture::synth(&dir.path().join("fl"), "fl", 500, 22);
    nc.ingest();
    fl.ingest();
    assert_refused(&nc, &fl.history.clone().unwrap());
    assert_refused(&fl, &nc.history.clone().unwrap());
}

/// Ingesting `target`'s voters with the history file `foreign` fails naming
/// a `history.` key, quotes nothing of the file, and leaves the dataset as
/// it was.
fn assert_refused(target: &HistoryFixture, foreign: &Path) {
    let manifest = || std::fs::read_to_string(target.dataset_dir().join("manifest.json")).unwrap();
    let before = manifest();
    let out = target.ingest_with(Some(&[foreign]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = target.dataset;
    assert!(
        !out.status.success(),
        "{name} ingest of {foreign:?} succeeded:\n{stderr}"
    );
    assert!(
        stderr.contains("history."),
        "names the layout key: {stderr}"
    );
    assert_eq!(before, manifest(), "{name}: the earlier dataset stands");
    assert_no_content_of(foreign, &stderr);
}

/// No field of `file` longer than 6 bytes (ids, dates, descriptions)
/// appears in `message`, except the file's own path.
fn assert_no_content_of(file: &Path, message: &str) {
    let message = message.replace(&file.display().to_string(), "<file>");
    let text = std::fs::read(file).unwrap();
    for line in text.split(|&b| b == b'\n').take(200) {
        for field in line.split(|&b| b == b'\t') {
            let field: Vec<u8> = field.iter().copied().filter(|&b| b != b'"').collect();
            if field.len() > 6 {
                let field = String::from_utf8_lossy(&field);
                assert!(
                    !message.contains(field.as_ref()),
                    "{field:?} in the error: {message}"
                );
            }
        }
    }
}

/// The same history ingested twice gives the same dataset: the join does
/// not depend on the order chunks finish in.
#[test]
fn history_ingest_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let f = HistoryFixture::synth(dir.path(), "nc", 1500, 31);
    f.ingest();
    let first = multiset(read_dataset(&f.dataset_dir()).1);
    let manifest: Value = f.manifest();
    f.ingest();
    assert_eq!(multiset(read_dataset(&f.dataset_dir()).1), first);
    assert_eq!(f.manifest()["history"], manifest["history"]);
}

/// An election added to the config after an ingest is not answered (the
/// data holds no column for it) until the next ingest stores it; one
/// removed is no longer answered, though the data still holds it.
#[test]
fn an_election_added_to_the_config_is_answered_after_the_next_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let f = HistoryFixture::synth(dir.path(), "fl", 800, 41);
    f.config_with(&["2020g"]);
    f.ingest();
    f.config_with(&["2020g", "2024g"]);
    let ask = |server: &Server, dim: &str| {
        server.query(
            &f.analyst.token,
            &json!({"dataset": "fl", "group_by": [dim], "epsilon": 1e6}),
        )
    };
    let unknown = |server: &Server, dim: &str| {
        let a = ask(server, dim);
        assert_eq!(
            (a.status, a.code()),
            (400, "unknown_dimension"),
            "{dim}: {}",
            a.text
        );
    };
    let server = start(&f.config);
    unknown(&server, "vote_2024g");
    assert_eq!(ask(&server, "vote_2020g").status, 200);
    let log = server.kill();
    assert!(
        log.contains("2024g") && log.contains("re-ingest"),
        "the log says why 2024g is missing: {log}"
    );

    f.ingest();
    let server = start(&f.config);
    let got = rows(&ask(&server, "vote_2024g"), &["vote_2024g"]);
    assert_cells(
        "2024g after ingest",
        &got,
        &f.fixture.counts(&["vote_2024g"], |_| true),
    );
    drop(server);

    f.config_with(&["2024g"]);
    unknown(&start(&f.config), "vote_2020g");
}

/// A re-ingest with another history file (same voters) is another data
/// version: a stored turnout answer of the old history is not served again.
#[test]
fn another_history_file_is_another_data_version() {
    let dir = tempfile::tempdir().unwrap();
    let f = HistoryFixture::synth(dir.path(), "fl", 800, 51);
    f.ingest();
    let query = json!({"dataset": "fl", "group_by": ["vote_2024g"], "epsilon": 1e6});
    let ask = || {
        let server = start(&f.config);
        let a = server.query(&f.analyst.token, &query);
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["cached"].as_bool().unwrap()
    };
    assert!(!ask(), "a first answer is a new release");
    assert!(ask(), "the same data answers from the store");

    // The same voters with half of their history.
    let history = f.history.clone().unwrap();
    let text = std::fs::read(&history).unwrap();
    let half: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').step_by(2).collect();
    let halved = dir.path().join("fl-history-halved.txt");
    std::fs::write(&halved, half.concat()).unwrap();
    let out = f.ingest_with(Some(&[&halved]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!ask(), "another history is another version");
}
