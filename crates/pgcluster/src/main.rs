//! `pgcluster [DATABASE...]`: a throwaway PostgreSQL cluster for a
//! benchmark or a try by hand (`scripts/bench-replicas` uses it). Starts the
//! cluster, creates the databases, prints one `url NAME URL` line per
//! database and a `password_file PATH` line, then waits until its standard
//! input closes and stops the cluster (the library's watchdog stops it too
//! if this process is killed).

use std::io::{BufRead, Write};

fn main() {
    let cluster = pgcluster::Cluster::start();
    let mut out = std::io::stdout().lock();
    for name in std::env::args().skip(1) {
        cluster.create_database(&name);
        writeln!(out, "url {name} {}", cluster.url(&name)).unwrap();
    }
    writeln!(
        out,
        "password_file {}",
        cluster.password_file().to_str().unwrap()
    )
    .unwrap();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    drop(out);
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}
