#!/usr/bin/env python3
"""Write the research notebooks (``notebooks/0*.ipynb``) from the cells below.

The notebooks are committed without outputs; edit them here and run
``python notebooks/make_notebooks.py`` (needs ``nbformat``), so that the
committed files stay reviewable. ``scripts/run-notebooks`` executes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

def setup(stdlib: tuple[str, ...] = (), extra_client_imports: str = "") -> str:
    """The first code cell of every notebook: imports and the client."""
    imports = "\n".join(f"import {m}" for m in sorted({"os", *stdlib}))
    return f"""\
%matplotlib inline
{imports}

import matplotlib.pyplot as plt
import pandas as pd

from rollcall_client import Client{extra_client_imports}

# The server's URL and your token come from the environment, never from the notebook:
#   export ROLLCALL_URL=http://127.0.0.1:8080  ROLLCALL_TOKEN=...
rc = Client(os.environ.get("ROLLCALL_URL", "http://127.0.0.1:8080"))
DATASET = os.environ.get("ROLLCALL_DATASET", "nc")
pd.set_option("display.width", 120)
rc"""


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip("\n"))


QUICKSTART = [
    md("""
# 1 · Quickstart: active voters by county

rollcall answers **only differentially private counts** over a voter
registration file. Every number it returns has noise added, and every new
question spends part of your **privacy budget ε**. In exchange, nothing you see
can reveal whether any one voter is in the file.

This notebook connects, looks at what can be asked, asks one question (active
voters per county), plots it **with its uncertainty**, and checks what budget is
left. It spends ε = 0.5.

Set `ROLLCALL_URL` and `ROLLCALL_TOKEN` in the environment before starting
Jupyter (`scripts/run-notebooks` does this against a demo server on synthetic
data).
"""),
    code(setup()),
    md("""
## What can be asked

Datasets, their dimensions and every dimension's **public values** come from
the file layout and the server's configuration, never from the data: listing
them costs nothing and reveals nothing.
"""),
    code("""
dims = rc.datasets()
dims[["dataset", "dimension", "n_values", "max_epsilon_per_query"]]
"""),
    code("""
rc.values(DATASET, "status")   # status codes and their meaning
"""),
    md("""
## Ask what a question costs before asking it

A dry run (`rc.cost`) says how much ε a query would spend and how wide its 95%
interval would be. It spends nothing.
"""),
    code("""
rc.cost(DATASET, by=["county"], where={"status": ["A"]}, epsilon=0.5)
"""),
    md("""
## Active voters (status `A`) by county

`rc.count` returns one row per county — **every** county in the public list,
including any with no active voters, which come back as noisy zeros — with the
noisy `count` and its 95% interval `ci_low`–`ci_high`. The release's metadata is
in `df.attrs`.
"""),
    code("""
active = rc.count(DATASET, by=["county"], where={"status": ["A"]}, epsilon=0.5)
active.head()
"""),
    code("""
{k: active.attrs[k] for k in ("epsilon_spent", "epsilon_remaining", "cached",
                              "mechanism", "noise_scale", "ci95", "release_id")}
"""),
    code("""
top = active.nlargest(20, "count").sort_values("count")
fig, ax = plt.subplots(figsize=(8, 6))
ax.barh(top["county"].astype(str), top["count"], xerr=active.attrs["ci95"],
        color="tab:blue", alpha=0.8, ecolor="black", capsize=2)
ax.set_xlabel("active voters (noisy count, 95% interval)")
ax.set_title(f"Top 20 counties by active voters, ε = {active.attrs['epsilon']}")
plt.tight_layout()
plt.show()
"""),
    md("""
The error bars are the same width for every county: the noise does not depend on
the data, only on ε (`active.attrs["ci95"]` voters either side, at 95%). For a large county they are
invisible; for a small one they matter. The ranking itself is computed from the
noisy counts, which is fine (anything computed from a release is just as
private), but two counties whose intervals overlap may be in either order.
"""),
    code("""
smallest = active.nsmallest(5, "count")
smallest
"""),
    md("""
## Budget left

Every new release spends from your own budget on the dataset and from the
dataset's total budget shared by all analysts.
"""),
    code("""
rc.budget()
"""),
]


AGE_STRUCTURE = [
    md("""
