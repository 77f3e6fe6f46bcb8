//! `rollcall ingest`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Ingest voter file(s) into `DATA_DIR/DATASET/`.
///
/// Keeps only county, birth year, gender, race, ethnicity, party, status,
/// registration year and congressional district; names, addresses, ids and
/// full dates never reach the output. Writes `*.parquet`, `manifest.json`
/// and `rejects.tsv` (line numbers and reasons of malformed lines, never their
/// content). The dataset is replaced atomically, only if the ingest succeeds.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rollcall ingest --layout nc --dataset nc --data-dir data ncvoter_Statewide.txt\n  \
    rollcall ingest --config rollcall.toml --dataset nc ncvoter_Statewide.txt --history ncvhis_Statewide.txt")]
pub struct IngestArgs {
    /// Layout: a name (nc, oh, fl, mi, pa, or NAME.toml in --layouts-dir) or the path
    /// of a layout .toml file. Not with --config, which names it.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    layout: Option<String>,
    /// The server's config file: the `[[dataset]]` named by --dataset gives
    /// the layout, the data folder (`[server] data_dir`) and the elections
    /// (`[[dataset.election]]`) whose voting history is stored.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Voting-history file(s) of a layout whose history is a separate file
    /// (NC `ncvhis`, FL `*_H_*.txt`), joined to the voters by id. Needs
    /// --config (the elections). Put it after the voter files.
    #[arg(long, num_args = 1.., value_name = "FILE", requires = "config")]
    history: Vec<PathBuf>,
    /// Where a layout name is looked up first (then config/layouts and the
    /// built-in layouts).
    #[arg(long, env = "ROLLCALL_LAYOUTS", value_name = "DIR")]
    layouts_dir: Option<PathBuf>,
    /// Dataset name (the folder created under --data-dir).
    #[arg(long)]
    dataset: String,
    /// Folder that holds datasets (with --config: its `[server] data_dir`).
    #[arg(long, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// Parse threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Ingest even when more than 20% of a dimension's values are not in its
    /// code table (by default that stops the ingest: the layout most likely
    /// reads the wrong column).
    #[arg(long)]
    allow_unknown: bool,
    /// Ingest even when more than half of the lines are rejected (by default
    /// that stops the ingest and keeps the previous dataset: the layout most
    /// likely does not fit the file).
    #[arg(long)]
    allow_rejects: bool,
    /// No progress bar and no summary line (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Voter file(s), read in order as one dataset (e.g. Ohio's four parts).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Reports an ingest's progress on stderr: a bar when stderr is a terminal,
/// and each stage's time when `ROLLCALL_INGEST_TIMINGS` is set.
struct Report {
    bar: Option<ProgressBar>,
    timings: bool,
}

impl Report {
    fn new(quiet: bool) -> Report {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let timings = std::env::var_os("ROLLCALL_INGEST_TIMINGS").is_some();
        Report { bar, timings }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ingest::Progress for Report {
    fn update(&self, bytes: u64, total: u64, rows: u64) {
        let Some(bar) = &self.bar else { return };
        bar.set_length(total);
        bar.set_position(bytes);
        let secs = bar.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} rows, {:.0}k rows/s",
            rows,
            rows as f64 / secs / 1e3
        ));
    }

    fn writing(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message("writing parquet");
        }
    }

    fn stage(&self, name: &'static str, took: Duration) {
        if self.timings {
            let line = format!("timing: {name} {:.3} s", took.as_secs_f64());
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
    }
}

/// The layout (with the config's elections) and the data folder.
fn target(args: &IngestArgs) -> anyhow::Result<(layout::Layout, PathBuf)> {
    let Some(path) = &args.config else {
        let name = args
            .layout
            .as_deref()
            .expect("clap requires --layout without --config");
        let layout = layout::Layout::resolve_in(name, args.layouts_dir.as_deref())?;
        return Ok((
            layout,
            args.data_dir.clone().unwrap_or_else(|| "data".into()),
        ));
    };
    let config = server::config::Config::from_file(path)?;
    let Some((i, d)) = config
        .datasets
        .iter()
        .enumerate()
        .find(|(_, d)| d.name == args.dataset)
    else {
        let names: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
        anyhow::bail!(
            "{}: no [[dataset]] is named `{}` (configured: {})",
            path.display(),
            args.dataset,
            names.join(", ")
        );
    };
    let layout = layout::Layout::resolve_in(&d.layout, args.layouts_dir.as_deref())
        .with_context(|| format!("{}: dataset[{i}].layout", path.display()))?;
    let layout = layout
        .with_elections(d.elections.clone())
        .map_err(|(j, message)| {
            anyhow::anyhow!("{}: dataset[{i}].election[{j}]: {message}", path.display())
        })?;
    Ok((layout, config.server.data_dir.clone()))
}

/// Runs the subcommand.
pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let (layout, data_dir) = target(&args)?;
    let opts = ingest::IngestOptions {
        dataset: args.dataset.clone(),
        data_dir: data_dir.clone(),
        files: args.files.clone(),
        current_year: None,
        threads: args.threads,
        allow_unknown: args.allow_unknown,
        allow_rejects: args.allow_rejects,
        history_files: args.history.clone(),
    };
    let started = Instant::now();
    let report = Report::new(args.quiet);
    let result = ingest::ingest(&layout, &opts, &report);
    report.finish();
    let manifest = result.with_context(|| {
        format!(
            "ingest of dataset `{}` failed; any previous version is untouched",
            args.dataset
        )
    })?;
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "ingested {}: {} rows read, {} written, {} rejected, {} duplicates dropped, {} unknown codes in {:.1} s ({:.0}k rows/s) -> {}",
            manifest.dataset,
            manifest.rows_read,
            manifest.rows_written,
            manifest.rows_rejected,
            manifest.duplicates_dropped,
            manifest
                .unknown_codes
                .values()
                .flat_map(|m| m.values())
                .sum::<u64>(),
            secs,
            manifest.rows_read as f64 / secs.max(1e-9) / 1e3,
            data_dir.join(&manifest.dataset).display()
        );
        if let Some(h) = &manifest.history {
            eprintln!(
                "history: {} elections stored; {} lines read, {} rejected, {} of other elections, {} unmatched, {} duplicates, {} unknown methods",
                h.elections.len(),
                h.lines_read,
                h.rejects_by_reason.values().sum::<u64>(),
                h.other_elections,
                h.unmatched,
                h.duplicates,
                h.unknown_methods
            );
        }
    }
    Ok(())
}
