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

use layout::{CodedColumn, CodedDim, CountyMatch, Layout, MissingVoterId, Quoting};
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
    /// Number of rows.
    pub count: u64,
}

/// Writes a synthetic file in `layout`'s format to `out` and returns what a
/// correct ingest of it must produce.
///
/// Writes one `write_all` per line: pass a buffered writer.
pub fn generate<W: Write>(
    layout: &Layout,
    opts: &SynthOptions,
    out: &mut W,
) -> Result<GroundTruth, SynthError> {
    generate_with_stats(layout, opts, out).map(|(truth, _)| truth)
}

/// [`generate`], also returning how many times each quirk kind was written.
fn generate_with_stats<W: Write>(
    layout: &Layout,
    opts: &SynthOptions,
    out: &mut W,
) -> Result<(GroundTruth, Stats), SynthError> {
    let mut g = Gen::new(layout, opts)?;
    let truth = g.run(out)?;
    Ok((truth, g.stats))
}

// ---------------------------------------------------------------------------
// Fake data.

const FIRST: [&str; 32] = [
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
    "OLIVIA",
    "NOAH",
    "AVA",
    "ETHAN",
    "CHLOE",
    "PRIYA",
    "KENJI",
    "AMARA",
    "DMITRI",
    "YOLANDA",
];
const LAST: [&str; 32] = [
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
    "NGUYEN",
    "OKAFOR",
    "KOWALSKI",
    "SCHROEDER",
    "FITZGERALD",
    "CHATTERJEE",
    "YAMAMOTO",
    "ABERNATHY",
    "VILLANUEVA",
];
/// Names with Latin-1 bytes (0xD1 = Ñ, 0xC9 = É, 0xE9 = é), as real files have.
const LATIN1_LAST: [&[u8]; 4] = [b"MU\xD1OZ", b"PE\xD1A", b"IBA\xD1EZ", b"ANDR\xC9"];
const LATIN1_FIRST: [&[u8]; 3] = [b"JOS\xC9", b"Ren\xE9e", b"ANDR\xC9S"];
/// Names with a nickname in quotes (escaped as `""` when fields are quoted).
const NICKNAMES: [&[u8]; 3] = [
    b"ROBERT \"BOB\" LEE",
    b"JAMES \"JIM\" EARL",
    b"MARY \"MOLLY\" ANN",
];
const SUFFIXES: [&str; 4] = ["JR", "SR", "II", "III"];
const STREETS: [&str; 16] = [
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
    "DOGWOOD CT",
    "MAGNOLIA WAY",
    "POPLAR BRANCH RD",
    "OLD STAGE HWY",
];
const CITIES: [&str; 12] = [
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
    "FAIRVIEW",
    "RIVERSIDE",
];
/// Columns the Feb 2026 NC files added; inserted by `quirks` into any file
/// with a header, before the registration date.
const EXTRA_COLUMNS: [&str; 3] = ["hava_id_req", "ssn", "no_dl_ssn_chkbx"];
/// Unknown values written into coded columns.
const UNKNOWN_TEXT: [&str; 2] = ["XYZ", "Q"];
const UNKNOWN_NUMERIC: [&str; 2] = ["99", "X"];
/// Candidate bad counties, by match kind.
const BAD_NAMES: [&str; 2] = ["ATLANTIS", "NARNIA"];
const BAD_CODES: [&str; 2] = ["999", "ZZZ"];

// ---------------------------------------------------------------------------
// Quirk bookkeeping.

/// Kinds of quirks, counted for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Q {
    DupTie,
    DupOlder,
    DupNewer,
    DupNullTie,
    Truncated,
    Empty,
    BadCounty,
    RejectedReusesId,
    BrokenQuote,
    MissingIdBlank,
    MissingIdSpaces,
    MissingIdPlaceholder,
    Crlf,
    PaddedCode,
    UnknownCode,
    BlankUnknown,
    Latin1,
    Nickname,
    DelimiterInField,
    CountyVariant,
    NumericVariant,
    PaddedId,
    BirthBlank,
    BirthNull,
    BirthGarbage,
    BirthOutOfRange,
    RegBlank,
    RegNull,
    RegGarbage,
    RegOutOfRange,
    ExtraColumns,
}

const NQ: usize = Q::ExtraColumns as usize + 1;

/// Times each quirk kind was written.
#[derive(Debug, Clone, Default)]
struct Stats([u64; NQ]);

impl Stats {
    fn add(&mut self, q: Q) {
        self.0[q as usize] += 1;
    }
    #[cfg(test)]
    fn get(&self, q: Q) -> u64 {
        self.0[q as usize]
    }
}

// Render flags: how a row is spelled (never what it means).
const F_PAD_CODES: u32 = 1;
const F_LATIN1: u32 = 1 << 1;
const F_NICKNAME: u32 = 1 << 2;
const F_DELIM: u32 = 1 << 3;
const F_COUNTY: u32 = 1 << 4;
const F_NUMERIC: u32 = 1 << 5;
const F_PAD_ID: u32 = 1 << 6;
const F_CRLF: u32 = 1 << 7;

/// A date (or year) value as generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateVal {
    Date(i16, u8, u8),
    Blank,
    /// Index into the column's sentinels followed by its masks.
    Null(u8),
    /// Date-shaped but unparseable (`13/45/1985`, `19X5`).
    Garbage,
    /// A parseable date whose year is outside the plausible range.
    OutOfRange(i16),
}

/// How a duplicate's registration date relates to the kept row's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DupMode {
    Tie,
    Older,
    Newer,
    NewNull,
}

/// What kind of line to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Voter,
    /// A duplicate; `true`: of the last booked voter (else a random recent one).
    Dup(DupMode, bool),
    Truncated,
    Empty,
    /// `true`: reuse a kept voter's id with a newer date (must not displace it).
    BadCounty(bool),
    BrokenQuote,
    /// A missing voter id: index into `Gen::missing_ids`.
    MissingId(u8),
}

