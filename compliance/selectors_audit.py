"""Searching and reading the audit trail (the compliance console and its API).

A search is parsed once (:func:`audit_search_parse`, which names the offending field
of bad input) into a frozen :class:`AuditSearch`, then turned into a queryset of the
current firm's events (:func:`audit_event_search`), newest first. The page, the API
and the CSV export all read the same queryset; the export iterates it with a
server-side cursor (:func:`audit_export_rows`), so a search of millions of events
streams in constant memory.

Client, household and portfolio filters resolve to the objects that carry events:
the household itself, its clients, their portfolios, and the rebalancing rows
(run portfolios and orders) of those portfolios.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Client, Firm, Household
from accounts.tenancy.context import TenancyError, current_firm_id
from compliance.audit_chain import GENESIS_HASH, HASHED_FIELDS, canonical_json, event_hash
from compliance.models import AuditEvent, ChainVerification
from portfolios.models import Portfolio
from portfolios.models_rebalance import Order, OrderStatus, RunPortfolio

MAX_TEXT = 200


class AuditSearchError(ValueError):
    """Bad search input; ``field`` names the query parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class AuditSearch:
    client: int | None = None
    household: int | None = None
    portfolio: int | None = None
    actor: str = ""
    action: str = ""
    run: str = ""
    object_type: str = ""
    object_id: str = ""
    seq: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str = ""

    def as_params(self) -> dict[str, str]:
        """The search as query parameters (empty ones left out), for links and exports."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == "":
                continue
            out[f.name] = value.isoformat() if isinstance(value, dt.date) else str(value)
        return out

    @property
    def is_empty(self) -> bool:
        return not self.as_params()


SEARCH_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditSearch))


def _int(params: Mapping[str, Any], name: str) -> int | None:
    raw = str(params.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise AuditSearchError(name, f"must be a whole number, not {raw[:40]!r}") from None
    if value < 1:
        raise AuditSearchError(name, "must be 1 or more")
    return value


def _date(params: Mapping[str, Any], name: str) -> dt.date | None:
    raw = str(params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise AuditSearchError(name, f"must be a date as YYYY-MM-DD, not {raw[:40]!r}") from None


def _text(params: Mapping[str, Any], name: str) -> str:
    raw = str(params.get(name) or "").strip()
    if len(raw) > MAX_TEXT:
        raise AuditSearchError(name, f"at most {MAX_TEXT} characters")
    if "\x00" in raw:
        raise AuditSearchError(name, "may not contain NUL")
    return raw


def audit_search_parse(params: Mapping[str, Any]) -> AuditSearch:
    """Validate query parameters into a search; raises :class:`AuditSearchError`."""
    date_from, date_to = _date(params, "date_from"), _date(params, "date_to")
    if date_from and date_to and date_to < date_from:
        raise AuditSearchError(
            "date_to", f"{date_to.isoformat()} is before date_from {date_from.isoformat()}"
        )
    return AuditSearch(
        client=_int(params, "client"),
        household=_int(params, "household"),
        portfolio=_int(params, "portfolio"),
        actor=_text(params, "actor"),
        action=_text(params, "action"),
        run=_text(params, "run"),
        object_type=_text(params, "object_type"),
        object_id=_text(params, "object_id"),
        seq=_int(params, "seq"),
        date_from=date_from,
        date_to=date_to,
        q=_text(params, "q"),
    )


def _require_current(firm: Firm) -> None:
    if current_firm_id() != firm.pk:
        raise TenancyError("audit selectors read the current firm only: use firm_context(firm)")


def _ids(values: Any) -> list[str]:
    return [str(v) for v in values]


def _objects_of_portfolios(portfolio_ids: list[int]) -> Q:
    """Events about these portfolios, their run rows and their orders."""
    run_rows = RunPortfolio.objects.filter(portfolio_id__in=portfolio_ids).values_list(
        "pk", flat=True
    )
    orders = Order.objects.filter(portfolio_id__in=portfolio_ids).values_list("pk", flat=True)
    return (
        Q(object_type="portfolio", object_id__in=_ids(portfolio_ids))
        | Q(object_type="run_portfolio", object_id__in=_ids(run_rows))
        | Q(object_type="order", object_id__in=_ids(orders))
    )


def _about_clients(client_ids: list[int]) -> Q:
    portfolios = Portfolio.objects.filter(client_id__in=client_ids)
    portfolio_ids = list(portfolios.values_list("pk", flat=True))
    return Q(object_type="client", object_id__in=_ids(client_ids)) | _objects_of_portfolios(
        portfolio_ids
    )


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def audit_event_search(*, firm: Firm, search: AuditSearch) -> QuerySet[AuditEvent]:
    """The current firm's events matching ``search``, newest first.

    An unknown (or another firm's) client, household or portfolio matches nothing.
    Dates are whole days in the site's time zone, both ends included.
    """
    _require_current(firm)
    events = AuditEvent.objects.all()
    if search.household is not None:
        clients = list(
            Client.objects.filter(household_id=search.household).values_list("pk", flat=True)
        )
        known = Household.objects.filter(pk=search.household).exists()
        household_q = Q(object_type="household", object_id=str(search.household))
        events = events.filter((household_q | _about_clients(clients)) if known else Q(pk__in=[]))
    if search.client is not None:
        events = events.filter(_about_clients([search.client]))
    if search.portfolio is not None:
        events = events.filter(_objects_of_portfolios([search.portfolio]))
    if search.actor:
        events = events.filter(actor_label__iexact=search.actor)
    if search.action:
        events = events.filter(action__startswith=search.action)
    if search.run:
        events = events.filter(run_id=search.run)
    if search.object_type:
        events = events.filter(object_type=search.object_type)
    if search.object_id:
        events = events.filter(object_id=search.object_id)
    if search.seq is not None:
        events = events.filter(seq=search.seq)
    if search.date_from is not None:
        events = events.filter(created_at__gte=_day_start(search.date_from))
    if search.date_to is not None:
        events = events.filter(created_at__lt=_day_start(search.date_to + dt.timedelta(days=1)))
    if search.q:
        events = events.annotate(reasons_text=Cast("reasons", TextField())).filter(
            reasons_text__icontains=search.q
        )
    return events.order_by("-seq")


# --- CSV export ------------------------------------------------------------------------------

EXPORT_COLUMNS: tuple[str, ...] = (
    "seq",
    "created_at",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "run_id",
    "request_id",
    "reasons",
    "payload",
    "prev_hash",
    "hash",
)
EXPORT_CHUNK = 2000


def audit_export_rows(*, firm: Firm, search: AuditSearch) -> Iterator[tuple[Any, ...]]:
    """The search's events as export rows, read through a server-side cursor.

    Call it inside ``firm_context(firm)`` and ``transaction.atomic()`` held open for as
    long as the iterator is consumed (the export view does).
    """
    rows = (
        audit_event_search(firm=firm, search=search)
        .values_list(*EXPORT_COLUMNS)
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for row in rows:
        values = dict(zip(EXPORT_COLUMNS, row, strict=True))
        values["created_at"] = values["created_at"].astimezone(dt.UTC).isoformat()
        values["reasons"] = canonical_json(values["reasons"])
        values["payload"] = canonical_json(values["payload"])
        yield tuple(values[c] for c in EXPORT_COLUMNS)


# --- one event -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainAtEvent:
    """What is known of the chain's integrity at one event.

    ``link_ok``: its previous hash is the hash of the event before it; ``content_ok``:
    its content still hashes to its hash. ``state`` sums up the last stored check:
    ``verified`` (the check covered this event and found it intact), ``broken_here``,
    ``after_break`` (the chain was broken before it), ``not_checked`` (no check yet, or
    the event is newer than the last one).
    """

    link_ok: bool
    content_ok: bool
    state: str
    last_check: ChainVerification | None


@dataclass(frozen=True)
class AuditEventDetail:
    event: AuditEvent
    previous_id: int | None
    previous_hash: str | None
    next_id: int | None
    chain: ChainAtEvent


def _chain_state(event: AuditEvent, last: ChainVerification | None) -> str:
    if last is None:
        return "not_checked"
    if not last.ok and last.first_broken_seq is not None:
        if event.seq == last.first_broken_seq:
            return "broken_here"
        if event.seq > last.first_broken_seq:
            return "after_break"
    if event.seq <= last.events_checked:
        return "verified"
    return "not_checked"


def audit_event_detail(*, firm: Firm, event_id: int) -> AuditEventDetail:
    """One of the current firm's events, its neighbours, and its place in the chain.

    Raises ``AuditEvent.DoesNotExist`` for a missing or another firm's event.
    """
    _require_current(firm)
    event = AuditEvent.objects.get(pk=event_id)
    neighbours = dict(
        AuditEvent.objects.filter(seq__in=[event.seq - 1, event.seq + 1]).values_list("seq", "pk")
    )
    previous = (
        AuditEvent.objects.filter(seq=event.seq - 1).values_list("pk", "hash").first()
        if event.seq > 1
        else None
    )
    expected_prev = previous[1] if previous else None
    link_ok = event.prev_hash == (GENESIS_HASH if event.seq == 1 else expected_prev)
    content = {name: getattr(event, name) for name in HASHED_FIELDS}
    content_ok = event_hash(content, event.prev_hash) == event.hash
    last = ChainVerification.objects.order_by("-checked_at", "-pk").first()
    return AuditEventDetail(
        event=event,
        previous_id=previous[0] if previous else None,
        previous_hash=expected_prev,
        next_id=neighbours.get(event.seq + 1),
        chain=ChainAtEvent(link_ok, content_ok, _chain_state(event, last), last),
    )


def chain_verification_latest(*, firm: Firm) -> ChainVerification | None:
    _require_current(firm)
    return ChainVerification.objects.order_by("-checked_at", "-pk").first()


@dataclass(frozen=True)
class RelatedOrder:
    order_id: int
    run_id: int
    portfolio_id: int
    symbol: str
    side: str
    quantity: Decimal
    value: Decimal
    status: str
    status_label: str
    failures: tuple[str, ...]


def event_related_orders(*, event: AuditEvent) -> tuple[RelatedOrder, ...]:
    """The orders an event is about: the order itself, or a portfolio's (or run
    portfolio's) orders in the event's run. Read in the event's (current) firm."""
    orders = Order.objects.none()
    if event.object_type == "order" and event.object_id.isdigit():
        orders = Order.objects.filter(pk=int(event.object_id))
    elif event.object_type == "run_portfolio" and event.object_id.isdigit():
        row = RunPortfolio.objects.filter(pk=int(event.object_id)).values_list(
            "run_id", "portfolio_id"
        )
        found = row.first()
        if found:
            orders = Order.objects.filter(run_id=found[0], portfolio_id=found[1])
    elif event.object_type == "portfolio" and event.object_id.isdigit() and event.run_id.isdigit():
        orders = Order.objects.filter(run_id=int(event.run_id), portfolio_id=int(event.object_id))
    labels = dict(OrderStatus.choices)
    return tuple(
        RelatedOrder(
            order_id=o.pk,
            run_id=o.run_id,
            portfolio_id=o.portfolio_id,
            symbol=o.asset.symbol,
            side=o.side,
            quantity=o.quantity,
            value=o.value,
            status=o.status,
            status_label=str(labels.get(o.status, o.status)),
            failures=tuple(
                str(f.get("message", "")) for f in o.failures or [] if isinstance(f, dict)
            ),
        )
        for o in orders.select_related("asset").order_by("asset__symbol", "pk")[:200]
    )
