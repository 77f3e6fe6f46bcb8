"""The client against a real ``rollcall serve`` (see conftest.py)."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Mapping

import httpx
import pandas as pd
import pytest
from rollcall_client import (
    BudgetExhausted,
    Client,
    Cost,
    Forbidden,
    InvalidQuery,
    RollcallError,
    Unauthorized,
)
from harness import DemoServer

AGE_BANDS = ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+", "unknown"]


def test_health(alice: Client) -> None:
    assert alice.health()


# -- public metadata -------------------------------------------------------------


def test_datasets_frame(alice: Client) -> None:
    df = alice.datasets()
    assert list(df.columns) == [
        "dataset", "dimension", "n_values", "values", "labels", "max_epsilon_per_query"
    ]
    nc = df[df.dataset == "nc"].set_index("dimension")
    for dim in ("county", "age_band", "gender", "race", "ethnicity", "party", "status",
                "registration_year"):
        assert dim in nc.index, f"missing dimension {dim}"
    assert nc.loc["county", "n_values"] == 100
    assert nc.loc["county", "values"][:3] == ["ALAMANCE", "ALEXANDER", "ALLEGHANY"]
    assert nc.loc["age_band", "values"] == AGE_BANDS
    assert "DEM" in nc.loc["party", "values"]
    party = alice.dataset("nc")["party"]
    assert party.label("DEM") == "Democratic"
    assert (nc["max_epsilon_per_query"] == 1.0).all()
    reg = nc.loc["registration_year", "values"]
    assert reg[0] == "1900" and reg[-1] == "unknown" and "2026" in reg


def test_values_frame(alice: Client) -> None:
    v = alice.values("nc", "status")
    assert list(v.columns) == ["value", "label"]
    assert v.set_index("value").loc["A", "label"] == "Active"
    with pytest.raises(InvalidQuery) as e:
        alice.values("nc", "shoe_size")
    assert e.value.code == "unknown_dimension"


def test_budget_frame(alice: Client) -> None:
    b = alice.budget()
    assert list(b.columns[:4]) == ["dataset", "budget", "spent", "remaining"]
    assert "dataset_remaining" in b.columns
    row = b.set_index("dataset").loc["nc"]
    assert row["budget"] == pytest.approx(5.0)
    assert row["spent"] + row["remaining"] == pytest.approx(5.0)
    assert row["dataset_remaining"] <= 100.0


# -- counts ------------------------------------------------------------------------


def test_count_frame_has_every_public_cell_in_order(alice: Client) -> None:
    df = alice.count("nc", by=["county", "age_band"], where={"status": ["A"]}, epsilon=0.5)
    counties = list(alice.dataset("nc")["county"].values)
    assert list(df.columns) == ["county", "age_band", "count", "ci_low", "ci_high"]
    assert len(df) == 100 * 9
    assert list(df.itertuples(index=False, name=None))[0][:2] == ("ALAMANCE", "<18")
    assert set(zip(df.county, df.age_band, strict=True)) == set(
        itertools.product(counties, AGE_BANDS)
    )
    for col, cats in (("county", counties), ("age_band", AGE_BANDS)):
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
        assert df[col].cat.ordered
        assert list(df[col].cat.categories) == cats
    # sorting a shuffled frame gives the public order back
    shuffled = df.sample(frac=1, random_state=1).sort_values(["county", "age_band"])
    assert list(shuffled.age_band[:9]) == AGE_BANDS
    assert df["count"].dtype == "int64"
    # the total is a noisy 50k-ish figure, not garbage
    assert 5_000 < df["count"].sum() < 60_000


def test_ci_columns_and_attrs(alice: Client) -> None:
    before = alice.budget().set_index("dataset").loc["nc", "remaining"]
    df = alice.count("nc", by=["party"], epsilon=0.25)
    a = df.attrs
    assert a["mechanism"] == "discrete_laplace"
    assert a["cached"] is False
    assert isinstance(a["release_id"], str) and a["release_id"]
    assert 0 < a["epsilon_spent"] <= 0.25 + 1e-12
    assert a["noise_scale"] == pytest.approx(4.0, rel=0.01)
    assert a["ci95"] > 0
    assert a["epsilon_remaining"] == pytest.approx(before - a["epsilon_spent"])
    width_error = ((df.ci_high - df.ci_low) - 2 * a["ci95"]).abs().max()
    assert width_error < 1e-9, f"interval widths differ from 2*ci95 by up to {width_error}"
    assert (df.ci_low == df["count"] - a["ci95"]).all()
    assert a["dataset"] == "nc" and a["by"] == ["party"] and a["epsilon"] == 0.25
    assert len(df) == len(alice.dataset("nc")["party"])


def test_filter_narrows_categories_and_labels(alice: Client) -> None:
    df = alice.count(
        "nc", by=["party", "gender"], where={"party": ["REP", "DEM"], "status": "A"},
        epsilon=0.3, labels=True,
    )
    assert list(df.columns) == [
        "party", "party_label", "gender", "gender_label", "count", "ci_low", "ci_high"
    ]
    assert list(df.party.cat.categories) == ["DEM", "REP"]  # public order, not filter order
    assert len(df) == 2 * 3
    assert df.party_label.iloc[0] == "Democratic"
    assert df.gender_label.cat.ordered


def test_empty_group_by_gives_one_row(alice: Client) -> None:
    df = alice.count("nc", where={"county": ["WAKE"]}, epsilon=0.2)
    assert list(df.columns) == ["count", "ci_low", "ci_high"]
    assert len(df) == 1


def test_cached_repeat_is_free_for_anyone(alice: Client, bob: Client) -> None:
    q = dict(by=["county"], where={"gender": ["F"]}, epsilon=0.15)
    first = alice.count("nc", **q)
    spent_before = alice.budget().set_index("dataset").loc["nc", "spent"]
    again = alice.count("nc", **q)
    assert again.attrs["cached"] is True
    assert again.attrs["epsilon_spent"] == 0
    assert again.attrs["release_id"] == first.attrs["release_id"]
    pd.testing.assert_frame_equal(first, again, check_like=False)
    assert alice.budget().set_index("dataset").loc["nc", "spent"] == spent_before
    # another analyst repeating it gets the same stored release, for free
    bobs = bob.count("nc", **q)
    assert bobs.attrs["cached"] is True and bobs.attrs["epsilon_spent"] == 0
    assert (bobs["count"] == first["count"]).all()


def test_cost_spends_nothing(alice: Client) -> None:
    before = alice.budget()
    c = alice.cost("nc", by=["county", "age_band"], where={"party": ["DEM", "REP"]}, epsilon=0.4)
    assert isinstance(c, Cost)
    assert c.epsilon == pytest.approx(0.4, rel=1e-6)
    assert c.noise_scale == pytest.approx(2.5, rel=0.01)
    assert c.cells == 900
    assert c.ci95 > 0
    wider = alice.cost("nc", by=["county"], epsilon=0.1)
    assert wider.ci95 > c.ci95 and wider.cells == 100
    same_eps_fewer_cells = alice.cost("nc", by=["party"], epsilon=0.4)
    assert same_eps_fewer_cells.ci95 == pytest.approx(c.ci95)
    dry = alice.count("nc", by=["county"], epsilon=0.45, dry_run=True)
    assert len(dry) == 0 and list(dry.columns) == ["county", "count", "ci_low", "ci_high"]
    assert dry.attrs["ci95"] > 0 and dry.attrs["cells"] == 100
    pd.testing.assert_frame_equal(alice.budget(), before)


def test_cost_matches_release(alice: Client) -> None:
    c = alice.cost("nc", by=["status"], epsilon=0.35)
    df = alice.count("nc", by=["status"], epsilon=0.35)
    assert df.attrs["ci95"] == pytest.approx(c.ci95)
    assert df.attrs["noise_scale"] == pytest.approx(c.noise_scale)
    assert df.attrs["epsilon_spent"] == pytest.approx(c.epsilon)


def test_releases(alice: Client) -> None:
    df = alice.count("nc", by=["ethnicity"], epsilon=0.05)
    rel = alice.releases()
    assert len(rel) >= 1
    assert df.attrs["release_id"] in set(rel["release_id"])


# -- errors ------------------------------------------------------------------------


def _check(e: RollcallError, code: str, status: int) -> None:
    assert e.code == code
    assert e.status == status
    assert e.message and isinstance(e.message, str)
    assert code in str(e)


def test_missing_token_is_a_clear_error(
    server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLCALL_TOKEN", raising=False)
    with pytest.raises(ValueError, match="ROLLCALL_TOKEN"):
        Client(server.url)
    monkeypatch.setenv("ROLLCALL_TOKEN", server.tokens["alice"])
    with Client(server.url) as c:
        assert "nc" in set(c.datasets().dataset)


def test_unauthorized(server: DemoServer) -> None:
    with Client(server.url, token="not-a-real-token") as c:
        with pytest.raises(Unauthorized) as e:
            c.datasets()
        _check(e.value, "unauthorized", 401)
        with pytest.raises(Unauthorized):
            c.count("nc", by=["county"], epsilon=0.1)


def test_forbidden_dataset(carol: Client) -> None:
    assert carol.datasets().empty
    with pytest.raises(Forbidden) as e:
        carol.count("nc", by=["county"], epsilon=0.1)
    _check(e.value, "forbidden_dataset", 403)


def test_budget_exhausted(bob: Client) -> None:
    bob.count("nc", by=["race"], epsilon=0.2)
    remaining = bob.budget().set_index("dataset").loc["nc", "remaining"]
    assert remaining == pytest.approx(0.1, abs=1e-9)
    with pytest.raises(BudgetExhausted) as e:
        bob.count("nc", by=["race"], where={"status": ["A"]}, epsilon=0.2)
    _check(e.value, "budget_exhausted", 403)
    # nothing was spent by the refused query; a dry run still answers
    assert bob.budget().set_index("dataset").loc["nc", "remaining"] == pytest.approx(remaining)
    assert bob.cost("nc", by=["race"], where={"status": ["A"]}, epsilon=0.2).ci95 > 0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        (dict(by=["shoe_size"], epsilon=0.1), "unknown_dimension"),
        (dict(by=["county"], where={"shoe_size": ["9"]}, epsilon=0.1), "unknown_dimension"),
        (dict(by=["county"], where={"party": ["WHIG"]}, epsilon=0.1), "invalid_value"),
        (dict(by=["county"], where={"county": ["ATLANTIS"]}, epsilon=0.1), "invalid_value"),
        (dict(by=["county"], epsilon=0.0), "invalid_epsilon"),
        (dict(by=["county"], epsilon=-1.0), "invalid_epsilon"),
        (dict(by=["county"], epsilon=2.0), "invalid_epsilon"),
        (
            dict(
                by=["county", "registration_year", "age_band", "party", "race", "gender"],
                epsilon=0.1,
            ),
            "too_many_cells",
        ),
    ],
)
def test_invalid_query(alice: Client, kwargs: dict, code: str) -> None:
    before = alice.budget()
    with pytest.raises(InvalidQuery) as e:
        alice.count("nc", **kwargs)
    _check(e.value, code, 400)
    with pytest.raises(InvalidQuery):
        alice.cost("nc", **kwargs)
    pd.testing.assert_frame_equal(alice.budget(), before)


def test_non_finite_epsilon_is_refused_locally(alice: Client) -> None:
    for eps in (math.inf, math.nan):
        with pytest.raises(InvalidQuery) as e:
            alice.count("nc", by=["county"], epsilon=eps)
        assert e.value.code == "invalid_epsilon" and e.value.status is None


def test_invalid_value_message_lists_allowed(alice: Client) -> None:
    with pytest.raises(InvalidQuery) as e:
        alice.count("nc", by=["party"], where={"status": ["Z"]}, epsilon=0.1)
    assert "A" in e.value.message


def test_unknown_dataset(alice: Client) -> None:
    with pytest.raises(InvalidQuery) as e:
        alice.count("texas", by=["county"], epsilon=0.1)
    _check(e.value, "unknown_dataset", 404)


def test_malformed_json(server: DemoServer) -> None:
    # The client never sends malformed JSON; speak to the server directly and
    # check the client maps the server's answer.
    from rollcall_client.errors import error_from_response

    r = httpx.post(
        f"{server.url}/v1/query",
        content=b'{"dataset": "nc", "group_by": [',
        headers={"Authorization": f"Bearer {server.tokens['alice']}",
                 "Content-Type": "application/json"},
    )
    err = error_from_response(r.status_code, r.json(), r.text)
    assert isinstance(err, InvalidQuery)
    _check(err, "malformed_json", 400)


# -- the client's error codes are the server's ------------------------------------


def test_error_codes_match_the_openapi_schema(server: DemoServer) -> None:
    """The client knows exactly the codes the server's schema lists: none
    missing (each gets its own exception class, not a guess from the status)
    and none the server never sends."""
    from rollcall_client.errors import CODES

    schema = httpx.get(f"{server.url}/openapi.json").json()
    listed = schema["components"]["schemas"]["ErrorCode"]["enum"]
    assert sorted(listed) == sorted(CODES), (
        f"server only: {sorted(set(listed) - set(CODES))}, "
        f"client only: {sorted(set(CODES) - set(listed))}"
    )
    detail = schema["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
    assert detail["$ref"] == "#/components/schemas/ErrorCode", detail


# -- turnout (voting history) --------------------------------------------------------

#: Every category a vote dimension can have, in rollcall's global order: the
#: truth's `votes` arrays hold indices into this list.
VOTE_CATEGORIES = ["did_not_vote", "not_registered", "election_day", "early", "mail",
                   "provisional", "other", "voted_method_unknown"]
ELECTIONS = ["2016g", "2018g", "2020p", "2020g", "2022p", "2022g", "2024p", "2024g"]
#: Far above anything an analyst would use: the noise is then 0 in almost every
#: cell (P(|noise| ≥ 1) ≈ 2·e^-20 per cell), and the tests allow ±1 per cell.
HUGE_EPSILON = 20.0


@pytest.fixture(scope="session")
def truth(server: DemoServer) -> dict:
    assert server.truth is not None and server.truth.exists(), server.truth
    return json.loads(server.truth.read_text())


def _age_band(birth_year: int | None) -> str:
    if birth_year is None:
        return "unknown"
    age = 2026 - birth_year  # the harness's as_of is 2026-06-30
    if age < 18:
        return "<18"
    edges = [18, 25, 35, 45, 55, 65, 75]
    lo = max(e for e in edges if e <= age)
    return "75+" if lo == 75 else f"{lo}-{edges[edges.index(lo) + 1] - 1}"


def _truth_cells(truth: dict, election: str, key) -> dict[tuple, Counter]:
    """Truth counts per group (``key(row)``) and category of ``election``,
    from the rows' ``votes`` arrays."""
    e = ELECTIONS.index(election)
    out: dict[tuple, Counter] = {}
    for row in truth["rows"]:
        out.setdefault(key(row), Counter())[VOTE_CATEGORIES[row["votes"][e]]] += row["count"]
    return out


