//! Voting history: the `[history]` section of a layout (where a state keeps
//! who voted in which election, and how its method codes read), and the
//! elections a dataset's config chooses, each of which becomes a public
//! dimension `vote_<id>`.
//!
//! The values of every `vote_<id>` come from here alone: `did_not_vote`,
//! `not_registered` (registered after the election date), then the method
//! categories the layout's code table can produce, in [`CATEGORIES`] order.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::{DateFormat, Encoding, LayoutError, Quoting};

/// Every value a `vote_<id>` dimension can take, with its label, in answer
/// order. A dimension has `did_not_vote`, `not_registered` and those of the
/// rest that its layout's `[history.methods]` (or `blank`/`fallback`) name.
pub const CATEGORIES: [(&str, &str); 8] = [
    ("did_not_vote", "Registered, did not vote"),
    ("not_registered", "Registered after the election date"),
    ("election_day", "Voted on election day"),
    ("early", "Voted early in person"),
    ("mail", "Voted by mail"),
    ("provisional", "Provisional ballot"),
    ("other", "Voted, other method"),
    ("voted_method_unknown", "Voted, method not recorded"),
];

/// Index of `did_not_vote` in [`CATEGORIES`].
pub const DID_NOT_VOTE: u8 = 0;
/// Index of `not_registered` in [`CATEGORIES`].
pub const NOT_REGISTERED: u8 = 1;

/// The most elections one dataset may configure.
pub const MAX_ELECTIONS: usize = 32;

/// The prefix of an election's dimension name.
pub const VOTE_PREFIX: &str = "vote_";

/// The kinds of election a config names (`type = "general"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElectionType {
    /// A general election.
    General,
    /// A primary.
    Primary,
    /// A special election.
    Special,
    /// A runoff.
    Runoff,
    /// A presidential preference primary (FL `PPP`).
    PresidentialPreference,
}

impl ElectionType {
    /// Every type, for messages.
    pub const ALL: [ElectionType; 5] = [
        ElectionType::General,
        ElectionType::Primary,
        ElectionType::Special,
        ElectionType::Runoff,
        ElectionType::PresidentialPreference,
    ];

    /// The name as written in config and layouts.
    pub fn as_str(self) -> &'static str {
        match self {
            ElectionType::General => "general",
            ElectionType::Primary => "primary",
            ElectionType::Special => "special",
            ElectionType::Runoff => "runoff",
            ElectionType::PresidentialPreference => "presidential_preference",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<ElectionType> {
        ElectionType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One configured election (`[[dataset.election]]`): public, chosen by the
/// office.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Election {
    /// `2024g`: the dimension is `vote_2024g`.
    pub id: String,
    /// The election day as `YYYYMMDD`.
    pub date: i32,
    /// Its type.
    pub kind: ElectionType,
    /// The dimension (and Parquet column) name: `vote_<id>`.
    pub dimension: String,
}

impl Election {
    /// Checks an election as a config gives it: `id` is `[a-z0-9_]+` (the
    /// dimension name `vote_<id>` must be a valid one), `date` is
    /// `YYYY-MM-DD`, `kind` one of [`ElectionType`]'s names. The error names
    /// the field (`id`, `date` or `type`) and what is wrong.
    pub fn new(id: &str, date: &str, kind: &str) -> Result<Election, (&'static str, String)> {
        let name = format!("{VOTE_PREFIX}{id}");
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || !crate::valid_dimension_name(&name)
        {
            return Err((
                "id",
                format!(
                    "must be `[a-z0-9_]+` with `vote_<id>` at most {} characters, got {id:?}",
                    crate::MAX_NAME_LEN
                ),
            ));
        }
        let format = DateFormat::parse("YYYY-MM-DD").expect("a valid format");
        let day = format
            .parse_date(date.as_bytes())
            .filter(|_| date.len() == 10)
            .ok_or_else(|| ("date", format!("must be a date YYYY-MM-DD, got {date:?}")))?;
        let kind = ElectionType::parse(kind).ok_or_else(|| {
            let names: Vec<&str> = ElectionType::ALL.iter().map(|t| t.as_str()).collect();
            (
                "type",
                format!("must be one of {}, got {kind:?}", names.join(", ")),
            )
        })?;
        Ok(Election {
            id: id.to_owned(),
            date: day.key(),
            kind,
            dimension: name,
        })
    }

    /// The date as `YYYY-MM-DD`.
    pub fn date_text(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}",
            self.date / 10_000,
            self.date / 100 % 100,
            self.date % 100
        )
    }
}

