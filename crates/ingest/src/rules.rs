//! The per-row rules of a layout, compiled for the hot path: which fields to
//! look at, and how a field's bytes become a county, a code or a year.

use hashbrown::HashMap;
use layout::{CountyMatch, DateSpec, Encoding, Layout, MissingVoterId};

use crate::split::{self, Span, trim};

/// Marks a null year in a [`Row`].
pub const NULL_YEAR: i16 = i16::MIN;
/// Registration-date rank of a row whose registration year is unknown: below
/// every real date, so it loses to any dated duplicate.
pub const OLDEST: i32 = i32::MIN;
/// The [`DedupKey::id`] of a row kept without a voter id (`missing = "keep"`).
/// De-duplication never groups rows with this key, and [`pack_id`] never
/// returns it, so such a row is a voter of its own.
pub const NO_VOTER_ID: u64 = u64::MAX;

/// One accepted line, reduced to what the Parquet file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Row {
    /// Index into the layout's county list.
    pub county: u16,
    /// Birth year or [`NULL_YEAR`].
    pub birth_year: i16,
    /// Registration year or [`NULL_YEAR`].
    pub registration_year: i16,
    /// Index into each coded column's table, in `Layout::coded` order; the
    /// slots past the layout's coded dimensions stay 0.
    pub codes: [u8; layout::MAX_CODED],
}

/// What the de-duplication step needs of a row. Never written anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DedupKey {
    /// The voter id packed into 64 bits (see [`pack_id`]), or [`NO_VOTER_ID`].
    pub id: u64,
    /// Registration date as `YYYYMMDD`, or [`OLDEST`].
    pub rank: i32,
}

/// Why a year came out null (for the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullYear {
    /// Empty field.
    Blank,
    /// A sentinel or masked value declared by the layout.
    SentinelOrMask,
    /// Not a date in the layout's format.
    Unparseable,
    /// A date, but its year is outside the plausible range.
    OutOfRange,
}

/// A reason a line is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The line has a different number of fields from the header.
    FieldCount {
        /// Fields found.
        found: usize,
        /// Fields expected.
        expected: usize,
    },
    /// A quote that is never closed; holds the field index.
    UnclosedQuote(usize),
    /// The county is not in the reference list.
    UnknownCounty,
    /// The layout's second county column (`[county.agree]`) names no
    /// county of the list, or another county than the first.
    CountyMismatch,
    /// The voter id is blank or one of the layout's placeholders, and the
    /// layout rejects such lines.
    MissingVoterId,
}

impl RejectReason {
    /// The reason's key in the manifest's `rejects_by_reason`.
    pub fn key(&self) -> &'static str {
        match self {
            RejectReason::FieldCount { .. } => "field_count",
            RejectReason::UnclosedQuote(_) => "broken_quoting",
            RejectReason::UnknownCounty => "unknown_county",
            RejectReason::CountyMismatch => "county_mismatch",
            RejectReason::MissingVoterId => "missing_voter_id",
        }
    }
}

/// A coded value that was not in the table: which coded column, and the raw
/// (trimmed) value. Counted in the manifest only if the row is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownCode {
    /// Index into `Layout::coded`.
    pub column: u8,
    /// The trimmed value, decoded for display.
    pub value: String,
}

/// How [`MissingColumn`] names an in-file election column that no header
/// name matches: this prefix, then the election.
pub const ELECTION_COLUMN: &str = "for election ";

/// Slots of the fields a row needs, by role.
const SLOT_ID: usize = 0;
const SLOT_COUNTY: usize = 1;
const SLOT_BIRTH: usize = 2;
const SLOT_REG: usize = 3;
const SLOT_AGREE: usize = 4;
const SLOT_CODED: usize = 5; // 5..5+MAX_CODED

/// How a coded value found its code (for `rollcall layout check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matched {
    /// The value is a code of the table.
    #[default]
    Code,
    /// The value is a key of the dimension's `map`.
    Mapped,
    /// The field is blank and the dimension has a `blank` code.
    Blank,
    /// The field is blank and the dimension has no `blank` code: it became
    /// the fallback and is counted as unknown.
    BlankUnknown,
    /// None of these: the value became the fallback and is counted as
    /// unknown.
    Unknown,
}

impl Matched {
    /// Whether the value is counted as an unknown code.
    pub fn is_unknown(self) -> bool {
        matches!(self, Matched::Unknown | Matched::BlankUnknown)
    }
}

struct CodeTable {
    slot: usize,
    /// Value → index of its code, plus [`MAPPED`] for a `map` key.
    lookup: Lookup<u16>,
    fallback: u8,
    blank: Option<u8>,
    numeric: bool,
    digits_only: bool,
    case_insensitive: bool,
    /// For a dimension within the county: `valid[county × codes + code]`.
    within: Option<(usize, Vec<bool>)>,
}

impl CodeTable {
    /// Whether `code` may stand in `county`: always, unless the dimension
    /// nests in the county and the pair is not listed (it then counts as
    /// unknown, like a code outside the table).
    #[inline]
    fn valid_in(&self, county: u16, code: u8) -> bool {
        self.within
            .as_ref()
            .is_none_or(|(width, valid)| valid[usize::from(county) * width + usize::from(code)])
    }
}

