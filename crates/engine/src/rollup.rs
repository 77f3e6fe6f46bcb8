//! Pre-aggregated levels of a dataset, so most queries count thousands of
//! weighted rows instead of millions of voters.
//!
//! Dimensions are put in a fixed order, the ones analysts group and filter by
//! most first ([`ORDER`]). Level `k` holds every distinct combination of the
//! first `k` dimensions' codes that occurs, with the number of voters who
//! have it (its weight). A query whose dimensions all lie within the first
//! `k` counts over level `k` and gets exactly the counts a scan of every row
//! would give: the same rows, grouped beforehand. County × age band by party
//! and status needs level 4, at most 100 × 9 × 9 × 6 entries whatever the
//! number of voters.
//!
//! Each configured election's `vote_<id>` dimension leads a chain of its
//! own (the election, then the same order), so turnout by county and age
//! band counts over a level too; every chain's levels are kept by the same
//! rule, and a query counts over the level of smallest domain product that
//! covers it.
//!
//! Levels are built by one sort of a packed key per row (first dimension in
//! the highest bits), then each shorter level by merging runs of the longer
//! one. Which levels are kept depends on **public information only**: a
//! level is kept when the product of its dimensions' domain sizes is at most
//! [`MAX_LEVEL_CELLS`]. Were it chosen by the number of entries the data
//! happens to have, one voter could move a query between a level and a scan
//! of every row, and its response time would tell.
//!
//! Like the rows, levels hold only codes of public domain values and exact
//! counts that never leave the crate except to the privacy crate.

use rayon::prelude::*;

use crate::dataset::{Codes, Segment, narrow};
use crate::{Dataset, Dim, Domains};

/// The order in which the standard dimensions enter the levels: most often
/// used first. A layout's own dimensions follow, in their canonical order.
pub(crate) const ORDER: [&str; 9] = [
    "county",
    "age_band",
    "party",
    "status",
    "gender",
    "race",
    "ethnicity",
    "congressional_district",
    "registration_year",
];

/// The most entries a level may have by its domains: the product of the
/// domain sizes of the dimensions it keeps. County × age band × party ×
/// status × gender × race × ethnicity in NC is 3.5 M.
pub const MAX_LEVEL_CELLS: u64 = 1 << 22;

/// One level: the distinct code combinations of some leading dimensions.
/// Its `Debug` shows only which dimensions it keeps: its weights are exact
/// counts.
#[derive(Clone)]
pub(crate) struct Rollup {
    /// Bit `Dim::bit()` is set for each dimension this level keeps.
    pub dims: u64,
    /// One row per distinct combination; columns of dimensions not kept are
    /// `None`.
    pub segment: Segment,
    /// Voters per row of `segment`.
    pub weights: Vec<u32>,
}

impl std::fmt::Debug for Rollup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollup")
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl Rollup {
    /// Whether every dimension in `needed` (a `Dim::bit()` set) is kept.
    pub fn covers(&self, needed: u64) -> bool {
        needed & !self.dims == 0
    }
}

/// Bits needed for codes `0..len`.
fn bits_for(len: usize) -> u32 {
    usize::BITS - len.saturating_sub(1).leading_zeros()
}

/// Sorted `(key, weight)` pairs with the weights of equal neighbouring keys
/// added up.
fn merge_runs(sorted: impl Iterator<Item = (u64, u32)>) -> Vec<(u64, u32)> {
    let mut runs: Vec<(u64, u32)> = Vec::new();
    for (k, w) in sorted {
        match runs.last_mut() {
            Some((last, lw)) if *last == k => *lw += w,
            _ => runs.push((k, w)),
        }
    }
    runs
}

/// The number of leading dimensions of `order` whose domain sizes multiply
/// to at most `max_cells`: the levels that are kept are 1..=that many.
pub(crate) fn kept_levels(domains: &Domains, order: &[Dim], max_cells: u64) -> usize {
    let mut product = 1u64;
    order
        .iter()
        .take_while(|d| {
            product = product.saturating_mul(domains.domain_len(**d) as u64);
            product <= max_cells
        })
        .count()
}

/// The dimensions of [`ORDER`] this dataset has, in that order, then its
/// own dimensions in canonical order; elections' `vote_<id>` dimensions
/// lead chains of their own ([`chains`]).
pub(crate) fn order(domains: &Domains) -> Vec<Dim> {
    let standard = ORDER.iter().filter_map(|n| domains.by_name(n));
    let own = domains
        .dims()
        .iter()
        .filter(|d| !ORDER.contains(&d.name.as_str()) && !is_vote(&d.name));
    standard.chain(own).map(|d| d.dim).collect()
}

fn is_vote(name: &str) -> bool {
    name.starts_with(layout::VOTE_PREFIX)
}

