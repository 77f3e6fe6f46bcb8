"""A real rollcall server on 50,000 synthetic NC voters, shared by the session.

The binary is ``$ROLLCALL_BIN``, else the release, else the debug build in
cargo's target folder (``notebooks/harness.py``). Analysts:

- ``alice``: ε 5.0 on ``nc`` (most tests);
- ``bob``: ε 0.3 on ``nc`` (budget exhaustion);
- ``carol``: no dataset at all (forbidden_dataset).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rollcall_client import Client
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # notebooks/harness.py
from harness import Analyst, DemoServer, demo_server, find_binary  # noqa: E402


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
    ]
    with demo_server(analysts=analysts, rows=50_000, seed=7, binary=binary) as srv:
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
def carol(server: DemoServer) -> Iterator[Client]:
    with Client(server.url, server.tokens["carol"]) as c:
        yield c
