//! Voter-file layouts and reference data.
//!
//! A *layout* is a TOML file under `config/layouts/` that describes one state's
//! voter file: how to split it (delimiter, quoting, header), which source
//! columns feed which canonical column, how dates are written, which values are
//! sentinels or masks, and the code table of every coded dimension. County lists
//! come from CSV files under `config/reference/`.
//!
//! Everything downstream takes its *public domains* from here: ingestion maps
//! values onto these tables, and the query server enumerates groups from them.
//! Nothing in this crate ever looks at voter data.
//!
//! ```text
//! config/layouts/nc.toml ──parse──▶ spec::LayoutFile ──validate──▶ Layout
//! config/reference/*.csv ──────────────────────────────────────────▲
//! ```

mod date;
mod error;
mod history;
mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use date::{DateFormat, SimpleDate};
pub use error::LayoutError;
pub use history::{
    CATEGORIES, DID_NOT_VOTE, Election, ElectionType, History, HistoryColumns, HistoryFile,
    HistorySource, MAX_ELECTIONS, NOT_REGISTERED, VOTE_PREFIX,
};
pub use spec::NOT_LISTED_LABEL;
pub use spec::{Encoding, Quoting};

/// The standard columns written to Parquet, in the order they are written;
/// a layout's own dimensions follow them (see [`Layout::output_columns`]).
pub const CANONICAL_COLUMNS: [&str; 9] = [
    "county",
    "birth_year",
    "gender",
    "race",
    "ethnicity",
    "party",
    "status",
    "registration_year",
    "congressional_district",
];

/// The dimension names that keep one meaning in every layout. `county`,
/// `age_band` (from the birth year) and `registration_year` are derived; the
/// others are coded dimensions like a state's own.
pub const STANDARD_DIMENSIONS: [&str; 9] = [
    "county",
    "age_band",
    "gender",
    "race",
    "ethnicity",
    "party",
    "status",
    "registration_year",
    "congressional_district",
];

/// The standard coded dimensions: a layout defines each or lists it under
/// `[absent]`, so a forgotten one is an error rather than a silent gap.
pub const STANDARD_CODED: [&str; 6] = [
    "gender",
    "race",
    "ethnicity",
    "party",
    "status",
    "congressional_district",
];

/// Names a coded dimension may not take: the derived dimensions and the
/// Parquet columns they come from.
pub const RESERVED_NAMES: [&str; 4] = ["county", "age_band", "registration_year", "birth_year"];

/// The most coded dimensions one layout may declare (standard and own): the
/// spilled row of an ingest has a fixed slot per coded dimension.
pub const MAX_CODED: usize = 16;

/// The longest dimension name.
pub const MAX_NAME_LEN: usize = 40;

/// Whether `name` is a valid dimension name: `[a-z][a-z0-9_]*`, at most
/// [`MAX_NAME_LEN`] bytes. Names are keys in queries, answers and Parquet
/// column names, so they stay plain ASCII.
pub fn valid_dimension_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// One entry of a code table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The code as written to Parquet and used in queries (e.g. `DEM`).
    pub code: String,
    /// Human-readable label (e.g. `Democratic`).
    pub label: String,
}

/// A coded dimension as the layout declares it.
#[derive(Debug, Clone)]
pub struct CodedColumn {
    /// The dimension's name, also its Parquet column (`party`,
    /// `state_house_district`).
    pub name: String,
    /// Source column name in the voter file.
    pub column: String,
    /// Other names of the source column, tried in order when a file's
    /// header lacks `column` (another vintage of the state's file).
    pub alternatives: Vec<String>,
    /// Match codes (and `map` keys) ignoring ASCII case: `dem` is `DEM`.
    pub case_insensitive: bool,
    /// The code table, in the order answers list them. Never empty.
    pub codes: Vec<Code>,
    /// Index into `codes` of the code that values outside the table become.
    pub fallback: usize,
    /// Index into `codes` of the code that a blank value becomes; `None` means a
    /// blank is an unknown code like any other (it becomes the fallback and is
    /// counted).
    pub blank: Option<usize>,
    /// Source value → code, applied before the table lookup (FL ethnicity is
    /// derived from the race column this way).
    pub map: HashMap<String, String>,
    /// Normalise integers before lookup: `01`, `1` and `1.0` are all `1`.
    pub numeric: bool,
    /// Keep only the value's first run of ASCII digits (`CG14` → `14`,
    /// `4.0` → `4`): for zone codes some counties spell with letters. A
    /// value without digits is then blank.
    pub digits_only: bool,
    /// For a dimension declared `within = "county"`: which codes are valid
    /// in which county. `None` for a dimension valid everywhere.
    pub within: Option<Nested>,
}

