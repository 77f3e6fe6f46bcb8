//! The streaming ingest: read, parse in parallel, merge in order, de-duplicate,
//! write, swap into place.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use layout::Layout;
use rayon::prelude::*;

use crate::manifest::{FORMAT_VERSION, Manifest, SchemaField, Source, now_utc};
use crate::rules::{
    DedupKey, MissingColumn, NO_VOTER_ID, NullYear, RejectReason, RowOutcome, Rules, UnknownCode,
};
use crate::write::{self, ROW_BYTES, Spill};
use crate::{IngestError, IngestOptions};

/// Target size of a chunk of whole lines handed to a parse worker.
const CHUNK_BYTES: usize = 4 << 20;
/// At most this many distinct unknown values are listed per column; the rest
/// are summed under `(other values)`, so a garbage column cannot bloat the
/// manifest.
const MAX_UNKNOWN_VALUES: usize = 200;

/// Receives progress from a running ingest (called from one thread, often).
pub trait Progress: Sync {
    /// `bytes` of `total` read and parsed so far; `rows` data lines seen.
    fn update(&self, bytes: u64, total: u64, rows: u64);
    /// Called once, when the input has been read and the output is being written.
    fn writing(&self) {}
}

impl Progress for () {
    fn update(&self, _: u64, _: u64, _: u64) {}
}

struct Chunk {
    seq: u64,
    file: usize,
    /// A buffer shared with the hashing thread; the chunk is `range` of it.
    bytes: Arc<Vec<u8>>,
    range: Range<usize>,
    rules: Arc<Rules>,
}

struct ChunkOut {
    seq: u64,
    rules: Arc<Rules>,
    file: usize,
    bytes: usize,
    lines: u64,
    /// Encoded rows, `ROW_BYTES` each.
    rows: Vec<u8>,
    keys: Vec<DedupKey>,
    rejects: Vec<(u64, RejectReason)>,
    unknown: Vec<(u32, UnknownCode)>,
    birth_nulls: [u64; 4],
    reg_nulls: [u64; 4],
}

/// One dedup entry: 16 bytes per accepted row, the only state that grows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    id: u64,
    rank: i32,
    row: u32,
}

enum ReaderEvent {
    Done(usize, Source),
    Failed(IngestError),
}

/// Ingests `opts.files` with `layout` into `opts.data_dir/opts.dataset`.
pub fn ingest(
    layout: &Layout,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<Manifest, IngestError> {
    validate_name(&opts.dataset)?;
    if opts.files.is_empty() {
        return Err(IngestError::NoFiles);
    }
    let (ingested_at, clock_year) = now_utc();
    let current_year = opts.current_year.unwrap_or(clock_year);
    write::private_dir(true)
        .create(&opts.data_dir)
        .map_err(|e| IngestError::io(&opts.data_dir, e))?;
    let final_dir = opts.data_dir.join(&opts.dataset);
    let tmp_dir = opts
        .data_dir
        .join(format!(".{}.incoming-{}", opts.dataset, std::process::id()));
    remove_stale_incoming(&opts.data_dir, &opts.dataset);
    create_incoming(&tmp_dir)?;

    let result = build(layout, opts, progress, &tmp_dir, current_year, ingested_at)
        .and_then(|manifest| swap_into_place(&tmp_dir, &final_dir).map(|()| manifest));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp_dir);
    }
    result
}

