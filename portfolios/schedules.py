"""The portfolios app's periodic tasks, kept in django-celery-beat's tables.

The beat runs with ``DatabaseScheduler`` (settings ``CELERY_BEAT_SCHEDULER``), which
reads ``PeriodicTask`` rows. They are created idempotently after every ``migrate``
(and after ``flush``, which re-emits ``post_migrate``): an existing entry is brought
back to its definition here, except that an operator's ``enabled = False`` is kept.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

RECOMPUTE_TASK_NAME = "Recompute strategy versions (daily, after the US market close)"
RECOMPUTE_TASK = "portfolios.strategy_versions_recompute_all_firms"
# 18:30 New York time, Monday to Friday: after the 16:00 close and the day's prices.
RECOMPUTE_CRONTAB = {
    "minute": "30",
    "hour": "18",
    "day_of_week": "1-5",
    "day_of_month": "*",
    "month_of_year": "*",
    "timezone": "America/New_York",
}


def beat_schedules_ensure(*, using: str = "default") -> Any:
    """Create (or restore) the daily strategy recompute entry; returns the PeriodicTask.

    Written with queryset operations on ``using`` only: django-celery-beat's model
    signals would touch ``PeriodicTasks`` through the default database, which during
    ``migrate`` (run as the owner) may be another connection. The scheduler's change
    marker is then bumped on ``using`` when anything was written.
    """
    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    changed = False
    with transaction.atomic(using=using):
        crontabs = CrontabSchedule.objects.using(using)
        crontab = crontabs.filter(**RECOMPUTE_CRONTAB).order_by("pk").first()
        if crontab is None:
            (crontab,) = crontabs.bulk_create([CrontabSchedule(**RECOMPUTE_CRONTAB)])
            changed = True
        tasks = PeriodicTask.objects.using(using)
        definition = {"task": RECOMPUTE_TASK, "crontab_id": crontab.pk, "interval_id": None}
        task = tasks.filter(name=RECOMPUTE_TASK_NAME).first()
        if task is None:
            tasks.bulk_create(
                [
                    PeriodicTask(
                        name=RECOMPUTE_TASK_NAME,
                        args="[]",
                        kwargs=json.dumps({}),
                        description="One recompute task per active firm "
                        "(portfolios.tasks.strategy_versions_recompute_all_firms).",
                        **definition,
                    )
                ]
            )
            changed = True
        elif any(getattr(task, k) != v for k, v in definition.items()):
            tasks.filter(pk=task.pk).update(**definition)
            changed = True
        if changed:
            PeriodicTasks.objects.using(using).update_or_create(
                ident=1, defaults={"last_update": timezone.now()}
            )
    return tasks.get(name=RECOMPUTE_TASK_NAME)


def beat_schedules_on_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: only once the beat's tables exist."""
    from django.db import connections

    connection = connections[using]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    if {"django_celery_beat_periodictask", "django_celery_beat_crontabschedule"} <= tables:
        beat_schedules_ensure(using=using)
