"""The web shell: sign-in and sign-out, each role's home page, the firm switcher.

Thin views: the firm and membership come from :class:`advisor.middleware.FirmMiddleware`,
reads from :mod:`advisor.dashboards`, and every page is rendered inside the view (and
so inside the request's transaction, where row-level security sees the firm).
"""

from __future__ import annotations

import logging
from typing import cast

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.models import Firm, Membership, Role
from accounts.selectors import FirmNotAllowed, membership_resolve
from accounts.tenancy.context import firm_context
from accounts.web import signed_in_user
from advisor.dashboards import audit_chain_status, home_figures_for_role
from advisor.middleware import SESSION_FIRM_KEY
from compliance.services import audit_record

security_log = logging.getLogger("advisor.security")

CHAIN_STATUS_ROLES = frozenset({Role.COMPLIANCE, Role.FIRM_ADMIN})


def _firm(request: HttpRequest) -> Firm | None:
    return cast("Firm | None", getattr(request, "firm", None))


def _membership(request: HttpRequest) -> Membership | None:
    return cast("Membership | None", getattr(request, "membership", None))


def _memberships(request: HttpRequest) -> list[Membership]:
    return cast("list[Membership]", getattr(request, "memberships", []))


class LoginView(auth_views.LoginView):
    template_name = "auth/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5); goes back to the sign-in page (``LOGOUT_REDIRECT_URL``)."""


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    firm, membership = _firm(request), _membership(request)
    if firm is None or membership is None:
        if len(_memberships(request)) > 1:
            return redirect("firm_choose")
        return render(request, "home/no_firm.html")
    dashboard = home_figures_for_role(firm=firm, membership=membership)
    return render(request, f"home/{membership.role}.html", {"dashboard": dashboard})


@login_required
@require_GET
def home_chain_status(request: HttpRequest) -> HttpResponse:
    """The audit chain check, loaded by the compliance home page after it has rendered."""
    firm, membership = _firm(request), _membership(request)
    if firm is None or membership is None or membership.role not in CHAIN_STATUS_ROLES:
        raise PermissionDenied
    return render(request, "home/_chain_status.html", {"check": audit_chain_status(firm=firm)})


@login_required
@require_GET
def firm_choose(request: HttpRequest) -> HttpResponse:
    memberships = _memberships(request)
    if len(memberships) == 1:
        return redirect("home")
    return render(request, "firm/choose.html", {"choices": memberships})


@login_required
@require_POST
def firm_switch(request: HttpRequest) -> HttpResponse:
    """Make one of the user's own firms the active one; any other slug is a 404."""
    user = signed_in_user(request)
    slug = request.POST.get("slug", "").strip()
    try:
        if not slug:
            raise FirmNotAllowed(slug)
        membership = membership_resolve(memberships=_memberships(request), slug=slug)
    except FirmNotAllowed:
        security_log.warning("user %s asked to switch to firm %r: refused", user.pk, slug[:60])
        raise Http404("No such firm.") from None
    current = _firm(request)
    if current is None or current.pk != membership.firm.pk:
        with firm_context(membership.firm), transaction.atomic():
            audit_record(
                action="auth.firm_switched",
                actor=user,
                object_type="firm",
                object_id=membership.firm.pk,
                payload={"firm": membership.firm.slug, "role": membership.role},
            )
        request.session[SESSION_FIRM_KEY] = membership.firm.slug
    target = reverse("home")
    if request.headers.get("HX-Request") == "true":
        return HttpResponseClientRedirect(target)
    return redirect(target)
