"""What runs a model outside the Trainer, in one vocabulary for every command: --backend, --device, --dtype.

    backend  torch (PyTorch) or onnx (ONNX Runtime, CPU)
    device   auto (the first GPU when there is one and the combination can use it, else the CPU), cpu, cuda, cuda:N
    dtype    auto (the command-line default: bfloat16 for torch on CPUs with bfloat16 instructions, else
             float32; modeling.precision), float32, bfloat16, float16 (GPU only) or int8 (dynamic
             quantization, CPU only)
    threads  CPU threads for the model (None: all cores; serve.py --workers N gives each worker cores/N)

`Runtime.resolve` turns a request into a concrete one for this machine, or a ConfigError
that says which combination cannot work and what would.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass, replace

from slmqa.errors import ConfigError
from slmqa.modeling.precision import choose_precision

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Spellings of earlier versions, refused with the new one.
RETIRED_BACKENDS = {"torch-int8": "--backend torch --dtype int8", "onnx-int8": "--backend onnx --dtype int8"}


@dataclass(frozen=True)
class Runtime:
    backend: str = "torch"
    device: str = "auto"
    dtype: str = "float32"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}.")
        if self.backend in RETIRED_BACKENDS:
            raise ConfigError(f"--backend {self.backend} is now {RETIRED_BACKENDS[self.backend]}.")
        if self.backend not in BACKENDS:
            raise ConfigError(f"Unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}.")
        if self.dtype not in DTYPES:
            raise ConfigError(f"Unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}.")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"Unknown device {self.device!r}; use auto, cpu, cuda or cuda:N.")

    @property
    def name(self) -> str:
        """Short label for logs, /health and bench tables: `torch`, `onnx-int8`, `torch-bfloat16`, ..."""
        suffix = "" if self.dtype == "float32" else f"-{self.dtype}"
        return f"{self.backend}{suffix}" + ("" if self.device in ("cpu", "auto") else f"@{self.device}")

    def resolve(self, cuda_devices: int | None = None) -> Runtime:
        """A concrete device for this machine, or a ConfigError for a combination that cannot run."""
        if cuda_devices is None:
            cuda_devices = cuda_device_count()
        cpu_only = self.backend == "onnx" or self.dtype == "int8"
        why_cpu = "ONNX Runtime runs on the CPU here" if self.backend == "onnx" else "int8 kernels run only on the CPU"
        if self.backend == "onnx" and self.dtype not in ("auto", "float32", "int8"):
            raise ConfigError(f"--backend onnx runs float32 or int8, not {self.dtype}: use --backend torch for {self.dtype}.")
        if self.device == "auto":
            device = "cuda" if cuda_devices and not cpu_only else "cpu"
        elif self.device.startswith("cuda"):
            if cpu_only:
                raise ConfigError(f"--device {self.device} with --backend {self.backend} --dtype {self.dtype}: {why_cpu}; use --device cpu.")
            if not cuda_devices:
                raise ConfigError(f"--device {self.device}: CUDA is not available on this machine; use --device cpu or auto.")
            index = int(self.device.partition(":")[2] or 0)
            if index >= cuda_devices:
                raise ConfigError(
                    f"--device {self.device}: only {cuda_devices} CUDA device(s) here (cuda:0 to cuda:{cuda_devices - 1})."
                )
            device = self.device
        else:
            device = "cpu"
        if self.dtype == "auto":
            return replace(self, device=device, dtype=auto_dtype(self.backend, device))
        if self.dtype == "float16" and device == "cpu":
            hint = " (--device auto found no CUDA device)" if self.device == "auto" else ""
            raise ConfigError(f"--dtype float16 is not supported on the CPU{hint}; use bfloat16 or float32 there.")
        return replace(self, device=device)


def auto_dtype(backend: str, device: str) -> str:
    """--dtype auto: bfloat16 where the measurement says it pays (torch on a CPU with bfloat16 units), else float32."""
    if backend != "torch":
        return "float32"
    choice = choose_precision("auto", "prediction", "cpu" if device == "cpu" else "cuda")
    dtype = "bfloat16" if choice.bf16 else "float32"
    logger.info("--dtype auto: %s (%s)", dtype, choice.why)
    return dtype


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _device(value: str) -> str:
    if not DEVICE_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def _backend(value: str) -> str:
    if value in RETIRED_BACKENDS:
        raise argparse.ArgumentTypeError(f"{value!r} is now {RETIRED_BACKENDS[value]}")
    if value not in BACKENDS:
        raise argparse.ArgumentTypeError(f"choose one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend/--device/--dtype, the same for every command that runs a model."""
    group = parser.add_argument_group("runtime", "What runs the model (docs/serving.md compares them).")
    group.add_argument("--backend", type=_backend, default="torch", help=f"{' or '.join(BACKENDS)} (default torch).")
    group.add_argument(
        "--device", type=_device, default="auto", help="auto (a GPU when there is one and the dtype allows), cpu, cuda or cuda:N."
    )
    group.add_argument(
        "--dtype", choices=DTYPES, default="auto",
        help="Weights' precision: auto (bfloat16 with --backend torch on CPUs with AVX512-BF16/AMX, where it keeps "
        "99%% of float32's answers at 1.5x the speed; float32 elsewhere), float32, bfloat16, float16 (GPU), "
        "int8 (dynamic quantization, CPU). Logits are decoded in float32.",
    )  # fmt: skip
    group.add_argument("--threads", type=int, default=None,
                       help="CPU threads the model uses (default: all cores; serve.py --workers N: cores / N per worker).")


def runtime_from_args(args: argparse.Namespace) -> Runtime:
    return Runtime(args.backend, args.device, args.dtype, getattr(args, "threads", None))
