"""Benchmarks (not part of the pipeline); see README.md."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine(**extra) -> dict:
    """Where and when a result was measured, for the JSON record."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), **extra}


def bf16_flags() -> list[str]:
    """run_qa.py flags for bfloat16 autocast; transformers wants --use_cpu with them on a machine without a GPU."""
    import torch

    return ["--bf16"] if torch.cuda.is_available() else ["--bf16", "--use_cpu"]


def publish(result: dict, name: str) -> Path:
    """Print the result as JSON on stdout and keep a copy as bench/results/<name>-<time>.json."""
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text + "\n", encoding="utf-8")
    return path
