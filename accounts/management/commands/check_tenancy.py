"""``check_tenancy``: is every firm-owned table protected, and is the application role harmless?

Prints every table with a ``firm_id`` column, its row-level security and policies and
the application role's privileges on it, then the role's attributes, then every gap.
Exits 1 on any gap (see :mod:`accounts.tenancy.checks`).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.tenancy.checks import TableInfo, TenancyReport, tenancy_check


class Command(BaseCommand):
    help = "Check row-level security on every firm-owned table and the application role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default="owner",
            help="Connection whose catalogs are read (default: owner).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = tenancy_check(using=options["database"])
        self._print(report)
        if not report.ok:
            raise CommandError(
                f"tenancy check failed: {len(report.gaps)} gap(s), see above", returncode=1
            )
        self.stdout.write(self.style.SUCCESS("tenancy check passed: no gaps"))

    def _print(self, report: TenancyReport) -> None:
        snapshot = report.snapshot
        role = snapshot.app_role
        out = self.stdout.write
        out(f"Database {snapshot.database!r}, application role {role.name!r}")
        out("")
        rows = [("table", "kind", "owner", "RLS", "forced", "app privileges")]
        rows += [_row(t) for t in snapshot.tables]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if index == 0:
                out("  ".join("-" * width for width in widths))
        out("")
        out("Policies:")
        for table in snapshot.tables:
            for policy in table.policies:
                kind = "permissive" if policy.permissive else "restrictive"
                out(
                    f"  {table.qualified_name}.{policy.name} ({policy.command}, {kind}, "
                    f"to {', '.join(policy.roles)})"
                )
                out(f"      USING {policy.using or '-'}")
                out(f"      WITH CHECK {policy.with_check or '(same as USING)'}")
        out("")
        if role.exists:
            out(f"Application role {role.name}: {role.attributes}")
            out(f"  member of: {', '.join(role.member_of) or '-'}")
            out(
                f"  owns: {', '.join(role.owned_relations) or 'no table'}"
                f"{', the database' if role.owns_database else ''}"
                f"{''.join(', schema ' + s for s in role.owned_schemas)}"
            )
        else:
            out(f"Application role {role.name}: MISSING")
        out(
            f"Firm-owned models checked: {len(report.model_tables)} "
            f"({', '.join(report.model_tables)})"
        )
        out("")
        if report.gaps:
            out(self.style.ERROR(f"{len(report.gaps)} gap(s):"))
            for gap in report.gaps:
                out(self.style.ERROR(f"  GAP {gap}"))


def _row(table: TableInfo) -> tuple[str, str, str, str, str, str]:
    return (
        table.qualified_name,
        table.kind,
        table.owner,
        "yes" if table.rls_enabled else "NO",
        "yes" if table.rls_forced else "NO",
        ",".join(table.app_privileges) or "-",
    )
