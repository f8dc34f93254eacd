"""State changes of portfolio state: rebalancing policies, the strategy a portfolio
follows, deposits and withdrawals. Every change writes its audit event in the same
transaction; bad input raises a Django ``ValidationError`` naming the field.

Services take the ``firm`` they act in and run inside ``firm_context(firm)`` and a
transaction; an object of another firm is refused like a missing one.

How portfolios follow their client's strategy assignment
--------------------------------------------------------
``Portfolio.strategy`` is what the rebalancer reads. A portfolio *follows* its
client's active :class:`accounts.models.StrategyAssignment` when its strategy is
unset or equal to the strategy of the assignment that is being superseded: when an
assignment to a strategy becomes active (mapping, override, approved override),
:func:`portfolios_follow_assignment` moves those portfolios to the new strategy
(one bulk update, one audit event listing them). A portfolio an advisor set to
another strategy with :func:`portfolio_strategy_set` keeps it. An assignment to a
placeholder model portfolio (firms without strategies) moves nothing: a portfolio
can only follow a real strategy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Firm, User
from accounts.tenancy.context import firm_context
from compliance.services import audit_record
from compliance.services.audit import AUDIT_LOCK_NAMESPACE
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.models_holdings import CashFlow, CashFlowKind, CashFlowStatus
from portfolios.models_rebalance import (
    Calendar,
    LotMethod,
    RebalancePolicy,
    TriggerMode,
)
from portfolios.models_strategy import Strategy, StrategyStatus
from portfolios.selectors_book import (
    cash_flow_pending_withdrawals,
    portfolio_value,
    rebalance_policy_default_find,
    rebalance_policy_effective_ids,
)
from portfolios.signals_book import cash_flow_requested

DEFAULT_POLICY_NAME = "Firm default"
ONE = Decimal(1)
ZERO = Decimal(0)
CENT = Decimal("0.01")

# Field -> kind, for validation and the audit payload.
POLICY_FIELDS: dict[str, str] = {
    "name": "text",
    "trigger_mode": "choice",
    "calendar": "choice",
    "abs_band": "band",
    "rel_band": "band",
    "to_band_edge": "bool",
    "cash_target": "share",
    "cash_floor": "share",
    "min_trade_value": "money",
    "cost_bps": "bps",
    "cost_fixed": "money",
    "max_cost_ratio": "share",
    "fractional": "bool",
    "buy_only_on_deposit": "bool",
    "sell_only_on_withdrawal": "bool",
    "lot_method": "choice",
    "avoid_short_term_gains": "bool",
    "wash_sale_days": "days",
}
CHOICES = {
    "trigger_mode": TriggerMode.values,
    "calendar": Calendar.values,
    "lot_method": LotMethod.values,
}
SHARE_PLACES = 6
BPS_MAX = Decimal("10000")


def _same_firm(firm: Firm, obj: Any, field: str, label: str) -> None:
    if obj is not None and getattr(obj, "firm_id", None) != firm.pk:
        raise ValidationError({field: [f"no such {label}"]})


def _decimal(field: str, value: Any, errors: dict[str, list[str]]) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        errors[field] = ["must be a number"]
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        errors[field] = ["must be a number"]
        return None
    if not out.is_finite():
        errors[field] = ["must be a finite number"]
        return None
    return out


def _places(value: Decimal, places: int) -> bool:
    exponent = value.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -places


def _check_field(field: str, value: Any, errors: dict[str, list[str]]) -> Any:
    kind = POLICY_FIELDS[field]
    if kind == "text":
        text = str(value or "").strip()
        if not text:
            errors[field] = ["must not be blank"]
        elif len(text) > 200:
            errors[field] = ["at most 200 characters"]
        return text
    if kind == "choice":
        if value not in CHOICES[field]:
            errors[field] = [f"{value!r} is not one of {', '.join(CHOICES[field])}"]
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            errors[field] = ["must be true or false"]
        return value
    if kind == "days":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 366:
            errors[field] = ["a whole number of days, 0-366"]
        return value
    if value is None:
        if kind == "band":
            return None
        errors[field] = ["is required"]
        return None
    number = _decimal(field, value, errors)
    if number is None:
        return None
    if kind in ("band", "share"):
        if not ZERO <= number < ONE:
            errors[field] = ["must be at least 0 and below 1 (a share: 0.05 is 5%)"]
        elif not _places(number, SHARE_PLACES):
            errors[field] = [f"at most {SHARE_PLACES} decimal places"]
        elif kind == "band" and number == ZERO:
            errors[field] = ["a band must be above 0 (send null for no band)"]
    elif kind == "money":
        if number < ZERO:
            errors[field] = ["must not be negative"]
        elif not _places(number, 2):
            errors[field] = ["at most 2 decimal places"]
    elif kind == "bps":
        if not ZERO <= number <= BPS_MAX:
            errors[field] = ["basis points, 0-10000"]
        elif not _places(number, 4):
            errors[field] = ["at most 4 decimal places"]
    return number


def _policy_clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every field and the rules between fields; raise naming each bad field."""
    errors: dict[str, list[str]] = {}
    clean = {field: _check_field(field, value, errors) for field, value in values.items()}
    if not errors:
        floor, target = clean["cash_floor"], clean["cash_target"]
        if floor > target:
            errors["cash_floor"] = ["must not exceed cash_target"]
        if clean["trigger_mode"] != TriggerMode.CALENDAR and (
            clean["abs_band"] is None and clean["rel_band"] is None
        ):
            errors["abs_band"] = [
                f"trigger mode {clean['trigger_mode']!r} needs a band: abs_band or rel_band"
            ]
    if errors:
        raise ValidationError(errors)
    return clean


