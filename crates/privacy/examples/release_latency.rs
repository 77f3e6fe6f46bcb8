//! Times `release_counts` (opendp discrete Laplace) on vectors of counts.
//!
//! ```text
//! cargo run --release -p privacy --example release_latency
//! ```

use std::time::Instant;

fn main() {
    for (cells, epsilon) in [
        (1usize, 1.0),
        (900, 0.5),
        (900, 1.0),
        (900, 0.1),
        (38_400, 0.5),
    ] {
        let charge =
            privacy::charge_for(privacy::Epsilon::from_decimal_f64(epsilon).unwrap()).unwrap();
        let mut times: Vec<f64> = (0..10)
            .map(|_| {
                let exact = privacy::ExactCounts::new(vec![1234u64; cells]);
                let t = Instant::now();
                let r = privacy::release_counts(exact, &charge).expect("release");
                assert_eq!(r.noisy.len(), cells);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{cells} cells at epsilon {epsilon}: p50 {:.2} ms, min {:.2} ms",
            times[5], times[0]
        );
    }
    for scale in [1.0, 2.0, 10.0] {
        println!(
            "scale {scale}: epsilon {}, ci95 {}",
            privacy::epsilon_for_scale(scale).unwrap(),
            privacy::ci95(scale).unwrap()
        );
    }
    for eps in [0.1, 0.3, 0.5, 1.0] {
        let c = privacy::charge_for(privacy::Epsilon::from_decimal_f64(eps).unwrap()).unwrap();
        println!(
            "epsilon {eps}: scale {:?}, charged {}, ci95 {}",
            c.scale, c.epsilon, c.ci95
        );
    }
    println!("{}", privacy::noise_source());
}
