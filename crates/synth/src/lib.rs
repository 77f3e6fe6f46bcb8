//! Synthetic voter files in any layout's exact format, with ground truth.
//!
//! [`generate`] writes a file the way the state would: every column of the
//! layout in order (fake names, addresses, phone numbers, ids), skewed county
//! sizes, a realistic age and party mix, codes from the layout's tables. With
//! `quirks` it adds what real files contain: duplicate registrations, truncated
//! lines, broken quotes, unknown counties, padded and unknown codes, Latin-1
//! bytes in names, CRLF, blank, masked, sentinel and implausible dates, and
//! (for files with a header) three extra columns, one named `ssn`.
//!
//! It returns the [`GroundTruth`]: what a correct ingest must produce from the
//! file, computed from what the generator chose, not by parsing its output.
//! Only the layout's public description is shared with ingestion.
//!
//! The same seed gives the same bytes. `rand` is used here for fake data and
//! nowhere near differential-privacy noise.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use layout::{CountyMatch, Layout, Quoting};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Data lines to write (header excluded): voters, duplicates and quirk lines.
    pub rows: u64,
    /// Random seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Add the quirks of real files.
    pub quirks: bool,
    /// The year ingestion will treat as current (plausible-year rules).
    pub current_year: i16,
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroundTruth {
    /// Layout name.
    pub layout: String,
    /// Data lines written (header excluded).
    pub rows_read: u64,
    /// Lines an ingest must reject.
    pub rows_rejected: u64,
    /// Physical line numbers of those lines (header = line 1).
    pub rejected_lines: Vec<u64>,
    /// Duplicate registrations an ingest must drop.
    pub duplicates_dropped: u64,
    /// Rows an ingest must write.
    pub rows_written: u64,
    /// Unknown codes over written rows: canonical column → trimmed value → count.
    pub unknown_codes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every distinct output row with its count, sorted.
    pub rows: Vec<TruthRow>,
    /// A sample of identifier values written to the file (names, voter ids,
    /// full birth dates, `ssn` values) that must never appear in the output.
    pub identifiers: Vec<String>,
}

/// One distinct output row and how many times it occurs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TruthRow {
    /// County name from the reference list.
    pub county: String,
    /// Birth year, if known.
    pub birth_year: Option<i16>,
    /// Gender code (None if the layout has none).
    pub gender: Option<String>,
    /// Race code.
    pub race: Option<String>,
    /// Ethnicity code.
    pub ethnicity: Option<String>,
    /// Party code.
    pub party: Option<String>,
    /// Status code.
    pub status: Option<String>,
    /// Registration year, if known.
    pub registration_year: Option<i16>,
    /// Congressional district code.
    pub congressional_district: Option<String>,
    /// Number of rows.
    pub count: u64,
}

/// Values that are never a voter's: a county missing from every list.
const BAD_COUNTIES: [&str; 2] = ["ATLANTIS", "999"];
const UNKNOWN_CODES: [&str; 3] = ["XYZ", "Q", "8"];
const FIRST: [&str; 24] = [
    "JAMES",
    "MARY",
    "JOHN",
    "PATRICIA",
    "ROBERT",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "WILLIAM",
    "ELIZABETH",
    "DAVID",
    "BARBARA",
    "JOSE",
    "MARIA",
    "WEI",
    "FATIMA",
    "DESHAWN",
    "AALIYAH",
    "CONNOR",
    "EMMA",
    "LUIS",
    "SOFIA",
    "NGUYEN",
    "OLIVIA",
];
const LAST: [&str; 24] = [
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
];
/// Last names with a Latin-1 byte (0xD1 = Ñ, 0xC9 = É), as real files have.
const LATIN1_LAST: [&[u8]; 3] = [b"MU\xD1OZ", b"PE\xD1A", b"ANDR\xC9"];
const STREETS: [&str; 12] = [
    "MAIN ST",
    "OAK AVE",
    "ELM ST",
    "PARK RD",
    "CEDAR LN",
    "MAPLE DR",
    "PINE ST",
    "LAKE RD",
    "HILL ST",
    "RIVER RD",
    "CHURCH ST",
    "MILL RD",
];
const CITIES: [&str; 10] = [
    "RALEIGH",
    "DURHAM",
    "COLUMBUS",
    "DAYTON",
    "TAMPA",
    "ORLANDO",
    "GREENVILLE",
    "SPRINGFIELD",
    "FRANKLIN",
    "CLINTON",
];
/// Columns a 2026 NC file adds; inserted by `quirks` into any file with a header.
const EXTRA_COLUMNS: [&str; 3] = ["hava_id_req", "ssn", "no_dl_ssn_chkbx"];

/// What fills a source column.
#[derive(Clone, Copy)]
enum Role {
    VoterId,
    County,
    Birth,
    Registration,
    /// Index into `Gen::coded_cols`.
    Coded(usize),
    Extra(usize),
    Filler(Filler),
}

