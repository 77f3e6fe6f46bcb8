//! Voting history: who voted in which configured election and how, written
//! as the layout's separate history file (NC, FL) or as election columns of
//! the voter file (OH), with the truth an ingest must count from it.
//!
//! Randomness comes from a stream of its own, so the voter lines of a file
//! are the same bytes with or without history (for a file-source layout).

use super::*;

use layout::{
    CATEGORIES, DID_NOT_VOTE, Election, ElectionType, History, HistorySource, NOT_REGISTERED,
};

/// No history line for this (voter, election), or an empty OH cell.
pub(crate) const NO_LINE: u8 = u8::MAX;

/// Kinds of history quirks, counted for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hq {
    /// The same line twice.
    DupSame,
    /// Two voting lines, different methods: the first wins.
    DupOtherMethod,
    /// A did-not-vote line, then a voting line: the voting one wins.
    DupDnvThenVote,
    /// Two did-not-vote lines and nothing else.
    DupDnvOnly,
    /// A ballot in an election before the voter's registration date.
    VotedBeforeRegistration,
    /// A method in lower case.
    LowerMethod,
    /// A method padded with spaces (OH: ` x `).
    PaddedMethod,
    /// A blank method.
    BlankMethod,
    /// A method not in the table (OH: `Q`).
    UnknownMethod,
    /// An id padded with spaces.
    PaddedId,
    /// A line for an election not configured.
    OtherElection,
    /// The date of a configured election with another type.
    WrongType,
    /// A type in lower case with spaces around (still matches).
    TypeSpelling,
    /// Lines for an id that is in no voter line.
    Unmatched,
    /// Rejected: blank id.
    BlankId,
    /// Rejected: id of spaces.
    SpacesId,
    /// Rejected: unparseable date.
    BadDate,
    /// Rejected: a field missing.
    FieldCount,
    /// Rejected: unclosed quote.
    BrokenQuote,
}

pub(crate) const NHQ: usize = Hq::BrokenQuote as usize + 1;

pub(crate) const ALL_HQ: [Hq; NHQ] = [
    Hq::DupSame,
    Hq::DupOtherMethod,
    Hq::DupDnvThenVote,
    Hq::DupDnvOnly,
    Hq::VotedBeforeRegistration,
    Hq::LowerMethod,
    Hq::PaddedMethod,
    Hq::BlankMethod,
    Hq::UnknownMethod,
    Hq::PaddedId,
    Hq::OtherElection,
    Hq::WrongType,
    Hq::TypeSpelling,
    Hq::Unmatched,
    Hq::BlankId,
    Hq::SpacesId,
    Hq::BadDate,
    Hq::FieldCount,
    Hq::BrokenQuote,
];

/// Times each history quirk was written.
#[derive(Debug, Clone, Default)]
pub(crate) struct HStats(pub(crate) [u64; NHQ]);

impl HStats {
    #[cfg(test)]
    pub(crate) fn get(&self, q: Hq) -> u64 {
        self.0[q as usize]
    }
}

/// A method (or OH cell) value as written, and what ingest makes of it.
pub(crate) struct Spelling {
    pub(crate) raw: Vec<u8>,
    pub(crate) cat: u8,
    pub(crate) unknown: bool,
    /// Index of the canonical code this respells (itself when canonical).
    pub(crate) base: u8,
}

/// What fills a history-file column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HCol {
    Id,
    Date,
    Type,
    Method,
    CountyCode,
    CountyName,
    ElectionDesc,
    PartyCode,
    PartyDesc,
    Precinct,
    PrecinctDesc,
    RegNum,
    Other,
}

fn hcol_for(name: &str) -> HCol {
    let n = name.to_ascii_lowercase();
    let has = |s: &str| n.contains(s);
    let place = has("pct") || has("vtd") || has("precinct");
    if has("county") && (has("desc") || has("name")) {
        HCol::CountyName
    } else if has("county") {
        HCol::CountyCode
    } else if has("election") && has("desc") {
        HCol::ElectionDesc
    } else if has("party") && has("desc") {
        HCol::PartyDesc
    } else if has("party") {
        HCol::PartyCode
    } else if place && has("desc") {
        HCol::PrecinctDesc
    } else if place {
        HCol::Precinct
    } else if has("reg_num") || has("reg num") {
        HCol::RegNum
    } else {
        HCol::Other
    }
}

/// One configured election as the generator writes it.
pub(crate) struct Elec {
    pub(crate) date: i32,
    pub(crate) kind: ElectionType,
    /// The raw type code (from `history.types`), when the layout needs one.
    pub(crate) raw_type: Vec<u8>,
    /// A raw type code of another type (FL: the wrong-type quirk).
    pub(crate) wrong_type: Option<Vec<u8>>,
    /// Canonical voting spellings and their shares.
    pub(crate) methods: Vec<u8>,
    pub(crate) table: Table,
}

/// An election column of the voter file (OH): configured or ignored.
pub(crate) struct VoteCol {
    pub(crate) name: String,
    /// Index into the configured elections, `None` for an ignored column.
    pub(crate) election: Option<usize>,
}

