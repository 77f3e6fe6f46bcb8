//! The query service: from a parsed request to a released (or cached) answer.
//!
//! The order is the privacy argument:
//! 1. validate the query against the *public* domains only (dataset access,
//!    ε range, dimensions, values, cell cap) — nothing here looks at data;
//! 2. a dry run stops here and reports cost, scale and interval;
//! 3. on a blocking thread: return the stored release if the identical query
//!    was released before (free); otherwise count exactly, add opendp noise,
//!    and commit spend + noisy rows to the ledger in one transaction;
//! 4. only after the commit returned is anything sent.
//!
//! **Timing.** Drawing opendp's discrete Laplace noise takes longer the
//! larger the noise (its sampler loops; `scripts/timing-probe` measures it).
//! So counting and noise together are padded ([`pad_stage`]) to the recent
//! high-water mark of stages of the same public shape, rounded up to
//! `server.timing_quantum_ms`; the ledger commit follows the padding.
//!
//! Exact counts live only inside the blocking closure of step 3 and are
//! dropped there; the log line names the analyst, dataset, dimensions, ε,
//! cells, latency and whether the answer was cached — never a count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use engine::{CountQuery, Dim, Domains};
use privacy::{CommitOutcome, NewRelease, SpendRequest};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::value::RawValue;

use crate::api::{DryRunResponse, QueryRequest, QueryResponse};
use crate::error::ApiError;
use crate::state::{AppState, LoadedDataset};

/// Slack on float comparisons of ε (matches the ledger's).
const TOLERANCE: f64 = 1e-9;

/// What a query produced.
#[derive(Debug)]
pub enum Outcome {
    /// A dry run: cost only.
    DryRun(DryRunResponse),
    /// Noisy counts (fresh or cached).
    Answer(QueryResponse),
}

/// A query checked against the public domains.
struct Validated {
    query: CountQuery,
    key: String,
    cells: u64,
    scale: f64,
    ci95: f64,
}

fn dataset<'a>(
    state: &'a AppState,
    analyst: usize,
    name: &str,
) -> Result<(&'a LoadedDataset, f64), ApiError> {
    let a = &state.analysts[analyst];
    let Some(d) = state.datasets.get(name) else {
        return Err(ApiError::UnknownDataset {
            name: name.to_owned(),
            known: a.epsilon.keys().cloned().collect(),
        });
    };
    let budget = *a
        .epsilon
        .get(name)
        .ok_or_else(|| ApiError::ForbiddenDataset(name.to_owned()))?;
    Ok((d, budget))
}

fn validate(
    state: &AppState,
    d: &LoadedDataset,
    req: &QueryRequest,
) -> Result<Validated, ApiError> {
    let eps = req.epsilon;
    if !eps.is_finite() || eps <= 0.0 {
        return Err(ApiError::InvalidEpsilon {
            epsilon: eps,
            reason: "must be a finite number above 0".into(),
        });
    }
    if eps > d.config.max_epsilon_per_query {
        return Err(ApiError::InvalidEpsilon {
            epsilon: eps,
            reason: format!(
                "above this dataset's max_epsilon_per_query of {}",
                d.config.max_epsilon_per_query
            ),
        });
    }
    let domains: &Domains = &d.domains;
    let group_by = req
        .group_by
        .iter()
        .map(|name| domains.dim(name))
        .collect::<Result<Vec<Dim>, _>>()?;
    let filter = req
        .filter
        .iter()
        .map(|(name, values)| {
            Ok((
                domains.dim(name)?,
                values.iter().cloned().map(|v| v.into_string()).collect(),
            ))
        })
        .collect::<Result<Vec<(Dim, Vec<String>)>, ApiError>>()?;
    let query = CountQuery { group_by, filter };
    let cells = domains.cell_count(&query)?;
    if cells > state.server.max_cells {
        return Err(ApiError::TooManyCells {
            cells,
            max: state.server.max_cells,
        });
    }
    let key = domains.query_key(&query, eps)?;
    // opendp: the scale whose privacy map at d_in = 1 is at most ε, and the
    // 95% half-width of that noise.
    let scale = privacy::scale_for_epsilon(eps)?;
    let ci95 = privacy::ci95(scale)?;
    Ok(Validated {
        query,
        key,
        cells,
        scale,
        ci95,
    })
}

/// The rows of an answer as JSON: one object per cell with the group's
/// values and the noisy count, in cell order.
struct Rows<'a> {
    dims: &'a [Dim],
    cells: &'a [Vec<String>],
    noisy: &'a [i64],
}

struct Row<'a> {
    dims: &'a [Dim],
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
            map.serialize_entry(dim.name(), value)?;
        }
        map.serialize_entry("count", &self.count)?;
        map.end()
    }
}