def _policy_values(policy: RebalancePolicy) -> dict[str, Any]:
    return {field: getattr(policy, field) for field in POLICY_FIELDS}


def _unknown(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(POLICY_FIELDS))
    if unknown:
        raise ValidationError({name: ["unknown policy field"] for name in unknown})


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _name_taken(name: str, exclude: int | None = None) -> bool:
    found = RebalancePolicy.objects.filter(name__iexact=name)
    if exclude is not None:
        found = found.exclude(pk=exclude)
    return found.exists()


def _clear_default(except_pk: int | None) -> list[int]:
    defaults = RebalancePolicy.objects.select_for_update().filter(is_firm_default=True)
    if except_pk is not None:
        defaults = defaults.exclude(pk=except_pk)
    previous = list(defaults.values_list("pk", flat=True))
    RebalancePolicy.objects.filter(pk__in=previous).update(is_firm_default=False)
    return previous


# --- policies ------------------------------------------------------------------------------


def rebalance_policy_create(
    *, firm: Firm, actor: User | None, name: str, is_firm_default: bool = False, **fields: Any
) -> RebalancePolicy:
    """A new policy; unset fields take the model defaults. ``is_firm_default`` makes it
    the firm's default (the previous default stops being one)."""
    _unknown(fields)
    values = {**_policy_values(RebalancePolicy()), **fields, "name": name}
    clean = _policy_clean(values)
    with firm_context(firm), transaction.atomic():
        if _name_taken(clean["name"]):
            raise ValidationError({"name": ["a policy with this name exists"]})
        previous = _clear_default(None) if is_firm_default else []
        policy = RebalancePolicy.objects.create(is_firm_default=is_firm_default, **clean)
        audit_record(
            action="rebalance_policy.created",
            actor=actor,
            object_type="rebalance_policy",
            object_id=policy.pk,
            payload={
                **_jsonable(clean),
                "is_firm_default": is_firm_default,
                "previous_default": previous,
            },
        )
    return policy


def rebalance_policy_update(
    *,
    firm: Firm,
    actor: User | None,
    policy: RebalancePolicy,
    is_firm_default: bool | None = None,
    **fields: Any,
) -> RebalancePolicy:
    """Change fields of ``policy`` (those not given keep their value). The default policy
    can be replaced (``is_firm_default=True`` on another), not unset: a firm always has
    one."""
    _unknown(fields)
    _same_firm(firm, policy, "policy", "policy")
    with firm_context(firm), transaction.atomic():
        locked = RebalancePolicy.objects.select_for_update().filter(pk=policy.pk).first()
        if locked is None:
            raise ValidationError({"policy": ["no such policy"]})
        before = _policy_values(locked)
        clean = _policy_clean({**before, **fields})
        if "name" in fields and _name_taken(clean["name"], exclude=locked.pk):
            raise ValidationError({"name": ["a policy with this name exists"]})
        if is_firm_default is False and locked.is_firm_default:
            raise ValidationError({"is_firm_default": ["make another policy the default instead"]})
        changes = {k: [before[k], v] for k, v in clean.items() if before[k] != v}
        previous: list[int] = []
        if is_firm_default and not locked.is_firm_default:
            previous = _clear_default(locked.pk)
            changes["is_firm_default"] = [False, True]
            locked.is_firm_default = True
        if not changes:
            return locked
        for key, value in clean.items():
            setattr(locked, key, value)
        locked.save()
        audit_record(
            action="rebalance_policy.changed",
            actor=actor,
            object_type="rebalance_policy",
            object_id=locked.pk,
            payload={
                "changes": {k: _jsonable({"v": v})["v"] for k, v in changes.items()},
                "previous_default": previous,
            },
        )
    for key in (*POLICY_FIELDS, "is_firm_default", "updated_at"):
        setattr(policy, key, getattr(locked, key))
    return locked


