"""Does a questionnaire measure one thing? Cronbach's alpha and item-total correlations.

Pure numpy: a matrix of item scores, one row per respondent, one column per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_RESPONSES = 10  # below this the statistics are not shown


@dataclass(frozen=True)
class ItemStatistic:
    item: str
    mean: float
    corrected_item_total: float | None  # with the rest of the scale (item excluded)
    alpha_if_deleted: float | None


@dataclass(frozen=True)
class ScaleReport:
    respondents: int
    items: int
    alpha: float | None
    item_statistics: tuple[ItemStatistic, ...]


def _matrix(scores: Sequence[Sequence[float]] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("scores must be a 2-D matrix: respondents x items")
    return matrix


def cronbach_alpha(scores: Sequence[Sequence[float]] | npt.NDArray[np.float64]) -> float | None:
    """alpha = k/(k-1) * (1 - sum of item variances / variance of totals), sample variances.

    None when it is undefined: fewer than two items or two respondents, or totals
    without variance.
    """
    matrix = _matrix(scores)
    respondents, k = matrix.shape
    if k < 2 or respondents < 2:
        return None
    item_variances = matrix.var(axis=0, ddof=1)
    total_variance = matrix.sum(axis=1).var(ddof=1)
    if total_variance == 0:
        return None
    return float(k / (k - 1) * (1 - item_variances.sum() / total_variance))


def _correlation(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float | None:
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def scale_report(
    scores: Sequence[Sequence[float]] | npt.NDArray[np.float64], items: Sequence[str]
) -> ScaleReport:
    matrix = _matrix(scores)
    respondents, k = matrix.shape
    if k != len(items):
        raise ValueError(f"{len(items)} item names for {k} columns")
    totals = matrix.sum(axis=1)
    statistics = []
    for column, name in enumerate(items):
        item = matrix[:, column]
        rest = totals - item
        others = np.delete(matrix, column, axis=1)
        statistics.append(
            ItemStatistic(
                item=name,
                mean=float(item.mean()) if respondents else 0.0,
                corrected_item_total=_correlation(item, rest) if respondents > 1 else None,
                alpha_if_deleted=cronbach_alpha(others),
            )
        )
    return ScaleReport(
        respondents=respondents,
        items=k,
        alpha=cronbach_alpha(matrix),
        item_statistics=tuple(statistics),
    )
