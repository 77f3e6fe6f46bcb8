//! The release service: one object, owned by the server's state, through
//! which every answer passes.
//!
//! The order of [`ReleaseService::answer`] is the privacy argument:
//! 1. **validate** against the public domains only (ε, dimensions, values,
//!    cells) and fix the charge ([`privacy::charge_for`]) — no data;
//! 2. a **stored** release of the same key (that the dataset's sharing
//!    allows) is returned free;
//! 3. **affordability**: every cap is checked, read-only, before any work, so
//!    a query that cannot be paid for costs the server nothing and waits
//!    for nobody;
//! 4. under the **gate** (one fresh release at a time): **count** exactly,
//!    add opendp **noise**, **commit** spend and noisy rows in one ledger
//!    transaction (which checks the caps again, as the authority), then
//!    **pad** to the class's fixed deadline ([`crate::timing`]) before
//!    leaving the gate, whatever the outcome; only then is anything returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{CountQuery, Dataset, Domains};
use privacy::{
    Balances, Caps, Charge, CommitOutcome, Epsilon, ExactCounts, Ledger, NewRelease, Sharing,
    StoredRelease,
};

use crate::ReleaseError;
use crate::answer::{Answer, Cost, Released, Remaining, Rows, query_json};
use crate::stored::StoredReleases;
use crate::timing::{Class, Deadlines};

/// What caps a dataset's releases and how they are shared: from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The population its voters belong to (its own name if none is set).
    pub population: String,
    /// Every dataset of the population, this one included.
    pub population_members: Vec<String>,
    /// The population's cap.
    pub population_cap: Epsilon,
    /// The dataset's own cap, if it has one.
    pub dataset_cap: Option<Epsilon>,
    /// The most ε one query may spend.
    pub max_epsilon_per_query: Epsilon,
    /// Whether any analyst is served any stored release (`true`), or only
    /// their own (`false`).
    pub share_releases: bool,
}

/// A dataset as the release path sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name.
    pub name: String,
    /// Its rows.
    pub data: Arc<Dataset>,
    /// Its public domains.
    pub domains: Arc<Domains>,
    /// What the data is and how its cells are labelled
    /// ([`Target::version_of`]): part of every release key, so a re-ingest or
    /// a new `as_of` never serves an old release.
    pub version: String,
    /// Its caps and sharing.
    pub policy: Policy,
}

impl Target {
    /// The version of `data` under `domains`: the data version and the
    /// domains' digest.
    pub fn version_of(data: &Dataset, domains: &Domains) -> String {
        format!("{}.{}", data.version(), domains.digest())
    }
}

/// Who asks, and with how much budget on the dataset.
#[derive(Debug, Clone, Copy)]
pub struct Spender<'a> {
    /// The analyst's name (as recorded in the ledger).
    pub name: &'a str,
    /// Their budget on this dataset.
    pub budget: Epsilon,
}

/// A query as asked, by names and public values.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// Dimensions to group by, in answer order.
    pub group_by: Vec<String>,
    /// Per dimension, the values to keep.
    pub filter: Vec<(String, Vec<String>)>,
    /// The ε asked for (read as the decimal it was written as).
    pub epsilon: f64,
    /// Only report the cost.
    pub dry_run: bool,
    /// The most cells the answer may have (`server.max_cells`).
    pub max_cells: u64,
}

/// A query checked against the public domains, with its price.
struct Validated {
    query: CountQuery,
    key: String,
    cells: u64,
    charge: Charge,
}

/// The release path. `Send + Sync`; one per server, shared by every request.
#[derive(Debug)]
pub struct ReleaseService {
    ledger: Arc<Ledger>,
    gate: parking_lot::FairMutex<()>,
    deadlines: Deadlines,
    charges: Mutex<HashMap<Epsilon, Charge>>,
    stored: StoredReleases,
}

