"""Batch rebalancing: start a run, compute it chunk by chunk, decide, execute.

The data flow of DESIGN.md: a :class:`RebalanceRun` fixes the policies, the target
versions and the prices when it starts; its portfolios are split into chunks of a
few thousand, one Celery task each. A chunk reads its state with one query per
table, hands arrays to the engine (``portfolios.engine.rebalance``) and the rule
checks (``compliance.rules``), and writes its run rows, orders, lots and audit
events with staged COPY in one transaction. The unique (run, portfolio) constraint
makes a retried or re-delivered chunk a no-op.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import F, FloatField, Func, Q, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Client, User
from accounts.tenancy.context import require_firm
from compliance import rules as compliance_rules
from compliance.services.audit import (
    AuditEntry,
    audit_batch_append,
    audit_batch_prepare,
    audit_record,
)
from portfolios.bulk import (
    COPY_BYTEA_PREFIX,
    COPY_NULL,
    arrays_fetch,
    copy_escape,
    ids_allocate,
    rows_fetch,
    spare_cores,
    write_behind,
)
from portfolios.chunking import chunked, collector_paused, in_ids
from portfolios.engine import exact
from portfolios.engine import rebalance as engine
from portfolios.engine.customise import Customisation
from portfolios.models import Portfolio, PortfolioStatus, PortfolioType
from portfolios.models_holdings import (
    CashFlow,
    CashFlowKind,
    CashFlowStatus,
    Holding,
    LedgerEntry,
    LedgerKind,
    TaxLot,
)
from portfolios.models_market import Asset, AssetClass
from portfolios.models_rebalance import (
    POLICY_RULE_FIELDS,
    RUN_PORTFOLIO_WAITING,
    LotMethod,
    OrderSide,
    OrderStatus,
    RebalancePolicy,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    RunStatus,
    RunTrigger,
    TriggerMode,
)
from portfolios.models_strategy import Strategy, StrategyVersion
from portfolios.selectors_book import price_latest_map, strategy_version_latest_map
from portfolios.selectors_strategy import customisations_for_clients
from portfolios.services_book import rebalance_policy_default_get
from portfolios.services_strategy import (
    StrategyInputError,
    customised_version_get_or_compute,
    customised_versions_get_or_compute_many,
)

CHUNK_SIZE = 2000
NO_FLOW = Decimal("0.00")
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
CENT = Decimal("0.01")
WHOLE_UNIT_STEP = Decimal(1)
# The simulated broker's slippage is a cost the engine must reserve cash for.
SLIPPAGE_RESERVE_BPS = 3.0

#: Called with (firm_id, run_id, chunks) after the run commits; the tasks module
#: registers the Celery fan-out. Kept as a hook so the domain never imports tasks.
CHUNK_DISPATCH: list[Callable[[int, int, list[list[int]]], None]] = []
EXECUTE_DISPATCH: list[Callable[[int, int, list[list[int]]], None]] = []
#: Called inside the transaction that finishes computing a run (notifications write
#: their outbox rows here, so they commit or roll back with the run).
ON_RUN_COMPUTED: list[Callable[[RebalanceRun], None]] = []


class RebalanceError(Exception):
    """A run that cannot start or change state; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------- policy


def policy_snapshot(policy: RebalancePolicy) -> dict[str, Any]:
    fields = ("name", *POLICY_RULE_FIELDS)
    out: dict[str, Any] = {"id": policy.pk}
    for name in fields:
        value = getattr(policy, name)
        out[name] = str(value) if isinstance(value, Decimal) else value
    return out


def _opt_float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def engine_policy(snapshot: dict[str, Any]) -> engine.Policy:
    """The engine's policy for a stored snapshot (floats only from here on)."""
    threshold = snapshot["trigger_mode"] != TriggerMode.CALENDAR
    return engine.Policy(
        abs_band=_opt_float(snapshot["abs_band"]) if threshold else None,
        rel_band=_opt_float(snapshot["rel_band"]) if threshold else None,
        to_band_edge=bool(snapshot["to_band_edge"]),
        cash_target=float(snapshot["cash_target"]),
        cash_floor=float(snapshot["cash_floor"]),
        min_trade_value=float(snapshot["min_trade_value"]),
        cost_bps=float(snapshot["cost_bps"]) + SLIPPAGE_RESERVE_BPS,
        cost_fixed=float(snapshot["cost_fixed"]) + 0.01,
        max_cost_ratio=float(snapshot["max_cost_ratio"]),
        buy_only_on_deposit=bool(snapshot["buy_only_on_deposit"]),
        sell_only_on_withdrawal=bool(snapshot["sell_only_on_withdrawal"]),
        highest_cost_first=snapshot["lot_method"] == LotMethod.HIFO,
        avoid_short_term_gains=bool(snapshot["avoid_short_term_gains"]),
        wash_sale_days=int(snapshot["wash_sale_days"]),
    )


# --------------------------------------------------------------------------- start


def portfolio_scope_ids(
    *, portfolio_ids: Sequence[int] | None, household_ids: Sequence[int] | None
) -> list[int]:
    """The open portfolios following a strategy among ``portfolio_ids`` and the
    ``household_ids`` (the whole book when neither is given), ascending."""
    portfolios = Portfolio.objects.filter(status=PortfolioStatus.OPEN, strategy__isnull=False)
    if portfolio_ids is not None:
        portfolios = portfolios.filter(in_ids("pk", portfolio_ids))
    if household_ids is not None:
        portfolios = portfolios.filter(client__household_id__in=list(household_ids))
    (ids,) = arrays_fetch(portfolios.values_list("pk"), kinds="i")
    return np.sort(ids).tolist()  # type: ignore[no-any-return]


def run_inputs_snapshot(
    *, portfolio_ids: list[int], as_of: dt.date, firm_id: int
) -> dict[str, Any]:
    """Policies, target versions and prices the whole run uses, fixed at its start."""
    default = rebalance_policy_default_get(firm=require_firm())
    policies = {p.pk: policy_snapshot(p) for p in RebalancePolicy.objects.all()}
    strategy_ids = set(
        Portfolio.objects.filter(in_ids("pk", portfolio_ids))
        .values_list("strategy_id", flat=True)
        .distinct()
    )
    versions = strategy_version_latest_map(strategy_ids=strategy_ids - {None})
    version_of = {sid: v.pk for sid, v in versions.items()}
    symbols = {symbol for v in versions.values() for symbol in v.weights}
    target_assets = set(Asset.objects.filter(symbol__in=symbols).values_list("pk", flat=True))
    held_assets = set(
        Holding.objects.filter(in_ids("portfolio_id", portfolio_ids))
        .values_list("asset_id", flat=True)
        .distinct()
    )
    prices = price_latest_map(asset_ids=target_assets | held_assets, as_of=as_of)
    assets = {
        str(pk): [symbol, fractional, str(step), asset_class, sector or "", list(tags)]
        for pk, symbol, fractional, step, asset_class, sector, tags in Asset.objects.filter(
            pk__in=list(prices)
        ).values_list(
            "pk", "symbol", "fractional", "quantity_step", "asset_class", "sector", "tags"
        )
    }
    return {
        "assets": assets,
        "default_policy": default.pk,
        "policies": {str(k): v for k, v in policies.items()},
        "versions": {str(k): v for k, v in version_of.items()},
        "prices": {str(k): [str(p.close), p.date.isoformat()] for k, p in prices.items()},
    }


