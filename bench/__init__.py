"""Benchmarks (not part of the pipeline); see README.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def run_logged(label: str, command: list, log_dir: Path) -> float:
    """Run a command (run_qa.py ...) from the repo root, its output in log_dir/<label>.log; wall seconds.

    A failure stops the bench with the log's tail: a row is never made from a broken run.
    """
    print(f"[{label}] {' '.join(str(part) for part in command[1:])}", file=sys.stderr, flush=True)
    log = Path(log_dir) / f"{label}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        finished = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        tail = log.read_text(encoding="utf-8")[-4000:]
        raise SystemExit(f"{label} failed (exit {finished.returncode}), log {log}:\n{tail}")
    return wall
