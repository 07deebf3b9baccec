"""slmqa.training.checkpoints: which checkpoint is complete (every weight layout), and what a resume must not change."""

from __future__ import annotations

import json

import pytest

from slmqa.errors import ConfigError
from slmqa.training.checkpoints import (
    check_resume_compatible,
    file_sha256,
    is_complete_checkpoint,
    last_complete_checkpoint,
)


def fake_checkpoint(folder, *weights: str, state: str = "{}"):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(state, encoding="utf-8")
    for name in weights:
        target = folder / name
        if name.endswith("/"):
            target.mkdir(parents=True)
        else:
            target.write_bytes(b"x")
    return folder


def test_sharded_fsdp_and_deepspeed_checkpoints_are_complete(tmp_path):
    complete = {
        "single": ["model.safetensors"],
        "sharded": ["model.safetensors.index.json", "model-00001-of-00002.safetensors"],
        "sharded_bin": ["pytorch_model.bin.index.json"],
        "fsdp": ["pytorch_model_fsdp_0/"],
        "deepspeed": ["global_step7/"],
        "adapter": ["adapter_model.safetensors"],
    }
    for name, weights in complete.items():
        assert is_complete_checkpoint(fake_checkpoint(tmp_path / name, *weights)), name
    assert not is_complete_checkpoint(fake_checkpoint(tmp_path / "no-weights"))
    assert not is_complete_checkpoint(fake_checkpoint(tmp_path / "torn", "model.safetensors", state="{trunc"))
    run = tmp_path / "run"
    fake_checkpoint(run / "checkpoint-10", "model.safetensors.index.json")
    fake_checkpoint(run / "checkpoint-20", "model.safetensors.index.json", state="{")
    assert last_complete_checkpoint(run) == run / "checkpoint-10"


def test_a_changed_file_gets_a_new_hash_in_the_same_process(tmp_path):
    """Runs in one process (tests, notebooks) must see an edited training file as edited."""
    import os

    path = tmp_path / "train.json"
    path.write_text("one", encoding="utf-8")
    first = file_sha256(str(path))
    path.write_text("two", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # even with a modification time that does not move forward
    assert file_sha256(str(path)) != first and file_sha256(None) is None


def test_changed_sensitive_arguments_are_named(tmp_path):
    previous = {"DataTrainingArguments": {"max_seq_length": 64, "doc_stride": 16}, "Run": {"samples_per_optimizer_step": 4}}
    (tmp_path / "run_args.json").write_text(json.dumps(previous), encoding="utf-8")
    same = {"DataTrainingArguments": {"max_seq_length": 64, "doc_stride": 16}, "Run": {"samples_per_optimizer_step": 4}}
    check_resume_compatible(tmp_path, same)
    changed = {"DataTrainingArguments": {"max_seq_length": 96, "doc_stride": 16}, "Run": {"samples_per_optimizer_step": 8}}
    with pytest.raises(ConfigError) as err:
        check_resume_compatible(tmp_path, changed)
    assert "max_seq_length: 64 in the checkpointed run, 96 now" in str(err.value)
    assert "samples_per_optimizer_step: 4 in the checkpointed run, 8 now" in str(err.value)
