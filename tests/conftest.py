"""Shared fixtures: the offline MiniLM tokenizer, a tiny randomly initialised BERT, a small dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_record, minilm_path, write_flat


@pytest.fixture(autouse=True)
def private_data_home(tmp_path_factory, monkeypatch):
    """Label databases and indexes a test does not place itself go to a temporary folder, never the user's home."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))


@pytest.fixture(autouse=True)
def cpu_without_bf16(monkeypatch):
    """`auto` precision decides alike on every machine: as on a CPU without bfloat16 units (float32), here and in
    the commands tests start as processes. Tests of the choice itself set other flags."""
    monkeypatch.setenv("SLMQA_CPU_FLAGS", "fpu sse2 avx2")


@pytest.fixture(scope="session")
def base_model_path() -> Path:
    return minilm_path()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A 2-layer, 32-wide BERT with a QA head: fast enough for end-to-end runs in tests."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    directory = tmp_path_factory.mktemp("tiny-bert")
    BertForQuestionAnswering(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def small_dataset(tmp_path) -> dict[str, Path]:
    """Twelve short answerable records per split, enough for a few training steps."""
    facts = [
        ("pump P-{i}", "pressure", "{p} bar"),
        ("valve V-{i}", "torque", "{p} Nm"),
        ("motor M-{i}", "speed", "{p} rpm"),
    ]
    splits = {}
    for split, offset in (("train", 0), ("validation", 100), ("test", 200)):
        records = []
        for i in range(12):
            entity, attribute, value = facts[i % 3]
            entity = entity.format(i=i + offset)
            value = value.format(p=10 + i + offset)
            context = f"The {entity} is installed in hall {i}. Its {attribute} is {value} under normal load."
            records.append(make_record(f"{split}-{i}", context, f"What is the {attribute} of the {entity}?", value))
        splits[split] = write_flat(tmp_path / f"{split}.json", records)
    return splits
