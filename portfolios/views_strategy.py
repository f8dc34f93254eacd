"""The strategy pages: the firm's strategy library and one strategy with its charts.

Thin views, like the API's: staff roles (advisors, firm admins, compliance) read,
investors are refused (see :mod:`portfolios.api_strategy`); another firm's strategy
is a 404 exactly like a missing one. Charts are SVG rendered on the server, each
downloadable as SVG and its data as CSV.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from accounts.models import Membership, Role
from portfolios.api_strategy import frontier_of
from portfolios.charts import frontier_svg, lines_svg, rows_csv, weights_svg
from portfolios.models_strategy import Strategy, StrategyVersion
from portfolios.selectors_strategy import (
    strategy_get,
    strategy_list,
    strategy_version_current,
    strategy_version_get,
    strategy_version_list,
)

READERS = frozenset({Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE})
MAX_INT = 2**31 - 1


def _require_reader(request: HttpRequest) -> None:
    membership = getattr(request, "membership", None)
    if not isinstance(membership, Membership) or membership.role not in READERS:
        raise PermissionDenied


def _strategy(pk: int) -> Strategy:
    strategy = strategy_get(strategy_id=pk) if pk <= 2**63 - 1 else None
    if strategy is None:
        raise Http404("No such strategy.")
    return strategy


def _version(request: HttpRequest, strategy: Strategy) -> StrategyVersion | None:
    wanted = request.GET.get("version", "")
    if wanted.isdigit() and int(wanted) <= MAX_INT:
        version = strategy_version_get(strategy=strategy, number=int(wanted))
        if version is None:
            raise Http404("No such version.")
        return version
    return strategy_version_current(strategy=strategy)


def _weights(version: StrategyVersion) -> list[tuple[str, Decimal]]:
    return list(version.weights_decimal().items())


def _download(content: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
def strategy_list_page(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    return render(request, "portfolios/strategy_list.html", {"strategies": strategy_list()})


@login_required
@require_GET
def strategy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reader(request)
    strategy = _strategy(pk)
    version = _version(request, strategy)
    context: dict[str, object] = {
        "strategy": strategy,
        "version": version,
        "versions": strategy_version_list(strategy=strategy)[:20],
    }
    if version is not None:
        weights = _weights(version)
        context["weights"] = [(s, w, w * 100) for s, w in weights]
        context["weights_svg"] = weights_svg(weights, title=f"{strategy.name} v{version.number}")
        points, error = frontier_of(version)
        context["frontier_error"] = error
        if points:
            context["frontier_svg"] = frontier_svg(
                [(p["volatility"], p["expected_return"]) for p in points],
                (float(version.volatility), float(version.expected_return)),
                title="Efficient frontier and this version",
            )
    return render(request, "portfolios/strategy_detail.html", context)


def _name(strategy: Strategy, version: StrategyVersion, what: str, ext: str) -> str:
    return f"{slugify(strategy.name) or 'strategy'}-v{version.number}-{what}.{ext}"


@login_required
@require_GET
def strategy_weights_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    _require_reader(request)
    strategy = _strategy(pk)
    version = _version(request, strategy)
    if version is None:
        raise Http404("No version yet.")
    weights = _weights(version)
    if fmt == "csv":
        body = rows_csv(["symbol", "weight"], [(s, str(w)) for s, w in weights])
        return _download(body, "text/csv", _name(strategy, version, "weights", "csv"))
    svg = weights_svg(weights, title=f"{strategy.name} v{version.number}")
    return _download(svg, "image/svg+xml", _name(strategy, version, "weights", "svg"))


@login_required
@require_GET
def strategy_frontier_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    _require_reader(request)
    strategy = _strategy(pk)
    version = _version(request, strategy)
    if version is None:
        raise Http404("No version yet.")
    points, _ = frontier_of(version)
    if fmt == "csv":
        rows = [(p["volatility"], p["expected_return"], p["sharpe_ratio"], "") for p in points]
        rows.append(
            (
                float(version.volatility),
                float(version.expected_return),
                float(version.sharpe_ratio),
                "chosen",
            )
        )
        body = rows_csv(["volatility", "expected_return", "sharpe_ratio", "point"], rows)
        return _download(body, "text/csv", _name(strategy, version, "frontier", "csv"))
    svg = frontier_svg(
        [(p["volatility"], p["expected_return"]) for p in points],
        (float(version.volatility), float(version.expected_return)),
        title="Efficient frontier and this version",
    )
    return _download(svg, "image/svg+xml", _name(strategy, version, "frontier", "svg"))


# --- backtest ----------------------------------------------------------------------

BACKTEST_DEFAULT_BPS = 5.0


def _backtest(request: HttpRequest, strategy: Strategy) -> tuple[dict[str, object], Any]:
    """Run the strategy's walk-forward backtest from the page's query (or defaults)."""
    import datetime as dt

    from portfolios.engine.backtest import BacktestError, RebalancePolicy, TransactionCosts
    from portfolios.engine.types import StrategyError
    from portfolios.selectors_market import price_matrix
    from portfolios.services_backtest import (
        BacktestInputError,
        backtest_strategy,
        spec_from_strategy,
    )

    spec, frequency = spec_from_strategy(strategy)
    form: dict[str, object] = {
        "rebalance": request.GET.get("rebalance", "quarterly")[:100],
        "costs_bps": request.GET.get("costs_bps", str(BACKTEST_DEFAULT_BPS))[:20],
        "start": request.GET.get("start", "")[:10],
        "end": request.GET.get("end", "")[:10],
    }
    try:
        matrix = price_matrix(symbols=list(spec.symbols), frequency=frequency).dropna()
        lookback = spec.lookback or (36 if frequency == "monthly" else 252)
        if len(matrix) < lookback + 3:
            raise BacktestInputError(
                f"too little price history: {len(matrix)} dates with a price for every "
                f"asset, the lookback needs {lookback + 1} before the start"
            )
        start = (
            dt.date.fromisoformat(str(form["start"]))
            if form["start"]
            else matrix.index[lookback].date()
        )
        end = dt.date.fromisoformat(str(form["end"])) if form["end"] else matrix.index[-1].date()
        form["start"], form["end"] = start.isoformat(), end.isoformat()
        bps = float(str(form["costs_bps"]))
        if not 0 <= bps <= 1000:
            raise BacktestInputError("costs must be between 0 and 1000 basis points")
        result = backtest_strategy(
            spec=spec,
            start=start,
            end=end,
            policy=RebalancePolicy.parse(str(form["rebalance"])),
            costs=TransactionCosts(bps=bps),
            frequency=frequency,
            reoptimise="quarterly",
        )
    except (BacktestError, BacktestInputError, StrategyError, KeyError, ValueError) as exc:
        form["error"] = str(exc.args[0]) if exc.args else str(exc)
        return form, None
    return form, result


def _dates(index: Any) -> list[str]:
    return [d.date().isoformat() for d in index]


BACKTEST_CHARTS = ("value", "drawdown", "weights")


def _backtest_charts(result: Any) -> dict[str, str]:
    days = _dates(result.values.index)
    weights = result.weights
    return {
        "value_svg": lines_svg(
            [("value", list(zip(days, map(float, result.values), strict=True)))],
            title="Value",
        ),
        "drawdown_svg": lines_svg(
            [("drawdown", list(zip(days, (-float(x) for x in result.drawdown), strict=True)))],
            title="Drawdown",
            percent=True,
        ),
        "weights_svg": lines_svg(
            [
                (str(col), list(zip(_dates(weights.index), map(float, weights[col]), strict=True)))
                for col in weights.columns
            ],
            title="Weights over time",
            percent=True,
        ),
    }


@login_required
@require_GET
def strategy_backtest_svg(request: HttpRequest, pk: int, chart: str) -> HttpResponse:
    """One backtest chart as a standalone SVG file."""
    _require_reader(request)
    strategy = _strategy(pk)
    if chart not in BACKTEST_CHARTS:
        raise Http404("No such chart.")
    form, result = _backtest(request, strategy)
    if result is None:
        return HttpResponse(str(form["error"]), status=400, content_type="text/plain")
    svg = _backtest_charts(result)[f"{chart}_svg"]
    filename = f"{slugify(strategy.name) or 'strategy'}-backtest-{chart}.svg"
    return _download(svg, "image/svg+xml", filename)


@login_required
@require_GET
def strategy_backtest(request: HttpRequest, pk: int) -> HttpResponse:
    """The strategy's backtest: value and drawdown curves, weights over time, metrics."""
    _require_reader(request)
    strategy = _strategy(pk)
    form, result = _backtest(request, strategy)
    context: dict[str, object] = {"strategy": strategy, "form": form, "result": result}
    if result is not None:
        context["summary"] = result.summary()
        context["query"] = "?" + urlencode(
            {k: form[k] for k in ("start", "end", "rebalance", "costs_bps")}
        )
        context.update(_backtest_charts(result))
    return render(request, "portfolios/strategy_backtest.html", context)


@login_required
@require_GET
def strategy_backtest_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """The backtest's daily series: value, drawdown and each asset's weight."""
    _require_reader(request)
    strategy = _strategy(pk)
    form, result = _backtest(request, strategy)
    if result is None:
        return HttpResponse(str(form["error"]), status=400, content_type="text/plain")
    columns = [str(c) for c in result.weights.columns]
    weights = result.weights.reindex(result.values.index)
    rows = [
        (
            day.date().isoformat(),
            round(float(result.values.loc[day]), 6),
            round(float(result.drawdown.loc[day]), 8),
            *(round(float(weights.loc[day, c]), 8) for c in result.weights.columns),
        )
        for day in result.values.index
    ]
    body = rows_csv(["date", "value", "drawdown", *columns], rows)
    filename = f"{slugify(strategy.name) or 'strategy'}-backtest.csv"
    return _download(body, "text/csv", filename)
