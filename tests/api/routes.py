"""Every API route, read from the URL configuration, and how to fill its parameters.

The isolation matrix and the authentication tests are parametrised from
:func:`api_routes`, so a route added to /api/v1/ is covered the day it is added.

A route with path parameters needs an entry in :data:`OBJECTS` saying how to build an
object of a given firm for it; without one the tests fail loudly, naming the route.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter, UUIDConverter
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.permissions import AllowAny

from accounts.models import (
    Client,
    Household,
    Membership,
    ModelPortfolio,
    ProfileFlag,
    RiskProfile,
    Role,
    StrategyAssignment,
    User,
)
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import model_portfolios_install_default, strategy_override
from accounts.tenancy import firm_context
from portfolios.models import Portfolio
from tests.accounts.book import Book, make_book
from tests.conftest import PASSWORD, FirmWorld

API_PREFIX = "api/v1/"
UNSAFE_METHODS = ("post", "put", "patch", "delete")
HTTP_METHODS = ("get", *UNSAFE_METHODS)


@dataclass(frozen=True)
class Route:
    name: str  # namespaced, for reverse(): "api:firm-member-detail"
    template: str  # "api/v1/firm/members/<int:pk>/"
    params: tuple[tuple[str, Any], ...]  # (name, converter or None for regex groups)
    view_class: type
    methods: tuple[str, ...]  # lower-case HTTP methods the view answers

    @property
    def public(self) -> bool:
        """Takes no authentication at all (obtaining a token)."""
        permissions = getattr(self.view_class, "permission_classes", [])
        return not getattr(self.view_class, "authentication_classes", None) and all(
            p is AllowAny for p in permissions
        )

    @property
    def unsafe_methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m in UNSAFE_METHODS)

    def __str__(self) -> str:
        return self.name


def _walk(
    patterns: list[URLPattern | URLResolver], prefix: str, namespace: str, params: tuple[Any, ...]
) -> Iterator[tuple[str, str, tuple[Any, ...], Any]]:
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            text = str(pattern)
            found: tuple[Any, ...] = tuple(pattern.converters.items())
        elif isinstance(pattern, RegexPattern):
            text = str(pattern).lstrip("^").rstrip("$")
            found = tuple((name, None) for name in pattern.regex.groupindex)
        else:  # pragma: no cover - LocalePrefixPattern
            text, found = "", ()
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + text, inner, params + found)
        else:
            name = f"{namespace}{entry.name}" if entry.name else ""
            yield prefix + text, name, params + found, entry.callback


def _methods(callback: Any, template: str) -> tuple[type, tuple[str, ...]]:
    view_class = getattr(callback, "cls", None)
    if view_class is None:
        raise AssertionError(
            f"{template}: not a Django REST framework view; the isolation matrix only "
            "knows DRF views under /api/v1/"
        )
    actions = getattr(callback, "actions", None)
    if actions:  # a ViewSet: the methods it was routed with
        return view_class, tuple(m for m in HTTP_METHODS if m in actions)
    return view_class, tuple(m for m in HTTP_METHODS if hasattr(view_class, m))


def api_routes() -> list[Route]:
    routes = []
    for template, name, params, callback in _walk(get_resolver().url_patterns, "", "", ()):
        if not template.startswith(API_PREFIX):
            continue
        if not name:
            raise AssertionError(f"{template}: every API route needs a name (for reverse())")
        view_class, methods = _methods(callback, template)
        routes.append(Route(name, template, params, view_class, methods))
    return routes


# --- objects for routes with path parameters --------------------------------------------


@dataclass(frozen=True)
class ObjectSpec:
    """How to reach an object of a firm through a route with path parameters.

    ``kwargs(world)`` builds (or finds) an object of ``world``'s firm and returns the
    route's URL kwargs for it; it runs inside ``firm_context(world.firm)``.
    ``payloads`` are request bodies per unsafe method (those that would change it).
    """

    kwargs: Callable[[FirmWorld], dict[str, Any]]
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The object is platform-wide reference data (an asset, a price), owned by no firm:
    #: every firm reaches the same object and must read the same answer, so the matrix
    #: checks "identical for both firms, and nothing of the other firm in it" instead of
    #: "another firm's object reads like a missing one".
    platform_wide: bool = False


def _book(world: FirmWorld) -> Book:
    """The firm's client book (tests/accounts/book.py), built once per test."""
    with transaction.atomic():
        built = Household.objects.filter(name=f"Mine household {world.firm.slug}").first()
    if built is None:
        return make_book(world)
    with transaction.atomic():
        return Book(
            world,
            other_advisor=User.objects.get(username=f"advisor2.{world.firm.slug}"),
            other_investor=User.objects.get(username=f"investor2.{world.firm.slug}"),
            mine=built,
            theirs=Household.objects.get(name=f"Theirs household {world.firm.slug}"),
            client=Client.objects.get(user=world.user(Role.INVESTOR)),
            other_client=Client.objects.get(user__username=f"investor2.{world.firm.slug}"),
            portfolio=Portfolio.objects.get(number=f"{world.firm.slug.upper()}-001"),
            other_portfolio=Portfolio.objects.get(number=f"{world.firm.slug.upper()}-002"),
        )


