//! Voting history from separate files (NC `ncvhis`, FL extracts): read in
//! parallel chunks, reduced to (voter id key, line, election, method) for
//! the configured elections only, and spilled to the same 64 hash buckets
//! as the de-duplication keys, so that [`crate::dedup::Keys::dropped`] can
//! join them to the kept voters one bucket at a time. Ids stay in the
//! ingest's owner-only temporary folder; nothing here holds a value of a
//! history line past its parse.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use dataset::Source;
use layout::{HistoryFile, Layout};
use rayon::prelude::*;

use crate::IngestError;
use crate::dedup::{BUCKETS, bucket_of};
use crate::rules::pack_id;
use crate::split::{self, Span, trim};
use crate::write;

/// Bytes of one encoded [`Line`].
pub(crate) const LINE_BYTES: usize = 16;
/// A method byte's flag: the raw value was not in the method table.
pub(crate) const UNKNOWN_METHOD: u8 = 0x80;
/// Bytes read per chunk (cut at the last line end).
const CHUNK_BYTES: usize = 8 << 20;

/// One history line of a configured election, as the join needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Line {
    /// The packed voter id.
    pub id: u64,
    /// Index into `Layout::elections`.
    pub election: u8,
    /// The line's position among all history lines: the first ballot wins.
    pub seq: u32,
    /// Index into `layout::CATEGORIES`, with [`UNKNOWN_METHOD`].
    pub method: u8,
}

impl Line {
    fn encode(&self) -> [u8; LINE_BYTES] {
        let mut b = [0u8; LINE_BYTES];
        b[..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12] = self.election;
        b[13] = self.method;
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Line {
        Line {
            id: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            seq: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            election: b[12],
            method: b[13],
        }
    }
}

/// Why a history line is rejected (`history_rejects.tsv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistoryReject {
    FieldCount,
    BrokenQuoting,
    MissingVoterId,
    BadDate,
}

impl HistoryReject {
    /// The reason's key in the manifest and the rejects file.
    pub fn key(self) -> &'static str {
        match self {
            HistoryReject::FieldCount => "field_count",
            HistoryReject::BrokenQuoting => "broken_quoting",
            HistoryReject::MissingVoterId => "missing_voter_id",
            HistoryReject::BadDate => "bad_date",
        }
    }

    /// The layout key a reader of the rejects file should look at.
    fn column_key(self) -> &'static str {
        match self {
            HistoryReject::FieldCount | HistoryReject::BrokenQuoting => "history.columns",
            HistoryReject::MissingVoterId => "history.voter_id",
            HistoryReject::BadDate => "history.date_column",
        }
    }
}

/// What reading the history files counted (for the manifest).
#[derive(Debug, Default, Clone)]
pub(crate) struct ReadCounts {
    pub lines_read: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub other_elections: u64,
    pub kept: u64,
}

/// The history lines of the configured elections, in bucket files.
pub(crate) struct Spilled {
    pub buckets: Vec<PathBuf>,
    pub counts: ReadCounts,
    pub sources: Vec<Source>,
}

/// The columns of one history file and what they mean.
struct Compiled<'a> {
    layout: &'a Layout,
    file: &'a HistoryFile,
    expected: usize,
    id: usize,
    date: usize,
    kind: Option<usize>,
    method: usize,
    wanted: usize,
}

