"""Celery tasks of the accounts app: take ids, set the firm, call a service.

Schedule ``accounts.risk_profiles_expire_all`` daily (django-celery-beat) so that
profiles past their validity turn stale and their client and advisor are told.
"""

from __future__ import annotations

from accounts.models import Firm
from accounts.risk_services import risk_profiles_mark_stale
from accounts.tenancy.tasks import firm_task
from advisor.celery import app


@app.task(name="accounts.risk_profiles_expire")
@firm_task
def risk_profiles_expire(*, firm_id: int) -> list[int]:
    """Mark one firm's expired risk profiles stale (each audited as risk_profile.expired)."""
    return risk_profiles_mark_stale()


@app.task(name="accounts.risk_profiles_expire_all")
def risk_profiles_expire_all() -> int:
    """Queue :func:`risk_profiles_expire` for every active firm; returns how many."""
    firm_ids = list(Firm.objects.filter(is_active=True).values_list("pk", flat=True))
    for firm_id in firm_ids:
        risk_profiles_expire.delay(firm_id=firm_id)
    return len(firm_ids)
