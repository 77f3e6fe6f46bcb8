//! The shipped state layouts beyond the generic ground-truth check of
//! `ingest_e2e`: every layout file validates with its county list, Michigan's
//! older numeric genders, Pennsylvania's county names and its 2024 trailing
//! column, and Pennsylvania's positional House districts answered by the real
//! server.

use std::path::{Path, PathBuf};

use serde_json::json;
use testkit::*;

fn layout_path(name: &str) -> PathBuf {
    repo_root().join(format!("config/layouts/{name}.toml"))
}

fn load(name: &str) -> layout::Layout {
    layout::Layout::from_file(&layout_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Ingests `text` as `file_name` with the layout at `layout`; returns the
/// manifest, `rejects.tsv` and the Parquet rows.
fn ingest_text(
    dir: &Path,
    layout: &Path,
    file_name: &str,
    text: &[u8],
) -> (serde_json::Value, String, Vec<String>, Vec<Tuple>) {
    let file = dir.join(file_name);
    std::fs::write(&file, text).unwrap();
    let data = dir.join("data");
    run_ok(&[
        "ingest",
        "--quiet",
        "--layout",
        layout.to_str().unwrap(),
        "--dataset",
        "d",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let dataset = data.join("d");
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(dataset.join("manifest.json")).unwrap())
            .unwrap();
    let rejects = std::fs::read_to_string(dataset.join("rejects.tsv")).unwrap();
    let (columns, rows) = read_dataset(&dataset);
    (manifest, rejects, columns, rows)
}

#[test]
fn every_shipped_layout_validates_with_its_counties() {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("config/layouts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fl", "mi", "nc", "oh", "pa"]);
    for (name, counties) in [("nc", 100), ("oh", 88), ("fl", 67), ("mi", 83), ("pa", 67)] {
        let layout = load(name);
        assert_eq!(layout.name, name);
        assert_eq!(layout.county.counties.len(), counties, "{name}");
    }

    let mi = load("mi");
    let county = |l: &layout::Layout, i: usize| {
        let c = &l.county.counties[i];
        (c.code.clone(), c.name.clone())
    };
    assert_eq!(county(&mi, 0), ("1".into(), "Alcona".into()));
    // "St." sorts as "Saint", as the state numbers its counties.
    assert_eq!(county(&mi, 73), ("74".into(), "St. Clair".into()));
    assert_eq!(county(&mi, 75), ("76".into(), "Sanilac".into()));
    assert_eq!(county(&mi, 82), ("83".into(), "Wexford".into()));
    for (dim, codes) in [
        ("state_house_district", 110),
        ("state_senate_district", 38),
        ("congressional_district", 13),
    ] {
        // The districts and NA.
        assert_eq!(mi.coded(dim).unwrap().codes.len(), codes + 1, "mi {dim}");
    }
    for absent in ["race", "ethnicity", "party"] {
        assert!(mi.coded(absent).is_none(), "mi {absent}");
    }

    let pa = load("pa");
    assert_eq!(pa.format.columns.len(), 153);
    assert!(!pa.format.header);
    assert_eq!(county(&pa, 0), ("1".into(), "Adams".into()));
    assert_eq!(county(&pa, 66), ("67".into(), "York".into()));
    for (dim, column, codes) in [
        ("state_house_district", "District6", 203),
        ("state_senate_district", "District7", 50),
        ("congressional_district", "District8", 17),
    ] {
        let c = pa.coded(dim).unwrap();
        assert_eq!((c.column.as_str(), c.codes.len()), (column, codes + 1));
    }
}

#[test]
fn michigan_reads_older_numeric_genders_and_padded_county_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = load("mi");
    // One voter per line: (id, county code, gender) as an older file spells them.
    let voters = [
        ("1", "1", "M"),
        ("2", "07", "1"),
        ("3", "83", "2"),
        ("4", "74", ""),
        ("5", "74", "X"),
        ("6", "50", "F"),
    ];
    let quoted = |values: Vec<&str>| format!("\"{}\"\n", values.join("\",\""));
    let mut text = quoted(layout.format.columns.iter().map(String::as_str).collect());
    for (id, county, gender) in voters {
        text.push_str(&quoted(
            layout
                .format
                .columns
                .iter()
                .map(|c| match c.as_str() {
                    "VOTER_IDENTIFICATION_NUMBER" => id,
                    "COUNTY_CODE" => county,
                    "GENDER" => gender,
                    "YEAR_OF_BIRTH" => "1970",
                    "REGISTRATION_DATE" => "03/04/2001",
                    "VOTER_STATUS_TYPE_CODE" => "A",
                    "STATE_HOUSE_DISTRICT_CODE" => "110",
                    _ => "",
                })
                .collect(),
        ));
    }
    let (m, rejects, columns, rows) =
        ingest_text(tmp.path(), &layout_path("mi"), "mi.csv", text.as_bytes());
    assert_eq!(rejects, "file\tline\tcolumn\treason\n");
    assert_eq!(m["rows_written"].as_u64(), Some(6));
    let at = |name: &str| columns.iter().position(|c| c == name).unwrap();
    let mut got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let v = |name: &str| r[at(name)].clone().unwrap_or_default();
            (v("county"), v("gender"), v("state_house_district"))
        })
        .collect();
    got.sort();
    let want = [
        ("Alcona", "M", "110"),
        ("Baraga", "M", "110"),
        ("Macomb", "F", "110"),
        ("St. Clair", "U", "110"),
        ("St. Clair", "U", "110"),
        ("Wexford", "F", "110"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    // Only `X` is unknown: the blank is `blank = "U"`, 1 and 2 are mapped.
    assert_eq!(m["unknown_codes"]["gender"], json!({"X": 1}));
}

#[test]
fn pennsylvania_matches_counties_by_name_and_reads_either_export_width() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("pa.txt");
    synth("pa", 300, 8, false, &source);
    let text = std::fs::read(&source).unwrap();

    // County names in other cases and with spaces around are the same county.
    let county = load("pa").format.columns.len() - 2;
    let respelled: Vec<u8> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .flat_map(|(i, line)| {
            let mut fields: Vec<Vec<u8>> =
                line.split(|&b| b == b'\t').map(<[u8]>::to_vec).collect();
            let name = String::from_utf8(fields[county].clone()).unwrap();
            let name = name.trim_matches('"');
            fields[county] = match i % 3 {
                0 => format!("\"{}\"", name.to_uppercase()),
                1 => format!("\"  {}  \"", name.to_lowercase()),
                _ => name.to_owned(), // unquoted
            }
            .into_bytes();
            let mut out = fields.join(&b'\t');
            out.push(b'\n');
            out
        })
        .collect();
    let (m, rejects, _, _) = ingest_text(tmp.path(), &layout_path("pa"), "pa.txt", &respelled);
    assert_eq!(rejects, "file\tline\tcolumn\treason\n");
    assert_eq!(m["rows_written"].as_u64(), Some(300));

    // An export made after 2024-06-17 has a trailing `registration_method`,
    // which the layout lists under `optional_columns`: the file's first line
    // says it is there, and every line ingests.
    let newer: Vec<u8> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .flat_map(|l| [l, b"\t\"ONLINE\"\n"].concat())
        .collect();
    let (m, rejects, _, _) = ingest_text(tmp.path(), &layout_path("pa"), "new.txt", &newer);
    assert_eq!(m["rows_written"].as_u64(), Some(300));
    assert_eq!(rejects, "file\tline\tcolumn\treason\n");

    // A file of the older width whose later lines have the new column:
    // those are rejected by field count, with their line numbers.
    let mixed: Vec<u8> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .flat_map(|(i, l)| {
            let tail: &[u8] = if i >= 298 { b"\tONLINE\n" } else { b"\n" };
            [l, tail].concat()
        })
        .collect();
    let (m, rejects, _, _) = ingest_text(tmp.path(), &layout_path("pa"), "mixed.txt", &mixed);
    assert_eq!(m["rejects_by_reason"], json!({"field_count": 2}));
    let lines: Vec<&str> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(lines, ["299", "300"]);
    assert!(
        rejects
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("expected 153 fields, found 154")
    );
}

