//! The source columns of a layout and what fills them: roles, fillers,
//! the candidate values of each coded column, and their weights.

use super::*;

/// What fills a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    VoterId,
    County,
    /// The `[county.agree]` column: the same county, spelled the other way.
    CountyAgree,
    Birth,
    Registration,
    /// Index into `Gen::sources`.
    Coded(u8),
    /// Index into `EXTRA_COLUMNS`.
    Extra(u8),
    Fill(Filler),
    /// An election column (in-file history): index into `HistGen::columns`.
    Vote(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filler {
    LastName,
    FirstName,
    MiddleName,
    Suffix,
    Street,
    Street2,
    City,
    State,
    Zip,
    Phone,
    Email,
    Date,
    District,
    Age,
    Flag,
    Code,
}

pub(crate) fn filler_for(name: &str) -> Filler {
    let n = name.to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    if has("suffix") {
        Filler::Suffix
    } else if has("last") && has("name") {
        Filler::LastName
    } else if has("first") && has("name") {
        Filler::FirstName
    } else if (has("addr") || has("street")) && has("name") {
        // MI `STREET_NAME`, PA `Street Name`: part of an address, not a
        // person's name.
        Filler::Street
    } else if has("name")
        && [
            "dist",
            "jurisdiction",
            "county",
            "status",
            "village",
            "school",
        ]
        .iter()
        .any(|p| has(p))
    {
        // MI `COUNTY_NAME`, `JURISDICTION_NAME`, `STATE_HOUSE_DISTRICT_NAME`:
        // names of places and codes, not of people.
        Filler::Code
    } else if has("name") && !has("precinct") {
        Filler::MiddleName
    } else if has("email") {
        Filler::Email
    } else if has("phone") || has("area code") {
        Filler::Phone
    } else if has("zip") || has("postal") {
        Filler::Zip
    } else if has("city") && !has("school") {
        Filler::City
    } else if has("state") || has("country") {
        Filler::State
    } else if (has("addr") || has("street"))
        && (has("2") || has("3") || has("4") || has("secondary"))
    {
        Filler::Street2
    } else if has("addr") || has("street") {
        Filler::Street
    } else if has("date") || n.ends_with("_dt") {
        Filler::Date
    } else if has("dist") || has("precinct") || has("ward") || has("vtd") {
        Filler::District
    } else if n.starts_with("age") {
        Filler::Age
    } else if has("_ind") || has("lic") || has("exemption") || has("chkbx") {
        Filler::Flag
    } else {
        Filler::Code
    }
}

/// A source column that feeds one or more coded dimensions (FL's `Race`
/// feeds race and ethnicity).
pub(crate) struct Source {
    /// Candidate raw values.
    pub(crate) values: Vec<Vec<u8>>,
    pub(crate) table: Table,
    /// Candidates that are unknown codes (for quirks).
    pub(crate) unknown: Vec<u8>,
    /// The blank candidate.
    pub(crate) blank: u8,
    /// Candidates drawn normally, cycled through for coverage.
    pub(crate) usual: Vec<u8>,
    /// Candidates that may be respelled (`7` as `07` or `7.0`): known numeric codes.
    pub(crate) respell: Vec<bool>,
}

/// A voter as chosen (before rendering).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Voter {
    pub(crate) id: u64,
    pub(crate) county: u16,
    pub(crate) birth: DateVal,
    pub(crate) reg: DateVal,
    /// Candidate index per source column.
    pub(crate) cands: [u8; MAX_CODED],
    /// Per configured election: the spelling of its winning history line
    /// (or OH cell), `NO_LINE` for none.
    pub(crate) hist: [u8; MAX_ELECTIONS],
}

pub(crate) const NULL_YEAR: i16 = i16::MIN;

