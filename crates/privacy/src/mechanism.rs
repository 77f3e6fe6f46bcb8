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

use crate::{Epsilon, PrivacyError};

/// The name of the mechanism, as recorded in the ledger and shown to analysts.
pub const MECHANISM: &str = "discrete_laplace";

/// The smallest ε a release may ask for: below it the scale (1/ε) is beyond
/// any useful count and opendp's integer arithmetic on it grows for nothing.
pub const MIN_EPSILON: Epsilon = Epsilon::from_nanos(1_000);

/// The probability that the true count lies outside the reported interval.
const CI_ALPHA: f64 = 0.05;

/// Exact counts by disjoint public groups, as the engine counted them.
///
/// Deliberately without `Debug`, `Display`, `Clone` or `Serialize`: the only
/// way to read them is [`release_counts`], which adds noise first. Anyone may
/// wrap counts; only this crate unwraps them.
pub struct ExactCounts(Vec<u64>);

impl ExactCounts {
    /// Wraps the engine's counts, one per cell in answer order.
    pub fn new(counts: Vec<u64>) -> ExactCounts {
        ExactCounts(counts)
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one release at a given ε costs, fixed before any data is touched:
/// the noise scale, the ε charged (opendp's privacy map at that scale,
/// rounded up to a nano-ε, never above what was asked) and the 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Charge {
    /// The discrete Laplace scale.
    pub scale: f64,
    /// The ε charged.
    pub epsilon: Epsilon,
    /// Half-width of the interval holding each cell's true count with
    /// probability 95% (always finite).
    pub ci95: f64,
}

/// A noisy release of a vector of counts and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The noisy counts, one per cell, in the order of the exact counts given.
    pub noisy: Vec<i64>,
    /// What it cost.
    pub charge: Charge,
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
    let reason = if !epsilon.is_finite() {
        "must be a finite number"
    } else if epsilon <= 0.0 {
        "must be greater than 0"
    } else if epsilon < MIN_EPSILON.to_f64() {
        "must be at least 0.000001"
    } else {
        return Ok(());
    };
    Err(PrivacyError::InvalidEpsilon {
        epsilon,
        reason: reason.into(),
    })
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

/// What a release asking for `asked` costs: the smallest scale whose
/// privacy map is at most `asked` **as an exact decimal**, and that map
/// rounded up to a nano-ε. So the charge is never above what was asked, and
/// a round ε (0.05) is charged exactly.
pub fn charge_for(asked: Epsilon) -> Result<Charge, PrivacyError> {
    if asked < MIN_EPSILON {
        return Err(PrivacyError::InvalidEpsilon {
            epsilon: asked.to_f64(),
            reason: "must be at least 0.000001".into(),
        });
    }
    let scale = scale_for_epsilon(asked.floor_f64())?;
    let epsilon = Epsilon::ceil_of(epsilon_for_scale(scale)?)?;
    if epsilon > asked {
        // scale_for_epsilon's target makes this impossible; nothing may be
        // released under a bug.
        return Err(PrivacyError::OpenDp(format!(
            "charge {epsilon} exceeds the {asked} asked for"
        )));
    }
    Ok(Charge {
        scale,
        epsilon,
        ci95: ci95(scale)?,
    })
}

/// The half-width of the interval that holds the true count of a cell with
/// probability 95%: opendp's `discrete_laplacian_scale_to_accuracy`. For
/// scales below about 1/709 that formula overflows (`exp(1/scale)`); there the
/// same expression is evaluated in log space, where it stays finite and
/// tends to 0 (the noise is then almost always 0).
pub fn ci95(scale: f64) -> Result<f64, PrivacyError> {
    check_scale(scale)?;
    let opendp = opendp::accuracy::discrete_laplacian_scale_to_accuracy(scale, CI_ALPHA)?;
    if opendp.is_finite() {
        return Ok(opendp);
    }
    Ok(accuracy_in_log_space(scale, CI_ALPHA))
}

/// `scale · ln(2 / (α (e^{1/scale} + 1))) + 1`, opendp's accuracy, written
/// as `scale · (ln(2/α) − ln1p(e^{−1/scale})) − 1 + 1`: the `e^{1/scale}`
/// that overflows cancels against the `+ 1` term.
fn accuracy_in_log_space(scale: f64, alpha: f64) -> f64 {
    let inner = (2.0 / alpha).ln() - (-scale.recip()).exp().ln_1p();
    (scale * inner).max(0.0)
}

/// Releases `exact` (counts by disjoint public groups) with opendp discrete
/// Laplace noise at `charge`'s scale, after checking that opendp's privacy
/// map of the very measurement that draws the noise is what `charge` says.
///
/// Builds and drops its opendp values inside the call (they are not `Send`);
/// in async code call it from a blocking task. Nothing is recorded here: the
/// caller must commit the release to the [`crate::Ledger`] before showing it.
pub fn release_counts(exact: ExactCounts, charge: &Charge) -> Result<Release, PrivacyError> {
    let measurement = make_count_noise(charge.scale)?;
    let charged = Epsilon::ceil_of(epsilon_of(&measurement)?)?;
    if charged != charge.epsilon {
        return Err(PrivacyError::OpenDp(format!(
            "the measurement costs {charged}, not the {} planned",
            charge.epsilon
        )));
    }
    let counts = exact
        .0
        .into_iter()
        .map(i64::try_from)
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|_| PrivacyError::OpenDp("a count does not fit in i64".into()))?;
    let noisy = if counts.len() < 2 * PARALLEL_CELLS {
        measurement.invoke(&counts)?
    } else {
        drop(measurement);
        invoke_in_parallel(&counts, charge.scale)?
    };
    Ok(Release {
        noisy,
        charge: *charge,
    })
}