def rebalance_run_start(
    *,
    trigger: str,
    actor: User | None = None,
    actor_label: str = "",
    preview: bool = False,
    portfolio_ids: Sequence[int] | None = None,
    household_ids: Sequence[int] | None = None,
    as_of: dt.date | None = None,
    force: bool | None = None,
    chunk_size: int = CHUNK_SIZE,
    dispatch: bool = True,
) -> RebalanceRun:
    """Create a run over the scope (the whole book when no ids) and fan out its chunks
    after commit. ``force`` trades portfolios inside their bands too (default: only
    for calendar runs). With ``dispatch=False`` the caller computes the chunks
    itself (``run.chunks``), as the ``rebalance`` command does to show progress."""
    firm = require_firm()
    if trigger not in RunTrigger.values:
        raise RebalanceError("trigger", f"unknown trigger {trigger!r}")
    if chunk_size < 1:
        raise RebalanceError("chunk_size", "must be at least 1")
    as_of = as_of or timezone.localdate()
    with transaction.atomic():
        ids = portfolio_scope_ids(portfolio_ids=portfolio_ids, household_ids=household_ids)
        if portfolio_ids is not None and not ids:
            raise RebalanceError("portfolios", "no open portfolio following a strategy in scope")
        inputs = run_inputs_snapshot(portfolio_ids=ids, as_of=as_of, firm_id=firm.pk)
        inputs["force"] = trigger == RunTrigger.CALENDAR if force is None else bool(force)
        inputs["compliance"] = rules_snapshot()
        scope: dict[str, Any] = {}
        if portfolio_ids is not None:
            scope["portfolios"] = sorted(set(portfolio_ids))
        if household_ids is not None:
            scope["households"] = sorted(set(household_ids))
        chunks = chunked(ids, chunk_size)
        label = actor_label or (actor.get_username() if actor else "system")
        run = RebalanceRun.objects.create(
            trigger=trigger,
            preview=preview,
            scope=scope,
            policy_snapshot=inputs,
            prices_as_of=as_of,
            status=RunStatus.COMPUTING if chunks else RunStatus.DONE,
            portfolios_total=len(ids),
            chunks_total=len(chunks),
            created_by=actor,
            created_label=label,
            started_at=timezone.now(),
            computed_at=None if chunks else timezone.now(),
            finished_at=None if chunks else timezone.now(),
        )
        audit_record(
            action="rebalance.run_started",
            actor=actor,
            actor_label=label,
            object_type="rebalance_run",
            object_id=run.pk,
            run_id=str(run.pk),
            payload={
                "trigger": trigger,
                "preview": preview,
                "scope": scope,
                "portfolios": len(ids),
                "chunks": len(chunks),
                "prices_as_of": as_of.isoformat(),
                "versions": inputs["versions"],
                "policies": sorted(inputs["policies"]),
                "force": inputs["force"],
            },
        )
        firm_id, run_id = firm.pk, run.pk
        if dispatch:
            transaction.on_commit(lambda: _dispatch(CHUNK_DISPATCH, firm_id, run_id, chunks))
    run.chunks = chunks  # type: ignore[attr-defined]
    return run


def _dispatch(
    hooks: list[Callable[[int, int, list[list[int]]], None]],
    firm_id: int,
    run_id: int,
    chunks: list[list[int]],
) -> None:
    if not chunks:
        return
    for hook in hooks:
        hook(firm_id, run_id, chunks)


# --------------------------------------------------------------------------- chunk


@dataclasses.dataclass
class ChunkState:
    """Everything one chunk reads, as arrays over its portfolios x the run's assets.
    ``skipped`` maps the portfolios left out to the reason."""

    skipped: dict[int, str]
    portfolio_ids: np.ndarray
    client_ids: np.ndarray
    household_ids: np.ndarray
    strategy_ids: np.ndarray
    policy_ids: np.ndarray
    discretionary: np.ndarray
    taxable: np.ndarray
    cash: list[Decimal]
    cash_flow: list[Decimal]
    flow_ids: list[list[int]]
    asset_ids: np.ndarray
    symbols: list[str]
    prices: list[Decimal]
    price_dates: list[str]
    fractional: np.ndarray
    quantity_step: list[Decimal]
    asset_class: list[str]
    sector: list[str]
    holdings: np.ndarray
    target_index: np.ndarray
    targets: np.ndarray
    target_keys: list[tuple[int, str]]  # (strategy version id, customised signature or "")
    client_excluded: dict[int, frozenset[str]]
    lot_ids: np.ndarray
    lot_portfolio: np.ndarray
    lot_asset: np.ndarray
    lot_quantity: np.ndarray
    lot_unit_cost: np.ndarray
    lot_acquired: np.ndarray
    recent_loss_sale: np.ndarray
    recent_purchase: np.ndarray
    #: Per portfolio, its holdings as read, as a JSON object text {"asset id": "quantity"}.
    held_json: list[str] = dataclasses.field(default_factory=list)
    #: Per lot, [id, asset id, quantity, unit cost, acquired on] as read, as JSON text.
    lot_json: list[str] = dataclasses.field(default_factory=list)
    as_of: dt.date | None = None
    #: The rule set the run fixed (its snapshot), so book enrichers read only what it needs.
    compliance: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Per-chunk memo of the book enrichers (one query set per chunk, not per policy group).
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)