/// A separate history file's writing state.
pub(crate) struct FileGen {
    pub(crate) delim: u8,
    pub(crate) quoted: bool,
    pub(crate) can_pad: bool,
    pub(crate) cols: Vec<HCol>,
    pub(crate) names: Vec<String>,
    pub(crate) header: bool,
    /// `date_format` as tokens.
    pub(crate) date_toks: Vec<Tok>,
    /// Did-not-vote spellings (canonical) and their table.
    pub(crate) dnv: Vec<u8>,
    pub(crate) dnv_table: Option<Table>,
    /// Dates (and raw types) of unconfigured elections.
    pub(crate) other: Vec<(i32, Vec<u8>)>,
    pub(crate) line_no: u64,
    pub(crate) lines_read: u64,
    pub(crate) rejected: BTreeMap<String, Vec<u64>>,
    pub(crate) other_elections: u64,
    pub(crate) unmatched: u64,
    pub(crate) duplicates: u64,
    pub(crate) next_unmatched: u64,
    pub(crate) buf: Vec<u8>,
}

pub(crate) struct HistGen {
    pub(crate) history: History,
    pub(crate) elections: Vec<Election>,
    pub(crate) elecs: Vec<Elec>,
    pub(crate) spell: Vec<Spelling>,
    pub(crate) blank_spelling: Option<u8>,
    pub(crate) unknown_spellings: Vec<u8>,
    pub(crate) file: Option<FileGen>,
    /// OH: the election columns appended to the voter file.
    pub(crate) columns: Vec<VoteCol>,
    pub(crate) dice: Dice,
    /// Quirk kinds still to write once (the first voters take them).
    pub(crate) pending: Vec<Hq>,
    /// The `party` dimension, if any.
    pub(crate) party_dim: Option<usize>,
    /// Unknown methods of kept voters' cells.
    pub(crate) unknown_methods: u64,
    pub(crate) stats: HStats,
}

/// The eight elections of 2016–2024 that tests and the demo use.
pub fn default_elections() -> Vec<Election> {
    [
        ("2016g", "2016-11-08", "general"),
        ("2018g", "2018-11-06", "general"),
        ("2020p", "2020-03-03", "primary"),
        ("2020g", "2020-11-03", "general"),
        ("2022p", "2022-05-17", "primary"),
        ("2022g", "2022-11-08", "general"),
        ("2024p", "2024-03-05", "primary"),
        ("2024g", "2024-11-05", "general"),
    ]
    .iter()
    .map(|(id, date, kind)| Election::new(id, date, kind).expect("valid election"))
    .collect()
}

fn toks_of(format: &str) -> Vec<Tok> {
    let text = format.as_bytes();
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
    toks
}

/// Writes `YYYYMMDD` in a date format's tokens; `bad` writes month 13, day
/// 45 (or a year `19X5` for a year-only format): unparseable.
fn write_date(toks: &[Tok], date: i32, bad: bool, buf: &mut Vec<u8>) {
    let has_month = toks.contains(&Tok::Month);
    if bad && !has_month {
        buf.extend_from_slice(b"19X5");
        return;
    }
    let (y, m, d) = if bad {
        (date / 10_000, 13, 45)
    } else {
        (date / 10_000, date / 100 % 100, date % 100)
    };
    for t in toks {
        match *t {
            Tok::Year => push_num(buf, y as u64, 4),
            Tok::Month => push_num(buf, m as u64, 2),
            Tok::Day => push_num(buf, d as u64, 2),
            Tok::Lit(c) => buf.push(c),
        }
    }
}

/// The first raw type code `types` lists for `kind`.
fn raw_type(history: &History, kind: ElectionType) -> Option<Vec<u8>> {
    history
        .types
        .iter()
        .find(|(_, k)| **k == kind)
        .map(|(raw, _)| raw.as_bytes().to_vec())
}

/// Share of each voting category (index into `CATEGORIES`) in an election.
fn category_weights(kind: ElectionType, year: i32) -> [f64; 8] {
    // did_not_vote, not_registered, election_day, early, mail, provisional,
    // other, voted_method_unknown
    match kind {
        ElectionType::General if year == 2020 => [0.0, 0.0, 18.0, 50.0, 30.0, 1.0, 0.6, 0.3],
        ElectionType::General if year % 4 == 0 => [0.0, 0.0, 30.0, 55.0, 10.0, 2.0, 0.6, 0.3],
        ElectionType::General => [0.0, 0.0, 45.0, 40.0, 12.0, 1.5, 0.5, 0.3],
        _ => [0.0, 0.0, 55.0, 35.0, 8.0, 1.0, 0.4, 0.3],
    }
}

/// Mode of a voter line for history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HMode {
    /// An accepted voter with a fresh id.
    Accepted,
    /// A rejected voter line with a fresh id (never accepted).
    Rejected,
    /// A line without an id.
    NoId,
}