def _questionnaire(world: FirmWorld) -> dict[str, Any]:
    with transaction.atomic():
        return {"pk": questionnaire_install_default().pk}


def _response(world: FirmWorld) -> dict[str, Any]:
    book = _book(world)
    with transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        return {"pk": response.pk}


def _flagged_profile(world: FirmWorld) -> RiskProfile:
    book = _book(world)
    with transaction.atomic():
        found = RiskProfile.objects.filter(client=book.client).first()
        if found is not None:
            return found
        questionnaire = questionnaire_install_default()
        answers = {q.code: q.options[-1].code for q in DEFAULT_QUESTIONS}
        answers["tol_fall_20"] = "sell_all"  # contradicts "maximum growth": a flag
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        return response_submit(response=response, actor=None, answers=answers)


def _profile(world: FirmWorld) -> dict[str, Any]:
    return {"pk": _flagged_profile(world).pk}


def _flag(world: FirmWorld) -> dict[str, Any]:
    profile = _flagged_profile(world)
    with transaction.atomic():
        return {"pk": ProfileFlag.objects.filter(profile=profile).values_list("pk", flat=True)[0]}


def _pending_override(world: FirmWorld) -> dict[str, Any]:
    profile = _flagged_profile(world)
    with transaction.atomic():
        model_portfolios_install_default()
        found = StrategyAssignment.objects.filter(status="pending_approval").first()
        if found is None:
            preservation = ModelPortfolio.objects.get(name="Capital preservation")
            found = strategy_override(
                profile=profile, model_portfolio=preservation, actor=None, rationale="Test."
            )
        return {"pk": found.pk}


def _member(world: FirmWorld) -> dict[str, Any]:
    membership = Membership.objects.get(user=world.user(Role.ADVISOR))
    return {"pk": membership.pk}


def _market_asset() -> Any:
    from portfolios.models_market import Asset, AssetClass, Price, PriceStatus

    asset, _ = Asset.objects.get_or_create(
        symbol="MATRIXCOIN", defaults={"name": "Matrix coin", "asset_class": AssetClass.CRYPTO}
    )
    if not asset.prices.exists():
        Price.objects.create(asset=asset, date=dt.date(2024, 1, 1), close=Decimal("10.5"))
        Price.objects.create(
            asset=asset,
            date=dt.date(2024, 1, 2),
            close=Decimal("99.5"),
            status=PriceStatus.HELD,
            status_reason="move of +848% is 40 standard deviations",
        )
    return asset


def _asset_prices(world: FirmWorld) -> dict[str, Any]:
    return {"symbol": _market_asset().symbol}


def _held_price(world: FirmWorld) -> dict[str, Any]:
    from portfolios.models_market import PriceStatus

    return {"pk": _market_asset().prices.get(status=PriceStatus.HELD).pk}