/// The valid-pair table of a nested dimension, indexed `county × codes + code`.
fn valid_pairs(c: &layout::CodedColumn, counties: usize) -> Option<(usize, Vec<bool>)> {
    let nested = c.within.as_ref()?;
    let width = c.codes.len();
    let mut valid = vec![false; counties * width];
    for &(county, code) in &nested.pairs {
        valid[usize::from(county) * width + usize::from(code)] = true;
    }
    Some((width, valid))
}

/// Marks a [`CodeTable`] lookup value that came from the `map`.
const MAPPED: u16 = 1 << 8;

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A coded dimension's lookup: its codes, then its `map` keys (upper-cased
/// for a case-insensitive one), each to the index of its code.
fn code_table(c: &layout::CodedColumn, slot: usize, counties: usize) -> CodeTable {
    let key = |k: &str| {
        if c.case_insensitive {
            k.to_ascii_uppercase()
        } else {
            k.to_owned()
        }
    };
    let mut lookup = Lookup::new();
    for (idx, code) in c.codes.iter().enumerate() {
        lookup.insert(key(&code.code).as_bytes(), idx as u16);
    }
    for (from, to) in &c.map {
        let idx = c
            .codes
            .iter()
            .position(|code| &code.code == to)
            .expect("validated");
        lookup.insert(key(from.trim()).as_bytes(), idx as u16 | MAPPED);
    }
    CodeTable {
        slot,
        lookup,
        fallback: c.fallback as u8,
        blank: c.blank.map(|b| b as u8),
        numeric: c.numeric,
        digits_only: c.digits_only,
        case_insensitive: c.case_insensitive,
        within: valid_pairs(c, counties),
    }
}

/// The county list as a lookup from the upper-cased name or code (each
/// name also as Latin-1 bytes) to its index.
fn county_lookup(layout: &Layout, by: CountyMatch, numeric: bool) -> Lookup<u16> {
    let mut lookup = Lookup::new();
    for (idx, county) in layout.county.counties.iter().enumerate() {
        let key = match by {
            CountyMatch::Name => &county.name,
            CountyMatch::Code => &county.code,
        };
        let key = if numeric {
            layout::normalize_numeric(key).into_owned()
        } else {
            key.clone()
        };
        let upper = key.to_uppercase();
        lookup.insert(upper.as_bytes(), idx as u16);
        // The same name as Latin-1 bytes, so `DOÑA ANA` matches in either encoding.
        if let Some(latin1) = upper
            .chars()
            .map(|c| u8::try_from(c as u32).ok())
            .collect::<Option<Vec<u8>>>()
        {
            lookup.insert(&latin1, idx as u16);
        }
    }
    lookup
}

/// A date column's rule: its format, and its sentinels split into dates
/// (compared after parsing) and masks (compared as bytes).
fn date_rule(d: &DateSpec, format: &layout::DateFormat, min_year: i16) -> DateRule {
    let (mut sentinel_keys, mut masks) = (Vec::new(), Vec::new());
    for value in d.sentinels.iter().chain(&d.masks) {
        match format.parse_date(value.as_bytes()) {
            Some(date) => sentinel_keys.push(date.key()),
            None => masks.push(value.as_bytes().to_vec()),
        }
    }
    DateRule {
        format: format.clone(),
        sentinel_keys,
        masks,
        min_year,
    }
}

struct DateRule {
    format: layout::DateFormat,
    /// Sentinels that are dates (`01/01/1900`), as `YYYYMMDD` keys: compared
    /// after parsing, as integers.
    sentinel_keys: Vec<i32>,
    /// Sentinels and masks that are not dates (`##/##/####`), as bytes.
    masks: Vec<Vec<u8>>,
    min_year: i16,
}

/// A byte-string → value map for short keys (codes, county names): keys of up
/// to 15 bytes are packed into a `u128`, so a lookup hashes and compares one
/// integer instead of calling `memcmp`.
struct Lookup<T> {
    short: HashMap<u128, T>,
    long: HashMap<Vec<u8>, T>,
}

impl<T: Copy> Lookup<T> {
    fn new() -> Self {
        Lookup {
            short: HashMap::new(),
            long: HashMap::new(),
        }
    }

