//! Tests. The central one reads every generated file back with a small,
//! independent implementation of the documented ingestion rules and checks
//! that it reproduces the generator's truth exactly.

use std::collections::{BTreeMap, HashMap, HashSet};

use layout::{CountyMatch, Layout, MissingVoterId, Quoting};

use super::*;

const YEAR: i16 = 2026;

fn synth_with(
    layout: &Layout,
    rows: u64,
    seed: u64,
    quirks: bool,
) -> (Vec<u8>, GroundTruth, Stats) {
    let opts = SynthOptions {
        with_rows: true,
        rows,
        seed,
        quirks,
        current_year: YEAR,
        elections: Vec::new(),
    };
    let mut out = Vec::new();
    let (truth, stats, _) =
        generate_with_stats(layout, &opts, &mut out, &mut std::io::sink()).unwrap();
    (out, truth, stats)
}

fn synth(name: &str, rows: u64, seed: u64, quirks: bool) -> (Vec<u8>, GroundTruth, Stats) {
    synth_with(&Layout::resolve(name).unwrap(), rows, seed, quirks)
}

/// Every shipped layout: the built-in ones, then the other files of the
/// repository's `config/layouts` (MI and PA, which are not compiled in).
fn shipped() -> Vec<Layout> {
    let mut out: Vec<Layout> = layout::builtin::NAMES
        .iter()
        .map(|n| Layout::resolve(n).unwrap())
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/layouts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        let layout = Layout::from_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if !out.iter().any(|l| l.name == layout.name) {
            out.push(layout);
        }
    }
    assert!(out.len() >= 5, "nc, oh, fl, mi, pa");
    out
}

/// A shipped layout by name, built in or not.
fn shipped_layout(name: &str) -> Layout {
    shipped().into_iter().find(|l| l.name == name).unwrap()
}

// ---------------------------------------------------------------------------
// The reference reader: the rules as documented, written without the generator.

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn latin1(s: &[u8]) -> String {
    s.iter().map(|&b| b as char).collect()
}

/// Splits a line; `None` when a quoted field is never closed. A quoted field
/// ends at the first `"` followed by the delimiter or the end of the line;
/// `""` inside reads as `"`; a quote that does not start a field is ordinary.
fn split(line: &[u8], delim: u8, quoting: Quoting) -> Option<Vec<Vec<u8>>> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        if quoting == Quoting::Double && line.get(i) == Some(&b'"') {
            let close = (i + 1..line.len())
                .find(|&j| line[j] == b'"' && (j + 1 == line.len() || line[j + 1] == delim))?;
            let mut value = Vec::new();
            let mut j = i + 1;
            while j < close {
                value.push(line[j]);
                j += if line[j] == b'"' && j + 1 < close && line[j + 1] == b'"' {
                    2
                } else {
                    1
                };
            }
            fields.push(value);
            if close + 1 == line.len() {
                return Some(fields);
            }
            i = close + 2;
        } else {
            let end = line[i..]
                .iter()
                .position(|&b| b == delim)
                .map_or(line.len(), |p| i + p);
            fields.push(line[i..end].to_vec());
            if end == line.len() {
                return Some(fields);
            }
            i = end + 1;
        }
    }
}

type Tuple = (usize, Option<i16>, Option<i16>, Vec<usize>);
/// A kept line: voter id (`None`: missing, a voter of its own), registration
/// rank, output tuple, unknown codes.
type Kept = (
    Option<Vec<u8>>,
    i32,
    Tuple,
    Vec<(usize, String)>,
    Vec<Vec<u8>>,
);

/// A written (kept) voter as the reader saw it: trimmed id, registration
/// date `YYYYMMDD` (`i32::MIN` when null), its row (count 0), its fields.
type Written = (Option<Vec<u8>>, i32, TruthRow, Vec<Vec<u8>>);

/// What the reader saw of the voters, for reading history: the kept
/// voters, the ids of every accepted line, the header names.
struct Voters {
    written: Vec<Written>,
    /// The fields of accepted lines dropped as duplicates.
    dropped: Vec<Vec<Vec<u8>>>,
    accepted: HashSet<Vec<u8>>,
    names: Vec<String>,
}

/// Reads `bytes` as ingestion must; returns the truth (without identifiers).
fn read_back(layout: &Layout, bytes: &[u8], cy: i16) -> GroundTruth {
    read_back_voters(layout, bytes, cy).0
}