impl ReleaseService {
    /// A service committing to `ledger`, padding fresh releases to deadlines
    /// in steps of `quantum` (zero: no padding).
    pub fn new(ledger: Arc<Ledger>, quantum: Duration) -> ReleaseService {
        ReleaseService {
            ledger,
            gate: parking_lot::FairMutex::new(()),
            deadlines: Deadlines::new(quantum),
            charges: Mutex::new(HashMap::new()),
            stored: StoredReleases::default(),
        }
    }

    /// The ledger it commits to.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Answers from memory, if it can: a stored release this process has
    /// already seen, for a query that is not a dry run; only the analyst's
    /// spend is read from the ledger. Cheap enough for an async thread when
    /// the ledger is local ([`Ledger::is_remote`] is false: a PostgreSQL
    /// read is a round trip, for a blocking thread); `Ok(None)` means call
    /// [`ReleaseService::answer`].
    pub fn answer_stored(
        &self,
        target: &Target,
        who: Spender<'_>,
        ask: &Ask,
    ) -> Result<Option<Answer>, ReleaseError> {
        if ask.dry_run {
            return Ok(None);
        }
        let v = self.validate(target, ask)?;
        let sharing = sharing(target, who);
        let Some(stored) = self.stored.get(&target.name, &v.key, sharing) else {
            return Ok(None);
        };
        // The analyst's remaining budget is the one figure read afresh.
        let spent = self.ledger.spent(who.name, &target.name)?;
        log(
            target,
            who,
            ask,
            &v,
            "cached",
            Some(&stored.release_id),
            Instant::now(),
        );
        Ok(Some(Answer::Release(Released {
            release: stored,
            cached: true,
            cells: v.cells,
            analyst_remaining: who.budget.saturating_sub(spent),
        })))
    }

