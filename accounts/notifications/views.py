"""HTML pages of notifications: the inbox, one message, the unread badge (htmx), and the
failed deliveries of the firm (firm admins)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.models_notifications import Channel, Delivery, DeliveryStatus, Notification
from accounts.notifications.events import CHANNELS
from accounts.notifications.services import (
    notification_archive,
    notification_mark_read,
    notification_preference_set,
    notification_preferences_get,
)
from accounts.web import signed_in_user


def _member(request: HttpRequest) -> Membership:
    membership = cast("Membership | None", getattr(request, "membership", None))
    if membership is None:
        raise Http404("No such page.")
    return membership


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    _member(request)
    archived = request.GET.get("archived") == "1"
    rows = Notification.objects.filter(
        recipient=signed_in_user(request), in_inbox=True, archived_at__isnull=not archived
    ).order_by("-created_at", "-id")[:200]
    return render(request, "notifications/inbox.html", {"rows": list(rows), "archived": archived})


def _get(request: HttpRequest, pk: int) -> Notification:
    n = Notification.objects.filter(pk=pk, recipient=signed_in_user(request), in_inbox=True).first()
    if n is None:
        raise Http404("No such message.")
    return n


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    _member(request)
    n = notification_mark_read(notification=_get(request, pk), actor=signed_in_user(request))
    return render(request, "notifications/detail.html", {"n": n})


@login_required
@require_POST
def archive(request: HttpRequest, pk: int) -> HttpResponse:
    _member(request)
    notification_archive(notification=_get(request, pk), actor=signed_in_user(request))
    return redirect("notifications:inbox")


@login_required
def badge(request: HttpRequest) -> HttpResponse:
    """The unread count, polled by the header with htmx."""
    if getattr(request, "membership", None) is None:
        return HttpResponse("")
    unread = Notification.objects.filter(
        recipient=signed_in_user(request),
        in_inbox=True,
        read_at__isnull=True,
        archived_at__isnull=True,
    ).count()
    return render(request, "notifications/_badge.html", {"unread": unread})


@login_required
def failed(request: HttpRequest) -> HttpResponse:
    membership = _member(request)
    if membership.role != Role.FIRM_ADMIN:
        raise Http404("No such page.")
    rows = Delivery.objects.filter(status=DeliveryStatus.FAILED).order_by("-id")[:500]
    return render(request, "notifications/failed.html", {"rows": list(rows)})


def _audience_of(role: str) -> set[str]:
    return {"investor"} if role == Role.INVESTOR else {"staff"}


@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    """Per event type: which channels, immediately or in a daily digest. Regulatory events
    are shown locked (in the app and by email, immediately). A POST saves the event types
    whose choice changed; a refused choice is shown naming the event type."""
    membership = _member(request)
    user = signed_in_user(request)
    audience = _audience_of(membership.role)
    rows = [r for r in notification_preferences_get(user=user) if r["audience"] in audience]
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        for row in rows:
            code = row["event_type"]
            if row["regulatory"]:
                continue  # locked: never taken from the form
            channels = [c for c in CHANNELS if request.POST.get(f"{code}-{c}") == "on"]
            mode = request.POST.get(f"{code}-mode", "immediate")
            if channels == row["channels"] and mode == row["mode"]:
                continue
            try:
                notification_preference_set(
                    user=user, event_type=code, channels=channels, mode=mode
                )
            except ValidationError as exc:
                errors[code] = [m for ms in exc.message_dict.values() for m in ms]
        if not errors:
            messages.success(request, "Your notification preferences are saved.")
            return redirect("notifications:preferences")
        rows = [r for r in notification_preferences_get(user=user) if r["audience"] in audience]
    for row in rows:
        row["errors"] = errors.get(row["event_type"], [])
    return render(
        request,
        "notifications/preferences.html",
        {
            "rows": rows,
            "channels": [(c, dict(Channel.choices)[c]) for c in CHANNELS],
        },
        status=400 if errors else 200,
    )
