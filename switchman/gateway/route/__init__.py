"""Routing: from a parsed request to a ranked plan (router lookup, estimate, eligibility,
stickiness)."""