# 2 · Age structure by party

How does the age profile of active registered voters differ by party, in a few
counties of very different size? One query answers it: counts by county × age
band × party, filtered to active voters, the three largest parties and four
counties. It spends ε = 0.5 on 4 × 9 × 3 = 108 cells.
"""),
    code(setup()),
    code("""
COUNTIES = ["WAKE", "MECKLENBURG", "NEW HANOVER", "TYRRELL"]
PARTIES = ["DEM", "REP", "UNA"]
rc.values(DATASET, "age_band").T
"""),
    code("""
ages = rc.count(
    DATASET,
    by=["county", "age_band", "party"],
    where={"county": COUNTIES, "party": PARTIES, "status": ["A"]},
    epsilon=0.5,
    labels=True,
)
print(f"{len(ages)} cells, ε spent {ages.attrs['epsilon_spent']}, "
      f"±{ages.attrs['ci95']:.1f} per cell (95%)")
ages.head(12)
"""),
    md("""
The age bands come back as an **ordered categorical** (`<18`, `18-24`, …,
`75+`, `unknown`), so tables and plots keep that order without any sorting by
hand. Counties come back in the public (alphabetical) order.
"""),
    code("""
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
colors = {"DEM": "tab:blue", "REP": "tab:red", "UNA": "tab:gray"}
for ax, county in zip(axes.flat, ages["county"].cat.categories, strict=True):
    sub = ages[ages["county"] == county]
    for party, g in sub.groupby("party", observed=True):
        x = range(len(g))
        ax.errorbar(x, g["count"], yerr=ages.attrs["ci95"], marker="o", capsize=3,
                    label=g["party_label"].iloc[0], color=colors[party])
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(county)
    ax.set_xticks(range(len(ages["age_band"].cat.categories)))
    ax.set_xticklabels(ages["age_band"].cat.categories, rotation=45)
axes[0, 0].legend()
fig.supylabel("active voters (noisy, 95% interval)")
fig.suptitle(f"Age structure by party, ε = {ages.attrs['epsilon']}")
plt.tight_layout()
plt.show()
"""),
    md("""
In the large counties the intervals are invisible next to the counts. In a
small county (Tyrrell is the least populous in North Carolina) the same
±interval is a large part of each count, and some cells are near zero.

## Shares within each county

A share is computed from noisy counts, so it is noisy too; with hundreds of
voters per band the effect is small, with a handful it dominates. Negative
counts are clipped to 0 *for the share only*.
"""),
    code("""
wide = ages.pivot_table(index=["county", "age_band"], columns="party", values="count",
                        observed=True).clip(lower=0)
share = wide.div(wide.sum(axis=1).where(lambda s: s > 0), axis=0).round(3)
share.loc[["WAKE", "TYRRELL"]]
"""),
    md("""
## How to read a noisy zero (and a negative count)

Every cell gets independent noise from the discrete Laplace distribution, with
scale 1/ε. So:

* **A count can be negative.** `-3` does not mean an error: the true count is
  small (possibly 0) and the noise happened to be negative. Keep negative
  counts when you add cells up — clipping them to zero before summing pushes
  every sum upward (a bias); clip only for display.
* **A count near zero is not evidence of absence.** A cell whose interval
  contains 0 is *consistent with zero*, but also with a few voters. rollcall
  never says which: that is the privacy guarantee at work.
* **A small positive count is not evidence of presence** either: a noisy `2`
  is compatible with a true 0.
* The interval is the same width for every cell of a release (it depends only
  on ε): `count ± ci95` contains the true count with probability 95% per cell.
  Across 108 cells, expect about 5 intervals to miss.

The cells below are those whose interval contains zero:
"""),
    code("""
near_zero = ages[(ages["ci_low"] <= 0) & (ages["ci_high"] >= 0)]
print(f"{len(near_zero)} of {len(ages)} cells are consistent with zero; "
      f"{(ages['count'] < 0).sum()} counts are negative")
near_zero[["county", "age_band", "party", "count", "ci_low", "ci_high"]].head(20)
"""),
    md("""
Adding cells adds their noise: the sum of *k* cells has noise with a standard
deviation √k times that of one cell. A county total obtained by summing its 27
cells is therefore noisier than a one-cell query for the total, at the same ε;
notebook 3 plans for that.
"""),
    code("""
