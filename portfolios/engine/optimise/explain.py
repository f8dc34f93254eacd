"""A plain-language explanation of each strategy method, for clients."""

from __future__ import annotations

from portfolios.engine.types import Method

EXPLANATIONS: dict[Method, str] = {
    Method.FIXED: "Your adviser chose the share of each fund; it is kept at those shares.",
    Method.EQUAL_WEIGHT: "Every fund gets the same share, so no single one dominates.",
    Method.MARKET_CAP: (
        "Each holding is sized by the market value of what it holds, like a broad index, "
        "with a ceiling so that no single holding grows too large."
    ),
    Method.MAX_SHARPE: (
        "The mix that, on past data, gave the most return for each unit of ups and downs."
    ),
    Method.MIN_VARIANCE: "The mix whose value moved the least in the past: the calmest ride.",
    Method.EFFICIENT_RISK: (
        "The mix with the best expected return whose ups and downs stay within the level "
        "that suits you."
    ),
    Method.EFFICIENT_RETURN: ("The calmest mix expected to reach the return you aim for."),
    Method.HRP: (
        "Funds that move together are grouped, and risk is shared out between the groups, "
        "so the portfolio does not lean on any one kind of investment."
    ),
    Method.BLACK_LITTERMAN: (
        "Starts from the market's own mix and leans it towards your adviser's views, "
        "more so the more confident the view."
    ),
    Method.INVERSE_VOLATILITY: (
        "Calmer funds get larger shares and more volatile funds smaller ones."
    ),
    Method.RISK_PARITY: (
        "Each fund contributes the same amount of risk, so no single fund drives the result."
    ),
    Method.INDEX: (
        "Holds the largest assets of the market by size, each capped, and refreshes the list "
        "on a fixed schedule."
    ),
    Method.DYNAMIC: (
        "Moves money between a growth part and a safer part to keep the portfolio's ups and "
        "downs near a target: less growth when markets are rough, more when they are calm."
    ),
}


def explain(method: Method | str) -> str:
    return EXPLANATIONS[Method(method)]