    fn insert(&mut self, key: &[u8], value: T) {
        match pack16(key) {
            Some(k) => self.short.insert(k, value),
            None => self.long.insert(key.to_vec(), value),
        };
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<T> {
        match pack16(key) {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(key).copied(),
        }
    }
}

#[inline]
fn pack16(b: &[u8]) -> Option<u128> {
    if b.len() > 15 {
        return None;
    }
    let mut a = [0u8; 16];
    a[..b.len()].copy_from_slice(b);
    a[15] = b.len() as u8;
    Some(u128::from_le_bytes(a))
}

/// A layout compiled against one file's header.
pub struct Rules {
    /// For each source column index, the slots it feeds (a column can feed two
    /// slots: FL's `Race` gives race and ethnicity).
    slots_of_column: Vec<[u8; 2]>,
    /// Number of fields every line must have.
    pub expected_fields: usize,
    /// One past the last column that feeds a slot: later fields are only
    /// counted.
    wanted_fields: usize,
    /// Source column names (for reject messages).
    pub column_names: Vec<String>,
    county_lookup: Lookup<u16>,
    county_numeric: bool,
    /// The lookup of `[county.agree]`'s column, if the layout has one.
    agree: Option<(Lookup<u16>, bool)>,
    /// Which of each source column's names this file has, by layout key.
    pub columns_used: Vec<(String, String)>,
    /// The layout's placeholder ids, as bytes.
    id_placeholders: Vec<Vec<u8>>,
    missing_id: MissingVoterId,
    birth: Option<DateRule>,
    reg: Option<DateRule>,
    coded: Vec<CodeTable>,
    /// In-file history (OH): one slot per configured election, after the
    /// coded ones; the votes go to `Row::codes` past the coded dimensions.
    votes: Vec<VoteRule>,
    history: Option<layout::History>,
    delimiter: u8,
    quoting: layout::Quoting,
    encoding: Encoding,
    current_year: i16,
}

const NO_SLOT: u8 = u8::MAX;

/// One election's column of in-file history.
struct VoteRule {
    slot: usize,
    /// Election day, `YYYYMMDD`: a blank cell of a voter registered later
    /// is `not_registered`.
    date: i32,
}

/// A required column is missing from a file's header.
#[derive(Debug, Clone)]
pub struct MissingColumn(pub String);

impl Rules {
    /// Compiles `layout` for a file whose columns are `header` (the header
    /// line's names, or the layout's positional names). A column with
    /// alternative names is read from the first of them the header has.
    pub fn new(
        layout: &Layout,
        header: &[String],
        current_year: i16,
    ) -> Result<Rules, MissingColumn> {
        let mut columns_used = Vec::new();
        // The column of the first of `names` the header has, and which one.
        let mut find = |names: Vec<&str>| -> Result<(usize, usize), MissingColumn> {
            for (choice, name) in names.iter().enumerate() {
                if let Some(i) = header
                    .iter()
                    .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
                {
                    if choice > 0 {
                        columns_used.push((names[0].to_owned(), (*name).to_owned()));
                    }
                    return Ok((i, choice));
                }
            }
            Err(MissingColumn(names[0].to_owned()))
        };
        let with = |first: &'_ str, rest: &'_ [String]| -> Vec<String> {
            std::iter::once(first.to_owned())
                .chain(rest.iter().cloned())
                .collect()
        };
        let mut slots_of_column = vec![[NO_SLOT; 2]; header.len()];
        let mut assign = |column: usize, slot: usize| {
            let s = &mut slots_of_column[column];
            if s[0] == NO_SLOT {
                s[0] = slot as u8;
            } else {
                s[1] = slot as u8;
            }
        };
        let county = &layout.county;
        let id_names = with(&layout.voter_id, &layout.voter_id_alternatives);
        assign(find(strs(&id_names))?.0, SLOT_ID);
        let county_names = with(&county.column, &county.alternatives);
        assign(find(strs(&county_names))?.0, SLOT_COUNTY);
        let agree = match &county.agree {
            Some(a) => {
                let names = with(&a.column, &a.alternatives);
                assign(find(strs(&names))?.0, SLOT_AGREE);
                Some((county_lookup(layout, a.matched_by, a.numeric), a.numeric))
            }
            None => None,
        };
        let mut date =
            |d: &DateSpec, slot: usize, min_year: i16| -> Result<DateRule, MissingColumn> {
                let mut names = vec![d.column.as_str()];
                names.extend(d.alternatives.iter().map(|(c, _)| c.as_str()));
                let (i, choice) = find(names)?;
                assign(i, slot);
                let format = match choice {
                    0 => &d.format,
                    n => &d.alternatives[n - 1].1,
                };
                Ok(date_rule(d, format, min_year))
            };
        let birth = layout
            .birth_year
            .as_ref()
            .map(|d| date(d, SLOT_BIRTH, layout.min_birth_year))
            .transpose()?;
        let reg = layout
            .registration_date
            .as_ref()
            .map(|d| date(d, SLOT_REG, layout.first_registration_year))
            .transpose()?;
        let mut coded = Vec::new();
        for (i, c) in layout.coded.iter().enumerate() {
            let slot = SLOT_CODED + i;
            let names = with(&c.column, &c.alternatives);
            assign(find(strs(&names))?.0, slot);
            coded.push(code_table(c, slot, layout.county.counties.len()));
        }
        let mut votes = Vec::new();
        let in_file = layout
            .history
            .as_ref()
            .filter(|h| matches!(h.source, layout::HistorySource::Columns(_)));
        if let Some(h) = in_file {
            for (k, e) in layout.elections.iter().enumerate() {
                let slot = SLOT_CODED + layout.coded.len() + k;
                let column = header
                    .iter()
                    .position(|name| h.column_election(name) == Some((e.kind, e.date)))
                    .ok_or_else(|| {
                        MissingColumn(format!(
                            "{ELECTION_COLUMN}{} ({} {})",
                            e.id,
                            e.kind.as_str(),
                            e.date_text()
                        ))
                    })?;
                assign(column, slot);
                votes.push(VoteRule { slot, date: e.date });
            }
        }
        let wanted_fields = slots_of_column
            .iter()
            .rposition(|s| s.iter().any(|&slot| slot != NO_SLOT))
            .map_or(0, |last| last + 1);
        Ok(Rules {
            slots_of_column,
            expected_fields: header.len(),
            wanted_fields,
            column_names: header.to_vec(),
            county_lookup: county_lookup(layout, county.matched_by, county.numeric),
            county_numeric: county.numeric,
            agree,
            columns_used,
            id_placeholders: layout
                .voter_id_placeholders
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            missing_id: layout.missing_voter_id,
            birth,
            reg,
            coded,
            votes,
            history: in_file.cloned(),
            delimiter: layout.format.delimiter,
            quoting: layout.format.quoting,
            encoding: layout.format.encoding,
            current_year,
        })
    }

