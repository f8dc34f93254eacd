"""Celery tasks that run as one firm: set it from the arguments, clear it whatever happens."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

from . import context

_F = TypeVar("_F", bound=Callable[..., Any])


def firm_task(func: _F) -> _F:
    """Wrap a task body taking ``firm_id=`` so that it runs inside that firm, in one transaction.

    The firm is looked up by id (a missing firm is an error, never a guess), set for
    the ORM and, inside ``transaction.atomic()``, for the database. Afterwards, even
    when the task raised, the context is put back as it was: on a worker that is no
    firm, so the next task starts with none; run eagerly, the caller's own firm.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, firm_id: int, **kwargs: Any) -> Any:
        from accounts.models import Firm

        previous_firm, previous_user = context.current_firm(), context.current_user_id()
        context.clear()
        try:
            firm = Firm.objects.get(pk=firm_id)
            with context.firm_context(firm), transaction.atomic():
                return func(*args, firm_id=firm_id, **kwargs)
        finally:
            context.set_current_firm(previous_firm)
            context.set_current_user_id(previous_user)

    return wrapper  # type: ignore[return-value]
