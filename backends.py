"""Where the logits come from: PyTorch fp32, PyTorch int8, or ONNX Runtime (fp32 or int8).

Every backend takes one padded batch of windows as numpy arrays and returns start/end
logits as float32 numpy arrays, so the reader (windowing, decoding) is the same code
whichever runs the model; only speed and, for int8, a little accuracy differ
(bench/bench_backends.py measures both on the same questions).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")
DEFAULT_BACKEND = "torch"


class Backend(Protocol):
    name: str

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) logits of shape (windows, length) for input_ids/attention_mask/token_type_ids."""


class TorchBackend:
    """The model in PyTorch, fp32 (on the GPU when there is one) or int8 dynamic quantization (CPU)."""

    def __init__(self, model_dir: str | Path, quantize: bool = False):
        import torch

        from args import ModelArguments
        from process import load_model, quantize_int8

        self.torch = torch
        self.name = "torch-int8" if quantize else "torch"
        model = load_model(ModelArguments(model_name_or_path=str(model_dir)), None, is_trainable=False)
        if quantize:
            model = quantize_int8(model)
        elif torch.cuda.is_available():
            model = model.to("cuda")
        self.model = model.eval()
        self.device = next(self.model.parameters(), torch.zeros(0)).device

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            output = self.model(**inputs)
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()


class OnnxBackend:
    """The exported graph in ONNX Runtime's CPU provider (see onnx_export.py for the export)."""

    def __init__(self, model_dir: str | Path, quantize: bool = True, threads: int | None = None):
        import onnxruntime as ort

        from onnx_export import onnx_model

        self.name = "onnx-int8" if quantize else "onnx"
        path = onnx_model(model_dir, quantized=quantize)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        logger.info("ONNX Runtime session on %s", path)

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feed = {name: batch[name].astype(np.int64, copy=False) for name in self.inputs}
        start, end = self.session.run(["start_logits", "end_logits"], feed)
        return start.astype(np.float32, copy=False), end.astype(np.float32, copy=False)


def load_backend(model_dir: str | Path, name: str = DEFAULT_BACKEND) -> Backend:
    """One of BACKENDS for the model directory (full model or LoRA adapter)."""
    if name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")
    if name.startswith("onnx"):
        return OnnxBackend(model_dir, quantize=name == "onnx-int8")
    return TorchBackend(model_dir, quantize=name == "torch-int8")
