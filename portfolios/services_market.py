"""State changes of market data: assets, market caps, price imports and price reviews.

Market data is platform-wide: these services need no firm. Each records who did what
in its own rows (:class:`ImportBatch`, :class:`PriceReview`); when a firm is set (a
firm member acting through the API), the firm's audit chain gets an event too.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from accounts.models import User
from accounts.tenancy.context import current_firm
from compliance.services import audit_record
from portfolios.engine.prices_io import (
    WIDE,
    OutlierRule,
    ParsedFile,
    PriceFileError,
    PriceRow,
    SkippedRow,
    content_sha256,
    find_outliers,
    parse_price_file,
)
from portfolios.models_market import (
    Asset,
    AssetClass,
    ImportBatch,
    MarketCapObservation,
    Price,
    PriceReview,
    PriceStatus,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ASSETS_FILE = FIXTURES / "assets.csv"
MARKET_CAPS_FILE = FIXTURES / "market_caps.csv"
MARKET_FIXTURES = FIXTURES / "market"

WIDE_FORMAT = WIDE.name

#: progress(file name, files done, files in total)
Progress = Callable[[str, int, int], None]


class MarketDataError(ValueError):
    """Bad market-data input; ``file`` and ``line`` when it came from a file."""

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        self.file = file
        self.line = line
        self.reason = message
        super().__init__(f"{file}, line {line}: {message}" if file else message)


@dataclass(frozen=True)
class PriceSource:
    """One file to import: its name (for messages and the symbol) and its bytes."""

    name: str
    data: bytes

    @classmethod
    def from_path(cls, path: Path | str) -> PriceSource:
        path = Path(path)
        return cls(path.name, path.read_bytes())


def outlier_rule() -> OutlierRule:
    """The rule from settings ``MARKET_OUTLIER_SIGMAS`` / ``_WINDOW`` / ``_MIN_MOVE``."""
    default = OutlierRule()
    return OutlierRule(
        sigmas=float(getattr(settings, "MARKET_OUTLIER_SIGMAS", default.sigmas)),
        window=int(getattr(settings, "MARKET_OUTLIER_WINDOW", default.window)),
        min_periods=int(getattr(settings, "MARKET_OUTLIER_MIN_PERIODS", default.min_periods)),
        min_move=float(getattr(settings, "MARKET_OUTLIER_MIN_MOVE", default.min_move)),
    )


# --- assets and market caps ----------------------------------------------------------------


def _decimal(value: str, what: str, file: str, line: int) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise MarketDataError(f"{what} {value!r} is not a number", file=file, line=line) from None
    if not number.is_finite() or number <= 0:
        raise MarketDataError(f"{what} {value!r} must be positive", file=file, line=line)
    return number


ASSET_COLUMNS = (
    "symbol",
    "name",
    "asset_class",
    "sector",
    "currency",
    "fractional",
    "quantity_step",
    "minimum_lot",
    "tags",
)


def assets_seed(*, path: Path = ASSETS_FILE) -> dict[str, int]:
    """Create or update the assets listed in ``path`` (idempotent). Returns counts."""
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != ASSET_COLUMNS:
        raise MarketDataError(f"header must be {','.join(ASSET_COLUMNS)}", file=path.name, line=1)
    wanted: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(reader, start=2):
        symbol = row["symbol"].strip().upper()
        if row["asset_class"] not in AssetClass.values:
            raise MarketDataError(
                f"asset class {row['asset_class']!r} is not one of {', '.join(AssetClass.values)}",
                file=path.name,
                line=line,
            )
        if symbol in wanted:
            raise MarketDataError(f"symbol {symbol} listed twice", file=path.name, line=line)
        fractional = row["fractional"].strip().lower() in {"1", "true", "yes"}
        step = _decimal(row["quantity_step"], "quantity_step", path.name, line)
        if not fractional and step < 1:
            raise MarketDataError(
                "a whole-unit asset needs a quantity step of at least 1", file=path.name, line=line
            )
        wanted[symbol] = {
            "name": row["name"].strip(),
            "asset_class": row["asset_class"],
            "sector": row["sector"].strip(),
            "currency": row["currency"].strip() or "USD",
            "fractional": fractional,
            "quantity_step": step,
            "minimum_lot": _decimal(row["minimum_lot"], "minimum_lot", path.name, line),
            "tags": sorted(t.strip() for t in row["tags"].split(";") if t.strip()),
        }
    counts = {"created": 0, "updated": 0}
    with transaction.atomic():
        existing = {a.symbol: a for a in Asset.objects.filter(symbol__in=wanted)}
        new = [Asset(symbol=s, **v) for s, v in wanted.items() if s not in existing]
        Asset.objects.bulk_create(new)
        counts["created"] = len(new)
        changed = []
        for symbol, asset in existing.items():
            values = wanted[symbol]
            if any(getattr(asset, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(asset, key, value)
                changed.append(asset)
        if changed:
            Asset.objects.bulk_update(changed, [c for c in ASSET_COLUMNS if c != "symbol"])
        counts["updated"] = len(changed)
    return counts


MARKET_CAP_COLUMNS = ("symbol", "date", "market_cap_usd", "source")


def market_caps_seed(*, path: Path = MARKET_CAPS_FILE) -> int:
    """Load approximate market caps (``#`` lines are comments); returns rows created.

    Existing (asset, date) observations are updated in place. Unknown symbols are refused.
    """
    lines = [
        (number, text)
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if text.strip() and not text.lstrip().startswith("#")
    ]
    if not lines or tuple(c.strip() for c in lines[0][1].split(",")) != MARKET_CAP_COLUMNS:
        raise MarketDataError(
            f"header must be {','.join(MARKET_CAP_COLUMNS)}", file=path.name, line=1
        )
    rows: list[tuple[str, dt.date, Decimal, str, int]] = []
    for number, text in lines[1:]:
        cells = next(csv.reader([text]))
        if len(cells) != len(MARKET_CAP_COLUMNS):
            raise MarketDataError("wrong number of columns", file=path.name, line=number)
        try:
            day = dt.date.fromisoformat(cells[1].strip())
        except ValueError:
            raise MarketDataError(f"bad date {cells[1]!r}", file=path.name, line=number) from None
        value = _decimal(cells[2], "market cap", path.name, number)
        rows.append((cells[0].strip().upper(), day, value, cells[3].strip(), number))
    assets = {a.symbol: a for a in Asset.objects.filter(symbol__in={r[0] for r in rows})}
    created = 0
    with transaction.atomic():
        for symbol, day, value, source, number in rows:
            asset = assets.get(symbol)
            if asset is None:
                raise MarketDataError(f"unknown asset {symbol!r}", file=path.name, line=number)
            _, was_created = MarketCapObservation.objects.update_or_create(
                asset=asset,
                date=day,
                defaults={"value": value, "source": source, "approximate": True},
            )
            created += int(was_created)
    return created


# --- price import --------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one series of one file will do to the stored prices."""

    file: str
    asset: Asset
    frequency: str
    create: list[PriceRow]
    replace: list[tuple[int, PriceRow]]  # (stored price id, new row)
    unchanged: int


def _parse_all(sources: Sequence[PriceSource], progress: Progress | None) -> list[ParsedFile]:
    parsed: list[ParsedFile] = []
    for position, source in enumerate(sources, start=1):
        parsed.append(parse_price_file(source.name, source.data))
        if progress:
            progress(source.name, position, len(sources))
    parsed = _one_source_per_series(parsed)
    seen: dict[tuple[str, str, dt.date], tuple[str, int]] = {}
    for result in parsed:
        for series in result.series:
            for row in series.rows:
                key = (series.symbol, series.frequency, row.date)
                if key in seen:
                    first_file, first_line = seen[key]
                    raise PriceFileError(
                        result.name,
                        row.line,
                        f"{series.symbol} {row.date.isoformat()} is also in {first_file}, "
                        f"line {first_line}",
                    )
                seen[key] = (result.name, row.line)
    return parsed


def _one_source_per_series(parsed: list[ParsedFile]) -> list[ParsedFile]:
    """A wide file's column is left out when a single-asset file of the same import
    carries that symbol: two sources (with their own adjustment bases) in one series
    would put a false jump where they meet. ``../shared/data`` has AAPL, JNJ, JPM and
    MSFT both in ``stocks_daily/`` and in ``sp500_daily.csv``."""
    single = {
        (s.symbol, s.frequency): f.name for f in parsed if f.format != WIDE_FORMAT for s in f.series
    }
    out = []
    for result in parsed:
        if result.format != WIDE_FORMAT:
            out.append(result)
            continue
        kept, skipped = [], list(result.skipped)
        for series in result.series:
            other = single.get((series.symbol, series.frequency))
            if other is None:
                kept.append(series)
            else:
                skipped.append(
                    SkippedRow(
                        1,
                        f"column {series.symbol} left out ({len(series.rows)} prices): {other} "
                        f"in this import carries {series.symbol} (one source per series)",
                    )
                )
        out.append(dataclasses.replace(result, series=tuple(kept), skipped=tuple(skipped)))
    return out


def _plan(parsed: list[ParsedFile], *, replace: bool) -> list[_Plan]:
    symbols = {s.symbol for f in parsed for s in f.series}
    assets = {a.symbol: a for a in Asset.objects.filter(symbol__in=symbols)}
    plans: list[_Plan] = []
    for result in parsed:
        for series in result.series:
            if not series.rows:
                continue
            asset = assets.get(series.symbol)
            if asset is None:
                raise MarketDataError(
                    f"unknown asset {series.symbol!r}: add it to the asset list first "
                    "(portfolios/fixtures/assets.csv and `manage.py seed_assets`, or the admin)",
                    file=result.name,
                    line=series.rows[0].line if result.format != "wide_daily" else 1,
                )
            stored = {
                day: (pk, close)
                for pk, day, close in Price.objects.filter(
                    asset=asset,
                    frequency=series.frequency,
                    date__gte=series.rows[0].date,
                    date__lte=series.rows[-1].date,
                ).values_list("pk", "date", "close")
            }
            plan = _Plan(result.name, asset, series.frequency, [], [], 0)
            for row in series.rows:
                old = stored.get(row.date)
                if old is None:
                    plan.create.append(row)
                elif old[1] == row.close:
                    plan.unchanged += 1
                elif replace:
                    plan.replace.append((old[0], row))
                else:
                    raise MarketDataError(
                        f"{series.symbol} {row.date.isoformat()}: close {row.close.normalize()} "
                        f"differs from the stored {old[1].normalize()}; import with replace "
                        "to overwrite stored prices",
                        file=result.name,
                        line=row.line,
                    )
            plans.append(plan)
    return plans


def _held(plan: _Plan, rule: OutlierRule) -> dict[dt.date, str]:
    """Dates of the plan's new closes that the outlier rule holds, with the reason."""
    new_rows = plan.create + [row for _, row in plan.replace]
    if not new_rows:
        return {}
    new_rows.sort(key=lambda r: r.date)
    first, last = new_rows[0].date, new_rows[-1].date
    ok = Price.objects.filter(asset=plan.asset, frequency=plan.frequency, status=PriceStatus.OK)
    history = [
        float(c)
        for c in reversed(
            ok.filter(date__lt=first)
            .order_by("-date")
            .values_list("close", flat=True)[: rule.window + 1]
        )
    ]
    replaced = {row.date for _, row in plan.replace}
    between: dict[dt.date, tuple[float, bool]] = {
        day: (float(close), False)
        for day, close in ok.filter(date__gte=first, date__lte=last).values_list("date", "close")
        if day not in replaced
    }
    for row in new_rows:
        between[row.date] = (float(row.close), True)
    days = sorted(between)
    found = find_outliers(history, [between[d][0] for d in days], rule)
    return {days[o.index]: o.reason for o in found if between[days[o.index]][1]}


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_prices(lines: list[str]) -> None:
    """COPY text lines into the price table (platform data: no row-level security)."""
    columns = "asset_id, date, frequency, close, volume, status, status_reason, batch_id"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY portfolios_price ({columns}) FROM STDIN") as copy:
            chunk = 5000
            for start in range(0, len(lines), chunk):
                copy.write("".join(lines[start : start + chunk]))


def _copy_line(
    asset_id: int, row: PriceRow, frequency: str, status: str, reason: str, batch_id: int
) -> str:
    volume = "\\N" if row.volume is None else str(row.volume)
    return (
        f"{asset_id}\t{row.date.isoformat()}\t{frequency}\t{row.close:f}\t{volume}\t"
        f"{status}\t{reason.translate(_COPY_ESCAPES)}\t{batch_id}\n"
    )


def prices_import(
    *,
    sources: Sequence[PriceSource] | None = None,
    paths: Sequence[Path | str] | None = None,
    actor: User | None,
    actor_label: str = "",
    source: str = ImportBatch.Source.COMMAND,
    replace: bool = False,
    rule: OutlierRule | None = None,
    progress: Progress | None = None,
) -> ImportBatch:
    """Import price files, all or nothing, and return the :class:`ImportBatch`.

    Every file is parsed and checked before anything is written; a malformed file
    raises :class:`PriceFileError` (file and line), a conflict with stored prices or an
    unknown asset :class:`MarketDataError`, and the database is left as it was. Rows
    equal to stored ones are counted unchanged, so importing a file twice is a no-op;
    different closes for stored dates are refused unless ``replace``. New prices whose
    move breaks the outlier rule are stored ``held_for_review`` with the reason.
    """
    items = list(sources or []) + [PriceSource.from_path(p) for p in paths or []]
    if not items:
        raise MarketDataError("no files to import")
    rule = rule or outlier_rule()
    label = actor_label or (actor.get_username() if actor else "system")
    parsed = _parse_all(items, progress)
    with transaction.atomic():
        plans = _plan(parsed, replace=replace)
        batch = ImportBatch.objects.create(actor=actor, actor_label=label, source=source)
        created = replaced = held = 0
        copy_lines: list[str] = []
        updates: list[Price] = []
        batch_id = batch.pk
        for plan in plans:
            holds = _held(plan, rule)
            held += len(holds)
            asset_id = plan.asset.pk
            for row in plan.create:
                reason = holds.get(row.date, "")
                status = PriceStatus.HELD if reason else PriceStatus.OK
                copy_lines.append(
                    _copy_line(asset_id, row, plan.frequency, status, reason, batch_id)
                )
            for pk, row in plan.replace:
                reason = holds.get(row.date, "")
                updates.append(
                    Price(
                        pk=pk,
                        close=row.close,
                        volume=row.volume,
                        status=PriceStatus.HELD if reason else PriceStatus.OK,
                        status_reason=reason,
                        batch=batch,
                    )
                )
            created += len(plan.create)
            replaced += len(plan.replace)
        if copy_lines:
            _copy_prices(copy_lines)
        if updates:
            Price.objects.bulk_update(
                updates, ["close", "volume", "status", "status_reason", "batch"], batch_size=2000
            )
        batch.files = [
            {
                "name": f.name,
                "format": f.format,
                "sha256": f.content_hash,
                "rows": f.row_count,
                "symbols": [s.symbol for s in f.series],
                "skipped": [{"line": s.line, "reason": s.reason} for s in f.skipped],
            }
            for f in parsed
        ]
        batch.rows_created = created
        batch.rows_replaced = replaced
        batch.rows_unchanged = sum(p.unchanged for p in plans)
        batch.rows_held = held
        batch.rows_skipped = sum(len(f.skipped) for f in parsed)
        batch.save()
        if current_firm() is not None:
            audit_record(
                action="market.prices_imported",
                actor=actor,
                actor_label=actor_label,
                object_type="import_batch",
                object_id=batch.pk,
                payload=_batch_summary(batch),
            )
    return batch


def _batch_summary(batch: ImportBatch) -> dict[str, Any]:
    return {
        "files": [{"name": f["name"], "sha256": f["sha256"]} for f in batch.files],
        "created": batch.rows_created,
        "replaced": batch.rows_replaced,
        "unchanged": batch.rows_unchanged,
        "held": batch.rows_held,
        "skipped": batch.rows_skipped,
    }


def price_review(*, price: Price, decision: str, note: str, actor: User | None) -> Price:
    """Release (use from now on) or reject a held price, with a note; recorded for ever."""
    if decision not in PriceReview.Decision.values:
        raise MarketDataError(f"decision must be one of {', '.join(PriceReview.Decision.values)}")
    if not note.strip():
        raise MarketDataError("a note saying why is required")
    with transaction.atomic():
        locked = Price.objects.select_for_update().get(pk=price.pk)
        if locked.status != PriceStatus.HELD:
            raise MarketDataError(
                f"price {locked.pk} is {locked.status}, not held for review: nothing to decide"
            )
        previous_reason = locked.status_reason
        if decision == PriceReview.Decision.RELEASED:
            locked.status = PriceStatus.OK
            locked.status_reason = ""
        else:
            locked.status = PriceStatus.REJECTED
            locked.status_reason = f"rejected: {note.strip()} (held because: {previous_reason})"
        locked.save(update_fields=["status", "status_reason"])
        label = actor.get_username() if actor else "system"
        PriceReview.objects.create(
            price=locked, decision=decision, note=note.strip(), actor=actor, actor_label=label
        )
        if current_firm() is not None:
            audit_record(
                action=f"market.price_{decision}",
                actor=actor,
                object_type="price",
                object_id=locked.pk,
                payload={
                    "symbol": locked.asset.symbol,
                    "date": locked.date.isoformat(),
                    "close": str(locked.close),
                    "held_because": previous_reason,
                    "note": note.strip(),
                },
            )
    return locked


# --- demo ----------------------------------------------------------------------------------


def market_fixture_paths() -> list[Path]:
    return sorted(MARKET_FIXTURES.rglob("*.csv"))


def market_demo_seed() -> dict[str, int]:
    """Assets, approximate market caps and the fixture prices; idempotent."""
    counts: dict[str, int] = {}
    assets = assets_seed()
    counts["assets"] = assets["created"]
    counts["market caps"] = market_caps_seed()
    batch_needed = _fixture_prices_missing()
    if batch_needed:
        batch = prices_import(
            paths=market_fixture_paths(),
            actor=None,
            actor_label="seed_demo",
            source=ImportBatch.Source.SEED,
        )
        counts["prices"] = batch.rows_created
    return counts


def _fixture_prices_missing() -> bool:
    """Whether some fixture file was never imported (by its content hash)."""
    wanted = {content_sha256(p.read_bytes()) for p in market_fixture_paths()}
    done: set[str] = set()
    for files in ImportBatch.objects.values_list("files", flat=True):
        done |= {f.get("sha256", "") for f in files}
    return not wanted <= done
