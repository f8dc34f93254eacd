"""The Celery app. With CELERY_BROKER_URL unset, tasks run eagerly in-process."""

import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings.dev")

app = Celery("advisor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def _host_workers_record(options: dict[str, Any] | None = None, **_: Any) -> None:
    """The worker's concurrency (its prefork children inherit it): batch chunks write
    behind only when the host has cores to spare beyond the workers'."""
    from portfolios.bulk import host_workers_set

    host_workers_set(int((options or {}).get("concurrency") or os.cpu_count() or 1))
