"""Database connection settings, and the embedded PostgreSQL used when none is configured.

Two roles in every deployment:

* the **owner** role runs migrations and owns every table;
* the **application** role (not superuser, no BYPASSRLS, owns nothing) is what the
  running code uses, so PostgreSQL row-level security applies to it.

With ``DATABASE_URL`` unset, a private PostgreSQL (the ``pgserver`` package, which
ships the server binaries in its wheel) is started in ``.pgdata/`` inside the
checkout, kept running between processes so that the web process, workers and
management commands share it. Its superuser creates both roles and the database
once.

With ``DATABASE_URL`` set, it names the owner role's connection. The application
role's connection is ``DATABASE_APP_URL`` when set, otherwise the same server and
database with the user ``DATABASE_APP_USER`` (default ``advisor_app``) and the
password ``DATABASE_APP_PASSWORD``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_DATA_DIR = Path(os.environ.get("EMBEDDED_PGDATA", BASE_DIR / ".pgdata"))
EMBEDDED_DB_NAME = "advisor"
OWNER_ROLE = "advisor_owner"
APP_ROLE = "advisor_app"
_BOOTSTRAP_MARK = "advisor-bootstrap-v1"


class DatabaseConfigError(RuntimeError):
    """The database settings cannot be built; the message says which variable is wrong."""


@dataclass(frozen=True)
class ConnectionParams:
    user: str
    password: str
    host: str
    port: str
    name: str
    options: dict[str, str]

    def as_django(self, *, conn_max_age: int) -> dict[str, Any]:
        return {
            "ENGINE": "advisor.db_backend",
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": self.port,
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": conn_max_age > 0,
            "OPTIONS": dict(self.options),
        }


def parse_url(url: str, *, variable: str) -> ConnectionParams:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise DatabaseConfigError(
            f"{variable} must be a postgresql:// URL, got scheme {parts.scheme!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise DatabaseConfigError(f"{variable} names no database (expected .../DBNAME)")
    options: dict[str, str] = {}
    host = unquote(parts.hostname or "")
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        if key == "host":
            host = unquote(value)
        else:
            options[key] = unquote(value)
    return ConnectionParams(
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=host,
        port=str(parts.port or ""),
        name=name,
        options=options,
    )


def with_user(url: str, *, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = quote(user, safe="")
    if password:
        netloc += ":" + quote(password, safe="")
    netloc += "@" + host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def embedded_server() -> Any:
    """Start (or attach to) the private PostgreSQL in ``.pgdata`` and return it."""
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); harmless.
        warnings.simplefilter("ignore")
        import pgserver

    EMBEDDED_DATA_DIR.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so every process of the
    # checkout shares it; `make db-stop` stops it.
    return pgserver.get_server(EMBEDDED_DATA_DIR, cleanup_mode=None)  # type: ignore[attr-defined]


def _socket_dir(server: Any) -> str:
    info = server.get_postmaster_info()
    return str(info.socket_dir)


def _bootstrap_embedded(socket_dir: str) -> None:
    """Create the two roles and the database once, as the embedded superuser."""
    mark = EMBEDDED_DATA_DIR / f".{_BOOTSTRAP_MARK}"
    if mark.exists():
        return
    import psycopg

    with psycopg.connect(
        host=socket_dir, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        if OWNER_ROLE not in existing:
            conn.execute(f"CREATE ROLE {OWNER_ROLE} LOGIN CREATEDB CREATEROLE NOSUPERUSER")
        if APP_ROLE not in existing:
            conn.execute(
                f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
            )
        has_db = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [EMBEDDED_DB_NAME]
        ).fetchone()
        if not has_db:
            conn.execute(f"CREATE DATABASE {EMBEDDED_DB_NAME} OWNER {OWNER_ROLE}")
    mark.write_text("roles and database created\n")


#: Server settings for the embedded PostgreSQL, sized for batch writes, in the server's
#: own units (``pg_settings.unit``). PostgreSQL's defaults checkpoint every 1 GB of WAL
#: or 5 minutes: at 1,000,000 portfolios a batch run checkpointed every 18 seconds, each
#: checkpoint followed by a full-page image of every page touched again. So checkpoints
#: every 4 GB of WAL or 15 minutes, and 64 MB of WAL buffers (4 MB otherwise, at the
#: default shared buffers), so that two workers' backends do not queue for the WAL write
#: lock while the other flushes at its commit. Shared buffers stay at the default: a
#: quarter of memory (4 GB here) made one worker's worst case about a fifth slower
#: against the floor measured in the same run (100,000 portfolios). An external server
#: is its DBA's.
EMBEDDED_TUNING = {
    "shared_buffers": 16384,  # 8 kB pages: 128 MB, PostgreSQL's default
    "max_wal_size": 4096,  # MB
    "checkpoint_timeout": 900,  # s
    "wal_buffers": 8192,  # 8 kB pages: 64 MB
}


def _tune_embedded(socket_dir: str, wanted: dict[str, int]) -> bool:
    """Apply ``wanted`` settings with ALTER SYSTEM where they differ; True when the
    server must restart for one to take effect (shared buffers)."""
    import psycopg

    with psycopg.connect(
        host=socket_dir, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        current = {
            name: (setting, context)
            for name, setting, context in conn.execute(
                "SELECT name, setting::bigint, context FROM pg_settings WHERE name = ANY(%s)",
                [list(wanted)],
            ).fetchall()
        }
        changed = [name for name, value in wanted.items() if current[name][0] != value]
        for name in changed:
            conn.execute(f"ALTER SYSTEM SET {name} = {int(wanted[name])}")
        if changed:
            conn.execute("SELECT pg_reload_conf()")
    # A reload is asynchronous, so pending_restart would not show it yet: a setting of
    # the postmaster's context (shared buffers) needs the restart.
    return any(current[name][1] == "postmaster" for name in changed)


def _tune_embedded_once(server: Any, socket_dir: str) -> None:
    """Tune (and restart) once per data folder and tuning, not in every process."""
    wanted = EMBEDDED_TUNING
    mark = EMBEDDED_DATA_DIR / (
        ".advisor-tuning-" + "-".join(f"{k}={v}" for k, v in sorted(wanted.items()))
    )
    if mark.exists():
        return
    if _tune_embedded(socket_dir, wanted):
        _restart_embedded(server)
    for old in EMBEDDED_DATA_DIR.glob(".advisor-tuning-*"):
        old.unlink()
    mark.write_text("server settings applied\n")


def _restart_embedded(server: Any) -> None:
    # restart keeps the options the server was started with (socket, no TCP).
    _pg_ctl(["-w", "-l", str(server.log), "restart"])


def _pg_ctl(args: list[str]) -> None:
    """pg_ctl on the embedded data folder, as the user pgserver runs it under."""
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(args, pgdata=EMBEDDED_DATA_DIR, user=user)


def embedded_params() -> tuple[ConnectionParams, ConnectionParams]:
    server = embedded_server()
    socket_dir = _socket_dir(server)
    _bootstrap_embedded(socket_dir)
    _tune_embedded_once(server, socket_dir)
    owner = ConnectionParams(OWNER_ROLE, "", socket_dir, "", EMBEDDED_DB_NAME, {})
    app = ConnectionParams(APP_ROLE, "", socket_dir, "", EMBEDDED_DB_NAME, {})
    return owner, app


def external_params(env: dict[str, str]) -> tuple[ConnectionParams, ConnectionParams]:
    owner_url = env["DATABASE_URL"]
    owner = parse_url(owner_url, variable="DATABASE_URL")
    app_url = env.get("DATABASE_APP_URL")
    if app_url:
        app = parse_url(app_url, variable="DATABASE_APP_URL")
    else:
        app = parse_url(
            with_user(
                owner_url,
                user=env.get("DATABASE_APP_USER", APP_ROLE),
                password=env.get("DATABASE_APP_PASSWORD", ""),
            ),
            variable="DATABASE_URL",
        )
    if app.user == owner.user:
        raise DatabaseConfigError(
            "the application role must differ from the owner role in DATABASE_URL "
            f"(both are {owner.user!r}); set DATABASE_APP_USER or DATABASE_APP_URL"
        )
    return owner, app


def database_settings(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The ``DATABASES`` setting: ``default`` is the application role, ``owner`` the owner."""
    env = dict(os.environ if env is None else env)
    conn_max_age = int(env.get("DATABASE_CONN_MAX_AGE", "60"))
    if env.get("DATABASE_URL"):
        owner, app = external_params(env)
    else:
        owner, app = embedded_params()
    default = app.as_django(conn_max_age=conn_max_age)
    # One transaction per request: the firm reaches PostgreSQL with set_config(..., true).
    default["ATOMIC_REQUESTS"] = True
    owner_settings = owner.as_django(conn_max_age=0)
    # Tests create the database through the owner (see tests/conftest.py).
    # TEST_DATABASE_NAME lets parallel test runs on one server keep apart.
    test_name = env.get("TEST_DATABASE_NAME") or f"test_{owner.name}"
    owner_settings["TEST"] = {"DEPENDENCIES": [], "NAME": test_name}
    default["TEST"] = {"NAME": test_name}
    return {"default": default, "owner": owner_settings}


def embedded_stop() -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(EMBEDDED_DATA_DIR)
    if info is None or not info.is_running():
        return False
    _pg_ctl(["-w", "stop"])
    return True
