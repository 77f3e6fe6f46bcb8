//! What the release path hands back, and the JSON stored for a release:
//! its rows (public cell keys and noisy counts) and its canonical query.

use std::sync::Arc;

use engine::{CountQuery, Domains};
use privacy::{Epsilon, StoredRelease};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

use crate::ReleaseError;

/// The answer to a query.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A dry run: what the query would cost.
    Cost(Cost),
    /// Noisy counts, freshly released or stored.
    Release(Released),
}

/// What a query would cost now, and whether it could be afforded.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// ε it would be charged (zero when it is already released).
    pub epsilon: Epsilon,
    /// The noise scale every cell would get.
    pub noise_scale: f64,
    /// Half-width of each cell's 95% interval.
    pub ci95: f64,
    /// Cells of the answer.
    pub cells: u64,
    /// Whether an identical query is already released to this analyst (any
    /// analyst's release when the dataset shares releases).
    pub cached: bool,
    /// Whether every cap allows it now.
    pub affordable: bool,
    /// What remains of each cap.
    pub remaining: Remaining,
}

/// A release to show.
#[derive(Debug, Clone)]
pub struct Released {
    /// The stored release (shared with the service's memory of it: its rows
    /// are tens of kB).
    pub release: Arc<StoredRelease>,
    /// Whether it was already stored (then nothing was spent).
    pub cached: bool,
    /// Cells of the answer.
    pub cells: u64,
    /// The analyst's remaining budget on the dataset, after this answer.
    pub analyst_remaining: Epsilon,
}

/// What remains of each cap that bounds the analyst's next spend.
#[derive(Debug, Clone, PartialEq)]
pub struct Remaining {
    /// Of the analyst's own budget on the dataset.
    pub analyst: Epsilon,
    /// Of what all analysts together may still spend on the dataset: the
    /// smaller of its own cap (if any) and its population's.
    pub dataset: Epsilon,
    /// The population's name.
    pub population: String,
    /// Of the population's cap.
    pub population_left: Epsilon,
}

/// The rows of an answer as JSON: one object per cell with the group's
/// values and the noisy count, in cell order.
pub(crate) struct Rows<'a> {
    /// The names of the grouped dimensions, in group-by order.
    pub dims: &'a [&'a str],
    pub cells: &'a [Vec<String>],
    pub noisy: &'a [i64],
}

struct Row<'a> {
    dims: &'a [&'a str],
    key: &'a [String],
    count: i64,
}

impl Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.cells.len()))?;
        for (key, &count) in self.cells.iter().zip(self.noisy) {
            seq.serialize_element(&Row {
                dims: self.dims,
                key,
                count,
            })?;
        }
        seq.end()
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.dims.len() + 1))?;
        for (dim, value) in self.dims.iter().zip(self.key) {
            map.serialize_entry(dim, value)?;
        }
        map.serialize_entry("count", &self.count)?;
        map.end()
    }
}

impl Rows<'_> {
    pub(crate) fn to_json(&self) -> Result<String, ReleaseError> {
        serde_json::to_string(self).map_err(|e| ReleaseError::Internal(e.to_string()))
    }
}

/// The canonical query as stored in the ledger and shown by `/v1/releases`:
/// ε as charged, exactly.
pub(crate) fn query_json(
    dataset: &str,
    domains: &Domains,
    q: &CountQuery,
    epsilon: Epsilon,
) -> Result<String, ReleaseError> {
    let c = domains.canonical(q)?;
    let filter: serde_json::Map<String, serde_json::Value> = c
        .filter
        .iter()
        .map(|(d, vs)| (domains.name(*d).to_owned(), serde_json::json!(vs)))
        .collect();
    let group_by: Vec<&str> = c.group_by.iter().map(|d| domains.name(*d)).collect();
    Ok(serde_json::json!({
        "dataset": dataset,
        "group_by": group_by,
        "filter": filter,
        "epsilon": epsilon.to_f64(),
    })
    .to_string())
}