/// How a generated file spells a missing voter id: blank; all spaces where
/// values can be padded; each placeholder the file can hold (an unquoted file
/// cannot hold one with its delimiter) as declared, and lower-case with
/// spaces around, which ingestion must read the same.
pub(crate) fn missing_id_spellings(layout: &Layout, quoted: bool, can_pad: bool) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    if can_pad {
        out.push(b"   ".to_vec());
    }
    for p in &layout.voter_id_placeholders {
        if !quoted && p.as_bytes().contains(&layout.format.delimiter) {
            continue;
        }
        out.push(p.as_bytes().to_vec());
        let lower = p.to_ascii_lowercase();
        out.push(if can_pad {
            format!(" {lower}  ").into_bytes()
        } else {
            lower.into_bytes()
        });
    }
    out
}

/// The candidate values of a source column feeding `dims` (indices into
/// `layout.coded`), with plausible weights.
pub(crate) fn build_source(layout: &Layout, dims: &[usize]) -> Source {
    let first = &layout.coded[dims[0]];
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    pub(crate) fn add(values: &mut Vec<Vec<u8>>, weights: &mut Vec<f64>, v: &str, w: f64) {
        match values.iter().position(|x| x == v.as_bytes()) {
            Some(i) => weights[i] += w,
            None => {
                values.push(v.as_bytes().to_vec());
                weights.push(w);
            }
        }
    }
    let blank_weight_share = |c: &CodedColumn, i: usize| -> f64 {
        if c.numeric {
            1.0 // a numeric column's blank code is written as a blank
        } else if i == c.fallback {
            0.1 // e.g. NC `U`: written as `U`, sometimes blank
        } else {
            0.97 // e.g. OH party: blank means unaffiliated
        }
    };
    for i in 0..first.codes.len() {
        let w = code_weight(first, i);
        if first.blank == Some(i) {
            let share = blank_weight_share(first, i);
            add(&mut values, &mut weights, "", w * share);
            if share < 1.0 {
                add(
                    &mut values,
                    &mut weights,
                    &first.codes[i].code,
                    w * (1.0 - share),
                );
            }
        } else {
            add(&mut values, &mut weights, &first.codes[i].code, w);
        }
    }
    for &d in dims {
        let mut keys: Vec<&String> = layout.coded[d].map.keys().collect();
        keys.sort();
        for k in keys {
            add(&mut values, &mut weights, k.trim(), 0.0);
        }
    }
    // Map keys that are not codes of the first table get a small weight.
    for (v, w) in values.iter().zip(weights.iter_mut()) {
        if *w == 0.0 && !v.is_empty() {
            *w = 0.5;
        }
    }
    add(&mut values, &mut weights, "", 0.0);
    let blank = values.iter().position(|v| v.is_empty()).expect("added") as u8;
    let numeric = dims.iter().any(|&d| layout.coded[d].numeric);
    let mut unknown = Vec::new();
    for u in if numeric {
        UNKNOWN_NUMERIC
    } else {
        UNKNOWN_TEXT
    } {
        let all_unknown = dims.iter().all(|&d| resolve(&layout.coded[d], u).1);
        if all_unknown && !values.iter().any(|v| v == u.as_bytes()) {
            unknown.push(values.len() as u8);
            add(&mut values, &mut weights, u, 0.0);
        }
    }
    if unknown.is_empty() {
        // Every made-up value is a code: make one that is not. A column read
        // `digits_only` ignores letters, so its unknown value is all nines.
        let digits = dims.iter().any(|&d| layout.coded[d].digits_only);
        let (mut u, more) = if digits {
            ("9".to_owned(), '9')
        } else {
            ("ZZ".to_owned(), 'Z')
        };
        while dims.iter().any(|&d| !resolve(&layout.coded[d], &u).1) {
            u.push(more);
        }
        unknown.push(values.len() as u8);
        add(&mut values, &mut weights, &u, 0.0);
    }
    let usual = (0..values.len())
        .filter(|&i| weights[i] > 0.0)
        .map(|i| i as u8)
        .collect();
    let respell = values
        .iter()
        .map(|v| {
            numeric
                && !v.is_empty()
                && v.iter().all(u8::is_ascii_digit)
                && dims
                    .iter()
                    .all(|&d| !resolve(&layout.coded[d], &String::from_utf8_lossy(v)).1)
        })
        .collect();
    Source {
        table: Table::new(&weights),
        values,
        unknown,
        blank,
        usual,
        respell,
    }
}

