//! `rollcall budget`: the ledger's spend against the configured budgets.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use privacy::{Epsilon, Ledger, SpendSummary};
use serde_json::json;
use server::Config;

/// Show every analyst's, dataset's and population's budget, spend and
/// remainder.
///
/// Reads only the config and the ledger (opened read-only: safe while the
/// servers run; a SQLite file or the PostgreSQL database of `server.ledger`;
/// no Parquet is loaded). Budgets come from the config as it is
/// on disk now; spends from the ledger. An analyst who spent ε but is no
/// longer configured (or no longer has a budget on the dataset) is listed
/// with no budget and nothing remaining: their spend still counts against the
/// dataset's and the population's caps. A population's spend is everything
/// spent on its datasets, and what was once charged to it on datasets that
/// have left it.
#[derive(Args)]
#[command(after_help = "Example:\n  rollcall budget --config config/rollcall.toml --format csv")]
pub struct BudgetArgs {
    /// The server's config file.
    #[arg(long, short, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// How `rollcall budget` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object: `analysts`, `datasets` and `populations`.
    Json,
    /// CSV with a `scope` column (`analyst`, `dataset` or `population`).
    Csv,
}

/// One analyst on one dataset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnalystLine {
    pub analyst: String,
    pub dataset: String,
    /// `None`: no budget in the config (analyst removed, or dataset taken away).
    pub budget: Option<Epsilon>,
    pub spent: Epsilon,
    pub remaining: Epsilon,
    pub releases: u64,
}

/// One dataset, all analysts together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DatasetLine {
    pub dataset: String,
    /// Its population; `None`: the dataset has spends but is no longer configured.
    pub population: Option<String>,
    /// Its own cap, if it has one.
    pub epsilon_total: Option<Epsilon>,
    pub spent: Epsilon,
    /// What remains of its own cap, if it has one.
    pub remaining: Option<Epsilon>,
    pub releases: u64,
}

/// One population, every analyst on every dataset in it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PopulationLine {
    pub population: String,
    pub datasets: Vec<String>,
    pub epsilon_total: Epsilon,
    pub spent: Epsilon,
    pub remaining: Epsilon,
}

/// Everything `rollcall budget` prints.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Lines {
    pub analysts: Vec<AnalystLine>,
    pub datasets: Vec<DatasetLine>,
    pub populations: Vec<PopulationLine>,
}

/// Joins the config's budgets with the ledger's spends; `population_spent`
/// holds each configured population's spend (from the ledger).
pub(crate) fn lines(
    config: &Config,
    spends: &[SpendSummary],
    population_spent: &BTreeMap<String, Epsilon>,
) -> Lines {
    let spent: BTreeMap<(&str, &str), &SpendSummary> = spends
        .iter()
        .map(|s| ((s.dataset.as_str(), s.analyst.as_str()), s))
        .collect();
    let mut out = Lines::default();
    let mut dataset_names: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
    for s in spends {
        if !dataset_names.contains(&s.dataset.as_str()) {
            dataset_names.push(&s.dataset);
        }
    }
    for name in dataset_names {
        let mut listed = Vec::new();
        for a in &config.analysts {
            let Some(&budget) = a.epsilon.get(name) else {
                continue;
            };
            let s = spent.get(&(name, a.name.as_str()));
            let spent = s.map_or(Epsilon::ZERO, |s| s.spent);
            out.analysts.push(AnalystLine {
                analyst: a.name.clone(),
                dataset: name.to_owned(),
                budget: Some(budget),
                spent,
                remaining: budget.saturating_sub(spent),
                releases: s.map_or(0, |s| s.releases),
            });
            listed.push(a.name.as_str());
        }
        for s in spends.iter().filter(|s| s.dataset == name) {
            if !listed.contains(&s.analyst.as_str()) {
                out.analysts.push(AnalystLine {
                    analyst: s.analyst.clone(),
                    dataset: name.to_owned(),
                    budget: None,
                    spent: s.spent,
                    remaining: Epsilon::ZERO,
                    releases: s.releases,
                });
            }
        }
        let configured = config.datasets.iter().find(|d| d.name == name);
        let on_dataset = spends.iter().filter(|s| s.dataset == name);
        let spent = Epsilon::from_nanos(on_dataset.clone().map(|s| s.spent.nanos()).sum());
        let total = configured.and_then(|d| d.epsilon_total);
        out.datasets.push(DatasetLine {
            dataset: name.to_owned(),
            population: configured.map(|d| config.population_of(d).name),
            epsilon_total: total,
            spent,
            remaining: total.map(|t| t.saturating_sub(spent)),
            releases: on_dataset.map(|s| s.releases).sum(),
        });
    }
    for d in &config.datasets {
        let p = config.population_of(d);
        if out.populations.iter().any(|l| l.population == p.name) {
            continue;
        }
        let spent = population_spent.get(&p.name).copied().unwrap_or_default();
        out.populations.push(PopulationLine {
            remaining: p.cap.saturating_sub(spent),
            population: p.name,
            datasets: p.members,
            epsilon_total: p.cap,
            spent,
        });
    }
    out
}

