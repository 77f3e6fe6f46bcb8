"""The rollcall HTTP client: differentially private counts as pandas DataFrames."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from .errors import ConnectionFailed, InvalidQuery, ServerError, error_from_response

__all__ = ["Client", "Cost", "Dataset", "Dimension", "Where"]

#: A filter: dimension name → the public values to keep (OR within a
#: dimension, AND across dimensions). A single value may be given bare.
Where = Mapping[str, "str | int | Iterable[str | int]"]

_COUNT_COLUMNS = ("count", "ci_low", "ci_high")


@dataclass(frozen=True)
class Dimension:
    """One dimension of a dataset and its public values, in public order.

    The values are what queries and answers use (``"A"``, ``"DEM"``,
    ``"18-24"``, ``"WAKE"``); the labels are for people (``"Active"``,
    ``"Democratic"``). Both come from the layout and the server's config,
    never from the data.
    """

    name: str
    values: tuple[str, ...]
    labels: tuple[str, ...]

    def label(self, value: str) -> str:
        """The label of one public value (the value itself if it has none)."""
        try:
            return self.labels[self.values.index(str(value))]
        except ValueError:
            return str(value)

    def frame(self) -> pd.DataFrame:
        """The values and labels as a DataFrame with columns ``value``, ``label``."""
        return pd.DataFrame({"value": list(self.values), "label": list(self.labels)})

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Dataset:
    """A dataset the analyst may query: its dimensions and per-query ε cap."""

    name: str
    dimensions: dict[str, Dimension]
    max_epsilon_per_query: float | None = None
    #: Every other field the server sent for this dataset, unchanged.
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, dimension: str) -> Dimension:
        return self.dimensions[dimension]


@dataclass(frozen=True)
class Cost:
    """What a query would cost, from a dry run (nothing is spent).

    Attributes:
        epsilon: the ε the query would be charged (0 if an identical query was
            already released: it would be answered from the stored release).
        noise_scale: scale of the discrete Laplace noise added to every cell.
        ci95: half-width of the 95% interval of every cell's count.
        cells: number of cells (rows) the answer would have.
        mechanism: the noise mechanism, e.g. ``"discrete_laplace"``.
        epsilon_remaining: the analyst's remaining ε on the dataset now.
        cached: whether an identical query was already released to you (to
            anyone, when the dataset shares its releases).
        affordable: whether every cap would allow the query now.
        dataset_epsilon_remaining: what all analysts together may still spend
            on the dataset (the smaller of its own cap's and its population's).
        population: the dataset's population: every dataset holding the same
            voters, whose cap bounds each voter's privacy loss.
        population_epsilon_remaining: what remains of the population's cap.
    """

    epsilon: float
    noise_scale: float
    ci95: float
    cells: int
    mechanism: str | None = None
    epsilon_remaining: float | None = None
    cached: bool | None = None
    affordable: bool | None = None
    dataset_epsilon_remaining: float | None = None
    population: str | None = None
    population_epsilon_remaining: float | None = None


def _as_float(x: Any) -> float | None:
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _unexpected(what: str, raw: Any) -> ServerError:
    return ServerError("unexpected_response", f"cannot read {what}: {raw!r}")


def _parse_dimension(raw: Any) -> Dimension:
    """One entry of a dataset's ``dimensions``: ``{"name", "values", "labels"}``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _unexpected("a dimension", raw)
    values = [str(v) for v in raw.get("values", [])]
    labels = [str(v) for v in raw.get("labels", values)]
    if len(labels) != len(values):
        raise _unexpected(f"dimension {raw['name']!r} (values and labels differ in length)", raw)
    return Dimension(name=raw["name"], values=tuple(values), labels=tuple(labels))


def _parse_dataset(raw: Any) -> Dataset:
    """One entry of ``GET /v1/datasets``: its name, dimensions and settings."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _unexpected("a dataset", raw)
    dims = [_parse_dimension(d) for d in raw.get("dimensions", [])]
    extra = {k: v for k, v in raw.items() if k not in ("name", "dimensions")}
    return Dataset(
        name=raw["name"],
        dimensions={d.name: d for d in dims},
        max_epsilon_per_query=_as_float(raw.get("max_epsilon_per_query")),
        extra=extra,
    )


def _parse_datasets(body: Any) -> dict[str, Dataset]:
    """``GET /v1/datasets``: ``{"datasets": [...]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("datasets"), list):
        raise _unexpected("datasets", body)
    out: dict[str, Dataset] = {}
    for raw in body["datasets"]:
        ds = _parse_dataset(raw)
        out[ds.name] = ds
    return out


