//! End-to-end: `rollcall synth --quirks` → `rollcall ingest` → read the Parquet
//! back with arrow and compare every count with the generator's ground truth.

use std::collections::HashMap;
use std::path::Path;

use synth::GroundTruth;
use testkit::{Tuple, multiset, read_dataset, repo_root, run as rollcall, run_ok as rollcall_ok};

/// Columns that must never reach Parquet, whatever the layout calls them.
const IDENTIFIER_HINTS: [&str; 12] = [
    "name",
    "addr",
    "street",
    "phone",
    "email",
    "zip",
    "ssn",
    "ncid",
    "voter_id",
    "sos_voterid",
    "date_of_birth",
    "birth date",
];

/// The reason `rejects.tsv` gives for a blank or placeholder voter id.
const MISSING_ID_REASON: &str = "voter id is blank or a placeholder";

fn synth_and_ingest(
    layout: &str,
    rows: u64,
    seed: u64,
    dir: &Path,
) -> (GroundTruth, serde_json::Value) {
    let file = dir.join(format!("{layout}.txt"));
    let truth_path = dir.join(format!("{layout}.truth.json"));
    let data = dir.join("data");
    rollcall_ok(&[
        "synth",
        "--layout",
        layout,
        "--rows",
        &rows.to_string(),
        "--seed",
        &seed.to_string(),
        "--quirks",
        "--out",
        file.to_str().unwrap(),
        "--truth",
        truth_path.to_str().unwrap(),
    ]);
    rollcall_ok(&[
        "ingest",
        "--quiet",
        "--layout",
        layout,
        "--dataset",
        layout,
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let truth: GroundTruth =
        serde_json::from_str(&std::fs::read_to_string(truth_path).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join(layout).join("manifest.json")).unwrap(),
    )
    .unwrap();
    (truth, manifest)
}

/// A shipped layout as the binary (run in the repository) finds it:
/// `config/layouts/NAME.toml`, then the built-in copy. MI and PA are not
/// compiled in, and a test process runs elsewhere.
fn shipped_layout(name: &str) -> layout::Layout {
    layout::Layout::resolve_in(name, Some(&repo_root().join("config/layouts")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check_layout(layout_name: &str, rows: u64, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let (truth, manifest) = synth_and_ingest(layout_name, rows, seed, tmp.path());
    let dataset = tmp.path().join("data").join(layout_name);

    // The manifest's books equal the generator's.
    for key in [
        "rows_read",
        "rows_written",
        "rows_rejected",
        "duplicates_dropped",
    ] {
        let want = match key {
            "rows_read" => truth.rows_read,
            "rows_written" => truth.rows_written,
            "rows_rejected" => truth.rows_rejected,
            _ => truth.duplicates_dropped,
        };
        assert_eq!(
            manifest[key].as_u64(),
            Some(want),
            "{layout_name}: manifest {key}"
        );
    }
    assert!(
        truth.rows_rejected > 0 && truth.duplicates_dropped > 0,
        "the quirks were exercised"
    );
    let unknown: HashMap<String, HashMap<String, u64>> =
        serde_json::from_value(manifest["unknown_codes"].clone()).unwrap();
    let want_unknown: HashMap<String, HashMap<String, u64>> = truth
        .unknown_codes
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|(a, b)| (a.clone(), *b)).collect()))
        .collect();
    assert_eq!(
        unknown, want_unknown,
        "{layout_name}: unknown codes by column and value"
    );
    assert_eq!(
        manifest["sources"][0]["bytes"].as_u64(),
        Some(
            std::fs::metadata(tmp.path().join(format!("{layout_name}.txt")))
                .unwrap()
                .len()
        )
    );
    assert_eq!(
        manifest["sources"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );

    // rejects.tsv: exactly the generator's rejected lines, and no content.
    let layout = shipped_layout(layout_name);
    let rejects = std::fs::read_to_string(dataset.join("rejects.tsv")).unwrap();
    let mut lines = rejects.lines();
    assert_eq!(lines.next(), Some("file\tline\tcolumn\treason"));
    let mut missing_ids = Vec::new();
    let numbers: Vec<u64> = lines
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            assert_eq!(fields.len(), 4, "{l}");
            assert!(
                [
                    "county not in the reference list",
                    "county columns disagree or name no listed county",
                    "quote opened and never closed",
                    MISSING_ID_REASON,
                ]
                .contains(&fields[3])
                    || fields[3].starts_with("expected "),
                "reject reason is a rule, not content: {l}"
            );
            let number = fields[1].parse().unwrap();
            if fields[3] == MISSING_ID_REASON {
                assert_eq!(fields[2], layout.voter_id, "{l}");
                missing_ids.push(number);
            }
            number
        })
        .collect();
    assert_eq!(
        numbers, truth.rejected_lines,
        "{layout_name}: rejected line numbers"
    );
    // Blank and all-space ids among them, each for its own reason.
    assert!(
        truth.missing_id_lines.len() > 3,
        "{layout_name}: blank ids exercised"
    );
    assert_eq!(
        missing_ids, truth.missing_id_lines,
        "{layout_name}: lines rejected for a missing voter id"
    );
    assert_eq!(
        manifest["rejects_by_reason"]["missing_voter_id"].as_u64(),
        Some(truth.missing_id_lines.len() as u64)
    );
    assert_eq!(manifest["format_version"].as_u64(), Some(4));
    assert_eq!(
        manifest["layout_sha256"].as_str(),
        Some(layout.digest()),
        "{layout_name}: the manifest names the layout by content"
    );

    // Parquet: exactly the allow-listed columns, and every row the truth has.
    let (columns, rows) = read_dataset(&dataset);
    assert_eq!(
        columns,
        layout.output_columns(),
        "{layout_name}: columns are the allow-list"
    );
    for c in &columns {
        let lower = c.to_lowercase();
        assert!(
            !IDENTIFIER_HINTS.iter().any(|h| lower.contains(h)),
            "identifier-like column {c}"
        );
    }
    let got = multiset(rows.clone());
    let mut want: HashMap<Tuple, u64> = HashMap::new();
    for r in &truth.rows {
        let value = |c: &str| match c {
            "county" => Some(r.county.clone()),
            "birth_year" => r.birth_year.map(|y| y.to_string()),
            "registration_year" => r.registration_year.map(|y| y.to_string()),
            coded => r.code(coded).map(str::to_owned),
        };
        let tuple: Tuple = columns.iter().map(|c| value(c)).collect();
        *want.entry(tuple).or_default() += r.count;
    }
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{layout_name}: rows differ from the truth, e.g. {missing:?}"
    );
    assert_eq!(got.len(), want.len(), "{layout_name}: no extra rows");

    // No identifier value the generator wrote appears anywhere in the output.
    assert!(!truth.identifiers.is_empty());
    let values: std::collections::HashSet<&str> = rows
        .iter()
        .flatten()
        .flatten()
        .map(String::as_str)
        .collect();
    for id in &truth.identifiers {
        assert!(
            !values.contains(id.as_str()),
            "identifier {id} reached Parquet"
        );
    }
    let manifest_text = std::fs::read_to_string(dataset.join("manifest.json")).unwrap();
    for id in &truth.identifiers {
        assert!(
            !manifest_text.contains(id.as_str()) && !rejects.contains(id.as_str()),
            "identifier {id} leaked"
        );
    }
}

