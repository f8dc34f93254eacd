"""Audit chain verification as a service: verify a firm's chain and, when it is broken,
tell whoever listens (the notification layer registers on :data:`ON_CHAIN_BROKEN`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accounts.models import Firm
from compliance.selectors import ChainCheck, audit_chain_verify

#: Called with the firm id and the verification result when a firm's chain is broken.
ON_CHAIN_BROKEN: list[Callable[[int, Any], None]] = []


def audit_chain_check(*, firm: Firm) -> ChainCheck:
    """Verify ``firm``'s hash chain; a broken chain is reported through
    :data:`ON_CHAIN_BROKEN` (its compliance officers are told) before it is returned."""
    check = audit_chain_verify(firm=firm)
    if not check.ok:
        for hook in ON_CHAIN_BROKEN:
            hook(firm.pk, check)
    return check
