//! Parser fuzz: real-layout lines (from `synth`, for nc, oh and fl), mutated
//! (byte flips, inserted and removed delimiters and quotes, truncation, CR and
//! LF in odd places, invalid UTF-8, NULs, very long fields), then ingested
//! for real. Nothing may panic or fail; every line is a written row, a
//! duplicate or a reject with a reason and its line number, and
//! `rows_read = written + rejected + duplicates`.
//!
//! Cases per layout: `PROPTEST_CASES` (default 256 here); e.g.
//! `PROPTEST_CASES=2000 cargo test -p ingest --test parser_fuzz -- --nocapture`
//! (dependencies and `ingest` are optimised even in debug builds).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ingest::{IngestOptions, Manifest};
use layout::Layout;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Header (if any) and data lines `synth` writes for a layout.
fn seed_lines(layout: &Layout, quirks: bool) -> (Option<Vec<u8>>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    synth::generate(
        layout,
        &synth::SynthOptions {
            with_rows: true,
            rows: 60,
            seed: 7,
            quirks,
            current_year: 2026,
            elections: Vec::new(),
        },
        &mut out,
    )
    .unwrap();
    let mut lines: Vec<Vec<u8>> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let header = layout.format.header.then(|| lines.remove(0));
    (header, lines)
}

/// One mutation of a line.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    InsertDelimiter(usize),
    RemoveDelimiter(usize),
    InsertQuote(usize),
    RemoveQuote(usize),
    Truncate(usize),
    InsertCr(usize),
    InsertLf(usize),
    InvalidUtf8(usize, u8),
    Nul(usize),
    LongField(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
        at.prop_map(Mutation::InsertDelimiter),
        at.prop_map(Mutation::RemoveDelimiter),
        at.prop_map(Mutation::InsertQuote),
        at.prop_map(Mutation::RemoveQuote),
        at.prop_map(Mutation::Truncate),
        at.prop_map(Mutation::InsertCr),
        at.prop_map(Mutation::InsertLf),
        (
            at,
            prop::sample::select(vec![0xffu8, 0xfe, 0xc3, 0x80, 0xe2, 0xa0])
        )
            .prop_map(|(a, b)| Mutation::InvalidUtf8(a, b)),
        at.prop_map(Mutation::Nul),
        (
            at,
            prop::sample::select(vec![100usize, 10_000, 100_000, 5 * 1024 * 1024])
        )
            .prop_map(|(a, n)| Mutation::LongField(a, n)),
    ]
}

/// Position of the `n`-th (mod count) occurrence of `byte`.
fn nth(line: &[u8], byte: u8, n: usize) -> Option<usize> {
    let hits: Vec<usize> = memchr_all(line, byte);
    (!hits.is_empty()).then(|| hits[n % hits.len()])
}

fn memchr_all(line: &[u8], byte: u8) -> Vec<usize> {
    line.iter()
        .enumerate()
        .filter(|&(_, &b)| b == byte)
        .map(|(i, _)| i)
        .collect()
}

fn apply(line: &mut Vec<u8>, m: &Mutation, delimiter: u8) {
    let pos = |a: usize, len: usize| if len == 0 { 0 } else { a % (len + 1) };
    match *m {
        Mutation::FlipBit(a, bit) => {
            if !line.is_empty() {
                let i = a % line.len();
                line[i] ^= 1 << bit;
            }
        }
        Mutation::InsertDelimiter(a) => line.insert(pos(a, line.len()), delimiter),
        Mutation::RemoveDelimiter(a) => {
            if let Some(i) = nth(line, delimiter, a) {
                line.remove(i);
            }
        }
        Mutation::InsertQuote(a) => line.insert(pos(a, line.len()), b'"'),
        Mutation::RemoveQuote(a) => {
            if let Some(i) = nth(line, b'"', a) {
                line.remove(i);
            }
        }
        Mutation::Truncate(a) => line.truncate(pos(a, line.len())),
        Mutation::InsertCr(a) => line.insert(pos(a, line.len()), b'\r'),
        Mutation::InsertLf(a) => line.insert(pos(a, line.len()), b'\n'),
        Mutation::InvalidUtf8(a, b) => line.insert(pos(a, line.len()), b),
        Mutation::Nul(a) => line.insert(pos(a, line.len()), 0),
        Mutation::LongField(a, n) => {
            let at = pos(a, line.len());
            line.splice(at..at, std::iter::repeat_n(b'A', n));
        }
    }
}

/// Lines as the ingest counts them: every `\n` ends one, and a last line
/// without `\n` counts too.
fn count_lines(body: &[u8]) -> u64 {
    memchr_all(body, b'\n').len() as u64
        + u64::from(!body.is_empty() && body.last() != Some(&b'\n'))
}

/// Totals over a run: cases, lines, rows written, rejected, duplicates.
#[derive(Default)]
struct Totals([AtomicUsize; 5]);