#[derive(Clone, Copy)]
enum Filler {
    LastName,
    FirstName,
    OtherName,
    Street,
    City,
    State,
    Zip,
    Phone,
    Email,
    Date,
    District,
    Flag,
    Code,
}

fn filler_for(name: &str) -> Filler {
    let n = name.to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    if has("last") && has("name") {
        Filler::LastName
    } else if has("first") && has("name") {
        Filler::FirstName
    } else if has("name") || has("suffix") {
        Filler::OtherName
    } else if has("email") {
        Filler::Email
    } else if has("phone") || has("area code") || has("extension") {
        Filler::Phone
    } else if has("zip") || has("postal") {
        Filler::Zip
    } else if has("city") {
        Filler::City
    } else if has("state") || has("country") {
        Filler::State
    } else if has("addr") || has("street") {
        Filler::Street
    } else if has("date") || has("_dt") || n.contains('/') {
        Filler::Date
    } else if has("dist") || has("precinct") || has("ward") || has("vtd") {
        Filler::District
    } else if has("ind") || has("lic") || has("exemption") {
        Filler::Flag
    } else {
        Filler::Code
    }
}

/// One source column that feeds one or more coded dimensions.
struct CodedCol {
    /// Candidate raw values.
    values: Vec<String>,
    /// Cumulative weights for a normal draw.
    cumulative: Vec<f64>,
    /// For each candidate, each fed dim: (code index, unknown?).
    resolved: Vec<Vec<(u8, bool)>>,
    /// Numeric column (districts): allow `07` / `7.0` spellings.
    numeric: bool,
    /// Candidate indices of unknown values (for quirks).
    unknown: Vec<usize>,
}

/// A voter as chosen (before rendering).
#[derive(Clone)]
struct Voter {
    id: u64,
    county: usize,
    county_quirk: bool,
    birth: DateVal,
    reg: DateVal,
    coded: [usize; 6],
    padded: [bool; 6],
}

#[derive(Clone, Copy, PartialEq)]
enum DateVal {
    Date(i16, u8, u8),
    Blank,
    /// Index into the layout's sentinels then masks.
    Null(usize),
    /// A date-shaped value that does not parse (month 13).
    Garbage,
    /// A year outside the plausible range (kept as a date).
    OutOfRange(i16),
}

/// A written voter as booked: the voter, its truth key, its registration
/// rank, and its unknown codes (dimension, value).
type Booked = (Voter, Key, i32, Vec<(usize, String)>);

/// Compact truth key: county, birth, registration, code indices.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    county: u16,
    birth: i16,
    reg: i16,
    codes: [u8; 6],
}

const NULL: i16 = i16::MIN;

struct Gen<'a> {
    layout: &'a Layout,
    opts: &'a SynthOptions,
    rng: ChaCha8Rng,
    roles: Vec<Role>,
    header: Vec<String>,
    coded_cols: Vec<CodedCol>,
    /// For each `layout.coded` index: (coded col, position within its dims).
    dim_source: Vec<(usize, usize)>,
    county_cumulative: Vec<f64>,
    nulls: [Vec<String>; 2],
    line: Vec<u8>,
    field: Vec<u8>,
    counts: HashMap<Key, u64>,
    unknown: HashMap<(usize, String), i64>,
    identifiers: Vec<String>,
}

/// Writes a synthetic file in `layout`'s format to `out`; returns the truth.
pub fn generate<W: Write>(
    layout: &Layout,
    opts: &SynthOptions,
    out: &mut W,
) -> Result<GroundTruth, SynthError> {
    let mut g = Gen::new(layout, opts)?;
    g.run(out)
}

