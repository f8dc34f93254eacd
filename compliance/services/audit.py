"""Appending to a firm's audit chain. Every state change of every app calls these.

Appends to one firm's chain are serialised with a transaction-scoped advisory lock
keyed on the firm, so two writers never take the same sequence number or previous
hash; firms do not wait for each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction
from django.db.models import Model
from django.utils import timezone

from accounts.models import Firm, User
from accounts.tenancy.context import TenancyError, require_firm
from compliance.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    HashTemplate,
    canonical_json,
    to_canonical,
)
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


@dataclass(frozen=True, slots=True)
class _Pending:
    """An entry rendered for the chain, waiting for its time, sequence number and
    previous hash."""

    actor_id: int | None
    actor_label: str
    action: str
    object_type: str
    object_id: str
    payload: Any
    reasons: Any
    request_id: str
    run_id: str
    template: HashTemplate
    copy_tail: str  # its COPY columns from actor_id to run_id


@dataclass(frozen=True)
class AuditBatch:
    """Entries rendered by :func:`audit_batch_prepare`, for :func:`audit_batch_append`."""

    firm_id: int
    pending: list[_Pending]


def _pending(entry: AuditEntry, *, firm_id: int, request_id: str) -> _Pending:
    actor_id = entry.actor.pk if entry.actor else None
    actor_label = entry.actor_label or (entry.actor.get_username() if entry.actor else "system")
    object_id, run_id = str(entry.object_id), str(entry.run_id)
    payload = to_canonical(dict(entry.payload))
    reasons = to_canonical(list(entry.reasons))
    payload_json, reasons_json = canonical_json(payload), canonical_json(reasons)
    fields = {
        "firm_id": firm_id,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": object_id,
        "request_id": request_id,
        "run_id": run_id,
    }
    copy_tail = "\t".join(
        (
            COPY_NULL if actor_id is None else str(actor_id),
            copy_escape(actor_label),
            copy_escape(entry.action),
            copy_escape(entry.object_type),
            copy_escape(object_id),
            copy_escape(payload_json),
            copy_escape(reasons_json),
            copy_escape(request_id),
            copy_escape(run_id),
        )
    )
    return _Pending(
        actor_id=actor_id,
        actor_label=actor_label,
        action=entry.action,
        object_type=entry.object_type,
        object_id=object_id,
        payload=payload,
        reasons=reasons,
        request_id=request_id,
        run_id=run_id,
        template=HashTemplate(fields, payload_json=payload_json, reasons_json=reasons_json),
        copy_tail=copy_tail,
    )


def audit_batch_prepare(*, entries: Sequence[AuditEntry]) -> AuditBatch:
    """Render ``entries`` for the current firm's chain without touching the database:
    the costly part of appending many events, done while other work runs (a chunk's
    rows being written behind). :func:`audit_batch_append` then gives them their
    places in the chain."""
    firm = require_firm()
    request_id = current_request_id()
    return AuditBatch(
        firm_id=firm.pk,
        pending=[_pending(entry, firm_id=firm.pk, request_id=request_id) for entry in entries],
    )


@dataclass(frozen=True)
class _Chained:
    first_seq: int
    created_at: dt.datetime
    links: list[str]  # the chain head's hash, then each event's: event i links[i] -> links[i + 1]

    def placed(self, pending: list[_Pending]) -> Iterator[tuple[int, _Pending, str, str]]:
        """Each pending event with its sequence number, previous hash and hash."""
        for i, p in enumerate(pending):
            yield self.first_seq + i, p, self.links[i], self.links[i + 1]


def _chain(batch: AuditBatch, using: str) -> _Chained:
    """Lock the firm's chain and hash the batch onto its head. The time is taken under
    the lock, so it never goes backwards along the chain."""
    current = require_firm()
    if batch.firm_id != current.pk:
        raise TenancyError("audit events are written in the current firm only")
    _lock_chain(current, using)
    seq, prev_hash = _chain_head(current)
    now = timezone.now()
    created_text = HashTemplate.created_text(now)
    links = [prev_hash]
    for offset, p in enumerate(batch.pending, start=seq + 1):
        links.append(p.template.hash(created_text=created_text, seq=offset, prev_hash=links[-1]))
    return _Chained(first_seq=seq + 1, created_at=now, links=links)


def audit_batch_append(*, batch: AuditBatch) -> int:
    """Append a prepared batch to the current firm's chain with one staged COPY, in
    the caller's transaction; the number of events appended."""
    if not batch.pending:
        return 0
    using = "default"
    if not connections[using].in_atomic_block:
        with transaction.atomic(using=using):
            return audit_batch_append(batch=batch)
    _copy_events(batch, _chain(batch, using), using, returning=False)
    return len(batch.pending)


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
    batch = audit_batch_prepare(entries=entries)
    chained = _chain(batch, using)
    events = [
        AuditEvent(
            firm_id=batch.firm_id,
            seq=seq,
            created_at=chained.created_at,
            actor_id=p.actor_id,
            actor_label=p.actor_label,
            action=p.action,
            object_type=p.object_type,
            object_id=p.object_id,
            payload=p.payload,
            reasons=p.reasons,
            request_id=p.request_id,
            run_id=p.run_id,
            prev_hash=prev_hash,
            hash=digest,
        )
        for seq, p, prev_hash, digest in chained.placed(batch.pending)
    ]
    if len(events) < COPY_THRESHOLD:
        AuditEvent.objects.bulk_create(events)
    else:
        id_of = dict(_copy_events(batch, chained, using, returning=True))
        for event in events:
            event.pk = id_of[event.seq]
            event._state.adding = False
            event._state.db = using
    return events


#: From this many events on, one staged COPY writes them (a run's per-portfolio events).
COPY_THRESHOLD = 50
_COPY_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")


def _copy_events(
    batch: AuditBatch, chained: _Chained, using: str, *, returning: bool
) -> list[tuple[Any, ...]]:
    """Write the batch with one staged COPY; (seq, id) of each row if ``returning``."""
    head = f"{batch.firm_id}\t"
    created = chained.created_at.isoformat()
    lines = [
        f"{head}{seq}\t{created}\t{p.copy_tail}\t{prev_hash}\t{digest}\n"
        for seq, p, prev_hash, digest in chained.placed(batch.pending)
    ]
    return staged_copy_text(
        table=AuditEvent._meta.db_table,
        columns=_COPY_COLUMNS,
        lines=lines,
        returning=("seq", "id") if returning else (),
        using=using,
    )


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
