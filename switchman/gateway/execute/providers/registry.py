"""One provider object per kind of upstream API, for whichever pool models use it.

The gateway and ``switchman label`` build their providers here, so a model is called the
same way (same translation, same timeouts) whoever calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from switchman.config.reliability import TimeoutConfig
from switchman.gateway.execute.providers.anthropic import AnthropicProvider
from switchman.gateway.execute.providers.base import Provider
from switchman.gateway.execute.providers.openai_compat import OpenAICompatProvider
from switchman.gateway.execute.providers.transport import Transport
from switchman.pool import Model

#: Provider class per ``Model.provider`` value.
PROVIDER_CLASSES = {"openai": OpenAICompatProvider, "anthropic": AnthropicProvider}


def build_providers(
    transport: Transport, models: Iterable[Model], timeouts: Mapping[str, TimeoutConfig]
) -> dict[str, Provider]:
    """The providers ``models`` need (kinds no model uses are not built), on ``transport``."""
    models = list(models)
    providers: dict[str, Provider] = {}
    for kind, cls in PROVIDER_CLASSES.items():
        members = [m for m in models if m.provider == kind]
        if members:
            providers[kind] = cls(transport, members, dict(timeouts))
    return providers
