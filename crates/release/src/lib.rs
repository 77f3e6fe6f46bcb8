//! The release path as one service: from a query over public names to a
//! committed, noisy answer.
//!
//! ```text
//! Ask ──validate (public domains, ε → Charge)──▶ stored? ──▶ affordable? (read-only)
//!     ──gate──▶ engine count ──▶ privacy noise ──▶ Ledger::commit_release (the authority)
//!     ──▶ pad to the class deadline ──gate──▶ Answer
//! ```
//!
//! [`ReleaseService`] is owned by the server's state: the noise gate, the
//! deadlines and the stored releases live in it, never in process-wide
//! statics, so tests build as many as they like. Nothing here knows HTTP; the
//! server maps [`ReleaseError`] to statuses and codes once.
//!
//! Invariants:
//! - nothing is counted for a query that cannot be afforded;
//! - a fresh release holds the gate for a time fixed by its public shape
//!   ([`timing`]), so neither its own response time nor that of a query
//!   queued behind it tells its noise;
//! - nothing is returned before the ledger has committed the spend.

mod answer;
mod error;
mod service;
mod stored;
pub mod timing;

pub use answer::{Answer, Cost, Released, Remaining};
pub use error::ReleaseError;
pub use service::{Ask, Policy, ReleaseService, Spender, Target};

#[cfg(test)]
mod tests;
