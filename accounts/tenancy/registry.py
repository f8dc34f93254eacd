"""Which models and tables are firm-owned: every concrete model with a ``firm`` foreign key."""

from __future__ import annotations

from functools import cache

from django.apps import apps
from django.db import models


def is_firm_owned(model: type[models.Model]) -> bool:
    try:
        field = model._meta.get_field("firm")
    except Exception:
        return False
    related = getattr(field, "related_model", None)
    return bool(
        related is not None
        and related._meta.label == "accounts.Firm"
        and not model._meta.abstract
        and not model._meta.proxy
    )


def firm_owned_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if is_firm_owned(m)]


@cache
def _table_names() -> frozenset[str]:
    return frozenset(m._meta.db_table for m in firm_owned_models())


def protected_table_names() -> frozenset[str]:
    # Not cached before the app registry is ready, or the empty answer would stick.
    return _table_names() if apps.ready else frozenset()
