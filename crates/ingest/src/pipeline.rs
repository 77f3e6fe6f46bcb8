//! The streaming ingest, stage by stage: the [reader](crate::reader) thread
//! cuts the files into chunks of whole lines, [parse](crate::parse) workers
//! apply the layout's rules, the [merger](crate::merger) takes their results
//! in input order, then de-duplication, the [Parquet writer](crate::write),
//! the [manifest builder](crate::manifest), and the swap into place.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicU8;
use std::time::{Duration, Instant};

use dataset::{Manifest, Source};
use layout::Layout;

use crate::clock::now_utc;
use crate::manifest::{self, Written};
use crate::merger::{Counts, Merged, Merger, SPILL};
use crate::parse::{ChunkOut, parse_chunk};
use crate::reader::{Chunk, ReaderEvent, read_all};
use crate::rules::RowOutcome;
use crate::unknown::Unknowns;
use crate::write;
use crate::{IngestError, IngestOptions};

/// Receives progress from a running ingest (called from one thread, often).
pub trait Progress: Sync {
    /// `bytes` of `total` read and parsed so far; `rows` data lines seen.
    fn update(&self, bytes: u64, total: u64, rows: u64);
    /// Called once, when the input has been read and the output is being written.
    fn writing(&self) {}
    /// A stage finished (`read+parse`, `dedup`, `parquet`) after `took`:
    /// for `rollcall ingest`'s `ROLLCALL_INGEST_TIMINGS`.
    fn stage(&self, _name: &'static str, _took: Duration) {}
}

impl Progress for () {
    fn update(&self, _: u64, _: u64, _: u64) {}
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
    check_history_options(layout, opts)?;
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
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let (merged, sources) = read_and_merge(layout, opts, progress, dir, current_year, threads)?;
    progress.stage("read+parse", started.elapsed());
    progress.writing();

    // De-duplicate: within each voter id, the latest registration date wins;
    // on a tie, the row later in the input (higher row index) wins.
    let started = Instant::now();
    let Merged {
        spill,
        keys,
        unknown,
        counts,
    } = merged;
    let rows_accepted = counts.rows_accepted;
    if !opts.allow_rejects {
        refuse_mostly_rejected(&counts)?;
    }
    if !opts.allow_unknown {
        refuse_mostly_unknown(layout, &unknown, rows_accepted)?;
    }
    let Deduped {
        dropped,
        history,
        votes,
    } = dedup_and_join(layout, opts, keys, &counts, dir)?;
    let duplicates_dropped: u64 = dropped.iter().map(|w| w.count_ones() as u64).sum();
    let is_dropped = |row: u32| dropped[(row / 64) as usize] & (1 << (row % 64)) != 0;
    let unknown_codes = manifest::unknown_codes(layout, &unknown, is_dropped);
    drop(unknown);
    progress.stage("dedup", started.elapsed());

    let started = Instant::now();
    let spill_path = dir.join(SPILL);
    let votes = match (&votes, &layout.history) {
        (Some(cells), _) => write::Votes::Joined(cells),
        (None, Some(_)) if !layout.elections.is_empty() => write::Votes::InRow,
        _ => write::Votes::None,
    };
    let (files, rows_written) = write::write_parts(
        layout,
        &spill,
        &spill_path,
        rows_accepted,
        write::Kept {
            dropped: &dropped,
            votes,
        },
        dir,
        threads,
    )?;
    drop(spill);
    fs::remove_file(&spill_path).map_err(|e| IngestError::io(&spill_path, e))?;
    progress.stage("parquet", started.elapsed());
    debug_assert_eq!(rows_written + duplicates_dropped, rows_accepted);