fn read_back_voters(layout: &Layout, bytes: &[u8], cy: i16) -> (GroundTruth, Voters) {
    let (delim, quoting) = (layout.format.delimiter, layout.format.quoting);
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines: Vec<&[u8]> = if body.is_empty() && !bytes.is_empty() {
        vec![b""]
    } else if bytes.is_empty() {
        Vec::new()
    } else {
        body.split(|&b| b == b'\n').collect()
    };
    for l in &mut lines {
        *l = l.strip_suffix(b"\r").unwrap_or(l);
    }
    let (names, first) = if layout.format.header {
        let names: Vec<String> = split(lines[0], delim, quoting)
            .unwrap()
            .iter()
            .map(|f| latin1(trim(f)))
            .collect();
        (names, 1)
    } else {
        (layout.format.columns.clone(), 0)
    };
    let col = |name: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .unwrap()
    };
    let (id_col, county_col) = (col(&layout.voter_id), col(&layout.county.column));
    let agree_col = layout.county.agree.as_ref().map(|a| col(&a.column));
    let birth_col = layout.birth_year.as_ref().map(|d| col(&d.column));
    let reg_col = layout.registration_date.as_ref().map(|d| col(&d.column));
    let coded_cols: Vec<usize> = layout.coded.iter().map(|c| col(&c.column)).collect();

    let norm = |s: &str, numeric: bool| {
        if numeric {
            layout::normalize_numeric(s).into_owned()
        } else {
            s.to_owned()
        }
    };
    let counties: HashMap<String, usize> = layout
        .county
        .counties
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = match layout.county.matched_by {
                CountyMatch::Name => &c.name,
                CountyMatch::Code => &c.code,
            };
            (norm(key, layout.county.numeric).to_uppercase(), i)
        })
        .collect();
    // (year, rank) or None.
    let date = |spec: &layout::DateSpec, raw: &[u8], min: i16| -> Option<(i16, i32)> {
        let v = trim(raw);
        if v.is_empty()
            || spec
                .sentinels
                .iter()
                .chain(&spec.masks)
                .any(|n| n.trim().as_bytes() == v)
        {
            return None;
        }
        let d = spec.format.parse_date(v)?;
        (min..=cy).contains(&d.year).then_some((d.year, d.key()))
    };

    let mut rejected_lines = Vec::new();
    let mut missing_id_lines = Vec::new();
    // (id, rank, tuple, unknowns)
    let mut kept: Vec<Kept> = Vec::new();
    for (n, line) in lines.iter().enumerate().skip(first) {
        let line_no = n as u64 + 1;
        let Some(fields) = split(line, delim, quoting).filter(|f| f.len() == names.len()) else {
            rejected_lines.push(line_no);
            continue;
        };
        let county = latin1(trim(&fields[county_col]));
        let Some(&county) = counties.get(&norm(&county, layout.county.numeric).to_uppercase())
        else {
            rejected_lines.push(line_no);
            continue;
        };
        // `[county.agree]`: the other column must name the same county.
        if let (Some(a), Some(agree_col)) = (&layout.county.agree, agree_col) {
            let other = norm(&latin1(trim(&fields[agree_col])), a.numeric).to_uppercase();
            let same = layout.county.counties[county].clone();
            let key = match a.matched_by {
                CountyMatch::Name => same.name,
                CountyMatch::Code => same.code,
            };
            if norm(&key, a.numeric).to_uppercase() != other {
                rejected_lines.push(line_no);
                continue;
            }
        }
        // Blank (after trimming) or a placeholder, ignoring case: missing.
        let id = trim(&fields[id_col]);
        let id_missing = id.is_empty()
            || layout
                .voter_id_placeholders
                .iter()
                .any(|p| p.as_bytes().eq_ignore_ascii_case(id));
        if id_missing {
            missing_id_lines.push(line_no);
            if layout.missing_voter_id == MissingVoterId::Reject {
                rejected_lines.push(line_no);
                continue;
            }
        }
        let birth = layout
            .birth_year
            .as_ref()
            .and_then(|d| date(d, &fields[birth_col.unwrap()], layout.min_birth_year))
            .map(|(y, _)| y);
        let reg = layout
            .registration_date
            .as_ref()
            .and_then(|d| date(d, &fields[reg_col.unwrap()], layout.first_registration_year));
        let mut codes = Vec::new();
        let mut unknowns = Vec::new();
        for (d, c) in layout.coded.iter().enumerate() {
            let raw = latin1(trim(&fields[coded_cols[d]]));
            // As the ingest reads it (docs/layouts.md): the first digits,
            // then blank, numeric, map and table, maybe ignoring case.
            let value = if c.digits_only {
                raw.split(|ch: char| !ch.is_ascii_digit())
                    .find(|run| !run.is_empty())
                    .unwrap_or("")
                    .to_owned()
            } else {
                raw.clone()
            };
            let same =
                |a: &str, b: &str| a == b || (c.case_insensitive && a.eq_ignore_ascii_case(b));
            let code = match c.blank {
                Some(b) if value.is_empty() => b,
                _ => {
                    let key = norm(&value, c.numeric);
                    let mapped = c
                        .map
                        .iter()
                        .find(|(from, _)| same(from.trim(), &key))
                        .map_or(key.as_str(), |(_, to)| to.as_str());
                    match c.codes.iter().position(|code| same(&code.code, mapped)) {
                        Some(i) => i,
                        None => {
                            unknowns.push((d, raw.clone()));
                            c.fallback
                        }
                    }
                }
            };
            codes.push(code);
        }
        kept.push((
            (!id_missing).then(|| id.to_vec()),
            reg.map_or(i32::MIN, |(_, rank)| rank),
            (county, birth, reg.map(|(y, _)| y), codes),
            unknowns,
            fields,
        ));
    }
    // Latest date wins; ties go to the later line. A line without an id is
    // its own voter.
    let mut best: HashMap<&[u8], usize> = HashMap::new();
    let mut alone = Vec::new();
    for (i, k) in kept.iter().enumerate() {
        let Some(id) = &k.0 else {
            alone.push(i);
            continue;
        };
        let e = best.entry(id).or_insert(i);
        if k.1 >= kept[*e].1 {
            *e = i;
        }
    }
    let written: Vec<usize> = best.values().copied().chain(alone).collect();
    let mut counts: BTreeMap<TruthRow, u64> = BTreeMap::new();
    let mut unknown_codes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut seen = Vec::new();
    for &i in &written {
        let (county, birth, reg, codes) = &kept[i].2;
        let code = |dim: &str| {
            let d = layout.coded.iter().position(|c| c.name == dim)?;
            Some(layout.coded[d].codes[codes[d]].code.clone())
        };
        let row = TruthRow {
            county: layout.county.counties[*county].name.clone(),
            birth_year: *birth,
            gender: code("gender"),
            race: code("race"),
            ethnicity: code("ethnicity"),
            party: code("party"),
            status: code("status"),
            registration_year: *reg,
            congressional_district: code("congressional_district"),
            own: layout
                .coded
                .iter()
                .filter(|c| !layout::STANDARD_CODED.contains(&c.name.as_str()))
                .map(|c| (c.name.clone(), code(&c.name)))
                .collect(),
            votes: Vec::new(),
            count: 0,
        };
        seen.push((kept[i].0.clone(), kept[i].1, row.clone(), kept[i].4.clone()));
        *counts.entry(row).or_default() += 1;
        for (d, v) in &kept[i].3 {
            *unknown_codes
                .entry(layout.coded[*d].name.clone())
                .or_default()
                .entry(v.clone())
                .or_default() += 1;
        }
    }
    let rows: Vec<TruthRow> = counts
        .into_iter()
        .map(|(r, count)| TruthRow { count, ..r })
        .collect();
    let rows_read = (lines.len() - first) as u64;
    let voters = Voters {
        written: seen,
        dropped: {
            let kept_lines: HashSet<usize> = written.iter().copied().collect();
            (0..kept.len())
                .filter(|i| !kept_lines.contains(i))
                .map(|i| kept[i].4.clone())
                .collect()
        },
        accepted: kept.iter().filter_map(|k| k.0.clone()).collect(),
        names: names.clone(),
    };
    let truth = GroundTruth {
        layout: layout.name.clone(),
        rows_read,
        rows_rejected: rejected_lines.len() as u64,
        rejected_lines,
        missing_id_lines,
        duplicates_dropped: (kept.len() - written.len()) as u64,
        rows_written: written.len() as u64,
        unknown_codes,
        rows,
        identifiers: Vec::new(),
        history: None,
    };
    (truth, voters)
}

fn assert_reads_back(layout: &Layout, bytes: &[u8], truth: &GroundTruth) {
    let read = read_back(layout, bytes, YEAR);
    let mine = GroundTruth {
        identifiers: Vec::new(),
        ..truth.clone()
    };
    assert_eq!(read.rows_read, mine.rows_read, "{}: rows_read", layout.name);
    assert_eq!(
        read.rejected_lines, mine.rejected_lines,
        "{}: rejected lines",
        layout.name
    );
    assert_eq!(
        read.duplicates_dropped, mine.duplicates_dropped,
        "{}: duplicates",
        layout.name
    );
    assert_eq!(
        read.unknown_codes, mine.unknown_codes,
        "{}: unknown codes",
        layout.name
    );
    assert_eq!(
        read.rows.len(),
        mine.rows.len(),
        "{}: distinct rows",
        layout.name
    );
    for (a, b) in read.rows.iter().zip(&mine.rows) {
        assert_eq!(a, b, "{}: first differing row", layout.name);
    }
    assert_eq!(read, mine, "{}", layout.name);
}