/// The valid `(county, code)` pairs of a dimension nested in the county
/// (precincts, wards), from its `county,code,label` reference file. The
/// fallback and blank codes are valid in every county, so a value can
/// always be counted somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// (index into the county list, index into the dimension's codes),
    /// by county in list order, then in file order; the fallback (and
    /// blank) code last in each county that does not list it.
    pub pairs: Vec<(u16, u8)>,
}

impl Nested {
    /// Whether `code` (an index into the codes) is valid in `county`.
    pub fn contains(&self, county: u16, code: u8) -> bool {
        self.pairs.contains(&(county, code))
    }
}

impl CodedColumn {
    /// The codes of the table, in order.
    pub fn code_strs(&self) -> impl Iterator<Item = &str> {
        self.codes.iter().map(|c| c.code.as_str())
    }
}

/// One county of the reference list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct County {
    /// The code the state uses (`1`, `ALA`).
    pub code: String,
    /// The name written to Parquet (`NEW HANOVER`, `Miami-Dade`).
    pub name: String,
}

/// How a county value in the file is matched against the reference list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountyMatch {
    /// Match the reference list's `name` column (case-insensitive).
    Name,
    /// Match the reference list's `code` column (case-insensitive).
    Code,
}

/// Where the county comes from and the public list of counties.
#[derive(Debug, Clone)]
pub struct CountySpec {
    /// Source column name.
    pub column: String,
    /// Other names of the source column, tried in order.
    pub alternatives: Vec<String>,
    /// Match by name or by code.
    pub matched_by: CountyMatch,
    /// Normalise integer codes (`01` → `1`) before matching.
    pub numeric: bool,
    /// A second column naming the county the other way (NC's `county_id`
    /// beside `county_desc`): it must name the same county, or the line is
    /// rejected as `county_mismatch`.
    pub agree: Option<CountyAgree>,
    /// The reference list, in its file order (the order answers list counties).
    pub counties: Vec<County>,
}

/// The second county column of [`CountySpec::agree`].
#[derive(Debug, Clone)]
pub struct CountyAgree {
    /// Source column name.
    pub column: String,
    /// Other names of the source column, tried in order.
    pub alternatives: Vec<String>,
    /// Whether its values are the list's names or codes.
    pub matched_by: CountyMatch,
    /// Normalise integer codes before matching.
    pub numeric: bool,
}

/// A date (or year) column.
#[derive(Debug, Clone)]
pub struct DateSpec {
    /// Source column name.
    pub column: String,
    /// How the value is written.
    pub format: DateFormat,
    /// Other names of the source column, each with its own format, tried in
    /// order (`Birthyear` as `YYYY`, else `Birthdate` as `MM/DD/YYYY`).
    pub alternatives: Vec<(String, DateFormat)>,
    /// Values that mean "unknown" (e.g. `01/01/1900`): null, silently.
    pub sentinels: Vec<String>,
    /// Masked values (e.g. `##/##/####`): null, silently.
    pub masks: Vec<String>,
}

/// The file format.
#[derive(Debug, Clone)]
pub struct Format {
    /// Field delimiter, one byte. With `delimiter = "auto"` a comma: what
    /// `synth` writes; ingest picks each file's own (see `auto_delimiter`).
    pub delimiter: u8,
    /// `delimiter = "auto"`: each file's first line decides between tab,
    /// pipe and comma, and the manifest records the choice.
    pub auto_delimiter: bool,
    /// Whether fields may be wrapped in double quotes.
    pub quoting: Quoting,
    /// Whether the first line of each file is a header.
    pub header: bool,
    /// How to decode the bytes of kept text fields.
    pub encoding: Encoding,
    /// Column names in file order. For header-less files these name the
    /// fields by position; for files with a header they document the usual
    /// layout (and `synth` writes them).
    pub columns: Vec<String>,
    /// For header-less files: columns a file may have after `columns` (a
    /// newer export's, like PA's 2024 `registration_method`). Each file's
    /// first line decides how many of them it has. Never read.
    pub optional_columns: Vec<String>,
}

/// What ingestion does with a line whose voter id is blank or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingVoterId {
    /// Reject the line (`missing_voter_id`). The default: such lines cannot be
    /// de-duplicated, so a person listed twice without an id would count twice.
    #[default]
    Reject,
    /// Keep the line as a voter of its own, never de-duplicated with any
    /// other line.
    Keep,
}

