"""``db_bootstrap``: create the application role, connected as the owner, when it is missing.

On an external PostgreSQL the owner role (``DATABASE_URL``) and its database are made
by the server's administrator; the application role (``DATABASE_APP_USER``, default
``advisor_app``, or the user of ``DATABASE_APP_URL``) is then created here by the
owner, which needs CREATEROLE for it:

    CREATE ROLE "<app>" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE [PASSWORD ...]

With the embedded server both roles already exist and this does nothing. An existing
role is never altered; if it is superuser or has BYPASSRLS the command fails, since
row-level security would not apply to it. Table privileges follow at ``migrate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from psycopg import sql


class BootstrapError(RuntimeError):
    pass


@dataclass(frozen=True)
class BootstrapResult:
    role: str
    created: bool


def app_role_ensure(*, role: str, password: str = "", using: str = "owner") -> BootstrapResult:
    """Create ``role`` as a plain login role through connection ``using`` if missing."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        row = cursor.fetchone()
        if row is not None:
            superuser, bypass = row
            if superuser or bypass:
                raise BootstrapError(
                    f"the application role {role!r} exists but is "
                    f"{'SUPERUSER' if superuser else 'BYPASSRLS'}: row-level security would "
                    f"not apply to it. Fix it as an administrator: "
                    f'ALTER ROLE "{role}" NOSUPERUSER NOBYPASSRLS;'
                )
            return BootstrapResult(role, created=False)
        cursor.execute(
            "SELECT current_user, rolcreaterole, rolsuper FROM pg_roles "
            "WHERE rolname = current_user"
        )
        owner, can_create, owner_super = cursor.fetchone()
        if not (can_create or owner_super):
            raise BootstrapError(
                f"the application role {role!r} does not exist and the owner role {owner!r} "
                f"may not create it (no CREATEROLE). As an administrator, either run "
                f'ALTER ROLE "{owner}" CREATEROLE; or create the role yourself: '
                f"CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '...';"
            )
        statement = sql.SQL(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
        ).format(sql.Identifier(role))
        if password:
            statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
        raw = connection.connection
        assert raw is not None
        cursor.execute(statement.as_string(raw))
        # PUBLIC may connect by default; where an administrator revoked that, the
        # database's owner grants it to the new role.
        cursor.execute(
            "SELECT current_database(), pg_has_role(current_user, datdba, 'MEMBER') "
            "FROM pg_database "
            "WHERE datname = current_database()"
        )
        database, owns_database = cursor.fetchone()
        if owns_database:
            cursor.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}")
                .format(sql.Identifier(database), sql.Identifier(role))
                .as_string(raw)
            )
    return BootstrapResult(role, created=True)


class Command(BaseCommand):
    help = "Create the application database role (as the owner) if it does not exist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="owner", help="Owner connection (default).")

    def handle(self, *args: Any, **options: Any) -> None:
        app = connections["default"].settings_dict
        owner = connections[options["database"]].settings_dict
        if app["USER"] == owner["USER"]:
            raise CommandError(
                "the application role must differ from the owner role "
                f"(both are {owner['USER']!r}): set DATABASE_APP_USER or DATABASE_APP_URL"
            )
        try:
            result = app_role_ensure(
                role=app["USER"], password=app.get("PASSWORD") or "", using=options["database"]
            )
        except BootstrapError as exc:
            raise CommandError(str(exc)) from exc
        if result.created:
            self.stdout.write(
                self.style.SUCCESS(
                    f"created application role {result.role!r} (owner {owner['USER']!r})"
                )
            )
        else:
            self.stdout.write(f"application role {result.role!r} exists: nothing to do")