/// Reads every history file, writing kept lines to 64 bucket files in
/// `dir` and rejected ones (file, line, key, reason) to `rejects`.
pub(crate) fn read(
    layout: &Layout,
    files: &[PathBuf],
    dir: &Path,
    rejects: &mut dyn Write,
) -> Result<Spilled, IngestError> {
    let Some(layout::HistorySource::File(format)) = layout.history.as_ref().map(|h| &h.source)
    else {
        return Err(IngestError::History(
            "the layout's [history] is not a separate file (source = \"file\"): no --history files are read".into(),
        ));
    };
    let mut buckets = Vec::with_capacity(BUCKETS);
    let mut writers = Vec::with_capacity(BUCKETS);
    for i in 0..BUCKETS {
        let path = dir.join(format!("history.{i:02}.spill"));
        let file = write::private_file()
            .open(&path)
            .map_err(|e| IngestError::io(&path, e))?;
        writers.push(BufWriter::with_capacity(64 << 10, file));
        buckets.push(path);
    }
    let mut counts = ReadCounts::default();
    let mut sources = Vec::new();
    let mut seq = 0u64;
    for path in files {
        let source = read_file(
            layout,
            format,
            path,
            &mut seq,
            &mut writers,
            &buckets,
            &mut counts,
            rejects,
        )?;
        sources.push(source);
    }
    for (w, path) in writers.into_iter().zip(&buckets) {
        w.into_inner()
            .map_err(|e| IngestError::io(path, e.into_error()))?;
    }
    Ok(Spilled {
        buckets,
        counts,
        sources,
    })
}

/// One parsed chunk: lines to spill per bucket, rejects by line index.
#[derive(Default)]
struct ChunkOut {
    lines: u64,
    kept: Vec<(u8, Line)>,
    rejects: Vec<(u64, HistoryReject)>,
    other: u64,
}

#[allow(clippy::too_many_arguments)]
fn read_file(
    layout: &Layout,
    format: &HistoryFile,
    path: &Path,
    seq: &mut u64,
    writers: &mut [BufWriter<File>],
    buckets: &[PathBuf],
    counts: &mut ReadCounts,
    rejects: &mut dyn Write,
) -> Result<Source, IngestError> {
    let io = |e| IngestError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    let mut hasher = openssl::sha::Sha256::new();
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut carry: Vec<u8> = Vec::new();
    let mut compiled: Option<Compiled> = None;
    let mut line_no = 0u64; // lines of this file before the current chunk
    let mut rows_read = 0u64;
    let threads = rayon::current_num_threads().max(1);
    loop {
        // A batch of chunks, read in order, parsed in parallel.
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(threads * 2);
        let mut eof = false;
        while batch.len() < threads * 2 {
            let mut buf = std::mem::take(&mut carry);
            let start = buf.len();
            buf.resize(start + CHUNK_BYTES, 0);
            let n = read_full(&mut file, &mut buf[start..]).map_err(io)?;
            buf.truncate(start + n);
            hasher.update(&buf[start..]);
            if n == 0 {
                eof = true;
                if !buf.is_empty() {
                    batch.push(buf);
                }
                break;
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(cut) => {
                    carry = buf[cut + 1..].to_vec();
                    buf.truncate(cut + 1);
                    batch.push(buf);
                }
                None => carry = buf,
            }
        }
        if compiled.is_none() {
            let Some(first) = batch.first_mut() else {
                break;
            };
            let (c, header_len) = compile(layout, format, first, path)?;
            if header_len > 0 {
                first.drain(..header_len);
                line_no = 1;
            }
            compiled = Some(c);
        }
        let c = compiled.as_ref().expect("compiled above");
        let outs: Vec<ChunkOut> = batch.par_iter().map(|b| parse_chunk(c, b)).collect();
        for out in outs {
            for (bucket, mut line) in out.kept {
                line.seq = (*seq + u64::from(line.seq)) as u32;
                writers[bucket as usize]
                    .write_all(&line.encode())
                    .map_err(|e| IngestError::io(&buckets[bucket as usize], e))?;
            }
            for (i, why) in out.rejects {
                *counts
                    .rejects_by_reason
                    .entry(why.key().to_owned())
                    .or_default() += 1;
                writeln!(
                    rejects,
                    "{name}\t{}\t{}\t{}",
                    line_no + i + 1,
                    why.column_key(),
                    why.key()
                )
                .map_err(|e| IngestError::io(path, e))?;
            }
            counts.other_elections += out.other;
            counts.lines_read += out.lines;
            rows_read += out.lines;
            line_no += out.lines;
            *seq += out.lines;
        }
        if *seq > u64::from(u32::MAX) {
            return Err(IngestError::TooManyRows(u64::from(u32::MAX)));
        }
        if eof {
            break;
        }
    }
    if compiled.is_none() && format.header {
        return Err(IngestError::NoHeader {
            file: path.display().to_string(),
            layout: layout.name.clone(),
        });
    }
    counts.kept =
        counts.lines_read - counts.rejects_by_reason.values().sum::<u64>() - counts.other_elections;
    Ok(Source {
        file: name,
        bytes,
        sha256: hex::encode(hasher.finish()),
        rows_read,
        delimiter: String::new(),
        columns: BTreeMap::new(),
    })
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// Finds the history columns in a file's header (or the layout's
/// positional names); returns them and the header's length in bytes.
fn compile<'a>(
    layout: &'a Layout,
    format: &'a HistoryFile,
    first: &[u8],
    path: &Path,
) -> Result<(Compiled<'a>, usize), IngestError> {
    let (names, header_len) = if format.header {
        let end = memchr::memchr(b'\n', first).map_or(first.len(), |i| i + 1);
        let mut line = &first[..end];
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        // A UTF-8 BOM, skipped as before a voter file's header.
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let mut names = Vec::new();
        let mut scratch = Vec::new();
        let _ = split::split_line(line, format.delimiter, format.quoting, |_, span| {
            names.push(
                String::from_utf8_lossy(split::field(line, span, &mut scratch))
                    .trim()
                    .to_owned(),
            );
        });
        (names, end)
    } else {
        (format.columns.clone(), 0)
    };
    let find = |key: &str, column: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(column.trim()))
            .ok_or_else(|| IngestError::MissingColumn {
                file: path.display().to_string(),
                column: format!("`{column}`"),
                key: format!("history.{key}"),
                hint: String::new(),
                layout: layout.name.clone(),
            })
    };
    let id = find("voter_id", &format.voter_id)?;
    let date = find("date_column", &format.date_column)?;
    let kind = format
        .type_column
        .as_deref()
        .map(|t| find("type_column", t))
        .transpose()?;
    let method = find("method_column", &format.method_column)?;
    let wanted = [Some(id), Some(date), kind, Some(method)]
        .into_iter()
        .flatten()
        .max()
        .expect("four columns")
        + 1;
    Ok((
        Compiled {
            layout,
            file: format,
            expected: names.len(),
            id,
            date,
            kind,
            method,
            wanted,
        },
        header_len,
    ))
}

