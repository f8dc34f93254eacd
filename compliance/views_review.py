"""The console pages built on the compliance domain: the review queue of held
portfolios (release with a written reason, or reject), rule management (list,
create, edit = a new version, version history) and "why this trade" for an order.

Thin: reads from :mod:`compliance.selectors` (``review_queue``, ``order_explain``),
writes through :mod:`compliance.services.overrides` and
:mod:`compliance.services.rule_management`, which check roles, the second approver
and the parameters; their refusals come back to the form naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Membership, Role
from accounts.web import signed_in_user
from compliance.models import ComplianceRule, ComplianceRuleVersion
from compliance.rules import RULE_KINDS, RuleParamError
from compliance.rules.params import DEFAULT_SEVERITY, rule_param_names
from compliance.selectors import order_explain, review_queue
from compliance.services.overrides import (
    OverrideError,
    held_portfolio_reject,
    held_portfolio_release,
)
from compliance.services.rule_management import (
    RulePermissionError,
    compliance_rule_create,
    compliance_rule_update,
)
from portfolios.models_rebalance import Order, RunPortfolio

READERS = frozenset({Role.COMPLIANCE, Role.FIRM_ADMIN})
MAX_ID = 2**63 - 1


def _membership(request: HttpRequest) -> Membership:
    membership = getattr(request, "membership", None)
    if not isinstance(membership, Membership) or membership.role not in READERS:
        raise PermissionDenied
    return membership


# --- review queue ------------------------------------------------------------------------


def _plain_failures(failures: Any) -> list[str]:
    """A failure in plain words: its message, with the measured value against the limit."""
    out = []
    for f in failures or []:
        if not isinstance(f, dict):
            continue
        text = str(f.get("message") or f.get("kind") or "rule failed")
        measured, limit = f.get("measured"), f.get("limit")
        if measured is not None and limit is not None and "limit" not in text.lower():
            text += f" (measured {measured}, limit {limit})"
        out.append(text)
    return out


@login_required
@require_GET
def review_queue_page(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    queue = review_queue(firm=membership.firm)
    for item in queue:
        for order in item["orders"]:
            order["plain"] = _plain_failures(order["failures"])
        item["can_release"] = item.get("proposer_id") != request.user.pk
    return render(request, "compliance/review_queue.html", {"queue": queue})


@login_required
@require_POST
def review_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Release (``decision=release``) or reject a held portfolio, with a written reason."""
    membership = _membership(request)
    if pk > MAX_ID:
        raise Http404("No such held portfolio.")
    run_portfolio = RunPortfolio.objects.filter(pk=pk).first()
    if run_portfolio is None:
        raise Http404("No such held portfolio.")
    decision = request.POST.get("decision", "")
    if decision not in ("release", "reject"):
        messages.error(request, "decision: choose release or reject")
        return redirect("compliance:review_queue")
    decide = held_portfolio_release if decision == "release" else held_portfolio_reject
    try:
        decide(
            firm=membership.firm,
            actor=signed_in_user(request),
            run_portfolio=run_portfolio,
            reason=request.POST.get("reason", ""),
        )
    except OverrideError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    except RulePermissionError as exc:
        messages.error(request, str(exc))
    else:
        done = "released" if decision == "release" else "rejected"
        messages.success(request, f"Portfolio {run_portfolio.portfolio_id} {done}.")
    return redirect("compliance:review_queue")


# --- why this trade ------------------------------------------------------------------------


@login_required
@require_GET
def order_explain_page(request: HttpRequest, pk: int) -> HttpResponse:
    _membership(request)
    if pk > MAX_ID:
        raise Http404("No such order.")
    try:
        explain = order_explain(order_id=pk)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None
    for rule in explain["rules"]:
        rule["params_text"] = json.dumps(rule["params"], sort_keys=True)
    return render(
        request,
        "compliance/order_explain.html",
        {
            "x": explain,
            "failed": [r for r in explain["rules"] if r["outcome"] in ("SOFT_FAIL", "HARD_FAIL")],
            "state_json": json.dumps(explain["portfolio"]["state"], indent=2, sort_keys=True),
            "search_url": reverse("compliance:audit_list")
            + f"?run={explain['run']['id']}&portfolio={explain['portfolio']['id']}",
        },
    )


# --- rules ---------------------------------------------------------------------------------


def _ids(raw: str) -> list[int]:
    parts = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
    out = []
    for part in parts:
        if not part.isdigit():
            raise RuleParamError("ids", f"{part!r} is not an id")
        out.append(int(part))
    return out


