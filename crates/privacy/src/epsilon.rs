//! ε in exact fixed point: an integer number of nano-ε.
//!
//! Budgets and spends are added and compared as integers, so "never above
//! the cap" needs no tolerance and decimal budgets add up as written (a
//! budget of 2.0 affords exactly 40 releases at ε = 0.05). The conversions
//! from `f64` are exact and always round against the analyst and for the
//! voter:
//! - what an analyst asks for, and what an administrator configures, is read
//!   as the decimal it was written as and rounded **down** to a nano-ε
//!   ([`Epsilon::from_decimal_f64`]);
//! - what opendp's privacy map says a release costs is rounded **up**
//!   ([`Epsilon::ceil_of`]), from the exact binary value of the map's `f64`.

use std::fmt;

use crate::PrivacyError;

/// Nano-ε in one ε.
pub const NANOS_PER_EPSILON: u64 = 1_000_000_000;

/// An amount of ε: a whole number of nano-ε (10⁻⁹ ε).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epsilon(u64);

impl Epsilon {
    /// No ε at all.
    pub const ZERO: Epsilon = Epsilon(0);

    /// `nanos` nano-ε.
    pub const fn from_nanos(nanos: u64) -> Epsilon {
        Epsilon(nanos)
    }

    /// The amount in nano-ε.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// Reads `value` as the shortest decimal that round-trips to it (what a
    /// person or a JSON encoder wrote: `0.1`, `2`, `0.08333333333333333`),
    /// rounded down to a whole nano-ε. Refuses negative, infinite and NaN
    /// values, and values above a billion ε.
    pub fn from_decimal_f64(value: f64) -> Result<Epsilon, PrivacyError> {
        if !value.is_finite() || value < 0.0 {
            return Err(invalid(value, "must be a finite number of at least 0"));
        }
        if value > 1e9 {
            return Err(invalid(value, "must be at most 1e9"));
        }
        if value == 0.0 {
            return Ok(Epsilon::ZERO);
        }
        // `{:e}` prints the shortest round-trip digits: `8.333333333333333e-2`.
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').expect("`{:e}` has an exponent");
        let exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let digits: u128 = digits.parse().expect("`{:e}` mantissa is digits");
        let fraction_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        // value = digits × 10^(exponent − fraction_digits); in nano-ε, 10^9 more.
        let shift = exponent - fraction_digits + 9;
        let nanos = if shift >= 0 {
            digits * 10u128.pow(shift as u32)
        } else if -shift >= 39 {
            0
        } else {
            digits / 10u128.pow((-shift) as u32)
        };
        Ok(Epsilon(
            u64::try_from(nanos).expect("1e9 ε fits in u64 nano-ε"),
        ))
    }

    /// The smallest whole nano-ε at least `value`, from `value`'s exact
    /// binary expansion (no decimal rounding): what a release whose privacy
    /// map is `value` is charged.
    pub fn ceil_of(value: f64) -> Result<Epsilon, PrivacyError> {
        if !value.is_finite() || value < 0.0 {
            return Err(invalid(value, "must be a finite number of at least 0"));
        }
        if value > 1e9 {
            return Err(invalid(value, "must be at most 1e9"));
        }
        let (mantissa, exp2) = decompose(value);
        let scaled = u128::from(mantissa) * u128::from(NANOS_PER_EPSILON);
        let nanos = if exp2 >= 0 {
            scaled << exp2
        } else {
            let shift = (-exp2) as u32;
            if shift >= 128 {
                u128::from(scaled != 0)
            } else {
                let whole = scaled >> shift;
                whole + u128::from(whole << shift != scaled)
            }
        };
        Ok(Epsilon(
            u64::try_from(nanos).expect("1e9 ε fits in u64 nano-ε"),
        ))
    }

    /// The largest `f64` that is at most this amount, exactly: a target for
    /// opendp's privacy map that, once met, keeps the charge within it.
    pub fn floor_f64(self) -> f64 {
        let mut f = self.0 as f64 / NANOS_PER_EPSILON as f64;
        while f > 0.0 && exceeds(f, self.0) {
            f = f.next_down();
        }
        f
    }

    /// The nearest `f64`, for display: for amounts below a million ε its
    /// shortest decimal form is exactly this amount's decimal form.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_EPSILON as f64
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Epsilon) -> Option<Epsilon> {
        self.0.checked_add(other.0).map(Epsilon)
    }

    /// `self − other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Epsilon) -> Epsilon {
        Epsilon(self.0.saturating_sub(other.0))
    }
}

/// The exact decimal: `0.05`, `30`, `2.000000001`.
impl fmt::Display for Epsilon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / NANOS_PER_EPSILON;
        let frac = self.0 % NANOS_PER_EPSILON;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

fn invalid(value: f64, reason: &str) -> PrivacyError {
    PrivacyError::InvalidEpsilon {
        epsilon: value,
        reason: reason.to_owned(),
    }
}

