//! Synthetic voter files in any layout's exact format, with ground truth.
//!
//! [`generate`] writes a file the way a state would. It renders every column of
//! `layout.format.columns` in order, in the layout's delimiter, quoting, header
//! and date formats. The canonical columns (voter id, county, birth date,
//! registration date, every coded column) carry the generated voter. Every other
//! column gets a plausible fake chosen by its name (names, street addresses,
//! cities, zips, phones, emails, dates, district numbers, short codes).
//! Voters follow plausible distributions: a few big counties and many small
//! ones (Zipf over a seeded order), birth years of adults (most in 1950–2000),
//! large DEM/REP/unaffiliated shares and small minor parties, mostly active
//! statuses, race, ethnicity and gender shares by label. Every county and every
//! code appears in a file of 10 000 rows or more.
//!
//! With `quirks` it adds what real files contain, each in a small share of the
//! lines. Every kind also appears once in the first hundred or so lines, so any
//! file of 1 000 rows has them all:
//! - duplicate registrations (older, newer or equal registration dates, and
//!   null dates, which rank oldest);
//! - rejected lines: truncated, empty, an unclosed quote, a county not in the
//!   reference list (sometimes reusing a kept voter's id with a newer date);
//! - voter ids that are blank, all spaces, or one of the layout's
//!   placeholders (as declared, and lower-case with spaces around): rejected,
//!   or, when the layout says `missing = "keep"`, kept as voters of their own;
//! - spaces around codes, unknown codes, blank codes;
//! - Latin-1 bytes in names, quotes inside names, the delimiter inside a
//!   quoted field;
//! - CRLF line endings;
//! - blank, masked, sentinel, unparseable and out-of-range dates;
//! - case and zero-padding variants of counties, `4.0` and `04` districts;
//! - for files with a header, three extra columns (`hava_id_req`, `ssn`,
//!   `no_dl_ssn_chkbx`, as NC added in 2026) inserted before the registration
//!   date.
//!
//! With `elections` ([`default_elections`]) it also writes voting history:
//! for NC and FL a separate file in the layout's `[history]` format
//! ([`generate_with_history`]; NC with a header and fake values in the
//! columns ingest does not read), for OH one column per election after the
//! fixed columns (`GENERAL-11/05/2024`), plus two election columns that are
//! not configured. Turnout depends on age, party, election type and a habit
//! per voter (generals about 60–70%, primaries about 23%); methods follow the
//! layout's code table (NC 2024 general about 55% early, 30% election day,
//! 10% mail); NC writes some `ELIGIBLE DID NOT VOTE` and `TRANSFER` lines, FL
//! some `N`. Duplicate registrations share their id's history. With
//! `quirks`, each of these appears in the first voters' lines and then in a
//! small share:
//! - a (voter, election) twice with the same method, twice with different
//!   methods (the first wins), a did-not-vote line before a ballot (the
//!   ballot wins), two did-not-vote lines only;
//! - a ballot before the voter's registration date (history wins: voted);
//! - methods in lower case, padded with spaces (OH ` x `), blank, and not in
//!   the table (`Q`, `Z`: the `fallback`, counted as unknown);
//! - ids padded with spaces;
//! - lines for elections not configured (2019 and 2021 dates) and, for FL,
//!   a configured date with another type (both count as other elections);
//!   FL types in lower case with spaces (still matching);
//! - lines for ids in no accepted voter line (`NC990000000`…, and the ids of
//!   rejected voter lines): unmatched;
//! - rejected lines: a blank id, an id of spaces (`missing_voter_id`), a
//!   date `13/45/2016` (`bad_date`), a field missing (`field_count`) and, NC,
//!   an unclosed quote (`broken_quoting`).
//!
//! The history truth ([`HistoryTruth`], and [`TruthRow::votes`]) follows
//! ingest's rules: a kept voter's category per election is the first line
//! (by id, trimmed) whose category is not `did_not_vote`, else
//! `did_not_vote` when it has only such lines; with no line (OH: an empty
//! cell) `not_registered` when its usable registration date is after the
//! election, else `did_not_vote` (a null, unparseable or out-of-range date
//! counts as registered). `unknown_methods` counts the kept voters' winning
//! cells of a history file, and every accepted line's cells of in-file
//! history (before de-duplication, as ingest counts them).
//!
//! It returns the [`GroundTruth`]: what a correct ingest must produce from the
//! file. The truth is computed from what the generator chose, by the ingestion
//! rules applied to the layout's public description, not by parsing the
//! output. The tests do parse the output and check that it agrees.
//!
//! The same seed gives the same bytes. `rand` is used here for fake data and
//! nowhere near differential-privacy noise.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;

