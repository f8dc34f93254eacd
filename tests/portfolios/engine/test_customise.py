"""Per-client customisation: weights, requests, signatures and computing once per signature."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.customise import (
    Customisation,
    bounded_redistribute,
    compute_shared,
    customise_request,
    customise_weights,
    signature,
)
from portfolios.engine.optimise import optimise
from portfolios.engine.types import InfeasibleStrategy, Method, UnknownAsset

from .test_optimise import ETF_CLASSES, etf_request

TAGS = {"VXUS": {"international"}, "BNDX": {"international"}, "VTIP": {"inflation"}}
CLASSES = {
    "VTI": "equity",
    "VXUS": "equity",
    "BND": "bonds",
    "BNDX": "bonds",
    "VTIP": "bonds",
}
STRATEGY = {"VTI": 0.4, "VXUS": 0.2, "BND": 0.2, "BNDX": 0.1, "VTIP": 0.1}


def assert_sums_to_one(w):
    assert math.isclose(math.fsum(w.values()), 1.0, abs_tol=1e-12)
    units = np.array(list(w.values())) * 1e8
    assert np.allclose(units, np.round(units), atol=1e-6)


def test_signature_is_canonical():
    a = Customisation(
        excluded_assets=frozenset({"VXUS", "BNDX"}),
        excluded_tags=frozenset({"tobacco"}),
        asset_bounds={"VTI": (0.0, 0.3), "BND": (0.1, 0.5)},
        class_tilts={"equity": 0.05, "bonds": -0.05},
    )
    b = Customisation(
        excluded_assets=frozenset({"BNDX", "VXUS"}),
        excluded_tags=frozenset({"tobacco"}),
        asset_bounds={"BND": (0.10, 0.50), "VTI": (0, 0.3)},
        class_tilts={"bonds": -0.05, "equity": 0.05},
    )
    assert signature("v1", a) == signature("v1", b)
    assert signature("v1", a) != signature("v2", a)
    assert signature("v1", None) == signature("v1", Customisation())
    assert signature("v1", Customisation(class_tilts={"equity": 0.0})) == signature("v1", None)
    assert signature("v1", a) != signature("v1", Customisation(excluded_assets=frozenset({"VXUS"})))
    assert signature("v1", Customisation(class_tilts={"equity": 0.05})) != signature(
        "v1", Customisation(class_tilts={"equity": 0.06})
    )


def test_exclusions_by_asset_and_tag_scale_the_rest():
    w = customise_weights(STRATEGY, Customisation(excluded_assets=frozenset({"VXUS"})))
    assert w["VXUS"] == 0
    assert w["VTI"] == pytest.approx(0.5, abs=1e-8)
    assert_sums_to_one(w)
    w = customise_weights(
        STRATEGY, Customisation(excluded_tags=frozenset({"international"})), asset_tags=TAGS
    )
    assert w["VXUS"] == w["BNDX"] == 0
    assert w == pytest.approx({"VTI": 4 / 7, "VXUS": 0, "BND": 2 / 7, "BNDX": 0, "VTIP": 1 / 7})
    assert_sums_to_one(w)


def test_class_tilts():
    w = customise_weights(
        STRATEGY, Customisation(class_tilts={"equity": 0.1}), asset_classes=CLASSES
    )
    assert w["VTI"] + w["VXUS"] == pytest.approx(0.7, abs=1e-8)
    assert w["VTI"] / w["VXUS"] == pytest.approx(2.0)  # proportions kept within the class
    assert w["BND"] / w["BNDX"] == pytest.approx(2.0)
    assert_sums_to_one(w)
    # a tilt beyond the class's weight clips it to zero
    w = customise_weights(
        STRATEGY, Customisation(class_tilts={"bonds": -0.9}), asset_classes=CLASSES
    )
    assert w["BND"] == w["BNDX"] == w["VTIP"] == 0
    with pytest.raises(InfeasibleStrategy, match="'crypto'"):
        customise_weights(
            STRATEGY, Customisation(class_tilts={"crypto": 0.05}), asset_classes=CLASSES
        )


def test_bounds_clip_and_redistribute():
    w = customise_weights(STRATEGY, Customisation(asset_bounds={"VTI": (0, 0.25)}))
    assert w["VTI"] == 0.25
    # the 0.15 excess goes to the others in proportion: 0.2 * (1 + 0.15 / 0.6) = 0.25
    assert w["VXUS"] == pytest.approx(0.25, abs=1e-8)
    assert w["VTIP"] == pytest.approx(0.125, abs=1e-8)
    assert_sums_to_one(w)
    w = customise_weights(STRATEGY, Customisation(asset_bounds={"VTIP": (0.3, 1.0)}))
    assert w["VTIP"] == pytest.approx(0.3, abs=1e-8)
    assert_sums_to_one(w)


def test_bad_customisations_name_the_cause():
    with pytest.raises(InfeasibleStrategy, match="excludes every asset"):
        customise_weights(STRATEGY, Customisation(excluded_assets=frozenset(STRATEGY)))
    with pytest.raises(InfeasibleStrategy, match=r"maximum weights sum to 0\.5"):
        customise_weights(STRATEGY, Customisation(asset_bounds=dict.fromkeys(STRATEGY, (0, 0.1))))
    with pytest.raises(UnknownAsset, match="'BTC'"):
        customise_weights(STRATEGY, Customisation(asset_bounds={"BTC": (0.1, 0.2)}))
    with pytest.raises(InfeasibleStrategy, match="'VTI'"):
        Customisation(asset_bounds={"VTI": (0.5, 0.2)})


@settings(max_examples=200, deadline=None)
@given(
    raw=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=30),
    seed=st.integers(0, 2**32 - 1),
)
def test_bounded_redistribution_respects_bounds_and_sums_to_one(raw, seed):
    n = len(raw)
    w = np.array(raw) + 1e-9
    w = w / w.sum()
    rng = np.random.default_rng(seed)
    lower = rng.uniform(0, 1 / n, n) * rng.integers(0, 2, n)
    upper = np.maximum(lower, rng.uniform(1 / n, 1, n))
    x = bounded_redistribute(w, lower, upper)
    assert (x >= lower - 1e-12).all()
    assert (x <= upper + 1e-12).all()
    assert math.isclose(x.sum(), 1.0, abs_tol=1e-12)


def test_customised_request_on_real_data(etf_prices):
    req = etf_request(etf_prices, Method.MAX_SHARPE, weight_bounds=(0.0, 0.6))
    cust = Customisation(
        excluded_tags=frozenset({"international"}), asset_bounds={"VTI": (0.1, 0.3)}
    )
    creq = customise_request(req, cust, asset_tags=TAGS)
    assert creq.exclusions == {"VXUS", "BNDX"}
    assert creq.asset_bounds["VTI"] == (0.1, 0.3)
    res = optimise(creq)
    assert set(res.weights) == {"VTI", "BND", "VTIP"}
    assert 0.1 - 1e-12 <= res.weights["VTI"] <= 0.3 + 1e-12
    assert_sums_to_one(res.weights)
    # the same restrictions applied to the strategy's weights instead
    base = optimise(req)
    post = customise_weights(base.weights, cust, asset_classes=ETF_CLASSES, asset_tags=TAGS)
    assert post["VXUS"] == post["BNDX"] == 0
    assert 0.1 - 1e-12 <= post["VTI"] <= 0.3 + 1e-12
    assert_sums_to_one(post)


def test_ten_thousand_portfolios_two_hundred_customisations_computed_once_each():
    versions = ["etf-v1", "etf-v2"]
    customisations = [
        Customisation(asset_bounds={"VTI": (0.0, 0.2 + i / 1000)}) for i in range(99)
    ] + [None]
    rng = np.random.default_rng(1)
    pairs = [
        (versions[int(rng.integers(2))], customisations[int(rng.integers(100))])
        for _ in range(10_000)
    ]
    # the same customisations rebuilt as new objects sign alike
    pairs += [
        ("etf-v1", Customisation(asset_bounds={"VTI": (0.0, 0.2 + i / 1000)})) for i in range(99)
    ]
    pairs += [(v, c) for v in versions for c in customisations]  # every combination present
    calls: Counter[str] = Counter()

    def compute(version, cust):
        calls[signature(version, cust)] += 1
        strategy = STRATEGY if version == "etf-v1" else {**STRATEGY, "VTI": 0.3, "VTIP": 0.2}
        return customise_weights(strategy, cust)

    shared = compute_shared(pairs, compute)
    assert shared.computed == 200
    assert len(calls) == 200
    assert set(calls.values()) == {1}
    assert len(shared) == len(pairs)
    for i in (0, 17, 5000, 9999, len(pairs) - 1):
        version, cust = pairs[i]
        assert shared[i] is shared.by_signature[signature(version, cust)]
        expected = customise_weights(
            STRATEGY if version == "etf-v1" else {**STRATEGY, "VTI": 0.3, "VTIP": 0.2}, cust
        )
        assert shared[i] == expected


def test_customisations_are_hashable_and_compare_by_content():
    a = Customisation(asset_bounds={"VTI": (0, 0.3)}, excluded_tags=frozenset({"x"}))
    b = Customisation(excluded_tags=frozenset({"x"}), asset_bounds={"VTI": (0.0, 0.3)})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, Customisation()}) == 2


@settings(max_examples=150, deadline=None)
@given(
    excluded=st.sets(st.sampled_from(sorted(STRATEGY)), max_size=4),
    tags=st.sets(st.sampled_from(["international", "inflation", "none"]), max_size=2),
    tilt=st.floats(min_value=-0.5, max_value=0.5).map(lambda v: round(v, 3)),
    cap=st.floats(min_value=0.2, max_value=1.0).map(lambda v: round(v, 3)),
)
def test_any_feasible_customisation_sums_to_one_within_its_limits(excluded, tags, tilt, cap):
    cust = Customisation(
        excluded_assets=frozenset(excluded),
        excluded_tags=frozenset(tags),
        class_tilts={"equity": tilt},
        asset_bounds=dict.fromkeys(STRATEGY, (0.0, cap)),
    )
    try:
        w = customise_weights(STRATEGY, cust, asset_classes=CLASSES, asset_tags=TAGS)
    except InfeasibleStrategy as exc:
        # only when too few assets are left for the cap, or the tilt has no class to move
        message = str(exc)
        ok = "excludes every asset" in message or "sum to" in message or "tilt" in message
        assert ok, message
        return
    assert_sums_to_one(w)
    for sym, value in w.items():
        assert value <= cap + 1e-8
        if sym in excluded or TAGS.get(sym, set()) & tags:
            assert value == 0
