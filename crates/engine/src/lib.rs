//! The query engine: public domains and fast exact counting.
//!
//! [`Domains`] lists, for every dimension a dataset has, the values a query
//! may name and an answer may contain. They come from the layout (county
//! list, code tables, first registration year) and the [`DomainSpec`] (age
//! bands, reference year) only, never from the data, so the set of cells of a
//! query never depends on who is in the file.
//!
//! [`Dataset`] holds a dataset's rows in memory as one small integer code per
//! dimension, read from the minimized Parquet files that `rollcall ingest`
//! wrote; [`Dataset::count`] counts rows by groups with filters in one
//! parallel pass, over pre-aggregated levels of the data when
//! [`Dataset::build_rollups`] has made them and one covers the query.
//!
//! ```text
//! layout + DomainSpec ──Domains::new──▶ Domains ──────────────┐
//! DATA_DIR/NAME/*.parquet ──Dataset::load (rayon, per row group)──▶ Dataset
//! CountQuery ──Domains::cells──▶ cell keys       Dataset::count──▶ exact counts
//! ```
//!
//! **Invariant: exact counts never leave this crate except to the privacy
//! crate**, which adds noise before anything is shown: [`Dataset::count`]
//! returns them as [`privacy::ExactCounts`], which only the privacy crate
//! can read, and nothing here has a `Debug` that prints rows or weights.
//! Errors name dimensions, public values and files, never a count or a row.

mod count;
mod dataset;
mod domains;
mod error;
mod rollup;

pub use dataset::{CountSource, Dataset};
pub use domains::{
    CountQuery, Dim, DimDomain, DimKind, DomainSpec, Domains, MAX_CELLS, MAX_QUERY_DIMS,
};
pub use error::EngineError;
pub use rollup::MAX_LEVEL_CELLS;

#[cfg(test)]
mod tests;