def chunk_state_load(
    *, run: RebalanceRun, portfolio_ids: Sequence[int], drift_only: bool = False
) -> ChunkState:
    """A chunk's book. ``drift_only`` (the drift scan) reads what drift and triggers
    need and leaves out tax lots, the wash-sale ledger and the recorded state."""
    inputs = run.policy_snapshot
    # No joins: one indexed query per table. (Fresh rows have no statistics, and a
    # join planned without them can scan the clients once per portfolio.)
    plain = rows_fetch(
        Portfolio.objects.filter(in_ids("pk", portfolio_ids))
        .order_by("pk")
        .values_list(
            "pk",
            "client_id",
            "strategy_id",
            "rebalance_policy_id",
            "discretionary",
            "account_type",
            "cash",
        )
    )
    household_of = dict(
        rows_fetch(
            Client.objects.filter(in_ids("pk", [r[1] for r in plain])).values_list(
                "pk", "household_id"
            )
        )
    )
    strategy_policy = dict(
        Strategy.objects.filter(pk__in={r[2] for r in plain}).values_list(
            "pk", "rebalance_policy_id"
        )
    )
    # (pk, client, household, strategy, own policy, strategy's policy, discretionary,
    #  account type, cash): the row shape the rest of the loader reads.
    rows: list[tuple[Any, ...]] = [
        (pk, client, household_of[client], strategy, own, strategy_policy.get(strategy), *rest)
        for pk, client, strategy, own, *rest in plain
    ]
    default_policy = int(inputs["default_policy"])
    policies = inputs["policies"]

    def policy_for(own: int | None, strategy_policy: int | None) -> int:
        for candidate in (own, strategy_policy):
            if candidate is not None and str(candidate) in policies:
                return candidate
        return default_policy

    # Assets: everything priced for the run.
    price_map = {int(k): v for k, v in inputs["prices"].items()}
    # The assets as the run saw them when it started (quantity steps can change later).
    asset_rows = sorted(
        (int(pk), a[0], bool(a[1]), Decimal(a[2]), a[3], a[4]) for pk, a in inputs["assets"].items()
    )
    asset_ids = np.array([a[0] for a in asset_rows], dtype=np.int64)
    col = {int(a): j for j, a in enumerate(asset_ids)}
    col_of_symbol = {a[1]: j for j, a in enumerate(asset_rows)}
    n_assets = len(asset_rows)
    all_ids = [r[0] for r in rows]
    holdings_of = Holding.objects.filter(in_ids("portfolio_id", all_ids))
    held_rows: list[tuple[int, int, str]] = []
    if drift_only:  # floats straight into arrays: drift needs no exact quantities
        held_pid, held_aid, held_qty = arrays_fetch(
            holdings_of.annotate(q=Cast("quantity", FloatField())).values_list(
                "portfolio_id", "asset_id", "q"
            ),
            kinds="iif",
        )
    else:  # as text: exact for the recorded state, parsed once to floats here
        held_rows = rows_fetch(
            holdings_of.annotate(quantity_text=Cast("quantity", TextField())).values_list(
                "portfolio_id", "asset_id", "quantity_text"
            )
        )
        held_pid = np.fromiter((r[0] for r in held_rows), np.int64, len(held_rows))
        held_aid = np.fromiter((r[1] for r in held_rows), np.int64, len(held_rows))
        held_qty = np.fromiter((float(r[2]) for r in held_rows), np.float64, len(held_rows))
    flows: dict[int, Decimal] = defaultdict(Decimal)
    flow_ids: dict[int, list[int]] = defaultdict(list)
    for fid, pid, kind, amount in CashFlow.objects.filter(
        in_ids("portfolio_id", all_ids),
        status=CashFlowStatus.PENDING,
        requested_at__lte=run.started_at or timezone.now(),
    ).values_list("pk", "portfolio_id", "kind", "amount"):
        flows[pid] += amount if kind == CashFlowKind.DEPOSIT else -amount
        flow_ids[pid].append(fid)

    # Targets: one row per distinct target (the strategy's version fixed by the run).
    versions = {int(k): int(v) for k, v in inputs["versions"].items()}
    weights_of = dict(
        StrategyVersion.objects.filter(pk__in=list(versions.values())).values_list("pk", "weights")
    )

    # Portfolios that cannot be rebalanced are skipped with the reason; the run goes on.
    skipped = _skip_reasons(
        rows=rows,
        held=(held_pid, held_aid, held_qty),
        held_rows=held_rows,
        flows=flows,
        versions=versions,
        weights_of=weights_of,
        col=col,
        col_of_symbol=col_of_symbol,
        price_map=price_map,
    )
    rows = [r for r in rows if r[0] not in skipped]
    # Per-client restrictions: one customised version per distinct signature, shared.
    target_of, excluded = _customised_targets(
        rows=rows, versions=versions, weights_of=weights_of, skipped=skipped
    )
    rows = [r for r in rows if r[0] not in skipped]
    n = len(rows)
    pids = np.array([r[0] for r in rows], dtype=np.int64)
    index_of = {int(pid): i for i, pid in enumerate(pids)}
    holdings = np.zeros((n, n_assets))
    # Every held asset of a portfolio still in the chunk has a column (unpriced ones
    # skipped their portfolio above); rows ascend with the ids, as do the columns.
    kept = np.flatnonzero(np.isin(held_pid, pids) & (held_qty != 0))
    kept_row = np.searchsorted(pids, held_pid[kept])
    holdings[kept_row, np.searchsorted(asset_ids, held_aid[kept])] = held_qty[kept]
    # The recorded state keeps the quantities as read (text), for the same holdings.
    held_parts: list[list[str]] = [[] for _ in range(n)]
    if held_rows:
        for k, i in zip(kept.tolist(), kept_row.tolist(), strict=True):
            _, aid, text = held_rows[k]
            held_parts[i].append(f'"{aid}":"{text}"')

    distinct = sorted({target_of[r[0]] for r in rows})
    targets = np.zeros((max(len(distinct), 1), n_assets))
    row_of_target = {}
    for t, (key, weights) in enumerate(distinct):
        row_of_target[key] = t
        for symbol, weight in weights:
            targets[t, col_of_symbol[symbol]] = float(weight)
    target_keys = [key for key, _ in distinct]
    target_index = np.array([row_of_target[target_of[r[0]][0]] for r in rows], dtype=np.int64)

    taxable = np.array([r[7] == PortfolioType.TAXABLE for r in rows], dtype=bool)
    lot_rows: list[tuple[int, int, int, str, str, str]] = rows_fetch(
        TaxLot.objects.filter(
            in_ids("portfolio_id", [] if drift_only else pids[taxable].tolist()), quantity__gt=0
        )
        .annotate(
            quantity_text=Cast("quantity", TextField()),
            unit_cost_text=Cast("unit_cost", TextField()),
            acquired_text=Func(
                F("acquired_on"), Value("YYYY-MM-DD"), function="to_char", output_field=TextField()
            ),
        )
        .order_by("pk")
        .values_list(
            "pk", "portfolio_id", "asset_id", "quantity_text", "unit_cost_text", "acquired_text"
        )
    )
    households = np.array([r[2] for r in rows], dtype=np.int64)

    # Wash-sale history of the households, from the ledger.
    policy_days = max(int(p["wash_sale_days"]) for p in policies.values())
    since = run.prices_as_of - dt.timedelta(days=policy_days)
    loss_sales: set[tuple[int, int]] = set()
    purchases: set[tuple[int, int]] = set()
    for household, aid, kind in (
        LedgerEntry.objects.filter(
            in_ids("household_id", [] if drift_only else households.tolist()),
            trade_date__gte=since,
            trade_date__lte=run.prices_as_of,
        )
        .filter(Q(kind=LedgerKind.BUY) | Q(kind=LedgerKind.SELL, realised_gain__lt=0))
        .values_list("household_id", "asset_id", "kind")
        .distinct()
    ):
        (purchases if kind == LedgerKind.BUY else loss_sales).add((household, aid))
    rows_of_household: dict[int, list[int]] = defaultdict(list)
    for i, household in enumerate(households.tolist()):
        rows_of_household[household].append(i)
    recent_loss_sale = np.zeros((n, n_assets), dtype=bool)
    recent_purchase = np.zeros((n, n_assets), dtype=bool)
    for pairs, matrix in ((loss_sales, recent_loss_sale), (purchases, recent_purchase)):
        for household, aid in pairs:
            if aid in col:
                matrix[rows_of_household[household], col[aid]] = True

    return ChunkState(
        skipped=skipped,
        portfolio_ids=pids,
        client_ids=np.array([r[1] for r in rows], dtype=np.int64),
        household_ids=households,
        strategy_ids=np.array([r[3] for r in rows], dtype=np.int64),
        policy_ids=np.array([policy_for(r[4], r[5]) for r in rows], dtype=np.int64),
        discretionary=np.array([r[6] for r in rows], dtype=bool),
        taxable=taxable,
        cash=[r[8] for r in rows],
        cash_flow=[flows.get(r[0], NO_FLOW) for r in rows],
        flow_ids=[flow_ids.get(r[0], []) for r in rows],
        asset_ids=asset_ids,
        symbols=[a[1] for a in asset_rows],
        prices=[Decimal(price_map[int(a)][0]) for a in asset_ids],
        price_dates=[price_map[int(a)][1] for a in asset_ids],
        fractional=np.array([a[2] for a in asset_rows], dtype=bool),
        quantity_step=[a[3] for a in asset_rows],
        asset_class=[a[4] for a in asset_rows],
        sector=[a[5] or "" for a in asset_rows],
        holdings=holdings,
        held_json=["{" + ",".join(parts) + "}" for parts in held_parts],
        target_index=target_index,
        targets=targets,
        target_keys=target_keys,
        client_excluded=excluded,
        lot_ids=np.array([r[0] for r in lot_rows], dtype=np.int64),
        lot_portfolio=np.array([index_of[r[1]] for r in lot_rows], dtype=np.int64),
        lot_asset=np.array([col[r[2]] for r in lot_rows], dtype=np.int64),
        lot_quantity=np.array([r[3] for r in lot_rows], dtype=np.float64),
        lot_unit_cost=np.array([r[4] for r in lot_rows], dtype=np.float64),
        lot_acquired=(
            np.array([r[5] for r in lot_rows], dtype="datetime64[D]").astype(np.int64)
            + EPOCH_ORDINAL
        ),
        lot_json=[f'[{r[0]},{r[2]},"{r[3]}","{r[4]}","{r[5]}"]' for r in lot_rows],
        recent_loss_sale=recent_loss_sale,
        recent_purchase=recent_purchase,
        as_of=run.prices_as_of,
        compliance=inputs.get("compliance") or {},
    )