#[test]
fn north_carolina_matches_ground_truth() {
    check_layout("nc", 40_000, 11);
}

#[test]
fn ohio_matches_ground_truth() {
    check_layout("oh", 40_000, 12);
}

#[test]
fn florida_matches_ground_truth() {
    check_layout("fl", 40_000, 13);
}

#[test]
fn michigan_matches_ground_truth() {
    check_layout("mi", 40_000, 14);
}

#[test]
fn pennsylvania_matches_ground_truth() {
    check_layout("pa", 40_000, 15);
}

#[test]
fn several_files_make_one_dataset() {
    // The same file twice: every voter is a duplicate of itself with an equal
    // registration date, so the later copy wins and the rows are those of one.
    let tmp = tempfile::tempdir().unwrap();
    // Big enough for each copy to span several read chunks, so line numbers
    // are checked across chunk and file boundaries.
    let (truth, _) = synth_and_ingest("fl", 30_000, 21, tmp.path());
    let file = tmp.path().join("fl.txt");
    let data = tmp.path().join("data2");
    rollcall_ok(&[
        "ingest",
        "--quiet",
        "--layout",
        "fl",
        "--dataset",
        "two",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("two/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["rows_read"].as_u64(), Some(2 * truth.rows_read));
    assert_eq!(m["rows_written"].as_u64(), Some(truth.rows_written));
    assert_eq!(m["rows_rejected"].as_u64(), Some(2 * truth.rows_rejected));
    assert_eq!(
        m["duplicates_dropped"].as_u64(),
        Some(2 * truth.duplicates_dropped + truth.rows_written)
    );
    assert_eq!(m["sources"].as_array().map(Vec::len), Some(2));
    let rejects = std::fs::read_to_string(data.join("two/rejects.tsv")).unwrap();
    assert_eq!(rejects.lines().count() as u64, 1 + 2 * truth.rows_rejected);
    // Each copy's rejects carry that file's own line numbers.
    let numbers: Vec<u64> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap().parse().unwrap())
        .collect();
    let (first, second) = numbers.split_at(numbers.len() / 2);
    assert_eq!(first, truth.rejected_lines.as_slice());
    assert_eq!(second, truth.rejected_lines.as_slice());
}

#[test]
fn failed_ingest_leaves_previous_version() {
    let tmp = tempfile::tempdir().unwrap();
    synth_and_ingest("nc", 2_000, 5, tmp.path());
    let dataset = tmp.path().join("data/nc");
    let before = std::fs::read_to_string(dataset.join("manifest.json")).unwrap();
    // A file whose header lacks `party_cd`: the ingest must fail, naming it.
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "\"county_desc\"\t\"ncid\"\n\"WAKE\"\t\"AA1\"\n").unwrap();
    let out = rollcall(&[
        "ingest",
        "--quiet",
        "--layout",
        "nc",
        "--dataset",
        "nc",
        "--data-dir",
        tmp.path().join("data").to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not in the header") && stderr.contains("untouched"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dataset.join("manifest.json")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("nc")],
        "no temporary folder is left behind"
    );
}

#[test]
fn layout_mistake_fails_before_reading_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/layouts/oh.toml"))
        .unwrap()
        .replace("fallback = \"OTH\"", "fallback = \"ZZZ\"")
        .replace(
            "../reference/",
            &format!("{}/", repo_root().join("config/reference").display()),
        );
    let custom = tmp.path().join("mystate.toml");
    std::fs::write(&custom, text).unwrap();
    let out = rollcall(&[
        "ingest",
        "--layout",
        custom.to_str().unwrap(),
        "--dataset",
        "x",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "/nonexistent/file.txt",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dimensions.party.fallback"), "{stderr}");
}

#[test]
fn custom_layout_from_a_path_works() {
    // An office in another state copies a layout and points --layout at it.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/layouts/fl.toml"))
        .unwrap()
        .replace("name = \"fl\"", "name = \"mystate\"")
        .replace(
            "../reference/",
            &format!("{}/", repo_root().join("config/reference").display()),
        );
    let custom = tmp.path().join("mystate.toml");
    std::fs::write(&custom, text).unwrap();
    let file = tmp.path().join("f.txt");
    let layout = custom.to_str().unwrap();
    rollcall_ok(&[
        "synth",
        "--layout",
        layout,
        "--rows",
        "500",
        "--out",
        file.to_str().unwrap(),
    ]);
    rollcall_ok(&[
        "ingest",
        "--quiet",
        "--layout",
        layout,
        "--dataset",
        "m",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("m/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["layout"], "mystate");
    assert_eq!(m["rows_written"].as_u64(), Some(500));
}

#[test]
fn every_command_explains_itself() {
    for args in [
        vec!["--help"],
        vec!["ingest", "--help"],
        vec!["synth", "--help"],
    ] {
        let out = rollcall_ok(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Usage:") && text.len() > 200,
            "{args:?}: {text}"
        );
    }
}

/// A small NC file: the header, then one line per voter id, each in Wake
/// county with the same demographics.
fn nc_file_with_ids(ids: &[&str]) -> String {
    let layout = layout::Layout::resolve("nc").unwrap();
    let quoted = |values: Vec<&str>| format!("\"{}\"\n", values.join("\"\t\""));
    let mut text = quoted(layout.format.columns.iter().map(String::as_str).collect());
    for id in ids {
        let fields = layout.format.columns.iter().map(|c| match c.as_str() {
            "ncid" => *id,
            "county_desc" => "WAKE",
            "county_id" => "92", // Wake's number: the county columns agree
            "registr_dt" => "03/04/2001",
            "birth_year" => "1970",
            "party_cd" => "DEM",
            _ => "",
        });
        text.push_str(&quoted(fields.collect()));
    }
    text
}

/// Ingests `file` with `layout` as dataset `name` under `data`; returns the
/// manifest, `rejects.tsv` and the number of Parquet rows.
fn ingest_small(
    layout: &str,
    name: &str,
    data: &Path,
    file: &Path,
) -> (serde_json::Value, String, usize) {
    rollcall_ok(&[
        "ingest",
        "--quiet",
        "--layout",
        layout,
        "--dataset",
        name,
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let dir = data.join(name);
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let rejects = std::fs::read_to_string(dir.join("rejects.tsv")).unwrap();
    (manifest, rejects, read_dataset(&dir).1.len())
}

/// A copy of a built-in layout file, edited, that reads the repository's
/// county lists.
fn custom_layout(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join(format!("config/layouts/{name}.toml")))
        .unwrap()
        .replace(
            "../reference/",
            &format!("{}/", repo_root().join("config/reference").display()),
        );
    let path = dir.join(format!("custom-{name}.toml"));
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit applies");
    std::fs::write(&path, edited).unwrap();
    path
}

#[test]
fn blank_voter_ids_are_rejected_not_merged() {
    let tmp = tempfile::tempdir().unwrap();
    // Lines 2 and 4 have no id. Both used to pack to one key, and one of the
    // two voters was dropped as the other's "duplicate".
    let file = tmp.path().join("nc.txt");
    std::fs::write(&file, nc_file_with_ids(&["", "AB12345", "   "])).unwrap();
    let data = tmp.path().join("data");
    let (m, rejects, rows) = ingest_small("nc", "nc", &data, &file);
    assert_eq!(rows, 1);
    assert_eq!(
        (
            m["rows_read"].as_u64(),
            m["rows_written"].as_u64(),
            m["rows_rejected"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(m["duplicates_dropped"].as_u64(), Some(0));
    assert_eq!(
        m["rejects_by_reason"],
        serde_json::json!({"missing_voter_id": 2})
    );
    assert_eq!(
        rejects,
        format!(
            "file\tline\tcolumn\treason\nnc.txt\t2\tncid\t{MISSING_ID_REASON}\nnc.txt\t4\tncid\t{MISSING_ID_REASON}\n"
        )
    );

    // With `missing = "keep"` each is a voter of its own: three rows.
    let keep = custom_layout(tmp.path(), "nc", |t| {
        t.replace("missing = \"reject\"", "missing = \"keep\"")
    });
    let (k, rejects, rows) = ingest_small(keep.to_str().unwrap(), "kept", &data, &file);
    assert_eq!(rows, 3);
    assert_eq!(
        (
            k["rows_written"].as_u64(),
            k["rows_rejected"].as_u64(),
            k["duplicates_dropped"].as_u64()
        ),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(rejects, "file\tline\tcolumn\treason\n");
    // The two ingests name different layouts by content.
    let digest = |m: &serde_json::Value| m["layout_sha256"].as_str().unwrap().to_owned();
    assert_eq!(digest(&m), layout::Layout::resolve("nc").unwrap().digest());
    assert_eq!(
        digest(&k),
        layout::Layout::from_file(&keep).unwrap().digest()
    );
    assert_ne!(digest(&m), digest(&k));
}

#[test]
fn declared_placeholder_ids_are_missing_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("nc.txt");
    std::fs::write(&file, nc_file_with_ids(&["0", " none ", "AB1", "00"])).unwrap();
    let layout = custom_layout(tmp.path(), "nc", |t| {
        t.replace("placeholders = []", "placeholders = [\"0\", \"NONE\"]")
    });
    let (m, rejects, rows) = ingest_small(
        layout.to_str().unwrap(),
        "nc",
        &tmp.path().join("data"),
        &file,
    );
    assert_eq!(rows, 2, "`00` is an id, not the placeholder `0`");
    assert_eq!(
        m["rejects_by_reason"],
        serde_json::json!({"missing_voter_id": 2})
    );
    let lines: Vec<&str> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(lines, ["2", "3"]);
}

#[test]
fn ingest_writes_owner_only_files() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("nc.txt");
    std::fs::write(&file, nc_file_with_ids(&["AB1", "", "AB2"])).unwrap();
    // Under the usual umask, which would otherwise give 0755 and 0644.
    let ingest = |data: &Path| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022 && exec \"$0\" \"$@\"")
            .arg(testkit::bin())
            .args([
                "ingest",
                "--quiet",
                "--layout",
                "nc",
                "--dataset",
                "nc",
                "--data-dir",
            ])
            .arg(data)
            .arg(&file)
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let check_dataset = |dir: &Path| {
        assert_eq!(mode(dir), 0o700, "{}: {:o}", dir.display(), mode(dir));
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}: {:o}", path.display(), mode(&path));
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        names.sort();
        assert_eq!(
            names,
            ["manifest.json", "part-00000.parquet", "rejects.tsv"]
        );
    };
    // A data dir the ingest creates is the owner's alone.
    let data = tmp.path().join("data");
    ingest(&data);
    assert_eq!(mode(&data), 0o700, "a new data dir: {:o}", mode(&data));
    check_dataset(&data.join("nc"));
    // An existing one keeps the mode its owner chose; the dataset replacing
    // the previous version is owner-only again.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    ingest(&data);
    assert_eq!(
        mode(&data),
        0o750,
        "an existing data dir: {:o}",
        mode(&data)
    );
    check_dataset(&data.join("nc"));
}