def _registered_voted(cats: Mapping[str, int]) -> tuple[int, int]:
    registered = sum(n for c, n in cats.items() if c != "not_registered")
    return registered, registered - cats.get("did_not_vote", 0)


def test_elections_are_dimensions(alice: Client) -> None:
    assert alice.elections("nc") == ELECTIONS
    values = alice.dataset("nc")["vote_2024g"].values
    assert values[:2] == ("did_not_vote", "not_registered")
    assert set(values) <= set(VOTE_CATEGORIES)
    assert {"election_day", "early", "mail"} <= set(values)


def test_truth_agrees_with_itself(truth: dict) -> None:
    """The truth's rows, totals and counties say the same (else the tests
    below would compare with a moving target)."""
    assert [e["id"] for e in truth["history"]["elections"]] == ELECTIONS
    for e in truth["history"]["elections"]:
        from_rows = _truth_cells(truth, e["id"], lambda r: ())[()]
        assert {c: n for c, n in from_rows.items() if n} == {
            c: n for c, n in e["categories"].items() if n}
        by_county = _truth_cells(truth, e["id"], lambda r: r["county"])
        assert {k: dict(v) for k, v in by_county.items()} == e["by_county"]


def test_turnout_total_matches_the_truth(dora: Client, truth: dict) -> None:
    t = dora.turnout("nc_exact", "2024g", epsilon=HUGE_EPSILON)
    assert len(t) == 1
    cats = next(e for e in truth["history"]["elections"] if e["id"] == "2024g")["categories"]
    registered, voted = _registered_voted(cats)
    n = len(t.attrs["methods"]) + 1  # cells summed into `registered`
    assert abs(int(t["registered"].iloc[0]) - registered) <= n
    assert abs(int(t["voted"].iloc[0]) - voted) <= n - 1
    assert t["rate"].iloc[0] == pytest.approx(voted / registered, abs=1e-3)
    slack = 2 / registered  # a cell 1 off (rare at this ε)
    assert t["rate_low"].iloc[0] - slack <= voted / registered <= t["rate_high"].iloc[0] + slack
    assert 0.3 < voted / registered < 0.9, "synth's 2024 general turnout looks unrealistic"
    assert t.attrs["dimension"] == "vote_2024g" and t.attrs["query_by"] == ["vote_2024g"]


