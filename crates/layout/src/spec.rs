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

pub(crate) fn validate(
    file: LayoutFile,
    origin: &str,
    read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
) -> Result<Layout, LayoutError> {
    let invalid = |key: &str, message: String| LayoutError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        message,
    };

    if file.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty".into()));
    }
    let delimiter = match file.format.delimiter.as_bytes() {
        [b] if *b != b'"' && *b != b'\n' && *b != b'\r' => *b,
        _ => {
            return Err(invalid(
                "format.delimiter",
                format!(
                    "must be exactly one byte other than a quote or newline, got {:?}",
                    file.format.delimiter
                ),
            ));
        }
    };
    if !file.format.header && file.format.columns.is_empty() {
        return Err(invalid(
            "format.columns",
            "a file without a header needs its column names in order".into(),
        ));
    }
    let mut seen = HashSet::new();
    for c in &file.format.columns {
        if !seen.insert(c.to_ascii_lowercase()) {
            return Err(invalid(
                "format.columns",
                format!("column `{c}` appears twice"),
            ));
        }
    }
    // Without a header, every source column the layout names must be one of
    // the positional names.
    let check_column = |key: &str, column: &str| -> Result<(), LayoutError> {
        if column.trim().is_empty() {
            return Err(invalid(key, "must name a column".into()));
        }
        if !file.format.header
            && !file
                .format
                .columns
                .iter()
                .any(|c| c.eq_ignore_ascii_case(column))
        {
            return Err(invalid(
                key,
                format!("column `{column}` is not in format.columns"),
            ));
        }
        Ok(())
    };

    check_column("voter_id.column", &file.voter_id.column)?;
    let missing_voter_id = match file.voter_id.missing.as_deref() {
        None | Some("reject") => MissingVoterId::Reject,
        Some("keep") => MissingVoterId::Keep,
        Some(other) => {
            return Err(invalid(
                "voter_id.missing",
                format!("must be \"reject\" or \"keep\", got {other:?}"),
            ));
        }
    };
    let voter_id_placeholders = placeholders(&file.voter_id.placeholders)
        .map_err(|(i, message)| invalid(&format!("voter_id.placeholders[{i}]"), message))?;
    check_column("county.column", &file.county.column)?;

    let reference_text = read_reference(&file.county.reference)?;
    let counties = parse_counties(&reference_text, &file.county.reference)?;
    let county = CountySpec {
        column: file.county.column.clone(),
        matched_by: match file.county.matched_by {
            CountyMatchFile::Name => CountyMatch::Name,
            CountyMatchFile::Code => CountyMatch::Code,
        },
        numeric: file.county.numeric,
        counties,
    };

    let date = |key: &str, d: &DateFile| -> Result<DateSpec, LayoutError> {
        check_column(&format!("{key}.column"), &d.column)?;
        let format =
            DateFormat::parse(&d.format).map_err(|m| invalid(&format!("{key}.format"), m))?;
        Ok(DateSpec {
            column: d.column.clone(),
            format,
            sentinels: d.sentinels.iter().map(|s| s.trim().to_owned()).collect(),
            masks: d.masks.iter().map(|s| s.trim().to_owned()).collect(),
        })
    };
    let birth_year = file
        .birth_year
        .as_ref()
        .map(|d| date("birth_year", d))
        .transpose()?;
    if file
        .birth_year
        .as_ref()
        .is_some_and(|d| d.first_year.is_some())
    {
        return Err(invalid(
            "birth_year.first_year",
            "only registration_date has first_year (use `min`)".into(),
        ));
    }
    let registration_date = file
        .registration_date
        .as_ref()
        .map(|d| date("registration_date", d))
        .transpose()?;
    if file
        .registration_date
        .as_ref()
        .is_some_and(|d| d.min.is_some())
    {
        return Err(invalid(
            "registration_date.min",
            "only birth_year has `min` (use first_year)".into(),
        ));
    }
    let first_registration_year = file
        .registration_date
        .as_ref()
        .and_then(|d| d.first_year)
        .unwrap_or(1900);
    let min_birth_year = file
        .birth_year
        .as_ref()
        .and_then(|d| d.min)
        .unwrap_or(DEFAULT_MIN_BIRTH_YEAR);
    if !(1800..=2100).contains(&first_registration_year) {
        return Err(invalid(
            "registration_date.first_year",
            format!("{first_registration_year} is not a plausible year"),
        ));
    }
    if !(1800..=2100).contains(&min_birth_year) {
        return Err(invalid(
            "birth_year.min",
            format!("{min_birth_year} is not a plausible year"),
        ));
    }

    let absent: Vec<String> = file.absent.map(|a| a.dimensions).unwrap_or_default();
    for name in &absent {
        if CodedDim::from_name(name).is_none() {
            return Err(invalid(
                "absent.dimensions",
                format!(
                    "`{name}` is not a coded dimension (one of: {})",
                    coded_names()
                ),
            ));
        }
        if file.dimensions.contains_key(name) {
            return Err(invalid(
                "absent.dimensions",
                format!("`{name}` is declared absent but also defined under [dimensions.{name}]"),
            ));
        }
    }
    for name in file.dimensions.keys() {
        if CodedDim::from_name(name).is_none() {
            return Err(invalid(
                &format!("dimensions.{name}"),
                format!("not a coded dimension (one of: {})", coded_names()),
            ));
        }
    }

    let mut coded = Vec::new();
    for dim in CodedDim::ALL {
        let Some(d) = file.dimensions.get(dim.name()) else {
            if !absent.iter().any(|a| a == dim.name()) {
                return Err(invalid(
                    &format!("dimensions.{}", dim.name()),
                    format!(
                        "missing: define it, or list \"{}\" under [absent] dimensions if the file does not record it",
                        dim.name()
                    ),
                ));
            }
            continue;
        };
        let key = format!("dimensions.{}", dim.name());
        check_column(&format!("{key}.column"), &d.column)?;
        if d.codes.is_empty() {
            return Err(invalid(
                &format!("{key}.codes"),
                "must list at least one code".into(),
            ));
        }
        if d.codes.len() > u8::MAX as usize {
            return Err(invalid(&format!("{key}.codes"), "at most 255 codes".into()));
        }
        let mut codes = Vec::with_capacity(d.codes.len());
        let mut seen = HashSet::new();
        for (i, c) in d.codes.iter().enumerate() {
            let code = c.code.trim();
            if code.is_empty() || code != c.code {
                return Err(invalid(
                    &format!("{key}.codes[{i}].code"),
                    format!("{:?} must be non-empty with no surrounding spaces", c.code),
                ));
            }
            if !seen.insert(code.to_owned()) {
                return Err(invalid(
                    &format!("{key}.codes[{i}].code"),
                    format!("`{code}` appears twice"),
                ));
            }
            codes.push(Code {
                code: code.to_owned(),
                label: c.label.clone(),
            });
        }
        let position = |field: &str, code: &str| -> Result<usize, LayoutError> {
            codes.iter().position(|c| c.code == code).ok_or_else(|| {
                invalid(
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
                return Err(invalid(
                    &format!("{key}.map.\"{from}\""),
                    format!(
                        "maps to `{to}`, which is not one of the codes ({})",
                        join_codes(&codes)
                    ),
                ));
            }
        }
        coded.push(CodedColumn {
            dim,
            column: d.column.clone(),
            codes,
            fallback,
            blank,
            map: d.map.clone(),
            numeric: d.numeric,
        });
    }

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
        birth_year,
        registration_date,
        first_registration_year,
        min_birth_year,
        coded,
        // Set by `Layout::from_toml`, which has the texts.
        digest: String::new(),
    })
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

/// Parses a `code,name` county list with a header line.
fn parse_counties(text: &str, path: &str) -> Result<Vec<County>, LayoutError> {
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
