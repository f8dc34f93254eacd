"""The ``rebalance`` command: a progress bar, JSON counts, preview and approve."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.tenancy.context import firm_context
from portfolios.models import Holding, Order, RebalanceRun

from .rebalance_factories import AS_OF, asset_make, portfolio_make, strategy_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(firm_a):
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    for _ in range(3):
        portfolio_make(firm_a.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
    return firm_a


def _call(*args: str) -> tuple[Any, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rebalance", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_preview_prints_counts_and_a_progress_bar(book):
    summary, err = _call(
        "--firm", "alpha", "--preview", "--json", "--chunk-size", "2", "--as-of", str(AS_OF)
    )
    assert summary["status"] == "preview"
    assert summary["portfolios"] == 3
    assert summary["triggered"] == 3
    assert summary["chunks"] == 2
    assert "3/3" in err
    assert "[" + "#" * 30 + "]" in err
    with firm_context(book.firm):
        assert Order.objects.filter(run_id=summary["run"]).count() >= 6


def test_approve_executes_the_run(book, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        summary, _ = _call("--firm", "alpha", "--approve", "--json", "--as-of", str(AS_OF))
    with firm_context(book.firm):
        run = RebalanceRun.objects.get(pk=summary["run"])
        assert run.status == "done"
        assert not Holding.objects.filter(quantity=40).exists()


def test_bad_arguments_name_what_is_wrong(book):
    with pytest.raises(CommandError, match="--firm"):
        _call("--firm", "nope")
    with pytest.raises(CommandError, match="--approve"):
        _call("--firm", "alpha", "--preview", "--approve")
    with pytest.raises(CommandError, match="portfolios"):
        _call("--firm", "alpha", "--portfolio", "999999")