def test_turnout_cells_by_county_match_the_truth(dora: Client, truth: dict) -> None:
    cells = dora.count("nc_exact", by=["county", "vote_2024g"], epsilon=HUGE_EPSILON)
    by_county = next(e for e in truth["history"]["elections"]
                     if e["id"] == "2024g")["by_county"]
    assert len(cells) == 100 * len(dora.dataset("nc_exact")["vote_2024g"])
    worst = max(abs(int(n) - by_county.get(county, {}).get(vote, 0))
                for county, vote, n in zip(cells["county"], cells["vote_2024g"], cells["count"],
                                           strict=True))
    assert worst <= 1, f"a cell is {worst} off the truth at ε = {HUGE_EPSILON}"
    # turnout of the same release (stored: free) adds those cells up
    t = dora.turnout("nc_exact", "2024g", by="county", epsilon=HUGE_EPSILON, methods=True)
    assert t.attrs["cached"] is True and t.attrs["epsilon_spent"] == 0
    assert list(t["county"]) == list(dora.dataset("nc_exact")["county"].values)
    for r in t.itertuples():
        registered, voted = _registered_voted(by_county.get(r.county, {}))
        assert abs(r.registered - registered) <= 7 and abs(r.voted - voted) <= 6, r.county
        if voted > 0:
            shares = [getattr(r, f"share_{m}") for m in t.attrs["methods"]]
            assert sum(shares) == pytest.approx(1.0, abs=1e-9), r.county
            # a cell 1 off (rare at this ε) moves a share by about 1/voted
            truth_mail = by_county[r.county].get("mail", 0) / voted
            slack = 2 / voted
            assert r.share_mail_low - slack <= truth_mail <= r.share_mail_high + slack, r.county


