"""Which precision to compute in: bfloat16 where the CPU has bfloat16 units (and it was measured to pay), else float32.

`--precision auto` (run_qa.py) and `--dtype auto` (qa_predict.py, serve.py) ask `choose_precision`,
which decides from the CPU's feature flags and says why in one line for the log. bf16 on a CPU
without bfloat16 instructions is emulated and many times slower, so auto never picks it there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
# CPU flags (Linux /proc/cpuinfo names) of native bfloat16 matrix instructions.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# What auto picks on such a CPU, per use, from bench/README.md ("Precision chosen by the machine").
AUTO_BF16_ON_NATIVE_CPU = {"training": True, "prediction": True}


# Space-separated flags to use instead of the CPU's (tests set it so that auto decides alike on every machine).
FLAGS_VARIABLE = "SLMQA_CPU_FLAGS"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags as Linux lists them (or $SLMQA_CPU_FLAGS); None where they cannot be read."""
    if FLAGS_VARIABLE in os.environ:
        return set(os.environ[FLAGS_VARIABLE].split())
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def native_bf16_flags(flags: set[str] | None = None) -> list[str]:
    """The bfloat16 instructions among the CPU's flags (empty: none, or flags unknown)."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in BF16_FLAGS if flag in (flags or set())]


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX).

    From the flags when they can be read, else as oneDNN sees the CPU.
    """
    if flags is None:
        flags = cpu_flags()
    if flags is not None:
        return bool(native_bf16_flags(flags))
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "bf16" or "fp32"
    why: str

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"


def choose_precision(requested: str, use: str, device_type: str, flags: set[str] | None = None) -> PrecisionChoice:
    """`requested` (auto, fp32 or bf16) as a concrete precision for `use` (training or prediction) on this device.

    auto: bf16 on a CPU with bfloat16 instructions (where the measurement for `use` says it pays),
    fp32 elsewhere (a CPU without them, or a GPU: there `--bf16` / `--dtype bfloat16` choose it).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}.")
    if requested != "auto":
        return PrecisionChoice(requested, "asked for")
    if device_type != "cpu":
        return PrecisionChoice("fp32", f"auto on {device_type}: bf16 only when asked for there")
    native = native_bf16_flags(cpu_flags() if flags is None else flags)
    if not native:
        return PrecisionChoice("fp32", "auto: this CPU has no bfloat16 instructions (bf16 would be emulated, many times slower)")
    if not AUTO_BF16_ON_NATIVE_CPU[use]:
        return PrecisionChoice("fp32", f"auto: bf16 {use} measured no faster than fp32 on such CPUs")
    return PrecisionChoice("bf16", f"auto: this CPU has bfloat16 instructions ({', '.join(native)})")


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
