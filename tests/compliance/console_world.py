"""A small rebalanced book for the compliance console's tests: one run in which one
portfolio is held by a soft rule, one is blocked by a hard rule and one passes.

Built with the rebalance factories and the real services (rules, run start), so the
orders, run rows and audit events are the ones production writes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from accounts.tenancy.context import firm_context
from compliance.services.rule_management import compliance_rule_create
from portfolios import services_rebalance
from portfolios.models import Order, Portfolio, RebalanceRun, RunPortfolio
from tests.conftest import FirmWorld
from tests.portfolios.rebalance_factories import (
    AS_OF,
    asset_make,
    household_make,
    portfolio_make,
    strategy_make,
)


@dataclass
class ConsoleBook:
    world: FirmWorld
    run: RebalanceRun
    held: Portfolio
    blocked: Portfolio
    passing: Portfolio
    held_rp: RunPortfolio
    blocked_order: Order


def console_book(
    world: FirmWorld,
    capture: Callable[..., AbstractContextManager[Any]] | None = None,
    *,
    suffix: str = "",
) -> ConsoleBook:
    """Rules (soft turnover for one client, hard turnover for another), three drifted
    portfolios and one run started by the advisor. ``capture`` is pytest-django's
    ``django_capture_on_commit_callbacks`` in non-transactional tests."""
    firm = world.firm
    with transaction.atomic():  # in transactional (browser) tests too
        asset_make("AAA", "100")
        asset_make("BBB", "50")
        strategy = strategy_make(firm, f"Sixty forty{suffix}", {"AAA": "0.6", "BBB": "0.4"})
        household = household_make(firm, "The Lovelaces")
    with firm_context(firm), transaction.atomic():
        held = portfolio_make(
            firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"}, household=household
        )
        blocked = portfolio_make(firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        passing = portfolio_make(firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
    officer = world.user("compliance")
    compliance_rule_create(
        firm=firm,
        actor=officer,
        name="Turnover (soft)",
        kind="max_turnover",
        severity="soft",
        params={"max_share": 0.01},
        client_ids=[held.client_id],
    )
    compliance_rule_create(
        firm=firm,
        actor=officer,
        name="Turnover (hard)",
        kind="max_turnover",
        severity="hard",
        params={"max_share": 0.01},
        client_ids=[blocked.client_id],
    )
    kwargs: dict[str, Any] = {"trigger": "manual", "actor": world.user("advisor"), "as_of": AS_OF}
    with firm_context(firm):
        if capture is not None:
            with capture(execute=True):
                run = services_rebalance.rebalance_run_start(**kwargs)
        else:
            with transaction.atomic():
                run = services_rebalance.rebalance_run_start(**kwargs)
    with firm_context(firm), transaction.atomic():
        run.refresh_from_db()
        held_rp = RunPortfolio.objects.get(run=run, portfolio=held)
        blocked_order = Order.objects.filter(run=run, portfolio=blocked).order_by("pk").first()
    assert held_rp.status == "held", held_rp.status
    assert blocked_order is not None
    assert blocked_order.status == "blocked"
    return ConsoleBook(world, run, held, blocked, passing, held_rp, blocked_order)