use layout::{
    CodedColumn, CountyMatch, Election, HistorySource, Layout, MAX_CODED, MAX_ELECTIONS,
    MissingVoterId, Quoting,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Data lines to write (header excluded): voters, duplicates and quirk lines.
    pub rows: u64,
    /// Random seed: the same seed (and options) gives the same bytes.
    pub seed: u64,
    /// Add the quirks of real files.
    pub quirks: bool,
    /// The year ingestion will treat as current (plausible-year rules).
    pub current_year: i16,
    /// Build [`GroundTruth::rows`], a row per distinct tuple (about 1 KiB
    /// each). Off for a benchmark file of tens of millions of lines, whose
    /// truth nobody reads; the counts are still exact.
    pub with_rows: bool,
    /// Elections to write voting history for (see [`default_elections`]).
    /// Empty: no history, and the same bytes as a generator without it.
    pub elections: Vec<Election>,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Writing the output failed.
    #[error("writing synthetic file: {0}")]
    Io(#[from] std::io::Error),
    /// The layout cannot be generated (e.g. a column it needs is missing).
    #[error("layout {layout}: {message}")]
    Layout {
        /// Layout name.
        layout: String,
        /// What is wrong.
        message: String,
    },
}

/// What a correct ingest of the generated file produces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroundTruth {
    /// Layout name.
    pub layout: String,
    /// Data lines written (header excluded): the lines ingestion reads.
    pub rows_read: u64,
    /// Lines an ingest must reject.
    pub rows_rejected: u64,
    /// Physical line numbers of those lines, ascending (header = line 1 when
    /// the layout has a header).
    pub rejected_lines: Vec<u64>,
    /// Physical line numbers, ascending, of the lines whose voter id is blank
    /// or a placeholder: a subset of `rejected_lines` (reason
    /// `missing_voter_id`) unless the layout keeps such lines.
    #[serde(default)]
    pub missing_id_lines: Vec<u64>,
    /// Duplicate registrations an ingest must drop.
    pub duplicates_dropped: u64,
    /// Rows an ingest must write.
    pub rows_written: u64,
    /// Unknown codes over written rows: canonical column → trimmed raw value →
    /// count. A blank value without a `blank` mapping counts under `""`.
    pub unknown_codes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every distinct output row with its count, sorted.
    pub rows: Vec<TruthRow>,
    /// A sample (at most 200) of identifying values written to the file (voter
    /// ids, names, full birth dates, `ssn`, phone and email values) that must
    /// never appear in the output.
    pub identifiers: Vec<String>,
    /// The voting history's truth, when elections were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryTruth>,
}

/// What a correct ingest counts from the voting history (the separate file,
/// or the voter file's election columns).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryTruth {
    /// Per configured election, in the order given: its counts. Each
    /// [`TruthRow::votes`] holds the category of its voters in this order.
    pub elections: Vec<ElectionTruth>,
    /// Data lines of the history file (header excluded); 0 for in-file
    /// history.
    pub lines_read: u64,
    /// Rejected history lines: reason (`field_count`, `broken_quoting`,
    /// `missing_voter_id`, `bad_date`) → physical line numbers, ascending
    /// (a header is line 1).
    pub rejected: BTreeMap<String, Vec<u64>>,
    /// Accepted lines whose (date, type) is no configured election.
    pub other_elections: u64,
    /// Lines of configured elections whose id is in no accepted voter line.
    pub unmatched: u64,
    /// Lines after the first of a (voter, election).
    pub duplicates: u64,
    /// (Kept voter, election) cells whose winning method (the line that
    /// decides the category, or the OH cell) is not in the code table.
    pub unknown_methods: u64,
    /// In-file history: the election columns of the voter file that are no
    /// configured election (ingest ignores them).
    pub ignored_columns: Vec<String>,
}

/// One configured election's counts over kept voters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ElectionTruth {
    /// The election's id (`2024g`).
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Its type (`general`).
    pub kind: String,
    /// Category name → kept voters, for every category the layout's vote
    /// dimension has (zeros included).
    pub categories: BTreeMap<String, u64>,
    /// County name → category name → kept voters (non-zero only).
    pub by_county: BTreeMap<String, BTreeMap<String, u64>>,
}