/// What part of a line is spoiled on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spoil {
    None,
    /// A county not in the reference list.
    County,
    /// The voter id is `Gen::missing_ids[i]`.
    Id(u8),
}

/// A change to the generated voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tweak {
    None,
    Birth(DateVal),
    Reg(DateVal),
    /// Source column, unknown candidate number.
    Unknown(u8, u8),
    /// A blank in this source column.
    Blank(u8),
}

/// One line's plan.
#[derive(Debug, Clone, Copy)]
struct Plan {
    kind: Kind,
    tweak: Tweak,
    flags: u32,
}

impl Plan {
    const VOTER: Plan = Plan {
        kind: Kind::Voter,
        tweak: Tweak::None,
        flags: 0,
    };
    fn kind(kind: Kind) -> Plan {
        Plan {
            kind,
            ..Plan::VOTER
        }
    }
    fn tweak(tweak: Tweak) -> Plan {
        Plan {
            tweak,
            ..Plan::VOTER
        }
    }
    fn flags(flags: u32) -> Plan {
        Plan {
            flags,
            ..Plan::VOTER
        }
    }
}

/// The row where the forced quirks (one of each kind) start.
const FORCED_START: u64 = 16;
/// Every this many rows, one voter takes the next county and codes in turn, so
/// that every county and code appears.
const COVER_EVERY: u64 = 37;

// ---------------------------------------------------------------------------
// Small fast helpers.

/// Seeded randomness with cheap bounded draws.
struct Dice(ChaCha8Rng);

impl Dice {
    #[inline]
    fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    /// Uniform in `0..n` (multiply-shift; the bias is irrelevant here).
    #[inline]
    fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.0.next_u32()) * u64::from(n)) >> 32) as u32
    }
    #[inline]
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u32) as usize
    }
    /// True with probability `per_million` / 1 000 000.
    #[inline]
    fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < per_million
    }
    /// Uniform in `lo..=hi`.
    #[inline]
    fn between(&mut self, lo: i16, hi: i16) -> i16 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u32 + 1) as i16
    }
}

/// A weighted choice as a lookup table: one draw, one index.
struct Table {
    slots: Vec<u16>,
    shift: u32,
}

impl Table {
    /// Every positive weight gets at least one slot.
    fn new(weights: &[f64]) -> Table {
        assert!(weights.len() <= usize::from(u16::MAX) + 1);
        let mut weights = weights.to_vec();
        if !weights.iter().any(|w| *w > 0.0) {
            weights.iter_mut().for_each(|w| *w = 1.0);
        }
        let positive = weights.iter().filter(|w| **w > 0.0).count();
        let mut bits = 14u32;
        while (1usize << bits) < positive * 64 && bits < 24 {
            bits += 1;
        }
        let size = 1usize << bits;
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        let mut counts: Vec<usize> = weights
            .iter()
            .map(|&w| {
                if w > 0.0 {
                    ((w / total * size as f64) as usize).max(1)
                } else {
                    0
                }
            })
            .collect();
        let sum: usize = counts.iter().sum();
        let biggest = (0..counts.len())
            .max_by_key(|&i| counts[i])
            .expect("non-empty");
        counts[biggest] = (counts[biggest] + size)
            .checked_sub(sum)
            .filter(|c| *c > 0)
            .expect("table has room for every weight");
        let mut slots = Vec::with_capacity(size);
        for (i, c) in counts.iter().enumerate() {
            slots.extend(std::iter::repeat_n(i as u16, *c));
        }
        Table {
            slots,
            shift: 32 - bits,
        }
    }

    #[inline]
    fn pick(&self, dice: &mut Dice) -> usize {
        usize::from(self.slots[(dice.u32() >> self.shift) as usize])
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
#[inline]
fn push_num(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while tmp.len() - i < width && i > 0 {
        i -= 1;
        tmp[i] = b'0';
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `value` as one field's content, doubling quotes when quoted.
fn push_escaped(buf: &mut Vec<u8>, value: &[u8], quoted: bool) {
    if quoted {
        for &b in value {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
    } else {
        buf.extend_from_slice(value);
    }
}

/// A fast hasher for the packed truth keys (hashbrown needs good high bits).
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fmix(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = fmix(self.0 ^ v);
    }
}

#[inline]
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A truth tuple packed in 12 bytes: county and birth year; registration year
/// and codes 0–1; codes 2–5 (code indices per `layout.coded` position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u32; 3]);

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c] = self.0;
        state.write_u64(fmix(u64::from(a) | u64::from(b) << 32) ^ u64::from(c));
    }
}

impl Key {
    fn new(county: u16, birth: i16, reg: i16, codes: [u8; 6]) -> Key {
        let [c0, c1, c2, c3, c4, c5] = codes.map(u32::from);
        Key([
            u32::from(county) | u32::from(birth as u16) << 16,
            u32::from(reg as u16) | c0 << 16 | c1 << 24,
            c2 | c3 << 8 | c4 << 16 | c5 << 24,
        ])
    }
    fn county(self) -> usize {
        (self.0[0] & 0xFFFF) as usize
    }
    fn birth(self) -> Option<i16> {
        let y = (self.0[0] >> 16) as u16 as i16;
        (y != NULL_YEAR).then_some(y)
    }
    fn reg(self) -> Option<i16> {
        let y = self.0[1] as u16 as i16;
        (y != NULL_YEAR).then_some(y)
    }
    fn code(self, d: usize) -> usize {
        let word = if d < 2 {
            self.0[1] >> (16 + 8 * d)
        } else {
            self.0[2] >> (8 * (d - 2))
        };
        (word & 0xFF) as usize
    }
}

type Counts = HashMap<Key, u32, BuildHasherDefault<MixHasher>>;

// ---------------------------------------------------------------------------
// Dates.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Year,
    Month,
    Day,
    Lit(u8),
}