@pytest.mark.parametrize(
    ("by", "key"),
    [
        (["age_band", "party"], lambda r: (_age_band(r["birth_year"]), r["party"])),
        (["vote_2020g"], lambda r: (VOTE_CATEGORIES[r["votes"][ELECTIONS.index("2020g")]],)),
    ],
)
def test_turnout_by_groups_matches_the_truth(dora: Client, truth: dict, by, key) -> None:
    """Age bands and parties from the voter file, and another election, against
    the rows' `votes` arrays."""
    t = dora.turnout("nc_exact", "2024g", by=by, epsilon=HUGE_EPSILON)
    want = _truth_cells(truth, "2024g", key)
    n = len(t.attrs["methods"]) + 1
    seen = set()
    for r in t.itertuples(index=False):
        group = tuple(str(getattr(r, b)) for b in by)
        seen.add(group)
        registered, voted = _registered_voted(want.get(group, {}))
        assert abs(r.registered - registered) <= n, group
        assert abs(r.voted - voted) <= n - 1, group
        if registered > 0:
            slack = 2 / registered  # a cell 1 off (rare at this ε)
            assert r.rate_low - slack <= voted / registered <= r.rate_high + slack, group
    assert set(want) <= seen, set(want) - seen
    if by == ["vote_2020g"]:
        rates = t.set_index("vote_2020g")["rate"]
        assert rates["election_day"] > rates["did_not_vote"], "voters vote again"


