"""Who is told: selectors over the current firm (row-level security keeps other firms out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from accounts.models import Client, HouseholdUserObjectPermission, Membership, Role


def advisors_of_households(household_ids: Iterable[int]) -> dict[int, set[int]]:
    """household id -> ids of the active advisors granted on it."""
    hids = set(household_ids)
    if not hids:
        return {}
    active = set(
        Membership.objects.filter(role=Role.ADVISOR, is_active=True).values_list(
            "user_id", flat=True
        )
    )
    out: dict[int, set[int]] = defaultdict(set)
    for hid, uid in HouseholdUserObjectPermission.objects.filter(
        content_object_id__in=hids, permission__codename="view_household"
    ).values_list("content_object_id", "user_id"):
        if uid in active:
            out[hid].add(uid)
    return out


def users_with_role(role: str) -> set[int]:
    return set(
        Membership.objects.filter(role=role, is_active=True).values_list("user_id", flat=True)
    )


def investor_of_client(client_id: int) -> int | None:
    """The client's own login, if they have one and are an active investor of the firm."""
    uid = Client.objects.filter(pk=client_id).values_list("user_id", flat=True).first()
    if uid is None or uid not in users_with_role(Role.INVESTOR):
        return None
    return int(uid)
