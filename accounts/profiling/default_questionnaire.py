"""The questionnaire the platform ships, written for this project (our own wording).

Ten risk-tolerance items in the spirit of the Grable & Lytton scale, five risk-capacity
items, horizon and liquidity, goals and investing experience. Pure data: the accounts
services install it in a firm as version 1 of its questionnaire.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounts.profiling.scoring import (
    CAPACITY,
    EXPERIENCE,
    GOALS,
    HORIZON,
    TAG_NO_EMERGENCY_FUND,
    TAG_NO_EXPERIENCE,
    TAG_SEEKS_MAX_GROWTH,
    TAG_SELLS_AFTER_FALL,
    TOLERANCE,
)


@dataclass(frozen=True)
class OptionSpec:
    code: str
    text: str
    score: int
    tags: tuple[str, ...] = ()
    horizon_years: Decimal | None = None


@dataclass(frozen=True)
class QuestionSpec:
    code: str
    dimension: str
    text: str
    options: tuple[OptionSpec, ...]
    help_text: str = ""


def _o(code: str, text: str, score: int, *tags: str, years: str | None = None) -> OptionSpec:
    return OptionSpec(code, text, score, tuple(tags), None if years is None else Decimal(years))


DEFAULT_QUESTIONNAIRE_NAME = "Risk profile questionnaire"
DEFAULT_QUESTIONNAIRE_KEY = "risk-profile"

DEFAULT_QUESTIONS: tuple[QuestionSpec, ...] = (
    # --- risk tolerance ------------------------------------------------------------------
    QuestionSpec(
        "tol_friend",
        TOLERANCE,
        "How would a close friend describe you when it comes to taking risks with money?",
        (
            _o("avoider", "Someone who avoids risk whenever possible", 1),
            _o("cautious", "Cautious", 2),
            _o("considered", "Willing to take a risk after looking into it", 3),
            _o("gambler", "A real risk taker", 4),
        ),
    ),
    QuestionSpec(
        "tol_fall_20",
        TOLERANCE,
        "Your investments fall 20% in a few months. What do you do?",
        (
            _o("sell_all", "Sell everything to stop further losses", 1, TAG_SELLS_AFTER_FALL),
            _o("sell_some", "Sell part of them", 2),
            _o("hold", "Hold on and wait", 3),
            _o("buy_more", "Invest more while prices are low", 4),
        ),
    ),
    QuestionSpec(
        "tol_goal",
        TOLERANCE,
        "Which best describes what you want from your investments?",
        (
            _o("preserve", "Keep what I have, even if it barely grows", 1),
            _o("steady", "Steady growth with small ups and downs", 2),
            _o("balanced", "Good growth with some years of losses", 3),
            _o("max_growth", "Maximum growth, whatever the swings", 4, TAG_SEEKS_MAX_GROWTH),
        ),
    ),
    QuestionSpec(
        "tol_word",
        TOLERANCE,
        "When you think of the word 'risk' with money, what comes to mind first?",
        (
            _o("loss", "Loss", 1),
            _o("uncertainty", "Uncertainty", 2),
            _o("opportunity", "Opportunity", 3),
            _o("thrill", "Excitement", 4),
        ),
    ),
    QuestionSpec(
        "tol_choice",
        TOLERANCE,
        "You may choose one of these outcomes for $10,000 over a year. Which?",
        (
            _o("sure", "A sure $300 gain", 1),
            _o("mostly_sure", "Likely $800 gain, small chance of a $200 loss", 2),
            _o("even", "Likely $2,000 gain, real chance of a $1,000 loss", 3),
            _o("long_shot", "Possible $5,000 gain, equal chance of a $3,000 loss", 4),
        ),
    ),
    QuestionSpec(
        "tol_job",
        TOLERANCE,
        "You are offered a job with a lower salary but a large bonus if the company does well.",
        (
            _o("decline", "I would keep my current, steady salary", 1),
            _o("maybe", "Only if the bonus were very likely", 2),
            _o("accept", "I would accept and take my chances", 3),
        ),
    ),
    QuestionSpec(
        "tol_windfall",
        TOLERANCE,
        "You receive an unexpected $20,000. How do you invest it?",
        (
            _o("savings", "A savings account", 1),
            _o("bonds", "Mostly bonds", 2),
            _o("mix", "A mix of shares and bonds", 3),
            _o("shares", "Shares, including some speculative ones", 4),
        ),
    ),
    QuestionSpec(
        "tol_sleep",
        TOLERANCE,
        "How much would a bad year in the markets cost you in sleep?",
        (
            _o("lot", "A lot: I would worry constantly", 1),
            _o("some", "Some, for a while", 2),
            _o("little", "Very little", 3),
            _o("none", "None: bad years are part of investing", 4),
        ),
    ),
    QuestionSpec(
        "tol_past",
        TOLERANCE,
        "Looking back, how comfortable have you been with financial decisions that could go wrong?",
        (
            _o("uncomfortable", "Very uncomfortable", 1),
            _o("somewhat", "Somewhat uncomfortable", 2),
            _o("comfortable", "Comfortable", 3),
            _o("very", "Very comfortable", 4),
        ),
    ),
    QuestionSpec(
        "tol_tradeoff",
        TOLERANCE,
        "Which matters more to you?",
        (
            _o("safety", "Not losing money", 1),
            _o("lean_safety", "Mostly not losing money", 2),
            _o("lean_growth", "Mostly growing my money", 3),
            _o("growth", "Growing my money", 4),
        ),
    ),
    # --- risk capacity -------------------------------------------------------------------
    QuestionSpec(
        "cap_income",
        CAPACITY,
        "How stable is your income over the next five years?",
        (
            _o("none", "I have no regular income", 0),
            _o("unstable", "Uncertain", 1),
            _o("stable", "Fairly stable", 2),
            _o("very_stable", "Very stable", 3),
        ),
    ),
    QuestionSpec(
        "cap_liquid",
        CAPACITY,
        "Your liquid net worth (savings and investments you could sell, less debts)?",
        (
            _o("under_50k", "Under $50,000", 0),
            _o("50k_250k", "$50,000 to $250,000", 1),
            _o("250k_1m", "$250,000 to $1 million", 2),
            _o("over_1m", "Over $1 million", 3),
        ),
    ),
    QuestionSpec(
        "cap_emergency",
        CAPACITY,
        "How many months of expenses could you cover from an emergency fund?",
        (
            _o("none", "None: I have no emergency fund", 0, TAG_NO_EMERGENCY_FUND),
            _o("lt_3", "Less than three months", 1),
            _o("3_6", "Three to six months", 2),
            _o("gt_6", "More than six months", 3),
        ),
    ),
    QuestionSpec(
        "cap_share",
        CAPACITY,
        "What share of your total wealth will this account hold?",
        (
            _o("most", "More than 75%", 0),
            _o("half", "50% to 75%", 1),
            _o("quarter", "25% to 50%", 2),
            _o("small", "Less than 25%", 3),
        ),
    ),
    QuestionSpec(
        "cap_dependants",
        CAPACITY,
        "How many people depend on your income?",
        (
            _o("three_plus", "Three or more", 0),
            _o("one_two", "One or two", 1),
            _o("none", "Nobody", 2),
        ),
    ),
    # --- horizon and liquidity -----------------------------------------------------------
    QuestionSpec(
        "hor_when",
        HORIZON,
        "When do you expect to start drawing on this money?",
        (
            _o("lt_2", "Within two years", 0, years="1"),
            _o("2_5", "In two to five years", 1, years="3"),
            _o("5_10", "In five to ten years", 2, years="7"),
            _o("gt_10", "In more than ten years", 3, years="15"),
        ),
    ),
    QuestionSpec(
        "hor_liquidity",
        HORIZON,
        "Will you need a large part of it (a third or more) for a planned expense, and when?",
        (
            _o("soon", "Yes, within two years", 0, years="1"),
            _o("later", "Yes, in two to five years", 1, years="3"),
            _o("much_later", "Yes, in more than five years", 2, years="7"),
            _o("no", "No planned expense", 3, years="30"),
        ),
    ),
    # --- goals and experience ------------------------------------------------------------
    QuestionSpec(
        "goal_main",
        GOALS,
        "What is the main purpose of this account?",
        (
            _o("retirement", "Retirement", 0),
            _o("home", "Buying a home", 0),
            _o("education", "Education", 0),
            _o("wealth", "Building wealth", 0),
            _o("income", "Income to live on", 0),
        ),
    ),
    QuestionSpec(
        "exp_level",
        EXPERIENCE,
        "How much investing experience do you have?",
        (
            _o("none", "None", 0, TAG_NO_EXPERIENCE),
            _o("some", "Some: savings products and funds", 1),
            _o("good", "Good: I have held shares and bonds for years", 2),
            _o("expert", "Extensive: I follow markets closely", 3),
        ),
    ),
)
