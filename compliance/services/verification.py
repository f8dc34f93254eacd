"""Checking a firm's audit hash chain, recording the result, alerting on a break.

:func:`audit_chain_verification_run` walks the chain (the foundation's
:func:`compliance.selectors.audit_chain_verify`), stores a :class:`ChainVerification`
and audits the check. :func:`audit_chain_break_alert` calls every hook in
:data:`ON_CHAIN_BROKEN` after the transaction commits, so an alert never names a check
that was rolled back; the notifications layer registers there and tells the firm's
compliance officers in the app and by email. ``verify_audit`` only reads: it reports,
and calls the same hooks on a break (:func:`audit_chain_check_readonly`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy.context import firm_context
from compliance.models import ChainVerification
from compliance.selectors import ChainCheck, audit_chain_verify
from compliance.services.audit import audit_record

log = logging.getLogger("compliance.verification")

NIGHTLY_LABEL = "audit-chain-nightly"

#: Called as ``hook(firm_id, result)`` on a break: the recorded ``ChainVerification``
#: (nightly job, after it committed) or the bare ``ChainCheck`` (``verify_audit``).
ON_CHAIN_BROKEN: list[Callable[[int, ChainVerification | ChainCheck], None]] = []


def audit_chain_verification_run(
    *, firm: Firm, actor: User | None = None, actor_label: str = ""
) -> ChainVerification:
    """Verify ``firm``'s chain now; store and audit the result (``audit_chain.verified``)."""
    label = actor_label or (actor.get_username() if actor else NIGHTLY_LABEL)
    check = audit_chain_verify(firm=firm)
    with firm_context(firm), transaction.atomic():
        verification = ChainVerification.objects.create(
            checked_at=timezone.now(),
            ok=check.ok,
            events_checked=check.events_checked,
            first_broken_seq=check.broken_seq,
            first_broken_event_id=check.broken_event_id,
            message=check.problem,
            triggered_by=label,
        )
        audit_record(
            action="audit_chain.verified" if check.ok else "audit_chain.broken",
            actor=actor,
            actor_label=label,
            object_type="chain_verification",
            object_id=verification.pk,
            payload={
                "ok": check.ok,
                "events_checked": check.events_checked,
                "first_broken_seq": check.broken_seq,
                "first_broken_event_id": check.broken_event_id,
            },
            reasons=[check.problem] if check.problem else [],
        )
    return verification


def compliance_officer_emails(*, firm: Firm) -> list[str]:
    """Addresses of the firm's active compliance officers (those who have one)."""
    with firm_context(firm), transaction.atomic():
        user_ids = Membership.objects.filter(role=Role.COMPLIANCE, is_active=True).values_list(
            "user_id", flat=True
        )
        emails = (
            User.objects.filter(pk__in=list(user_ids), is_active=True)
            .exclude(email="")
            .order_by("email")
            .values_list("email", flat=True)
        )
        return list(emails)


def _send_alert(firm: Firm, verification: ChainVerification) -> None:
    """Tell whoever listens: the notifications layer registers here and tells the
    firm's compliance officers in the app and by email (a regulatory event: they cannot
    switch it off)."""
    if not compliance_officer_emails(firm=firm):
        log.error("audit chain of firm %s broken and no compliance officer email", firm.slug)
    for hook in list(ON_CHAIN_BROKEN):
        try:
            hook(firm.pk, verification)
        except Exception:  # one failing hook must not silence the others
            log.exception("ON_CHAIN_BROKEN hook %r failed for firm %s", hook, firm.slug)


def audit_chain_break_alert(*, firm: Firm, verification: ChainVerification) -> None:
    """Email the compliance officers and call the hooks, once the current transaction commits
    (at once when there is none)."""
    if verification.ok:
        raise ValueError("verification: the chain is intact, there is nothing to alert about")
    transaction.on_commit(lambda: _send_alert(firm, verification))


def audit_chain_nightly_check(*, firm: Firm) -> ChainVerification:
    """The nightly job for one firm: verify, record, and alert when the chain is broken."""
    verification = audit_chain_verification_run(firm=firm)
    if not verification.ok:
        audit_chain_break_alert(firm=firm, verification=verification)
    return verification


def audit_chain_check_readonly(*, firm: Firm) -> ChainCheck:
    """``verify_audit``: verify without writing anything; a break still reaches the hooks."""
    check = audit_chain_verify(firm=firm)
    if not check.ok:
        for hook in list(ON_CHAIN_BROKEN):
            hook(firm.pk, check)
    return check
