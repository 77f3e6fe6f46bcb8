//! Shared helpers for the end-to-end tests: run the real `rollcall` binary and
//! read what it wrote.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int16Type};

/// The `rollcall` binary Cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rollcall"))
}

/// Runs `rollcall ARGS` from the repository root and returns its output.
pub fn rollcall(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run rollcall")
}

/// Runs `rollcall ARGS` and panics with its stderr unless it succeeds.
pub fn rollcall_ok(args: &[&str]) -> Output {
    let out = rollcall(args);
    assert!(
        out.status.success(),
        "rollcall {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The repository root (so `config/` is found as a user would run it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One output row as strings (None = null), in column order.
pub type Tuple = Vec<Option<String>>;

/// Reads every Parquet file of a dataset: the column names and each row.
pub fn read_dataset(dir: &Path) -> (Vec<String>, Vec<Tuple>) {
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no parquet files in {}", dir.display());
    for path in files {
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let names: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            match &columns {
                Some(c) => assert_eq!(c, &names, "every part has the same columns"),
                None => columns = Some(names),
            }
            let cols: Vec<Vec<Option<String>>> = batch
                .columns()
                .iter()
                .map(|c| strings(c.as_ref()))
                .collect();
            for i in 0..batch.num_rows() {
                rows.push(cols.iter().map(|c| c[i].clone()).collect());
            }
        }
    }
    (columns.unwrap_or_default(), rows)
}

fn strings(array: &dyn Array) -> Vec<Option<String>> {
    match array.data_type() {
        DataType::Int16 => array
            .as_primitive::<Int16Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        _ => {
            let cast = arrow::compute::cast(array, &DataType::Utf8).unwrap();
            cast.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect()
        }
    }
}

/// Counts equal tuples.
pub fn multiset(rows: Vec<Tuple>) -> HashMap<Tuple, u64> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r).or_default() += 1;
    }
    m
}
