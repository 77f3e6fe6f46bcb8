//! The one mechanism rollcall releases: counts by disjoint public groups with
//! discrete Laplace noise, built from opendp constructors.
//!
//! The proof, in the order the code follows it (see `docs/privacy.md`):
//!
//! 1. Neighbouring datasets differ by one voter added or removed
//!    (`SymmetricDistance`, `d_in = 1`).
//! 2. Counting by disjoint public groups (opendp's `make_count_by_categories`)
//!    moves the vector of counts by at most 1 in L1 distance: its stability
//!    map at `d_in = 1` is 1. [`count_sensitivity`] asks opendp for that number.
//! 3. Discrete Laplace noise of scale `s` on an integer vector at L1 distance
//!    `Δ` is `Δ/s`-DP; [`epsilon_for_scale`] asks opendp's privacy map, on the
//!    same measurement [`release_counts`] invokes.
//!
//! opendp values are neither `Send` nor `Sync`: every function here builds its
//! measurement, uses it and drops it before returning. Call them from a
//! blocking task in async code.

use opendp::domains::{AtomDomain, VectorDomain};
use opendp::error::Fallible;
use opendp::measurements::make_laplace;
use opendp::measures::MaxDivergence;
use opendp::metrics::{L1Distance, SymmetricDistance};
use opendp::transformations::make_count_by_categories;

use crate::PrivacyError;

/// The name of the mechanism, as recorded in the ledger and shown to analysts.
pub const MECHANISM: &str = "discrete_laplace";

/// The probability that the true count lies outside the reported interval.
const CI_ALPHA: f64 = 0.05;

/// A noisy release of a vector of counts and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The noisy counts, one per cell, in the order of the exact counts given.
    pub noisy: Vec<i64>,
    /// The discrete Laplace scale used.
    pub scale: f64,
    /// The ε charged: opendp's privacy map of this measurement at `d_in = 1`.
    /// Never more than the ε asked for.
    pub epsilon: f64,
}

/// The measurement on an already-counted vector: discrete Laplace on
/// `Vec<i64>` under the L1 distance.
type CountNoise = opendp::core::Measurement<
    VectorDomain<AtomDomain<i64>>,
    L1Distance<i64>,
    MaxDivergence,
    Vec<i64>,
>;

fn make_count_noise(scale: f64) -> Fallible<CountNoise> {
    make_laplace::<VectorDomain<AtomDomain<i64>>, L1Distance<i64>, MaxDivergence>(
        VectorDomain::new(AtomDomain::default()),
        L1Distance::default(),
        scale,
        None,
    )
}

/// The L1 sensitivity of a count by disjoint groups when one voter is added
/// or removed: the stability map of opendp's `make_count_by_categories` at
/// `d_in = 1`. It does not depend on the categories (a voter is in exactly one
/// group), so a one-category instance answers for all of them.
pub fn count_sensitivity() -> Result<i64, PrivacyError> {
    let count = make_count_by_categories::<L1Distance<i64>, u32, i64>(
        VectorDomain::new(AtomDomain::default()),
        SymmetricDistance,
        vec![0u32],
        false,
    )?;
    Ok(count.map(&1)?)
}

fn check_scale(scale: f64) -> Result<(), PrivacyError> {
    if !scale.is_finite() || scale <= 0.0 {
        return Err(PrivacyError::OpenDp(format!(
            "noise scale must be positive and finite, got {scale}"
        )));
    }
    Ok(())
}

fn check_epsilon(epsilon: f64) -> Result<(), PrivacyError> {
    if !epsilon.is_finite() {
        return Err(PrivacyError::InvalidEpsilon {
            epsilon,
            reason: "must be a finite number".into(),
        });
    }
    if epsilon <= 0.0 {
        return Err(PrivacyError::InvalidEpsilon {
            epsilon,
            reason: "must be greater than 0".into(),
        });
    }
    // Below this the scale (1/ε) is beyond any useful count and opendp's
    // integer arithmetic on the scale grows without purpose.
    if epsilon < 1e-6 {
        return Err(PrivacyError::InvalidEpsilon {
            epsilon,
            reason: "must be at least 1e-6".into(),
        });
    }
    Ok(())
}

