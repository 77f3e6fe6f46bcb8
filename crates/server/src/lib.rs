//! The rollcall query server: answers only differentially private counts
//! over HTTP, within budgets that a durable ledger keeps.
//!
//! ```text
//! rollcall serve --config FILE
//!   Config::from_file ──▶ AppState::load (layouts, Parquet → engine::Dataset, Ledger::open)
//!   run() ──▶ HttpServer(create_app) ──▶ routes (thin) ──▶ query::run (service)
//!                                                   engine::Dataset::count ─┐ blocking thread
//!                                                   privacy::release_counts ─┤
//!                                                   Ledger::commit_release ──┘ ──▶ respond
//! ```
//!
//! Invariants:
//! - no response, log line or error carries a row, an exact count, a token or
//!   a group key that came from the data: keys come from the public domains,
//!   counts only through opendp's noise, and the ledger commit happens before
//!   the answer is sent;
//! - client input never yields a 5xx: every error goes through the one table
//!   in [`error::ApiError::status_and_code`];
//! - the binary and the tests build the same app with [`create_app`].

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod query;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, middleware, web};

pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use state::AppState;

/// Builds the application: routes, JSON limits and error mapping, request
/// logging. Used by [`run`] and by tests.
pub fn create_app(
    state: Arc<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json = web::JsonConfig::default()
        .limit(state.server.max_body_bytes)
        .content_type_required(false)
        .error_handler(routes::json_error);
    App::new()
        .app_data(web::Data::from(state))
        .app_data(json)
        .wrap(middleware::from_fn(log_request))
        .service(
            web::resource("/healthz")
                .route(web::get().to(routes::healthz))
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

/// One log line per request: method, matched route (not the raw path),
/// status and latency. Never headers, bodies or query strings.
async fn log_request(
    req: ServiceRequest,
    next: middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "<no route>".to_owned());
    tracing::info!(
        method = %method,
        route = %route,
        status = res.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    Ok(res)
}

/// A started server: await `server` to run it; `addr` is where it listens.
pub struct Running {
    /// The server future (also a handle: `server.handle().stop(true)`).
    pub server: Server,
    /// The bound address (the real port when `listen` had port 0).
    pub addr: SocketAddr,
}

/// Binds `state.server.listen` and starts serving. Call inside an actix
/// system (`actix_web::rt::System::new().block_on(...)`).
pub fn run(state: Arc<AppState>) -> std::io::Result<Running> {
    let listen = state.server.listen.clone();
    let timeout = Duration::from_secs(state.server.request_timeout_secs);
    let workers = state.server.workers;
    let app_state = state.clone();
    let mut http = HttpServer::new(move || create_app(app_state.clone()))
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
