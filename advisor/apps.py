from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AdvisorConfig(AppConfig):
    name = "advisor"
    verbose_name = "Platform"

    def ready(self) -> None:
        from advisor.grants import grant_application_role

        post_migrate.connect(grant_application_role, dispatch_uid="advisor.grants")
