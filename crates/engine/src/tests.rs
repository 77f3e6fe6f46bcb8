//! Unit tests: domains from the built-in layouts, counts against a naive
//! count over hand-made Parquet files, and properties over random data.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, DictionaryArray, Int16Array, StringArray, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema, UInt8Type, UInt16Type};
use arrow::record_batch::RecordBatch;
use layout::Layout;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;
use testkit::Lcg;

use crate::*;

fn spec() -> DomainSpec {
    DomainSpec {
        age_bands: vec![18, 25, 35, 45, 55, 65, 75],
        as_of_year: 2026,
    }
}

/// The NC domains, built once: what [`dim`] resolves names against.
fn d_of_nc() -> &'static Domains {
    static NC: std::sync::OnceLock<Domains> = std::sync::OnceLock::new();
    NC.get_or_init(|| Domains::new(&Layout::resolve("nc").unwrap(), &spec()).unwrap())
}

/// The NC dataset's dimension `name`.
fn dim(name: &str) -> Dim {
    d_of_nc().dim(name).unwrap()
}

fn nc() -> (Layout, Arc<Domains>) {
    let layout = Layout::resolve("nc").unwrap();
    let domains = Arc::new(Domains::new(&layout, &spec()).unwrap());
    (layout, domains)
}

/// One voter row as the Parquet file holds it.
#[derive(Debug, Clone)]
struct Row {
    county: String,
    birth_year: Option<i16>,
    gender: String,
    race: String,
    ethnicity: String,
    party: String,
    status: String,
    registration_year: Option<i16>,
    congressional_district: String,
    state_house_district: String,
    state_senate_district: String,
}

/// Writes `rows` to `dir/part-0.parquet` in the dataset schema of `nc`
/// (`dataset::schema`, what ingestion writes). String columns are
/// dictionary-encoded when `dictionary`, plain Utf8 otherwise (a reader must
/// take both). `row_group` rows per row group.
fn write_parquet(dir: &Path, rows: &[Row], dictionary: bool, row_group: usize) {
    let layout = Layout::resolve("nc").unwrap();
    let contract = ::dataset::schema(&layout);
    let column = |name: &str| -> ArrayRef {
        let year = |f: fn(&Row) -> Option<i16>| -> ArrayRef {
            Arc::new(Int16Array::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let text = |f: &dyn Fn(&Row) -> &str| -> ArrayRef {
            if dictionary {
                if name == "county" {
                    let d: DictionaryArray<UInt16Type> = rows.iter().map(f).collect();
                    return Arc::new(d);
                }
                let d: DictionaryArray<UInt8Type> = rows.iter().map(f).collect();
                Arc::new(d)
            } else {
                Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
            }
        };
        match name {
            "birth_year" => year(|r| r.birth_year),
            "registration_year" => year(|r| r.registration_year),
            "county" => text(&|r| &r.county),
            "gender" => text(&|r| &r.gender),
            "race" => text(&|r| &r.race),
            "ethnicity" => text(&|r| &r.ethnicity),
            "party" => text(&|r| &r.party),
            "status" => text(&|r| &r.status),
            "congressional_district" => text(&|r| &r.congressional_district),
            "state_house_district" => text(&|r| &r.state_house_district),
            "state_senate_district" => text(&|r| &r.state_senate_district),
            other => panic!("the nc schema has a column `{other}` this test does not know"),
        }
    };
    let columns: Vec<ArrayRef> = contract.fields().iter().map(|f| column(f.name())).collect();
    // Plain strings where the contract has dictionaries.
    let fields: Vec<Field> = contract
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), f.is_nullable()))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let file = std::fs::File::create(dir.join(::dataset::part_name(0))).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn values(domains: &Domains, dim: Dim) -> Vec<String> {
    domains.get(dim).unwrap().values.clone()
}

/// Rows drawn over a few counties (so most county cells are empty).
fn sample_rows(domains: &Domains, n: usize, seed: u64) -> Vec<Row> {
    let mut g = Lcg(seed);
    let counties: Vec<String> = values(domains, dim("county"))[..5].to_vec();
    let (gender, race, eth, party, status, cd) = (
        values(domains, dim("gender")),
        values(domains, dim("race")),
        values(domains, dim("ethnicity")),
        values(domains, dim("party")),
        values(domains, dim("status")),
        values(domains, dim("congressional_district")),
    );
    let (house, senate) = (
        values(domains, dim("state_house_district")),
        values(domains, dim("state_senate_district")),
    );
    (0..n)
        .map(|_| Row {
            county: g.pick(&counties).to_owned(),
            birth_year: match g.next() % 10 {
                0 => None,
                _ => Some(1900 + (g.next() % 126) as i16),
            },
            gender: g.pick(&gender).to_owned(),
            race: g.pick(&race).to_owned(),
            ethnicity: g.pick(&eth).to_owned(),
            party: g.pick(&party).to_owned(),
            status: g.pick(&status).to_owned(),
            registration_year: match g.next() % 8 {
                0 => None,
                1 => Some(1850),
                _ => Some(1950 + (g.next() % 80) as i16),
            },
            congressional_district: g.pick(&cd).to_owned(),
            state_house_district: g.pick(&house).to_owned(),
            state_senate_district: g.pick(&senate).to_owned(),
        })
        .collect()
}

