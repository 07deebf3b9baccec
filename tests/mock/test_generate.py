"""slmqa.mock.generate: spans correct by construction, determinism, splits, formats."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from slmqa.mock import generate
from slmqa.mock import spec as specs
from tests.helpers import ROOT

EXAMPLE_SPEC = ROOT / "slmqa" / "mock" / "domains" / "example_domain.json"
SMALL = {"train": 120, "validation": 40, "test": 40}



def _all_records(splits: dict[str, list[dict]]) -> list[dict]:
    return [record for records in splits.values() for record in records]


def _assert_valid_spans(records: list[dict]) -> None:
    for record in records:
        context = record["context"]
        for text, start in zip(record["answers"]["text"], record["answers"]["answer_start"]):
            end = start + len(text)
            assert context[start:end] == text, record["id"]
            assert start == 0 or not context[start - 1].isalnum(), record["id"]
            assert end == len(context) or not context[end].isalnum(), record["id"]


@pytest.mark.parametrize("domain", sorted(specs.BUILTIN_DOMAINS))
def test_spans_slice_to_answer_on_word_boundaries(domain: str) -> None:
    splits = generate.generate_dataset(domain, {"train": 1200, "validation": 200}, seed=7, impossible_ratio=0.2,
                                 long_context_ratio=0.3)
    records = _all_records(splits)
    assert len(records) == 1400
    _assert_valid_spans(records)
    answerable = [r for r in records if not r["is_impossible"]]
    assert all(len(r["answers"]["text"]) == 1 for r in answerable)
    assert any(" " in r["answers"]["text"][0] for r in answerable), "expected some multi-word answers"
    assert all(len(r["answers"]["text"][0]) > 1 for r in answerable)


def test_self_check_catches_a_wrong_span_and_nothing_is_written(tmp_path: Path) -> None:
    splits = generate.generate_dataset("equipment_manual", {"train": 20}, seed=1)
    broken = copy.deepcopy(splits)
    broken["train"][3]["answers"]["answer_start"][0] += 1
    with pytest.raises(generate.DatasetCheckError, match="expected"):
        generate.verify_dataset(broken)
    with pytest.raises(generate.DatasetCheckError):
        generate.write_dataset(broken, tmp_path / "out")
    assert not (tmp_path / "out" / "train.json").exists()


@pytest.mark.parametrize("fmt", generate.FORMATS)
def test_same_seed_gives_byte_identical_files(tmp_path: Path, fmt: str) -> None:
    def write(seed: int, name: str) -> dict[str, bytes]:
        splits = generate.generate_dataset("hr_policy", SMALL, seed=seed, impossible_ratio=0.3)
        paths = generate.write_dataset(splits, tmp_path / name, fmt, domain_name="hr_policy")
        return {split: path.read_bytes() for split, path in paths.items()}

    first, again, other = write(5, "a"), write(5, "b"), write(6, "c")
    assert first == again
    assert all(first[split] != other[split] for split in SMALL)


def test_no_context_shared_between_splits() -> None:
    for domain in specs.BUILTIN_DOMAINS:
        splits = generate.generate_dataset(domain, {"train": 600, "validation": 150, "test": 150}, seed=3)
        contexts = {split: {r["context"] for r in records} for split, records in splits.items()}
        assert not contexts["train"] & contexts["validation"]
        assert not contexts["train"] & contexts["test"]
        assert not contexts["validation"] & contexts["test"]


def test_shared_context_is_rejected() -> None:
    splits = generate.generate_dataset("equipment_manual", {"train": 10, "test": 10}, seed=2)
    splits["test"][0] = dict(splits["train"][0], id="copied")
    with pytest.raises(generate.DatasetCheckError, match="also appears"):
        generate.verify_dataset(splits)


@pytest.mark.parametrize("ratio", [0.0, 0.33, 0.5])
def test_impossible_ratio_and_empty_answers(ratio: float) -> None:
    records = generate.generate_dataset("clinical_trial", {"train": 1000}, seed=11, impossible_ratio=ratio)["train"]
    impossible = [r for r in records if r["is_impossible"]]
    assert abs(len(impossible) / len(records) - ratio) <= 0.05
    assert all(r["answers"] == {"text": [], "answer_start": []} for r in impossible)
    assert all(r["answers"]["text"] for r in records if not r["is_impossible"])


def _stated_values(spec: dict, record: dict) -> tuple[str, list[tuple[str, int]]]:
    """Entity named in the question, and (value, position) of every fact sentence stating the asked
    attribute for it, found by re-rendering the spec's templates (independent of the generator)."""
    entity = next(e for e in spec["entities"] if e in record["question"])
    attr = next(a for a in spec["attributes"].values()
                if any(q.format(entity=entity) == record["question"] for q in a["question_templates"]))
    stated = []
    for template in attr["context_templates"]:
        for value in attr["values"]:
            sentence = template.format(entity=entity, value=value)
            position = record["context"].find(sentence)
            if position >= 0:
                stated.append((value, position + template.format(entity=entity, value="\0").index("\0")))
    return entity, stated