/// A layout date column: how to write it and what counts as null.
struct DateCol {
    toks: Vec<Tok>,
    has_month: bool,
    has_day: bool,
    /// Sentinels then masks, as written.
    nulls: Vec<String>,
    /// Those that parse as dates: (year, month, day) as ingestion reads them.
    null_dates: Vec<(i16, u8, u8)>,
    /// Plausible years.
    min_year: i16,
}

impl DateCol {
    fn new(spec: &layout::DateSpec, min_year: i16) -> DateCol {
        let text = spec.format.as_str().as_bytes();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < text.len() {
            if text[i..].starts_with(b"YYYY") {
                toks.push(Tok::Year);
                i += 4;
            } else if text[i..].starts_with(b"MM") {
                toks.push(Tok::Month);
                i += 2;
            } else if text[i..].starts_with(b"DD") {
                toks.push(Tok::Day);
                i += 2;
            } else {
                toks.push(Tok::Lit(text[i]));
                i += 1;
            }
        }
        let nulls: Vec<String> = spec.sentinels.iter().chain(&spec.masks).cloned().collect();
        let null_dates = nulls
            .iter()
            .filter_map(|n| spec.format.parse_date(n.trim().as_bytes()))
            .map(|d| (d.year, d.month, d.day))
            .collect();
        DateCol {
            has_month: toks.contains(&Tok::Month),
            has_day: toks.contains(&Tok::Day),
            toks,
            nulls,
            null_dates,
            min_year,
        }
    }

    /// The month and day ingestion reads (1 when the format has none).
    fn effective(&self, m: u8, d: u8) -> (u8, u8) {
        (
            if self.has_month { m } else { 1 },
            if self.has_day { d } else { 1 },
        )
    }

    /// A real date, moved off any sentinel it would spell.
    fn date(&self, mut y: i16, m: u8, d: u8, current_year: i16) -> DateVal {
        let (em, ed) = self.effective(m, d);
        let mut step = if y < current_year { 1 } else { -1 };
        let start = y;
        while self.null_dates.contains(&(y, em, ed)) {
            y += step;
            if !(self.min_year..=current_year).contains(&y) {
                step = -step;
                y = start + step;
            }
        }
        DateVal::Date(y, m, d)
    }

    fn write(&self, buf: &mut Vec<u8>, v: DateVal) {
        let (y, m, d) = match v {
            DateVal::Date(y, m, d) => (y, m, d),
            DateVal::OutOfRange(y) => (y, 6, 15),
            DateVal::Blank => return,
            DateVal::Null(i) => {
                buf.extend_from_slice(self.nulls[usize::from(i)].as_bytes());
                return;
            }
            DateVal::Garbage if !self.has_month => {
                buf.extend_from_slice(b"19X5");
                return;
            }
            DateVal::Garbage => (1985, 13, 45),
        };
        for t in &self.toks {
            match *t {
                Tok::Year => push_num(buf, y.max(0) as u64, 4),
                Tok::Month => push_num(buf, u64::from(m), 2),
                Tok::Day => push_num(buf, u64::from(d), 2),
                Tok::Lit(c) => buf.push(c),
            }
        }
    }

