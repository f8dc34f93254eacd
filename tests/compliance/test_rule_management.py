"""Rule management: validation naming the parameter, roles, versions, rule sets, audit."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.tenancy.context import firm_context
from compliance.models import (
    AuditEvent,
    ComplianceRule,
    ComplianceRuleVersion,
    ImmutableRowError,
    RuleSetVersion,
)
from compliance.rule_wiring import rule_set_current
from compliance.rules import RuleParamError
from compliance.services.rule_management import (
    RulePermissionError,
    compliance_rule_create,
    compliance_rule_update,
)

pytestmark = pytest.mark.django_db


def create(world, role="compliance", **kwargs):
    args = {
        "name": "Single asset cap",
        "kind": "concentration_asset",
        "severity": "hard",
        "params": {"max_share": "0.25"},
    }
    args.update(kwargs)
    return compliance_rule_create(firm=world.firm, actor=world.user(role), **args)


@pytest.mark.parametrize(
    ("kind", "params", "param"),
    [
        ("concentration_asset", {"max_share": 1.5}, "max_share"),
        ("concentration_asset", {}, "max_share"),
        ("concentration_asset", {"max_share": 0.2, "level": "galaxy"}, "level"),
        ("cash_floor", {"min_share": -0.01}, "min_share"),
        ("restricted_list", {"symbols": [], "use_client_restrictions": False}, "symbols"),
        ("max_crypto_share", {"by_risk_level": {"3": 0.2, "5": 0.1}}, "by_risk_level.5"),
        ("wash_sale", {"days": 0}, "days"),
        ("min_trade_value", {"min_value": -5}, "min_value"),
        ("no_such_kind", {}, "kind"),
        ("cash_floor", {"min_share": 0.01, "bogus": 1}, "bogus"),
    ],
)
def test_bad_params_are_refused_naming_the_parameter(firm_a, kind, params, param):
    with pytest.raises(RuleParamError) as err:
        create(firm_a, kind=kind, params=params)
    assert err.value.param == param
    with firm_context(firm_a.firm), transaction.atomic():
        assert not ComplianceRule.objects.exists()
        assert not RuleSetVersion.objects.exists()


def test_bad_severity_and_scope_are_refused(firm_a):
    with pytest.raises(RuleParamError) as err:
        create(firm_a, severity="catastrophic")
    assert err.value.param == "severity"
    with pytest.raises(RuleParamError) as err:
        create(firm_a, client_ids=[10**9])
    assert err.value.param == "client_ids"


@pytest.mark.parametrize("role", ["advisor", "investor"])
def test_only_compliance_and_admins_manage_rules(firm_a, role):
    with pytest.raises(RulePermissionError):
        create(firm_a, role=role)
    rule = create(firm_a, role="firm_admin")
    with pytest.raises(RulePermissionError):
        compliance_rule_update(
            firm=firm_a.firm, actor=firm_a.user(role), rule=rule, params={"max_share": 0.3}
        )


def test_every_change_is_a_new_version_and_rule_set_audited(firm_a):
    rule = create(firm_a)
    other = create(firm_a, name="KYC", kind="kyc_complete", params={})
    updated = compliance_rule_update(
        firm=firm_a.firm,
        actor=firm_a.user("compliance"),
        rule=rule,
        severity="soft",
        params={"max_share": 0.3, "level": "household"},
    )
    with firm_context(firm_a.firm), transaction.atomic():
        versions = list(ComplianceRuleVersion.objects.filter(rule=rule).order_by("number"))
        assert [v.number for v in versions] == [1, 2]
        assert versions[0].params["max_share"] == 0.25 and versions[0].severity == 2
        assert versions[1].params == {"max_share": 0.3, "level": "household"}
        assert versions[1].severity == 1
        assert updated.current_version_id == versions[1].pk
        sets = list(RuleSetVersion.objects.order_by("number"))
        assert [s.number for s in sets] == [1, 2, 3]
        # ordered by rule: the cap (created first), then KYC
        assert sets[-1].rule_version_ids == [versions[1].pk, other.current_version_id]
        event = AuditEvent.objects.filter(action="compliance.rule_updated").get()
        assert str(event.payload["before"]["params"]["max_share"]) == "0.25"
        assert str(event.payload["after"]["params"]["max_share"]) == "0.3"
        assert event.payload["after"]["severity"] == "soft"
        assert event.actor_id == firm_a.user("compliance").pk
        # the provider hands the latest set to a run: the firm's rules + missing built-ins
        version_id, rules = rule_set_current()
        assert version_id == sets[-1].pk
        kinds = [r.kind for r in rules]
        assert kinds[:2] == ["concentration_asset", "kyc_complete"]
        assert {"no_short_no_negative_cash", "restricted_list", "wash_sale"} <= set(kinds)
        with pytest.raises(ImmutableRowError):
            versions[0].severity = 1
            versions[0].save()
    # deactivating writes a version too; nothing-changed is refused
    compliance_rule_update(
        firm=firm_a.firm, actor=firm_a.user("compliance"), rule=rule, active=False
    )
    with pytest.raises(RuleParamError):
        compliance_rule_update(
            firm=firm_a.firm, actor=firm_a.user("compliance"), rule=rule, active=False
        )
    with firm_context(firm_a.firm), transaction.atomic():
        latest = RuleSetVersion.objects.order_by("-number").first()
        assert latest is not None and latest.rule_version_ids == [other.current_version_id]


def test_the_database_refuses_to_change_a_version(firm_a):
    rule = create(firm_a)
    from django.db import DatabaseError

    with firm_context(firm_a.firm), pytest.raises(DatabaseError), transaction.atomic():
        ComplianceRuleVersion.objects.filter(rule=rule).update(severity=1)