    /// The same rules splitting on `delimiter` (the one detected for a file
    /// of a `delimiter = "auto"` layout).
    pub fn with_delimiter(mut self, delimiter: u8) -> Rules {
        self.delimiter = delimiter;
        self
    }

    /// The delimiter these rules split on.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Applies the rules to one line (without its terminator).
    pub fn apply(
        &self,
        line: &[u8],
        out: &mut RowOutcome,
    ) -> Result<(Row, DedupKey), RejectReason> {
        let mut spans = [Span::default(); SLOT_CODED + layout::MAX_CODED];
        let result = split::split_line_wanting(
            line,
            self.delimiter,
            self.quoting,
            self.wanted_fields,
            |i, span| {
                if let Some(slots) = self.slots_of_column.get(i) {
                    for s in *slots {
                        if s != NO_SLOT {
                            spans[s as usize] = span;
                        }
                    }
                }
            },
        );
        let found = match result {
            Ok(n) => n,
            Err(split::SplitError::UnclosedQuote(i)) => return Err(RejectReason::UnclosedQuote(i)),
        };
        if found != self.expected_fields {
            return Err(RejectReason::FieldCount {
                found,
                expected: self.expected_fields,
            });
        }
        let mut scratch = std::mem::take(&mut out.scratch);
        let result = self.extract(line, &spans, &mut scratch, out);
        out.scratch = scratch;
        result
    }

    fn extract(
        &self,
        line: &[u8],
        spans: &[Span],
        scratch: &mut Vec<u8>,
        out: &mut RowOutcome,
    ) -> Result<(Row, DedupKey), RejectReason> {
        let mut row = Row::default();

        let county = trim(split::field(line, spans[SLOT_COUNTY], scratch));
        row.county = self
            .county(
                &self.county_lookup,
                self.county_numeric,
                county,
                &mut out.numeric,
            )
            .ok_or(RejectReason::UnknownCounty)?;
        if let Some((lookup, numeric)) = &self.agree {
            let other = trim(split::field(line, spans[SLOT_AGREE], scratch));
            if self.county(lookup, *numeric, other, &mut out.numeric) != Some(row.county) {
                return Err(RejectReason::CountyMismatch);
            }
        }

        // After the county, so that a line with both faults keeps the reason
        // it had before ids were checked.
        let id = self.id_key(trim(split::field(line, spans[SLOT_ID], scratch)))?;

        out.birth_null = None;
        out.reg_null = None;
        row.birth_year = match &self.birth {
            Some(rule) => {
                let v = trim(split::field(line, spans[SLOT_BIRTH], scratch));
                match self.year(rule, v) {
                    Ok(y) => y,
                    Err(why) => {
                        out.birth_null = Some(why);
                        NULL_YEAR
                    }
                }
            }
            None => NULL_YEAR,
        };
        let mut rank = OLDEST;
        row.registration_year = match &self.reg {
            Some(rule) => {
                let v = trim(split::field(line, spans[SLOT_REG], scratch));
                match self.date(rule, v) {
                    Ok(d) => {
                        rank = d.key();
                        d.year
                    }
                    Err(why) => {
                        out.reg_null = Some(why);
                        NULL_YEAR
                    }
                }
            }
            None => NULL_YEAR,
        };

        out.unknown.clear();
        for (i, table) in self.coded.iter().enumerate() {
            let raw = trim(split::field(line, spans[table.slot], scratch));
            let (code, matched) = self.code(table, row.county, raw, out);
            row.codes[i] = code;
            out.matched[i] = matched;
            if matched.is_unknown() {
                out.unknown.push(UnknownCode {
                    column: i as u8,
                    value: self.decode(raw),
                });
            }
        }
        out.unknown_votes = 0;
        if let Some(h) = &self.history {
            for (k, v) in self.votes.iter().enumerate() {
                let raw = trim(split::field(line, spans[v.slot], scratch));
                let category = if layout::History::is_blank(raw) && rank > v.date {
                    layout::NOT_REGISTERED
                } else {
                    let (c, known) = h.method(raw);
                    out.unknown_votes += u32::from(!known);
                    c
                };
                row.codes[self.coded.len() + k] = category;
            }
        }
        Ok((row, DedupKey { id, rank }))
    }

