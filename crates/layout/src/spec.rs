//! The layout file as written (serde), and its validation into a [`Layout`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

use crate::{
    Code, CodedColumn, CodedDim, County, CountyMatch, CountySpec, DateFormat, DateSpec, Format,
    Layout, LayoutError, MissingVoterId,
};

/// Whether fields may be wrapped in double quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quoting {
    /// A field may be wrapped in `"…"`; inside, `""` is a literal quote.
    Double,
    /// Quotes are ordinary bytes (Florida).
    None,
}

/// How bytes of kept text fields (county names) are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    /// ISO-8859-1: every byte is a character; never fails.
    #[serde(rename = "latin1")]
    Latin1,
    /// UTF-8, falling back to Latin-1 for a field that is not valid UTF-8.
    #[serde(rename = "utf-8")]
    Utf8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LayoutFile {
    name: String,
    description: String,
    format: FormatFile,
    voter_id: VoterIdFile,
    county: CountyFile,
    birth_year: Option<DateFile>,
    registration_date: Option<DateFile>,
    #[serde(default)]
    dimensions: BTreeMap<String, DimensionFile>,
    absent: Option<AbsentFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatFile {
    delimiter: String,
    quoting: Quoting,
    header: bool,
    encoding: Encoding,
    #[serde(default)]
    columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoterIdFile {
    column: String,
    #[serde(default)]
    placeholders: Vec<String>,
    /// A string, not an enum, so that a bad value is reported under its key.
    missing: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountyFile {
    column: String,
    #[serde(rename = "match")]
    matched_by: CountyMatchFile,
    #[serde(default)]
    numeric: bool,
    reference: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CountyMatchFile {
    Name,
    Code,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DateFile {
    column: String,
    format: String,
    #[serde(default)]
    sentinels: Vec<String>,
    #[serde(default)]
    masks: Vec<String>,
    /// Only for registration dates.
    first_year: Option<i16>,
    /// Only for birth years.
    min: Option<i16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionFile {
    column: String,
    codes: Vec<CodeFile>,
    fallback: String,
    blank: Option<String>,
    #[serde(default)]
    map: HashMap<String, String>,
    #[serde(default)]
    numeric: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeFile {
    code: String,
    label: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbsentFile {
    dimensions: Vec<String>,
}

/// Default earliest plausible birth year.
const DEFAULT_MIN_BIRTH_YEAR: i16 = 1880;

/// Checks a parsed layout file section by section and builds the [`Layout`].
/// Every error names the key it is about.
pub(crate) fn validate(
    file: LayoutFile,
    origin: &str,
    read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
) -> Result<Layout, LayoutError> {
    let check = Check {
        origin,
        format: &file.format,
    };
    if file.name.trim().is_empty() {
        return Err(check.invalid("name", "must not be empty".into()));
    }
    let delimiter = check.format()?;
    let (missing_voter_id, voter_id_placeholders) = check.voter_id(&file.voter_id)?;
    let county = check.county(&file.county, read_reference)?;
    let years = check.years(file.birth_year.as_ref(), file.registration_date.as_ref())?;
    let coded = check.dimensions(&file.dimensions, file.absent.as_ref())?;
    Ok(Layout {
        name: file.name,
        description: file.description,
        origin: origin.to_owned(),
        format: Format {
            delimiter,
            quoting: file.format.quoting,
            header: file.format.header,
            encoding: file.format.encoding,
            columns: file.format.columns,
        },
        voter_id: file.voter_id.column,
        voter_id_placeholders,
        missing_voter_id,
        county,
        birth_year: years.birth_year,
        registration_date: years.registration_date,
        first_registration_year: years.first_registration_year,
        min_birth_year: years.min_birth_year,
        coded,
        // Set by `Layout::from_toml`, which has the texts.
        digest: String::new(),
    })
}

/// What every section's check needs: where the layout came from (for
/// errors) and its `[format]` (to check the columns it names).
struct Check<'a> {
    origin: &'a str,
    format: &'a FormatFile,
}

/// The `[birth_year]` and `[registration_date]` sections, checked.
struct Years {
    birth_year: Option<DateSpec>,
    registration_date: Option<DateSpec>,
    first_registration_year: i16,
    min_birth_year: i16,
}

impl Check<'_> {
    fn invalid(&self, key: &str, message: String) -> LayoutError {
        LayoutError::Invalid {
            origin: self.origin.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// `[format]`: returns the delimiter byte.
    fn format(&self) -> Result<u8, LayoutError> {
        let f = self.format;
        let delimiter = match f.delimiter.as_bytes() {
            [b] if *b != b'"' && *b != b'\n' && *b != b'\r' => *b,
            _ => {
                return Err(self.invalid(
                    "format.delimiter",
                    format!(
                        "must be exactly one byte other than a quote or newline, got {:?}",
                        f.delimiter
                    ),
                ));
            }
        };
        if !f.header && f.columns.is_empty() {
            return Err(self.invalid(
                "format.columns",
                "a file without a header needs its column names in order".into(),
            ));
        }
        let mut seen = HashSet::new();
        for c in &f.columns {
            if !seen.insert(c.to_ascii_lowercase()) {
                return Err(self.invalid("format.columns", format!("column `{c}` appears twice")));
            }
        }
        Ok(delimiter)
    }

    /// A source column named at `key`. Without a header, it must be one of
    /// the positional names in `format.columns`.
    fn column(&self, key: &str, column: &str) -> Result<(), LayoutError> {
        if column.trim().is_empty() {
            return Err(self.invalid(key, "must name a column".into()));
        }
        let listed = || {
            self.format
                .columns
                .iter()
                .any(|c| c.eq_ignore_ascii_case(column))
        };
        if !self.format.header && !listed() {
            return Err(self.invalid(key, format!("column `{column}` is not in format.columns")));
        }
        Ok(())
    }

    /// `[voter_id]`: what to do with a missing id, and the placeholders.
    fn voter_id(&self, v: &VoterIdFile) -> Result<(MissingVoterId, Vec<String>), LayoutError> {
        self.column("voter_id.column", &v.column)?;
        let missing = match v.missing.as_deref() {
            None | Some("reject") => MissingVoterId::Reject,
            Some("keep") => MissingVoterId::Keep,
            Some(other) => {
                return Err(self.invalid(
                    "voter_id.missing",
                    format!("must be \"reject\" or \"keep\", got {other:?}"),
                ));
            }
        };
        let placeholders = placeholders(&v.placeholders).map_err(|(i, message)| {
            self.invalid(&format!("voter_id.placeholders[{i}]"), message)
        })?;
        Ok((missing, placeholders))
    }

    /// `[county]`, with its reference list read and parsed.
    fn county(
        &self,
        c: &CountyFile,
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<CountySpec, LayoutError> {
        self.column("county.column", &c.column)?;
        let reference_text = read_reference(&c.reference)?;
        Ok(CountySpec {
            column: c.column.clone(),
            matched_by: match c.matched_by {
                CountyMatchFile::Name => CountyMatch::Name,
                CountyMatchFile::Code => CountyMatch::Code,
            },
            numeric: c.numeric,
            counties: parse_counties(&reference_text, &c.reference)?,
        })
    }

    /// A date section at `key`: its column and format.
    fn date(&self, key: &str, d: &DateFile) -> Result<DateSpec, LayoutError> {
        self.column(&format!("{key}.column"), &d.column)?;
        let format =
            DateFormat::parse(&d.format).map_err(|m| self.invalid(&format!("{key}.format"), m))?;
        Ok(DateSpec {
            column: d.column.clone(),
            format,
            sentinels: d.sentinels.iter().map(|s| s.trim().to_owned()).collect(),
            masks: d.masks.iter().map(|s| s.trim().to_owned()).collect(),
        })
    }

    /// `[birth_year]` and `[registration_date]`, with their plausible years.
    fn years(
        &self,
        birth: Option<&DateFile>,
        reg: Option<&DateFile>,
    ) -> Result<Years, LayoutError> {
        if birth.is_some_and(|d| d.first_year.is_some()) {
            return Err(self.invalid(
                "birth_year.first_year",
                "only registration_date has first_year (use `min`)".into(),
            ));
        }
        if reg.is_some_and(|d| d.min.is_some()) {
            return Err(self.invalid(
                "registration_date.min",
                "only birth_year has `min` (use first_year)".into(),
            ));
        }
        let first_registration_year = reg.and_then(|d| d.first_year).unwrap_or(1900);
        let min_birth_year = birth.and_then(|d| d.min).unwrap_or(DEFAULT_MIN_BIRTH_YEAR);
        for (key, year) in [
            ("registration_date.first_year", first_registration_year),
            ("birth_year.min", min_birth_year),
        ] {
            if !(1800..=2100).contains(&year) {
                return Err(self.invalid(key, format!("{year} is not a plausible year")));
            }
        }
        Ok(Years {
            birth_year: birth.map(|d| self.date("birth_year", d)).transpose()?,
            registration_date: reg.map(|d| self.date("registration_date", d)).transpose()?,
            first_registration_year,
            min_birth_year,
        })
    }

    /// `[dimensions.*]` and `[absent]`: every coded dimension is defined or
    /// declared absent, never both.
    fn dimensions(
        &self,
        dims: &BTreeMap<String, DimensionFile>,
        absent: Option<&AbsentFile>,
    ) -> Result<Vec<CodedColumn>, LayoutError> {
        let absent: &[String] = absent.map_or(&[], |a| &a.dimensions);
        for name in absent {
            if CodedDim::from_name(name).is_none() {
                return Err(self.invalid(
                    "absent.dimensions",
                    format!(
                        "`{name}` is not a coded dimension (one of: {})",
                        coded_names()
                    ),
                ));
            }
            if dims.contains_key(name) {
                return Err(self.invalid(
                    "absent.dimensions",
                    format!(
                        "`{name}` is declared absent but also defined under [dimensions.{name}]"
                    ),
                ));
            }
        }
        if let Some(name) = dims.keys().find(|n| CodedDim::from_name(n).is_none()) {
            return Err(self.invalid(
                &format!("dimensions.{name}"),
                format!("not a coded dimension (one of: {})", coded_names()),
            ));
        }
        let mut coded = Vec::new();
        for dim in CodedDim::ALL {
            match dims.get(dim.name()) {
                Some(d) => coded.push(self.coded_column(dim, d)?),
                None if absent.iter().any(|a| a == dim.name()) => {}
                None => {
                    return Err(self.invalid(
                        &format!("dimensions.{}", dim.name()),
                        format!(
                            "missing: define it, or list \"{}\" under [absent] dimensions if the file does not record it",
                            dim.name()
                        ),
                    ));
                }
            }
        }
        Ok(coded)
    }

    /// One `[dimensions.NAME]`: its column, codes, fallback, blank and map.
    fn coded_column(&self, dim: CodedDim, d: &DimensionFile) -> Result<CodedColumn, LayoutError> {
        let key = format!("dimensions.{}", dim.name());
        self.column(&format!("{key}.column"), &d.column)?;
        let codes = self.codes(&key, &d.codes)?;
        let position = |field: &str, code: &str| -> Result<usize, LayoutError> {
            codes.iter().position(|c| c.code == code).ok_or_else(|| {
                self.invalid(
                    &format!("{key}.{field}"),
                    format!("`{code}` is not one of the codes ({})", join_codes(&codes)),
                )
            })
        };
        let fallback = position("fallback", &d.fallback)?;
        let blank = d
            .blank
            .as_deref()
            .map(|b| position("blank", b))
            .transpose()?;
        for (from, to) in &d.map {
            if !codes.iter().any(|c| &c.code == to) {
                return Err(self.invalid(
                    &format!("{key}.map.\"{from}\""),
                    format!(
                        "maps to `{to}`, which is not one of the codes ({})",
                        join_codes(&codes)
                    ),
                ));
            }
        }
        Ok(CodedColumn {
            dim,
            column: d.column.clone(),
            codes,
            fallback,
            blank,
            map: d.map.clone(),
            numeric: d.numeric,
        })
    }

    /// `KEY.codes`: 1 to 255 distinct, trimmed codes.
    fn codes(&self, key: &str, codes: &[CodeFile]) -> Result<Vec<Code>, LayoutError> {
        if codes.is_empty() {
            return Err(self.invalid(
                &format!("{key}.codes"),
                "must list at least one code".into(),
            ));
        }
        if codes.len() > u8::MAX as usize {
            return Err(self.invalid(&format!("{key}.codes"), "at most 255 codes".into()));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(codes.len());
        for (i, c) in codes.iter().enumerate() {
            let code = c.code.trim();
            let at = || format!("{key}.codes[{i}].code");
            if code.is_empty() || code != c.code {
                return Err(self.invalid(
                    &at(),
                    format!("{:?} must be non-empty with no surrounding spaces", c.code),
                ));
            }
            if !seen.insert(code) {
                return Err(self.invalid(&at(), format!("`{code}` appears twice")));
            }
            out.push(Code {
                code: code.to_owned(),
                label: c.label.clone(),
            });
        }
        Ok(out)
    }
}

/// Trims the placeholder ids and checks them. On error, returns the index of
/// the bad entry and why.
fn placeholders(values: &[String]) -> Result<Vec<String>, (usize, String)> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let v = value.trim_matches([' ', '\t']);
        if v.is_empty() {
            return Err((
                i,
                "a blank id is always missing; list only non-blank placeholders".into(),
            ));
        }
        // Ingestion compares bytes: a non-ASCII placeholder would match in
        // one encoding and silently not in the other.
        if !v.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err((i, format!("{value:?} must be printable ASCII")));
        }
        if !seen.insert(v.to_ascii_uppercase()) {
            return Err((i, format!("`{v}` appears twice (placeholders ignore case)")));
        }
        out.push(v.to_owned());
    }
    Ok(out)
}

fn coded_names() -> String {
    CodedDim::ALL.map(CodedDim::name).join(", ")
}

fn join_codes(codes: &[Code]) -> String {
    codes
        .iter()
        .map(|c| c.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a `code,name` county list with a header line. A UTF-8 byte-order
/// mark before the header is skipped: Excel writes one when it saves CSV.
fn parse_counties(text: &str, path: &str) -> Result<Vec<County>, LayoutError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let err = |line: usize, message: String| LayoutError::Reference {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().eq_ignore_ascii_case("code,name") => {}
        _ => return Err(err(1, "expected the header `code,name`".into())),
    }
    let mut counties = Vec::new();
    let (mut codes, mut names) = (HashSet::new(), HashSet::new());
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let Some((code, name)) = line.split_once(',') else {
            return Err(err(i + 1, "expected `code,name`".into()));
        };
        let (code, name) = (code.trim(), name.trim().trim_matches('"'));
        if code.is_empty() || name.is_empty() {
            return Err(err(i + 1, "empty code or name".into()));
        }
        if !codes.insert(code.to_ascii_uppercase()) || !names.insert(name.to_ascii_uppercase()) {
            return Err(err(i + 1, format!("county `{code},{name}` appears twice")));
        }
        counties.push(County {
            code: code.to_owned(),
            name: name.to_owned(),
        });
    }
    if counties.is_empty() {
        return Err(err(1, "no counties".into()));
    }
    if counties.len() > u16::MAX as usize {
        return Err(err(1, "too many counties".into()));
    }
    Ok(counties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_county_list_may_start_with_a_byte_order_mark() {
        let plain = parse_counties("code,name\n1,ALAMANCE\n2,ALEXANDER\n", "x.csv").unwrap();
        let excel = parse_counties(
            "\u{feff}code,name\r\n1,ALAMANCE\r\n2,ALEXANDER\r\n",
            "x.csv",
        )
        .unwrap();
        assert_eq!(plain, excel);
        assert_eq!(excel[0].code, "1");
    }
}