fn build(
    layout: &Layout,
    opts: &IngestOptions,
    progress: &dyn Progress,
    dir: &Path,
    current_year: i16,
    ingested_at: String,
) -> Result<Manifest, IngestError> {
    let total_bytes: u64 = opts
        .files
        .iter()
        .map(|f| {
            fs::metadata(f)
                .map(|m| m.len())
                .map_err(|e| IngestError::io(f, e))
        })
        .sum::<Result<u64, _>>()?;
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);

    let t_start = std::time::Instant::now();
    let spill_path = dir.join("rows.spill");
    let mut spill = Spill::create(&spill_path)?;
    let rejects_path = dir.join("rejects.tsv");
    let mut rejects = BufWriter::new(
        write::private_file()
            .open(&rejects_path)
            .map_err(|e| IngestError::io(&rejects_path, e))?,
    );
    writeln!(rejects, "file\tline\tcolumn\treason")
        .map_err(|e| IngestError::io(&rejects_path, e))?;

    let file_names: Vec<String> = opts
        .files
        .iter()
        .map(|f| {
            f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let mut sources: Vec<Option<Source>> = vec![None; opts.files.len()];
    let mut rows_read_by_file = vec![0u64; opts.files.len()];
    // Physical line numbers: the header, when there is one, is line 1.
    let first_data_line = if layout.format.header { 2 } else { 1 };

    // One exact-size vector per chunk, joined once at the end: a single
    // growing vector would briefly hold its old and new buffers (3x).
    let mut entries: Vec<Vec<Entry>> = Vec::new();
    let mut unknown: Vec<(u32, UnknownCode)> = Vec::new();
    let mut rejects_by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let (mut birth_nulls, mut reg_nulls) = ([0u64; 4], [0u64; 4]);
    let (mut rows_accepted, mut rows_read, mut rows_rejected, mut bytes_done) =
        (0u64, 0u64, 0u64, 0u64);

    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(threads * 2);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<ChunkOut>(threads * 2);
    let (event_tx, event_rx) = crossbeam_channel::unbounded::<ReaderEvent>();

    let mut failure: Option<IngestError> = None;
    std::thread::scope(|scope| {
        // Reader: whole-line chunks, in order, with their first line numbers.
        let reader_files = opts.files.clone();
        scope.spawn(move || {
            if let Err(e) = read_all(layout, &reader_files, current_year, &chunk_tx, &event_tx) {
                let _ = event_tx.send(ReaderEvent::Failed(e));
            }
        });
        for _ in 0..threads {
            let rx = chunk_rx.clone();
            let tx = out_tx.clone();
            scope.spawn(move || {
                let mut outcome = RowOutcome::default();
                for chunk in rx {
                    if tx.send(parse_chunk(chunk, &mut outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(chunk_rx);
        drop(out_tx);

        // Merger: apply chunk results in input order.
        let mut pending: BTreeMap<u64, ChunkOut> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut merge = |out: ChunkOut| -> Result<(), IngestError> {
            let base = rows_accepted;
            if base + out.keys.len() as u64 > u32::MAX as u64 {
                return Err(IngestError::TooManyRows(u32::MAX as u64));
            }
            spill.append(&out.rows, &spill_path)?;
            entries.push(
                out.keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| Entry {
                        id: k.id,
                        rank: k.rank,
                        row: (base + i as u64) as u32,
                    })
                    .collect(),
            );
            unknown.extend(out.unknown.into_iter().map(|(i, u)| (base as u32 + i, u)));
            let rules = &out.rules;
            let first_line = rows_read_by_file[out.file] + first_data_line;
            for (line, reason) in &out.rejects {
                let line = first_line + line;
                let (column, text, key) = describe(reason, rules, layout);
                *rejects_by_reason.entry(key.to_owned()).or_default() += 1;
                writeln!(
                    rejects,
                    "{}\t{line}\t{column}\t{text}",
                    file_names[out.file]
                )
                .map_err(|e| IngestError::io(&rejects_path, e))?;
            }
            for i in 0..4 {
                birth_nulls[i] += out.birth_nulls[i];
                reg_nulls[i] += out.reg_nulls[i];
            }
            rows_accepted += out.keys.len() as u64;
            rows_rejected += out.rejects.len() as u64;
            rows_read += out.lines;
            rows_read_by_file[out.file] += out.lines;
            bytes_done += out.bytes as u64;
            progress.update(bytes_done, total_bytes, rows_read);
            Ok(())
        };
        let mut outputs_open = true;
        loop {
            // A reader error (e.g. a missing column) stops the ingest.
            while let Ok(ev) = event_rx.try_recv() {
                match ev {
                    ReaderEvent::Failed(e) => {
                        failure.get_or_insert(e);
                    }
                    ReaderEvent::Done(i, source) => sources[i] = Some(source),
                }
            }
            if failure.is_some() {
                break;
            }
            if !outputs_open {
                break;
            }
            match out_rx.recv() {
                Ok(out) => {
                    pending.insert(out.seq, out);
                }
                Err(_) => outputs_open = false,
            }
            while let Some(out) = pending.remove(&next_seq) {
                next_seq += 1;
                if let Err(e) = merge(out) {
                    failure.get_or_insert(e);
                    break;
                }
            }
        }
        // On failure, drain so the reader and workers can finish.
        drop(out_rx);
    });
    while let Ok(ev) = event_rx.try_recv() {
        match ev {
            ReaderEvent::Done(i, source) => sources[i] = Some(source),
            ReaderEvent::Failed(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let t_parsed = std::time::Instant::now();
    progress.writing();
    rejects
        .flush()
        .map_err(|e| IngestError::io(&rejects_path, e))?;
    rejects
        .into_inner()
        .map_err(|e| IngestError::io(&rejects_path, e.into_error()))?
        .sync_all()
        .map_err(|e| IngestError::io(&rejects_path, e))?;

    // De-duplicate: within each voter id, the latest registration date wins;
    // on a tie, the row later in the input (higher row index) wins.
    let mut all = Vec::with_capacity(rows_accepted as usize);
    for chunk in entries {
        all.extend(chunk); // each chunk is freed as it is moved
    }
    let dropped = dedup(all, rows_accepted);
    let t_dedup = std::time::Instant::now();
    let duplicates_dropped: u64 = dropped.iter().map(|w| w.count_ones() as u64).sum();
    let is_dropped = |row: u32| dropped[(row / 64) as usize] & (1 << (row % 64)) != 0;

    let mut unknown_codes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (row, u) in unknown {
        if is_dropped(row) {
            continue;
        }
        let column = unknown_codes
            .entry(layout.coded[u.column as usize].dim.name().to_owned())
            .or_default();
        if column.len() < MAX_UNKNOWN_VALUES || column.contains_key(&u.value) {
            *column.entry(u.value).or_default() += 1;
        } else {
            *column.entry("(other values)".to_owned()).or_default() += 1;
        }
    }

    // Write Parquet parts in parallel over the spill.
    let spill_file = spill.finish(&spill_path)?;
    let parts = if rows_accepted < (1 << 18) {
        1
    } else {
        threads.min(8) as u64
    };
    let per_part = rows_accepted.div_ceil(parts).max(1);
    let names: Vec<String> = (0..parts).map(|i| format!("part-{i:05}.parquet")).collect();
    let written: Vec<u64> = names
        .par_iter()
        .enumerate()
        .map(|(i, name)| {
            let start = (i as u64 * per_part).min(rows_accepted);
            let end = ((i as u64 + 1) * per_part).min(rows_accepted);
            let t = std::time::Instant::now();
            let r = write::write_part(
                layout,
                &spill_file,
                &spill_path,
                start..end,
                &dropped,
                &dir.join(name),
            );
            if std::env::var_os("ROLLCALL_INGEST_TIMINGS").is_some() {
                eprintln!("part {i}: {:.3}s", t.elapsed().as_secs_f64());
            }
            r
        })
        .collect::<Result<_, _>>()?;
    drop(spill_file);
    fs::remove_file(&spill_path).map_err(|e| IngestError::io(&spill_path, e))?;
    let rows_written: u64 = written.iter().sum();
    if std::env::var_os("ROLLCALL_INGEST_TIMINGS").is_some() {
        eprintln!(
            "timings: read+parse {:.3}s dedup {:.3}s parquet {:.3}s",
            (t_parsed - t_start).as_secs_f64(),
            (t_dedup - t_parsed).as_secs_f64(),
            t_dedup.elapsed().as_secs_f64()
        );
    }

    let null_reasons = |counts: [u64; 4]| -> BTreeMap<String, u64> {
        ["blank", "sentinel_or_mask", "unparseable", "out_of_range"]
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect()
    };
    let mut null_years = BTreeMap::new();
    if layout.birth_year.is_some() {
        null_years.insert("birth_year".to_owned(), null_reasons(birth_nulls));
    }
    if layout.registration_date.is_some() {
        null_years.insert("registration_year".to_owned(), null_reasons(reg_nulls));
    }
    let schema = write::schema(layout);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        dataset: opts.dataset.clone(),
        layout: layout.name.clone(),
        layout_origin: layout.origin.clone(),
        layout_sha256: layout.digest().to_owned(),
        ingested_at,
        current_year,
        rows_read,
        rows_written,
        rows_rejected,
        duplicates_dropped,
        rejects_by_reason,
        unknown_codes,
        null_years,
        sources: sources
            .into_iter()
            .zip(rows_read_by_file)
            .map(|(s, n)| {
                let mut s = s.expect("every file was read");
                s.rows_read = n;
                s
            })
            .collect(),
        files: names,
        schema: schema
            .fields()
            .iter()
            .map(|f| SchemaField {
                name: f.name().clone(),
                data_type: match f.data_type() {
                    arrow::datatypes::DataType::Dictionary(_, v) => format!("{v} (dictionary)"),
                    t => t.to_string(),
                },
                nullable: f.is_nullable(),
            })
            .collect(),
    };
    debug_assert_eq!(rows_written + duplicates_dropped, rows_accepted);
    let path = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    let mut f = write::private_file()
        .open(&path)
        .map_err(|e| IngestError::io(&path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| IngestError::io(&path, e))?;
    Ok(manifest)
}

/// Marks every row that loses to a duplicate. Returns a bitmap over rows.
/// Rows without a voter id ([`NO_VOTER_ID`]) are never grouped: each is a
/// voter of its own.
fn dedup(mut entries: Vec<Entry>, rows: u64) -> Vec<u64> {
    let mut dropped = vec![0u64; (rows as usize).div_ceil(64).max(1)];
    entries.par_sort_unstable();
    for group in entries.chunk_by(|a, b| a.id == b.id && a.id != NO_VOTER_ID) {
        // Sorted by (rank, row): the last entry is the latest date, latest row.
        for e in &group[..group.len() - 1] {
            dropped[(e.row / 64) as usize] |= 1 << (e.row % 64);
        }
    }
    dropped
}

fn describe(
    reason: &RejectReason,
    rules: &Rules,
    layout: &Layout,
) -> (String, String, &'static str) {
    match *reason {
        RejectReason::FieldCount { found, expected } => (
            "-".to_owned(),
            format!("expected {expected} fields, found {found}"),
            "field_count",
        ),
        RejectReason::UnclosedQuote(i) => (
            rules
                .column_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("field {}", i + 1)),
            "quote opened and never closed".to_owned(),
            "broken_quoting",
        ),
        RejectReason::UnknownCounty => (
            layout.county.column.clone(),
            "county not in the reference list".to_owned(),
            "unknown_county",
        ),
        RejectReason::MissingVoterId => (
            layout.voter_id.clone(),
            "voter id is blank or a placeholder".to_owned(),
            "missing_voter_id",
        ),
    }
}

fn parse_chunk(chunk: Chunk, outcome: &mut RowOutcome) -> ChunkOut {
    let mut out = ChunkOut {
        seq: chunk.seq,
        file: chunk.file,
        bytes: chunk.range.len(),
        rows: Vec::with_capacity(chunk.range.len() / 40 * ROW_BYTES),
        rules: chunk.rules.clone(),
        lines: 0,
        keys: Vec::new(),
        rejects: Vec::new(),
        unknown: Vec::new(),
        birth_nulls: [0; 4],
        reg_nulls: [0; 4],
    };
    let data = &chunk.bytes[chunk.range.clone()];
    let mut start = 0usize;
    let mut encoded = [0u8; ROW_BYTES];
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let mut line = &data[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        match chunk.rules.apply(line, outcome) {
            Ok((row, key)) => {
                let index = out.keys.len() as u32;
                write::encode(&row, &mut encoded);
                out.rows.extend_from_slice(&encoded);
                out.keys.push(key);
                for u in outcome.unknown.drain(..) {
                    out.unknown.push((index, u));
                }
                if let Some(why) = outcome.birth_null {
                    out.birth_nulls[null_index(why)] += 1;
                }
                if let Some(why) = outcome.reg_null {
                    out.reg_nulls[null_index(why)] += 1;
                }
            }
            // The line number within the chunk; the merger, which sees the
            // chunks in order, adds where the chunk starts in its file.
            Err(reason) => out.rejects.push((out.lines, reason)),
        }
        out.lines += 1;
        start = end + 1;
    }
    out
}

fn null_index(why: NullYear) -> usize {
    match why {
        NullYear::Blank => 0,
        NullYear::SentinelOrMask => 1,
        NullYear::Unparseable => 2,
        NullYear::OutOfRange => 3,
    }
}

/// Reads every file in order, sending chunks of whole lines.
fn read_all(
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
                let done = std::mem::replace(&mut hasher, openssl::sha::Sha256::new());
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
            let header_end = if layout.format.header {
                match memchr::memchr(b'\n', &buf) {
                    Some(i) => i + 1,
                    None if eof => buf.len(),
                    None => {
                        carry = buf.to_vec(); // header longer than a chunk: read more
                        continue;
                    }
                }
            } else {
                0
            };
            rules = Some(Arc::new(compile(
                layout,
                path,
                &buf[..header_end],
                current_year,
            )?));
            start = header_end;
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
    let source = Source {
        file: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        bytes,
        sha256: String::new(),
        rows_read: 0,
    };
    Ok(hash_tx.send(HashMsg::End(index, source)).is_ok())
}

fn compile(
    layout: &Layout,
    path: &Path,
    header: &[u8],
    current_year: i16,
) -> Result<Rules, IngestError> {
    let names: Vec<String> = if layout.format.header {
        let mut line = header.strip_suffix(b"\n").unwrap_or(header);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line); // UTF-8 BOM
        if line.is_empty() {
            return Err(IngestError::NoHeader {
                file: path.display().to_string(),
                layout: layout.name.clone(),
            });
        }
        let mut names = Vec::new();
        let mut scratch = Vec::new();
        // A header with broken quoting still names columns; take it as split.
        let _ = crate::split::split_line(
            line,
            layout.format.delimiter,
            layout.format.quoting,
            |_, span| {
                let f = crate::split::field(line, span, &mut scratch);
                names.push(String::from_utf8_lossy(crate::split::trim(f)).into_owned());
            },
        );
        names
    } else {
        layout.format.columns.clone()
    };
    Rules::new(layout, &names, current_year).map_err(|MissingColumn(column)| {
        IngestError::MissingColumn {
            file: path.display().to_string(),
            column,
            layout: layout.name.clone(),
        }
    })
}

fn validate_name(name: &str) -> Result<(), IngestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IngestError::DatasetName(name.to_owned()))
    }
}

/// Creates the temporary folder, owner-only. One that exists already carries
/// this process's id but was left by an earlier process that had it (this
/// one has not made it yet): it is removed first, so no file in it is reused.
fn create_incoming(dir: &Path) -> Result<(), IngestError> {
    let create = || write::private_dir(false).create(dir);
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::remove_dir_all(dir).and_then(|()| create())
        }
        other => other,
    }
    .map_err(|e| IngestError::io(dir, e))
}

/// Removes temporary folders left by an ingest of this dataset that was
/// killed (its process is gone).
fn remove_stale_incoming(data_dir: &Path, dataset: &str) {
    let prefix = format!(".{dataset}.incoming-");
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix) {
            let alive = Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Puts the finished folder in place of the previous version in one atomic
/// step (Linux `RENAME_EXCHANGE`), then deletes the previous version. Where the
/// filesystem cannot exchange, falls back to two renames.
fn swap_into_place(tmp: &Path, dest: &Path) -> Result<(), IngestError> {
    sync_dir(tmp)?;
    if dest.exists() {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, tmp, CWD, dest, RenameFlags::EXCHANGE) {
            Ok(()) => {
                // `tmp` now holds the previous version.
                let _ = fs::remove_dir_all(tmp);
            }
            Err(_) => {
                let old = dest.with_file_name(format!(
                    ".{}.previous-{}",
                    dest.file_name().unwrap_or_default().to_string_lossy(),
                    std::process::id()
                ));
                fs::rename(dest, &old).map_err(|e| IngestError::io(dest, e))?;
                fs::rename(tmp, dest).map_err(|e| IngestError::io(dest, e))?;
                let _ = fs::remove_dir_all(&old);
            }
        }
    } else {
        fs::rename(tmp, dest).map_err(|e| IngestError::io(dest, e))?;
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), IngestError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| IngestError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// De-duplication keeps, for every id, exactly the row with the
        /// latest date, the later row on a tie, and drops every other row;
        /// a row without an id is never dropped.
        #[test]
        fn dedup_keeps_latest_then_last(rows in proptest::collection::vec((prop_oneof![0u64..20, Just(NO_VOTER_ID)], prop_oneof![Just(OLDEST_RANK), 19000101i32..19000110]), 0..300)) {
            let entries: Vec<Entry> = rows.iter().enumerate().map(|(i, &(id, rank))| Entry { id, rank, row: i as u32 }).collect();
            let dropped = dedup(entries, rows.len() as u64);
            let kept = |i: usize| dropped[i / 64] & (1 << (i % 64)) == 0;
            for (i, &(id, rank)) in rows.iter().enumerate() {
                let beaten = id != NO_VOTER_ID && rows.iter().enumerate().any(|(j, &(id2, rank2))| j != i && id2 == id && (rank2 > rank || (rank2 == rank && j > i)));
                prop_assert_eq!(kept(i), !beaten, "row {} id {} rank {}", i, id, rank);
            }
        }
    }

    const OLDEST_RANK: i32 = crate::rules::OLDEST;

    /// Entries for `ids` as the NC rules key them (all in Wake county, same
    /// registration date), in order.
    fn entries_for(layout: &Layout, ids: &[&str]) -> Vec<Entry> {
        use crate::rules::tests::nc_line;
        let rules = Rules::new(layout, &layout.format.columns, 2026).unwrap();
        let mut out = RowOutcome::default();
        ids.iter()
            .enumerate()
            .map(|(row, id)| {
                let line = nc_line(
                    layout,
                    &[
                        ("county_desc", "WAKE"),
                        ("ncid", id),
                        ("registr_dt", "03/04/2001"),
                    ],
                );
                let (_, key) = rules.apply(&line, &mut out).unwrap();
                Entry {
                    id: key.id,
                    rank: key.rank,
                    row: row as u32,
                }
            })
            .collect()
    }

    #[test]
    fn kept_blank_ids_are_never_duplicates() {
        let layout = crate::rules::tests::nc_with_voter_id("missing = \"keep\"");
        // Two voters without an id, then one voter listed twice.
        let ids = ["", "   ", "AA1", "AA1"];
        let dropped = dedup(entries_for(&layout, &ids), ids.len() as u64);
        assert_eq!(dropped, vec![0b0100], "only the first AA1 loses");
    }

    /// Records the mode of the temporary folder and of every file in it when
    /// the ingest starts writing (the spill file still exists then).
    #[derive(Default)]
    struct Modes {
        data_dir: PathBuf,
        seen: std::sync::Mutex<Vec<(String, u32)>>,
    }

    impl Progress for Modes {
        fn update(&self, _: u64, _: u64, _: u64) {}
        fn writing(&self) {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let mut seen = self.seen.lock().unwrap();
            for dir in fs::read_dir(&self.data_dir).unwrap() {
                let dir = dir.unwrap().path();
                seen.push((dir.display().to_string(), mode(&dir)));
                for file in fs::read_dir(&dir).unwrap() {
                    let file = file.unwrap().path();
                    seen.push((file.display().to_string(), mode(&file)));
                }
            }
        }
    }

    #[test]
    fn the_temporary_folder_and_spill_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::resolve("nc").unwrap();
        let input = tmp.path().join("nc.txt");
        let header = format!("\"{}\"", layout.format.columns.join("\"\t\""));
        let row =
            crate::rules::tests::nc_line(&layout, &[("county_desc", "WAKE"), ("ncid", "AA1")]);
        let mut text = format!("{header}\n").into_bytes();
        text.extend_from_slice(&row);
        text.push(b'\n');
        fs::write(&input, text).unwrap();
        let data_dir = tmp.path().join("new/data");
        let opts = IngestOptions {
            dataset: "nc".into(),
            data_dir: data_dir.clone(),
            files: vec![input],
            current_year: Some(2026),
            threads: Some(1),
        };
        let modes = Modes {
            data_dir: data_dir.clone(),
            ..Modes::default()
        };
        ingest(&layout, &opts, &modes).unwrap();
        let seen = modes.seen.into_inner().unwrap();
        let names: std::collections::BTreeSet<&str> = seen
            .iter()
            .map(|(p, _)| p.rsplit('/').next().unwrap())
            .collect();
        let incoming = format!(".nc.incoming-{}", std::process::id());
        let want: std::collections::BTreeSet<&str> =
            [incoming.as_str(), "rejects.tsv", "rows.spill"].into();
        assert_eq!(names, want);
        for (path, mode) in &seen {
            let want = if path.ends_with(".spill") || path.ends_with(".tsv") {
                0o600
            } else {
                0o700
            };
            assert_eq!(*mode, want, "{path}: {mode:o}");
        }
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("new")), 0o700, "created parents too");
        assert_eq!(mode(&data_dir), 0o700);
    }

    #[test]
    fn dataset_names_are_plain() {
        assert!(validate_name("nc_2026-11").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b", "ü"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
