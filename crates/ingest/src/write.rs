//! The spill file of compact rows, and Parquet output.
//!
//! Accepted rows go to a spill file ([`ROW_BYTES`] each) while the input streams
//! past, because whether a row survives de-duplication is known only at the
//! end. The spill lives in the dataset's temporary folder and is removed
//! before the folder is renamed into place; it holds only the minimized
//! columns, never an identifier.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, Int16Array, StringArray, UInt8Array, UInt16Array};
use arrow::datatypes::{DataType, UInt8Type, UInt16Type};
use arrow::record_batch::RecordBatch;
use layout::Layout;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::IngestError;
use crate::rules::{NULL_YEAR, Row};

/// Bytes per spilled row: county, birth and registration years (2 each),
/// then one byte per coded dimension slot. A fixed width keeps the spill a
/// plain array that the Parquet writers read by offset.
pub const ROW_BYTES: usize = 6 + layout::MAX_CODED;
/// Mode of every file an ingest writes: the output is minimized but still a
/// copy of the voter file, so it is the owner's alone.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the folders an ingest creates.
pub const DIR_MODE: u32 = 0o700;

/// Options that create a new file with [`FILE_MODE`]. The mode is set by
/// `open` itself: a `chmod` afterwards would leave a moment when others
/// could open it. A file that already exists is an error, so no mode of an
/// earlier file is inherited.
pub fn private_file() -> OpenOptions {
    let mut options = File::options();
    options.write(true).create_new(true).mode(FILE_MODE);
    options
}

/// A builder that creates folders with [`DIR_MODE`]; `recursive` also
/// creates missing parents (with the same mode) and accepts an existing
/// folder, whose mode it leaves alone.
pub fn private_dir(recursive: bool) -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.recursive(recursive).mode(DIR_MODE);
    builder
}
/// Rows per Parquet row group (and per Arrow batch).
pub use dataset::ROW_GROUP;

/// Encodes a row into its [`ROW_BYTES`] spill form.
#[inline]
pub fn encode(row: &Row, out: &mut [u8]) {
    out[0..2].copy_from_slice(&row.county.to_le_bytes());
    out[2..4].copy_from_slice(&row.birth_year.to_le_bytes());
    out[4..6].copy_from_slice(&row.registration_year.to_le_bytes());
    out[6..ROW_BYTES].copy_from_slice(&row.codes);
}

#[inline]
fn decode(b: &[u8]) -> Row {
    Row {
        county: u16::from_le_bytes([b[0], b[1]]),
        birth_year: i16::from_le_bytes([b[2], b[3]]),
        registration_year: i16::from_le_bytes([b[4], b[5]]),
        codes: b[6..ROW_BYTES]
            .try_into()
            .expect("a spilled row is ROW_BYTES long"),
    }
}

/// Appends encoded rows to the spill file.
pub struct Spill {
    out: BufWriter<File>,
}