/// Where a layout's history is.
#[derive(Debug, Clone)]
pub enum HistorySource {
    /// A separate file, one line per voter per election (NC `ncvhis`, FL).
    File(HistoryFile),
    /// Columns of the voter file itself, one per election, found by name
    /// (OH: `GENERAL-11/08/2016`).
    Columns(HistoryColumns),
}

/// A separate history file's format and the columns read from it.
#[derive(Debug, Clone)]
pub struct HistoryFile {
    /// Field delimiter.
    pub delimiter: u8,
    /// Whether fields may be quoted.
    pub quoting: Quoting,
    /// Whether the first line names the columns.
    pub header: bool,
    /// How text is decoded (only for messages: codes are matched as bytes).
    pub encoding: Encoding,
    /// The columns in order: required without a header; with one, what
    /// `synth` writes (columns are then found by name).
    pub columns: Vec<String>,
    /// The column joining a line to a voter (the voter file's id).
    pub voter_id: String,
    /// The election date's column and format.
    pub date_column: String,
    /// The election date's format.
    pub date_format: DateFormat,
    /// The election type's column, when the file has one; then a line
    /// counts for an election only if its type maps to the election's.
    pub type_column: Option<String>,
    /// The method (history code) column.
    pub method_column: String,
}

/// Per-election columns of the voter file.
#[derive(Debug, Clone)]
pub struct HistoryColumns {
    /// The text before the type in a column name (often empty).
    pub prefix: String,
    /// The text between the type and the date (`-`).
    pub separator: String,
    /// The date's format in the name.
    pub date_format: DateFormat,
}

/// A layout's `[history]`, validated.
#[derive(Debug, Clone)]
pub struct History {
    /// Where it is.
    pub source: HistorySource,
    /// Raw type (as the file writes it, upper-cased) → election type.
    pub types: BTreeMap<String, ElectionType>,
    /// Raw method code, trimmed and upper-cased → index into [`CATEGORIES`].
    pub methods: BTreeMap<String, u8>,
    /// The category of a blank method.
    pub blank: u8,
    /// The category of a method not in `methods` (counted as unknown).
    pub fallback: u8,
}

impl History {
    /// The categories (indices into [`CATEGORIES`]) a vote dimension of
    /// this layout has, in order: `did_not_vote`, `not_registered`, then
    /// every category a code, `blank` or `fallback` can produce.
    pub fn categories(&self) -> Vec<u8> {
        let mut used: BTreeSet<u8> = self.methods.values().copied().collect();
        used.extend([DID_NOT_VOTE, NOT_REGISTERED, self.blank, self.fallback]);
        used.into_iter().collect()
    }

    /// Whether a raw cell is blank as [`History::method`] trims it (spaces,
    /// tabs, CR): a blank cell of a voter registered after the election
    /// is `not_registered`, not the layout's `blank`.
    pub fn is_blank(raw: &[u8]) -> bool {
        trim(raw).is_empty()
    }

    /// The category of a raw method value (trimmed here), and whether it
    /// was in the table (blank counts as known).
    pub fn method(&self, raw: &[u8]) -> (u8, bool) {
        let raw = trim(raw);
        if raw.is_empty() {
            return (self.blank, true);
        }
        let mut key = [0u8; 48];
        if raw.len() > key.len() {
            return (self.fallback, false);
        }
        let key = &mut key[..raw.len()];
        key.copy_from_slice(raw);
        key.make_ascii_uppercase();
        match std::str::from_utf8(key)
            .ok()
            .and_then(|k| self.methods.get(k))
        {
            Some(&c) => (c, true),
            None => (self.fallback, false),
        }
    }

