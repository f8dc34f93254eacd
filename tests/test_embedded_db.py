"""The embedded PostgreSQL's server settings (advisor.db.embedded_tuning)."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from advisor.db import embedded_tuning

GB = 2**30


@pytest.mark.parametrize("memory", [256 * 2**20, 8 * GB, 256 * GB])
def test_shared_buffers_stay_at_the_default(memory: int):
    # A quarter of memory made one worker's worst case slower (advisor.db docstring).
    assert embedded_tuning(memory)["shared_buffers"] == 128 * 128  # 8 kB pages: 128 MB


def test_checkpoints_and_wal_buffers_are_sized_for_batch_writes():
    tuning = embedded_tuning(8 * GB)
    assert tuning["max_wal_size"] == 4096  # MB
    assert tuning["checkpoint_timeout"] == 900  # s
    assert tuning["wal_buffers"] == 8192  # 8 kB pages: 64 MB


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="an external server is its DBA's")
@pytest.mark.django_db(databases=["default", "owner"])
def test_the_running_embedded_server_has_the_settings():
    wanted = embedded_tuning(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT name, setting::bigint, pending_restart FROM pg_settings WHERE name = ANY(%s)",
            [list(wanted)],
        )
        rows = {name: (setting, pending) for name, setting, pending in cursor.fetchall()}
    assert rows == {name: (value, False) for name, value in wanted.items()}
