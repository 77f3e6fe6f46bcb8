"""Typed exceptions for the errors a rollcall server returns.

Every error response of the server has the body
``{"error": {"code": "...", "message": "..."}}``. The client turns it into one
of the exceptions below, chosen by ``code`` (and, for a code this client does
not know yet, by the HTTP status), and keeps the server's code, message and
status on the exception.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RollcallError",
    "Unauthorized",
    "Forbidden",
    "BudgetExhausted",
    "InvalidQuery",
    "TryAgain",
    "ServerError",
    "ConnectionFailed",
    "error_from_response",
]


class RollcallError(Exception):
    """Base class of every error the client raises for the server.

    Attributes:
        code: the server's machine-readable error code, e.g. ``"invalid_value"``.
        message: the server's human-readable message.
        status: the HTTP status of the response (``None`` when no response was
            received at all, see :class:`ConnectionFailed`).
    """

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status is not None else ""
        return f"{self.message} ({where}{self.code})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"status={self.status!r})"
        )


class Unauthorized(RollcallError):
    """The bearer token is missing or not known to the server (``unauthorized``, 401)."""


class Forbidden(RollcallError):
    """The analyst may not query this dataset (``forbidden_dataset``, 403)."""


class BudgetExhausted(RollcallError):
    """The query would spend more ε than remains (``budget_exhausted``, 403).

    Either the analyst's own budget on the dataset or the dataset's total
    budget shared by all analysts is too small for the query's ε. The message
    says what remains. A query identical to one already released is still
    answered (for free) from the stored release.
    """


class InvalidQuery(RollcallError):
    """The query was rejected before anything was spent.

    Codes: ``unknown_dataset`` (404), ``unknown_dimension``, ``invalid_value``,
    ``invalid_epsilon``, ``too_many_cells``, ``malformed_json`` (400),
    ``payload_too_large`` (413). The message lists what is allowed where the
    server can say it.
    """


class TryAgain(RollcallError):
    """Nothing was spent, and the same query may succeed if sent again later.

    Codes: ``too_many_requests`` (429: this analyst already has the server's
    limit of queries in flight) and ``request_timeout`` (408: the request did
    not arrive in time). Wait, then repeat the query unchanged.
    """


class ServerError(RollcallError):
    """The server failed (5xx) or answered something the client cannot read."""


class ConnectionFailed(RollcallError):
    """No HTTP response: the server could not be reached or timed out."""


_BY_CODE: dict[str, type[RollcallError]] = {
    "unauthorized": Unauthorized,
    "forbidden_dataset": Forbidden,
    "forbidden": Forbidden,
    "budget_exhausted": BudgetExhausted,
    "unknown_dataset": InvalidQuery,
    "unknown_dimension": InvalidQuery,
    "invalid_value": InvalidQuery,
    "invalid_epsilon": InvalidQuery,
    "too_many_cells": InvalidQuery,
    "malformed_json": InvalidQuery,
    "payload_too_large": InvalidQuery,
    "invalid_query": InvalidQuery,
    "too_many_requests": TryAgain,
    "request_timeout": TryAgain,
}


def _class_for(code: str, status: int) -> type[RollcallError]:
    known = _BY_CODE.get(code)
    if known is not None:
        return known
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status in (408, 429):
        return TryAgain
    if 400 <= status < 500:
        return InvalidQuery
    return ServerError


def error_from_response(status: int, body: Any, text: str = "") -> RollcallError:
    """Build the exception for an error response.

    Args:
        status: HTTP status code.
        body: the decoded JSON body, or ``None`` if it was not JSON.
        text: the raw body, used when it is not the server's error shape.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        message = str(error.get("message", code))
    else:
        code = f"http_{status}"
        message = text.strip()[:500] or f"HTTP {status} with no error body"
    return _class_for(code, status)(code, message, status)
