"""Base classes for firm-owned models: the default manager fails closed."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

from .context import require_firm

_M = TypeVar("_M", bound=models.Model)


class FirmScopedQuerySet(models.QuerySet[_M]):
    pass


class FirmScopedManager(models.Manager[_M]):
    """Only the current firm's rows; raises :class:`NoFirmSelected` when no firm is set.

    Creating through it stamps the current firm, so a row can never be written
    for another firm by accident (and the database would refuse it anyway).
    """

    def get_queryset(self) -> models.QuerySet[_M]:
        firm = require_firm()
        return super().get_queryset().filter(firm_id=firm.pk)

    def create(self, **kwargs: Any) -> _M:
        firm = require_firm()
        given = kwargs.get("firm")
        given_id = kwargs.get("firm_id", getattr(given, "pk", None))
        if given_id is not None and given_id != firm.pk:
            from .context import TenancyError

            raise TenancyError("cannot create a row for a firm other than the current one")
        kwargs.pop("firm", None)
        kwargs["firm_id"] = firm.pk
        return super().create(**kwargs)


class AllFirmsManager(models.Manager[_M]):
    """Crosses firms at the ORM layer. Row-level security still applies in the database.

    Every use is listed and limited by ``tests/accounts/test_tenancy_orm.py``.
    """


class FirmOwnedModel(models.Model):
    """Abstract base of every tenant-owned model: non-null ``firm`` first in its indexes."""

    firm = models.ForeignKey("accounts.Firm", on_delete=models.PROTECT, related_name="+")

    objects: FirmScopedManager[Any] = FirmScopedManager()

    class Meta:
        abstract = True
        base_manager_name = "objects"

    def save(self, *args: Any, **kwargs: Any) -> None:
        firm = require_firm()
        if self.firm_id is None:
            self.firm_id = firm.pk
        elif self.firm_id != firm.pk:
            from .context import TenancyError

            raise TenancyError("cannot save a row of a firm other than the current one")
        super().save(*args, **kwargs)
