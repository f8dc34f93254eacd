"""The demo world: three firms, one login per role in each, and a platform superuser.

``demo_seed()`` is idempotent: it looks everything up by its natural key (slug,
username) and only creates or corrects what is missing, so a second run creates
nothing and writes no audit event. Memberships go through
:func:`accounts.services.membership_create`, so the demo's audit trail is the real
thing.

Later issues extend the demo by appending to :data:`FIRM_SEEDERS` (clients,
portfolios: run once per firm, inside that firm's context and transaction) or
:data:`GLOBAL_SEEDERS` (market data: run once, before the firms). A seeder must be
idempotent too and returns what it created, by name, for the progress line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import Firm, Membership, Role, User
from accounts.services import membership_create, membership_update
from accounts.tenancy.context import firm_context
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from compliance.services import audit_record

DEMO_PASSWORD = "demo12345"  # noqa: S105 - the published demo password
DEMO_URL = "http://127.0.0.1:8000/"
PLATFORM_USERNAME = "platform"
SEED_ACTOR = "seed_demo"

# Login prefix of each role: admin.<slug>, advisor.<slug>, ...
ROLE_LOGIN = {
    Role.FIRM_ADMIN: "admin",
    Role.ADVISOR: "advisor",
    Role.COMPLIANCE: "compliance",
    Role.INVESTOR: "investor",
}

# What each role's home page shows (advisor/dashboards.py); later issues add to it.
ROLE_SEES = {
    Role.FIRM_ADMIN: "members by role, the firm's audit events and latest activity",
    Role.ADVISOR: "their clients and their own recorded actions; the client book (Clients)",
    Role.COMPLIANCE: "audit events today and in total, latest activity, the chain check",
    Role.INVESTOR: "their profile, sign-ins and failed sign-in attempts; their risk profile",
}
PLATFORM_SEES = "the Django admin at /admin/: firms, users, audit trail (read-only)"


@dataclass(frozen=True)
class DemoPerson:
    role: Role
    first_name: str
    last_name: str


@dataclass(frozen=True)
class DemoFirm:
    slug: str
    name: str
    people: tuple[DemoPerson, ...]

    def username(self, role: Role) -> str:
        return f"{ROLE_LOGIN[role]}.{self.slug}"


DEMO_FIRMS: tuple[DemoFirm, ...] = (
    DemoFirm(
        "alpine",
        "Alpine Wealth Partners",
        (
            DemoPerson(Role.FIRM_ADMIN, "Anna", "Keller"),
            DemoPerson(Role.ADVISOR, "Lukas", "Brunner"),
            DemoPerson(Role.COMPLIANCE, "Sofia", "Meier"),
            DemoPerson(Role.INVESTOR, "Jonas", "Huber"),
        ),
    ),
    DemoFirm(
        "bayside",
        "Bayside Capital Advisors",
        (
            DemoPerson(Role.FIRM_ADMIN, "Maya", "Thompson"),
            DemoPerson(Role.ADVISOR, "Daniel", "Okafor"),
            DemoPerson(Role.COMPLIANCE, "Priya", "Raman"),
            DemoPerson(Role.INVESTOR, "Grace", "Whitfield"),
        ),
    ),
    DemoFirm(
        "cedar",
        "Cedar Ridge Financial Planning",
        (
            DemoPerson(Role.FIRM_ADMIN, "Robert", "Lindqvist"),
            DemoPerson(Role.ADVISOR, "Elena", "Vasquez"),
            DemoPerson(Role.COMPLIANCE, "Samuel", "Adeyemi"),
            DemoPerson(Role.INVESTOR, "Hannah", "Novak"),
        ),
    ),
)


@dataclass
class Created:
    """What one step created or corrected, by name: {"users": 4, "memberships": 4}."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        if amount:
            self.counts[name] = self.counts.get(name, 0) + amount

    def merge(self, other: Created) -> None:
        for name, amount in other.counts.items():
            self.add(name, amount)

    def describe(self) -> str:
        return ", ".join(f"{amount} {name}" for name, amount in self.counts.items())

    def __bool__(self) -> bool:
        return bool(self.counts)


# (firm, its demo description) -> what was created. Runs inside firm_context(firm)
# and the firm's transaction.
FirmSeeder = Callable[[Firm, DemoFirm], Created]
GlobalSeeder = Callable[[], Created]
FIRM_SEEDERS: list[FirmSeeder] = []
GLOBAL_SEEDERS: list[GlobalSeeder] = []


@dataclass
class DemoSeedResult:
    firms: dict[str, Created] = field(default_factory=dict)
    platform: Created = field(default_factory=Created)
    global_data: Created = field(default_factory=Created)

    @property
    def created_anything(self) -> bool:
        return bool(self.platform or self.global_data or any(self.firms.values()))


