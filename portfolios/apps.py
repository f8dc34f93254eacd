from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import demo
        from portfolios.schedules import beat_schedules_on_migrate

        post_migrate.connect(
            beat_schedules_on_migrate, sender=self, dispatch_uid="portfolios.schedules"
        )
        from portfolios import admin_market  # noqa: F401  (registers the market admin)
        from portfolios.demo_market import market_seeder
        from portfolios.demo_strategy import strategy_seeder

        if market_seeder not in demo.GLOBAL_SEEDERS:
            demo.GLOBAL_SEEDERS.append(market_seeder)
        from accounts.demo_book import seed_strategy_mapping

        if strategy_seeder not in demo.FIRM_SEEDERS:
            demo.FIRM_SEEDERS.append(strategy_seeder)
        # The profile mapping points at strategies: it runs once they exist.
        if seed_strategy_mapping not in demo.FIRM_SEEDERS:
            demo.FIRM_SEEDERS.append(seed_strategy_mapping)