impl GroundTruth {
    /// The truth as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data always serializes")
    }

    /// Reads truth written by [`GroundTruth::to_json`].
    pub fn from_json(text: &str) -> Result<GroundTruth, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// One distinct output row and how many times it occurs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TruthRow {
    /// County name from the reference list.
    pub county: String,
    /// Birth year; `None` when null or the layout has no birth year.
    pub birth_year: Option<i16>,
    /// Gender code; `None` when the layout has none.
    pub gender: Option<String>,
    /// Race code; `None` when the layout has none.
    pub race: Option<String>,
    /// Ethnicity code; `None` when the layout has none.
    pub ethnicity: Option<String>,
    /// Party code; `None` when the layout has none.
    pub party: Option<String>,
    /// Status code; `None` when the layout has none.
    pub status: Option<String>,
    /// Registration year; `None` when null or the layout has none.
    pub registration_year: Option<i16>,
    /// Congressional district code; `None` when the layout has none.
    pub congressional_district: Option<String>,
    /// The layout's own dimensions (not standard ones): name → code.
    #[serde(flatten)]
    pub own: BTreeMap<String, Option<String>>,
    /// Per configured election (in `SynthOptions::elections` order): the
    /// category of these voters, an index into [`layout::CATEGORIES`].
    /// Empty without elections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<u8>,
    /// Number of rows.
    pub count: u64,
}

impl TruthRow {
    /// The code of the coded dimension `name` (standard or the layout's
    /// own); `None` when the layout has none.
    pub fn code(&self, name: &str) -> Option<&str> {
        match name {
            "gender" => self.gender.as_deref(),
            "race" => self.race.as_deref(),
            "ethnicity" => self.ethnicity.as_deref(),
            "party" => self.party.as_deref(),
            "status" => self.status.as_deref(),
            "congressional_district" => self.congressional_district.as_deref(),
            own => self.own.get(own)?.as_deref(),
        }
    }

    /// The category name of these voters in the `e`-th configured election.
    pub fn vote(&self, e: usize) -> &'static str {
        layout::CATEGORIES[usize::from(self.votes[e])].0
    }
}

/// Per source column: for one feeding a dimension nested in the county,
/// per county the candidates whose code that county lists (never the
/// fallback, which stands for "not listed"). A voter's value is drawn among
/// them, so the file agrees with the list as an office's file would.
fn nested_candidates(
    layout: &Layout,
    sources: &[Source],
    dim_source: &[usize],
    dim_codes: &[Vec<(u8, bool)>],
) -> Vec<Option<Vec<Vec<u8>>>> {
    let mut out = vec![None; sources.len()];
    for (d, c) in layout.coded.iter().enumerate() {
        let Some(nested) = &c.within else { continue };
        let per_county = (0..layout.county.counties.len() as u16)
            .map(|county| {
                (0..sources[dim_source[d]].values.len() as u8)
                    .filter(|&cand| {
                        let (code, unknown) = dim_codes[d][usize::from(cand)];
                        !unknown && usize::from(code) != c.fallback && nested.contains(county, code)
                    })
                    .collect()
            })
            .collect();
        out[dim_source[d]] = Some(per_county);
    }
    out
}

/// A made-up precinct list for `layout`'s counties, as `county,code,label`
/// CSV (the county by its code): two to six precincts per county, `P01`,
/// `P02`, … For tests and the demo only: a real state's list comes from its
/// office, and rollcall ships none.
pub fn precinct_list(layout: &Layout) -> String {
    let mut out = String::from("county,code,label\n");
    for (i, county) in layout.county.counties.iter().enumerate() {
        for p in 1..=2 + (i * 7) % 5 {
            out.push_str(&format!("{},P{p:02},Precinct {p}\n", county.code));
        }
    }
    out
}

