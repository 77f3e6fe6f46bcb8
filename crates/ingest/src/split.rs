//! Splitting a line into fields.
//!
//! Records are physical lines: a line ends at LF (a CR before it is dropped),
//! so line numbers in `rejects.tsv` are the numbers an editor shows. Voter
//! files do not put newlines inside fields; a quote left open at the end of a
//! line is "broken quoting" and the line is rejected.
//!
//! With `Quoting::Double`, a field that starts with `"` runs to the first `"`
//! that is followed by the delimiter or the end of the line, so it may contain
//! the delimiter (`"SMITH, JR"`). Quotes inside are kept as they are, except
//! that `""` reads as one `"`: NC files are not known to escape embedded
//! quotes, so an unescaped one must not break the line. A quote that does not
//! start a field is an ordinary byte.

use layout::Quoting;

/// A field's byte range within its line, after removing enclosing quotes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Start offset in the line.
    pub start: u32,
    /// End offset (exclusive).
    pub end: u32,
    /// The field was quoted and holds `""` to unescape.
    pub escaped: bool,
}

/// Why a line could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// A field opened a quote that no closing quote ends; holds the field's index.
    UnclosedQuote(usize),
}

/// Splits `line` (without its line terminator) on `delim`, calling
/// `on_field(index, span)` for each field. Returns the number of fields.
#[inline]
pub fn split_line(
    line: &[u8],
    delim: u8,
    quoting: Quoting,
    mut on_field: impl FnMut(usize, Span),
) -> Result<usize, SplitError> {
    let mut index = 0usize;
    let mut start = 0usize;
    let mut delims = memchr::memchr_iter(delim, line);
    if quoting == Quoting::None {
        for d in delims {
            on_field(index, span(start, d, false));
            index += 1;
            start = d + 1;
        }
        on_field(index, span(start, line.len(), false));
        return Ok(index + 1);
    }
    loop {
        let next = delims.next();
        let end = next.unwrap_or(line.len());
        if line.get(start) == Some(&b'"') {
            // A quoted field: find the piece that closes it.
            let mut piece_end = end;
            let mut next = next;
            loop {
                let piece_len = piece_end - start;
                if piece_end > start + 1 && line[piece_end - 1] == b'"' && piece_len >= 2 {
                    break;
                }
                match next {
                    Some(_) => {
                        next = delims.next();
                        piece_end = next.unwrap_or(line.len());
                    }
                    None => return Err(SplitError::UnclosedQuote(index)),
                }
            }
            let inner = &line[start + 1..piece_end - 1];
            let escaped = memchr::memmem::find(inner, b"\"\"").is_some();
            on_field(index, span(start + 1, piece_end - 1, escaped));
            index += 1;
            match next {
                Some(d) => start = d + 1,
                None => return Ok(index),
            }
        } else {
            on_field(index, span(start, end, false));
            index += 1;
            match next {
                Some(d) => start = d + 1,
                None => return Ok(index),
            }
        }
    }
}

#[inline]
fn span(start: usize, end: usize, escaped: bool) -> Span {
    Span {
        start: start as u32,
        end: end as u32,
        escaped,
    }
}

/// Trims ASCII spaces and tabs from both ends.
#[inline]
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The field's bytes; `""` is unescaped into `scratch` when needed.
#[inline]
pub fn field<'a>(line: &'a [u8], span: Span, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let raw = &line[span.start as usize..span.end as usize];
    if !span.escaped {
        return raw;
    }
    scratch.clear();
    let mut i = 0;
    while i < raw.len() {
        scratch.push(raw[i]);
        if raw[i] == b'"' && raw.get(i + 1) == Some(&b'"') {
            i += 1;
        }
        i += 1;
    }
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(line: &str, delim: u8, q: Quoting) -> Result<Vec<String>, SplitError> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let bytes = line.as_bytes();
        split_line(bytes, delim, q, |_, s| {
            out.push(String::from_utf8(field(bytes, s, &mut scratch).to_vec()).unwrap())
        })?;
        Ok(out)
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(
            fields("a\tb\t\tc", b'\t', Quoting::Double).unwrap(),
            ["a", "b", "", "c"]
        );
        assert_eq!(
            fields("\"a\"\t\"\"\t\"c d\"", b'\t', Quoting::Double).unwrap(),
            ["a", "", "c d"]
        );
        assert_eq!(fields("", b'\t', Quoting::Double).unwrap(), [""]);
        assert_eq!(fields("a\t", b'\t', Quoting::Double).unwrap(), ["a", ""]);
    }

    #[test]
    fn delimiter_inside_quotes() {
        assert_eq!(
            fields("\"OH1\",\"SMITH, JR\",\"01\"", b',', Quoting::Double).unwrap(),
            ["OH1", "SMITH, JR", "01"]
        );
    }

    #[test]
    fn embedded_quotes_are_tolerated() {
        assert_eq!(
            fields("\"JOHN \"JACK\" SMITH\"\t\"X\"", b'\t', Quoting::Double).unwrap(),
            ["JOHN \"JACK\" SMITH", "X"]
        );
        assert_eq!(
            fields("\"say \"\"hi\"\"\"\tx", b'\t', Quoting::Double).unwrap(),
            ["say \"hi\"", "x"]
        );
        assert_eq!(
            fields("ab\"c\td", b'\t', Quoting::Double).unwrap(),
            ["ab\"c", "d"]
        );
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        assert_eq!(
            fields("a\t\"bc\td", b'\t', Quoting::Double),
            Err(SplitError::UnclosedQuote(1))
        );
        assert_eq!(
            fields("\"", b'\t', Quoting::Double),
            Err(SplitError::UnclosedQuote(0))
        );
    }

    #[test]
    fn no_quoting_keeps_quotes() {
        assert_eq!(
            fields("\"a\tb\"", b'\t', Quoting::None).unwrap(),
            ["\"a", "b\""]
        );
    }

    #[test]
    fn trims_spaces() {
        assert_eq!(trim(b"  DEM "), b"DEM");
        assert_eq!(trim(b"   "), b"");
    }

    proptest! {
        /// Quoting any list of fields that contain no quote or newline, then
        /// splitting, gives the fields back.
        #[test]
        fn quote_then_split_round_trips(values in proptest::collection::vec("[^\"\n\r]{0,12}", 1..20), delim in prop_oneof![Just(b'\t'), Just(b','), Just(b'|')]) {
            let line = values.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(&(delim as char).to_string());
            let got = fields(&line, delim, Quoting::Double).unwrap();
            prop_assert_eq!(got, values);
        }

        /// Any bytes at all: the splitter never panics, and either splits or
        /// reports an unclosed quote.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let bytes: Vec<u8> = bytes.into_iter().filter(|b| *b != b'\n').collect();
            let mut n = 0;
            let r = split_line(&bytes, b'\t', Quoting::Double, |i, s| { n = i + 1; assert!(s.start <= s.end && s.end as usize <= bytes.len()); });
            if let Ok(count) = r { prop_assert_eq!(count, n); }
        }
    }
}