fn opt(v: Option<Epsilon>) -> String {
    v.map_or_else(|| "-".into(), |e| e.to_string())
}

fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn header(names: &[&str]) -> Vec<Vec<String>> {
    vec![names.iter().map(|n| n.to_string()).collect()]
}

pub(crate) fn render(format: Format, lines: &Lines) -> String {
    match format {
        Format::Table => {
            let mut a = header(&[
                "ANALYST",
                "DATASET",
                "BUDGET",
                "SPENT",
                "REMAINING",
                "RELEASES",
            ]);
            for l in &lines.analysts {
                a.push(vec![
                    l.analyst.clone(),
                    l.dataset.clone(),
                    opt(l.budget),
                    l.spent.to_string(),
                    l.remaining.to_string(),
                    l.releases.to_string(),
                ]);
            }
            let mut d = header(&[
                "DATASET",
                "POPULATION",
                "EPSILON_TOTAL",
                "SPENT",
                "REMAINING",
                "RELEASES",
            ]);
            for l in &lines.datasets {
                d.push(vec![
                    l.dataset.clone(),
                    l.population.clone().unwrap_or_else(|| "-".into()),
                    opt(l.epsilon_total),
                    l.spent.to_string(),
                    opt(l.remaining),
                    l.releases.to_string(),
                ]);
            }
            let mut p = header(&[
                "POPULATION",
                "DATASETS",
                "EPSILON_TOTAL",
                "SPENT",
                "REMAINING",
            ]);
            for l in &lines.populations {
                p.push(vec![
                    l.population.clone(),
                    l.datasets.join(","),
                    l.epsilon_total.to_string(),
                    l.spent.to_string(),
                    l.remaining.to_string(),
                ]);
            }
            format!("{}\n{}\n{}", table(&a), table(&d), table(&p))
        }
        Format::Json => {
            let e = |v: Epsilon| v.to_f64();
            let value = json!({
                "analysts": lines.analysts.iter().map(|l| json!({
                    "analyst": l.analyst, "dataset": l.dataset, "budget": l.budget.map(e),
                    "spent": e(l.spent), "remaining": e(l.remaining), "releases": l.releases,
                })).collect::<Vec<_>>(),
                "datasets": lines.datasets.iter().map(|l| json!({
                    "dataset": l.dataset, "population": l.population,
                    "epsilon_total": l.epsilon_total.map(e), "spent": e(l.spent),
                    "remaining": l.remaining.map(e), "releases": l.releases,
                })).collect::<Vec<_>>(),
                "populations": lines.populations.iter().map(|l| json!({
                    "population": l.population, "datasets": l.datasets,
                    "epsilon_total": e(l.epsilon_total), "spent": e(l.spent),
                    "remaining": e(l.remaining),
                })).collect::<Vec<_>>(),
            });
            format!("{value:#}\n")
        }
        Format::Csv => {
            // Names are [A-Za-z0-9_.-] (config validation), so nothing needs quoting.
            let mut out =
                String::from("scope,analyst,dataset,population,budget,spent,remaining,releases\n");
            let num = |v: Option<Epsilon>| v.map_or(String::new(), |v| v.to_string());
            for l in &lines.analysts {
                out += &format!(
                    "analyst,{},{},,{},{},{},{}\n",
                    l.analyst,
                    l.dataset,
                    num(l.budget),
                    l.spent,
                    l.remaining,
                    l.releases
                );
            }
            for l in &lines.datasets {
                out += &format!(
                    "dataset,,{},{},{},{},{},{}\n",
                    l.dataset,
                    l.population.clone().unwrap_or_default(),
                    num(l.epsilon_total),
                    l.spent,
                    num(l.remaining),
                    l.releases
                );
            }
            for l in &lines.populations {
                out += &format!(
                    "population,,,{},{},{},{},\n",
                    l.population, l.epsilon_total, l.spent, l.remaining
                );
            }
            out
        }
    }
}

/// The config at `path` and its ledger, opened read-only (the operator
/// commands never write to it, and a running server may).
pub(crate) fn open_ledger(path: &Path) -> anyhow::Result<(Config, Ledger)> {
    let config =
        Config::from_file(path).with_context(|| format!("invalid config {}", path.display()))?;
    let ledger = Ledger::open_read_only_at(&config.server.ledger).context("server.ledger")?;
    Ok((config, ledger))
}

