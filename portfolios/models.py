"""Assets, strategies, portfolios, holdings and rebalancing arrive with later issues."""
