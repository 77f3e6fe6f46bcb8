//! `rollcall audit`: every release, for an oversight board.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use privacy::StoredRelease;
use serde_json::{Value, json};

/// Export every release in the ledger (all analysts), oldest first.
///
/// One record per release: release_id, created_at (UTC), analyst, dataset,
/// population (charged), group_by, filter, epsilon (charged, exact),
/// mechanism, noise_scale, ci95, cells.
/// The noisy counts themselves (already-released DP outputs) only with
/// `--with-rows`. Cached re-serves (an identical query answered from a stored
/// release, for free) are not recorded in the ledger; they are in the server's
/// log (`"cached": true`). Reads only the config and the ledger, read-only:
/// safe while the server runs.
#[derive(Args)]
#[command(
    after_help = "Example:\n  rollcall audit --config config/rollcall.toml --since 2026-06-01 --out audit.csv"
)]
pub struct AuditArgs {
    /// The server's config file (for the ledger's path).
    #[arg(long, short, env = "ROLLCALL_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// Only releases committed at or after this time: `YYYY-MM-DD` (UTC) or
    /// RFC 3339 (`2026-06-30T12:00:00Z`, `2026-06-30T08:00:00-04:00`).
    #[arg(long, value_name = "DATE|RFC3339")]
    since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Include each release's noisy counts (`rows`, as JSON).
    #[arg(long)]
    with_rows: bool,
}

/// How `rollcall audit` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// RFC 4180 CSV with a header; `group_by` is `;`-separated, `filter` and
    /// `rows` are JSON.
    Csv,
    /// One JSON object `{"releases": [...]}`.
    Json,
}

/// One release as exported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub release: StoredRelease,
    pub group_by: Vec<String>,
    pub filter: Value,
    pub cells: usize,
}

pub(crate) fn record(release: StoredRelease) -> anyhow::Result<Record> {
    let id = release.release_id.clone();
    let query: Value = serde_json::from_str(&release.query_json)
        .with_context(|| format!("release {id}: stored query is not JSON"))?;
    let group_by = query["group_by"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let filter = query.get("filter").cloned().unwrap_or_else(|| json!({}));
    let rows: Value = serde_json::from_str(&release.rows_json)
        .with_context(|| format!("release {id}: stored rows are not JSON"))?;
    let cells = rows.as_array().map_or(0, Vec::len);
    Ok(Record {
        release,
        group_by,
        filter,
        cells,
    })
}

/// A CSV field, quoted when it needs to be.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

pub(crate) fn render(format: Format, records: &[Record], with_rows: bool) -> String {
    match format {
        Format::Csv => {
            let mut out = String::from(
                "release_id,created_at,analyst,dataset,population,group_by,filter,epsilon,mechanism,noise_scale,ci95,cells",
            );
            if with_rows {
                out += ",rows";
            }
            out.push('\n');
            for r in records {
                let s = &r.release;
                let mut fields = vec![
                    s.release_id.clone(),
                    s.created_at.clone(),
                    s.analyst.clone(),
                    s.dataset.clone(),
                    s.population.clone(),
                    r.group_by.join(";"),
                    r.filter.to_string(),
                    s.epsilon.to_string(),
                    s.mechanism.clone(),
                    s.noise_scale.to_string(),
                    s.ci95.to_string(),
                    r.cells.to_string(),
                ];
                if with_rows {
                    fields.push(s.rows_json.clone());
                }
                let fields: Vec<String> = fields.iter().map(|f| csv(f)).collect();
                out += &fields.join(",");
                out.push('\n');
            }
            out
        }
        Format::Json => {
            let releases: Vec<Value> = records
                .iter()
                .map(|r| {
                    let s = &r.release;
                    let mut v = json!({
                        "release_id": s.release_id, "created_at": s.created_at,
                        "analyst": s.analyst, "dataset": s.dataset, "population": s.population,
                        "group_by": r.group_by, "filter": r.filter,
                        "epsilon": s.epsilon.to_f64(), "mechanism": s.mechanism,
                        "noise_scale": s.noise_scale, "ci95": s.ci95, "cells": r.cells,
                    });
                    if with_rows {
                        v["rows"] = serde_json::from_str(&s.rows_json).unwrap_or(Value::Null);
                    }
                    v
                })
                .collect();
            format!("{:#}\n", json!({ "releases": releases }))
        }
    }
}

/// Runs `rollcall audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let (_config, ledger) = crate::budget_cmd::open_ledger(&args.config)?;
    let releases = ledger
        .releases_since(args.since.as_deref())
        .context("--since")?;
    let records = releases
        .into_iter()
        .map(record)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = render(args.format, &records, args.with_rows);
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredRelease {
        StoredRelease {
            release_id: "00ff".into(),
            analyst: "alice".into(),
            dataset: "nc".into(),
            population: "nc-voters".into(),
            query_key: "k".into(),
            query_json: r#"{"dataset":"nc","group_by":["county","age_band"],"filter":{"party":["DEM","REP"]},"epsilon":0.5}"#.into(),
            rows_json: r#"[{"county":"WAKE","age_band":"18-24","count":12},{"county":"WAKE","age_band":"25-34","count":-1}]"#.into(),
            epsilon: privacy::Epsilon::from_nanos(500_000_000),
            mechanism: "discrete_laplace".into(),
            noise_scale: 2.0,
            ci95: 6.5,
            created_at: "2026-06-30T12:00:00.000Z".into(),
        }
    }

    #[test]
    fn csv_has_no_rows_unless_asked() {
        let r = record(stored()).unwrap();
        assert_eq!(r.cells, 2);
        assert_eq!(r.group_by, ["county", "age_band"]);
        let lean = render(Format::Csv, std::slice::from_ref(&r), false);
        let lines: Vec<&str> = lean.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(",cells"), "{}", lines[0]);
        assert_eq!(
            lines[1],
            r#"00ff,2026-06-30T12:00:00.000Z,alice,nc,nc-voters,county;age_band,"{""party"":[""DEM"",""REP""]}",0.5,discrete_laplace,2,6.5,2"#
        );
        assert!(!lean.contains(r#"""count"""#), "rows leaked: {lean}");
        let full = render(Format::Csv, std::slice::from_ref(&r), true);
        assert!(full.lines().next().unwrap().ends_with(",rows"));
        assert!(full.contains(r#"""count"":12"#), "{full}");
    }

    #[test]
    fn json_has_no_rows_unless_asked() {
        let r = record(stored()).unwrap();
        let lean: Value =
            serde_json::from_str(&render(Format::Json, std::slice::from_ref(&r), false)).unwrap();
        let first = &lean["releases"][0];
        assert_eq!(first["release_id"], "00ff");
        assert_eq!(first["filter"]["party"][1], "REP");
        assert_eq!(first["cells"], 2);
        assert_eq!(first["population"], "nc-voters");
        assert_eq!(first["epsilon"], 0.5);
        assert!(first.get("rows").is_none());
        let full: Value = serde_json::from_str(&render(Format::Json, &[r], true)).unwrap();
        assert_eq!(full["releases"][0]["rows"][0]["count"], 12);
    }
}
