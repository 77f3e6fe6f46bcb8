//! The layout file as written (serde), and its validation into a [`Layout`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

use crate::{
    Code, CodedColumn, County, CountyAgree, CountyMatch, CountySpec, DateFormat, DateSpec, Format,
    Layout, LayoutError, MissingVoterId, Nested,
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

/// A key that takes one string or a list of them: `column = "Birthyear"` or
/// `column = ["Birthyear", "Birthdate"]` (alternative names, first found wins).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
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
    history: Option<crate::history::HistoryToml>,
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
    /// Without a header: columns a file may add after `columns` (a newer
    /// export's), in order.
    #[serde(default)]
    optional_columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoterIdFile {
    column: OneOrMany,
    #[serde(default)]
    placeholders: Vec<String>,
    /// A string, not an enum, so that a bad value is reported under its key.
    missing: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountyFile {
    column: OneOrMany,
    #[serde(rename = "match")]
    matched_by: CountyMatchFile,
    #[serde(default)]
    numeric: bool,
    reference: String,
    /// A second county column that must agree with the first (NC's
    /// `county_id` beside `county_desc`).
    agree: Option<CountyAgreeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountyAgreeFile {
    column: OneOrMany,
    #[serde(rename = "match")]
    matched_by: CountyMatchFile,
    #[serde(default)]
    numeric: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CountyMatchFile {
    Name,
    Code,
}

impl From<CountyMatchFile> for CountyMatch {
    fn from(m: CountyMatchFile) -> CountyMatch {
        match m {
            CountyMatchFile::Name => CountyMatch::Name,
            CountyMatchFile::Code => CountyMatch::Code,
        }
    }
}

/// `[voter_id]`, checked.
struct VoterId {
    column: String,
    alternatives: Vec<String>,
    missing: MissingVoterId,
    placeholders: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DateFile {
    column: OneOrMany,
    /// One format, or one per alternative column.
    format: OneOrMany,
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
    column: OneOrMany,
    /// `"sensitive"` (the default) or `"insensitive"`: whether `dem` matches
    /// the code `DEM`. A string, so that a bad value is named under its key.
    case: Option<String>,
    /// The code table inline; or
    codes: Option<Vec<CodeFile>>,
    /// a `code,label` CSV, relative to the layout file.
    codes_file: Option<String>,
    fallback: String,
    blank: Option<String>,
    #[serde(default)]
    map: HashMap<String, String>,
    #[serde(default)]
    numeric: bool,
    /// Keep only the value's first run of digits before `numeric` (PA zone
    /// codes spelled `CG14`, `SE00046`).
    #[serde(default)]
    digits_only: bool,
    /// `"county"`: the dimension nests in the county; `codes_file` lists
    /// `county,code,label`.
    within: Option<String>,
    /// Leave the dimension out, silently, when `codes_file` cannot be read
    /// (a list only some offices supply, like NC's precincts).
    #[serde(default)]
    optional: bool,
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
    let (delimiter, auto_delimiter) = check.format()?;
    let voter_id = check.voter_id(&file.voter_id)?;
    let county = check.county(&file.county, read_reference)?;
    let years = check.years(file.birth_year.as_ref(), file.registration_date.as_ref())?;
    let coded = check.dimensions(
        &file.dimensions,
        file.absent.as_ref(),
        &county.counties,
        read_reference,
    )?;
    let history = file.history.map(|h| h.validate(origin)).transpose()?;
    if matches!(
        history.as_ref().map(|h| &h.source),
        Some(crate::HistorySource::Columns(_))
    ) && !file.format.header
    {
        return Err(check.invalid(
            "history.source",
            "in-file history finds election columns by header name: the file needs a header".into(),
        ));
    }
    Ok(Layout {
        name: file.name,
        description: file.description,
        origin: origin.to_owned(),
        format: Format {
            delimiter,
            auto_delimiter,
            quoting: file.format.quoting,
            header: file.format.header,
            encoding: file.format.encoding,
            columns: file.format.columns,
            optional_columns: file.format.optional_columns,
        },
        voter_id: voter_id.column,
        voter_id_alternatives: voter_id.alternatives,
        voter_id_placeholders: voter_id.placeholders,
        missing_voter_id: voter_id.missing,
        county,
        birth_year: years.birth_year,
        registration_date: years.registration_date,
        first_registration_year: years.first_registration_year,
        min_birth_year: years.min_birth_year,
        coded,
        history,
        elections: Vec::new(),
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

    /// `[format]`: returns the delimiter byte, and whether it is `auto`
    /// (then the byte is a comma, what `synth` writes).
    fn format(&self) -> Result<(u8, bool), LayoutError> {
        let f = self.format;
        let delimiter = match f.delimiter.as_bytes() {
            b"auto" => None,
            [b] if *b != b'"' && *b != b'\n' && *b != b'\r' => Some(*b),
            _ => {
                return Err(self.invalid(
                    "format.delimiter",
                    format!(
                        "must be \"auto\" or exactly one byte other than a quote or newline, got {:?}",
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
        if f.header && !f.optional_columns.is_empty() {
            return Err(self.invalid(
                "format.optional_columns",
                "only for a file without a header (with one, columns are found by name)".into(),
            ));
        }
        let mut seen = HashSet::new();
        for c in f.columns.iter().chain(&f.optional_columns) {
            if !seen.insert(c.to_ascii_lowercase()) {
                return Err(self.invalid("format.columns", format!("column `{c}` appears twice")));
            }
        }
        Ok((delimiter.unwrap_or(b','), delimiter.is_none()))
    }

    /// The source column names at `key`, in order of preference. Without a
    /// header, each must be one of the positional names in `format.columns`.
    fn columns(&self, key: &str, columns: &OneOrMany) -> Result<Vec<String>, LayoutError> {
        let names = columns.as_slice();
        if names.is_empty() {
            return Err(self.invalid(key, "must name a column".into()));
        }
        let mut seen = HashSet::new();
        for column in names {
            self.column(key, column)?;
            if !seen.insert(column.trim().to_ascii_lowercase()) {
                return Err(self.invalid(key, format!("column `{column}` is listed twice")));
            }
        }
        Ok(names.to_vec())
    }

    /// One source column name at `key`.
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
    fn voter_id(&self, v: &VoterIdFile) -> Result<VoterId, LayoutError> {
        let mut columns = self.columns("voter_id.column", &v.column)?;
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
        Ok(VoterId {
            column: columns.remove(0),
            alternatives: columns,
            missing,
            placeholders,
        })
    }

    /// `[county]`, with its reference list read and parsed.
    fn county(
        &self,
        c: &CountyFile,
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<CountySpec, LayoutError> {
        let mut columns = self.columns("county.column", &c.column)?;
        let agree = match &c.agree {
            Some(a) => {
                let mut columns = self.columns("county.agree.column", &a.column)?;
                Some(CountyAgree {
                    column: columns.remove(0),
                    alternatives: columns,
                    matched_by: a.matched_by.into(),
                    numeric: a.numeric,
                })
            }
            None => None,
        };
        let reference_text = read_reference(&c.reference)?;
        Ok(CountySpec {
            column: columns.remove(0),
            alternatives: columns,
            matched_by: c.matched_by.into(),
            numeric: c.numeric,
            agree,
            counties: parse_counties(&reference_text, &c.reference)?,
        })
    }

    /// A date section at `key`: its column and format.
    fn date(&self, key: &str, d: &DateFile) -> Result<DateSpec, LayoutError> {
        let columns = self.columns(&format!("{key}.column"), &d.column)?;
        let formats = d.format.as_slice();
        if formats.len() != 1 && formats.len() != columns.len() {
            return Err(self.invalid(
                &format!("{key}.format"),
                format!(
                    "give one format, or one per column ({} columns, {} formats)",
                    columns.len(),
                    formats.len()
                ),
            ));
        }
        let mut sources = Vec::with_capacity(columns.len());
        for (i, column) in columns.into_iter().enumerate() {
            let text = &formats[i.min(formats.len() - 1)];
            let format = DateFormat::parse(text).map_err(|m| {
                let at = if formats.len() == 1 {
                    String::new()
                } else {
                    format!("[{i}]")
                };
                self.invalid(&format!("{key}.format{at}"), m)
            })?;
            sources.push((column, format));
        }
        let (column, format) = sources.remove(0);
        Ok(DateSpec {
            column,
            format,
            alternatives: sources,
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

    /// `[dimensions.*]` and `[absent]`: every standard coded dimension is
    /// defined or declared absent, never both; any other name is the
    /// layout's own dimension.
    fn dimensions(
        &self,
        dims: &BTreeMap<String, DimensionFile>,
        absent: Option<&AbsentFile>,
        counties: &[County],
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<Vec<CodedColumn>, LayoutError> {
        let absent: &[String] = absent.map_or(&[], |a| &a.dimensions);
        self.absent(dims, absent)?;
        for name in dims.keys() {
            self.dimension_name(name)?;
        }
        if dims.len() > crate::MAX_CODED {
            return Err(self.invalid(
                "dimensions",
                format!(
                    "{} coded dimensions; at most {} are supported",
                    dims.len(),
                    crate::MAX_CODED
                ),
            ));
        }
        let mut coded = Vec::new();
        for name in crate::STANDARD_CODED {
            match dims.get(name) {
                Some(d) => coded.extend(self.coded_column(name, d, counties, read_reference)?),
                None if absent.iter().any(|a| a == name) => {}
                None => {
                    return Err(self.invalid(
                        &format!("dimensions.{name}"),
                        format!(
                            "missing: define it, or list \"{name}\" under [absent] dimensions if the file does not record it"
                        ),
                    ));
                }
            }
        }
        for (name, d) in dims {
            if !crate::STANDARD_CODED.contains(&name.as_str()) {
                coded.extend(self.coded_column(name, d, counties, read_reference)?);
            }
        }
        Ok(coded)
    }

    /// `[absent] dimensions`: standard coded names only, none also defined.
    fn absent(
        &self,
        dims: &BTreeMap<String, DimensionFile>,
        absent: &[String],
    ) -> Result<(), LayoutError> {
        for name in absent {
            if !crate::STANDARD_CODED.contains(&name.as_str()) {
                return Err(self.invalid(
                    "absent.dimensions",
                    format!(
                        "`{name}` is not a standard coded dimension (one of: {})",
                        crate::STANDARD_CODED.join(", ")
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
        Ok(())
    }

    /// A `[dimensions.NAME]` name: the pattern, and not a derived dimension.
    fn dimension_name(&self, name: &str) -> Result<(), LayoutError> {
        let key = format!("dimensions.{name}");
        if !crate::valid_dimension_name(name) {
            return Err(self.invalid(
                &key,
                format!(
                    "a dimension name is `[a-z][a-z0-9_]*`, at most {} characters",
                    crate::MAX_NAME_LEN
                ),
            ));
        }
        if name.starts_with(crate::VOTE_PREFIX) {
            return Err(self.invalid(
                &key,
                format!(
                    "`{}…` names an election's dimension (`[[dataset.election]]` in the config)",
                    crate::VOTE_PREFIX
                ),
            ));
        }
        if crate::RESERVED_NAMES.contains(&name) {
            return Err(self.invalid(
                &key,
                format!(
                    "`{name}` is derived by rollcall ([county], [birth_year], [registration_date]), not a coded dimension"
                ),
            ));
        }
        Ok(())
    }

    /// One `[dimensions.NAME]`: its column, codes, fallback, blank, map and
    /// nesting; `None` for an `optional` one whose list is not there.
    fn coded_column(
        &self,
        name: &str,
        d: &DimensionFile,
        counties: &[County],
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<Option<CodedColumn>, LayoutError> {
        let key = format!("dimensions.{name}");
        let mut columns = self.columns(&format!("{key}.column"), &d.column)?;
        let case_insensitive = match d.case.as_deref() {
            None | Some("sensitive") => false,
            Some("insensitive") => true,
            Some(other) => {
                return Err(self.invalid(
                    &format!("{key}.case"),
                    format!("must be \"sensitive\" or \"insensitive\", got {other:?}"),
                ));
            }
        };
        if d.optional && d.codes_file.is_none() {
            return Err(self.invalid(
                &format!("{key}.optional"),
                "only a dimension with a codes_file can be optional".into(),
            ));
        }
        if d.optional
            && let Some(file) = &d.codes_file
            && read_reference(file).is_err()
        {
            return Ok(None);
        }
        let (codes, within) = match d.within.as_deref() {
            None => (self.code_table(&key, d, read_reference)?, None),
            Some("county") => {
                let (codes, nested) = self.nested_table(&key, d, counties, read_reference)?;
                (codes, Some(nested))
            }
            Some(other) => {
                return Err(self.invalid(
                    &format!("{key}.within"),
                    format!("`{other}`: only \"county\" can hold a dimension"),
                ));
            }
        };
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
        if case_insensitive {
            self.distinct_ignoring_case(&key, &codes, &d.map)?;
        }
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
        Ok(Some(CodedColumn {
            name: name.to_owned(),
            column: columns.remove(0),
            alternatives: columns,
            case_insensitive,
            within: within
                .map(|pairs| nested_pairs(pairs, counties.len(), &[Some(fallback), blank])),
            codes,
            fallback,
            blank,
            map: d.map.clone(),
            numeric: d.numeric,
            digits_only: d.digits_only,
        }))
    }

    /// The code table and the listed `(county, code)` pairs of a
    /// `within = "county"` dimension: its `codes_file` lists
    /// `county,code,label` (the county by its code or name in the county
    /// list). The codes are the distinct codes in file order (the label of
    /// their first line), then the fallback if the file does not list it.
    fn nested_table(
        &self,
        key: &str,
        d: &DimensionFile,
        counties: &[County],
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<(Vec<Code>, ListedPairs), LayoutError> {
        let (Some(file), None) = (&d.codes_file, &d.codes) else {
            return Err(self.invalid(
                &format!("{key}.codes_file"),
                "a dimension within the county needs a codes_file listing county,code,label".into(),
            ));
        };
        let text = read_reference(file)?;
        let lines = parse_nested_csv(&text, file, counties)?;
        let mut table: Vec<CodeFile> = Vec::new();
        let mut pairs = Vec::with_capacity(lines.len());
        for (county, code, label) in lines {
            let i = match table.iter().position(|c| c.code == code) {
                Some(i) => i,
                None => {
                    table.push(CodeFile { code, label });
                    table.len() - 1
                }
            };
            pairs.push((county, i));
        }
        if !table.iter().any(|c| c.code == d.fallback) {
            table.push(CodeFile {
                code: d.fallback.clone(),
                label: NOT_LISTED_LABEL.to_owned(),
            });
        }
        Ok((self.codes(&format!("{key}.codes_file"), &table)?, pairs))
    }

    /// With `case = "insensitive"`, no two codes (or `map` keys) may differ
    /// only in case: a value would match both.
    fn distinct_ignoring_case(
        &self,
        key: &str,
        codes: &[Code],
        map: &HashMap<String, String>,
    ) -> Result<(), LayoutError> {
        let mut seen = HashMap::new();
        let keys = codes
            .iter()
            .map(|c| c.code.as_str())
            .chain(map.keys().map(|k| k.trim()));
        for k in keys {
            if let Some(other) = seen.insert(k.to_ascii_uppercase(), k)
                && other != k
            {
                return Err(self.invalid(
                    &format!("{key}.case"),
                    format!("`{other}` and `{k}` differ only in case, so \"insensitive\" cannot tell them apart"),
                ));
            }
        }
        Ok(())
    }

    /// The code table of `KEY`: `codes` inline or `codes_file`, exactly one.
    fn code_table(
        &self,
        key: &str,
        d: &DimensionFile,
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<Vec<Code>, LayoutError> {
        match (&d.codes, &d.codes_file) {
            (Some(codes), None) => self.codes(key, codes),
            (None, Some(file)) => {
                let text = read_reference(file)?;
                let rows = parse_code_csv(&text, file)?;
                self.codes(&format!("{key}.codes_file"), &rows)
            }
            _ => Err(self.invalid(
                &format!("{key}.codes"),
                "give exactly one of `codes` (inline) and `codes_file` (a code,label CSV)".into(),
            )),
        }
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

fn join_codes(codes: &[Code]) -> String {
    codes
        .iter()
        .map(|c| c.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A nested dimension's listed pairs: (index into the county list, index
/// into its codes), in file order.
type ListedPairs = Vec<(u16, usize)>;

/// The label of a nested dimension's fallback code when its file does not
/// list it.
pub const NOT_LISTED_LABEL: &str = "Not in the county's list";

/// The valid pairs of a nested dimension: the listed ones by county (file
/// order within a county), then in each county the `always` codes it does
/// not list.
fn nested_pairs(listed: ListedPairs, counties: usize, always: &[Option<usize>]) -> Nested {
    let mut pairs = Vec::with_capacity(listed.len() + counties);
    let mut by_county: Vec<Vec<u8>> = vec![Vec::new(); counties];
    for (county, code) in listed {
        by_county[usize::from(county)].push(code as u8);
    }
    for (county, codes) in by_county.iter_mut().enumerate() {
        for code in always.iter().flatten() {
            if !codes.contains(&(*code as u8)) {
                codes.push(*code as u8);
            }
        }
        pairs.extend(codes.iter().map(|&c| (county as u16, c)));
    }
    Nested { pairs }
}

/// Parses a `county,code,label` list with a header line (BOM allowed): the
/// county as an index into `counties` (matched by code or name, ignoring
/// case), the code trimmed. A pair listed twice is an error.
fn parse_nested_csv(
    text: &str,
    path: &str,
    counties: &[County],
) -> Result<Vec<(u16, String, String)>, LayoutError> {
    let err = |line: usize, message: String| LayoutError::Reference {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = strip_bom(text).lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().eq_ignore_ascii_case("county,code,label") => {}
        _ => return Err(err(1, "expected the header `county,code,label`".into())),
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, ',');
        let (Some(county), Some(code), Some(label)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(err(i + 1, "expected `county,code,label`".into()));
        };
        let county = county.trim().trim_matches('"');
        let Some(c) = counties.iter().position(|c| {
            c.code.eq_ignore_ascii_case(county) || c.name.eq_ignore_ascii_case(county)
        }) else {
            return Err(err(
                i + 1,
                format!("county `{county}` is not in the county list"),
            ));
        };
        let code = code.trim().to_owned();
        if !seen.insert((c, code.clone())) {
            return Err(err(i + 1, format!("`{county},{code}` appears twice")));
        }
        out.push((c as u16, code, label.trim().trim_matches('"').to_owned()));
    }
    Ok(out)
}

/// Parses a `code,label` code table with a header line (a UTF-8 BOM, as
/// Excel writes, is skipped). Codes are checked by [`Check::codes`].
fn parse_code_csv(text: &str, path: &str) -> Result<Vec<CodeFile>, LayoutError> {
    let err = |line: usize, message: String| LayoutError::Reference {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = strip_bom(text).lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().eq_ignore_ascii_case("code,label") => {}
        _ => return Err(err(1, "expected the header `code,label`".into())),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let Some((code, label)) = line.split_once(',') else {
            return Err(err(i + 1, "expected `code,label`".into()));
        };
        out.push(CodeFile {
            code: code.trim().to_owned(),
            label: label.trim().trim_matches('"').to_owned(),
        });
    }
    Ok(out)
}

/// `text` without a leading UTF-8 byte-order mark.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Parses a `code,name` county list with a header line. A UTF-8 byte-order
/// mark before the header is skipped: Excel writes one when it saves CSV.
fn parse_counties(text: &str, path: &str) -> Result<Vec<County>, LayoutError> {
    let err = |line: usize, message: String| LayoutError::Reference {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = strip_bom(text).lines().enumerate();
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
