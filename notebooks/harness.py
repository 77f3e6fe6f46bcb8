"""Start a throw-away rollcall server on synthetic data (for tests and demos).

Not part of the client package: the client's tests (``notebooks/client/tests``)
and ``scripts/run-notebooks`` use it to run the real ``rollcall`` binary end to
end::

    with demo_server(rows=50_000, analysts=[Analyst("alice", {"nc": 3.0})]) as srv:
        Client(srv.url, srv.tokens["alice"]).budget()

It makes an NC dataset with the project's one fixture command
(``scripts/fixture``: ``rollcall synth`` then ``rollcall ingest``), writes a
config with fresh random tokens (only their SHA-256 goes into the file),
starts ``rollcall serve`` on a free loopback port,
waits for ``/healthz`` and stops the server on exit.

With ``history=True`` synth also writes NC voting history for its default
elections (2016-2024, :data:`DEFAULT_ELECTIONS`), the config configures them
as ``[[dataset.election]]`` and the ingest joins the history
(``rollcall ingest --config ... --history ...``), so the server answers
``vote_<id>`` dimensions; ``DemoServer.truth`` is synth's ground truth.
``aliases`` serve the same data under more names (one ``[[population]]``,
each name with its own per-query cap), e.g. an exact-ish dataset with a
large ``max_epsilon_per_query`` for tests that compare answers with the truth.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "lib"))
import fixture  # noqa: E402  (scripts/lib/fixture.py: the shared fixture commands)

__all__ = [
    "DEFAULT_ELECTIONS",
    "Alias",
    "Analyst",
    "DemoServer",
    "Election",
    "demo_server",
    "find_binary",
    "hash_token",
    "repo_root",
]


@dataclass(frozen=True)
class Election:
    """One ``[[dataset.election]]``: id (the dimension is ``vote_<id>``), date, type."""

    id: str
    date: str
    type: str


#: ``rollcall synth --default-elections`` (``synth::default_elections()``): the
#: elections its history files hold, and so the ones the demo config configures.
DEFAULT_ELECTIONS = (
    Election("2016g", "2016-11-08", "general"),
    Election("2018g", "2018-11-06", "general"),
    Election("2020p", "2020-03-03", "primary"),
    Election("2020g", "2020-11-03", "general"),
    Election("2022p", "2022-05-17", "primary"),
    Election("2022g", "2022-11-08", "general"),
    Election("2024p", "2024-03-05", "primary"),
    Election("2024g", "2024-11-05", "general"),
)


@dataclass(frozen=True)
class Alias:
    """The demo dataset served under another name too (the same voters: one
    population), with its own caps."""

    name: str
    max_epsilon_per_query: float
    epsilon_total: float


@dataclass
class Analyst:
    """An analyst for the demo config: name, ε budget per dataset, and token."""

    name: str
    epsilon: dict[str, float]
    token: str = field(default_factory=lambda: "rc_" + secrets.token_urlsafe(24))


@dataclass
class DemoServer:
    """A running demo server."""

    url: str
    tokens: dict[str, str]
    workdir: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes]
    #: synth's ground truth of the dataset (``scripts/fixture``'s ``truth``).
    truth: Path | None = None
    #: The voting-history file ingested (``history=True``), else ``None``.
    history: Path | None = None

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def repo_root() -> Path:
    """The rollcall checkout this file lives in (``notebooks/harness.py``)."""
    return Path(__file__).resolve().parents[1]


def find_binary() -> Path:
    """The ``rollcall`` binary.

    ``$ROLLCALL_BIN``, else the release build, else the debug build, in
    cargo's target folder (wherever ``CARGO_TARGET_DIR`` puts it), else
    ``rollcall`` on the ``PATH``.
    """
    env = os.environ.get("ROLLCALL_BIN")
    if env:
        p = Path(env)
        if not p.is_file():
            raise FileNotFoundError(f"ROLLCALL_BIN={env} does not exist")
        return p
    target = fixture.target_dir()
    for sub in ("release", "debug"):
        p = target / sub / "rollcall"
        if p.is_file():
            return p
    found = shutil.which("rollcall")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "no rollcall binary: set ROLLCALL_BIN or run `cargo build --release -p rollcall`"
    )


def hash_token(token: str) -> str:
    """The hex SHA-256 of a bearer token, as the server's config wants it."""
    return hashlib.sha256(token.encode()).hexdigest()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path,
    *,
    listen: str,
    data_dir: Path,
    ledger: Path,
    analysts: Sequence[Analyst],
    dataset: str = "nc",
    layout: str = "nc",
    as_of: str = "2026-06-30",
    epsilon_total: float = 100.0,
    max_epsilon_per_query: float = 1.0,
    extra_server: str = "",
    elections: Sequence[Election] = (),
    aliases: Sequence[Alias] = (),
) -> None:
    """Write a server config in the shape of ``config/rollcall.toml``.

    With ``aliases``, ``dataset`` and every alias are one ``[[population]]``
    (``<dataset>-voters``, capped at the sum of their totals), each with its
    own ``epsilon_total``.
    """
    lines = [
        "[server]",
        f"listen = {_toml_str(listen)}",
        f"data_dir = {_toml_str(str(data_dir))}",
        f"ledger = {_toml_str(str(ledger))}",
    ]
    if extra_server:
        lines.append(extra_server.strip())
    population = f"{dataset}-voters" if aliases else None
    if population:
        total = float(epsilon_total) + sum(float(a.epsilon_total) for a in aliases)
        lines += ["", "[[population]]", f"name = {_toml_str(population)}",
                  f"epsilon_total = {total!r}"]
    entries = [(dataset, float(max_epsilon_per_query), float(epsilon_total))]
    entries += [(a.name, float(a.max_epsilon_per_query), float(a.epsilon_total)) for a in aliases]
    for name, max_eps, total in entries:
        lines += [
            "",
            "[[dataset]]",
            f"name = {_toml_str(name)}",
            f"layout = {_toml_str(layout)}",
            f"as_of = {_toml_str(as_of)}",
            "age_bands = [18, 25, 35, 45, 55, 65, 75]",
            f"epsilon_total = {total!r}",
            f"max_epsilon_per_query = {max_eps!r}",
        ]
        if population:
            lines.append(f"population = {_toml_str(population)}")
        for e in elections:
            lines += [
                "",
                "[[dataset.election]]",
                f"id = {_toml_str(e.id)}",
                f"date = {_toml_str(e.date)}",
                f"type = {_toml_str(e.type)}",
            ]
    for a in analysts:
        budgets = ", ".join(f"{k} = {float(v)!r}" for k, v in a.epsilon.items())
        lines += [
            "",
            "[[analyst]]",
            f"name = {_toml_str(a.name)}",
            f"token_sha256 = {_toml_str(hash_token(a.token))}",
            f"epsilon = {{ {budgets} }}",
        ]
    path.write_text("\n".join(lines) + "\n")