/// The public key of a row on dimension `dim`, computed the slow, obvious way.
fn key_of(row: &Row, dim: &str) -> String {
    let band = |by: Option<i16>| -> String {
        let Some(by) = by else {
            return "unknown".into();
        };
        let age = 2026 - i32::from(by);
        match age {
            a if a < 18 => "<18".into(),
            a if a < 25 => "18-24".into(),
            a if a < 35 => "25-34".into(),
            a if a < 45 => "35-44".into(),
            a if a < 55 => "45-54".into(),
            a if a < 65 => "55-64".into(),
            a if a < 75 => "65-74".into(),
            _ => "75+".into(),
        }
    };
    match dim {
        "county" => row.county.clone(),
        "age_band" => band(row.birth_year),
        "gender" => row.gender.clone(),
        "race" => row.race.clone(),
        "ethnicity" => row.ethnicity.clone(),
        "party" => row.party.clone(),
        "status" => row.status.clone(),
        "registration_year" => match row.registration_year {
            Some(y) if (1900..=2026).contains(&y) => y.to_string(),
            _ => "unknown".into(),
        },
        "congressional_district" => row.congressional_district.clone(),
        "state_house_district" => row.state_house_district.clone(),
        "state_senate_district" => row.state_senate_district.clone(),
        other => panic!("no dimension `{other}` in the test rows"),
    }
}

/// For each cell of `q`, the number of rows that match it.
fn naive_count(domains: &Domains, rows: &[Row], q: &CountQuery) -> Vec<u64> {
    let cells = domains.cells(q).unwrap();
    let passes = |row: &Row| {
        q.filter
            .iter()
            .all(|(dim, vs)| vs.iter().any(|v| *v == key_of(row, domains.name(*dim))))
    };
    cells
        .iter()
        .map(|key| {
            rows.iter()
                .filter(|r| passes(r))
                .filter(|r| {
                    q.group_by
                        .iter()
                        .zip(key)
                        .all(|(d, k)| key_of(r, domains.name(*d)) == *k)
                })
                .count() as u64
        })
        .collect()
}

fn query(group_by: &[Dim], filter: &[(Dim, &[&str])]) -> CountQuery {
    CountQuery {
        group_by: group_by.to_vec(),
        filter: filter
            .iter()
            .map(|(d, vs)| (*d, vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
    }
}

#[test]
fn nc_domains() {
    let (_, d) = nc();
    let names: Vec<&str> = d.dims().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "county",
            "age_band",
            "gender",
            "race",
            "ethnicity",
            "party",
            "status",
            "registration_year",
            "congressional_district",
            "state_house_district",
            "state_senate_district"
        ]
    );
    assert_eq!(d.by_name("state_house_district").unwrap().values.len(), 121);
    assert_eq!(
        d.by_name("state_senate_district").unwrap().kind,
        DimKind::Coded
    );
    let county = d.get(dim("county")).unwrap();
    assert_eq!(county.values.len(), 100);
    assert_eq!(county.values[0], "ALAMANCE");
    assert_eq!(county.labels, county.values);
    assert_eq!(
        d.get(dim("age_band")).unwrap().values,
        [
            "<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+", "unknown"
        ]
    );
    let years = &d.get(dim("registration_year")).unwrap().values;
    assert_eq!(years.len(), 2026 - 1900 + 2);
    assert_eq!(years.first().unwrap(), "1900");
    assert_eq!(years[years.len() - 2], "2026");
    assert_eq!(years.last().unwrap(), "unknown");
    let party = d.get(dim("party")).unwrap();
    assert_eq!(party.values[..3], ["DEM", "REP", "UNA"]);
    assert_eq!(party.labels[0], "Democratic");
    assert_eq!(
        d.get(dim("congressional_district")).unwrap().values.len(),
        15
    );
}

#[test]
fn every_builtin_layout_has_domains() {
    for name in layout::builtin::NAMES {
        let layout = Layout::resolve(name).unwrap();
        let d = Domains::new(&layout, &spec()).unwrap();
        let county = d.get(dim("county")).unwrap();
        assert_eq!(county.values.len(), layout.county.counties.len(), "{name}");
        for dd in d.dims() {
            assert_eq!(dd.values.len(), dd.labels.len(), "{name}.{}", dd.name);
            assert!(!dd.values.is_empty(), "{name}.{}", dd.name);
        }
        for coded in &layout.coded {
            let dim = d.dim(&coded.name).unwrap();
            assert_eq!(d.get(dim).unwrap().values.len(), coded.codes.len());
        }
    }
    let oh = Domains::new(&Layout::resolve("oh").unwrap(), &spec()).unwrap();
    assert_eq!(oh.by_name("county").unwrap().values.len(), 88);
    assert!(oh.by_name("race").is_none(), "Ohio records no race");
    let err = oh.dim("race").unwrap_err();
    assert!(matches!(err, EngineError::UnknownDimension { .. }), "{err}");
    // A `Dim` of a dataset with more dimensions is absent here.
    let last = *d_of_nc().dims().last().map(|d| &d.dim).unwrap();
    let err = oh.cells(&query(&[last], &[])).unwrap_err();
    assert!(matches!(err, EngineError::DimensionAbsent(_)), "{err}");
    let fl = Domains::new(&Layout::resolve("fl").unwrap(), &spec()).unwrap();
    assert_eq!(fl.by_name("county").unwrap().values.len(), 67);
}

#[test]
fn dim_names_round_trip() {
    let d = d_of_nc();
    for dd in d.dims() {
        assert_eq!(d.dim(&dd.name), Ok(dd.dim));
        assert_eq!(d.name(dd.dim), dd.name);
    }
    assert!(d.dim("age").is_err());
    assert_eq!(
        d.dim_names()[9..],
        ["state_house_district", "state_senate_district"]
    );
}