fn cumulative(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn pick(rng: &mut ChaCha8Rng, cumulative: &[f64]) -> usize {
    let total = *cumulative.last().expect("non-empty");
    let x = rng.random::<f64>() * total;
    cumulative
        .partition_point(|c| *c <= x)
        .min(cumulative.len() - 1)
}

/// A plausible share for the `i`-th code of a table (tables list the common
/// codes first).
fn code_weight(dim: layout::CodedDim, i: usize, code: &str, fallback: bool) -> f64 {
    use layout::CodedDim::*;
    if fallback && i > 0 {
        return 0.3;
    }
    match dim {
        CongressionalDistrict => 1.0,
        Party => match i {
            0..=2 => 30.0,
            _ => 1.5,
        },
        Status => {
            if i == 0 {
                80.0
            } else {
                6.0 / i as f64
            }
        }
        Gender => match code {
            "F" => 52.0,
            "M" => 46.0,
            _ => 2.0,
        },
        _ => 1.0 / (i as f64 + 1.0).powf(1.1),
    }
}

impl<'a> Gen<'a> {
    fn new(layout: &'a Layout, opts: &'a SynthOptions) -> Result<Gen<'a>, SynthError> {
        let err = |message: String| SynthError::Layout {
            layout: layout.name.clone(),
            message,
        };
        if layout.format.columns.is_empty() {
            return Err(err(
                "format.columns must list the file's columns to synthesize it".into(),
            ));
        }
        let find = |name: &str| {
            layout
                .format
                .columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
        };
        let mut roles: Vec<Role> = layout
            .format
            .columns
            .iter()
            .map(|c| Role::Filler(filler_for(c)))
            .collect();
        let mut set = |name: &str, role: Role| -> Result<(), SynthError> {
            let i = find(name)
                .ok_or_else(|| err(format!("column `{name}` is not in format.columns")))?;
            roles[i] = role;
            Ok(())
        };
        set(&layout.voter_id, Role::VoterId)?;
        set(&layout.county.column, Role::County)?;
        if let Some(b) = &layout.birth_year {
            set(&b.column, Role::Birth)?;
        }
        if let Some(r) = &layout.registration_date {
            set(&r.column, Role::Registration)?;
        }

        // Group coded dimensions by source column (FL's Race feeds two).
        let mut coded_cols: Vec<CodedCol> = Vec::new();
        let mut dim_source = vec![(0, 0); layout.coded.len()];
        let mut by_column: Vec<(String, Vec<usize>)> = Vec::new();
        for (d, c) in layout.coded.iter().enumerate() {
            match by_column
                .iter_mut()
                .find(|(col, _)| col.eq_ignore_ascii_case(&c.column))
            {
                Some((_, dims)) => dims.push(d),
                None => by_column.push((c.column.clone(), vec![d])),
            }
        }
        for (column, dims) in by_column {
            let first = &layout.coded[dims[0]];
            // Candidates: the first dim's codes (the blank code of a numeric
            // column is written as an empty field), every map key, a blank,
            // and unknown values.
            let mut values: Vec<String> = Vec::new();
            let mut weights: Vec<f64> = Vec::new();
            for (i, code) in first.codes.iter().enumerate() {
                let is_blank_code = first.blank == Some(i);
                if first.numeric && is_blank_code {
                    continue;
                }
                values.push(code.code.clone());
                weights.push(code_weight(first.dim, i, &code.code, i == first.fallback));
            }
            for &d in &dims {
                let mut keys: Vec<&String> = layout.coded[d].map.keys().collect();
                keys.sort();
                for k in keys {
                    if !values.contains(k) {
                        values.push(k.clone());
                        weights.push(1.0);
                    }
                }
            }
            if first.blank.is_some() {
                values.push(String::new());
                weights.push(if first.numeric { 0.5 } else { 0.0 });
            }
            let mut unknown = Vec::new();
            for u in UNKNOWN_CODES {
                if !values.iter().any(|v| v == u) {
                    unknown.push(values.len());
                    values.push(u.to_owned());
                    weights.push(0.0);
                }
            }
            let resolved = values
                .iter()
                .map(|v| dims.iter().map(|&d| resolve(&layout.coded[d], v)).collect())
                .collect();
            let index = coded_cols.len();
            for (pos, &d) in dims.iter().enumerate() {
                dim_source[d] = (index, pos);
            }
            set(&column, Role::Coded(index))?;
            coded_cols.push(CodedCol {
                numeric: first.numeric,
                cumulative: cumulative(&weights),
                resolved,
                values,
                unknown,
            });
        }

        let mut header = layout.format.columns.clone();
        if opts.quirks && layout.format.header {
            // Insert the 2026 columns before the registration date (or mid-file).
            let at = layout
                .registration_date
                .as_ref()
                .and_then(|r| find(&r.column))
                .unwrap_or(header.len() / 2);
            for (k, name) in EXTRA_COLUMNS.iter().enumerate() {
                header.insert(at + k, (*name).to_owned());
                roles.insert(at + k, Role::Extra(k));
            }
        }

        // Skewed county sizes: Zipf over a seeded shuffle of the list.
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let n = layout.county.counties.len();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let mut weights = vec![0.0; n];
        for (rank, &c) in order.iter().enumerate() {
            weights[c] = 1.0 / (rank as f64 + 1.5).powf(0.9);
        }
        let nulls = [
            layout
                .birth_year
                .as_ref()
                .map(|b| b.sentinels.iter().chain(&b.masks).cloned().collect())
                .unwrap_or_default(),
            layout
                .registration_date
                .as_ref()
                .map(|b| b.sentinels.iter().chain(&b.masks).cloned().collect())
                .unwrap_or_default(),
        ];
        Ok(Gen {
            layout,
            opts,
            rng,
            roles,
            header,
            coded_cols,
            dim_source,
            county_cumulative: cumulative(&weights),
            nulls,
            line: Vec::with_capacity(1024),
            field: Vec::with_capacity(64),
            counts: HashMap::new(),
            unknown: HashMap::new(),
            identifiers: Vec::new(),
        })
    }

    fn run<W: Write>(&mut self, out: &mut W) -> Result<GroundTruth, SynthError> {
        let (delim, quoting) = (self.layout.format.delimiter, self.layout.format.quoting);
        let crlf_all = self.opts.quirks && self.rng.random_bool(0.5);
        let mut line_no = 0u64;
        if self.layout.format.header {
            self.line.clear();
            for (i, name) in self.header.clone().iter().enumerate() {
                if i > 0 {
                    self.line.push(delim);
                }
                push_field(&mut self.line, name.as_bytes(), quoting, delim);
            }
            self.line
                .extend_from_slice(if crlf_all { b"\r\n" } else { b"\n" });
            out.write_all(&self.line)?;
            line_no = 1;
        }

        let mut rejected_lines = Vec::new();
        let mut duplicates_dropped = 0u64;
        // Recent voters a duplicate can repeat: (voter, its key, rank, unknowns).
        let mut recent: Vec<Booked> = Vec::new();
        let mut next_id = 0u64;
        for row in 0..self.opts.rows {
            line_no += 1;
            let kind = if self.opts.quirks {
                self.line_kind(row)
            } else {
                LineKind::Voter
            };
            self.line.clear();
            // A duplicate needs an earlier voter to repeat.
            let kind = if kind == LineKind::Duplicate && recent.is_empty() {
                LineKind::Voter
            } else {
                kind
            };
            match kind {
                LineKind::Voter => {
                    next_id += 1;
                    let v = self.voter(next_id);
                    self.render(&v);
                    let (key, rank, unknowns) = self.book(&v, 1);
                    if recent.len() < 4096 {
                        recent.push((v, key, rank, unknowns));
                    } else {
                        let at = self.rng.random_range(0..recent.len());
                        recent[at] = (v, key, rank, unknowns);
                    }
                }
                LineKind::Duplicate => {
                    let at = self.rng.random_range(0..recent.len());
                    let (old, old_key, old_rank, old_unknowns) = recent[at].clone();
                    let mut v = self.voter(old.id);
                    v.reg = match self.rng.random_range(0..3) {
                        0 => old.reg, // a tie: the later row wins
                        1 => match old.reg {
                            DateVal::Date(y, m, d) if y > 1935 => DateVal::Date(y - 1, m, d),
                            other => other,
                        },
                        _ => match old.reg {
                            DateVal::Date(y, m, d) if y < self.opts.current_year => {
                                DateVal::Date(y + 1, m, d)
                            }
                            DateVal::Date(..) => old.reg,
                            _ => DateVal::Date(self.opts.current_year - 1, 6, 15),
                        },
                    };
                    self.render(&v);
                    let rank = self.rank(&v.reg);
                    duplicates_dropped += 1;
                    if rank >= old_rank {
                        // The new row wins: undo the old one's booking.
                        *self.counts.get_mut(&old_key).expect("booked") -= 1;
                        for u in old_unknowns {
                            *self.unknown.get_mut(&u).expect("booked") -= 1;
                        }
                        let (key, rank, unknowns) = self.book(&v, 1);
                        recent[at] = (v, key, rank, unknowns);
                    }
                }
                LineKind::Truncated
                | LineKind::BadCounty
                | LineKind::BrokenQuote
                | LineKind::Blank => {
                    next_id += 1;
                    let mut v = self.voter(next_id);
                    if kind == LineKind::BadCounty {
                        v.county_quirk = true;
                    }
                    self.render(&v);
                    match kind {
                        LineKind::Truncated => {
                            // Cut before the last delimiter: fewer fields.
                            let last = self.line.iter().rposition(|&b| b == delim).unwrap_or(0);
                            let cut = self.rng.random_range(0..last.max(1));
                            self.line.truncate(cut);
                        }
                        // Drop the closing quote of the last field.
                        LineKind::BrokenQuote if self.line.last() == Some(&b'"') => {
                            self.line.pop();
                        }
                        LineKind::Blank => self.line.clear(),
                        _ => {}
                    }
                    rejected_lines.push(line_no);
                }
            }
            let crlf = crlf_all || (self.opts.quirks && self.rng.random_bool(0.05));
            self.line
                .extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            out.write_all(&self.line)?;
        }
        Ok(self.truth(rejected_lines, duplicates_dropped))
    }

    /// The kind of line `row` is, when quirks are on. The first rows hold one
    /// of each kind so every quirk appears in any file of a few hundred rows.
    fn line_kind(&mut self, row: u64) -> LineKind {
        let quoted = self.layout.format.quoting == Quoting::Double;
        match row {
            20..=22 => return LineKind::Duplicate,
            30 => return LineKind::Truncated,
            40 => return LineKind::BadCounty,
            50 if quoted => return LineKind::BrokenQuote,
            60 => return LineKind::Blank,
            _ => {}
        }
        let x = self.rng.random::<f64>();
        if x < 0.012 {
            LineKind::Duplicate
        } else if x < 0.014 {
            LineKind::Truncated
        } else if x < 0.015 {
            LineKind::BadCounty
        } else if x < 0.0155 && quoted {
            LineKind::BrokenQuote
        } else if x < 0.0157 {
            LineKind::Blank
        } else {
            LineKind::Voter
        }
    }

    fn voter(&mut self, id: u64) -> Voter {
        let q = self.opts.quirks;
        let cy = self.opts.current_year;
        let county = pick(&mut self.rng, &self.county_cumulative);
        // Age 18..100, most between 25 and 75.
        let age =
            18 + (self.rng.random::<f64>().powf(1.15) * 70.0) as i16 + self.rng.random_range(0..12);
        let year = cy - age.min(100);
        let (m, d) = (
            self.rng.random_range(1..=12u8),
            self.rng.random_range(1..=28u8),
        );
        let birth = if q && self.rng.random_bool(0.03) {
            match self.rng.random_range(0..4) {
                0 => DateVal::Blank,
                1 if !self.nulls[0].is_empty() => {
                    DateVal::Null(self.rng.random_range(0..self.nulls[0].len()))
                }
                2 => DateVal::OutOfRange(if self.rng.random_bool(0.5) {
                    1850
                } else {
                    cy + 5
                }),
                _ => DateVal::Garbage,
            }
        } else {
            DateVal::Date(year, m, d)
        };
        let first_reg = (year + 18)
            .max(self.layout.first_registration_year.max(1935))
            .min(cy);
        let reg_year = self.rng.random_range(first_reg..=cy);
        let reg = if q && self.rng.random_bool(0.03) {
            match self.rng.random_range(0..3) {
                0 => DateVal::Blank,
                1 if !self.nulls[1].is_empty() => {
                    DateVal::Null(self.rng.random_range(0..self.nulls[1].len()))
                }
                _ => DateVal::Garbage,
            }
        } else {
            DateVal::Date(
                reg_year,
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28),
            )
        };
        let mut coded = [0usize; 6];
        let mut padded = [false; 6];
        for (i, col) in self.coded_cols.iter().enumerate() {
            coded[i] = if q && self.rng.random_bool(0.004) {
                col.unknown[self.rng.random_range(0..col.unknown.len())]
            } else if q && self.rng.random_bool(0.005) {
                // A blank, where the table maps blanks.
                col.values
                    .iter()
                    .position(|v| v.is_empty())
                    .unwrap_or_else(|| pick(&mut self.rng, &col.cumulative))
            } else {
                pick(&mut self.rng, &col.cumulative)
            };
            padded[i] = q && self.rng.random_bool(0.02);
        }
        Voter {
            id,
            county,
            county_quirk: false,
            birth,
            reg,
            coded,
            padded,
        }
    }

    /// Registration-date rank as ingestion orders duplicates: the date, or
    /// oldest when the year is unknown.
    fn rank(&self, reg: &DateVal) -> i32 {
        match *reg {
            DateVal::Date(y, m, d)
                if y >= self.layout.first_registration_year && y <= self.opts.current_year =>
            {
                y as i32 * 10_000 + m as i32 * 100 + d as i32
            }
            _ => i32::MIN,
        }
    }

    fn year_of(&self, v: &DateVal, min: i16) -> i16 {
        match *v {
            DateVal::Date(y, ..) if y >= min && y <= self.opts.current_year => y,
            _ => NULL,
        }
    }

    /// Books a written voter into the truth; returns its key, rank, unknowns.
    fn book(&mut self, v: &Voter, n: i64) -> (Key, i32, Vec<(usize, String)>) {
        let mut codes = [0u8; 6];
        let mut unknowns = Vec::new();
        for (d, code_slot) in codes.iter_mut().enumerate().take(self.layout.coded.len()) {
            let (col, pos) = self.dim_source[d];
            let candidate = v.coded[col];
            let (code, unknown) = self.coded_cols[col].resolved[candidate][pos];
            *code_slot = code;
            if unknown {
                unknowns.push((d, self.coded_cols[col].values[candidate].clone()));
            }
        }
        let key = Key {
            county: v.county as u16,
            birth: self
                .layout
                .birth_year
                .as_ref()
                .map_or(NULL, |_| self.year_of(&v.birth, self.layout.min_birth_year)),
            reg: self.layout.registration_date.as_ref().map_or(NULL, |_| {
                self.year_of(&v.reg, self.layout.first_registration_year)
            }),
            codes,
        };
        *self.counts.entry(key).or_default() += n as u64;
        for u in &unknowns {
            *self.unknown.entry(u.clone()).or_default() += n;
        }
        (key, self.rank(&v.reg), unknowns)
    }

    fn render(&mut self, v: &Voter) {
        let (delim, quoting) = (self.layout.format.delimiter, self.layout.format.quoting);
        let sample = self.identifiers.len() < 200 && self.rng.random_bool(0.05);
        for i in 0..self.roles.len() {
            if i > 0 {
                self.line.push(delim);
            }
            self.field.clear();
            let role = self.roles[i];
            let mut identifier = false;
            match role {
                Role::VoterId => {
                    let prefix = self.layout.name.to_ascii_uppercase();
                    let _ = write!(self.field, "{}{:010}", &prefix[..prefix.len().min(2)], v.id);
                    identifier = true;
                }
                Role::County => {
                    let c = &self.layout.county.counties[v.county];
                    if v.county_quirk {
                        let bad = match self.layout.county.matched_by {
                            CountyMatch::Name => BAD_COUNTIES[0],
                            CountyMatch::Code => BAD_COUNTIES[1],
                        };
                        self.field.extend_from_slice(bad.as_bytes());
                    } else {
                        let text = match self.layout.county.matched_by {
                            CountyMatch::Name => &c.name,
                            CountyMatch::Code => &c.code,
                        };
                        if self.opts.quirks
                            && self.layout.county.numeric
                            && text.len() == 1
                            && self.rng.random_bool(0.5)
                        {
                            self.field.push(b'0');
                        }
                        self.field.extend_from_slice(text.as_bytes());
                    }
                }
                Role::Birth => {
                    let fmt = self
                        .layout
                        .birth_year
                        .as_ref()
                        .expect("role")
                        .format
                        .as_str()
                        .to_owned();
                    identifier = fmt.contains("DD");
                    self.date_field(&fmt, v.birth, 0);
                }
                Role::Registration => {
                    let fmt = self
                        .layout
                        .registration_date
                        .as_ref()
                        .expect("role")
                        .format
                        .as_str()
                        .to_owned();
                    self.date_field(&fmt, v.reg, 1);
                }
                Role::Coded(c) => {
                    let col = &self.coded_cols[c];
                    let value = &col.values[v.coded[c]];
                    if v.padded[c] && !value.is_empty() {
                        self.field.push(b' ');
                    }
                    if col.numeric
                        && value.len() == 1
                        && value.as_bytes()[0].is_ascii_digit()
                        && self.opts.quirks
                        && self.rng.random_bool(0.1)
                    {
                        // Vintage spellings of the same district: `07`, `7.0`.
                        if self.rng.random_bool(0.5) {
                            self.field.push(b'0');
                            self.field.extend_from_slice(value.as_bytes());
                        } else {
                            self.field.extend_from_slice(value.as_bytes());
                            self.field.extend_from_slice(b".0");
                        }
                    } else {
                        self.field.extend_from_slice(value.as_bytes());
                    }
                    if v.padded[c] && !value.is_empty() {
                        self.field.push(b' ');
                    }
                }
                Role::Extra(k) => {
                    if k == 1 {
                        let _ = write!(
                            self.field,
                            "{:09}",
                            self.rng.random_range(100_000_000..999_999_999u32)
                        );
                        identifier = true;
                    } else {
                        self.field.push(if self.rng.random_bool(0.5) {
                            b'Y'
                        } else {
                            b'N'
                        });
                    }
                }
                Role::Filler(f) => {
                    identifier = matches!(
                        f,
                        Filler::LastName
                            | Filler::FirstName
                            | Filler::Street
                            | Filler::Phone
                            | Filler::Email
                    );
                    self.filler(f, delim, quoting);
                }
            }
            // Only values with a digit: a name such as JACKSON is also a county.
            if sample
                && identifier
                && self.field.len() >= 6
                && self.field.is_ascii()
                && self.field.iter().any(u8::is_ascii_digit)
            {
                self.identifiers
                    .push(String::from_utf8_lossy(&self.field).into_owned());
            }
            push_field(&mut self.line, &self.field, quoting, delim);
        }
    }

    fn date_field(&mut self, format: &str, v: DateVal, which: usize) {
        let (y, m, d) = match v {
            DateVal::Date(y, m, d) => (y, m, d),
            DateVal::OutOfRange(y) => (y, 6, 15),
            DateVal::Garbage => (1985, 13, 45),
            DateVal::Blank => return,
            DateVal::Null(i) => {
                self.field
                    .extend_from_slice(self.nulls[which][i].as_bytes());
                return;
            }
        };
        let text = format
            .replace("YYYY", &format!("{y:04}"))
            .replace("MM", &format!("{m:02}"))
            .replace("DD", &format!("{d:02}"));
        if matches!(v, DateVal::Garbage) && !format.contains("MM") {
            // A year-only column: an unparseable year.
            self.field.extend_from_slice(b"19X5");
            return;
        }
        self.field.extend_from_slice(text.as_bytes());
    }

    fn filler(&mut self, f: Filler, delim: u8, quoting: Quoting) {
        let r = &mut self.rng;
        let out = &mut self.field;
        match f {
            Filler::LastName => {
                if self.opts.quirks && r.random_bool(0.01) {
                    out.extend_from_slice(LATIN1_LAST[r.random_range(0..LATIN1_LAST.len())]);
                } else {
                    out.extend_from_slice(LAST[r.random_range(0..LAST.len())].as_bytes());
                }
                if self.opts.quirks
                    && delim == b','
                    && quoting == Quoting::Double
                    && r.random_bool(0.01)
                {
                    out.extend_from_slice(b", JR"); // a delimiter inside quotes
                }
            }
            Filler::FirstName => {
                out.extend_from_slice(FIRST[r.random_range(0..FIRST.len())].as_bytes())
            }
            Filler::OtherName => {
                if r.random_bool(0.5) {
                    out.extend_from_slice(FIRST[r.random_range(0..FIRST.len())].as_bytes());
                }
            }
            Filler::Street => {
                let _ = write!(
                    out,
                    "{} {}",
                    r.random_range(1..9999),
                    STREETS[r.random_range(0..STREETS.len())]
                );
            }
            Filler::City => {
                out.extend_from_slice(CITIES[r.random_range(0..CITIES.len())].as_bytes())
            }
            Filler::State => out.extend_from_slice(b"NC"),
            Filler::Zip => {
                let _ = write!(out, "{:05}", r.random_range(10000..99999));
            }
            Filler::Phone => {
                let _ = write!(out, "{}", r.random_range(2_000_000_000u64..9_999_999_999));
            }
            Filler::Email => {
                let _ = write!(out, "voter{}@example.com", r.random_range(0..1_000_000));
            }
            Filler::Date => {
                let _ = write!(
                    out,
                    "{:02}/{:02}/{}",
                    r.random_range(1..=12),
                    r.random_range(1..=28),
                    r.random_range(1990..2025)
                );
            }
            Filler::District => {
                let _ = write!(out, "{}", r.random_range(1..120));
            }
            Filler::Flag => out.push(if r.random_bool(0.9) { b'N' } else { b'Y' }),
            Filler::Code => {
                if r.random_bool(0.7) {
                    let _ = write!(
                        out,
                        "{}{}",
                        (b'A' + r.random_range(0..26u8)) as char,
                        r.random_range(1..100)
                    );
                }
            }
        }
    }

    fn truth(&mut self, rejected_lines: Vec<u64>, duplicates_dropped: u64) -> GroundTruth {
        let layout = self.layout;
        let code = |d: Option<usize>, codes: &[u8; 6]| -> Option<String> {
            d.map(|d| layout.coded[d].codes[codes[d] as usize].code.clone())
        };
        let pos = |dim: layout::CodedDim| layout.coded.iter().position(|c| c.dim == dim);
        let mut rows: Vec<TruthRow> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| TruthRow {
                county: layout.county.counties[k.county as usize].name.clone(),
                birth_year: (k.birth != NULL).then_some(k.birth),
                gender: code(pos(layout::CodedDim::Gender), &k.codes),
                race: code(pos(layout::CodedDim::Race), &k.codes),
                ethnicity: code(pos(layout::CodedDim::Ethnicity), &k.codes),
                party: code(pos(layout::CodedDim::Party), &k.codes),
                status: code(pos(layout::CodedDim::Status), &k.codes),
                registration_year: (k.reg != NULL).then_some(k.reg),
                congressional_district: code(
                    pos(layout::CodedDim::CongressionalDistrict),
                    &k.codes,
                ),
                count: *n,
            })
            .collect();
        rows.sort();
        let mut unknown_codes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((d, value), n) in &self.unknown {
            if *n > 0 {
                unknown_codes
                    .entry(layout.coded[*d].dim.name().to_owned())
                    .or_default()
                    .insert(value.clone(), *n as u64);
            }
        }
        let rows_written = rows.iter().map(|r| r.count).sum();
        GroundTruth {
            layout: layout.name.clone(),
            rows_read: self.opts.rows,
            rows_rejected: rejected_lines.len() as u64,
            rejected_lines,
            duplicates_dropped,
            rows_written,
            unknown_codes,
            rows,
            identifiers: std::mem::take(&mut self.identifiers),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Voter,
    Duplicate,
    Truncated,
    BadCounty,
    BrokenQuote,
    Blank,
}