/// A validated layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Short name (`nc`).
    pub name: String,
    /// One line saying what file this describes.
    pub description: String,
    /// Where the layout came from (a path, or `builtin:nc`).
    pub origin: String,
    /// How to split the file.
    pub format: Format,
    /// Source column of the voter id, used in memory for de-duplication only.
    pub voter_id: String,
    /// Other names of the voter id column, tried in order.
    pub voter_id_alternatives: Vec<String>,
    /// Ids the state writes to mean "no id" (`0`, `NONE`), trimmed; matched
    /// after trimming, ignoring ASCII case. A blank id is always missing.
    pub voter_id_placeholders: Vec<String>,
    /// What to do with a line whose voter id is blank or a placeholder.
    pub missing_voter_id: MissingVoterId,
    /// County column and reference list.
    pub county: CountySpec,
    /// Birth year (or full birth date, of which only the year is kept).
    pub birth_year: Option<DateSpec>,
    /// Registration date: its year is kept, the full date ranks duplicates.
    pub registration_date: Option<DateSpec>,
    /// First public registration year; earlier years are treated as unknown.
    pub first_registration_year: i16,
    /// Earliest plausible birth year; earlier years are treated as unknown.
    pub min_birth_year: i16,
    /// The coded dimensions this layout has: the standard ones in
    /// [`STANDARD_CODED`] order, then the layout's own by name.
    pub coded: Vec<CodedColumn>,
    /// Where the voting history is and how its codes read (`[history]`).
    pub history: Option<History>,
    /// The elections chosen for this dataset ([`Layout::with_elections`]):
    /// each is a dimension `vote_<id>` and a Parquet column of that name.
    pub elections: Vec<Election>,
    /// See [`Layout::digest`].
    digest: String,
}

/// A source column the layout reads: the layout key that names it and its
/// names in order of preference (for errors and `rollcall layout check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn<'a> {
    /// The layout key, e.g. `dimensions.status.column`.
    pub key: String,
    /// The column's name, then its alternatives.
    pub names: Vec<&'a str>,
}