totals = ages.groupby(["county", "party"], observed=True)["count"].sum().unstack()
totals
"""),
    code("""
rc.budget()
"""),
]


BUDGET_PLANNING = [
    md("""
# 3 · Planning a privacy budget

A budget is spent one release at a time, and cannot be earned back. This
notebook plans with **dry runs** (`rc.cost`, free), shows how interval width
depends on ε and on the number of cells, why repeating a query is free, and
what happens when a budget runs out. It spends ε = 0.2 of your budget, plus the
budget of a second, small-budget analyst for the last part.
"""),
    code(setup(("dataclasses", "math"), ", BudgetExhausted, InvalidQuery")),
    md("""
## Interval width against ε

Dry runs cost nothing. The half-width of the 95% interval of each cell falls
like 1/ε: half the ε, twice the interval.
"""),
    code("""
eps_grid = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
plan = pd.DataFrame([dataclasses.asdict(rc.cost(DATASET, by=["county"], epsilon=e))
                     for e in eps_grid])
plan
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(plan["epsilon"], plan["ci95"], "o-", label="95% half-width per cell")
ax.loglog(plan["epsilon"], plan["ci95"].iloc[-1] * plan["epsilon"].iloc[-1] / plan["epsilon"],
          "--", color="gray", label="∝ 1/ε")
ax.set_xlabel("ε per query")
ax.set_ylabel("± voters (95%)")
ax.set_title("Interval width against ε")
ax.legend()
plt.tight_layout()
plt.show()
"""),
    md("""
## Interval width against the number of cells

In this mechanism every cell of a release is one disjoint group, so one voter
changes one cell by one, whatever the number of cells. The **per-cell**
interval therefore does not depend on how many cells a query has: 900 cells
cost the same ε as 1 cell and are each just as precise.

What does grow is the error of anything **added up from many cells**: noise is
independent per cell, so the sum of *k* cells has a standard deviation √k times
a cell's. Ask for the cells you need, at the resolution you need.
"""),
    code("""
shapes = {
    "total": [],
    "party": ["party"],
    "county": ["county"],
    "county × age": ["county", "age_band"],
    "county × age × gender": ["county", "age_band", "gender"],
}
rows = []
for name, by in shapes.items():
    c = rc.cost(DATASET, by=by, epsilon=0.5)
    rows.append({"query": name, "cells": c.cells, "epsilon": c.epsilon,
                 "noise_scale": c.noise_scale, "ci95_per_cell": c.ci95})
cells = pd.DataFrame(rows)


def dlap_sd(scale: float) -> float:
    \"\"\"Standard deviation of discrete Laplace noise with this scale.\"\"\"
    a = math.exp(-1 / scale)
    return math.sqrt(2 * a) / (1 - a)


# 95% half-width of the sum over all cells (normal approximation)
cells["ci95_of_sum"] = [1.96 * math.sqrt(n) * dlap_sd(s)
                        for n, s in zip(cells["cells"], cells["noise_scale"], strict=True)]
cells
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(cells["cells"], cells["ci95_per_cell"], "o-", label="per cell")
ax.loglog(cells["cells"], cells["ci95_of_sum"], "s-", label="sum of all cells")
for _, r in cells.iterrows():
    ax.annotate(r["query"], (r["cells"], r["ci95_of_sum"]), textcoords="offset points",
                xytext=(4, 4), fontsize=8)
ax.set_xlabel("cells in the query")
ax.set_ylabel("± voters (95%), ε = 0.5")
ax.set_title("Same ε: per-cell error flat, total error grows as √cells")
ax.legend()
plt.tight_layout()
plt.show()
"""),
    md("""
The server also caps a single query's ε (`max_epsilon_per_query`) and the
number of cells; a query over the cap is refused before anything is spent:
"""),
    code("""
cap = rc.dataset(DATASET).max_epsilon_per_query
try:
    rc.cost(DATASET, by=["county"], epsilon=cap * 2)
except InvalidQuery as e:
    print(type(e).__name__, e.code, "→", e.message)
"""),
    md("""
## Repeating a query is free

