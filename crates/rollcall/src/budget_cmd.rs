//! `rollcall budget`: the ledger's spend against the configured budgets.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use privacy::{Ledger, SpendSummary};
use serde_json::json;
use server::Config;

/// Show every analyst's and every dataset's budget, spend and remainder.
///
/// Reads only the config and the ledger (opened read-only: safe while the
/// server runs; no Parquet is loaded). Budgets come from the config as it is
/// on disk now; spends from the ledger. An analyst who spent ε but is no
/// longer configured (or no longer has a budget on the dataset) is listed
/// with no budget and nothing remaining: their spend still counts against the
/// dataset's `epsilon_total`.
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
    /// One JSON object: `analysts` and `datasets`.
    Json,
    /// CSV with a `scope` column (`analyst` or `dataset`).
    Csv,
}

/// One analyst on one dataset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnalystLine {
    pub analyst: String,
    pub dataset: String,
    /// `None`: no budget in the config (analyst removed, or dataset taken away).
    pub budget: Option<f64>,
    pub spent: f64,
    pub remaining: f64,
    pub releases: u64,
}

/// One dataset, all analysts together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DatasetLine {
    pub dataset: String,
    /// `None`: the dataset has spends but is no longer configured.
    pub epsilon_total: Option<f64>,
    pub spent: f64,
    pub remaining: f64,
    pub releases: u64,
}

/// Joins the config's budgets with the ledger's spends.
pub(crate) fn lines(
    config: &Config,
    spends: &[SpendSummary],
) -> (Vec<AnalystLine>, Vec<DatasetLine>) {
    let spent: BTreeMap<(&str, &str), &SpendSummary> = spends
        .iter()
        .map(|s| ((s.dataset.as_str(), s.analyst.as_str()), s))
        .collect();
    let mut analysts = Vec::new();
    let mut datasets = Vec::new();
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
            let spent = s.map_or(0.0, |s| s.spent);
            analysts.push(AnalystLine {
                analyst: a.name.clone(),
                dataset: name.to_owned(),
                budget: Some(budget),
                spent,
                remaining: (budget - spent).max(0.0),
                releases: s.map_or(0, |s| s.releases),
            });
            listed.push(a.name.as_str());
        }
        for s in spends.iter().filter(|s| s.dataset == name) {
            if !listed.contains(&s.analyst.as_str()) {
                analysts.push(AnalystLine {
                    analyst: s.analyst.clone(),
                    dataset: name.to_owned(),
                    budget: None,
                    spent: s.spent,
                    remaining: 0.0,
                    releases: s.releases,
                });
            }
        }
        let total = config
            .datasets
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.epsilon_total);
        let on_dataset = spends.iter().filter(|s| s.dataset == name);
        let spent: f64 = on_dataset.clone().map(|s| s.spent).sum();
        datasets.push(DatasetLine {
            dataset: name.to_owned(),
            epsilon_total: total,
            spent,
            remaining: total.map_or(0.0, |t| (t - spent).max(0.0)),
            releases: on_dataset.map(|s| s.releases).sum(),
        });
    }
    (analysts, datasets)
}

