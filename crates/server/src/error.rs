//! Every error the API can answer with, and the one table that maps each to
//! an HTTP status and a stable machine-readable [`ErrorCode`].
//!
//! Errors of the release path ([`ReleaseError`], which carries the engine's
//! and the privacy crate's) are converted here and nowhere else. Client input
//! never yields a 5xx: every 5xx row of the table is a server-side fault (a
//! ledger or opendp failure, data that no longer loads), and its message is
//! generic. The codes are an enum, listed by the OpenAPI schema
//! (`components.schemas.ErrorCode`), so clients can check theirs against it.
//!
//! | code                 | status | when |
//! |----------------------|--------|------|
//! | `unauthorized`       | 401 | no `Authorization: Bearer` token, or a token no analyst has |
//! | `forbidden_dataset`  | 403 | the analyst has no budget on the dataset |
//! | `unknown_dataset`    | 404 | no dataset of that name is configured |
//! | `unknown_dimension`  | 400 | a dimension that is no dimension of the dataset (lists the allowed ones) |
//! | `invalid_value`      | 400 | a filter value outside the dimension's public domain (lists the allowed ones) |
//! | `duplicate_dimension`| 400 | a dimension twice in `group_by` |
//! | `empty_filter`       | 400 | a filter with an empty list of values |
//! | `invalid_epsilon`    | 400 | ε ≤ 0, not finite, below 1e-6, or above `max_epsilon_per_query` |
//! | `budget_exhausted`   | 403 | a cap is smaller than the query's ε: the analyst's budget, the dataset's cap or the population's (names which, says what remains) |
//! | `too_many_cells`     | 400 | the cross product of the grouped dimensions exceeds `server.max_cells` |
//! | `too_many_dimensions`| 400 | the query touches more than 8 dimensions (`group_by` ∪ filter keys) |
//! | `malformed_json`     | 400 | the body is not JSON of the request's shape (syntax, wrong types, unknown fields) |
//! | `payload_too_large`  | 413 | the body exceeds `server.max_body_bytes` |
//! | `request_timeout`    | 408 | the request body did not arrive within `server.request_timeout_secs` |
//! | `too_many_requests`  | 429 | the analyst already has `server.max_concurrent_per_token` queries in flight |
//! | `not_found`          | 404 | no such route |
//! | `method_not_allowed` | 405 | the route exists, not with this method |
//! | `internal`           | 500 | a fault on the server (ledger, opendp, data files); nothing was released |
//! | `ledger_unavailable` | 503 | the ledger's database (PostgreSQL) cannot be reached now: down, restarting, out of connections; nothing was released or spent; retry shortly |

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use release::ReleaseError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The machine-readable code of every error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no token, or an unknown one.
    Unauthorized,
    /// 403: the analyst has no budget on the dataset.
    ForbiddenDataset,
    /// 404: no such dataset.
    UnknownDataset,
    /// 400: not a dimension of the dataset.
    UnknownDimension,
    /// 400: a value outside the dimension's public domain.
    InvalidValue,
    /// 400: a dimension named twice.
    DuplicateDimension,
    /// 400: a filter listing no values.
    EmptyFilter,
    /// 400: ε out of range.
    InvalidEpsilon,
    /// 403: a cap is too small for the query.
    BudgetExhausted,
    /// 400: more cells than `server.max_cells`.
    TooManyCells,
    /// 400: more dimensions (`group_by` ∪ filter keys) than one query may
    /// touch (`engine::MAX_QUERY_DIMS`).
    TooManyDimensions,
    /// 400: not JSON of the request's shape.
    MalformedJson,
    /// 413: body over `server.max_body_bytes`.
    PayloadTooLarge,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 429: too many queries in flight for this analyst.
    TooManyRequests,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 500: a fault on the server; nothing was released.
    Internal,
    /// 503: the ledger's database cannot be reached now; nothing was
    /// released; retry.
    LedgerUnavailable,
}

