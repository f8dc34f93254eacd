"""A synthetic book for ``bench_rebalance``: seeded in blocks, streamed through staged COPY.

N portfolios of K positions on 20 fixed-weight strategies, half of them taxable with
one or two tax lots per position, two clients per household. Holdings were built
at target on D0 with per-portfolio noise; prices are stored for three dates:

* D0, the day the holdings were bought;
* D1, a typical day: small moves, so that only the noise pushes a portfolio out of
  its bands. The noise scale is calibrated (:func:`calibrate`) so that about 10% of
  the portfolios are outside the firm's default bands at D1 prices;
* D2, the worst day: every asset moves by up to 25% either way.

Everything is drawn block by block from ``default_rng([seed, block])``, so a block
can be drawn again (calibration, then seeding) and memory stays bounded by one
block whatever N. Ids are taken from the tables' sequences, block by block.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Field, Model
from django.utils import timezone

from accounts.models import Client, Firm, Household
from portfolios.bulk import staged_copy
from portfolios.engine import rebalance as engine
from portfolios.models import Portfolio, PortfolioStatus, PortfolioType
from portfolios.models_holdings import Holding, TaxLot
from portfolios.models_market import Asset, AssetClass, Price
from portfolios.models_strategy import Strategy, StrategyStatus, StrategyVersion

D0 = dt.date(2025, 1, 2)
D1 = dt.date(2025, 1, 30)  # typical day
D2 = dt.date(2025, 1, 31)  # worst day
STRATEGIES = 20
BLOCK = 5000  # portfolios per seeding block (even: households are pairs)
TYPICAL_SHARE = 0.10
CALIBRATION_SAMPLE = 50_000
STEP = 1_000_000  # quantities in micro-units (assets trade in steps of 0.000001)
TYPICAL_MOVE = 0.01  # D1: log-returns of about 1% against D0
WORST_MOVE = 0.25  # D2: uniform in +-25% against D0


@dataclasses.dataclass(frozen=True)
class Market:
    """The K assets (ids and symbols), their prices on D0, D1, D2 and the 20 targets."""

    asset_ids: list[int]
    symbols: list[str]
    p0: np.ndarray
    p1: np.ndarray
    p2: np.ndarray
    targets: np.ndarray  # (20, K) weights summing to 1
    strategy_ids: list[int]


@dataclasses.dataclass(frozen=True)
class Draw:
    """The random part of one block of portfolios (global indices start..start+m)."""

    start: int
    m: int
    nav: np.ndarray  # (m,) value on D0
    z: np.ndarray  # (m, K) standard normal noise
    two_lots: np.ndarray  # (m, K) bool
    split: np.ndarray  # (m, K) share of the first lot
    cost_factor: np.ndarray  # (m, K, 2) unit cost / D0 price of each lot
    age_days: np.ndarray  # (m, K, 2) days before D0 each lot was bought


def market_make(*, k: int, seed: int) -> Market:
    """Assets, prices on the three dates and 20 fixed-weight strategies (one version each)."""
    rng = np.random.default_rng([seed, 0xA55E7])
    p0 = np.round(rng.uniform(20, 400, k), 2)
    p1 = np.round(p0 * np.exp(rng.normal(0, TYPICAL_MOVE, k)), 2)
    p2 = np.round(p0 * (1 + rng.uniform(-WORST_MOVE, WORST_MOVE, k)), 2)
    asset_ids, symbols = [], []
    for j in range(k):
        asset, _ = Asset.objects.get_or_create(
            symbol=f"BNCH{j:03d}",
            defaults={
                "name": f"Benchmark {j}",
                "asset_class": AssetClass.US_EQUITY if j % 2 else AssetClass.US_BONDS,
                "fractional": True,
                "quantity_step": Decimal(1) / STEP,
            },
        )
        for day, close in ((D0, p0[j]), (D1, p1[j]), (D2, p2[j])):
            Price.objects.update_or_create(
                asset=asset,
                date=day,
                frequency="daily",
                defaults={"close": Decimal(f"{close:.2f}")},
            )
        asset_ids.append(asset.pk)
        symbols.append(asset.symbol)
    targets = np.zeros((STRATEGIES, k))
    strategy_ids = []
    for s in range(STRATEGIES):
        # Every asset at least half an equal share: no tiny positions.
        raw = 0.5 / k + 0.5 * rng.dirichlet(np.ones(k))
        weights = [Decimal(f"{w:.10f}") for w in raw]
        weights[0] += Decimal(1) - sum(weights)
        targets[s] = [float(w) for w in weights]
        strategy = Strategy.objects.create(
            name=f"Bench {s}", method="fixed", universe=symbols, status=StrategyStatus.ACTIVE
        )
        StrategyVersion.objects.create(
            strategy=strategy,
            number=1,
            method="fixed",
            inputs={"universe": symbols},
            weights={sym: str(w) for sym, w in zip(symbols, weights, strict=True)},
            fingerprint=f"bench-{s}",
            prices_as_of=D0,
            prices_digest="bench",
            expected_return=Decimal("0.05"),
            volatility=Decimal("0.1"),
            sharpe_ratio=Decimal("0.5"),
            risk_free_rate=Decimal("0"),
            trigger="system",
            trigger_label="bench",
        )
        strategy_ids.append(strategy.pk)
    return Market(asset_ids, symbols, p0, p1, p2, targets, strategy_ids)


def draw(*, block: int, n: int, k: int, seed: int) -> Draw:
    start = block * BLOCK
    m = min(BLOCK, n - start)
    rng = np.random.default_rng([seed, block])
    return Draw(
        start=start,
        m=m,
        nav=rng.lognormal(np.log(100_000), 0.8, m),
        z=rng.standard_normal((m, k)),
        two_lots=rng.random((m, k)) < 0.5,
        split=rng.uniform(0.2, 0.8, (m, k)),
        cost_factor=rng.uniform(0.7, 1.3, (m, k, 2)),
        age_days=rng.integers(10, 1500, (m, k, 2)),
    )


def strategy_index(d: Draw) -> np.ndarray:
    return np.arange(d.start, d.start + d.m) % STRATEGIES


def taxable(d: Draw) -> np.ndarray:
    """Even portfolios are taxable, odd ones Roth IRAs (a household holds one of each)."""
    result: np.ndarray = np.arange(d.start, d.start + d.m) % 2 == 0
    return result


def book_of(d: Draw, market: Market, *, noise: float, cash_target: float) -> Any:
    """(micro-unit quantities (m, K) int64, cash in cents (m,) int64) built on D0."""
    tw = market.targets[strategy_index(d)] * (1 - cash_target)
    value = tw * d.nav[:, None] * np.exp(noise * d.z)
    units = np.maximum(np.rint(value / market.p0 * STEP), 1).astype(np.int64)
    cash = np.rint(cash_target * d.nav * 100).astype(np.int64)
    return units, cash


def out_of_band(
    units: np.ndarray, cash: np.ndarray, tw: np.ndarray, prices: np.ndarray, policy: engine.Policy
) -> np.ndarray:
    """Per portfolio: some asset outside its band, as the engine decides it."""
    value = units / STEP * prices
    nav = value.sum(axis=1) + cash / 100
    drift = value / nav[:, None] - tw
    band = np.full(tw.shape, 2.0)
    if policy.abs_band is not None:
        band = np.minimum(band, policy.abs_band)
    if policy.rel_band is not None:
        band = np.minimum(band, policy.rel_band * tw)
    result: np.ndarray = (np.abs(drift) > band + engine.BAND_EPS).any(axis=1)
    return result


def calibrate(
    *, n: int, k: int, seed: int, market: Market, policy: engine.Policy
) -> tuple[float, float, int]:
    """The noise scale that puts about ``TYPICAL_SHARE`` of the portfolios outside their
    bands at D1 prices, found by bisection on the first blocks of the book (up to
    ``CALIBRATION_SAMPLE`` portfolios). Returns (noise, predicted share, sample size)."""
    draws = [
        draw(block=b, n=n, k=k, seed=seed) for b in range(-(-min(n, CALIBRATION_SAMPLE) // BLOCK))
    ]

    def share(noise: float) -> float:
        out = 0
        for d in draws:
            units, cash = book_of(d, market, noise=noise, cash_target=policy.cash_target)
            tw = market.targets[strategy_index(d)] * (1 - policy.cash_target)
            out += int(out_of_band(units, cash, tw, market.p1, policy).sum())
        return out / sum(d.m for d in draws)

    lo, hi = 0.0, 1.0
    while share(hi) < TYPICAL_SHARE and hi < 64:
        hi *= 2
    for _ in range(50):
        mid = (lo + hi) / 2
        if share(mid) < TYPICAL_SHARE:
            lo = mid
        else:
            hi = mid
    # A hair above the jump, so that the portfolio on the edge is clearly outside
    # (float noise in the engine's own sums cannot bring it back in).
    noise = hi * (1 + 1e-4)
    return noise, share(noise), sum(d.m for d in draws)


def _next_ids(table: str, count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return sorted(r[0] for r in cursor.fetchall())


def _default(model: type[Model], name: str) -> Any:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field.get_default()


def _micro(units: int) -> str:
    return f"{units // STEP}.{units % STEP:06d}"


def seed_book(
    *,
    firm: Firm,
    n: int,
    k: int,
    seed: int,
    market: Market,
    noise: float,
    cash_target: float,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Households, clients, portfolios, holdings and lots, one committed transaction per
    block, every table through staged COPY. Returns row counts."""
    counts = {"households": 0, "clients": 0, "portfolios": 0, "holdings": 0, "tax_lots": 0}
    now = timezone.now()
    client_defaults = [
        _default(Client, f) for f in ("tax_residence", "tax_status", "employment", "kyc_status")
    ]
    for block in range(-(-n // BLOCK)):
        d = draw(block=block, n=n, k=k, seed=seed)
        units, cash = book_of(d, market, noise=noise, cash_target=cash_target)
        with transaction.atomic():
            counts.update(
                {
                    key: counts[key] + added
                    for key, added in _seed_block(
                        firm=firm,
                        d=d,
                        market=market,
                        units=units,
                        cash=cash,
                        now=now,
                        client_defaults=client_defaults,
                    ).items()
                }
            )
        if progress is not None:
            progress(d.start + d.m)
    return counts


@dataclasses.dataclass(frozen=True)
class Seeded:
    """A seeded book: its market, row counts and the noise calibration behind it."""

    market: Market
    counts: dict[str, int]
    noise: float
    predicted_share: float
    calibration_sample: int


def calibrated_book_seed(
    *,
    firm: Firm,
    n: int,
    k: int,
    seed: int,
    noise: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Seeded:
    """The market, then a book of ``n`` x ``k`` (:func:`seed_book`) whose noise puts about
    ``TYPICAL_SHARE`` of the portfolios outside the firm's default bands at D1
    (:func:`calibrate`), unless ``noise`` is given. Inside the firm's context."""
    from portfolios.services_book import rebalance_policy_default_get
    from portfolios.services_rebalance import engine_policy, policy_snapshot

    with transaction.atomic():
        market = market_make(k=k, seed=seed)
        policy = engine_policy(policy_snapshot(rebalance_policy_default_get(firm=firm)))
    predicted, sample = float("nan"), 0
    if noise is None:
        noise, predicted, sample = calibrate(n=n, k=k, seed=seed, market=market, policy=policy)
    counts = seed_book(
        firm=firm,
        n=n,
        k=k,
        seed=seed,
        market=market,
        noise=noise,
        cash_target=policy.cash_target,
        progress=progress,
    )
    return Seeded(market, counts, noise, predicted, sample)


def _seed_block(
    *,
    firm: Firm,
    d: Draw,
    market: Market,
    units: np.ndarray,
    cash: np.ndarray,
    now: dt.datetime,
    client_defaults: list[Any],
) -> dict[str, int]:
    m = d.m
    f = firm.pk
    household_ids = _next_ids(Household._meta.db_table, (m + 1) // 2)
    client_ids = _next_ids(Client._meta.db_table, m)
    portfolio_ids = _next_ids(Portfolio._meta.db_table, m)
    staged_copy(
        table=Household._meta.db_table,
        columns=["id", "firm_id", "name", "notes", "created_at"],
        rows=((hid, f, f"Bench household {hid}", "", now) for hid in household_ids),
    )
    staged_copy(
        table=Client._meta.db_table,
        columns=[
            "id",
            "firm_id",
            "household_id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "tax_residence",
            "tax_status",
            "employment",
            "kyc_status",
            "created_at",
        ],
        rows=(
            (
                cid,
                f,
                household_ids[r // 2],
                "Bench",
                str(d.start + r),
                "",
                "",
                *client_defaults,
                now,
            )
            for r, cid in enumerate(client_ids)
        ),
    )
    is_taxable = taxable(d)
    strategies = strategy_index(d)
    staged_copy(
        table=Portfolio._meta.db_table,
        columns=[
            "id",
            "firm_id",
            "client_id",
            "number",
            "name",
            "account_type",
            "discretionary",
            "base_currency",
            "status",
            "opened_at",
            "cash",
            "strategy_id",
        ],
        rows=(
            (
                pid,
                f,
                client_ids[r],
                f"B{d.start + r:08d}",
                "",
                PortfolioType.TAXABLE if is_taxable[r] else PortfolioType.ROTH_IRA,
                True,
                "USD",
                PortfolioStatus.OPEN,
                now,
                f"{cash[r] // 100}.{cash[r] % 100:02d}",
                market.strategy_ids[strategies[r]],
            )
            for r, pid in enumerate(portfolio_ids)
        ),
    )
    k = len(market.asset_ids)
    unit_list = units.tolist()
    staged_copy(
        table=Holding._meta.db_table,
        columns=["firm_id", "portfolio_id", "asset_id", "quantity", "updated_at"],
        rows=(
            (f, pid, market.asset_ids[j], _micro(unit_list[r][j]), now)
            for r, pid in enumerate(portfolio_ids)
            for j in range(k)
        ),
    )
    lots = list(_lot_rows(d, market, units, portfolio_ids, is_taxable, f))
    staged_copy(
        table=TaxLot._meta.db_table,
        columns=[
            "firm_id",
            "portfolio_id",
            "asset_id",
            "acquired_on",
            "quantity",
            "original_quantity",
            "unit_cost",
        ],
        rows=lots,
    )
    return {
        "households": len(household_ids),
        "clients": m,
        "portfolios": m,
        "holdings": m * k,
        "tax_lots": len(lots),
    }


def _lot_rows(
    d: Draw,
    market: Market,
    units: np.ndarray,
    portfolio_ids: list[int],
    is_taxable: np.ndarray,
    firm_id: int,
) -> Iterator[tuple[Any, ...]]:
    """One or two lots per position of the taxable portfolios, summing to the holding."""
    k = len(market.asset_ids)
    first = np.where(
        d.two_lots & (units >= 2),
        np.clip(np.rint(units * d.split).astype(np.int64), 1, np.maximum(units - 1, 1)),
        units,
    )
    second = units - first
    cost = np.round(market.p0[None, :, None] * d.cost_factor, 4)
    first_l, second_l = first.tolist(), second.tolist()
    costs, ages = cost.tolist(), d.age_days.tolist()
    for r in np.flatnonzero(is_taxable).tolist():
        pid = portfolio_ids[r]
        for j in range(k):
            for lot, qty in enumerate((first_l[r][j], second_l[r][j])):
                if qty:
                    q = _micro(qty)
                    acquired = D0 - dt.timedelta(days=ages[r][j][lot])
                    unit_cost = f"{costs[r][j][lot]:.4f}"
                    yield (firm_id, pid, market.asset_ids[j], acquired, q, q, unit_cost)
