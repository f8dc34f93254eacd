"""HTML pages of the portfolios app, under the ``portfolios`` namespace."""

from django.urls import URLPattern, URLResolver, path

from portfolios import views_restriction, views_strategy

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