def prepare_data(
    binary: Path,
    workdir: Path,
    *,
    rows: int,
    seed: int,
    dataset: str = "nc",
    history: bool = False,
) -> dict[str, Path | None]:
    """An NC dataset of ``rows`` synthetic voters (``scripts/fixture``), with
    the voting history of :data:`DEFAULT_ELECTIONS` when ``history``.

    Returns ``scripts/fixture``'s paths: ``data_dir`` (holding
    ``workdir/data/<dataset>``), ``truth``, ``source`` and ``history``.
    With history the ingest runs with ``--config workdir/ingest.toml``: the
    dataset and its elections, nothing else (no tokens), so the same
    arguments find the ingest already made.
    """
    kw: dict[str, object] = {"seed": seed, "dataset": dataset}
    if history:
        ingest_config = workdir / "ingest.toml"
        write_config(
            ingest_config,
            listen="127.0.0.1:0",
            data_dir=workdir / "data",
            ledger=workdir / "ledger.sqlite",
            analysts=[],
            dataset=dataset,
            elections=DEFAULT_ELECTIONS,
        )
        kw.update(history=True, config=ingest_config)
    paths = fixture.run(binary, rows, workdir, **kw)
    return {k: (Path(v) if v else None) for k, v in paths.items()}


def add_aliases(data_dir: Path, dataset: str, aliases: Sequence[Alias]) -> None:
    """Serve ``data_dir/dataset`` under each alias's name too (a relative symlink)."""
    for a in aliases:
        link = data_dir / a.name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and os.readlink(link) == dataset:
                continue
            raise FileExistsError(f"{link} exists and is not a link to {dataset}")
        link.symlink_to(dataset, target_is_directory=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the server if the Python process that started it dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``GET /healthz`` until it answers 200; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"rollcall serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"rollcall serve not healthy after {timeout}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server, then SIGKILL if it has not exited after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def demo_server(
    *,
    analysts: Sequence[Analyst],
    rows: int = 50_000,
    seed: int = 7,
    workdir: Path | None = None,
    binary: Path | None = None,
    epsilon_total: float = 100.0,
    max_epsilon_per_query: float = 1.0,
    extra_server: str = "",
    startup_timeout: float = 60.0,
    history: bool = False,
    aliases: Sequence[Alias] = (),
) -> Iterator[DemoServer]:
    """Run a rollcall server on synthetic NC data for the duration of the block.

    ``history``: with voting history for :data:`DEFAULT_ELECTIONS` (the
    dataset's ``vote_<id>`` dimensions). ``aliases``: the same data under more
    dataset names (see :class:`Alias`).
    """
    binary = binary or find_binary()
    own_tmp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="rollcall-demo-")) if workdir is None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen[bytes] | None = None
    try:
        paths = prepare_data(binary, work, rows=rows, seed=seed, history=history)
        data = paths["data_dir"]
        assert data is not None
        add_aliases(data, "nc", aliases)
        config = work / "rollcall.toml"
        log = work / "server.log"
        port = free_port()
        write_config(
            config,
            listen=f"127.0.0.1:{port}",
            data_dir=data,
            ledger=work / "ledger.sqlite",
            analysts=analysts,
            epsilon_total=epsilon_total,
            max_epsilon_per_query=max_epsilon_per_query,
            extra_server=extra_server,
            elections=DEFAULT_ELECTIONS if history else (),
            aliases=aliases,
        )
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as logf:
            proc = subprocess.Popen(
                [str(binary), "serve", "--config", str(config)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=work,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        wait_healthy(url, proc, log, startup_timeout)
        yield DemoServer(
            url=url,
            tokens={a.name: a.token for a in analysts},
            workdir=work,
            config=config,
            log=log,
            process=proc,
            truth=paths["truth"],
            history=paths["history"],
        )
    finally:
        if proc is not None:
            stop(proc)
        if own_tmp and not os.environ.get("ROLLCALL_KEEP_WORKDIR"):
            shutil.rmtree(work, ignore_errors=True)
