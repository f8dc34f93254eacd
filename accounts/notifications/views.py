"""HTML pages of notifications: the inbox, one message, the unread badge (htmx), and the
failed deliveries of the firm (firm admins)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role, User
from accounts.models_notifications import Delivery, DeliveryStatus, Notification
from accounts.notifications.services import notification_archive, notification_mark_read


def _member(request: HttpRequest) -> Membership:
    membership = cast("Membership | None", getattr(request, "membership", None))
    if membership is None:
        raise Http404("No such page.")
    return membership


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    _member(request)
    archived = request.GET.get("archived") == "1"
    rows = Notification.objects.filter(
        recipient=_user(request), in_inbox=True, archived_at__isnull=not archived
    ).order_by("-created_at", "-id")[:200]
    return render(request, "notifications/inbox.html", {"rows": list(rows), "archived": archived})


def _get(request: HttpRequest, pk: int) -> Notification:
    n = Notification.objects.filter(pk=pk, recipient=_user(request), in_inbox=True).first()
    if n is None:
        raise Http404("No such message.")
    return n


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    _member(request)
    n = notification_mark_read(notification=_get(request, pk), actor=_user(request))
    return render(request, "notifications/detail.html", {"n": n})


@login_required
@require_POST
def archive(request: HttpRequest, pk: int) -> HttpResponse:
    _member(request)
    notification_archive(notification=_get(request, pk), actor=_user(request))
    return redirect("notifications:inbox")


@login_required
def badge(request: HttpRequest) -> HttpResponse:
    """The unread count, polled by the header with htmx."""
    if getattr(request, "membership", None) is None:
        return HttpResponse("")
    unread = Notification.objects.filter(
        recipient=_user(request), in_inbox=True, read_at__isnull=True, archived_at__isnull=True
    ).count()
    return render(request, "notifications/_badge.html", {"unread": unread})


@login_required
def failed(request: HttpRequest) -> HttpResponse:
    membership = _member(request)
    if membership.role != Role.FIRM_ADMIN:
        raise Http404("No such page.")
    rows = Delivery.objects.filter(status=DeliveryStatus.FAILED).order_by("-id")[:500]
    return render(request, "notifications/failed.html", {"rows": list(rows)})