/// Runs `rollcall budget`.
pub fn run(args: BudgetArgs) -> anyhow::Result<()> {
    let (config, ledger) = open_ledger(&args.config)?;
    let spends = ledger.spend_summary()?;
    let mut population_spent = BTreeMap::new();
    for d in &config.datasets {
        let p = config.population_of(d);
        let spent = ledger.population_spent(&p.name, &p.members)?;
        population_spent.insert(p.name, spent);
    }
    let lines = lines(&config, &spends, &population_spent);
    let mut out = std::io::stdout().lock();
    out.write_all(render(args.format, &lines).as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let hash = |c: char| c.to_string().repeat(64);
        Config::from_toml(&format!(
            r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"
ledger = "l.sqlite"

[[dataset]]
name = "nc"
layout = "nc"
as_of = "2026-06-30"
age_bands = [18]
epsilon_total = 4.0
max_epsilon_per_query = 1.0

[[analyst]]
name = "alice"
token_sha256 = "{}"
epsilon = {{ nc = 1.0 }}

[[analyst]]
name = "bob"
token_sha256 = "{}"
epsilon = {{ nc = 2.0 }}
"#,
            hash('1'),
            hash('2')
        ))
        .unwrap()
    }

    fn eps(v: f64) -> Epsilon {
        Epsilon::from_decimal_f64(v).unwrap()
    }

    fn spend(analyst: &str, dataset: &str, spent: f64, releases: u64) -> SpendSummary {
        SpendSummary {
            analyst: analyst.into(),
            dataset: dataset.into(),
            spent: eps(spent),
            releases,
        }
    }

    #[test]
    fn remaining_is_never_negative_and_departed_analysts_still_count() {
        // alice's budget was lowered below her spend; carol left the config;
        // dataset `oh` was removed from the config.
        let spends = [
            spend("alice", "nc", 1.5, 3),
            spend("carol", "nc", 0.5, 1),
            spend("alice", "oh", 0.25, 1),
        ];
        let l = lines(
            &config(),
            &spends,
            &BTreeMap::from([("nc".to_owned(), eps(2.0))]),
        );
        let find = |who: &str, ds: &str| {
            l.analysts
                .iter()
                .find(|x| x.analyst == who && x.dataset == ds)
                .unwrap_or_else(|| panic!("no line for {who} on {ds}: {:?}", l.analysts))
        };
        assert_eq!(find("alice", "nc").remaining, Epsilon::ZERO);
        assert_eq!(find("alice", "nc").budget, Some(eps(1.0)));
        assert_eq!(find("bob", "nc").remaining, eps(2.0));
        assert_eq!(find("bob", "nc").releases, 0);
        assert_eq!(find("carol", "nc").budget, None);
        assert_eq!(find("carol", "nc").remaining, Epsilon::ZERO);
        assert_eq!(find("alice", "oh").budget, None);
        assert_eq!(
            l.datasets,
            vec![
                DatasetLine {
                    dataset: "nc".into(),
                    population: Some("nc".into()),
                    epsilon_total: Some(eps(4.0)),
                    spent: eps(2.0),
                    remaining: Some(eps(2.0)),
                    releases: 4
                },
                DatasetLine {
                    dataset: "oh".into(),
                    population: None,
                    epsilon_total: None,
                    spent: eps(0.25),
                    remaining: None,
                    releases: 1
                },
            ]
        );
        assert_eq!(
            l.populations,
            vec![PopulationLine {
                population: "nc".into(),
                datasets: vec!["nc".into()],
                epsilon_total: eps(4.0),
                spent: eps(2.0),
                remaining: eps(2.0),
            }]
        );
        let table = render(Format::Table, &l);
        assert!(
            table.contains("ANALYST") && table.contains("POPULATION"),
            "{table}"
        );
        assert!(!table.contains("-0"), "{table}");
        let csv = render(Format::Csv, &l);
        let n = l.analysts.len() + l.datasets.len() + l.populations.len();
        assert_eq!(csv.lines().count(), 1 + n);
        assert!(csv.contains("analyst,carol,nc,,,0.5,0,1"), "{csv}");
        assert!(csv.contains("dataset,,nc,nc,4,2,2,4"), "{csv}");
        assert!(csv.contains("population,,,nc,4,2,2,"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json, &l)).unwrap();
        assert_eq!(json["datasets"][0]["remaining"], 2.0);
        assert_eq!(json["populations"][0]["spent"], 2.0);
    }

    /// Exact amounts print as the decimals they are.
    #[test]
    fn epsilon_is_printed_exactly() {
        let spent = BTreeMap::from([("nc".to_owned(), eps(0.3))]);
        let l = lines(&config(), &[spend("alice", "nc", 0.3, 2)], &spent);
        let table = render(Format::Table, &l);
        assert!(table.contains("0.3 ") || table.contains("0.3\n"), "{table}");
        assert!(table.contains("0.7"), "{table}");
        assert!(!table.contains("0.30000000000000004"), "{table}");
    }
}