    /// The code of a trimmed coded value, and how it was found.
    #[inline]
    fn code(
        &self,
        table: &CodeTable,
        county: u16,
        raw: &[u8],
        out: &mut RowOutcome,
    ) -> (u8, Matched) {
        let raw = if table.digits_only {
            first_digits(raw)
        } else {
            raw
        };
        if raw.is_empty()
            && let Some(blank) = table.blank
        {
            return (blank, Matched::Blank);
        }
        let mut key = if table.numeric {
            normalize_numeric_bytes(raw, &mut out.numeric)
        } else {
            raw
        };
        if table.case_insensitive && key.iter().any(u8::is_ascii_lowercase) {
            out.upper.clear();
            out.upper.extend(key.iter().map(u8::to_ascii_uppercase));
            key = &out.upper;
        }
        match table.lookup.get(key) {
            Some(v) if table.valid_in(county, v as u8) => {
                let how = if v & MAPPED != 0 {
                    Matched::Mapped
                } else {
                    Matched::Code
                };
                (v as u8, how)
            }
            _ if raw.is_empty() => (table.fallback, Matched::BlankUnknown),
            _ => (table.fallback, Matched::Unknown),
        }
    }

    /// The de-duplication key of a trimmed voter id.
    fn id_key(&self, id: &[u8]) -> Result<u64, RejectReason> {
        let missing = id.is_empty()
            || self
                .id_placeholders
                .iter()
                .any(|p| p.eq_ignore_ascii_case(id));
        match (missing, self.missing_id) {
            (false, _) => Ok(pack_id(id)),
            (true, MissingVoterId::Reject) => Err(RejectReason::MissingVoterId),
            (true, MissingVoterId::Keep) => Ok(NO_VOTER_ID),
        }
    }

    /// The index of the county `raw` names in `lookup`: upper-cased, and
    /// with integers normalised when `numeric` (in `tmp`, reused per row).
    fn county(
        &self,
        lookup: &Lookup<u16>,
        numeric: bool,
        raw: &[u8],
        tmp: &mut Vec<u8>,
    ) -> Option<u16> {
        let mut buf = [0u8; 64];
        let v = if numeric {
            normalize_numeric_bytes(raw, tmp)
        } else {
            raw
        };
        let value = buf.get_mut(..v.len())?;
        value.copy_from_slice(v);
        value.make_ascii_uppercase();
        lookup.get(value)
    }

    fn date(&self, rule: &DateRule, v: &[u8]) -> Result<layout::SimpleDate, NullYear> {
        if v.is_empty() {
            return Err(NullYear::Blank);
        }
        let Some(d) = rule.format.parse_date(v) else {
            let masked = rule.masks.iter().any(|m| m == v);
            return Err(if masked {
                NullYear::SentinelOrMask
            } else {
                NullYear::Unparseable
            });
        };
        if rule.sentinel_keys.contains(&d.key()) {
            return Err(NullYear::SentinelOrMask);
        }
        if d.year < rule.min_year || d.year > self.current_year {
            return Err(NullYear::OutOfRange);
        }
        Ok(d)
    }

    fn year(&self, rule: &DateRule, v: &[u8]) -> Result<i16, NullYear> {
        self.date(rule, v).map(|d| d.year)
    }

    /// Decodes bytes for display (manifest), per the layout's encoding.
    pub fn decode(&self, raw: &[u8]) -> String {
        match (self.encoding, std::str::from_utf8(raw)) {
            (Encoding::Utf8, Ok(s)) => s.to_owned(),
            (_, Ok(s)) if s.is_ascii() => s.to_owned(),
            _ => raw.iter().map(|&b| b as char).collect(),
        }
    }

