"""API routes: /api/v1/..., the OpenAPI schema at /api/schema/ and its docs at /api/docs/.

Included at ``api/`` by advisor/urls.py, under the ``api`` namespace. Any other path
under /api/ answers 404 in the API's error format.
"""

from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import api as accounts_api
from advisor.api.errors import route_not_found
from portfolios import api_backtest, api_market, api_strategy

app_name = "api"

v1: list[URLPattern | URLResolver] = [
    path("auth/token/", accounts_api.TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/revoke/", accounts_api.TokenRevokeView.as_view(), name="auth-token-revoke"),
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path("memberships/", accounts_api.MyMembershipListView.as_view(), name="memberships"),
    path("firm/", accounts_api.FirmView.as_view(), name="firm"),
    path("firm/members/", accounts_api.FirmMemberListView.as_view(), name="firm-member-list"),
    path(
        "firm/members/<int:pk>/",
        accounts_api.FirmMemberDetailView.as_view(),
        name="firm-member-detail",
    ),
    path("market/assets/", api_market.AssetListView.as_view(), name="market-asset-list"),
    path(
        "market/assets/<str:symbol>/prices/",
        api_market.AssetPriceListView.as_view(),
        name="market-asset-prices",
    ),
    path("market/prices/held/", api_market.HeldPriceListView.as_view(), name="market-price-held"),
    path(
        "market/prices/import/",
        api_market.PriceImportView.as_view(),
        name="market-price-import",
    ),
    path(
        "market/prices/<int:pk>/review/",
        api_market.PriceReviewView.as_view(),
        name="market-price-review",
    ),
    path("backtests/", api_backtest.BacktestRunView.as_view(), name="backtest-run"),
    path("strategies/", api_strategy.StrategyListView.as_view(), name="strategy-list"),
    path(
        "strategies/recommendation/",
        api_strategy.StrategyRecommendationView.as_view(),
        name="strategy-recommendation",
    ),
    path("strategies/<int:pk>/", api_strategy.StrategyDetailView.as_view(), name="strategy-detail"),
    path(
        "strategies/<int:pk>/versions/",
        api_strategy.StrategyVersionListView.as_view(),
        name="strategy-version-list",
    ),
    path(
        "strategies/<int:pk>/versions/<int:number>/",
        api_strategy.StrategyVersionDetailView.as_view(),
        name="strategy-version-detail",
    ),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^", route_not_found, name="not-found"),
]
