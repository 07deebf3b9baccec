"""PyTorch int8 dynamic quantization for faster CPU prediction."""

from __future__ import annotations

import warnings


def quantize_int8(model):
    """CPU int8 dynamic quantization of every Linear layer.

    Weights are stored as int8 and activations quantized per batch on the fly, so no
    calibration data is needed. LoRA adapters are merged first. CPU only: the quantized
    kernels do not run on GPUs.
    """
    import torch
    from torch.ao.quantization import quantize_dynamic

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with warnings.catch_warnings():
        # torch marks its eager-mode quantization as deprecated in favour of torchao (not a
        # dependency here); it still works in the pinned torch, so keep the output quiet.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.cpu().eval(), {torch.nn.Linear}, dtype=torch.qint8)
