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
    /// The field was wrapped in quotes (so `""` inside reads as `"`).
    pub quoted: bool,
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
    let mut delims = Delims::new(line, delim);
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
            on_field(index, span(start + 1, piece_end - 1, true));
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

/// Positions of one byte in a slice, found 64 bytes at a time.
///
/// Fields are short (NC lines average ten bytes a field), so a general
/// `memchr` pays its per-call set-up once per field. Instead each 64-byte
/// block is compared whole (four 16-byte SIMD compares through `wide`, safe
/// code that compiles to SSE2 on x86-64 and NEON on ARM) into a bit mask,
/// and the iterator walks its set bits: on NC lines 87 ns a line against 199
/// for the eight-byte SWAR word it replaced, and 2.3 times fewer steps than
/// fields.
struct Delims<'a> {
    data: &'a [u8],
    /// Offset of the block `mask` describes.
    pos: usize,
    /// Bit `i` set where `data[pos + i]` is the needle.
    mask: u64,
    needle: u8,
}

impl<'a> Delims<'a> {
    #[inline]
    fn new(data: &'a [u8], needle: u8) -> Self {
        let mut it = Delims {
            data,
            pos: 0,
            mask: 0,
            needle,
        };
        it.mask = it.load(0);
        it
    }

    /// Bit mask of the needle in a 16-byte piece.
    #[inline]
    fn mask16(&self, piece: [u8; 16]) -> u64 {
        let eq = wide::u8x16::new(piece).cmp_eq(wide::u8x16::splat(self.needle));
        u64::from(eq.move_mask() as u16)
    }

    /// Bytes equal to the needle in the block at `pos` (zero past the end).
    #[inline]
    fn load(&self, pos: usize) -> u64 {
        if let Some(block) = self.data.get(pos..pos + 64) {
            let piece = |i: usize| -> [u8; 16] { block[i..i + 16].try_into().expect("16 bytes") };
            return self.mask16(piece(0))
                | self.mask16(piece(16)) << 16
                | self.mask16(piece(32)) << 32
                | self.mask16(piece(48)) << 48;
        }
        let rest = self.data.get(pos..).unwrap_or_default();
        let mut mask = 0u64;
        let mut off = 0;
        while off + 16 <= rest.len() {
            mask |= self.mask16(rest[off..off + 16].try_into().expect("16 bytes")) << off;
            off += 16;
        }
        if off < rest.len() {
            // Pad with a byte that differs from the needle.
            let mut piece = [!self.needle; 16];
            piece[..rest.len() - off].copy_from_slice(&rest[off..]);
            mask |= self.mask16(piece) << off;
        }
        mask
    }
}

impl Iterator for Delims<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.pos += 64;
            if self.pos >= self.data.len() {
                return None;
            }
            self.mask = self.load(self.pos);
        }
        let at = self.pos + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

#[inline]
fn span(start: usize, end: usize, quoted: bool) -> Span {
    Span {
        start: start as u32,
        end: end as u32,
        quoted,
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

/// The field's bytes; `""` is unescaped into `scratch` when needed. Only the
/// few fields a row keeps come here, so the check for `""` is paid for them
/// alone.
#[inline]
pub fn field<'a>(line: &'a [u8], span: Span, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let raw = &line[span.start as usize..span.end as usize];
    if !span.quoted || !has_doubled_quote(raw) {
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

fn has_doubled_quote(raw: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'"', &raw[from..]) {
        if raw.get(from + i + 1) == Some(&b'"') {
            return true;
        }
        from += i + 1;
    }
    false
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
        /// The block-at-a-time scanner finds exactly the bytes memchr finds,
        /// across block boundaries and in short tails.
        #[test]
        fn delims_match_memchr(bytes in proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b'a'), Just(0xff), any::<u8>()], 0..300)) {
            let ours: Vec<usize> = Delims::new(&bytes, b'\t').collect();
            let theirs: Vec<usize> = memchr::memchr_iter(b'\t', &bytes).collect();
            prop_assert_eq!(ours, theirs);
        }

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
