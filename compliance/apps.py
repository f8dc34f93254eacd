from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The firm's versioned rules and the client facts they read plug into the
        # batch rebalance through its hooks (the rebalance never imports compliance's
        # Django side).
        from compliance.rule_wiring import book_enrich, rule_set_current
        from portfolios import services_rebalance

        if rule_set_current not in services_rebalance.RULE_SET_PROVIDERS:
            services_rebalance.RULE_SET_PROVIDERS.append(rule_set_current)
        if book_enrich not in services_rebalance.BOOK_ENRICHERS:
            services_rebalance.BOOK_ENRICHERS.append(book_enrich)
