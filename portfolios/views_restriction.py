"""The client page's strategy panels (loaded into the advisor's client page with htmx).

* Restrictions: the client's restrictions as a form (firm admins and the household's
  advisors edit, others read), and their effect on a strategy's current weights: the
  assigned strategy, else the one the firm maps the client's risk level to, or any
  strategy chosen in the panel.
* Recommendation: for the client's current risk level, the recommended method and
  parameters on that strategy's universe, beside the backtested trade-off of the
  alternatives (CAGR, volatility, maximum drawdown, Sharpe).

Thin views: the work is in the services (restrictions, preview, recommendation).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.book_selectors import client_can_change, client_get_visible
from accounts.models import (
    Client,
    Membership,
    ProfileStatus,
    RiskProfile,
    Role,
    StrategyAssignment,
    User,
)
from portfolios.models_strategy import Strategy
from portfolios.selectors_strategy import (
    client_restriction_get,
    strategy_get,
    strategy_list,
    strategy_list_for_risk_level,
)
from portfolios.services_restriction import (
    client_restriction_clear,
    client_restriction_preview,
    client_restriction_set,
)
from portfolios.services_strategy import strategy_recommend

PAGE_ROLES = frozenset({Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE})


def _client(request: HttpRequest, pk: int) -> tuple[Membership, Client]:
    membership = cast("Membership | None", getattr(request, "membership", None))
    if membership is None or membership.role not in PAGE_ROLES:
        raise Http404("No such page.")
    client = client_get_visible(membership=membership, client_id=pk)
    if client is None:
        raise Http404("No such client.")
    return membership, client


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{field}: {m}" for field, ms in exc.message_dict.items() for m in ms]
    return list(exc.messages)


def _current_level(client: Client) -> int | None:
    profile = (
        RiskProfile.objects.filter(client=client, status=ProfileStatus.CURRENT)
        .order_by("-created_at")
        .first()
    )
    return None if profile is None else int(profile.risk_level)


def default_strategy(client: Client) -> tuple[Strategy | None, str]:
    """The strategy the panels show first, and why: assigned, else mapped by risk level."""
    assignment = (
        StrategyAssignment.objects.filter(client=client, strategy__isnull=False)
        .select_related("strategy")
        .order_by("-created_at", "-pk")
        .first()
    )
    if assignment is not None and assignment.strategy is not None:
        return assignment.strategy, f"assigned ({assignment.get_status_display().lower()})"
    level = _current_level(client)
    if level is not None:
        fits = strategy_list_for_risk_level(risk_level=level)
        if fits:
            return fits[0], f"recommended for risk level {level}"
    return None, ""


def _percent(value: str | Decimal) -> str:
    return f"{Decimal(value) * 100:.2f}%"


def _lines(text: str) -> list[list[str]]:
    return [line.replace(",", " ").split() for line in text.splitlines() if line.strip()]


def _form_data(post: Any) -> dict[str, Any]:
    """The form's text fields as the service's data; shape errors become field errors."""

    def words(name: str) -> list[str]:
        return [w for w in str(post.get(name, "")).replace(",", " ").split() if w]

    bounds: dict[str, list[str]] = {}
    for parts in _lines(str(post.get("asset_bounds", ""))):
        if len(parts) != 3:
            raise ValidationError(
                {"asset_bounds": ["write one asset a line: SYMBOL minimum maximum"]}
            )
        bounds[parts[0]] = [parts[1], parts[2]]
    tilts: dict[str, str] = {}
    for parts in _lines(str(post.get("class_tilts", ""))):
        if len(parts) != 2:
            raise ValidationError({"class_tilts": ["write one class a line: asset_class tilt"]})
        tilts[parts[0]] = parts[1]
    return {
        "excluded_assets": words("excluded_assets"),
        "excluded_tags": words("excluded_tags"),
        "asset_bounds": bounds,
        "class_tilts": tilts,
        "note": str(post.get("note", "")),
    }


@login_required
@require_POST
def client_restrictions_save(request: HttpRequest, pk: int) -> HttpResponse:
    membership, client = _client(request, pk)
    if not client_can_change(membership=membership, client=client):
        raise Http404("No such client.")
    actor = request.user if isinstance(request.user, User) else None
    try:
        with transaction.atomic():
            if request.POST.get("action") == "clear":
                client_restriction_clear(firm=membership.firm, actor=actor, client=client)
                messages.success(request, "Restrictions cleared.")
            else:
                data = _form_data(request.POST)
                client_restriction_set(firm=membership.firm, actor=actor, client=client, data=data)
                messages.success(request, "Restrictions saved.")
    except ValidationError as exc:
        for message in _messages(exc):
            messages.error(request, message)
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
@require_GET
def client_restrictions_panel(request: HttpRequest, pk: int) -> HttpResponse:
    membership, client = _client(request, pk)
    row = client_restriction_get(client_id=client.pk)
    raw = request.GET.get("strategy", "")
    strategy, why = (strategy_get(strategy_id=int(raw)), "chosen") if raw.isdigit() else (None, "")
    if strategy is None:
        strategy, why = default_strategy(client)
    preview: dict[str, Any] | None = None
    error = ""
    if strategy is not None:
        try:
            with transaction.atomic():
                actor = request.user if isinstance(request.user, User) else None
                preview = client_restriction_preview(client=client, strategy=strategy, actor=actor)
        except ValidationError as exc:
            error = "; ".join(_messages(exc))
    rows = [
        {
            **r,
            "strategy_percent": _percent(r["strategy_weight"]),
            "customised_percent": _percent(r["customised_weight"]),
            "change_percent": _percent(r["change"]),
            "changed": Decimal(r["change"]) != 0,
        }
        for r in (preview or {}).get("weights", [])
    ]
    return render(
        request,
        "portfolios/_client_restrictions.html",
        {
            "c": client,
            "restriction": row,
            "bounds_text": "\n".join(
                f"{s} {lo:g} {hi:g}" for s, (lo, hi) in (row.asset_bounds if row else {}).items()
            ),
            "tilts_text": "\n".join(
                f"{k} {v:+g}" for k, v in (row.class_tilts if row else {}).items()
            ),
            "can_change": client_can_change(membership=membership, client=client),
            "strategy": strategy,
            "why": why,
            "strategies": list(strategy_list()),
            "preview": preview,
            "rows": rows,
            "error": error,
        },
    )


def _metric(value: Any, percent: bool = True) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f}%" if percent else f"{float(value):.2f}"


@login_required
@require_GET
def client_recommendation_panel(request: HttpRequest, pk: int) -> HttpResponse:
    _, client = _client(request, pk)
    level = _current_level(client)
    strategy, why = default_strategy(client)
    recommendation: dict[str, Any] | None = None
    error = ""
    if level is None:
        error = "The client has no current risk profile."
    elif strategy is None:
        error = "No strategy of the firm covers this risk level: nothing to recommend from."
    else:
        try:
            recommendation = strategy_recommend(
                risk_level=level,
                symbols=strategy.universe,
                price_frequency=strategy.price_frequency,
            )
        except ValidationError as exc:
            error = "; ".join(_messages(exc))
    alternatives = []
    weights = []
    if recommendation is not None:
        for row in recommendation["alternatives"]:
            metrics = row.get("metrics") or {}
            alternatives.append(
                {
                    "method": row["method"].replace("_", " "),
                    "recommended": row.get("recommended", False),
                    "error": row.get("error", ""),
                    "cagr": _metric(metrics.get("cagr")),
                    "volatility": _metric(metrics.get("volatility")),
                    "max_drawdown": _metric(metrics.get("max_drawdown")),
                    "sharpe": _metric(metrics.get("sharpe"), percent=False),
                }
            )
        weights = [(s, _percent(w)) for s, w in recommendation["weights"].items()]
    return render(
        request,
        "portfolios/_client_recommendation.html",
        {
            "c": client,
            "level": level,
            "strategy": strategy,
            "why": why,
            "recommendation": recommendation,
            "alternatives": alternatives,
            "weights": weights,
            "error": error,
        },
    )


__all__ = [
    "client_recommendation_panel",
    "client_restrictions_panel",
    "client_restrictions_save",
    "default_strategy",
]