def _strategy_version(world: FirmWorld) -> Any:
    """A strategy of the world's firm with one version, written directly (no prices needed)."""
    from portfolios.models_strategy import Strategy, StrategyVersion

    asset = _market_asset()
    strategy, _ = Strategy.objects.get_or_create(
        name="Matrix strategy",
        defaults={"method": "fixed", "universe": [asset.symbol], "parameters": {}},
    )
    version = StrategyVersion.objects.filter(strategy=strategy, number=1).first()
    if version is None:
        version = StrategyVersion.objects.create(
            strategy=strategy,
            number=1,
            method="fixed",
            inputs={"method": "fixed", "universe": [asset.symbol]},
            weights={asset.symbol: "1.0000000000"},
            fingerprint="f" * 64,
            prices_as_of=dt.date(2024, 1, 1),
            prices_digest="e" * 64,
            expected_return=Decimal("0.05"),
            volatility=Decimal("0.1"),
            sharpe_ratio=Decimal("0.5"),
            risk_free_rate=Decimal(0),
            trigger="system",
            trigger_label="matrix",
        )
    return version


def _strategy(world: FirmWorld) -> dict[str, Any]:
    return {"pk": _strategy_version(world).strategy_id}


def _version(world: FirmWorld) -> dict[str, Any]:
    version = _strategy_version(world)
    return {"pk": version.strategy_id, "number": version.number}


def _portfolio(world: FirmWorld) -> dict[str, Any]:
    return {"pk": _book(world).portfolio.pk}


def _cash_flow(world: FirmWorld) -> dict[str, Any]:
    from portfolios.models_holdings import CashFlow

    portfolio = _book(world).portfolio
    with transaction.atomic():
        flow = CashFlow.objects.filter(portfolio=portfolio, status="pending").first()
        if flow is None:
            flow = CashFlow.objects.create(portfolio=portfolio, kind="deposit", amount="100.00")
        return {"pk": flow.pk}


def _policy(world: FirmWorld) -> dict[str, Any]:
    from portfolios.models_rebalance import RebalancePolicy

    with transaction.atomic():
        policy, _ = RebalancePolicy.objects.get_or_create(name="Matrix policy")
        return {"pk": policy.pk}


def _rebalance_run(world: FirmWorld) -> Any:
    """A computed run awaiting approval with one proposal (the investor's portfolio, in
    the world's advisor's household) and one order, written directly."""
    from portfolios.models_rebalance import (
        Order,
        OrderSide,
        OrderStatus,
        RebalanceRun,
        RunPortfolio,
        RunPortfolioStatus,
        RunStatus,
    )

    book = _book(world)
    with transaction.atomic():
        row = RunPortfolio.objects.filter(
            run__created_label="matrix", status=RunPortfolioStatus.PROPOSED
        ).first()
        if row is not None:
            return row
        asset = _market_asset()
        run = RebalanceRun.objects.create(
            firm=world.firm,
            trigger="manual",
            prices_as_of=dt.date(2024, 1, 1),
            status=RunStatus.AWAITING_APPROVAL,
            portfolios_total=1,
            portfolios_done=1,
            portfolios_triggered=1,
            chunks_total=1,
            chunks_done=1,
            orders_count=1,
            created_label="matrix",
        )
        row = RunPortfolio.objects.create(
            firm=world.firm,
            run=run,
            portfolio=book.portfolio,
            status=RunPortfolioStatus.PROPOSED,
            trigger="BAND",
            nav=Decimal("1000.00"),
            cash_before=Decimal("100.00"),
            cash_flow=Decimal("0.00"),
            cash_after=Decimal("89.50"),
            max_drift=Decimal("0.1"),
            turnover=Decimal("0.01"),
        )
        Order.objects.create(
            firm=world.firm,
            run=run,
            portfolio=book.portfolio,
            asset=asset,
            side=OrderSide.BUY,
            quantity=Decimal(1),
            price=Decimal("10.5"),
            value=Decimal("10.50"),
            estimated_cost=Decimal("0.00"),
            reason="BAND_REBALANCE",
            drift=Decimal("-0.1"),
            status=OrderStatus.PROPOSED,
        )
        return row


