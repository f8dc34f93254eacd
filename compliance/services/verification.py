"""Hooks of audit chain verification."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Called with the firm id and the verification result when a firm's chain is broken.
ON_CHAIN_BROKEN: list[Callable[[int, Any], None]] = []