/// The canonical query as stored in the ledger and shown by `/v1/releases`.
fn query_json(
    dataset: &str,
    domains: &Domains,
    q: &CountQuery,
    eps: f64,
) -> Result<String, ApiError> {
    let c = domains.canonical(q)?;
    let filter: serde_json::Map<String, serde_json::Value> = c
        .filter
        .iter()
        .map(|(d, vs)| (d.name().to_owned(), serde_json::json!(vs)))
        .collect();
    let group_by: Vec<&str> = c.group_by.iter().map(|d| d.name()).collect();
    Ok(serde_json::json!({
        "dataset": dataset,
        "group_by": group_by,
        "filter": filter,
        "epsilon": eps,
    })
    .to_string())
}

/// How fast the padding deadline of a stage forgets a slow release: each
/// release of the same shape multiplies it by this. At 0.99 a stall under
/// load held the mark up for a hundred releases and cost 17% of the
/// throughput of two clients; at 0.95 the padded timings still show no
/// correlation with the noise (`scripts/timing-probe`, docs/privacy.md).
const DEADLINE_DECAY: f64 = 0.95;

/// Per (dataset, bit length of the cell count) — public shape only — the
/// recent high-water mark of the counting + noise stage.
static STAGE_DEADLINE: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<(String, u32), Duration>>,
> = std::sync::LazyLock::new(Default::default);

/// Pads the counting + noise stage of a fresh release, started at
/// `started`, so that its duration does not tell the size of the noise.
///
/// Rounding every stage up to a multiple of a quantum is not enough: the
/// stage of a given shape takes about the same time each run, and when that
/// time sits near a multiple, whether it crosses it depends on the noise —
/// the padding would turn a few microseconds into a whole quantum. So each
/// stage waits until the recent high-water mark of stages of the same public
/// shape (dataset, cells rounded to a power of two; decaying by 5% per
/// release so a one-off stall is forgotten), rounded up to a multiple of
/// `quantum_ms`. Only a stage slower than every recent one of its shape
/// shows its own time. `quantum_ms = 0` turns padding off.
pub fn pad_stage(started: Instant, dataset: &str, cells: u64, quantum_ms: u64) {
    if quantum_ms == 0 {
        return;
    }
    let elapsed = started.elapsed();
    let shape = (dataset.to_owned(), 64 - cells.leading_zeros());
    let mark = {
        let mut deadlines = STAGE_DEADLINE.lock().unwrap_or_else(|p| p.into_inner());
        let mark = deadlines.entry(shape).or_insert(Duration::ZERO);
        *mark = mark.mul_f64(DEADLINE_DECAY).max(elapsed);
        *mark
    };
    let quantum = Duration::from_millis(quantum_ms);
    let quanta = mark.as_nanos().div_ceil(quantum.as_nanos()).max(1);
    let target = quantum * u32::try_from(quanta).unwrap_or(u32::MAX);
    if let Some(rest) = target.checked_sub(elapsed) {
        std::thread::sleep(rest);
    }
}

/// Lets one fresh release at a time count and draw its noise, first come
/// first served; each uses every core while it holds the gate.
///
/// This is for the timing padding. When two releases drew noise side by side
/// they shared the cores for part of their draw, by chance, so the same query
/// took anywhere from one to two times its own time; the high-water mark of
/// [`pad_stage`] then sat near twice the usual stage and padded most releases
/// by a third of their time (with two clients, 229 q/s unpadded against 185
/// padded). Behind the gate a draw takes its own time whatever the load, and
/// the padded stage starts once the gate is held: the wait depends on the
/// releases ahead, never on this release's noise. Throughput is unchanged in
/// principle (the draws were sharing the same cores anyway), and a lone query
/// is as fast as before.
static NOISE_GATE: parking_lot::FairMutex<()> = parking_lot::const_fair_mutex(());

