"""The current firm (tenant) and acting user, held in context variables.

Everything tenant-scoped reads the firm from here: the default manager of every
firm-owned model and the database backend, which hands it to PostgreSQL's
row-level security as ``app.firm_id``. Nothing guesses a firm: with none set,
firm-owned queries raise (ORM) or see nothing (database).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounts.models import Firm


class TenancyError(RuntimeError):
    """Base of every tenancy failure."""


class NoFirmSelected(TenancyError):
    """A firm-owned table was queried with no current firm."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "no firm is selected: firm-owned data is only reachable inside firm_context(firm)"
        )


_current_firm: ContextVar[Firm | None] = ContextVar("current_firm", default=None)
_current_user_id: ContextVar[int | None] = ContextVar("current_user_id", default=None)


def current_firm() -> Firm | None:
    return _current_firm.get()


def current_firm_id() -> int | None:
    firm = _current_firm.get()
    return None if firm is None else firm.pk


def require_firm() -> Firm:
    firm = _current_firm.get()
    if firm is None:
        raise NoFirmSelected()
    return firm


def current_user_id() -> int | None:
    return _current_user_id.get()


@contextmanager
def firm_context(firm: Firm | None) -> Iterator[Firm | None]:
    """Make ``firm`` the current firm inside the block; restore the previous one after."""
    if firm is not None and firm.pk is None:
        raise TenancyError("firm_context needs a saved firm")
    token = _current_firm.set(firm)
    try:
        yield firm
    finally:
        _current_firm.reset(token)


@contextmanager
def user_context(user_id: int | None) -> Iterator[None]:
    """The authenticated user, so that they can read their own memberships in every firm."""
    token = _current_user_id.set(user_id)
    try:
        yield
    finally:
        _current_user_id.reset(token)


def set_current_firm(firm: Firm | None) -> None:
    """Set without a block; callers must :func:`clear` in a ``finally``."""
    _current_firm.set(firm)


def set_current_user_id(user_id: int | None) -> None:
    _current_user_id.set(user_id)


def clear() -> None:
    _current_firm.set(None)
    _current_user_id.set(None)