impl ErrorCode {
    /// Every code, in the order of the table above.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::Unauthorized,
        ErrorCode::ForbiddenDataset,
        ErrorCode::UnknownDataset,
        ErrorCode::UnknownDimension,
        ErrorCode::InvalidValue,
        ErrorCode::DuplicateDimension,
        ErrorCode::EmptyFilter,
        ErrorCode::InvalidEpsilon,
        ErrorCode::BudgetExhausted,
        ErrorCode::TooManyCells,
        ErrorCode::TooManyDimensions,
        ErrorCode::MalformedJson,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::TooManyRequests,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Internal,
        ErrorCode::LedgerUnavailable,
    ];

    /// The HTTP status every error of this code answers with.
    pub fn status(self) -> StatusCode {
        use ErrorCode as C;
        use StatusCode as S;
        match self {
            C::Unauthorized => S::UNAUTHORIZED,
            C::ForbiddenDataset | C::BudgetExhausted => S::FORBIDDEN,
            C::UnknownDataset | C::NotFound => S::NOT_FOUND,
            C::UnknownDimension
            | C::InvalidValue
            | C::DuplicateDimension
            | C::EmptyFilter
            | C::InvalidEpsilon
            | C::TooManyCells
            | C::TooManyDimensions
            | C::MalformedJson => S::BAD_REQUEST,
            C::PayloadTooLarge => S::PAYLOAD_TOO_LARGE,
            C::RequestTimeout => S::REQUEST_TIMEOUT,
            C::TooManyRequests => S::TOO_MANY_REQUESTS,
            C::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            C::Internal => S::INTERNAL_SERVER_ERROR,
            C::LedgerUnavailable => S::SERVICE_UNAVAILABLE,
        }
    }

    /// The code as it appears in answers (`budget_exhausted`).
    pub fn as_str(self) -> &'static str {
        use ErrorCode as C;
        match self {
            C::Unauthorized => "unauthorized",
            C::ForbiddenDataset => "forbidden_dataset",
            C::UnknownDataset => "unknown_dataset",
            C::UnknownDimension => "unknown_dimension",
            C::InvalidValue => "invalid_value",
            C::DuplicateDimension => "duplicate_dimension",
            C::EmptyFilter => "empty_filter",
            C::InvalidEpsilon => "invalid_epsilon",
            C::BudgetExhausted => "budget_exhausted",
            C::TooManyCells => "too_many_cells",
            C::TooManyDimensions => "too_many_dimensions",
            C::MalformedJson => "malformed_json",
            C::PayloadTooLarge => "payload_too_large",
            C::RequestTimeout => "request_timeout",
            C::TooManyRequests => "too_many_requests",
            C::NotFound => "not_found",
            C::MethodNotAllowed => "method_not_allowed",
            C::Internal => "internal",
            C::LedgerUnavailable => "ledger_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or unknown bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The analyst may not query this dataset.
    #[error("you have no budget on dataset `{0}`")]
    ForbiddenDataset(String),
    /// No such dataset.
    #[error("no dataset named `{name}`; configured: {}", known.join(", "))]
    UnknownDataset {
        /// The name given.
        name: String,
        /// The datasets the analyst may query.
        known: Vec<String>,
    },
    /// The release path refused or failed.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The body is not valid JSON of the expected shape.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// The body is larger than allowed.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// `server.max_body_bytes`.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout {
        /// `server.request_timeout_secs`.
        secs: u64,
    },
    /// Too many queries in flight for this token.
    #[error("too many queries in flight for this analyst (at most {limit}); retry shortly")]
    TooManyRequests {
        /// `server.max_concurrent_per_token`.
        limit: usize,
    },
    /// No such route.
    #[error("no route {method} {path}")]
    NotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// Route exists, not for this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// A server-side fault whose details go to the log only.
    #[error("internal error; nothing was released or spent")]
    Internal(String),
}

impl From<privacy::PrivacyError> for ApiError {
    fn from(e: privacy::PrivacyError) -> Self {
        ApiError::Release(e.into())
    }
}

/// The body of every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code (see the table in the docs).
    pub code: ErrorCode,
    /// What went wrong, naming the key, dimension, cap or allowed values.
    pub message: String,
    /// For `budget_exhausted`: which cap refused (`analyst`, `dataset` or
    /// `population`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<String>,
    /// For `budget_exhausted`: the name of that cap's analyst, dataset or
    /// population.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_name: Option<String>,
}

