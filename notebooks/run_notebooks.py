#!/usr/bin/env python3
"""Execute the research notebooks against a demo rollcall server; write HTML.

Called by ``scripts/run-notebooks`` (which prepares the venv and the binary).
Starts a server on synthetic NC data, with synth's voting history for its
default elections 2016-2024 (notebook 4 asks for turnout), and two analysts:

- ``analyst`` (ε 3.0 on ``nc``): ``ROLLCALL_TOKEN``, used by every notebook;
- ``intern`` (ε 0.25 on ``nc``): ``ROLLCALL_INTERN_TOKEN``, whose budget
  notebook 3 runs out on purpose.

Every notebook runs in a fresh kernel; a cell error fails the run (exit 1)
after the other notebooks have still been run and written. With ``--external``
no server is started and the notebooks use the caller's ``ROLLCALL_URL`` and
``ROLLCALL_TOKEN`` (and ``ROLLCALL_INTERN_TOKEN`` if set).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from harness import Analyst, demo_server, find_binary

HERE = Path(__file__).resolve().parent


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def server_env(args: argparse.Namespace) -> Iterator[None]:
    if args.external:
        for var in ("ROLLCALL_URL", "ROLLCALL_TOKEN"):
            if not os.environ.get(var):
                sys.exit(f"run-notebooks: --external needs {var}")
        yield
        return
    binary = find_binary()
    analyst = Analyst("analyst", {"nc": 3.0})
    intern = Analyst("intern", {"nc": 0.25})
    t0 = time.monotonic()
    with demo_server(
        analysts=[analyst, intern],
        rows=args.rows,
        seed=args.seed,
        binary=binary,
        epsilon_total=20.0,
        max_epsilon_per_query=1.0,
        workdir=Path(args.workdir) if args.workdir else None,
        history=True,
    ) as srv:
        print(
            f"run-notebooks: {binary} serving {args.rows:,} synthetic NC voters (with voting "
            f"history) at {srv.url} "
            f"(ready in {time.monotonic() - t0:.1f}s, work dir {srv.workdir})",
            flush=True,
        )
        os.environ["ROLLCALL_URL"] = srv.url
        os.environ["ROLLCALL_TOKEN"] = analyst.token
        os.environ["ROLLCALL_INTERN_TOKEN"] = intern.token
        os.environ.setdefault("ROLLCALL_DATASET", "nc")
        try:
            yield
        except BaseException:
            print("---- server log (tail) ----", file=sys.stderr)
            print(srv.log_text()[-4000:], file=sys.stderr)
            raise


def run_one(path: Path, out: Path, timeout: int) -> bool:
    nb = nbformat.read(path, as_version=4)
    # IPC sockets in a private temp dir rather than unencrypted TCP ports
    sockets = Path(tempfile.mkdtemp(prefix="rollcall-kernel-"))
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "k"))
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.monotonic()
    ok = True
    try:
        client.execute()
    except CellExecutionError as e:
        ok = False
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        print(f"FAILED {path.name}:\n{plain}", file=sys.stderr)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    elapsed = time.monotonic() - t0
    out.mkdir(parents=True, exist_ok=True)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (out / f"{path.stem}.html").write_text(html, encoding="utf-8")
    nbformat.write(nb, out / path.name)
    images = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    )
    status = "ok" if ok else "FAILED"
    print(f"{status:6} {path.name:28} {elapsed:5.1f}s  {images} plot(s)  -> {out / path.stem}.html",
          flush=True)
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/0*.ipynb)")
    p.add_argument("--rows", type=int, default=200_000, help="synthetic voters (default 200000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=str(HERE / "out"), help="HTML output folder")
    p.add_argument("--workdir", help="keep data, config, ledger and server log here")
    p.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    p.add_argument("--external", action="store_true",
                   help="use ROLLCALL_URL/ROLLCALL_TOKEN instead of starting a server")
    args = p.parse_args()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _terminate)

    paths = [Path(n).resolve() for n in args.notebooks] or sorted(HERE.glob("0*.ipynb"))
    if not paths:
        print("run-notebooks: no notebooks found", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    with server_env(args):
        results = [run_one(path, Path(args.out), args.timeout) for path in paths]
    failed = results.count(False)
    print(f"run-notebooks: {time.monotonic() - t0:.1f}s in all; HTML in {args.out}")
    print(f"notebooks: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
