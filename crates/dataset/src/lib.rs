//! The on-disk contract of a dataset folder, shared by everything that
//! writes or reads one (ingest, engine, server, tests, benches): the typed
//! `manifest.json`, the Parquet schema of a layout's columns, and the file
//! names.
//!
//! ```text
//! DATA_DIR/NAME/
//!   part-00000.parquet …   schema(layout): county (dictionary u16), birth_year (i16),
//!                           registration_year (i16), one dictionary u8 column per coded
//!                           dimension; nothing else (the allow-list)
//!   manifest.json           Manifest
//!   rejects.tsv             file, line, column, reason of each rejected line
//!   history_rejects.tsv     the same for history lines (with separate history files)
//! ```
//!
//! Nothing here holds a row: the manifest describes an ingest, never a voter.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use layout::Layout;

pub use manifest::{FORMAT_VERSION, History, Manifest, SchemaField, Source, StoredElection};

mod manifest;

/// The manifest's file name in a dataset folder.
pub const MANIFEST: &str = "manifest.json";
/// The rejects list's file name in a dataset folder.
pub const REJECTS: &str = "rejects.tsv";
/// The history rejects list's file name (file, line, layout key, reason).
pub const HISTORY_REJECTS: &str = "history_rejects.tsv";
/// Rows per Parquet row group (and per Arrow batch) as ingest writes them.
pub const ROW_GROUP: usize = 1 << 20;

/// The name of the `i`-th Parquet part of a dataset.
pub fn part_name(i: u64) -> String {
    format!("part-{i:05}.parquet")
}

/// The Arrow schema of a layout's minimized output: `county` (dictionary,
/// u16 keys), `birth_year` and `registration_year` (nullable Int16) and one
/// dictionary column (u8 keys) per coded dimension, in the layout's output
/// order. The values of every dictionary are the layout's public codes.
pub fn schema(layout: &Layout) -> Arc<Schema> {
    let fields: Vec<Field> = layout
        .output_columns()
        .into_iter()
        .map(|name| match name {
            "county" => Field::new(
                name,
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                false,
            ),
            "birth_year" | "registration_year" => Field::new(name, DataType::Int16, true),
            _ => Field::new(
                name,
                DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8)),
                false,
            ),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The manifest's path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a manifest.
    #[error("{path}: not a rollcall manifest: {message}")]
    Invalid {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// Reads `dir/manifest.json`; `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ManifestError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ManifestError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// The manifest as written to disk: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serialises");
        text.push('\n');
        text
    }

    /// SHA-256 of each source file the ingest read.
    pub fn source_hashes(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.sha256.clone()).collect()
    }
}