/// A plausible share for code `i` of a table, by its code and label.
pub(crate) fn code_weight(c: &CodedColumn, i: usize) -> f64 {
    let code = c.codes[i].code.to_ascii_uppercase();
    let label = c.codes[i].label.to_ascii_lowercase();
    let is = |xs: &[&str]| xs.contains(&code.as_str());
    let has = |s: &str| label.contains(s);
    if i == c.fallback && c.blank != Some(i) {
        return 0.2; // "other or unrecognised"
    }
    match c.name.as_str() {
        "party" => {
            if is(&["DEM", "D"]) {
                31.0
            } else if is(&["REP", "R"]) {
                30.0
            } else if is(&["UNA", "NPA", "U", "NON", "NP", "UNAF", "IND"]) && !has("party of")
                || has("unaffiliated")
                || has("no party")
            {
                37.0
            } else {
                1.5 / (i as f64).max(1.0)
            }
        }
        "status" => {
            if has("inactive") || has("confirmation") || is(&["I", "INA", "INACTIVE"]) {
                10.0
            } else if i == 0 || has("active") || is(&["A", "ACT", "ACTIVE"]) {
                85.0
            } else {
                1.0
            }
        }
        "gender" => match code.as_str() {
            "F" => 52.0,
            "M" => 46.0,
            _ => 2.0,
        },
        "race" => {
            if has("white") {
                60.0
            } else if has("black") {
                20.0
            } else if has("hispanic") {
                9.0
            } else if has("asian") {
                3.0
            } else if has("undesignated") || has("unknown") {
                4.0
            } else if has("two or more") || has("multi") {
                2.0
            } else {
                0.6
            }
        }
        "ethnicity" => {
            if has("not hispanic") {
                80.0
            } else if has("hispanic") {
                9.0
            } else {
                11.0
            }
        }
        // Districts and a state's own dimensions: even shares, few blanks.
        _ => {
            if c.blank == Some(i) {
                0.05
            } else {
                1.0
            }
        }
    }
}

/// What ingestion makes of a raw value for one coded dimension: (code index,
/// unknown?). Written from the documented rules: trim; `digits_only` keeps
/// the first run of digits; blank → the `blank` code if set; numeric normalisation; the
/// map, then the table (ignoring ASCII case when `case = "insensitive"`);
/// else the fallback, counted as unknown.
pub(crate) fn resolve(c: &CodedColumn, raw: &str) -> (u8, bool) {
    let raw = raw.trim_matches([' ', '\t']);
    let raw = if c.digits_only {
        // The first run of digits: `CG14` is 14, `4.0` is 4.
        let start = raw
            .find(|ch: char| ch.is_ascii_digit())
            .unwrap_or(raw.len());
        let rest = &raw[start..];
        &rest[..rest
            .find(|ch: char| !ch.is_ascii_digit())
            .unwrap_or(rest.len())]
    } else {
        raw
    };
    if let (true, Some(b)) = (raw.is_empty(), c.blank) {
        return (b as u8, false);
    }
    let norm = if c.numeric {
        layout::normalize_numeric(raw).into_owned()
    } else {
        raw.to_owned()
    };
    let same = |a: &str, b: &str| {
        if c.case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let mapped = c
        .map
        .iter()
        .find(|(from, _)| same(from.trim(), &norm))
        .map_or(norm.as_str(), |(_, to)| to.as_str());
    match c.codes.iter().position(|code| same(&code.code, mapped)) {
        Some(i) => (i as u8, false),
        None => (c.fallback as u8, true),
    }
}
