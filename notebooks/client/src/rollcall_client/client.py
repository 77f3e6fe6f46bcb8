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
from .intervals import DID_NOT_VOTE, NOT_REGISTERED, seed_for, turnout_table

__all__ = ["Client", "Cost", "Dataset", "Dimension", "Where"]

#: A filter: dimension name → the public values to keep (OR within a
#: dimension, AND across dimensions). A single value may be given bare.
Where = Mapping[str, "str | int | Iterable[str | int]"]

_COUNT_COLUMNS = ("count", "ci_low", "ci_high")

#: An election's dimension is ``vote_<id>``; besides its methods it has the
#: values ``did_not_vote`` and ``not_registered`` (see intervals.py).
_VOTE_PREFIX = "vote_"


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


def _insert_labels(df: pd.DataFrame, ds: Dataset, by: list[str]) -> None:
    """Insert a ``<dimension>_label`` column after each dimension column of ``by``."""
    pos = 0
    for dim in by:
        d = ds.dimensions.get(dim)
        if d is None or not isinstance(df[dim].dtype, pd.CategoricalDtype):
            pos += 1
            continue
        mapping = dict(zip(d.values, d.labels, strict=True))
        lab_cats = list(dict.fromkeys(mapping.get(v, v) for v in df[dim].cat.categories))
        lab = pd.Categorical(
            [mapping.get(v, v) for v in df[dim].astype("object")],
            categories=lab_cats,
            ordered=True,
        )
        df.insert(pos + 1, f"{dim}_label", pd.Series(lab, index=df.index))
        pos += 2


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
            _insert_labels(df, ds, by_l)
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

    # -- voting history -------------------------------------------------------

    def elections(self, dataset: str) -> list[str]:
        """The ids of the elections whose turnout ``dataset`` answers (its
        ``vote_<id>`` dimensions, in the server's order); free, like
        :meth:`datasets`."""
        ds = self.dataset(dataset)
        return [d[len(_VOTE_PREFIX):] for d in ds.dimensions if d.startswith(_VOTE_PREFIX)]

    def turnout(
        self,
        dataset: str,
        election: str,
        by: Sequence[str] | str | None = (),
        where: Where | None = None,
        *,
        epsilon: float,
        methods: bool = False,
        labels: bool = False,
        level: float = 0.95,
        draws: int = 4000,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Turnout of one election by groups, with intervals, from one release.

        Sends one query, :meth:`count` grouped by ``by + ["vote_<election>"]``,
        and adds its cells up per group of ``by``. Every voter is in exactly
        one cell (storage is one row per voter, one category per election),
        so it costs ``epsilon`` like any other query, and repeating it is free
        (the stored release, with the same intervals). What it would cost, for
        free: ``cost(dataset, by=[*by, "vote_<election>"], where=..., epsilon=...)``.

        Args:
            dataset: dataset name, e.g. ``"nc"``.
            election: the election's id as configured (``"2024g"``), or its
                dimension (``"vote_2024g"``); :meth:`elections` lists them.
            by: dimensions to group by (``[]`` gives one row for everyone);
                may include *other* elections (turnout in 2024 by ``vote_2020g``).
            where: filter on dimensions other than this election, as in
                :meth:`count`.
            epsilon: the privacy cost of the one release.
            methods: also the share of each voting method among voters.
            labels: also add a ``<dimension>_label`` column per dimension of ``by``.
            level: coverage of the intervals (default 95%).
            draws: Monte Carlo draws of the noise per group (see below).
            seed: seed of those draws; by default one derived from the
                release id, so the same release always gets the same intervals.

        Returns:
            One row per group of ``by`` (every public combination, in public
            order), with the ``by`` columns as in :meth:`count`, then:

            - ``registered``: voters registered on election day, i.e. the sum
              of every category's noisy cell but ``not_registered``
              (registered after the election);
            - ``voted``: the sum of the method cells (every category but
              ``did_not_vote`` and ``not_registered``);
            - ``rate``: ``voted / registered`` clamped to ``[0, 1]``, ``NaN``
              when ``registered ≤ 0``;
            - ``rate_low``, ``rate_high``: the interval of the rate;
            - with ``methods=True``, for each voting method ``m`` the
              election's dimension has (of ``election_day``, ``early``,
              ``mail``, ``provisional``, ``other``, ``voted_method_unknown``:
              those the state's layout can tell apart): ``share_<m>`` (share
              of ``m`` among ``voted``, ``NaN`` when ``voted ≤ 0``),
              ``share_<m>_low``, ``share_<m>_high``.

            ``df.attrs`` holds the release's metadata as :meth:`count` gives
            it (``epsilon_spent``, ``epsilon_remaining``, ``cached``,
            ``release_id``, ``noise_scale``, ``ci95`` of one *cell*, ...),
            with ``by`` the groups asked for, ``query_by`` the query's
            group-by, ``election``, ``dimension``, ``methods`` (the method
            categories, in order), ``level``, ``draws``, ``seed`` (the one
            used) and ``interval``.

        The interval:
            The server adds independent discrete Laplace noise to every cell
            of a release (opendp's ``make_laplace`` on integer counts:
            ``P(k) ∝ exp(-|k| / b)`` with ``b`` the release's
            ``noise_scale``), and the noise scale is public. A rate is a ratio
            of sums of cells of that one release, and its interval is
            computed from that known noise distribution alone, by inverting a
            test: a rate ``r`` is kept if ``voted - r·registered`` lies in the
            central ``level`` part of the distribution of its noise,
            ``N_voted - r·N_registered``; the interval is the range of kept
            rates in ``[0, 1]``. That distribution has no closed form, so it
            is simulated by Monte Carlo (``draws`` redraws of every cell's
            noise; a sum of cells' noise is drawn exactly, as a difference of
            two negative binomials). At the true rate the statistic *is* that
            noise, so the true rate of the file is inside with probability at
            least ``level`` (± about half a point of Monte Carlo error at
            4000 draws) in each group, whatever its size. When the redrawn
            ``registered`` stays positive (groups much larger than the noise
            scale) this is the same as the percentile interval of the rate
            recomputed with the noise redrawn around the noisy counts; in tiny
            groups, where noise can make ``registered`` zero or negative,
            that percentile interval has no guarantee and the test keeps it.
            Rows with ``registered ≤ 0`` (no information) get ``[0, 1]``; a
            row whose counts fit no rate in ``[0, 1]`` (rare: e.g. a very
            negative noisy ``did_not_vote``) gets the clamped rate as its
            interval. Shares get theirs the same way, among ``voted``. The
            intervals hold for each group separately, not simultaneously: of
            many groups, about ``1 - level`` of them miss.
            :func:`rollcall_client.intervals.turnout_table` is this step on
            its own.

            What it does not cover: only the privacy noise of this release
            is accounted for. It says nothing about errors in the file itself
            or its ingest (voters purged since the election are not in the
            file at all, so the rate is that of today's registrants on the
            election day; their county, party and age are those of today's
            file, not of election day; history lines that matched no voter;
            methods recorded wrongly), and nothing about sampling: the file is
            a census of itself, not a sample of a population.

        Raises:
            InvalidQuery: unknown dataset or election (``unknown_dimension``;
                the message lists the dataset's elections), and everything
                :meth:`count` raises.
            ValueError: the election's own dimension in ``by`` or ``where``;
                ``level`` outside ``(0, 1)``; ``draws`` below 100.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, not {level}")
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
            raise ValueError(f"draws must be an integer ≥ 100, not {draws!r}")
        election = str(election)
        dim = election if election.startswith(_VOTE_PREFIX) else _VOTE_PREFIX + election
        ds = self.dataset(dataset)
        if dim not in ds.dimensions:
            known = self.elections(dataset)
            raise InvalidQuery(
                "unknown_dimension",
                f"dataset {dataset!r} has no election {election!r} (no dimension {dim!r}); "
                f"its elections: {known or 'none (no voting history ingested)'}",
                None,
            )
        by_l = _normalise_by(by)
        where_d = _normalise_where(where)
        if dim in by_l:
            raise ValueError(f"{dim!r} is the election itself: leave it out of `by`")
        if dim in where_d:
            raise ValueError(
                f"{dim!r} is the election itself: a filter on it would make the rate "
                "meaningless; leave it out of `where`"
            )
        cats = list(ds.dimensions[dim].values)
        for need in (DID_NOT_VOTE, NOT_REGISTERED):
            if need not in cats:
                raise ServerError(
                    "unexpected_response", f"{dim!r} has no {need!r} value: {cats}", None
                )

        cells = self.count(dataset, by=[*by_l, dim], where=where_d, epsilon=epsilon)
        attrs = dict(cells.attrs)
        scale = attrs.get("noise_scale")
        if scale is None or not math.isfinite(scale) or scale < 0:
            raise ServerError("unexpected_response", f"no usable noise_scale: {scale!r}", None)

        # One row per group (public order), one column per category of the election.
        if by_l:
            wide = cells.pivot(index=by_l, columns=dim, values="count")
        else:
            wide = cells.set_index(dim)["count"].to_frame().T.reset_index(drop=True)
        missing = [c for c in cats if c not in wide.columns]
        if missing or wide.isna().any().any():
            raise ServerError(
                "unexpected_response",
                f"the answer lacks cells of {dim!r} (categories {missing or 'partly'})",
                None,
            )
        extra = [str(c) for c in wide.columns if c not in cats]
        if extra:
            # a category the dataset's public values do not list: its voters
            # would silently fall out of `registered`
            raise ServerError(
                "unexpected_response", f"the answer has unknown values of {dim!r}: {extra}", None
            )
        wide = wide.reindex(columns=cats)
        wide.columns = pd.Index([str(c) for c in wide.columns])
        used_seed = seed if seed is not None else seed_for(attrs.get("release_id"))
        table = turnout_table(
            wide.astype("int64"),
            float(scale),
            methods=methods,
            level=level,
            draws=draws,
            seed=used_seed,
        )

        if by_l:
            groups = wide.index.to_frame(index=False)
            for col in by_l:
                if isinstance(cells[col].dtype, pd.CategoricalDtype):
                    groups[col] = pd.Categorical(
                        groups[col].astype("object"),
                        categories=cells[col].cat.categories,
                        ordered=True,
                    )
            out = pd.concat([groups, table.reset_index(drop=True)], axis=1)
        else:
            out = table.reset_index(drop=True)
        if labels:
            _insert_labels(out, ds, by_l)
        out.attrs.update(attrs)
        out.attrs.update(
            {
                "by": by_l,
                "where": where_d,
                "query_by": [*by_l, dim],
                "election": dim[len(_VOTE_PREFIX):],
                "dimension": dim,
                "methods": [c for c in cats if c not in (DID_NOT_VOTE, NOT_REGISTERED)],
                "level": level,
                "draws": draws,
                "seed": used_seed,
                "interval": "test inversion, Monte Carlo of the discrete Laplace noise",
            }
        )
        return out
