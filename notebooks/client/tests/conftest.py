"""A real rollcall server on 50,000 synthetic NC voters, shared by the session.

The binary is ``$ROLLCALL_BIN``, else the release, else the debug build in
cargo's target folder (``notebooks/harness.py``). The voters come with synth's
voting history for its default elections (2016-2024), so ``nc`` has the
dimensions ``vote_2016g`` … ``vote_2024g``; the same data is also served as
``nc_exact`` (one population), whose per-query cap is 50 so that answers at a
huge ε can be compared with synth's truth (``server.truth``). Analysts:

- ``alice``: ε 5.0 on ``nc`` (most tests);
- ``bob``: ε 0.3 on ``nc`` (budget exhaustion);
- ``carol``: no dataset at all (forbidden_dataset);
- ``dora``: ε 200 on ``nc_exact`` only (answers against the truth).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rollcall_client import Client
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # notebooks/harness.py
from harness import Alias, Analyst, DemoServer, demo_server, find_binary  # noqa: E402


@pytest.fixture(scope="session")
def server() -> Iterator[DemoServer]:
    try:
        binary = find_binary()
    except FileNotFoundError as e:  # a clear failure, not a skip: CI must not pass silently
        pytest.fail(str(e))
    analysts = [
        Analyst("alice", {"nc": 5.0}),
        Analyst("bob", {"nc": 0.3}),
        Analyst("carol", {}),
        Analyst("dora", {"nc_exact": 200.0}),
    ]
    with demo_server(
        analysts=analysts,
        rows=50_000,
        seed=7,
        binary=binary,
        history=True,
        aliases=[Alias("nc_exact", max_epsilon_per_query=50.0, epsilon_total=400.0)],
    ) as srv:
        yield srv


@pytest.fixture(scope="session")
def alice(server: DemoServer) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as c:
        yield c


@pytest.fixture(scope="session")
def bob(server: DemoServer) -> Iterator[Client]:
    with Client(server.url, server.tokens["bob"]) as c:
        yield c


@pytest.fixture(scope="session")
def dora(server: DemoServer) -> Iterator[Client]:
    with Client(server.url, server.tokens["dora"]) as c:
        yield c


@pytest.fixture(scope="session")
def carol(server: DemoServer) -> Iterator[Client]:
    with Client(server.url, server.tokens["carol"]) as c:
        yield c