def _form_values(post: Any) -> dict[str, Any]:
    return {
        "name": post.get("name", ""),
        "kind": post.get("kind", ""),
        "severity": post.get("severity", ""),
        "params": post.get("params", "{}"),
        "strategy_ids": post.get("strategy_ids", ""),
        "client_ids": post.get("client_ids", ""),
        "active": post.get("active", "") == "on",
    }


def _parsed(values: dict[str, Any]) -> dict[str, Any]:
    try:
        params = json.loads(values["params"] or "{}")
    except json.JSONDecodeError as exc:
        raise RuleParamError("params", f"not valid JSON ({exc.msg})") from None
    if not isinstance(params, dict):
        raise RuleParamError("params", "must be a JSON object of parameter: value")
    out: dict[str, Any] = {"severity": values["severity"], "params": params}
    for name in ("strategy_ids", "client_ids"):
        try:
            out[name] = _ids(values[name])
        except RuleParamError as exc:
            raise RuleParamError(name, exc.message) from None
    return out


def _kinds() -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "params": rule_param_names(kind),
            "severity": "hard" if int(DEFAULT_SEVERITY[kind]) == 2 else "soft",
        }
        for kind in RULE_KINDS
    ]


@login_required
@require_GET
def rule_list(request: HttpRequest) -> HttpResponse:
    _membership(request)
    rules = list(ComplianceRule.objects.select_related("current_version").order_by("name", "pk"))
    return render(request, "compliance/rule_list.html", {"rules": rules, "kinds": _kinds()})


@login_required
@require_http_methods(["GET", "POST"])
def rule_new(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    values = _form_values(request.POST) if request.method == "POST" else {"params": "{}"}
    error: RuleParamError | None = None
    if request.method == "POST":
        try:
            parsed = _parsed(values)
            rule = compliance_rule_create(
                firm=membership.firm,
                actor=signed_in_user(request),
                name=values["name"],
                kind=values["kind"],
                **parsed,
            )
        except RuleParamError as exc:
            error = exc
        except RulePermissionError as exc:
            raise PermissionDenied(str(exc)) from None
        else:
            messages.success(request, f"Rule {rule.name!r} created (version 1).")
            return redirect("compliance:rule_detail", pk=rule.pk)
    return render(
        request,
        "compliance/rule_form.html",
        {"values": values, "error": error, "kinds": _kinds(), "rule": None},
        status=400 if error else 200,
    )


def _rule(pk: int) -> ComplianceRule:
    rule = ComplianceRule.objects.filter(pk=pk).first() if pk <= MAX_ID else None
    if rule is None:
        raise Http404("No such rule.")
    return rule


@login_required
@require_http_methods(["GET", "POST"])
def rule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A rule, its version history, and the form whose saving writes a new version."""
    membership = _membership(request)
    rule = _rule(pk)
    versions = list(
        ComplianceRuleVersion.objects.filter(rule=rule)
        .select_related("created_by")
        .order_by("-number")
    )
    current = next((v for v in versions if v.pk == rule.current_version_id), None)
    error: RuleParamError | None = None
    if request.method == "POST":
        values = _form_values(request.POST)
        values["name"], values["kind"] = rule.name, rule.kind
        try:
            parsed = _parsed(values)
            compliance_rule_update(
                firm=membership.firm,
                actor=signed_in_user(request),
                rule=rule,
                active=values["active"],
                **parsed,
            )
        except RuleParamError as exc:
            error = exc
        except RulePermissionError as exc:
            raise PermissionDenied(str(exc)) from None
        else:
            messages.success(request, f"Rule {rule.name!r} saved as a new version.")
            return redirect("compliance:rule_detail", pk=rule.pk)
    else:
        values = {
            "name": rule.name,
            "kind": rule.kind,
            "severity": "hard" if current and current.severity == 2 else "soft",
            "params": json.dumps(current.params if current else {}, sort_keys=True),
            "strategy_ids": ", ".join(str(i) for i in (current.strategy_ids if current else [])),
            "client_ids": ", ".join(str(i) for i in (current.client_ids if current else [])),
            "active": current.active if current else rule.active,
        }
    return render(
        request,
        "compliance/rule_form.html",
        {
            "values": values,
            "error": error,
            "kinds": _kinds(),
            "rule": rule,
            "versions": versions,
            "param_names": rule_param_names(rule.kind),
        },
        status=400 if error else 200,
    )
