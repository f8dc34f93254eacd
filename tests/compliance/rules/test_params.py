"""Rule parameters: normalised when valid, refused with the parameter named when not."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from compliance.rules import (
    BUILTIN_RULES,
    DEFAULT_SEVERITY,
    RULE_KINDS,
    Rule,
    RuleParamError,
    Severity,
    crypto_limit_table,
    evaluate,
    rule_param_names,
    rule_params_validate,
)
from tests.compliance.rules.builders import BUY, make_book, make_orders

VALID: dict[str, dict[str, Any]] = {
    "restricted_list": {"symbols": ["AAA"]},
    "concentration_asset": {"max_share": 0.25},
    "concentration_class": {"max_share": 0.6},
    "concentration_sector": {"max_share": 0.4},
    "cash_floor": {"min_share": 0.02},
    "no_short_no_negative_cash": {},
    "risk_fit": {},
    "risk_profile_current": {},
    "questionnaire_flags": {},
    "kyc_complete": {},
    "wash_sale": {},
    "max_turnover": {"max_share": 0.5},
    "min_trade_value": {"min_value": 25},
    "max_crypto_share": {"by_risk_level": {"5": 0.05}},
}


def test_every_kind_has_a_valid_example_and_a_default_severity():
    assert set(VALID) == set(RULE_KINDS) == set(DEFAULT_SEVERITY)
    for kind, params in VALID.items():
        out = rule_params_validate(kind, params)
        assert set(out) == set(rule_param_names(kind))


def test_defaults_and_normalisation():
    assert rule_params_validate("restricted_list", {"symbols": [" aapl", "MSFT", "AAPL"]}) == {
        "symbols": ("AAPL", "MSFT"),
        "use_client_restrictions": True,
    }
    assert rule_params_validate("concentration_asset", {"max_share": Decimal("0.25")}) == {
        "max_share": 0.25,
        "level": "portfolio",
    }
    assert rule_params_validate("concentration_class", {"max_share": "0.5"})["asset_class"] is None
    assert rule_params_validate("risk_fit", {}) == {"tolerance": 0}
    assert rule_params_validate("risk_profile_current", {"warn_days": "14"}) == {"warn_days": 14}
    assert rule_params_validate("questionnaire_flags", {}) == {"max_open": 0}
    assert rule_params_validate("wash_sale", {}) == {"days": 30}
    assert rule_params_validate("min_trade_value", {"min_value": "12.50"}) == {"min_value": 12.5}
    assert rule_params_validate("max_turnover", {"max_share": 1.5}) == {"max_share": 1.5}
    assert rule_params_validate("max_crypto_share", {"by_risk_level": {"7": 0.2, 3: "0.05"}}) == {
        "by_risk_level": {3: 0.05, 7: 0.2}
    }


REFUSED = [
    # (kind, params, the parameter named)
    ("no_such_rule", {}, "kind"),
    ("restricted_list", {"symbols": "AAPL"}, "symbols"),
    ("restricted_list", {"symbols": ["AAPL", ""]}, "symbols"),
    ("restricted_list", {"symbols": [], "use_client_restrictions": False}, "symbols"),
    ("restricted_list", {"use_client_restrictions": "yes"}, "use_client_restrictions"),
    ("restricted_list", {"symbol": ["AAPL"]}, "symbol"),
    ("concentration_asset", {}, "max_share"),
    ("concentration_asset", {"max_share": 1.01}, "max_share"),
    ("concentration_asset", {"max_share": -0.01}, "max_share"),
    ("concentration_asset", {"max_share": "a lot"}, "max_share"),
    ("concentration_asset", {"max_share": float("nan")}, "max_share"),
    ("concentration_asset", {"max_share": True}, "max_share"),
    ("concentration_asset", {"max_share": 0.2, "level": "firm"}, "level"),
    ("concentration_asset", {"max_share": 0.2, "asset_class": "equity"}, "asset_class"),
    ("concentration_class", {"max_share": 2}, "max_share"),
    ("concentration_class", {"max_share": 0.5, "asset_class": ""}, "asset_class"),
    ("concentration_class", {"max_share": 0.5, "asset_class": 3}, "asset_class"),
    ("concentration_sector", {"max_share": 0.5, "sector": "energy"}, "sector"),
    ("concentration_sector", {"max_share": None}, "max_share"),
    ("cash_floor", {}, "min_share"),
    ("cash_floor", {"min_share": 1.5}, "min_share"),
    ("cash_floor", {"min_share": 0.1, "max_share": 0.2}, "max_share"),
    ("no_short_no_negative_cash", {"tolerance": 1}, "tolerance"),
    ("risk_fit", {"tolerance": -1}, "tolerance"),
    ("risk_fit", {"tolerance": 1.5}, "tolerance"),
    ("risk_fit", {"tolerance": 10}, "tolerance"),
    ("risk_profile_current", {"warn_days": -3}, "warn_days"),
    ("risk_profile_current", {"warn_days": "soon"}, "warn_days"),
    ("questionnaire_flags", {"max_open": -1}, "max_open"),
    ("kyc_complete", {"strict": True}, "strict"),
    ("wash_sale", {"days": 0}, "days"),
    ("wash_sale", {"days": 400}, "days"),
    ("max_turnover", {"max_share": 2.5}, "max_share"),
    ("max_turnover", {}, "max_share"),
    ("min_trade_value", {"min_value": -1}, "min_value"),
    ("min_trade_value", {"min_value": "inf"}, "min_value"),
    ("min_trade_value", {}, "min_value"),
    ("max_crypto_share", {}, "by_risk_level"),
    ("max_crypto_share", {"by_risk_level": {}}, "by_risk_level"),
    ("max_crypto_share", {"by_risk_level": [0.1]}, "by_risk_level"),
    ("max_crypto_share", {"by_risk_level": {"11": 0.1}}, "by_risk_level.11"),
    ("max_crypto_share", {"by_risk_level": {"0": 0.1}}, "by_risk_level.0"),
    ("max_crypto_share", {"by_risk_level": {"high": 0.1}}, "by_risk_level.high"),
    ("max_crypto_share", {"by_risk_level": {"5": 1.2}}, "by_risk_level.5"),
    ("max_crypto_share", {"by_risk_level": {"5": 0.1, 5: 0.2}}, "by_risk_level.5"),
    # contradictory: a higher risk level may not allow less crypto than a lower one
    ("max_crypto_share", {"by_risk_level": {"3": 0.2, "7": 0.1}}, "by_risk_level.7"),
]


@pytest.mark.parametrize(("kind", "params", "param"), REFUSED, ids=lambda v: str(v)[:40])
def test_refused_naming_the_parameter(kind, params, param):
    with pytest.raises(RuleParamError) as info:
        rule_params_validate(kind, params)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}: ")


def test_every_kind_refuses_an_unknown_parameter():
    for kind in RULE_KINDS:
        with pytest.raises(RuleParamError) as info:
            rule_params_validate(kind, {**VALID[kind], "surprise": 1})
        assert info.value.param == "surprise"
        assert kind in info.value.message


def test_every_kind_with_parameters_refuses_one_out_of_range():
    bad: dict[str, dict[str, Any]] = {
        "restricted_list": {"symbols": [1]},
        "concentration_asset": {"max_share": 1.1},
        "concentration_class": {"max_share": -0.1},
        "concentration_sector": {"max_share": 7},
        "cash_floor": {"min_share": -1},
        "risk_fit": {"tolerance": -2},
        "risk_profile_current": {"warn_days": -1},
        "questionnaire_flags": {"max_open": -5},
        "wash_sale": {"days": -30},
        "max_turnover": {"max_share": -0.5},
        "min_trade_value": {"min_value": -0.01},
        "max_crypto_share": {"by_risk_level": {"4": -0.1}},
    }
    no_params = {k for k in RULE_KINDS if not rule_param_names(k)}
    assert set(bad) | no_params == set(RULE_KINDS)
    for kind, params in bad.items():
        with pytest.raises(RuleParamError) as info:
            rule_params_validate(kind, params)
        assert info.value.param.split(".")[0] == next(iter(params))


def test_evaluate_refuses_a_bad_rule_naming_it():
    book, orders = make_book(), make_orders((0, "AAA", BUY, 1))
    with pytest.raises(RuleParamError) as info:
        evaluate(book, orders, [Rule(77, "cash_floor", Severity.HARD, {"min_share": 3})])
    assert info.value.param == "min_share"
    assert "rule id 77" in str(info.value)
    with pytest.raises(RuleParamError) as info:
        evaluate(book, orders, [Rule(78, "kyc_complete", 5, {})])  # type: ignore[arg-type]
    assert info.value.param == "severity"


def test_crypto_limits_inherit_the_nearest_lower_level():
    table = crypto_limit_table({3: 0.05, 7: 0.2})
    assert table.tolist() == [0, 0, 0, 0.05, 0.05, 0.05, 0.05, 0.2, 0.2, 0.2, 0.2]
    assert crypto_limit_table({1: 0.01})[10] == 0.01


def test_builtin_rules():
    kinds = {r.kind: r for r in BUILTIN_RULES}
    assert set(kinds) == {"no_short_no_negative_cash", "restricted_list", "wash_sale"}
    assert sorted(r.id for r in BUILTIN_RULES) == [-3, -2, -1]
    assert all(r.severity is Severity.HARD for r in BUILTIN_RULES)
    assert all(not r.strategy_ids and not r.client_ids for r in BUILTIN_RULES)
    assert kinds["restricted_list"].params["use_client_restrictions"] is True
    assert not kinds["restricted_list"].params["symbols"]
    for rule in BUILTIN_RULES:
        rule_params_validate(rule.kind, rule.params)
    # and they do what they say: a client-restricted buy and a short sale are blocked
    book = make_book(2, client_restricted={(0, "AAA"): True})
    ev = evaluate(book, make_orders((0, "AAA", BUY, 1), (1, "BBB", -1, 1)), BUILTIN_RULES)
    assert ev.portfolio_outcome.tolist() == [2, 2]
    assert np.array_equal(ev.rule_ids, [r.id for r in BUILTIN_RULES])
