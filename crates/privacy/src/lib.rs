//! Differential privacy for rollcall: the mechanism, its cost in exact ε,
//! budgets and the durable ledger.
//!
//! This crate is the boundary an auditor reads. It takes exact counts over
//! *public* cells (the engine enumerates cells from the layout, never from the
//! data) and returns only noisy counts together with the ε they cost, as
//! computed by opendp's own privacy map. It knows nothing of HTTP, JSON request
//! types or file formats. `docs/privacy.md` explains why each release is
//! private; [`mechanism`] is the code that the explanation describes.
//!
//! ```text
//! asked ε ──charge_for──▶ Charge { scale, ε charged, ci95 }   (before any data)
//! ExactCounts (engine) + Charge ──release_counts──▶ Release { noisy, charge }
//! Caps + NewRelease ──Ledger::commit_release (one transaction: SQLite IMMEDIATE,
//!                     or PostgreSQL with the population's lock rows)──▶ Released | Cached
//! ```
//!
//! Invariants:
//! - all noise comes from opendp's exact discrete Laplace sampler, whose
//!   random bytes come from OpenSSL's `RAND_priv_bytes` as OpenSSL ships it;
//! - every ε charged is opendp's privacy map at `d_in = 1`, rounded up to a
//!   whole nano-ε, never a hand formula;
//! - exact counts ([`ExactCounts`]) can be read only here, to add noise;
//! - the ledger never lets the sum of ε spent pass an analyst's, a dataset's
//!   or a population's cap, even under concurrent requests, across
//!   restarts, or from several servers sharing one PostgreSQL ledger, in
//!   exact integer arithmetic.

mod epsilon;
mod error;
mod ledger;
pub mod mechanism;

pub use epsilon::{Epsilon, NANOS_PER_EPSILON};
pub use error::{BudgetScope, PrivacyError};
pub use ledger::{
    Balances, Caps, CommitOutcome, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DatasetSummary,
    Ledger, LedgerTotals, Location, NewRelease, PopulationSummary, PostgresSettings,
    SCHEMA_VERSION, Sharing, SpendSummary, StoredRelease, StoredSpend,
};
pub use mechanism::{
    Charge, ExactCounts, MECHANISM, MIN_EPSILON, Release, charge_for, ci95, epsilon_for_scale,
    noise_source, openssl_version, release_counts, scale_for_epsilon,
};