/// Writes a synthetic file in `layout`'s format to `out` and returns what a
/// correct ingest of it must produce.
///
/// With `opts.elections`, only for a layout whose history is in the voter
/// file (OH): a separate history file needs [`generate_with_history`].
///
/// Writes one `write_all` per line: pass a buffered writer.
pub fn generate<W: Write>(
    layout: &Layout,
    opts: &SynthOptions,
    out: &mut W,
) -> Result<GroundTruth, SynthError> {
    if !opts.elections.is_empty()
        && matches!(
            layout.history.as_ref().map(|h| &h.source),
            Some(HistorySource::File(_))
        )
    {
        return Err(SynthError::Layout {
            layout: layout.name.clone(),
            message: "its history is a separate file: use generate_with_history".into(),
        });
    }
    generate_with_stats(layout, opts, out, &mut std::io::sink()).map(|(truth, ..)| truth)
}

/// [`generate`] for a layout whose voting history is a separate file (NC,
/// FL): writes the voters to `out` and the history of `opts.elections` to
/// `history`, in the layout's `[history]` format. The truth's
/// [`GroundTruth::history`] is what an ingest of both must count. For a
/// layout with in-file history (OH), use [`generate`].
///
/// Writes one `write_all` per line to each: pass buffered writers.
pub fn generate_with_history<W: Write, H: Write>(
    layout: &Layout,
    opts: &SynthOptions,
    out: &mut W,
    history: &mut H,
) -> Result<GroundTruth, SynthError> {
    if !matches!(
        layout.history.as_ref().map(|h| &h.source),
        Some(HistorySource::File(_))
    ) {
        return Err(SynthError::Layout {
            layout: layout.name.clone(),
            message: "has no separate history file (in-file history is written by generate)".into(),
        });
    }
    generate_with_stats(layout, opts, out, history).map(|(truth, ..)| truth)
}

/// [`generate`], also returning how many times each quirk kind was written.
fn generate_with_stats<W: Write, H: Write>(
    layout: &Layout,
    opts: &SynthOptions,
    out: &mut W,
    history: &mut H,
) -> Result<(GroundTruth, Stats, HStats), SynthError> {
    let mut g = Gen::new(layout, opts)?;
    let truth = g.run(out, history)?;
    let hstats = g.hist.as_ref().map(|h| h.stats.clone()).unwrap_or_default();
    Ok((truth, g.stats, hstats))
}

mod dates;
mod dice;
mod fakes;
mod history;
mod plan;
mod render;
mod sources;
mod truth;

use dates::*;
use dice::*;
use fakes::*;
pub use history::default_elections;
use history::*;
use plan::*;
use sources::*;
use truth::*;

struct Gen<'a> {
    layout: &'a Layout,
    opts: &'a SynthOptions,
    dice: Dice,
    delim: u8,
    quoted: bool,
    /// Replace the delimiter in fake values (unquoted files whose delimiter
    /// could occur in them).
    sanitize: bool,
    /// Values may be padded with spaces (not in unquoted space-delimited files).
    can_pad: bool,
    roles: Vec<Role>,
    header: Vec<String>,
    id_prefix: Vec<u8>,
    /// Spellings of a missing voter id: blank, spaces (where values can be
    /// padded), then each writable placeholder as declared and respelled.
    missing_ids: Vec<Vec<u8>>,
    sources: Vec<Source>,
    /// Per `layout.coded` index: its source column.
    dim_source: Vec<usize>,
    /// Per `layout.coded` index, per candidate: (code index, unknown?).
    dim_codes: Vec<Vec<(u8, bool)>>,
    /// Per source column of a dimension nested in the county: per county,
    /// the candidates whose code the county lists. `None` elsewhere.
    nested_cands: Vec<Option<Vec<Vec<u8>>>>,
    county_table: Table,
    county_text: Vec<Vec<u8>>,
    /// Each county as the `[county.agree]` column writes it, if the layout
    /// has one.
    agree_text: Option<Vec<Vec<u8>>>,
    bad_county: Vec<u8>,
    ages: Table,
    birth: Option<DateCol>,
    reg: Option<DateCol>,
    /// Fake names safe to list as identifiers (no county or label contains them).
    safe_last: Vec<bool>,
    safe_first: Vec<bool>,
    state: Vec<u8>,
    has_numeric: bool,
    forced: Vec<Plan>,
    crlf_all: bool,
    counts: Counts,
    /// Per `layout.coded` index, per candidate: written rows with that unknown.
    unknown: Vec<Vec<u64>>,
    identifiers: Vec<String>,
    stats: Stats,
    /// Voting history, when elections are given.
    hist: Option<HistGen>,
}

