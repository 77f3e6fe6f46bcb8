"""The shared fixture commands for Python callers (benchmarks, the notebook
runner, the client's tests): run `scripts/fixture` and read what it made, and
find the binaries through cargo, wherever CARGO_TARGET_DIR puts them."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def target_dir():
    """Cargo's target folder for this checkout."""
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
    return Path(json.loads(meta)["target_directory"])


def release_binary():
    """`rollcall` of the release build."""
    return target_dir() / "release" / "rollcall"


def run(binary, rows, out, *, layout="nc", seed=42, quirks=False, dataset=None, synth_only=False,
        history=False, config=None):
    """`scripts/fixture …`: the paths it reports (`source`, `truth`, `data_dir`,
    `history`). `history`: synth's default elections' history file too
    (`config`: the rollcall config that ingests it)."""
    cmd = [str(ROOT / "scripts" / "fixture"), "--binary", str(binary), "--layout", layout,
           "--rows", str(rows), "--seed", str(seed), "--out", str(out)]
    if quirks:
        cmd.append("--quirks")
    if dataset:
        cmd += ["--dataset", dataset]
    if synth_only:
        cmd.append("--synth-only")
    if history:
        cmd.append("--history")
    if config:
        cmd += ["--config", str(config)]
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def synth(binary, rows, out, **kw):
    """A synthetic file of `rows` lines (made once): its path."""
    return Path(run(binary, rows, out, synth_only=True, **kw)["source"])


def synth_history(binary, rows, out, **kw):
    """A synthetic file of `rows` voters and its voting history for synth's
    default elections (made once): (voter file, history file)."""
    paths = run(binary, rows, out, synth_only=True, history=True, **kw)
    return Path(paths["source"]), Path(paths["history"])


def dataset(binary, rows, out, **kw):
    """A synthetic file ingested (made once): the data folder holding it."""
    return Path(run(binary, rows, out, **kw)["data_dir"])
