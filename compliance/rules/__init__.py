"""Pure, vectorised pre-trade compliance rules (numpy and dataclasses; no Django, ever).

The Django batch path builds a :class:`Book` and :class:`Orders` for a chunk of
portfolios and calls :func:`evaluate` with the firm's rules (or
:data:`BUILTIN_RULES` when the firm has configured none). See ``engine`` for the
semantics of every rule kind and ``params`` for their parameters.
"""

from __future__ import annotations

from types import MappingProxyType

from compliance.rules.engine import Evaluation, crypto_limit_table, evaluate, outcomes_unpack
from compliance.rules.params import (
    DEFAULT_SEVERITY,
    NO_SHORT_NO_NEGATIVE_CASH,
    RESTRICTED_LIST,
    RULE_KINDS,
    WASH_SALE,
    rule_param_names,
    rule_params_validate,
)
from compliance.rules.types import (
    Book,
    Failure,
    Orders,
    Outcome,
    Rule,
    RuleError,
    RuleInputError,
    RuleParamError,
    Severity,
)

#: The rule set used when a firm has configured nothing (negative ids: not stored rules).
BUILTIN_RULES: tuple[Rule, ...] = (
    Rule(-1, NO_SHORT_NO_NEGATIVE_CASH, Severity.HARD, MappingProxyType({})),
    Rule(
        -2,
        RESTRICTED_LIST,
        Severity.HARD,
        MappingProxyType({"symbols": (), "use_client_restrictions": True}),
    ),
    Rule(-3, WASH_SALE, Severity.HARD, MappingProxyType({"days": 30})),
)

__all__ = [
    "BUILTIN_RULES",
    "DEFAULT_SEVERITY",
    "RULE_KINDS",
    "Book",
    "Evaluation",
    "Failure",
    "Orders",
    "Outcome",
    "Rule",
    "RuleError",
    "RuleInputError",
    "RuleParamError",
    "Severity",
    "crypto_limit_table",
    "evaluate",
    "outcomes_unpack",
    "rule_param_names",
    "rule_params_validate",
]
