//! The HTTP handlers. Thin: they authenticate, parse, and call the release
//! service ([`release::ReleaseService`]); every failure is an [`ApiError`].

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use utoipa::OpenApi;

use privacy::Epsilon;
use release::{Answer, Ask, Spender};
use serde_json::value::RawValue;

use crate::api::{
    BudgetEntry, BudgetResponse, DatasetInfo, DatasetsResponse, DimensionInfo, DryRunResponse,
    Health, LedgerHealth, QueryRequest, QueryResponse, QueryResponseMeta, ReleaseInfo,
    ReleasesResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::metrics::{Budget, Budgets, Reloads};
use crate::reload::Live;
use crate::state::{Analyst, AppState, LoadedDataset};

/// The authenticated analyst of a request, with the state snapshot they were
/// authenticated against: the request uses that snapshot to the end, even if
/// a reload swaps in another meanwhile. Extracting it fails with `unauthorized`.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The snapshot.
    pub state: Arc<AppState>,
    /// Index into the snapshot's [`AppState::analysts`].
    pub index: usize,
}

impl Authed {
    fn analyst(&self) -> &Analyst {
        &self.state.analysts[self.index]
    }
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Authed, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// The bearer token of a request, if it has a well-formed one.
fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    Ok(token)
}

fn live(req: &HttpRequest) -> Result<&web::Data<Live>, ApiError> {
    req.app_data::<web::Data<Live>>()
        .ok_or_else(|| ApiError::Internal("no app state".into()))
}

fn authenticate(req: &HttpRequest) -> Result<Authed, ApiError> {
    let state = live(req)?.snapshot();
    let token = bearer(req)?;
    let analyst = state.authenticate(token).ok_or(ApiError::Unauthorized)?;
    let index = state
        .analysts
        .iter()
        .position(|a| std::ptr::eq(a, analyst))
        .ok_or(ApiError::Unauthorized)?;
    Ok(Authed { state, index })
}

/// A JSON body that must arrive within `server.request_timeout_secs`.
///
/// actix's `client_request_timeout` covers only the request head: a client
/// that sends its headers and then trickles the body a byte at a time would
/// otherwise hold a connection (and a buffer) for as long as it likes. Past
/// the limit the answer is `request_timeout` (408) and the connection is
/// closed. Size and syntax errors are those of [`web::Json`] (see
/// [`json_error`]).
#[derive(Debug)]
pub struct TimedJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for TimedJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<TimedJson<T>, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // `request_timeout_secs` needs a restart to change, so any snapshot
        // has the value the server was started with.
        let secs = req
            .app_data::<web::Data<Live>>()
            .map_or(crate::config::DEFAULT_REQUEST_TIMEOUT_SECS, |l| {
                l.snapshot().server.request_timeout_secs
            });
        let read = web::Json::<T>::from_request(req, payload);
        Box::pin(async move {
            match actix_web::rt::time::timeout(Duration::from_secs(secs), read).await {
                Ok(json) => Ok(TimedJson(json?.into_inner())),
                Err(_elapsed) => Err(ApiError::RequestTimeout { secs }.into()),
            }
        })
    }
}

/// Maps the JSON extractor's errors onto the error table.
pub fn json_error(err: JsonPayloadError, req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            // The payload stream does not say its limit: it is the server's.
            let limit = req
                .app_data::<web::Data<Live>>()
                .map_or(crate::config::DEFAULT_MAX_BODY_BYTES, |l| {
                    l.snapshot().server.max_body_bytes
                });
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Deserialize(e) => ApiError::MalformedJson(e.to_string()),
        other => ApiError::MalformedJson(other.to_string()),
    };
    api.into()
}

/// Health: 200 once the datasets are loaded and while the ledger answers (a
/// round trip to PostgreSQL, on a blocking thread); 503 with the ledger's
/// state when it does not, so a load balancer sends queries to another
/// replica until it recovers.
#[utoipa::path(
    get, path = "/healthz",
    responses((status = 200, body = Health), (status = 503, body = Health))
)]
pub async fn healthz(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let state = live(&req)?.snapshot();
    let backend = state.ledger().backend_name().to_owned();
    let checked = web::block(move || state.ledger().check()).await?;
    let (mut response, status, ledger) = match checked {
        Ok(()) => (HttpResponse::Ok(), "ok", "ok"),
        Err(e) => {
            tracing::warn!(error = %e, "health: the ledger does not answer");
            (
                HttpResponse::ServiceUnavailable(),
                "ledger_unavailable",
                "unavailable",
            )
        }
    };
    Ok(response.json(Health {
        status: status.into(),
        ledger: LedgerHealth {
            backend,
            state: ledger.into(),
        },
    }))
}

