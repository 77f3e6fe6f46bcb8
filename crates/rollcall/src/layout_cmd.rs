//! `rollcall layout check`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ingest::check::{DimensionShares, SAMPLE_LINES, Sample, YearShares};
use layout::Layout;

/// Work with layout files.
#[derive(Args)]
pub struct LayoutArgs {
    #[command(subcommand)]
    command: LayoutCommand,
}

#[derive(Subcommand)]
enum LayoutCommand {
    /// Validate a layout; given a data file, try it on the file's first
    /// 10,000 lines and print, per dimension, the share of values matched,
    /// mapped, blank and unknown (never a value). Exits 1 when the ingest
    /// would stop (a missing column, a dimension over 20% unknown).
    Check(CheckArgs),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  rollcall layout check config/layouts/mi.toml Entire_State_Voters.csv"
)]
struct CheckArgs {
    /// The layout: a path to a .toml file, or a name (nc, or NAME.toml in
    /// --layouts-dir).
    layout: String,
    /// A voter file to try the layout on.
    data_file: Option<PathBuf>,
    /// Where a layout name is looked up first.
    #[arg(long, env = "ROLLCALL_LAYOUTS", value_name = "DIR")]
    layouts_dir: Option<PathBuf>,
    /// Data lines to read.
    #[arg(long, default_value_t = SAMPLE_LINES)]
    lines: u64,
}

/// Runs `rollcall layout …`.
pub fn run(args: LayoutArgs) -> anyhow::Result<()> {
    match args.command {
        LayoutCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let layout = Layout::resolve_in(&args.layout, args.layouts_dir.as_deref())?;
    describe(&layout);
    let Some(file) = args.data_file else {
        return Ok(());
    };
    let (_, current_year) = ingest::now_utc();
    let sample = ingest::check::sample(&layout, &file, args.lines, current_year)
        .with_context(|| format!("trying layout `{}` on {}", layout.name, file.display()))?;
    println!();
    report(&file, &sample);
    let stops: Vec<&DimensionShares> = sample
        .dimensions
        .iter()
        .filter(|d| d.would_stop(sample.accepted))
        .collect();
    if stops.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = stops
        .iter()
        .map(|d| format!("dimensions.{}.column = {}", d.name, d.column))
        .collect();
    anyhow::bail!(
        "the ingest would stop: more than 20% of the values are not in the code table for {}",
        keys.join("; ")
    )
}

/// What the layout declares: format, source columns, dimensions.
fn describe(layout: &Layout) {
    let f = &layout.format;
    let delimiter = if f.auto_delimiter {
        "auto".to_owned()
    } else {
        format!("{:?}", f.delimiter as char)
    };
    println!("layout `{}` ({}): valid", layout.name, layout.origin);
    println!("  {}", layout.description);
    let quoting = match f.quoting {
        layout::Quoting::Double => "double",
        layout::Quoting::None => "none",
    };
    let encoding = match f.encoding {
        layout::Encoding::Latin1 => "latin1",
        layout::Encoding::Utf8 => "utf-8",
    };
    let header = if f.header { "header" } else { "no header" };
    println!("  format: delimiter {delimiter}, quoting {quoting}, {header}, {encoding}");
    let by = match layout.county.matched_by {
        layout::CountyMatch::Name => "name",
        layout::CountyMatch::Code => "code",
    };
    println!(
        "  counties: {} (from {:?} by {by})",
        layout.county.counties.len(),
        layout.county.column,
    );
    for c in &layout.coded {
        let nested = if c.within.is_some() {
            ", within county"
        } else {
            ""
        };
        println!(
            "  dimension {:<28} {:>3} codes from {:?}{nested}",
            c.name,
            c.codes.len(),
            c.column
        );
    }
    println!("  Parquet columns: {}", layout.output_columns().join(", "));
}

/// The sample's shares, one line per dimension.
fn report(file: &std::path::Path, s: &Sample) {
    println!(
        "{}: {} lines read, delimiter {}, {} accepted",
        file.display(),
        s.lines,
        s.delimiter,
        s.accepted
    );
    for (reason, n) in &s.rejects {
        println!("  rejected {reason}: {n} ({})", pct(*n, s.lines));
    }
    for (first, found) in &s.columns_used {
        println!("  column {first:?} read as {found:?}");
    }
    println!(
        "  {:<28} {:<24} {:>8} {:>8} {:>8} {:>8}",
        "dimension", "column", "matched", "mapped", "blank", "unknown"
    );
    for d in &s.dimensions {
        let flag = if d.would_stop(s.accepted) {
            "  <- the ingest would stop"
        } else {
            ""
        };
        println!(
            "  {:<28} {:<24} {:>8} {:>8} {:>8} {:>8}{flag}",
            d.name,
            d.column,
            pct(d.matched, s.accepted),
            pct(d.mapped, s.accepted),
            pct(d.blank, s.accepted),
            pct(d.unknown, s.accepted),
        );
    }
    for (name, y) in [
        ("birth_year", &s.birth_year),
        ("registration_year", &s.registration_year),
    ] {
        if let Some(y) = y {
            year_line(name, y, s.accepted);
        }
    }
}

fn year_line(name: &str, y: &YearShares, of: u64) {
    println!(
        "  {name:<28} {:<24} {} a year, {} blank, {} sentinel or mask, {} not a date, {} out of range",
        y.column,
        pct(y.parsed, of),
        pct(y.blank, of),
        pct(y.sentinel, of),
        pct(y.unparseable, of),
        pct(y.out_of_range, of),
    );
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "-".into();
    }
    format!("{:.1}%", n as f64 * 100.0 / of as f64)
}
