//! A dataset in memory: one small integer code per row and dimension, read
//! from the dataset folder's Parquet files in parallel.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    ArrowDictionaryKeyType, ArrowNativeType, DataType, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use layout::Layout;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use rayon::prelude::*;

use dataset::Manifest;

use crate::rollup::Rollup;
use crate::{CountQuery, Dim, DimKind, Domains, EngineError};

/// An integer type codes are stored in.
pub(crate) trait CodeInt: Copy + Send + Sync + 'static {
    fn from_u16(c: u16) -> Self;
}
impl CodeInt for u8 {
    #[inline]
    fn from_u16(c: u16) -> Self {
        c as u8
    }
}
impl CodeInt for u16 {
    #[inline]
    fn from_u16(c: u16) -> Self {
        c
    }
}

/// The codes of one dimension over a run of rows: `u8` when the domain has
/// at most 256 values, else `u16`. No `Debug`: these are rows.
#[derive(Clone)]
pub(crate) enum Codes {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl Codes {
    fn len(&self) -> usize {
        match self {
            Codes::U8(v) => v.len(),
            Codes::U16(v) => v.len(),
        }
    }
}

/// Whether a dimension's codes are stored as `u8`.
pub(crate) fn narrow(domains: &Domains, dim: Dim) -> bool {
    domains.domain_len(dim) <= 256
}

/// A run of rows (one Parquet batch): a column of codes per present dimension.
/// No `Debug`: these are rows.
#[derive(Clone)]
pub(crate) struct Segment {
    pub rows: usize,
    /// By `Dim::index()`, one per dimension of the domains.
    pub cols: Vec<Option<Codes>>,
}

/// A dataset's rows as codes into its [`Domains`].
///
/// Holds only codes of public domain values; nothing identifies a voter. Its
/// `Debug` shows the public side only (dimensions, data version): the rows,
/// their number and the levels' weights are exact counts.
#[derive(Clone)]
pub struct Dataset {
    pub(crate) domains: Arc<Domains>,
    pub(crate) segments: Vec<Segment>,
    rows: usize,
    /// Pre-aggregated levels, once [`Dataset::build_rollups`] has run;
    /// smallest first.
    pub(crate) rollups: OnceLock<Vec<Rollup>>,
    /// What the data is: see [`Dataset::version`].
    version: String,
    /// SHA-256 of each source file the ingest read (from `manifest.json`).
    sources: Vec<String>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("dimensions", &self.domains.dim_names())
            .field("version", &self.version)
            .field("levels_ready", &self.rollups_ready())
            .finish_non_exhaustive()
    }
}

/// Which rows a count runs over: a choice made from the query's public shape
/// and the server's state (whether the levels are built), never from data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountSource {
    /// The pre-aggregated level at this index of the dataset's levels
    /// (smallest domain product first; see the `rollup` module).
    Level(usize),
    /// Every row.
    Rows,
}

/// Sentinel in a dictionary's value → code table for a value with no code.
const NO_CODE: u32 = u32::MAX;

