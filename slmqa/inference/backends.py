"""Where the logits come from: PyTorch (float32, bfloat16, float16, int8) or ONNX Runtime (float32, int8).

Every backend takes one padded batch of windows as numpy arrays and returns start/end
logits as float32 numpy arrays, so the windowing and decoding around it are the same code
whichever runs the model; only speed and, for int8 and bfloat16, a little accuracy differ
(bench/bench_backends.py measures both on the same questions).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from slmqa.inference.runtime import Runtime
from slmqa.modeling.loading import load_model
from slmqa.modeling.precision import cpu_has_native_bf16, slow_cpu_bf16_warning
from slmqa.modeling.quantize import quantize_int8

logger = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) logits of shape (windows, length) for input_ids/attention_mask/token_type_ids."""


class TorchBackend:
    """The model in PyTorch, in the runtime's dtype on its device (int8: dynamic quantization on the CPU)."""

    def __init__(self, model_dir: str | Path, runtime: Runtime):
        import torch

        self.torch = torch
        self.runtime = runtime
        self.name = runtime.name
        if runtime.threads and runtime.device == "cpu":
            torch.set_num_threads(runtime.threads)
        model = load_model(model_dir)
        if runtime.dtype == "int8":
            model = quantize_int8(model)
        else:
            model = model.to(device=runtime.device, dtype=getattr(torch, runtime.dtype))
            if runtime.dtype == "bfloat16" and runtime.device == "cpu":
                warning = slow_cpu_bf16_warning("--dtype bfloat16 predicts", cpu_has_native_bf16())
                if warning:
                    logger.warning(warning)
        self.model = model.eval()
        self.device = next(self.model.parameters(), torch.zeros(0)).device

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            output = self.model(**inputs)
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()


class OnnxBackend:
    """The exported graph in ONNX Runtime's CPU provider (see onnx_export.py for the export and its fusion).

    `fused=False` runs the graph without ONNX Runtime's transformer fusions (for comparisons).
    """

    def __init__(self, model_dir: str | Path, runtime: Runtime, threads: int | None = None, fused: bool = True):
        import onnxruntime as ort

        from slmqa.inference.onnx_export import onnx_model

        self.runtime = runtime
        self.name = runtime.name
        path = onnx_model(model_dir, quantized=runtime.dtype == "int8", fused=fused)
        self.path = path
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or runtime.threads or (os.cpu_count() or 1)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        logger.info("ONNX Runtime session on %s", path)

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feed = {name: batch[name].astype(np.int64, copy=False) for name in self.inputs}
        start, end = self.session.run(["start_logits", "end_logits"], feed)
        return start.astype(np.float32, copy=False), end.astype(np.float32, copy=False)


def load_backend(model_dir: str | Path, runtime: Runtime = Runtime(), seed: int | None = 42) -> Backend:
    """The model directory (full model or LoRA adapter) behind the runtime's backend, on its resolved device.

    `seed` fixes a base model's newly initialised QA head (a trained model has none).
    """
    runtime = runtime.resolve()
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    backend = OnnxBackend(model_dir, runtime) if runtime.backend == "onnx" else TorchBackend(model_dir, runtime)
    logger.info("%s: %s on %s in %s", Path(model_dir).name or model_dir, runtime.backend, runtime.device, runtime.dtype)
    return backend
