//! `manifest.json`: what an ingest read, wrote, rejected and dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `format_version` this crate writes. 2 added `layout_sha256`; 3 added
/// `other_unknown` and lists at most 50 short one-word values per column in
/// `unknown_codes`; 4 added `history`.
pub const FORMAT_VERSION: u32 = 4;

/// The manifest written next to the Parquet files. It describes the ingest,
/// never an individual row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// Dataset name (the folder name).
    pub dataset: String,
    /// Layout name (`nc`).
    pub layout: String,
    /// Where the layout was loaded from.
    pub layout_origin: String,
    /// The layout's content: SHA-256 of its TOML and reference files (see
    /// `layout::Layout::digest`). A re-ingest with an edited layout or county
    /// list is different data even under the same name. Empty in manifests
    /// of format 1, which did not record it.
    #[serde(default)]
    pub layout_sha256: String,
    /// When the ingest finished (RFC 3339, UTC).
    pub ingested_at: String,
    /// The year used as "current" for plausible birth and registration years.
    pub current_year: i16,
    /// Data lines read (headers excluded), over all sources.
    pub rows_read: u64,
    /// Rows written to Parquet.
    pub rows_written: u64,
    /// Lines rejected (listed in `rejects.tsv`).
    pub rows_rejected: u64,
    /// Duplicate registrations dropped (same voter id; the latest registration kept).
    pub duplicates_dropped: u64,
    /// Rejected lines by reason.
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Codes outside the layout's tables, by canonical column and trimmed value,
    /// over written rows. Each became its table's fallback code. At most 50
    /// values per column, each at most 24 bytes and without white space.
    pub unknown_codes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Unknown values counted but not listed in `unknown_codes` (past the
    /// first 50 of a column, too long, or with white space), by column.
    #[serde(default)]
    pub other_unknown: BTreeMap<String, u64>,
    /// Why years came out null, by column and reason, over accepted rows
    /// (before de-duplication).
    pub null_years: BTreeMap<String, BTreeMap<String, u64>>,
    /// The input files.
    pub sources: Vec<Source>,
    /// The Parquet files of the dataset, relative to its folder.
    pub files: Vec<String>,
    /// The Parquet schema.
    pub schema: Vec<SchemaField>,
    /// The voting history stored with the voters, if the ingest had
    /// configured elections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
}

/// What an ingest did with voting history: which elections it stored (each
/// a `vote_<id>` column) and what it could not join. Totals only: nothing
/// per election or per voter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct History {
    /// The elections stored, in column order.
    pub elections: Vec<StoredElection>,
    /// `"file"` (separate history files) or `"columns"` (the voter file's).
    pub source: String,
    /// The history files read (empty for in-file history).
    #[serde(default)]
    pub sources: Vec<Source>,
    /// History lines read (headers excluded).
    pub lines_read: u64,
    /// Lines rejected (listed in `history_rejects.tsv`), by reason.
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Lines of elections the config does not list (not stored).
    pub other_elections: u64,
    /// Lines of configured elections whose voter id is no voter's of the
    /// voter file (moved away, removed): not guessed, not stored.
    pub unmatched: u64,
    /// Lines after the first for the same voter and election: the voter
    /// counts once (the first line recording a ballot decides).
    pub duplicates: u64,
    /// Stored cells decided by a method code not in the layout's table
    /// (each became its `fallback`); for in-file history, over accepted
    /// lines before de-duplication.
    pub unknown_methods: u64,
}

/// One election an ingest stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredElection {
    /// The config's id (`2024g`); the column is `vote_<id>`.
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `general`, `primary`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// One input file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    /// File name (without directories).
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Data lines read from this file.
    pub rows_read: u64,
    /// The delimiter the file was split on (`tab`, `pipe`, `comma` or the
    /// character): the layout's, or the one detected for `delimiter = "auto"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delimiter: String,
    /// Source columns read under an alternative name in this file: the
    /// layout's first name → the name found in the header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

/// One column of the Parquet schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaField {
    /// Column name.
    pub name: String,
    /// Arrow type as written.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column has nulls.
    pub nullable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            dataset: "nc".into(),
            layout: "nc".into(),
            layout_origin: "builtin:nc".into(),
            layout_sha256: "ab".repeat(32),
            ingested_at: "2026-05-25T00:00:00Z".into(),
            current_year: 2026,
            rows_read: 3,
            rows_written: 2,
            rows_rejected: 1,
            duplicates_dropped: 0,
            rejects_by_reason: BTreeMap::from([("missing_voter_id".into(), 1)]),
            unknown_codes: BTreeMap::new(),
            other_unknown: BTreeMap::new(),
            null_years: BTreeMap::new(),
            sources: Vec::new(),
            files: vec!["part-00000.parquet".into()],
            schema: Vec::new(),
            history: None,
        }
    }

    #[test]
    fn round_trips_and_reads_format_1() {
        let m = example();
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
        // A format-1 manifest has no `layout_sha256`.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("layout_sha256").unwrap();
        fields.insert("format_version".into(), 1.into());
        let read: Manifest = serde_json::from_value(old).unwrap();
        assert_eq!(read.layout_sha256, "");
        assert_eq!(read.format_version, 1);
        assert_eq!(read.rows_written, 2);
    }

    #[test]
    fn reads_none_when_absent_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::read(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join(crate::MANIFEST), "{}").unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a rollcall manifest"), "{err}");
        std::fs::write(dir.path().join(crate::MANIFEST), example().to_json()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(example()));
    }
}
