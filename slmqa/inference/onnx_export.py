"""Export a question-answering model to ONNX and quantize it to int8, once per model.

ONNX Runtime runs the 6-layer MiniLM faster on a CPU than eager PyTorch, and its dynamic
int8 quantization (int8 weights, activations quantized per batch) needs no calibration
data. The export is cached beside the model (`<model>/onnx/`) or, when that folder is not
writable, under ~/.cache/slm-qa, keyed by the weights' size and time, so a retrained
model is exported again and an unchanged one is not.

Fusion (`fused=True`, the default): ONNX Runtime's transformer optimizer rewrites a BERT-like
graph into its fused kernels (Attention, EmbedLayerNormalization, SkipLayerNormalization,
BiasGelu) before int8 quantization, which then quantizes whole attention blocks (QAttention)
instead of loose MatMuls that ONNX Runtime can no longer fuse once quantized. It needs the
attention exported as plain ops (eager), so the fused graph is its own export, cached as
`model-<key>-fused-*.onnx`. A fused graph is kept only if its logits match the PyTorch
model's on a check batch; an architecture it cannot fuse, or a mismatch, falls back to the
unfused graph with one log line (and a `.skipped` marker, so the check is not redone at
every start).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from slmqa.inference.logits import MODEL_INPUTS
from slmqa.modeling.loading import load_model, load_tokenizer

logger = logging.getLogger(__name__)

OUTPUT_NAMES = ("start_logits", "end_logits")
OPSET = 18
# One int8 scale per output channel of each weight matrix instead of one per matrix.
PER_CHANNEL = True
# Encoders whose graphs ONNX Runtime's BERT fusions recognise (its model_type "bert").
FUSABLE = ("bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra")
# A fused graph must give the PyTorch model's logits to within this (fp32 reassociation is ~1e-5).
FUSION_TOLERANCE = 1e-3


def _fingerprint(model_dir: Path) -> str:
    """Changes whenever the weights or config change (size and modification time of each)."""
    parts = []
    for path in sorted(model_dir.glob("*")):
        if path.is_file() and path.suffix in (".safetensors", ".bin", ".json"):
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def cache_folder(model_dir: Path) -> Path:
    """Where this model's ONNX files live: beside it if writable, else in the user cache."""
    beside = model_dir / "onnx"
    if os.access(model_dir, os.W_OK) or os.access(beside, os.W_OK):
        return beside
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slm-qa"
    return home / hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:16]


def input_names(tokenizer) -> list[str]:
    """The model inputs the tokenizer produces (DistilBERT-style models have no token_type_ids)."""
    return [name for name in MODEL_INPUTS if name in tokenizer.model_input_names]


