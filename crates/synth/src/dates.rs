//! Date and year columns: how a layout writes them and what counts as null.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Year,
    Month,
    Day,
    Lit(u8),
}

/// A layout date column: how to write it and what counts as null.
pub(crate) struct DateCol {
    pub(crate) toks: Vec<Tok>,
    pub(crate) has_month: bool,
    pub(crate) has_day: bool,
    /// Sentinels then masks, as written.
    pub(crate) nulls: Vec<String>,
    /// Those that parse as dates: (year, month, day) as ingestion reads them.
    pub(crate) null_dates: Vec<(i16, u8, u8)>,
    /// Plausible years.
    pub(crate) min_year: i16,
}

impl DateCol {
    pub(crate) fn new(spec: &layout::DateSpec, min_year: i16) -> DateCol {
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
    pub(crate) fn effective(&self, m: u8, d: u8) -> (u8, u8) {
        (
            if self.has_month { m } else { 1 },
            if self.has_day { d } else { 1 },
        )
    }

    /// A real date, moved off any sentinel it would spell.
    pub(crate) fn date(&self, mut y: i16, m: u8, d: u8, current_year: i16) -> DateVal {
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

    pub(crate) fn write(&self, buf: &mut Vec<u8>, v: DateVal) {
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
    pub(crate) fn year(&self, v: DateVal, current_year: i16) -> Option<i16> {
        match v {
            DateVal::Date(y, ..) if (self.min_year..=current_year).contains(&y) => Some(y),
            _ => None,
        }
    }
}
