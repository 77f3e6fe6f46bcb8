//! What each line of the file will be: a voter, a duplicate, a reject or
//! another quirk, and the voter drawn for it.

use super::*;

/// Kinds of quirks, counted for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Q {
    DupTie,
    DupOlder,
    DupNewer,
    DupNullTie,
    Truncated,
    Empty,
    BadCounty,
    CountyMismatch,
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

pub(crate) const NQ: usize = Q::ExtraColumns as usize + 1;

/// Times each quirk kind was written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats(pub(crate) [u64; NQ]);

impl Stats {
    pub(crate) fn add(&mut self, q: Q) {
        self.0[q as usize] += 1;
    }
    #[cfg(test)]
    pub(crate) fn get(&self, q: Q) -> u64 {
        self.0[q as usize]
    }
}

// Render flags: how a row is spelled (never what it means).
pub(crate) const F_PAD_CODES: u32 = 1;
pub(crate) const F_LATIN1: u32 = 1 << 1;
pub(crate) const F_NICKNAME: u32 = 1 << 2;
pub(crate) const F_DELIM: u32 = 1 << 3;
pub(crate) const F_COUNTY: u32 = 1 << 4;
pub(crate) const F_NUMERIC: u32 = 1 << 5;
pub(crate) const F_PAD_ID: u32 = 1 << 6;
pub(crate) const F_CRLF: u32 = 1 << 7;

/// A date (or year) value as generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateVal {
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
pub(crate) enum DupMode {
    Tie,
    Older,
    Newer,
    NewNull,
}

/// What kind of line to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Voter,
    /// A duplicate; `true`: of the last booked voter (else a random recent one).
    Dup(DupMode, bool),
    Truncated,
    Empty,
    /// `true`: reuse a kept voter's id with a newer date (must not displace it).
    BadCounty(bool),
    /// The layout's `[county.agree]` column names another county.
    CountyMismatch,
    BrokenQuote,
    /// A missing voter id: index into `Gen::missing_ids`.
    MissingId(u8),
}

/// What part of a line is spoiled on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spoil {
    None,
    /// A county not in the reference list.
    County,
    /// The `[county.agree]` column names the next county of the list.
    CountyMismatch,
    /// The voter id is `Gen::missing_ids[i]`.
    Id(u8),
}

/// A change to the generated voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tweak {
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
pub(crate) struct Plan {
    pub(crate) kind: Kind,
    pub(crate) tweak: Tweak,
    pub(crate) flags: u32,
}

impl Plan {
    pub(crate) const VOTER: Plan = Plan {
        kind: Kind::Voter,
        tweak: Tweak::None,
        flags: 0,
    };
    pub(crate) fn kind(kind: Kind) -> Plan {
        Plan {
            kind,
            ..Plan::VOTER
        }
    }
    pub(crate) fn tweak(tweak: Tweak) -> Plan {
        Plan {
            tweak,
            ..Plan::VOTER
        }
    }
    pub(crate) fn flags(flags: u32) -> Plan {
        Plan {
            flags,
            ..Plan::VOTER
        }
    }
}

/// The row where the forced quirks (one of each kind) start.
pub(crate) const FORCED_START: u64 = 16;
/// Every this many rows, one voter takes the next county and codes in turn, so
/// that every county and code appears.
pub(crate) const COVER_EVERY: u64 = 37;

impl Gen<'_> {
    /// One line of each quirk kind, written from row `FORCED_START` on.
    pub(crate) fn forced_plans(&self) -> Vec<Plan> {
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
        if self.agree_text.is_some() {
            p.push(Plan::kind(Kind::CountyMismatch));
        }
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
    pub(crate) fn plan(&mut self, row: u64) -> Plan {
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
            13_500..13_750 if self.agree_text.is_some() => Kind::CountyMismatch,
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

    /// The quirk a missing-id spelling shows.
    pub(crate) fn missing_id_quirk(&self, k: u8) -> Q {
        let spelling = &self.missing_ids[usize::from(k)];
        if spelling.is_empty() {
            Q::MissingIdBlank
        } else if spelling.iter().all(|&b| b == b' ') {
            Q::MissingIdSpaces
        } else {
            Q::MissingIdPlaceholder
        }
    }

    pub(crate) fn voter(&mut self, id: u64) -> Voter {
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
        let mut cands = [0u8; MAX_CODED];
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
        // A listed code of a nested dimension must be one its county lists;
        // blank and unknown values stand anywhere.
        for (s, per_county) in self.nested_cands.iter().enumerate() {
            let Some(valid) = per_county.as_ref().map(|p| &p[usize::from(county)]) else {
                continue;
            };
            let drawn = usize::from(cands[s]);
            if !valid.is_empty() && !valid.contains(&cands[s]) && !self.unknown_or_blank(s, drawn) {
                cands[s] = valid[self.dice.index(valid.len())];
            }
        }
        Voter {
            id,
            county,
            birth,
            reg,
            cands,
            hist: [NO_LINE; MAX_ELECTIONS],
        }
    }

    pub(crate) fn apply(&mut self, v: &mut Voter, tweak: Tweak) {
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

    /// Whether candidate `cand` of source `s` is blank or unknown for every
    /// dimension it feeds (valid in any county).
    fn unknown_or_blank(&self, s: usize, cand: usize) -> bool {
        (0..self.dim_codes.len())
            .filter(|&d| self.dim_source[d] == s)
            .all(|d| {
                let (code, unknown) = self.dim_codes[d][cand];
                unknown || self.layout.coded[d].blank == Some(usize::from(code))
            })
    }

    /// Gives the voter the `i`-th county and the `i`-th usual code of each
    /// column (modulo their counts).
    pub(crate) fn cover(&self, v: &mut Voter, i: usize) {
        v.county = (i % self.county_text.len()) as u16;
        for (s, source) in self.sources.iter().enumerate() {
            v.cands[s] = match &self.nested_cands[s] {
                Some(p) if !p[usize::from(v.county)].is_empty() => {
                    let valid = &p[usize::from(v.county)];
                    valid[i / self.county_text.len() % valid.len()]
                }
                _ => source.usual[i % source.usual.len()],
            };
        }
    }

    /// A duplicate's registration date, relative to the kept row's.
    pub(crate) fn dup_reg(&mut self, old: DateVal, mode: DupMode) -> DateVal {
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
}