    /// The election type of a raw type value (trimmed, any ASCII case).
    pub fn election_type(&self, raw: &[u8]) -> Option<ElectionType> {
        let raw = std::str::from_utf8(trim(raw)).ok()?;
        self.types.get(&raw.to_ascii_uppercase()).copied()
    }

    /// For in-file history: the (type, date `YYYYMMDD`) a voter-file
    /// column name stands for, or `None` when the name is not an election
    /// column.
    pub fn column_election(&self, name: &str) -> Option<(ElectionType, i32)> {
        let HistorySource::Columns(c) = &self.source else {
            return None;
        };
        let rest = name.trim().strip_prefix(c.prefix.as_str())?;
        let (raw_type, date) = rest.split_once(c.separator.as_str())?;
        let kind = self.election_type(raw_type.as_bytes())?;
        let day = c.date_format.parse_date(date.trim().as_bytes())?;
        Some((kind, day.key()))
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// `[history]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryToml {
    /// `"file"` or `"columns"`.
    source: String,
    delimiter: Option<String>,
    quoting: Option<Quoting>,
    header: Option<bool>,
    encoding: Option<Encoding>,
    #[serde(default)]
    columns: Vec<String>,
    voter_id: Option<String>,
    date_column: Option<String>,
    /// `MM/DD/YYYY`: in the date column, or in the column names.
    date_format: String,
    type_column: Option<String>,
    method_column: Option<String>,
    /// For `source = "columns"`: how an election column's name is built,
    /// `"{type}-{date}"`.
    column_pattern: Option<String>,
    #[serde(default)]
    types: BTreeMap<String, String>,
    methods: BTreeMap<String, String>,
    blank: String,
    fallback: String,
}

fn invalid(origin: &str, key: &str, message: String) -> LayoutError {
    LayoutError::Invalid {
        origin: origin.to_owned(),
        key: format!("history.{key}"),
        message,
    }
}

fn category(origin: &str, key: &str, name: &str) -> Result<u8, LayoutError> {
    match CATEGORIES.iter().position(|(c, _)| *c == name) {
        Some(i) if i as u8 != NOT_REGISTERED => Ok(i as u8),
        _ => {
            let names: Vec<&str> = CATEGORIES
                .iter()
                .map(|(c, _)| *c)
                .filter(|c| *c != "not_registered")
                .collect();
            Err(invalid(
                origin,
                key,
                format!(
                    "must be one of {} (not_registered is derived from the registration date), got {name:?}",
                    names.join(", ")
                ),
            ))
        }
    }
}

impl HistoryToml {
    /// Checks the section; every error names its `history.` key.
    pub(crate) fn validate(self, origin: &str) -> Result<History, LayoutError> {
        let date_format =
            DateFormat::parse(&self.date_format).map_err(|m| invalid(origin, "date_format", m))?;
        let mut types = BTreeMap::new();
        for (raw, name) in &self.types {
            let kind = ElectionType::parse(name).ok_or_else(|| {
                invalid(
                    origin,
                    &format!("types.{raw}"),
                    format!("must be an election type (general, primary, special, runoff, presidential_preference), got {name:?}"),
                )
            })?;
            if types
                .insert(raw.trim().to_ascii_uppercase(), kind)
                .is_some()
            {
                return Err(invalid(
                    origin,
                    &format!("types.{raw}"),
                    "listed twice (types are matched ignoring case)".into(),
                ));
            }
        }
        let mut methods = BTreeMap::new();
        for (raw, name) in &self.methods {
            let key = format!("methods.{raw}");
            let c = category(origin, &key, name)?;
            let upper = raw.trim().to_ascii_uppercase();
            if upper.is_empty() || upper.len() > 48 {
                return Err(invalid(
                    origin,
                    &key,
                    "a code is 1 to 48 bytes; blank is `history.blank`".into(),
                ));
            }
            if methods.insert(upper, c).is_some() {
                return Err(invalid(
                    origin,
                    &key,
                    "listed twice (codes are matched ignoring case)".into(),
                ));
            }
        }
        let blank = category(origin, "blank", &self.blank)?;
        let fallback = category(origin, "fallback", &self.fallback)?;
        let source = match self.source.as_str() {
            "file" => HistorySource::File(self.file(origin, date_format)?),
            "columns" => HistorySource::Columns(self.in_file(origin, date_format, &types)?),
            other => {
                return Err(invalid(
                    origin,
                    "source",
                    format!(
                        "must be \"file\" (a separate history file) or \"columns\" (columns of the voter file), got {other:?}"
                    ),
                ));
            }
        };
        Ok(History {
            source,
            types,
            methods,
            blank,
            fallback,
        })
    }

