"""Replaying an order from its record: the portfolio's state as the run read it (its
``RunPortfolio.state``), the run's snapshot (prices, assets, policies, rule set) and
the immutable target version (or customised version), pushed again through the same
engine (``portfolios.engine.rebalance``) and rule evaluation as the batch path.

The replay compares side, quantity, reason, price, order status (proposed or skipped)
and the compliance outcome (the worst outcome and every rule's outcome byte).

What cannot be replayed from one portfolio's record alone: the in-run household
wash-sale interaction (the engine holds back a buy of an asset another portfolio of
the same household sells at a loss in the same chunk, and the wash-sale rule checks
it across the chunk's orders). The replay therefore recomputes the order's
portfolio **together with the other portfolios of its household in the same run
under the same policy** (each from its own record), which reproduces that
interaction whenever they shared a chunk (chunks are a few thousand portfolios; a
household split by a chunk boundary did not interact and may then be reported as a
mismatch with the note ``household_peers``). Facts the rules read about the client
(risk profile, flags, KYC, household holdings) are taken as recorded in the state
(``facts``); records written before they were recorded are replayed with today's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from compliance import rules as compliance_rules
from portfolios import services_rebalance as sr
from portfolios.engine import rebalance as engine
from portfolios.models import Portfolio
from portfolios.models_rebalance import (
    Order,
    OrderSide,
    OrderStatus,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
)
from portfolios.models_strategy import CustomisedVersion, StrategyVersion

SCALAR_FACTS = (
    "strategy_risk_level",
    "profile_band_low",
    "profile_band_high",
    "profile_risk_level",
    "profile_expires",
    "open_flags",
    "kyc_complete",
)


class ReplayError(Exception):
    """The order cannot be replayed (no record); ``field`` names what is missing."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class ReplayResult:
    order_id: int
    matches: bool
    recorded: dict[str, Any]
    replayed: dict[str, Any]
    differences: list[str]
    household_peers: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evaluation: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "matches": self.matches,
            "differences": self.differences,
            "recorded": self.recorded,
            "replayed": self.replayed,
            "household_peers": self.household_peers,
            "notes": self.notes,
            "evaluation": self.evaluation,
        }


def _targets(rps: list[RunPortfolio]) -> dict[tuple[int, str], dict[str, str]]:
    plain = {
        v.pk: v.weights
        for v in StrategyVersion.objects.filter(pk__in={rp.strategy_version_id for rp in rps})
    }
    custom = {
        c.signature: c.weights
        for c in CustomisedVersion.objects.filter(
            signature__in={rp.target_signature for rp in rps if rp.target_signature}
        )
    }
    out = {}
    for rp in rps:
        assert rp.strategy_version_id is not None
        key = (rp.strategy_version_id, rp.target_signature)
        if rp.target_signature:
            if rp.target_signature not in custom:
                raise ReplayError("target_signature", "the customised version is missing")
            out[key] = custom[rp.target_signature]
        else:
            out[key] = plain[rp.strategy_version_id]
    return out