impl Spill {
    /// Creates the spill file.
    pub fn create(path: &Path) -> Result<Spill, IngestError> {
        let file = private_file()
            .read(true)
            .open(path)
            .map_err(|e| IngestError::io(path, e))?;
        Ok(Spill {
            out: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// Appends already-encoded rows.
    pub fn append(&mut self, bytes: &[u8], path: &Path) -> Result<(), IngestError> {
        self.out
            .write_all(bytes)
            .map_err(|e| IngestError::io(path, e))
    }

    /// Flushes and returns the file for reading.
    pub fn finish(self, path: &Path) -> Result<File, IngestError> {
        self.out
            .into_inner()
            .map_err(|e| IngestError::io(path, e.into_error()))
    }
}

/// A vote cell no history line or rule has set yet; written as
/// `did_not_vote` (a voter kept without an id, who cannot be joined).
pub const NO_VOTE: u8 = u8::MAX;

/// Where the `vote_<id>` columns of the configured elections come from.
#[derive(Clone, Copy)]
pub enum Votes<'a> {
    /// No elections.
    None,
    /// In-file history: each row's codes past the coded dimensions.
    InRow,
    /// Joined from history files: one cell per (accepted row, election),
    /// row-major, indices into `layout::CATEGORIES`.
    Joined(&'a [std::sync::atomic::AtomicU8]),
}

/// Which spilled rows are written, and their votes.
#[derive(Clone, Copy)]
pub(crate) struct Kept<'a> {
    /// A bit per accepted row: set for a dropped duplicate.
    pub dropped: &'a [u64],
    /// Where the rows' `vote_<id>` cells come from.
    pub votes: Votes<'a>,
}

/// Per index into `layout::CATEGORIES`: its key in the layout's vote
/// dictionary (the layout's categories, in order).
fn vote_keys(layout: &Layout) -> ([u8; 256], ArrayRef) {
    let mut keys = [0u8; 256];
    let categories = layout
        .history
        .as_ref()
        .map(|h| h.categories())
        .unwrap_or_default();
    for (k, &c) in categories.iter().enumerate() {
        keys[usize::from(c)] = k as u8;
    }
    let values = categories
        .iter()
        .map(|&c| layout::CATEGORIES[usize::from(c)].0);
    (keys, Arc::new(StringArray::from_iter_values(values)))
}

/// Writes rows `range` of the spill (skipping dropped ones) to `path`.
pub fn write_part(
    layout: &Layout,
    spill: &File,
    spill_path: &Path,
    range: std::ops::Range<u64>,
    dropped: &[u64],
    votes: Votes<'_>,
    path: &Path,
) -> Result<u64, IngestError> {
    let schema = dataset::schema(layout);
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP));
    // Min/max statistics of a dictionary column cost a string comparison per
    // row (a tenth of ingest's CPU) and serve no reader here: the server
    // loads every row, and the code lists are public in the layout anyway.
    for field in schema.fields() {
        if matches!(field.data_type(), DataType::Dictionary(..)) {
            props = props.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    let props = props.build();
    let file = private_file()
        .open(path)
        .map_err(|e| IngestError::io(path, e))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| IngestError::Parquet(e.to_string()))?;

    let county_names: ArrayRef = Arc::new(StringArray::from_iter_values(
        layout.county.counties.iter().map(|c| c.name.as_str()),
    ));
    let code_values: Vec<ArrayRef> = layout
        .coded
        .iter()
        .map(|c| Arc::new(StringArray::from_iter_values(c.code_strs())) as ArrayRef)
        .collect();

    let (vote_key, vote_values) = vote_keys(layout);
    let elections = layout.elections.len();
    let mut buf = vec![0u8; ROW_GROUP * ROW_BYTES];
    let mut written = 0u64;
    let mut at = range.start;
    while at < range.end {
        let n = ((range.end - at) as usize).min(ROW_GROUP);
        let bytes = &mut buf[..n * ROW_BYTES];
        spill
            .read_exact_at(bytes, at * ROW_BYTES as u64)
            .map_err(|e| IngestError::io(spill_path, e))?;
        let mut county = Vec::with_capacity(n);
        let mut birth = Vec::with_capacity(n);
        let mut reg = Vec::with_capacity(n);
        let mut codes: Vec<Vec<u8>> = vec![Vec::with_capacity(n); layout.coded.len()];
        let mut vote_cols: Vec<Vec<u8>> = vec![Vec::with_capacity(n); elections];
        for (i, chunk) in bytes.chunks_exact(ROW_BYTES).enumerate() {
            let row_index = at + i as u64;
            if dropped[(row_index / 64) as usize] & (1 << (row_index % 64)) != 0 {
                continue;
            }
            let row = decode(chunk);
            county.push(row.county);
            birth.push((row.birth_year != NULL_YEAR).then_some(row.birth_year));
            reg.push((row.registration_year != NULL_YEAR).then_some(row.registration_year));
            for (c, out) in codes.iter_mut().enumerate() {
                out.push(row.codes[c]);
            }
            for (e, out) in vote_cols.iter_mut().enumerate() {
                let category = match votes {
                    Votes::None => NO_VOTE,
                    Votes::InRow => row.codes[layout.coded.len() + e],
                    Votes::Joined(cells) => cells[row_index as usize * elections + e]
                        .load(std::sync::atomic::Ordering::Relaxed),
                };
                let category = if category == NO_VOTE {
                    layout::DID_NOT_VOTE
                } else {
                    category
                };
                out.push(vote_key[usize::from(category)]);
            }
        }
        at += n as u64;
        if county.is_empty() {
            continue;
        }
        written += county.len() as u64;
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut codes = codes.into_iter();
        let mut code_values = code_values.iter();
        let mut vote_cols = vote_cols.into_iter();
        let names = layout.output_columns();
        let (names, vote_names) = names.split_at(names.len() - elections);
        for name in names {
            columns.push(match *name {
                "county" => Arc::new(
                    DictionaryArray::<UInt16Type>::try_new(
                        UInt16Array::from(std::mem::take(&mut county)),
                        county_names.clone(),
                    )
                    .map_err(|e| IngestError::Parquet(e.to_string()))?,
                ),
                "birth_year" => Arc::new(Int16Array::from(std::mem::take(&mut birth))),
                "registration_year" => Arc::new(Int16Array::from(std::mem::take(&mut reg))),
                _ => Arc::new(
                    DictionaryArray::<UInt8Type>::try_new(
                        UInt8Array::from(codes.next().expect("one per coded column")),
                        code_values.next().expect("one per coded column").clone(),
                    )
                    .map_err(|e| IngestError::Parquet(e.to_string()))?,
                ),
            });
        }
        for _ in vote_names {
            columns.push(Arc::new(
                DictionaryArray::<UInt8Type>::try_new(
                    UInt8Array::from(vote_cols.next().expect("one per election")),
                    vote_values.clone(),
                )
                .map_err(|e| IngestError::Parquet(e.to_string()))?,
            ));
        }
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| IngestError::Parquet(e.to_string()))?;
        writer
            .write(&batch)
            .map_err(|e| IngestError::Parquet(e.to_string()))?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| IngestError::Parquet(e.to_string()))?;
    file.sync_all().map_err(|e| IngestError::io(path, e))?;
    Ok(written)
}