    let written = Written {
        files,
        rows_written,
        duplicates_dropped,
        sources,
        ingested_at,
        current_year,
        history,
    };
    let manifest = manifest::build(layout, opts, counts, unknown_codes, written);
    manifest::write(dir, &manifest)?;
    Ok(manifest)
}

/// Refuses history files the layout would not read, and elections without
/// the files they need, before any data is read.
fn check_history_options(layout: &Layout, opts: &IngestOptions) -> Result<(), IngestError> {
    let source = layout.history.as_ref().map(|h| &h.source);
    let separate = matches!(source, Some(layout::HistorySource::File(_)));
    if !opts.history_files.is_empty() && layout.elections.is_empty() {
        return Err(IngestError::History(
            "--history files were given, but the dataset has no elections: list them as [[dataset.election]] in the config given with --config".into(),
        ));
    }
    if !opts.history_files.is_empty() && !separate {
        return Err(IngestError::History(format!(
            "layout `{}` keeps history in the voter file's columns (history.source = \"columns\"): no --history files are read",
            layout.name
        )));
    }
    if separate && !layout.elections.is_empty() && opts.history_files.is_empty() {
        return Err(IngestError::History(format!(
            "layout `{}` keeps history in separate files (history.source = \"file\"): give them with --history",
            layout.name
        )));
    }
    for f in &opts.history_files {
        if opts.files.contains(f) {
            return Err(IngestError::History(format!(
                "{} is given both as a voter file and as a history file",
                f.display()
            )));
        }
    }
    Ok(())
}

/// What [`dedup_and_join`] returns.
struct Deduped {
    /// A bit per accepted row: set for a dropped duplicate.
    dropped: Vec<u64>,
    /// The manifest's history section.
    history: Option<dataset::History>,
    /// The joined vote cells (`None` for in-file history, whose votes are
    /// in the rows).
    votes: Option<Vec<AtomicU8>>,
}

/// De-duplicates the voters and, with separate history files, reads them
/// and joins them to the kept voters. Returns the dropped-row bitmap, the
/// manifest's history section and the joined vote cells (`None` for
/// in-file history, whose votes are in the rows).
fn dedup_and_join(
    layout: &Layout,
    opts: &IngestOptions,
    keys: crate::dedup::Keys,
    counts: &Counts,
    dir: &Path,
) -> Result<Deduped, IngestError> {
    let rows = counts.rows_accepted;
    if layout.elections.is_empty() {
        return Ok(Deduped {
            dropped: keys.dropped(rows)?,
            history: None,
            votes: None,
        });
    }
    let mut summary = dataset::History {
        elections: manifest::stored_elections(layout),
        ..dataset::History::default()
    };
    if opts.history_files.is_empty() {
        summary.source = "columns".into();
        summary.unknown_methods = counts.unknown_votes;
        return Ok(Deduped {
            dropped: keys.dropped(rows)?,
            history: Some(summary),
            votes: None,
        });
    }
    summary.source = "file".into();
    let rejects_path = dir.join(dataset::HISTORY_REJECTS);
    let rejects = write::private_file()
        .open(&rejects_path)
        .map_err(|e| IngestError::io(&rejects_path, e))?;
    let mut rejects = std::io::BufWriter::new(rejects);
    // The same columns as rejects.tsv, the third naming a layout key.
    writeln!(rejects, "file\tline\tkey\treason").map_err(|e| IngestError::io(&rejects_path, e))?;
    let spilled = crate::history::read(layout, &opts.history_files, dir, &mut rejects)?;
    rejects
        .into_inner()
        .map_err(|e| IngestError::io(&rejects_path, e.into_error()))?;
    if !opts.allow_rejects {
        refuse_mostly_rejected_history(&spilled.counts)?;
    }
    let cells = usize::try_from(rows)
        .ok()
        .and_then(|r| r.checked_mul(layout.elections.len()))
        .ok_or(IngestError::TooManyRows(rows))?;
    let votes: Vec<AtomicU8> = (0..cells).map(|_| AtomicU8::new(write::NO_VOTE)).collect();
    let join = crate::dedup::Join {
        buckets: &spilled.buckets,
        elections: &layout.elections,
        votes: &votes,
    };
    let (dropped, joined) = keys.dropped_and_joined(rows, Some(join))?;
    let read = spilled.counts;
    summary.sources = spilled.sources;
    summary.lines_read = read.lines_read;
    summary.rejects_by_reason = read.rejects_by_reason;
    summary.other_elections = read.other_elections;
    summary.unmatched = joined.unmatched;
    summary.duplicates = joined.duplicates;
    summary.unknown_methods = joined.unknown_methods;
    Ok(Deduped {
        dropped,
        history: Some(summary),
        votes: Some(votes),
    })
}

/// As [`refuse_mostly_rejected`], for the history lines: a history layout
/// that does not fit its files stops the ingest.
fn refuse_mostly_rejected_history(counts: &crate::history::ReadCounts) -> Result<(), IngestError> {
    let rejected: u64 = counts.rejects_by_reason.values().sum();
    let Some(reason) = mostly_rejected(counts.lines_read, rejected, &counts.rejects_by_reason)
    else {
        return Ok(());
    };
    let key = match reason.as_str() {
        "missing_voter_id" => "history.voter_id",
        "bad_date" => "history.date_column` / `history.date_format",
        _ => "history.columns` / `history.delimiter",
    };
    Err(IngestError::History(format!(
        "{} of {} history lines were rejected, most as `{reason}`: check `{key}` (history_rejects.tsv lists them; --allow-rejects ingests anyway); nothing was swapped in",
        crate::Thousands(rejected),
        crate::Thousands(counts.lines_read)
    )))
}

/// The most frequent reject reason when every one of `read` lines was
/// rejected, or more than half of 1,000 or more; `None` otherwise.
fn mostly_rejected(read: u64, rejected: u64, by_reason: &BTreeMap<String, u64>) -> Option<&String> {
    let all = read > 0 && rejected == read;
    let most = read >= 1_000 && rejected * 2 > read;
    if !(all || most) {
        return None;
    }
    by_reason.iter().max_by_key(|(_, n)| **n).map(|(r, _)| r)
}

/// Fails when every line was rejected, or more than half of them in a file
/// of 1,000 lines or more: swapping in what is left would replace a good
/// dataset with a sliver of one. (A handful of lines, half bad, is a test
/// file more often than a misfit layout.)
fn refuse_mostly_rejected(counts: &Counts) -> Result<(), IngestError> {
    let Some(reason) = mostly_rejected(
        counts.rows_read,
        counts.rows_rejected,
        &counts.rejects_by_reason,
    ) else {
        return Ok(());
    };
    let hint = match reason.as_str() {
        "field_count" => {
            ": the lines have another number of fields than the header (or `format.columns`)"
        }
        "unknown_county" => ": the county column's values are not in the county list",
        "county_mismatch" => ": the two county columns do not agree",
        "missing_voter_id" => ": the voter id column is blank",
        _ => "",
    };
    Err(IngestError::MostlyRejected {
        rejected: crate::Thousands(counts.rows_rejected),
        read: crate::Thousands(counts.rows_read),
        reason: reason.clone(),
        hint: hint.to_owned(),
    })
}

/// Fails when more than a fifth of a coded dimension's values are unknown
/// (and not blank): checked over every accepted line, before anything is
/// written, so a layout pointing `gender` at a surname column stops here.
fn refuse_mostly_unknown(
    layout: &Layout,
    unknown: &Unknowns,
    rows_accepted: u64,
) -> Result<(), IngestError> {
    let per_column = unknown.non_blank_per_column();
    match per_column.iter().position(|&n| n * 5 > rows_accepted) {
        None => Ok(()),
        Some(i) => Err(IngestError::MostlyUnknown {
            dimension: layout.coded[i].name.clone(),
            column: layout.coded[i].column.clone(),
            percent: per_column[i] as f64 * 100.0 / rows_accepted as f64,
            values: crate::Thousands(rows_accepted),
        }),
    }
}

/// Runs the reader thread and the parse workers, and merges their results
/// in input order. Returns what the merger gathered and the input files as
/// the reader described them (with their hashes).
fn read_and_merge(
    layout: &Layout,
    opts: &IngestOptions,
    progress: &dyn Progress,
    dir: &Path,
    current_year: i16,
    threads: usize,
) -> Result<(Merged, Vec<Source>), IngestError> {
    let total_bytes: u64 = opts
        .files
        .iter()
        .map(|f| {
            fs::metadata(f)
                .map(|m| m.len())
                .map_err(|e| IngestError::io(f, e))
        })
        .sum::<Result<u64, _>>()?;
    let mut merger = Merger::new(layout, &opts.files, dir)?;
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(threads * 2);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<ChunkOut>(threads * 2);
    let (event_tx, event_rx) = crossbeam_channel::unbounded::<ReaderEvent>();
    let mut events = Events::new(event_rx, opts.files.len());
    std::thread::scope(|scope| {
        let files = &opts.files;
        scope.spawn(move || {
            if let Err(e) = read_all(layout, files, current_year, &chunk_tx, &event_tx) {
                let _ = event_tx.send(ReaderEvent::Failed(e));
            }
        });
        for _ in 0..threads {
            let (rx, tx) = (chunk_rx.clone(), out_tx.clone());
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
        merge_in_order(&out_rx, &mut merger, &mut events, |bytes, rows| {
            progress.update(bytes, total_bytes, rows)
        });
        // On failure, drop the receiver so the reader and workers can finish.
        drop(out_rx);
    });
    let sources = events.finish()?;
    Ok((merger.finish()?, sources))
}

/// Feeds the workers' results to the merger in input order (chunks finish
/// out of order), until the workers are done or something fails.
fn merge_in_order(
    results: &crossbeam_channel::Receiver<ChunkOut>,
    merger: &mut Merger,
    events: &mut Events,
    progress: impl Fn(u64, u64),
) {
    let mut pending: BTreeMap<u64, ChunkOut> = BTreeMap::new();
    let mut next_seq = 0u64;
    // A reader error (e.g. a missing column) stops the ingest.
    while !events.failed() {
        let Ok(out) = results.recv() else { return };
        pending.insert(out.seq, out);
        while let Some(out) = pending.remove(&next_seq) {
            next_seq += 1;
            if let Err(e) = merger.merge(out) {
                events.fail(e);
                return;
            }
            let (bytes, rows) = merger.done();
            progress(bytes, rows);
        }
    }
}

/// What the reader thread reports besides chunks: each file's description
/// once it has been read, or the error that stopped it.
struct Events {
    rx: crossbeam_channel::Receiver<ReaderEvent>,
    sources: Vec<Option<Source>>,
    failure: Option<IngestError>,
}

impl Events {
    fn new(rx: crossbeam_channel::Receiver<ReaderEvent>, files: usize) -> Events {
        Events {
            rx,
            sources: vec![None; files],
            failure: None,
        }
    }

    fn take(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            match ev {
                ReaderEvent::Failed(e) => self.fail(e),
                ReaderEvent::Done(i, source) => self.sources[i] = Some(source),
            }
        }
    }

    /// Records `e` unless an earlier failure is already recorded.
    fn fail(&mut self, e: IngestError) {
        self.failure.get_or_insert(e);
    }

    fn failed(&mut self) -> bool {
        self.take();
        self.failure.is_some()
    }

    /// The sources in input order, or the first failure.
    fn finish(mut self) -> Result<Vec<Source>, IngestError> {
        self.take();
        if let Some(e) = self.failure {
            return Err(e);
        }
        Ok(self
            .sources
            .into_iter()
            .map(|s| s.expect("every file was read"))
            .collect())
    }
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
    use std::path::PathBuf;

    use crate::rules::Rules;

    /// Entries for `ids` as the NC rules key them (all in Wake county, same
    /// registration date), in order.
    fn entries_for(layout: &Layout, ids: &[&str]) -> Vec<crate::dedup::Entry> {
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
                crate::dedup::Entry {
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
        let dropped = crate::dedup::tests::dedup(&entries_for(&layout, &ids), ids.len() as u64);
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
        let set = [
            ("county_desc", "WAKE"),
            ("ncid", "AA1"),
            ("party_cd", "DEM"),
            ("status_cd", "A"),
        ];
        let row = crate::rules::tests::nc_line(&layout, &set);
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
            allow_unknown: false,
            allow_rejects: false,
            history_files: Vec::new(),
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
        let buckets: Vec<String> = (0..64).map(|i| format!("keys.{i:02}.spill")).collect();
        let mut want: std::collections::BTreeSet<&str> =
            [incoming.as_str(), "rejects.tsv", "rows.spill"].into();
        want.extend(buckets.iter().map(String::as_str));
        assert_eq!(names, want, "the rows' and the ids' spills, nothing else");
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

    /// NC's layout with `gender` read from the surname column, and a file of
    /// `rows` lines with distinct surnames.
    fn surname_as_gender(tmp: &Path, rows: usize) -> (Layout, IngestOptions) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = fs::read_to_string(root.join("config/layouts/nc.toml")).unwrap();
        let wrong = text.replace("column = \"gender_code\"", "column = \"last_name\"");
        fs::create_dir_all(tmp.join("layouts")).unwrap();
        fs::create_dir_all(tmp.join("reference")).unwrap();
        // Every shipped list the layout reads (counties, districts).
        for name in [
            "nc_counties.csv",
            "nc_house_districts.csv",
            "nc_senate_districts.csv",
        ] {
            fs::copy(
                root.join("config/reference").join(name),
                tmp.join("reference").join(name),
            )
            .unwrap();
        }
        fs::write(tmp.join("layouts/wrong.toml"), wrong).unwrap();
        let layout = Layout::from_file(&tmp.join("layouts/wrong.toml")).unwrap();
        let header = format!("\"{}\"", layout.format.columns.join("\"\t\""));
        let mut text = format!("{header}\n").into_bytes();
        for i in 0..rows {
            let (id, name) = (format!("AA{i}"), format!("SURNAME{i}"));
            let set = [
                ("county_desc", "WAKE"),
                ("ncid", &id),
                ("last_name", &name),
                ("party_cd", "DEM"),
                ("status_cd", "A"),
            ];
            text.extend_from_slice(&crate::rules::tests::nc_line(&layout, &set));
            text.push(b'\n');
        }
        let input = tmp.join("nc.txt");
        fs::write(&input, text).unwrap();
        let opts = IngestOptions {
            dataset: "nc".into(),
            data_dir: tmp.join("data"),
            files: vec![input],
            current_year: Some(2026),
            threads: Some(1),
            allow_unknown: false,
            allow_rejects: false,
            history_files: Vec::new(),
        };
        (layout, opts)
    }

    #[test]
    fn a_dimension_read_from_the_wrong_column_stops_the_ingest() {
        let tmp = tempfile::tempdir().unwrap();
        let (layout, opts) = surname_as_gender(tmp.path(), 200);
        let err = ingest(&layout, &opts, &()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`dimensions.gender.column = last_name`: 100.0% of 200 values"),
            "{text}"
        );
        assert!(!text.contains("SURNAME"), "no value in the error: {text}");
        assert!(!opts.data_dir.join("nc").exists(), "nothing swapped in");

        // --allow-unknown ingests, and the manifest lists 50 values at most.
        let opts = IngestOptions {
            allow_unknown: true,
            ..opts
        };
        let manifest = ingest(&layout, &opts, &()).unwrap();
        assert_eq!(manifest.rows_written, 200);
        assert_eq!(manifest.unknown_codes["gender"].len(), 50);
        assert_eq!(manifest.other_unknown["gender"], 150);
    }

    #[test]
    fn a_fifth_unknown_is_still_ingested() {
        let tmp = tempfile::tempdir().unwrap();
        let (layout, opts) = surname_as_gender(tmp.path(), 5);
        // 5 lines, 5 unknown: refused. One known value in five is 80%.
        assert!(ingest(&layout, &opts, &()).is_err());
        let text = fs::read_to_string(&opts.files[0]).unwrap();
        let fixed: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                // Lines 1-4 of data get a real gender code in the surname
                // column: one unknown in five is exactly 20%, allowed.
                if (1..=4).contains(&i) {
                    l.replacen(&format!("SURNAME{}", i - 1), "F", 1) + "\n"
                } else {
                    l.to_owned() + "\n"
                }
            })
            .collect();
        fs::write(&opts.files[0], fixed).unwrap();
        let manifest = ingest(&layout, &opts, &()).unwrap();
        assert_eq!(manifest.unknown_codes["gender"]["SURNAME4"], 1);
    }

