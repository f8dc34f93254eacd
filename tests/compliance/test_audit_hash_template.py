"""``HashTemplate``: an event rendered before it has its place in the chain hashes to
exactly what ``event_hash`` gives the whole event (pure, no database)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.audit_chain import HashTemplate, canonical_json, event_hash, to_canonical
from tests.compliance.test_audit_trail import _payloads, _text

_ids = st.integers(min_value=1, max_value=2**62)
_times = st.datetimes(
    min_value=dt.datetime(1990, 1, 1),  # noqa: DTZ001 (hypothesis wants a naive bound)
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
)


@settings(max_examples=300)
@given(
    payload=_payloads,
    reasons=st.lists(_text, max_size=3),
    actor_id=st.none() | _ids,
    texts=st.lists(_text, min_size=6, max_size=6),
    firm_id=_ids,
    seq=_ids,
    created_at=_times,
    prev_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_the_template_hashes_as_the_whole_event(
    payload: dict[str, Any],
    reasons: list[str],
    actor_id: int | None,
    texts: list[str],
    firm_id: int,
    seq: int,
    created_at: dt.datetime,
    prev_hash: str,
) -> None:
    actor_label, action, object_type, object_id, request_id, run_id = texts
    fields = {
        "firm_id": firm_id,
        "seq": seq,
        "created_at": created_at,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "payload": to_canonical(payload),
        "reasons": to_canonical(reasons),
        "request_id": request_id,
        "run_id": run_id,
    }
    template = HashTemplate(
        fields,
        payload_json=canonical_json(fields["payload"]),
        reasons_json=canonical_json(fields["reasons"]),
    )
    digest = template.hash(
        created_text=HashTemplate.created_text(created_at), seq=seq, prev_hash=prev_hash
    )
    assert digest == event_hash(fields, prev_hash)


def test_a_changed_field_changes_the_hash() -> None:
    fields = {
        "firm_id": 1,
        "actor_id": None,
        "actor_label": "system",
        "action": "a",
        "object_type": "portfolio",
        "object_id": "7",
        "request_id": "",
        "run_id": "3",
    }
    created = HashTemplate.created_text(dt.datetime(2026, 1, 2, tzinfo=dt.UTC))

    def digest(**changes: Any) -> str:
        return HashTemplate(
            {**fields, **changes}, payload_json='{"a":"1"}', reasons_json="[]"
        ).hash(created_text=created, seq=5, prev_hash="0" * 64)

    base = digest()
    assert all(digest(**{k: "other"}) != base for k in fields if k not in ("firm_id", "actor_id"))
    assert digest(firm_id=2) != base
    assert digest(actor_id=9) != base


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(st.characters(exclude_characters="\x00"))
    | st.floats(allow_nan=False)
)


@settings(max_examples=300)
@given(value=st.lists(_json_scalars | st.lists(_json_scalars, max_size=2), max_size=6))
def test_a_list_is_written_as_json_dumps_writes_it(value: list[Any]) -> None:
    # canonical_json writes flat lists of strings and integers itself; anything else
    # (booleans, None, floats, nested lists) falls back to json.dumps.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert canonical_json(value) == expected
    assert canonical_json(to_canonical(value)) == json.dumps(
        to_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
