//! Times loading and counting on a synthetic NC dataset.
//!
//! ```text
//! cargo run --release -p engine --example bench -- [ROWS]   # default 7.5M
//! ```
//!
//! Writes ROWS synthetic rows as ingestion does (zstd Parquet, dictionary
//! columns over the layout's tables, 1M-row row groups) into a temporary
//! folder, then reports the load time and the latency of county × age-band
//! counts with filters, scanning the rows and over the pre-aggregated levels.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, DictionaryArray, Int16Array, StringArray, UInt8Array, UInt16Array};
use arrow::datatypes::{UInt8Type, UInt16Type};
use arrow::record_batch::RecordBatch;
use engine::{CountQuery, Dataset, DomainSpec, Domains};
use layout::Layout;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use testkit::Lcg;

const ROW_GROUP: usize = 1 << 20;

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROWS must be a number"))
        .unwrap_or(7_500_000);
    let layout = Layout::resolve("nc").expect("nc layout");
    let spec = DomainSpec {
        age_bands: vec![18, 25, 35, 45, 55, 65, 75],
        as_of_year: 2026,
    };
    let domains = Arc::new(Domains::new(&layout, &spec).expect("domains"));

    // Synthetic rows as raw values: county index, birth year, codes, reg year.
    let t = Instant::now();
    let mut g = Lcg(42);
    let counties = layout.county.counties.len();
    let mut county = Vec::with_capacity(rows);
    let mut birth = Vec::with_capacity(rows);
    let mut reg = Vec::with_capacity(rows);
    let mut coded: Vec<Vec<u8>> = vec![Vec::with_capacity(rows); layout.coded.len()];
    for _ in 0..rows {
        county.push(g.skewed(counties) as u16);
        birth.push((!g.next().is_multiple_of(50)).then(|| 1920 + (g.next() % 88) as i16));
        reg.push((!g.next().is_multiple_of(20)).then(|| 1950 + (g.next() % 77) as i16));
        for (c, col) in coded.iter_mut().enumerate() {
            col.push(g.skewed(layout.coded[c].codes.len()) as u8);
        }
    }
    eprintln!("generated {rows} rows in {:?}", t.elapsed());

    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    write(&layout, dir.path(), &county, &birth, &reg, &coded);
    eprintln!("wrote Parquet in {:?}", t.elapsed());

    // Load: best of 3 (first run also warms the page cache).
    let mut loaded = None;
    let mut load_times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let ds = Dataset::load(dir.path(), &layout, domains.clone()).expect("load");
        load_times.push(t.elapsed());
        loaded = Some(ds);
    }
    let ds = loaded.expect("loaded");
    println!(
        "load {rows} rows: best {:?}, runs {:?}",
        load_times.iter().min().unwrap(),
        load_times
    );

    let dim = |name: &str| domains.dim(name).expect("nc has the dimension");
    let queries = [
        (
            "county x age_band, status=A, party in DEM/REP",
            CountQuery {
                group_by: vec![dim("county"), dim("age_band")],
                filter: vec![
                    (dim("status"), vec!["A".into()]),
                    (dim("party"), vec!["DEM".into(), "REP".into()]),
                ],
            },
        ),
        (
            "county x age_band, no filter",
            CountQuery {
                group_by: vec![dim("county"), dim("age_band")],
                filter: vec![],
            },
        ),
        (
            "county x registration_year x gender, race=B",
            CountQuery {
                group_by: vec![dim("county"), dim("registration_year"), dim("gender")],
                filter: vec![(dim("race"), vec!["B".into()])],
            },
        ),
        (
            "total, 3 filters",
            CountQuery {
                group_by: vec![],
                filter: vec![
                    (dim("status"), vec!["A".into()]),
                    (dim("party"), vec!["UNA".into()]),
                    (dim("age_band"), vec!["18-24".into()]),
                ],
            },
        ),
    ];
    let time_all = |ds: &Dataset, label: &str| {
        for (name, q) in &queries {
            time_query(ds, name, q, label);
        }
    };
    time_all(&ds, "rows");
    let t = Instant::now();
    ds.build_rollups();
    println!("pre-aggregated levels built in {:?}", t.elapsed());
    time_all(&ds, "levels");
    // That levels count like the rows is a unit test
    // (`rollups_count_like_the_rows`): here the counts stay wrapped.
}

fn time_query(ds: &Dataset, name: &str, q: &CountQuery, label: &str) {
    let cells = ds.domains().cell_count(q).expect("valid");
    let mut times: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            let counts = ds.count(q).expect("count");
            let e = t.elapsed();
            assert_eq!(counts.len() as u64, cells);
            e
        })
        .collect();
    times.sort();
    println!(
        "[{label}] count {name} ({cells} cells): p50 {:?}, min {:?}, max {:?}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

fn write(
    layout: &Layout,
    dir: &std::path::Path,
    county: &[u16],
    birth: &[Option<i16>],
    reg: &[Option<i16>],
    coded: &[Vec<u8>],
) {
    // The schema `rollcall ingest` writes, from its one definition.
    let schema = dataset::schema(layout);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let file = std::fs::File::create(dir.join("part-00000.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        layout.county.counties.iter().map(|c| c.name.as_str()),
    ));
    let code_values: Vec<ArrayRef> = layout
        .coded
        .iter()
        .map(|c| Arc::new(StringArray::from_iter_values(c.code_strs())) as ArrayRef)
        .collect();
    for start in (0..county.len()).step_by(ROW_GROUP) {
        let end = (start + ROW_GROUP).min(county.len());
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut c = 0;
        for name in layout.output_columns() {
            columns.push(match name {
                "county" => Arc::new(
                    DictionaryArray::<UInt16Type>::try_new(
                        UInt16Array::from(county[start..end].to_vec()),
                        names.clone(),
                    )
                    .unwrap(),
                ),
                "birth_year" => Arc::new(Int16Array::from(birth[start..end].to_vec())),
                "registration_year" => Arc::new(Int16Array::from(reg[start..end].to_vec())),
                _ => {
                    let a = Arc::new(
                        DictionaryArray::<UInt8Type>::try_new(
                            UInt8Array::from(coded[c][start..end].to_vec()),
                            code_values[c].clone(),
                        )
                        .unwrap(),
                    );
                    c += 1;
                    a
                }
            });
        }
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}
