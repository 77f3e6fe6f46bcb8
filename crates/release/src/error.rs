//! The release path's errors. None carries a count or a row; every one is
//! mapped to an HTTP status and code once, by the server.

use engine::EngineError;
use privacy::{BudgetScope, Epsilon, PrivacyError};

/// Why a query was not answered. Nothing was spent and nothing released.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The query does not fit the dataset's public domains (a dimension, a
    /// value, a duplicate, an empty filter).
    #[error(transparent)]
    Query(#[from] EngineError),
    /// ε is not usable for this dataset.
    #[error("invalid epsilon {epsilon}: {reason}")]
    InvalidEpsilon {
        /// The value given.
        epsilon: f64,
        /// Why it was refused.
        reason: String,
    },
    /// The answer would have more cells than the server allows.
    #[error("the query has {cells} cells; this server allows at most {max}")]
    TooManyCells {
        /// Cells the query would have.
        cells: u64,
        /// `server.max_cells`.
        max: u64,
    },
    /// A cap is too small for the query's ε.
    #[error("the {scope} budget of `{name}` is exhausted: {remaining} epsilon remains")]
    BudgetExhausted {
        /// Which cap: the analyst's, the dataset's or the population's.
        scope: BudgetScope,
        /// Whose.
        name: String,
        /// What remains of it.
        remaining: Epsilon,
    },
    /// The ledger failed; nothing was released.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The ledger cannot be reached now (its database is down or
    /// restarting); nothing was released, and the same query may succeed
    /// later.
    #[error("ledger unavailable: {0}")]
    LedgerUnavailable(String),
    /// Anything else on the server's side (opendp, a stored row that does
    /// not parse); nothing was released.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<PrivacyError> for ReleaseError {
    fn from(e: PrivacyError) -> Self {
        match e {
            PrivacyError::InvalidEpsilon { epsilon, reason } => {
                ReleaseError::InvalidEpsilon { epsilon, reason }
            }
            PrivacyError::BudgetExhausted {
                scope,
                name,
                remaining,
            } => ReleaseError::BudgetExhausted {
                scope,
                name,
                remaining,
            },
            PrivacyError::Ledger(m) => ReleaseError::Ledger(m),
            PrivacyError::LedgerUnavailable(m) => ReleaseError::LedgerUnavailable(m),
            PrivacyError::OpenDp(m) => ReleaseError::Internal(format!("opendp: {m}")),
        }
    }
}
