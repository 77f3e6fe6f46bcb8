//! Every error the API can answer with, and the one table that maps each to
//! an HTTP status and a stable machine-readable `code`.
//!
//! Errors from the engine ([`EngineError`]) and the privacy crate
//! ([`PrivacyError`]) are converted here and nowhere else. Client input never
//! yields a 5xx: every 5xx row of the table is a server-side fault (a ledger
//! or opendp failure, data that no longer loads), and its message is generic.
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
//! | `budget_exhausted`   | 403 | the analyst's or the dataset's remaining ε is smaller than the query's (says what remains) |
//! | `too_many_cells`     | 400 | the cross product of the grouped dimensions exceeds `server.max_cells` |
//! | `malformed_json`     | 400 | the body is not JSON of the request's shape (syntax, wrong types, unknown fields) |
//! | `payload_too_large`  | 413 | the body exceeds `server.max_body_bytes` |
//! | `request_timeout`    | 408 | the request body did not arrive within `server.request_timeout_secs` |
//! | `too_many_requests`  | 429 | the analyst already has `server.max_concurrent_per_token` queries in flight |
//! | `not_found`          | 404 | no such route |
//! | `method_not_allowed` | 405 | the route exists, not with this method |
//! | `internal`           | 500 | a fault on the server (ledger, opendp, data files); nothing was released |

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use privacy::PrivacyError;
use serde::Serialize;
use utoipa::ToSchema;

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
    /// A query error from the engine (dimension, value, cells).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// ε is out of range for this dataset.
    #[error("invalid epsilon {epsilon}: {reason}")]
    InvalidEpsilon {
        /// The value given.
        epsilon: f64,
        /// Why it was refused.
        reason: String,
    },
    /// A privacy error (budget, opendp, ledger).
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
    /// The query has more cells than the server allows.
    #[error("the query has {cells} cells; this server allows at most {max}")]
    TooManyCells {
        /// Cells the query would have.
        cells: u64,
        /// `server.max_cells`.
        max: u64,
    },
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

/// The body of every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `budget_exhausted` (see the table in the docs).
    pub code: &'static str,
    /// What went wrong, naming the key, dimension or allowed values.
    pub message: String,
}

impl ApiError {
    /// The one table: status and code of every error. Exhaustive on purpose:
    /// a new variant anywhere does not compile until it is placed here.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            ApiError::ForbiddenDataset(_) => (S::FORBIDDEN, "forbidden_dataset"),
            ApiError::UnknownDataset { .. } => (S::NOT_FOUND, "unknown_dataset"),
            ApiError::Engine(e) => match e {
                EngineError::UnknownDimension { .. } | EngineError::DimensionAbsent(_) => {
                    (S::BAD_REQUEST, "unknown_dimension")
                }
                EngineError::InvalidValue { .. } => (S::BAD_REQUEST, "invalid_value"),
                EngineError::DuplicateDimension(_) => (S::BAD_REQUEST, "duplicate_dimension"),
                EngineError::EmptyFilter(_) => (S::BAD_REQUEST, "empty_filter"),
                EngineError::TooManyCells { .. } => (S::BAD_REQUEST, "too_many_cells"),
                EngineError::InvalidSpec(_)
                | EngineError::Io { .. }
                | EngineError::Parquet { .. }
                | EngineError::Schema { .. } => (S::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::InvalidEpsilon { .. } => (S::BAD_REQUEST, "invalid_epsilon"),
            ApiError::Privacy(e) => match e {
                PrivacyError::InvalidEpsilon { .. } => (S::BAD_REQUEST, "invalid_epsilon"),
                PrivacyError::BudgetExhausted { .. } => (S::FORBIDDEN, "budget_exhausted"),
                PrivacyError::OpenDp(_) | PrivacyError::Ledger(_) => {
                    (S::INTERNAL_SERVER_ERROR, "internal")
                }
            },
            ApiError::TooManyCells { .. } => (S::BAD_REQUEST, "too_many_cells"),
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json"),
            ApiError::PayloadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout { .. } => (S::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::TooManyRequests { .. } => (S::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The message shown to the client. Server faults get a generic message
    /// (their detail is logged); nothing here carries a count or a row.
    pub fn public_message(&self) -> String {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            "internal error; nothing was released or spent".to_owned()
        } else {
            self.to_string()
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
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            // Engine, ledger and opendp messages name files and SQL, never
            // counts or rows; they go to the log, not to the client.
            tracing::error!(code, error = %self, detail = ?self, "request failed on the server");
        }
        let mut response = HttpResponse::build(status);
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code,
                message: self.public_message(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Dim;
    use privacy::BudgetScope;

    #[test]
    fn client_errors_are_4xx_and_server_faults_hide_detail() {
        let client = [
            ApiError::Unauthorized,
            ApiError::ForbiddenDataset("nc".into()),
            ApiError::Engine(EngineError::EmptyFilter(Dim::Party)),
            ApiError::Privacy(PrivacyError::BudgetExhausted {
                scope: BudgetScope::Analyst,
                remaining: 0.5,
            }),
            ApiError::MalformedJson("x".into()),
        ];
        for e in client {
            assert!(e.status_and_code().0.is_client_error(), "{e}");
        }
        let fault = ApiError::Privacy(PrivacyError::Ledger("disk I/O error at /secret".into()));
        assert_eq!(
            fault.status_and_code(),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert!(!fault.public_message().contains("secret"));
    }
}