def _run(world: FirmWorld) -> dict[str, Any]:
    return {"pk": _rebalance_run(world).run_id}


def _run_portfolio(world: FirmWorld) -> dict[str, Any]:
    row = _rebalance_run(world)
    return {"pk": row.run_id, "portfolio_id": row.portfolio_id}


def _notification(world: FirmWorld) -> dict[str, Any]:
    from accounts.notifications.services import Outgoing, notifications_emit

    with transaction.atomic():
        notifications_emit(
            items=[
                Outgoing(
                    event_type="strategy_assigned",
                    event_key="matrix",
                    recipient_id=world.users[Role.FIRM_ADMIN].pk,
                    subject="Matrix",
                    body="Matrix",
                )
            ]
        )
        from accounts.models_notifications import Notification

        return {"pk": Notification.objects.get(event_key="matrix").pk}


def _webhook(world: FirmWorld) -> dict[str, Any]:
    from accounts.models_notifications import WebhookEndpoint

    with transaction.atomic():
        ep, _ = WebhookEndpoint.objects.get_or_create(
            url="https://hooks.example.com/matrix", defaults={"secret": "s"}
        )
        return {"pk": ep.pk}


def _audit_event(world: FirmWorld) -> dict[str, Any]:
    from compliance.services import audit_record

    with transaction.atomic():
        return {"pk": audit_record(action="matrix.event", payload={"firm": world.firm.slug}).pk}


def _compliance_rule(world: FirmWorld) -> dict[str, Any]:
    from compliance.models import ComplianceRule
    from compliance.services.rule_management import compliance_rule_create

    with transaction.atomic():
        rule = ComplianceRule.objects.filter(name="Matrix cap").first()
        if rule is None:
            rule = compliance_rule_create(
                firm=world.firm,
                actor=world.user("compliance"),
                name="Matrix cap",
                kind="concentration_asset",
                severity="hard",
                params={"max_share": 0.3},
            )
        return {"pk": rule.pk}


def _run_objects(world: FirmWorld) -> tuple[Any, Any]:
    """A held run portfolio and one of its orders, written directly."""
    from portfolios.models_rebalance import (
        Order,
        OrderStatus,
        RebalanceRun,
        RunPortfolio,
        RunPortfolioStatus,
        RunStatus,
    )

    portfolio = _book(world).portfolio
    with transaction.atomic():
        asset = _market_asset()
        rp = RunPortfolio.objects.filter(
            portfolio=portfolio, status=RunPortfolioStatus.HELD
        ).first()
        if rp is None:
            run = RebalanceRun.objects.create(
                trigger="manual",
                prices_as_of=dt.date(2024, 1, 1),
                status=RunStatus.AWAITING_APPROVAL,
                created_label="matrix",
                portfolios_total=1,
                portfolios_done=1,
            )
            zero = Decimal("0")
            rp = RunPortfolio.objects.create(
                run=run,
                portfolio=portfolio,
                status=RunPortfolioStatus.HELD,
                trigger="BAND",
                nav=zero,
                cash_before=zero,
                cash_flow=zero,
                cash_after=zero,
                max_drift=zero,
                turnover=zero,
                compliance_outcome=1,
            )
            Order.objects.create(
                run=run,
                portfolio=portfolio,
                asset=asset,
                side="buy",
                quantity=Decimal("1"),
                price=Decimal("10.5"),
                value=Decimal("10.50"),
                estimated_cost=zero,
                reason="BAND_REBALANCE",
                drift=zero,
                status=OrderStatus.HELD,
                compliance_outcome=1,
            )
        order = Order.objects.filter(run_id=rp.run_id, portfolio=portfolio).first()
        return rp, order


