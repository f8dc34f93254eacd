"""The demo seed gives each demo firm its strategy library, computed from the fixtures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.demo import DEMO_FIRMS, demo_seed
from accounts.models import Firm, RiskLevelMapping, StrategyAssignment
from accounts.tenancy import firm_context
from compliance.selectors import audit_chain_verify
from portfolios.demo_strategy import DEMO_STRATEGIES
from portfolios.models_strategy import Strategy, StrategyVersion
from portfolios.selectors_strategy import strategy_list_for_risk_level

pytestmark = pytest.mark.django_db


def test_each_demo_firm_gets_active_strategies_across_the_risk_levels() -> None:
    first = demo_seed()
    for spec in DEMO_FIRMS:
        assert first.firms[spec.slug].counts["model versions"] == len(DEMO_STRATEGIES)
        firm = Firm.objects.get(slug=spec.slug)
        with firm_context(firm):
            strategies = {s.name: s for s in Strategy.objects.all()}
            assert set(strategies) == {d.name for d in DEMO_STRATEGIES}
            assert {s.status for s in strategies.values()} == {"active"}
            covered = set()
            for s in strategies.values():
                covered |= set(range(s.risk_level_min, s.risk_level_max + 1))
            assert covered == set(range(1, 11))
            for version in StrategyVersion.objects.select_related("strategy"):
                assert version.number == 1
                assert version.trigger == "system"
                assert sum(Decimal(w) for w in version.weights.values()) == Decimal(1)
            crypto = StrategyVersion.objects.get(strategy__name="Crypto Top 10 Index")
            held = [s for s, w in crypto.weights.items() if Decimal(w) > 0]
            assert len(held) == 10
            assert max(Decimal(w) for w in crypto.weights.values()) <= Decimal("0.25")
            large = StrategyVersion.objects.get(strategy__name="US Large-Cap Equity")
            assert max(Decimal(w) for w in large.weights.values()) <= Decimal("0.15")
            conservative = StrategyVersion.objects.get(strategy__name="ETF Conservative")
            growth = StrategyVersion.objects.get(strategy__name="ETF Growth")
            assert conservative.volatility < growth.volatility
        assert audit_chain_verify(firm=firm).ok

        with firm_context(firm):
            best = {
                level: strategy_list_for_risk_level(risk_level=level)[0].name
                for level in range(1, 11)
            }
        assert best[1] == best[3] == "ETF Conservative"
        assert best[5] == "ETF Balanced"
        assert best[8] == "ETF Growth"
        assert best[10] in {"US Large-Cap Equity", "Crypto Top 10 Index"}

    again = demo_seed()
    assert not any(again.firms.values()), again.firms


def test_demo_seed_maps_every_level_to_its_best_fitting_strategy() -> None:
    demo_seed()
    for spec in DEMO_FIRMS:
        firm = Firm.objects.get(slug=spec.slug)
        with firm_context(firm):
            mapping = {m.risk_level: m for m in RiskLevelMapping.objects.all()}
            assert set(mapping) == set(range(1, 11))
            for level, row in mapping.items():
                assert row.model_portfolio_id is None
                best = strategy_list_for_risk_level(risk_level=level)[0]
                assert row.strategy_id == best.pk
            mapped = StrategyAssignment.objects.filter(status="active", source="mapping")
            assert mapped.exists()
            assert not mapped.filter(strategy__isnull=True).exists()
    again = demo_seed()
    assert not any(again.firms.values()), again.firms