Once a query has been answered, its result is public (to whoever holds it).
Asking it again returns the **stored** release — the same noisy numbers, with
`cached=True` and nothing spent — for any analyst. Fresh noise on every repeat
would let anyone average the noise away by asking many times.
"""),
    code("""
before = rc.budget().set_index("dataset").loc[DATASET, "spent"]
q = dict(by=["party"], where={"status": ["A"]}, epsilon=0.2)
first = rc.count(DATASET, **q)
again = rc.count(DATASET, **q)
after = rc.budget().set_index("dataset").loc[DATASET, "spent"]
pd.DataFrame({
    "first": {k: first.attrs[k] for k in ("cached", "epsilon_spent", "release_id")},
    "again": {k: again.attrs[k] for k in ("cached", "epsilon_spent", "release_id")},
})
"""),
    code("""
print(f"spent before {before:.3f}, after both queries {after:.3f}")
assert again.attrs["cached"] and again.attrs["epsilon_spent"] == 0
assert (first["count"] == again["count"]).all()
first.merge(again, on="party", suffixes=("_first", "_again"))[
    ["party", "count_first", "count_again"]]
"""),
    md("""
A query counts as a repeat only if it is identical: same dataset, same group-by
dimensions, same filter values, same ε. Changing ε, even slightly, is a new
release and costs its ε again.

## When the budget runs out

A second analyst (`ROLLCALL_INTERN_TOKEN`, set by `scripts/run-notebooks`) has
a small budget. Below, they ask one county's age profile after another at
ε = 0.1 until the server refuses with `BudgetExhausted`. The refusal spends
nothing; dry runs and repeats of already-released queries still work.
"""),
    code("""
intern_token = os.environ.get("ROLLCALL_INTERN_TOKEN")
if not intern_token:
    print("set ROLLCALL_INTERN_TOKEN to the token of an analyst with a small budget "
          "to run this part")
else:
    intern = Client(rc.url, intern_token)
    display(intern.budget())
    counties = list(intern.dataset(DATASET)["county"].values)
    answered = []
    for county in counties[:20]:
        try:
            df = intern.count(DATASET, by=["age_band"], where={"county": [county]},
                              epsilon=0.1)
        except BudgetExhausted as e:
            print(f"{county}: refused — {e.code}: {e.message}")
            break
        answered.append(county)
        print(f"{county}: answered, spent {df.attrs['epsilon_spent']}, "
              f"cached={df.attrs['cached']}, remaining {df.attrs['epsilon_remaining']:.2f}")
    else:
        raise AssertionError("the budget never ran out")
"""),
    code("""
if intern_token:
    display(intern.budget())
    # a dry run still answers, and so does a repeat of a released query
    print(intern.cost(DATASET, by=["age_band"], where={"county": [county]}, epsilon=0.1))
    repeat = intern.count(DATASET, by=["age_band"], where={"county": [answered[0]]},
                          epsilon=0.1)
    print("repeat of", answered[0], "→ cached:", repeat.attrs["cached"],
          "spent:", repeat.attrs["epsilon_spent"])
"""),
    md("""
## Planning rules of thumb

* Decide the few questions that matter, and their resolution, before spending.
* Interval per cell ≈ `ci95` from a dry run; it depends only on ε.
* Totals: ask for them directly rather than summing many cells.
* Reuse releases (they are free) instead of asking near-identical questions.
"""),
    code("""
rc.budget()
"""),
]


TURNOUT = [
    md("""
# 4 · Turnout: who voted in the 2024 general election

Voting history is the part of a voter file offices are asked for most and are
least willing to hand over. rollcall keeps, for each election the operator
configured (`[[dataset.election]]`), one public category per voter — voted on
election day, early, by mail, provisionally, another way, with an unrecorded
method; did not vote; or registered only after the election — and answers
counts of it like any other dimension, `vote_<id>`.

`rc.turnout` sends **one** query (grouped by your groups and the election),
adds its noisy cells up into `registered` and `voted`, and gives each rate a
95% interval computed from the noise distribution of that one release. This
notebook asks for turnout by age band and party, then the voting-method mix by
county, and shows how a rate's interval widens as counties get smaller. It
spends ε = 1.3 (releases of 0.5, 0.5 and 0.3).
"""),
    code(setup()),
    md("""
## What can be asked

