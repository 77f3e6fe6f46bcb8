//! `rollcall layout check`: a layout tried on the first lines of a data
//! file, reporting per dimension how the values matched its table — shares
//! only, never a value, so the report is safe to paste into an issue.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use layout::Layout;

use crate::IngestError;
use crate::reader;
use crate::rules::{Matched, NullYear, RowOutcome};

/// How many data lines [`sample`] reads by default.
pub const SAMPLE_LINES: u64 = 10_000;

/// What [`sample`] found in the first lines of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Data lines read (at most the limit asked for).
    pub lines: u64,
    /// Lines the rules accepted.
    pub accepted: u64,
    /// Rejected lines by reason key (`field_count`, `unknown_county`, …).
    pub rejects: BTreeMap<&'static str, u64>,
    /// The delimiter the file is split on (`tab`, `pipe`, `comma`).
    pub delimiter: String,
    /// Columns found under an alternative name: first name → name found.
    pub columns_used: Vec<(String, String)>,
    /// Per coded dimension, in `Layout::coded` order.
    pub dimensions: Vec<DimensionShares>,
    /// Birth years: parsed, and null by reason.
    pub birth_year: Option<YearShares>,
    /// Registration years: the same.
    pub registration_year: Option<YearShares>,
}

/// How one dimension's values matched, over the accepted lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DimensionShares {
    /// The dimension's name.
    pub name: String,
    /// The source column it reads.
    pub column: String,
    /// Values that are a code of the table.
    pub matched: u64,
    /// Values that are a key of `map`.
    pub mapped: u64,
    /// Blank values (with or without a `blank` code).
    pub blank: u64,
    /// Values that are none of these (they become the fallback). Blank
    /// values without a `blank` code are counted in `blank`, not here.
    pub unknown: u64,
}

impl DimensionShares {
    /// Whether the ingest would stop on this dimension: more than a fifth
    /// of its non-blank values unknown (the same rule as the ingest's).
    pub fn would_stop(&self, accepted: u64) -> bool {
        self.unknown * 5 > accepted
    }
}

/// How a date column's values came out, over the accepted lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearShares {
    /// The source column.
    pub column: String,
    /// A plausible year.
    pub parsed: u64,
    /// Blank.
    pub blank: u64,
    /// A declared sentinel or mask.
    pub sentinel: u64,
    /// Not a date in the layout's format (or an impossible one).
    pub unparseable: u64,
    /// Outside the plausible years.
    pub out_of_range: u64,
}

impl YearShares {
    fn add(&mut self, why: Option<NullYear>) {
        match why {
            None => self.parsed += 1,
            Some(NullYear::Blank) => self.blank += 1,
            Some(NullYear::SentinelOrMask) => self.sentinel += 1,
            Some(NullYear::Unparseable) => self.unparseable += 1,
            Some(NullYear::OutOfRange) => self.out_of_range += 1,
        }
    }
}

/// Reads the header (if the layout has one) and up to `max_lines` data
/// lines of `path`, and applies the layout's rules to each, as ingest would.
/// Fails as ingest would on a missing column or an undetectable delimiter.
pub fn sample(
    layout: &Layout,
    path: &Path,
    max_lines: u64,
    current_year: i16,
) -> Result<Sample, IngestError> {
    let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let mut input = BufReader::new(file);
    let mut first = Vec::new();
    input
        .read_until(b'\n', &mut first)
        .map_err(|e| IngestError::io(path, e))?;
    let rules = reader::compile(layout, path, &first, current_year)?;
    let mut out = Sample {
        lines: 0,
        accepted: 0,
        rejects: BTreeMap::new(),
        delimiter: reader::delimiter_name(rules.delimiter()),
        columns_used: rules.columns_used.clone(),
        dimensions: layout
            .coded
            .iter()
            .map(|c| DimensionShares {
                name: c.name.clone(),
                column: used(&rules.columns_used, &c.column),
                ..DimensionShares::default()
            })
            .collect(),
        birth_year: layout.birth_year.as_ref().map(|d| YearShares {
            column: used(&rules.columns_used, &d.column),
            ..YearShares::default()
        }),
        registration_year: layout.registration_date.as_ref().map(|d| YearShares {
            column: used(&rules.columns_used, &d.column),
            ..YearShares::default()
        }),
    };
    let mut outcome = RowOutcome::default();
    let mut line = if layout.format.header {
        Vec::new()
    } else {
        first // a file without a header: its first line is data
    };
    while out.lines < max_lines {
        if line.is_empty() {
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| IngestError::io(path, e))?;
            if n == 0 {
                break;
            }
        }
        let mut text = line.strip_suffix(b"\n").unwrap_or(&line);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        out.lines += 1;
        match rules.apply(text, &mut outcome) {
            Ok(_) => out.count(&outcome),
            Err(reason) => *out.rejects.entry(reason.key()).or_default() += 1,
        }
        line.clear();
    }
    Ok(out)
}

