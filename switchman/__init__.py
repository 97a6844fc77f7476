"""switchman: route each LLM request to the cheapest model expected to answer as well as the best."""

__version__ = "0.1.0"