impl<'a> Gen<'a> {
    fn new(layout: &'a Layout, opts: &'a SynthOptions) -> Result<Gen<'a>, SynthError> {
        let err = |message: String| SynthError::Layout {
            layout: layout.name.clone(),
            message,
        };
        let columns = &layout.format.columns;
        if columns.is_empty() {
            return Err(err(
                "format.columns must list the file's columns to synthesize it".into(),
            ));
        }
        if layout.coded.len() > MAX_CODED {
            return Err(err(format!("more than {MAX_CODED} coded columns")));
        }
        let find = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
        let mut roles: Vec<Role> = columns.iter().map(|c| Role::Fill(filler_for(c))).collect();
        let mut set = |name: &str, role: Role| -> Result<(), SynthError> {
            let i = find(name)
                .ok_or_else(|| err(format!("column `{name}` is not in format.columns")))?;
            roles[i] = role;
            Ok(())
        };
        set(&layout.voter_id, Role::VoterId)?;
        set(&layout.county.column, Role::County)?;
        if let Some(a) = &layout.county.agree {
            set(&a.column, Role::CountyAgree)?;
        }
        if let Some(b) = &layout.birth_year {
            set(&b.column, Role::Birth)?;
        }
        if let Some(r) = &layout.registration_date {
            set(&r.column, Role::Registration)?;
        }