#[test]
fn pennsylvania_zone_codes_spelled_with_letters_keep_their_digits() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("pa.txt");
    synth("pa", 200, 9, false, &source);
    let text = std::fs::read(&source).unwrap();
    let columns = load("pa").format.columns;
    let at = |name: &str| columns.iter().position(|c| c == name).unwrap();
    let (house, congress) = (at("District6"), at("District8"));
    let mut want_house = std::collections::BTreeMap::<String, u64>::new();
    let spelled: Vec<u8> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .flat_map(|(i, line)| {
            let mut fields: Vec<String> = String::from_utf8_lossy(line)
                .split('\t')
                .map(str::to_owned)
                .collect();
            let digits = fields[house].trim_matches('"').to_owned();
            let code = if digits.is_empty() {
                "NA".to_owned()
            } else {
                digits.trim_start_matches('0').to_owned()
            };
            *want_house.entry(code).or_default() += 1;
            // NVF saw "ST0123"-like and "CON18TH"-like spellings.
            if !digits.is_empty() {
                fields[house] = format!("\"ST{:04}\"", digits.parse::<u32>().unwrap());
                if i % 2 == 0 {
                    let c = fields[congress].trim_matches('"').to_owned();
                    if !c.is_empty() {
                        fields[congress] = format!("\"CON{c}TH\"");
                    }
                }
            }
            let mut out = fields.join("\t").into_bytes();
            out.push(b'\n');
            out
        })
        .collect();
    let (m, _, columns, rows) = ingest_text(tmp.path(), &layout_path("pa"), "pa.txt", &spelled);
    assert_eq!(m["rows_written"].as_u64(), Some(200));
    assert!(
        m["unknown_codes"].get("state_house_district").is_none(),
        "{m}"
    );
    assert!(
        m["unknown_codes"].get("congressional_district").is_none(),
        "{m}"
    );
    let i = columns
        .iter()
        .position(|c| c == "state_house_district")
        .unwrap();
    let mut got = std::collections::BTreeMap::<String, u64>::new();
    for r in &rows {
        *got.entry(r[i].clone().unwrap()).or_default() += 1;
    }
    assert_eq!(got, want_house);
}

