//! The reader thread: every input file in order, in chunks of whole lines
//! (about 4 MiB each), with the rules compiled against each file's header;
//! a hashing thread beside it computes every file's SHA-256 for the
//! manifest.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dataset::Source;
use layout::Layout;

use crate::IngestError;
use crate::rules::{MissingColumn, Rules};

/// Target size of a chunk of whole lines handed to a parse worker.
const CHUNK_BYTES: usize = 4 << 20;

/// Whole lines of one file, in input order (`seq`).
pub(crate) struct Chunk {
    pub seq: u64,
    pub file: usize,
    /// A buffer shared with the hashing thread; the chunk is `range` of it.
    pub bytes: Arc<Vec<u8>>,
    pub range: Range<usize>,
    pub rules: Arc<Rules>,
}

/// What the reader tells the merger besides chunks.
pub(crate) enum ReaderEvent {
    Done(usize, Source),
    Failed(IngestError),
}

/// Reads every file in order, sending chunks of whole lines.
pub(crate) fn read_all(
    layout: &Layout,
    files: &[PathBuf],
    current_year: i16,
    chunks: &crossbeam_channel::Sender<Chunk>,
    events: &crossbeam_channel::Sender<ReaderEvent>,
) -> Result<(), IngestError> {
    // Hashing runs beside reading: it is the one sequential pass over every
    // byte, and on a machine with few cores it would otherwise set the pace.
    let (hash_tx, hash_rx) = crossbeam_channel::bounded::<HashMsg>(16);
    // `hash_tx` moves into the closure and drops when it returns, which ends
    // the hashing thread before the scope joins it.
    std::thread::scope(move |scope| {
        scope.spawn(move || hash_files(hash_rx, events));
        let mut seq = 0u64;
        for (index, path) in files.iter().enumerate() {
            if !read_file(
                layout,
                index,
                path,
                current_year,
                &mut seq,
                chunks,
                &hash_tx,
            )? {
                break;
            }
        }
        Ok(())
    })
}

enum HashMsg {
    Bytes(Arc<Vec<u8>>, Range<usize>),
    End(usize, Source),
}

fn hash_files(
    rx: crossbeam_channel::Receiver<HashMsg>,
    events: &crossbeam_channel::Sender<ReaderEvent>,
) {
    let mut hasher = openssl::sha::Sha256::new();
    for msg in rx {
        match msg {
            HashMsg::Bytes(buf, range) => hasher.update(&buf[range]),
            HashMsg::End(index, mut source) => {
                let done = std::mem::take(&mut hasher);
                source.sha256 = hex::encode(done.finish());
                let _ = events.send(ReaderEvent::Done(index, source));
            }
        }
    }
}

/// Reads one file into chunks of whole lines. Returns `Ok(false)` when the
/// merger has stopped (after a failure elsewhere).
fn read_file(
    layout: &Layout,
    index: usize,
    path: &Path,
    current_year: i16,
    seq: &mut u64,
    chunks: &crossbeam_channel::Sender<Chunk>,
    hash_tx: &crossbeam_channel::Sender<HashMsg>,
) -> Result<bool, IngestError> {
    let mut file = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let bytes = file.metadata().map_err(|e| IngestError::io(path, e))?.len();
    let mut carry: Vec<u8> = Vec::new();
    let mut rules: Option<Arc<Rules>> = None;
    let mut eof = false;
    while !eof {
        let mut buf = Vec::with_capacity(carry.len() + CHUNK_BYTES);
        buf.extend_from_slice(&carry);
        let before = buf.len();
        // `read_to_end` fills spare capacity without zeroing it first.
        let n = (&mut file)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut buf)
            .map_err(|e| IngestError::io(path, e))?;
        eof = n == 0;
        let buf = Arc::new(buf);
        if n > 0
            && hash_tx
                .send(HashMsg::Bytes(buf.clone(), before..before + n))
                .is_err()
        {
            return Ok(false);
        }
        let mut start = 0;
        if rules.is_none() {
            let first_end = match memchr::memchr(b'\n', &buf) {
                Some(i) => i + 1,
                None if eof => buf.len(),
                None => {
                    carry = buf.to_vec(); // first line longer than a chunk: read more
                    continue;
                }
            };
            rules = Some(Arc::new(compile(
                layout,
                path,
                &buf[..first_end],
                current_year,
            )?));
            start = if layout.format.header { first_end } else { 0 };
        }
        let cut = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf[start..]) {
                Some(i) => start + i + 1,
                None => {
                    carry = buf[start..].to_vec(); // a line longer than a chunk: read more
                    continue;
                }
            }
        };
        carry = buf[cut..].to_vec();
        if cut == start {
            continue;
        }
        let chunk = Chunk {
            seq: *seq,
            file: index,
            bytes: buf.clone(),
            range: start..cut,
            rules: rules.clone().expect("set above"),
        };
        *seq += 1;
        if chunks.send(chunk).is_err() {
            return Ok(false);
        }
    }
    let (delimiter, columns) = match &rules {
        Some(r) => (
            delimiter_name(r.delimiter()),
            r.columns_used.iter().cloned().collect(),
        ),
        None => (String::new(), Default::default()), // an empty file
    };
    let source = Source {
        file: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        bytes,
        sha256: String::new(),
        rows_read: 0,
        delimiter,
        columns,
    };
    Ok(hash_tx.send(HashMsg::End(index, source)).is_ok())
}

