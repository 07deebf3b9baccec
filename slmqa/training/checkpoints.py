"""Checkpoints: which one a run resumes from, and whether the arguments still fit it.

A checkpoint is complete once trainer_state.json parses (the Trainer writes it last). A run
that resumes with other data, another model or another batch geometry would skip batches it
never trained on, or fail deep inside the Trainer: `check_resume_compatible` refuses it first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

from slmqa.errors import ConfigError

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")
# What a checkpoint's weights may look like besides WEIGHT_FILES: sharded weights (an index
# file), FSDP's sharded state (pytorch_model_fsdp_0/ or .bin) and DeepSpeed (global_step*/).
CHECKPOINT_WEIGHT_PATTERNS = (*WEIGHT_FILES, "*.safetensors.index.json", "*.bin.index.json", "pytorch_model_fsdp*", "global_step*")


def is_complete_checkpoint(path: Path) -> bool:
    """Complete once trainer_state.json parses: the Trainer writes it after weights, optimizer and RNG state."""
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(any(path.glob(pattern)) for pattern in CHECKPOINT_WEIGHT_PATTERNS)


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted(
        (p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for checkpoint in checkpoints:
        if is_complete_checkpoint(checkpoint):
            return checkpoint
        logger.warning("Skipping incomplete checkpoint %s (interrupted while saving?).", checkpoint)
    return None


# Arguments a checkpoint depends on: resuming with other values would fail deep inside
# the Trainer (shape mismatches, missing adapter weights) or silently train something else.
# The data, its order and the samples per optimizer step decide what the batches a resumed
# run skips stand for: change them and it skips batches it never trained on.
RESUME_SENSITIVE = {
    "ModelArguments": ("model_name_or_path", "config_name", "tokenizer_name"),
    "DataTrainingArguments": (
        "max_seq_length", "doc_stride", "version_2_with_negative", "dataset_name", "dataset_config_name",
        "train_file", "max_train_samples", "keep_answerless_windows",
    ),
    "LoraArguments": ("use_lora", "lora_r", "lora_alpha", "lora_target_modules", "lora_bias"),
    "QATrainingArguments": ("seed", "data_seed", "train_sampling_strategy"),
    "Run": ("train_file_sha256", "samples_per_optimizer_step"),
}  # fmt: skip


def file_sha256(path: str | None) -> str | None:
    """The file's sha256 (None for no file); computed once per version of the file, not per call."""
    if not path or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_resume_compatible(output_dir: Path, current: dict) -> None:
    """Refuse to resume when an argument in RESUME_SENSITIVE differs from the checkpointed run's run_args.json."""
    previous_path = output_dir / "run_args.json"
    if not previous_path.is_file():
        return
    previous = json.loads(previous_path.read_text(encoding="utf-8"))
    changed = [
        f"{name}: {previous.get(group, {}).get(name)!r} in the checkpointed run, {current[group][name]!r} now"
        for group, names in RESUME_SENSITIVE.items()
        for name in names
        if group in previous and name in previous[group] and previous[group][name] != current[group][name]
    ]
    if changed:
        raise ConfigError(
            f"Cannot resume in {output_dir}: arguments changed since its checkpoints were written:\n  "
            + "\n  ".join(changed)
            + "\nRestore them, choose another --output_dir, or pass --overwrite_output_dir to start over."
        )