def _logits_module(model, names: list[str]):
    """The QA model behind plain positional tensor inputs and two tensor outputs, as tracing needs."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            output = self.inner(**dict(zip(names, tensors)))
            return output.start_logits, output.end_logits

    # eval() on the wrapper too: the exporter restores the wrapper's mode recursively afterwards.
    return Logits(model).eval()


def _samples(tokenizer, names: list[str], check: bool = False) -> dict:
    """A padded batch of two to trace with; `check`: a longer one, with padding under the mask, to compare graphs on."""
    if check:
        questions = ["What is the torque setting of the compressor?", "Who?"]
        contexts = ["The compressor is serviced every month by a certified technician. Its torque setting is 25 Nm, "
                    "checked after each service; the valve opens at 4 bar.", "Nobody."]
    else:
        questions, contexts = ["What is it?", "Which one?"], ["It is a sample.", "The first."]
    sample = tokenizer(questions, contexts, padding=True, return_tensors="pt")
    return {name: sample[name] for name in names}


def export_onnx(model, tokenizer, path: Path) -> Path:
    """Trace the model with a padded batch of two and write an ONNX graph with dynamic batch and length."""
    import torch

    names = input_names(tokenizer)
    inputs = tuple(_samples(tokenizer, names).values())
    axes = {name: {0: "batch", 1: "sequence"} for name in names + list(OUTPUT_NAMES)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        torch.onnx.export(
            _logits_module(model, names), inputs, str(partial), input_names=names, output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )
    partial.replace(path)  # a crash mid-export never leaves a half file under the real name
    return path


class FusionUnavailable(Exception):
    """Why a model keeps its unfused graph (an architecture the optimizer does not know, a mismatch, ...)."""


def _optimizer():
    """ONNX Runtime's transformer optimizer (a module of the onnxruntime wheel; a separate function so tests can take it away)."""
    from onnxruntime.transformers.optimizer import optimize_model

    return optimize_model


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fuse_onnx(model, tokenizer, path: Path) -> dict[str, int]:
    """Export with eager attention, fuse with ONNX Runtime's BERT optimizer, check against PyTorch, write `path`.

    Returns the counts of fused operators. Raises FusionUnavailable (nothing written) when
    the architecture is not one the optimizer fuses, nothing fused, or the fused graph's
    logits differ from the model's by more than FUSION_TOLERANCE.
    """
    import torch

    config = model.config
    if config.model_type not in FUSABLE:
        raise FusionUnavailable(f"ONNX Runtime's BERT fusions do not cover model_type {config.model_type!r}")
    try:
        optimize_model = _optimizer()
    except ImportError as err:
        raise FusionUnavailable(f"onnxruntime.transformers is not available ({err})") from None
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    attention = getattr(config, "_attn_implementation", None)
    if attention not in (None, "eager"):
        model.set_attn_implementation("eager")  # SDPA exports as a pattern the fusions do not match
    eager = path.with_name(f"{path.stem}.eager.onnx")
    partial = path.with_suffix(".partial")
    try:
        export_onnx(model, tokenizer, eager)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it logs each pass at INFO, on top-level loggers (fusion_base, onnx_model, ...)
        try:
            optimized = optimize_model(str(eager), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
            fused = {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}
            if fused:
                optimized.save_model_to_file(str(partial))
        except Exception as err:  # noqa: BLE001 - any failure of a graph rewrite means: keep the plain graph
            raise FusionUnavailable(f"the optimizer failed ({type(err).__name__}: {err})") from None
        finally:
            root.setLevel(level)
        if not fused:
            raise FusionUnavailable("the optimizer fused nothing in this graph")
        names = input_names(tokenizer)
        batch = _samples(tokenizer, names, check=True)
        with torch.no_grad():
            expected = _logits_module(model, names)(*batch.values())
        got = _session(partial).run(list(OUTPUT_NAMES), {name: tensor.numpy() for name, tensor in batch.items()})
        mask = batch["attention_mask"].numpy().astype(bool)
        worst = max(float(np.abs(g - e.numpy())[mask].max()) for g, e in zip(got, expected))
        if worst > FUSION_TOLERANCE:
            raise FusionUnavailable(f"the fused graph's logits differ from the model's by {worst:.2g}")
        partial.replace(path)
        return fused
    finally:
        eager.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        if attention not in (None, "eager"):
            model.set_attn_implementation(attention)  # a fallback export is then the usual one


def quantize_onnx(source: Path, target: Path, per_channel: bool = PER_CHANNEL) -> Path:
    """Dynamic int8 quantization of the graph's MatMul/Gemm weights (one scale per output channel by default).

    Fused graphs hold ONNX Runtime's own operators, which onnx's shape inference cannot
    type; their untyped tensors are float32 (DefaultTensorType).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(".partial")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs a generic "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=per_channel,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
    partial.replace(target)
    return target


class _Model:
    """The PyTorch model and tokenizer, loaded once and only if an export needs them (a LoRA adapter merged)."""

    def __init__(self, model_dir: Path):
        self.model_dir, self.loaded = model_dir, None

    def get(self):
        if self.loaded is None:
            model = load_model(self.model_dir)
            if hasattr(model, "merge_and_unload"):  # a LoRA adapter: export the merged weights
                model = model.merge_and_unload()
            self.loaded = (model.eval(), load_tokenizer(self.model_dir))
        return self.loaded


def _fused_model(model_dir: Path, folder: Path, key: str, quantized: bool, model: _Model) -> Path | None:
    """The cached fused graph (fp32 or int8), fused on first use; None when this model keeps the unfused one."""
    import onnxruntime

    fp32 = folder / f"model-{key}-fused-fp32.onnx"
    int8 = folder / f"model-{key}-fused-int8{'-pc' if PER_CHANNEL else ''}.onnx"
    skipped = folder / f"model-{key}-fused-ort{onnxruntime.__version__}.skipped"
    if skipped.is_file():
        logger.info("Unfused ONNX graph for %s: %s (delete %s to retry)", model_dir, skipped.read_text().strip(), skipped)
        return None
    if not fp32.is_file():
        logger.info("Fusing the ONNX graph of %s (%s)", model_dir, fp32)
        try:
            fused = fuse_onnx(*model.get(), fp32)
        except FusionUnavailable as err:
            logger.warning("Unfused ONNX graph for %s: %s", model_dir, err)
            folder.mkdir(parents=True, exist_ok=True)
            skipped.write_text(f"{err}\n")
            return None
        logger.info("Fused: %s", ", ".join(f"{count} {op}" for op, count in fused.items()))
    if quantized and not int8.is_file():
        logger.info("Quantizing %s to int8", fp32.name)
        quantize_onnx(fp32, int8)
    return int8 if quantized else fp32


def onnx_model(model_dir: str | Path, quantized: bool, fused: bool = True) -> Path:
    """The cached ONNX file of a model (fp32 or int8; fused where it can be), exported on first use."""
    model_dir = Path(model_dir)
    folder = cache_folder(model_dir)
    key = _fingerprint(model_dir)
    fp32 = folder / f"model-{key}-fp32.onnx"
    int8 = folder / f"model-{key}-int8{'-pc' if PER_CHANNEL else ''}.onnx"
    model = _Model(model_dir)
    if fused:
        path = _fused_model(model_dir, folder, key, quantized, model)
        if path is not None:
            return path
    if not fp32.is_file():
        logger.info("Exporting %s to ONNX (%s)", model_dir, fp32)
        export_onnx(*model.get(), fp32)
    if quantized and not int8.is_file():
        logger.info("Quantizing %s to int8", fp32.name)
        quantize_onnx(fp32, int8)
    return int8 if quantized else fp32