/// Where the noise comes from, for the start-up log and `rollcall version`:
/// opendp's exact samplers, fed by the OpenSSL build linked in.
pub fn noise_source() -> String {
    format!(
        "opendp exact discrete Laplace, random bytes from {} (RAND_priv_bytes)",
        openssl_version()
    )
}

/// The version of the OpenSSL linked into this program, as OpenSSL reports
/// it (`OpenSSL 3.5.4 30 Sep 2025`).
pub fn openssl_version() -> &'static str {
    openssl::version::version()
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
/// the privacy map of the whole-vector measurement, checked by the caller.
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

    fn asked(v: f64) -> Epsilon {
        Epsilon::from_decimal_f64(v).unwrap()
    }

    fn release(exact: &[u64], epsilon: f64) -> Release {
        let charge = charge_for(asked(epsilon)).unwrap();
        release_counts(ExactCounts::new(exact.to_vec()), &charge).unwrap()
    }

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

    /// What is charged is exactly what was asked for round decimals, never
    /// more for any, and the map of the scale used is within it exactly.
    #[test]
    fn charges_are_exact_decimals_never_above_the_ask() {
        for (ask, want) in [
            (0.05, 50_000_000u64),
            (0.1, 100_000_000),
            (0.3, 300_000_000),
            (0.5, 500_000_000),
            (1.0, 1_000_000_000),
            (30.0, 30_000_000_000),
            (1000.0, 1_000_000_000_000),
            (0.000001, 1_000),
        ] {
            let c = charge_for(asked(ask)).unwrap();
            assert_eq!(c.epsilon.nanos(), want, "ε {ask} charged {}", c.epsilon);
            let map = epsilon_for_scale(c.scale).unwrap();
            assert!(
                Epsilon::ceil_of(map).unwrap() <= asked(ask),
                "ε {ask}: map {map}"
            );
        }
        let third = charge_for(asked(1.0 / 3.0)).unwrap();
        assert!(third.epsilon <= asked(1.0 / 3.0));
        assert!(third.epsilon.nanos() >= 333_333_332, "{}", third.epsilon);
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
        }
        assert!(charge_for(Epsilon::from_nanos(999)).is_err());
        assert!(charge_for(Epsilon::ZERO).is_err());
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

    /// opendp's formula overflows for scales below ~1/709 (ε above ~709):
    /// the interval must still be a finite number, shrinking to 0, and the
    /// log-space form must agree with opendp's wherever opendp's is finite.
    #[test]
    fn ci95_is_finite_for_every_epsilon() {
        for eps in [700.0, 745.0, 1000.0, 1e6] {
            let c = charge_for(asked(eps)).unwrap();
            assert!(
                c.ci95.is_finite() && c.ci95 >= 0.0,
                "ε {eps}: ci95 {}",
                c.ci95
            );
            assert!(c.ci95 < 1.0, "ε {eps}: ci95 {}", c.ci95);
        }
        for scale in [0.002, 0.01, 0.5, 1.0, 3.0, 100.0, 1e5] {
            let ours = accuracy_in_log_space(scale, CI_ALPHA);
            let theirs =
                opendp::accuracy::discrete_laplacian_scale_to_accuracy(scale, CI_ALPHA).unwrap();
            assert!(
                (ours - theirs.max(0.0)).abs() <= 1e-9 * theirs.abs().max(1.0),
                "scale {scale}: {ours} vs opendp {theirs}"
            );
        }
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
        let r = release(&exact, 0.5);
        assert_eq!(r.noisy.len(), exact.len());
        assert_eq!(r.charge.epsilon, asked(0.5));
        assert!((r.charge.scale - 2.0).abs() < 1e-9);
        // At ε = 1000 the noise is almost always 0.
        let sharp = release(&exact, 1000.0);
        for (n, e) in sharp.noisy.iter().zip(&exact) {
            assert!((n - *e as i64).abs() <= 1, "noisy {n} vs exact {e}");
        }
    }

    /// A charge that does not match the measurement's own map is refused:
    /// nothing is released at a price other than opendp's.
    #[test]
    fn a_forged_charge_is_refused() {
        let mut charge = charge_for(asked(0.5)).unwrap();
        charge.epsilon = asked(0.25);
        assert!(release_counts(ExactCounts::new(vec![1, 2]), &charge).is_err());
    }

    /// Above `2 × PARALLEL_CELLS` cells the noise is drawn in parallel
    /// chunks: every cell must still come back in its own place.
    #[test]
    fn parallel_release_keeps_cell_order() {
        let exact: Vec<u64> = (0..1_000u64).map(|i| i * 1_000).collect();
        let r = release(&exact, 1000.0);
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
        let r = release(&vec![0u64; n], 1.0);
        let s = r.charge.scale;
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

    /// The noise comes from OpenSSL as it ships, and a supported release of
    /// it: 3.5 (LTS) or newer.
    #[test]
    fn openssl_is_a_supported_release() {
        let n = openssl::version::number();
        assert!(n >= 0x3050_0000, "linked {} ({n:#x})", openssl_version());
        assert!(noise_source().contains("OpenSSL 3."), "{}", noise_source());
    }
}
