"""API of market data: assets and prices (read by everyone), imports and reviews (staff).

Market data is platform-wide reference data: every authenticated user reads the same
assets and prices whatever their firm (no firm is needed, an ``X-Firm`` header is
still checked). Writing it (importing prices, releasing or rejecting a held price)
changes what every firm's strategies compute, so it is reserved to **platform staff**
(``User.is_staff``: the platform operators who administer firms in the Django admin),
not to any firm role: a firm admin must not be able to move another firm's prices.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from advisor.api.pagination import DefaultPagination
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import ApiView
from portfolios.engine.prices_io import PriceFileError
from portfolios.models_market import (
    Asset,
    ImportBatch,
    Price,
    PriceFrequency,
    PriceReview,
    PriceStatus,
)
from portfolios.selectors_market import asset_get, asset_list, price_held_list, price_list
from portfolios.services_market import MarketDataError, PriceSource, price_review, prices_import

MAX_UPLOAD_FILES = 100
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # per file
MAX_UPLOAD_TOTAL_BYTES = 200 * 1024 * 1024  # per request


class IsPlatformStaff(BasePermission):
    message = "Only platform staff may change market data (it is shared by every firm)."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_authenticated and user.is_staff


# --- serializers -------------------------------------------------------------------------


class MarketCapSerializer(serializers.Serializer):  # type: ignore[type-arg]
    date = serializers.DateField()
    value = serializers.DecimalField(max_digits=24, decimal_places=2)
    approximate = serializers.BooleanField()
    source = serializers.CharField()  # type: ignore[assignment]


class AssetSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    market_cap = serializers.SerializerMethodField(
        help_text="The latest market capitalisation observation (null when none)."
    )

    @extend_schema_field(MarketCapSerializer(allow_null=True))
    def get_market_cap(self, asset: Asset) -> dict[str, Any] | None:
        observations = list(asset.market_caps.all())  # prefetched, oldest first
        if not observations:
            return None
        latest = max(observations, key=lambda o: o.date)
        return dict(MarketCapSerializer(latest).data)

    class Meta:
        model = Asset
        fields = [
            "symbol",
            "name",
            "asset_class",
            "sector",
            "currency",
            "fractional",
            "quantity_step",
            "minimum_lot",
            "tags",
            "is_active",
            "market_cap",
        ]


class PriceSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    symbol = serializers.CharField(source="asset.symbol", read_only=True)

    class Meta:
        model = Price
        fields = [
            "id",
            "symbol",
            "date",
            "frequency",
            "close",
            "volume",
            "status",
            "status_reason",
            "batch",
        ]


class PriceQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField(required=False, help_text="First date (inclusive).")
    end = serializers.DateField(required=False, help_text="Last date (inclusive).")
    frequency = serializers.ChoiceField(choices=PriceFrequency.choices, required=False)
    status = serializers.ChoiceField(choices=PriceStatus.choices, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start and end and start > end:
            raise ValidationError({"end": ["Must not be before start."]})
        return attrs


class ImportBatchSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    files = serializers.ListField(child=serializers.DictField())

    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "created_at",
            "actor_label",
            "source",
            "files",
            "rows_created",
            "rows_unchanged",
            "rows_replaced",
            "rows_held",
            "rows_skipped",
        ]


class PriceImportInputSerializer(StrictInputSerializer):
    """Price files (multipart, field ``files``, repeated), imported all or nothing."""

    files = serializers.ListField(
        child=serializers.FileField(),
        min_length=1,
        max_length=MAX_UPLOAD_FILES,
        help_text="Price files in any supported format; the symbol of a single-asset file "
        "is its file name (BTC.csv).",
    )
    replace = serializers.BooleanField(
        default=False, help_text="Overwrite stored closes that differ (refused otherwise)."
    )

    def validate_files(self, files: list[Any]) -> list[Any]:
        for upload in files:
            if upload.size > MAX_UPLOAD_BYTES:
                raise ValidationError(
                    f"{upload.name}: {upload.size} bytes, more than the {MAX_UPLOAD_BYTES} "
                    "allowed per file (use manage.py import_prices for larger files)"
                )
        total = sum(upload.size for upload in files)
        if total > MAX_UPLOAD_TOTAL_BYTES:
            raise ValidationError(
                f"{total} bytes in all, more than the {MAX_UPLOAD_TOTAL_BYTES} allowed per "
                "request: upload fewer files at a time"
            )
        return files

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):  # a QueryDict: keep every uploaded file
            flat: dict[str, Any] = {key: data.get(key) for key in data}
            if "files" in data:
                flat["files"] = data.getlist("files")
            data = flat
        return super().to_internal_value(data)


class PriceReviewInputSerializer(StrictInputSerializer):
    """A decision on a price held for review."""

    decision = serializers.ChoiceField(choices=PriceReview.Decision.choices)
    note = serializers.CharField(max_length=2000, help_text="Why (kept with the decision).")


# --- views -------------------------------------------------------------------------------


class MarketListView(ListModelMixin, ApiView, GenericAPIView):  # type: ignore[type-arg]
    pagination_class = DefaultPagination


class AssetListView(MarketListView):
    """Every asset (platform-wide: the same for every firm)."""

    serializer_class = AssetSerializer
    filterset_fields = ["asset_class", "fractional", "is_active"]
    ordering_fields = ["symbol", "asset_class"]
    ordering = ["symbol"]

    def get_queryset(self) -> QuerySet[Asset]:
        return asset_list().prefetch_related("market_caps")

    @extend_schema(operation_id="market_assets_list", tags=["market"])
    def get(self, request: Request) -> Response:
        return self.list(request)


class AssetPriceListView(ApiView):
    """Stored prices of one asset, oldest first, with their review status."""

    pagination_class = DefaultPagination

    @extend_schema(
        operation_id="market_asset_prices_list",
        tags=["market"],
        parameters=[
            PriceQuerySerializer,
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses={200: PriceSerializer(many=True)},
    )
    def get(self, request: Request, symbol: str) -> Response:
        query = PriceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        asset = asset_get(symbol=symbol)
        if asset is None:
            raise NotFound()
        prices = price_list(asset=asset, **query.validated_data).select_related("asset")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(prices, request, view=self)
        return paginator.get_paginated_response(PriceSerializer(page, many=True).data)


class HeldPriceListView(MarketListView):
    """Prices held for review (not used by strategies until released)."""

    serializer_class = PriceSerializer
    ordering_fields = ["date"]
    ordering = ["date"]

    def get_queryset(self) -> QuerySet[Price]:
        return price_held_list()

    @extend_schema(operation_id="market_prices_held_list", tags=["market"])
    def get(self, request: Request) -> Response:
        return self.list(request)


def _file_error(exc: PriceFileError | MarketDataError) -> ValidationError:
    return ValidationError({"files": [str(exc)]})


class PriceImportView(ApiView):
    """Import price files (platform staff only); all or nothing."""

    permission_classes = [IsAuthenticated, IsPlatformStaff]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="market_prices_import",
        tags=["market"],
        request={"multipart/form-data": PriceImportInputSerializer},
        responses={201: ImportBatchSerializer},
        description="A malformed file answers 400 with the file name and line in "
        "`error.fields.files`; nothing is imported then.",
    )
    def post(self, request: Request) -> Response:
        data = PriceImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        sources = [PriceSource(f.name, f.read()) for f in data.validated_data["files"]]
        try:
            batch = prices_import(
                sources=sources,
                actor=request.user,
                source=ImportBatch.Source.API,
                replace=data.validated_data["replace"],
            )
        except (PriceFileError, MarketDataError) as exc:
            raise _file_error(exc) from exc
        return Response(ImportBatchSerializer(batch).data, status=status.HTTP_201_CREATED)


class PriceReviewView(ApiView):
    """Release or reject a price held for review (platform staff only)."""

    permission_classes = [IsAuthenticated, IsPlatformStaff]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="market_price_review",
        tags=["market"],
        request=PriceReviewInputSerializer,
        responses={200: PriceSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        data = PriceReviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        price = Price.objects.filter(pk=pk).select_related("asset").first()
        if price is None:
            raise NotFound()
        assert isinstance(request.user, User)
        try:
            reviewed = price_review(
                price=price,
                decision=data.validated_data["decision"],
                note=data.validated_data["note"],
                actor=request.user,
            )
        except MarketDataError as exc:
            raise ValidationError({"decision": [str(exc)]}) from exc
        return Response(PriceSerializer(reviewed).data)


__all__ = [
    "AssetListView",
    "AssetPriceListView",
    "HeldPriceListView",
    "PriceImportView",
    "PriceReviewView",
]