    /// The name of the coded dimension at `index` of `Layout::coded`.
    pub fn coded_dim(layout: &Layout, index: u8) -> &str {
        &layout.coded[index as usize].name
    }
}

/// Per-worker scratch space and side outputs of [`Rules::apply`].
#[derive(Default)]
pub struct RowOutcome {
    scratch: Vec<u8>,
    numeric: Vec<u8>,
    upper: Vec<u8>,
    /// How each coded value of the last row found its code, in
    /// `Layout::coded` order.
    pub matched: [Matched; layout::MAX_CODED],
    /// Unknown codes found in the last row.
    pub unknown: Vec<UnknownCode>,
    /// Why the last row's birth year is null, if it is.
    pub birth_null: Option<NullYear>,
    /// Why the last row's registration year is null, if it is.
    pub reg_null: Option<NullYear>,
    /// In-file history cells of the last row whose value is not in
    /// `[history.methods]`.
    pub unknown_votes: u32,
}

/// The first run of ASCII digits (`CG14` → `14`, `CON18TH` → `18`, `4.0` →
/// `4`), or nothing.
fn first_digits(raw: &[u8]) -> &[u8] {
    let Some(start) = raw.iter().position(u8::is_ascii_digit) else {
        return &[];
    };
    let len = raw[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    &raw[start..start + len]
}

/// `01` → `1`, `4.0` → `4`; other values unchanged (see `layout::normalize_numeric`).
fn normalize_numeric_bytes<'a>(raw: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    let int_part = raw.strip_suffix(b".0").unwrap_or(raw);
    if int_part.is_empty() || !int_part.iter().all(u8::is_ascii_digit) {
        return raw;
    }
    let first = int_part.iter().position(|&b| b != b'0');
    let s = match first {
        Some(i) => &int_part[i..],
        None => b"0",
    };
    buf.clear();
    buf.extend_from_slice(s);
    buf
}

/// Packs a voter id into 64 bits for de-duplication.
///
/// Ids of up to 12 characters from `0-9A-Z` (every known state format: NC
/// `AA123456`, OH `OH0012345678`, FL `1234567890`) are packed exactly in base
/// 37, so two different ids never share a key. Other ids are hashed (SHA-256,
/// truncated) into a separate key space marked by the top bit; a collision
/// there needs about 2^31 distinct ids to become likely. Never returns
/// [`NO_VOTER_ID`].
pub fn pack_id(id: &[u8]) -> u64 {
    if id.len() <= 12 {
        let mut v: u64 = 0;
        let mut ok = true;
        for &b in id {
            let d = match b {
                b'0'..=b'9' => b - b'0' + 1,
                b'A'..=b'Z' => b - b'A' + 11,
                _ => {
                    ok = false;
                    break;
                }
            };
            v = v * 37 + d as u64;
        }
        if ok {
            return v; // < 37^12 < 2^63
        }
    }
    let digest = openssl::sha::sha256(id);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    hashed_key(bytes)
}

/// The key of a hashed id: top bit set, and moved off [`NO_VOTER_ID`] (which
/// makes one key twice as likely as the others, at 2^-63 each).
fn hashed_key(prefix: [u8; 8]) -> u64 {
    let key = u64::from_le_bytes(prefix) | (1 << 63);
    if key == NO_VOTER_ID { key - 1 } else { key }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn packed_ids_are_distinct() {
        let ids: [&[u8]; 6] = [b"", b"0", b"00", b"A", b"AA123456", b"OH0012345678"];
        let keys: std::collections::HashSet<u64> = ids.iter().map(|i| pack_id(i)).collect();
        assert_eq!(keys.len(), ids.len());
        assert!(pack_id(b"OH0012345678") < 1 << 63);
        assert!(pack_id(b"lower-case-id") >= 1 << 63);
        assert_eq!(pack_id(b"x-1"), pack_id(b"x-1"));
    }

    #[test]
    fn no_real_id_packs_to_the_missing_id_key() {
        assert_ne!(hashed_key([0xFF; 8]), NO_VOTER_ID);
        assert_eq!(hashed_key([0xFF; 8]) >> 63, 1, "still in the hashed space");
        assert_ne!(pack_id(b"ZZZZZZZZZZZZ"), NO_VOTER_ID);
    }

    #[test]
    fn a_precinct_its_county_does_not_list_is_unknown() {
        let text = layout::builtin::layout("nc").unwrap();
        let layout = Layout::from_toml(text, "test", &|rel| {
            Ok(match rel {
                "../reference/nc_precincts.csv" => "county,code,label\n1,P1,a\n2,P2,b\n".to_owned(),
                other => layout::builtin::read_reference(other)?,
            })
        })
        .unwrap();
        let rules = Rules::new(&layout, &layout.format.columns, 2026).unwrap();
        let slot = layout
            .coded
            .iter()
            .position(|c| c.name == "precinct")
            .unwrap();
        let precinct = |county: &str, code: &str| {
            let line = nc_line(
                &layout,
                &[("county_desc", county), ("precinct_abbrv", code)],
            );
            let mut out = RowOutcome::default();
            let (row, _) = rules.apply(&line, &mut out).unwrap();
            let code = &layout.coded[slot].codes[row.codes[slot] as usize].code;
            let unknown = out.unknown.iter().filter(|u| usize::from(u.column) == slot);
            (code.clone(), unknown.count())
        };
        assert_eq!(precinct("ALAMANCE", "P1"), ("P1".into(), 0));
        assert_eq!(precinct("ALEXANDER", "P2"), ("P2".into(), 0));
        // A listed code in another county's list, and one in no list.
        assert_eq!(precinct("ALAMANCE", "P2"), ("NA".into(), 1));
        assert_eq!(precinct("ALAMANCE", "P9"), ("NA".into(), 1));
    }

    #[test]
    fn numeric_codes() {
        let mut buf = Vec::new();
        assert_eq!(normalize_numeric_bytes(b"04", &mut buf), b"4");
        assert_eq!(normalize_numeric_bytes(b"4.0", &mut buf), b"4");
        assert_eq!(normalize_numeric_bytes(b"000", &mut buf), b"0");
        assert_eq!(normalize_numeric_bytes(b"A1", &mut buf), b"A1");
    }

    fn nc_rules() -> (Layout, Rules) {
        let layout = Layout::resolve("nc").unwrap();
        let header = layout.format.columns.clone();
        let rules = Rules::new(&layout, &header, 2026).unwrap();
        (layout, rules)
    }

    /// An NC line (every field quoted) with the given columns set, others
    /// blank but the voter id, which is `AA1` unless set (a line without one
    /// is rejected).
    /// An NC line with `set`'s values, `AA1` as the id, and `county_id`
    /// the number of `county_desc`'s county (unless `set` gives it), so the
    /// county columns agree.
    pub(crate) fn nc_line(layout: &Layout, set: &[(&str, &str)]) -> Vec<u8> {
        let given = |name: &str| set.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let county_id = given("county_desc").and_then(|name| {
            let name = name.trim();
            layout
                .county
                .counties
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| c.code.clone())
        });
        let cols: Vec<String> = layout
            .format
            .columns
            .iter()
            .map(|c| match (given(c), c.as_str()) {
                (Some(v), _) => v.to_owned(),
                (None, "ncid") => "AA1".into(),
                (None, "county_id") => county_id.clone().unwrap_or_default(),
                (None, _) => String::new(),
            })
            .map(|v| format!("\"{v}\""))
            .collect();
        cols.join("\t").into_bytes()
    }