/// Runs one query for analyst number `analyst`.
pub async fn run(
    state: Arc<AppState>,
    analyst: usize,
    req: QueryRequest,
) -> Result<Outcome, ApiError> {
    let started = Instant::now();
    let (d, budget) = dataset(&state, analyst, &req.dataset)?;
    let a = &state.analysts[analyst];
    let _slot =
        a.try_enter(state.server.max_concurrent_per_token)
            .ok_or(ApiError::TooManyRequests {
                limit: state.server.max_concurrent_per_token,
            })?;
    let v = validate(&state, d, &req)?;
    let dims: Vec<&str> = v.query.group_by.iter().map(|d| d.name()).collect();
    let filter_dims: Vec<&str> = v.query.filter.iter().map(|(d, _)| d.name()).collect();

    if req.dry_run {
        let st = state.clone();
        let name = req.dataset.clone();
        let key = v.key.clone();
        let (cached, spent, dataset_spent) = web::block(move || -> Result<_, ApiError> {
            let a = &st.analysts[analyst];
            Ok((
                st.ledger.find_release(&name, &key)?.is_some(),
                st.ledger.spent(&a.name, &name)?,
                st.ledger.dataset_spent(&name)?,
            ))
        })
        .await??;
        let cost = if cached {
            0.0
        } else {
            privacy::epsilon_for_scale(v.scale)?
        };
        let remaining = (budget - spent).max(0.0);
        let dataset_remaining = (d.config.epsilon_total - dataset_spent).max(0.0);
        tracing::info!(
            analyst = %a.name, dataset = %req.dataset, group_by = ?dims, filter = ?filter_dims,
            epsilon = req.epsilon, cells = v.cells, cached, dry_run = true,
            latency_ms = started.elapsed().as_secs_f64() * 1e3, "query"
        );
        return Ok(Outcome::DryRun(DryRunResponse {
            dry_run: true,
            epsilon: cost,
            noise_scale: v.scale,
            ci95: v.ci95,
            cells: v.cells,
            mechanism: privacy::MECHANISM.to_owned(),
            epsilon_remaining: remaining,
            dataset_epsilon_remaining: dataset_remaining,
            cached,
            affordable: cached
                || (cost <= remaining + TOLERANCE && cost <= dataset_remaining + TOLERANCE),
        }));
    }

    let n_cells = v.cells;
    let st = state.clone();
    let name = req.dataset.clone();
    let epsilon = req.epsilon;
    let span = tracing::Span::current();
    let (outcome, spent) = web::block(move || -> Result<(CommitOutcome, f64), ApiError> {
        // The blocking thread's log lines belong to the request too.
        let _request = span.enter();
        let d = &st.datasets[&name];
        let a = &st.analysts[analyst];
        let spent = || st.ledger.spent(&a.name, &name);
        if let Some(stored) = st.ledger.find_release(&name, &v.key)? {
            return Ok((CommitOutcome::Cached(stored), spent()?));
        }
        // Exact counts: used here to draw the release, then dropped.
        let gate = NOISE_GATE.lock();
        let t_count = Instant::now();
        let release = {
            let exact = d.data.count(&v.query)?;
            let t_noise = Instant::now();
            let release = privacy::release_counts(&exact, epsilon)?;
            tracing::debug!(
                count_ms = (t_noise - t_count).as_secs_f64() * 1e3,
                noise_ms = t_noise.elapsed().as_secs_f64() * 1e3,
                "stages"
            );
            release
        };
        drop(gate);
        // Padded outside the gate, so the next release draws while this one
        // waits. The commit comes after the padding, not inside it: its time
        // (an fsync) does not depend on the noise, and inside the padded
        // stage its jitter set the high-water mark (p90 2.5 ms against
        // 1.4 ms at p50) and padded every release by it.
        pad_stage(t_count, &name, n_cells, st.server.timing_quantum_ms);
        let padded_ms = t_count.elapsed().as_secs_f64() * 1e3;
        let cells = d.domains.cells(&v.query)?;
        let rows_json = serde_json::to_string(&Rows {
            dims: &v.query.group_by,
            cells: &cells,
            noisy: &release.noisy,
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let t_commit = Instant::now();
        let committed = st.ledger.commit_release(
            &SpendRequest {
                analyst: a.name.clone(),
                dataset: name.clone(),
                epsilon: release.epsilon,
                analyst_budget: budget,
                dataset_budget: d.config.epsilon_total,
            },
            &NewRelease {
                query_key: v.key.clone(),
                query_json: query_json(&name, &d.domains, &v.query, epsilon)?,
                rows_json,
                mechanism: privacy::MECHANISM.to_owned(),
                noise_scale: release.scale,
                ci95: privacy::ci95(release.scale)?,
            },
        );
        let commit_ms = t_commit.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(commit_ms, padded_ms, "stages");
        let outcome = committed?;
        Ok((outcome, spent()?))
    })
    .await?
    .inspect_err(|e| {
        if matches!(e.status_and_code().1, "budget_exhausted") {
            tracing::info!(
                analyst = %a.name, dataset = %req.dataset, group_by = ?dims,
                epsilon = req.epsilon, refused = "budget_exhausted", "query"
            );
        }
    })?;

    let cached = outcome.is_cached();
    let r = outcome.release();
    let rows = RawValue::from_string(r.rows_json.clone())
        .map_err(|e| ApiError::Internal(format!("stored rows are not JSON: {e}")))?;
    tracing::info!(
        analyst = %a.name, dataset = %req.dataset, group_by = ?dims, filter = ?filter_dims,
        epsilon = req.epsilon, cells = n_cells, cached, release_id = %r.release_id,
        latency_ms = started.elapsed().as_secs_f64() * 1e3, "query"
    );
    Ok(Outcome::Answer(QueryResponse {
        rows,
        mechanism: r.mechanism.clone(),
        noise_scale: r.noise_scale,
        ci95: r.ci95,
        epsilon_spent: if cached { 0.0 } else { r.epsilon },
        epsilon_remaining: (budget - spent).max(0.0),
        cached,
        release_id: r.release_id.clone(),
    }))
}