OBJECTS: dict[str, ObjectSpec] = {
    "api:audit-event-detail": ObjectSpec(kwargs=_audit_event),
    "api:compliance-rule-detail": ObjectSpec(
        kwargs=_compliance_rule, payloads={"patch": {"params": {"max_share": 0.35}}}
    ),
    "api:compliance-rule-versions": ObjectSpec(kwargs=_compliance_rule),
    "api:compliance-review-release": ObjectSpec(
        kwargs=lambda w: {"pk": _run_objects(w)[0].pk}, payloads={"post": {"reason": "matrix"}}
    ),
    "api:compliance-review-reject": ObjectSpec(
        kwargs=lambda w: {"pk": _run_objects(w)[0].pk}, payloads={"post": {"reason": "matrix"}}
    ),
    "api:order-explain": ObjectSpec(kwargs=lambda w: {"pk": _run_objects(w)[1].pk}),
    "api:rebalance-run-detail": ObjectSpec(kwargs=_run),
    "api:rebalance-run-approve": ObjectSpec(kwargs=_run, payloads={"post": {"note": "ok"}}),
    "api:rebalance-run-reject": ObjectSpec(kwargs=_run, payloads={"post": {"note": "no"}}),
    "api:rebalance-run-portfolio-list": ObjectSpec(kwargs=_run),
    "api:rebalance-run-portfolio-detail": ObjectSpec(kwargs=_run_portfolio),
    "api:rebalance-run-portfolio-approve": ObjectSpec(
        kwargs=_run_portfolio, payloads={"post": {"note": "ok"}}
    ),
    "api:rebalance-run-portfolio-reject": ObjectSpec(
        kwargs=_run_portfolio, payloads={"post": {"note": "no"}}
    ),
    "api:portfolio-trades": ObjectSpec(kwargs=lambda w: {"pk": _book(w).portfolio.pk}),
    "api:notification-read": ObjectSpec(kwargs=_notification, payloads={"post": {}}),
    "api:notification-archive": ObjectSpec(kwargs=_notification, payloads={"post": {}}),
    "api:webhook-detail": ObjectSpec(
        kwargs=_webhook, payloads={"patch": {"description": "matrix"}}
    ),
    "api:portfolio-strategy": ObjectSpec(
        kwargs=_portfolio, payloads={"put": {"strategy_id": None}}
    ),
    "api:portfolio-policy": ObjectSpec(kwargs=_portfolio, payloads={"put": {"policy_id": None}}),
    "api:portfolio-holdings": ObjectSpec(kwargs=_portfolio),
    "api:portfolio-ledger": ObjectSpec(kwargs=_portfolio),
    "api:portfolio-cash-flow-list": ObjectSpec(
        kwargs=_portfolio, payloads={"post": {"kind": "deposit", "amount": "25.00"}}
    ),
    "api:cash-flow-cancel": ObjectSpec(kwargs=_cash_flow, payloads={"post": {"note": "matrix"}}),
    "api:policy-detail": ObjectSpec(
        kwargs=_policy, payloads={"patch": {"name": "Renamed by the matrix"}}
    ),
    "api:strategy-policy": ObjectSpec(kwargs=_strategy, payloads={"put": {"policy_id": None}}),
    "api:firm-member-detail": ObjectSpec(
        kwargs=_member, payloads={"patch": {"role": Role.FIRM_ADMIN}, "put": {"role": "investor"}}
    ),
    "api:household-detail": ObjectSpec(
        kwargs=lambda w: {"pk": _book(w).mine.pk}, payloads={"patch": {"name": "Renamed"}}
    ),
    "api:household-advisors": ObjectSpec(
        kwargs=lambda w: {"pk": _book(w).mine.pk}, payloads={"put": {"advisor_ids": []}}
    ),
    "api:client-detail": ObjectSpec(
        kwargs=lambda w: {"pk": _book(w).client.pk}, payloads={"patch": {"phone": "555-0199"}}
    ),
    "api:client-restrictions": ObjectSpec(
        kwargs=lambda w: (_market_asset(), {"pk": _book(w).client.pk})[1],
        payloads={"put": {"excluded_assets": ["MATRIXCOIN"], "note": "no coins"}, "delete": {}},
    ),
    "api:client-restrictions-preview": ObjectSpec(
        kwargs=lambda w: {"pk": _book(w).client.pk},
    ),
    "api:client-invitation": ObjectSpec(
        kwargs=lambda w: {"pk": _book(w).client.pk},
        payloads={"post": {"email": "someone@example.test"}},
    ),
    "api:portfolio-detail": ObjectSpec(
        kwargs=lambda w: {"pk": _book(w).portfolio.pk}, payloads={"patch": {"status": "frozen"}}
    ),
    "api:questionnaire-detail": ObjectSpec(
        kwargs=_questionnaire, payloads={"patch": {"name": "Renamed"}}
    ),
    "api:questionnaire-publish": ObjectSpec(kwargs=_questionnaire),
    "api:questionnaire-new-version": ObjectSpec(kwargs=_questionnaire),
    "api:questionnaire-statistics": ObjectSpec(kwargs=_questionnaire),
    "api:questionnaire-response-detail": ObjectSpec(
        kwargs=_response, payloads={"patch": {"answers": {"tol_job": "accept"}}}
    ),
    "api:questionnaire-response-submit": ObjectSpec(
        kwargs=_response,
        payloads={"post": {"answers": {q.code: q.options[0].code for q in DEFAULT_QUESTIONS}}},
    ),
    "api:risk-profile-detail": ObjectSpec(kwargs=_profile),
    "api:profile-flag-resolve": ObjectSpec(kwargs=_flag, payloads={"post": {"note": "Discussed."}}),
    "api:strategy-assignment-decision": ObjectSpec(
        kwargs=_pending_override, payloads={"post": {"approve": True}}
    ),
    "api:market-asset-prices": ObjectSpec(kwargs=_asset_prices, platform_wide=True),
    "api:market-price-review": ObjectSpec(
        kwargs=_held_price,
        payloads={"post": {"decision": "rejected", "note": "matrix"}},
        platform_wide=True,
    ),
    "api:strategy-detail": ObjectSpec(
        kwargs=_strategy, payloads={"patch": {"name": "Renamed by the matrix"}}
    ),
    "api:strategy-version-list": ObjectSpec(kwargs=_strategy, payloads={"post": {}}),
    "api:strategy-version-detail": ObjectSpec(kwargs=_version),
}

