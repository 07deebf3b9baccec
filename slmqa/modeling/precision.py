"""Whether bfloat16 is a good idea on this CPU: native bfloat16 units, or slow emulation."""

from __future__ import annotations


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), as oneDNN sees them."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else True  # unknown: assume yes rather than warn wrongly


def slow_cpu_bf16_warning(what: str, native: bool) -> str | None:
    """Why bfloat16 on this CPU is a bad idea, or None when it is fine.

    Without native bfloat16 units every bf16 matmul is emulated: a training step under bf16
    autocast ran about 10x slower than float32 on 2 AVX2 cores (bench/README.md).
    """
    if native:
        return None
    return (
        f"{what} in bfloat16 on a CPU without bfloat16 instructions (no AVX512-BF16 or AMX): it is "
        "emulated and many times slower than float32 (10x for a training step on 2 AVX2 cores); use float32."
    )