/// ε for people: at most 6 decimals, no trailing zeros.
fn eps(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
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

pub(crate) fn render(format: Format, analysts: &[AnalystLine], datasets: &[DatasetLine]) -> String {
    match format {
        Format::Table => {
            let mut a = vec![
                [
                    "ANALYST",
                    "DATASET",
                    "BUDGET",
                    "SPENT",
                    "REMAINING",
                    "RELEASES",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for l in analysts {
                a.push(vec![
                    l.analyst.clone(),
                    l.dataset.clone(),
                    opt(l.budget, eps),
                    eps(l.spent),
                    eps(l.remaining),
                    l.releases.to_string(),
                ]);
            }
            let mut d = vec![
                ["DATASET", "EPSILON_TOTAL", "SPENT", "REMAINING", "RELEASES"]
                    .map(String::from)
                    .to_vec(),
            ];
            for l in datasets {
                d.push(vec![
                    l.dataset.clone(),
                    opt(l.epsilon_total, eps),
                    eps(l.spent),
                    eps(l.remaining),
                    l.releases.to_string(),
                ]);
            }
            format!("{}\n{}", table(&a), table(&d))
        }
        Format::Json => {
            let value = json!({
                "analysts": analysts.iter().map(|l| json!({
                    "analyst": l.analyst, "dataset": l.dataset, "budget": l.budget,
                    "spent": l.spent, "remaining": l.remaining, "releases": l.releases,
                })).collect::<Vec<_>>(),
                "datasets": datasets.iter().map(|l| json!({
                    "dataset": l.dataset, "epsilon_total": l.epsilon_total,
                    "spent": l.spent, "remaining": l.remaining, "releases": l.releases,
                })).collect::<Vec<_>>(),
            });
            format!("{value:#}\n")
        }
        Format::Csv => {
            // Names are [A-Za-z0-9_.-] (config validation), so nothing needs quoting.
            let mut out = String::from("scope,analyst,dataset,budget,spent,remaining,releases\n");
            let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            for l in analysts {
                out += &format!(
                    "analyst,{},{},{},{},{},{}\n",
                    l.analyst,
                    l.dataset,
                    num(l.budget),
                    l.spent,
                    l.remaining,
                    l.releases
                );
            }
            for l in datasets {
                out += &format!(
                    "dataset,,{},{},{},{},{}\n",
                    l.dataset,
                    num(l.epsilon_total),
                    l.spent,
                    l.remaining,
                    l.releases
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
    let ledger = Ledger::open_read_only(&config.server.ledger).context("server.ledger")?;
    Ok((config, ledger))
}

/// Runs `rollcall budget`.
pub fn run(args: BudgetArgs) -> anyhow::Result<()> {
    let (config, ledger) = open_ledger(&args.config)?;
    let spends = ledger.spend_summary()?;
    let (analysts, datasets) = lines(&config, &spends);
    let mut out = std::io::stdout().lock();
    out.write_all(render(args.format, &analysts, &datasets).as_bytes())?;
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

    fn spend(analyst: &str, dataset: &str, spent: f64, releases: u64) -> SpendSummary {
        SpendSummary {
            analyst: analyst.into(),
            dataset: dataset.into(),
            spent,
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
        let (a, d) = lines(&config(), &spends);
        let find = |who: &str, ds: &str| {
            a.iter()
                .find(|l| l.analyst == who && l.dataset == ds)
                .unwrap_or_else(|| panic!("no line for {who} on {ds}: {a:?}"))
        };
        assert_eq!(find("alice", "nc").remaining, 0.0);
        assert_eq!(find("alice", "nc").budget, Some(1.0));
        assert_eq!(find("bob", "nc").remaining, 2.0);
        assert_eq!(find("bob", "nc").releases, 0);
        assert_eq!(find("carol", "nc").budget, None);
        assert_eq!(find("carol", "nc").remaining, 0.0);
        assert_eq!(find("alice", "oh").budget, None);
        assert_eq!(
            d,
            vec![
                DatasetLine {
                    dataset: "nc".into(),
                    epsilon_total: Some(4.0),
                    spent: 2.0,
                    remaining: 2.0,
                    releases: 4
                },
                DatasetLine {
                    dataset: "oh".into(),
                    epsilon_total: None,
                    spent: 0.25,
                    remaining: 0.0,
                    releases: 1
                },
            ]
        );
        let table = render(Format::Table, &a, &d);
        assert!(table.contains("ANALYST"), "{table}");
        assert!(!table.contains("-0"), "{table}");
        let csv = render(Format::Csv, &a, &d);
        assert_eq!(csv.lines().count(), 1 + a.len() + d.len());
        assert!(csv.contains("analyst,carol,nc,,0.5,0,1"), "{csv}");
        assert!(csv.contains("dataset,,nc,4,2,2,4"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&render(Format::Json, &a, &d)).unwrap();
        assert_eq!(json["datasets"][0]["remaining"], 2.0);
    }

    #[test]
    fn epsilon_is_printed_short() {
        assert_eq!(eps(0.1 + 0.2), "0.3");
        assert_eq!(eps(3.0), "3");
        assert_eq!(eps(0.0), "0");
        assert_eq!(eps(0.125), "0.125");
    }
}