fn assert_balanced(t: &GroundTruth) {
    assert_eq!(
        t.rows_read,
        t.rows_rejected + t.duplicates_dropped + t.rows_written
    );
    assert_eq!(t.rows.iter().map(|r| r.count).sum::<u64>(), t.rows_written);
    assert_eq!(t.rejected_lines.len() as u64, t.rows_rejected);
    assert!(t.rejected_lines.windows(2).all(|w| w[0] < w[1]));
    assert!(
        t.rows.windows(2).all(|w| w[0] < w[1]),
        "sorted and distinct"
    );
    assert!(t.rows.iter().all(|r| r.count > 0));
}

// ---------------------------------------------------------------------------

#[test]
fn truth_matches_an_independent_reading_of_the_file() {
    for layout in shipped() {
        for quirks in [false, true] {
            for seed in [1, 2] {
                let (bytes, truth, _) = synth_with(&layout, 20_000, seed, quirks);
                assert_reads_back(&layout, &bytes, &truth);
            }
        }
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    for layout in shipped() {
        let name = &layout.name;
        for quirks in [false, true] {
            let (a, ta, _) = synth_with(&layout, 3000, 7, quirks);
            let (b, tb, _) = synth_with(&layout, 3000, 7, quirks);
            assert!(a == b && ta == tb, "{name}");
            let (c, _, _) = synth_with(&layout, 3000, 8, quirks);
            assert_ne!(a, c, "{name}");
        }
    }
}

#[test]
fn every_builtin_layout_generates_and_balances() {
    for layout in shipped() {
        let name = layout.name.as_str();
        for quirks in [false, true] {
            let (bytes, t, _) = synth_with(&layout, 12_345, 3, quirks);
            assert_eq!(t.layout, name);
            assert_eq!(t.rows_read, 12_345);
            assert_balanced(&t);
            let header = u64::from(layout.format.header);
            let lf = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(lf, t.rows_read + header, "{name}: one line per row");
            assert!(bytes.ends_with(b"\n"));
            if !quirks {
                assert_eq!(
                    t.rows_written, t.rows_read,
                    "{name}: a clean file loses nothing"
                );
                assert!(t.unknown_codes.is_empty(), "{name}: {:?}", t.unknown_codes);
                assert!(!bytes.contains(&b'\r'));
                assert!(bytes.is_ascii(), "{name}");
            } else {
                assert!(t.rows_rejected > 0 && t.duplicates_dropped > 0, "{name}");
                assert!(
                    t.missing_id_lines.len() > 3,
                    "{name}: {:?}",
                    t.missing_id_lines
                );
                assert!(
                    t.missing_id_lines
                        .iter()
                        .all(|l| t.rejected_lines.binary_search(l).is_ok()),
                    "{name}: missing ids are rejected"
                );
            }
            // The truth round-trips through JSON.
            assert_eq!(GroundTruth::from_json(&t.to_json()).unwrap(), t);
        }
    }
}

#[test]
fn empty_and_tiny_files() {
    for layout in shipped() {
        for rows in [0, 1, 2, 17, 40] {
            for quirks in [false, true] {
                let (bytes, t, _) = synth_with(&layout, rows, 5, quirks);
                assert_balanced(&t);
                assert_reads_back(&layout, &bytes, &t);
            }
        }
    }
}

/// Quirk kinds that `layout` can show.
fn expected_quirks(layout: &Layout) -> Vec<Q> {
    let mut q = vec![
        Q::DupTie,
        Q::DupOlder,
        Q::DupNewer,
        Q::DupNullTie,
        Q::Truncated,
        Q::Empty,
        Q::BadCounty,
        Q::RejectedReusesId,
        Q::Crlf,
        Q::PaddedCode,
        Q::UnknownCode,
        Q::Latin1,
        Q::Nickname,
        Q::CountyVariant,
        Q::PaddedId,
        Q::BirthBlank,
        Q::BirthGarbage,
        Q::BirthOutOfRange,
        Q::RegBlank,
        Q::RegGarbage,
        Q::RegOutOfRange,
    ];
    if layout.format.quoting == Quoting::Double {
        q.extend([Q::BrokenQuote, Q::DelimiterInField]);
    }
    if layout.county.agree.is_some() {
        q.push(Q::CountyMismatch);
    }
    q.push(Q::MissingIdBlank);
    if layout.format.quoting == Quoting::Double || layout.format.delimiter != b' ' {
        q.push(Q::MissingIdSpaces);
    }
    if !layout.voter_id_placeholders.is_empty() {
        q.push(Q::MissingIdPlaceholder);
    }
    if layout.format.header {
        q.push(Q::ExtraColumns);
    }
    if layout.coded.iter().any(|c| c.numeric) {
        q.push(Q::NumericVariant);
    }
    if layout.coded.iter().any(|c| c.blank.is_none()) {
        q.push(Q::BlankUnknown);
    }
    let has_nulls = |d: &Option<layout::DateSpec>| {
        d.as_ref()
            .is_some_and(|d| !d.sentinels.is_empty() || !d.masks.is_empty())
    };
    if has_nulls(&layout.birth_year) {
        q.push(Q::BirthNull);
    }
    if has_nulls(&layout.registration_date) {
        q.push(Q::RegNull);
    }
    q
}

#[test]
fn every_quirk_kind_appears() {
    for layout in shipped() {
        let name = layout.name.as_str();
        for rows in [1_000, 10_000] {
            let (_, _, stats) = synth_with(&layout, rows, 11, true);
            for q in expected_quirks(&layout) {
                assert!(stats.get(q) > 0, "{name} at {rows} rows: no {q:?}");
            }
        }
        // And in a big file, more than once.
        let (_, _, stats) = synth_with(&layout, 10_000, 12, true);
        for q in [
            Q::DupTie,
            Q::DupOlder,
            Q::DupNewer,
            Q::Truncated,
            Q::PaddedCode,
            Q::Latin1,
        ] {
            assert!(stats.get(q) > 3, "{name}: {q:?} only {}", stats.get(q));
        }
        let (_, _, clean) = synth_with(&layout, 10_000, 12, false);
        assert!(
            clean.0.iter().all(|&n| n == 0),
            "{name}: quirks in a clean file"
        );
    }
}

#[test]
fn nc_quirks_in_the_bytes() {
    let (bytes, t, _) = synth("nc", 10_000, 1, true);
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let header = bytes.split(|&b| b == b'\n').next().unwrap();
    let header = String::from_utf8_lossy(header);
    assert!(
        header.contains("\"cong_dist_abbrv\"")
            && header.contains("\"confidential_ind\"\t\"hava_id_req\"\t\"ssn\"\t\"no_dl_ssn_chkbx\"\t\"registr_dt\""),
        "the 2026 columns sit before registr_dt: {header}"
    );
    assert!(has(b"\r\n"), "CRLF");
    assert!(bytes.iter().any(|&b| b >= 0x80), "Latin-1 names");
    assert!(std::str::from_utf8(&bytes).is_err());
    assert!(
        has(b"\" DEM \"") || has(b"\" REP \"") || has(b"\" UNA \""),
        "padded codes"
    );
    assert!(
        has(b"\"##/##/####\"") && has(b"\"XX-XX-XXXX\""),
        "masked dates"
    );
    assert!(has(b"\"01/01/1900\""), "sentinel date");
    assert!(has(b"\"ATLANTIS\""), "a county not in the list");
    assert!(
        has(b"\"\"BOB\"\"") || has(b"\"\"JIM\"\"") || has(b"\"\"MOLLY\"\""),
        "escaped quotes"
    );
    assert!(has(b" OAK AVE\tAPT 4\""), "a tab inside a quoted field");
    assert!(
        has(b"\"07\"") || has(b"\"7.0\"") || has(b"\"04\"") || has(b"\"4.0\""),
        "district spellings"
    );
    assert!(t.unknown_codes["party"].contains_key("XYZ"));
    assert!(
        t.unknown_codes["party"].contains_key(""),
        "blank party counts as unknown"
    );
    assert!(t.rows.iter().any(|r| r.birth_year.is_none()));
    assert!(t.rows.iter().any(|r| r.registration_year.is_none()));
}

#[test]
fn ohio_pads_counties_and_quotes_commas() {
    let (bytes, t, _) = synth("oh", 10_000, 2, true);
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        t.rows
            .iter()
            .all(|r| r.race.is_none() && r.gender.is_none() && r.ethnicity.is_none())
    );
    assert!(
        (1..=9).any(|c| has(format!(",\"0{c}\",").as_bytes())),
        "zero-padded counties"
    );
    assert!(has(b" OAK AVE, APT 4\""), "a comma inside a quoted field");
    assert!(has(b", JR\","), "a comma inside a quoted name");
    assert!(has(b"\"999\""), "a county code not in the list");
    // Blank party means unaffiliated, and is how most unaffiliated voters appear.
    let u: u64 = t
        .rows
        .iter()
        .filter(|r| r.party.as_deref() == Some("U"))
        .map(|r| r.count)
        .sum();
    assert!(u * 4 > t.rows_written, "{u} of {}", t.rows_written);
}