def _state(run: RebalanceRun, rps: list[RunPortfolio]) -> sr.ChunkState:
    """A chunk of these portfolios rebuilt from their records and the run's snapshot."""
    inputs = run.policy_snapshot
    asset_rows = sorted(
        (int(pk), a[0], bool(a[1]), Decimal(a[2]), a[3], a[4]) for pk, a in inputs["assets"].items()
    )
    asset_ids = np.array([a[0] for a in asset_rows], dtype=np.int64)
    col = {int(a): j for j, a in enumerate(asset_ids.tolist())}
    col_of_symbol = {a[1]: j for j, a in enumerate(asset_rows)}
    n, n_assets = len(rps), len(asset_rows)
    current = {
        pk: (client, strategy, household, discretionary)
        for pk, client, strategy, household, discretionary in Portfolio.objects.filter(
            pk__in=[rp.portfolio_id for rp in rps]
        ).values_list("pk", "client_id", "strategy_id", "client__household_id", "discretionary")
    }
    holdings = np.zeros((n, n_assets))
    lots: list[tuple[int, int, int, Decimal, Decimal, dt.date]] = []
    loss = np.zeros((n, n_assets), dtype=bool)
    bought = np.zeros((n, n_assets), dtype=bool)
    for i, rp in enumerate(rps):
        st = rp.state
        for aid, qty in st["holdings"].items():
            if int(aid) not in col:
                raise ReplayError("state.holdings", f"asset {aid} has no price in the run")
            holdings[i, col[int(aid)]] = float(Decimal(qty))
        for lot_id, aid, qty, cost, acquired in st.get("lots", []):
            lots.append(
                (
                    int(lot_id),
                    i,
                    col[int(aid)],
                    Decimal(qty),
                    Decimal(cost),
                    dt.date.fromisoformat(acquired),
                )
            )
        for aid in st.get("recent_loss_sale", []):
            loss[i, col[int(aid)]] = True
        for aid in st.get("recent_purchase", []):
            bought[i, col[int(aid)]] = True
    targets_by_key = _targets(rps)
    keys = sorted(set(targets_by_key))
    targets = np.zeros((max(len(keys), 1), n_assets))
    for t, key in enumerate(keys):
        for symbol, weight in targets_by_key[key].items():
            if symbol not in col_of_symbol:
                raise ReplayError("targets", f"{symbol} has no price in the run")
            targets[t, col_of_symbol[symbol]] = float(weight)
    target_index = np.array(
        [keys.index((int(rp.strategy_version_id or 0), rp.target_signature)) for rp in rps],
        dtype=np.int64,
    )

    def pick(rp: RunPortfolio, name: str, k: int) -> int:
        value = rp.state.get(name)
        return int(value) if value is not None else int(current[rp.portfolio_id][k] or -1)

    clients = np.array([pick(rp, "client", 0) for rp in rps], dtype=np.int64)
    excluded = {
        int(clients[i]): frozenset(rp.state.get("excluded", [])) for i, rp in enumerate(rps)
    }
    state = sr.ChunkState(
        skipped={},
        portfolio_ids=np.array([rp.portfolio_id for rp in rps], dtype=np.int64),
        client_ids=clients,
        household_ids=np.array([pick(rp, "household", 2) for rp in rps], dtype=np.int64),
        strategy_ids=np.array([pick(rp, "strategy", 1) for rp in rps], dtype=np.int64),
        policy_ids=np.array([int(rp.state["policy"]) for rp in rps], dtype=np.int64),
        discretionary=np.array([bool(current[rp.portfolio_id][3]) for rp in rps], dtype=bool),
        taxable=np.array([bool(rp.state.get("taxable")) for rp in rps], dtype=bool),
        cash=[Decimal(rp.state["cash"]) for rp in rps],
        cash_flow=[Decimal(rp.state["cash_flow"]) for rp in rps],
        flow_ids=[list(rp.state.get("flows", [])) for rp in rps],
        asset_ids=asset_ids,
        symbols=[a[1] for a in asset_rows],
        prices=[Decimal(inputs["prices"][str(a)][0]) for a in asset_ids.tolist()],
        price_dates=[inputs["prices"][str(a)][1] for a in asset_ids.tolist()],
        fractional=np.array([a[2] for a in asset_rows], dtype=bool),
        quantity_step=[a[3] for a in asset_rows],
        asset_class=[a[4] for a in asset_rows],
        sector=[a[5] or "" for a in asset_rows],
        holdings=holdings,
        target_index=target_index,
        targets=targets,
        target_keys=keys,
        client_excluded=excluded,
        lot_ids=np.array([r[0] for r in lots], dtype=np.int64),
        lot_portfolio=np.array([r[1] for r in lots], dtype=np.int64),
        lot_asset=np.array([r[2] for r in lots], dtype=np.int64),
        lot_quantity=np.array([float(r[3]) for r in lots]),
        lot_unit_cost=np.array([float(r[4]) for r in lots]),
        lot_acquired=np.array([r[5].toordinal() for r in lots], dtype=np.int64),
        recent_loss_sale=loss,
        recent_purchase=bought,
        as_of=run.prices_as_of,
        compliance=inputs.get("compliance") or {},
    )
    facts = [rp.state.get("facts") for rp in rps]
    if all(f is not None for f in facts):
        cache: dict[str, Any] = {
            name: np.array([f[name] for f in facts if f is not None])
            for name in SCALAR_FACTS
            if all(name in f for f in facts if f is not None)
        }
        if any(f is not None and "household_holdings_value" in f for f in facts):
            matrix = np.zeros((n, n_assets))
            for i, f in enumerate(facts):
                for aid, value in (f or {}).get("household_holdings_value", {}).items():
                    matrix[i, col[int(aid)]] = float(value)
            cache["household_holdings_value"] = matrix
        state.cache["compliance"] = cache
    return state


