//! `rollcall synth`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Write a synthetic voter file in a layout's exact format.
///
/// Fake names and addresses, skewed county sizes, realistic age and party
/// mixes. The same seed gives the same bytes. `--quirks` adds what real files
/// contain: duplicates, truncated lines, padded codes, Latin-1 names, CRLF,
/// blank birth years, masked dates, unknown codes. `--truth` writes what a
/// correct ingest must produce from the file (for tests). `--election` or
/// `--default-elections` add voting history: NC and FL to `--history-out`,
/// OH as election columns of the voter file; the truth then includes it.
#[derive(Args)]
#[command(
    after_help = "Example:\n  rollcall synth --layout nc --rows 1000000 --seed 1 --out data/ncvoter_synth.txt"
)]
pub struct SynthArgs {
    /// Layout: a name (nc, oh, fl, mi, pa, or NAME.toml in --layouts-dir) or the path
    /// of a layout .toml file.
    #[arg(long)]
    layout: String,
    /// Where a layout name is looked up first (then config/layouts and the
    /// built-in layouts).
    #[arg(long, env = "ROLLCALL_LAYOUTS", value_name = "DIR")]
    layouts_dir: Option<PathBuf>,
    /// Number of voters to generate.
    #[arg(long, required_unless_present = "precincts_out")]
    rows: Option<u64>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file.
    #[arg(long, required_unless_present = "precincts_out")]
    out: Option<PathBuf>,
    /// Write a made-up precinct list (`county,code,label`) for the layout's
    /// counties to this file, and nothing else. A layout whose `precinct`
    /// dimension reads that file (NC's reads
    /// `config/reference/nc_precincts.csv`) then keeps precincts, for tests
    /// and the demo; a real state's list comes from its office.
    #[arg(long, conflicts_with_all = ["out", "truth"])]
    precincts_out: Option<PathBuf>,
    /// Add the quirks real files have.
    #[arg(long)]
    quirks: bool,
    /// Also write the generator's ground truth (JSON) to this file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Year treated as current (default: this year); fixes the truth's
    /// plausible-year rules for reproducible tests.
    #[arg(long)]
    current_year: Option<i16>,
    /// Write voting history for this election, `ID=YYYY-MM-DD:TYPE`
    /// (`2024g=2024-11-05:general`); repeatable. NC and FL write it to
    /// `--history-out`, OH as election columns of the voter file.
    #[arg(
        long = "election",
        value_name = "ID=YYYY-MM-DD:TYPE",
        conflicts_with = "default_elections"
    )]
    elections: Vec<String>,
    /// Write voting history for the eight elections of 2016–2024 (generals,
    /// and the primaries of 2020, 2022 and 2024).
    #[arg(long)]
    default_elections: bool,
    /// The history file, for a layout whose history is a separate file (NC,
    /// FL); required there when elections are given.
    #[arg(long, value_name = "PATH")]
    history_out: Option<PathBuf>,
}

/// Parses `ID=YYYY-MM-DD:TYPE`.
fn parse_election(text: &str) -> anyhow::Result<layout::Election> {
    let (id, rest) = text
        .split_once('=')
        .with_context(|| format!("--election {text:?}: expected ID=YYYY-MM-DD:TYPE"))?;
    let (date, kind) = rest
        .split_once(':')
        .with_context(|| format!("--election {text:?}: expected ID=YYYY-MM-DD:TYPE"))?;
    layout::Election::new(id, date, kind)
        .map_err(|(field, message)| anyhow::anyhow!("--election {text:?}: {field} {message}"))
}

/// Runs the subcommand.
pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let layout = layout::Layout::resolve_in(&args.layout, args.layouts_dir.as_deref())?;
    if let Some(path) = &args.precincts_out {
        return std::fs::write(path, synth::precinct_list(&layout))
            .with_context(|| format!("writing {}", path.display()));
    }
    let (Some(rows), Some(out_path)) = (args.rows, &args.out) else {
        anyhow::bail!("--rows and --out are required");
    };
    let elections = if args.default_elections {
        synth::default_elections()
    } else {
        args.elections
            .iter()
            .map(|e| parse_election(e))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let file_history = matches!(
        layout.history.as_ref().map(|h| &h.source),
        Some(layout::HistorySource::File(_))
    );
    if !elections.is_empty() && layout.history.is_none() {
        anyhow::bail!(
            "layout `{}` has no [history] section: it cannot write voting history",
            layout.name
        );
    }
    match (&args.history_out, file_history, elections.is_empty()) {
        (None, true, false) => anyhow::bail!(
            "layout `{}` keeps its history in a separate file: give --history-out",
            layout.name
        ),
        (Some(_), false, _) => anyhow::bail!(
            "--history-out: layout `{}` has no separate history file{}",
            layout.name,
            if layout.history.is_some() {
                " (its history is columns of the voter file)"
            } else {
                ""
            }
        ),
        (Some(_), true, true) => {
            anyhow::bail!("--history-out needs elections: --election or --default-elections")
        }
        _ => {}
    }
    if let Some(parent) = out_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = std::fs::File::create(out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let opts = synth::SynthOptions {
        rows,
        seed: args.seed,
        quirks: args.quirks,
        current_year: args.current_year.unwrap_or_else(|| ingest::now_utc().1),
        // Rows of the truth cost about 1 KiB each: only when it is written.
        with_rows: args.truth.is_some(),
        elections,
    };
    let truth = match &args.history_out {
        Some(path) if !opts.elections.is_empty() => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut hout = BufWriter::with_capacity(1 << 20, file);
            let truth = synth::generate_with_history(&layout, &opts, &mut out, &mut hout)?;
            hout.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            truth
        }
        _ => synth::generate(&layout, &opts, &mut out)?,
    };
    out.flush()
        .with_context(|| format!("writing {}", out_path.display()))?;
    if let Some(path) = &args.truth {
        let text = serde_json::to_string(&truth)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
