"""Baselines for `scripts/bench-ingest --history`, run inside its venv
(duckdb, polars): the work `rollcall ingest --history` does, as a competent
DuckDB or Polars user would write it.

  python history.py duckdb|polars VOTERS HISTORY OUT.parquet
  python history.py check A.parquet B.parquet   (same rows and counts?)

Both read the NC voter file (the columns the ingest bench reads, ncid and
registr_dt among them) and keep one line per ncid, the latest registration
date; read the `ncvhis` history file (ncid, election_lbl, voting_method),
keep the configured elections' dates, map voting_method to its category
(the table of config/layouts/nc.toml's `[history.methods]`, inlined here;
blank -> voted_method_unknown, unknown -> other), keep one line per (ncid,
election) and pivot to one column per election in the same grouping (a
category's code is its index in CATEGORIES, and the maximum code wins, so
any ballot beats `did_not_vote`: rollcall keeps the first line that is not
`did_not_vote`, which gives the same counts unless one voter has two ballot
lines of different methods for one election); join the voters to it (left);
a voter without a line for an election is `not_registered` when registered
after its date, else `did_not_vote`; drop ncid; write zstd Parquet.

The module imports no engine at the top: scripts/bench-ingest imports it
for ELECTIONS, METHODS and COLUMNS under the system Python.
"""

import sys

# The voter file's columns the ingest bench reads (ncid and registr_dt among
# them): the same for every tool.
COLUMNS = [
    "county_desc", "ncid", "birth_year", "gender_code", "race_code", "ethnic_code",
    "party_cd", "status_cd", "registr_dt", "cong_dist_abbrv", "nc_house_abbrv", "nc_senate_abbrv",
]
# `rollcall synth --default-elections`: (id, date, type), the config's
# `[[dataset.election]]` entries.
ELECTIONS = [
    ("2016g", "2016-11-08", "general"), ("2018g", "2018-11-06", "general"),
    ("2020p", "2020-03-03", "primary"), ("2020g", "2020-11-03", "general"),
    ("2022p", "2022-05-17", "primary"), ("2022g", "2022-11-08", "general"),
    ("2024p", "2024-03-05", "primary"), ("2024g", "2024-11-05", "general"),
]
# crates/layout/src/history.rs CATEGORIES, in order: a code is the index.
CATEGORIES = ["did_not_vote", "not_registered", "election_day", "early", "mail", "provisional",
              "other", "voted_method_unknown"]
# config/layouts/nc.toml [history.methods] (bench-ingest checks it still is).
METHODS = {
    "ELECTION DAY IN-PERSON": "election_day", "ELECTION DAY CURBSIDE": "election_day",
    "IN-PERSON": "election_day", "CURBSIDE": "election_day",
    "EARLY VOTING IN-PERSON": "early", "EARLY VOTING CURBSIDE": "early",
    "ABSENTEE ONESTOP": "early", "ABSENTEE CURBSIDE": "early",
    "ABSENTEE BY MAIL": "mail", "ABSENTEE": "mail",
    "PROVISIONAL": "provisional", "LEGACY": "voted_method_unknown",
    "ELIGIBLE DID NOT VOTE": "did_not_vote", "TRANSFER": "did_not_vote",
}
BLANK, FALLBACK = "voted_method_unknown", "other"

CODE = {c: i for i, c in enumerate(CATEGORIES)}
NOT_REGISTERED, DID_NOT_VOTE = CODE["not_registered"], CODE["did_not_vote"]


def mdy(iso):
    """2024-11-05 -> 11/05/2024, as election_lbl writes it."""
    y, m, d = iso.split("-")
    return f"{m}/{d}/{y}"


def check(a, b):
    """Prints what differs between two outputs (rows, per-election category
    counts); exits 1 if anything does."""
    import polars as pl

    x, y = pl.scan_parquet(a), pl.scan_parquet(b)
    bad = []
    n = [f.select(pl.len()).collect().item() for f in (x, y)]
    if n[0] != n[1]:
        bad.append(f"rows {n[0]:,} vs {n[1]:,}")
    for i, _, _ in ELECTIONS:
        c = [dict(f.select(pl.col(f"vote_{i}").cast(pl.String).value_counts()).collect()
                  .unnest(f"vote_{i}").iter_rows()) for f in (x, y)]
        if c[0] != c[1]:
            bad.append(f"vote_{i}: {c[0]} vs {c[1]}")
    print("\n".join(bad) if bad else f"same {n[0]:,} rows and per-election counts")
    sys.exit(1 if bad else 0)