/// Writes the spill's `rows` rows, but for those `dropped`, as Parquet parts
/// in `dir` (several in parallel when there are many rows); returns the part
/// names and the rows written.
pub(crate) fn write_parts(
    layout: &Layout,
    spill: &File,
    spill_path: &Path,
    rows: u64,
    kept: Kept<'_>,
    dir: &Path,
    threads: usize,
) -> Result<(Vec<String>, u64), IngestError> {
    use rayon::prelude::*;
    let parts = if rows < (1 << 18) {
        1
    } else {
        threads.min(8) as u64
    };
    let per_part = rows.div_ceil(parts).max(1);
    let names: Vec<String> = (0..parts).map(dataset::part_name).collect();
    let written: Vec<u64> = names
        .par_iter()
        .enumerate()
        .map(|(i, name)| {
            let start = (i as u64 * per_part).min(rows);
            let end = ((i as u64 + 1) * per_part).min(rows);
            write_part(
                layout,
                spill,
                spill_path,
                start..end,
                kept.dropped,
                kept.votes,
                &dir.join(name),
            )
        })
        .collect::<Result<_, _>>()?;
    Ok((names, written.iter().sum()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_created_owner_only_and_never_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        private_file().open(&path).unwrap();
        assert_eq!(mode(&path), FILE_MODE);
        let again = private_file().open(&path).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn folders_are_created_owner_only_and_existing_ones_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("a/b");
        private_dir(true).create(&new).unwrap();
        assert_eq!(
            (mode(&new), mode(&tmp.path().join("a"))),
            (DIR_MODE, DIR_MODE)
        );
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(true).create(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
    }
}
