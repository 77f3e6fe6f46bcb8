//! The rollcall query server: answers only differentially private counts
//! over HTTP, within budgets that a durable ledger keeps.
//!
//! ```text
//! serve(config path) (what `rollcall serve` calls)
//!   Config::from_file ──▶ AppState::load (layouts, Parquet → engine::Dataset, Ledger::open_at,
//!                                         release::ReleaseService)
//!   Live (current snapshot; SIGHUP ──▶ reload::Live::reload swaps it)
//!   run() ──▶ HttpServer(create_app) ──▶ observe (request id, metrics, access log)
//!         ──▶ routes::query (thin) ──▶ ReleaseService::answer_stored (memory; async thread
//!                                      with SQLite, blocking one with a PostgreSQL ledger)
//!                                  └─▶ ReleaseService::answer (blocking thread: affordability,
//!                                      count, noise, padding, Ledger::commit_release) ──▶ respond
//! ```
//!
//! Invariants:
//! - no response, log line or error carries a row, an exact count, a token or
//!   a group key that came from the data: keys come from the public domains,
//!   counts only through opendp's noise, and the ledger commit happens before
//!   the answer is sent;
//! - client input never yields a 5xx: every error goes through the one table
//!   in [`error::ApiError::code`], whose codes are the [`error::ErrorCode`]
//!   enum the OpenAPI schema lists;
//! - the binary and the tests build the same app with [`create_app`]
//!   (`tests/app.rs` serves it in process through `testkit::spawn_app`);
//! - every request runs in a `request` span carrying its `request_id`.

pub mod api;
pub mod config;
pub mod error;
pub mod metrics;
pub mod reload;
pub mod request_id;
pub mod routes;
mod serve;
pub mod state;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpServer, middleware, web};
use tracing::Instrument;

pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use reload::Live;
pub use serve::{ServeError, serve};
pub use state::AppState;

/// Builds the application: routes, JSON limits and error mapping, request
/// ids, metrics and request logging. Used by [`run`] and by tests.
pub fn create_app(
    live: Arc<Live>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // `max_body_bytes` needs a restart (see `reload`): read it once here.
    let json = web::JsonConfig::default()
        .limit(live.snapshot().server.max_body_bytes)
        .content_type_required(false)
        .error_handler(routes::json_error);
    App::new()
        .app_data(web::Data::from(live))
        .app_data(json)
        .wrap(middleware::from_fn(observe))
        .service(
            web::resource("/healthz")
                .route(web::get().to(routes::healthz))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(routes::metrics))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            web::resource("/openapi.json")
                .route(web::get().to(routes::openapi))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            web::resource("/v1/datasets")
                .route(web::get().to(routes::datasets))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            web::resource("/v1/query")
                .route(web::post().to(routes::query))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            web::resource("/v1/budget")
                .route(web::get().to(routes::budget))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            web::resource("/v1/releases")
                .route(web::get().to(routes::releases))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .default_service(web::to(routes::not_found))
}

/// Around every request: gives it a request id (the client's `X-Request-Id`
/// if valid, else a fresh one) and runs it inside a `request` span carrying
/// that id, so every log line of the request has it; returns the id in the
/// `X-Request-Id` response header; counts it in the metrics by matched route
/// and status; and writes one access line: method, matched route (not the
/// raw path), status and latency. Never headers, bodies or query strings.
async fn observe(
    req: ServiceRequest,
    next: middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id::from_header(
        req.headers()
            .get(request_id::HEADER)
            .map(HeaderValue::as_bytes),
    );
    let span = tracing::info_span!("request", request_id = %id);
    let method = req.method().clone();
    let live = req.app_data::<web::Data<Live>>().cloned();
    async move {
        let mut res = next.call(req).await?;
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| metrics::UNMATCHED.to_owned());
        let status = res.status().as_u16();
        let latency = started.elapsed();
        if let Some(live) = live {
            live.metrics.request(&route, status, latency);
        }
        // Valid and generated ids are plain ASCII, so this cannot fail.
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static(request_id::HEADER), value);
        }
        tracing::info!(
            method = %method,
            route = %route,
            status,
            latency_ms = latency.as_secs_f64() * 1e3,
            "request"
        );
        Ok(res)
    }
    .instrument(span)
    .await
}

/// A started server: await `server` to run it; `addr` is where it listens.
pub struct Running {
    /// The server future (also a handle: `server.handle().stop(true)`).
    pub server: Server,
    /// The bound address (the real port when `listen` had port 0).
    pub addr: SocketAddr,
}

/// Binds `server.listen` and starts serving. Call inside an actix system
/// (`actix_web::rt::System::new().block_on(...)`).
pub fn run(live: Arc<Live>) -> std::io::Result<Running> {
    let state = live.snapshot();
    let listen = state.server.listen.clone();
    let timeout = Duration::from_secs(state.server.request_timeout_secs);
    let workers = state.server.workers;
    let mut http = HttpServer::new(move || create_app(live.clone()))
        .client_request_timeout(timeout)
        .client_disconnect_timeout(Duration::from_secs(2))
        .shutdown_timeout(5);
    if let Some(w) = workers {
        http = http.workers(w);
    }
    let http = http.bind(&listen).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("server.listen: cannot bind {listen}: {e}"),
        )
    })?;
    let addr = http.addrs().first().copied().ok_or_else(|| {
        std::io::Error::other(format!("server.listen: {listen} bound no address"))
    })?;
    Ok(Running {
        server: http.run(),
        addr,
    })
}
