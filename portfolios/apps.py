from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import demo
        from portfolios import admin_market  # noqa: F401  (registers the market admin)
        from portfolios.demo_market import market_seeder
        from portfolios.demo_strategy import strategy_seeder

        if market_seeder not in demo.GLOBAL_SEEDERS:
            demo.GLOBAL_SEEDERS.append(market_seeder)
        if strategy_seeder not in demo.FIRM_SEEDERS:
            demo.FIRM_SEEDERS.append(strategy_seeder)
