"""The demo's book of portfolios: thousands per firm, bought at real fixture prices some
months or years ago and drifted since by the real price moves.

A firm seeder of :mod:`accounts.demo` (registered in :mod:`portfolios.apps`, after the
strategies and the profile mapping). ``DEMO_PORTFOLIOS`` (default 2000) portfolios are
spread over new households of 1-3 portfolios (one or two clients each, each client with
a current risk profile); every portfolio follows the firm's best-fitting active demo
strategy for its client's risk level (crypto strategies go to crypto accounts).

What each portfolio holds:

* a deposit some months or years before the latest fixture price, invested at the real
  closes of that time in the strategy's latest weights (whole shares where the asset
  trades in whole units); today's real closes have drifted it, so some portfolios are
  outside 5-point bands and some inside;
* taxable portfolios hold several tax lots per asset bought at the real historical
  closes of their dates (some above today's price: unrealised losses); some lots were
  bought within the last 30 days and some portfolios sold a lot at a loss within the
  last 30 days, so wash-sale rules have something to bite on;
* the remaining cash (never negative); a ledger entry for every deposit, buy and sale;
* about 5% have a pending deposit or withdrawal.

Fast: everything is written with ``bulk_create`` in large batches (no per-row save, no
per-row audit: one ``demo_book.seeded`` event with the counts). Idempotent: a firm that
has its first book portfolio is left alone. Deterministic for a firm (seeded by slug).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.demo import SEED_ACTOR, Created, DemoFirm
from accounts.models import (
    Client,
    Firm,
    Household,
    HouseholdUserObjectPermission,
    KycStatus,
    Questionnaire,
    QuestionnaireResponse,
    ResponseStatus,
    RiskProfile,
    Role,
    User,
)
from compliance.services import audit_record
from portfolios.models import Portfolio, PortfolioType
from portfolios.models_holdings import (
    CashFlow,
    CashFlowKind,
    Holding,
    LedgerEntry,
    LedgerKind,
    TaxLot,
)
from portfolios.models_market import Asset, Price, PriceStatus
from portfolios.models_strategy import StrategyVersion
from portfolios.selectors_strategy import strategy_list_for_risk_level

BATCH = 5000
DEFAULT_COUNT = 2000
CENT = Decimal("0.01")
INVESTED = Decimal("0.99")  # of a deposit; the rest stays cash
ZERO = Decimal(0)
FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Aiko", "Mateus", "Priya", "Chen", "Fatima", "Olu", "Ines",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Nakamura", "Okafor", "Novak", "Schmidt",
)  # fmt: skip


def demo_portfolio_count() -> int:
    """``DEMO_PORTFOLIOS`` from the environment, else the setting, else 2000."""
    raw = os.environ.get("DEMO_PORTFOLIOS", "").strip()
    if not raw:
        return int(getattr(settings, "DEMO_PORTFOLIOS", DEFAULT_COUNT))
    value = int(raw)
    if value < 0:
        raise ValueError("DEMO_PORTFOLIOS must be a number of portfolios, 0 or more")
    return value


def _prefix(spec: DemoFirm) -> str:
    return f"{spec.slug.upper()}-B"


@dataclass
class _Series:
    dates: np.ndarray[Any, np.dtype[np.int64]]  # ordinal days, ascending
    closes: list[Decimal]
    latest_date: dt.date
    latest: Decimal

    def at(self, day: dt.date) -> tuple[dt.date, Decimal]:
        """The last close on or before ``day`` (the first one when ``day`` is earlier)."""
        i = int(np.searchsorted(self.dates, day.toordinal(), side="right")) - 1
        i = max(i, 0)
        return dt.date.fromordinal(int(self.dates[i])), self.closes[i]


def _series(asset_ids: list[int]) -> dict[int, _Series]:
    rows: dict[int, dict[dt.date, Decimal]] = defaultdict(dict)
    for asset_id, day, close, _frequency in (
        Price.objects.filter(asset_id__in=asset_ids, status=PriceStatus.OK)
        .order_by("asset_id", "date", "-frequency")
        .values_list("asset_id", "date", "close", "frequency")
    ):
        rows[asset_id][day] = close  # daily wins over monthly on the same date (sorted last)
    out = {}
    for asset_id, by_day in rows.items():
        days = sorted(by_day)
        out[asset_id] = _Series(
            np.array([d.toordinal() for d in days], dtype=np.int64),
            [by_day[d] for d in days],
            days[-1],
            by_day[days[-1]],
        )
    return out


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.month - 1 - months, 12)
    return dt.date(day.year + year, month + 1, min(day.day, 28))


def _quantity(value: Decimal, price: Decimal, asset: Asset) -> Decimal:
    raw = value / price
    step = asset.quantity_step if asset.fractional else Decimal(1)
    return (raw / step).to_integral_value(rounding=ROUND_DOWN) * step


def _bulk(model: Any, rows: list[Any]) -> list[Any]:
    out = []
    for start in range(0, len(rows), BATCH):
        out += model.objects.bulk_create(rows[start : start + BATCH])
    return out


def seed_portfolio_book(firm: Firm, spec: DemoFirm) -> Created:
    """The firm's demo book (see the module doc); returns the counts."""
    created = Created()
    count = demo_portfolio_count()
    prefix = _prefix(spec)
    if count == 0 or Portfolio.objects.filter(number__startswith=prefix).exists():
        return created
    started = time.perf_counter()
    by_level = {level: strategy_list_for_risk_level(risk_level=level) for level in range(1, 11)}
    strategies = {s.pk: s for candidates in by_level.values() for s in candidates}
    if not strategies:
        return created  # no active strategy (market data not loaded): nothing to follow
    versions = {
        v.strategy_id: v
        for v in StrategyVersion.objects.filter(strategy_id__in=list(strategies))
        .order_by("strategy_id", "-number")
        .distinct("strategy_id")
    }
    weights = {sid: v.weights_decimal() for sid, v in versions.items()}
    symbols = {s for w in weights.values() for s in w}
    assets = {a.symbol: a for a in Asset.objects.filter(symbol__in=symbols)}
    series = _series([a.pk for a in assets.values()])
    usable = {
        sid: {s: w for s, w in ws.items() if s in assets and assets[s].pk in series and w > 0}
        for sid, ws in weights.items()
    }
    level_strategy = {
        level: next((s.pk for s in cands if usable.get(s.pk)), None)
        for level, cands in by_level.items()
    }
    levels = [lv for lv, sid in level_strategy.items() if sid is not None]
    if not levels:
        return created

    rng = np.random.default_rng(zlib.crc32(spec.slug.encode()))
    today = timezone.localdate()
    firm_id = firm.pk

    # Households of 1-3 portfolios, one or two clients each.
    plan: list[list[int]] = []  # per household: portfolios per client
    total = 0
    while total < count:
        k = min(int(rng.integers(1, 4)), count - total)
        plan.append([k] if k == 1 or rng.random() < 0.3 else [k - k // 2, k // 2])
        total += k
    households = _bulk(
        Household,
        [
            Household(
                firm_id=firm_id,
                name=f"{LAST_NAMES[i % len(LAST_NAMES)]} household {prefix}{i + 1:05d}",
                notes="demo book seed",
            )
            for i in range(len(plan))
        ],
    )
    created.add("book households", len(households))
    advisor = User.objects.filter(username__iexact=spec.username(Role.ADVISOR)).first()
    if advisor is not None:
        perms = list(
            Permission.objects.filter(
                content_type__app_label="accounts",
                codename__in=["view_household", "change_household"],
            )
        )
        grants = [
            HouseholdUserObjectPermission(
                firm_id=firm_id, user=advisor, permission=perm, content_object=h
            )
            for i, h in enumerate(households)
            if i % 4 != 3  # a quarter of the book is the firm admin's alone
            for perm in perms
        ]
        _bulk(HouseholdUserObjectPermission, grants)

    clients: list[Client] = []
    client_plan: list[tuple[int, int, int]] = []  # (household index, portfolios, risk level)
    for h_index, split in enumerate(plan):
        last = LAST_NAMES[h_index % len(LAST_NAMES)]
        for c_index, k in enumerate(split):
            n = len(clients)
            clients.append(
                Client(
                    firm_id=firm_id,
                    household=households[h_index],
                    first_name=FIRST_NAMES[(h_index * 7 + c_index * 3) % len(FIRST_NAMES)],
                    last_name=last,
                    email=f"book{n + 1}@{spec.slug}.example.com",
                    date_of_birth=dt.date(1940 + n % 60, 1 + n % 12, 1 + n % 28),
                    kyc_status=KycStatus.VERIFIED,
                    kyc_date=today,
                )
            )
            client_plan.append((h_index, k, int(rng.choice(levels))))
    clients = _bulk(Client, clients)
    created.add("book clients", len(clients))

    questionnaire = (
        Questionnaire.objects.filter(status="published").order_by("-version", "-pk").first()
    )
    if questionnaire is not None:
        now = timezone.now()
        responses = _bulk(
            QuestionnaireResponse,
            [
                QuestionnaireResponse(
                    firm_id=firm_id,
                    client=c,
                    questionnaire=questionnaire,
                    answers={},
                    status=ResponseStatus.SUBMITTED,
                    submitted_at=now,
                )
                for c in clients
            ],
        )
        profiles = [
            RiskProfile(
                firm_id=firm_id,
                client=c,
                response=r,
                questionnaire=questionnaire,
                tolerance_score=Decimal(level * 10),
                capacity_score=Decimal(level * 10),
                horizon_years=Decimal(5 + level * 2),
                tolerance_level=level,
                capacity_level=level,
                horizon_level=level,
                risk_level=level,
                binding=["tolerance"],
                explanation=f"Demo book seed: risk level {level}.",
                valid_until=today + dt.timedelta(days=365),
            )
            for c, r, (_, _, level) in zip(clients, responses, client_plan, strict=True)
        ]
        _bulk(RiskProfile, profiles)
        created.add("book risk profiles", len(profiles))

    # Portfolios, each with its purchase plan.
    portfolios: list[Portfolio] = []
    specs: list[dict[str, Any]] = []
    for client, (_, k, level) in zip(clients, client_plan, strict=True):
        strategy_id = level_strategy[level]
        assert strategy_id is not None
        crypto = any(assets[s].asset_class == "crypto" for s in usable[strategy_id])
        for _ in range(k):
            n = len(portfolios) + 1
            if crypto:
                kind = PortfolioType.CRYPTO
            else:
                kind = rng.choice(
                    [PortfolioType.TAXABLE, PortfolioType.TRADITIONAL_IRA, PortfolioType.ROTH_IRA],
                    p=[0.6, 0.2, 0.2],
                )
            portfolios.append(
                Portfolio(
                    firm_id=firm_id,
                    client=client,
                    number=f"{prefix}{n:05d}",
                    account_type=str(kind),
                    discretionary=bool(rng.random() < 0.85),
                    strategy_id=strategy_id,
                )
            )
            specs.append(
                {
                    "household": client.household_id,
                    "strategy": strategy_id,
                    "deposit": Decimal(int(np.exp(rng.normal(11.3, 0.9)))).quantize(CENT),
                    "months": int(rng.integers(3, 37)),
                    "lots": int(rng.integers(2, 5)) if kind == PortfolioType.TAXABLE else 1,
                    "recent": kind == PortfolioType.TAXABLE and rng.random() < 0.2,
                    "loss_sale": kind == PortfolioType.TAXABLE and rng.random() < 0.1,
                    "flow": rng.random(),
                }
            )
    portfolios = _bulk(Portfolio, portfolios)
    created.add("book portfolios", len(portfolios))

    # The client book's own portfolios (the demo investors' among them) are funded the
    # same way, following their strategy (or the first usable one).
    own = list(
        Portfolio.objects.filter(firm_id=firm_id)
        .exclude(number__startswith=prefix)
        .exclude(pk__in=Holding.objects.values("portfolio_id"))
        .select_related("client")
        .order_by("pk")
    )
    fallback = level_strategy[levels[len(levels) // 2]]
    for portfolio in own:
        if not usable.get(portfolio.strategy_id or -1):
            portfolio.strategy_id = fallback
            Portfolio.objects.filter(pk=portfolio.pk).update(strategy_id=fallback)
        portfolios.append(portfolio)
        specs.append(
            {
                "household": portfolio.client.household_id,
                "strategy": portfolio.strategy_id,
                "deposit": Decimal(int(np.exp(rng.normal(11.3, 0.6)))).quantize(CENT),
                "months": int(rng.integers(6, 25)),
                "lots": 3 if portfolio.account_type == PortfolioType.TAXABLE else 1,
                "recent": False,
                "loss_sale": False,
                "flow": 1.0,
            }
        )
    created.add("client book portfolios funded", len(own))

    holdings: list[Holding] = []
    lots: list[TaxLot] = []
    ledger: list[LedgerEntry] = []
    flows: list[CashFlow] = []
    updates: list[Portfolio] = []
    for portfolio, plan_ in zip(portfolios, specs, strict=True):
        household = plan_["household"]
        deposit: Decimal = plan_["deposit"]
        target = usable[plan_["strategy"]]
        scale = sum(target.values(), start=ZERO)
        cash = deposit
        first_day: dt.date | None = None
        last_day: dt.date | None = None
        entries: list[LedgerEntry] = []
        quantity_by_asset: dict[int, Decimal] = defaultdict(Decimal)
        taxable = portfolio.account_type == PortfolioType.TAXABLE
        for symbol, weight in target.items():
            asset = assets[symbol]
            s = series[asset.pk]
            budget = deposit * INVESTED * weight / scale
            n_lots = plan_["lots"]
            shares = [Decimal(1) / n_lots] * n_lots
            for j, share in enumerate(shares):
                recent = plan_["recent"] and j == n_lots - 1 and n_lots > 1
                if recent:
                    day, price = today - dt.timedelta(days=int(rng.integers(2, 29))), s.latest
                else:
                    months = plan_["months"] - j * max(1, plan_["months"] // (n_lots + 1))
                    day, price = s.at(_months_before(s.latest_date, max(months, 1)))
                quantity = _quantity(budget * share, price, asset)
                if quantity <= 0:
                    continue
                amount = (quantity * price).quantize(CENT)
                cash -= amount
                quantity_by_asset[asset.pk] += quantity
                first_day = day if first_day is None else min(first_day, day)
                last_day = day if last_day is None else max(last_day, day)
                if taxable:
                    lots.append(
                        TaxLot(
                            firm_id=firm_id,
                            portfolio=portfolio,
                            asset=asset,
                            acquired_on=day,
                            quantity=quantity,
                            original_quantity=quantity,
                            unit_cost=price,
                        )
                    )
                entries.append(
                    LedgerEntry(
                        firm_id=firm_id,
                        portfolio=portfolio,
                        household_id=household,
                        kind=LedgerKind.BUY,
                        trade_date=day,
                        asset=asset,
                        quantity=quantity,
                        price=price,
                        amount=-amount,
                        note="demo book seed",
                    )
                )
        if plan_["loss_sale"] and target:
            # A lot bought dear and sold at today's lower price within the last 30 days.
            for symbol in target:
                asset = assets[symbol]
                s = series[asset.pk]
                dear_day, dear = max(
                    (s.at(_months_before(s.latest_date, m)) for m in range(2, 25)),
                    key=lambda pair: pair[1],
                )
                if dear <= s.latest:
                    continue
                quantity = _quantity(deposit * Decimal("0.02"), dear, asset)
                if quantity <= 0:
                    continue
                cost = (quantity * dear).quantize(CENT)
                if cost > cash:
                    continue
                proceeds = (quantity * s.latest).quantize(CENT)
                sold_on = today - dt.timedelta(days=int(rng.integers(1, 29)))
                cash += proceeds - cost
                lots.append(
                    TaxLot(
                        firm_id=firm_id,
                        portfolio=portfolio,
                        asset=asset,
                        acquired_on=dear_day,
                        quantity=ZERO,
                        original_quantity=quantity,
                        unit_cost=dear,
                        closed_on=sold_on,
                    )
                )
                common = {
                    "firm_id": firm_id,
                    "portfolio": portfolio,
                    "household_id": household,
                    "asset": asset,
                    "quantity": quantity,
                    "note": "demo book seed",
                }
                entries.append(
                    LedgerEntry(
                        kind=LedgerKind.BUY, trade_date=dear_day, price=dear, amount=-cost, **common
                    )
                )
                entries.append(
                    LedgerEntry(
                        kind=LedgerKind.SELL,
                        trade_date=sold_on,
                        price=s.latest,
                        amount=proceeds,
                        realised_gain=proceeds - cost,
                        **common,
                    )
                )
                first_day = dear_day if first_day is None else min(first_day, dear_day)
                break
        deposit_day = first_day or today
        ledger.append(
            LedgerEntry(
                firm_id=firm_id,
                portfolio=portfolio,
                household_id=household,
                kind=LedgerKind.DEPOSIT,
                trade_date=deposit_day,
                amount=deposit,
                note="demo book seed: initial deposit",
            )
        )
        ledger += entries
        holdings += [
            Holding(firm_id=firm_id, portfolio=portfolio, asset_id=a, quantity=q)
            for a, q in quantity_by_asset.items()
        ]
        assert cash >= 0, "the purchases never spend more than the deposit"
        portfolio.cash = cash
        portfolio.last_rebalanced_on = last_day
        updates.append(portfolio)
        flow = plan_["flow"]
        if flow < 0.03:
            amount = (deposit * Decimal("0.05")).quantize(CENT)
            flows.append(
                CashFlow(firm_id=firm_id, portfolio=portfolio, kind=CashFlowKind.DEPOSIT,
                         amount=amount)
            )  # fmt: skip
        elif flow < 0.05 and cash > 0:
            amount = max(CENT, min(cash, (deposit * Decimal("0.03")).quantize(CENT)))
            flows.append(
                CashFlow(firm_id=firm_id, portfolio=portfolio, kind=CashFlowKind.WITHDRAWAL,
                         amount=amount)
            )  # fmt: skip
    for start in range(0, len(updates), BATCH):
        Portfolio.objects.bulk_update(
            updates[start : start + BATCH], ["cash", "last_rebalanced_on"]
        )
    _bulk(Holding, holdings)
    _bulk(TaxLot, lots)
    _bulk(LedgerEntry, ledger)
    _bulk(CashFlow, flows)
    created.add("holdings", len(holdings))
    created.add("tax lots", len(lots))
    created.add("ledger entries", len(ledger))
    created.add("pending cash flows", len(flows))
    seconds = round(time.perf_counter() - started, 2)
    audit_record(
        action="demo_book.seeded",
        actor_label=SEED_ACTOR,
        object_type="firm",
        object_id=firm_id,
        payload={**created.counts, "seconds": seconds},
    )
    return created
