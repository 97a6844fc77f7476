"""The torch export of MiniLM: the reference the torch-free build is measured against.

Until switchman.embed_build wrote MiniLM's graph itself, this was how the int8 model was
made: transformers loads the packaged weights, torch traces them (TorchScript exporter)
into ONNX, and the same onnxruntime quantizer makes it int8. It is kept, behind the
`export` extra (torch, transformers), so that anyone can check that the torch-free model is
the one torch would give, and that the static table is the one torch's forward passes give
(``token_vectors_torch``; benchmarks/encoder_torch_free.py, tests/test_embed_static.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from switchman.embed_build import install_int8, pooled_token_vectors, weights_dir

EXTRA_HINT = ("the torch export of MiniLM needs torch and transformers: "
              "pip install 'switchman[export]' (CPU torch: see the README)")


def torch_available() -> bool:
    """Whether the export extra is installed (without importing torch, which takes seconds)."""
    from importlib.util import find_spec

    try:
        return find_spec("torch") is not None and find_spec("transformers") is not None
    except ImportError:  # a finder that refuses the name outright
        return False


def _pooled_minilm() -> Any:
    """MiniLM as torch runs it: the packaged weights, mean pooling and L2 norm on top."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the Hub is unreachable: fail fast, never hang
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ImportError(EXTRA_HINT) from exc

    class Pooled(torch.nn.Module):
        def __init__(self, body: torch.nn.Module) -> None:
            super().__init__()
            self.body = body

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.body(input_ids=input_ids, attention_mask=attention_mask)[0]
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled(AutoModel.from_pretrained(str(weights_dir())).eval())


def token_vectors_torch() -> np.ndarray:
    """``embed_build.token_vectors_fp32``'s forward passes, run by torch (~30 s)."""
    model = _pooled_minilm()
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(batch)
        with torch.no_grad():
            return model(ids, torch.ones_like(ids)).numpy()

    return pooled_token_vectors(run)


def export_minilm_int8_torch(model_dir: Path) -> None:
    """Export MiniLM with torch (pooling and L2 norm inside the graph) to int8 ONNX in model_dir.

    ~5-10 s with the torch import. Writes model.onnx and tokenizer.json like
    switchman.embed_build.build_minilm_int8, so either directory serves OnnxMiniLMEncoder.
    """
    pooled = _pooled_minilm()  # first: without the extra, its error says what to install
    import torch

    src = weights_dir()

    def write_fp32(path: Path) -> None:
        example = (torch.full((2, 16), 1000, dtype=torch.long), torch.ones(2, 16, dtype=torch.long))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer/deprecation chatter, not actionable
            # The TorchScript exporter: works on torch 2.13, ~1.5 s against ~8 s for
            # dynamo=True, and gives the same graph speed and accuracy.
            torch.onnx.export(
                pooled, example, str(path), dynamo=False, opset_version=17,
                input_names=["input_ids", "attention_mask"], output_names=["sentence"],
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                              "attention_mask": {0: "batch", 1: "seq"}, "sentence": {0: "batch"}},
            )

    install_int8(model_dir, write_fp32, src / "tokenizer.json")
