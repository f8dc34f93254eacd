"""django-guardian answers per-object permission questions (households use it next)."""

import pytest
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm


@pytest.mark.django_db
def test_object_permission_is_granted_per_object_only(firm_a, firm_b):
    advisor = firm_a.user("advisor")
    assert not advisor.has_perm("accounts.change_firm", firm_a.firm)

    assign_perm("accounts.change_firm", advisor, firm_a.firm)

    fresh = type(advisor).objects.get(pk=advisor.pk)  # permission caches are per instance
    assert fresh.has_perm("accounts.change_firm", firm_a.firm)
    assert not fresh.has_perm("accounts.change_firm", firm_b.firm)
    assert not fresh.has_perm("accounts.change_firm")  # no model-wide grant
    assert list(get_objects_for_user(fresh, "accounts.change_firm")) == [firm_a.firm]

    remove_perm("accounts.change_firm", advisor, firm_a.firm)
    again = type(advisor).objects.get(pk=advisor.pk)
    assert not again.has_perm("accounts.change_firm", firm_a.firm)