    #[test]
    fn a_file_mostly_rejected_stops_the_ingest_and_keeps_the_old_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let (layout, opts) = surname_as_gender(tmp.path(), 1_000);
        let opts = IngestOptions {
            allow_unknown: true,
            ..opts
        };
        ingest(&layout, &opts, &()).unwrap();
        // Every data line gains a trailing field (a column the state added).
        let text = fs::read_to_string(&opts.files[0]).unwrap();
        let mut lines = text.lines();
        let mut wider = lines.next().unwrap().to_owned() + "\n";
        for (i, l) in lines.enumerate() {
            wider += l;
            if i < 501 {
                wider += "\tNEW";
            }
            wider += "\n";
        }
        fs::write(&opts.files[0], wider).unwrap();
        let err = ingest(&layout, &opts, &()).unwrap_err().to_string();
        assert!(
            err.starts_with("501 of 1,000 lines were rejected, most as `field_count`: the lines have another number of fields"),
            "{err}"
        );
        let kept = Manifest::read(&opts.data_dir.join("nc")).unwrap().unwrap();
        assert_eq!(kept.rows_written, 1_000, "the previous dataset stays");
        let opts = IngestOptions {
            allow_rejects: true,
            ..opts
        };
        assert_eq!(ingest(&layout, &opts, &()).unwrap().rows_written, 499);
        // Every line rejected stops an ingest of any size.
        let (layout, opts) = surname_as_gender(tmp.path(), 3);
        let text = fs::read_to_string(&opts.files[0])
            .unwrap()
            .replace("WAKE", "NOWHERE");
        fs::write(&opts.files[0], text).unwrap();
        let err = ingest(&layout, &opts, &()).unwrap_err().to_string();
        assert!(
            err.starts_with("3 of 3 lines were rejected, most as `unknown_county`"),
            "{err}"
        );
    }

    #[test]
    fn dataset_names_are_plain() {
        assert!(validate_name("nc_2026-11").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b", "ü"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