impl Totals {
    fn add(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n as usize, Ordering::Relaxed);
    }
    fn get(&self, i: usize) -> usize {
        self.0[i].load(Ordering::Relaxed)
    }
}

fn check_case(
    layout: &Layout,
    header: &Option<Vec<u8>>,
    body: &[u8],
    dir: &Path,
    totals: &Totals,
) -> Result<(), TestCaseError> {
    let input = dir.join("in.txt");
    let mut file = header.clone().map_or_else(Vec::new, |mut h| {
        h.push(b'\n');
        h
    });
    file.extend_from_slice(body);
    std::fs::write(&input, &file).unwrap();
    let data_dir = dir.join("data");
    let manifest: Manifest = ingest::ingest(
        layout,
        &IngestOptions {
            dataset: "fuzz".into(),
            data_dir: data_dir.clone(),
            files: vec![input],
            current_year: Some(2026),
            threads: Some(1),
            // Mutated lines may be mostly unknown codes: the parser is what
            // is tested here, not the layout's fit.
            allow_unknown: true,
            allow_rejects: true,
            history_files: Vec::new(),
        },
        &(),
    )
    .map_err(|e| TestCaseError::fail(format!("ingest failed: {e}")))?;

    let lines = count_lines(body);
    prop_assert_eq!(manifest.rows_read, lines, "every line is read");
    prop_assert_eq!(
        manifest.rows_read,
        manifest.rows_written + manifest.rows_rejected + manifest.duplicates_dropped,
        "rows_read = written + rejected + duplicates"
    );
    prop_assert_eq!(
        manifest.rejects_by_reason.values().sum::<u64>(),
        manifest.rows_rejected
    );

    // rejects.tsv: one line per reject, with a line number in range, once,
    // and a reason.
    let rejects = std::fs::read_to_string(data_dir.join("fuzz/rejects.tsv")).unwrap();
    let first = if header.is_some() { 2 } else { 1 };
    let mut seen = BTreeSet::new();
    let mut n = 0u64;
    for row in rejects.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        prop_assert_eq!(cols.len(), 4, "rejects.tsv row {:?}", row);
        let line: u64 = cols[1].parse().unwrap();
        prop_assert!(
            (first..first + lines).contains(&line),
            "reject line {} outside {}..{}",
            line,
            first,
            first + lines
        );
        prop_assert!(seen.insert(line), "line {} rejected twice", line);
        prop_assert!(!cols[3].is_empty(), "reject without a reason");
        n += 1;
    }
    prop_assert_eq!(n, manifest.rows_rejected);

    // The Parquet files hold exactly the written rows.
    let mut read_back = 0u64;
    for f in &manifest.files {
        let file = std::fs::File::open(data_dir.join("fuzz").join(f)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            read_back += batch.unwrap().num_rows() as u64;
        }
    }
    prop_assert_eq!(read_back, manifest.rows_written);
    totals.add(0, 1);
    totals.add(1, lines);
    totals.add(2, manifest.rows_written);
    totals.add(3, manifest.rows_rejected);
    totals.add(4, manifest.duplicates_dropped);
    Ok(())
}

fn fuzz_layout(name: &str) {
    let layout = Layout::resolve(name).unwrap();
    let delimiter = layout.format.delimiter;
    let (header, mut seeds) = seed_lines(&layout, false);
    seeds.extend(seed_lines(&layout, true).1);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let lines = prop::collection::vec(
        (
            prop::sample::select(seeds),
            prop::collection::vec(mutation(), 0..4),
            any::<bool>(),
        ),
        1..12,
    );
    let dir = tempfile::tempdir().unwrap();
    let totals = Totals::default();
    let result = runner.run(&(lines, any::<bool>()), |(lines, final_newline)| {
        let mut body = Vec::new();
        for (i, (seed, mutations, crlf)) in lines.iter().enumerate() {
            let mut line = seed.clone();
            for m in mutations {
                apply(&mut line, m, delimiter);
            }
            body.extend_from_slice(&line);
            if i + 1 < lines.len() || final_newline {
                body.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
        }
        check_case(&layout, &header, &body, dir.path(), &totals)
    });
    eprintln!(
        "parser fuzz {name}: {} cases passed (each a real ingest): {} lines, {} written, \
         {} rejected, {} duplicates",
        totals.get(0),
        totals.get(1),
        totals.get(2),
        totals.get(3),
        totals.get(4)
    );
    if let Err(e) = result {
        panic!("parser fuzz {name}: {e}");
    }
    // The mutations must reach both outcomes, or the fuzz tests little.
    assert!(
        totals.get(2) > 0 && totals.get(3) > 0,
        "no rows written or none rejected"
    );
}

#[test]
fn mutated_nc_lines() {
    fuzz_layout("nc");
}

#[test]
fn mutated_oh_lines() {
    fuzz_layout("oh");
}

#[test]
fn mutated_fl_lines() {
    fuzz_layout("fl");
}