    #[test]
    fn nc_row_rules() {
        let (layout, rules) = nc_rules();
        let line = nc_line(
            &layout,
            &[
                ("county_desc", "NEW HANOVER"),
                ("ncid", "AB1"),
                ("birth_year", "1970"),
                ("registr_dt", "03/04/2001"),
                ("party_cd", " DEM "),
                ("race_code", "Q"),
                ("gender_code", ""),
                ("status_cd", "A"),
                ("ethnic_code", "NL"),
                ("cong_dist_abbrv", "07"),
            ],
        );
        let mut out = RowOutcome::default();
        let (row, key) = rules.apply(&line, &mut out).unwrap();
        let county = &layout.county.counties[row.county as usize].name;
        assert_eq!(county, "NEW HANOVER");
        assert_eq!(row.birth_year, 1970);
        assert_eq!(row.registration_year, 2001);
        assert_eq!(key.rank, 20010304);
        let code = |dim: &str, i: usize| {
            layout.coded(dim).unwrap().codes[row.codes[i] as usize]
                .code
                .clone()
        };
        assert_eq!(code("party", 3), "DEM");
        assert_eq!(code("race", 1), "U", "unknown race becomes the fallback");
        assert_eq!(
            code("gender", 0),
            "U",
            "blank gender becomes the blank code"
        );
        assert_eq!(code("congressional_district", 5), "7");
        assert_eq!(
            out.unknown,
            vec![UnknownCode {
                column: 1,
                value: "Q".into()
            }]
        );
    }

    #[test]
    fn nc_nulls_and_rejects() {
        let (layout, rules) = nc_rules();
        let mut out = RowOutcome::default();
        for (reg, birth) in [
            ("##/##/####", ""),
            ("01/01/1900", "1850"),
            ("XX-XX-XXXX", "2999"),
            ("13/45/2001", "19x0"),
        ] {
            let line = nc_line(
                &layout,
                &[
                    ("county_desc", "WAKE"),
                    ("registr_dt", reg),
                    ("birth_year", birth),
                ],
            );
            let (row, key) = rules.apply(&line, &mut out).unwrap();
            assert_eq!(row.registration_year, NULL_YEAR, "{reg}");
            assert_eq!(key.rank, OLDEST, "{reg}");
            assert_eq!(row.birth_year, NULL_YEAR, "{birth}");
        }
        let line = nc_line(&layout, &[("county_desc", "ATLANTIS")]);
        assert_eq!(
            rules.apply(&line, &mut out),
            Err(RejectReason::UnknownCounty)
        );
        let short = b"\"1\"\t\"WAKE\"";
        assert_eq!(
            rules.apply(short, &mut out),
            Err(RejectReason::FieldCount {
                found: 2,
                expected: 67
            })
        );
        let mut broken = nc_line(&layout, &[("county_desc", "WAKE")]);
        broken.truncate(broken.len() - 1);
        assert_eq!(
            rules.apply(&broken, &mut out),
            Err(RejectReason::UnclosedQuote(66))
        );
    }

    /// The NC layout with `extra` in place of its explicit `[voter_id]` defaults.
    pub(crate) fn nc_with_voter_id(extra: &str) -> Layout {
        let defaults = "placeholders = []\nmissing = \"reject\"\n";
        let text = layout::builtin::layout("nc").unwrap();
        assert!(text.contains(defaults));
        let text = text.replace(defaults, &format!("{extra}\n"));
        Layout::from_toml(&text, "test", &|rel| layout::builtin::read_reference(rel)).unwrap()
    }

    const MISSING_IDS: [&str; 5] = ["", "   ", " \t ", "0", " none "];

    #[test]
    fn blank_and_placeholder_ids_are_rejected_by_default() {
        let layout = nc_with_voter_id("placeholders = [\"0\", \"NONE\"]");
        let rules = Rules::new(&layout, &layout.format.columns, 2026).unwrap();
        let mut out = RowOutcome::default();
        for id in MISSING_IDS {
            let line = nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", id)]);
            assert_eq!(
                rules.apply(&line, &mut out),
                Err(RejectReason::MissingVoterId),
                "{id:?}"
            );
        }
        // Only whole ids are placeholders.
        for id in ["00", "NONE1", "A0"] {
            let line = nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", id)]);
            assert!(rules.apply(&line, &mut out).is_ok(), "{id:?}");
        }
        // Without placeholders, `0` is an id like any other; blank is still missing.
        let (layout, rules) = nc_rules();
        let line = nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", "0")]);
        assert!(rules.apply(&line, &mut out).is_ok());
        let line = nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", "  ")]);
        assert_eq!(
            rules.apply(&line, &mut out),
            Err(RejectReason::MissingVoterId)
        );
    }

