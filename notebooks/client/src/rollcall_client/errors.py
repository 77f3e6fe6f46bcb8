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

    One of three caps is too small for the query's ε: the analyst's own
    budget on the dataset, the dataset's own cap shared by all analysts, or
    the cap of the dataset's population (every dataset holding the same
    voters). ``cap`` says which (``"analyst"``, ``"dataset"`` or
    ``"population"``) and ``cap_name`` whose; the message says what remains.
    A query identical to one already released is still answered (for free)
    from the stored release.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        cap: str | None = None,
        cap_name: str | None = None,
    ) -> None:
        super().__init__(code, message, status)
        self.cap = cap
        self.cap_name = cap_name


class InvalidQuery(RollcallError):
    """The query was rejected before anything was spent.

    Codes: ``unknown_dataset`` (404), ``unknown_dimension``, ``invalid_value``,
    ``duplicate_dimension``, ``empty_filter``, ``invalid_epsilon``,
    ``too_many_cells``, ``too_many_dimensions``, ``malformed_json`` (400),
    ``payload_too_large`` (413),
    and for requests to no route, ``not_found`` (404) and
    ``method_not_allowed`` (405). The message lists what is allowed where the
    server can say it.
    """


class TryAgain(RollcallError):
    """Nothing was spent, and the same query may succeed if sent again later.

    Codes: ``too_many_requests`` (429: this analyst already has the server's
    limit of queries in flight), ``request_timeout`` (408: the request did
    not arrive in time) and ``ledger_unavailable`` (503: the server's ledger
    database cannot be reached, e.g. while PostgreSQL restarts; another
    replica may answer). Wait, then repeat the query unchanged.
    """


class ServerError(RollcallError):
    """The server failed (5xx) or answered something the client cannot read."""


class ConnectionFailed(RollcallError):
    """No HTTP response: the server could not be reached or timed out."""


#: Every code the server can answer with (its OpenAPI schema lists them as
#: ``components.schemas.ErrorCode``; a test checks the two agree).
CODES: dict[str, type[RollcallError]] = {
    "unauthorized": Unauthorized,
    "forbidden_dataset": Forbidden,
    "unknown_dataset": InvalidQuery,
    "unknown_dimension": InvalidQuery,
    "invalid_value": InvalidQuery,
    "duplicate_dimension": InvalidQuery,
    "empty_filter": InvalidQuery,
    "invalid_epsilon": InvalidQuery,
    "budget_exhausted": BudgetExhausted,
    "too_many_cells": InvalidQuery,
    "too_many_dimensions": InvalidQuery,
    "malformed_json": InvalidQuery,
    "payload_too_large": InvalidQuery,
    "request_timeout": TryAgain,
    "too_many_requests": TryAgain,
    "not_found": InvalidQuery,
    "method_not_allowed": InvalidQuery,
    "internal": ServerError,
    "ledger_unavailable": TryAgain,
}


def _class_for(code: str, status: int) -> type[RollcallError]:
    known = CODES.get(code)
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
    cls = _class_for(code, status)
    if cls is BudgetExhausted and isinstance(error, dict):
        return BudgetExhausted(code, message, status, error.get("cap"), error.get("cap_name"))
    return cls(code, message, status)