/// Compiles the layout's rules for one file, given its first line (the
/// header, or for a file without one, the first data line, which only
/// decides an `auto` delimiter).
pub(crate) fn compile(
    layout: &Layout,
    path: &Path,
    first_line: &[u8],
    current_year: i16,
) -> Result<Rules, IngestError> {
    let mut line = first_line.strip_suffix(b"\n").unwrap_or(first_line);
    line = line.strip_suffix(b"\r").unwrap_or(line);
    line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line); // UTF-8 BOM
    let delimiter = if layout.format.auto_delimiter {
        let expected = (!layout.format.header).then_some(layout.format.columns.len());
        detect_delimiter(line, layout.format.quoting, expected).ok_or_else(|| {
            IngestError::NoDelimiter {
                file: path.display().to_string(),
                layout: layout.name.clone(),
            }
        })?
    } else {
        layout.format.delimiter
    };
    let names: Vec<String> = if layout.format.header {
        if line.is_empty() {
            return Err(IngestError::NoHeader {
                file: path.display().to_string(),
                layout: layout.name.clone(),
            });
        }
        let mut names = Vec::new();
        let mut scratch = Vec::new();
        // A header with broken quoting still names columns; take it as split.
        let _ = crate::split::split_line(line, delimiter, layout.format.quoting, |_, span| {
            let f = crate::split::field(line, span, &mut scratch);
            names.push(String::from_utf8_lossy(crate::split::trim(f)).into_owned());
        });
        names
    } else {
        positional_names(layout, line, delimiter)
    };
    let one_field = layout.format.header && names.len() == 1;
    let rules = Rules::new(layout, &names, current_year).map_err(|MissingColumn(column)| {
        let (key, names) = layout_key(layout, &column);
        IngestError::MissingColumn {
            file: path.display().to_string(),
            key,
            hint: if one_field {
                delimiter_hint(delimiter, first_line)
            } else {
                String::new()
            },
            column: names,
            layout: layout.name.clone(),
        }
    })?;
    Ok(rules.with_delimiter(delimiter))
}

/// The column names of a file without a header: the layout's `columns`,
/// plus as many of its `optional_columns` as the first line has fields for.
fn positional_names(layout: &Layout, first_line: &[u8], delimiter: u8) -> Vec<String> {
    let f = &layout.format;
    let mut names = f.columns.clone();
    if f.optional_columns.is_empty() {
        return names;
    }
    let fields = crate::split::split_line(first_line, delimiter, f.quoting, |_, _| {}).unwrap_or(0);
    let extra = fields
        .saturating_sub(f.columns.len())
        .min(f.optional_columns.len());
    names.extend(f.optional_columns[..extra].iter().cloned());
    names
}

