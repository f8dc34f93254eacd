"""``flush`` through the owner role, for the test suite's transactional tests.

The application role may not TRUNCATE, and the audit table refuses TRUNCATE to
everyone through a trigger. Emptying the database is therefore the owner's job: it
disables the audit triggers, truncates and re-enables them in one transaction, so
nobody ever sees the table unprotected. Outside tests it demands ``--wipe-audit-trail``.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.flush import Command as DjangoFlush
from django.core.management.sql import emit_post_migrate_signal, sql_flush
from django.db import connections, transaction

from advisor.grants import APPEND_ONLY_TABLES


class Command(DjangoFlush):
    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument("--wipe-audit-trail", action="store_true")

    def handle(self, **options: Any) -> None:
        testing = settings.SETTINGS_MODULE.endswith(".test")
        if not (testing or options["wipe_audit_trail"]):
            raise CommandError("flush erases the audit trail; pass --wipe-audit-trail to confirm")
        database = "owner"
        connection = connections[database]
        sql_list = sql_flush(
            self.style,
            connection,
            reset_sequences=options.get("reset_sequences", True),
            allow_cascade=options.get("allow_cascade", False),
        )
        with connection.cursor() as cursor:
            existing = set(connection.introspection.table_names(cursor))
        guarded = [t for t in APPEND_ONLY_TABLES if t in existing]
        with transaction.atomic(using=database):
            with connection.cursor() as cursor:
                for table in guarded:
                    cursor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            connection.ops.execute_sql_flush(sql_list)
            with connection.cursor() as cursor:
                for table in guarded:
                    cursor.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
        if sql_list and not options.get("inhibit_post_migrate"):
            emit_post_migrate_signal(options["verbosity"], options["interactive"], database)
