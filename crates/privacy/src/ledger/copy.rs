//! Moving a whole ledger to another database (`rollcall ledger copy`), e.g.
//! from the SQLite file of one server to the PostgreSQL of several, without
//! losing a spend.
//!
//! The target must be empty. Every release, then every spend, is read from
//! one consistent snapshot of the source and written in one transaction of
//! the target, whose triggers rebuild the running totals from the spends;
//! the transaction commits only if the target's counts, its sum of all
//! spends and every running total (per analyst and dataset, per dataset,
//! per population and dataset) then equal the source's. A copy is therefore
//! whole or absent, never partial.

use super::{DatasetSummary, Ledger, SpendSummary};
use crate::{Epsilon, PrivacyError};

/// What was charged to one population on one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulationSummary {
    /// The population.
    pub population: String,
    /// The dataset.
    pub dataset: String,
    /// The sum of ε charged.
    pub spent: Epsilon,
}

/// Everything a copy is checked by: counts, the sum of every spend, and the
/// running totals the budget checks read, in name order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LedgerTotals {
    /// Releases stored.
    pub releases: u64,
    /// Spends recorded.
    pub spends: u64,
    /// The sum of every spend, from the spends themselves.
    pub spent: Epsilon,
    /// Per analyst and dataset.
    pub analysts: Vec<SpendSummary>,
    /// Per dataset.
    pub datasets: Vec<DatasetSummary>,
    /// Per population and dataset.
    pub populations: Vec<PopulationSummary>,
}

impl Ledger {
    /// Copies every release and spend of this ledger into `target`, which
    /// must be empty, and returns the totals both now have. Refuses a target
    /// that holds anything; rolls back (leaving `target` empty) if any total
    /// would differ.
    pub fn copy_to(&self, target: &Ledger) -> Result<LedgerTotals, PrivacyError> {
        let copied = target.backend.import(&*self.backend)?;
        // Read back after the commit, through the target's own views.
        verify(&copied, &target.totals()?)?;
        Ok(copied)
    }
}

/// Refuses a target that already holds a release or a spend: merging two
/// ledgers could not keep each cap's meaning.
pub(crate) fn refuse_non_empty(target: &LedgerTotals) -> Result<(), PrivacyError> {
    if target.releases > 0 || target.spends > 0 || !target.datasets.is_empty() {
        return Err(PrivacyError::Ledger(format!(
            "the target ledger is not empty ({} releases, {} spends): copy only into a new one",
            target.releases, target.spends
        )));
    }
    Ok(())
}

/// `Ok` if `target` has exactly the totals of `source`; otherwise an error
/// naming the first that differs.
pub(crate) fn verify(source: &LedgerTotals, target: &LedgerTotals) -> Result<(), PrivacyError> {
    let differ = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        Err(PrivacyError::Ledger(format!(
            "copy not verified: {what} differ (source {a:?}, target {b:?}); nothing was copied"
        )))
    };
    if source.releases != target.releases {
        return differ("release counts", &source.releases, &target.releases);
    }
    if source.spends != target.spends {
        return differ("spend counts", &source.spends, &target.spends);
    }
    if source.spent != target.spent {
        return differ("sums of all spends", &source.spent, &target.spent);
    }
    for (a, b) in source.analysts.iter().zip(&target.analysts) {
        if a != b {
            return differ("analyst totals", a, b);
        }
    }
    for (a, b) in source.datasets.iter().zip(&target.datasets) {
        if a != b {
            return differ("dataset totals", a, b);
        }
    }
    for (a, b) in source.populations.iter().zip(&target.populations) {
        if a != b {
            return differ("population totals", a, b);
        }
    }
    if source != target {
        return differ("numbers of totals", source, target);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals() -> LedgerTotals {
        LedgerTotals {
            releases: 2,
            spends: 2,
            spent: Epsilon::from_nanos(3),
            analysts: vec![SpendSummary {
                analyst: "alice".into(),
                dataset: "nc".into(),
                spent: Epsilon::from_nanos(3),
                releases: 2,
            }],
            datasets: vec![DatasetSummary {
                dataset: "nc".into(),
                spent: Epsilon::from_nanos(3),
                releases: 2,
            }],
            populations: vec![PopulationSummary {
                population: "nc".into(),
                dataset: "nc".into(),
                spent: Epsilon::from_nanos(3),
            }],
        }
    }

    /// One nano-ε or one row anywhere is a difference, named.
    #[test]
    fn any_difference_fails_the_copy_and_is_named() {
        verify(&totals(), &totals()).unwrap();
        type Change = Box<dyn Fn(&mut LedgerTotals)>;
        let cases: Vec<(&str, Change)> = vec![
            ("release counts", Box::new(|t| t.releases += 1)),
            ("spend counts", Box::new(|t| t.spends -= 1)),
            (
                "sums of all spends",
                Box::new(|t| t.spent = Epsilon::from_nanos(4)),
            ),
            ("analyst totals", Box::new(|t| t.analysts[0].releases = 1)),
            (
                "dataset totals",
                Box::new(|t| t.datasets[0].spent = Epsilon::ZERO),
            ),
            (
                "population totals",
                Box::new(|t| t.populations[0].dataset = "oh".into()),
            ),
            ("numbers of totals", Box::new(|t| t.populations.clear())),
        ];
        for (what, change) in cases {
            let mut target = totals();
            change(&mut target);
            let err = verify(&totals(), &target).unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
        assert!(refuse_non_empty(&LedgerTotals::default()).is_ok());
        assert!(refuse_non_empty(&totals()).is_err());
    }
}
