"""HTML pages of the portfolios app, under the ``portfolios`` namespace."""

from django.urls import URLPattern, URLResolver, path

from portfolios import views_rebalance, views_restriction, views_strategy

app_name = "portfolios"

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "clients/<int:pk>/restrictions/",
        views_restriction.client_restrictions_panel,
        name="client_restrictions_panel",
    ),
    path(
        "clients/<int:pk>/restrictions/save/",
        views_restriction.client_restrictions_save,
        name="client_restrictions_save",
    ),
    path(
        "clients/<int:pk>/recommendation/",
        views_restriction.client_recommendation_panel,
        name="client_recommendation_panel",
    ),
    path("rebalancing/", views_rebalance.rebalance_run_list, name="rebalance_run_list"),
    path("rebalancing/start/", views_rebalance.rebalance_run_new, name="rebalance_run_new"),
    path(
        "rebalancing/runs/<int:pk>/",
        views_rebalance.rebalance_run_detail,
        name="rebalance_run_detail",
    ),
    path(
        "rebalancing/runs/<int:pk>/progress/",
        views_rebalance.rebalance_run_progress,
        name="rebalance_run_progress",
    ),
    path(
        "rebalancing/runs/<int:pk>/approve/",
        views_rebalance.rebalance_run_decide,
        {"decision": "approve"},
        name="rebalance_run_approve",
    ),
    path(
        "rebalancing/runs/<int:pk>/reject/",
        views_rebalance.rebalance_run_decide,
        {"decision": "reject"},
        name="rebalance_run_reject",
    ),
    path(
        "rebalancing/runs/<int:pk>/portfolios/<int:portfolio_id>/",
        views_rebalance.rebalance_run_portfolio,
        name="rebalance_run_portfolio",
    ),
    path(
        "rebalancing/runs/<int:pk>/portfolios/<int:portfolio_id>/approve/",
        views_rebalance.rebalance_run_portfolio_decide,
        {"decision": "approve"},
        name="rebalance_run_portfolio_approve",
    ),
    path(
        "rebalancing/runs/<int:pk>/portfolios/<int:portfolio_id>/reject/",
        views_rebalance.rebalance_run_portfolio_decide,
        {"decision": "reject"},
        name="rebalance_run_portfolio_reject",
    ),
    path("rebalancing/orders/", views_rebalance.order_blotter, name="order_blotter"),
    path("rebalancing/orders.csv", views_rebalance.order_blotter_csv, name="order_blotter_csv"),
    path("my-portfolio/", views_rebalance.my_portfolio, name="my_portfolio"),
    path("strategies/", views_strategy.strategy_list_page, name="strategy_list"),
    path("strategies/<int:pk>/", views_strategy.strategy_detail, name="strategy_detail"),
    path(
        "strategies/<int:pk>/backtest/",
        views_strategy.strategy_backtest,
        name="strategy_backtest",
    ),
    path(
        "strategies/<int:pk>/backtest-<slug:chart>.svg",
        views_strategy.strategy_backtest_svg,
        name="strategy_backtest_svg",
    ),
    path(
        "strategies/<int:pk>/backtest.csv",
        views_strategy.strategy_backtest_csv,
        name="strategy_backtest_csv",
    ),
    path(
        "strategies/<int:pk>/weights.csv",
        views_strategy.strategy_weights_download,
        {"fmt": "csv"},
        name="strategy_weights_csv",
    ),
    path(
        "strategies/<int:pk>/weights.svg",
        views_strategy.strategy_weights_download,
        {"fmt": "svg"},
        name="strategy_weights_svg",
    ),
    path(
        "strategies/<int:pk>/frontier.csv",
        views_strategy.strategy_frontier_download,
        {"fmt": "csv"},
        name="strategy_frontier_csv",
    ),
    path(
        "strategies/<int:pk>/frontier.svg",
        views_strategy.strategy_frontier_download,
        {"fmt": "svg"},
        name="strategy_frontier_svg",
    ),
]
