//! A dataset folder read back: its columns and every row, as strings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int16Type};

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
