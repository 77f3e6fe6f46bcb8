//! Date formats written with `YYYY`, `MM` and `DD` tokens and literal separators.
//!
//! Parsing is deliberately small and allocation-free: it runs once per row on
//! the ingest hot path.

/// A calendar date as parsed from a voter file (validated loosely: month 1..12,
/// day 1..31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimpleDate {
    /// Four-digit year.
    pub year: i16,
    /// Month, 1..12 (1 when the format has no month).
    pub month: u8,
    /// Day, 1..31 (1 when the format has no day).
    pub day: u8,
}

impl SimpleDate {
    /// A sortable key, `YYYYMMDD`.
    pub fn key(self) -> i32 {
        self.year as i32 * 10_000 + self.month as i32 * 100 + self.day as i32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Year,
    Month,
    Day,
    Lit(u8),
}

/// A parsed format such as `MM/DD/YYYY`, `YYYY-MM-DD` or `YYYY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    tokens: Vec<Token>,
    text: String,
}

impl DateFormat {
    /// Parses a format string. It must contain `YYYY` exactly once and at most
    /// one `MM` and one `DD`; other characters are literal separators.
    pub fn parse(text: &str) -> Result<DateFormat, String> {
        let b = text.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i..].starts_with(b"YYYY") {
                tokens.push(Token::Year);
                i += 4;
            } else if b[i..].starts_with(b"MM") {
                tokens.push(Token::Month);
                i += 2;
            } else if b[i..].starts_with(b"DD") {
                tokens.push(Token::Day);
                i += 2;
            } else if b[i].is_ascii_alphanumeric() {
                return Err(format!(
                    "unexpected `{}` in date format `{text}` (use YYYY, MM, DD and separators)",
                    b[i] as char
                ));
            } else {
                tokens.push(Token::Lit(b[i]));
                i += 1;
            }
        }
        let count = |t: Token| tokens.iter().filter(|x| **x == t).count();
        if count(Token::Year) != 1 || count(Token::Month) > 1 || count(Token::Day) > 1 {
            return Err(format!(
                "date format `{text}` must contain YYYY once and MM, DD at most once"
            ));
        }
        if count(Token::Day) == 1 && count(Token::Month) == 0 {
            return Err(format!("date format `{text}` has DD without MM"));
        }
        Ok(DateFormat {
            tokens,
            text: text.to_owned(),
        })
    }

    /// The format as written in the layout.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parses `value` (already trimmed). Months and days may be one or two
    /// digits; the year must be four. Returns `None` for anything else.
    pub fn parse_date(&self, value: &[u8]) -> Option<SimpleDate> {
        let mut pos = 0;
        let (mut year, mut month, mut day) = (None, 1u8, 1u8);
        for tok in &self.tokens {
            match *tok {
                Token::Lit(c) => {
                    if value.get(pos) != Some(&c) {
                        return None;
                    }
                    pos += 1;
                }
                Token::Year => {
                    let (v, n) = digits(&value[pos..], 4, 4)?;
                    year = Some(v as i16);
                    pos += n;
                }
                Token::Month => {
                    let (v, n) = digits(&value[pos..], 1, 2)?;
                    if !(1..=12).contains(&v) {
                        return None;
                    }
                    month = v as u8;
                    pos += n;
                }
                Token::Day => {
                    let (v, n) = digits(&value[pos..], 1, 2)?;
                    if !(1..=31).contains(&v) {
                        return None;
                    }
                    day = v as u8;
                    pos += n;
                }
            }
        }
        if pos != value.len() {
            return None;
        }
        let year = year?;
        // `02/30/2010` has the shape of a date but names no day: it is as
        // unusable as a malformed one.
        if day > days_in_month(year, month) {
            return None;
        }
        Some(SimpleDate { year, month, day })
    }
}

/// Days in `month` (1-12) of `year`, Gregorian.
fn days_in_month(year: i16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Reads between `min` and `max` ASCII digits.
fn digits(s: &[u8], min: usize, max: usize) -> Option<(u32, usize)> {
    let mut v = 0u32;
    let mut n = 0;
    while n < max && n < s.len() && s[n].is_ascii_digit() {
        v = v * 10 + (s[n] - b'0') as u32;
        n += 1;
    }
    (n >= min).then_some((v, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_dates() {
        let f = DateFormat::parse("MM/DD/YYYY").unwrap();
        let d = f.parse_date(b"03/07/2004").unwrap();
        assert_eq!((d.year, d.month, d.day), (2004, 3, 7));
        assert_eq!(f.parse_date(b"3/7/2004").unwrap().key(), 20040307);
        assert!(f.parse_date(b"##/##/####").is_none());
        assert!(f.parse_date(b"13/01/2004").is_none());
        assert!(f.parse_date(b"03/07/04").is_none());
        assert!(f.parse_date(b"03/07/2004x").is_none());
    }

    #[test]
    fn iso_dates_and_years() {
        let f = DateFormat::parse("YYYY-MM-DD").unwrap();
        assert_eq!(f.parse_date(b"1980-12-31").unwrap().key(), 19801231);
        let y = DateFormat::parse("YYYY").unwrap();
        assert_eq!(y.parse_date(b"1955").unwrap().year, 1955);
        assert!(y.parse_date(b"").is_none());
        assert!(y.parse_date(b"19x5").is_none());
    }

    #[test]
    fn impossible_days_are_not_dates() {
        let f = DateFormat::parse("MM/DD/YYYY").unwrap();
        for bad in [
            "02/30/2010",
            "02/29/2010",
            "04/31/1999",
            "02/29/1900",
            "11/31/2020",
        ] {
            assert!(f.parse_date(bad.as_bytes()).is_none(), "{bad}");
        }
        for good in [
            "02/29/2000",
            "02/29/2024",
            "02/28/2010",
            "12/31/1999",
            "01/31/2010",
        ] {
            assert!(f.parse_date(good.as_bytes()).is_some(), "{good}");
        }
        // A year-only format still gives January 1st.
        let y = DateFormat::parse("YYYY").unwrap();
        assert_eq!(y.parse_date(b"1980").unwrap().key(), 19800101);
    }

    #[test]
    fn bad_formats() {
        assert!(DateFormat::parse("MM/DD").is_err());
        assert!(DateFormat::parse("YYYY/YYYY").is_err());
        assert!(DateFormat::parse("DD.YYYY").is_err());
        assert!(DateFormat::parse("YYYY-Q").is_err());
    }
}