def test_turnout_costs_its_epsilon_once(alice: Client) -> None:
    spent = lambda: alice.budget().set_index("dataset").loc["nc", "spent"]  # noqa: E731
    before = spent()
    t = alice.turnout("nc", "2020g", by=["party"], epsilon=0.3, labels=True)
    assert t.attrs["epsilon_spent"] == pytest.approx(0.3, abs=1e-9)
    assert spent() == pytest.approx(before + 0.3, abs=1e-9)
    assert list(t.columns[:2]) == ["party", "party_label"]
    assert list(t["party"]) == list(alice.dataset("nc")["party"].values)
    assert {"registered", "voted", "rate", "rate_low", "rate_high"} <= set(t.columns)
    assert t.attrs["cells"] == len(t) * len(alice.dataset("nc")["vote_2020g"])
    # a repeat is the stored release: free, and the same intervals
    again = alice.turnout("nc", "2020g", by=["party"], epsilon=0.3, labels=True)
    assert again.attrs["cached"] is True and again.attrs["epsilon_spent"] == 0
    assert spent() == pytest.approx(before + 0.3, abs=1e-9)
    pd.testing.assert_frame_equal(t, again)


def test_turnout_intervals_at_an_ordinary_epsilon(alice: Client) -> None:
    t = alice.turnout("nc", "vote_2024g", by=["county"], where={"status": ["A"]},
                      epsilon=0.5, methods=True)
    assert len(t) == 100
    ok = t["registered"] > 0
    assert (t.loc[ok, "rate_low"] <= t.loc[ok, "rate"]).all()
    assert (t.loc[ok, "rate"] <= t.loc[ok, "rate_high"]).all()
    assert ((t["rate_low"] >= 0) & (t["rate_high"] <= 1)).all()
    # bigger counties, narrower intervals
    width = t["rate_high"] - t["rate_low"]
    big, small = t["registered"].nlargest(10).index, t["registered"].nsmallest(10).index
    assert width[big].mean() < width[small].mean()
    # method shares of the big counties add up to about 1
    shares = t.loc[big, [f"share_{m}" for m in t.attrs["methods"]]].sum(axis=1)
    assert (shares - 1).abs().max() < 0.05, shares


def test_turnout_unknown_election(alice: Client) -> None:
    before = alice.budget()
    with pytest.raises(InvalidQuery) as e:
        alice.turnout("nc", "1999g", by=["county"], epsilon=0.1)
    assert e.value.code == "unknown_dimension"
    assert "2024g" in e.value.message
    with pytest.raises(InvalidQuery):
        alice.turnout("texas", "2024g", epsilon=0.1)
    # the server says the same of the dimension itself
    with pytest.raises(InvalidQuery) as e:
        alice.count("nc", by=["vote_1999g"], epsilon=0.1)
    assert e.value.code == "unknown_dimension"
    with pytest.raises(ValueError, match="election itself"):
        alice.turnout("nc", "2024g", by=["vote_2024g"], epsilon=0.1)
    with pytest.raises(ValueError, match="election itself"):
        alice.turnout("nc", "2024g", where={"vote_2024g": ["mail"]}, epsilon=0.1)
    pd.testing.assert_frame_equal(alice.budget(), before)