/// The delimiter of a `delimiter = "auto"` file from its first line: of
/// tab, pipe and comma (outside quotes), the one that splits a header-less
/// line into `expected` fields, else the most frequent; `None` when the
/// line holds none of them.
pub(crate) fn detect_delimiter(
    line: &[u8],
    quoting: layout::Quoting,
    expected: Option<usize>,
) -> Option<u8> {
    let mut counts = [0usize; 3];
    let candidates = [b'\t', b'|', b','];
    let mut quoted = false;
    for &b in line {
        if b == b'"' && quoting == layout::Quoting::Double {
            quoted = !quoted;
        } else if !quoted && let Some(i) = candidates.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    if let Some(n) = expected
        && let Some(i) = counts.iter().position(|&c| c + 1 == n)
    {
        return Some(candidates[i]);
    }
    let (i, &most) = counts
        .iter()
        .enumerate()
        .max_by_key(|&(i, c)| (*c, usize::MAX - i))?;
    (most > 0).then_some(candidates[i])
}

/// How a manifest names a delimiter.
pub(crate) fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        b'|' => "pipe".into(),
        b',' => "comma".into(),
        other => (other as char).to_string(),
    }
}

/// The layout key that names `column` (a source column's first name), and
/// all its names quoted, for errors.
fn layout_key(layout: &Layout, column: &str) -> (String, String) {
    if let Some(election) = column.strip_prefix(crate::rules::ELECTION_COLUMN) {
        return (
            "history.column_pattern".into(),
            format!("matching `history.column_pattern` for election {election}"),
        );
    }
    let is = |c: &str| c.trim().eq_ignore_ascii_case(column.trim());
    match layout.source_columns().into_iter().find(|s| is(s.names[0])) {
        Some(s) => (
            s.key,
            s.names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or "),
        ),
        None => ("format.columns".into(), format!("`{column}`")),
    }
}

/// Why a header split into one field: the layout's delimiter is not in it.
/// Says which of tab, pipe, comma and semicolon it holds most of (never the
/// header's text).
fn delimiter_hint(delimiter: u8, header: &[u8]) -> String {
    let candidates = [
        (b'\t', "tab"),
        (b'|', "pipe `|`"),
        (b',', "comma"),
        (b';', "semicolon"),
    ];
    let found = candidates
        .iter()
        .filter(|(d, _)| *d != delimiter)
        .map(|(d, name)| (header.iter().filter(|&&b| b == *d).count(), name))
        .max_by_key(|(n, _)| *n);
    let ours = candidates
        .iter()
        .find(|(d, _)| *d == delimiter)
        .map_or_else(
            || format!("`{}`", delimiter as char),
            |(_, n)| n.to_string(),
        );
    match found {
        Some((n, name)) if n > 0 => format!(
            "; the header is one field, so the delimiter is probably not {ours}: \
             it looks {name}-separated ({} fields)",
            n + 1
        ),
        _ => format!("; the header is one field, so the delimiter is probably not {ours}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_error(layout: &Layout, header: &str) -> String {
        match compile(layout, Path::new("f.txt"), header.as_bytes(), 2026) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{header} compiled"),
        }
    }

    #[test]
    fn a_missing_column_names_its_layout_key() {
        let layout = Layout::resolve("nc").unwrap();
        let header: Vec<&str> = layout
            .format
            .columns
            .iter()
            .map(String::as_str)
            .filter(|c| *c != "status_cd")
            .collect();
        let text = compile_error(&layout, &format!("{}\n", header.join("\t")));
        assert_eq!(
            text,
            "f.txt: column `status_cd` (layout `nc`, key `dimensions.status.column`) is not in the header"
        );
        let no_id: Vec<&str> = header.into_iter().filter(|c| *c != "ncid").collect();
        let text = compile_error(&layout, &format!("{}\n", no_id.join("\t")));
        assert!(text.contains("key `voter_id.column`"), "{text}");
    }

    #[test]
    fn a_header_of_one_field_says_which_delimiter_it_looks_like() {
        let layout = Layout::resolve("nc").unwrap();
        let commas = format!("{}\r\n", layout.format.columns.join(","));
        let text = compile_error(&layout, &commas);
        assert!(
            text.ends_with(&format!(
                "the delimiter is probably not tab: it looks comma-separated ({} fields)",
                layout.format.columns.len()
            )),
            "{text}"
        );
        let pipes = layout.format.columns.join("|");
        assert!(compile_error(&layout, &pipes).contains("looks pipe `|`-separated"));
        assert!(compile_error(&layout, "justonename").ends_with("probably not tab"));
    }
}