#[test]
fn florida_is_unquoted_headerless_and_derives_ethnicity_from_race() {
    let layout = Layout::resolve("fl").unwrap();
    let (bytes, t, _) = synth_with(&layout, 20_000, 5, true);
    let first = bytes.split(|&b| b == b'\n').next().unwrap();
    assert_eq!(
        first.iter().filter(|&&b| b == b'\t').count(),
        layout.format.columns.len() - 1
    );
    assert!(!first.starts_with(b"County Code"));
    for r in &t.rows {
        match r.race.as_deref() {
            Some("4") => assert_eq!(r.ethnicity.as_deref(), Some("HL"), "{r:?}"),
            Some("9") => assert_eq!(r.ethnicity.as_deref(), Some("UN"), "{r:?}"),
            _ => assert_eq!(r.ethnicity.as_deref(), Some("NL"), "{r:?}"),
        }
    }
    // An unknown race is unknown for both dimensions fed by the column.
    assert_eq!(
        t.unknown_codes["race"].get("XYZ"),
        t.unknown_codes["ethnicity"].get("XYZ")
    );
    assert!(t.unknown_codes["race"].contains_key("XYZ"));
}

/// The fields of `bytes`' data lines (quoted with `"` as synth writes them,
/// without quirks: no field holds a delimiter or a quote).
fn fields_of(layout: &Layout, bytes: &[u8]) -> Vec<Vec<String>> {
    let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    lines
        .skip(usize::from(layout.format.header))
        .map(|l| {
            l.split(|&b| b == layout.format.delimiter)
                .map(|f| latin1(f).trim_matches('"').to_owned())
                .collect()
        })
        .collect()
}

/// The position of `name` in the layout's `columns`.
fn column(layout: &Layout, name: &str) -> usize {
    layout
        .format
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("{}: no column {name}", layout.name))
}

#[test]
fn michigan_maps_numeric_genders_and_writes_district_codes() {
    let layout = shipped_layout("mi");
    let (bytes, t, _) = synth_with(&layout, 20_000, 3, false);
    let col = |name: &str| column(&layout, name);
    let lines = fields_of(&layout, &bytes);
    let gender = col("GENDER");
    // Older files' 1 and 2 are written (a few per thousand), and read as M and F.
    for old in ["1", "2"] {
        assert!(lines.iter().any(|f| f[gender] == old), "gender {old}");
    }
    assert!(t.rows.iter().all(|r| r.gender.as_deref() != Some("1")));
    let g = |code: &str| -> u64 {
        t.rows
            .iter()
            .filter(|r| r.gender.as_deref() == Some(code))
            .map(|r| r.count)
            .sum()
    };
    let written = |v: &str| lines.iter().filter(|f| f[gender] == v).count() as u64;
    assert_eq!(g("M"), written("M") + written("1"));
    assert_eq!(g("F"), written("F") + written("2"));
    assert!(t.rows.iter().all(|r| r.race.is_none() && r.party.is_none()));
    // District codes in their named columns; their *_NAME neighbours are not
    // people's names, and street names are addresses, sampled as identifiers.
    let house = col("STATE_HOUSE_DISTRICT_CODE");
    assert!(
        lines
            .iter()
            .all(|f| f[house].is_empty() || (1..=110).contains(&f[house].parse::<u32>().unwrap()))
    );
    assert_eq!(filler_for("STATE_HOUSE_DISTRICT_NAME"), Filler::Code);
    assert_eq!(filler_for("COUNTY_NAME"), Filler::Code);
    assert_eq!(filler_for("STREET_NAME"), Filler::Street);
    assert_eq!(filler_for("LAST_NAME"), Filler::LastName);
    let (_, t, _) = synth_with(&layout, 20_000, 3, true);
    assert!(
        t.identifiers
            .iter()
            .any(|i| i.ends_with(" ST") || i.ends_with(" RD"))
    );
}

#[test]
fn pennsylvania_is_headerless_with_districts_in_positional_columns() {
    let layout = shipped_layout("pa");
    assert_eq!(layout.format.columns.len(), 153);
    let (bytes, t, _) = synth_with(&layout, 10_000, 4, false);
    let lines = fields_of(&layout, &bytes);
    assert!(lines.iter().all(|f| f.len() == 153));
    assert!(
        lines[0][0].starts_with("PA"),
        "no header: the first line is a voter"
    );
    let col = |name: &str| column(&layout, name);
    // District6/7/8 carry the generated House, Senate and congressional
    // districts: every code of each table appears, and nothing else.
    for (column, dim, top) in [
        ("District6", "state_house_district", 203),
        ("District7", "state_senate_district", 50),
        ("District8", "congressional_district", 17),
    ] {
        let i = col(column);
        let seen: HashSet<&str> = lines.iter().map(|f| f[i].as_str()).collect();
        let max = seen.iter().filter_map(|v| v.parse::<u32>().ok()).max();
        assert_eq!(max, Some(top), "{column}");
        assert!(
            seen.iter()
                .all(|v| v.is_empty() || v.parse::<u32>().is_ok()),
            "{column}"
        );
        let codes: HashSet<&str> = t.rows.iter().filter_map(|r| r.code(dim)).collect();
        assert_eq!(
            codes.len(),
            top as usize + 1,
            "{dim}: every district and NA"
        );
    }
    // The county by name, as the reference list spells it.
    let county = col("County");
    assert!(
        lines
            .iter()
            .all(|f| layout.county.counties.iter().any(|c| c.name == f[county]))
    );
    assert_eq!(filler_for("Street Name"), Filler::Street);
    assert_eq!(filler_for("District12"), Filler::District);
    assert_eq!(filler_for("Home Phone"), Filler::Phone);
}