def demo_seed(*, progress: Callable[[str], None] | None = None) -> DemoSeedResult:
    """Create (or complete) the demo world. Safe to run any number of times."""
    say = progress or (lambda line: None)
    result = DemoSeedResult()
    for global_seeder in GLOBAL_SEEDERS:
        with transaction.atomic():
            result.global_data.merge(global_seeder())
    if result.global_data:
        say(f"shared data: created {result.global_data.describe()}")

    width = max(len(spec.slug) for spec in DEMO_FIRMS)
    for spec in DEMO_FIRMS:
        created = _seed_firm(spec)
        result.firms[spec.slug] = created
        state = f"created {created.describe()}" if created else "already seeded, nothing to do"
        say(f"{spec.slug.ljust(width)}  {spec.name}: {state}")

    with transaction.atomic():
        result.platform = _seed_platform_user()
    if result.platform:
        say(f"platform superuser {PLATFORM_USERNAME!r}: created {result.platform.describe()}")
    return result


def _seed_firm(spec: DemoFirm) -> Created:
    created = Created()
    with transaction.atomic():
        firm = Firm.objects.filter(slug=spec.slug).first()
        if firm is None:
            firm = Firm.objects.create(slug=spec.slug, name=spec.name)
            created.add("firm")
            with firm_context(firm):
                audit_record(
                    action="firm.created",
                    actor_label=SEED_ACTOR,
                    object_type="firm",
                    object_id=firm.pk,
                    payload={"name": firm.name, "slug": firm.slug},
                )
        for person in spec.people:
            user, user_created = _demo_user(spec.username(person.role), person, spec.slug)
            if user_created:
                created.add("users")
            membership_change = _demo_membership(firm, user, person.role)
            if membership_change:
                created.add(membership_change)
        with firm_context(firm):
            for seeder in FIRM_SEEDERS:
                created.merge(seeder(firm, spec))
    return created


def _demo_user(username: str, person: DemoPerson, slug: str) -> tuple[User, bool]:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        user = User.objects.create_user(
            username=username,
            password=DEMO_PASSWORD,
            email=f"{username}@{slug}.example.com",
            first_name=person.first_name,
            last_name=person.last_name,
        )
        return user, True
    return user, False


def _demo_membership(firm: Firm, user: User, role: Role) -> str:
    """Make ``user`` an active ``role`` of ``firm``; the name of what changed, or ""."""
    with firm_context(firm):
        membership = Membership.objects.filter(user=user).first()
        if membership is None:
            membership_create(firm=firm, user=user, role=role)
            return "memberships"
        if membership.role != role or not membership.is_active:
            membership_update(membership=membership, actor=None, role=role, is_active=True)
            return "memberships corrected"
    return ""


def _seed_platform_user() -> Created:
    created = Created()
    user = User.objects.filter(username__iexact=PLATFORM_USERNAME).first()
    if user is None:
        User.objects.create_superuser(
            username=PLATFORM_USERNAME,
            email=f"{PLATFORM_USERNAME}@example.com",
            password=DEMO_PASSWORD,
            first_name="Platform",
            last_name="Operator",
        )
        created.add("user")
    elif not (user.is_superuser and user.is_staff and user.is_active):
        user.is_superuser = user.is_staff = user.is_active = True
        user.save(update_fields=["is_superuser", "is_staff", "is_active"])
        created.add("superuser rights restored")
    return created


# The client book, questionnaires and risk profiles of each demo firm (issue 3).
from accounts.demo_book import seed_client_book  # noqa: E402

FIRM_SEEDERS.append(seed_client_book)


# --- the summary ---------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLogin:
    firm_slug: str
    username: str
    role_label: str
    sees: str


@dataclass(frozen=True)
class FirmSummary:
    slug: str
    name: str
    members: int
    audit_events: int
    chain_ok: bool


@dataclass(frozen=True)
class DemoSummary:
    url: str
    password: str
    firms: tuple[FirmSummary, ...]
    logins: tuple[DemoLogin, ...]
    users: int
    missing: tuple[str, ...]  # demo firms or logins not in the database


def demo_summary(*, url: str = DEMO_URL) -> DemoSummary:
    """What the demo holds now: firms, logins and counts, read from the database."""
    firms: list[FirmSummary] = []
    logins: list[DemoLogin] = []
    missing: list[str] = []
    for spec in DEMO_FIRMS:
        firm = Firm.objects.filter(slug=spec.slug).first()
        if firm is None:
            missing.append(f"firm {spec.slug}")
            continue
        with firm_context(firm), transaction.atomic():
            members = Membership.objects.filter(is_active=True).count()
            events = AuditEvent.objects.count()
            roles = dict(
                Membership.objects.filter(
                    is_active=True, user__username__in=[spec.username(p.role) for p in spec.people]
                ).values_list("user__username", "role")
            )
        chain_ok = audit_chain_verify(firm=firm).ok
        firms.append(FirmSummary(spec.slug, firm.name, members, events, chain_ok))
        for person in spec.people:
            username = spec.username(person.role)
            role = roles.get(username)
            if role is None:
                missing.append(f"login {username}")
                continue
            logins.append(DemoLogin(spec.slug, username, Role(role).label, ROLE_SEES[Role(role)]))
    if User.objects.filter(username__iexact=PLATFORM_USERNAME, is_superuser=True).exists():
        logins.append(DemoLogin("-", PLATFORM_USERNAME, "Platform superuser", PLATFORM_SEES))
    else:
        missing.append(f"login {PLATFORM_USERNAME}")
    return DemoSummary(
        url=url,
        password=DEMO_PASSWORD,
        firms=tuple(firms),
        logins=tuple(logins),
        users=User.objects.count(),
        missing=tuple(missing),
    )
