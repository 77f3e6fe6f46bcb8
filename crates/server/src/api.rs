//! The JSON shapes of the API. The OpenAPI document (`GET /openapi.json`)
//! is generated from these types, so docs and clients cannot drift from the
//! code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// `GET /healthz`: 200 when the server can answer, 503 when its ledger
/// cannot be reached (a load balancer then sends queries elsewhere).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `"ok"`, or `"ledger_unavailable"` (status 503).
    pub status: String,
    /// The ledger behind the server.
    pub ledger: LedgerHealth,
}

/// The ledger's part of `/healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LedgerHealth {
    /// `"sqlite"` or `"postgres"`.
    pub backend: String,
    /// `"ok"`, or `"unavailable"` when its database did not answer.
    pub state: String,
}

/// `GET /v1/datasets`: the datasets the analyst may query.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DatasetsResponse {
    /// One entry per dataset the analyst has a budget on.
    pub datasets: Vec<DatasetInfo>,
}

/// A dataset's public description. Nothing here comes from the data.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// The name the layout declares (never a path): it gives the public
    /// domains.
    pub layout: String,
    /// Reference date of ages and registration years.
    pub as_of: String,
    /// The most ε one query may spend.
    pub max_epsilon_per_query: f64,
    /// The most cells one query may have.
    pub max_cells: u64,
    /// The population its voters belong to (its own name if it has none):
    /// its cap bounds what all analysts together spend on its datasets.
    pub population: String,
    /// Whether a stored answer is served free to any analyst (`true`) or
    /// only to the analyst who paid for it.
    pub share_releases: bool,
    /// The dimensions, in canonical order.
    pub dimensions: Vec<DimensionInfo>,
}

/// One dimension and its public values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DimensionInfo {
    /// Name used in `group_by`, `filter` and answers (`age_band`).
    pub name: String,
    /// The public values, in answer order.
    pub values: Vec<String>,
    /// A label per value.
    pub labels: Vec<String>,
}

/// A filter value: a string, or an integer for numeric dimensions
/// (`congressional_district`, `registration_year`), which is read as its
/// decimal text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FilterValue {
    /// A public value as text.
    Text(String),
    /// An integer value.
    Int(i64),
}

impl FilterValue {
    /// The value as the domains spell it.
    pub fn into_string(self) -> String {
        match self {
            FilterValue::Text(s) => s,
            FilterValue::Int(i) => i.to_string(),
        }
    }
}

/// `POST /v1/query`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// Dataset name.
    pub dataset: String,
    /// Dimensions to group by; the answer has one row per combination of
    /// their public values (narrowed by filters), in this order. Empty: one row.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Per dimension, the public values to keep (OR within a dimension, AND
    /// across dimensions).
    #[serde(default)]
    pub filter: BTreeMap<String, Vec<FilterValue>>,
    /// The ε to spend (at most the dataset's `max_epsilon_per_query`), read
    /// as the decimal written and rounded down to a multiple of 1e-9.
    pub epsilon: f64,
    /// Only report cost, noise scale and interval; spend nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/query` answer for a real query.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResponse {
    /// One object per public cell: the group's value under each `group_by`
    /// dimension, and `count`, the noisy count (may be negative).
    #[schema(value_type = Vec<Object>)]
    pub rows: Box<RawValue>,
    /// Always `discrete_laplace`.
    pub mechanism: String,
    /// Scale of the discrete Laplace noise added to every cell.
    pub noise_scale: f64,
    /// Half-width of the 95% interval of each cell's count.
    pub ci95: f64,
    /// ε charged for this answer, exactly (0 when cached).
    pub epsilon_spent: f64,
    /// The analyst's remaining ε on this dataset.
    pub epsilon_remaining: f64,
    /// Whether this is a stored release returned for free.
    pub cached: bool,
    /// The release's id in the ledger.
    pub release_id: String,
}

/// [`QueryResponse`] without its rows: what is serialised around the stored
/// rows, which are spliced in as they are (they are the server's own JSON,
/// tens of kB, and parsing them again for every stored answer would cost
/// more than the rest of the request).
#[derive(Debug, Serialize)]
pub struct QueryResponseMeta {
    /// As [`QueryResponse::mechanism`].
    pub mechanism: String,
    /// As [`QueryResponse::noise_scale`].
    pub noise_scale: f64,
    /// As [`QueryResponse::ci95`].
    pub ci95: f64,
    /// As [`QueryResponse::epsilon_spent`].
    pub epsilon_spent: f64,
    /// As [`QueryResponse::epsilon_remaining`].
    pub epsilon_remaining: f64,
    /// As [`QueryResponse::cached`].
    pub cached: bool,
    /// As [`QueryResponse::release_id`].
    pub release_id: String,
}