#[test]
fn every_county_and_code_appears_in_10k_rows() {
    for layout in shipped() {
        let name = layout.name.as_str();
        for quirks in [false, true] {
            let (_, t, _) = synth_with(&layout, 10_000, 9, quirks);
            let counties: HashSet<&str> = t.rows.iter().map(|r| r.county.as_str()).collect();
            assert_eq!(counties.len(), layout.county.counties.len(), "{name}");
            for c in &layout.coded {
                let seen: HashSet<&str> = t.rows.iter().filter_map(|r| r.code(&c.name)).collect();
                for code in c.code_strs() {
                    assert!(seen.contains(code), "{name} {quirks}: no {} {code}", c.name);
                }
            }
        }
    }
}

#[test]
fn distributions_are_plausible() {
    let (_, t, _) = synth("nc", 100_000, 4, false);
    let n = t.rows_written as f64;
    let share = |f: &dyn Fn(&TruthRow) -> bool| {
        t.rows.iter().filter(|r| f(r)).map(|r| r.count).sum::<u64>() as f64 / n
    };
    for (party, lo, hi) in [
        ("UNA", 0.30, 0.45),
        ("DEM", 0.25, 0.37),
        ("REP", 0.24, 0.36),
    ] {
        let s = share(&|r| r.party.as_deref() == Some(party));
        assert!((lo..hi).contains(&s), "{party}: {s}");
    }
    assert!(share(&|r| r.status.as_deref() == Some("A")) > 0.75);
    assert!(share(&|r| r.race.as_deref() == Some("W")) > 0.45);
    let middle = share(&|r| r.birth_year.is_some_and(|y| (1950..=2000).contains(&y)));
    assert!(middle > 0.55, "born 1950-2000: {middle}");
    assert!(t.rows.iter().all(|r| {
        r.birth_year
            .is_some_and(|y| (1925..=YEAR - 18).contains(&y))
    }));
    let mut sizes: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &t.rows {
        *sizes.entry(&r.county).or_default() += r.count;
    }
    let mut sizes: Vec<u64> = sizes.into_values().collect();
    sizes.sort_unstable();
    assert!(
        sizes[sizes.len() - 1] > 20 * sizes[sizes.len() / 2] / 2,
        "skewed: {sizes:?}"
    );
}

#[test]
fn identifiers_are_in_the_file_and_not_public_values() {
    for layout in shipped() {
        let name = layout.name.as_str();
        let (bytes, t, _) = synth_with(&layout, 20_000, 6, true);
        assert!(
            t.identifiers.len() >= 100 && t.identifiers.len() <= 200,
            "{name}: {}",
            t.identifiers.len()
        );
        let public: Vec<String> = layout
            .county
            .counties
            .iter()
            .flat_map(|c| [c.name.to_uppercase(), c.code.to_uppercase()])
            .chain(
                layout
                    .coded
                    .iter()
                    .flat_map(|c| c.codes.iter().map(|k| k.code.to_uppercase())),
            )
            .collect();
        for id in &t.identifiers {
            assert!(id.len() >= 4, "{name}: {id}");
            assert!(
                bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "{name}: {id}"
            );
            assert!(!public.contains(&id.to_uppercase()), "{name}: {id}");
        }
        assert!(
            t.identifiers
                .iter()
                .any(|i| i.starts_with(&name.to_uppercase())),
            "{name}: voter ids"
        );
    }
    let (_, t, _) = synth("nc", 20_000, 6, true);
    assert!(
        t.identifiers
            .iter()
            .any(|i| i.len() == 9 && i.bytes().all(|b| b.is_ascii_digit())),
        "ssn"
    );
    let (_, t, _) = synth("oh", 20_000, 6, false);
    assert!(
        t.identifiers
            .iter()
            .any(|i| i.len() == 10 && i.as_bytes()[4] == b'-'),
        "full birth dates"
    );
}

/// A layout for another state: pipe-delimited, unquoted, no header, county by
/// name, a year-only registration date, a party column with a map, and
/// placeholder voter ids.
fn custom_layout() -> Layout {
    custom_layout_with("")
}

/// [`custom_layout`] with `missing` (a line under `[voter_id]`).
fn custom_layout_with(missing: &str) -> Layout {
    let text = r#"
name = "zz"
description = "Made-up state"
[format]
delimiter = "|"
quoting = "none"
header = false
encoding = "utf-8"
columns = ["ID", "LAST NAME", "FIRST NAME", "CNTY", "DOB", "REG YEAR", "PTY", "ST", "ADDRESS", "PHONE", "EMAIL", "WARD"]
[voter_id]
column = "ID"
placeholders = ["0", "NONE"]
{missing}
[county]
column = "CNTY"
match = "name"
reference = "zz.csv"
[birth_year]
column = "DOB"
format = "DD.MM.YYYY"
sentinels = ["01.01.1901"]
masks = ["**.**.****"]
min = 1900
[registration_date]
column = "REG YEAR"
format = "YYYY"
sentinels = ["1999"]
first_year = 1990
[dimensions.party]
column = "PTY"
fallback = "OTH"
map = { "Democrat" = "DEM", "Republican" = "REP" }
codes = [
  { code = "DEM", label = "Democratic" },
  { code = "REP", label = "Republican" },
  { code = "IND", label = "Independent" },
  { code = "OTH", label = "Other" },
]
[dimensions.status]
column = "ST"
blank = "ACTIVE"
fallback = "OTHER"
codes = [
  { code = "ACTIVE", label = "Active" },
  { code = "INACTIVE", label = "Inactive" },
  { code = "OTHER", label = "Other" },
]
[absent]
dimensions = ["gender", "race", "ethnicity", "congressional_district"]
"#
    .replace("{missing}", missing);
    Layout::from_toml(&text, "test", &|_| {
        Ok("code,name\nA,Alpha\nB,Beta Springs\nC,Gamma\nD,Dona Delta\n".to_owned())
    })
    .unwrap()
}

#[test]
fn a_custom_layout_works() {
    let layout = custom_layout();
    for quirks in [false, true] {
        let (bytes, t, stats) = synth_with(&layout, 20_000, 3, quirks);
        assert_reads_back(&layout, &bytes, &t);
        assert_balanced(&t);
        assert!(
            t.rows
                .iter()
                .all(|r| r.race.is_none() && r.congressional_district.is_none())
        );
        let parties: HashSet<&str> = t.rows.iter().filter_map(|r| r.party.as_deref()).collect();
        assert_eq!(parties.len(), 4, "{parties:?}");
        if quirks {
            for q in expected_quirks(&layout) {
                assert!(stats.get(q) > 0, "custom: no {q:?}");
            }
        }
    }
}

