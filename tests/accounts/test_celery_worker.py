"""The tenancy decorator in a real Celery worker process, through a real broker.

Runs when ``CELERY_TEST_BROKER_URL`` names a broker (CI sets it to this machine's
RabbitMQ, with Redis for results); the product itself never needs either. One worker
process (prefork, one child) runs the tasks one after another, so whatever a task
left in its context is what the next one would inherit.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from django.db import transaction

from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.celery_worker import BROKER, RESULTS, worker_start
from tests.conftest import FirmWorld

PROBES = "tests.accounts.test_tenancy_tasks"

pytestmark = [
    pytest.mark.skipif(not BROKER, reason="CELERY_TEST_BROKER_URL is not set"),
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]


@pytest.fixture
def worker(firm_a: FirmWorld, firm_b: FirmWorld) -> Iterator[tuple[Celery, str]]:
    queue = f"tenancy-probe-{uuid.uuid4().hex[:8]}"
    process = worker_start(queue, include=PROBES)
    client = Celery("tenancy-probe-client", broker=BROKER, backend=RESULTS, set_as_current=False)
    try:
        yield client, queue
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        client.close()
        if process.returncode not in (0, -15, 15):
            print(output)  # noqa: T201 - shown by pytest only when the test fails


def _run(client: Celery, queue: str, name: str, **kwargs: Any) -> Any:
    result = client.send_task(name, kwargs=kwargs, queue=queue)
    return result.get(timeout=90, propagate=False), result.state


def test_worker_runs_each_task_as_its_firm_and_clears_it(
    worker: tuple[Celery, str], firm_a: FirmWorld, firm_b: FirmWorld
) -> None:
    client, queue = worker

    value, state = _run(client, queue, "tests.tenancy.count_memberships", firm_id=firm_b.firm.pk)
    assert state == "SUCCESS"
    assert value == {"firm_id": firm_b.firm.pk, "orm": 4, "raw": 4, "raw_firms": 1}

    value, state = _run(client, queue, "tests.tenancy.fail_after_writing", firm_id=firm_a.firm.pk)
    assert state == "FAILURE"
    assert "the task broke halfway" in str(value)

    # The same worker process, next task, no firm: nothing of either firm is visible.
    value, state = _run(client, queue, "tests.tenancy.read_without_firm")
    assert state == "SUCCESS"
    assert value == {"firm": None, "orm": "refused", "raw_memberships": 0, "raw_events": 0}

    # The failed task's transaction was rolled back in the database.
    with firm_context(firm_a.firm), transaction.atomic():
        assert not AuditEvent.objects.filter(action="test.task_started").exists()