impl Sample {
    fn count(&mut self, outcome: &RowOutcome) {
        self.accepted += 1;
        for (d, how) in self.dimensions.iter_mut().zip(outcome.matched) {
            match how {
                Matched::Code => d.matched += 1,
                Matched::Mapped => d.mapped += 1,
                Matched::Blank | Matched::BlankUnknown => d.blank += 1,
                Matched::Unknown => d.unknown += 1,
            }
        }
        if let Some(y) = &mut self.birth_year {
            y.add(outcome.birth_null);
        }
        if let Some(y) = &mut self.registration_year {
            y.add(outcome.reg_null);
        }
    }
}

/// The name a column was found under in this file.
fn used(columns_used: &[(String, String)], first: &str) -> String {
    columns_used
        .iter()
        .find(|(f, _)| f == first)
        .map_or_else(|| first.to_owned(), |(_, found)| found.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn nc_line(layout: &Layout, set: &[(&str, &str)]) -> String {
        String::from_utf8(crate::rules::tests::nc_line(layout, set)).unwrap()
    }

    #[test]
    fn shares_are_counted_per_dimension_and_stop_at_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::resolve("nc").unwrap();
        let mut text = layout.format.columns.join("\t") + "\n";
        let base = [
            ("county_desc", "WAKE"),
            ("ncid", "AA1"),
            ("birth_year", "1970"),
            ("registr_dt", "01/02/2000"),
            ("status_cd", "A"),
            ("party_cd", "DEM"),
        ];
        for i in 0..10 {
            let mut fields = base.to_vec();
            // 4 of 10 gender values blank (a `blank` code), 3 unknown.
            let gender = match i {
                0..=3 => "",
                4..=6 => "SMITH",
                _ => "F",
            };
            fields.push(("gender_code", gender));
            if i == 9 {
                fields[0] = ("county_desc", "NOWHERE");
            }
            text += &nc_line(&layout, &fields);
            text += "\n";
        }
        let path = write(tmp.path(), "nc.txt", &text);
        let s = sample(&layout, &path, 10_000, 2026).unwrap();
        assert_eq!((s.lines, s.accepted), (10, 9));
        assert_eq!(s.rejects.get("unknown_county"), Some(&1));
        assert_eq!(s.delimiter, "tab");
        let gender = s.dimensions.iter().find(|d| d.name == "gender").unwrap();
        assert_eq!(
            (gender.matched, gender.blank, gender.unknown),
            (2, 4, 3),
            "{gender:?}"
        );
        assert!(gender.would_stop(s.accepted));
        let status = s.dimensions.iter().find(|d| d.name == "status").unwrap();
        assert_eq!(status.matched, 9);
        assert!(!status.would_stop(s.accepted));
        assert_eq!(s.birth_year.as_ref().unwrap().parsed, 9);

        let two = sample(&layout, &path, 2, 2026).unwrap();
        assert_eq!(two.lines, 2);
    }
}
