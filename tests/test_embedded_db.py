"""The embedded PostgreSQL's server settings (advisor.db.EMBEDDED_TUNING)."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from advisor.db import EMBEDDED_TUNING


def test_shared_buffers_stay_at_the_default():
    # A quarter of memory made one worker's worst case slower (advisor.db comment).
    assert EMBEDDED_TUNING["shared_buffers"] == 128 * 128  # 8 kB pages: 128 MB


def test_checkpoints_and_wal_buffers_are_sized_for_batch_writes():
    assert EMBEDDED_TUNING["max_wal_size"] == 4096  # MB
    assert EMBEDDED_TUNING["checkpoint_timeout"] == 900  # s
    assert EMBEDDED_TUNING["wal_buffers"] == 8192  # 8 kB pages: 64 MB


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="an external server is its DBA's")
@pytest.mark.django_db(databases=["default", "owner"])
def test_the_running_embedded_server_has_the_settings():
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT name, setting::bigint, pending_restart FROM pg_settings WHERE name = ANY(%s)",
            [list(EMBEDDED_TUNING)],
        )
        rows = {name: (setting, pending) for name, setting, pending in cursor.fetchall()}
    assert rows == {name: (value, False) for name, value in EMBEDDED_TUNING.items()}
