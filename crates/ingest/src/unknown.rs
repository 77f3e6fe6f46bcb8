//! Unknown codes as the merger keeps them: 8 bytes per occurrence, values
//! interned per column, so a column read by mistake (every value unknown)
//! costs memory like any other column of the row, not a string per line.

use std::collections::{BTreeMap, HashMap};

use crate::rules::UnknownCode;

/// At most this many distinct unknown values are listed per column, each at
/// most [`MAX_UNKNOWN_BYTES`] long and without white space: a code table's
/// missing code looks like that, a name or an address does not. Everything
/// else is only counted, in `other_unknown`, so a column read by mistake
/// (surnames as `gender`) neither bloats the manifest nor lists what it holds.
pub(crate) const MAX_UNKNOWN_VALUES: usize = 50;
/// See [`MAX_UNKNOWN_VALUES`].
pub(crate) const MAX_UNKNOWN_BYTES: usize = 24;

/// The id of a value that is counted but never listed.
const OTHER: u16 = u16::MAX;

/// Every unknown code of the accepted rows.
#[derive(Debug)]
pub(crate) struct Unknowns {
    /// Per coded column: the listable values, by id.
    values: Vec<Vec<String>>,
    ids: Vec<HashMap<String, u16>>,
    /// (accepted row, coded column, value id or [`OTHER`]).
    seen: Vec<(u32, u8, u16)>,
    /// Per coded column: how many of `seen` were blank.
    blanks: Vec<u64>,
}

/// Unknown codes over the written rows, as the manifest reports them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct UnknownCodes {
    /// `manifest.unknown_codes`: listed values by column.
    pub listed: BTreeMap<String, BTreeMap<String, u64>>,
    /// `manifest.other_unknown`: values counted without being listed.
    pub other: BTreeMap<String, u64>,
}

impl Unknowns {
    /// Nothing seen yet, for a layout of `columns` coded columns.
    pub fn new(columns: usize) -> Unknowns {
        Unknowns {
            values: vec![Vec::new(); columns],
            ids: vec![HashMap::new(); columns],
            seen: Vec::new(),
            blanks: vec![0; columns],
        }
    }

    /// Records `u`, found on accepted row `row`.
    pub fn push(&mut self, row: u32, u: UnknownCode) {
        let column = u.column as usize;
        if u.value.is_empty() {
            self.blanks[column] += 1;
        }
        let id = match self.ids[column].get(&u.value) {
            Some(&id) => id,
            None if self.values[column].len() < MAX_UNKNOWN_VALUES && listable(&u.value) => {
                let id = self.values[column].len() as u16;
                self.ids[column].insert(u.value.clone(), id);
                self.values[column].push(u.value);
                id
            }
            None => OTHER,
        };
        self.seen.push((row, u.column, id));
    }

    /// Unknown values per coded column that are not blank, over every
    /// accepted row: what a column read by mistake has plenty of. (A blank
    /// without a `blank` code is still an unknown code in the manifest.)
    pub fn non_blank_per_column(&self) -> Vec<u64> {
        let mut counts = vec![0; self.values.len()];
        for &(_, column, _) in &self.seen {
            counts[column as usize] += 1;
        }
        counts
            .iter()
            .zip(&self.blanks)
            .map(|(n, b)| n - b)
            .collect()
    }

    /// The manifest's view: rows for which `is_dropped` holds do not count;
    /// `name` gives a coded column's dimension name.
    pub fn report(
        &self,
        name: impl Fn(usize) -> String,
        is_dropped: impl Fn(u32) -> bool,
    ) -> UnknownCodes {
        let mut out = UnknownCodes::default();
        for &(row, column, id) in &self.seen {
            if is_dropped(row) {
                continue;
            }
            let column = column as usize;
            if id == OTHER {
                *out.other.entry(name(column)).or_default() += 1;
            } else {
                let value = self.values[column][id as usize].clone();
                *out.listed
                    .entry(name(column))
                    .or_default()
                    .entry(value)
                    .or_default() += 1;
            }
        }
        out
    }
}

/// Whether an unknown value may be listed by value: short and one word.
fn listable(value: &str) -> bool {
    value.len() <= MAX_UNKNOWN_BYTES && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(column: u8, value: &str) -> UnknownCode {
        UnknownCode {
            column,
            value: value.to_owned(),
        }
    }

    #[test]
    fn only_short_one_word_values_are_listed_and_at_most_fifty() {
        let mut u = Unknowns::new(2);
        let mut row = 0;
        for i in 0..80 {
            u.push(row, code(0, &format!("S{i}")));
            row += 1;
        }
        u.push(row, code(0, "S1")); // already listed: still listed
        u.push(row + 1, code(1, "VAN DER BERG"));
        u.push(row + 2, code(1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        u.push(row + 3, code(1, "XYZ"));
        u.push(row + 4, code(1, ""));
        let names = ["gender", "race"];
        let report = u.report(|c| names[c].to_owned(), |_| false);
        assert_eq!(report.listed["gender"].len(), MAX_UNKNOWN_VALUES);
        assert_eq!(report.listed["gender"]["S1"], 2);
        assert!(!report.listed["gender"].contains_key("S50"));
        assert_eq!(report.other["gender"], 30);
        let race: Vec<&str> = report.listed["race"].keys().map(String::as_str).collect();
        assert_eq!(race, ["", "XYZ"]);
        assert_eq!(report.other["race"], 2);
        assert_eq!(
            u.non_blank_per_column(),
            [81, 3],
            "the blank race is not counted"
        );
    }

    #[test]
    fn dropped_rows_do_not_count() {
        let mut u = Unknowns::new(1);
        u.push(0, code(0, "XYZ"));
        u.push(1, code(0, "XYZ"));
        u.push(2, code(0, "A LONG NAME"));
        let report = u.report(|_| "party".to_owned(), |row| row != 0);
        assert_eq!(report.listed["party"]["XYZ"], 1);
        assert!(report.other.is_empty());
    }
}
