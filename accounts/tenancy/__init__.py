"""Tenancy core: the current firm, fail-closed managers, row-level security helpers."""

from .context import (
    NoFirmSelected,
    TenancyError,
    current_firm,
    current_firm_id,
    firm_context,
    require_firm,
    user_context,
)

__all__ = [
    "NoFirmSelected",
    "TenancyError",
    "current_firm",
    "current_firm_id",
    "firm_context",
    "require_firm",
    "user_context",
]
