"""The daily strategy recompute is in django-celery-beat's schedule, created idempotently."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from advisor.celery import app
from portfolios.schedules import RECOMPUTE_TASK, RECOMPUTE_TASK_NAME, beat_schedules_ensure

pytestmark = pytest.mark.django_db


def test_migrate_left_the_daily_recompute_in_the_beat_schedule() -> None:
    task = PeriodicTask.objects.get(name=RECOMPUTE_TASK_NAME)
    assert task.enabled
    assert task.task == RECOMPUTE_TASK
    app.loader.import_default_modules()  # the worker's autodiscovery
    assert task.task in app.tasks, "the scheduled name is a registered Celery task"
    crontab = task.crontab
    assert crontab is not None
    assert task.interval is None
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("30", "18", "1-5")
    assert str(crontab.timezone) == "America/New_York"


def test_ensure_is_idempotent_and_restores_a_changed_entry() -> None:
    before = (PeriodicTask.objects.count(), CrontabSchedule.objects.count())
    beat_schedules_ensure()
    beat_schedules_ensure()
    assert (PeriodicTask.objects.count(), CrontabSchedule.objects.count()) == before
    PeriodicTask.objects.filter(name=RECOMPUTE_TASK_NAME).update(task="wrong.task", enabled=False)
    beat_schedules_ensure()
    task = PeriodicTask.objects.get(name=RECOMPUTE_TASK_NAME)
    assert task.task == RECOMPUTE_TASK
    assert not task.enabled, "an operator's pause is kept"


def test_the_beat_scheduler_loads_the_entry() -> None:
    from django_celery_beat.schedulers import DatabaseScheduler

    # The scheduler's own entry for the row (all_as_schedule() leaves out crontab
    # entries not due within the hour, so it depends on when the test runs).
    scheduler = DatabaseScheduler(app=app, lazy=True)
    entry = scheduler.Entry(PeriodicTask.objects.get(name=RECOMPUTE_TASK_NAME), app=app)
    assert entry.task == RECOMPUTE_TASK
    assert entry.schedule.hour == {18}
    assert entry.schedule.minute == {30}


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_the_entry_survives_a_flush() -> None:
    call_command("flush", interactive=False, verbosity=0)
    assert PeriodicTask.objects.filter(name=RECOMPUTE_TASK_NAME, task=RECOMPUTE_TASK).exists()
