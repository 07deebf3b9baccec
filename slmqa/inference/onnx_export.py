"""Export a question-answering model to ONNX and quantize it to int8, once per model.

ONNX Runtime runs the 6-layer MiniLM faster on a CPU than eager PyTorch, and its dynamic
int8 quantization (int8 weights, activations quantized per batch) needs no calibration
data. The export is cached beside the model (`<model>/onnx/`) or, when that folder is not
writable, under ~/.cache/slm-qa, keyed by the weights' size and time, so a retrained
model is exported again and an unchanged one is not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

from slmqa.inference.logits import MODEL_INPUTS
from slmqa.modeling.loading import load_model, load_tokenizer

logger = logging.getLogger(__name__)

OUTPUT_NAMES = ("start_logits", "end_logits")
OPSET = 18
# One int8 scale per output channel of each weight matrix instead of one per matrix.
PER_CHANNEL = True


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


def export_onnx(model, tokenizer, path: Path) -> Path:
    """Trace the model with a padded batch of two and write an ONNX graph with dynamic batch and length."""
    import torch

    names = input_names(tokenizer)
    sample = tokenizer(["What is it?", "Which one?"], ["It is a sample.", "The first."], padding=True, return_tensors="pt")
    inputs = tuple(sample[name] for name in names)
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


def quantize_onnx(source: Path, target: Path, per_channel: bool = PER_CHANNEL) -> Path:
    """Dynamic int8 quantization of the graph's MatMul/Gemm weights (one scale per output channel by default)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(".partial")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs a generic "consider pre-processing" warning on the root logger
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=per_channel)
    finally:
        root.setLevel(level)
    partial.replace(target)
    return target


def onnx_model(model_dir: str | Path, quantized: bool) -> Path:
    """The cached ONNX file of a model (fp32 or int8), exported on first use."""
    model_dir = Path(model_dir)
    folder = cache_folder(model_dir)
    key = _fingerprint(model_dir)
    fp32 = folder / f"model-{key}-fp32.onnx"
    int8 = folder / f"model-{key}-int8{'-pc' if PER_CHANNEL else ''}.onnx"
    if not fp32.is_file():
        logger.info("Exporting %s to ONNX (%s)", model_dir, fp32)
        model = load_model(model_dir)
        if hasattr(model, "merge_and_unload"):  # a LoRA adapter: export the merged weights
            model = model.merge_and_unload()
        export_onnx(model.eval(), load_tokenizer(model_dir), fp32)
    if quantized and not int8.is_file():
        logger.info("Quantizing %s to int8", fp32.name)
        quantize_onnx(fp32, int8)
    return int8 if quantized else fp32