#[test]
fn missing_ids_are_written_in_every_spelling_and_kept_when_the_layout_says_so() {
    let reject = custom_layout();
    let keep = custom_layout_with("missing = \"keep\"");
    assert_eq!(keep.missing_voter_id, MissingVoterId::Keep);
    let (bytes, rejected, _) = synth_with(&reject, 20_000, 4, true);
    let (same, kept, _) = synth_with(&keep, 20_000, 4, true);
    assert_eq!(bytes, same, "the policy changes the truth, not the file");
    assert_reads_back(&keep, &same, &kept);
    assert_eq!(rejected.missing_id_lines, kept.missing_id_lines);
    let missing = kept.missing_id_lines.len() as u64;
    assert!(missing > 5, "{missing}");
    assert!(
        kept.missing_id_lines
            .iter()
            .all(|l| rejected.rejected_lines.binary_search(l).is_ok()
                && kept.rejected_lines.binary_search(l).is_err())
    );
    assert_eq!(kept.rows_rejected + missing, rejected.rows_rejected);
    assert_eq!(kept.rows_written, rejected.rows_written + missing);
    assert_eq!(kept.duplicates_dropped, rejected.duplicates_dropped);
    // Every spelling, in the id column (the first; lines are `ID|...`).
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let ids: HashSet<&[u8]> = kept
        .missing_id_lines
        .iter()
        .map(|&l| lines[l as usize - 1].split(|&b| b == b'|').next().unwrap())
        .collect();
    for spelling in [&b""[..], b"   ", b"0", b"NONE", b" none  "] {
        assert!(
            ids.contains(spelling),
            "{:?}",
            String::from_utf8_lossy(spelling)
        );
    }
}

#[test]
fn unquoted_delimiter_never_leaks_into_fake_values() {
    // A space-delimited, unquoted file: fake values with spaces must be
    // altered, or fields would split.
    let text = r#"
name = "sp"
description = "Space separated"
[format]
delimiter = " "
quoting = "none"
header = true
encoding = "utf-8"
columns = ["voter", "county", "street_address", "party"]
[voter_id]
column = "voter"
[county]
column = "county"
match = "code"
numeric = true
reference = "sp.csv"
[dimensions.party]
column = "party"
fallback = "O"
codes = [{ code = "D", label = "Dem" }, { code = "R", label = "Rep" }, { code = "O", label = "Other" }]
[absent]
dimensions = ["gender", "race", "ethnicity", "status", "congressional_district"]
"#;
    let layout = Layout::from_toml(text, "test", &|_| {
        Ok("code,name\n1,One\n2,Two\n10,Ten\n".to_owned())
    })
    .unwrap();
    for quirks in [false, true] {
        let (bytes, t, _) = synth_with(&layout, 5_000, 1, quirks);
        assert_reads_back(&layout, &bytes, &t);
        if !quirks {
            assert_eq!(t.rows_written, 5_000);
        }
    }
}

#[test]
fn layouts_missing_a_column_are_refused() {
    let mut layout = Layout::resolve("nc").unwrap();
    layout.format.columns.retain(|c| c != "party_cd");
    let err = generate(
        &layout,
        &SynthOptions {
            with_rows: true,
            rows: 1,
            seed: 1,
            quirks: false,
            current_year: YEAR,
            elections: Vec::new(),
        },
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("party_cd"), "{err}");
}