        // Group coded dimensions by source column.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (d, c) in layout.coded.iter().enumerate() {
            match groups
                .iter_mut()
                .find(|(col, _)| col.eq_ignore_ascii_case(&c.column))
            {
                Some((_, dims)) => dims.push(d),
                None => groups.push((c.column.clone(), vec![d])),
            }
        }
        let mut sources = Vec::new();
        let mut dim_source = vec![0; layout.coded.len()];
        let mut dim_codes = vec![Vec::new(); layout.coded.len()];
        for (column, dims) in groups {
            let source = build_source(layout, &dims);
            let index = sources.len();
            for &d in &dims {
                dim_source[d] = index;
                dim_codes[d] = source
                    .values
                    .iter()
                    .map(|v| resolve(&layout.coded[d], &String::from_utf8_lossy(v)))
                    .collect();
            }
            set(&column, Role::Coded(index as u8))?;
            sources.push(source);
        }

        let mut header = columns.clone();
        if opts.quirks && layout.format.header {
            let at = layout
                .registration_date
                .as_ref()
                .and_then(|r| find(&r.column))
                .unwrap_or(header.len() / 2);
            for (k, name) in EXTRA_COLUMNS.iter().enumerate() {
                if find(name).is_none() {
                    header.insert(at + k, (*name).to_owned());
                    roles.insert(at + k, Role::Extra(k as u8));
                }
            }
        }

        let hist = HistGen::new(layout, opts, &err)?;
        if let Some(h) = &hist {
            for (k, c) in h.columns.iter().enumerate() {
                header.push(c.name.clone());
                roles.push(Role::Vote(k as u8));
            }
        }

        let delim = layout.format.delimiter;
        let quoted = layout.format.quoting == Quoting::Double;
        // Bytes fake values may contain.
        let fake_bytes =
            b" /@.-,\"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\xC9\xD1\xE9";
        let sanitize = !quoted && fake_bytes.contains(&delim);
        let can_pad = quoted || delim != b' ';

        let county_text: Vec<Vec<u8>> = layout
            .county
            .counties
            .iter()
            .map(|c| match layout.county.matched_by {
                CountyMatch::Name => c.name.as_bytes().to_vec(),
                CountyMatch::Code => c.code.as_bytes().to_vec(),
            })
            .collect();
        let agree_text = layout.county.agree.as_ref().map(|a| {
            layout
                .county
                .counties
                .iter()
                .map(|c| match a.matched_by {
                    CountyMatch::Name => c.name.as_bytes().to_vec(),
                    CountyMatch::Code => c.code.as_bytes().to_vec(),
                })
                .collect()
        });
        let known_county = |v: &str| {
            let v = if layout.county.numeric {
                layout::normalize_numeric(v).into_owned()
            } else {
                v.to_owned()
            };
            layout.county.counties.iter().any(|c| {
                let key = match layout.county.matched_by {
                    CountyMatch::Name => &c.name,
                    CountyMatch::Code => &c.code,
                };
                let key = if layout.county.numeric {
                    layout::normalize_numeric(key).into_owned()
                } else {
                    key.clone()
                };
                key.eq_ignore_ascii_case(&v)
            })
        };
        let bad_county = match layout.county.matched_by {
            CountyMatch::Name => BAD_NAMES.iter().chain(&BAD_CODES),
            CountyMatch::Code => BAD_CODES.iter().chain(&BAD_NAMES),
        }
        .find(|b| !known_county(b) && !b.as_bytes().contains(&delim))
        .ok_or_else(|| err("every made-up county is in the reference list".into()))?
        .as_bytes()
        .to_vec();

        let id_prefix: Vec<u8> = layout
            .name
            .bytes()
            .filter(u8::is_ascii_alphabetic)
            .map(|b| b.to_ascii_uppercase())
            .filter(|b| *b != delim)
            .take(2)
            .collect();
        let state = if id_prefix.len() == 2 {
            id_prefix.clone()
        } else {
            b"XX".to_vec()
        };
        let missing_ids = missing_id_spellings(layout, quoted, can_pad);

        if !quoted {
            // Canonical values cannot be altered: they must not hold the delimiter.
            let mut canonical: Vec<&[u8]> = county_text.iter().map(Vec::as_slice).collect();
            for s in &sources {
                canonical.extend(s.values.iter().map(Vec::as_slice));
            }
            let formats = [&layout.birth_year, &layout.registration_date];
            for d in formats.into_iter().flatten() {
                canonical.push(d.format.as_str().as_bytes());
                canonical.extend(d.sentinels.iter().chain(&d.masks).map(|s| s.as_bytes()));
            }
            if let Some(v) = canonical.iter().find(|v| v.contains(&delim)) {
                return Err(err(format!(
                    "value `{}` contains the delimiter and the file is not quoted",
                    String::from_utf8_lossy(v)
                )));
            }
        }

        let mut dice = Dice(ChaCha8Rng::seed_from_u64(opts.seed));

        // Skewed county sizes: Zipf over a seeded shuffle of the list. (Only
        // IEEE-exact arithmetic in weights, no `powf`: the same bytes on every
        // platform.)
        let n = layout.county.counties.len();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, dice.index(i + 1));
        }
        let mut weights = vec![0.0; n];
        for (rank, &c) in order.iter().enumerate() {
            weights[c] = 1.0 / (rank as f64 + 1.5);
        }
        let county_table = Table::new(&weights);

        // Ages 18..=100: flat to 70, fewer young adults, tapering after 70.
        let ages: Vec<f64> = (18..=100)
            .map(|a: i32| match a {
                18..=24 => 0.85,
                25..=69 => 1.0,
                _ => (1.0 - f64::from(a - 69) * 0.032).max(0.01),
            })
            .collect();
        let ages = Table::new(&ages);

        let birth = layout
            .birth_year
            .as_ref()
            .map(|d| DateCol::new(d, layout.min_birth_year));
        let reg = layout
            .registration_date
            .as_ref()
            .map(|d| DateCol::new(d, layout.first_registration_year));

        // Names that a county, code or label contains are not identifiers.
        let mut public: Vec<String> = Vec::new();
        for c in &layout.county.counties {
            public.push(c.name.to_ascii_uppercase());
            public.push(c.code.to_ascii_uppercase());
        }
        for c in &layout.coded {
            for code in &c.codes {
                public.push(code.code.to_ascii_uppercase());
                public.push(code.label.to_ascii_uppercase());
            }
        }
        public.push(layout.description.to_ascii_uppercase());
        // Short names make poor probes: only names of five letters or more.
        let safe = |name: &str| {
            name.len() >= 5 && !public.iter().any(|p| p.contains(name) || name.contains(p))
        };
        let safe_last = LAST.iter().map(|n| safe(n)).collect();
        let safe_first = FIRST.iter().map(|n| safe(n)).collect();

        let nested_cands = nested_candidates(layout, &sources, &dim_source, &dim_codes);
        let has_numeric = layout.coded.iter().any(|c| c.numeric) || layout.county.numeric;
        let crlf_all = opts.quirks && dice.below(2) == 0;
        let unknown = layout
            .coded
            .iter()
            .enumerate()
            .map(|(d, _)| vec![0; sources[dim_source[d]].values.len()])
            .collect();
        let mut g = Gen {
            layout,
            opts,
            dice,
            delim,
            quoted,
            sanitize,
            can_pad,
            roles,
            header,
            id_prefix,
            missing_ids,
            sources,
            dim_source,
            dim_codes,
            nested_cands,
            county_table,
            county_text,
            agree_text,
            bad_county,
            ages,
            birth,
            reg,
            safe_last,
            safe_first,
            state,
            has_numeric,
            forced: Vec::new(),
            crlf_all,
            counts: Counts::default(),
            unknown,
            identifiers: Vec::new(),
            stats: Stats::default(),
            hist,
        };
        if opts.quirks {
            g.forced = g.forced_plans();
        }
        Ok(g)
    }

    fn run<W: Write, H: Write>(
        &mut self,
        out: &mut W,
        hout: &mut H,
    ) -> Result<GroundTruth, SynthError> {
        if let Some(header) = self.hist.as_mut().and_then(|h| {
            let header = h.file_header()?;
            h.file.as_mut().expect("a header is a file's").line_no = 1;
            Some(header)
        }) {
            hout.write_all(&header)?;
        }
        let mut line: Vec<u8> = Vec::with_capacity(2048);
        let mut line_no = 0u64;
        if self.layout.format.header {
            for (i, name) in self.header.iter().enumerate() {
                if i > 0 {
                    line.push(self.delim);
                }
                if self.quoted {
                    line.push(b'"');
                }
                push_escaped(&mut line, name.as_bytes(), self.quoted);
                if self.quoted {
                    line.push(b'"');
                }
            }
            line.extend_from_slice(if self.crlf_all { b"\r\n" } else { b"\n" });
            out.write_all(&line)?;
            line_no = 1;
            if self.roles.iter().any(|r| matches!(r, Role::Extra(_))) {
                self.stats.add(Q::ExtraColumns);
            }
        }

        let rows = self.opts.rows;
        let stride = (rows / 40).max(1);
        let mut rejected_lines = Vec::new();
        let mut missing_id_lines = Vec::new();
        let mut duplicates_dropped = 0u64;
        // Kept voters a duplicate can repeat (a reservoir), and the last one
        // booked or replaced.
        let mut recent: Vec<Voter> = Vec::with_capacity(4096);
        let mut last: Option<usize> = None;
        let mut next_id = 0u64;
        let mut cover = 0usize;
        let cover_n = self
            .sources
            .iter()
            .map(|s| s.usual.len())
            .chain(std::iter::once(self.county_text.len()))
            .max()
            .unwrap_or(0);
        let ncols = self.roles.len();

        for row in 0..rows {
            line_no += 1;
            line.clear();
            let mut plan = if self.opts.quirks {
                self.plan(row)
            } else {
                Plan::VOTER
            };
            let sample = row % stride == 0 && self.identifiers.len() < 200;
            if matches!(plan.kind, Kind::Dup(..) | Kind::BadCounty(true)) && recent.is_empty() {
                plan.kind = Kind::Voter;
            }
            if matches!(plan.kind, Kind::Truncated | Kind::Empty) && ncols < 2 {
                plan.kind = Kind::Voter;
            }
            match plan.kind {
                Kind::Voter => {
                    next_id += 1;
                    let mut v = self.voter(next_id);
                    if row % COVER_EVERY == COVER_EVERY - 1 && cover < cover_n {
                        self.cover(&mut v, cover);
                        cover += 1;
                    }
                    self.apply(&mut v, plan.tweak);
                    self.plan_history(&mut v, HMode::Accepted);
                    self.render(&v, plan.flags, sample, &mut line);
                    self.book(&v, true);
                    // A voter whose registration year is out of range is never
                    // duplicated: how it ranks is not a documented rule.
                    if !matches!(v.reg, DateVal::OutOfRange(_)) {
                        let at = if recent.len() < recent.capacity() {
                            recent.push(v);
                            recent.len() - 1
                        } else {
                            let at = self.dice.index(recent.len());
                            recent[at] = v;
                            at
                        };
                        last = Some(at);
                    }
                }
                Kind::Dup(mode, of_last) => {
                    let at = match last {
                        Some(at) if of_last => at,
                        _ => self.dice.index(recent.len()),
                    };
                    let old = recent[at];
                    let mut v = self.voter(old.id);
                    v.reg = self.dup_reg(old.reg, mode);
                    // The same person: the same history lines (or cells).
                    v.hist = old.hist;
                    self.render(&v, plan.flags, sample, &mut line);
                    let (old_rank, rank) = (self.rank(old.reg), self.rank(v.reg));
                    self.stats.add(match rank.cmp(&old_rank) {
                        std::cmp::Ordering::Less => Q::DupOlder,
                        std::cmp::Ordering::Greater => Q::DupNewer,
                        _ if rank == i32::MIN => Q::DupNullTie,
                        _ => Q::DupTie,
                    });
                    duplicates_dropped += 1;
                    if rank >= old_rank {
                        // Ties go to the later row: the new one replaces the old.
                        self.book(&old, false);
                        self.book(&v, true);
                        recent[at] = v;
                        last = Some(at);
                    } else {
                        self.count_dropped_cells(&v);
                    }
                }
                Kind::BadCounty(true) => {
                    // A kept voter's id, a newer date, a county not on the list:
                    // rejected, so the kept row stays.
                    let old = recent[self.dice.index(recent.len())];
                    let mut v = self.voter(old.id);
                    v.reg = self.dup_reg(old.reg, DupMode::Newer);
                    v.hist = old.hist;
                    self.render_bad_county(&v, plan.flags, sample, &mut line);
                    self.stats.add(Q::RejectedReusesId);
                    rejected_lines.push(line_no);
                }
                Kind::MissingId(k) => {
                    next_id += 1;
                    let mut v = self.voter(next_id);
                    self.plan_history(&mut v, HMode::NoId);
                    self.render_with(&v, plan.flags, sample, Spoil::Id(k), &mut line);
                    self.stats.add(self.missing_id_quirk(k));
                    missing_id_lines.push(line_no);
                    match self.layout.missing_voter_id {
                        MissingVoterId::Reject => rejected_lines.push(line_no),
                        // Its own voter: never in `recent`, so never duplicated.
                        MissingVoterId::Keep => self.book(&v, true),
                    }
                }
                Kind::BadCounty(false)
                | Kind::CountyMismatch
                | Kind::Truncated
                | Kind::Empty
                | Kind::BrokenQuote => {
                    next_id += 1;
                    let mut v = self.voter(next_id);
                    self.plan_history(&mut v, HMode::Rejected);
                    // Part of the line goes: sample no identifiers from it.
                    let whole = matches!(plan.kind, Kind::BadCounty(false) | Kind::CountyMismatch);
                    let sample = sample && whole;
                    match plan.kind {
                        Kind::BadCounty(false) => {
                            self.render_bad_county(&v, plan.flags, sample, &mut line)
                        }
                        Kind::CountyMismatch => {
                            self.render_with(
                                &v,
                                plan.flags,
                                sample,
                                Spoil::CountyMismatch,
                                &mut line,
                            );
                            self.stats.add(Q::CountyMismatch);
                        }
                        _ => self.render(&v, plan.flags, sample, &mut line),
                    }
                    match plan.kind {
                        Kind::Truncated => {
                            // Cut before the last delimiter: a field (at least)
                            // is missing, or a quote is left open.
                            let last_delim = line
                                .iter()
                                .rposition(|&b| b == self.delim)
                                .expect("two or more columns");
                            let cut = 1 + self.dice.index(last_delim.max(1));
                            line.truncate(cut.min(last_delim));
                            self.stats.add(Q::Truncated);
                        }
                        Kind::Empty => {
                            line.clear();
                            self.stats.add(Q::Empty);
                        }
                        Kind::BrokenQuote => {
                            // The last field loses its closing quote.
                            debug_assert_eq!(line.last(), Some(&b'"'));
                            line.pop();
                            self.stats.add(Q::BrokenQuote);
                        }
                        _ => {}
                    }
                    rejected_lines.push(line_no);
                }
            }
            if self.crlf_all || plan.flags & F_CRLF != 0 {
                line.extend_from_slice(b"\r\n");
                self.stats.add(Q::Crlf);
            } else {
                line.push(b'\n');
            }
            out.write_all(&line)?;
            if let Some(f) = self.hist.as_mut().and_then(|h| h.file.as_mut())
                && !f.buf.is_empty()
            {
                hout.write_all(&f.buf)?;
                f.buf.clear();
            }
        }
        Ok(self.truth(rejected_lines, missing_id_lines, duplicates_dropped))
    }
}

#[cfg(test)]
mod tests;
