"""Appending to a firm's audit chain. Every state change of every app calls these.

Appends to one firm's chain are serialised with a transaction-scoped advisory lock
keyed on the firm, so two writers never take the same sequence number or previous
hash; firms do not wait for each other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Firm, User
from accounts.tenancy.context import TenancyError, require_firm
from compliance.audit_chain import GENESIS_HASH, HASHED_FIELDS, event_hash, to_canonical
from compliance.audit_context import current_request_id
from compliance.models import AuditEvent
from portfolios.bulk import COPY_NULL, copy_escape, staged_copy_text

AUDIT_LOCK_NAMESPACE = 7_310_001  # first key of pg_advisory_xact_lock(int, int)


@dataclass(frozen=True)
class AuditEntry:
    action: str
    object_type: str = ""
    object_id: str | int = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    reasons: Sequence[Any] = ()
    actor: User | None = None
    actor_label: str = ""
    run_id: str = ""


def _lock_chain(firm: Firm, using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [AUDIT_LOCK_NAMESPACE, firm.pk])


def _chain_head(firm: Firm) -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    return (0, GENESIS_HASH) if last is None else (last[0], last[1])


def _build(
    entry: AuditEntry, *, firm: Firm, seq: int, prev_hash: str, now: dt.datetime
) -> AuditEvent:
    actor_label = entry.actor_label or (entry.actor.get_username() if entry.actor else "system")
    fields: dict[str, Any] = {
        "firm_id": firm.pk,
        "seq": seq,
        "created_at": now,
        "actor_id": entry.actor.pk if entry.actor else None,
        "actor_label": actor_label,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": str(entry.object_id),
        "payload": to_canonical(dict(entry.payload)),
        "reasons": to_canonical(list(entry.reasons)),
        "request_id": current_request_id(),
        "run_id": str(entry.run_id),
    }
    digest = event_hash(fields, prev_hash)
    return AuditEvent(prev_hash=prev_hash, hash=digest, **fields)


def audit_record_many(
    *, entries: Sequence[AuditEntry], firm: Firm | None = None
) -> list[AuditEvent]:
    """Append ``entries`` to the current firm's chain, in order, in one bulk insert."""
    current = require_firm()
    if firm is not None and firm.pk != current.pk:
        raise TenancyError("audit events are written in the current firm only")
    if not entries:
        return []
    using = "default"
    if not connections[using].in_atomic_block:
        with transaction.atomic(using=using):
            return audit_record_many(entries=entries, firm=current)
    _lock_chain(current, using)
    seq, prev_hash = _chain_head(current)
    now = timezone.now()
    events = []
    for entry in entries:
        seq += 1
        event = _build(entry, firm=current, seq=seq, prev_hash=prev_hash, now=now)
        prev_hash = event.hash
        events.append(event)
    if len(events) < COPY_THRESHOLD:
        AuditEvent.objects.bulk_create(events)
    else:
        _copy_events(events, using)
    return events


#: From this many events on, one staged COPY writes them (a run's per-portfolio events).
COPY_THRESHOLD = 50
_COPY_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")


def _copy_events(events: list[AuditEvent], using: str) -> None:
    """Write ``events`` with one staged COPY and give each its primary key."""

    def line(e: AuditEvent) -> str:
        fields = (
            str(e.firm_id),
            str(e.seq),
            e.created_at.isoformat(),
            COPY_NULL if e.actor_id is None else str(e.actor_id),
            copy_escape(e.actor_label),
            copy_escape(e.action),
            copy_escape(e.object_type),
            copy_escape(e.object_id),
            copy_escape(json.dumps(e.payload)),
            copy_escape(json.dumps(e.reasons)),
            copy_escape(e.request_id),
            copy_escape(e.run_id),
            e.prev_hash,
            e.hash,
        )
        return "\t".join(fields) + "\n"

    inserted = staged_copy_text(
        table=AuditEvent._meta.db_table,
        columns=_COPY_COLUMNS,
        lines=map(line, events),
        returning=("seq", "id"),
        using=using,
    )
    id_of = dict(inserted)
    for event in events:
        event.pk = id_of[event.seq]
        event._state.adding = False
        event._state.db = using


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    actor_label: str = "",
    object_type: str = "",
    object_id: str | int = "",
    payload: Mapping[str, Any] | None = None,
    reasons: Sequence[Any] = (),
    run_id: str = "",
) -> AuditEvent:
    """Append one event to the current firm's chain and return it."""
    entry = AuditEntry(
        action=action,
        object_type=object_type,
        object_id=object_id,
        payload=payload or {},
        reasons=reasons,
        actor=actor,
        actor_label=actor_label,
        run_id=run_id,
    )
    return audit_record_many(entries=[entry])[0]


def audit_changes_save(
    *,
    obj: Model,
    changes: Mapping[str, Any],
    action: str,
    actor: User | None,
    object_type: str,
    payload: Mapping[str, Any] | None = None,
) -> bool:
    """Save the changed fields of ``obj`` and record ``action`` with the changes.

    ``changes`` maps each changed field to ``[old, new]`` (already set on ``obj``).
    One transaction: ``save(update_fields=...)`` then the audit event, whose payload
    is ``payload`` plus ``{"changes": changes}``. Nothing is written, and False is
    returned, when ``changes`` is empty.
    """
    if not changes:
        return False
    with transaction.atomic():
        obj.save(update_fields=list(changes))
        audit_record(
            action=action,
            actor=actor,
            object_type=object_type,
            object_id=obj.pk,
            payload={**(payload or {}), "changes": dict(changes)},
        )
    return True