fn parse_chunk(c: &Compiled, data: &[u8]) -> ChunkOut {
    let mut out = ChunkOut::default();
    let history = c.layout.history.as_ref().expect("a history layout");
    let mut scratch = Vec::new();
    let mut start = 0usize;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut line = &data[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        match parse_line(c, history, line, &mut scratch) {
            Ok(Some((election, id, method))) => out.kept.push((
                bucket_of(id) as u8,
                Line {
                    id,
                    election,
                    seq: out.lines as u32,
                    method,
                },
            )),
            Ok(None) => out.other += 1,
            Err(why) => out.rejects.push((out.lines, why)),
        }
        out.lines += 1;
        start = end + 1;
    }
    out
}

/// A line's (election index, id key, method byte), `None` for a line of an
/// election that is not configured.
fn parse_line(
    c: &Compiled,
    history: &layout::History,
    line: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<Option<(u8, u64, u8)>, HistoryReject> {
    let mut spans = [Span::default(); 4];
    let roles = [Some(c.id), Some(c.date), c.kind, Some(c.method)];
    let n = split::split_line_wanting(
        line,
        c.file.delimiter,
        c.file.quoting,
        c.wanted,
        |i, span| {
            for (slot, role) in roles.iter().enumerate() {
                if *role == Some(i) {
                    spans[slot] = span;
                }
            }
        },
    )
    .map_err(|_| HistoryReject::BrokenQuoting)?;
    if n != c.expected {
        return Err(HistoryReject::FieldCount);
    }
    let id = trim(split::field(line, spans[0], scratch));
    if id.is_empty() {
        return Err(HistoryReject::MissingVoterId);
    }
    let id = pack_id(id);
    let date = c
        .file
        .date_format
        .parse_date(trim(split::field(line, spans[1], scratch)))
        .ok_or(HistoryReject::BadDate)?
        .key();
    let kind = match c.kind {
        Some(_) => history.election_type(split::field(line, spans[2], scratch)),
        None => None,
    };
    let Some(election) = c
        .layout
        .elections
        .iter()
        .position(|e| e.date == date && (c.kind.is_none() || kind == Some(e.kind)))
    else {
        return Ok(None);
    };
    let (category, known) = history.method(split::field(line, spans[3], scratch));
    let flag = if known { 0 } else { UNKNOWN_METHOD };
    Ok(Some((election as u8, id, category | flag)))
}

/// What the join counted (for the manifest).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JoinCounts {
    /// Lines of configured elections whose id is no kept voter's.
    pub unmatched: u64,
    /// Lines after the first of the same (voter, election).
    pub duplicates: u64,
    /// (voter, election) cells decided by a line whose method is not in
    /// the table.
    pub unknown_methods: u64,
}