The elections are public configuration, not data: listing them is free. Each
is a dimension whose values are the categories the state's layout can tell
apart (NC's history file distinguishes election day, early voting, mail and
provisional ballots).
"""),
    code("""
print("elections:", rc.elections(DATASET))
rc.values(DATASET, "vote_2024g")
"""),
    md("""
A dry run says what the query behind a turnout table costs: the groups times
the election's categories, each cell with the same noise.
"""),
    code("""
AGES = [a for a in rc.dataset(DATASET)["age_band"].values if a not in ("<18", "unknown")]
PARTIES = ["DEM", "REP", "UNA"]
rc.cost(DATASET, by=["age_band", "party", "vote_2024g"],
        where={"age_band": AGES, "party": PARTIES}, epsilon=0.5)
"""),
    md("""
## Turnout by age band and party

Ages are those of the file's snapshot (`as_of`), not of election day, and so
are party and county: a voter who moved or changed party since is counted
where the file has them today. Voters purged since the election are not in the
file at all. The youngest band holds many who registered after November 2024:
they are `not_registered` for that election and not in its `registered`.
"""),
    code("""
by_age = rc.turnout(DATASET, "2024g", by=["age_band", "party"],
                    where={"age_band": AGES, "party": PARTIES}, epsilon=0.5, labels=True)
print(f"ε spent {by_age.attrs['epsilon_spent']}, {by_age.attrs['cells']} cells, "
      f"±{by_age.attrs['ci95']:.1f} voters per cell (95%)")
by_age[["age_band", "party", "registered", "voted", "rate", "rate_low", "rate_high"]].head(9)
"""),
    code("""
fig, ax = plt.subplots(figsize=(8, 4.5))
colors = {"DEM": "tab:blue", "REP": "tab:red", "UNA": "tab:gray"}
bands = list(by_age["age_band"].cat.categories)
for i, (party, g) in enumerate(by_age.groupby("party", observed=True)):
    x = [bands.index(b) + (i - 1) * 0.15 for b in g["age_band"]]
    err = [g["rate"] - g["rate_low"], g["rate_high"] - g["rate"]]
    ax.errorbar(x, g["rate"], yerr=err, fmt="o-", capsize=3, color=colors[party],
                label=g["party_label"].iloc[0])
ax.set_xticks(range(len(bands)))
ax.set_xticklabels(bands)
ax.set_xlabel("age band (in the file's snapshot)")
ax.set_ylabel("turnout among registered (95% interval)")
ax.set_title(f"2024 general election turnout by age and party, ε = {by_age.attrs['epsilon']}")
ax.legend()
plt.tight_layout()
plt.show()
"""),
    md("""
With thousands of voters per group the intervals are hidden by the markers
(the table above has them: a fraction of a point); the differences between
parties and ages are far larger than the privacy noise.

### How the interval is computed

Every cell of the release got independent discrete Laplace noise of a public
scale (`noise_scale`, here 1/ε). A rate is `voted / registered`, a ratio of
sums of those cells, so its error has no simple formula; `turnout` inverts a
test against the simulated noise instead: a rate *r* is in the interval when
`voted − r·registered` is a plausible value of the noise
`N_voted − r·N_registered`. At the true rate that is exactly the case 95% of
the time, in large groups and tiny ones alike. The interval covers the privacy
noise only: it says nothing about errors in the file.

## How people voted, by county

The second release asks every county × method cell at once; `methods=True`
adds each method's share among voters, with its interval.
"""),
    code("""
mix = rc.turnout(DATASET, "2024g", by=["county"], methods=True, epsilon=0.5)
print(f"ε spent {mix.attrs['epsilon_spent']}, methods: {mix.attrs['methods']}")
mix.nlargest(5, "registered")[["county", "registered", "voted", "rate",
                                "share_election_day", "share_early", "share_mail"]]
"""),
    code("""
SHOWN = ["election_day", "early", "mail"]
pick = pd.concat([mix.nlargest(6, "registered"), mix.nsmallest(6, "registered")])
pick = pick.sort_values("registered")
fig, ax = plt.subplots(figsize=(9, 6))
y = range(len(pick))
for i, m in enumerate(SHOWN):
    share = pick[f"share_{m}"]
    err = [share - pick[f"share_{m}_low"], pick[f"share_{m}_high"] - share]
    ax.barh([v + (i - 1) * 0.27 for v in y], share, height=0.27, xerr=err, capsize=2,
            label=m.replace("_", " "), alpha=0.85)
