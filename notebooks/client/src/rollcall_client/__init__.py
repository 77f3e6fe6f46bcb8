"""Python client for rollcall: differentially private voter counts as pandas DataFrames.

    >>> from rollcall_client import Client
    >>> rc = Client("http://127.0.0.1:8080", token="...")   # or ROLLCALL_URL / ROLLCALL_TOKEN
    >>> rc.datasets()                                        # public dimensions and values
    >>> df = rc.count("nc", by=["county"], where={"status": ["A"]}, epsilon=0.5)
    >>> df.attrs["epsilon_spent"], df.attrs["ci95"]
    >>> rc.cost("nc", by=["county", "age_band"], epsilon=0.1)   # dry run, free
    >>> rc.budget()
    >>> rc.elections("nc")                                   # ids of the vote_<id> dimensions
    >>> t = rc.turnout("nc", "2024g", by=["age_band"], epsilon=0.5, methods=True)
    >>> t[["age_band", "registered", "voted", "rate", "rate_low", "rate_high"]]

``rollcall_client.intervals`` holds the turnout intervals as pure functions
(``turnout_table`` on a release's noisy cells).
"""

from . import intervals
from .client import Client, Cost, Dataset, Dimension, Where
from .errors import (
    BudgetExhausted,
    ConnectionFailed,
    Forbidden,
    InvalidQuery,
    RollcallError,
    ServerError,
    TryAgain,
    Unauthorized,
)

from importlib.metadata import PackageNotFoundError, version

try:
    # One place for the version: pyproject.toml.
    __version__ = version("rollcall-client")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Client",
    "Cost",
    "Dataset",
    "Dimension",
    "Where",
    "intervals",
    "RollcallError",
    "Unauthorized",
    "Forbidden",
    "BudgetExhausted",
    "InvalidQuery",
    "ServerError",
    "TryAgain",
    "ConnectionFailed",
]