/// The orders levels are built along: [`order`], and for each election the
/// same order behind its `vote_<id>` dimension, so that turnout by county
/// and age band counts over a level as registration by them does. One
/// election per chain: queries crossing two elections scan the rows.
pub(crate) fn chains(domains: &Domains) -> Vec<Vec<Dim>> {
    let main = order(domains);
    let votes = domains.dims().iter().filter(|d| is_vote(&d.name));
    let mut chains: Vec<Vec<Dim>> = votes
        .map(|v| std::iter::once(v.dim).chain(main.iter().copied()).collect())
        .collect();
    chains.insert(0, main);
    chains
}

/// The product of the domain sizes of a level's dimensions: public, so
/// ordering levels by it keeps the choice of level independent of the data.
fn domain_product(domains: &Domains, dims: u64) -> u64 {
    domains
        .dims()
        .iter()
        .filter(|d| dims & d.dim.bit() != 0)
        .fold(1u64, |p, d| {
            p.saturating_mul(domains.domain_len(d.dim) as u64)
        })
}

/// Builds the levels of every chain whose domain product is at most
/// `max_cells`, smallest domain product first: the first level that covers
/// a query is the cheapest.
pub(crate) fn build(ds: &Dataset, max_cells: u64) -> Vec<Rollup> {
    let mut levels: Vec<Rollup> = chains(&ds.domains)
        .into_iter()
        .flat_map(|chain| build_chain(ds, chain, max_cells))
        .collect();
    levels.sort_by_cached_key(|l| (domain_product(&ds.domains, l.dims), l.dims.count_ones()));
    levels
}

/// The levels of one chain (prefixes of `order`). Returns nothing if the
/// packed key would not fit in 64 bits (very large custom code tables) or
/// a weight in 32.
fn build_chain(ds: &Dataset, mut order: Vec<Dim>, max_cells: u64) -> Vec<Rollup> {
    let domains = &ds.domains;
    order.truncate(kept_levels(domains, &order, max_cells));
    let bits: Vec<u32> = order
        .iter()
        .map(|d| bits_for(domains.domain_len(*d)).max(1))
        .collect();
    if order.is_empty() || bits.iter().sum::<u32>() > 64 || ds.rows() > u32::MAX as usize {
        return Vec::new();
    }
    // shifts[i]: where dimension i's code sits in the key.
    let mut shifts = vec![0u32; order.len()];
    let mut at = 0;
    for i in (0..order.len()).rev() {
        shifts[i] = at;
        at += bits[i];
    }

    let mut keys: Vec<u64> = ds
        .segments
        .par_iter()
        .flat_map_iter(|seg| {
            let mut out = vec![0u64; seg.rows];
            for (i, dim) in order.iter().enumerate() {
                let shift = shifts[i];
                match seg.cols[dim.index()]
                    .as_ref()
                    .expect("loaded dims have codes")
                {
                    Codes::U8(c) => out
                        .iter_mut()
                        .zip(c)
                        .for_each(|(k, &c)| *k |= u64::from(c) << shift),
                    Codes::U16(c) => out
                        .iter_mut()
                        .zip(c)
                        .for_each(|(k, &c)| *k |= u64::from(c) << shift),
                }
            }
            out
        })
        .collect();
    keys.par_sort_unstable();

    // The longest level: runs of equal keys.
    let mut level = merge_runs(keys.iter().map(|&k| (k, 1)));
    drop(keys);

    let mut levels = Vec::new();
    for kept in (1..=order.len()).rev() {
        if kept < order.len() {
            // Drop dimension `kept`'s bits and merge the runs that now match.
            let shift = shifts[kept - 1];
            level = merge_runs(level.iter().map(|&(k, w)| (k >> shift << shift, w)));
        }
        levels.push(decode(domains, &order[..kept], &shifts, &bits, &level));
    }
    levels
}

fn decode(
    domains: &Domains,
    kept: &[Dim],
    shifts: &[u32],
    bits: &[u32],
    level: &[(u64, u32)],
) -> Rollup {
    let mut cols: Vec<Option<Codes>> = vec![None; domains.dims().len()];
    let mut dims = 0u64;
    for (i, dim) in kept.iter().enumerate() {
        let mask = (1u64 << bits[i]) - 1;
        let code = |k: u64| (k >> shifts[i]) & mask;
        cols[dim.index()] = Some(if narrow(domains, *dim) {
            Codes::U8(level.iter().map(|&(k, _)| code(k) as u8).collect())
        } else {
            Codes::U16(level.iter().map(|&(k, _)| code(k) as u16).collect())
        });
        dims |= dim.bit();
    }
    Rollup {
        dims,
        segment: Segment {
            rows: level.len(),
            cols,
        },
        weights: level.iter().map(|&(_, w)| w).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_cover_every_code() {
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(9), 4);
        assert_eq!(bits_for(16), 4);
        assert_eq!(bits_for(17), 5);
        assert_eq!(bits_for(100), 7);
        assert_eq!(bits_for(65_536), 16);
    }
}