def _skip_reasons(
    *,
    rows: list[tuple[Any, ...]],
    held: tuple[np.ndarray, np.ndarray, np.ndarray],
    held_rows: list[tuple[int, int, str]],
    flows: dict[int, Decimal],
    versions: dict[int, int],
    weights_of: dict[int, dict[str, str]],
    col: dict[int, int],
    col_of_symbol: dict[str, int],
    price_map: dict[int, list[str]],
) -> dict[int, str]:
    """Why a portfolio cannot be rebalanced in this run, for those that cannot.
    ``held`` is (portfolio, asset, quantity) per holding; ``held_rows`` the same with
    exact quantities as text, when read (withdrawals are then checked exactly)."""
    held_pid, held_aid, held_qty = held
    reasons: dict[int, str] = {}
    unpriced = ~np.isin(held_aid, np.fromiter(col, np.int64, len(col)))
    symbols = dict(
        Asset.objects.filter(pk__in=set(held_aid[unpriced].tolist())).values_list("pk", "symbol")
    )
    for pid, aid in zip(held_pid[unpriced].tolist(), held_aid[unpriced].tolist(), strict=True):
        reasons.setdefault(pid, f"no usable price for {symbols.get(aid, aid)} (held)")
    # Values only where a withdrawal must be checked against them.
    withdrawing = {pid for pid, flow in flows.items() if flow < 0}
    price_of = {aid: Decimal(price[0]) for aid, price in price_map.items()}
    value: dict[int, Decimal] = defaultdict(Decimal)
    if withdrawing:
        mine = np.flatnonzero(np.isin(held_pid, list(withdrawing)) & ~unpriced).tolist()
        for k in mine:
            pid, aid = int(held_pid[k]), int(held_aid[k])
            quantity = Decimal(held_rows[k][2]) if held_rows else Decimal(repr(float(held_qty[k])))
            value[pid] += quantity * price_of[aid]
    missing_of: dict[int, list[str]] = {}  # target symbols without a price, per version
    for row in rows:
        pid, strategy_id, cash = row[0], row[3], row[8]
        version = versions.get(strategy_id)
        if pid in reasons:
            continue
        if version is None or version not in weights_of:
            reasons[pid] = "its strategy has no model version"
            continue
        if version not in missing_of:
            missing_of[version] = sorted(s for s in weights_of[version] if s not in col_of_symbol)
        missing = missing_of[version]
        if missing:
            reasons[pid] = f"no usable price for {', '.join(missing)} (target)"
            continue
        flow = flows.get(pid, Decimal(0))
        if flow < 0 and -flow > value[pid] + cash:
            reasons[pid] = (
                f"withdrawal of {-flow} exceeds the portfolio's value of "
                f"{(value[pid] + cash).quantize(CENT)}"
            )
    return reasons


Target = tuple[tuple[int, str], tuple[tuple[str, str], ...]]


def _customised_targets(
    *,
    rows: list[tuple[Any, ...]],
    versions: dict[int, int],
    weights_of: dict[int, dict[str, str]],
    skipped: dict[int, str],
) -> tuple[dict[int, Target], dict[int, frozenset[str]]]:
    """Each portfolio's target: its strategy version's weights, or, for a client with
    restrictions, the customised version of that signature (computed once, shared).
    A customisation that cannot be applied skips its portfolios with the reason."""
    customs = customisations_for_clients(client_ids=[r[1] for r in rows])
    plain = {vid: tuple(sorted(w.items())) for vid, w in weights_of.items()}
    target_of: dict[int, Target] = {}
    excluded: dict[int, frozenset[str]] = {}
    wanted: dict[tuple[int, int], Customisation] = {}
    for r in rows:
        vid = versions[r[3]]
        custom = customs.get(r[1])
        if custom is None:
            target_of[r[0]] = ((vid, ""), plain[vid])
        else:
            wanted[(r[0], vid)] = custom
            excluded[r[1]] = custom.excluded_assets
    if wanted:
        ids = {v for _, v in wanted}
        version_rows = {v.pk: v for v in StrategyVersion.objects.filter(pk__in=ids)}
        keys = list(wanted)
        pairs = [(version_rows[vid], wanted[(pid, vid)]) for pid, vid in keys]
        try:  # one query and one bulk insert for the whole chunk
            rows_out: list[Any] = customised_versions_get_or_compute_many(
                pairs=pairs, actor_label="rebalance"
            )
        except StrategyInputError:  # find which ones fail; the others go on
            rows_out = []
            for pid, vid in keys:
                try:
                    row, _ = customised_version_get_or_compute(
                        version=version_rows[vid],
                        customisation=wanted[(pid, vid)],
                        actor_label="rebalance",
                    )
                except StrategyInputError as exc:
                    skipped[pid] = f"the client's restrictions cannot be applied: {exc}"
                    row = None
                rows_out.append(row)
        for (pid, vid), row in zip(keys, rows_out, strict=True):
            if row is not None:
                target_of[pid] = ((vid, row.signature), tuple(sorted(row.weights.items())))
    return target_of, excluded


def _steps(state: ChunkState, snapshot: dict[str, Any]) -> list[Decimal]:
    """Tradable quantity step per asset under a policy: whole units unless fractions
    are allowed by both the policy and the asset (crypto trades in its own step)."""
    out = []
    for j, step in enumerate(state.quantity_step):
        fractional = bool(state.fractional[j]) and (
            snapshot["fractional"] or state.asset_class[j] in (AssetClass.CRYPTO,)
        )
        out.append(step if fractional and step > 0 else WHOLE_UNIT_STEP)
    return out


@dataclasses.dataclass
class ChunkResult:
    """The engine's and the rules' answers for a chunk, gathered over policy groups."""

    proposals: list[tuple[np.ndarray, engine.Proposal, list[Decimal], dict[str, Any]]]