/// What ingestion makes of a raw (trimmed) value for one coded dimension:
/// (code index, whether it was an unknown code). Written from the layout's
/// documented rules, independently of the ingest crate.
fn resolve(c: &layout::CodedColumn, raw: &str) -> (u8, bool) {
    let raw = raw.trim();
    if let (true, Some(b)) = (raw.is_empty(), c.blank) {
        return (b as u8, false);
    }
    let norm = if c.numeric {
        layout::normalize_numeric(raw).into_owned()
    } else {
        raw.to_owned()
    };
    let mapped = c.map.get(&norm).cloned().unwrap_or(norm);
    match c.codes.iter().position(|code| code.code == mapped) {
        Some(i) => (i as u8, false),
        None => (c.fallback as u8, true),
    }
}

/// Appends one field, quoted when the layout quotes (every field, as NC does).
fn push_field(line: &mut Vec<u8>, value: &[u8], quoting: Quoting, _delim: u8) {
    match quoting {
        Quoting::None => line.extend_from_slice(value),
        Quoting::Double => {
            line.push(b'"');
            for &b in value {
                if b == b'"' {
                    line.push(b'"');
                }
                line.push(b);
            }
            line.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synth_file(name: &str, rows: u64, seed: u64, quirks: bool) -> (Vec<u8>, GroundTruth) {
        let layout = Layout::resolve(name).unwrap();
        let opts = SynthOptions {
            rows,
            seed,
            quirks,
            current_year: 2026,
        };
        let mut out = Vec::new();
        let truth = generate(&layout, &opts, &mut out).unwrap();
        (out, truth)
    }

    #[test]
    fn same_seed_same_bytes() {
        for name in layout::builtin::NAMES {
            assert_eq!(
                synth_file(name, 2000, 7, true).0,
                synth_file(name, 2000, 7, true).0,
                "{name}"
            );
            assert_ne!(
                synth_file(name, 2000, 7, true).0,
                synth_file(name, 2000, 8, true).0,
                "{name}"
            );
        }
    }

    #[test]
    fn truth_totals_add_up() {
        for name in layout::builtin::NAMES {
            for quirks in [false, true] {
                let (bytes, t) = synth_file(name, 20_000, 3, quirks);
                assert_eq!(
                    t.rows_read,
                    t.rows_rejected + t.duplicates_dropped + t.rows_written,
                    "{name}"
                );
                assert_eq!(t.rows.iter().map(|r| r.count).sum::<u64>(), t.rows_written);
                let header = u64::from(Layout::resolve(name).unwrap().format.header);
                let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                assert_eq!(newlines, t.rows_read + header, "{name}: one line per row");
                if !quirks {
                    assert_eq!(
                        t.rows_written, t.rows_read,
                        "{name}: a clean file loses nothing"
                    );
                    assert!(t.unknown_codes.is_empty());
                }
            }
        }
    }

    #[test]
    fn quirks_are_all_present() {
        let (bytes, t) = synth_file("nc", 10_000, 1, true);
        assert!(t.duplicates_dropped >= 3);
        assert!(
            t.rows_rejected >= 4,
            "truncated, bad county, broken quote, blank"
        );
        assert!(bytes.windows(2).any(|w| w == b"\r\n"), "CRLF");
        assert!(
            bytes.iter().any(|&b| b == 0xD1 || b == 0xC9),
            "Latin-1 names"
        );
        assert!(
            bytes
                .windows(5)
                .any(|w| w == b"\" DEM" || w == b"\" REP" || w == b"\" UNA"),
            "padded codes"
        );
        assert!(
            bytes
                .windows(12)
                .any(|w| w == b"\"##/##/####\"" || w == b"\"XX-XX-XXXX\""),
            "masked dates"
        );
        assert!(t.unknown_codes.contains_key("party"), "unknown party codes");
        let header = bytes.split(|&b| b == b'\n').next().unwrap();
        assert!(header.windows(5).any(|w| w == b"\"ssn\""), "2026 columns");
        assert!(t.rows.iter().any(|r| r.birth_year.is_none()));
        assert!(t.rows.iter().any(|r| r.registration_year.is_none()));
    }

    #[test]
    fn florida_ethnicity_follows_race() {
        let (_, t) = synth_file("fl", 20_000, 5, false);
        for r in &t.rows {
            let hispanic = r.race.as_deref() == Some("4");
            assert_eq!(r.ethnicity.as_deref() == Some("HL"), hispanic, "{r:?}");
        }
    }

    #[test]
    fn ohio_has_no_race_and_pads_counties() {
        let (bytes, t) = synth_file("oh", 5_000, 2, true);
        assert!(
            t.rows
                .iter()
                .all(|r| r.race.is_none() && r.gender.is_none())
        );
        assert!(
            bytes
                .windows(5)
                .any(|w| w == b",\"01\"" || w == b",\"02\"" || w == b",\"05\"")
        );
    }

    #[test]
    fn every_county_and_code_appears_in_a_big_file() {
        let layout = Layout::resolve("nc").unwrap();
        let (_, t) = synth_file("nc", 50_000, 9, false);
        let counties: std::collections::HashSet<&str> =
            t.rows.iter().map(|r| r.county.as_str()).collect();
        assert_eq!(counties.len(), layout.county.counties.len());
        let parties: std::collections::HashSet<&str> =
            t.rows.iter().filter_map(|r| r.party.as_deref()).collect();
        assert!(parties.len() >= 8, "{parties:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        /// For any seed and size, the books balance.
        #[test]
        fn books_balance(seed in 0u64..1000, rows in 0u64..3000) {
            let (_, t) = synth_file("nc", rows, seed, true);
            proptest::prop_assert_eq!(t.rows_read, rows);
            proptest::prop_assert_eq!(t.rows_read, t.rows_rejected + t.duplicates_dropped + t.rows_written);
        }
    }
}
