"""Market data in the Django admin (platform staff): assets, prices, imports, reviews.

Prices are written by imports and decided by reviews only: the admin shows them
read-only, with actions that release or reject held prices through the service (so
each decision is recorded in ``PriceReview``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from portfolios.models_market import (
    Asset,
    ImportBatch,
    MarketCapObservation,
    Price,
    PriceReview,
    PriceStatus,
)
from portfolios.services_market import MarketDataError, price_review


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("symbol", "name", "asset_class", "sector", "fractional", "quantity_step")
    list_filter = ("asset_class", "fractional", "is_active")
    search_fields = ("symbol", "name", "sector")

    def has_delete_permission(self, request: HttpRequest, obj: Asset | None = None) -> bool:
        # Shared reference data: retired (is_active) rather than deleted; the database
        # refuses the delete too (migration portfolios 0009).
        return False


@admin.register(MarketCapObservation)
class MarketCapAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("asset", "date", "value", "approximate", "source")
    list_filter = ("approximate",)
    search_fields = ("asset__symbol",)


def _review(request: HttpRequest, queryset: QuerySet[Price], decision: str) -> None:
    actor = request.user if isinstance(request.user, User) else None
    done = 0
    for price in queryset.filter(status=PriceStatus.HELD):
        try:
            price_review(
                price=price,
                decision=decision,
                note=f"{decision} in the admin by {actor.get_username() if actor else 'unknown'}",
                actor=actor,
            )
            done += 1
        except MarketDataError as exc:
            messages.error(request, str(exc))
    messages.info(request, f"{done} held price(s) {decision}.")


@admin.action(description="Release the selected held prices (use them)")
def release_prices(admin_: Any, request: HttpRequest, queryset: QuerySet[Price]) -> None:
    _review(request, queryset, PriceReview.Decision.RELEASED)


@admin.action(description="Reject the selected held prices")
def reject_prices(admin_: Any, request: HttpRequest, queryset: QuerySet[Price]) -> None:
    _review(request, queryset, PriceReview.Decision.REJECTED)


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ("asset", "date", "frequency", "close", "volume", "status", "status_reason")
    list_filter = ("status", "frequency")
    list_select_related = ("asset",)
    search_fields = ("asset__symbol",)
    date_hierarchy = "date"
    actions = [release_prices, reject_prices]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change list needs it for actions; the objects stay read-only (no fields).
        return obj is None and bool(getattr(request.user, "is_staff", False))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Price._meta.fields]


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "actor_label",
        "source",
        "rows_created",
        "rows_held",
        "rows_skipped",
    )
    list_filter = ("source",)


@admin.register(PriceReview)
class PriceReviewAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "price", "decision", "actor_label", "note")
    list_filter = ("decision",)