def _run_engine(state: ChunkState, run: RebalanceRun) -> ChunkResult:
    inputs = run.policy_snapshot
    as_of = run.prices_as_of.toordinal()
    proposals = []
    prices = np.array([float(p) for p in state.prices])
    for policy_id in sorted(set(state.policy_ids.tolist())) if len(state.portfolio_ids) else []:
        snapshot = inputs["policies"][str(policy_id)]
        rows = np.flatnonzero(state.policy_ids == policy_id)
        steps = _steps(state, snapshot)
        remap = np.full(len(state.portfolio_ids), -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        lot_mask = remap[state.lot_portfolio] >= 0 if len(state.lot_ids) else np.zeros(0, bool)
        book = engine.BookState(
            prices=prices,
            quantity_step=np.array([float(s) for s in steps]),
            holdings=state.holdings[rows],
            cash=np.array([float(state.cash[i]) for i in rows]),
            cash_flow=np.array([float(state.cash_flow[i]) for i in rows]),
            target_index=state.target_index[rows],
            targets=state.targets,
            force=np.full(len(rows), bool(inputs.get("force", False))),
            taxable=state.taxable[rows],
            household=state.household_ids[rows],
            lot_portfolio=remap[state.lot_portfolio[lot_mask]],
            lot_asset=state.lot_asset[lot_mask],
            lot_quantity=state.lot_quantity[lot_mask],
            lot_unit_cost=state.lot_unit_cost[lot_mask],
            lot_acquired=state.lot_acquired[lot_mask],
            as_of=as_of,
            recent_loss_sale=state.recent_loss_sale[rows],
            recent_purchase=state.recent_purchase[rows],
        )
        proposal = engine.rebalance(book, engine_policy(snapshot))
        lot_global = np.flatnonzero(lot_mask)
        proposals.append((rows, proposal, steps, {"lot_global": lot_global, "book": book}))
    return ChunkResult(proposals=proposals)


#: Decimal places of weights, drifts and bands (their columns' scale).
SHARE_PLACES = 8


def _decimal_texts(values: Any, places: int) -> list[str]:
    """Engine floats rounded once, half to even, to ``places`` decimals, as the numeric
    text COPY writes (``12345e-2`` is 123.45): whole numbers format in half the time
    floats do, and a run formats millions of these."""
    scaled = np.asarray(values, dtype=np.float64) * 10.0**places
    if not np.isfinite(scaled).all():
        raise ValueError(f"not a finite amount: {scaled[~np.isfinite(scaled)][0]}")
    units = np.rint(scaled).astype(np.int64)
    suffix = f"e-{places}"
    return [f"{u}{suffix}" for u in units.tolist()]


def _moneys(values: Any) -> list[str]:
    """Engine amounts rounded once to cents."""
    return _decimal_texts(values, 2)


def _shares(values: Any) -> list[str]:
    """Engine weights or drifts rounded once to 8 places."""
    return _decimal_texts(values, SHARE_PLACES)


def _money(value: float) -> str:
    """One amount as :func:`_moneys` renders it (the naive baseline's)."""
    return _moneys([value])[0]


def _share(value: float) -> str:
    """One weight or drift as :func:`_shares` renders it."""
    return _shares([value])[0]


def _quantity(value: float, step: Decimal) -> Decimal:
    """An engine quantity (a float multiple of ``step``) as the exact Decimal multiple."""
    units = round(float(value) / float(step))
    return step * units if units else Decimal(0)


def _rules_book(state: ChunkState, rows: np.ndarray, book: engine.BookState) -> Any:
    classes = sorted(set(state.asset_class))
    sectors = sorted({s for s in state.sector if s})
    n = len(rows)
    fields: dict[str, Any] = {
        "asset_class": np.array([classes.index(c) for c in state.asset_class], dtype=np.int64),
        "class_names": tuple(classes),
        "sector": np.array([sectors.index(s) if s else -1 for s in state.sector], dtype=np.int64),
        "sector_names": tuple(sectors),
        "symbols": tuple(state.symbols),
        "prices": book.prices,
        "holdings": book.holdings,
        "cash": book.cash,
        "cash_flow": book.cash_flow,
        "portfolio_client": state.client_ids[rows],
        "portfolio_household": state.household_ids[rows],
        "portfolio_strategy": state.strategy_ids[rows],
        "strategy_risk_level": np.full(n, -1, dtype=np.int64),
        "profile_band_low": np.full(n, -1, dtype=np.int64),
        "profile_band_high": np.full(n, -1, dtype=np.int64),
        "profile_risk_level": np.full(n, -1, dtype=np.int64),
        "profile_expires": np.full(n, -1, dtype=np.int64),
        "open_flags": np.zeros(n, dtype=np.int64),
        "kyc_complete": np.ones(n, dtype=bool),
        "client_restricted": _client_restricted(state, rows),
        "recent_loss_sale": book.recent_loss_sale,
        "recent_purchase": book.recent_purchase,
        "as_of": book.as_of,
    }
    for enrich in BOOK_ENRICHERS:
        enrich(state, rows, fields)
    return compliance_rules.Book(**fields)


def _client_restricted(state: ChunkState, rows: np.ndarray) -> np.ndarray:
    """(rows x assets): the assets each portfolio's client has excluded."""
    matrix = np.zeros((len(rows), len(state.symbols)), dtype=bool)
    col = {symbol: j for j, symbol in enumerate(state.symbols)}
    for k, i in enumerate(rows.tolist()):
        for symbol in state.client_excluded.get(int(state.client_ids[i]), ()):
            if symbol in col:
                matrix[k, col[symbol]] = True
    return matrix


def rule_set_builtin() -> tuple[int | None, Sequence[compliance_rules.Rule]]:
    """The checks every run has: no short, no negative cash, restricted assets, wash
    sales. A firm's own versioned rule sets plug in through ``RULE_SET_PROVIDERS``."""
    return None, compliance_rules.BUILTIN_RULES


#: The last provider answers (rule-set version id or None, rules) for the current firm.
RULE_SET_PROVIDERS: list[Callable[[], tuple[int | None, Sequence[compliance_rules.Rule]]]] = [
    rule_set_builtin
]
#: Fill the client-dependent parts of the rules' book (profiles, KYC, restrictions).
BOOK_ENRICHERS: list[Callable[[ChunkState, np.ndarray, dict[str, Any]], None]] = []


def rules_snapshot() -> dict[str, Any]:
    version, rules = RULE_SET_PROVIDERS[-1]()
    return {
        "version": version,
        "rules": [
            {
                "id": r.id,
                "kind": r.kind,
                "severity": int(r.severity),
                "params": dict(r.params),
                "strategy_ids": sorted(r.strategy_ids),
                "client_ids": sorted(r.client_ids),
            }
            for r in rules
        ],
    }


def rules_from_snapshot(snapshot: dict[str, Any]) -> list[compliance_rules.Rule]:
    return [
        compliance_rules.Rule(
            id=r["id"],
            kind=r["kind"],
            severity=compliance_rules.Severity(r["severity"]),
            params=r["params"],
            strategy_ids=frozenset(r["strategy_ids"]),
            client_ids=frozenset(r["client_ids"]),
        )
        for r in snapshot["rules"]
    ]


def _status_for(outcome: int, discretionary: bool, has_orders: bool) -> str:
    if not has_orders:
        return RunPortfolioStatus.NO_TRADE
    if outcome == compliance_rules.Outcome.HARD_FAIL:
        return RunPortfolioStatus.BLOCKED
    if outcome == compliance_rules.Outcome.SOFT_FAIL:
        return RunPortfolioStatus.HELD
    return RunPortfolioStatus.PROPOSED if discretionary else RunPortfolioStatus.AWAITING_CLIENT


ORDER_STATUS_OF: dict[str, str] = {
    RunPortfolioStatus.BLOCKED: OrderStatus.BLOCKED,
    RunPortfolioStatus.HELD: OrderStatus.HELD,
    RunPortfolioStatus.PROPOSED: OrderStatus.PROPOSED,
    RunPortfolioStatus.AWAITING_CLIENT: OrderStatus.PROPOSED,
}


def rebalance_chunk_compute(*, run_id: int, portfolio_ids: Sequence[int]) -> dict[str, Any]:
    """Compute one chunk of a run and write it, in one transaction. A chunk whose
    portfolios already have their run rows (a retry, a re-delivery) does nothing."""
    firm = require_firm()
    started = time.perf_counter()
    with collector_paused(), transaction.atomic():
        # Not its scope: a scan's run lists every portfolio it covers, read per chunk.
        run = RebalanceRun.objects.defer("scope").get(pk=run_id)
        if RunPortfolio.objects.filter(in_ids("portfolio_id", portfolio_ids), run=run).exists():
            return {"skipped": True}
        state = chunk_state_load(run=run, portfolio_ids=portfolio_ids)
        loaded = time.perf_counter()
        result = _run_engine(state, run)
        computed = time.perf_counter()
        counts = _chunk_write(run=run, state=state, result=result, firm_id=firm.pk)
        written = time.perf_counter()
        rules = counts.pop("rules_seconds")
        counts["timings"] = {
            "load": loaded - started,
            "engine": computed - loaded,
            "rules": rules,
            "write": written - computed - rules,
        }
        _chunk_count(run=run, counts=counts)
    return counts


ORDER_COLUMNS = (
    "firm_id",
    "run_id",
    "id",
    "portfolio_id",
    "asset_id",
    "side",
    "quantity",
    "price",
    "value",
    "estimated_cost",
    "reason",
    "drift",
    "band",
    "status",
    "compliance_outcome",
    "rule_outcomes",
    "failures",
)
RUN_PORTFOLIO_COLUMNS = (
    "firm_id",
    "run_id",
    "portfolio_id",
    "status",
    "trigger",
    "policy_id_used",
    "strategy_version_id",
    "target_signature",
    "nav",
    "cash_before",
    "cash_flow",
    "cash_after",
    "max_drift",
    "turnover",
    "compliance_outcome",
    "skip_reason",
    "state",
)
ORDER_LOT_COLUMNS = ("firm_id", "order_id", "lot_id", "quantity", "realised_gain", "short_term")
TRIGGER_NAMES = {int(t): t.name for t in engine.Trigger}
REASON_NAMES = {int(r): r.name for r in engine.Reason}
# Portfolio statuses by code, in the order _portfolio_statuses computes them.
_STATUS_CODES = (
    RunPortfolioStatus.NO_TRADE,
    RunPortfolioStatus.BLOCKED,
    RunPortfolioStatus.HELD,
    RunPortfolioStatus.PROPOSED,
    RunPortfolioStatus.AWAITING_CLIENT,
)


def _portfolio_statuses(
    outcome: np.ndarray, discretionary: np.ndarray, has_orders: np.ndarray
) -> np.ndarray:
    """Codes into ``_STATUS_CODES``; the vector form of :func:`_status_for`."""
    code = np.where(discretionary, 3, 4)
    code = np.where(outcome == compliance_rules.Outcome.SOFT_FAIL, 2, code)
    code = np.where(outcome == compliance_rules.Outcome.HARD_FAIL, 1, code)
    return np.where(has_orders, code, 0)


@dataclasses.dataclass
class _Asset:
    """The run's assets under one policy, as integers for exact arithmetic."""

    step: np.ndarray  # float step, for the engine's quantities
    step_int: np.ndarray
    step_places: np.ndarray
    price_int: np.ndarray
    price_places: np.ndarray
    price_text: list[str]

    @classmethod
    def of(cls, steps: list[Decimal], prices: list[Decimal]) -> _Asset:
        step_parts = [exact.decimal_parts(s) for s in steps]
        price_parts = [exact.decimal_parts(p) for p in prices]
        return cls(
            step=np.array([float(s) for s in steps]),
            step_int=np.array([s for s, _ in step_parts], dtype=np.int64),
            step_places=np.array([p for _, p in step_parts], dtype=np.int64),
            price_int=np.array([s for s, _ in price_parts], dtype=np.int64),
            price_places=np.array([p for _, p in price_parts], dtype=np.int64),
            price_text=[str(p) for p in prices],
        )

    def quantities(self, quantity: np.ndarray, asset: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Exact quantities (integers at the asset's step places) and their text."""
        units = exact.step_units(quantity, self.step[asset])
        scaled = units * self.step_int[asset]
        places = self.step_places[asset]
        return scaled, exact.decimal_text(scaled.tolist(), places.tolist())


def _chunk_write(
    *, run: RebalanceRun, state: ChunkState, result: ChunkResult, firm_id: int
) -> dict[str, Any]:
    """Evaluate the chunk's orders against the rules and write its run rows, orders,
    lot picks and audit events, each with a staged COPY. Rows are rendered column by
    column from the engine's arrays (see ``portfolios.engine.exact``), and written
    behind: PostgreSQL inserts one table's rows while Python renders the next."""
    counts: dict[str, Any] = {
        "skipped": len(state.skipped),
        "portfolios": len(state.skipped),
        "triggered": 0,
        "orders": 0,
        "blocked": 0,
        "held": 0,
        "buy_value": Decimal(0),
        "sell_value": Decimal(0),
    }
    rules_seconds = 0.0
    rule_set = rules_from_snapshot(run.policy_snapshot["compliance"])
    head = f"{firm_id}\t{run.pk}\t"
    lots_of: dict[int, list[str]] = defaultdict(list)
    for text, i in zip(state.lot_json, state.lot_portfolio.tolist(), strict=True):
        lots_of[i].append(text)
    audit: list[AuditEntry] = []
    # Ids drawn from the table's sequence up front, so lot picks can name their order
    # (and the writer thread need not wait for the caller's query).
    all_order_ids = ids_allocate(
        table="portfolios_order",
        count=sum(len(proposal.order_portfolio) for _, proposal, _, _ in result.proposals),
    )
    with write_behind(background=spare_cores()) as writer:
        for rows, proposal, steps, extra in result.proposals:
            book: engine.BookState = extra["book"]
            assets = _Asset.of(steps, state.prices)
            live, orders_in = proposal_live_orders(proposal)
            rules_book = _rules_book(state, rows, book)
            rules_started = time.perf_counter()
            evaluation = compliance_rules.evaluate(rules_book, orders_in, rule_set)
            rules_seconds += time.perf_counter() - rules_started

            # Portfolios: status from the worst rule outcome; a cash flow is booked when
            # the portfolio executes, even with nothing to trade.
            n_rows = len(rows)
            has_orders = np.zeros(n_rows, dtype=bool)
            has_orders[proposal.order_portfolio[live]] = True
            has_orders |= np.array([state.cash_flow[i] != 0 for i in rows.tolist()], dtype=bool)
            status_code = _portfolio_statuses(
                evaluation.portfolio_outcome, state.discretionary[rows], has_orders
            )
            counts["portfolios"] += n_rows
            counts["triggered"] += int(proposal.triggered.sum())
            writer.insert(
                table="portfolios_runportfolio",
                columns=RUN_PORTFOLIO_COLUMNS,
                lines=_run_portfolio_lines(
                    head, state, rows, proposal, evaluation, status_code, lots_of
                ),
            )

            # Orders: every column at once.
            order_k = proposal.order_portfolio
            order_i = rows[order_k]
            order_j = proposal.order_asset
            quantity, quantity_text = assets.quantities(proposal.order_quantity, order_j)
            cents = np.array(
                exact.values_in_cents(
                    quantity,
                    assets.step_places[order_j],
                    assets.price_int[order_j],
                    assets.price_places[order_j],
                ),
                dtype=object,
            )
            n_orders = len(order_k)
            order_ids, all_order_ids = all_order_ids[:n_orders], all_order_ids[n_orders:]
            is_live = np.zeros(n_orders, dtype=bool)
            is_live[live] = True
            order_status = np.array(
                [ORDER_STATUS_OF.get(s, OrderStatus.SKIPPED) for s in _STATUS_CODES],
                dtype=object,
            )[status_code[order_k]]
            order_status[~is_live] = OrderStatus.SKIPPED
            outcome = np.zeros(n_orders, dtype=np.int64)
            outcome[live] = evaluation.order_outcome
            width = 2 * len(evaluation.rule_ids)
            packed = evaluation.outcomes.view(np.uint8).tobytes().hex()
            rule_text = [COPY_BYTEA_PREFIX] * n_orders
            failures = ["[]"] * n_orders
            for e, o in enumerate(live.tolist()):
                rule_text[o] = COPY_BYTEA_PREFIX + packed[e * width : (e + 1) * width]
                if evaluation.order_outcome[e]:
                    failures[o] = copy_escape(
                        json.dumps([_failure_json(f) for f in evaluation.failures(e)])
                    )
            buy = proposal.order_side > 0
            counts["orders"] += len(live)
            counts["blocked"] += int((order_status[live] == OrderStatus.BLOCKED).sum())
            counts["held"] += int((order_status[live] == OrderStatus.HELD).sum())
            counts["buy_value"] += Decimal(int(cents[live[buy[live]]].sum())).scaleb(-2)
            counts["sell_value"] += Decimal(int(cents[live[~buy[live]]].sum())).scaleb(-2)
            band = proposal.order_band
            finite = np.isfinite(band)
            band_cells = np.full(n_orders, COPY_NULL, dtype=object)
            band_cells[finite] = _shares(band[finite])
            band_text = band_cells.tolist()
            sides = np.where(buy, OrderSide.BUY, OrderSide.SELL)
            # In slices, so that PostgreSQL starts on the first while the rest render.
            for part in _slices(n_orders, ORDER_SLICE):
                writer.insert(
                    table="portfolios_order",
                    columns=ORDER_COLUMNS,
                    lines=_copy_lines(
                        head,
                        order_ids[part].astype(str).tolist(),
                        state.portfolio_ids[order_i[part]].astype(str).tolist(),
                        state.asset_ids[order_j[part]].astype(str).tolist(),
                        sides[part].tolist(),
                        quantity_text[part],
                        [assets.price_text[j] for j in order_j[part].tolist()],
                        [f"{c}e-2" for c in cents[part].tolist()],
                        _moneys(proposal.order_cost[part]),
                        [REASON_NAMES[r] for r in proposal.order_reason[part].tolist()],
                        _shares(proposal.order_drift[part]),
                        band_text[part],
                        order_status[part].tolist(),
                        outcome[part].astype(str).tolist(),
                        rule_text[part],
                        failures[part],
                    ),
                )

            # Lot picks of the sell orders.
            lot_order = proposal.lot_order
            if len(lot_order):
                lot_j = order_j[lot_order]
                _, lot_quantity = assets.quantities(proposal.lot_sold_quantity, lot_j)
                lot_ids = state.lot_ids[extra["lot_global"][proposal.lot_index]]
                writer.insert(
                    table="portfolios_orderlot",
                    columns=ORDER_LOT_COLUMNS,
                    lines=_copy_lines(
                        f"{firm_id}\t",
                        order_ids[lot_order].astype(str).tolist(),
                        lot_ids.astype(str).tolist(),
                        lot_quantity,
                        _moneys(proposal.lot_realised_gain),
                        ["t" if s else "f" for s in proposal.lot_short_term.tolist()],
                    ),
                )
            audit.extend(_proposed_events(run, state, rows, proposal, status_code))
        writer.insert(
            table="portfolios_runportfolio",
            columns=RUN_PORTFOLIO_COLUMNS,
            lines=_skipped_lines(head, state),
        )
        audit.extend(
            AuditEntry(
                action="rebalance.portfolio_skipped",
                actor_label="rebalance",
                object_type="portfolio",
                object_id=pid,
                run_id=str(run.pk),
                reasons=[reason],
            )
            for pid, reason in sorted(state.skipped.items())
        )
        audit_batch = audit_batch_prepare(entries=audit)
    # After the rows: the chain's lock is held from here to the commit only.
    audit_batch_append(batch=audit_batch)
    counts["rules_seconds"] = rules_seconds
    return counts


def _copy_lines(head: str, *columns: Sequence[str]) -> Iterator[str]:
    """COPY text lines: ``head`` (the leading columns every row shares), then one
    field of each column."""
    return (head + "\t".join(fields) + "\n" for fields in zip(*columns, strict=True))


#: Order rows per insert of a chunk's orders.
ORDER_SLICE = 10_000


def _slices(n: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, n, size)]


def _skipped_lines(head: str, state: ChunkState) -> list[str]:
    zero = "0.00"
    return [
        head
        + "\t".join(
            (
                str(pid),
                RunPortfolioStatus.SKIPPED,
                "",
                COPY_NULL,
                COPY_NULL,
                "",
                zero,
                zero,
                zero,
                zero,
                "0",
                "0",
                "0",
                copy_escape(reason),
                "{}",
            )
        )
        + "\n"
        for pid, reason in sorted(state.skipped.items())
    ]


def _run_portfolio_lines(
    head: str,
    state: ChunkState,
    rows: np.ndarray,
    proposal: engine.Proposal,
    evaluation: Any,
    status_code: np.ndarray,
    lots_of: dict[int, list[str]],
) -> list[str]:
    indices = rows.tolist()
    keys = [state.target_keys[t] for t in state.target_index[rows].tolist()]
    facts = _facts_of(state, indices)
    return list(
        _copy_lines(
            head,
            state.portfolio_ids[rows].astype(str).tolist(),
            [_STATUS_CODES[c] for c in status_code.tolist()],
            [TRIGGER_NAMES[t] for t in proposal.trigger.tolist()],
            state.policy_ids[rows].astype(str).tolist(),
            [str(version) for version, _ in keys],
            [signature for _, signature in keys],
            _moneys(proposal.nav),
            [str(state.cash[i]) for i in indices],
            [str(state.cash_flow[i]) for i in indices],
            _moneys(proposal.cash_after),
            _shares(proposal.max_drift),
            _shares(proposal.turnover),
            evaluation.portfolio_outcome.astype(str).tolist(),
            [""] * len(indices),
            [
                copy_escape(_portfolio_state_json(state, i, lots_of, facts[k]))
                for k, i in enumerate(indices)
            ],
        )
    )


def _proposed_events(
    run: RebalanceRun,
    state: ChunkState,
    rows: np.ndarray,
    proposal: engine.Proposal,
    status_code: np.ndarray,
) -> list[AuditEntry]:
    """One audit event per portfolio with something to do: its status, trigger, drift,
    order counts and the reasons of its orders."""
    n_rows = len(rows)
    k = proposal.order_portfolio
    orders = np.bincount(k, minlength=n_rows)
    buys = np.bincount(k, weights=proposal.order_side > 0, minlength=n_rows)
    skipped = np.bincount(k, weights=proposal.order_status != 0, minlength=n_rows)
    codes = sorted(REASON_NAMES, key=REASON_NAMES.__getitem__)
    column = {code: c for c, code in enumerate(codes)}
    has_reason = np.zeros((n_rows, len(codes)), dtype=bool)
    if len(k):
        has_reason[k, [column[int(r)] for r in proposal.order_reason.tolist()]] = True
    out = []
    for row in np.flatnonzero(status_code != 0).tolist():
        out.append(
            AuditEntry(
                action="rebalance.portfolio_proposed",
                actor_label="rebalance",
                object_type="portfolio",
                object_id=int(state.portfolio_ids[rows[row]]),
                run_id=str(run.pk),
                payload={
                    "status": _STATUS_CODES[int(status_code[row])],
                    "trigger": TRIGGER_NAMES[int(proposal.trigger[row])],
                    "max_drift": f"{proposal.max_drift[row]:.6f}",
                    "orders": int(orders[row]),
                    "buys": int(buys[row]),
                    "skipped": int(skipped[row]),
                },
                reasons=[REASON_NAMES[codes[c]] for c in np.flatnonzero(has_reason[row])],
            )
        )
    return out


def proposal_live_orders(proposal: engine.Proposal) -> tuple[np.ndarray, compliance_rules.Orders]:
    """The proposal's live orders (those the engine did not skip), as the rules read
    them, and their positions among all its orders."""
    live = np.flatnonzero(proposal.order_status == 0)
    return live, compliance_rules.Orders(
        portfolio=proposal.order_portfolio[live],
        asset=proposal.order_asset[live],
        side=proposal.order_side[live],
        quantity=proposal.order_quantity[live],
        value=proposal.order_value[live],
        cost=proposal.order_cost[live],
        realised_loss=_realised_loss(proposal, live),
    )


def _realised_loss(proposal: engine.Proposal, live: np.ndarray) -> np.ndarray:
    """Per live order: a sell whose lots realise a net loss."""
    gain = np.zeros(len(proposal.order_portfolio))
    if len(proposal.lot_order):
        np.add.at(gain, proposal.lot_order, proposal.lot_realised_gain)
    loss: np.ndarray = (gain[live] < 0) & (proposal.order_side[live] < 0)
    return loss


def _failure_json(failure: Any) -> dict[str, Any]:
    def num(x: Any) -> float | None:
        x = float(x)
        return None if not np.isfinite(x) else round(x, 8)

    return {
        "rule_id": int(failure.rule_id),
        "kind": failure.kind,
        "outcome": int(failure.outcome),
        "measured": num(failure.measured),
        "limit": num(failure.limit),
        "message": failure.message,
    }


def _portfolio_state_json(
    state: ChunkState, i: int, lots_of: dict[int, list[str]], facts: dict[str, Any]
) -> str:
    """What replay needs of one portfolio, as JSON: holdings, lots, cash, flows and
    wash-sale windows as read (prices, assets, targets and policies are in the run
    snapshot). Holdings and lots were rendered as JSON text when the chunk was read."""
    rest = {
        "cash": str(state.cash[i]),
        "cash_flow": str(state.cash_flow[i]),
        "flows": state.flow_ids[i],
        "recent_loss_sale": state.asset_ids[state.recent_loss_sale[i]].tolist(),
        "recent_purchase": state.asset_ids[state.recent_purchase[i]].tolist(),
        "policy": int(state.policy_ids[i]),
        "taxable": bool(state.taxable[i]),
        "household": int(state.household_ids[i]),
        "client": int(state.client_ids[i]),
        "strategy": int(state.strategy_ids[i]),
        "excluded": sorted(state.client_excluded.get(int(state.client_ids[i]), ())),
        "facts": facts,
    }
    lots = lots_of.get(i, []) if state.taxable[i] else []
    return (
        '{"holdings":'
        + state.held_json[i]
        + ',"lots":['
        + ",".join(lots)
        + "],"
        + json.dumps(rest)[1:]
    )


def _facts_of(state: ChunkState, indices: list[int]) -> list[dict[str, Any]]:
    """The client facts the rules read for each of the portfolios ``indices`` (filled
    by the book enrichers), as of the run, so the order can be explained and replayed
    later. Column by column: one conversion per fact, not one per portfolio."""
    out: list[dict[str, Any]] = [{} for _ in indices]
    for name, values in state.cache.get("compliance", {}).items():
        if np.ndim(values) > 1:  # household_holdings_value: only the assets held elsewhere
            for facts, i in zip(out, indices, strict=True):
                row = values[i]
                facts[name] = {
                    str(int(state.asset_ids[j])): round(float(row[j]), 6)
                    for j in np.flatnonzero(row).tolist()
                }
        else:
            column = np.asarray(values)[indices].tolist()
            for facts, value in zip(out, column, strict=True):
                facts[name] = value
    return out


def _chunk_count(*, run: RebalanceRun, counts: dict[str, Any]) -> None:
    """Add a chunk's counts to its run; the chunk that completes the run finalises it."""
    RebalanceRun.objects.filter(pk=run.pk).update(
        portfolios_done=F("portfolios_done") + counts["portfolios"],
        portfolios_triggered=F("portfolios_triggered") + counts["triggered"],
        portfolios_skipped=F("portfolios_skipped") + counts["skipped"],
        chunks_done=F("chunks_done") + 1,
        orders_count=F("orders_count") + counts["orders"],
        orders_blocked=F("orders_blocked") + counts["blocked"],
        orders_held=F("orders_held") + counts["held"],
        buy_value=F("buy_value") + counts["buy_value"],
        sell_value=F("sell_value") + counts["sell_value"],
    )
    # Only what this needs of the run row (not its snapshot of the whole run's inputs).
    run.refresh_from_db(fields=["chunks_done", "chunks_total", "timings"])
    timings = dict(run.timings)
    for phase, seconds in counts["timings"].items():
        timings[phase] = round(timings.get(phase, 0.0) + seconds, 6)
    RebalanceRun.objects.filter(pk=run.pk).update(timings=timings)
    if run.chunks_done == run.chunks_total:
        _run_computed(run)


def _run_computed(run: RebalanceRun) -> None:
    waiting = RunPortfolio.objects.filter(run=run, status__in=RUN_PORTFOLIO_WAITING).exists()
    if run.preview:
        status = RunStatus.PREVIEW
    elif waiting:
        status = RunStatus.AWAITING_APPROVAL
    else:
        status = RunStatus.DONE
    now = timezone.now()
    RebalanceRun.objects.filter(pk=run.pk).update(
        status=status,
        computed_at=now,
        finished_at=now if status in (RunStatus.DONE, RunStatus.PREVIEW) else None,
    )
    run.refresh_from_db()
    for hook in ON_RUN_COMPUTED:
        hook(run)
    audit_record(
        action="rebalance.run_computed",
        actor_label="rebalance",
        object_type="rebalance_run",
        object_id=run.pk,
        run_id=str(run.pk),
        payload={
            "status": status,
            "portfolios": run.portfolios_done,
            "triggered": run.portfolios_triggered,
            "skipped": run.portfolios_skipped,
            "orders": run.orders_count,
            "blocked": run.orders_blocked,
            "held": run.orders_held,
            "buy_value": str(run.buy_value),
            "sell_value": str(run.sell_value),
        },
    )


def rebalance_run_fail(*, run_id: int, error: str) -> None:
    """Mark a run failed (a chunk gave up after its retries); nothing of it executes."""
    with transaction.atomic():
        updated = RebalanceRun.objects.filter(
            pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.COMPUTING, RunStatus.EXECUTING]
        ).update(status=RunStatus.FAILED, error=error[:2000], finished_at=timezone.now())
        if updated:
            audit_record(
                action="rebalance.run_failed",
                actor_label="rebalance",
                object_type="rebalance_run",
                object_id=run_id,
                run_id=str(run_id),
                payload={"error": error[:2000]},
            )