/// `value = mantissa × 2^exp2` exactly, for a finite non-negative `value`.
fn decompose(value: f64) -> (u64, i32) {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), exponent - 1075)
    }
}

/// Whether `value` is strictly above `nanos` nano-ε, compared exactly.
fn exceeds(value: f64, nanos: u64) -> bool {
    let (mantissa, exp2) = decompose(value);
    let left = u128::from(mantissa) * u128::from(NANOS_PER_EPSILON);
    let right = u128::from(nanos);
    if right == 0 {
        return left > 0;
    }
    if exp2 >= 0 {
        // Both sides fit: value < 1e9 ε keeps left << exp2 below 2^83.
        (left << exp2) > right
    } else {
        let shift = (-exp2) as u32;
        // left > right × 2^shift; right × 2^shift overflows only when it is
        // far above left (< 2^83).
        match right.checked_shl(shift) {
            Some(r) if r >> shift == right => left > r,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(v: f64) -> Epsilon {
        Epsilon::from_decimal_f64(v).unwrap()
    }

    #[test]
    fn decimals_are_read_as_written() {
        assert_eq!(eps(0.1).nanos(), 100_000_000);
        assert_eq!(eps(0.3).nanos(), 300_000_000);
        assert_eq!(eps(2.0).nanos(), 2_000_000_000);
        assert_eq!(eps(0.05).nanos(), 50_000_000);
        assert_eq!(eps(1e-6).nanos(), 1_000);
        assert_eq!(eps(30.0).nanos(), 30_000_000_000);
        // More than nine decimals: rounded down, never up.
        assert_eq!(eps(1.0 / 12.0).nanos(), 83_333_333);
        assert_eq!(eps(1e-12).nanos(), 0);
        assert!(Epsilon::from_decimal_f64(-1.0).is_err());
        assert!(Epsilon::from_decimal_f64(f64::NAN).is_err());
        assert!(Epsilon::from_decimal_f64(f64::INFINITY).is_err());
    }

    #[test]
    fn charges_round_up_from_the_exact_binary_value() {
        // The float 0.1 is 0.1000000000000000055…: one nano-ε more.
        assert_eq!(Epsilon::ceil_of(0.1).unwrap().nanos(), 100_000_001);
        // The float just below 0.05 costs exactly 0.05.
        let below = 0.05f64.next_down();
        assert_eq!(Epsilon::ceil_of(below).unwrap().nanos(), 50_000_000);
        assert_eq!(Epsilon::ceil_of(0.5).unwrap().nanos(), 500_000_000);
        assert_eq!(Epsilon::ceil_of(0.0).unwrap().nanos(), 0);
        assert_eq!(Epsilon::ceil_of(f64::MIN_POSITIVE).unwrap().nanos(), 1);
        assert_eq!(
            Epsilon::ceil_of(29.999999999999996).unwrap().nanos(),
            30_000_000_000
        );
    }

    #[test]
    fn floor_f64_never_exceeds_the_amount() {
        for nanos in [
            1u64,
            1_000,
            50_000_000,
            100_000_000,
            300_000_000,
            2_000_000_000,
            123_456_789_012,
        ] {
            let e = Epsilon::from_nanos(nanos);
            let f = e.floor_f64();
            assert!(Epsilon::ceil_of(f).unwrap() <= e, "{e}: {f}");
            assert!(!exceeds(f, nanos), "{e}: {f} is above it");
            // …and is the largest such float.
            assert!(exceeds(f.next_up(), nanos) || Epsilon::ceil_of(f.next_up()).unwrap() <= e);
        }
        assert_eq!(Epsilon::from_nanos(500_000_000).floor_f64(), 0.5);
        assert_eq!(
            Epsilon::from_nanos(100_000_000).floor_f64(),
            0.1f64.next_down()
        );
    }

    #[test]
    fn display_is_the_exact_decimal() {
        assert_eq!(Epsilon::from_nanos(50_000_000).to_string(), "0.05");
        assert_eq!(Epsilon::from_nanos(30_000_000_000).to_string(), "30");
        assert_eq!(
            Epsilon::from_nanos(2_000_000_001).to_string(),
            "2.000000001"
        );
        assert_eq!(Epsilon::ZERO.to_string(), "0");
        assert_eq!(Epsilon::from_nanos(50_000_000).to_f64().to_string(), "0.05");
    }

    #[test]
    fn forty_spends_of_a_twentieth_fill_two_exactly() {
        let budget = eps(2.0);
        let step = eps(0.05);
        let mut spent = Epsilon::ZERO;
        let mut n = 0;
        while spent.checked_add(step).unwrap() <= budget {
            spent = spent.checked_add(step).unwrap();
            n += 1;
        }
        assert_eq!((n, spent), (40, budget));
    }
}
