//! Does the time to answer tell the noise drawn, or the true counts? Over
//! HTTP against the real server: single-cell queries at ε = 0.01 (noise of
//! scale 100) and 900-cell ones (county × age band); noise = released −
//! truth (truth from the generator).
//!
//! It asserts, with bounds wide enough to fail only when the padding is
//! broken, that latency is correlated neither with |noise| nor with the true
//! count (Pearson r), and that the tail is not either: the slowest requests
//! are not the ones with the largest noise, and requests above the p90 are
//! as common among the largest quarter of |noise| as among the smallest.
//! `scripts/timing-probe` runs a bigger version and prints the figures
//! (`TIMING_QUERIES`, default here 240; `TIMING_QUANTUM_MS` is passed to the
//! server as `timing_quantum_ms` when set).

use std::time::Instant;

use serde_json::{Value, json};
use testkit::*;

/// Pearson r and its two-sided p-value (t statistic, normal approximation).
fn pearson(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    let r = sxy / (sxx * syy).sqrt();
    if !r.is_finite() {
        return (0.0, 1.0);
    }
    let t = r * ((n - 2.0) / (1.0 - r * r).max(1e-12)).sqrt();
    (r, erfc(t.abs() / std::f64::consts::SQRT_2))
}

/// Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// Median of `lat` in each quartile of `by`.
fn by_quartile(by: &[f64], lat: &[f64]) -> String {
    let mut idx: Vec<usize> = (0..by.len()).collect();
    idx.sort_by(|&a, &b| by[a].total_cmp(&by[b]));
    let q = idx.len() / 4;
    if q == 0 {
        return "-".into();
    }
    (0..4)
        .map(|k| {
            let part = &idx[k * q..if k == 3 { idx.len() } else { (k + 1) * q }];
            let mut l: Vec<f64> = part.iter().map(|&i| lat[i]).collect();
            let lo = by[part[0]];
            let hi = by[*part.last().unwrap()];
            format!("[{lo:.0}..{hi:.0}]: {:.3}", median(&mut l))
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Residuals of `y` after a least-squares line on `x`.
fn residuals(y: &[f64], x: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    x.iter()
        .zip(y)
        .map(|(a, b)| b - my - slope * (a - mx))
        .collect()
}

/// Latency against the truth once what the analyst sees anyway (the size of
/// the answer, which grows with the released counts' digits, and the number
/// of filter values sent) is taken out.
fn report_public(what: &str, truth: &[f64], lat_ms: &[f64], bytes: &[f64], filters: &[f64]) {
    let (rb, pb) = pearson(bytes, lat_ms);
    let (rf, pf) = pearson(filters, lat_ms);
    let lat_rest = residuals(&residuals(lat_ms, bytes), filters);
    let truth_rest = residuals(&residuals(truth, bytes), filters);
    let (rt, pt) = pearson(&truth_rest, &lat_rest);
    eprintln!(
        "{what}: r(latency, answer bytes) = {rb:+.4} (p = {pb:.3})   \
         r(latency, filter values) = {rf:+.4} (p = {pf:.3})\n  \
         partial r(latency, truth | answer bytes, filter values) = {rt:+.4} (p = {pt:.3})"
    );
}

/// The mean percentile rank, in `by`, of the `k` slowest requests: about
/// 0.5 when latency says nothing about `by`.
fn slowest_rank(by: &[f64], lat: &[f64], k: usize) -> f64 {
    let rank = |i: usize| by.iter().filter(|&&b| b < by[i]).count() as f64 / by.len() as f64;
    let mut idx: Vec<usize> = (0..lat.len()).collect();
    idx.sort_by(|&a, &b| lat[b].total_cmp(&lat[a]));
    idx[..k].iter().map(|&i| rank(i)).sum::<f64>() / k as f64
}

/// Share of requests slower than the overall p90, among the quarter with
/// the smallest `by` and among the quarter with the largest.
fn tail_shares(by: &[f64], lat: &[f64]) -> (f64, f64) {
    let p90 = percentile(lat, 0.9);
    let mut idx: Vec<usize> = (0..by.len()).collect();
    idx.sort_by(|&a, &b| by[a].total_cmp(&by[b]));
    let q = idx.len() / 4;
    let share =
        |part: &[usize]| part.iter().filter(|&&i| lat[i] > p90).count() as f64 / part.len() as f64;
    (share(&idx[..q]), share(&idx[idx.len() - q..]))
}

/// Reports, then asserts no dependence of latency on `by` (|noise| or the
/// truth), mean and tail.
fn check(what: &str, name: &str, by: &[f64], lat: &[f64]) {
    let (r, p) = pearson(by, lat);
    let k = (lat.len() / 20).max(5);
    let rank = slowest_rank(by, lat, k);
    let (low, high) = tail_shares(by, lat);
    eprintln!(
        "{what}: r(latency, {name}) = {r:+.3} (p = {p:.3}); the {k} slowest sit at mean \
         percentile {rank:.2} of {name}; share above p90: {low:.2} (smallest quarter) vs \
         {high:.2} (largest quarter)"
    );
    assert!(r.abs() < 0.3, "{what}: latency follows {name} (r = {r:.3})");
    assert!(
        (0.2..=0.8).contains(&rank),
        "{what}: the slowest requests are those with {} {name} (mean percentile {rank:.2})",
        if rank > 0.5 { "large" } else { "small" }
    );
    assert!(
        (high - low).abs() <= 0.25,
        "{what}: the tail depends on {name} ({low:.2} vs {high:.2} above p90)"
    );
}

fn report(what: &str, noise: &[f64], truth: &[f64], lat_ms: &[f64]) {
    let (rn, pn) = pearson(noise, lat_ms);
    let (rt, pt) = pearson(truth, lat_ms);
    eprintln!(
        "{what}: n={} latency ms p50 {:.3} p90 {:.3} p99 {:.3}\n  \
         r(latency, |noise|) = {rn:+.4} (p = {pn:.3})   r(latency, truth) = {rt:+.4} (p = {pt:.3})\n  \
         median ms by |noise| quartile: {}\n  median ms by truth quartile:   {}",
        lat_ms.len(),
        percentile(lat_ms, 0.5),
        percentile(lat_ms, 0.9),
        percentile(lat_ms, 0.99),
        by_quartile(noise, lat_ms),
        by_quartile(truth, lat_ms),
    );
}

#[test]
fn latency_tells_nothing_about_noise_or_truth() {
    let extra = std::env::var("TIMING_QUANTUM_MS")
        .map(|q| format!("timing_quantum_ms = {q}"))
        .unwrap_or_default();
    let (_dir, server, alice) = start_alice(&extra);
    let data = nc_data();
    let value = |r: &TruthRow, d: &str| r.values[d].clone().unwrap_or_else(|| "unknown".into());
    let parties = ["DEM", "REP", "UNA", "LIB", "GRE", "CST"];
    let statuses = ["A", "I", "R", "D", "S"];
    let genders = ["F", "M", "U"];
    let queries = env_usize("TIMING_QUERIES", 240);

    let run = |what: &str, n: usize, group_by: &[&str]| {
        let (mut noise, mut truth, mut lat) = (Vec::new(), Vec::new(), Vec::new());
        let (mut bytes, mut filters) = (Vec::new(), Vec::new());
        // Shuffled: the filters (and so the truth) must not follow time, or
        // drifting machine load would look like a correlation.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (i as u64 ^ 0x5DEE_CE66).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in order {
            let party: Vec<&str> = parties[..1 + i % parties.len()].to_vec();
            let status: Vec<&str> = statuses[..1 + (i / 6) % statuses.len()].to_vec();
            let gender: Vec<&str> = genders[..1 + (i / 30) % genders.len()].to_vec();
            // Distinct ε per query, so none is a stored answer.
            let epsilon = 0.01 + i as f64 * 1e-6 + group_by.len() as f64 * 1e-3;
            let q = json!({"dataset": "nc", "group_by": group_by,
                           "filter": {"party": party, "status": status, "gender": gender},
                           "epsilon": epsilon});
            let t = Instant::now();
            let a = server.query(&alice.token, &q);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(a.status, 200, "{}", a.text);
            assert_eq!(a.body["cached"], Value::Bool(false));
            bytes.push(a.text.len() as f64);
            filters.push((party.len() + status.len() + gender.len()) as f64);
            let exact = data.counts(group_by, |r| {
                party.contains(&value(r, "party").as_str())
                    && status.contains(&value(r, "status").as_str())
                    && gender.contains(&value(r, "gender").as_str())
            });
            let (mut abs, mut total) = (0.0, 0.0);
            for (key, count) in rows(&a, group_by) {
                let want = exact.get(&key).copied().unwrap_or(0) as f64;
                abs += (count as f64 - want).abs();
                total += want;
            }
            noise.push(abs);
            truth.push(total);
        }
        report(what, &noise, &truth, &lat);
        report_public(what, &truth, &lat, &bytes, &filters);
        check(what, "|noise|", &noise, &lat);
        check(what, "truth", &truth, &lat);
    };
    run("HTTP single-cell queries, epsilon 0.01", queries, &[]);
    // As many as the single-cell run: with a quarter (60), r's spread under
    // no effect at all is about 0.13 and the slowest-5 rank's about 0.13, so
    // the bounds below failed one run in ten or so without any leak (CI,
    // 2026-12-02: r = 0.311 with flat medians); at 240 they sit 4 spreads out.
    run(
        "HTTP 900-cell queries (county x age_band), epsilon 0.01",
        queries,
        &["county", "age_band"],
    );
}