impl ApiError {
    /// The one table: the code of every error. Exhaustive on purpose: a new
    /// variant anywhere does not compile until it is placed here.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            ApiError::Unauthorized => C::Unauthorized,
            ApiError::ForbiddenDataset(_) => C::ForbiddenDataset,
            ApiError::UnknownDataset { .. } => C::UnknownDataset,
            ApiError::Release(e) => match e {
                ReleaseError::Query(q) => match q {
                    EngineError::UnknownDimension { .. } | EngineError::DimensionAbsent(_) => {
                        C::UnknownDimension
                    }
                    EngineError::InvalidValue { .. } => C::InvalidValue,
                    EngineError::DuplicateDimension(_) => C::DuplicateDimension,
                    EngineError::EmptyFilter(_) => C::EmptyFilter,
                    EngineError::TooManyCells { .. } => C::TooManyCells,
                    EngineError::TooManyDimensions { .. } => C::TooManyDimensions,
                    EngineError::InvalidSpec(_)
                    | EngineError::Io { .. }
                    | EngineError::Parquet { .. }
                    | EngineError::Schema { .. } => C::Internal,
                },
                ReleaseError::InvalidEpsilon { .. } => C::InvalidEpsilon,
                ReleaseError::TooManyCells { .. } => C::TooManyCells,
                ReleaseError::BudgetExhausted { .. } => C::BudgetExhausted,
                ReleaseError::Ledger(_) | ReleaseError::Internal(_) => C::Internal,
                ReleaseError::LedgerUnavailable(_) => C::LedgerUnavailable,
            },
            ApiError::MalformedJson(_) => C::MalformedJson,
            ApiError::PayloadTooLarge { .. } => C::PayloadTooLarge,
            ApiError::RequestTimeout { .. } => C::RequestTimeout,
            ApiError::TooManyRequests { .. } => C::TooManyRequests,
            ApiError::NotFound { .. } => C::NotFound,
            ApiError::MethodNotAllowed { .. } => C::MethodNotAllowed,
            ApiError::Internal(_) => C::Internal,
        }
    }

    /// Status and code together.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        let code = self.code();
        (code.status(), code)
    }

    /// The message shown to the client. Server faults get a generic message
    /// (their detail is logged); nothing here carries a count or a row.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::LedgerUnavailable => {
                "the ledger is unavailable; nothing was released or spent; retry shortly".to_owned()
            }
            code if code.status().is_server_error() => {
                "internal error; nothing was released or spent".to_owned()
            }
            _ => self.to_string(),
        }
    }

    /// The answer body.
    pub fn body(&self) -> ErrorBody {
        let (cap, cap_name) = match self {
            ApiError::Release(ReleaseError::BudgetExhausted { scope, name, .. }) => {
                (Some(scope.to_string()), Some(name.clone()))
            }
            _ => (None, None),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
                cap,
                cap_name,
            },
        }
    }
}

/// A blocking task that could not run or panicked is the server's fault.
impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.code();
        if code.status().is_server_error() {
            // Engine, ledger and opendp messages name files and SQL, never
            // counts or rows; they go to the log, not to the client.
            tracing::error!(code = %code, error = %self, detail = ?self, "request failed on the server");
        }
        let mut response = HttpResponse::build(code.status());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy::{BudgetScope, Epsilon};

    #[test]
    fn client_errors_are_4xx_and_server_faults_hide_detail() {
        let client = [
            ApiError::Unauthorized,
            ApiError::ForbiddenDataset("nc".into()),
            ApiError::Release(ReleaseError::Query(EngineError::EmptyFilter(
                "party".into(),
            ))),
            ApiError::Release(ReleaseError::BudgetExhausted {
                scope: BudgetScope::Population,
                name: "nc-voters".into(),
                remaining: Epsilon::from_nanos(500_000_000),
            }),
            ApiError::MalformedJson("x".into()),
        ];
        for e in client {
            assert!(e.code().status().is_client_error(), "{e}");
        }
        let fault = ApiError::Release(ReleaseError::Ledger("disk I/O error at /secret".into()));
        assert_eq!(fault.code(), ErrorCode::Internal);
        assert!(!fault.public_message().contains("secret"));
        let down = ApiError::Release(ReleaseError::LedgerUnavailable(
            "cannot connect to postgres://rollcall@db.secret:5432/l".into(),
        ));
        assert_eq!(
            down.status_and_code(),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::LedgerUnavailable
            )
        );
        assert!(!down.public_message().contains("secret"));
        assert!(down.public_message().contains("retry"));
    }

    /// A refusal names the cap that refused, in the message and as fields.
    #[test]
    fn budget_refusals_name_their_cap() {
        let e = ApiError::Release(ReleaseError::BudgetExhausted {
            scope: BudgetScope::Population,
            name: "nc-voters".into(),
            remaining: Epsilon::from_nanos(200_000_000),
        });
        let body = serde_json::to_value(e.body()).unwrap();
        assert_eq!(body["error"]["code"], "budget_exhausted");
        assert_eq!(body["error"]["cap"], "population");
        assert_eq!(body["error"]["cap_name"], "nc-voters");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("population") && message.contains("0.2"),
            "{message}"
        );
    }

    /// The enum, its wire form and its table agree, for every code.
    #[test]
    fn every_code_serialises_as_its_name() {
        for code in ErrorCode::ALL {
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire, code.as_str(), "{code:?}");
            let back: ErrorCode = serde_json::from_value(wire).unwrap();
            assert_eq!(back, code);
        }
    }
}
