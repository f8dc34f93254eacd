# The portfolios app starts empty; its models arrive with the client-book and
# market-data migrations that follow.
from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations: list[migrations.operations.base.Operation] = []