def duckdb_run(voters, history, out):
    import duckdb

    con = duckdb.connect()
    # Output order is not part of the work: lets every step run in parallel
    # and stream.
    con.execute("SET preserve_insertion_order = false")
    csv = "delim='\\t', header=true, quote='\"', all_varchar=true, encoding='latin-1'"
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    # A quoted empty field reads as NULL: blank, like an empty one.
    method = ("CASE upper(trim(coalesce(voting_method, ''))) "
              + " ".join(f"WHEN '{k}' THEN {CODE[v]}" for k, v in METHODS.items())
              + f" WHEN '' THEN {CODE[BLANK]} ELSE {CODE[FALLBACK]} END")
    dates = ", ".join(f"'{mdy(d)}'" for _, d, _ in ELECTIONS)
    pivot = ",\n      ".join(f"max(code) FILTER (WHERE election_lbl = '{mdy(d)}') AS e_{i}"
                           for i, d, _ in ELECTIONS)
    labels = "[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "]"
    votes = ",\n    ".join(
        f"{labels}[coalesce(h.e_{i}, CASE WHEN v.reg > DATE '{d}' THEN {NOT_REGISTERED} "
        f"ELSE {DID_NOT_VOTE} END) + 1] AS vote_{i}" for i, d, _ in ELECTIONS)
    keep = ", ".join(f'v."{c}"' for c in COLUMNS if c != "ncid")
    con.execute(f"""
COPY (
  WITH v AS (
    SELECT {cols}, try_strptime(registr_dt, '%m/%d/%Y')::DATE AS reg
    FROM read_csv('{voters}', {csv})
    WHERE trim(ncid) <> ''
    QUALIFY row_number() OVER (PARTITION BY ncid ORDER BY reg DESC NULLS LAST) = 1
  ),
  h AS (
    SELECT ncid,
      {pivot}
    FROM (SELECT ncid, election_lbl, {method} AS code
          FROM read_csv('{history}', {csv})
          WHERE election_lbl IN ({dates}))
    GROUP BY ncid
  )
  SELECT {keep},
    {votes}
  FROM v LEFT JOIN h USING (ncid)
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
""")


def polars_run(voters, history, out):
    import datetime

    import polars as pl

    opts = dict(separator="\t", quote_char='"', infer_schema=False, encoding="utf8-lossy")
    v = (pl.scan_csv(voters, **opts)
         .select(COLUMNS)
         .filter(pl.col("ncid").str.strip_chars() != "")
         .with_columns(reg=pl.col("registr_dt").str.to_date("%m/%d/%Y", strict=False))
         .sort("reg", nulls_last=False)
         .unique(subset="ncid", keep="last"))
    codes = {**{k: CODE[c] for k, c in METHODS.items()}, "": CODE[BLANK]}
    h = (pl.scan_csv(history, **opts)
         .select("ncid", "election_lbl", "voting_method")
         .filter(pl.col("election_lbl").is_in([mdy(d) for _, d, _ in ELECTIONS]))
         .with_columns(code=pl.col("voting_method").fill_null("").str.strip_chars().str.to_uppercase()
                       .replace_strict(codes, default=CODE[FALLBACK], return_dtype=pl.UInt8))
         .group_by("ncid")
         .agg([pl.col("code").filter(pl.col("election_lbl") == mdy(d)).max().alias(f"e_{i}")
               for i, d, _ in ELECTIONS]))
    labels = pl.Enum(CATEGORIES)
    votes = [pl.coalesce(pl.col(f"e_{i}"),
                         pl.when(pl.col("reg") > datetime.date.fromisoformat(d))
                         .then(pl.lit(NOT_REGISTERED, pl.UInt8)).otherwise(pl.lit(DID_NOT_VOTE, pl.UInt8)))
             .replace_strict(list(range(len(CATEGORIES))), CATEGORIES, return_dtype=pl.String)
             .cast(labels).alias(f"vote_{i}")
             for i, d, _ in ELECTIONS]
    (v.join(h, on="ncid", how="left")
      .select([c for c in COLUMNS if c != "ncid"] + votes)
      .sink_parquet(out, compression="zstd"))


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(*sys.argv[2:4])
    tool, voters, history, out = sys.argv[1:5]
    {"duckdb": duckdb_run, "polars": polars_run}[tool](voters, history, out)
