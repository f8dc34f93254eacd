"""The tenancy decorator in a real Celery worker process, through a real broker.

Runs when ``CELERY_TEST_BROKER_URL`` names a broker (CI sets it to this machine's
RabbitMQ, with Redis for results); the product itself never needs either. One worker
process (prefork, one child) runs the tasks one after another, so whatever a task
left in its context is what the next one would inherit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from celery import Celery
from django.db import connections, transaction

from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.conftest import FirmWorld

BROKER = os.environ.get("CELERY_TEST_BROKER_URL", "")
RESULTS = os.environ.get("CELERY_TEST_RESULT_BACKEND", "rpc://")
ROOT = Path(__file__).resolve().parents[2]
PROBES = "tests.accounts.test_tenancy_tasks"

pytestmark = [
    pytest.mark.skipif(not BROKER, reason="CELERY_TEST_BROKER_URL is not set"),
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]


def _database_url(alias: str) -> str:
    """The test database as a URL for the worker (a socket directory goes in ``host=``)."""
    s = connections[alias].settings_dict
    user = quote(s["USER"], safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    host, port = s["HOST"], s["PORT"]
    if host.startswith("/"):
        return f"postgresql://{user}{password}@/{s['NAME']}?host={quote(host, safe='/')}"
    return f"postgresql://{user}{password}@{host}{':' + str(port) if port else ''}/{s['NAME']}"


@pytest.fixture
def worker(firm_a: FirmWorld, firm_b: FirmWorld) -> Iterator[tuple[Celery, str]]:
    queue = f"tenancy-probe-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "advisor.settings.dev",
        "DATABASE_URL": _database_url("owner"),
        "DATABASE_APP_USER": connections["default"].settings_dict["USER"],
        "DATABASE_APP_PASSWORD": connections["default"].settings_dict["PASSWORD"],
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": RESULTS,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "advisor",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            f"--queues={queue}",
            f"--include={PROBES}",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = Celery("tenancy-probe-client", broker=BROKER, backend=RESULTS)
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