#[test]
fn writes_in_whole_lines_and_reports_io_errors() {
    struct Fails;
    impl std::io::Write for Fails {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let layout = Layout::resolve("nc").unwrap();
    let opts = SynthOptions {
        with_rows: true,
        rows: 10,
        seed: 1,
        quirks: false,
        current_year: YEAR,
        elections: Vec::new(),
    };
    assert!(matches!(
        generate(&layout, &opts, &mut Fails),
        Err(SynthError::Io(_))
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Any seed, size, layout and current year: the truth is what the file says.
    #[test]
    fn truth_always_reads_back(seed in 0u64..u64::MAX, rows in 0u64..2_500, which in 0usize..4, quirks: bool) {
        let layout = match which {
            3 => custom_layout(),
            i => Layout::resolve(layout::builtin::NAMES[i]).unwrap(),
        };
        let (bytes, t, _) = synth_with(&layout, rows, seed, quirks);
        assert_balanced(&t);
        proptest::prop_assert_eq!(t.rows_read, rows);
        assert_reads_back(&layout, &bytes, &t);
    }

    /// Packed truth keys round-trip.
    #[test]
    fn keys_round_trip(county: u16, birth in proptest::option::of(1800i16..2100), reg in proptest::option::of(1800i16..2100), codes: [u8; 16]) {
        let k = Key::new(county, birth.unwrap_or(NULL_YEAR), reg.unwrap_or(NULL_YEAR), codes);
        proptest::prop_assert_eq!(k.county(), usize::from(county));
        proptest::prop_assert_eq!(k.birth(), birth);
        proptest::prop_assert_eq!(k.reg(), reg);
        for (d, c) in codes.iter().enumerate() {
            proptest::prop_assert_eq!(k.code(d), usize::from(*c));
        }
    }
}

fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Without elections the bytes and the truth are those of the generator
/// before voting history existed (fixtures are stamped by content).
#[test]
fn no_elections_same_bytes_as_before_history() {
    let before = [
        ("nc", false, 0x76db941a6d4c1be9u64),
        ("nc", true, 0xcd2c5b31739e4d15),
        ("oh", false, 0x732c7f3756ff1fee),
        ("oh", true, 0x2dcc202cb83fc8a3),
        ("fl", false, 0x529686ae5e7adaec),
        ("fl", true, 0x9aac8abd3e38c20b),
        ("mi", false, 0x28869fbb127e3bb0),
        ("mi", true, 0x8fcc2cf5647be0fa),
        ("pa", false, 0x33e38c5602f634be),
        ("pa", true, 0x8faae2923a380fb7),
    ];
    for (name, quirks, want) in before {
        let (bytes, truth, _) = synth_with(&shipped_layout(name), 3000, 7, quirks);
        let got = fnv(&[&bytes, truth.to_json().as_bytes()]);
        assert_eq!(got, want, "{name} quirks={quirks}: 0x{got:016x}");
    }
}

// ---------------------------------------------------------------------------
// Voting history: an independent reader of what was written.

fn synth_history(
    layout: &Layout,
    rows: u64,
    seed: u64,
    quirks: bool,
) -> (Vec<u8>, Vec<u8>, GroundTruth, HStats) {
    let opts = SynthOptions {
        with_rows: true,
        rows,
        seed,
        quirks,
        current_year: YEAR,
        elections: default_elections(),
    };
    let (mut out, mut hist) = (Vec::new(), Vec::new());
    let (truth, _, hstats) = generate_with_stats(layout, &opts, &mut out, &mut hist).unwrap();
    (out, hist, truth, hstats)
}

fn upper_trim(raw: &[u8]) -> String {
    latin1(trim(raw)).trim_matches('\r').to_ascii_uppercase()
}

/// A method as the rules read it: (category, unknown?).
fn read_method(h: &layout::History, raw: &[u8]) -> (u8, bool) {
    let key = upper_trim(raw);
    if key.is_empty() {
        return (h.blank, false);
    }
    match h.methods.get(&key) {
        Some(&c) => (c, false),
        None => (h.fallback, true),
    }
}

/// Reads the voter file and the history file (empty for in-file history)
/// by the documented rules; returns the history truth and the rows with
/// their votes.
fn read_history(
    layout: &Layout,
    voters: &[u8],
    history: &[u8],
    elections: &[layout::Election],
) -> (HistoryTruth, Vec<TruthRow>) {
    let h = layout.history.as_ref().unwrap();
    let (_, v) = read_back_voters(layout, voters, YEAR);
    let n = elections.len();
    let mut truth = HistoryTruth {
        elections: Vec::new(),
        lines_read: 0,
        rejected: BTreeMap::new(),
        other_elections: 0,
        unmatched: 0,
        duplicates: 0,
        unknown_methods: 0,
        ignored_columns: Vec::new(),
    };
    // Per written voter, per election: the category.
    let mut votes: Vec<Vec<u8>> = vec![vec![u8::MAX; n]; v.written.len()];
    match &h.source {
        layout::HistorySource::File(f) => {
            let body = history.strip_suffix(b"\n").unwrap_or(history);
            let lines: Vec<&[u8]> = if history.is_empty() {
                Vec::new()
            } else {
                body.split(|&b| b == b'\n').collect()
            };
            let (names, first) = if f.header {
                let names: Vec<String> = split(lines[0], f.delimiter, f.quoting)
                    .unwrap()
                    .iter()
                    .map(|x| latin1(trim(x)))
                    .collect();
                (names, 1)
            } else {
                (f.columns.clone(), 0)
            };
            let col = |name: &str| {
                names
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(name))
                    .unwrap()
            };
            let (id_col, date_col, method_col) =
                (col(&f.voter_id), col(&f.date_column), col(&f.method_column));
            let type_col = f.type_column.as_ref().map(|t| col(t));
            // id → per election: the lines' (category, unknown).
            let mut cells: HashMap<Vec<u8>, Vec<Vec<(u8, bool)>>> = HashMap::new();
            for (i, line) in lines.iter().enumerate().skip(first) {
                let line_no = i as u64 + 1;
                truth.lines_read += 1;
                let mut reject = |reason: &str| {
                    truth
                        .rejected
                        .entry(reason.to_owned())
                        .or_default()
                        .push(line_no);
                };
                let Some(fields) = split(line, f.delimiter, f.quoting) else {
                    reject("broken_quoting");
                    continue;
                };
                if fields.len() != names.len() {
                    reject("field_count");
                    continue;
                }
                let id = trim(&fields[id_col]).to_vec();
                if id.is_empty() {
                    reject("missing_voter_id");
                    continue;
                }
                let Some(date) = f.date_format.parse_date(trim(&fields[date_col])) else {
                    reject("bad_date");
                    continue;
                };
                let kind = type_col.map(|t| h.types.get(&upper_trim(&fields[t])).copied());
                let Some(e) = elections
                    .iter()
                    .position(|e| e.date == date.key() && kind.is_none_or(|k| k == Some(e.kind)))
                else {
                    truth.other_elections += 1;
                    continue;
                };
                if !v.accepted.contains(&id) {
                    truth.unmatched += 1;
                    continue;
                }
                let per = cells.entry(id).or_insert_with(|| vec![Vec::new(); n]);
                per[e].push(read_method(h, &fields[method_col]));
            }
            for (w, (id, reg, _, _)) in v.written.iter().enumerate() {
                for (e, el) in elections.iter().enumerate() {
                    let lines = id.as_ref().and_then(|id| cells.get(id)).map(|p| &p[e]);
                    votes[w][e] = match lines.filter(|l| !l.is_empty()) {
                        Some(l) => {
                            let win = l.iter().find(|x| x.0 != 0).unwrap_or(&l[0]);
                            truth.unknown_methods += u64::from(win.1);
                            win.0
                        }
                        None if *reg > el.date => 1,
                        None => 0,
                    };
                }
            }
            truth.duplicates = cells
                .values()
                .flatten()
                .map(|l| l.len().saturating_sub(1) as u64)
                .sum();
        }
        layout::HistorySource::Columns(c) => {
            // Election columns by name: prefix, type, separator, date.
            let mut col_of = vec![None; n];
            for (i, name) in v.names.iter().enumerate() {
                let Some((t, d)) = name
                    .strip_prefix(c.prefix.as_str())
                    .and_then(|r| r.split_once(c.separator.as_str()))
                else {
                    continue;
                };
                let (Some(kind), Some(d)) = (
                    h.types.get(&t.to_ascii_uppercase()),
                    c.date_format.parse_date(d.as_bytes()),
                ) else {
                    continue;
                };
                match elections
                    .iter()
                    .position(|e| e.kind == *kind && e.date == d.key())
                {
                    Some(e) => col_of[e] = Some(i),
                    None => truth.ignored_columns.push(name.clone()),
                }
            }
            for (w, (_, reg, _, fields)) in v.written.iter().enumerate() {
                for (e, el) in elections.iter().enumerate() {
                    let cell = trim(&fields[col_of[e].expect("a column per election")]);
                    votes[w][e] = if cell.is_empty() {
                        if *reg > el.date { 1 } else { 0 }
                    } else {
                        let (cat, unknown) = read_method(h, cell);
                        truth.unknown_methods += u64::from(unknown);
                        cat
                    };
                }
            }
            // Ingest counts unknown cells before de-duplication.
            for fields in &v.dropped {
                for e in 0..elections.len() {
                    let cell = trim(&fields[col_of[e].expect("a column per election")]);
                    if !cell.is_empty() {
                        truth.unknown_methods += u64::from(read_method(h, cell).1);
                    }
                }
            }
        }
    }
    let cats = h.categories();
    let mut rows: BTreeMap<TruthRow, u64> = BTreeMap::new();
    let mut per: Vec<ElectionTruth> = elections
        .iter()
        .map(|e| ElectionTruth {
            id: e.id.clone(),
            date: e.date_text(),
            kind: e.kind.as_str().to_owned(),
            categories: cats
                .iter()
                .map(|&c| (layout::CATEGORIES[usize::from(c)].0.to_owned(), 0))
                .collect(),
            by_county: BTreeMap::new(),
        })
        .collect();
    for (w, (_, _, row, _)) in v.written.iter().enumerate() {
        for (e, p) in per.iter_mut().enumerate() {
            let name = layout::CATEGORIES[usize::from(votes[w][e])].0.to_owned();
            *p.categories.entry(name.clone()).or_default() += 1;
            *p.by_county
                .entry(row.county.clone())
                .or_default()
                .entry(name)
                .or_default() += 1;
        }
        let row = TruthRow {
            votes: votes[w].clone(),
            ..row.clone()
        };
        *rows.entry(row).or_default() += 1;
    }
    truth.elections = per;
    let rows = rows
        .into_iter()
        .map(|(r, count)| TruthRow { count, ..r })
        .collect();
    (truth, rows)
}

fn assert_history_reads_back(layout: &Layout, voters: &[u8], history: &[u8], truth: &GroundTruth) {
    let name = &layout.name;
    let (read, rows) = read_history(layout, voters, history, &default_elections());
    let mine = truth.history.as_ref().expect("history truth");
    assert_eq!(read.lines_read, mine.lines_read, "{name}: lines read");
    assert_eq!(read.rejected, mine.rejected, "{name}: rejected");
    assert_eq!(
        read.other_elections, mine.other_elections,
        "{name}: other elections"
    );
    assert_eq!(read.unmatched, mine.unmatched, "{name}: unmatched");
    assert_eq!(read.duplicates, mine.duplicates, "{name}: duplicates");
    assert_eq!(
        read.unknown_methods, mine.unknown_methods,
        "{name}: unknown methods"
    );
    assert_eq!(
        read.ignored_columns, mine.ignored_columns,
        "{name}: ignored columns"
    );
    for (a, b) in read.elections.iter().zip(&mine.elections) {
        assert_eq!(a.categories, b.categories, "{name}: {} categories", a.id);
        assert_eq!(a, b, "{name}: {}", a.id);
    }
    assert_eq!(rows.len(), truth.rows.len(), "{name}: distinct rows");
    for (a, b) in rows.iter().zip(&truth.rows) {
        assert_eq!(a, b, "{name}: first differing row");
    }
    // And the voter file still reads back (rows without their votes).
    let mut plain: BTreeMap<TruthRow, u64> = BTreeMap::new();
    for r in &truth.rows {
        *plain
            .entry(TruthRow {
                votes: Vec::new(),
                count: 0,
                ..r.clone()
            })
            .or_default() += r.count;
    }
    let plain = GroundTruth {
        rows: plain
            .into_iter()
            .map(|(r, count)| TruthRow { count, ..r })
            .collect(),
        history: None,
        ..truth.clone()
    };
    assert_reads_back(layout, voters, &plain);
}

fn generate_history(
    layout: &Layout,
    rows: u64,
    seed: u64,
    quirks: bool,
) -> (Vec<u8>, Vec<u8>, GroundTruth, HStats) {
    synth_history(layout, rows, seed, quirks)
}

#[test]
fn history_truth_matches_an_independent_reading() {
    for name in ["nc", "fl", "oh"] {
        let layout = shipped_layout(name);
        for quirks in [false, true] {
            for seed in [1, 2] {
                let (voters, history, truth, _) = generate_history(&layout, 5_000, seed, quirks);
                if name == "oh" {
                    assert!(history.is_empty());
                }
                assert_balanced(&truth);
                assert_history_reads_back(&layout, &voters, &history, &truth);
            }
        }
    }
}

#[test]
fn every_history_quirk_appears_early() {
    for name in ["nc", "fl", "oh"] {
        let layout = shipped_layout(name);
        let (_, history, truth, stats) = generate_history(&layout, 300, 3, true);
        let file = name != "oh";
        let quoted = name == "nc";
        let typed = name == "fl";
        for q in ALL_HQ {
            let expected = match q {
                Hq::LowerMethod | Hq::PaddedMethod | Hq::UnknownMethod => true,
                Hq::WrongType | Hq::TypeSpelling => typed,
                Hq::BrokenQuote => quoted,
                _ => file,
            };
            assert_eq!(stats.get(q) > 0, expected, "{name}: {q:?}");
        }
        let h = truth.history.unwrap();
        if file {
            for reason in ["field_count", "missing_voter_id", "bad_date"] {
                assert!(h.rejected.contains_key(reason), "{name}: {reason}");
            }
            assert_eq!(h.rejected.contains_key("broken_quoting"), quoted);
            assert!(
                h.other_elections > 0 && h.unmatched > 0 && h.duplicates > 0,
                "{name}"
            );
            assert!(h.lines_read as usize >= history.split(|&b| b == b'\n').count() - 2);
        } else {
            assert_eq!(h.ignored_columns.len(), 2, "{name}");
        }
        assert!(h.unknown_methods > 0, "{name}");
    }
}

#[test]
fn history_is_plausible() {
    for name in ["nc", "fl", "oh"] {
        let layout = shipped_layout(name);
        let (_, _, truth, _) = generate_history(&layout, 20_000, 5, false);
        let h = truth.history.unwrap();
        for e in &h.elections {
            let c = &e.categories;
            let total: u64 = c.values().sum();
            let registered = total - c["not_registered"];
            let voted = registered - c["did_not_vote"];
            let share = |k: &str| c.get(k).copied().unwrap_or(0) as f64 / voted as f64;
            let turnout = voted as f64 / registered as f64;
            println!(
                "{name} {}: turnout {turnout:.2}, not registered {:.2}, early {:.2}, day {:.2}, mail {:.2}, prov {:.3}",
                e.id,
                c["not_registered"] as f64 / total as f64,
                share("early"),
                share("election_day"),
                share("mail"),
                share("provisional"),
            );
            if e.kind == "general" {
                assert!((0.55..0.8).contains(&turnout), "{name} {}: {turnout}", e.id);
            } else {
                assert!(
                    (0.15..0.35).contains(&turnout),
                    "{name} {}: {turnout}",
                    e.id
                );
            }
            if name == "nc" && e.id == "2024g" {
                assert!((0.45..0.65).contains(&share("early")), "{}", share("early"));
                assert!((0.2..0.4).contains(&share("election_day")));
                assert!((0.05..0.15).contains(&share("mail")));
            }
        }
    }
}

#[test]
fn history_same_seed_same_bytes_and_refusals() {
    for name in ["nc", "fl", "oh"] {
        let layout = shipped_layout(name);
        let a = generate_history(&layout, 2000, 9, true);
        let b = generate_history(&layout, 2000, 9, true);
        assert!(a.0 == b.0 && a.1 == b.1 && a.2 == b.2, "{name}");
        let c = generate_history(&layout, 2000, 10, true);
        assert_ne!(a.0, c.0, "{name}");
        if name != "oh" {
            assert_ne!(a.1, c.1, "{name}");
            // The voter lines are those of a file without history.
            let (plain, ..) = synth_with(&layout, 2000, 9, true);
            assert_eq!(plain, a.0, "{name}");
        }
    }
    let opts = SynthOptions {
        with_rows: false,
        rows: 10,
        seed: 1,
        quirks: false,
        current_year: YEAR,
        elections: default_elections(),
    };
    let nc = shipped_layout("nc");
    let oh = shipped_layout("oh");
    let mi = shipped_layout("mi");
    assert!(
        generate(&nc, &opts, &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("generate_with_history")
    );
    assert!(generate_with_history(&oh, &opts, &mut Vec::new(), &mut Vec::new()).is_err());
    assert!(
        generate(&mi, &opts, &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("[history]")
    );
    assert!(generate(&oh, &opts, &mut Vec::new()).is_ok());
    let mut twice = opts.clone();
    twice.elections.push(default_elections()[0].clone());
    assert!(generate(&oh, &twice, &mut Vec::new()).is_err());
}
