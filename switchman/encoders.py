"""Which encoder embeds prompts: the default, and lookup by the name a saved router stores.

Two kinds are offered. The default is the static MiniLM table (switchman.embed_static):
~0.1 ms per prompt, which keeps routing one request within a few milliseconds. The
contextual int8 MiniLM (switchman.embed) reads word order and costs ~12 ms per prompt on
two cores; it is wrapped in the on-disk cache, so a dataset is embedded only once. A static
lookup is cheaper than reading that cache, so the static encoder runs without it.
"""

from __future__ import annotations

import re
from pathlib import Path

from switchman.embed import CachedEncoder, Encoder, OnnxMiniLMEncoder
from switchman.embed_static import StaticMiniLMEncoder

#: The contextual encoder's recommended window: 32 head + 94 tail tokens. MiniLM was
#: fine-tuned on 128-token inputs, and on routing prompts (median ~140 tokens) this embeds
#: ~3.5x faster than a 256 window while routing as well on the dev datasets.
CONTEXTUAL_WINDOW = {"max_tokens": 128, "head_tokens": 32}
CONTEXTUAL_ENCODER = "{}-{max_tokens}-{head_tokens}".format(OnnxMiniLMEncoder.BASE_NAME,
                                                             **CONTEXTUAL_WINDOW)
DEFAULT_ENCODER = StaticMiniLMEncoder.name
#: The static table before it was distilled from fp32 (see StaticMiniLMEncoder.name).
RETIRED_STATIC = "minilm-l6-static-v1"
#: For help texts; encoder_by_name also takes any "<contextual base>-MAX-HEAD" window.
KNOWN_ENCODERS = (DEFAULT_ENCODER, CONTEXTUAL_ENCODER, OnnxMiniLMEncoder.BASE_NAME)


def encoder_by_name(name: str, cache_dir: Path | None = None) -> Encoder:
    """The encoder called ``name``; a saved router must embed with the one it was trained on."""
    if name == StaticMiniLMEncoder.name:
        return StaticMiniLMEncoder(cache_dir)
    if name == RETIRED_STATIC:
        raise ValueError(f"encoder {name!r} is retired: it was distilled from the int8 "
                         "model, whose outputs differ from CPU to CPU, so its vectors did too; "
                         f"train this router again (it will use {StaticMiniLMEncoder.name})")
    base = OnnxMiniLMEncoder.BASE_NAME
    m = re.fullmatch(re.escape(base) + r"(?:-(\d+)-(\d+))?", name)
    if m is None:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(KNOWN_ENCODERS)} "
                         f"(or {base}-MAX-HEAD)")
    window = {"max_tokens": int(m[1]), "head_tokens": int(m[2])} if m[1] else {}
    return CachedEncoder(OnnxMiniLMEncoder(cache_dir, **window), cache_dir)


def default_encoder(cache_dir: Path | None = None) -> Encoder:
    """The offline default: the static MiniLM table."""
    return encoder_by_name(DEFAULT_ENCODER, cache_dir)