def _normalise_where(where: Where | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for dim, vals in (where or {}).items():
        if isinstance(vals, (str, int)):
            items: list[str] = [str(vals)]
        else:
            items = []
            for v in vals:
                s = str(v)
                if s not in items:
                    items.append(s)
        out[str(dim)] = items
    return out


def _normalise_by(by: Sequence[str] | str | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return [str(b) for b in by]


class Client:
    """A connection to a rollcall server for one analyst.

    Every count the server returns is differentially private: noise is added
    to every cell and each new query spends part of the analyst's privacy
    budget (ε). The client never sees exact counts; it turns the server's
    answers into DataFrames that carry their uncertainty (``ci_low``,
    ``ci_high``) so that plots can show it.

    Args:
        url: base URL of the server, e.g. ``"http://127.0.0.1:8080"``. If
            ``None``, the environment variable ``ROLLCALL_URL`` is used.
        token: the analyst's bearer token. If ``None``, the environment
            variable ``ROLLCALL_TOKEN`` is used.
        timeout: seconds to wait for each HTTP request.
        transport: an optional ``httpx`` transport (for tests).

    Raises:
        ValueError: if neither ``url``/``ROLLCALL_URL`` nor
            ``token``/``ROLLCALL_TOKEN`` is available.

    Example::

        from rollcall_client import Client
        rc = Client("http://127.0.0.1:8080")          # token from ROLLCALL_TOKEN
        df = rc.count("nc", by=["county"], where={"status": ["A"]}, epsilon=0.5)
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = url or os.environ.get("ROLLCALL_URL")
        if not url:
            raise ValueError(
                "no server URL: pass Client(url=...) or set ROLLCALL_URL "
                "(e.g. http://127.0.0.1:8080)"
            )
        token = token if token is not None else os.environ.get("ROLLCALL_TOKEN")
        if not token:
            raise ValueError(
                "no bearer token: pass Client(url, token=...) or set ROLLCALL_TOKEN "
                "(your rollcall operator gives you a token; `rollcall token` makes one)"
            )
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._datasets: dict[str, Dataset] | None = None

    # -- plumbing ---------------------------------------------------------

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _request(self, method: str, path: str, json: Any = None) -> Any:
        try:
            resp = self._http.request(method, path, json=json)
        except httpx.TransportError as e:
            raise ConnectionFailed(
                "connection_failed", f"could not reach rollcall at {self.url}: {e}", None
            ) from e
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            raise error_from_response(resp.status_code, body, resp.text)
        if body is None:
            raise ServerError(
                "unexpected_response",
                f"{method} {path} answered HTTP {resp.status_code} without JSON",
                resp.status_code,
            )
        return body

    def health(self) -> bool:
        """``True`` if the server answers ``GET /healthz`` with 200 (no token needed)."""
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    # -- public metadata --------------------------------------------------

    def dataset_info(self, refresh: bool = False) -> dict[str, Dataset]:
        """The datasets this analyst may query, by name (cached after the first call).

        Args:
            refresh: fetch ``/v1/datasets`` again instead of using the cache.
        """
        if self._datasets is None or refresh:
            self._datasets = _parse_datasets(self._request("GET", "/v1/datasets"))
        return self._datasets

    def dataset(self, name: str) -> Dataset:
        """One dataset's public dimensions and values.

        Raises:
            InvalidQuery: (``unknown_dataset``) if the analyst has no such dataset.
        """
        info = self.dataset_info()
        if name not in info:
            info = self.dataset_info(refresh=True)
        if name not in info:
            raise InvalidQuery(
                "unknown_dataset",
                f"no dataset {name!r} for this analyst; available: {sorted(info)}",
                None,
            )
        return info[name]

    def datasets(self, refresh: bool = False) -> pd.DataFrame:
        """The public dimensions of every dataset this analyst may query.

        Returns:
            One row per (dataset, dimension) with columns ``dataset``,
            ``dimension``, ``n_values``, ``values`` (a list, in public order),
            ``labels`` and ``max_epsilon_per_query``. Nothing here comes from
            the data: values are the public domains.
        """
        rows = []
        for ds in self.dataset_info(refresh=refresh).values():
            for dim in ds.dimensions.values():
                rows.append(
                    {
                        "dataset": ds.name,
                        "dimension": dim.name,
                        "n_values": len(dim.values),
                        "values": list(dim.values),
                        "labels": list(dim.labels),
                        "max_epsilon_per_query": ds.max_epsilon_per_query,
                    }
                )
        cols = ["dataset", "dimension", "n_values", "values", "labels", "max_epsilon_per_query"]
        return pd.DataFrame(rows, columns=cols)

    def values(self, dataset: str, dimension: str) -> pd.DataFrame:
        """The public values and labels of one dimension (columns ``value``, ``label``)."""
        ds = self.dataset(dataset)
        if dimension not in ds.dimensions:
            raise InvalidQuery(
                "unknown_dimension",
                f"dataset {dataset!r} has no dimension {dimension!r}; "
                f"available: {list(ds.dimensions)}",
                None,
            )
        return ds.dimensions[dimension].frame()

    def budget(self) -> pd.DataFrame:
        """The analyst's privacy budget on every dataset.

        Returns:
            One row per dataset with at least ``dataset``, ``budget``,
            ``spent``, ``remaining`` (the analyst's own ε) and
            ``dataset_remaining`` (what all analysts together may still spend
            on the dataset), plus the caps above it that the server reports:
            ``dataset_total`` (the dataset's own cap, if any) and
            ``population``, ``population_total``, ``population_remaining``
            (the cap of every dataset holding the same voters, which bounds
            each voter's privacy loss).
        """
        body = self._request("GET", "/v1/budget")
        if not isinstance(body, dict) or not isinstance(body.get("datasets"), list):
            raise _unexpected("the budget", body)
        attrs = {k: v for k, v in body.items() if not isinstance(v, (list, dict))}
        df = pd.DataFrame([dict(raw) for raw in body["datasets"]])
        front = [c for c in ("dataset", "budget", "spent", "remaining") if c in df.columns]
        df = df[front + [c for c in df.columns if c not in front]]
        df.attrs.update(attrs)
        return df

    def releases(self) -> pd.DataFrame:
        """The analyst's past releases (query, ε, time, release id), one row each."""
        body = self._request("GET", "/v1/releases")
        if not isinstance(body, dict) or not isinstance(body.get("releases"), list):
            raise _unexpected("the releases", body)
        return pd.DataFrame(body["releases"])

    # -- queries ------------------------------------------------------------

    def _categories(self, ds: Dataset, dim: str, kept: list[str] | None) -> list[str] | None:
        d = ds.dimensions.get(dim)
        if d is None:
            return None
        if kept is None:
            return list(d.values)
        keep = set(kept)
        return [v for v in d.values if v in keep]

    def _cells(self, ds: Dataset, by: list[str], where: dict[str, list[str]]) -> int | None:
        n = 1
        for dim in by:
            cats = self._categories(ds, dim, where.get(dim))
            if cats is None:
                return None
            n *= len(cats)
        return n

    def _query(
        self,
        dataset: str,
        by: Sequence[str] | str | None,
        where: Where | None,
        epsilon: float,
        dry_run: bool,
    ) -> tuple[dict[str, Any], list[str], dict[str, list[str]]]:
        by_l = _normalise_by(by)
        where_d = _normalise_where(where)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
            raise TypeError(f"epsilon must be a number, not {type(epsilon).__name__}")
        if not math.isfinite(epsilon):
            # JSON has no infinity or NaN: refuse here, as the server would.
            raise InvalidQuery("invalid_epsilon", f"epsilon must be finite, not {epsilon}", None)
        payload: dict[str, Any] = {
            "dataset": dataset,
            "group_by": by_l,
            "filter": where_d,
            "epsilon": float(epsilon),
        }
        if dry_run:
            payload["dry_run"] = True
        body = self._request("POST", "/v1/query", json=payload)
        if not isinstance(body, dict):
            raise ServerError("unexpected_response", f"query answered {body!r}", None)
        return body, by_l, where_d

    def count(
        self,
        dataset: str,
        by: Sequence[str] | str | None = (),
        where: Where | None = None,
        *,
        epsilon: float,
        dry_run: bool = False,
        labels: bool = False,
    ) -> pd.DataFrame:
        """Noisy counts of voters by groups, with 95% intervals.

        Args:
            dataset: dataset name, e.g. ``"nc"``.
            by: dimensions to group by (``[]`` gives one total row).
            where: filter, ``{dimension: [values]}``; a value may be given bare.
                Values are public values as listed by :meth:`datasets`.
            epsilon: the privacy cost to spend (unless an identical query was
                already released: then the stored release is returned for free).
            dry_run: only ask what the query would cost; nothing is spent and
                the frame has no rows (see :meth:`cost`).
            labels: also add a ``<dimension>_label`` column per dimension.

        Returns:
            A DataFrame with one row per public cell, in public order: one
            ordered categorical column per dimension in ``by`` (categories are
            the dimension's public values, narrowed by ``where``), then
            ``count`` (noisy, may be negative), ``ci_low`` and ``ci_high``
            (``count ∓ ci95``). ``df.attrs`` holds the release's metadata:
            ``epsilon_spent``, ``epsilon_remaining``, ``cached``,
            ``release_id``, ``mechanism``, ``noise_scale``, ``ci95``, and the
            query itself (``dataset``, ``by``, ``where``, ``epsilon``).

        Raises:
            BudgetExhausted: the analyst's or the dataset's budget is too small.
            InvalidQuery: unknown dataset, dimension or value, bad ε, too many cells.
            Unauthorized, Forbidden: token or dataset access problems.
        """
        body, by_l, where_d = self._query(dataset, by, where, epsilon, dry_run)
        try:
            ds: Dataset | None = self.dataset(dataset)
        except InvalidQuery:
            ds = None

        rows = body.get("rows") or []
        data: dict[str, Any] = {}
        for dim in by_l:
            raw = [r.get(dim) for r in rows]
            col = [None if v is None else str(v) for v in raw]
            cats = self._categories(ds, dim, where_d.get(dim)) if ds is not None else None
            if cats is not None:
                extra = [v for v in dict.fromkeys(col) if v is not None and v not in cats]
                data[dim] = pd.Categorical(col, categories=cats + extra, ordered=True)
            else:
                data[dim] = pd.Series(col, dtype="object")
        ci95 = _as_float(body.get("ci95"))
        counts = pd.Series([int(r["count"]) for r in rows], dtype="int64")
        data["count"] = counts
        half = ci95 if ci95 is not None else float("nan")
        data["ci_low"] = counts.astype("float64") - half
        data["ci_high"] = counts.astype("float64") + half
        df = pd.DataFrame(data, columns=[*by_l, *_COUNT_COLUMNS])
        if by_l and len(df):
            df = df.sort_values(by_l, kind="stable").reset_index(drop=True)
        if labels and ds is not None:
            for pos, dim in enumerate(by_l):
                d = ds.dimensions.get(dim)
                if d is None:
                    continue
                mapping = dict(zip(d.values, d.labels, strict=True))
                lab_cats = list(dict.fromkeys(mapping.get(v, v) for v in df[dim].cat.categories))
                lab = pd.Categorical(
                    [mapping.get(v, v) for v in df[dim].astype("object")],
                    categories=lab_cats,
                    ordered=True,
                )
                df.insert(2 * pos + 1, f"{dim}_label", pd.Series(lab, index=df.index))
        df.attrs.update(
            {
                "dataset": dataset,
                "by": by_l,
                "where": where_d,
                "epsilon": float(epsilon),
                "dry_run": dry_run,
                "epsilon_spent": _as_float(body.get("epsilon_spent")),
                "epsilon_remaining": _as_float(body.get("epsilon_remaining")),
                "cached": body.get("cached"),
                "release_id": body.get("release_id"),
                "mechanism": body.get("mechanism"),
                "noise_scale": _as_float(body.get("noise_scale")),
                "ci95": ci95,
                "cells": len(df) if not dry_run else self._cells_from(body, ds, by_l, where_d),
            }
        )
        for k, v in body.items():
            if k != "rows" and k not in df.attrs:
                df.attrs[k] = v
        return df

    def _cells_from(
        self,
        body: Mapping[str, Any],
        ds: Dataset | None,
        by: list[str],
        where: dict[str, list[str]],
    ) -> int | None:
        cells = body.get("cells")
        if isinstance(cells, int):
            return cells
        return self._cells(ds, by, where) if ds is not None else None

    def cost(
        self,
        dataset: str,
        by: Sequence[str] | str | None = (),
        where: Where | None = None,
        *,
        epsilon: float,
    ) -> Cost:
        """What a query would cost and how wide its intervals would be; spends nothing.

        Takes the same arguments as :meth:`count` and sends the query as a dry
        run: the server validates it exactly as a real query (so a bad
        dimension, value or ε raises :class:`InvalidQuery` here too) and
        reports ε, noise scale and the 95% half-width of every cell.
        """
        body, by_l, where_d = self._query(dataset, by, where, epsilon, True)
        try:
            ds: Dataset | None = self.dataset(dataset)
        except InvalidQuery:
            ds = None
        cells = self._cells_from(body, ds, by_l, where_d)
        eps = _as_float(body.get("epsilon"))
        return Cost(
            epsilon=eps if eps is not None else float(epsilon),
            noise_scale=_as_float(body.get("noise_scale")) or float("nan"),
            ci95=_as_float(body.get("ci95")) or float("nan"),
            cells=cells if cells is not None else -1,
            mechanism=body.get("mechanism"),
            epsilon_remaining=_as_float(body.get("epsilon_remaining")),
            cached=body.get("cached"),
            affordable=body.get("affordable"),
            dataset_epsilon_remaining=_as_float(body.get("dataset_epsilon_remaining")),
            population=body.get("population"),
            population_epsilon_remaining=_as_float(body.get("population_epsilon_remaining")),
        )
