"""Screening an index universe (real crypto data), each exclusion with its reason."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from portfolios.engine.optimise import index_weights
from portfolios.engine.screening import ScreeningRules, screen
from portfolios.engine.types import InvalidParameter

from .conftest import CRYPTO
from .test_optimise_index import CRYPTO_CAPS

AS_OF = "2021-06-30"  # tests on the full files (full_history)
AS_OF_ANY = "2024-06-30"  # within the trimmed fixtures too
CLASSES = {s: ("stablecoin" if s in ("USDT", "USDC") else "crypto") for s in CRYPTO}


def test_minimum_history_in_days(full_history, crypto_prices):
    res = screen(
        CRYPTO,
        crypto_prices,
        ScreeningRules(min_history_days=365, include_stablecoins=True),
        as_of=AS_OF,
    )
    assert {e.symbol for e in res.excluded} == {"DOT", "AVAX"}
    (dot,) = res.reasons("DOT")
    assert (dot.rule, dot.measured, dot.limit) == ("min_history", 314.0, 365.0)  # from 2020-08-20
    assert res.reasons("AVAX")[0].measured == 352.0  # from 2020-07-13
    assert "SOL" in res.kept  # listed 2020-04-10: 446 days
    assert res.kept == tuple(s for s in CRYPTO if s not in ("DOT", "AVAX"))


def test_stablecoins_excluded_unless_asked_for(crypto_prices):
    res = screen(CRYPTO, crypto_prices, ScreeningRules(), asset_classes=CLASSES, as_of=AS_OF_ANY)
    assert [(e.symbol, e.rule) for e in res.excluded] == [
        ("USDT", "stablecoin"),
        ("USDC", "stablecoin"),
    ]
    asked = screen(
        CRYPTO,
        crypto_prices,
        ScreeningRules(include_stablecoins=True),
        asset_classes=CLASSES,
        as_of=AS_OF_ANY,
    )
    assert asked.excluded == ()
    by_list = screen(CRYPTO, crypto_prices, ScreeningRules(), stablecoins={"USDT"}, as_of=AS_OF_ANY)
    assert by_list.excluded_symbols == ("USDT",)


def test_minimum_average_traded_value(crypto_prices, crypto_volumes):
    def traded(sym: str) -> float:
        both = pd.concat([crypto_prices[sym], crypto_volumes[sym]], axis=1).loc[:AS_OF_ANY].dropna()
        last = both.iloc[-30:]
        return float((last.iloc[:, 0] * last.iloc[:, 1]).mean())

    values = {s: traded(s) for s in CRYPTO}
    limit = values["LTC"] * 1.0001  # LTC just below the limit
    res = screen(
        CRYPTO,
        crypto_prices,
        ScreeningRules(min_avg_traded_value=limit, include_stablecoins=True),
        volumes=crypto_volumes,
        as_of=AS_OF_ANY,
    )
    expected_out = {s for s, v in values.items() if v < limit}
    assert "LTC" in expected_out
    assert "BTC" not in expected_out
    assert set(res.excluded_symbols) == expected_out
    (ltc,) = res.reasons("LTC")
    assert ltc.rule == "min_traded_value"
    assert ltc.measured == pytest.approx(values["LTC"], rel=1e-12)
    assert ltc.limit == limit
    with pytest.raises(InvalidParameter, match="volumes"):
        screen(CRYPTO, crypto_prices, ScreeningRules(min_avg_traded_value=1.0))


def test_volatility_and_drawdown_ceilings(full_history, crypto_prices):
    res = screen(
        CRYPTO,
        crypto_prices,
        ScreeningRules(max_volatility=1.2, max_drawdown=0.8, risk_window=365),
        asset_classes=CLASSES,
        as_of=AS_OF,
    )
    btc = crypto_prices["BTC"].loc[:AS_OF].iloc[-366:].to_numpy()
    btc_vol = np.std(btc[1:] / btc[:-1] - 1, ddof=1) * math.sqrt(365)
    assert btc_vol < 1.2
    assert "BTC" in res.kept
    doge = res.reasons("DOGE")
    assert [e.rule for e in doge] == ["max_volatility"]
    d = crypto_prices["DOGE"].loc[:AS_OF].iloc[-366:].to_numpy()
    assert doge[0].measured == pytest.approx(
        np.std(d[1:] / d[:-1] - 1, ddof=1) * math.sqrt(365), rel=1e-12
    )
    assert "volatility" in doge[0].reason
    avax = {e.rule: e for e in res.reasons("AVAX")}
    a = crypto_prices["AVAX"].loc[:AS_OF].dropna().to_numpy()
    assert avax["max_drawdown"].measured == pytest.approx(
        float(np.max(1 - a / np.maximum.accumulate(a))), rel=1e-12
    )
    assert avax["max_drawdown"].limit == 0.8
    # every excluded asset has a reason; kept ones have none
    for sym in res.kept:
        assert res.reasons(sym) == ()


def test_screening_does_not_look_ahead(crypto_prices):
    rules = ScreeningRules(min_history_days=365, max_volatility=1.5, max_drawdown=0.85)
    before = screen(CRYPTO, crypto_prices, rules, asset_classes=CLASSES, as_of=AS_OF_ANY)
    poisoned = crypto_prices.copy()
    poisoned.loc["2024-07-01":] *= np.linspace(0.01, 100, len(poisoned.loc["2024-07-01":]))[:, None]
    after = screen(CRYPTO, poisoned, rules, asset_classes=CLASSES, as_of=AS_OF_ANY)
    assert before == after
    assert before.kept  # something was measured


def test_unknown_asset_is_excluded_with_a_reason(crypto_prices):
    res = screen(("BTC", "NOPE"), crypto_prices, ScreeningRules(), as_of=AS_OF_ANY)
    assert res.kept == ("BTC",)
    assert res.reasons("NOPE")[0].rule == "no_prices"


def test_screen_then_select_the_index(crypto_prices):
    res = screen(
        CRYPTO,
        crypto_prices,
        ScreeningRules(min_history_days=365, max_drawdown=0.9),
        asset_classes=CLASSES,
        as_of="2025-02-11",
    )
    weights = index_weights(CRYPTO_CAPS, 5, max_weight=0.4, universe=res.kept)
    assert "USDT" not in weights
    assert list(weights) == ["BTC", "ETH", "XRP", "SOL", "BNB"]
    assert weights["BTC"] == 0.4
    assert math.isclose(math.fsum(weights.values()), 1.0, abs_tol=1e-12)