@pytest.mark.parametrize("domain", sorted(specs.BUILTIN_DOMAINS))
def test_answers_belong_to_the_asked_entity_and_impossible_ones_are_unstated(domain: str) -> None:
    spec = specs.load_domain(domain)
    records = generate.generate_dataset(domain, {"train": 600}, seed=4, impossible_ratio=0.4, long_context_ratio=0.2)
    reasons = {"absent": 0, "unstated": 0}
    for record in records["train"]:
        entity, stated = _stated_values(spec, record)
        if record["is_impossible"]:
            assert stated == [], record["id"]
            reasons["absent" if entity not in record["context"] else "unstated"] += 1
        else:
            answer = (record["answers"]["text"][0], record["answers"]["answer_start"][0])
            assert stated == [answer], record["id"]
    assert reasons["absent"] > 20 and reasons["unstated"] > 20


def test_contexts_contain_same_attribute_for_other_entities() -> None:
    """Distractors: most contexts state some value of the asked attribute besides the answer."""
    spec = specs.load_domain("equipment_manual")
    records = generate.generate_dataset("equipment_manual", {"train": 300}, seed=9)["train"]
    with_rival = 0
    for record in records:
        answer = record["answers"]["text"][0]
        pool = next(a["values"] for a in spec["attributes"].values() if answer in a["values"])
        if any(v != answer and v in record["context"] for v in pool):
            with_rival += 1
    assert with_rival / len(records) > 0.8


def test_long_contexts_exist_when_requested() -> None:
    def long_share(ratio: float) -> tuple[float, int]:
        records = generate.generate_dataset("equipment_manual", {"train": 1000}, seed=8, long_context_ratio=ratio)["train"]
        contexts = {r["context"] for r in records}
        n_long = sum(len(c.split()) > 384 for c in contexts)
        return n_long / len(contexts), max(len(c) for c in contexts)

    share, longest = long_share(0.3)
    assert 0.2 <= share <= 0.4
    assert longest > 2000
    assert long_share(0.0)[0] == 0.0


def test_min_and_max_facts_control_context_size() -> None:
    short = generate.generate_dataset("hr_policy", {"train": 200}, seed=1, long_context_ratio=0, min_facts=2, max_facts=2)
    longer = generate.generate_dataset("hr_policy", {"train": 200}, seed=1, long_context_ratio=0, min_facts=10, max_facts=12)
    def mean_length(records: list[dict]) -> float:
        return sum(len(r["context"]) for r in records) / len(records)

    assert mean_length(longer["train"]) > 2 * mean_length(short["train"])


def test_example_spec_generates_valid_data(tmp_path: Path) -> None:
    splits = generate.generate_dataset(str(EXAMPLE_SPEC), SMALL, impossible_ratio=0.33, long_context_ratio=0.3)
    _assert_valid_spans(_all_records(splits))
    assert splits["train"][0]["id"].startswith("software_sla-")
    spec = json.loads(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    assert generate.generate_dataset(spec, SMALL) == generate.generate_dataset(str(EXAMPLE_SPEC), SMALL)


def test_formats_parse_as_documented(tmp_path: Path) -> None:
    splits = generate.generate_dataset("equipment_manual", {"train": 50, "test": 30}, impossible_ratio=0.3)
    keys = {"id", "title", "context", "question", "answers", "is_impossible"}

    flat = json.loads(generate.write_dataset(splits, tmp_path / "j", "json", "equipment_manual")["train"]
                      .read_text(encoding="utf-8"))
    assert flat["version"] == "mock-equipment_manual"
    assert flat["data"] == splits["train"] and all(set(r) == keys for r in flat["data"])

    jsonl_path = generate.write_dataset(splits, tmp_path / "l", "jsonl")["test"]
    assert jsonl_path.name == "test.jsonl"
    lines = jsonl_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == splits["test"]

    squad = json.loads(generate.write_dataset(splits, tmp_path / "s", "squad")["train"].read_text(encoding="utf-8"))
    qas = []
    for article in squad["data"]:
        assert set(article) == {"title", "paragraphs"}
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                assert set(qa) == {"id", "question", "answers", "is_impossible"}
                for answer in qa["answers"]:
                    start = answer["answer_start"]
                    assert paragraph["context"][start:start + len(answer["text"])] == answer["text"]
                qas.append(qa["id"])
    assert qas == [r["id"] for r in splits["train"]]


def test_files_are_utf8_without_escapes(tmp_path: Path) -> None:
    splits = generate.generate_dataset("equipment_manual", {"train": 200}, seed=1)
    text = generate.write_dataset(splits, tmp_path)["train"].read_text(encoding="utf-8")
    assert "°C" in text and "\\u00b0" not in text
