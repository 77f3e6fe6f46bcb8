//! The layout format's matching rules, end to end through the real binary:
//! `case = "insensitive"`, alternative column names (two vintages of a file
//! in one dataset), `delimiter = "auto"`, county code and name agreement,
//! and `rollcall layout check`. Each test writes a small layout of its own.

use std::path::{Path, PathBuf};

use testkit::{multiset, read_dataset, run as rollcall, run_ok as rollcall_ok};

/// A three-county layout with one coded dimension (`party`, ignoring case);
/// `format` gives the `[format]` keys other than `columns`.
fn write_layout(dir: &Path, format: &str, columns: &[&str]) -> PathBuf {
    std::fs::write(
        dir.join("counties.csv"),
        "code,name\n1,ALPHA\n2,BETA\n3,GAMMA\n",
    )
    .unwrap();
    let columns: Vec<String> = columns.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        r#"name = "tiny"
description = "a test layout"

[format]
{format}
encoding = "utf-8"
columns = [{}]

[voter_id]
column = ["VoterId", "ID"]

[county]
column = "County"
match = "name"
reference = "counties.csv"

[birth_year]
column = ["Birthyear", "Birthdate"]
format = ["YYYY", "MM/DD/YYYY"]

[dimensions.party]
column = ["Party", "PartyCode"]
case = "insensitive"
fallback = "OTH"
map = {{ "democrat" = "DEM" }}
codes = [
  {{ code = "DEM", label = "Democratic" }},
  {{ code = "REP", label = "Republican" }},
  {{ code = "OTH", label = "Other" }},
]

[absent]
dimensions = ["gender", "race", "ethnicity", "status", "congressional_district"]
"#,
        columns.join(", ")
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ingest(layout: &Path, data: &Path, files: &[&Path]) -> std::process::Output {
    let mut args = vec![
        "ingest".to_owned(),
        "--quiet".into(),
        "--layout".into(),
        layout.display().to_string(),
        "--dataset".into(),
        "tiny".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rollcall(&args)
}

/// `ingest`, which must succeed.
fn ingest_ok(layout: &Path, data: &Path, files: &[&Path]) {
    let out = ingest(layout, data, files);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifest(data: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(data.join("tiny/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (county, birth_year, party) → count.
fn rows(data: &Path) -> Vec<(String, u64)> {
    let (columns, rows) = read_dataset(&data.join("tiny"));
    assert_eq!(columns, ["county", "birth_year", "party"]);
    let mut out: Vec<(String, u64)> = multiset(rows)
        .into_iter()
        .map(|(t, n)| {
            let t: Vec<String> = t.into_iter().map(|v| v.unwrap_or("null".into())).collect();
            (t.join(" "), n)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn two_vintages_with_other_column_names_and_delimiters_make_one_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = write_layout(
        tmp.path(),
        "delimiter = \"auto\"\nquoting = \"double\"\nheader = true",
        &["VoterId", "County", "Birthyear", "Party"],
    );
    // The older vintage: tab-separated, a birth year, `Party`.
    let old = tmp.path().join("old.txt");
    std::fs::write(
        &old,
        "VoterId\tCounty\tBirthyear\tParty\n1\tAlpha\t1950\tdem\n2\tbeta\t1960\tRep\n3\tGAMMA\t1970\tDemocrat\n",
    )
    .unwrap();
    // The newer: comma CSV, full birth dates, other names, another order.
    let new = tmp.path().join("new.csv");
    std::fs::write(
        &new,
        "PartyCode,Birthdate,ID,County\nDEM,02/03/1950,4,ALPHA\n\"rEp\",12/31/1980,5,BETA\nGRN,02/30/1990,6,BETA\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&layout, &data, &[&old, &new]);
    assert_eq!(
        rows(&data),
        [
            ("ALPHA 1950 DEM".to_owned(), 2),
            ("BETA 1960 REP".to_owned(), 1),
            ("BETA 1980 REP".to_owned(), 1),
            // 02/30 is no date: a null year; GRN is no code: the fallback.
            ("BETA null OTH".to_owned(), 1),
            ("GAMMA 1970 DEM".to_owned(), 1),
        ]
    );
    let m = manifest(&data);
    let sources = m["sources"].as_array().unwrap();
    assert_eq!(sources[0]["delimiter"], "tab");
    assert_eq!(sources[1]["delimiter"], "comma");
    assert!(sources[0].get("columns").is_none(), "first names used");
    assert_eq!(sources[1]["columns"]["Birthyear"], "Birthdate");
    assert_eq!(sources[1]["columns"]["Party"], "PartyCode");
    assert_eq!(sources[1]["columns"]["VoterId"], "ID");
    assert_eq!(m["unknown_codes"]["party"]["GRN"], 1);
    assert_eq!(m["null_years"]["birth_year"]["unparseable"], 1);
}

#[test]
fn codes_match_case_only_when_the_layout_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = write_layout(
        tmp.path(),
        "delimiter = \",\"\nquoting = \"none\"\nheader = true",
        &["VoterId", "County", "Birthyear", "Party"],
    );
    let file = tmp.path().join("f.csv");
    std::fs::write(
        &file,
        "VoterId,County,Birthyear,Party\n1,ALPHA,1950,dem\n2,ALPHA,1950,DEM\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&layout, &data, &[&file]);
    assert_eq!(rows(&data), [("ALPHA 1950 DEM".to_owned(), 2)]);

    let text = std::fs::read_to_string(&layout).unwrap();
    std::fs::write(&layout, text.replace("case = \"insensitive\"\n", "")).unwrap();
    // `dem` is now unknown; half the values unknown stops the ingest.
    let out = ingest(&layout, &data, &[&file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dimensions.party.column"), "{err}");
    assert!(!err.contains("dem"), "no value in the error: {err}");

    std::fs::write(&layout, text.replace("\"insensitive\"", "\"loud\"")).unwrap();
    let err = String::from_utf8_lossy(&ingest(&layout, &data, &[&file]).stderr).into_owned();
    assert!(err.contains("dimensions.party.case"), "{err}");
    std::fs::write(
        &layout,
        text.replace("\"democrat\" = \"DEM\"", "\"dem\" = \"OTH\""),
    )
    .unwrap();
    let err = String::from_utf8_lossy(&ingest(&layout, &data, &[&file]).stderr).into_owned();
    assert!(
        err.contains("dimensions.party.case") && err.contains("differ only in case"),
        "{err}"
    );
}

#[test]
fn a_file_with_none_of_a_columns_names_says_each_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = write_layout(
        tmp.path(),
        "delimiter = \"auto\"\nquoting = \"none\"\nheader = true",
        &["VoterId", "County", "Birthyear", "Party"],
    );
    let file = tmp.path().join("f.txt");
    std::fs::write(&file, "VoterId|County|YOB|Party\n1|ALPHA|1950|DEM\n").unwrap();
    let out = ingest(&layout, &tmp.path().join("data"), &[&file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("column `Birthyear` or `Birthdate`")
            && err.contains("key `birth_year.column`"),
        "{err}"
    );
    // Neither tab, pipe nor comma on the first line.
    std::fs::write(&file, "one field\n").unwrap();
    let err = String::from_utf8_lossy(&ingest(&layout, &tmp.path().join("data"), &[&file]).stderr)
        .into_owned();
    assert!(err.contains("format.delimiter"), "{err}");
}

#[test]
fn a_county_given_twice_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = write_layout(
        tmp.path(),
        "delimiter = \"\\t\"\nquoting = \"none\"\nheader = false",
        &["VoterId", "CountyId", "County", "Birthyear", "Party"],
    );
    // Without a header every name must be a positional column: no
    // alternatives here.
    let text = std::fs::read_to_string(&layout)
        .unwrap()
        .replace(
            "reference = \"counties.csv\"",
            "reference = \"counties.csv\"\nagree = { column = \"CountyId\", match = \"code\", numeric = true }",
        )
        .replace("[\"VoterId\", \"ID\"]", "\"VoterId\"")
        .replace("[\"Birthyear\", \"Birthdate\"]", "\"Birthyear\"")
        .replace("[\"YYYY\", \"MM/DD/YYYY\"]", "\"YYYY\"")
        .replace("[\"Party\", \"PartyCode\"]", "\"Party\"");
    std::fs::write(&layout, text).unwrap();
    let file = tmp.path().join("f.txt");
    std::fs::write(
        &file,
        "1\t01\tALPHA\t1950\tDEM\n2\t2\tALPHA\t1950\tDEM\n3\t9\tGAMMA\t1950\tDEM\n4\t3\tGAMMA\t1950\tREP\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    ingest_ok(&layout, &data, &[&file]);
    assert_eq!(
        rows(&data),
        [
            ("ALPHA 1950 DEM".to_owned(), 1),
            ("GAMMA 1950 REP".to_owned(), 1),
        ]
    );
    assert_eq!(manifest(&data)["rejects_by_reason"]["county_mismatch"], 2);
    let rejects = std::fs::read_to_string(data.join("tiny/rejects.tsv")).unwrap();
    let lines: Vec<&str> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(lines, ["2", "3"], "{rejects}");
    assert!(
        rejects.lines().skip(1).all(|l| l.contains("\tCountyId\t")),
        "{rejects}"
    );
}

#[test]
fn layout_check_prints_shares_and_never_a_value() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = write_layout(
        tmp.path(),
        "delimiter = \"auto\"\nquoting = \"none\"\nheader = true",
        &["VoterId", "County", "Birthyear", "Party"],
    );
    let file = tmp.path().join("f.txt");
    let mut text = "VoterId,County,Birthyear,Party\n".to_owned();
    for i in 0..20 {
        let party = match i % 4 {
            0 => "DEM",
            1 => "democrat",
            2 => "",
            _ => "SECRETVALUE",
        };
        text += &format!("{i},ALPHA,1950,{party}\n");
    }
    std::fs::write(&file, text).unwrap();
    let args = [
        "layout",
        "check",
        layout.to_str().unwrap(),
        file.to_str().unwrap(),
    ];
    let out = rollcall(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "25% unknown: the ingest would stop");
    assert!(
        stderr.contains("dimensions.party.column = Party"),
        "{stderr}"
    );
    let party = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("party"))
        .unwrap();
    let shares: Vec<&str> = party.split_whitespace().skip(2).take(4).collect();
    assert_eq!(shares, ["25.0%", "25.0%", "25.0%", "25.0%"], "{stdout}");
    assert!(
        stdout.contains("20 lines read, delimiter comma, 20 accepted"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("SECRETVALUE") && !stderr.contains("SECRETVALUE"),
        "{stdout}{stderr}"
    );
    // The layout alone: valid, and what it reads.
    let alone = rollcall_ok(&["layout", "check", layout.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&alone.stdout).contains("layout `tiny`"));
}