    /// Answers `ask` on `target` for `who`: the whole release path (see the
    /// module documentation). Blocking: call it from a blocking thread.
    pub fn answer(
        &self,
        target: &Target,
        who: Spender<'_>,
        ask: &Ask,
    ) -> Result<Answer, ReleaseError> {
        let started = Instant::now();
        let v = self.validate(target, ask)?;
        let sharing = sharing(target, who);
        let caps = caps(target, who);
        if let Some(stored) = self.find_stored(target, &v.key, sharing)? {
            return self.stored_answer(target, who, ask, &v, stored, &caps, started);
        }
        let balances = self.ledger.balances(&caps)?;
        if ask.dry_run {
            let cost = cost(&v, &balances, &caps, false);
            log(target, who, ask, &v, "dry_run", None, started);
            return Ok(Answer::Cost(cost));
        }
        if let Err(refused) = balances.check(&caps, v.charge.epsilon) {
            log(target, who, ask, &v, "budget_exhausted", None, started);
            return Err(refused.into());
        }
        let outcome = self.release(target, &v, &caps, sharing)?;
        let cached = outcome.is_cached();
        let release = self.stored.put(sharing, outcome.release());
        let spent = self.ledger.spent(who.name, &target.name)?;
        let status = if cached { "cached" } else { "released" };
        log(
            target,
            who,
            ask,
            &v,
            status,
            Some(&release.release_id),
            started,
        );
        Ok(Answer::Release(Released {
            release,
            cached,
            cells: v.cells,
            analyst_remaining: who.budget.saturating_sub(spent),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn stored_answer(
        &self,
        target: &Target,
        who: Spender<'_>,
        ask: &Ask,
        v: &Validated,
        stored: Arc<StoredRelease>,
        caps: &Caps,
        started: Instant,
    ) -> Result<Answer, ReleaseError> {
        let balances = self.ledger.balances(caps)?;
        log(
            target,
            who,
            ask,
            v,
            "cached",
            Some(&stored.release_id),
            started,
        );
        if ask.dry_run {
            return Ok(Answer::Cost(cost(v, &balances, caps, true)));
        }
        Ok(Answer::Release(Released {
            release: stored,
            cached: true,
            cells: v.cells,
            analyst_remaining: caps.analyst_budget.saturating_sub(balances.analyst),
        }))
    }

    fn find_stored(
        &self,
        target: &Target,
        key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<Arc<StoredRelease>>, ReleaseError> {
        if let Some(r) = self.stored.get(&target.name, key, sharing) {
            return Ok(Some(r));
        }
        let found = self.ledger.find_release(&target.name, key, sharing)?;
        Ok(found.map(|r| self.stored.put(sharing, &r)))
    }

    /// Under the gate: count, add noise, commit, and hold the gate until the
    /// class's deadline, also when the commit refuses (a refusal after the
    /// noise was drawn must not answer early either). The exact counts exist
    /// only inside this function.
    fn release(
        &self,
        target: &Target,
        v: &Validated,
        caps: &Caps,
        sharing: Sharing<'_>,
    ) -> Result<CommitOutcome, ReleaseError> {
        let _gate = self.gate.lock();
        let source = target.data.source_for(&v.query)?;
        let class = Class::new(&target.name, &target.version, source, v.cells);
        let deadline = self.deadlines.get_or_calibrate(&class, || {
            // The same work with the output thrown away: the same count,
            // noise on zeros (which says nothing about the data), rows of the
            // same shape, and a commit of their size that records nothing.
            let _ = target.data.count(&v.query);
            let zeros = ExactCounts::new(vec![0; v.cells as usize]);
            let noisy = privacy::release_counts(zeros, &v.charge).map(|r| r.noisy);
            let rows = noisy.map(|n| self.rows_json(target, v, &n));
            if let Ok(Ok(json)) = rows {
                let _ = self.ledger.rehearse_commit(json.len());
            }
        });
        let started = Instant::now();
        let outcome = (|| {
            let exact = target.data.count(&v.query)?;
            let release = privacy::release_counts(exact, &v.charge)?;
            self.commit(target, v, caps, sharing, &release.noisy)
        })();
        let stage = started.elapsed();
        crate::timing::pad(started, deadline);
        tracing::debug!(
            stage_ms = stage.as_secs_f64() * 1e3,
            deadline_ms = deadline.as_secs_f64() * 1e3,
            "release stage"
        );
        outcome
    }

    fn rows_json(
        &self,
        target: &Target,
        v: &Validated,
        noisy: &[i64],
    ) -> Result<String, ReleaseError> {
        let cells = target.domains.cells(&v.query)?;
        let names: Vec<&str> = v
            .query
            .group_by
            .iter()
            .map(|d| target.domains.name(*d))
            .collect();
        Rows {
            dims: &names,
            cells: &cells,
            noisy,
        }
        .to_json()
    }

    fn commit(
        &self,
        target: &Target,
        v: &Validated,
        caps: &Caps,
        sharing: Sharing<'_>,
        noisy: &[i64],
    ) -> Result<CommitOutcome, ReleaseError> {
        let rows_json = self.rows_json(target, v, noisy)?;
        let release = NewRelease {
            query_key: v.key.clone(),
            query_json: query_json(&target.name, &target.domains, &v.query, v.charge.epsilon)?,
            rows_json,
            mechanism: privacy::MECHANISM.to_owned(),
            noise_scale: v.charge.scale,
            ci95: v.charge.ci95,
            epsilon: v.charge.epsilon,
        };
        Ok(self.ledger.commit_release(caps, sharing, &release)?)
    }

    fn validate(&self, target: &Target, ask: &Ask) -> Result<Validated, ReleaseError> {
        let asked =
            Epsilon::from_decimal_f64(ask.epsilon).map_err(|_| ReleaseError::InvalidEpsilon {
                epsilon: ask.epsilon,
                reason: "must be a finite number above 0".into(),
            })?;
        if asked == Epsilon::ZERO {
            return Err(ReleaseError::InvalidEpsilon {
                epsilon: ask.epsilon,
                reason: "must be a finite number above 0".into(),
            });
        }
        let max = target.policy.max_epsilon_per_query;
        if asked > max {
            return Err(ReleaseError::InvalidEpsilon {
                epsilon: ask.epsilon,
                reason: format!("above this dataset's max_epsilon_per_query of {max}"),
            });
        }
        let domains = &target.domains;
        let group_by = ask
            .group_by
            .iter()
            .map(|name| domains.dim(name))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = ask
            .filter
            .iter()
            .map(|(name, values)| Ok((domains.dim(name)?, values.clone())))
            .collect::<Result<Vec<_>, ReleaseError>>()?;
        let query = CountQuery { group_by, filter };
        let cells = domains.cell_count(&query)?;
        if cells > ask.max_cells {
            return Err(ReleaseError::TooManyCells {
                cells,
                max: ask.max_cells,
            });
        }
        let charge = self.charge(asked)?;
        let key = format!(
            "v2|{}|{}|epsilon={}",
            target.version,
            domains.query_key(&query)?,
            charge.epsilon.nanos()
        );
        Ok(Validated {
            query,
            key,
            cells,
            charge,
        })
    }

    /// [`privacy::charge_for`], remembered: the scale search calls opendp's
    /// privacy map dozens of times, and an ε is asked for again and again.
    fn charge(&self, asked: Epsilon) -> Result<Charge, ReleaseError> {
        let mut charges = self.charges.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = charges.get(&asked) {
            return Ok(*c);
        }
        let c = privacy::charge_for(asked)?;
        charges.insert(asked, c);
        Ok(c)
    }
}

fn sharing<'a>(target: &Target, who: Spender<'a>) -> Sharing<'a> {
    if target.policy.share_releases {
        Sharing::Everyone
    } else {
        Sharing::OwnOnly(who.name)
    }
}

fn caps(target: &Target, who: Spender<'_>) -> Caps {
    let p = &target.policy;
    Caps {
        analyst: who.name.to_owned(),
        dataset: target.name.clone(),
        population: p.population.clone(),
        population_members: p.population_members.clone(),
        analyst_budget: who.budget,
        dataset_cap: p.dataset_cap,
        population_cap: p.population_cap,
    }
}

fn cost(v: &Validated, balances: &Balances, caps: &Caps, cached: bool) -> Cost {
    let epsilon = if cached {
        Epsilon::ZERO
    } else {
        v.charge.epsilon
    };
    let population_left = caps.population_cap.saturating_sub(balances.population);
    let dataset_left = caps.dataset_cap.map_or(population_left, |cap| {
        cap.saturating_sub(balances.dataset).min(population_left)
    });
    Cost {
        epsilon,
        noise_scale: v.charge.scale,
        ci95: v.charge.ci95,
        cells: v.cells,
        cached,
        affordable: cached || balances.check(caps, epsilon).is_ok(),
        remaining: Remaining {
            analyst: caps.analyst_budget.saturating_sub(balances.analyst),
            dataset: dataset_left,
            population: caps.population.clone(),
            population_left,
        },
    }
}

/// The one log line of a query: who, what shape, what happened. Never a
/// count, a row or a token.
fn log(
    target: &Target,
    who: Spender<'_>,
    ask: &Ask,
    v: &Validated,
    outcome: &str,
    release_id: Option<&str>,
    started: Instant,
) {
    let filter: Vec<&str> = ask.filter.iter().map(|(d, _)| d.as_str()).collect();
    tracing::info!(
        analyst = %who.name,
        dataset = %target.name,
        group_by = ?ask.group_by,
        filter = ?filter,
        epsilon = v.charge.epsilon.to_f64(),
        cells = v.cells,
        outcome,
        cached = outcome == "cached",
        dry_run = ask.dry_run,
        release_id = release_id.unwrap_or(""),
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        "query"
    );
}