impl HistGen {
    pub(crate) fn new(
        layout: &Layout,
        opts: &SynthOptions,
        err: &dyn Fn(String) -> SynthError,
    ) -> Result<Option<HistGen>, SynthError> {
        if opts.elections.is_empty() {
            return Ok(None);
        }
        let Some(history) = layout.history.clone() else {
            return Err(err(
                "has no [history] section: it cannot write voting history".into(),
            ));
        };
        if opts.elections.len() > layout::MAX_ELECTIONS {
            return Err(err(format!(
                "more than {} elections",
                layout::MAX_ELECTIONS
            )));
        }
        for (i, a) in opts.elections.iter().enumerate() {
            for b in &opts.elections[..i] {
                if a.id == b.id || a.date == b.date {
                    return Err(err(format!(
                        "elections `{}` and `{}` share an id or a date",
                        b.id, a.id
                    )));
                }
            }
        }
        let columns_source = matches!(history.source, HistorySource::Columns(_));
        let typed = match &history.source {
            HistorySource::File(f) => f.type_column.is_some(),
            HistorySource::Columns(_) => true,
        };

        // Spellings: every code as listed, then lower case, padded, padded
        // lower case; a blank; codes not in the table.
        let mut spell: Vec<Spelling> = Vec::new();
        for (code, &cat) in &history.methods {
            spell.push(Spelling {
                raw: code.as_bytes().to_vec(),
                cat,
                unknown: false,
                base: spell.len() as u8,
            });
        }
        let canonical = spell.len();
        if canonical * 4 + 8 > usize::from(NO_LINE) {
            return Err(err("too many history method codes".into()));
        }
        for i in 0..canonical {
            let code = String::from_utf8_lossy(&spell[i].raw).into_owned();
            let cat = spell[i].cat;
            for raw in [
                code.to_ascii_lowercase(),
                format!(" {code} "),
                format!(" {}  ", code.to_ascii_lowercase()),
            ] {
                spell.push(Spelling {
                    raw: raw.into_bytes(),
                    cat,
                    unknown: false,
                    base: i as u8,
                });
            }
        }
        let blank_spelling = (!columns_source).then(|| {
            spell.push(Spelling {
                raw: Vec::new(),
                cat: history.blank,
                unknown: false,
                base: spell.len() as u8,
            });
            (spell.len() - 1) as u8
        });
        let mut unknown_spellings = Vec::new();
        for u in ["Q", "Z", "F", "ZZ", "QQQ"] {
            if unknown_spellings.len() < 2 && !history.methods.contains_key(u) {
                unknown_spellings.push(spell.len() as u8);
                spell.push(Spelling {
                    raw: u.as_bytes().to_vec(),
                    cat: history.fallback,
                    unknown: true,
                    base: spell.len() as u8,
                });
            }
        }

        let mut elecs = Vec::new();
        for e in &opts.elections {
            let year = e.date / 10_000;
            let raw = if typed {
                raw_type(&history, e.kind).ok_or_else(|| {
                    err(format!(
                        "history.types has no code for `{}` elections (election `{}`)",
                        e.kind.as_str(),
                        e.id
                    ))
                })?
            } else {
                e.kind.as_str().to_ascii_uppercase().into_bytes()
            };
            let wrong_type = history
                .types
                .iter()
                .find(|(_, k)| **k != e.kind)
                .map(|(r, _)| r.as_bytes().to_vec());
            let cats = category_weights(e.kind, year);
            let primary = e.kind != ElectionType::General;
            let mut methods = Vec::new();
            let mut weights = Vec::new();
            let modern = |c: &str| c.contains("ELECTION DAY") || c.contains("EARLY VOTING");
            for (i, s) in spell.iter().enumerate().take(canonical) {
                if s.cat == DID_NOT_VOTE {
                    continue;
                }
                let code = String::from_utf8_lossy(&s.raw).into_owned();
                let mut w = if columns_source {
                    // OH: `X` in a general, a party letter in a primary.
                    match (code.as_str(), primary) {
                        ("X", false) => 1.0,
                        ("X", true) => 0.05,
                        (_, false) => 0.0,
                        ("D", true) => 0.42,
                        ("R", true) => 0.5,
                        (_, true) => 0.01,
                    }
                } else {
                    // Within a category, shares by code, then scaled to the
                    // category's share.
                    let factor = |c: &str, others: &[&Spelling]| -> f64 {
                        let mut f = 1.0;
                        if others
                            .iter()
                            .any(|o| modern(&String::from_utf8_lossy(&o.raw)))
                        {
                            // NC: `ELECTION DAY IN-PERSON` from 2020, `IN-PERSON` before.
                            f *= if modern(c) == (year >= 2020) {
                                1.0
                            } else {
                                0.03
                            };
                        }
                        if c.contains("CURBSIDE") {
                            f *= 0.06;
                        }
                        f
                    };
                    let same_cat: Vec<&Spelling> = spell[..canonical]
                        .iter()
                        .filter(|o| o.cat == s.cat)
                        .collect();
                    let sum: f64 = same_cat
                        .iter()
                        .map(|o| factor(&String::from_utf8_lossy(&o.raw), &same_cat))
                        .sum();
                    cats[usize::from(s.cat)] * factor(&code, &same_cat) / sum
                };
                if w < 0.0 {
                    w = 0.0;
                }
                methods.push(i as u8);
                weights.push(w);
            }
            if methods.is_empty() {
                return Err(err("history.methods has no code of a ballot cast".into()));
            }
            elecs.push(Elec {
                date: e.date,
                kind: e.kind,
                raw_type: raw,
                wrong_type,
                table: Table::new(&weights),
                methods,
            });
        }

        let taken = |d: i32| opts.elections.iter().any(|e| e.date == d);
        let mut columns = Vec::new();
        let mut file = None;
        match &history.source {
            HistorySource::Columns(c) => {
                if !layout.format.header {
                    return Err(err(
                        "in-file history needs a header naming the columns".into()
                    ));
                }
                let toks = toks_of(c.date_format.as_str());
                let mut cols: Vec<(i32, String, Option<usize>)> = Vec::new();
                let name = |kind: ElectionType, date: i32| -> Option<String> {
                    let t = raw_type(&history, kind)?;
                    let mut d = Vec::new();
                    write_date(&toks, date, false, &mut d);
                    Some(format!(
                        "{}{}{}{}",
                        c.prefix,
                        String::from_utf8_lossy(&t),
                        c.separator,
                        String::from_utf8_lossy(&d)
                    ))
                };
                for (i, e) in opts.elections.iter().enumerate() {
                    cols.push((e.date, name(e.kind, e.date).expect("checked"), Some(i)));
                }
                let mut ignored = 0;
                for (date, kind) in [
                    (20230808, ElectionType::Special),
                    (20190507, ElectionType::Primary),
                    (20170502, ElectionType::Primary),
                    (20211102, ElectionType::General),
                ] {
                    if ignored < 2
                        && !taken(date)
                        && let Some(n) = name(kind, date)
                    {
                        cols.push((date, n, None));
                        ignored += 1;
                    }
                }
                cols.sort_by_key(|c| c.0);
                columns = cols
                    .into_iter()
                    .map(|(_, name, election)| VoteCol { name, election })
                    .collect();
            }
            HistorySource::File(f) => {
                if f.columns.is_empty() {
                    return Err(err(
                        "history.columns must list the history file's columns to synthesize it"
                            .into(),
                    ));
                }
                let find = |name: &str| f.columns.iter().position(|c| c.eq_ignore_ascii_case(name));
                let mut cols: Vec<HCol> = f.columns.iter().map(|c| hcol_for(c)).collect();
                let mut set = |name: &str, col: HCol| -> Result<(), SynthError> {
                    let i = find(name)
                        .ok_or_else(|| err(format!("column `{name}` is not in history.columns")))?;
                    cols[i] = col;
                    Ok(())
                };
                set(&f.voter_id, HCol::Id)?;
                set(&f.date_column, HCol::Date)?;
                if let Some(t) = &f.type_column {
                    set(t, HCol::Type)?;
                }
                set(&f.method_column, HCol::Method)?;
                let quoted = f.quoting == Quoting::Double;
                if !quoted {
                    let mut values: Vec<&[u8]> = spell.iter().map(|s| s.raw.as_slice()).collect();
                    values.extend(history.types.keys().map(|k| k.as_bytes()));
                    values.push(f.date_format.as_str().as_bytes());
                    if values.iter().any(|v| v.contains(&f.delimiter)) {
                        return Err(err("a history code contains the history delimiter and the file is not quoted".into()));
                    }
                }
                let dnv: Vec<u8> = (0..canonical)
                    .filter(|&i| spell[i].cat == DID_NOT_VOTE)
                    .map(|i| i as u8)
                    .collect();
                let dnv_table = (!dnv.is_empty()).then(|| {
                    let w: Vec<f64> = dnv
                        .iter()
                        .map(|&i| {
                            if spell[usize::from(i)].raw.starts_with(b"TRANSFER") {
                                1.0
                            } else {
                                8.0
                            }
                        })
                        .collect();
                    Table::new(&w)
                });
                let mut other = Vec::new();
                for (date, kind) in [
                    (20191105, ElectionType::General),
                    (20211102, ElectionType::General),
                    (20230307, ElectionType::Primary),
                    (20171107, ElectionType::General),
                ] {
                    if other.len() < 2 && !taken(date) {
                        let raw = if typed {
                            match raw_type(&history, kind).or_else(|| {
                                history.types.keys().next().map(|k| k.as_bytes().to_vec())
                            }) {
                                Some(r) => r,
                                None => continue,
                            }
                        } else {
                            b"MUNICIPAL".to_vec()
                        };
                        other.push((date, raw));
                    }
                }
                file = Some(FileGen {
                    delim: f.delimiter,
                    quoted,
                    can_pad: quoted || f.delimiter != b' ',
                    cols,
                    names: f.columns.clone(),
                    header: f.header,
                    date_toks: toks_of(f.date_format.as_str()),
                    dnv,
                    dnv_table,
                    other,
                    line_no: 0,
                    lines_read: 0,
                    rejected: BTreeMap::new(),
                    other_elections: 0,
                    unmatched: 0,
                    duplicates: 0,
                    next_unmatched: 990_000_000,
                    buf: Vec::new(),
                });
            }
        }
        if columns_source && !layout.format.header {
            return Err(err("in-file history needs a header".into()));
        }
        let pending = if opts.quirks {
            ALL_HQ
                .iter()
                .copied()
                .filter(|q| match q {
                    Hq::WrongType | Hq::TypeSpelling => typed && !columns_source,
                    Hq::BrokenQuote => file.as_ref().is_some_and(|f| f.quoted),
                    Hq::SpacesId | Hq::PaddedId => file.as_ref().is_some_and(|f| f.can_pad),
                    Hq::DupDnvThenVote | Hq::DupDnvOnly => {
                        file.as_ref().is_some_and(|f| !f.dnv.is_empty())
                    }
                    Hq::LowerMethod | Hq::PaddedMethod | Hq::UnknownMethod => true,
                    _ => !columns_source,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(HistGen {
            elections: opts.elections.clone(),
            elecs,
            spell,
            blank_spelling,
            unknown_spellings,
            file,
            columns,
            dice: Dice(ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6869_7374_6f72_7921)),
            pending,
            party_dim: layout.coded.iter().position(|c| c.name == "party"),
            unknown_methods: 0,
            stats: HStats::default(),
            history,
        }))
    }

    /// Whether quirk `q` is to be written now: pending (once, early), or by
    /// chance (`per_million`) when quirks are on.
    fn want(&mut self, q: Hq, quirks: bool, per_million: u32) -> bool {
        if !quirks {
            return false;
        }
        if self.pending.contains(&q) {
            return true;
        }
        self.dice.chance(per_million)
    }

    fn did(&mut self, q: Hq) {
        self.pending.retain(|p| *p != q);
        self.stats.0[q as usize] += 1;
    }

    /// The category a kept voter gets in election `e`.
    pub(crate) fn category(&self, hist: u8, e: usize, reg_rank: i32) -> u8 {
        if hist != NO_LINE {
            self.spell[usize::from(hist)].cat
        } else if reg_rank > self.elections[e].date {
            NOT_REGISTERED
        } else {
            DID_NOT_VOTE
        }
    }

    /// The header of the history file, if it has one.
    pub(crate) fn file_header(&self) -> Option<Vec<u8>> {
        let f = self.file.as_ref()?;
        if !f.header {
            return None;
        }
        let mut line = Vec::new();
        for (i, n) in f.names.iter().enumerate() {
            if i > 0 {
                line.push(f.delim);
            }
            if f.quoted {
                line.push(b'"');
            }
            push_escaped(&mut line, n.as_bytes(), f.quoted);
            if f.quoted {
                line.push(b'"');
            }
        }
        line.push(b'\n');
        Some(line)
    }
}

/// A history line to write.
#[derive(Clone, Copy)]
struct HLine<'a> {
    /// Id number, or `None` for a blank id.
    id: Option<u64>,
    pad_id: bool,
    spaces_id: bool,
    county: u16,
    date: i32,
    bad_date: bool,
    raw_type: &'a [u8],
    method: &'a [u8],
    /// Drop the last field.
    short: bool,
    /// Leave the last field's quote open.
    open_quote: bool,
}

