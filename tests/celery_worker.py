"""A real Celery worker process on the test database, for tests with a real broker.

``CELERY_TEST_BROKER_URL`` names the broker (CI: this machine's RabbitMQ, with Redis
for results); tests that need it are skipped without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connections

BROKER = os.environ.get("CELERY_TEST_BROKER_URL", "")
RESULTS = os.environ.get("CELERY_TEST_RESULT_BACKEND", "rpc://")
ROOT = Path(__file__).resolve().parents[1]


def database_url(alias: str) -> str:
    """The test database as a URL for the worker (a socket directory goes in ``host=``)."""
    s = connections[alias].settings_dict
    user = quote(s["USER"], safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    host, port = s["HOST"], s["PORT"]
    if host.startswith("/"):
        return f"postgresql://{user}{password}@/{s['NAME']}?host={quote(host, safe='/')}"
    return f"postgresql://{user}{password}@{host}{':' + str(port) if port else ''}/{s['NAME']}"


def worker_start(
    queue: str, *, include: str = "", capture: bool = True, own_session: bool = False
) -> subprocess.Popen[str]:
    """One prefork worker with one child on ``queue``, as the app role on the test
    database. ``own_session`` puts it in its own process group (to SIGKILL it whole)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "advisor.settings.dev",
        "DATABASE_URL": database_url("owner"),
        "DATABASE_APP_USER": connections["default"].settings_dict["USER"],
        "DATABASE_APP_PASSWORD": connections["default"].settings_dict["PASSWORD"],
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": RESULTS,
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "advisor",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        f"--queues={queue}",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=WARNING",
    ]
    if include:
        command.append(f"--include={include}")
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
        text=True,
        start_new_session=own_session,
    )
