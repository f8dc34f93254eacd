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