/// Turnout in an election per million: by age, party, type and how
/// habitual a voter the person is.
fn turnout(kind: ElectionType, year: i32, age: i32, party: u8, habit: f64) -> u32 {
    let by_age = match age {
        ..18 => 0.05,
        18..25 => 0.48,
        25..35 => 0.58,
        35..50 => 0.68,
        50..65 => 0.78,
        _ => 0.84,
    };
    // 0 dem, 1 rep, 2 unaffiliated, 3 other, 4 unknown
    let by_party = [1.0, 1.04, 0.88, 0.85, 1.0][usize::from(party)];
    let p = match kind {
        ElectionType::General if year % 4 == 0 => by_age * by_party * habit,
        ElectionType::General => by_age * by_party * habit * 0.86,
        ElectionType::Primary | ElectionType::PresidentialPreference => {
            let una = if party == 2 { 0.5 } else { 1.0 };
            by_age * 0.4 * una * habit
        }
        _ => by_age * 0.2 * habit,
    };
    (p.min(0.97) * 1_000_000.0) as u32
}

impl Gen<'_> {
    /// The party kind of a voter (see [`turnout`]).
    fn party_kind(&self, v: &Voter) -> u8 {
        let Some(h) = &self.hist else { return 4 };
        let Some(d) = h.party_dim else { return 4 };
        let cand = usize::from(v.cands[self.dim_source[d]]);
        let (code, unknown) = self.dim_codes[d][cand];
        if unknown {
            return 3;
        }
        let c = &self.layout.coded[d];
        match code_weight(c, usize::from(code)) {
            31.0 => 0,
            30.0 => 1,
            37.0 => 2,
            _ => 3,
        }
    }

    /// Chooses the voter's history: OH cells, or the lines of a history
    /// file (written to the history buffer, with their counts).
    pub(crate) fn plan_history(&mut self, v: &mut Voter, mode: HMode) {
        if self.hist.is_none() {
            return;
        }
        let quirks = self.opts.quirks;
        let reg = self.rank(v.reg);
        let birth = match v.birth {
            DateVal::Date(y, ..) => i32::from(y),
            _ => 1970,
        };
        let party = self.party_kind(v);
        let h = self.hist.as_mut().expect("checked");
        let habit = [0.72, 1.0, 1.2][h.dice.index(3)];
        let n = h.elecs.len();
        // The voting spelling each election gets (NO_LINE: none).
        let mut voted = [NO_LINE; MAX_ELECTIONS];
        for (e, el) in h.elecs.iter().enumerate() {
            let year = el.date / 10_000;
            if reg <= el.date
                && h.dice
                    .chance(turnout(el.kind, year, year - birth, party, habit))
            {
                voted[e] = el.methods[el.table.pick(&mut h.dice)];
            }
        }
        if h.file.is_none() {
            // OH: cells. A voter registered after an election has an empty
            // cell for it.
            for slot in voted.iter_mut().take(n) {
                if *slot == NO_LINE {
                    continue;
                }
                if h.want(Hq::PaddedMethod, quirks, 3_000) {
                    *slot = respell(&h.spell, *slot, 3);
                    h.did(Hq::PaddedMethod);
                } else if h.want(Hq::LowerMethod, quirks, 3_000) {
                    *slot = respell(&h.spell, *slot, 1);
                    h.did(Hq::LowerMethod);
                } else if !h.unknown_spellings.is_empty()
                    && h.want(Hq::UnknownMethod, quirks, 2_000)
                {
                    *slot = h.unknown_spellings[h.dice.index(h.unknown_spellings.len())];
                    h.did(Hq::UnknownMethod);
                }
            }
            v.hist = voted;
            return;
        }
        match mode {
            HMode::NoId => {}
            HMode::Rejected => {
                // Its id is in no accepted voter line: every line is unmatched.
                if quirks {
                    self.unmatched_lines(v.id, v.county, &voted);
                }
            }
            HMode::Accepted => self.voter_lines(v, &voted, reg),
        }
        if quirks && mode == HMode::Accepted {
            let h = self.hist.as_mut().expect("checked");
            if h.want(Hq::Unmatched, quirks, 4_000) {
                h.did(Hq::Unmatched);
                let f = h.file.as_mut().expect("file");
                let id = f.next_unmatched;
                f.next_unmatched += 1;
                let mut any = [NO_LINE; MAX_ELECTIONS];
                for (e, a) in any.iter_mut().enumerate().take(n) {
                    if e == 0 || h.dice.below(2) == 0 {
                        let m = h.elecs[e].table.pick(&mut h.dice);
                        *a = h.elecs[e].methods[m];
                    }
                }
                self.unmatched_lines(id, v.county, &any);
            }
        }
    }

    /// Lines for an id no accepted voter has: one per election voted.
    fn unmatched_lines(&mut self, id: u64, county: u16, voted: &[u8; MAX_ELECTIONS]) {
        let h = self.hist.as_ref().expect("checked");
        let mut lines = Vec::new();
        for (e, &s) in voted.iter().enumerate().take(h.elecs.len()) {
            if s != NO_LINE {
                lines.push((e, s));
            }
        }
        for (e, s) in lines {
            let h = self.hist.as_ref().expect("checked");
            let el = &h.elecs[e];
            let line = HLine {
                id: Some(id),
                pad_id: false,
                spaces_id: false,
                county,
                date: el.date,
                bad_date: false,
                raw_type: &el.raw_type.clone(),
                method: &h.spell[usize::from(s)].raw.clone(),
                short: false,
                open_quote: false,
            };
            let party = Vec::new();
            self.write_hline(line, &party);
            let f = self
                .hist
                .as_mut()
                .expect("checked")
                .file
                .as_mut()
                .expect("file");
            f.unmatched += 1;
        }
    }

    /// The lines of an accepted voter; sets `v.hist` to the winning
    /// spelling of each election.
    fn voter_lines(&mut self, v: &mut Voter, voted: &[u8; MAX_ELECTIONS], reg: i32) {
        let quirks = self.opts.quirks;
        let party_code: Vec<u8> = match self.hist.as_ref().and_then(|h| h.party_dim) {
            Some(d) => {
                let cand = usize::from(v.cands[self.dim_source[d]]);
                let (code, _) = self.dim_codes[d][cand];
                self.layout.coded[d].codes[usize::from(code)]
                    .code
                    .as_bytes()
                    .to_vec()
            }
            None => Vec::new(),
        };
        let h = self.hist.as_mut().expect("checked");
        let n = h.elecs.len();
        // (election or other index, date, raw type, spellings, pad id)
        struct Planned {
            e: Option<usize>,
            date: i32,
            raw_type: Vec<u8>,
            spellings: Vec<u8>,
            pad_id: bool,
        }
        let mut planned: Vec<Planned> = Vec::new();
        let mut hist = [NO_LINE; MAX_ELECTIONS];
        for e in 0..n {
            let date = h.elecs[e].date;
            let methods = h.elecs[e].methods.clone();
            let mut s: Vec<u8> = Vec::new();
            let registered = reg <= date;
            if voted[e] != NO_LINE {
                s.push(voted[e]);
            } else if registered {
                let f = h.file.as_ref().expect("file");
                if let Some(t) = &f.dnv_table
                    && h.dice.chance(100_000)
                {
                    s.push(f.dnv[t.pick(&mut h.dice)]);
                }
            } else if h.want(Hq::VotedBeforeRegistration, quirks, 5_000) {
                // History wins: a ballot before the registration date counts.
                let m = h.elecs[e].table.pick(&mut h.dice);
                s.push(methods[m]);
                h.did(Hq::VotedBeforeRegistration);
            }
            let voting = |h: &HistGen, x: u8| h.spell[usize::from(x)].cat != DID_NOT_VOTE;
            if let Some(&first) = s.first() {
                if voting(h, first) {
                    if h.want(Hq::LowerMethod, quirks, 3_000) {
                        s[0] = respell(&h.spell, first, 1);
                        h.did(Hq::LowerMethod);
                    } else if h.want(Hq::PaddedMethod, quirks, 3_000) {
                        s[0] = respell(&h.spell, first, 2);
                        h.did(Hq::PaddedMethod);
                    } else if h.blank_spelling.is_some() && h.want(Hq::BlankMethod, quirks, 2_000) {
                        s[0] = h.blank_spelling.expect("checked");
                        h.did(Hq::BlankMethod);
                    } else if !h.unknown_spellings.is_empty()
                        && h.want(Hq::UnknownMethod, quirks, 2_000)
                    {
                        s[0] = h.unknown_spellings[h.dice.index(h.unknown_spellings.len())];
                        h.did(Hq::UnknownMethod);
                    }
                    if h.want(Hq::DupSame, quirks, 2_000) {
                        s.push(s[0]);
                        h.did(Hq::DupSame);
                    } else if methods.len() > 1 && h.want(Hq::DupOtherMethod, quirks, 1_500) {
                        let base = h.spell[usize::from(s[0])].base;
                        let other = *methods.iter().find(|&&m| m != base).expect("two methods");
                        s.push(other);
                        h.did(Hq::DupOtherMethod);
                    } else if h.want(Hq::DupDnvThenVote, quirks, 1_500) {
                        let f = h.file.as_ref().expect("file");
                        if let Some(&d) = f.dnv.first() {
                            s.insert(0, d);
                            h.did(Hq::DupDnvThenVote);
                        }
                    }
                } else if h.want(Hq::DupDnvOnly, quirks, 3_000) {
                    let f = h.file.as_ref().expect("file");
                    s.push(f.dnv[f.dnv.len() - 1]);
                    h.did(Hq::DupDnvOnly);
                }
            }
            if s.is_empty() {
                continue;
            }
            // The first line whose category is not did_not_vote wins; else
            // did_not_vote (the first line).
            hist[e] = *s.iter().find(|&&x| voting(h, x)).unwrap_or(&s[0]);
            let f = h.file.as_mut().expect("file");
            f.duplicates += s.len() as u64 - 1;
            let mut raw_type = h.elecs[e].raw_type.clone();
            let typed = h.history_typed();
            if typed && h.want(Hq::TypeSpelling, quirks, 2_000) {
                raw_type = format!(
                    " {}  ",
                    String::from_utf8_lossy(&raw_type).to_ascii_lowercase()
                )
                .into_bytes();
                h.did(Hq::TypeSpelling);
            }
            let pad_id =
                h.file.as_ref().expect("file").can_pad && h.want(Hq::PaddedId, quirks, 3_000);
            if pad_id {
                h.did(Hq::PaddedId);
            }
            planned.push(Planned {
                e: Some(e),
                date,
                raw_type,
                spellings: s,
                pad_id,
            });
        }
        // Elections not configured, and a configured date with another type.
        if quirks {
            let other = h.file.as_ref().expect("file").other.clone();
            for (date, raw) in other {
                if h.want(Hq::OtherElection, quirks, 150_000) {
                    h.did(Hq::OtherElection);
                    let m = h.elecs[0].methods[h.elecs[0].table.pick(&mut h.dice)];
                    planned.push(Planned {
                        e: None,
                        date,
                        raw_type: raw,
                        spellings: vec![m],
                        pad_id: false,
                    });
                }
            }
            if h.history_typed() && h.want(Hq::WrongType, quirks, 5_000) {
                let e = h.dice.index(n);
                if let Some(w) = h.elecs[e].wrong_type.clone() {
                    h.did(Hq::WrongType);
                    planned.push(Planned {
                        e: None,
                        date: h.elecs[e].date,
                        raw_type: w,
                        spellings: vec![h.elecs[e].methods[0]],
                        pad_id: false,
                    });
                }
            }
        }
        v.hist = hist;
        for p in &planned {
            for &s in &p.spellings {
                let h = self.hist.as_ref().expect("checked");
                let method = h.spell[usize::from(s)].raw.clone();
                let line = HLine {
                    id: Some(v.id),
                    pad_id: p.pad_id,
                    spaces_id: false,
                    county: v.county,
                    date: p.date,
                    bad_date: false,
                    raw_type: &p.raw_type,
                    method: &method,
                    short: false,
                    open_quote: false,
                };
                self.write_hline(line, &party_code);
                if p.e.is_none() {
                    let f = self
                        .hist
                        .as_mut()
                        .expect("checked")
                        .file
                        .as_mut()
                        .expect("file");
                    f.other_elections += 1;
                }
            }
        }
        // Rejected lines, each a copy of a good line with one thing broken.
        if !quirks {
            return;
        }
        let h = self.hist.as_mut().expect("checked");
        let m = h.elecs[0].table.pick(&mut h.dice);
        let el = &h.elecs[0];
        let (date, raw_type, method) = (
            el.date,
            el.raw_type.clone(),
            h.spell[usize::from(el.methods[m])].raw.clone(),
        );
        for (q, reason) in [
            (Hq::BlankId, "missing_voter_id"),
            (Hq::SpacesId, "missing_voter_id"),
            (Hq::BadDate, "bad_date"),
            (Hq::FieldCount, "field_count"),
            (Hq::BrokenQuote, "broken_quoting"),
        ] {
            let h = self.hist.as_mut().expect("checked");
            let f = h.file.as_ref().expect("file");
            let possible = match q {
                Hq::SpacesId => f.can_pad,
                Hq::BrokenQuote => f.quoted,
                _ => true,
            };
            if !possible || !h.want(q, quirks, 1_000) {
                continue;
            }
            h.did(q);
            let line = HLine {
                id: (!matches!(q, Hq::BlankId | Hq::SpacesId)).then_some(v.id),
                pad_id: false,
                spaces_id: q == Hq::SpacesId,
                county: v.county,
                date,
                bad_date: q == Hq::BadDate,
                raw_type: &raw_type,
                method: &method,
                short: q == Hq::FieldCount,
                open_quote: q == Hq::BrokenQuote,
            };
            self.write_hline(line, &party_code);
            let f = self
                .hist
                .as_mut()
                .expect("checked")
                .file
                .as_mut()
                .expect("file");
            let no = f.line_no;
            f.rejected.entry(reason.to_owned()).or_default().push(no);
        }
    }

    /// Renders one history line into the history buffer and counts it read.
    fn write_hline(&mut self, l: HLine<'_>, party: &[u8]) {
        let layout = self.layout;
        let id_prefix = self.id_prefix.clone();
        let h = self.hist.as_mut().expect("checked");
        let f = h.file.as_mut().expect("file");
        let county = &layout.county.counties[usize::from(l.county)];
        let ncols = f.cols.len();
        let last = if l.short { ncols - 1 } else { ncols };
        let buf = &mut f.buf;
        for (i, col) in f.cols.iter().take(last).enumerate() {
            if i > 0 {
                buf.push(f.delim);
            }
            if f.quoted {
                buf.push(b'"');
            }
            let start = buf.len();
            match col {
                HCol::Id => match l.id {
                    Some(id) => {
                        if l.pad_id {
                            buf.push(b' ');
                        }
                        buf.extend_from_slice(&id_prefix);
                        push_num(buf, id, 9);
                        if l.pad_id {
                            buf.extend_from_slice(b"  ");
                        }
                    }
                    None if l.spaces_id => buf.extend_from_slice(b"   "),
                    None => {}
                },
                HCol::Date => write_date(&f.date_toks, l.date, l.bad_date, buf),
                HCol::Type => buf.extend_from_slice(l.raw_type),
                HCol::Method => buf.extend_from_slice(l.method),
                HCol::CountyCode => buf.extend_from_slice(county.code.as_bytes()),
                HCol::CountyName => {
                    buf.extend_from_slice(county.name.to_ascii_uppercase().as_bytes())
                }
                HCol::ElectionDesc => {
                    write_date(&f.date_toks, l.date, l.bad_date, buf);
                    buf.push(b' ');
                    buf.extend_from_slice(&l.raw_type.to_ascii_uppercase());
                }
                HCol::PartyCode => buf.extend_from_slice(party),
                HCol::PartyDesc => {
                    let d = match party {
                        b"DEM" | b"D" => "DEMOCRATIC",
                        b"REP" | b"R" => "REPUBLICAN",
                        b"" => "",
                        _ => "UNAFFILIATED",
                    };
                    buf.extend_from_slice(d.as_bytes());
                }
                HCol::Precinct => {
                    buf.push(b'P');
                    push_num(buf, 1 + u64::from(l.county % 7), 2);
                }
                HCol::PrecinctDesc => {
                    buf.extend_from_slice(b"PRECINCT ");
                    push_num(buf, 1 + u64::from(l.county % 7), 2);
                }
                HCol::RegNum => push_num(buf, 1 + l.id.unwrap_or(0) * 7 % 999_983, 12),
                HCol::Other => {
                    buf.push(b'A' + (l.county % 26) as u8);
                    push_num(buf, u64::from(l.county % 90) + 1, 1);
                }
            }
            if !f.quoted && buf[start..].contains(&f.delim) {
                for b in &mut buf[start..] {
                    if *b == f.delim {
                        *b = b'_';
                    }
                }
            }
            if f.quoted && !(l.open_quote && i + 1 == last) {
                buf.push(b'"');
            }
        }
        buf.push(b'\n');
        f.line_no += 1;
        f.lines_read += 1;
    }

    /// The OH cell of election column `k` for voter `v`.
    pub(crate) fn vote_cell(&mut self, k: usize, v: &Voter, line: &mut Vec<u8>) {
        let h = self.hist.as_mut().expect("role");
        match h.columns[k].election {
            Some(e) => {
                let s = v.hist[e];
                if s != NO_LINE {
                    line.extend_from_slice(&h.spell[usize::from(s)].raw);
                }
            }
            None => {
                if h.dice.below(5) < 2 {
                    line.push(b'X');
                }
            }
        }
    }
}