fn schema_err(path: &Path, message: String) -> EngineError {
    EngineError::Schema {
        path: path.display().to_string(),
        message,
    }
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Parquet {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Dataset {
    /// Loads every `*.parquet` file of the dataset folder `dir`.
    ///
    /// Reads only the columns of `domains`' dimensions, one task per row
    /// group in parallel. String values are mapped to codes once per
    /// dictionary; a coded value outside its table becomes the layout's
    /// fallback code (a null becomes the blank code), while a county not in
    /// the reference list fails the load, naming the county and file. If
    /// `manifest.json` is present its `layout` must be `layout`'s name and its
    /// `rows_written` the number of rows read.
    pub fn load(
        dir: &Path,
        layout: &Layout,
        domains: Arc<Domains>,
    ) -> Result<Dataset, EngineError> {
        let files = parquet_files(dir)?;
        let manifest_path = dir.join(dataset::MANIFEST);
        let manifest = Manifest::read(dir).map_err(|e| match e {
            dataset::ManifestError::Io { source, .. } => io_err(&manifest_path, source),
            other => schema_err(&manifest_path, other.to_string()),
        })?;
        let (version, sources) = describe(manifest.as_ref());
        if let Some(m) = &manifest
            && m.layout != layout.name
        {
            return Err(schema_err(
                &manifest_path,
                format!(
                    "the dataset was ingested with layout `{}`, not `{}`",
                    m.layout, layout.name
                ),
            ));
        }

        // Footers first (cheap), then every row group as its own task.
        let metas = files
            .iter()
            .map(|path| {
                let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
                let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                    .map_err(|e| parquet_err(path, e))?;
                Ok((path.clone(), meta))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let tasks: Vec<(&PathBuf, &ArrowReaderMetadata, usize)> = metas
            .iter()
            .flat_map(|(path, meta)| {
                (0..meta.metadata().num_row_groups()).map(move |rg| (path, meta, rg))
            })
            .collect();
        let dims: Vec<Dim> = domains.dims().iter().map(|d| d.dim).collect();
        let parts = tasks
            .par_iter()
            .map(|(path, meta, rg)| read_row_group(path, meta, *rg, &dims, &domains))
            .collect::<Result<Vec<Vec<Segment>>, EngineError>>()?;
        let segments: Vec<Segment> = parts.into_iter().flatten().collect();
        let rows = segments.iter().map(|s| s.rows).sum();

        if let Some(m) = &manifest
            && m.rows_written != rows as u64
        {
            return Err(schema_err(
                &manifest_path,
                format!(
                    "rows_written is {} but the Parquet files hold {rows} rows",
                    m.rows_written
                ),
            ));
        }
        Ok(Dataset {
            domains,
            segments,
            rows,
            rollups: OnceLock::new(),
            version,
            sources,
        })
    }

    /// Builds a dataset from codes already in memory (tests, benchmarks,
    /// synthetic data). `columns` gives, for every dimension `domains` has,
    /// each row's code: an index into that dimension's `values`.
    pub fn from_codes(
        domains: Arc<Domains>,
        columns: Vec<(Dim, Vec<u16>)>,
    ) -> Result<Dataset, EngineError> {
        let mut cols: Vec<Option<Codes>> = vec![None; domains.dims().len()];
        let mut rows = None;
        for (dim, codes) in columns {
            let domain = domains
                .get(dim)
                .ok_or_else(|| EngineError::DimensionAbsent(format!("#{}", dim.index())))?;
            let name = &domain.name;
            if cols[dim.index()].is_some() {
                return Err(EngineError::DuplicateDimension(name.clone()));
            }
            if let Some(bad) = codes.iter().find(|&&c| c as usize >= domain.values.len()) {
                return Err(EngineError::InvalidSpec(format!(
                    "code {bad} is outside `{name}`'s {} values",
                    domain.values.len()
                )));
            }
            if *rows.get_or_insert(codes.len()) != codes.len() {
                return Err(EngineError::InvalidSpec(format!(
                    "column `{name}` has {} rows, others {}",
                    codes.len(),
                    rows.unwrap_or(0)
                )));
            }
            cols[dim.index()] = Some(if narrow(&domains, dim) {
                Codes::U8(codes.into_iter().map(|c| c as u8).collect())
            } else {
                Codes::U16(codes)
            });
        }
        if let Some(missing) = domains
            .dims()
            .iter()
            .find(|d| cols[d.dim.index()].is_none())
        {
            return Err(EngineError::InvalidSpec(format!(
                "no codes given for dimension `{}`",
                missing.name
            )));
        }
        let rows = rows.unwrap_or(0);
        Ok(Dataset {
            domains,
            segments: vec![Segment { rows, cols }],
            rows,
            rollups: OnceLock::new(),
            version: "in-memory".to_owned(),
            sources: Vec::new(),
        })
    }

    /// What the data is, for the key of a stored release: a digest of the
    /// manifest's source file hashes, Parquet schema, layout digest,
    /// reference year, and stored elections and history file hashes. A
    /// re-ingest of other files, or with another layout,
    /// is another version; the same files ingested the same way are the same.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// SHA-256 of each file the dataset was ingested from: two datasets
    /// sharing one hold the same voters.
    pub fn source_hashes(&self) -> &[String] {
        &self.sources
    }

    /// The rows [`Dataset::count`] would run `query` over now. Depends on the
    /// dimensions the query touches and on whether the levels are built.
    pub fn source_for(&self, query: &CountQuery) -> Result<CountSource, EngineError> {
        let plan = self.domains.plan(query)?;
        let needed = plan.needed();
        Ok(match self.level_for(needed) {
            Some((i, _)) => CountSource::Level(i),
            None => CountSource::Rows,
        })
    }

    /// The smallest built level keeping every dimension in `needed` (a
    /// `Dim::bit` set), with its index among the levels.
    pub(crate) fn level_for(&self, needed: u64) -> Option<(usize, &Rollup)> {
        self.rollups
            .get()?
            .iter()
            .enumerate()
            .find(|(_, l)| l.covers(needed))
    }

    /// Builds the pre-aggregated levels that make most counts independent of
    /// the number of voters (see the `rollup` module); until it has run,
    /// [`Dataset::count`] scans every row, with the same results. Takes about
    /// a second per ten million rows on two cores: a server calls it after it
    /// is ready, on a thread of its own. A second call does nothing.
    pub fn build_rollups(&self) {
        self.build_rollups_within(crate::rollup::MAX_LEVEL_CELLS);
    }

    /// [`Dataset::build_rollups`], keeping levels whose domain product is at
    /// most `max_cells` (tests keep them all).
    pub(crate) fn build_rollups_within(&self, max_cells: u64) {
        self.rollups
            .get_or_init(|| crate::rollup::build(self, max_cells));
    }

    /// Whether [`Dataset::build_rollups`] has finished.
    pub fn rollups_ready(&self) -> bool {
        self.rollups.get().is_some()
    }

    /// Number of rows (voters): an exact count, for this crate's counting
    /// and its tests only.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The public domains the codes refer to.
    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    /// The shared handle to the domains.
    pub fn domains_arc(&self) -> &Arc<Domains> {
        &self.domains
    }
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "parquet") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(io_err(dir, "no *.parquet files in the dataset folder"));
    }
    files.sort();
    Ok(files)
}

/// The data version and source hashes from a manifest (see
/// [`Dataset::version`]); without a manifest, the version says so.
fn describe(manifest: Option<&Manifest>) -> (String, Vec<String>) {
    use sha2::{Digest, Sha256};
    let Some(m) = manifest else {
        return ("no-manifest".to_owned(), Vec::new());
    };
    let sources = m.source_hashes();
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(&m.layout);
    put(&m.layout_sha256);
    put(&m.current_year.to_string());
    for f in &m.schema {
        put(&format!("{}:{}:{}", f.name, f.data_type, f.nullable));
    }
    for s in &sources {
        put(s);
    }
    // History files change turnout answers without changing the voters:
    // another history (or the same id on another date) is another version.
    if let Some(history) = &m.history {
        for e in &history.elections {
            put(&format!("election:{}:{}:{}", e.id, e.date, e.kind));
        }
        for s in &history.sources {
            put(&format!("history:{}", s.sha256));
        }
    }
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (hex, sources)
}

fn read_row_group(
    path: &Path,
    meta: &ArrowReaderMetadata,
    rg: usize,
    dims: &[Dim],
    domains: &Domains,
) -> Result<Vec<Segment>, EngineError> {
    let schema = meta.schema();
    let mut roots = Vec::with_capacity(dims.len());
    for &dim in dims {
        let domain = domains.get(dim).expect("loaded dims are the domains'");
        let column = &domain.column;
        let index = schema.index_of(column).map_err(|_| {
            schema_err(
                path,
                format!(
                    "no column `{column}` (needed for dimension `{}`)",
                    domain.name
                ),
            )
        })?;
        roots.push(index);
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let rg_rows = meta.metadata().row_group(rg).num_rows().max(1) as usize;
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
        .with_row_groups(vec![rg])
        .with_projection(mask)
        .with_batch_size(rg_rows)
        .build()
        .map_err(|e| parquet_err(path, e))?;
    let mut segments = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        segments.push(batch_codes(path, &batch, dims, domains)?);
    }
    Ok(segments)
}

fn batch_codes(
    path: &Path,
    batch: &RecordBatch,
    dims: &[Dim],
    domains: &Domains,
) -> Result<Segment, EngineError> {
    let mut cols: Vec<Option<Codes>> = vec![None; domains.dims().len()];
    for &dim in dims {
        let domain = domains.get(dim).expect("loaded dims are the domains'");
        let column = &domain.column;
        let array = batch
            .column_by_name(column)
            .ok_or_else(|| schema_err(path, format!("no column `{column}`")))?;
        let codes = match domain.kind {
            DimKind::AgeBand => year_codes(path, array, dim, domains, |y| {
                domains.age_table()[y as u16 as usize] as u16
            })?,
            DimKind::RegistrationYear => year_codes(path, array, dim, domains, |y| {
                domains.registration_table()[y as u16 as usize]
            })?,
            DimKind::County | DimKind::Coded => string_codes(path, array, dim, domains)?,
        };
        debug_assert_eq!(codes.len(), batch.num_rows());
        cols[dim.index()] = Some(codes);
    }
    Ok(Segment {
        rows: batch.num_rows(),
        cols,
    })
}

/// Codes of a year column (`birth_year`, `registration_year`): `code_of`
/// maps a year; a null is the domain's last value, `unknown`.
fn year_codes(
    path: &Path,
    array: &ArrayRef,
    dim: Dim,
    domains: &Domains,
    code_of: impl Fn(i16) -> u16,
) -> Result<Codes, EngineError> {
    let unknown = (domains.domain_len(dim) - 1) as u16;
    let cast;
    let years = if array.data_type() == &DataType::Int16 {
        array.as_primitive::<Int16Type>()
    } else {
        cast = arrow::compute::cast(array, &DataType::Int16).map_err(|e| {
            schema_err(
                path,
                format!(
                    "column `{}` is not a year column: {e}",
                    domains.get(dim).map_or("", |d| d.column.as_str())
                ),
            )
        })?;
        cast.as_primitive::<Int16Type>()
    };
    let code = |i: usize, y: i16| {
        if years.is_null(i) {
            unknown
        } else {
            code_of(y)
        }
    };
    Ok(if narrow(domains, dim) {
        Codes::U8(if years.null_count() == 0 {
            years.values().iter().map(|&y| code_of(y) as u8).collect()
        } else {
            years
                .values()
                .iter()
                .enumerate()
                .map(|(i, &y)| code(i, y) as u8)
                .collect()
        })
    } else {
        Codes::U16(if years.null_count() == 0 {
            years.values().iter().map(|&y| code_of(y)).collect()
        } else {
            years
                .values()
                .iter()
                .enumerate()
                .map(|(i, &y)| code(i, y))
                .collect()
        })
    })
}

/// The code of one string value: its code in the domain; else the fallback
/// code for coded dimensions, and `NO_CODE` (an error) for counties.
fn value_code(domains: &Domains, dim: Dim, value: Option<&str>) -> u32 {
    match value {
        Some(v) => domains
            .value_code(dim, v)
            .or(domains.fallback(dim))
            .map_or(NO_CODE, u32::from),
        None => domains.null_code(dim).map_or(NO_CODE, u32::from),
    }
}

fn bad_value(path: &Path, dim: &str, value: Option<&str>) -> EngineError {
    match value {
        Some(v) => schema_err(
            path,
            format!("`{dim}` value `{v}` is not in the layout's reference list"),
        ),
        None => schema_err(path, format!("`{dim}` has a null value")),
    }
}

/// Codes of a string column (plain or dictionary-encoded).
fn string_codes(
    path: &Path,
    array: &ArrayRef,
    dim: Dim,
    domains: &Domains,
) -> Result<Codes, EngineError> {
    let to_utf8 = |a: &ArrayRef| {
        arrow::compute::cast(a, &DataType::Utf8).map_err(|e| {
            schema_err(
                path,
                format!(
                    "column `{}` is not a string column: {e}",
                    domains.get(dim).map_or("", |d| d.column.as_str())
                ),
            )
        })
    };
    if let DataType::Dictionary(key_type, _) = array.data_type() {
        // Map each dictionary value once; then each row is one table lookup.
        let dict = array.as_any_dictionary();
        let values = to_utf8(dict.values())?;
        let values = values.as_string::<i32>();
        let table: Vec<u32> = (0..values.len())
            .map(|i| value_code(domains, dim, values.is_valid(i).then(|| values.value(i))))
            .collect();
        let null = value_code(domains, dim, None);
        let out = if narrow(domains, dim) {
            gather_any::<u8>(array, key_type, &table, null).map(Codes::U8)
        } else {
            gather_any::<u16>(array, key_type, &table, null).map(Codes::U16)
        };
        return out.map_err(|bad| match bad {
            Some(k) => bad_value(
                path,
                domains.name(dim),
                values.is_valid(k).then(|| values.value(k)),
            ),
            None => bad_value(path, domains.name(dim), None),
        });
    }
    let strings = to_utf8(array)?;
    let strings = strings.as_string::<i32>();
    let mut last: Option<(&str, u32)> = None;
    let mut codes = Vec::with_capacity(strings.len());
    for i in 0..strings.len() {
        let v = strings.is_valid(i).then(|| strings.value(i));
        let c = match (v, last) {
            (Some(v), Some((lv, lc))) if v == lv => lc,
            _ => {
                let c = value_code(domains, dim, v);
                if c == NO_CODE {
                    return Err(bad_value(path, domains.name(dim), v));
                }
                if let Some(v) = v {
                    last = Some((v, c));
                }
                c
            }
        };
        codes.push(c as u16);
    }
    Ok(if narrow(domains, dim) {
        Codes::U8(codes.into_iter().map(|c| c as u8).collect())
    } else {
        Codes::U16(codes)
    })
}

/// Row codes of a dictionary array via the value → code `table`. On a value
/// with no code: `Err(Some(dictionary index))`, or `Err(None)` for a null.
fn gather_any<T: CodeInt>(
    array: &ArrayRef,
    key_type: &DataType,
    table: &[u32],
    null: u32,
) -> Result<Vec<T>, Option<usize>> {
    match key_type {
        DataType::UInt8 => gather::<UInt8Type, T>(array, table, null),
        DataType::UInt16 => gather::<UInt16Type, T>(array, table, null),
        DataType::UInt32 => gather::<UInt32Type, T>(array, table, null),
        DataType::UInt64 => gather::<UInt64Type, T>(array, table, null),
        DataType::Int8 => gather::<Int8Type, T>(array, table, null),
        DataType::Int16 => gather::<Int16Type, T>(array, table, null),
        DataType::Int32 => gather::<Int32Type, T>(array, table, null),
        DataType::Int64 => gather::<Int64Type, T>(array, table, null),
        // Arrow allows no other key types.
        _ => Err(None),
    }
}

fn gather<K: ArrowDictionaryKeyType, T: CodeInt>(
    array: &ArrayRef,
    table: &[u32],
    null: u32,
) -> Result<Vec<T>, Option<usize>> {
    let dict = array.as_dictionary::<K>();
    let keys = dict.keys();
    let lookup = |k: K::Native| -> Result<T, Option<usize>> {
        let k = k.as_usize();
        match table.get(k) {
            Some(&c) if c != NO_CODE => Ok(T::from_u16(c as u16)),
            _ => Err(Some(k)),
        }
    };
    // Null keys are rare (ingestion writes none): a slower loop handles them.
    if keys.null_count() == 0 {
        keys.values().iter().map(|&k| lookup(k)).collect()
    } else {
        keys.values()
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                if keys.is_null(i) {
                    if null == NO_CODE {
                        Err(None)
                    } else {
                        Ok(T::from_u16(null as u16))
                    }
                } else {
                    lookup(k)
                }
            })
            .collect()
    }
}