impl std::ops::AddAssign for JoinCounts {
    fn add_assign(&mut self, o: JoinCounts) {
        self.unmatched += o.unmatched;
        self.duplicates += o.duplicates;
        self.unknown_methods += o.unknown_methods;
    }
}

/// The lines of one bucket file, read and removed.
pub(crate) fn read_bucket(path: &Path) -> Result<Vec<Line>, IngestError> {
    let bytes = std::fs::read(path).map_err(|e| IngestError::io(path, e))?;
    std::fs::remove_file(path).map_err(|e| IngestError::io(path, e))?;
    Ok(bytes.chunks_exact(LINE_BYTES).map(Line::decode).collect())
}

/// Joins one bucket's history `lines` to its kept voters `winners` (sorted
/// by id: (id, registration rank, row)), setting `votes[row * E + e]` for
/// every winner and election.
pub(crate) fn join_bucket(
    lines: &mut [Line],
    winners: &[(u64, i32, u32)],
    elections: &[layout::Election],
    votes: &[std::sync::atomic::AtomicU8],
) -> JoinCounts {
    use std::sync::atomic::Ordering::Relaxed;
    let e_count = elections.len();
    lines.sort_unstable_by_key(|l| (l.id, l.election, l.seq));
    let mut counts = JoinCounts::default();
    let mut w = 0usize;
    for group in lines.chunk_by(|a, b| a.id == b.id && a.election == b.election) {
        let id = group[0].id;
        while w < winners.len() && winners[w].0 < id {
            w += 1;
        }
        if w == winners.len() || winners[w].0 != id {
            counts.unmatched += group.len() as u64;
            continue;
        }
        counts.duplicates += group.len() as u64 - 1;
        // The first line that records a ballot; if none does, the first.
        let chosen = group
            .iter()
            .find(|l| l.method & !UNKNOWN_METHOD != layout::DID_NOT_VOTE)
            .unwrap_or(&group[0]);
        counts.unknown_methods += u64::from(chosen.method & UNKNOWN_METHOD != 0);
        let row = winners[w].2 as usize;
        votes[row * e_count + usize::from(chosen.election)]
            .store(chosen.method & !UNKNOWN_METHOD, Relaxed);
    }
    for &(_, rank, row) in winners {
        for (e, election) in elections.iter().enumerate() {
            let cell = &votes[row as usize * e_count + e];
            if cell.load(Relaxed) == crate::write::NO_VOTE {
                let category = if rank > election.date {
                    layout::NOT_REGISTERED
                } else {
                    layout::DID_NOT_VOTE
                };
                cell.store(category, Relaxed);
            }
        }
    }
    counts
}
