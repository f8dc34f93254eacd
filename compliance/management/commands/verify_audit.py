"""``verify_audit --firm SLUG`` (or ``--all``): walk a firm's audit hash chain.

Exit status: 0 when every chain checked is intact, 1 when one is broken (the first
broken event is named: id, sequence number and what is wrong), 2 when a firm is
unknown. Reads through the application role, one firm at a time, as the running
code does; a broken chain is also told to the firm's compliance officers (in the app
and by email: a regulatory notification). A chain only proves what it holds: events
removed from its end leave no gap, so compare the event count with what you expect
when that matters.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Firm
from compliance.services.verification import audit_chain_check_readonly


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain of one firm (--firm SLUG) or of every firm (--all)."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--firm", metavar="SLUG", help="The firm whose chain to verify.")
        which.add_argument("--all", action="store_true", help="Verify every firm's chain.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all"]:
            firms = list(Firm.objects.order_by("slug"))
        else:
            slug = options["firm"]
            firm = Firm.objects.filter(slug=slug).first()
            if firm is None:
                raise CommandError(f"unknown firm {slug!r} (no firm has that slug)", returncode=2)
            firms = [firm]

        broken: list[str] = []
        for firm in firms:
            check = audit_chain_check_readonly(firm=firm)
            if check.ok:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{firm.slug}: intact, {check.events_checked} events checked"
                    )
                )
                continue
            line = (
                f"{firm.slug}: BROKEN at event id={check.broken_event_id} "
                f"seq={check.broken_seq}: {check.problem} "
                f"({check.events_checked} events before it are intact)"
            )
            self.stdout.write(self.style.ERROR(line))
            broken.append(line)
        if not firms:
            self.stdout.write("no firms")
        if broken:
            raise CommandError("audit chain broken: " + "; ".join(broken), returncode=1)