    /// The year ingestion keeps, or `None`.
    fn year(&self, v: DateVal, current_year: i16) -> Option<i16> {
        match v {
            DateVal::Date(y, ..) if (self.min_year..=current_year).contains(&y) => Some(y),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Columns.

/// What fills a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    VoterId,
    County,
    Birth,
    Registration,
    /// Index into `Gen::sources`.
    Coded(u8),
    /// Index into `EXTRA_COLUMNS`.
    Extra(u8),
    Fill(Filler),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filler {
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

fn filler_for(name: &str) -> Filler {
    let n = name.to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    if has("suffix") {
        Filler::Suffix
    } else if has("last") && has("name") {
        Filler::LastName
    } else if has("first") && has("name") {
        Filler::FirstName
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
struct Source {
    /// Candidate raw values.
    values: Vec<Vec<u8>>,
    table: Table,
    /// Candidates that are unknown codes (for quirks).
    unknown: Vec<u8>,
    /// The blank candidate.
    blank: u8,
    /// Candidates drawn normally, cycled through for coverage.
    usual: Vec<u8>,
    /// Candidates that may be respelled (`7` as `07` or `7.0`): known numeric codes.
    respell: Vec<bool>,
}

/// A voter as chosen (before rendering).
#[derive(Debug, Clone, Copy)]
struct Voter {
    id: u64,
    county: u16,
    birth: DateVal,
    reg: DateVal,
    /// Candidate index per source column.
    cands: [u8; 6],
}

const NULL_YEAR: i16 = i16::MIN;

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
    county_table: Table,
    county_text: Vec<Vec<u8>>,
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
        if layout.coded.len() > 6 {
            return Err(err("more than six coded columns".into()));
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
            county_table,
            county_text,
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
        };
        if opts.quirks {
            g.forced = g.forced_plans();
        }
        Ok(g)
    }

    /// One line of each quirk kind, written from row `FORCED_START` on.
    fn forced_plans(&self) -> Vec<Plan> {
        let cy = self.opts.current_year;
        let mut p = vec![
            // Duplicates of the voter just written: tie, older, newer (with a
            // padded id), null; then null against null, real against blank.
            Plan::VOTER,
            Plan::kind(Kind::Dup(DupMode::Tie, true)),
            Plan::kind(Kind::Dup(DupMode::Older, true)),
            Plan {
                flags: if self.can_pad { F_PAD_ID } else { 0 },
                ..Plan::kind(Kind::Dup(DupMode::Newer, true))
            },
            Plan::kind(Kind::Dup(DupMode::NewNull, true)),
            Plan::tweak(Tweak::Reg(DateVal::Garbage)),
            Plan::kind(Kind::Dup(DupMode::NewNull, true)),
            Plan::tweak(Tweak::Reg(DateVal::Blank)),
            Plan::kind(Kind::Dup(DupMode::Newer, true)),
            // Rejected lines.
            Plan::kind(Kind::Truncated),
            Plan::kind(Kind::Empty),
            Plan::kind(Kind::BadCounty(false)),
            Plan::kind(Kind::BadCounty(true)),
        ];
        if self.quoted {
            p.push(Plan::kind(Kind::BrokenQuote));
        }
        for k in 0..self.missing_ids.len() {
            p.push(Plan::kind(Kind::MissingId(k as u8)));
        }
        // Dates.
        if let Some(b) = &self.birth {
            p.push(Plan::tweak(Tweak::Birth(DateVal::Blank)));
            p.push(Plan::tweak(Tweak::Birth(DateVal::Garbage)));
            p.push(Plan::tweak(Tweak::Birth(DateVal::OutOfRange(1850))));
            p.push(Plan::tweak(Tweak::Birth(DateVal::OutOfRange(cy + 5))));
            for i in 0..b.nulls.len() {
                p.push(Plan::tweak(Tweak::Birth(DateVal::Null(i as u8))));
            }
        }
        if let Some(r) = &self.reg {
            p.push(Plan::tweak(Tweak::Reg(DateVal::OutOfRange(cy + 1))));
            for i in 0..r.nulls.len() {
                p.push(Plan::tweak(Tweak::Reg(DateVal::Null(i as u8))));
            }
        }
        // Codes.
        for (s, source) in self.sources.iter().enumerate() {
            for k in 0..source.unknown.len() {
                p.push(Plan::tweak(Tweak::Unknown(s as u8, k as u8)));
            }
            p.push(Plan::tweak(Tweak::Blank(s as u8)));
        }
        // Spellings.
        let mut flags = F_LATIN1 | F_NICKNAME | F_COUNTY | F_CRLF;
        if self.can_pad {
            flags |= F_PAD_CODES | F_PAD_ID;
        }
        if self.quoted {
            flags |= F_DELIM;
        }
        if self.has_numeric {
            flags |= F_NUMERIC;
        }
        for bit in 0..8 {
            if flags & (1 << bit) != 0 {
                p.push(Plan::flags(1 << bit));
            }
        }
        p
    }

    /// The plan for data row `row` when quirks are on.
    fn plan(&mut self, row: u64) -> Plan {
        if let Some(p) = row
            .checked_sub(FORCED_START)
            .and_then(|i| self.forced.get(i as usize))
        {
            return *p;
        }
        let spellings = self.missing_ids.len() as u32;
        let d = &mut self.dice;
        let x = d.below(1_000_000);
        let kind = match x {
            0..12_000 => Kind::Dup(
                match d.below(10) {
                    0..3 => DupMode::Tie,
                    3..6 => DupMode::Older,
                    6..9 => DupMode::Newer,
                    _ => DupMode::NewNull,
                },
                false,
            ),
            12_000..13_500 => Kind::Truncated,
            13_500..14_000 => Kind::BadCounty(false),
            14_000..14_500 => Kind::BadCounty(true),
            14_500..15_000 if self.quoted => Kind::BrokenQuote,
            15_000..15_200 => Kind::Empty,
            15_200..15_600 => Kind::MissingId(d.below(spellings) as u8),
            _ => Kind::Voter,
        };
        let mut flags = 0;
        if d.chance(150_000) {
            // Spellings, each independent.
            let bits = d.u32();
            let pick = |mask: u32, flag: u32| if bits & mask == 0 { flag } else { 0 };
            flags |= pick(0x3, F_PAD_CODES) // 1 in 4
                | pick(0x70, F_LATIN1) // 1 in 8
                | pick(0x780, F_NICKNAME) // 1 in 16
                | pick(0x7800, F_DELIM)
                | pick(0x18000, F_NUMERIC)
                | pick(0x1F_E0000, F_PAD_ID) // 1 in 256
                | pick(0x6000_0000, F_CRLF);
            if self.layout.county.numeric || bits & 0x8000_0000 == 0 {
                flags |= pick(0x1800_0000, F_COUNTY);
            }
        }
        if !self.can_pad {
            flags &= !(F_PAD_CODES | F_PAD_ID);
        }
        Plan {
            kind,
            tweak: Tweak::None,
            flags,
        }
    }

    fn run<W: Write>(&mut self, out: &mut W) -> Result<GroundTruth, SynthError> {
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
            if self.header.len() > self.layout.format.columns.len() {
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
                    }
                }
                Kind::BadCounty(true) => {
                    // A kept voter's id, a newer date, a county not on the list:
                    // rejected, so the kept row stays.
                    let old = recent[self.dice.index(recent.len())];
                    let mut v = self.voter(old.id);
                    v.reg = self.dup_reg(old.reg, DupMode::Newer);
                    self.render_bad_county(&v, plan.flags, sample, &mut line);
                    self.stats.add(Q::RejectedReusesId);
                    rejected_lines.push(line_no);
                }
                Kind::MissingId(k) => {
                    next_id += 1;
                    let v = self.voter(next_id);
                    self.render_with(&v, plan.flags, sample, Spoil::Id(k), &mut line);
                    self.stats.add(self.missing_id_quirk(k));
                    missing_id_lines.push(line_no);
                    match self.layout.missing_voter_id {
                        MissingVoterId::Reject => rejected_lines.push(line_no),
                        // Its own voter: never in `recent`, so never duplicated.
                        MissingVoterId::Keep => self.book(&v, true),
                    }
                }
                Kind::BadCounty(false) | Kind::Truncated | Kind::Empty | Kind::BrokenQuote => {
                    next_id += 1;
                    let v = self.voter(next_id);
                    // Part of the line goes: sample no identifiers from it.
                    let sample = sample && plan.kind == Kind::BadCounty(false);
                    if plan.kind == Kind::BadCounty(false) {
                        self.render_bad_county(&v, plan.flags, sample, &mut line);
                    } else {
                        self.render(&v, plan.flags, sample, &mut line);
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
        }
        Ok(self.truth(rejected_lines, missing_id_lines, duplicates_dropped))
    }

    /// The quirk a missing-id spelling shows.
    fn missing_id_quirk(&self, k: u8) -> Q {
        let spelling = &self.missing_ids[usize::from(k)];
        if spelling.is_empty() {
            Q::MissingIdBlank
        } else if spelling.iter().all(|&b| b == b' ') {
            Q::MissingIdSpaces
        } else {
            Q::MissingIdPlaceholder
        }
    }

    fn voter(&mut self, id: u64) -> Voter {
        let cy = self.opts.current_year;
        let q = self.opts.quirks;
        let county = self.county_table.pick(&mut self.dice) as u16;
        let year = cy - 18 - self.ages.pick(&mut self.dice) as i16;
        let m = 1 + self.dice.below(12) as u8;
        let d = 1 + self.dice.below(28) as u8;
        let birth = match &self.birth {
            Some(b) if q && self.dice.chance(20_000) => {
                let nulls = b.nulls.len() as u32;
                match self.dice.below(5 + nulls) {
                    0 | 1 => DateVal::Blank,
                    2 => DateVal::Garbage,
                    3 => DateVal::OutOfRange(1850.min(b.min_year - 1)),
                    4 => DateVal::OutOfRange(cy + 5),
                    k => DateVal::Null((k - 5) as u8),
                }
            }
            Some(b) => b.date(year, m, d, cy),
            None => DateVal::Blank,
        };
        let reg = match &self.reg {
            Some(r) if q && self.dice.chance(20_000) => {
                let nulls = r.nulls.len() as u32;
                match self.dice.below(4 + nulls) {
                    0 | 1 => DateVal::Blank,
                    2 => DateVal::Garbage,
                    3 => DateVal::OutOfRange(cy + 1),
                    k => DateVal::Null((k - 4) as u8),
                }
            }
            Some(r) => {
                let lo = (year + 18).max(r.min_year).max(cy - 75).min(cy);
                let y = self.dice.between(lo, cy);
                let rm = 1 + self.dice.below(12) as u8;
                let rd = 1 + self.dice.below(28) as u8;
                r.date(y, rm, rd, cy)
            }
            None => DateVal::Blank,
        };
        let mut cands = [0u8; 6];
        for (s, source) in self.sources.iter().enumerate() {
            cands[s] = if q && self.dice.chance(6_000) {
                if self.dice.below(2) == 0 {
                    source.unknown[self.dice.index(source.unknown.len())]
                } else {
                    source.blank
                }
            } else {
                source.table.pick(&mut self.dice) as u8
            };
        }
        Voter {
            id,
            county,
            birth,
            reg,
            cands,
        }
    }

    fn apply(&mut self, v: &mut Voter, tweak: Tweak) {
        match tweak {
            Tweak::None => {}
            Tweak::Birth(b) => v.birth = b,
            Tweak::Reg(r) => v.reg = r,
            Tweak::Unknown(s, k) => {
                let source = &self.sources[usize::from(s)];
                v.cands[usize::from(s)] = source.unknown[usize::from(k)];
            }
            Tweak::Blank(s) => v.cands[usize::from(s)] = self.sources[usize::from(s)].blank,
        }
    }

    /// Gives the voter the `i`-th county and the `i`-th usual code of each
    /// column (modulo their counts).
    fn cover(&self, v: &mut Voter, i: usize) {
        v.county = (i % self.county_text.len()) as u16;
        for (s, source) in self.sources.iter().enumerate() {
            v.cands[s] = source.usual[i % source.usual.len()];
        }
    }

    /// A duplicate's registration date, relative to the kept row's.
    fn dup_reg(&mut self, old: DateVal, mode: DupMode) -> DateVal {
        let cy = self.opts.current_year;
        let Some(r) = &self.reg else {
            return DateVal::Blank;
        };
        match (mode, old) {
            (DupMode::Tie, _) => old,
            (DupMode::Older, DateVal::Date(y, m, d)) => {
                if y > r.min_year {
                    r.date(y - 1, m, d, cy)
                } else {
                    DateVal::Blank
                }
            }
            (DupMode::Newer, DateVal::Date(y, m, d)) if y < cy => r.date(y + 1, m, d, cy),
            (DupMode::Newer, DateVal::Date(..)) => old,
            (DupMode::Newer, _) => r.date(cy - 1, 6, 15, cy),
            (DupMode::Older | DupMode::NewNull, _) => match self.dice.below(3) {
                0 if !r.nulls.is_empty() => DateVal::Null(self.dice.index(r.nulls.len()) as u8),
                1 => DateVal::Garbage,
                _ => DateVal::Blank,
            },
        }
    }

    /// How ingestion ranks a registration date among duplicates: the date as
    /// it reads it, or oldest when the date is not usable.
    fn rank(&self, reg: DateVal) -> i32 {
        match (&self.reg, reg) {
            (Some(r), DateVal::Date(y, m, d))
                if (r.min_year..=self.opts.current_year).contains(&y) =>
            {
                let (m, d) = r.effective(m, d);
                i32::from(y) * 10_000 + i32::from(m) * 100 + i32::from(d)
            }
            _ => i32::MIN,
        }
    }

    /// Adds (`add`) or removes a written voter to or from the truth.
    fn book(&mut self, v: &Voter, add: bool) {
        let cy = self.opts.current_year;
        let birth = self
            .birth
            .as_ref()
            .and_then(|b| b.year(v.birth, cy))
            .unwrap_or(NULL_YEAR);
        let reg = self
            .reg
            .as_ref()
            .and_then(|r| r.year(v.reg, cy))
            .unwrap_or(NULL_YEAR);
        let mut codes = [0u8; 6];
        for (d, slot) in codes.iter_mut().enumerate().take(self.dim_codes.len()) {
            let cand = usize::from(v.cands[self.dim_source[d]]);
            let (code, unknown) = self.dim_codes[d][cand];
            *slot = code;
            if unknown {
                let n = &mut self.unknown[d][cand];
                *n = if add { *n + 1 } else { *n - 1 };
            }
        }
        let key = Key::new(v.county, birth, reg, codes);
        let n = self.counts.entry(key).or_default();
        *n = if add { *n + 1 } else { *n - 1 };
    }

    fn render_bad_county(&mut self, v: &Voter, flags: u32, sample: bool, line: &mut Vec<u8>) {
        self.render_with(v, flags, sample, Spoil::County, line);
        self.stats.add(Q::BadCounty);
    }

    fn render(&mut self, v: &Voter, flags: u32, sample: bool, line: &mut Vec<u8>) {
        self.render_with(v, flags, sample, Spoil::None, line);
    }

    /// Writes the voter as one line (without its terminator).
    fn render_with(
        &mut self,
        v: &Voter,
        flags: u32,
        sample: bool,
        spoil: Spoil,
        line: &mut Vec<u8>,
    ) {
        let (delim, quoted) = (self.delim, self.quoted);
        let cy = self.opts.current_year;
        let mut latin1_done = false;
        let mut nickname_done = false;
        let mut delim_done = false;
        for i in 0..self.roles.len() {
            if i > 0 {
                line.push(delim);
            }
            if quoted {
                line.push(b'"');
            }
            let start = line.len();
            let mut identifier = false;
            let mut fake = false;
            match self.roles[i] {
                Role::VoterId => identifier = self.id_field(v, flags, spoil, line),
                Role::County if spoil == Spoil::County => line.extend_from_slice(&self.bad_county),
                Role::County => self.county_field(v.county, flags, line),
                Role::Birth => {
                    let b = self.birth.as_ref().expect("role");
                    b.write(line, v.birth);
                    identifier = b.has_day && matches!(v.birth, DateVal::Date(..));
                    self.count_date(true, v.birth, cy);
                }
                Role::Registration => {
                    self.reg.as_ref().expect("role").write(line, v.reg);
                    self.count_date(false, v.reg, cy);
                }
                Role::Coded(s) => self.coded_field(usize::from(s), v, flags, line),
                Role::Extra(k) => {
                    if k == 1 {
                        push_num(
                            line,
                            100_000_000 + u64::from(self.dice.below(900_000_000)),
                            9,
                        );
                        identifier = true;
                    } else {
                        match self.dice.below(4) {
                            0 => line.push(b'Y'),
                            1 => {}
                            _ => line.push(b'N'),
                        }
                    }
                }
                Role::Fill(f) => {
                    fake = true;
                    let special = match f {
                        Filler::LastName if flags & F_LATIN1 != 0 && !latin1_done => {
                            latin1_done = true;
                            self.stats.add(Q::Latin1);
                            let n = LATIN1_LAST[self.dice.index(LATIN1_LAST.len())];
                            line.extend_from_slice(n);
                            true
                        }
                        Filler::FirstName if flags & F_NICKNAME != 0 && !nickname_done => {
                            nickname_done = true;
                            self.stats.add(Q::Nickname);
                            let n = NICKNAMES[self.dice.index(NICKNAMES.len())];
                            push_escaped(line, n, quoted);
                            true
                        }
                        Filler::LastName if flags & F_DELIM != 0 && quoted && delim == b',' => {
                            // OH: `"SMITH, JR"`.
                            let i = self.dice.index(LAST.len());
                            line.extend_from_slice(LAST[i].as_bytes());
                            line.extend_from_slice(b", JR");
                            true
                        }
                        Filler::Street if flags & F_DELIM != 0 && quoted && !delim_done => {
                            delim_done = true;
                            self.stats.add(Q::DelimiterInField);
                            push_num(line, 1 + u64::from(self.dice.below(9999)), 1);
                            line.extend_from_slice(b" OAK AVE");
                            line.push(delim);
                            if delim == b',' {
                                line.push(b' ');
                            }
                            line.extend_from_slice(b"APT 4");
                            true
                        }
                        _ => false,
                    };
                    if !special {
                        identifier = self.filler(f, flags, line);
                    }
                }
            }
            if fake && self.sanitize {
                for b in &mut line[start..] {
                    if *b == delim {
                        *b = b'_';
                    }
                }
            }
            if sample
                && identifier
                && self.identifiers.len() < 200
                && let Ok(s) = std::str::from_utf8(&line[start..])
            {
                self.identifiers.push(s.to_owned());
            }
            if quoted {
                line.push(b'"');
            }
        }
    }

    /// Writes the voter id (or the spoiled id); returns whether it is an
    /// identifier worth sampling.
    fn id_field(&mut self, v: &Voter, flags: u32, spoil: Spoil, line: &mut Vec<u8>) -> bool {
        if let Spoil::Id(k) = spoil {
            push_escaped(line, &self.missing_ids[usize::from(k)], self.quoted);
            return false;
        }
        let pad = flags & F_PAD_ID != 0;
        if pad {
            line.push(b' ');
            self.stats.add(Q::PaddedId);
        }
        line.extend_from_slice(&self.id_prefix);
        push_num(line, v.id, 9);
        if pad {
            line.extend_from_slice(b"  ");
        }
        !pad
    }

    fn count_date(&mut self, birth: bool, v: DateVal, cy: i16) {
        if !self.opts.quirks {
            return;
        }
        let q = match (birth, v) {
            (_, DateVal::Date(..)) => return,
            (true, DateVal::Blank) => Q::BirthBlank,
            (true, DateVal::Null(_)) => Q::BirthNull,
            (true, DateVal::Garbage) => Q::BirthGarbage,
            (true, DateVal::OutOfRange(_)) => Q::BirthOutOfRange,
            (false, DateVal::Blank) => Q::RegBlank,
            (false, DateVal::Null(_)) => Q::RegNull,
            (false, DateVal::Garbage) => Q::RegGarbage,
            (false, DateVal::OutOfRange(y)) => {
                debug_assert!(y > cy);
                Q::RegOutOfRange
            }
        };
        self.stats.add(q);
    }

    fn county_field(&mut self, county: u16, flags: u32, line: &mut Vec<u8>) {
        let text = &self.county_text[usize::from(county)];
        if flags & F_COUNTY == 0 {
            line.extend_from_slice(text);
            return;
        }
        self.stats.add(Q::CountyVariant);
        if self.layout.county.numeric && text.iter().all(u8::is_ascii_digit) {
            // `01` (OH since 2020), or `001`.
            let width = if text.len() < 2 { 2 } else { text.len() + 1 };
            for _ in text.len()..width {
                line.push(b'0');
            }
            line.extend_from_slice(text);
        } else if self.dice.below(2) == 0 || !self.can_pad {
            line.extend(text.iter().map(u8::to_ascii_lowercase));
        } else {
            line.push(b' ');
            line.extend_from_slice(text);
            line.extend_from_slice(b"  ");
        }
    }

    fn coded_field(&mut self, s: usize, v: &Voter, flags: u32, line: &mut Vec<u8>) {
        let source = &self.sources[s];
        let cand = usize::from(v.cands[s]);
        let value = &source.values[cand];
        let pad = flags & F_PAD_CODES != 0;
        if pad {
            line.push(b' ');
        }
        if flags & F_NUMERIC != 0 && source.respell[cand] {
            if self.dice.below(2) == 0 {
                line.push(b'0');
                line.extend_from_slice(value);
            } else {
                line.extend_from_slice(value);
                line.extend_from_slice(b".0");
            }
            self.stats.add(Q::NumericVariant);
        } else {
            line.extend_from_slice(value);
        }
        if pad {
            line.push(b' ');
            self.stats.add(Q::PaddedCode);
        }
        if self.opts.quirks {
            for d in 0..self.dim_codes.len() {
                if self.dim_source[d] == s && self.dim_codes[d][cand].1 {
                    self.stats.add(if value.is_empty() {
                        Q::BlankUnknown
                    } else {
                        Q::UnknownCode
                    });
                }
            }
        }
    }

    /// Writes a fake value; returns whether it is an identifier worth sampling.
    fn filler(&mut self, f: Filler, flags: u32, line: &mut Vec<u8>) -> bool {
        let d = &mut self.dice;
        match f {
            Filler::LastName => {
                let i = d.index(LAST.len());
                line.extend_from_slice(LAST[i].as_bytes());
                return self.safe_last[i];
            }
            Filler::FirstName => {
                if flags & F_LATIN1 != 0 {
                    line.extend_from_slice(LATIN1_FIRST[d.index(LATIN1_FIRST.len())]);
                    return false;
                }
                let i = d.index(FIRST.len());
                line.extend_from_slice(FIRST[i].as_bytes());
                return self.safe_first[i];
            }
            Filler::MiddleName => match d.below(4) {
                0 => {}
                1 => line.push(b'A' + d.below(26) as u8),
                _ => line.extend_from_slice(FIRST[d.index(FIRST.len())].as_bytes()),
            },
            Filler::Suffix => {
                if d.below(12) == 0 {
                    line.extend_from_slice(SUFFIXES[d.index(SUFFIXES.len())].as_bytes());
                }
            }
            Filler::Street => {
                push_num(line, 1 + u64::from(d.below(9999)), 1);
                line.push(b' ');
                line.extend_from_slice(STREETS[d.index(STREETS.len())].as_bytes());
                return true;
            }
            Filler::Street2 => {
                if d.below(10) == 0 {
                    line.extend_from_slice(b"APT ");
                    push_num(line, 1 + u64::from(d.below(400)), 1);
                }
            }
            Filler::City => line.extend_from_slice(CITIES[d.index(CITIES.len())].as_bytes()),
            Filler::State => line.extend_from_slice(&self.state),
            Filler::Zip => push_num(line, 10_000 + u64::from(d.below(89_999)), 5),
            Filler::Phone => {
                if d.below(3) == 0 {
                    return false;
                }
                push_num(line, 2_000_000_000 + u64::from(d.below(u32::MAX)), 10);
                return true;
            }
            Filler::Email => {
                if d.below(2) == 0 {
                    return false;
                }
                line.extend_from_slice(b"voter");
                push_num(line, u64::from(d.below(10_000_000)), 7);
                line.extend_from_slice(b"@example.com");
                return true;
            }
            Filler::Date => {
                push_num(line, 1 + u64::from(d.below(12)), 2);
                line.push(b'/');
                push_num(line, 1 + u64::from(d.below(28)), 2);
                line.push(b'/');
                push_num(line, 1990 + u64::from(d.below(35)), 4);
            }
            Filler::District => push_num(line, 1 + u64::from(d.below(120)), 1),
            Filler::Age => push_num(line, 18 + u64::from(d.below(80)), 1),
            Filler::Flag => line.push(if d.below(10) == 0 { b'Y' } else { b'N' }),
            Filler::Code => {
                if d.below(10) < 7 {
                    line.push(b'A' + d.below(26) as u8);
                    push_num(line, 1 + u64::from(d.below(99)), 1);
                }
            }
        }
        false
    }

    fn truth(
        &mut self,
        rejected_lines: Vec<u64>,
        missing_id_lines: Vec<u64>,
        duplicates_dropped: u64,
    ) -> GroundTruth {
        let layout = self.layout;
        // Sort packed keys by numbers that order as `TruthRow` does (county
        // name, birth year, gender, race, ethnicity, party, status,
        // registration year, district; `None` first), then build the rows in
        // that order: no string comparisons, no moving of built rows.
        let rank_of = |names: Vec<&str>| -> Vec<u128> {
            let mut order: Vec<usize> = (0..names.len()).collect();
            order.sort_by_key(|&i| names[i]);
            let mut rank = vec![0; names.len()];
            for (r, i) in order.into_iter().enumerate() {
                rank[i] = r as u128;
            }
            rank
        };
        let county_rank = rank_of(
            layout
                .county
                .counties
                .iter()
                .map(|c| c.name.as_str())
                .collect(),
        );
        let code_rank: Vec<Vec<u128>> = layout
            .coded
            .iter()
            .map(|c| rank_of(c.code_strs().collect()))
            .collect();
        // Position of each canonical dimension in the sort key, after county
        // (16 bits) and birth year (16 bits): 8 bits per code, 16 for the year.
        let shift = |dim: CodedDim| -> u32 {
            match dim {
                CodedDim::Gender => 80,
                CodedDim::Race => 72,
                CodedDim::Ethnicity => 64,
                CodedDim::Party => 56,
                CodedDim::Status => 48,
                CodedDim::CongressionalDistrict => 24,
            }
        };
        // `None` (NULL_YEAR, i16::MIN) becomes 0, below every year.
        let year_bits = |y: Option<i16>| u128::from((y.unwrap_or(NULL_YEAR) as u16) ^ 0x8000);
        let mut keys: Vec<(u128, Key, u32)> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(&k, &n)| {
                let mut sort = county_rank[k.county()] << 112 | year_bits(k.birth()) << 96;
                sort |= year_bits(k.reg()) << 32;
                for (d, c) in layout.coded.iter().enumerate() {
                    sort |= code_rank[d][k.code(d)] << shift(c.dim);
                }
                (sort, k, n)
            })
            .collect();
        self.counts = Counts::default();
        keys.sort_unstable_by_key(|(sort, ..)| *sort);
        let pos = |dim: CodedDim| layout.coded.iter().position(|c| c.dim == dim);
        let code = |d: Option<usize>, key: Key| -> Option<String> {
            d.map(|d| layout.coded[d].codes[key.code(d)].code.clone())
        };
        let dims = CodedDim::ALL.map(pos);
        let rows: Vec<TruthRow> = keys
            .into_iter()
            .map(|(_, k, n)| TruthRow {
                county: layout.county.counties[k.county()].name.clone(),
                birth_year: k.birth(),
                gender: code(dims[0], k),
                race: code(dims[1], k),
                ethnicity: code(dims[2], k),
                party: code(dims[3], k),
                status: code(dims[4], k),
                registration_year: k.reg(),
                congressional_district: code(dims[5], k),
                count: u64::from(n),
            })
            .collect();
        let mut unknown_codes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (d, per_cand) in self.unknown.iter().enumerate() {
            let source = &self.sources[self.dim_source[d]];
            for (cand, &n) in per_cand.iter().enumerate() {
                if n > 0 {
                    unknown_codes
                        .entry(layout.coded[d].dim.name().to_owned())
                        .or_default()
                        .insert(
                            String::from_utf8_lossy(&source.values[cand]).into_owned(),
                            n,
                        );
                }
            }
        }
        let rows_written = rows.iter().map(|r| r.count).sum();
        GroundTruth {
            layout: layout.name.clone(),
            rows_read: self.opts.rows,
            rows_rejected: rejected_lines.len() as u64,
            rejected_lines,
            missing_id_lines,
            duplicates_dropped,
            rows_written,
            unknown_codes,
            rows,
            identifiers: std::mem::take(&mut self.identifiers),
        }
    }
}

/// How a generated file spells a missing voter id: blank; all spaces where
/// values can be padded; each placeholder the file can hold (an unquoted file
/// cannot hold one with its delimiter) as declared, and lower-case with
/// spaces around, which ingestion must read the same.
fn missing_id_spellings(layout: &Layout, quoted: bool, can_pad: bool) -> Vec<Vec<u8>> {
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
fn build_source(layout: &Layout, dims: &[usize]) -> Source {
    let first = &layout.coded[dims[0]];
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    fn add(values: &mut Vec<Vec<u8>>, weights: &mut Vec<f64>, v: &str, w: f64) {
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
        // Every made-up value is a code: make one that is not.
        let mut u = String::from("ZZ");
        while dims.iter().any(|&d| !resolve(&layout.coded[d], &u).1) {
            u.push('Z');
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
fn code_weight(c: &CodedColumn, i: usize) -> f64 {
    let code = c.codes[i].code.to_ascii_uppercase();
    let label = c.codes[i].label.to_ascii_lowercase();
    let is = |xs: &[&str]| xs.contains(&code.as_str());
    let has = |s: &str| label.contains(s);
    if i == c.fallback && c.blank != Some(i) {
        return 0.2; // "other or unrecognised"
    }
    match c.dim {
        CodedDim::Party => {
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
        CodedDim::Status => {
            if has("inactive") || has("confirmation") || is(&["I", "INA", "INACTIVE"]) {
                10.0
            } else if i == 0 || has("active") || is(&["A", "ACT", "ACTIVE"]) {
                85.0
            } else {
                1.0
            }
        }
        CodedDim::Gender => match code.as_str() {
            "F" => 52.0,
            "M" => 46.0,
            _ => 2.0,
        },
        CodedDim::Race => {
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
        CodedDim::Ethnicity => {
            if has("not hispanic") {
                80.0
            } else if has("hispanic") {
                9.0
            } else {
                11.0
            }
        }
        CodedDim::CongressionalDistrict => {
            if c.blank == Some(i) {
                0.05
            } else {
                1.0
            }
        }
    }
}

/// What ingestion makes of a raw value for one coded dimension: (code index,
/// unknown?). Written from the documented rules: trim; blank → the `blank`
/// code if set; numeric normalisation; the map, then the table; else the
/// fallback, counted as unknown.
fn resolve(c: &CodedColumn, raw: &str) -> (u8, bool) {
    let raw = raw.trim_matches([' ', '\t']);
    if let (true, Some(b)) = (raw.is_empty(), c.blank) {
        return (b as u8, false);
    }
    let norm = if c.numeric {
        layout::normalize_numeric(raw).into_owned()
    } else {
        raw.to_owned()
    };
    let mapped = c
        .map
        .iter()
        .find(|(from, _)| from.trim() == norm)
        .map_or(norm.as_str(), |(_, to)| to.as_str());
    match c.codes.iter().position(|code| code.code == mapped) {
        Some(i) => (i as u8, false),
        None => (c.fallback as u8, true),
    }
}

#[cfg(test)]
mod tests;