# Request bodies of unsafe methods on routes without path parameters, by route name;
# a callable receives the acting user. Others send {}.
PAYLOADS: dict[str, dict[str, Any]] = {
    "api:auth-token": {"post": lambda user: {"username": user.username, "password": PASSWORD}},
    "api:firm": {"patch": {"name": "Renamed", "settings": {"risk_profile_valid_months": 3}}},
}


def object_spec(route: Route) -> ObjectSpec:
    spec = OBJECTS.get(route.name)
    if spec is None:
        raise AssertionError(
            f"API route {route.name} ({route.template}) takes path parameters "
            f"{[name for name, _ in route.params]}: teach the isolation matrix to build an "
            "object of a given firm for it (tests/api/routes.py, OBJECTS)"
        )
    return spec


def object_kwargs(route: Route, world: FirmWorld) -> dict[str, Any]:
    with firm_context(world.firm):
        kwargs = object_spec(route).kwargs(world)
    missing = {name for name, _ in route.params} - set(kwargs)
    assert not missing, f"OBJECTS[{route.name!r}] gave no value for {sorted(missing)}"
    return kwargs


def missing_kwargs(route: Route) -> dict[str, Any]:
    """URL kwargs naming no object at all."""
    values: dict[str, Any] = {}
    for name, converter in route.params:
        if isinstance(converter, IntConverter):
            values[name] = 9 * 10**15
        elif isinstance(converter, UUIDConverter):
            values[name] = uuid.UUID(int=0)
        else:
            values[name] = "no-such-object"
    return values


def payload(route: Route, method: str, actor: User) -> dict[str, Any]:
    if route.params:
        body = object_spec(route).payloads.get(method, {})
    else:
        body = PAYLOADS.get(route.name, {}).get(method, {})
    return body(actor) if callable(body) else dict(body)