    fn file(&self, origin: &str, date_format: DateFormat) -> Result<HistoryFile, LayoutError> {
        let need = |key: &str, v: &Option<String>| {
            v.clone()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| invalid(origin, key, "required when source = \"file\"".into()))
        };
        let delimiter = self.delimiter.as_deref().unwrap_or("");
        let delimiter = match delimiter.as_bytes() {
            [b] if *b != b'"' && *b != b'\n' && *b != b'\r' => *b,
            _ => {
                return Err(invalid(
                    origin,
                    "delimiter",
                    "must be exactly one byte other than a quote or newline".into(),
                ));
            }
        };
        let header = self
            .header
            .ok_or_else(|| invalid(origin, "header", "required when source = \"file\"".into()))?;
        if !header && self.columns.is_empty() {
            return Err(invalid(
                origin,
                "columns",
                "a history file without a header needs its column names in order".into(),
            ));
        }
        let file = HistoryFile {
            delimiter,
            quoting: self.quoting.unwrap_or(Quoting::Double),
            header,
            encoding: self.encoding.unwrap_or(Encoding::Latin1),
            columns: self.columns.clone(),
            voter_id: need("voter_id", &self.voter_id)?,
            date_column: need("date_column", &self.date_column)?,
            date_format,
            type_column: self.type_column.clone(),
            method_column: need("method_column", &self.method_column)?,
        };
        let listed = |c: &str| file.columns.iter().any(|n| n.eq_ignore_ascii_case(c));
        for (key, c) in [
            ("voter_id", Some(&file.voter_id)),
            ("date_column", Some(&file.date_column)),
            ("type_column", file.type_column.as_ref()),
            ("method_column", Some(&file.method_column)),
        ] {
            if let Some(c) = c
                && !header
                && !listed(c)
            {
                return Err(invalid(
                    origin,
                    key,
                    format!("column `{c}` is not in history.columns"),
                ));
            }
        }
        if file.type_column.is_some() && self.types.is_empty() {
            return Err(invalid(
                origin,
                "types",
                "a type_column needs its code table".into(),
            ));
        }
        if self.column_pattern.is_some() {
            return Err(invalid(
                origin,
                "column_pattern",
                "only for source = \"columns\"".into(),
            ));
        }
        Ok(file)
    }

