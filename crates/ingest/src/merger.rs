//! The merger (the ingest's main thread): applies each chunk's result in
//! input order — rows to the spill file, de-duplication entries, rejects to
//! `rejects.tsv` with their physical line numbers, counts for the manifest.
//! De-duplication keys go to [`Keys`]' bucket files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use layout::Layout;

use crate::IngestError;
use crate::dedup::{Entry, Keys};
use crate::parse::ChunkOut;
use crate::rules::{RejectReason, Rules};
use crate::unknown::Unknowns;
use crate::write::{self, Spill};

/// The spill file's name in the temporary folder; the writer reads rows
/// back from it and the pipeline removes it.
pub(crate) const SPILL: &str = "rows.spill";

/// Everything the merger gathered, once every chunk is in.
pub(crate) struct Merged {
    /// The spill file of encoded rows, flushed.
    pub spill: File,
    /// De-duplication keys, one per accepted row with an id, on disk.
    pub keys: Keys,
    /// Unknown codes by accepted row.
    pub unknown: Unknowns,
    /// What the manifest reports about the lines read.
    pub counts: Counts,
}

/// Counts of lines read, accepted and rejected, for the manifest.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Rejected lines by reason.
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Null birth years by reason (see `parse::null_index`).
    pub birth_nulls: [u64; 4],
    /// The same for registration years.
    pub reg_nulls: [u64; 4],
    /// Rows accepted (before de-duplication).
    pub rows_accepted: u64,
    /// In-file history cells not in the method table, over accepted rows.
    pub unknown_votes: u64,
    /// Data lines read.
    pub rows_read: u64,
    /// Lines rejected.
    pub rows_rejected: u64,
    /// Data lines read per input file.
    pub rows_read_by_file: Vec<u64>,
}

/// The merger's state while chunks arrive.
pub(crate) struct Merger<'a> {
    layout: &'a Layout,
    file_names: Vec<String>,
    first_data_line: u64,
    spill: Spill,
    spill_path: PathBuf,
    rejects: BufWriter<File>,
    rejects_path: PathBuf,
    keys: Keys,
    unknown: Unknowns,
    counts: Counts,
    bytes_done: u64,
}

impl<'a> Merger<'a> {
    /// A merger writing its spill and `rejects.tsv` into `dir`.
    pub fn new(
        layout: &'a Layout,
        files: &[PathBuf],
        dir: &Path,
    ) -> Result<Merger<'a>, IngestError> {
        let spill_path = dir.join(SPILL);
        let spill = Spill::create(&spill_path)?;
        let rejects_path = dir.join(dataset::REJECTS);
        let mut rejects = BufWriter::new(
            write::private_file()
                .open(&rejects_path)
                .map_err(|e| IngestError::io(&rejects_path, e))?,
        );
        writeln!(rejects, "file\tline\tcolumn\treason")
            .map_err(|e| IngestError::io(&rejects_path, e))?;
        let file_names = files
            .iter()
            .map(|f| {
                f.file_name().map_or_else(
                    || f.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Ok(Merger {
            layout,
            file_names,
            // Physical line numbers: the header, when there is one, is line 1.
            first_data_line: if layout.format.header { 2 } else { 1 },
            spill,
            spill_path,
            rejects,
            rejects_path,
            keys: Keys::create(dir)?,
            unknown: Unknowns::new(layout.coded.len()),
            counts: Counts {
                rows_read_by_file: vec![0; files.len()],
                ..Counts::default()
            },
            bytes_done: 0,
        })
    }

    /// Bytes of input merged so far, and data lines.
    pub fn done(&self) -> (u64, u64) {
        (self.bytes_done, self.counts.rows_read)
    }

    /// Applies one chunk's result; chunks must come in input order.
    pub fn merge(&mut self, out: ChunkOut) -> Result<(), IngestError> {
        let base = self.counts.rows_accepted;
        if base + out.keys.len() as u64 > u32::MAX as u64 {
            return Err(IngestError::TooManyRows(u32::MAX as u64));
        }
        self.spill.append(&out.rows, &self.spill_path)?;
        for (i, k) in out.keys.iter().enumerate() {
            self.keys.push(Entry {
                id: k.id,
                rank: k.rank,
                row: (base + i as u64) as u32,
            })?;
        }
        for (i, u) in out.unknown {
            self.unknown.push(base as u32 + i, u);
        }
        self.write_rejects(out.file, &out.rejects, &out.rules)?;
        let counts = &mut self.counts;
        for i in 0..4 {
            counts.birth_nulls[i] += out.birth_nulls[i];
            counts.reg_nulls[i] += out.reg_nulls[i];
        }
        counts.rows_accepted += out.keys.len() as u64;
        counts.unknown_votes += out.unknown_votes;
        counts.rows_rejected += out.rejects.len() as u64;
        counts.rows_read += out.lines;
        counts.rows_read_by_file[out.file] += out.lines;
        self.bytes_done += out.bytes as u64;
        Ok(())
    }

    fn write_rejects(
        &mut self,
        file: usize,
        rejects: &[(u64, RejectReason)],
        rules: &Rules,
    ) -> Result<(), IngestError> {
        let first_line = self.counts.rows_read_by_file[file] + self.first_data_line;
        for (line, reason) in rejects {
            let line = first_line + line;
            let (column, text) = describe(reason, rules, self.layout);
            let key = reason.key();
            *self
                .counts
                .rejects_by_reason
                .entry(key.to_owned())
                .or_default() += 1;
            writeln!(
                self.rejects,
                "{}\t{line}\t{column}\t{text}",
                self.file_names[file]
            )
            .map_err(|e| IngestError::io(&self.rejects_path, e))?;
        }
        Ok(())
    }

    /// Flushes `rejects.tsv` to disk and hands over what was gathered.
    pub fn finish(self) -> Result<Merged, IngestError> {
        let rejects_path = self.rejects_path;
        self.rejects
            .into_inner()
            .map_err(|e| IngestError::io(&rejects_path, e.into_error()))?
            .sync_all()
            .map_err(|e| IngestError::io(&rejects_path, e))?;
        Ok(Merged {
            spill: self.spill.finish(&self.spill_path)?,
            keys: self.keys,
            unknown: self.unknown,
            counts: self.counts,
        })
    }
}

/// Where and why a line was rejected: column and message (never the
/// line's content).
fn describe(reason: &RejectReason, rules: &Rules, layout: &Layout) -> (String, String) {
    match *reason {
        RejectReason::FieldCount { found, expected } => (
            "-".to_owned(),
            format!("expected {expected} fields, found {found}"),
        ),
        RejectReason::UnclosedQuote(i) => (
            rules
                .column_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("field {}", i + 1)),
            "quote opened and never closed".to_owned(),
        ),
        RejectReason::UnknownCounty => (
            layout.county.column.clone(),
            "county not in the reference list".to_owned(),
        ),
        RejectReason::CountyMismatch => (
            layout
                .county
                .agree
                .as_ref()
                .map_or_else(|| layout.county.column.clone(), |a| a.column.clone()),
            "county columns disagree or name no listed county".to_owned(),
        ),
        RejectReason::MissingVoterId => (
            layout.voter_id.clone(),
            "voter id is blank or a placeholder".to_owned(),
        ),
    }
}
