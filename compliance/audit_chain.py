"""The audit hash chain: canonical form and hashing. Pure Python, no Django.

An event's hash is SHA-256 over the previous hash and the canonical JSON of its
content. Canonical JSON sorts keys, uses no whitespace and escapes non-ASCII, and
carries no floats: money and measurements are written as decimal strings, so the
bytes hashed at write time are the bytes rebuilt from the database at check time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (
    "firm_id",
    "seq",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "payload",
    "reasons",
    "request_id",
    "run_id",
)


def to_canonical(value: Any) -> Any:
    """Reduce ``value`` to JSON types whose round trip through jsonb is exact."""
    kind = type(value)
    # The exact types first: a batch's payloads are flat dicts of strings and integers.
    if kind is dict:
        return {
            (k if type(k) is str and "\x00" not in k else to_canonical(str(k))): (
                v if type(v) is int else to_canonical(v)
            )
            for k, v in value.items()
        }
    if kind is list:  # reason codes: strings, kept in order
        return [v if type(v) is str and "\x00" not in v else to_canonical(v) for v in value]
    if kind is int or kind is bool or value is None:
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("audit text may not contain NUL (\\u0000): jsonb cannot store it")
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float | Decimal):
        return format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {to_canonical(str(k)): to_canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_canonical(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    raise TypeError(f"audit payload value of type {type(value).__name__} is not serialisable")


def canonical_json(value: Any) -> str:
    # Reason codes: a flat list of strings and integers, written out as json.dumps
    # writes it (three times faster; the tests compare the two). Dicts are faster
    # through json.dumps's C encoder.
    if type(value) is list:
        items = [_flat_json(v) for v in value]
        if None not in items:
            return "[" + ",".join(items) + "]"  # type: ignore[arg-type]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _flat_json(value: Any) -> str | None:
    """A string's or an integer's canonical JSON; None for anything else."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return str(value)
    return None


def event_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    body = {name: fields[name] for name in HASHED_FIELDS}
    if isinstance(body["created_at"], dt.datetime):
        body["created_at"] = body["created_at"].astimezone(dt.UTC).isoformat()
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(body).encode("ascii"))
    return digest.hexdigest()


def _scalar_json(value: Any) -> str:
    """Canonical JSON of one field value; strings and integers without json.dumps."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return canonical_json(value)


class HashTemplate:
    """An event's canonical JSON, rendered before it has its place in the chain: the
    text before ``created_at`` and the text between it and ``seq`` (the last key).
    ``hash()`` gives exactly what :func:`event_hash` gives for the whole event, so a
    batch can render its events while other work runs and hash them once it holds
    the chain's lock."""

    __slots__ = ("head", "middle")

    def __init__(self, fields: Mapping[str, Any], *, payload_json: str, reasons_json: str) -> None:
        """``fields`` as for :func:`event_hash` (``created_at``, ``seq``, ``payload`` and
        ``reasons`` not read); ``payload_json`` and ``reasons_json`` their canonical JSON,
        which the caller also stores."""
        # Keys sort as: action, actor_id, actor_label | created_at | firm_id, object_id,
        # object_type, payload, reasons, request_id, run_id | seq. Written out rather
        # than dumped as dicts: the same bytes (the tests compare with event_hash), at a
        # fraction of the cost for a chunk's thousands of events.
        value = _scalar_json
        self.head = (
            f'{{"action":{value(fields["action"])},"actor_id":{value(fields["actor_id"])},'
            f'"actor_label":{value(fields["actor_label"])},"created_at":'
        )
        self.middle = (
            f',"firm_id":{value(fields["firm_id"])},"object_id":{value(fields["object_id"])},'
            f'"object_type":{value(fields["object_type"])},"payload":{payload_json},'
            f'"reasons":{reasons_json},"request_id":{value(fields["request_id"])},'
            f'"run_id":{value(fields["run_id"])},"seq":'
        )

    @staticmethod
    def created_text(created_at: dt.datetime) -> str:
        return canonical_json(created_at.astimezone(dt.UTC).isoformat())

    def hash(self, *, created_text: str, seq: int, prev_hash: str) -> str:
        body = f"{prev_hash}\n{self.head}{created_text}{self.middle}{seq}}}"
        return hashlib.sha256(body.encode("ascii")).hexdigest()