#[test]
fn pennsylvania_answers_by_house_district_from_a_positional_column() {
    let root = tempfile::tempdir().unwrap();
    let layout = layout_path("pa");
    let layout = layout.to_str().unwrap();
    let data = Fixture::make(
        &root.path().join("fixture"),
        &FixtureSpec {
            layout,
            dataset: "pa",
            rows: 20_000,
            seed: 16,
            quirks: true,
        },
        false,
    );
    let alice = TestAnalyst::on("alice", &[("pa", 1e7)]);
    let config = ConfigBuilder::new(&data.data_dir, &root.path().join("ledger.sqlite"))
        .dataset(
            DatasetSection::nc("pa")
                .layout(layout)
                .epsilon_total(Some(1e8))
                .max_epsilon_per_query(1e6),
        )
        .analysts(std::slice::from_ref(&alice))
        .write(root.path());
    let server = start(&config);

    let domains = domains(&server, &alice.token);
    assert_eq!(domains["state_house_district"].len(), 204);
    assert_eq!(domains["county"].len(), 67);
    assert!(!domains.contains_key("race"));

    // At ε 1e6 the noise is at most 1 in every cell.
    let near = |got: &[(Vec<String>, i64)],
                truth: &std::collections::BTreeMap<Vec<String>, u64>| {
        for (key, count) in got {
            let want = truth.get(key).copied().unwrap_or(0) as i64;
            assert!((count - want).abs() <= 1, "{key:?}: {count}, truth {want}");
        }
        for key in truth.keys() {
            assert!(got.iter().any(|(k, _)| k == key), "{key:?} missing");
        }
    };
    let a = server.query(
        &alice.token,
        &json!({"dataset": "pa", "group_by": ["state_house_district"], "epsilon": 1e6}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let got = rows(&a, &["state_house_district"]);
    assert_eq!(got.len(), 204, "every district once, and NA");
    let truth = data.counts(&["state_house_district"], |_| true);
    assert!(truth.len() > 190, "the test data fills most districts");
    near(&got, &truth);

    // Filtered by county names as the reference list spells them.
    let counties = ["Philadelphia", "Allegheny", "McKean"];
    let b = server.query(
        &alice.token,
        &json!({"dataset": "pa", "group_by": ["county", "party"],
                "filter": {"county": counties}, "epsilon": 1e6}),
    );
    assert_eq!(b.status, 200, "{}", b.text);
    let truth = data.counts(&["county", "party"], |r| {
        r.values["county"]
            .as_deref()
            .is_some_and(|c| counties.contains(&c))
    });
    near(&rows(&b, &["county", "party"]), &truth);
}