/// The datasets the analyst may query, with their public dimensions.
#[utoipa::path(
    get, path = "/v1/datasets",
    responses((status = 200, body = DatasetsResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn datasets(who: Authed) -> HttpResponse {
    let state = &who.state;
    let analyst = who.analyst();
    let datasets = state
        .datasets
        .values()
        .filter(|d| analyst.epsilon.contains_key(&d.config.name))
        .map(|d| DatasetInfo {
            name: d.config.name.clone(),
            layout: d.target.domains.layout_name().to_owned(),
            as_of: d.config.as_of.clone(),
            max_epsilon_per_query: d.config.max_epsilon_per_query.to_f64(),
            max_cells: state.server.max_cells,
            population: d.target.policy.population.clone(),
            share_releases: d.target.policy.share_releases,
            dimensions: d
                .target
                .domains
                .dims()
                .iter()
                .map(|dim| DimensionInfo {
                    name: dim.name.clone(),
                    values: dim.values.clone(),
                    labels: dim.labels.clone(),
                })
                .collect(),
        })
        .collect();
    HttpResponse::Ok().json(DatasetsResponse { datasets })
}

/// A differentially private count by public groups (or, with `dry_run`,
/// what it would cost).
#[utoipa::path(
    post, path = "/v1/query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "noisy counts, or the cost of a dry run", body = QueryResponse),
        (status = 200, description = "dry run", body = DryRunResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 408, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub async fn query(
    live: web::Data<Live>,
    who: Authed,
    body: TimedJson<QueryRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.0;
    let state = who.state.clone();
    let (_, budget) = dataset_for(&state, who.index, &req.dataset)?;
    let analyst = who.analyst();
    let limit = state.server.max_concurrent_per_token;
    let _slot = analyst
        .try_enter(limit)
        .ok_or(ApiError::TooManyRequests { limit })?;
    let ask = Ask {
        group_by: req.group_by,
        filter: req
            .filter
            .into_iter()
            .map(|(d, vs)| (d, vs.into_iter().map(|v| v.into_string()).collect()))
            .collect(),
        epsilon: req.epsilon,
        dry_run: req.dry_run,
        max_cells: state.server.max_cells,
    };
    let target = &state.datasets[&req.dataset].target;
    let spender = Spender {
        name: &analyst.name,
        budget,
    };
    // A stored release this process has seen is served from memory on this
    // thread; anything else (ledger, counting, noise) on a blocking one. Even
    // a stored answer reads the analyst's remaining budget from the ledger:
    // with a remote one (PostgreSQL) that is a round trip, which must not
    // hold up the async thread, so it goes to the blocking one too.
    let on_this_thread = if state.ledger().is_remote() {
        None
    } else {
        state.service.answer_stored(target, spender, &ask)?
    };
    let answer = match on_this_thread {
        Some(answer) => answer,
        None => {
            let state = state.clone();
            let (dataset, index) = (req.dataset.clone(), who.index);
            let span = tracing::Span::current();
            web::block(move || {
                let _request = span.enter();
                let target = &state.datasets[&dataset].target;
                let analyst = &state.analysts[index];
                let spender = Spender {
                    name: &analyst.name,
                    budget,
                };
                match state.service.answer_stored(target, spender, &ask)? {
                    Some(stored) => Ok(stored),
                    None => state.service.answer(target, spender, &ask),
                }
            })
            .await??
        }
    };
    Ok(match answer {
        Answer::Cost(c) => HttpResponse::Ok().json(DryRunResponse {
            dry_run: true,
            epsilon: c.epsilon.to_f64(),
            noise_scale: c.noise_scale,
            ci95: c.ci95,
            cells: c.cells,
            mechanism: privacy::MECHANISM.to_owned(),
            epsilon_remaining: c.remaining.analyst.to_f64(),
            dataset_epsilon_remaining: c.remaining.dataset.to_f64(),
            population: c.remaining.population,
            population_epsilon_remaining: c.remaining.population_left.to_f64(),
            cached: c.cached,
            affordable: c.affordable,
        }),
        Answer::Release(r) => {
            live.metrics.release(&req.dataset, r.cached);
            let rel = &r.release;
            let meta = QueryResponseMeta {
                mechanism: rel.mechanism.clone(),
                noise_scale: rel.noise_scale,
                ci95: rel.ci95,
                epsilon_spent: if r.cached { 0.0 } else { rel.epsilon.to_f64() },
                epsilon_remaining: r.analyst_remaining.to_f64(),
                cached: r.cached,
                release_id: rel.release_id.clone(),
            };
            HttpResponse::Ok()
                .content_type("application/json")
                .body(meta.with_rows(&rel.rows_json))
        }
    })
}

/// The dataset `name` and the analyst's budget on it, or why not.
fn dataset_for<'a>(
    state: &'a AppState,
    analyst: usize,
    name: &str,
) -> Result<(&'a LoadedDataset, Epsilon), ApiError> {
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

/// The analyst's budget on every dataset they may query.
#[utoipa::path(
    get, path = "/v1/budget",
    responses((status = 200, body = BudgetResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn budget(who: Authed) -> Result<HttpResponse, ApiError> {
    let response = web::block(move || -> Result<BudgetResponse, ApiError> {
        let state = &who.state;
        let analyst = who.analyst();
        let mut datasets = Vec::new();
        for (name, &budget) in &analyst.epsilon {
            let Some(d) = state.datasets.get(name) else {
                continue;
            };
            let p = &d.target.policy;
            let ledger = state.ledger();
            let spent = ledger.spent(&analyst.name, name)?;
            let dataset_spent = ledger.dataset_spent(name)?;
            let population_spent = ledger.population_spent(&p.population, &p.population_members)?;
            let population_left = p.population_cap.saturating_sub(population_spent);
            let dataset_left = p.dataset_cap.map_or(population_left, |cap| {
                cap.saturating_sub(dataset_spent).min(population_left)
            });
            datasets.push(BudgetEntry {
                dataset: name.clone(),
                budget: budget.to_f64(),
                spent: spent.to_f64(),
                remaining: budget.saturating_sub(spent).to_f64(),
                dataset_total: p.dataset_cap.map(Epsilon::to_f64),
                dataset_remaining: dataset_left.to_f64(),
                population: p.population.clone(),
                population_total: p.population_cap.to_f64(),
                population_remaining: population_left.to_f64(),
                max_epsilon_per_query: p.max_epsilon_per_query.to_f64(),
            });
        }
        Ok(BudgetResponse {
            analyst: analyst.name.clone(),
            datasets,
        })
    })
    .await??;
    Ok(HttpResponse::Ok().json(response))
}

/// The releases the analyst paid for, oldest first (no rows).
#[utoipa::path(
    get, path = "/v1/releases",
    responses((status = 200, body = ReleasesResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn releases(who: Authed) -> Result<HttpResponse, ApiError> {
    let response = web::block(move || -> Result<ReleasesResponse, ApiError> {
        let state = &who.state;
        let analyst = who.analyst();
        let stored = state.ledger().releases_for(&analyst.name)?;
        let releases = stored
            .into_iter()
            .map(|r| {
                let query = RawValue::from_string(r.query_json)
                    .map_err(|e| ApiError::Internal(format!("stored query is not JSON: {e}")))?;
                Ok(ReleaseInfo {
                    release_id: r.release_id,
                    dataset: r.dataset,
                    query,
                    epsilon: r.epsilon.to_f64(),
                    mechanism: r.mechanism,
                    noise_scale: r.noise_scale,
                    ci95: r.ci95,
                    created_at: r.created_at,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(ReleasesResponse { releases })
    })
    .await??;
    Ok(HttpResponse::Ok().json(response))
}

/// Prometheus metrics (see [`crate::metrics`] for what they are). Needs the
/// bearer token whose SHA-256 is `server.metrics_token_sha256` when that is
/// set; open otherwise.
pub async fn metrics(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let live = live(&req)?.clone();
    let state = live.snapshot();
    if let Some(want) = &state.server.metrics_token_sha256 {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let token = bearer(&req)?;
        let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !bool::from(got.ct_eq(&want.0)) {
            return Err(ApiError::Unauthorized);
        }
    }
    let budgets = web::block(move || -> Result<Budgets, ApiError> {
        let ledger = state.ledger();
        let mut budgets = Budgets::default();
        for d in state.datasets.values() {
            let p = &d.target.policy;
            budgets.datasets.push(Budget {
                name: d.config.name.clone(),
                spent: ledger.dataset_spent(&d.config.name)?.to_f64(),
                total: p.dataset_cap.map(Epsilon::to_f64),
            });
            if !budgets.populations.iter().any(|b| b.name == p.population) {
                let spent = ledger.population_spent(&p.population, &p.population_members)?;
                budgets.populations.push(Budget {
                    name: p.population.clone(),
                    spent: spent.to_f64(),
                    total: Some(p.population_cap.to_f64()),
                });
            }
        }
        Ok(budgets)
    })
    .await??;
    let (ok, refused) = live.reload_counts();
    let text = live.metrics.render(&budgets, Reloads { ok, refused });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// Unknown route.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

/// Known route, wrong method.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI description, generated from the handler annotations and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rollcall",
        description = "Differentially private counts over a voter registration file. \
                       Every count is noisy (opendp discrete Laplace); every new query spends ε \
                       from the analyst's budget, within the caps of the dataset and of its \
                       population, which bound every voter's privacy loss; an identical query \
                       returns the stored release for free."
    ),
    paths(healthz, datasets, query, budget, releases, openapi),
    components(schemas(
        Health, LedgerHealth, DatasetsResponse, DatasetInfo, DimensionInfo, QueryRequest,
        crate::api::FilterValue, QueryResponse, DryRunResponse, BudgetResponse, BudgetEntry,
        ReleasesResponse, ReleaseInfo, ErrorBody, crate::error::ErrorDetail,
        crate::error::ErrorCode
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
