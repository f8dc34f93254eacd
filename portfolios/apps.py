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
        # The book of portfolios follows the strategies the mapping points at.
        from portfolios.demo_book import seed_portfolio_book

        if seed_portfolio_book not in demo.FIRM_SEEDERS:
            demo.FIRM_SEEDERS.append(seed_portfolio_book)

        from portfolios import services_rebalance, tasks

        if tasks.dispatch_chunks not in services_rebalance.CHUNK_DISPATCH:
            services_rebalance.CHUNK_DISPATCH.append(tasks.dispatch_chunks)
        if tasks.dispatch_execution not in services_rebalance.EXECUTE_DISPATCH:
            services_rebalance.EXECUTE_DISPATCH.append(tasks.dispatch_execution)
        from portfolios import signals_book

        if tasks.on_cash_flow not in signals_book.ON_CASH_FLOW:
            signals_book.ON_CASH_FLOW.append(tasks.on_cash_flow)