impl Layout {
    /// Every source column the layout reads, by layout key, in the order
    /// ingest looks them up.
    pub fn source_columns(&self) -> Vec<SourceColumn<'_>> {
        fn names<'a>(first: &'a str, rest: &'a [String]) -> Vec<&'a str> {
            std::iter::once(first)
                .chain(rest.iter().map(String::as_str))
                .collect()
        }
        let mut out = vec![
            SourceColumn {
                key: "voter_id.column".into(),
                names: names(&self.voter_id, &self.voter_id_alternatives),
            },
            SourceColumn {
                key: "county.column".into(),
                names: names(&self.county.column, &self.county.alternatives),
            },
        ];
        if let Some(a) = &self.county.agree {
            out.push(SourceColumn {
                key: "county.agree.column".into(),
                names: names(&a.column, &a.alternatives),
            });
        }
        for (key, date) in [
            ("birth_year.column", &self.birth_year),
            ("registration_date.column", &self.registration_date),
        ] {
            if let Some(d) = date {
                out.push(SourceColumn {
                    key: key.into(),
                    names: std::iter::once(d.column.as_str())
                        .chain(d.alternatives.iter().map(|(c, _)| c.as_str()))
                        .collect(),
                });
            }
        }
        for c in &self.coded {
            out.push(SourceColumn {
                key: format!("dimensions.{}.column", c.name),
                names: names(&c.column, &c.alternatives),
            });
        }
        out
    }

    /// The coded column named `name`, if the layout records it.
    pub fn coded(&self, name: &str) -> Option<&CodedColumn> {
        self.coded.iter().find(|c| c.name == name)
    }

    /// SHA-256 (lowercase hex) of the text this layout was loaded from: the
    /// TOML, then every reference file in the order validation reads them.
    /// Each text enters the hash as its length (8 bytes, little-endian) then
    /// its bytes, so no text can run into the next. A built-in layout and a
    /// file with the same text give the same digest; editing the layout or a
    /// county list gives another. Edits to a loaded `Layout` in memory do not
    /// change it.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The columns this layout produces, in Parquet order: the standard
    /// ones it records in [`CANONICAL_COLUMNS`] order, then its own coded
    /// dimensions. This is the allow-list: ingest writes these and nothing
    /// else.
    pub fn output_columns(&self) -> Vec<&str> {
        let standard = CANONICAL_COLUMNS.into_iter().filter(|name| match *name {
            "county" => true,
            "birth_year" => self.birth_year.is_some(),
            "registration_year" => self.registration_date.is_some(),
            other => self.coded(other).is_some(),
        });
        let own = self
            .coded
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| !STANDARD_CODED.contains(n));
        let mut out: Vec<&str> = standard.chain(own).collect();
        out.extend(self.elections.iter().map(|e| e.dimension.as_str()));
        out
    }

    /// This layout with the config's `elections` (`[[dataset.election]]`)
    /// as dimensions. Fails when there are elections but no `[history]`,
    /// more than [`MAX_ELECTIONS`], or two with one id or one (date, type).
    /// The error is the config's to name: (index of the election, message).
    pub fn with_elections(mut self, elections: Vec<Election>) -> Result<Layout, (usize, String)> {
        if !elections.is_empty() && self.history.is_none() {
            return Err((
                0,
                format!(
                    "layout `{}` has no [history] section: it cannot read voting history",
                    self.name
                ),
            ));
        }
        if elections.len() > MAX_ELECTIONS {
            return Err((
                MAX_ELECTIONS,
                format!("at most {MAX_ELECTIONS} elections per dataset"),
            ));
        }
        let in_file = matches!(
            self.history.as_ref().map(|h| &h.source),
            Some(HistorySource::Columns(_))
        );
        // In-file votes ride in the row's code slots after the coded
        // dimensions (ingest's `Row::codes`): only so many fit.
        let room = MAX_CODED.saturating_sub(self.coded.len());
        if in_file && elections.len() > room {
            return Err((
                room,
                format!(
                    "layout `{}` keeps voting history in the voter file's columns, which share \
                     {MAX_CODED} code slots with its {} coded dimensions: at most {room} elections",
                    self.name,
                    self.coded.len()
                ),
            ));
        }
        for (i, e) in elections.iter().enumerate() {
            if let Some(j) = elections[..i].iter().position(|o| o.id == e.id) {
                return Err((i, format!("id `{}` is also election {j}'s", e.id)));
            }
            if let Some(j) = elections[..i]
                .iter()
                .position(|o| o.date == e.date && o.kind == e.kind)
            {
                return Err((i, format!("the same date and type as election {j}")));
            }
        }
        self.elections = elections;
        Ok(self)
    }

    /// Loads a layout by name or by path to a TOML file: as
    /// [`Layout::resolve_in`] without a folder of the caller's own.
    pub fn resolve(name_or_path: &str) -> Result<Layout, LayoutError> {
        Layout::resolve_in(name_or_path, None)
    }

    /// Loads a layout by name (`nc`, `mn`) or by path to a TOML file (any
    /// argument with a `/` or ending in `.toml`).
    ///
    /// A name is looked up as `<dir>/<name>.toml` in, in order: `layouts_dir`
    /// (`rollcall ingest --layouts-dir`), `$ROLLCALL_LAYOUTS`, and
    /// `<config_dir>/layouts`, where `config_dir` is `$ROLLCALL_CONFIG_DIR` or
    /// `./config`; then among the layouts compiled into the binary, so the
    /// shipped ones work from any directory.
    pub fn resolve_in(
        name_or_path: &str,
        layouts_dir: Option<&Path>,
    ) -> Result<Layout, LayoutError> {
        let looks_like_path = name_or_path.contains('/')
            || name_or_path.contains(std::path::MAIN_SEPARATOR)
            || name_or_path.ends_with(".toml");
        if looks_like_path {
            return Layout::from_file(Path::new(name_or_path));
        }
        let file = format!("{name_or_path}.toml");
        let dirs = layouts_dir
            .map(Path::to_path_buf)
            .into_iter()
            .chain(std::env::var_os("ROLLCALL_LAYOUTS").map(PathBuf::from))
            .chain(std::iter::once(config_dir().join("layouts")));
        for dir in dirs {
            let on_disk = dir.join(&file);
            if on_disk.is_file() {
                return Layout::from_file(&on_disk);
            }
        }
        match builtin::layout(name_or_path) {
            Some(text) => Layout::from_toml(
                text,
                &format!("builtin:{name_or_path}"),
                &builtin::read_reference,
            ),
            None => Err(LayoutError::UnknownLayout {
                name: name_or_path.to_owned(),
                known: builtin::NAMES.join(", "),
            }),
        }
    }

    /// Loads a layout from a TOML file; reference paths are relative to it.
    pub fn from_file(path: &Path) -> Result<Layout, LayoutError> {
        let text = std::fs::read_to_string(path).map_err(|e| LayoutError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Layout::from_toml(&text, &path.display().to_string(), &|rel| {
            let p = base.join(rel);
            std::fs::read_to_string(&p).map_err(|e| LayoutError::Reference {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        })
    }

    /// Parses and validates layout text. `read_reference` loads a reference
    /// file named in the layout.
    pub fn from_toml(
        text: &str,
        origin: &str,
        read_reference: &dyn Fn(&str) -> Result<String, LayoutError>,
    ) -> Result<Layout, LayoutError> {
        let file: spec::LayoutFile = toml::from_str(text).map_err(|e| LayoutError::Toml {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        // Every reference text validation reads, in its order, for the digest.
        let read = std::cell::RefCell::new(Vec::new());
        let recording = |rel: &str| {
            let text = read_reference(rel)?;
            read.borrow_mut().push(text.clone());
            Ok(text)
        };
        let mut layout = spec::validate(file, origin, &recording)?;
        layout.digest =
            digest(std::iter::once(text).chain(read.borrow().iter().map(String::as_str)));
        Ok(layout)
    }
}

/// SHA-256 over length-prefixed texts, as hex (see [`Layout::digest`]).
fn digest<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for text in texts {
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The configuration directory: `$ROLLCALL_CONFIG_DIR`, or `./config`.
pub fn config_dir() -> PathBuf {
    std::env::var_os("ROLLCALL_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"))
}

/// The layouts shipped in `config/`, compiled in as a fallback.
pub mod builtin {
    /// Names of the built-in layouts.
    pub const NAMES: [&str; 5] = ["nc", "oh", "fl", "mi", "pa"];

    /// The TOML text of a built-in layout.
    pub fn layout(name: &str) -> Option<&'static str> {
        Some(match name {
            "nc" => include_str!("../../../config/layouts/nc.toml"),
            "oh" => include_str!("../../../config/layouts/oh.toml"),
            "fl" => include_str!("../../../config/layouts/fl.toml"),
            "mi" => include_str!("../../../config/layouts/mi.toml"),
            "pa" => include_str!("../../../config/layouts/pa.toml"),
            _ => return None,
        })
    }

    /// [`reference`] as a layout's reader: an error for a file not built in
    /// (an `optional` dimension's list is then left out).
    pub fn read_reference(rel: &str) -> Result<String, crate::LayoutError> {
        reference(rel)
            .map(str::to_owned)
            .ok_or_else(|| crate::LayoutError::Reference {
                path: rel.to_owned(),
                message: "no such built-in reference file".to_owned(),
            })
    }

    /// A built-in reference file, by the relative path a layout names.
    pub fn reference(rel: &str) -> Option<&'static str> {
        let file = rel.rsplit('/').next()?;
        Some(match file {
            "nc_counties.csv" => include_str!("../../../config/reference/nc_counties.csv"),
            "oh_counties.csv" => include_str!("../../../config/reference/oh_counties.csv"),
            "fl_counties.csv" => include_str!("../../../config/reference/fl_counties.csv"),
            "nc_house_districts.csv" => {
                include_str!("../../../config/reference/nc_house_districts.csv")
            }
            "nc_senate_districts.csv" => {
                include_str!("../../../config/reference/nc_senate_districts.csv")
            }
            "mi_counties.csv" => include_str!("../../../config/reference/mi_counties.csv"),
            "mi_house_districts.csv" => {
                include_str!("../../../config/reference/mi_house_districts.csv")
            }
            "mi_senate_districts.csv" => {
                include_str!("../../../config/reference/mi_senate_districts.csv")
            }
            "pa_counties.csv" => include_str!("../../../config/reference/pa_counties.csv"),
            "pa_house_districts.csv" => {
                include_str!("../../../config/reference/pa_house_districts.csv")
            }
            "pa_senate_districts.csv" => {
                include_str!("../../../config/reference/pa_senate_districts.csv")
            }
            _ => return None,
        })
    }
}

/// Normalises an integer-looking code: `01` → `1`, `1.0` → `1`, ` 7 ` → `7`.
/// Anything else is returned trimmed and unchanged.
pub fn normalize_numeric(value: &str) -> std::borrow::Cow<'_, str> {
    let v = value.trim();
    let int_part = v.strip_suffix(".0").unwrap_or(v);
    if !int_part.is_empty() && int_part.bytes().all(|b| b.is_ascii_digit()) {
        let stripped = int_part.trim_start_matches('0');
        let s = if stripped.is_empty() { "0" } else { stripped };
        if s.len() == v.len() {
            return std::borrow::Cow::Borrowed(v);
        }
        return std::borrow::Cow::Owned(s.to_owned());
    }
    std::borrow::Cow::Borrowed(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_layouts_validate() {
        for name in builtin::NAMES {
            let layout = Layout::resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(layout.name, name);
            assert!(!layout.county.counties.is_empty());
        }
    }

    #[test]
    fn in_file_elections_fit_the_rows_code_slots() {
        let oh = Layout::resolve("oh").unwrap();
        let room = MAX_CODED - oh.coded.len();
        let elections = |n: usize| -> Vec<Election> {
            (0..n)
                .map(|i| Election::new(&format!("e{i}"), &format!("20{:02}-11-05", i), "general"))
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let fits = oh.clone().with_elections(elections(room)).unwrap();
        assert_eq!(fits.elections.len(), room);
        let (at, message) = oh.with_elections(elections(room + 1)).unwrap_err();
        assert_eq!(at, room);
        assert!(
            message.contains(&format!("at most {room} elections")),
            "{message}"
        );
        // A separate history file has no such limit below MAX_ELECTIONS.
        let nc = Layout::resolve("nc").unwrap();
        assert!(nc.with_elections(elections(room + 1)).is_ok());
    }

    #[test]
    fn county_counts_match_reference() {
        assert_eq!(Layout::resolve("nc").unwrap().county.counties.len(), 100);
        assert_eq!(Layout::resolve("oh").unwrap().county.counties.len(), 88);
        assert_eq!(Layout::resolve("fl").unwrap().county.counties.len(), 67);
        assert_eq!(Layout::resolve("mi").unwrap().county.counties.len(), 83);
        assert_eq!(Layout::resolve("pa").unwrap().county.counties.len(), 67);
    }

    #[test]
    fn ohio_declares_race_absent() {
        let oh = Layout::resolve("oh").unwrap();
        assert!(oh.coded("race").is_none());
        assert!(!oh.output_columns().contains(&"race"));
        assert!(oh.output_columns().contains(&"congressional_district"));
    }

    #[test]
    fn numeric_normalisation() {
        assert_eq!(normalize_numeric("01"), "1");
        assert_eq!(normalize_numeric("1.0"), "1");
        assert_eq!(normalize_numeric(" 12 "), "12");
        assert_eq!(normalize_numeric("00"), "0");
        assert_eq!(normalize_numeric("ALA"), "ALA");
    }

    fn nc_text() -> &'static str {
        builtin::layout("nc").unwrap()
    }

    fn load(text: &str) -> Result<Layout, LayoutError> {
        Layout::from_toml(text, "test", &|rel| builtin::read_reference(rel))
    }

    #[test]
    fn unknown_key_is_named() {
        let text = nc_text().replace("[voter_id]", "[voter_id]\ncolum = \"x\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("colum"), "{err}");
    }

    #[test]
    fn fallback_outside_table_is_named() {
        let text = nc_text().replace("fallback = \"OTH\"", "fallback = \"XYZ\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("dimensions.party.fallback"), "{err}");
    }

    #[test]
    fn two_byte_delimiter_is_named() {
        let text = nc_text().replace("delimiter = \"\\t\"", "delimiter = \"||\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("format.delimiter"), "{err}");
    }

    #[test]
    fn missing_dimension_must_be_declared_absent() {
        let oh = builtin::layout("oh").unwrap();
        let text = oh.replace(
            "dimensions = [\"gender\", \"race\", \"ethnicity\"]",
            "dimensions = [\"gender\", \"race\"]",
        );
        let err = Layout::from_toml(&text, "test", &|rel| builtin::read_reference(rel))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ethnicity"), "{err}");
    }

    #[test]
    fn bad_date_format_is_named() {
        let text = nc_text().replace("format = \"MM/DD/YYYY\"", "format = \"MM/DD\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("registration_date.format"), "{err}");
    }

    #[test]
    fn voter_id_defaults_reject_and_no_placeholders() {
        for name in builtin::NAMES {
            let layout = Layout::resolve(name).unwrap();
            assert_eq!(layout.missing_voter_id, MissingVoterId::Reject, "{name}");
            assert!(layout.voter_id_placeholders.is_empty(), "{name}");
        }
    }

    /// The NC layout with `extra` in place of its explicit `[voter_id]` defaults.
    fn with_voter_id(extra: &str) -> Result<Layout, LayoutError> {
        let defaults = "placeholders = []\nmissing = \"reject\"\n";
        assert!(nc_text().contains(defaults));
        load(&nc_text().replace(defaults, &format!("{extra}\n")))
    }

    #[test]
    fn voter_id_placeholders_and_missing_are_read() {
        let layout =
            with_voter_id("placeholders = [\" 0 \", \"none\"]\nmissing = \"keep\"").unwrap();
        assert_eq!(layout.voter_id_placeholders, ["0", "none"]);
        assert_eq!(layout.missing_voter_id, MissingVoterId::Keep);
        let layout = with_voter_id("missing = \"reject\"").unwrap();
        assert_eq!(layout.missing_voter_id, MissingVoterId::Reject);
    }

    #[test]
    fn bad_voter_id_keys_are_named() {
        for (extra, key) in [
            ("missing = \"drop\"", "voter_id.missing"),
            ("missing = \"Keep\"", "voter_id.missing"),
            ("missing = 1", "missing"),
            ("placeholders = \"0\"", "placeholders"),
            ("placeholders = [\"0\", \"  \"]", "voter_id.placeholders[1]"),
            (
                "placeholders = [\"NONE\", \" none\"]",
                "voter_id.placeholders[1]",
            ),
            ("placeholders = [\"NI\u{d1}O\"]", "voter_id.placeholders[0]"),
            ("placeholder = [\"0\"]", "placeholder"),
        ] {
            let err = with_voter_id(extra).unwrap_err().to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn digest_is_of_the_text_wherever_it_comes_from() {
        let builtin = Layout::resolve("nc").unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/layouts/nc.toml");
        let file = Layout::from_file(&path).unwrap();
        assert_ne!(builtin.origin, file.origin);
        assert_eq!(builtin.digest(), file.digest());
        assert_eq!(builtin.digest().len(), 64);
        assert!(
            builtin
                .digest()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let names: std::collections::HashSet<String> = builtin::NAMES
            .iter()
            .map(|n| Layout::resolve(n).unwrap().digest().to_owned())
            .collect();
        assert_eq!(
            names.len(),
            builtin::NAMES.len(),
            "each built-in layout has its own digest"
        );
    }

    #[test]
    fn digest_changes_with_the_layout_or_a_reference_file() {
        let base = load(nc_text()).unwrap();
        let edited = load(&nc_text().replace("fallback = \"OTH\"", "fallback = \"UNA\"")).unwrap();
        assert_ne!(base.digest(), edited.digest());
        let counties = builtin::reference("nc_counties.csv").unwrap();
        let fewer = counties.replace("\n100,YANCEY", "");
        assert_ne!(fewer, counties, "the test edits the list");
        let other = Layout::from_toml(nc_text(), "test", &|rel| {
            Ok(if rel.ends_with("nc_counties.csv") {
                fewer.clone()
            } else {
                builtin::read_reference(rel)?
            })
        })
        .unwrap();
        assert_eq!(other.county.counties.len(), 99);
        assert_ne!(base.digest(), other.digest());
        // The same texts, the same digest.
        assert_eq!(base.digest(), load(nc_text()).unwrap().digest());
    }

    #[test]
    fn nc_has_its_own_districts_after_the_standard_columns() {
        let nc = Layout::resolve("nc").unwrap();
        assert_eq!(nc.coded("state_house_district").unwrap().codes.len(), 121);
        assert_eq!(nc.coded("state_senate_district").unwrap().codes.len(), 51);
        let columns = nc.output_columns();
        assert_eq!(&columns[..9], CANONICAL_COLUMNS.as_slice());
        assert_eq!(
            &columns[9..],
            ["state_house_district", "state_senate_district"]
        );
    }

    /// The NC layout with one more dimension `[dimensions.NAME]` of `body`,
    /// reading `extra.csv` as `csv`.
    fn with_dimension(name: &str, body: &str, csv: &str) -> Result<Layout, LayoutError> {
        let text = format!("{}\n[dimensions.{name}]\n{body}\n", nc_text());
        let csv = csv.to_owned();
        Layout::from_toml(&text, "test", &|rel| {
            if rel.ends_with("extra.csv") {
                return Ok(csv.clone());
            }
            builtin::read_reference(rel)
        })
    }

    const WARD: &str = "column = \"ward_abbrv\"\nfallback = \"X\"\n";

    #[test]
    fn own_dimension_from_a_csv_with_a_bom() {
        let body = format!("{WARD}codes_file = \"../reference/extra.csv\"");
        let layout =
            with_dimension("ward", &body, "\u{feff}code,label\nW1,Ward 1\nX,None\n").unwrap();
        let ward = layout.coded("ward").unwrap();
        assert_eq!(ward.code_strs().collect::<Vec<_>>(), ["W1", "X"]);
        assert_eq!(ward.codes[0].label, "Ward 1");
        assert_eq!(layout.output_columns().last(), Some(&"ward"));
    }

    #[test]
    fn bad_dimension_names_are_named() {
        let body = format!("{WARD}codes = [{{ code = \"X\", label = \"x\" }}]");
        for name in [
            "Ward",
            "9ward",
            "ward-1",
            &"w".repeat(41),
            "age_band",
            "county",
        ] {
            let err = with_dimension(name, &body, "").unwrap_err().to_string();
            assert!(err.contains(&format!("dimensions.{name}")), "{name}: {err}");
        }
        assert!(with_dimension(&"w".repeat(40), &body, "").is_ok());
    }

    #[test]
    fn code_table_is_inline_or_a_file() {
        let both = format!(
            "{WARD}codes = [{{ code = \"X\", label = \"x\" }}]\ncodes_file = \"extra.csv\""
        );
        let err = with_dimension("ward", &both, "code,label\nX,x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dimensions.ward.codes"), "{err}");
        let err = with_dimension("ward", WARD, "").unwrap_err().to_string();
        assert!(err.contains("dimensions.ward.codes"), "{err}");
        let file = format!("{WARD}codes_file = \"extra.csv\"");
        let err = with_dimension("ward", &file, "code,name\nX,x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("code,label"), "{err}");
        let err = with_dimension("ward", &file, "code,label\nX,x\nX,y\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dimensions.ward.codes_file"), "{err}");
    }

    const PRECINCT: &str = "column = \"precinct_abbrv\"\nwithin = \"county\"\nfallback = \"NA\"\ncodes_file = \"extra.csv\"";

    #[test]
    fn nested_dimension_lists_valid_pairs() {
        let csv = "\u{feff}county,code,label\n2,P1,One\nALAMANCE,P2,Two\n1,P1,Uno\n";
        let layout = with_dimension("ward", PRECINCT, csv).unwrap();
        let p = layout.coded("ward").unwrap();
        // Distinct codes in file order (first label), then the fallback.
        assert_eq!(p.code_strs().collect::<Vec<_>>(), ["P1", "P2", "NA"]);
        assert_eq!(p.codes[0].label, "One");
        assert_eq!(p.codes[2].label, NOT_LISTED_LABEL);
        let nested = p.within.as_ref().unwrap();
        // By county (ALAMANCE is county 1, index 0), the fallback in each.
        assert_eq!(&nested.pairs[..4], &[(0, 1), (0, 0), (0, 2), (1, 0)]);
        assert_eq!(nested.pairs.len(), 3 + 100);
        assert!(nested.contains(1, 0) && !nested.contains(1, 1));
    }

    #[test]
    fn bad_nested_lists_are_named() {
        for (csv, want) in [
            ("code,label\nP1,x\n", "county,code,label"),
            ("county,code,label\nATLANTIS,P1,x\n", "ATLANTIS"),
            ("county,code,label\n1,P1,x\n1,P1,y\n", "line 3"),
        ] {
            let err = with_dimension("ward", PRECINCT, csv)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{csv}: {err}");
        }
        let inline = "column = \"precinct_abbrv\"\nwithin = \"county\"\nfallback = \"NA\"\ncodes = [{ code = \"NA\", label = \"x\" }]";
        let err = with_dimension("ward", inline, "").unwrap_err().to_string();
        assert!(err.contains("dimensions.ward.codes_file"), "{err}");
        let ward = PRECINCT.replace("\"county\"", "\"city\"");
        let err = with_dimension("ward", &ward, "county,code,label\n1,P1,x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dimensions.ward.within"), "{err}");
    }

    #[test]
    fn optional_dimension_without_its_list_is_left_out() {
        // The built-in NC layout has no precinct list: no precinct.
        assert!(Layout::resolve("nc").unwrap().coded("precinct").is_none());
        let body = format!("{PRECINCT}\noptional = true");
        let layout = Layout::from_toml(
            &format!("{}\n[dimensions.ward]\n{body}\n", nc_text()),
            "test",
            &|rel| {
                builtin::reference(rel)
                    .map(str::to_owned)
                    .ok_or_else(|| LayoutError::Reference {
                        path: rel.to_owned(),
                        message: "absent".into(),
                    })
            },
        )
        .unwrap();
        assert!(layout.coded("ward").is_none());
        let inline = format!("{WARD}codes = [{{ code = \"X\", label = \"x\" }}]\noptional = true");
        let err = with_dimension("ward", &inline, "").unwrap_err().to_string();
        assert!(err.contains("dimensions.ward.optional"), "{err}");
    }

    #[test]
    fn unknown_layout_lists_known() {
        let err = Layout::resolve("zz").unwrap_err().to_string();
        assert!(err.contains("nc, oh, fl, mi, pa"), "{err}");
    }

    #[test]
    fn a_name_is_found_in_the_layouts_dir_first() {
        let tmp = std::env::temp_dir().join(format!("layouts-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("layouts")).unwrap();
        std::fs::create_dir_all(tmp.join("reference")).unwrap();
        let nc = builtin::layout("nc")
            .unwrap()
            .replace("name = \"nc\"", "name = \"mn\"");
        std::fs::write(tmp.join("layouts/mn.toml"), nc).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/reference");
        for entry in std::fs::read_dir(shipped).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, tmp.join("reference").join(path.file_name().unwrap())).unwrap();
        }
        let dir = tmp.join("layouts");
        let mn = Layout::resolve_in("mn", Some(&dir)).unwrap();
        assert_eq!(mn.name, "mn");
        assert!(mn.origin.ends_with("layouts/mn.toml"), "{}", mn.origin);
        // Without the folder the name is unknown; built-in names still work.
        assert!(Layout::resolve_in("mn", None).is_err());
        assert_eq!(Layout::resolve_in("oh", Some(&dir)).unwrap().name, "oh");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