#[test]
fn bad_specs_are_refused() {
    let layout = Layout::resolve("nc").unwrap();
    for (bands, year) in [
        (vec![], 2026),
        (vec![18, 18], 2026),
        (vec![25, 18], 2026),
        (vec![18], 1500),
    ] {
        let err = Domains::new(
            &layout,
            &DomainSpec {
                age_bands: bands.clone(),
                as_of_year: year,
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, EngineError::InvalidSpec(_)),
            "{bands:?} {year}: {err}"
        );
    }
    let one = Domains::new(
        &layout,
        &DomainSpec {
            age_bands: vec![18],
            as_of_year: 2026,
        },
    )
    .unwrap();
    assert_eq!(
        one.get(dim("age_band")).unwrap().values,
        ["<18", "18+", "unknown"]
    );
}

#[test]
fn unknown_dimension_lists_allowed_names() {
    let (_, d) = nc();
    let err = d.dim("shoe_size").unwrap_err();
    let EngineError::UnknownDimension { name, allowed } = &err else {
        panic!("{err}")
    };
    assert_eq!(name, "shoe_size");
    assert_eq!(allowed.len(), 11);
    let message = err.to_string();
    assert!(
        message.contains("shoe_size") && message.contains("age_band, gender"),
        "{message}"
    );
}

#[test]
fn a_query_touches_at_most_eight_dimensions() {
    let (_, d) = nc();
    let names = [
        "gender",
        "race",
        "ethnicity",
        "party",
        "status",
        "congressional_district",
        "state_house_district",
        "state_senate_district",
        "age_band",
    ];
    let all: Vec<Dim> = names.iter().map(|n| dim(n)).collect();
    // Eight grouped: allowed (and small enough).
    assert!(d.cell_count(&query(&all[..8], &[])).is_ok());
    // Eight grouped and a ninth filtered: refused, whatever the cells.
    let err = d
        .cells(&query(&all[..8], &[(all[8], &["75+"])]))
        .unwrap_err();
    assert_eq!(err, EngineError::TooManyDimensions { count: 9, max: 8 });
    // A filter on a grouped dimension does not count twice.
    assert!(d.cell_count(&query(&all[..8], &[(all[0], &["F"])])).is_ok());
}

