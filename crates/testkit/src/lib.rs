//! The one fixture kit of rollcall's tests, benches and examples.
//!
//! - [`Lcg`]: the small deterministic generator tests draw from (never
//!   `rand`: a failure must reproduce from its seed);
//! - [`cli`]: the real `rollcall` binary ([`bin`]), and synth → ingest of a
//!   dataset for any layout ([`Fixture`]);
//! - [`config`]: a typed config builder ([`ConfigBuilder`]) instead of
//!   hand-written TOML;
//! - [`server`]: a real `rollcall serve` process on a free port ([`Server`]),
//!   and [`spawn_app`], the same app in process on a real socket on port 0;
//! - [`history`]: datasets with voting history and their truth
//!   ([`HistoryFixture`]);
//! - [`http`]: a small HTTP/1.1 client, enough for every test (methods,
//!   headers, bodies, chunked bodies, timeouts);
//! - [`parquet`]: a dataset folder read back as rows;
//! - [`postgres`]: replicas on a throwaway PostgreSQL cluster
//!   ([`pgcluster`]) and exact checks read from its database.

pub mod cli;
pub mod config;
pub mod history;
pub mod http;
pub mod parquet;
pub mod postgres;
pub mod server;

pub use cli::{Fixture, TruthRow, bin, env_usize, repo_root, run, run_ok};
pub use cli::{FixtureSpec, age_band, ingest, ingest_nc, scratch, synth};
pub use config::{ConfigBuilder, DatasetSection, TestAnalyst, hash_token};
pub use history::HistoryFixture;
pub use parquet::{Tuple, multiset, read_dataset};
pub use server::{
    Answer, App, DatasetSettings, ROWS, SEED, Server, Speak, chunked, domains, nc_config, nc_data,
    rows, spawn_app, start, start_alice, try_start, try_start_with_log_level, write_config,
    write_config_for,
};

/// A small deterministic generator (a 64-bit LCG, top 31 bits out).
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number, in `0 .. 2^31`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// One of `values`, uniformly.
    pub fn pick<'a, T>(&mut self, values: &'a [T]) -> &'a T {
        &values[(self.next() as usize) % values.len()]
    }

    /// A skewed pick in `0..n`: small numbers are more common.
    pub fn skewed(&mut self, n: usize) -> usize {
        let a = self.next() as usize % n;
        let b = self.next() as usize % n;
        a.min(b)
    }
}
