//! `GET /metrics` in Prometheus' text exposition format (version 0.0.4),
//! written by hand: a few counters and one histogram need no crate.
//!
//! What it exposes, and nothing else:
//! - `rollcall_http_requests_total{route, status}`: requests by matched
//!   route *pattern* (`/v1/query`; `unmatched` for unknown paths, so no
//!   client-chosen text becomes a label) and status;
//! - `rollcall_http_request_duration_seconds{route}`: latency histogram;
//! - `rollcall_releases_total{dataset, kind}`: answers served since start,
//!   `kind` = `new` (paid for now) or `cached` (a stored release, free);
//! - `rollcall_epsilon_spent{dataset}`, `rollcall_epsilon_total{dataset}`:
//!   the ε spent on each dataset by all analysts together, read from the
//!   ledger at scrape time (so it survives restarts), and its own cap (for
//!   datasets that have one);
//! - `rollcall_population_epsilon_spent{population}`,
//!   `rollcall_population_epsilon_total{population}`: the same for each
//!   population, whose cap bounds every voter's loss;
//! - `rollcall_config_reloads_total{result}`; `rollcall_start_time_seconds`.
//!
//! Never a count of voters, a row, an analyst's name or a token.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Count per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// What one route pattern has seen.
#[derive(Debug, Default)]
struct RouteStats {
    /// Requests by status.
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Counters {
    /// By route pattern.
    routes: BTreeMap<String, RouteStats>,
    /// By dataset: answers `[cached, new]`.
    releases: BTreeMap<String, [u64; 2]>,
}

/// The entry for `key`, allocating its key only the first time it is seen
/// (these run on every request, under the lock).
fn entry<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

/// The server's counters since start (one per process, across reloads).
#[derive(Debug)]
pub struct Metrics {
    counters: Mutex<Counters>,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            counters: Mutex::default(),
            started: SystemTime::now(),
        }
    }
}

/// What `/metrics` shows of one dataset's or population's budget: public
/// numbers only.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Dataset or population name.
    pub name: String,
    /// ε spent by all analysts together (from the ledger).
    pub spent: f64,
    /// Its cap, `epsilon_total` (a dataset in a population may have none).
    pub total: Option<f64>,
}

/// Every budget `/metrics` shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Budgets {
    /// Per dataset.
    pub datasets: Vec<Budget>,
    /// Per population.
    pub populations: Vec<Budget>,
}

/// Reloads applied and refused since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reloads {
    /// Applied.
    pub ok: u64,
    /// Refused (invalid, or needing a restart).
    pub refused: u64,
}

/// Escapes a label value (`\`, `"`, newline), as the format requires.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as Prometheus writes it.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

