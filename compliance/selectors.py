"""Reads of the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from compliance.audit_chain import GENESIS_HASH, event_hash
from compliance.models import AuditEvent


@dataclass(frozen=True)
class ChainCheck:
    firm_slug: str
    events_checked: int
    ok: bool
    broken_event_id: int | None = None
    broken_seq: int | None = None
    problem: str = ""


def audit_chain_verify(*, firm: Firm) -> ChainCheck:
    """Walk ``firm``'s chain in order; report the first event whose link or content is wrong."""
    with firm_context(firm), transaction.atomic():
        prev_hash = GENESIS_HASH
        expected_seq = 1
        checked = 0
        rows = AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)
        for event in rows:
            problem = ""
            if event.seq != expected_seq:
                problem = f"sequence gap: expected #{expected_seq}, found #{event.seq}"
            elif event.prev_hash != prev_hash:
                problem = "previous-hash link does not match the event before it"
            else:
                fields = {
                    "firm_id": event.firm_id,
                    "seq": event.seq,
                    "created_at": event.created_at,
                    "actor_id": event.actor_id,
                    "actor_label": event.actor_label,
                    "action": event.action,
                    "object_type": event.object_type,
                    "object_id": event.object_id,
                    "payload": event.payload,
                    "reasons": event.reasons,
                    "request_id": event.request_id,
                    "run_id": event.run_id,
                }
                if event_hash(fields, event.prev_hash) != event.hash:
                    problem = "content does not match its hash (the event was altered)"
            if problem:
                return ChainCheck(firm.slug, checked, False, event.pk, event.seq, problem)
            prev_hash = event.hash
            expected_seq += 1
            checked += 1
        return ChainCheck(firm.slug, checked, True)