fn epsilon_of(measurement: &CountNoise) -> Result<f64, PrivacyError> {
    Ok(measurement.map(&count_sensitivity()?)?)
}

/// ε of a count-by-disjoint-groups release with discrete Laplace noise of
/// `scale`: opendp's privacy map at `d_in = 1` (one voter added or removed),
/// through the count's stability map. Never a hand formula.
pub fn epsilon_for_scale(scale: f64) -> Result<f64, PrivacyError> {
    check_scale(scale)?;
    epsilon_of(&make_count_noise(scale)?)
}

/// The noise scale for a target ε: starts at `1/ε` and, if opendp's map at
/// that scale exceeds ε (floating-point rounding is conservative), searches
/// upward for the smallest scale whose map is at most ε.
pub fn scale_for_epsilon(epsilon: f64) -> Result<f64, PrivacyError> {
    check_epsilon(epsilon)?;
    let start = 1.0 / epsilon;
    if epsilon_for_scale(start)? <= epsilon {
        return Ok(start);
    }
    // Find a scale that is enough, growing the step geometrically.
    let mut low = start;
    let mut step = start * 1e-15;
    let mut high = loop {
        let candidate = start + step;
        if epsilon_for_scale(candidate)? <= epsilon {
            break candidate;
        }
        low = candidate;
        step *= 2.0;
        if !candidate.is_finite() || step > start {
            return Err(PrivacyError::OpenDp(format!(
                "no noise scale near {start} gives epsilon {epsilon}"
            )));
        }
    };
    // Bisect down to adjacent floats.
    for _ in 0..64 {
        let mid = low + (high - low) / 2.0;
        if mid <= low || mid >= high {
            break;
        }
        if epsilon_for_scale(mid)? <= epsilon {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

/// The half-width of the interval that holds the true count of a cell with
/// probability 95%, from opendp's `discrete_laplacian_scale_to_accuracy`.
pub fn ci95(scale: f64) -> Result<f64, PrivacyError> {
    check_scale(scale)?;
    Ok(opendp::accuracy::discrete_laplacian_scale_to_accuracy(
        scale, CI_ALPHA,
    )?)
}

/// Releases `exact` (counts by disjoint public groups) with opendp discrete
/// Laplace noise calibrated to `epsilon`, and reports the ε charged: the map
/// at `d_in = 1` of the very measurement that drew the noise.
///
/// Builds and drops its opendp values inside the call (they are not `Send`);
/// in async code call it from a blocking task. Nothing is recorded here: the
/// caller must commit the release to the [`crate::Ledger`] before showing it.
pub fn release_counts(exact: &[u64], epsilon: f64) -> Result<Release, PrivacyError> {
    // Once per process; if it cannot install, OpenSSL serves every call
    // itself, just as securely and more slowly (`randomness_source` says).
    let _ = drbg_buffer::install();
    let scale = scale_for_epsilon(epsilon)?;
    let measurement = make_count_noise(scale)?;
    let charged = epsilon_of(&measurement)?;
    if charged > epsilon {
        // scale_for_epsilon guarantees this; a failure here is a bug, and
        // nothing may be released under it.
        return Err(PrivacyError::OpenDp(format!(
            "charged epsilon {charged} exceeds the {epsilon} asked for"
        )));
    }
    let counts = exact
        .iter()
        .map(|&c| i64::try_from(c))
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|_| PrivacyError::OpenDp("a count does not fit in i64".into()))?;
    let noisy = if counts.len() < 2 * PARALLEL_CELLS {
        measurement.invoke(&counts)?
    } else {
        drop(measurement);
        invoke_in_parallel(&counts, scale)?
    };
    Ok(Release {
        noisy,
        scale,
        epsilon: charged,
    })
}

/// Where the noise's random bytes come from, for the start-up log: OpenSSL's
/// private DRBG, through `drbg_buffer`'s per-thread buffer unless it could
/// not be installed. Installs the buffer if no release has yet.
pub fn randomness_source() -> String {
    match drbg_buffer::install() {
        Ok(()) => format!(
            "OpenSSL private DRBG, buffered {} bytes per thread",
            drbg_buffer::BUFFER
        ),
        Err(e) => format!("OpenSSL private DRBG, unbuffered ({e})"),
    }
}

/// Cells per parallel noise task. Each cell costs a few microseconds of
/// opendp's exact sampler, so a 900-cell county × age-band release is worth
/// splitting across cores.
const PARALLEL_CELLS: usize = 128;

/// Draws the noise of `counts` in parallel chunks, each through its own
/// instance of the same opendp measurement (scale `scale`).
///
/// opendp's vector discrete Laplace adds an independent draw to each element,
/// so noising the chunks separately with the same scale gives the vector the
/// very distribution of one invocation on the whole vector; the ε charged is
/// the privacy map of the whole-vector measurement, computed by the caller.
/// Each task builds its own measurement because opendp values are not `Send`.
fn invoke_in_parallel(counts: &[i64], scale: f64) -> Result<Vec<i64>, PrivacyError> {
    use rayon::prelude::*;
    let chunk = counts
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(PARALLEL_CELLS);
    let parts = counts
        .par_chunks(chunk)
        .map(|part| -> Result<Vec<i64>, PrivacyError> {
            Ok(make_count_noise(scale)?.invoke(&part.to_vec())?)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendp::combinators::make_chain_mt;

    #[test]
    fn scale_two_costs_half() {
        let eps = epsilon_for_scale(2.0).unwrap();
        assert!((eps - 0.5).abs() < 1e-9, "epsilon_for_scale(2.0) = {eps}");
    }

    #[test]
    fn sensitivity_is_one() {
        assert_eq!(count_sensitivity().unwrap(), 1);
    }

    #[test]
    fn scale_round_trip() {
        for eps in [1e-3, 0.01, 0.1, 0.3, 0.5, 1.0, 2.0, 3.7, 10.0, 100.0] {
            let scale = scale_for_epsilon(eps).unwrap();
            let back = epsilon_for_scale(scale).unwrap();
            assert!(back <= eps, "ε {eps}: scale {scale} costs {back} > {eps}");
            assert!(
                (back - eps).abs() <= eps * 1e-9,
                "ε {eps}: scale {scale} costs {back}, far below what was asked"
            );
            assert!((scale * eps - 1.0).abs() < 1e-9, "ε {eps}: scale {scale}");
        }
    }

    #[test]
    fn bad_epsilons_are_refused() {
        for eps in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-9] {
            assert!(
                matches!(
                    scale_for_epsilon(eps),
                    Err(PrivacyError::InvalidEpsilon { .. })
                ),
                "ε {eps} accepted"
            );
            assert!(release_counts(&[1, 2], eps).is_err(), "ε {eps} released");
        }
        assert!(epsilon_for_scale(0.0).is_err());
        assert!(ci95(-1.0).is_err());
    }

    #[test]
    fn ci95_at_scale_one() {
        let ci = ci95(1.0).unwrap();
        assert!((ci - 3.4).abs() < 0.1, "ci95(1.0) = {ci}");
        assert!(
            ci95(2.0).unwrap() > ci,
            "wider noise must widen the interval"
        );
    }

    /// The fast path (counts from the engine, then `make_laplace` on the
    /// vector) is the same release as opendp's own chain
    /// `make_count_by_categories >> make_laplace`: same ε for every scale.
    #[test]
    fn fast_path_costs_what_the_full_chain_costs() {
        let cats: Vec<String> = (0..900).map(|i| format!("cell{i}")).collect();
        for scale in [0.5, 1.0, 2.0, 3.0, 10.0, 1.0 / 0.3, 1.0 / 0.7] {
            let count = make_count_by_categories::<L1Distance<i64>, String, i64>(
                VectorDomain::new(AtomDomain::default()),
                SymmetricDistance,
                cats.clone(),
                false,
            )
            .unwrap();
            let noise =
                make_laplace::<VectorDomain<AtomDomain<i64>>, L1Distance<i64>, MaxDivergence>(
                    count.output_domain.clone(),
                    count.output_metric.clone(),
                    scale,
                    None,
                )
                .unwrap();
            let chain = make_chain_mt(&noise, &count).unwrap();
            let chain_eps = chain.map(&1).unwrap();
            let fast_eps = epsilon_for_scale(scale).unwrap();
            assert_eq!(
                chain_eps, fast_eps,
                "scale {scale}: full chain costs {chain_eps}, fast path charges {fast_eps}"
            );
            // And the chain answers with one noisy count per category.
            let data: Vec<String> = vec!["cell1".into(), "cell1".into(), "cell7".into()];
            assert_eq!(chain.invoke(&data).unwrap().len(), cats.len());
        }
    }

    #[test]
    fn release_has_one_count_per_cell_and_charges_at_most_epsilon() {
        let exact = vec![0u64, 5, 1_000_000, 42];
        let r = release_counts(&exact, 0.5).unwrap();
        assert_eq!(r.noisy.len(), exact.len());
        assert!(r.epsilon <= 0.5 && r.epsilon > 0.5 - 1e-9, "{}", r.epsilon);
        assert!((r.scale - 2.0).abs() < 1e-9);
        // At ε = 1000 the noise is almost always 0.
        let sharp = release_counts(&exact, 1000.0).unwrap();
        for (n, e) in sharp.noisy.iter().zip(&exact) {
            assert!((n - *e as i64).abs() <= 1, "noisy {n} vs exact {e}");
        }
    }

    /// Above `2 × PARALLEL_CELLS` cells the noise is drawn in parallel
    /// chunks: every cell must still come back in its own place.
    #[test]
    fn parallel_release_keeps_cell_order() {
        let exact: Vec<u64> = (0..1_000u64).map(|i| i * 1_000).collect();
        let r = release_counts(&exact, 1000.0).unwrap();
        assert_eq!(r.noisy.len(), exact.len());
        for (i, (n, e)) in r.noisy.iter().zip(&exact).enumerate() {
            assert!(
                (n - *e as i64).abs() <= 1,
                "cell {i}: noisy {n} vs exact {e}"
            );
        }
    }

    /// 20,000 draws of noise on a zero count at scale 1 must have the spread
    /// of a discrete Laplace: mean ≈ 0, variance 2e^{-1/s}/(1-e^{-1/s})^2
    /// (≈ 1.84 at s = 1) within 10%. Bounds are many standard errors wide, so
    /// a failure means the mechanism is wrong, not bad luck.
    #[test]
    fn noise_spread_matches_discrete_laplace() {
        let n = 20_000;
        let r = release_counts(&vec![0u64; n], 1.0).unwrap();
        let s = r.scale;
        let q = (-1.0 / s).exp();
        let var_expected = 2.0 * q / (1.0 - q).powi(2);
        let mean_abs_expected = 2.0 * q / ((1.0 - q) * (1.0 + q));
        let xs: Vec<f64> = r.noisy.iter().map(|&x| x as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let mean_abs = xs.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        // Standard error of the mean is sqrt(1.84/20000) ≈ 0.0096.
        assert!(mean.abs() < 0.06, "mean {mean}: noise is biased");
        assert!(
            (var / var_expected - 1.0).abs() < 0.10,
            "variance {var}, expected {var_expected}: not discrete Laplace at scale {s}"
        );
        assert!(
            (mean_abs / mean_abs_expected - 1.0).abs() < 0.10,
            "mean |noise| {mean_abs}, expected {mean_abs_expected}"
        );
        // Integer noise, and not all zero.
        assert!(r.noisy.iter().any(|&x| x != 0));
    }
}
