"""switchman: an LLM router: per request, the cheapest model that answers as well as the best."""

__version__ = "0.1.0"
