//! Response times that are a function of a release's public shape only.
//!
//! opendp's exact discrete Laplace sampler loops longer for larger noise, and
//! counting takes longer over more rows. So a fresh release does not answer
//! when its work is done: it holds the noise gate for exactly a **deadline**
//! fixed per shape class ([`Class`]: dataset, data version, the rows it
//! counts over, and its number of cells rounded up to a power of two), and
//! only then leaves the gate. Whoever waits at the gate behind it waits for
//! that fixed time, never for the noise.
//!
//! A class's deadline is set once, by [`Deadlines::get_or_calibrate`]: the
//! slowest of a few dry runs of the same work (the same count, noise on a
//! vector of zeros of the same length, and a ledger commit of the same size
//! that records nothing), times [`MARGIN`], rounded up to the quantum. The
//! commit is inside the deadline, so the answer leaves at the deadline. It never moves afterwards: a deadline that followed recent
//! releases (a high-water mark) would let exactly the slowest draws, those
//! with the largest noise, show their own time. A stage that still overruns
//! its deadline (a stall of the machine) is held to the next doubling of it,
//! so an overrun tells at most which doubling, not the stage's time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use engine::CountSource;

/// Slack of a deadline over the slowest calibration run: stalls of the
/// machine and other work on the cores must fit in it, or the release waits
/// a whole second deadline.
pub const MARGIN: f64 = 1.25;

/// Dry runs per calibration; the slowest sets the deadline.
pub const CALIBRATION_RUNS: usize = 5;

/// The public shape that sets a release's deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Class {
    /// Dataset name.
    pub dataset: String,
    /// Its data version (a re-ingest may change its size).
    pub version: String,
    /// The rows the count runs over.
    pub source: CountSource,
    /// Number of bits of the number of cells: cells in `2^(b-1) .. 2^b`.
    pub cells_bits: u32,
}

impl Class {
    /// The class of a release of `cells` cells counted over `source`.
    pub fn new(dataset: &str, version: &str, source: CountSource, cells: u64) -> Class {
        Class {
            dataset: dataset.to_owned(),
            version: version.to_owned(),
            source,
            cells_bits: 64 - cells.leading_zeros(),
        }
    }
}

/// The deadline of every class seen so far. Owned by the release service.
#[derive(Debug)]
pub struct Deadlines {
    quantum: Duration,
    classes: Mutex<HashMap<Class, Duration>>,
}

impl Deadlines {
    /// Deadlines rounded up to multiples of `quantum`; a zero quantum turns
    /// padding off (every deadline is zero).
    pub fn new(quantum: Duration) -> Deadlines {
        Deadlines {
            quantum,
            classes: Mutex::new(HashMap::new()),
        }
    }

    /// Whether releases are padded at all.
    pub fn enabled(&self) -> bool {
        !self.quantum.is_zero()
    }

    /// The deadline of `class`; the first time, `dry_run` is timed
    /// [`CALIBRATION_RUNS`] times to set it. Call it holding the gate, so
    /// calibration runs alone like the releases it stands for.
    pub fn get_or_calibrate(&self, class: &Class, mut dry_run: impl FnMut()) -> Duration {
        if !self.enabled() {
            return Duration::ZERO;
        }
        if let Some(d) = self.lock().get(class) {
            return *d;
        }
        let slowest = (0..CALIBRATION_RUNS)
            .map(|_| {
                let t = Instant::now();
                dry_run();
                t.elapsed()
            })
            .max()
            .unwrap_or_default();
        let deadline = round_up(slowest.mul_f64(MARGIN), self.quantum);
        *self.lock().entry(class.clone()).or_insert(deadline)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Class, Duration>> {
        // The map holds plain durations: a panic elsewhere cannot leave it
        // half-written.
        self.classes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `d` rounded up to a whole number of quanta, at least one.
fn round_up(d: Duration, quantum: Duration) -> Duration {
    let quanta = d.as_nanos().div_ceil(quantum.as_nanos()).max(1);
    quantum * u32::try_from(quanta).unwrap_or(u32::MAX)
}

/// How long a stage that started at `started` must last in all: `deadline`,
/// or its first doubling that is not yet past. Depends on the elapsed time
/// only through which doubling it falls in.
pub fn hold_until(started: Instant, deadline: Duration) -> Duration {
    let elapsed = started.elapsed();
    let mut target = deadline;
    while target < elapsed && !target.is_zero() {
        target *= 2;
    }
    target
}

/// Sleeps until `started + hold_until(started, deadline)`.
pub fn pad(started: Instant, deadline: Duration) {
    let target = hold_until(started, deadline);
    if let Some(rest) = target.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(cells: u64) -> Class {
        Class::new("nc", "v1", CountSource::Rows, cells)
    }

    #[test]
    fn deadlines_round_up_to_the_quantum() {
        let q = Duration::from_millis(1);
        assert_eq!(round_up(Duration::from_micros(10), q), q);
        assert_eq!(round_up(Duration::from_micros(1_001), q), 2 * q);
        assert_eq!(round_up(Duration::ZERO, q), q);
    }

    /// Once set, a class's deadline never follows what later releases took:
    /// a slow stage does not raise it, a fast one does not lower it. (The
    /// padding it replaces followed a decaying high-water mark of recent
    /// stages, which let the slowest draws show their own time.)
    #[test]
    fn a_deadline_is_fixed_once_calibrated() {
        let d = Deadlines::new(Duration::from_millis(1));
        let first =
            d.get_or_calibrate(&class(900), || std::thread::sleep(Duration::from_millis(2)));
        assert!(first >= Duration::from_millis(3), "{first:?}");
        let again = d.get_or_calibrate(&class(900), || {
            std::thread::sleep(Duration::from_millis(20))
        });
        assert_eq!(again, first);
        let same_bucket = d.get_or_calibrate(&class(600), || unreachable!("calibrated"));
        assert_eq!(same_bucket, first);
        let other = d.get_or_calibrate(&class(1), || {});
        assert_eq!(other, Duration::from_millis(1));
    }

    /// A stage inside its deadline is held to exactly the deadline; one that
    /// overruns is held to the next doubling, whatever its own length.
    #[test]
    fn holding_depends_only_on_the_deadline_and_its_doubling() {
        let deadline = Duration::from_millis(4);
        let now = Instant::now();
        assert_eq!(hold_until(now, deadline), deadline);
        let late = now - Duration::from_millis(5);
        assert_eq!(hold_until(late, deadline), 2 * deadline);
        let later = now - Duration::from_millis(7);
        assert_eq!(hold_until(later, deadline), 2 * deadline);
        let much_later = now - Duration::from_millis(9);
        assert_eq!(hold_until(much_later, deadline), 4 * deadline);
    }

    #[test]
    fn a_zero_quantum_turns_padding_off() {
        let d = Deadlines::new(Duration::ZERO);
        assert!(!d.enabled());
        assert_eq!(
            d.get_or_calibrate(&class(9), || unreachable!()),
            Duration::ZERO
        );
        let t = Instant::now();
        pad(t, Duration::ZERO);
        assert!(t.elapsed() < Duration::from_millis(50));
    }
}