def order_replay(*, order_id: int) -> ReplayResult:
    """Recompute order ``order_id`` from its record (current firm) and compare."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise ReplayError("order", f"no order {order_id}")
    run = RebalanceRun.objects.get(pk=order.run_id)
    mine = RunPortfolio.objects.get(run=run, portfolio_id=order.portfolio_id)
    if not mine.state or mine.strategy_version_id is None:
        raise ReplayError("state", "the order's portfolio has no recorded state to replay")
    household = mine.state.get("household")
    peers = [
        rp
        for rp in RunPortfolio.objects.filter(run=run, policy_id_used=mine.policy_id_used)
        .exclude(pk=mine.pk)
        .exclude(status=RunPortfolioStatus.SKIPPED)
        .order_by("portfolio_id")
        if household is not None and rp.state.get("household") == household
    ]
    rps = sorted([mine, *peers], key=lambda rp: rp.portfolio_id)
    state = _state(run, rps)
    result = sr._run_engine(state, run)
    rules = sr.rules_from_snapshot(run.policy_snapshot["compliance"])
    k = [rp.pk for rp in rps].index(mine.pk)
    j = int(np.flatnonzero(state.asset_ids == order.asset_id)[0])
    replayed: dict[str, Any] = {"found": False}
    evaluation: list[dict[str, Any]] = []
    for rows, proposal, steps, extra in result.proposals:
        if k not in rows.tolist():
            continue
        local = rows.tolist().index(k)
        live, orders_in = sr.proposal_live_orders(proposal)
        rules_book = sr._rules_book(state, rows, extra["book"])
        ev = compliance_rules.evaluate(rules_book, orders_in, rules)
        hits = np.flatnonzero((proposal.order_portfolio == local) & (proposal.order_asset == j))
        if not len(hits):
            break
        o = int(hits[0])
        e = np.flatnonzero(live == o)
        reason = engine.Reason(int(proposal.order_reason[o])).name
        replayed = {
            "found": True,
            "side": OrderSide.BUY if proposal.order_side[o] > 0 else OrderSide.SELL,
            "quantity": str(sr._quantity(proposal.order_quantity[o], steps[j])),
            "reason": reason,
            "price": str(state.prices[j]),
            "skipped": not len(e),
            "compliance_outcome": int(ev.order_outcome[e[0]]) if len(e) else 0,
            "rule_outcomes": list(ev.outcomes[e[0]].tolist()) if len(e) else [],
        }
        if len(e):
            evaluation = [
                {
                    "rule_id": rule.id,
                    "kind": rule.kind,
                    "outcome": compliance_rules.Outcome(int(ev.outcomes[e[0], c])).name,
                    "measured": _num(ev.measured[e[0], c]),
                    "limit": _num(ev.limit[e[0], c]),
                }
                for c, rule in enumerate(ev.rules)
            ]
        break
    recorded = {
        "found": True,
        "side": order.side,
        "quantity": str(order.quantity.normalize()) if order.quantity else "0",
        "reason": order.reason,
        "price": str(order.price),
        "skipped": order.status == OrderStatus.SKIPPED,
        "compliance_outcome": order.compliance_outcome,
        "rule_outcomes": list(
            compliance_rules.outcomes_unpack(bytes(order.rule_outcomes)).tolist()
        ),
    }
    differences = _compare(recorded, replayed)
    notes = []
    if peers:
        notes.append(
            f"replayed with {len(peers)} other portfolio(s) of the same household in this run "
            "(in-run wash-sale interaction)"
        )
    return ReplayResult(
        order_id=order.pk,
        matches=not differences,
        recorded=recorded,
        replayed=replayed,
        differences=differences,
        household_peers=[rp.portfolio_id for rp in peers],
        notes=notes,
        evaluation=evaluation,
    )


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 8)


def _compare(recorded: dict[str, Any], replayed: dict[str, Any]) -> list[str]:
    if not replayed.get("found"):
        return ["order: the replay proposes no order of this asset for this portfolio"]
    out = []
    for key in ("side", "reason", "skipped", "compliance_outcome", "rule_outcomes"):
        if recorded[key] != replayed[key]:
            out.append(f"{key}: recorded {recorded[key]!r}, replayed {replayed[key]!r}")
    if Decimal(recorded["quantity"]) != Decimal(replayed["quantity"]):
        out.append(f"quantity: recorded {recorded['quantity']}, replayed {replayed['quantity']}")
    if Decimal(recorded["price"]) != Decimal(replayed["price"]):
        out.append(f"price: recorded {recorded['price']}, replayed {replayed['price']}")
    return out
