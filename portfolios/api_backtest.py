"""API of backtests: run one on stored prices and get the metrics and the value series.

A backtest reads prices and writes nothing, so every signed-in user may run one. The
strategy is either a method with its universe and parameters (no firm needed), or
``strategy_id``, a stored strategy of the firm the request acts in (another firm's id
answers 404 like a missing one), exactly like ``manage.py backtest``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from advisor.api.errors import FirmRequired
from advisor.api.serializers import ErrorResponseSerializer, StrictInputSerializer
from advisor.api.views import ApiView
from portfolios.engine.backtest import (
    CALENDARS,
    REOPTIMISE,
    BacktestError,
    RebalancePolicy,
    TransactionCosts,
)
from portfolios.engine.types import Method, StrategyError
from portfolios.models_market import PriceFrequency
from portfolios.selectors_strategy import strategy_get
from portfolios.services_backtest import (
    BacktestInputError,
    StrategySpec,
    backtest_strategy,
    spec_from_strategy,
)

MAX_SYMBOLS = 100


class BacktestInputSerializer(StrictInputSerializer):
    """A strategy (method, universe, parameters), a period and a rebalancing policy."""

    strategy = serializers.ChoiceField(
        choices=[m.value for m in Method], required=False, help_text="A method (with symbols)."
    )
    strategy_id = serializers.IntegerField(
        required=False, help_text="Or a stored strategy of your firm (its universe and method)."
    )
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=20),
        min_length=1,
        max_length=MAX_SYMBOLS,
        required=False,
    )
    start = serializers.DateField()
    end = serializers.DateField()
    rebalance = serializers.CharField(
        max_length=100,
        default="quarterly",
        help_text=f"{' | '.join(c for c in CALENDARS if c != 'none')}, abs:0.05, rel:0.25, "
        "joined with + (add +on-calendar to check bands on calendar dates only).",
    )
    reoptimise = serializers.ChoiceField(choices=list(REOPTIMISE), default="monthly")
    frequency = serializers.ChoiceField(
        choices=PriceFrequency.choices,
        required=False,
        help_text="Default: the stored strategy's, or daily.",
    )
    lookback = serializers.IntegerField(min_value=2, max_value=5000, required=False)
    weights = serializers.DictField(
        child=serializers.FloatField(), required=False, help_text="Fixed weights (fixed)."
    )
    parameters = serializers.DictField(
        required=False, help_text="Method parameters: top_n, max_weight, target_volatility, ..."
    )
    costs_bps = serializers.FloatField(min_value=0, max_value=1000, default=5.0)
    fixed_cost = serializers.FloatField(min_value=0, default=0.0)
    initial_value = serializers.FloatField(min_value=1, default=10_000.0)
    benchmark = serializers.CharField(max_length=20, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("strategy_id" in attrs) == ("strategy" in attrs):
            raise ValidationError({"strategy": ["Give either strategy (a method) or strategy_id."]})
        if "strategy" in attrs and not attrs.get("symbols"):
            raise ValidationError({"symbols": ["A method needs the symbols of its universe."]})
        if attrs["start"] >= attrs["end"]:
            raise ValidationError({"end": ["Must be after start."]})
        try:
            attrs["policy"] = RebalancePolicy.parse(attrs["rebalance"])
        except BacktestError as exc:
            raise ValidationError({"rebalance": [str(exc)]}) from exc
        return attrs


class MetricsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    start_value = serializers.FloatField()
    end_value = serializers.FloatField()
    total_return = serializers.FloatField()
    years = serializers.FloatField()
    periods_per_year = serializers.FloatField()
    cagr = serializers.FloatField()
    volatility = serializers.FloatField(help_text="Annualised.")
    sharpe = serializers.FloatField(allow_null=True)
    sortino = serializers.FloatField(allow_null=True)
    max_drawdown = serializers.FloatField(help_text="A positive fraction: 0.2 is -20 %.")
    calmar = serializers.FloatField(allow_null=True)


class RebalanceEventSerializer(serializers.Serializer):  # type: ignore[type-arg]
    date = serializers.DateField()
    reason = serializers.CharField()
    cost = serializers.FloatField()
    turnover = serializers.FloatField()
    target = serializers.DictField(child=serializers.FloatField())


class SeriesPointSerializer(serializers.Serializer):  # type: ignore[type-arg]
    date = serializers.DateField()
    value = serializers.FloatField()
    drawdown = serializers.FloatField()
    benchmark = serializers.FloatField(required=False)


class BacktestResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField()
    end = serializers.DateField()
    metrics = MetricsSerializer()
    turnover = serializers.FloatField()
    annual_turnover = serializers.FloatField()
    costs_paid = serializers.FloatField()
    rebalances = serializers.IntegerField(help_text="Number of rebalances, the first included.")
    benchmark = MetricsSerializer(allow_null=True)
    rebalance_events = RebalanceEventSerializer(many=True)
    series = SeriesPointSerializer(many=True)


class BacktestRunView(ApiView):
    """Run a backtest (walk-forward, no look-ahead) and return metrics and series."""

    @extend_schema(
        operation_id="backtest_run",
        tags=["backtests"],
        request=BacktestInputSerializer,
        responses={
            200: BacktestResultSerializer,
            404: OpenApiResponse(
                ErrorResponseSerializer,
                description="strategy_id names no strategy of your firm (another firm's "
                "answers alike).",
            ),
        },
        description="Metrics (CAGR, volatility, Sharpe, Sortino, max drawdown, Calmar), "
        "turnover, costs, the benchmark's metrics, every rebalance with its reason, and "
        "the value series. Unknown assets, too little history or infeasible parameters "
        "answer 400 naming them.",
    )
    def post(self, request: Request) -> Response:
        data = BacktestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        spec, frequency = self._spec(values)
        try:
            result = backtest_strategy(
                spec=spec,
                start=values["start"],
                end=values["end"],
                policy=values["policy"],
                costs=TransactionCosts(bps=values["costs_bps"], fixed=values["fixed_cost"]),
                initial_value=values["initial_value"],
                frequency=values.get("frequency") or frequency,
                reoptimise=values["reoptimise"],
                benchmark=values.get("benchmark"),
            )
        except (BacktestError, BacktestInputError, StrategyError, TypeError) as exc:
            raise ValidationError({"strategy": [str(exc)]}) from exc
        series = []
        for day, value in result.values.items():
            point: dict[str, Any] = {
                "date": day.date().isoformat(),
                "value": round(float(value), 6),
                "drawdown": round(float(result.drawdown.loc[day]), 8),
            }
            if result.benchmark_values is not None:
                point["benchmark"] = round(float(result.benchmark_values.loc[day]), 6)
            series.append(point)
        body = {
            **result.summary(),
            "rebalance_events": [
                {
                    "date": r.date.date().isoformat(),
                    "reason": r.reason,
                    "cost": r.cost,
                    "turnover": r.turnover,
                    "target": r.target,
                }
                for r in result.rebalances
            ],
            "series": series,
        }
        return Response(body)

    def _spec(self, values: dict[str, Any]) -> tuple[StrategySpec, str]:
        if "strategy_id" in values:
            if self.firm is None:
                raise FirmRequired()
            strategy = strategy_get(strategy_id=values["strategy_id"])
            if strategy is None:
                raise NotFound()
            spec, frequency = spec_from_strategy(strategy)
            if values.get("lookback"):
                spec = dataclasses.replace(spec, lookback=values["lookback"])
            return spec, frequency
        parameters = dict(values.get("parameters", {}))
        if "weights" in values:
            parameters["fixed_weights"] = {k.upper(): v for k, v in values["weights"].items()}
        spec = StrategySpec(
            values["strategy"],
            tuple(s.upper() for s in values["symbols"]),
            values.get("lookback"),
            parameters,
        )
        return spec, PriceFrequency.DAILY


__all__ = ["BacktestRunView"]
