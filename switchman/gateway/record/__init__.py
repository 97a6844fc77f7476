"""Recording: settling a finished request into metrics, accounting and the decision log."""
