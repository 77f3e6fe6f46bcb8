//! Voter file → minimized Parquet.
//!
//! ```text
//!  file(s) ─▶ reader thread ──chunks of whole lines──▶ parse workers ──▶ merger (input order)
//!            (SHA-256, line                            (split, rules:     │ rows ─▶ spill file
//!             numbers)                                  county, codes,    │ ids  ─▶ dedup keys
//!                                                       years, id key)    │ rejects ─▶ rejects.tsv
//!                                                                         ▼
//!            sort dedup keys ─▶ dropped-row bitmap ─▶ spill ─▶ Parquet parts (parallel)
//!            ─▶ manifest.json ─▶ atomic swap of the dataset folder
//! ```
//!
//! Invariants:
//! - Columns are taken by an allow-list (`layout::Layout::output_columns`); no
//!   identifier (name, address, voter id, full birth date, `ssn`, ...) is ever
//!   written. The voter id lives in memory as a 64-bit key for de-duplication.
//! - `rejects.tsv` holds file, line number, column and reason, never content.
//! - A line without a voter id (blank, or a layout's placeholder) is rejected,
//!   or kept as a voter of its own; it is never grouped with another line, so
//!   de-duplication never merges two people.
//! - Every folder ingest creates is 0700 and every file it writes 0600, set as
//!   they are created.
//! - Output is built in a temporary folder and swapped into place only on
//!   success; a failed or interrupted ingest leaves the previous version.
//! - Memory is bounded at any file size: the de-duplication keys (16 bytes
//!   a row) are spilled to hash buckets on disk and read back one bucket at
//!   a time (`dedup.rs`); what stays in memory per row is one bit.

pub mod check;
mod clock;
mod dedup;
mod history;
mod manifest;
mod merger;
mod parse;
mod pipeline;
mod reader;
pub mod rules;
pub mod split;
mod unknown;
mod write;

use std::path::{Path, PathBuf};

pub use clock::now_utc;
pub use dataset::{Manifest, SchemaField, Source};
pub use pipeline::{Progress, ingest};

/// What to ingest and where.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Dataset name: the folder under `data_dir`.
    pub dataset: String,
    /// Folder holding datasets.
    pub data_dir: PathBuf,
    /// Input files, read in order as one dataset.
    pub files: Vec<PathBuf>,
    /// Year treated as current for plausibility checks (default: the clock's).
    pub current_year: Option<i16>,
    /// Parse threads (default: available cores).
    pub threads: Option<usize>,
    /// Ingest even when a dimension's values are mostly not in its code
    /// table (see [`IngestError::MostlyUnknown`]).
    pub allow_unknown: bool,
    /// Ingest even when more than half of the lines are rejected (see
    /// [`IngestError::MostlyRejected`]).
    pub allow_rejects: bool,
    /// Separate voting-history files (NC `ncvhis`, FL extracts), joined to
    /// the voters for the layout's configured elections
    /// (`Layout::elections`). Empty for in-file history (OH) and none.
    pub history_files: Vec<PathBuf>,
}

/// A count printed with thousands separators (`200,000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thousands(pub u64);

impl std::fmt::Display for Thousands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        f.write_str(&out)
    }
}

/// Why an ingest failed. On any error the previous dataset is untouched.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// More than a fifth of a coded dimension's values are neither blank
    /// nor in its table (after `map`): the layout most likely points the
    /// dimension at the wrong column. Nothing was swapped in. Names the
    /// layout key and the source column, never a value.
    #[error(
        "`dimensions.{dimension}.column = {column}`: {percent:.1}% of {values} values are not in the code table; \
         check the layout's column (or pass --allow-unknown to ingest anyway)"
    )]
    MostlyUnknown {
        /// The dimension (`gender`).
        dimension: String,
        /// Its source column (`LName`).
        column: String,
        /// Share of its values that were unknown, in percent.
        percent: f64,
        /// Values looked at: every accepted line.
        values: Thousands,
    },
    /// More than half of the lines were rejected: the layout does not fit
    /// the file (another field count, delimiter or county list). Nothing was
    /// swapped in, so the previous dataset stays.
    #[error(
        "{rejected} of {read} lines were rejected, most as `{reason}`{hint}; nothing was swapped in \
         (`rollcall layout check` shows the shares; --allow-rejects ingests anyway)"
    )]
    MostlyRejected {
        /// Lines rejected.
        rejected: Thousands,
        /// Data lines read.
        read: Thousands,
        /// The most frequent reason's key.
        reason: String,
        /// What that reason usually means.
        hint: String,
    },
    /// A column the layout needs is not in a file's header.
    #[error("{file}: column {column} (layout `{layout}`, key `{key}`) is not in the header{hint}")]
    MissingColumn {
        /// The input file.
        file: String,
        /// The missing column, quoted: `` `a` `` or `` `a` or `b` `` when the
        /// layout gives alternative names.
        column: String,
        /// The layout key that names it (`dimensions.status.column`).
        key: String,
        /// When the header split into one field: which delimiter it looks
        /// like instead (empty otherwise).
        hint: String,
        /// The layout name.
        layout: String,
    },
    /// `delimiter = "auto"`, and the first line holds no tab, pipe or comma.
    #[error(
        "{file}: layout `{layout}` has delimiter = \"auto\", but the first line holds no tab, pipe or comma (key `format.delimiter`)"
    )]
    NoDelimiter {
        /// The input file.
        file: String,
        /// The layout name.
        layout: String,
    },
    /// The file has a header per the layout but is empty.
    #[error("{file}: empty file (layout `{layout}` expects a header line)")]
    NoHeader {
        /// The input file.
        file: String,
        /// The layout name.
        layout: String,
    },
    /// The dataset name is not a plain folder name.
    #[error("invalid dataset name `{0}`: use letters, digits, `-` and `_`")]
    DatasetName(String),
    /// No input files were given.
    #[error("no input files")]
    NoFiles,
    /// Writing Parquet failed.
    #[error("writing parquet: {0}")]
    Parquet(String),
    /// The history files do not fit the layout's `[history]` or the
    /// elections (the message names the key or option).
    #[error("history: {0}")]
    History(String),
    /// More rows than the ingest can index.
    #[error("too many rows (limit {0})")]
    TooManyRows(u64),
}

impl IngestError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> IngestError {
        IngestError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
