"""The Celery tenancy decorator: the task runs as its firm, and the firm is cleared after.

Tasks run eagerly in tests (CELERY_TASK_ALWAYS_EAGER), in this process and context,
so whatever a task leaves behind is what the next task on a worker would inherit.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from accounts.models import Firm, Membership
from accounts.tenancy import NoFirmSelected, context, current_firm, firm_context
from accounts.tenancy.tasks import firm_task
from advisor.celery import app
from compliance.models import AuditEvent
from compliance.services import audit_record


class TaskFailed(Exception):
    pass


@app.task(name="tests.tenancy.count_memberships")
@firm_task
def count_memberships(*, firm_id: int) -> dict[str, int]:
    firm = current_firm()
    assert firm is not None
    assert connection.in_atomic_block  # the firm reaches the database
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT firm_id) FROM accounts_membership")
        raw_rows, raw_firms = cursor.fetchone()
    return {
        "firm_id": firm.pk,
        "orm": Membership.objects.count(),
        "raw": raw_rows,
        "raw_firms": raw_firms,
    }


@app.task(name="tests.tenancy.fail_after_writing")
@firm_task
def fail_after_writing(*, firm_id: int) -> None:
    audit_record(action="test.task_started")
    raise TaskFailed("the task broke halfway")


@app.task(name="tests.tenancy.read_without_firm")
def read_without_firm() -> dict[str, object]:
    """A task with no tenancy decorator: it must not see any firm's data."""
    result: dict[str, object] = {"firm": current_firm()}
    try:
        Membership.objects.count()
        result["orm"] = "read"
    except NoFirmSelected:
        result["orm"] = "refused"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_membership")
        result["raw_memberships"] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM compliance_auditevent")
        result["raw_events"] = cursor.fetchone()[0]
    return result


def test_tasks_run_eagerly_in_tests(settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER
    assert app.conf.task_always_eager


@pytest.mark.django_db
def test_task_runs_as_its_firm_only(firm_a, firm_b):
    result = count_memberships.delay(firm_id=firm_b.firm.pk).get()
    assert result == {"firm_id": firm_b.firm.pk, "orm": 4, "raw": 4, "raw_firms": 1}
    assert current_firm() is None


@pytest.mark.django_db
def test_firm_is_cleared_after_a_task_that_raised(firm_a, firm_b):
    with pytest.raises(TaskFailed):
        fail_after_writing.delay(firm_id=firm_a.firm.pk)
    assert current_firm() is None
    assert context.current_user_id() is None

    # Code after it, without a firm: the ORM raises, raw SQL sees nothing.
    with pytest.raises(NoFirmSelected):
        Membership.objects.count()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_membership")
        assert cursor.fetchone() == (0,)

    # A task after it, without a firm: the same.
    after = read_without_firm.delay().get()
    assert after == {"firm": None, "orm": "refused", "raw_memberships": 0, "raw_events": 0}

    # The failed task's transaction was rolled back: its audit event is gone.
    with firm_context(firm_a.firm):
        assert not AuditEvent.objects.filter(action="test.task_started").exists()


@pytest.mark.django_db
def test_task_clears_a_firm_leaked_by_earlier_code(firm_a, firm_b):
    # A worker whose previous job forgot to clean up must not run the next task as
    # that firm: the decorator starts from nothing and sets the task's own firm.
    context.set_current_firm(firm_a.firm)
    try:
        result = count_memberships.delay(firm_id=firm_b.firm.pk).get()
    finally:
        context.clear()
    assert result["firm_id"] == firm_b.firm.pk
    assert result["raw_firms"] == 1


@pytest.mark.django_db
def test_unknown_firm_is_an_error_not_a_guess(firm_a):
    missing = (Firm.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    with pytest.raises(Firm.DoesNotExist):
        count_memberships.delay(firm_id=missing)
    assert current_firm() is None


@pytest.mark.django_db
def test_firm_is_required():
    with pytest.raises(TypeError):
        count_memberships.delay()


# Regression (fixed in accounts/tenancy/tasks.py): the decorator used to clear the
# firm afterwards instead of restoring what was there. On a worker that is the same
# thing, but tasks run eagerly whenever CELERY_BROKER_URL is unset (development,
# `make run`): a view that called task.delay() lost its own firm for the rest of the
# request.
@pytest.mark.django_db
def test_eager_task_restores_the_callers_firm(firm_a, firm_b):
    with firm_context(firm_a.firm), transaction.atomic():
        count_memberships.delay(firm_id=firm_b.firm.pk)
        assert current_firm() == firm_a.firm
        assert Membership.objects.count() == 4