def rebalance_policy_delete(*, firm: Firm, actor: User | None, policy: RebalancePolicy) -> None:
    """Delete a policy no strategy or portfolio names; the default cannot be deleted."""
    _same_firm(firm, policy, "policy", "policy")
    with firm_context(firm), transaction.atomic():
        locked = RebalancePolicy.objects.select_for_update().filter(pk=policy.pk).first()
        if locked is None:
            raise ValidationError({"policy": ["no such policy"]})
        if locked.is_firm_default:
            raise ValidationError({"policy": ["the firm default cannot be deleted"]})
        users = Strategy.objects.filter(rebalance_policy=locked).count()
        users += Portfolio.objects.filter(rebalance_policy=locked).count()
        if users:
            raise ValidationError({"policy": [f"{users} strategies or portfolios use this policy"]})
        values = _jsonable(_policy_values(locked))
        pk = locked.pk
        locked.delete()
        audit_record(
            action="rebalance_policy.deleted",
            actor=actor,
            object_type="rebalance_policy",
            object_id=pk,
            payload=values,
        )


def rebalance_policy_default_get(*, firm: Firm) -> RebalancePolicy:
    """The firm's default policy, created with the model's defaults when it has none.

    Race-safe: the firm's audit-chain lock is taken before looking (creation writes an
    audit event, so it is taken anyway, and taking it first keeps one lock order), and
    the partial unique constraint backs it up: a losing concurrent insert re-reads the
    winner's row.
    """
    with firm_context(firm):
        found = rebalance_policy_default_find()
        if found is not None:
            return found
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [AUDIT_LOCK_NAMESPACE, firm.pk]
                )
            found = rebalance_policy_default_find()
            if found is not None:
                return found
            name = DEFAULT_POLICY_NAME
            suffix = 1
            while _name_taken(name):
                suffix += 1
                name = f"{DEFAULT_POLICY_NAME} ({suffix})"
            try:
                with transaction.atomic():
                    policy = RebalancePolicy.objects.create(name=name, is_firm_default=True)
            except IntegrityError:
                winner = rebalance_policy_default_find()
                if winner is None:
                    raise
                return winner
            audit_record(
                action="rebalance_policy.default_created",
                actor_label="system",
                object_type="rebalance_policy",
                object_id=policy.pk,
                payload={**_jsonable(_policy_values(policy)), "is_firm_default": True},
                reasons=["the firm had no default rebalancing policy"],
            )
        return policy


def rebalance_policy_effective_many(
    *, firm: Firm, portfolio_ids: Iterable[int]
) -> dict[int, RebalancePolicy]:
    """Portfolio id -> its effective policy (own, else strategy's, else the firm default),
    in two queries (ids resolved in one, the policies in another) whatever the count."""
    with firm_context(firm):
        effective = rebalance_policy_effective_ids(portfolio_ids=portfolio_ids)
        policies = {p.pk: p for p in RebalancePolicy.objects.filter(
            pk__in={pk for pk in effective.values() if pk is not None}
        )}  # fmt: skip
        default = (
            rebalance_policy_default_get(firm=firm)
            if any(pk is None or pk not in policies for pk in effective.values())
            else None
        )
        return {
            portfolio_id: policies.get(pk, default)  # type: ignore[misc, arg-type]
            for portfolio_id, pk in effective.items()
        }


def rebalance_policy_effective(*, portfolio: Portfolio) -> RebalancePolicy:
    """The portfolio's own policy, else its strategy's, else the firm default."""
    firm = Firm.objects.get(pk=portfolio.firm_id)
    found = rebalance_policy_effective_many(firm=firm, portfolio_ids=[portfolio.pk])
    if portfolio.pk not in found:
        raise ValidationError({"portfolio": ["no such portfolio"]})
    return found[portfolio.pk]