    #[test]
    fn a_bad_county_or_field_count_is_reported_before_a_missing_id() {
        let (layout, rules) = nc_rules();
        let mut out = RowOutcome::default();
        let line = nc_line(&layout, &[("county_desc", "ATLANTIS"), ("ncid", "")]);
        assert_eq!(
            rules.apply(&line, &mut out),
            Err(RejectReason::UnknownCounty)
        );
        assert_eq!(
            rules.apply(b"\"\"\t\"WAKE\"", &mut out),
            Err(RejectReason::FieldCount {
                found: 2,
                expected: 67
            })
        );
    }

    #[test]
    fn kept_missing_ids_get_a_key_no_real_id_has() {
        let layout = nc_with_voter_id("placeholders = [\"0\", \"NONE\"]\nmissing = \"keep\"");
        let rules = Rules::new(&layout, &layout.format.columns, 2026).unwrap();
        let mut out = RowOutcome::default();
        for id in MISSING_IDS {
            let line = nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", id)]);
            let (_, key) = rules.apply(&line, &mut out).unwrap();
            assert_eq!(key.id, NO_VOTER_ID, "{id:?}");
        }
        let line = nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", "AA1")]);
        let (_, real) = rules.apply(&line, &mut out).unwrap();
        assert_eq!(real.id, pack_id(b"AA1"));
        assert_ne!(real.id, NO_VOTER_ID);
    }

    #[test]
    fn county_match_is_case_insensitive_and_latin1_safe() {
        let (layout, rules) = nc_rules();
        let mut out = RowOutcome::default();
        let mut line = nc_line(&layout, &[("county_desc", "wake"), ("last_name", "MU?OZ")]);
        let pos = line.iter().position(|&b| b == b'?').unwrap();
        line[pos] = 0xD1; // Latin-1 Ñ in a name never matters
        assert!(rules.apply(&line, &mut out).is_ok());
    }

    #[test]
    fn ohio_numeric_counties() {
        let layout = Layout::resolve("oh").unwrap();
        let mut header = layout.format.columns.clone();
        header.push("GENERAL-11/03/2020".into());
        let rules = Rules::new(&layout, &header, 2026).unwrap();
        let county_at = header.iter().position(|h| h == "COUNTY_NUMBER").unwrap();
        let mut fields = vec![String::new(); header.len()];
        fields[county_at] = "09".into();
        fields[0] = "OH0012345678".into(); // SOS_VOTERID
        let line = fields.join(",");
        let mut out = RowOutcome::default();
        let (row, _) = rules.apply(line.as_bytes(), &mut out).unwrap();
        assert_eq!(layout.county.counties[row.county as usize].code, "9");
    }

    proptest::proptest! {
        /// Surrounding spaces never change a code, and any value maps to a
        /// code of the table (the fallback when unknown): no group key comes
        /// from the data.
        #[test]
        fn codes_are_trimmed_and_always_in_the_table(party in "[ A-Z]{0,5}", pad_l in 0usize..3, pad_r in 0usize..3) {
            let (layout, rules) = nc_rules();
            let mut out = RowOutcome::default();
            let padded = format!("{}{}{}", " ".repeat(pad_l), party, " ".repeat(pad_r));
            let plain = nc_line(&layout, &[("county_desc", "WAKE"), ("party_cd", party.trim())]);
            let spaced = nc_line(&layout, &[("county_desc", "WAKE"), ("party_cd", &padded)]);
            let (a, _) = rules.apply(&plain, &mut out).unwrap();
            let (b, _) = rules.apply(&spaced, &mut out).unwrap();
            proptest::prop_assert_eq!(a.codes, b.codes);
            let parties = layout.coded("party").unwrap().codes.len();
            proptest::prop_assert!((a.codes[3] as usize) < parties);
        }

        /// Any bytes in any field: a line is accepted or rejected, never a panic.
        #[test]
        fn any_field_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), column in 0usize..67) {
            let (layout, rules) = nc_rules();
            let mut out = RowOutcome::default();
            let mut line = nc_line(&layout, &[("county_desc", "WAKE")]);
            // Replace one field's content with arbitrary bytes (no newline).
            let mut fields: Vec<Vec<u8>> = line.split(|&b| b == b'\t').map(<[u8]>::to_vec).collect();
            fields[column] = bytes.into_iter().filter(|&b| b != b'\n').collect();
            line = fields.join(&b'\t');
            let _ = rules.apply(&line, &mut out);
        }
    }

    #[test]
    fn missing_column_is_named() {
        let layout = Layout::resolve("nc").unwrap();
        let header: Vec<String> = layout
            .format
            .columns
            .iter()
            .filter(|c| *c != "party_cd")
            .cloned()
            .collect();
        let err = Rules::new(&layout, &header, 2026).err().unwrap();
        assert_eq!(err.0, "party_cd");
    }
}
