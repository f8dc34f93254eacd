"""``demo_summary``: where to go and how to sign in, with what the demo holds now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.demo import DEMO_URL, demo_summary


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


class Command(BaseCommand):
    help = "Print the demo's address, logins and what each role sees, with counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=DEMO_URL, help=f"Address shown (default {DEMO_URL}).")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"] if options["url"].endswith("/") else options["url"] + "/"
        summary = demo_summary(url=url)
        out = self.stdout.write
        rule = "=" * 78
        out(rule)
        out(f"Advisor platform demo: {summary.url}")
        out(
            f"  sign in at {summary.url}login/   API docs {summary.url}api/docs/   "
            f"admin {summary.url}admin/"
        )
        out(f"  every demo login has the password: {summary.password}")
        out(rule)
        if summary.firms:
            out("")
            out("Firms")
            rows: list[tuple[str, ...]] = [
                ("firm", "slug", "members", "audit events", "audit chain")
            ]
            rows += [
                (
                    f.name,
                    f.slug,
                    str(f.members),
                    str(f.audit_events),
                    "intact" if f.chain_ok else "BROKEN (run verify_audit)",
                )
                for f in summary.firms
            ]
            for line in table(rows):
                out("  " + line)
        if summary.logins:
            out("")
            out(f"Logins (password {summary.password})")
            logins: list[tuple[str, ...]] = [("firm", "login", "role", "sees")]
            logins += [(x.firm_slug, x.username, x.role_label, x.sees) for x in summary.logins]
            for line in table(logins):
                out("  " + line)
        out("")
        events = sum(f.audit_events for f in summary.firms)
        out(f"Totals: {len(summary.firms)} firms, {summary.users} users, {events} audit events")
        if summary.missing:
            out(
                self.style.WARNING(
                    f"Not seeded yet: {', '.join(summary.missing)}"
                    " (run: python manage.py seed_demo)"
                )
            )
        out(rule)