def _policy_or_none(firm: Firm, policy: RebalancePolicy | None) -> None:
    if policy is None:
        return
    _same_firm(firm, policy, "policy", "policy")
    if not RebalancePolicy.objects.filter(pk=policy.pk).exists():
        raise ValidationError({"policy": ["no such policy"]})


def strategy_policy_set(
    *, firm: Firm, actor: User | None, strategy: Strategy, policy: RebalancePolicy | None
) -> Strategy:
    """The policy of every portfolio following ``strategy`` that names none (None: the
    firm default)."""
    _same_firm(firm, strategy, "strategy", "strategy")
    with firm_context(firm), transaction.atomic():
        _policy_or_none(firm, policy)
        locked = Strategy.objects.select_for_update().filter(pk=strategy.pk).first()
        if locked is None:
            raise ValidationError({"strategy": ["no such strategy"]})
        before = locked.rebalance_policy_id
        after = None if policy is None else policy.pk
        if before != after:
            Strategy.objects.filter(pk=locked.pk).update(rebalance_policy_id=after)
            audit_record(
                action="strategy.policy_set",
                actor=actor,
                object_type="strategy",
                object_id=locked.pk,
                payload={"policy_id": [before, after]},
            )
    strategy.rebalance_policy_id = after
    return strategy


def portfolio_policy_set(
    *, firm: Firm, actor: User | None, portfolio: Portfolio, policy: RebalancePolicy | None
) -> Portfolio:
    """The portfolio's own policy (None: its strategy's, else the firm default)."""
    _same_firm(firm, portfolio, "portfolio", "portfolio")
    with firm_context(firm), transaction.atomic():
        _policy_or_none(firm, policy)
        locked = _lock_portfolio(portfolio)
        before = locked.rebalance_policy_id
        after = None if policy is None else policy.pk
        if before != after:
            Portfolio.objects.filter(pk=locked.pk).update(rebalance_policy_id=after)
            audit_record(
                action="portfolio.policy_set",
                actor=actor,
                object_type="portfolio",
                object_id=locked.pk,
                payload={"policy_id": [before, after]},
            )
    portfolio.rebalance_policy_id = after
    return portfolio


# --- strategies ----------------------------------------------------------------------------


def _lock_portfolio(portfolio: Portfolio) -> Portfolio:
    locked = Portfolio.objects.select_for_update().filter(pk=portfolio.pk).first()
    if locked is None:
        raise ValidationError({"portfolio": ["no such portfolio"]})
    return locked


def portfolio_strategy_set(
    *, firm: Firm, actor: User | None, portfolio: Portfolio, strategy: Strategy | None
) -> Portfolio:
    """The strategy the portfolio rebalances towards: an active strategy of the firm
    (None: it follows its client's strategy assignment again, from the next change)."""
    _same_firm(firm, portfolio, "portfolio", "portfolio")
    _same_firm(firm, strategy, "strategy", "strategy")
    with firm_context(firm), transaction.atomic():
        if strategy is not None:
            current = Strategy.objects.filter(pk=strategy.pk).values_list("status", flat=True)
            status = current.first()
            if status is None:
                raise ValidationError({"strategy": ["no such strategy"]})
            if status != StrategyStatus.ACTIVE:
                raise ValidationError({"strategy": [f"the strategy is {status}, not active"]})
        locked = _lock_portfolio(portfolio)
        if locked.status == PortfolioStatus.CLOSED:
            raise ValidationError({"portfolio": ["the portfolio is closed"]})
        before = locked.strategy_id
        after = None if strategy is None else strategy.pk
        if before != after:
            Portfolio.objects.filter(pk=locked.pk).update(strategy_id=after)
            audit_record(
                action="portfolio.strategy_set",
                actor=actor,
                object_type="portfolio",
                object_id=locked.pk,
                payload={"strategy_id": [before, after]},
                reasons=[f"set by {actor.get_username() if actor else 'system'}"],
            )
    portfolio.strategy_id = after
    return portfolio


