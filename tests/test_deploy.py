"""Deployment: production settings pass Django's deploy checks; the database bootstrap."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from advisor.management.commands.db_bootstrap import BootstrapError, app_role_ensure

ROOT = Path(__file__).resolve().parent.parent


# Set in-process by other tests (Playwright's event loop); never in a deployment.
NOT_INHERITED = {"DJANGO_ALLOW_ASYNC_UNSAFE"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


PROD = {
    "DJANGO_SETTINGS_MODULE": "advisor.settings.prod",
    "DJANGO_SECRET_KEY": "k" + uuid.uuid4().hex + uuid.uuid4().hex + "-Zq9!x",
    "DJANGO_ALLOWED_HOSTS": "advisor.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://advisor.example.com",
}


def test_production_settings_pass_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PROD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_a_missing_or_short_secret_key():
    result = manage("check", "--deploy", **(PROD | {"DJANGO_SECRET_KEY": "short"}))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def owner_cursor():
    return connections["owner"].cursor()


@pytest.mark.django_db(databases=["default", "owner"])
def test_bootstrap_is_a_no_op_when_the_role_exists():
    out = StringIO()
    call_command("db_bootstrap", stdout=out)
    assert "exists: nothing to do" in out.getvalue()


# Roles are cluster-wide: every role made here is made inside the owner's test
# transaction, invisible to anyone else and rolled back at the end of the test.
@pytest.mark.django_db(databases=["default", "owner"])
def test_bootstrap_creates_a_plain_login_role():
    role = f"advisor_probe_{uuid.uuid4().hex[:10]}"
    result = app_role_ensure(role=role, password="s3cret'quote")
    assert result.created
    with owner_cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole "
            "FROM pg_roles WHERE rolname = %s",
            [role],
        )
        assert cursor.fetchone() == (True, False, False, False, False)
        cursor.execute("SELECT has_database_privilege(%s, current_database(), 'CONNECT')", [role])
        assert cursor.fetchone() == (True,)
    assert not app_role_ensure(role=role).created


@pytest.mark.django_db(databases=["default", "owner"])
def test_bootstrap_explains_a_missing_createrole():
    weak = f"advisor_probe_{uuid.uuid4().hex[:10]}"
    with owner_cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{weak}" NOLOGIN NOCREATEROLE')
        cursor.execute(f'GRANT "{weak}" TO CURRENT_USER')
        cursor.execute(f'SET LOCAL ROLE "{weak}"')
    with pytest.raises(BootstrapError, match="CREATEROLE"):
        app_role_ensure(role=f"{weak}_app")
    with owner_cursor() as cursor:
        cursor.execute("RESET ROLE")
