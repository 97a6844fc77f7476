"""The pool of models a router may choose from: who they are, what they cost, what they can do.

A pool comes from configuration, so adding or removing a model is a configuration change,
never a code change. The gateway extends these entries with how to reach each model.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Capabilities a request can require; a model lacking one is ineligible for that request.
KNOWN_CAPABILITIES = frozenset({"tools", "json_mode", "vision", "streaming"})


class Model(BaseModel):
    """One model of the pool."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Name clients and routers use for the model.")
    provider: str = Field("openai", description="'openai' (compatible API) or 'anthropic'.")
    endpoint: str | None = Field(None, description="Base URL of the provider API, e.g. .../v1.")
    upstream_model: str | None = Field(None, description="Name sent upstream (default: name).")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    input_per_mtok: float = Field(0.0, ge=0, description="USD per million input tokens.")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per million output tokens.")
    context_window: int = Field(8192, gt=0, description="Prompt plus completion tokens.")
    capabilities: list[str] = Field(default_factory=lambda: ["streaming"])
    tags: list[str] = Field(default_factory=list)
    quality_prior: float | None = Field(
        None, ge=0, le=1, description="Expected quality in [0, 1] when no trained router knows it."
    )
    typical_output_tokens: int = Field(256, gt=0, description="Used to estimate cost up front.")
    max_output_tokens: int | None = Field(
        None, gt=0, description="Longest answer the model gives; bounds what a budget "
        "reserves for a request without max_tokens (null = the rest of the context window).")

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - KNOWN_CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}; known: {sorted(KNOWN_CAPABILITIES)}")
        return value

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """Dollars for a call with these token counts at this model's prices."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def load_price_table(path: str | Path) -> dict[str, tuple[float, float]]:
    """Read a ``prices.json`` (model -> {input_per_mtok, output_per_mtok}) as (in, out) USD/Mtok."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read price table: {exc}") from exc
    table: dict[str, tuple[float, float]] = {}
    for name, entry in raw.items():
        try:
            table[name] = (float(entry["input_per_mtok"]), float(entry["output_per_mtok"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: model {name!r} needs numeric input_per_mtok and output_per_mtok"
            ) from exc
    return table
