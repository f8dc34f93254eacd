"""``backtest STRATEGY --start DATE --end DATE --rebalance POLICY [--json] [--csv PATH]``.

STRATEGY is a firm's stored strategy (its id or name) with ``--firm SLUG``: its method,
universe, parameters and price frequency are used. Without ``--firm`` it is a strategy
method (``equal_weight``, ``fixed``, ``min_variance``, ``max_sharpe``, ``hrp``,
``inverse_volatility``, ``market_cap``, ``index``, ...) over ``--symbols``; method
parameters come as ``--param name=value`` (JSON values), fixed weights as
``--weights VTI=0.6,BND=0.4``. Prints the metrics (``--json``: as JSON) and
writes the daily value series (with the benchmark's, when given) as CSV.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.models import Firm
from accounts.tenancy.context import firm_context
from portfolios.engine.backtest import BacktestError, RebalancePolicy, TransactionCosts
from portfolios.engine.types import Method, StrategyError
from portfolios.models_market import PriceFrequency
from portfolios.selectors_strategy import strategy_get, strategy_get_by_name
from portfolios.services_backtest import (
    BacktestInputError,
    StrategySpec,
    backtest_strategy,
    spec_from_strategy,
)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _weights(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        symbol, _, value = part.partition("=")
        try:
            weights[symbol.strip().upper()] = float(value)
        except ValueError:
            raise CommandError(f"--weights: {part!r} is not SYMBOL=weight") from None
    return weights


def _params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            params[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[name.strip()] = value
    return params


class Command(BaseCommand):
    help = "Backtest a strategy on stored prices under a rebalancing policy."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "strategy", metavar="STRATEGY", help="A stored strategy (with --firm) or a method."
        )
        parser.add_argument("--firm", default=None, help="Slug of the strategy's firm.")
        parser.add_argument("--symbols", default="", help="Comma-separated universe.")
        parser.add_argument("--start", required=True, type=_date)
        parser.add_argument("--end", required=True, type=_date)
        parser.add_argument(
            "--rebalance",
            default="quarterly",
            help="monthly | quarterly | yearly, abs:0.05, rel:0.25, joined with + "
            "(add +on-calendar to check bands on calendar dates only)",
        )
        parser.add_argument("--reoptimise", default="monthly")
        parser.add_argument("--frequency", default=None, choices=PriceFrequency.values)
        parser.add_argument("--lookback", type=int, default=None)
        parser.add_argument("--weights", default="", help="fixed: VTI=0.6,BND=0.4")
        parser.add_argument("--param", action="append", default=[], help="name=value")
        parser.add_argument("--costs-bps", type=float, default=5.0)
        parser.add_argument("--fixed-cost", type=float, default=0.0)
        parser.add_argument("--initial", type=float, default=10_000.0)
        parser.add_argument("--benchmark", default=None, help="Symbol of a benchmark.")
        parser.add_argument("--csv", default=None, help="Where to write the value series.")
        parser.add_argument("--json", action="store_true", help="Print the metrics as JSON.")

    def _spec(self, options: dict[str, Any]) -> tuple[StrategySpec, str, str]:
        """(spec, price frequency, label) from a stored strategy or the options."""
        if options["firm"]:
            firm = Firm.objects.filter(slug=options["firm"]).first()
            if firm is None:
                raise CommandError(f"no firm {options['firm']!r}")
            name = options["strategy"]
            with firm_context(firm), transaction.atomic():
                strategy = (
                    strategy_get(strategy_id=int(name)) if name.isdigit() else None
                ) or strategy_get_by_name(name=name)
                if strategy is None:
                    raise CommandError(f"firm {firm.slug} has no strategy {name!r}")
                spec, frequency = spec_from_strategy(strategy)
            return spec, options["frequency"] or frequency, strategy.name
        methods = [m.value for m in Method]
        if options["strategy"] not in methods:
            raise CommandError(
                f"{options['strategy']!r} is not a method ({', '.join(methods)}); "
                "name a stored strategy with --firm"
            )
        symbols = tuple(s.strip().upper() for s in options["symbols"].split(",") if s.strip())
        if not symbols:
            raise CommandError("--symbols is required with a method")
        params = _params(options["param"])
        if options["weights"]:
            params["fixed_weights"] = _weights(options["weights"])
        spec = StrategySpec(options["strategy"], symbols, options["lookback"], params)
        return spec, options["frequency"] or PriceFrequency.DAILY, options["strategy"]

    def handle(self, *args: Any, **options: Any) -> None:
        spec, frequency, label = self._spec(options)
        if options["lookback"]:
            spec = dataclasses.replace(spec, lookback=options["lookback"])
        symbols = spec.symbols
        try:
            policy = RebalancePolicy.parse(options["rebalance"])
            costs = TransactionCosts(bps=options["costs_bps"], fixed=options["fixed_cost"])
            result = backtest_strategy(
                spec=spec,
                start=options["start"],
                end=options["end"],
                policy=policy,
                costs=costs,
                initial_value=options["initial"],
                frequency=frequency,
                reoptimise=options["reoptimise"],
                benchmark=options["benchmark"],
            )
        except (BacktestError, BacktestInputError, StrategyError, TypeError) as exc:
            raise CommandError(str(exc)) from exc
        csv_path = Path(
            options["csv"]
            or f"backtest-{options['strategy']}-{options['start']}-{options['end']}.csv"
        )
        frame = result.values.to_frame()
        frame["drawdown"] = result.drawdown
        if result.benchmark_values is not None:
            frame["benchmark"] = result.benchmark_values
        frame.index.name = "date"
        frame.to_csv(csv_path, date_format="%Y-%m-%d", float_format="%.6f")
        summary = {
            "strategy": label,
            "method": spec.method,
            "symbols": list(symbols),
            "rebalance": options["rebalance"],
            "costs": {"bps": costs.bps, "fixed": costs.fixed},
            **result.summary(),
            "csv": str(csv_path),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2, default=str))
            return
        metrics = result.metrics
        self.stdout.write(
            f"{label} {summary['start']} .. {summary['end']}: "
            f"CAGR {metrics.cagr:.2%}, volatility {metrics.volatility:.2%}, "
            f"Sharpe {metrics.sharpe if metrics.sharpe is None else round(metrics.sharpe, 2)}, "
            f"max drawdown {metrics.max_drawdown:.2%}, turnover {result.turnover:.2f}, "
            f"costs {result.costs_paid:.2f}, {len(result.rebalances)} rebalances"
        )
        self.stdout.write(f"value series written to {csv_path}")
