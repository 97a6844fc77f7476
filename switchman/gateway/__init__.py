"""The OpenAI-compatible gateway: parse, route, call a provider, stream back, record.

Modules are small and single-purpose (see DESIGN.md); :func:`switchman.gateway.app.create_app`
assembles them. Nothing here runs at import time.
"""