#[test]
fn invalid_value_lists_allowed_values() {
    let (_, d) = nc();
    let err = d
        .cells(&query(
            &[dim("county")],
            &[(dim("party"), &["DEM", "WHIG"])],
        ))
        .unwrap_err();
    let EngineError::InvalidValue {
        dim,
        value,
        allowed,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((dim.as_str(), value.as_str()), ("party", "WHIG"));
    assert!(allowed.contains(&"DEM".to_owned()));
    assert!(err.to_string().contains("DEM, REP, UNA"), "{err}");
}

#[test]
fn malformed_queries_are_refused() {
    let (_, d) = nc();
    assert_eq!(
        d.cells(&query(&[dim("county"), dim("county")], &[]))
            .unwrap_err(),
        EngineError::DuplicateDimension("county".into())
    );
    assert_eq!(
        d.cells(&query(&[], &[(dim("party"), &[])])).unwrap_err(),
        EngineError::EmptyFilter("party".into())
    );
    let huge = query(
        &[
            dim("county"),
            dim("registration_year"),
            dim("age_band"),
            dim("race"),
            dim("party"),
            dim("gender"),
        ],
        &[],
    );
    assert_eq!(d.cell_count(&huge).unwrap(), 100 * 128 * 9 * 8 * 9 * 3);
    assert!(
        matches!(d.cells(&huge), Err(EngineError::TooManyCells { .. })),
        "a query over MAX_CELLS must be refused"
    );
}

#[test]
fn cells_are_row_major_and_narrowed_by_filters() {
    let (_, d) = nc();
    let q = query(
        &[dim("party"), dim("gender")],
        &[
            (dim("party"), &["REP", "DEM", "REP"]),
            (dim("status"), &["A"]),
        ],
    );
    assert_eq!(d.cell_count(&q).unwrap(), 6);
    let cells = d.cells(&q).unwrap();
    let expected: Vec<Vec<String>> = [
        ("DEM", "F"),
        ("DEM", "M"),
        ("DEM", "U"),
        ("REP", "F"),
        ("REP", "M"),
        ("REP", "U"),
    ]
    .iter()
    .map(|(p, g)| vec![p.to_string(), g.to_string()])
    .collect();
    assert_eq!(
        cells, expected,
        "domain order, not filter order; deduplicated"
    );
    assert_eq!(
        d.cells(&query(&[], &[])).unwrap(),
        vec![Vec::<String>::new()]
    );
}

#[test]
fn query_key_ignores_order_and_repeats() {
    let (_, d) = nc();
    let a = query(
        &[dim("county"), dim("age_band")],
        &[(dim("status"), &["A"]), (dim("party"), &["REP", "DEM"])],
    );
    let b = query(
        &[dim("age_band"), dim("county")],
        &[
            (dim("party"), &["DEM", "REP", "DEM"]),
            (dim("status"), &["A"]),
        ],
    );
    assert_eq!(d.query_key(&a).unwrap(), d.query_key(&b).unwrap());
    let c = query(
        &[dim("county"), dim("age_band")],
        &[(dim("status"), &["A"]), (dim("party"), &["DEM"])],
    );
    assert_ne!(d.query_key(&a).unwrap(), d.query_key(&c).unwrap());
    let canonical = d.canonical(&b).unwrap();
    assert_eq!(
        canonical.filter[0],
        (dim("party"), vec!["DEM".to_owned(), "REP".to_owned()])
    );
}

fn load_rows(rows: &[Row], dictionary: bool, row_group: usize) -> (tempfile::TempDir, Dataset) {
    let (layout, domains) = nc();
    let dir = tempfile::tempdir().unwrap();
    write_parquet(dir.path(), rows, dictionary, row_group);
    let ds = Dataset::load(dir.path(), &layout, domains).unwrap();
    (dir, ds)
}

#[test]
fn counts_equal_a_naive_count() {
    let (_, domains) = nc();
    let rows = sample_rows(&domains, 3000, 7);
    for (dictionary, row_group) in [(true, 1000), (false, 700), (true, 100_000)] {
        let (_dir, ds) = load_rows(&rows, dictionary, row_group);
        assert_eq!(ds.rows(), rows.len());
        let queries = [
            query(&[], &[]),
            query(&[dim("county")], &[]),
            query(
                &[dim("county"), dim("age_band")],
                &[(dim("status"), &["A"]), (dim("party"), &["DEM", "REP"])],
            ),
            query(
                &[dim("age_band"), dim("county")],
                &[(dim("county"), &["CABARRUS", "ALAMANCE"])],
            ),
            query(&[dim("registration_year")], &[(dim("gender"), &["F"])]),
            query(
                &[dim("race"), dim("ethnicity"), dim("congressional_district")],
                &[(dim("age_band"), &["unknown", "75+"])],
            ),
            query(
                &[],
                &[
                    (dim("party"), &["LIB"]),
                    (dim("registration_year"), &["unknown"]),
                ],
            ),
        ];
        for q in &queries {
            let got = ds.count_cells(q).unwrap();
            assert_eq!(got.len() as u64, domains.cell_count(q).unwrap());
            assert_eq!(
                got,
                naive_count(&domains, &rows, q),
                "query {q:?}, dictionary {dictionary}"
            );
        }
        // Empty cells are present as zeros: rows use only five counties.
        let by_county = ds.count_cells(&query(&[dim("county")], &[])).unwrap();
        assert_eq!(by_county.len(), 100);
        assert_eq!(by_county.iter().filter(|&&c| c == 0).count(), 95);
        assert_eq!(by_county.iter().sum::<u64>(), 3000);
    }
}

#[test]
fn filters_narrow_the_count() {
    let (_, domains) = nc();
    let rows = sample_rows(&domains, 2000, 11);
    let (_dir, ds) = load_rows(&rows, true, 512);
    let all = ds.count_cells(&query(&[], &[])).unwrap()[0];
    let active = ds
        .count_cells(&query(&[], &[(dim("status"), &["A"])]))
        .unwrap()[0];
    let active_dem = ds
        .count_cells(&query(
            &[],
            &[(dim("status"), &["A"]), (dim("party"), &["DEM"])],
        ))
        .unwrap()[0];
    assert_eq!(all, 2000);
    assert!(0 < active_dem && active_dem < active && active < all);
    let expected = rows
        .iter()
        .filter(|r| r.status == "A" && r.party == "DEM")
        .count() as u64;
    assert_eq!(active_dem, expected);
}

#[test]
fn out_of_table_codes_become_the_fallback_and_nulls_unknown() {
    let (_, domains) = nc();
    let mut rows = sample_rows(&domains, 10, 3);
    rows[0].party = "WHIG".into();
    rows[1].gender = "X".into();
    rows[2].birth_year = Some(2030); // after the reference year
    rows[3].registration_year = Some(2100);
    let (_dir, ds) = load_rows(&rows, true, 100);
    let mut fixed = rows.clone();
    fixed[0].party = "OTH".into();
    fixed[1].gender = "U".into();
    fixed[2].birth_year = None;
    for q in [
        query(&[dim("party")], &[]),
        query(&[dim("gender")], &[]),
        query(&[dim("age_band")], &[]),
        query(&[dim("registration_year")], &[]),
    ] {
        assert_eq!(
            ds.count_cells(&q).unwrap(),
            naive_count(&domains, &fixed, &q),
            "{q:?}"
        );
    }
}

#[test]
fn county_outside_the_list_fails_the_load() {
    let (layout, domains) = nc();
    let mut rows = sample_rows(&domains, 10, 5);
    rows[4].county = "ATLANTIS".into();
    for dictionary in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(dir.path(), &rows, dictionary, 100);
        let err = Dataset::load(dir.path(), &layout, domains.clone()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, EngineError::Schema { .. }), "{message}");
        assert!(
            message.contains("ATLANTIS") && message.contains(&::dataset::part_name(0)),
            "{message}"
        );
    }
}

