//! `manifest.json`: what an ingest read, wrote, rejected and dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `format_version` this crate writes. 2 added `layout_sha256`.
pub const FORMAT_VERSION: u32 = 2;

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
    /// over written rows. Each became its table's fallback code.
    pub unknown_codes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Why years came out null, by column and reason, over accepted rows
    /// (before de-duplication).
    pub null_years: BTreeMap<String, BTreeMap<String, u64>>,
    /// The input files.
    pub sources: Vec<Source>,
    /// The Parquet files of the dataset, relative to its folder.
    pub files: Vec<String>,
    /// The Parquet schema.
    pub schema: Vec<SchemaField>,
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

/// Current UTC time as RFC 3339, and the current year.
pub fn now_utc() -> (String, i16) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        ),
        y as i16,
    )
}

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
            null_years: BTreeMap::new(),
            sources: Vec::new(),
            files: vec!["part-00000.parquet".into()],
            schema: Vec::new(),
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
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_598), (2026, 5, 25));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