impl QueryResponseMeta {
    /// The JSON of the whole [`QueryResponse`]: `rows` (trusted JSON, the
    /// server's own) first, then these fields.
    pub fn with_rows(&self, rows_json: &str) -> String {
        let meta = serde_json::to_string(self).expect("plain fields serialise");
        let mut out = String::with_capacity(rows_json.len() + meta.len() + 10);
        out.push_str("{\"rows\":");
        out.push_str(rows_json);
        out.push(',');
        out.push_str(&meta[1..]);
        out
    }
}

/// `POST /v1/query` answer for `"dry_run": true`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DryRunResponse {
    /// Always `true`.
    pub dry_run: bool,
    /// The ε the query would be charged, exactly (0 if already released).
    pub epsilon: f64,
    /// Noise scale every cell would get.
    pub noise_scale: f64,
    /// Half-width of the 95% interval of each cell.
    pub ci95: f64,
    /// Number of cells (rows) of the answer.
    pub cells: u64,
    /// Always `discrete_laplace`.
    pub mechanism: String,
    /// The analyst's remaining ε on this dataset now.
    pub epsilon_remaining: f64,
    /// What all analysts together may still spend on this dataset: the
    /// smaller of what remains of its own cap (if any) and of its
    /// population's.
    pub dataset_epsilon_remaining: f64,
    /// The dataset's population.
    pub population: String,
    /// What remains of the population's cap.
    pub population_epsilon_remaining: f64,
    /// Whether an identical query was already released to you (to anyone,
    /// when the dataset shares releases): then it is free.
    pub cached: bool,
    /// Whether every cap would allow it now.
    pub affordable: bool,
}

/// `GET /v1/budget`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BudgetResponse {
    /// The analyst's name.
    pub analyst: String,
    /// One entry per dataset the analyst may query.
    pub datasets: Vec<BudgetEntry>,
}

/// The analyst's budget on one dataset, and the caps above it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BudgetEntry {
    /// Dataset name.
    pub dataset: String,
    /// The analyst's budget.
    pub budget: f64,
    /// What the analyst has spent.
    pub spent: f64,
    /// What the analyst has left (never negative).
    pub remaining: f64,
    /// The dataset's own cap for all analysts together, if it has one.
    pub dataset_total: Option<f64>,
    /// What all analysts together may still spend on the dataset (the
    /// smaller of its own cap's and its population's remainders).
    pub dataset_remaining: f64,
    /// Its population.
    pub population: String,
    /// The population's cap.
    pub population_total: f64,
    /// What remains of it.
    pub population_remaining: f64,
    /// The most ε one query may spend.
    pub max_epsilon_per_query: f64,
}

/// `GET /v1/releases`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasesResponse {
    /// The releases the analyst paid for, oldest first.
    pub releases: Vec<ReleaseInfo>,
}

/// One past release.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseInfo {
    /// Release id.
    pub release_id: String,
    /// Dataset.
    pub dataset: String,
    /// The query, canonical: `group_by` as asked, filters sorted.
    #[schema(value_type = Object)]
    pub query: Box<RawValue>,
    /// ε charged.
    pub epsilon: f64,
    /// Mechanism.
    pub mechanism: String,
    /// Noise scale.
    pub noise_scale: f64,
    /// 95% half-width per cell.
    pub ci95: f64,
    /// When it was committed (RFC 3339, UTC).
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spliced answer is the JSON `QueryResponse` would serialise to.
    #[test]
    fn rows_spliced_in_make_the_same_answer() {
        let rows = r#"[{"county":"WAKE","count":12},{"county":"ORANGE","count":-1}]"#;
        let meta = QueryResponseMeta {
            mechanism: "discrete_laplace".into(),
            noise_scale: 2.0,
            ci95: 6.5,
            epsilon_spent: 0.5,
            epsilon_remaining: 2.5,
            cached: false,
            release_id: "00ff".into(),
        };
        let spliced: serde_json::Value = serde_json::from_str(&meta.with_rows(rows)).unwrap();
        let whole = serde_json::to_value(QueryResponse {
            rows: RawValue::from_string(rows.to_owned()).unwrap(),
            mechanism: meta.mechanism.clone(),
            noise_scale: meta.noise_scale,
            ci95: meta.ci95,
            epsilon_spent: meta.epsilon_spent,
            epsilon_remaining: meta.epsilon_remaining,
            cached: meta.cached,
            release_id: meta.release_id.clone(),
        })
        .unwrap();
        assert_eq!(spliced, whole);
    }
}
