//! One line, rendered in the layout's exact spelling.

use super::*;

impl Gen<'_> {
    pub(crate) fn render_bad_county(
        &mut self,
        v: &Voter,
        flags: u32,
        sample: bool,
        line: &mut Vec<u8>,
    ) {
        self.render_with(v, flags, sample, Spoil::County, line);
        self.stats.add(Q::BadCounty);
    }

    pub(crate) fn render(&mut self, v: &Voter, flags: u32, sample: bool, line: &mut Vec<u8>) {
        self.render_with(v, flags, sample, Spoil::None, line);
    }

    /// Writes the voter as one line (without its terminator).
    pub(crate) fn render_with(
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
                Role::CountyAgree => self.agree_field(v.county, flags, spoil, line),
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
                Role::Vote(k) => self.vote_cell(usize::from(k), v, line),
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
    pub(crate) fn id_field(
        &mut self,
        v: &Voter,
        flags: u32,
        spoil: Spoil,
        line: &mut Vec<u8>,
    ) -> bool {
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

    pub(crate) fn county_field(&mut self, county: u16, flags: u32, line: &mut Vec<u8>) {
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

    /// The county again, as `[county.agree]` reads it: zero-padded when
    /// numeric and the county spelling is varied; the next county of the
    /// list when the line is spoiled so.
    pub(crate) fn agree_field(
        &mut self,
        county: u16,
        flags: u32,
        spoil: Spoil,
        line: &mut Vec<u8>,
    ) {
        let texts = self.agree_text.as_ref().expect("role");
        let county = match spoil {
            Spoil::CountyMismatch => (usize::from(county) + 1) % texts.len(),
            _ => usize::from(county),
        };
        let text = &texts[county];
        let numeric = self.layout.county.agree.as_ref().is_some_and(|a| a.numeric);
        if flags & F_COUNTY != 0 && numeric && text.iter().all(u8::is_ascii_digit) {
            line.push(b'0');
        }
        line.extend_from_slice(text);
    }

    pub(crate) fn coded_field(&mut self, s: usize, v: &Voter, flags: u32, line: &mut Vec<u8>) {
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
    pub(crate) fn filler(&mut self, f: Filler, flags: u32, line: &mut Vec<u8>) -> bool {
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
}