impl HistGen {
    fn history_typed(&self) -> bool {
        matches!(&self.history.source, HistorySource::File(f) if f.type_column.is_some())
    }

    /// The history part of the truth, from the booked counts.
    pub(crate) fn truth(&self, counts: &Counts, layout: &Layout) -> HistoryTruth {
        let cats = self.history.categories();
        type Counted = (
            BTreeMap<String, u64>,
            BTreeMap<String, BTreeMap<String, u64>>,
        );
        let mut per: Vec<Counted> = self
            .elections
            .iter()
            .map(|_| {
                (
                    cats.iter()
                        .map(|&c| (CATEGORIES[usize::from(c)].0.to_owned(), 0))
                        .collect(),
                    BTreeMap::new(),
                )
            })
            .collect();
        for (k, &n) in counts.iter() {
            if n == 0 {
                continue;
            }
            let county = &layout.county.counties[k.county()].name;
            for (e, (total, by_county)) in per.iter_mut().enumerate() {
                let name = CATEGORIES[usize::from(k.vote(e))].0;
                *total.entry(name.to_owned()).or_default() += u64::from(n);
                *by_county
                    .entry(county.clone())
                    .or_default()
                    .entry(name.to_owned())
                    .or_default() += u64::from(n);
            }
        }
        let elections = self
            .elections
            .iter()
            .zip(per)
            .map(|(e, (categories, by_county))| ElectionTruth {
                id: e.id.clone(),
                date: e.date_text(),
                kind: e.kind.as_str().to_owned(),
                categories,
                by_county,
            })
            .collect();
        let f = self.file.as_ref();
        HistoryTruth {
            elections,
            lines_read: f.map_or(0, |f| f.lines_read),
            rejected: f.map(|f| f.rejected.clone()).unwrap_or_default(),
            other_elections: f.map_or(0, |f| f.other_elections),
            unmatched: f.map_or(0, |f| f.unmatched),
            duplicates: f.map_or(0, |f| f.duplicates),
            unknown_methods: self.unknown_methods,
            ignored_columns: self
                .columns
                .iter()
                .filter(|c| c.election.is_none())
                .map(|c| c.name.clone())
                .collect(),
        }
    }
}

/// The `k`-th respelling (1 lower, 2 padded, 3 padded lower) of a
/// spelling's canonical code: respellings follow the canonical codes, three
/// each.
fn respell(spell: &[Spelling], s: u8, k: u8) -> u8 {
    let base = usize::from(spell[usize::from(s)].base);
    let canon = spell
        .iter()
        .enumerate()
        .take_while(|(i, x)| usize::from(x.base) == *i && !x.unknown && !x.raw.is_empty())
        .count();
    (canon + base * 3 + usize::from(k) - 1) as u8
}
