"""API routes: /api/v1/..., the OpenAPI schema at /api/schema/ and its docs at /api/docs/.

Included at ``api/`` by advisor/urls.py, under the ``api`` namespace. Any other path
under /api/ answers 404 in the API's error format.
"""

from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import api as accounts_api
from accounts import book_api, risk_api, strategy_api
from accounts.notifications import api as notifications_api
from advisor.api.errors import route_not_found
from compliance import api as compliance_api
from compliance import api_audit
from portfolios import (
    api_backtest,
    api_book,
    api_market,
    api_rebalance,
    api_restriction,
    api_strategy,
)

app_name = "api"

v1: list[URLPattern | URLResolver] = [
    # Compliance (compliance/api.py).
    path("compliance/rules/", compliance_api.RuleListView.as_view(), name="compliance-rule-list"),
    path(
        "compliance/rules/<int:pk>/",
        compliance_api.RuleDetailView.as_view(),
        name="compliance-rule-detail",
    ),
    path(
        "compliance/rules/<int:pk>/versions/",
        compliance_api.RuleVersionListView.as_view(),
        name="compliance-rule-versions",
    ),
    path(
        "compliance/rule-sets/",
        compliance_api.RuleSetVersionListView.as_view(),
        name="compliance-rule-set-list",
    ),
    path(
        "compliance/review-queue/",
        compliance_api.ReviewQueueView.as_view(),
        name="compliance-review-queue",
    ),
    path(
        "compliance/review-queue/<int:pk>/release/",
        compliance_api.ReleaseView.as_view(),
        name="compliance-review-release",
    ),
    path(
        "compliance/review-queue/<int:pk>/reject/",
        compliance_api.RejectView.as_view(),
        name="compliance-review-reject",
    ),
    path(
        "orders/<int:pk>/explain/", compliance_api.OrderExplainView.as_view(), name="order-explain"
    ),
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
    # Notifications (accounts/notifications/api.py).
    path("notifications/", notifications_api.InboxListView.as_view(), name="notification-list"),
    path(
        "notifications/<int:pk>/read/",
        notifications_api.InboxReadView.as_view(),
        name="notification-read",
    ),
    path(
        "notifications/<int:pk>/archive/",
        notifications_api.InboxArchiveView.as_view(),
        name="notification-archive",
    ),
    path(
        "notifications/preferences/",
        notifications_api.PreferencesView.as_view(),
        name="notification-preferences",
    ),
    path(
        "notifications/deliveries/failed/",
        notifications_api.FailedDeliveryListView.as_view(),
        name="notification-failed-deliveries",
    ),
    path("webhooks/", notifications_api.WebhookEndpointListView.as_view(), name="webhook-list"),
    path(
        "webhooks/<int:pk>/",
        notifications_api.WebhookEndpointDetailView.as_view(),
        name="webhook-detail",
    ),
    # The client book (accounts/book_api.py).
    path("households/", book_api.HouseholdListView.as_view(), name="household-list"),
    path("households/<int:pk>/", book_api.HouseholdDetailView.as_view(), name="household-detail"),
    path(
        "households/<int:pk>/advisors/",
        book_api.HouseholdAdvisorsView.as_view(),
        name="household-advisors",
    ),
    path("clients/", book_api.ClientListView.as_view(), name="client-list"),
    path("clients/<int:pk>/", book_api.ClientDetailView.as_view(), name="client-detail"),
    path(
        "clients/<int:pk>/invitations/",
        book_api.ClientInvitationView.as_view(),
        name="client-invitation",
    ),
    path(
        "clients/<int:pk>/restrictions/",
        api_restriction.ClientRestrictionView.as_view(),
        name="client-restrictions",
    ),
    path(
        "clients/<int:pk>/restrictions/preview/",
        api_restriction.ClientRestrictionPreviewView.as_view(),
        name="client-restrictions-preview",
    ),
    path("invitations/accept/", book_api.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("portfolios/", book_api.PortfolioListView.as_view(), name="portfolio-list"),
    path("portfolios/<int:pk>/", book_api.PortfolioDetailView.as_view(), name="portfolio-detail"),
    # Portfolio state (portfolios/api_book.py).
    path(
        "portfolios/<int:pk>/strategy/",
        api_book.PortfolioStrategyView.as_view(),
        name="portfolio-strategy",
    ),
    path(
        "portfolios/<int:pk>/policy/",
        api_book.PortfolioPolicyView.as_view(),
        name="portfolio-policy",
    ),
    path(
        "portfolios/<int:pk>/holdings/",
        api_book.PortfolioHoldingsView.as_view(),
        name="portfolio-holdings",
    ),
    path(
        "portfolios/<int:pk>/ledger/",
        api_book.PortfolioLedgerView.as_view(),
        name="portfolio-ledger",
    ),
    path(
        "portfolios/<int:pk>/cash-flows/",
        api_book.PortfolioCashFlowListView.as_view(),
        name="portfolio-cash-flow-list",
    ),
    path(
        "cash-flows/<int:pk>/cancel/",
        api_book.CashFlowCancelView.as_view(),
        name="cash-flow-cancel",
    ),
    path("book/drift/", api_book.BookDriftView.as_view(), name="book-drift"),
    path("policies/", api_book.PolicyListView.as_view(), name="policy-list"),
    path("policies/<int:pk>/", api_book.PolicyDetailView.as_view(), name="policy-detail"),
    # Questionnaires and risk profiles (accounts/risk_api.py).
    path("questionnaires/", risk_api.QuestionnaireListView.as_view(), name="questionnaire-list"),
    path(
        "questionnaires/<int:pk>/",
        risk_api.QuestionnaireDetailView.as_view(),
        name="questionnaire-detail",
    ),
    path(
        "questionnaires/<int:pk>/publish/",
        risk_api.QuestionnairePublishView.as_view(),
        name="questionnaire-publish",
    ),
    path(
        "questionnaires/<int:pk>/new-version/",
        risk_api.QuestionnaireNewVersionView.as_view(),
        name="questionnaire-new-version",
    ),
    path(
        "questionnaires/<int:pk>/statistics/",
        risk_api.QuestionnaireStatisticsView.as_view(),
        name="questionnaire-statistics",
    ),
    path(
        "questionnaire-responses/",
        risk_api.ResponseListView.as_view(),
        name="questionnaire-response-list",
    ),
    path(
        "questionnaire-responses/<int:pk>/",
        risk_api.ResponseDetailView.as_view(),
        name="questionnaire-response-detail",
    ),
    path(
        "questionnaire-responses/<int:pk>/submit/",
        risk_api.ResponseSubmitView.as_view(),
        name="questionnaire-response-submit",
    ),
    path("risk-profiles/", risk_api.RiskProfileListView.as_view(), name="risk-profile-list"),
    path(
        "risk-profiles/<int:pk>/",
        risk_api.RiskProfileDetailView.as_view(),
        name="risk-profile-detail",
    ),
    path(
        "profile-flags/<int:pk>/resolve/",
        risk_api.FlagResolveView.as_view(),
        name="profile-flag-resolve",
    ),
    # Profile to strategy (accounts/strategy_api.py).
    path(
        "model-portfolios/",
        strategy_api.ModelPortfolioListView.as_view(),
        name="model-portfolio-list",
    ),
    path("risk-mapping/", strategy_api.RiskMappingView.as_view(), name="risk-mapping"),
    path(
        "strategy-assignments/",
        strategy_api.AssignmentListView.as_view(),
        name="strategy-assignment-list",
    ),
    path(
        "strategy-assignments/<int:pk>/decision/",
        strategy_api.AssignmentDecisionView.as_view(),
        name="strategy-assignment-decision",
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
    # The compliance console (compliance/api_audit.py).
    path("audit-events/", api_audit.AuditEventListView.as_view(), name="audit-event-list"),
    path(
        "audit-events/export/",
        api_audit.AuditEventExportView.as_view(),
        name="audit-event-export",
    ),
    path(
        "audit-events/<int:pk>/",
        api_audit.AuditEventDetailView.as_view(),
        name="audit-event-detail",
    ),
    path(
        "audit-chain/verifications/",
        api_audit.ChainVerificationListView.as_view(),
        name="audit-chain-verification-list",
    ),
    path(
        "exception-reports/",
        api_audit.ExceptionReportView.as_view(),
        name="exception-report",
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
        "strategies/<int:pk>/policy/",
        api_book.StrategyPolicyView.as_view(),
        name="strategy-policy",
    ),
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
    # Batch rebalancing (portfolios/api_rebalance.py).
    path("rebalance-runs/", api_rebalance.RunListView.as_view(), name="rebalance-run-list"),
    path(
        "rebalance-runs/<int:pk>/",
        api_rebalance.RunDetailView.as_view(),
        name="rebalance-run-detail",
    ),
    path(
        "rebalance-runs/<int:pk>/approve/",
        api_rebalance.RunApproveView.as_view(),
        name="rebalance-run-approve",
    ),
    path(
        "rebalance-runs/<int:pk>/reject/",
        api_rebalance.RunRejectView.as_view(),
        name="rebalance-run-reject",
    ),
    path(
        "rebalance-runs/<int:pk>/portfolios/",
        api_rebalance.RunPortfolioListView.as_view(),
        name="rebalance-run-portfolio-list",
    ),
    path(
        "rebalance-runs/<int:pk>/portfolios/<int:portfolio_id>/",
        api_rebalance.RunPortfolioDetailView.as_view(),
        name="rebalance-run-portfolio-detail",
    ),
    path(
        "rebalance-runs/<int:pk>/portfolios/<int:portfolio_id>/approve/",
        api_rebalance.RunPortfolioApproveView.as_view(),
        name="rebalance-run-portfolio-approve",
    ),
    path(
        "rebalance-runs/<int:pk>/portfolios/<int:portfolio_id>/reject/",
        api_rebalance.RunPortfolioRejectView.as_view(),
        name="rebalance-run-portfolio-reject",
    ),
    path("orders/", api_rebalance.OrderListView.as_view(), name="order-list"),
    path(
        "portfolios/<int:pk>/trades/",
        api_rebalance.PortfolioTradesView.as_view(),
        name="portfolio-trades",
    ),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^", route_not_found, name="not-found"),
]