ax.set_yticks(list(y))
ax.set_yticklabels([f"{c} ({n:,})" for c, n in zip(pick["county"], pick["registered"],
                                                     strict=True)])
ax.set_xlim(0, 1)
ax.set_xlabel("share of voters (95% interval)")
ax.set_title("Voting method in the six largest and six smallest counties (registered)")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()
"""),
    md("""
In the big counties the method shares are known to a point or two; in the
smallest, the same noise per cell is a larger part of every count, and the
intervals widen. The noise is the same in every cell — only the counts it is
compared with change.

## A rate's interval widens in small counties

How wide a turnout interval is depends on how many voters it is about. The
county release above gives one point per county. To see smaller groups, a
third release asks turnout by age band in the 20 smallest counties (chosen
from the noisy `registered` of the release above: anything computed from a
release is as private as the release, and free). Below, each group's interval
width against its (noisy) number of registered voters: for large groups the
width falls like 1/registered — the normal approximation of the ratio's noise,
with the discrete Laplace variance of each summed cell, is drawn for
comparison — and for groups of a few dozen voters it approaches the whole
[0, 1] range (above the dashed line: there the approximation no longer holds,
and the interval's coverage comes from the simulated noise itself): the
release says almost nothing about them, which is the privacy guarantee
working as intended.
"""),
    code("""
SMALL = list(mix.nsmallest(20, "registered")["county"])
small = rc.turnout(DATASET, "2024g", by=["county", "age_band"],
                   where={"county": SMALL, "age_band": AGES}, epsilon=0.3)
print(f"ε spent {small.attrs['epsilon_spent']}, {len(small)} groups, "
      f"noise scale {small.attrs['noise_scale']:.2f} per cell")
small.nsmallest(6, "registered")[["county", "age_band", "registered", "voted", "rate",
                                  "rate_low", "rate_high"]]
"""),
    code("""
import numpy as np
from rollcall_client.intervals import dlap_variance


def approx_width(n, release):
    \"\"\"2 × 1.96 × the normal approximation of the rate's noise, at the median rate.\"\"\"
    var = dlap_variance(release.attrs["noise_scale"])
    k = len(release.attrs["methods"])  # method cells summed into `voted`
    r = release["rate"].median()
    return np.minimum(2 * 1.96 * np.sqrt(((1 - r) ** 2 * k + r ** 2) * var) / n, 1)


fig, ax = plt.subplots(figsize=(7.5, 4.8))
n = np.logspace(0.5, np.log10(mix["registered"].max()), 200)
for release, label, color in ((mix, "counties (ε = 0.5)", "tab:blue"),
                              (small, "age bands of the 20 smallest counties (ε = 0.3)",
                               "tab:orange")):
    ax.loglog(release["registered"].clip(lower=1), release["rate_high"] - release["rate_low"],
              "o", alpha=0.6, color=color, label=label)
    ax.loglog(n, approx_width(n, release), "--", color=color, lw=1)
ax.axhline(1, color="black", lw=0.5)
ax.set_xlabel("registered voters in the group (noisy)")
ax.set_ylabel("width of the 95% turnout interval")
ax.set_title("Turnout interval width against group size (dashed: normal approximation)")
ax.legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()
"""),
    md("""
To say something about small places, group them (by region, or by a
dimension such as party across the whole state) or spend more ε on fewer
cells: the per-cell noise depends only on ε, so a larger group has a
relatively smaller error. Repeating a query is free and returns the same
release, with the same intervals.
"""),
    code("""
rc.budget()
"""),
]


NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_age_structure.ipynb": AGE_STRUCTURE,
    "03_budget_planning.ipynb": BUDGET_PLANNING,
    "04_turnout.ipynb": TURNOUT,
}


def build(name: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    # stable cell ids keep diffs small when the notebooks are regenerated
    stem = name.split("_")[0]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"nb{stem}-{i:02d}"
    nbformat.validate(nb)
    return nb


def main() -> int:
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        nbformat.write(build(name, cells), path)
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
