"""`scripts/demo --check`: starts `rollcall serve`, asks the README's query
and a turnout query (`vote_2024g`, from the ingested voting history) over
HTTP as the demo analyst, checks the answers' shape, and stops the server.
Exits non-zero, with the server's log, when any step fails."""

import json
import subprocess
import sys
import time
import urllib.request

QUERY = {
    "dataset": "nc",
    "group_by": ["county", "age_band"],
    "filter": {"status": ["A"], "party": ["DEM", "REP"]},
    "epsilon": 0.5,
}
TURNOUT = {
    "dataset": "nc",
    "group_by": ["age_band", "vote_2024g"],
    "filter": {"party": ["DEM", "REP", "UNA"]},
    "epsilon": 0.5,
}


def call(base: str, token: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)


def public_cells(datasets: dict, group_by: list[str]) -> int:
    listed = datasets["datasets"] if isinstance(datasets, dict) else datasets
    nc = next(d for d in listed if d["name"] == "nc")
    sizes = {d["name"]: len(d["values"]) for d in nc["dimensions"]}
    cells = 1
    for dim in group_by:
        cells *= sizes[dim]
    return cells


def main(binary: str, config: str, token: str) -> int:
    server = subprocess.Popen(
        [binary, "serve", "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        if "listening on " not in line:
            server.kill()
            print(f"demo check: the server did not start:\n{server.stderr.read()}", file=sys.stderr)
            return 1
        base = line.rsplit("listening on ", 1)[1].strip()
        started = time.monotonic()
        body = call(base, token, "/v1/query", QUERY)
        cells = body["rows"]
        print(
            f"demo check: {len(cells)} noisy cells, ε spent {body['epsilon_spent']}, "
            f"{time.monotonic() - started:.2f} s, from {base}"
        )
        # Every public cell, empty ones too: counties × age bands.
        expected = public_cells(call(base, token, "/v1/datasets"), QUERY["group_by"])
        if len(cells) != expected:
            print(f"demo check: expected {expected} cells, got {len(cells)}", file=sys.stderr)
            return 1
        # Turnout: the history was ingested with the config's elections.
        body = call(base, token, "/v1/query", TURNOUT)
        cells = body["rows"]
        expected = public_cells(call(base, token, "/v1/datasets"), TURNOUT["group_by"])
        voted = sum(r["count"] for r in cells
                    if r["vote_2024g"] not in ("did_not_vote", "not_registered"))
        registered = sum(r["count"] for r in cells if r["vote_2024g"] != "not_registered")
        print(f"demo check: turnout {len(cells)} noisy cells, 2024 general: {voted} of "
              f"{registered} registered voted (noisy), ε spent {body['epsilon_spent']}")
        if len(cells) != expected or not 0 < voted < registered:
            print(f"demo check: turnout: expected {expected} cells and 0 < voted < registered, "
                  f"got {len(cells)} cells, {voted} of {registered}", file=sys.stderr)
            return 1
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