def portfolios_follow_assignment(
    *,
    actor: User | None,
    client_id: int,
    previous_strategy_ids: Iterable[int | None],
    strategy_id: int | None,
    assignment_id: int,
) -> list[int]:
    """Move the client's portfolios that follow its assignment (strategy unset or one of
    ``previous_strategy_ids``) to ``strategy_id``; returns their ids. Runs in the
    caller's firm and transaction (called by accounts.strategy_services)."""
    if strategy_id is None:
        return []  # a placeholder model portfolio: nothing a portfolio can follow
    previous = {pk for pk in previous_strategy_ids if pk is not None and pk != strategy_id}
    followers = (
        Portfolio.objects.filter(client_id=client_id)
        .exclude(status=PortfolioStatus.CLOSED)
        .filter(Q(strategy__isnull=True) | Q(strategy_id__in=previous))
    )
    ids = sorted(followers.values_list("pk", flat=True))
    if ids:
        Portfolio.objects.filter(pk__in=ids).update(strategy_id=strategy_id)
        audit_record(
            action="portfolio.strategy_followed",
            actor=actor,
            object_type="client",
            object_id=client_id,
            payload={
                "portfolios": ids,
                "strategy_id": strategy_id,
                "previous_strategy_ids": sorted(previous),
                "assignment_id": assignment_id,
            },
            reasons=["the portfolios follow the client's strategy assignment"],
        )
    return ids


# --- cash flows ----------------------------------------------------------------------------


def _amount(value: Any) -> Decimal:
    errors: dict[str, list[str]] = {}
    amount = _decimal("amount", value, errors)
    if amount is None:
        raise ValidationError(errors)
    if amount <= ZERO:
        raise ValidationError({"amount": ["must be above 0"]})
    if not _places(amount, 2):
        raise ValidationError({"amount": ["at most 2 decimal places (cents)"]})
    if amount >= Decimal("1e18"):
        raise ValidationError({"amount": ["too large"]})
    return amount.quantize(CENT)


def cash_flow_request(
    *, firm: Firm, actor: User | None, portfolio: Portfolio, kind: str, amount: Any
) -> CashFlow:
    """A pending deposit or withdrawal. A withdrawal (with the pending ones) cannot exceed
    the portfolio's value. After commit, :data:`portfolios.signals_book.ON_CASH_FLOW`
    hooks are called with (firm id, portfolio id) to start a cash-flow rebalance."""
    if kind not in CashFlowKind.values:
        raise ValidationError(
            {"kind": [f"{kind!r} is not one of {', '.join(CashFlowKind.values)}"]}
        )
    clean = _amount(amount)
    _same_firm(firm, portfolio, "portfolio", "portfolio")
    with firm_context(firm), transaction.atomic():
        locked = _lock_portfolio(portfolio)  # serialises requests of one portfolio
        if locked.status != PortfolioStatus.OPEN:
            raise ValidationError({"portfolio": [f"the portfolio is {locked.status}"]})
        if kind == CashFlowKind.WITHDRAWAL:
            value = portfolio_value(portfolio=locked)
            pending = cash_flow_pending_withdrawals(portfolio=locked)
            if clean + pending > value:
                raise ValidationError(
                    {
                        "amount": [
                            f"a withdrawal of {clean} exceeds the portfolio's value {value}"
                            + (f" less pending withdrawals of {pending}" if pending else "")
                        ]
                    }
                )
        flow = CashFlow.objects.create(
            portfolio=locked, kind=kind, amount=clean, requested_by=actor
        )
        audit_record(
            action=f"cash_flow.{kind}_requested",
            actor=actor,
            object_type="cash_flow",
            object_id=flow.pk,
            payload={"portfolio_id": locked.pk, "kind": kind, "amount": str(clean)},
        )
        transaction.on_commit(functools.partial(cash_flow_requested, firm.pk, locked.pk))
    return flow


def cash_flow_cancel(
    *, firm: Firm, actor: User | None, cash_flow: CashFlow, note: str = ""
) -> CashFlow:
    """Cancel a pending deposit or withdrawal (a processed one cannot be)."""
    _same_firm(firm, cash_flow, "cash_flow", "cash flow")
    with firm_context(firm), transaction.atomic():
        locked = CashFlow.objects.select_for_update().filter(pk=cash_flow.pk).first()
        if locked is None:
            raise ValidationError({"cash_flow": ["no such cash flow"]})
        if locked.status != CashFlowStatus.PENDING:
            raise ValidationError({"cash_flow": [f"the cash flow is {locked.status}"]})
        locked.status = CashFlowStatus.CANCELLED
        locked.processed_at = timezone.now()
        locked.save(update_fields=["status", "processed_at"])
        audit_record(
            action="cash_flow.cancelled",
            actor=actor,
            object_type="cash_flow",
            object_id=locked.pk,
            payload={
                "portfolio_id": locked.portfolio_id,
                "kind": locked.kind,
                "amount": str(locked.amount),
                "note": note,
            },
        )
    return locked
