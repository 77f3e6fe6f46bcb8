"""Baselines for scripts/bench-query, run inside its venv (duckdb, polars, opendp).

Given the dataset folder and the benchmark's queries (JSON), prints one JSON
line of figures:
  - DuckDB's exact GROUP BY county, age_band with the same filters, reading
    the Parquet files each time, and from an in-memory table loaded once;
  - OpenDP (Python) + Polars answering the same query under DP: a compositor
    Context, the public county x age_band key-set joined in (every cell),
    discrete Laplace of scale 1/epsilon. Each run builds the measurement and
    releases, as a Python user would per query.
"""

import argparse
import csv
import json
import statistics
import time
import warnings

import duckdb
import opendp.prelude as dp
import polars as pl

EDGES = [18, 25, 35, 45, 55, 65, 75]
AS_OF = 2026
MIN_BIRTH_YEAR = 1880


def band_labels():
    return (["<%d" % EDGES[0]] + ["%d-%d" % (a, b - 1) for a, b in zip(EDGES, EDGES[1:])]
            + ["%d+" % EDGES[-1], "unknown"])


def age_sql():
    cases = [f"WHEN birth_year IS NULL OR birth_year < {MIN_BIRTH_YEAR} OR birth_year > {AS_OF} "
             "THEN 'unknown'", f"WHEN {AS_OF} - birth_year < {EDGES[0]} THEN '<{EDGES[0]}'"]
    for a, b in zip(EDGES, EDGES[1:]):
        cases.append(f"WHEN {AS_OF} - birth_year < {b} THEN '{a}-{b - 1}'")
    return "CASE " + " ".join(cases) + f" ELSE '{EDGES[-1]}+' END"


def where_sql(filt):
    parts = []
    for dim, values in sorted(filt.items()):
        vals = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        parts.append(f"{dim} IN ({vals})")
    return " AND ".join(parts) if parts else "TRUE"


def duck(source, queries):
    lat = []
    con = duckdb.connect()
    run = lambda q: con.execute(
        f"SELECT county, {age_sql()} AS age_band, count(*) AS n FROM {source} "
        f"WHERE {where_sql(q['filter'])} GROUP BY ALL").fetchall()
    run(queries[0])  # warm-up
    for q in queries:
        t = time.perf_counter()
        run(q)
        lat.append(time.perf_counter() - t)
    return con, lat


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def age_expr():
    by = pl.col("birth_year").cast(pl.Int32)
    age = AS_OF - by
    e = pl.when(by.is_null() | (by < MIN_BIRTH_YEAR) | (by > AS_OF)).then(pl.lit("unknown"))
    e = e.when(age < EDGES[0]).then(pl.lit("<%d" % EDGES[0]))
    for a, b in zip(EDGES, EDGES[1:]):
        e = e.when(age < b).then(pl.lit("%d-%d" % (a, b - 1)))
    return e.otherwise(pl.lit("%d+" % EDGES[-1])).alias("age_band")


def opendp_run(glob, keys, q):
    dp.enable_features("contrib")
    cols = ["county", "party", "status", "gender"]
    lf = (pl.scan_parquet(glob)
          .select([pl.col(c).cast(pl.String) for c in cols] + ["birth_year"])
          .with_columns(age_expr()).drop("birth_year"))
    eps = q["epsilon"]
    ctx = dp.Context.compositor(
        data=lf, privacy_unit=dp.unit_of(contributions=1), privacy_loss=dp.loss_of(epsilon=eps),
        split_evenly_over=1, margins=[dp.polars.Margin(by=["county", "age_band"], invariant="keys")])
    cond = None
    for dim, values in q["filter"].items():
        c = None
        for v in values:  # opendp's Polars plugin has no is_in: OR of equalities
            e = pl.col(dim) == v
            c = e if c is None else (c | e)
        cond = c if cond is None else (cond & c)
    query = ctx.query()
    if cond is not None:
        query = query.filter(cond)
    query = (query.group_by(["county", "age_band"])
             .agg(dp.len(scale=1.0 / eps, signed=True)).with_keys(keys))
    return query.release().collect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--opendp-runs", type=int, default=3)
    ap.add_argument("--counties", required=True)
    args = ap.parse_args()
    queries = json.loads(args.queries)
    glob = args.parquet.rstrip("/") + "/*.parquet"

    _, lat_pq = duck(f"read_parquet('{glob}')", queries)
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"CREATE TABLE voters AS SELECT * FROM read_parquet('{glob}')")
    load = time.perf_counter() - t
    lat_tab = []
    sql = lambda q: (f"SELECT county, {age_sql()} AS age_band, count(*) AS n FROM voters "
                     f"WHERE {where_sql(q['filter'])} GROUP BY ALL")
    con.execute(sql(queries[0])).fetchall()
    for q in queries:
        t = time.perf_counter()
        con.execute(sql(q)).fetchall()
        lat_tab.append(time.perf_counter() - t)

    counties = [r["name"] for r in csv.DictReader(open(args.counties))]
    keys = (pl.DataFrame({"county": counties})
            .join(pl.DataFrame({"age_band": band_labels()}), how="cross").lazy())
    odp = []
    cells = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for q in queries[:args.opendp_runs]:
            t = time.perf_counter()
            out = opendp_run(glob, keys, q)
            odp.append(time.perf_counter() - t)
            cells = out.height
    print(json.dumps({
        "duckdb_parquet_p50_ms": pct(lat_pq, 50) * 1e3,
        "duckdb_parquet_p99_ms": pct(lat_pq, 99) * 1e3,
        "duckdb_table_p50_ms": pct(lat_tab, 50) * 1e3,
        "duckdb_load_s": load,
        "opendp_median_s": statistics.median(odp) if odp else float("nan"),
        "opendp_runs": len(odp),
        "opendp_cells": cells,
    }))


if __name__ == "__main__":
    main()
