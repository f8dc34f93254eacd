import pytest
from django.db import connection, transaction

from accounts.models import Membership
from accounts.tenancy import NoFirmSelected, firm_context
from compliance.models import AuditEvent
from compliance.services import audit_record


@pytest.mark.django_db
def test_scoped_manager_raises_without_firm(firm_a):
    with pytest.raises(NoFirmSelected):
        list(Membership.objects.all())


@pytest.mark.django_db
def test_firm_sees_only_its_rows(firm_a, firm_b):
    with firm_context(firm_a.firm):
        audit_record(action="test.one")
        assert Membership.objects.count() == 4
    with firm_context(firm_b.firm):
        assert AuditEvent.objects.count() == 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM compliance_auditevent")
            assert cursor.fetchone() == (0,)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_membership")
        assert cursor.fetchone() == (0,)


TRANSACTIONAL = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


@TRANSACTIONAL
@pytest.mark.parametrize(
    "sql",
    [
        'SELECT count(*) FROM "accounts_membership"',
        "SELECT count(*) FROM accounts_membership",
        "select * from ACCOUNTS_MEMBERSHIP m",
        "SELECT 1 FROM public.compliance_auditevent",
    ],
)
def test_firm_table_outside_a_transaction_is_refused(firm_a, sql):
    from accounts.tenancy import TenancyError

    assert not connection.in_atomic_block
    with (
        firm_context(firm_a.firm),
        pytest.raises(TenancyError, match="outside a transaction"),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


@TRANSACTIONAL
def test_other_tables_outside_a_transaction_are_allowed(firm_a):
    with firm_context(firm_a.firm), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_firm WHERE slug = 'accounts_membership_x'")
        assert cursor.fetchone() == (0,)
