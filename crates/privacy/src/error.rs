//! The privacy crate's errors.

use std::fmt;

use crate::Epsilon;

/// Which cap a refused spend would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    /// The analyst's own budget on the dataset.
    Analyst,
    /// The dataset's own cap on the sum spent by all analysts together.
    Dataset,
    /// The population's cap: the sum spent on every dataset holding the same
    /// voters, by all analysts. This is what bounds a voter's privacy loss.
    Population,
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetScope::Analyst => "analyst",
            BudgetScope::Dataset => "dataset",
            BudgetScope::Population => "population",
        })
    }
}

/// Everything that can go wrong when releasing or accounting.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// ε (or a budget) is not a usable amount.
    #[error("invalid epsilon {epsilon}: {reason}")]
    InvalidEpsilon {
        /// The value given.
        epsilon: f64,
        /// Why it was refused.
        reason: String,
    },
    /// The spend would pass a cap; nothing was spent or released.
    #[error("the {scope} budget of `{name}` is exhausted: {remaining} epsilon remains")]
    BudgetExhausted {
        /// Which cap.
        scope: BudgetScope,
        /// Whose: the analyst's, the dataset's or the population's name.
        name: String,
        /// What remains of it (never negative).
        remaining: Epsilon,
    },
    /// opendp refused to build or run a measurement.
    #[error("opendp: {0}")]
    OpenDp(String),
    /// The ledger database failed; nothing was released.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The ledger database cannot be reached now (PostgreSQL down,
    /// restarting, or out of connections); nothing was released, and the
    /// same request may succeed later.
    #[error("ledger unavailable: {0}")]
    LedgerUnavailable(String),
}

impl From<opendp::error::Error> for PrivacyError {
    fn from(e: opendp::error::Error) -> Self {
        // Only the variant and message: opendp's backtrace is noise in a log.
        let message = e.message.unwrap_or_default();
        PrivacyError::OpenDp(format!("{:?}: {message}", e.variant))
    }
}

impl From<rusqlite::Error> for PrivacyError {
    fn from(e: rusqlite::Error) -> Self {
        PrivacyError::Ledger(e.to_string())
    }
}