    fn in_file(
        &self,
        origin: &str,
        date_format: DateFormat,
        types: &BTreeMap<String, ElectionType>,
    ) -> Result<HistoryColumns, LayoutError> {
        for (key, set) in [
            ("delimiter", self.delimiter.is_some()),
            ("quoting", self.quoting.is_some()),
            ("header", self.header.is_some()),
            ("encoding", self.encoding.is_some()),
            ("columns", !self.columns.is_empty()),
            ("voter_id", self.voter_id.is_some()),
            ("date_column", self.date_column.is_some()),
            ("type_column", self.type_column.is_some()),
            ("method_column", self.method_column.is_some()),
        ] {
            if set {
                return Err(invalid(
                    origin,
                    key,
                    "only for source = \"file\" (in-file history reads the voter file's format)"
                        .into(),
                ));
            }
        }
        let pattern = self.column_pattern.as_deref().ok_or_else(|| {
            invalid(
                origin,
                "column_pattern",
                "required when source = \"columns\", e.g. \"{type}-{date}\"".into(),
            )
        })?;
        let bad = || {
            invalid(
                origin,
                "column_pattern",
                format!(
                    "must hold `{{type}}` then `{{date}}` with a non-empty separator and nothing after, got {pattern:?}"
                ),
            )
        };
        let (prefix, rest) = pattern.split_once("{type}").ok_or_else(bad)?;
        let (separator, suffix) = rest.split_once("{date}").ok_or_else(bad)?;
        if separator.is_empty() || !suffix.is_empty() || prefix.contains('{') {
            return Err(bad());
        }
        if types.is_empty() {
            return Err(invalid(
                origin,
                "types",
                "in-file history names elections by type: list them".into(),
            ));
        }
        Ok(HistoryColumns {
            prefix: prefix.to_owned(),
            separator: separator.to_owned(),
            date_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(text: &str) -> Result<History, LayoutError> {
        let t: HistoryToml = toml::from_str(text).unwrap();
        t.validate("test")
    }

    const OH: &str = r#"
        source = "columns"
        column_pattern = "{type}-{date}"
        date_format = "MM/DD/YYYY"
        types = { GENERAL = "general", PRIMARY = "primary", SPECIAL = "special" }
        methods = { X = "voted_method_unknown", D = "voted_method_unknown" }
        blank = "did_not_vote"
        fallback = "voted_method_unknown"
    "#;

    #[test]
    fn election_columns_are_found_by_pattern() {
        let h = history(OH).unwrap();
        assert_eq!(
            h.column_election("GENERAL-11/08/2016"),
            Some((ElectionType::General, 20161108))
        );
        assert_eq!(
            h.column_election("primary-05/03/2022"),
            Some((ElectionType::Primary, 20220503))
        );
        assert_eq!(h.column_election("RUNOFF-05/03/2022"), None);
        assert_eq!(h.column_election("GENERAL-13/08/2016"), None);
        assert_eq!(h.column_election("WARD"), None);
        assert_eq!(h.categories(), vec![0, 1, 7]);
        assert_eq!(h.method(b" x "), (7, true));
        assert_eq!(h.method(b""), (DID_NOT_VOTE, true));
        assert_eq!(h.method(b"Q"), (7, false));
        assert!(History::is_blank(b" \r\t") && History::is_blank(b""));
        assert!(!History::is_blank(b"X\r"));
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: &str| history(text).unwrap_err().to_string();
        assert!(err(&OH.replace("{type}-{date}", "{date}")).contains("history.column_pattern"));
        assert!(err(&OH.replace("\"general\"", "\"generall\"")).contains("history.types.GENERAL"));
        assert!(
            err(&OH.replace("blank = \"did_not_vote\"", "blank = \"not_registered\""))
                .contains("history.blank")
        );
        assert!(err(&OH.replace("columns", "file")).contains("history.delimiter"));
        assert!(
            err(&OH.replace("X = \"voted_method_unknown\"", "X = \"mailed\""))
                .contains("history.methods.X")
        );
    }

    #[test]
    fn elections_are_checked() {
        let e = Election::new("2024g", "2024-11-05", "general").unwrap();
        assert_eq!(
            (e.date, e.dimension.clone(), e.date_text()),
            (20241105, "vote_2024g".into(), "2024-11-05".into())
        );
        assert_eq!(
            Election::new("2024G", "2024-11-05", "general")
                .unwrap_err()
                .0,
            "id"
        );
        assert_eq!(
            Election::new("x", "2024-11-31", "general").unwrap_err().0,
            "date"
        );
        assert_eq!(
            Election::new("x", "11/05/2024", "general").unwrap_err().0,
            "date"
        );
        assert_eq!(
            Election::new("x", "2024-11-05", "municipal").unwrap_err().0,
            "type"
        );
    }
}
