"""Assets, strategies, portfolios, holdings and rebalancing arrive with later issues."""

from portfolios.models_market import *  # noqa: F401,F403
from portfolios.models_strategy import *  # noqa: F401,F403