impl Metrics {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one finished request. `route` must be the matched pattern (or
    /// [`UNMATCHED`]), never the raw path.
    pub fn request(&self, route: &str, status: u16, latency: Duration) {
        let mut c = self.counters();
        let stats = entry(&mut c.routes, route);
        *stats.statuses.entry(status).or_default() += 1;
        stats.latency.observe(latency.as_secs_f64());
    }

    /// Counts one answer on `dataset`: a new release or a cached one.
    pub fn release(&self, dataset: &str, cached: bool) {
        entry(&mut self.counters().releases, dataset)[usize::from(!cached)] += 1;
    }

    /// The exposition text.
    pub fn render(&self, budgets: &Budgets, reloads: Reloads) -> String {
        let c = self.counters();
        let mut out = String::new();
        let w = &mut out;
        // Writing to a String cannot fail.
        let _ = writeln!(
            w,
            "# HELP rollcall_http_requests_total HTTP requests by matched route pattern and status."
        );
        let _ = writeln!(w, "# TYPE rollcall_http_requests_total counter");
        for (route, stats) in &c.routes {
            for (status, n) in &stats.statuses {
                let _ = writeln!(
                    w,
                    "rollcall_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    label(route)
                );
            }
        }
        let _ = writeln!(
            w,
            "# HELP rollcall_http_request_duration_seconds Time from request head to response, by route."
        );
        let _ = writeln!(w, "# TYPE rollcall_http_request_duration_seconds histogram");
        for (route, RouteStats { latency: h, .. }) in &c.routes {
            let route = label(route);
            let mut cumulative = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| num(*b));
                let _ = writeln!(
                    w,
                    "rollcall_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                w,
                "rollcall_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                num(h.sum)
            );
            let _ = writeln!(
                w,
                "rollcall_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            w,
            "# HELP rollcall_releases_total Answers served since start: new (ε spent) or cached (a stored release, free)."
        );
        let _ = writeln!(w, "# TYPE rollcall_releases_total counter");
        for (dataset, counts) in &c.releases {
            for (kind, n) in ["cached", "new"].iter().zip(counts) {
                if *n > 0 {
                    let _ = writeln!(
                        w,
                        "rollcall_releases_total{{dataset=\"{}\",kind=\"{kind}\"}} {n}",
                        label(dataset)
                    );
                }
            }
        }
        for (series, label_name, list, what) in [
            (
                "rollcall_epsilon",
                "dataset",
                &budgets.datasets,
                "the dataset",
            ),
            (
                "rollcall_population_epsilon",
                "population",
                &budgets.populations,
                "the population's datasets",
            ),
        ] {
            let _ = writeln!(
                w,
                "# HELP {series}_spent Epsilon spent on {what} by all analysts together (ledger)."
            );
            let _ = writeln!(w, "# TYPE {series}_spent gauge");
            for b in list {
                let _ = writeln!(
                    w,
                    "{series}_spent{{{label_name}=\"{}\"}} {}",
                    label(&b.name),
                    num(b.spent)
                );
            }
            let _ = writeln!(
                w,
                "# HELP {series}_total The cap on epsilon spent on {what} (config epsilon_total)."
            );
            let _ = writeln!(w, "# TYPE {series}_total gauge");
            for b in list {
                if let Some(total) = b.total {
                    let _ = writeln!(
                        w,
                        "{series}_total{{{label_name}=\"{}\"}} {}",
                        label(&b.name),
                        num(total)
                    );
                }
            }
        }
        let _ = writeln!(
            w,
            "# HELP rollcall_config_reloads_total Config reloads (SIGHUP) applied or refused."
        );
        let _ = writeln!(w, "# TYPE rollcall_config_reloads_total counter");
        let _ = writeln!(
            w,
            "rollcall_config_reloads_total{{result=\"ok\"}} {}",
            reloads.ok
        );
        let _ = writeln!(
            w,
            "rollcall_config_reloads_total{{result=\"refused\"}} {}",
            reloads.refused
        );
        let _ = writeln!(
            w,
            "# HELP rollcall_start_time_seconds When the server started (Unix time)."
        );
        let _ = writeln!(w, "# TYPE rollcall_start_time_seconds gauge");
        let start = self
            .started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let _ = writeln!(w, "rollcall_start_time_seconds {}", num(start));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_and_histogram_render() {
        let m = Metrics::default();
        m.request("/v1/query", 200, Duration::from_millis(3));
        m.request("/v1/query", 200, Duration::from_millis(30));
        m.request("/v1/query", 403, Duration::from_secs(20));
        m.request(UNMATCHED, 404, Duration::from_micros(100));
        m.release("nc", false);
        m.release("nc", true);
        m.release("nc", true);
        let text = m.render(
            &Budgets {
                datasets: vec![Budget {
                    name: "nc".into(),
                    spent: 1.5,
                    total: Some(10.0),
                }],
                populations: vec![Budget {
                    name: "nc-voters".into(),
                    spent: 2.5,
                    total: Some(12.0),
                }],
            },
            Reloads { ok: 2, refused: 1 },
        );
        let v = |s: &str| sample_value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
        assert_eq!(
            v("rollcall_http_requests_total{route=\"/v1/query\",status=\"200\"}"),
            2.0
        );
        assert_eq!(
            v("rollcall_http_requests_total{route=\"/v1/query\",status=\"403\"}"),
            1.0
        );
        assert_eq!(
            v("rollcall_http_requests_total{route=\"unmatched\",status=\"404\"}"),
            1.0
        );
        // Cumulative buckets: 3 ms is under 5 ms, 30 ms under 50 ms, 20 s only in +Inf.
        let b = |le: &str| {
            v(&format!(
                "rollcall_http_request_duration_seconds_bucket{{route=\"/v1/query\",le=\"{le}\"}}"
            ))
        };
        assert_eq!(b("0.0025"), 0.0);
        assert_eq!(b("0.005"), 1.0);
        assert_eq!(b("0.05"), 2.0);
        assert_eq!(b("10"), 2.0);
        assert_eq!(b("+Inf"), 3.0);
        assert_eq!(
            v("rollcall_http_request_duration_seconds_count{route=\"/v1/query\"}"),
            3.0
        );
        let sum = v("rollcall_http_request_duration_seconds_sum{route=\"/v1/query\"}");
        assert!((sum - 20.033).abs() < 1e-9, "{sum}");
        assert_eq!(
            v("rollcall_releases_total{dataset=\"nc\",kind=\"new\"}"),
            1.0
        );
        assert_eq!(
            v("rollcall_releases_total{dataset=\"nc\",kind=\"cached\"}"),
            2.0
        );
        assert_eq!(v("rollcall_epsilon_spent{dataset=\"nc\"}"), 1.5);
        assert_eq!(v("rollcall_epsilon_total{dataset=\"nc\"}"), 10.0);
        assert_eq!(
            v("rollcall_population_epsilon_spent{population=\"nc-voters\"}"),
            2.5
        );
        assert_eq!(
            v("rollcall_population_epsilon_total{population=\"nc-voters\"}"),
            12.0
        );
        assert_eq!(v("rollcall_config_reloads_total{result=\"ok\"}"), 2.0);
        assert_eq!(v("rollcall_config_reloads_total{result=\"refused\"}"), 1.0);
        assert!(v("rollcall_start_time_seconds") > 1.7e9);
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let m = Metrics::default();
        m.request("/healthz", 200, Duration::from_millis(1));
        m.release("a\"b\\c\nd", false);
        let text = m.render(&Budgets::default(), Reloads::default());
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(
                    line.starts_with("# HELP rollcall_") || line.starts_with("# TYPE rollcall_"),
                    "{line}"
                );
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            assert!(series.starts_with("rollcall_"), "{line}");
            assert!(
                value.parse::<f64>().is_ok() || value == "+Inf",
                "value of {line}"
            );
        }
        assert!(
            text.contains(r#"dataset="a\"b\\c\nd""#),
            "label not escaped:\n{text}"
        );
        assert_eq!(text.lines().filter(|l| l.contains('\n')).count(), 0);
    }
}
