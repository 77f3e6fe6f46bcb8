//! The manifest builder: what an ingest read, wrote, rejected and dropped,
//! from the merger's counts and the de-duplication, as `manifest.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use dataset::{FORMAT_VERSION, Manifest, SchemaField, Source};
use layout::Layout;

use crate::merger::Counts;
use crate::unknown::{UnknownCodes, Unknowns};
use crate::write;
use crate::{IngestError, IngestOptions};

/// What the manifest needs besides the merger's [`Counts`].
pub(crate) struct Written {
    /// The Parquet parts, by name.
    pub files: Vec<String>,
    /// Rows written to them.
    pub rows_written: u64,
    /// Duplicates dropped.
    pub duplicates_dropped: u64,
    /// The input files as the reader described them (hashes), in order.
    pub sources: Vec<Source>,
    /// When the ingest ran, and the year it treated as current.
    pub ingested_at: String,
    /// See [`Manifest::current_year`].
    pub current_year: i16,
    /// See [`Manifest::history`].
    pub history: Option<dataset::History>,
}

/// The elections of `layout` as the manifest records them.
pub(crate) fn stored_elections(layout: &Layout) -> Vec<dataset::StoredElection> {
    layout
        .elections
        .iter()
        .map(|e| dataset::StoredElection {
            id: e.id.clone(),
            date: e.date_text(),
            kind: e.kind.as_str().to_owned(),
        })
        .collect()
}

/// The manifest of an ingest.
pub(crate) fn build(
    layout: &Layout,
    opts: &IngestOptions,
    counts: Counts,
    unknown: UnknownCodes,
    written: Written,
) -> Manifest {
    let mut null_years = BTreeMap::new();
    if layout.birth_year.is_some() {
        null_years.insert("birth_year".to_owned(), null_reasons(counts.birth_nulls));
    }
    if layout.registration_date.is_some() {
        null_years.insert(
            "registration_year".to_owned(),
            null_reasons(counts.reg_nulls),
        );
    }
    Manifest {
        format_version: FORMAT_VERSION,
        dataset: opts.dataset.clone(),
        layout: layout.name.clone(),
        layout_origin: layout.origin.clone(),
        layout_sha256: layout.digest().to_owned(),
        ingested_at: written.ingested_at,
        current_year: written.current_year,
        rows_read: counts.rows_read,
        rows_written: written.rows_written,
        rows_rejected: counts.rows_rejected,
        duplicates_dropped: written.duplicates_dropped,
        rejects_by_reason: counts.rejects_by_reason,
        unknown_codes: unknown.listed,
        other_unknown: unknown.other,
        null_years,
        sources: written
            .sources
            .into_iter()
            .zip(counts.rows_read_by_file)
            .map(|(mut s, n)| {
                s.rows_read = n;
                s
            })
            .collect(),
        files: written.files,
        schema: schema_fields(layout),
        history: written.history,
    }
}

/// Unknown codes over the rows that survived de-duplication, as the
/// manifest lists them.
pub(crate) fn unknown_codes(
    layout: &Layout,
    unknown: &Unknowns,
    is_dropped: impl Fn(u32) -> bool,
) -> UnknownCodes {
    unknown.report(|column| layout.coded[column].name.clone(), is_dropped)
}

fn null_reasons(counts: [u64; 4]) -> BTreeMap<String, u64> {
    ["blank", "sentinel_or_mask", "unparseable", "out_of_range"]
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect()
}

fn schema_fields(layout: &Layout) -> Vec<SchemaField> {
    dataset::schema(layout)
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
        .collect()
}

/// Writes `manifest` into `dir`, owner-only, and syncs it.
pub(crate) fn write(dir: &Path, manifest: &Manifest) -> Result<(), IngestError> {
    let path = dir.join(dataset::MANIFEST);
    let mut f = write::private_file()
        .open(&path)
        .map_err(|e| IngestError::io(&path, e))?;
    f.write_all(manifest.to_json().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| IngestError::io(&path, e))
}