#[test]
fn missing_column_and_wrong_manifest_fail_the_load() {
    let (layout, domains) = nc();
    let rows = sample_rows(&domains, 10, 5);
    let dir = tempfile::tempdir().unwrap();
    write_parquet(dir.path(), &rows, true, 100);
    let manifest = dir.path().join(::dataset::MANIFEST);
    let written = |layout: &str, rows_written: u64| {
        ::dataset::Manifest {
            format_version: ::dataset::FORMAT_VERSION,
            dataset: "x".into(),
            layout: layout.into(),
            layout_origin: "builtin".into(),
            layout_sha256: String::new(),
            ingested_at: "2026-06-30T00:00:00Z".into(),
            current_year: 2026,
            rows_read: rows_written,
            rows_written,
            rows_rejected: 0,
            duplicates_dropped: 0,
            rejects_by_reason: Default::default(),
            unknown_codes: Default::default(),
            other_unknown: Default::default(),
            null_years: Default::default(),
            sources: Vec::new(),
            files: Vec::new(),
            schema: Vec::new(),
            history: None,
        }
        .to_json()
    };
    std::fs::write(&manifest, written("oh", 10)).unwrap();
    let err = Dataset::load(dir.path(), &layout, domains.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`oh`"), "{err}");
    std::fs::write(&manifest, written("nc", 11)).unwrap();
    let err = Dataset::load(dir.path(), &layout, domains.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("rows_written"), "{err}");
    std::fs::write(&manifest, written("nc", 10)).unwrap();
    assert_eq!(
        Dataset::load(dir.path(), &layout, domains.clone())
            .unwrap()
            .rows(),
        10
    );

    // Ohio's layout has no race but the file lacks a column Ohio needs? Use
    // a layout whose columns the file does not have: drop a column instead.
    let empty = tempfile::tempdir().unwrap();
    let err = Dataset::load(empty.path(), &layout, domains.clone()).unwrap_err();
    assert!(matches!(err, EngineError::Io { .. }), "{err}");

    let schema = Arc::new(Schema::new(vec![Field::new(
        "county",
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["ALAMANCE"])) as ArrayRef],
    )
    .unwrap();
    let only_county = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(only_county.path().join("a.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = Dataset::load(only_county.path(), &layout, domains)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("birth_year") && err.contains("age_band"),
        "{err}"
    );
}

#[test]
fn ingest_style_dictionary_keys_load() {
    // Ingestion writes counties as Dictionary(UInt16, Utf8) over the whole
    // reference list; codes as Dictionary(UInt8, Utf8) over the code table.
    let (layout, domains) = nc();
    let names =
        StringArray::from_iter_values(layout.county.counties.iter().map(|c| c.name.as_str()));
    let county = DictionaryArray::<arrow::datatypes::UInt16Type>::try_new(
        arrow::array::UInt16Array::from(vec![0u16, 99, 99, 3]),
        Arc::new(names),
    )
    .unwrap();
    let party = DictionaryArray::<UInt8Type>::try_new(
        UInt8Array::from(vec![0u8, 1, 1, 8]),
        Arc::new(StringArray::from_iter_values([
            "DEM", "REP", "UNA", "LIB", "GRE", "CST", "NLB", "JFA", "OTH",
        ])),
    )
    .unwrap();
    let mut fields = vec![];
    let mut columns: Vec<ArrayRef> = vec![];
    for name in layout.output_columns() {
        let (field, col): (Field, ArrayRef) = match name {
            "county" => (
                Field::new(name, county.data_type().clone(), false),
                Arc::new(county.clone()),
            ),
            "birth_year" | "registration_year" => (
                Field::new(name, DataType::Int16, true),
                Arc::new(Int16Array::from(vec![
                    Some(1990),
                    None,
                    Some(2001),
                    Some(1930),
                ])),
            ),
            "party" => (
                Field::new(name, party.data_type().clone(), false),
                Arc::new(party.clone()),
            ),
            other => {
                let coded = layout.coded(other).unwrap();
                let first = coded.codes[0].code.clone();
                (
                    Field::new(name, DataType::Utf8, false),
                    Arc::new(StringArray::from(vec![first.as_str(); 4])),
                )
            }
        };
        fields.push(field);
        columns.push(col);
    }
    let schema = Arc::new(Schema::new(fields));
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("x.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    w.write(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();
    w.close().unwrap();
    let ds = Dataset::load(dir.path(), &layout, domains.clone()).unwrap();
    let by_county = ds.count_cells(&query(&[dim("county")], &[])).unwrap();
    assert_eq!((by_county[0], by_county[3], by_county[99]), (1, 1, 2));
    let by_party = ds.count_cells(&query(&[dim("party")], &[])).unwrap();
    assert_eq!(by_party, [1, 2, 0, 0, 0, 0, 0, 0, 1]);
    let by_age = ds.count_cells(&query(&[dim("age_band")], &[])).unwrap();
    // 2026-1990 = 36 → 35-44; 2001 → 25 → 25-34; 1930 → 96 → 75+.
    assert_eq!(by_age, [0, 0, 1, 1, 0, 0, 0, 1, 1]);
}

#[test]
fn from_codes_checks_its_input() {
    let (_, d) = nc();
    let cols = |n: usize| -> Vec<(Dim, Vec<u16>)> {
        d.dims().iter().map(|dd| (dd.dim, vec![0u16; n])).collect()
    };
    assert_eq!(Dataset::from_codes(d.clone(), cols(5)).unwrap().rows(), 5);
    let mut bad = cols(5);
    bad[0].1[2] = 100; // only 100 counties: 0..=99
    assert!(Dataset::from_codes(d.clone(), bad).is_err());
    let mut short = cols(5);
    short[3].1.pop();
    assert!(Dataset::from_codes(d.clone(), short).is_err());
    let mut missing = cols(5);
    missing.pop();
    assert!(Dataset::from_codes(d, missing).is_err());
}

/// A random query over nc's dimensions: up to 3 group-by dimensions and up
/// to 3 filters of 1–3 values each (indices into the domain).
fn arb_query() -> impl Strategy<Value = (Vec<usize>, Vec<(usize, Vec<usize>)>)> {
    (
        proptest::sample::subsequence((0..11).collect::<Vec<usize>>(), 0..=3).prop_shuffle(),
        proptest::collection::vec(
            (0usize..11, proptest::collection::vec(0usize..200, 1..=3)),
            0..=3,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// count() sums to the number of rows passing the filters, agrees with a
    /// naive count, and every cell key is a public domain value.
    #[test]
    fn counts_total_the_filtered_rows(
        seed in any::<u64>(),
        n in 0usize..400,
        (group, filter) in arb_query(),
    ) {
        let (_, domains) = nc();
        let rows = sample_rows(&domains, n, seed);
        let dims = domains.dims();
        let mut q = CountQuery { group_by: group.iter().map(|&i| dims[i].dim).collect(), filter: vec![] };
        for (di, picks) in filter {
            let dim = dims[di].dim;
            if q.filter.iter().any(|(d, _)| *d == dim) { continue; }
            let vs = &dims[di].values;
            q.filter.push((dim, picks.iter().map(|&p| vs[p % vs.len()].clone()).collect()));
        }
        // In memory from codes: the same rows through Dataset::from_codes.
        let columns: Vec<(Dim, Vec<u16>)> = dims.iter().map(|dd| {
            (dd.dim, rows.iter().map(|r| domains.code(dd.dim, &key_of(r, &dd.name)).unwrap()).collect())
        }).collect();
        let ds = Dataset::from_codes(domains.clone(), columns).unwrap();
        let counts = ds.count_cells(&q).unwrap();
        let cells = domains.cells(&q).unwrap();
        prop_assert_eq!(counts.len(), cells.len());
        let passing = rows.iter().filter(|r| q.filter.iter().all(|(d, vs)| vs.contains(&key_of(r, domains.name(*d))))).count();
        prop_assert_eq!(counts.iter().sum::<u64>(), passing as u64);
        for key in &cells {
            prop_assert_eq!(key.len(), q.group_by.len());
            for (d, v) in q.group_by.iter().zip(key) {
                prop_assert!(domains.get(*d).unwrap().values.contains(v), "{} not in {}", v, domains.name(*d));
            }
        }
        let naive = naive_count(&domains, &rows, &q);
        prop_assert_eq!(&counts, &naive);
        // The same query over pre-aggregated levels (all kept, so whichever
        // level covers the query is used) counts the same.
        ds.build_rollups_within(u64::MAX);
        prop_assert!(ds.rollups_ready());
        prop_assert_eq!(ds.count_cells(&q).unwrap(), naive);
    }
}

/// Levels are kept by their domain sizes alone; a query a level covers
/// counts the same as the scan, and one that needs a dimension beyond every
/// kept level still scans the rows.
#[test]
fn rollups_count_like_the_rows() {
    let (_, domains) = nc();
    let rows = 200_000;
    let mut g = Lcg(7);
    let columns: Vec<(Dim, Vec<u16>)> = domains
        .dims()
        .iter()
        .map(|dd| {
            let n = dd.values.len() as u64;
            let spread = match dd.name.as_str() {
                "county" => 10,
                "registration_year" => n,
                _ => n.min(3),
            };
            (
                dd.dim,
                (0..rows).map(|_| (g.next() % spread) as u16).collect(),
            )
        })
        .collect();
    let scan = Dataset::from_codes(domains.clone(), columns.clone()).unwrap();
    let rolled = Dataset::from_codes(domains.clone(), columns).unwrap();
    rolled.build_rollups();
    let levels = rolled.rollups.get().unwrap();
    assert!(!levels.is_empty(), "small levels must be kept");
    assert!(
        levels
            .windows(2)
            .all(|w| w[0].dims.count_ones() < w[1].dims.count_ones()),
        "smallest level first"
    );
    assert!(
        !levels
            .iter()
            .any(|l| l.covers(dim("registration_year").bit())),
        "a level with every registration year is beyond MAX_LEVEL_CELLS"
    );
    for q in [
        query(&[], &[]),
        query(&[dim("county"), dim("age_band")], &[]),
        query(
            &[dim("county"), dim("age_band")],
            &[(dim("status"), &["A"]), (dim("party"), &["DEM", "REP"])],
        ),
        query(&[dim("gender")], &[(dim("race"), &["B", "W"])]),
        query(
            &[dim("registration_year")],
            &[(dim("county"), &["ALAMANCE"])],
        ),
    ] {
        assert_eq!(
            rolled.count_cells(&q).unwrap(),
            scan.count_cells(&q).unwrap(),
            "{q:?}"
        );
    }
    assert_eq!(
        rolled
            .source_for(&query(&[dim("registration_year")], &[]))
            .unwrap(),
        CountSource::Rows
    );
    assert_eq!(
        rolled
            .source_for(&query(&[dim("county"), dim("age_band")], &[]))
            .unwrap(),
        // After county alone: the second smallest level.
        CountSource::Level(1)
    );
}

/// Each election leads a chain of levels of its own, so turnout by county
/// and age band counts over a level like registration by them, with the
/// counts of a scan; two elections crossed still scan.
#[test]
fn each_election_has_levels_of_its_own() {
    let elections = ["2020g", "2024g"]
        .iter()
        .zip(["2020-11-03", "2024-11-05"])
        .map(|(id, date)| layout::Election::new(id, date, "general").unwrap())
        .collect();
    let layout = Layout::resolve("nc")
        .unwrap()
        .with_elections(elections)
        .unwrap();
    let domains = Arc::new(Domains::new(&layout, &spec()).unwrap());
    let d = |name: &str| domains.by_name(name).unwrap().dim;
    let mut g = Lcg(11);
    let columns: Vec<(Dim, Vec<u16>)> = domains
        .dims()
        .iter()
        .map(|dd| {
            let spread = (dd.values.len() as u64).min(12);
            (
                dd.dim,
                (0..50_000).map(|_| (g.next() % spread) as u16).collect(),
            )
        })
        .collect();
    let scan = Dataset::from_codes(domains.clone(), columns.clone()).unwrap();
    let rolled = Dataset::from_codes(domains.clone(), columns).unwrap();
    rolled.build_rollups();
    let (v20, v24) = (d("vote_2020g"), d("vote_2024g"));
    let turnout = query(
        &[d("county"), d("age_band"), v24],
        &[(d("party"), &["DEM"])],
    );
    let registration = query(&[d("county"), d("age_band"), d("status")], &[]);
    for q in [&turnout, &registration] {
        assert!(
            matches!(rolled.source_for(q).unwrap(), CountSource::Level(_)),
            "{q:?}"
        );
    }
    let crossed = query(&[v20], &[(v24, &["did_not_vote"])]);
    assert_eq!(rolled.source_for(&crossed).unwrap(), CountSource::Rows);
    for q in [
        &turnout,
        &registration,
        &crossed,
        &query(&[v20, d("gender")], &[]),
    ] {
        assert_eq!(
            rolled.count_cells(q).unwrap(),
            scan.count_cells(q).unwrap(),
            "{q:?}"
        );
    }
    // Registration still counts over the main chain's level, the smaller.
    let levels = rolled.rollups.get().unwrap();
    let CountSource::Level(i) = rolled.source_for(&registration).unwrap() else {
        unreachable!()
    };
    assert_eq!(levels[i].dims & (v20.bit() | v24.bit()), 0);
}

/// Which levels exist, and so which rows a query counts over (and how long
/// it takes), must not depend on the data: one voter more or less, or a
/// file with many distinct combinations or few, gives the same levels.
/// (Levels used to be kept only when their entries were at most a quarter of
/// the rows, so one voter could switch a query between a level and a scan.)
#[test]
fn kept_levels_depend_on_the_domains_only() {
    let (_, domains) = nc();
    let dims: Vec<Dim> = domains.dims().iter().map(|d| d.dim).collect();
    let make = |rows: usize, spread: u64, seed: u64| {
        let mut g = Lcg(seed);
        let columns: Vec<(Dim, Vec<u16>)> = dims
            .iter()
            .map(|&dim| {
                let n = (domains.get(dim).unwrap().values.len() as u64).min(spread);
                (dim, (0..rows).map(|_| (g.next() % n) as u16).collect())
            })
            .collect();
        let ds = Dataset::from_codes(domains.clone(), columns).unwrap();
        ds.build_rollups();
        ds
    };
    let shapes = [
        query(&[dim("county")], &[]),
        query(
            &[dim("county"), dim("age_band")],
            &[(dim("status"), &["A"])],
        ),
        query(
            &[
                dim("county"),
                dim("age_band"),
                dim("party"),
                dim("status"),
                dim("gender"),
            ],
            &[],
        ),
        query(&[dim("race")], &[(dim("ethnicity"), &["HL"])]),
        query(&[dim("congressional_district")], &[]),
        query(&[dim("registration_year")], &[]),
    ];
    // Few rows with every combination distinct, many rows with few
    // combinations, and the same plus one voter.
    let datasets = [
        make(2_000, 1_000, 1),
        make(40_000, 2, 2),
        make(40_001, 2, 2),
    ];
    for q in &shapes {
        let sources: Vec<CountSource> = datasets.iter().map(|d| d.source_for(q).unwrap()).collect();
        assert!(
            sources.windows(2).all(|w| w[0] == w[1]),
            "{q:?} counts over {sources:?} depending on the data"
        );
    }
}

/// Many rows across task and block boundaries, several segments, every
/// counting path (one cell, few cells in lanes, many cells, with and without
/// filters) against a count computed straight from the codes.
#[test]
fn large_counts_match_codes() {
    let (_, domains) = nc();
    let rows = 150_001;
    let mut g = Lcg(99);
    let dims: Vec<Dim> = domains.dims().iter().map(|d| d.dim).collect();
    let columns: Vec<(Dim, Vec<u16>)> = dims
        .iter()
        .map(|&dim| {
            let n = domains.get(dim).unwrap().values.len() as u64;
            (dim, (0..rows).map(|_| (g.next() % n) as u16).collect())
        })
        .collect();
    let ds = Dataset::from_codes(domains.clone(), columns.clone()).unwrap();
    let col = |dim: Dim| &columns.iter().find(|(d, _)| *d == dim).unwrap().1;
    let queries = [
        query(&[], &[]),
        query(&[], &[(dim("status"), &["A", "I"])]),
        query(&[dim("gender")], &[]),
        query(&[dim("gender")], &[(dim("party"), &["DEM"])]),
        query(&[dim("county"), dim("age_band")], &[]),
        query(
            &[dim("county"), dim("age_band")],
            &[(dim("status"), &["A"]), (dim("party"), &["DEM", "REP"])],
        ),
        query(
            &[dim("registration_year"), dim("county")],
            &[(dim("county"), &["WAKE", "ALAMANCE"])],
        ),
    ];
    for q in &queries {
        let canonical = domains.canonical(q).unwrap();
        let cells = domains.cells(q).unwrap();
        let mut expected = vec![0u64; cells.len()];
        for r in 0..rows {
            let passes = canonical.filter.iter().all(|(d, vs)| {
                let v = &domains.get(*d).unwrap().values[col(*d)[r] as usize];
                vs.contains(v)
            });
            if !passes {
                continue;
            }
            let key: Vec<String> = q
                .group_by
                .iter()
                .map(|d| domains.get(*d).unwrap().values[col(*d)[r] as usize].clone())
                .collect();
            let at = cells.iter().position(|c| *c == key).unwrap();
            expected[at] += 1;
        }
        assert_eq!(ds.count_cells(q).unwrap(), expected, "{q:?}");
    }
    ds.build_rollups_within(u64::MAX);
    let before = Dataset::from_codes(domains.clone(), columns.clone()).unwrap();
    for q in &queries {
        assert_eq!(
            ds.count_cells(q).unwrap(),
            before.count_cells(q).unwrap(),
            "{q:?} over levels"
        );
    }
}

/// NC with a precinct dimension nested in the county: P1 and P2 in
/// ALAMANCE, P1 in ALEXANDER (county 2), `NA` everywhere.
fn nc_with_precincts() -> Arc<Domains> {
    let text = layout::builtin::layout("nc").unwrap();
    let layout = Layout::from_toml(text, "test", &|rel| {
        Ok(match rel {
            "../reference/nc_precincts.csv" => {
                "county,code,label\n1,P1,a\n1,P2,b\n2,P1,c\n".to_owned()
            }
            other => layout::builtin::read_reference(other)?,
        })
    })
    .unwrap();
    Arc::new(Domains::new(&layout, &spec()).unwrap())
}

#[test]
fn nested_dimension_groups_only_valid_pairs() {
    let d = nc_with_precincts();
    let (county, precinct) = (d.dim("county").unwrap(), d.dim("precinct").unwrap());
    assert_eq!(d.get(precinct).unwrap().values, ["P1", "P2", "NA"]);
    // Alone: its distinct codes.
    assert_eq!(d.cell_count(&query(&[precinct], &[])).unwrap(), 3);
    // With the county: 3 listed pairs and NA in each of 100 counties.
    let both = query(&[county, precinct], &[]);
    assert_eq!(d.cell_count(&both).unwrap(), 103);
    let cells = d.cells(&both).unwrap();
    assert_eq!(
        cells[..4],
        [
            ["ALAMANCE", "P1"],
            ["ALAMANCE", "P2"],
            ["ALAMANCE", "NA"],
            ["ALEXANDER", "P1"]
        ]
    );
    // Keys follow group_by order; filters narrow the pairs.
    let swapped = query(
        &[precinct, dim("party"), county],
        &[(county, &["ALEXANDER"])],
    );
    assert_eq!(d.cell_count(&swapped).unwrap(), 2 * 9);
    assert_eq!(d.cells(&swapped).unwrap()[0], ["P1", "DEM", "ALEXANDER"]);
    // The pairs are part of what a release is keyed by.
    assert_ne!(d.digest(), d_of_nc().digest());
}

#[test]
fn nested_counts_match_a_naive_count() {
    let d = nc_with_precincts();
    let (county, precinct) = (d.dim("county").unwrap(), d.dim("precinct").unwrap());
    let valid: Vec<(u16, u16)> = d.nested_pairs(precinct).unwrap().to_vec();
    let mut g = Lcg(3);
    let rows = 5_000;
    let picks: Vec<(u16, u16)> = (0..rows)
        .map(|_| valid[(g.next() % valid.len() as u64) as usize])
        .collect();
    let party: Vec<u16> = (0..rows).map(|_| (g.next() % 9) as u16).collect();
    let columns: Vec<(Dim, Vec<u16>)> = d
        .dims()
        .iter()
        .map(|dd| {
            let codes = match dd.name.as_str() {
                "county" => picks.iter().map(|p| p.0).collect(),
                "precinct" => picks.iter().map(|p| p.1).collect(),
                "party" => party.clone(),
                _ => vec![0; rows],
            };
            (dd.dim, codes)
        })
        .collect();
    let ds = Dataset::from_codes(d.clone(), columns).unwrap();
    for q in [
        query(&[county, precinct], &[]),
        query(
            &[precinct, dim("party"), county],
            &[(dim("party"), &["DEM", "REP"])],
        ),
        query(&[precinct], &[(county, &["ALAMANCE"])]),
    ] {
        let cells = d.cells(&q).unwrap();
        let want: Vec<u64> = cells
            .iter()
            .map(|key| {
                (0..rows)
                    .filter(|&i| {
                        let value = |dim: Dim| {
                            let code = match d.name(dim) {
                                "county" => picks[i].0,
                                "precinct" => picks[i].1,
                                _ => party[i],
                            };
                            d.get(dim).unwrap().values[code as usize].clone()
                        };
                        q.filter.iter().all(|(f, vs)| vs.contains(&value(*f)))
                            && q.group_by.iter().zip(key).all(|(g, k)| value(*g) == *k)
                    })
                    .count() as u64
            })
            .collect();
        assert_eq!(ds.count_cells(&q).unwrap(), want, "{q:?}");
        ds.build_rollups_within(u64::MAX);
        assert_eq!(ds.count_cells(&q).unwrap(), want, "{q:?} over levels");
    }
}
