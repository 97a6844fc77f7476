"""Execution: walking the plan against providers (limits, breakers, retries, fallbacks)
and relaying streams."""
