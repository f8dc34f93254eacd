"""Celery tasks of the compliance app: take ids, set the firm, call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from accounts.models import Firm
from compliance.services.verification import audit_chain_nightly_check


@shared_task(name="compliance.audit_chain_verify")
def audit_chain_verify_task(*, firm_id: int) -> dict[str, Any]:
    """Verify one firm's audit chain, record the check, alert on a break.

    The service sets the firm itself (the chain walk runs in its own transaction,
    the record and its audit event in another), so this is not ``@firm_task``.
    """
    firm = Firm.objects.get(pk=firm_id)
    verification = audit_chain_nightly_check(firm=firm)
    return {
        "firm": firm.slug,
        "ok": verification.ok,
        "events_checked": verification.events_checked,
        "first_broken_seq": verification.first_broken_seq,
    }


@shared_task(name="compliance.audit_chain_verify_all_firms")
def audit_chain_verify_all_firms() -> int:
    """The nightly entry point (django-celery-beat): one task per active firm."""
    firm_ids = list(Firm.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    for firm_id in firm_ids:
        audit_chain_verify_task.delay(firm_id=firm_id)
    return len(firm_ids)
