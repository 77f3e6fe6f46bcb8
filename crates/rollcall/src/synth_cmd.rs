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
/// correct ingest must produce from the file (for tests).
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
    };
    let truth = synth::generate(&layout, &opts, &mut out)?;
    out.flush()
        .with_context(|| format!("writing {}", out_path.display()))?;
    if let Some(path) = &args.truth {
        let text = serde_json::to_string(&truth)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
