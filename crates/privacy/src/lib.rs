//! Differential privacy for rollcall: mechanisms, their cost, budgets and the
//! durable ledger.
//!
//! This crate is the boundary an auditor reads. It takes exact counts over
//! *public* cells (the engine enumerates cells from the layout, never from the
//! data) and returns only noisy counts together with the ε they cost, as
//! computed by opendp's own privacy map. It knows nothing of HTTP, JSON request
//! types or file formats. `docs/privacy.md` explains why each release is
//! private; [`mechanism`] is the code that the explanation describes.
//!
//! ```text
//! exact counts (engine) ──release_counts──▶ Release { noisy, scale, ε }
//!                                              │
//! SpendRequest + NewRelease ──Ledger::commit_release (one IMMEDIATE txn)──▶ Released | Cached
//! ```
//!
//! Invariants:
//! - all noise comes from opendp (discrete Laplace, OpenSSL's CSPRNG);
//! - every ε charged is opendp's privacy map at `d_in = 1`, never a hand formula;
//! - the ledger never lets the sum of ε spent pass an analyst's or a dataset's
//!   cap, even under concurrent requests or across restarts.

mod error;
mod ledger;
pub mod mechanism;

pub use error::{BudgetScope, PrivacyError};
pub use ledger::{CommitOutcome, Ledger, NewRelease, SpendRequest, SpendSummary, StoredRelease};
pub use mechanism::{
    MECHANISM, Release, ci95, epsilon_for_scale, randomness_source, release_counts,
    scale_for_epsilon,
};
