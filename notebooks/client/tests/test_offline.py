"""Client behaviour that needs no server: parsing, error mapping, arguments.

A tiny fake speaks issue 4's shapes through ``httpx.MockTransport``; the real
server is exercised in test_server.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pandas as pd
import pytest
from rollcall_client import (
    BudgetExhausted,
    Client,
    ConnectionFailed,
    Forbidden,
    InvalidQuery,
    RollcallError,
    ServerError,
    TryAgain,
    Unauthorized,
)
from rollcall_client.errors import error_from_response

DATASETS = {
    "datasets": [
        {
            "name": "nc",
            "max_epsilon_per_query": 1.0,
            "dimensions": [
                {"name": "county", "values": ["ALAMANCE", "WAKE", "YANCEY"],
                 "labels": ["ALAMANCE", "WAKE", "YANCEY"]},
                {"name": "age_band", "values": ["<18", "18-24", "75+", "unknown"],
                 "labels": ["<18", "18-24", "75+", "unknown"]},
                {"name": "party", "values": ["DEM", "REP", "UNA"],
                 "labels": ["Democratic", "Republican", "Unaffiliated"]},
            ],
        }
    ]
}


def fake(requests: list[dict[str, Any]]) -> httpx.MockTransport:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.headers.get("authorization") != "Bearer good":
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "no"}})
        if req.url.path == "/v1/datasets":
            return httpx.Response(200, json=DATASETS)
        if req.url.path == "/v1/budget":
            return httpx.Response(200, json={"analyst": "alice", "datasets": [
                {"dataset": "nc", "budget": 3.0, "spent": 0.5, "remaining": 2.5,
                 "dataset_remaining": 9.5}]})
        if req.url.path == "/v1/query":
            q = json.loads(req.content)
            requests.append(q)
            if q["epsilon"] > 1:
                return httpx.Response(400, json={"error": {
                    "code": "invalid_epsilon", "message": "epsilon must be ≤ 1"}})
            cells: list[dict[str, Any]] = [{}]
            dims = {d["name"]: d["values"] for d in DATASETS["datasets"][0]["dimensions"]}
            for g in q["group_by"]:
                vals = [v for v in dims[g] if v in q["filter"].get(g, dims[g])]
                cells = [{**c, g: v} for c in cells for v in vals]
            # answer in reverse order: the client must sort into public order
            rows = [{**c, "count": i - 2} for i, c in enumerate(reversed(cells))]
            body = {"rows": [] if q.get("dry_run") else rows, "mechanism": "discrete_laplace",
                    "noise_scale": 1 / q["epsilon"], "ci95": 3.0, "epsilon_spent":
                    0.0 if q.get("dry_run") else q["epsilon"], "epsilon_remaining": 2.0,
                    "cached": False, "release_id": None if q.get("dry_run") else "r1"}
            if q.get("dry_run"):
                body["epsilon"] = q["epsilon"]
            return httpx.Response(200, json=body)
        return httpx.Response(404, text="not found")

    return httpx.MockTransport(handler)


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(sent: list[dict[str, Any]]) -> Client:
    return Client("http://fake", token="good", transport=fake(sent))


def test_env_url_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLCALL_URL", "http://fake/")
    monkeypatch.setenv("ROLLCALL_TOKEN", "good")
    c = Client(transport=fake([]))
    assert c.url == "http://fake"
    assert "nc" in set(c.datasets().dataset)


def test_no_token_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLCALL_TOKEN", raising=False)
    monkeypatch.delenv("ROLLCALL_URL", raising=False)
    with pytest.raises(ValueError, match="ROLLCALL_TOKEN"):
        Client("http://fake")
    with pytest.raises(ValueError, match="ROLLCALL_URL"):
        Client(token="x")


def test_count_sorted_categorical(client: Client, sent: list[dict[str, Any]]) -> None:
    df = client.count("nc", by=["county", "party"], where={"party": ["REP", "DEM"]},
                      epsilon=0.5)
    assert sent[-1] == {"dataset": "nc", "group_by": ["county", "party"],
                        "filter": {"party": ["REP", "DEM"]}, "epsilon": 0.5}
    assert list(df.county) == ["ALAMANCE", "ALAMANCE", "WAKE", "WAKE", "YANCEY", "YANCEY"]
    assert list(df.party.cat.categories) == ["DEM", "REP"]
    assert list(df.party[:2]) == ["DEM", "REP"]
    assert df.ci_high.iloc[0] - df.ci_low.iloc[0] == 6.0
    assert df.attrs["release_id"] == "r1" and df.attrs["noise_scale"] == 2.0
    assert df.attrs["cells"] == 6


def test_scalar_and_int_filter_values(client: Client, sent: list[dict[str, Any]]) -> None:
    client.count("nc", by="age_band", where={"county": "WAKE"}, epsilon=0.1)
    assert sent[-1]["group_by"] == ["age_band"]
    assert sent[-1]["filter"] == {"county": ["WAKE"]}
    client.count("nc", where={"county": ["WAKE", "WAKE", 7]}, epsilon=0.1)
    assert sent[-1]["filter"] == {"county": ["WAKE", "7"]}


def test_labels(client: Client) -> None:
    df = client.count("nc", by=["party"], epsilon=0.5, labels=True)
    assert list(df.columns) == ["party", "party_label", "count", "ci_low", "ci_high"]
    assert list(df.party_label) == ["Democratic", "Republican", "Unaffiliated"]


def test_cost_and_dry_run(client: Client, sent: list[dict[str, Any]]) -> None:
    c = client.cost("nc", by=["county", "age_band"], epsilon=0.25)
    assert sent[-1]["dry_run"] is True
    assert (c.epsilon, c.noise_scale, c.ci95, c.cells) == (0.25, 4.0, 3.0, 12)
    df = client.count("nc", by=["party"], epsilon=0.5, dry_run=True)
    assert df.empty and df.attrs["cells"] == 3


def test_budget_frame(client: Client) -> None:
    b = client.budget()
    assert list(b.columns) == ["dataset", "budget", "spent", "remaining", "dataset_remaining"]
    assert b.attrs["analyst"] == "alice"


def test_errors_from_server(client: Client) -> None:
    with pytest.raises(InvalidQuery) as e:
        client.count("nc", by=["county"], epsilon=2)
    assert (e.value.code, e.value.status) == ("invalid_epsilon", 400)
    assert "≤ 1" in e.value.message and "invalid_epsilon" in str(e.value)
    bad = Client("http://fake", token="bad", transport=fake([]))
    with pytest.raises(Unauthorized):
        bad.budget()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "unauthorized", Unauthorized),
        (403, "forbidden_dataset", Forbidden),
        (403, "budget_exhausted", BudgetExhausted),
        (404, "unknown_dataset", InvalidQuery),
        (400, "unknown_dimension", InvalidQuery),
        (400, "invalid_value", InvalidQuery),
        (400, "too_many_cells", InvalidQuery),
        (400, "malformed_json", InvalidQuery),
        (413, "payload_too_large", InvalidQuery),
        (400, "duplicate_dimension", InvalidQuery),
        (400, "empty_filter", InvalidQuery),
        (404, "not_found", InvalidQuery),
        (405, "method_not_allowed", InvalidQuery),
        (500, "internal", ServerError),
        (400, "some_future_code", InvalidQuery),
        (403, "some_future_code", Forbidden),
        (503, "overloaded", ServerError),
        (429, "too_many_requests", TryAgain),
        (408, "request_timeout", TryAgain),
        (503, "ledger_unavailable", TryAgain),
        (429, "some_future_code", TryAgain),
    ],
)
def test_error_mapping(status: int, code: str, cls: type[RollcallError]) -> None:
    err = error_from_response(status, {"error": {"code": code, "message": "m"}})
    assert type(err) is cls
    assert (err.code, err.message, err.status) == (code, "m", status)


def test_budget_refusal_names_its_cap() -> None:
    body = {"error": {"code": "budget_exhausted", "message": "m", "cap": "population",
                      "cap_name": "nc-voters"}}
    err = error_from_response(403, body)
    assert isinstance(err, BudgetExhausted)
    assert (err.cap, err.cap_name) == ("population", "nc-voters")


def test_error_without_json_body() -> None:
    err = error_from_response(502, None, "<html>bad gateway</html>")
    assert isinstance(err, ServerError) and err.code == "http_502"


def test_connection_failed() -> None:
    def boom(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    c = Client("http://nowhere", token="t", transport=httpx.MockTransport(boom))
    with pytest.raises(ConnectionFailed) as e:
        c.budget()
    assert e.value.status is None
    assert not c.health()


def test_dataset_shape_is_the_servers() -> None:
    """The client reads the shape ``GET /v1/datasets`` sends, and says so
    when an answer has another shape instead of guessing."""
    from rollcall_client.client import _parse_datasets

    parsed = _parse_datasets({"datasets": [{"name": "nc", "max_epsilon_per_query": 1,
                                            "dimensions": [{"name": "party", "values": ["DEM"],
                                                            "labels": ["Democratic"]}]}]})
    assert parsed["nc"]["party"].label("DEM") == "Democratic"
    assert isinstance(parsed["nc"]["party"].frame(), pd.DataFrame)
    for other in ({"nc": {"dimensions": {}}}, [{"name": "nc"}],
                  {"datasets": [{"name": "nc", "dimensions": [{"values": ["DEM"]}]}]}):
        with pytest.raises(ServerError):
            _parse_datasets(other)
