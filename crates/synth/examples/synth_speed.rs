//! Times generation: `cargo run --release -p synth --example synth_speed -- nc 1000000 [quirks]`.
//!
//! With two more arguments, also writes the file and its truth (JSON):
//! `... -- nc 20000 quirks out.txt truth.json`.

use std::io::{BufWriter, Write};
use std::time::Instant;

/// A writer that counts bytes and discards them.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("nc", String::as_str);
    let rows: u64 = args.get(2).map_or(1_000_000, |s| s.parse().expect("rows"));
    let quirks = args.get(3).is_some_and(|s| s == "quirks");
    let layout = layout::Layout::resolve(name).expect("layout");
    let opts = synth::SynthOptions {
        with_rows: true,
        rows,
        seed: 1,
        quirks,
        current_year: 2026,
        elections: Vec::new(),
    };
    let mut sink = Count(0);
    let start = Instant::now();
    let truth = {
        let mut out = BufWriter::with_capacity(1 << 20, &mut sink);
        let t = synth::generate(&layout, &opts, &mut out).expect("generate");
        out.flush().expect("flush");
        t
    };
    let secs = start.elapsed().as_secs_f64();
    if let (Some(file), Some(truth_path)) = (args.get(4), args.get(5)) {
        let mut out = BufWriter::new(std::fs::File::create(file).expect("create file"));
        let again = synth::generate(&layout, &opts, &mut out).expect("generate");
        out.flush().expect("flush");
        assert_eq!(again, truth, "same seed, same truth");
        std::fs::write(truth_path, truth.to_json()).expect("write truth");
    }
    println!(
        "{name}: {rows} rows, {} MB in {secs:.2}s = {:.0} rows/s ({} written, {} rejected, {} duplicates, {} distinct tuples)",
        sink.0 / 1_000_000,
        rows as f64 / secs,
        truth.rows_written,
        truth.rows_rejected,
        truth.duplicates_dropped,
        truth.rows.len(),
    );
}
