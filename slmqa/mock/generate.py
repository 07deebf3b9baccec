"""Realistic, deterministic SQuAD-format mock data for a domain, made on demand.

Why: the training pipeline needs data that looks like a real extractive-QA task (several
entities per passage, paraphrased questions, distractors, unanswerable questions, passages
longer than one 384-token window) without downloading anything, and whose answer spans are
correct by construction. Spans are recorded where each value is written while the context is
assembled (never searched for afterwards) and every record is checked before it is returned
or written.

A passage ("context") states facts about 2-3 entities (4-6 for long ones, which are padded to
at least LONG_CONTEXT_MIN_WORDS whitespace words, hence more than 384 BERT tokens). Questions
are about stated (entity, attribute) pairs; unanswerable ones ask about an attribute the passage
does not state for a mentioned entity, or about an entity the passage never mentions.
Domains are spec files (format and checks: spec.py).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from slmqa.mock.spec import load_domain

logger = logging.getLogger(__name__)

FORMATS = ("json", "jsonl", "squad")
DEFAULT_SIZES = {"train": 600, "validation": 150, "test": 150}
LONG_CONTEXT_MIN_WORDS = 400  # whitespace words; every word is >= 1 word piece, so > 384 tokens
MAX_DISTRACTOR_ENTITIES = 2
QUESTIONS_PER_CONTEXT = {"short": (2, 4), "long": (4, 8)}


class DatasetCheckError(RuntimeError):
    """Generated data failed a self-check: a generator bug, so nothing is written."""


# ----------------------------------------------------------------------------- generation

@dataclass
class _Passage:
    title: str
    text: str
    facts: dict[tuple[str, str], tuple[str, int]]  # (entity, attribute) -> (value, answer_start)
    fact_entities: list[str]
    mentioned: set[str]  # fact and distractor entities


def _render(template: str, value: str, **fields: str) -> tuple[str, int]:
    """Fill a template and return (sentence, offset of the value within it)."""
    before, after = template.split("{value}")
    prefix = before.format(**fields)
    return prefix + value + after.format(**fields), len(prefix)


def _build_passage(spec: dict, rng: random.Random, number: int, is_long: bool, min_facts: int,
                   max_facts: int) -> _Passage:
    """Assemble one context sentence by sentence, recording each fact's answer offset as it is written."""
    attributes = spec["attributes"]
    max_fact_entities = len(spec["entities"]) - MAX_DISTRACTOR_ENTITIES - 1  # keep one entity never mentioned
    if is_long:
        fact_entities = rng.sample(spec["entities"], min(rng.randint(4, 6), max_fact_entities))
        pairs = [(entity, attr) for entity in fact_entities for attr in attributes]
    else:
        n_facts = rng.randint(min_facts, max_facts)
        fact_entities = rng.sample(spec["entities"], min(rng.randint(2, 3), n_facts, max_fact_entities))
        n_attrs = min(len(attributes), max(2, -(-n_facts // len(fact_entities)) + 1))
        shared_attrs = rng.sample(list(attributes), n_attrs)  # a small shared set => same attribute, other entity
        firsts = [(entity, rng.choice(shared_attrs)) for entity in fact_entities]
        rest = [(e, a) for e in fact_entities for a in shared_attrs if (e, a) not in firsts]
        rng.shuffle(rest)
        pairs = firsts + rest[:max(0, n_facts - len(firsts))]
    pools: dict[str, list[str]] = {}

    def next_value(attr: str) -> str:  # distinct values per attribute within a passage while the pool lasts
        if not pools.get(attr):
            pools[attr] = rng.sample(attributes[attr]["values"], len(attributes[attr]["values"]))
        return pools[attr].pop()

    sentences: list[tuple[str, tuple[str, str] | None, str, int]] = []  # (text, fact key, value, offset)
    for entity in fact_entities:
        group = [pair for pair in pairs if pair[0] == entity]
        rng.shuffle(group)
        for _, attr in group:
            value = next_value(attr)
            text, offset = _render(rng.choice(attributes[attr]["context_templates"]), value, entity=entity)
            sentences.append((text, (entity, attr), value, offset))
    stated_attrs = sorted({attr for _, attr in pairs}, key=list(attributes).index)
    others = [entity for entity in spec["entities"] if entity not in fact_entities]
    distractor_entities = rng.sample(others, MAX_DISTRACTOR_ENTITIES)
    mentioned = set(fact_entities)

    def add_distractor() -> None:
        entity, attr = rng.choice(distractor_entities), rng.choice(stated_attrs)
        mentioned.add(entity)
        text, _ = _render(rng.choice(spec["distractor_templates"]), next_value(attr), entity=entity,
                          attribute=attributes[attr]["label"])
        sentences.insert(rng.randint(0, len(sentences)), (text, None, "", 0))

    fillers = spec["filler_sentences"]
    chosen_fillers = rng.sample(fillers, len(fillers) if is_long else min(len(fillers), rng.randint(0, 2)))
    for filler in chosen_fillers:
        sentences.insert(rng.randint(0, len(sentences)), (filler, None, "", 0))
    for _ in range(3 if is_long else rng.randint(1, 2)):
        add_distractor()
    for _ in range(500):
        if not is_long or sum(len(s[0].split()) for s in sentences) >= LONG_CONTEXT_MIN_WORDS:
            break
        add_distractor()
    else:
        raise DatasetCheckError(f"domain {spec['name']!r}: cannot pad a context to {LONG_CONTEXT_MIN_WORDS} words")
    facts: dict[tuple[str, str], tuple[str, int]] = {}
    pieces: list[str] = []
    length = 0
    for text, key, value, offset in sentences:
        if pieces:
            length += 1  # the joining space
        if key is not None:
            facts[key] = (value, length + offset)
        pieces.append(text)
        length += len(text)
    title = spec["title_template"].format(entity=fact_entities[0], number=number)
    return _Passage(title, " ".join(pieces), facts, fact_entities, mentioned)


def _ask(spec: dict, rng: random.Random, passage: _Passage, impossible: bool,
         asked: set[tuple[str, str]]) -> tuple[str, tuple[str, int] | None, str, str | None] | None:
    """Pick an unasked (entity, attribute) pair; returns (question, answer, attribute, unanswerable reason)."""
    attributes = spec["attributes"]
    if not impossible:
        options = [key for key in passage.facts if key not in asked]
        reason = None
    else:
        unstated = [(e, a) for e in passage.fact_entities for a in attributes if (e, a) not in passage.facts]
        stated_attrs = sorted({a for _, a in passage.facts}, key=list(attributes).index)
        absent = [(e, a) for e in spec["entities"] if e not in passage.mentioned and e not in passage.text
                  for a in stated_attrs]
        kinds = {"unstated_attribute": [k for k in unstated if k not in asked],
                 "absent_entity": [k for k in absent if k not in asked]}
        kinds = {kind: keys for kind, keys in kinds.items() if keys}
        if not kinds:
            return None
        reason = rng.choice(sorted(kinds))
        options = kinds[reason]
    if not options:
        return None
    entity, attr = rng.choice(options)
    asked.add((entity, attr))
    question = rng.choice(attributes[attr]["question_templates"]).format(entity=entity)
    return question, None if impossible else passage.facts[(entity, attr)], attr, reason


def _generate_split(spec: dict, split: str, n_questions: int, seed: int, impossible_ratio: float,
                    long_context_ratio: float, min_facts: int, max_facts: int,
                    seen_contexts: set[str]) -> tuple[list[dict], list[tuple[str, str | None]]]:
    rng = random.Random(f"{seed}:{spec['name']}:{split}")  # per split, so one split's size leaves others alone
    n_impossible = round(n_questions * impossible_ratio)
    flags = [True] * n_impossible + [False] * (n_questions - n_impossible)
    rng.shuffle(flags)
    records: list[dict] = []
    question_types: list[tuple[str, str | None]] = []
    number = 0
    while len(records) < n_questions:
        is_long = rng.random() < long_context_ratio
        passage = _build_passage(spec, rng, number + 1, is_long, min_facts, max_facts)
        if passage.text in seen_contexts:  # keep every context unique, across splits too
            continue
        seen_contexts.add(passage.text)
        number += 1
        low, high = QUESTIONS_PER_CONTEXT["long" if is_long else "short"]
        wanted = min(rng.randint(low, high), n_questions - len(records))
        asked: set[tuple[str, str]] = set()
        for impossible in flags[len(records):len(records) + wanted]:
            made = _ask(spec, rng, passage, impossible, asked)
            if made is None:
                break
            question, answer, attr, reason = made
            records.append({
                "id": f"{spec['name']}-{seed}-{split}-{len(records):05d}", "title": passage.title,
                "context": passage.text, "question": question,
                "answers": {"text": [answer[0]] if answer else [], "answer_start": [answer[1]] if answer else []},
                "is_impossible": answer is None})
            question_types.append((attr, reason))
        if not asked:
            raise DatasetCheckError(f"domain {spec['name']!r}: no question could be asked about a context")
    return records, question_types


def verify_dataset(splits: dict[str, list[dict]]) -> None:
    """Raise DatasetCheckError unless every span slices to its text on word boundaries and no context
    appears in two splits; run before anything is returned or written."""
    owner: dict[str, str] = {}
    for split, records in splits.items():
        for record in records:
            answers, context = record["answers"], record["context"]
            if record["is_impossible"] != (not answers["text"]) or len(answers["text"]) != len(answers["answer_start"]):
                raise DatasetCheckError(f"{record['id']}: is_impossible does not match answers {answers}")
            for text, start in zip(answers["text"], answers["answer_start"]):
                end = start + len(text)
                if start < 0 or context[start:end] != text:
                    raise DatasetCheckError(f"{record['id']}: context[{start}:{end}] is "
                                            f"{context[start:end]!r}, expected {text!r}")
                if (start > 0 and context[start - 1].isalnum()) or (end < len(context) and context[end].isalnum()):
                    raise DatasetCheckError(f"{record['id']}: answer {text!r} is not on word boundaries")
            if owner.setdefault(context, split) != split:
                raise DatasetCheckError(f"{record['id']}: context also appears in split {owner[context]!r}")


def generate_splits(domain: str | dict, sizes: dict[str, int], seed: int, impossible_ratio: float,
                    long_context_ratio: float, min_facts: int,
                    max_facts: int) -> tuple[dict, dict[str, list[dict]], dict[str, list[tuple[str, str | None]]]]:
    """(spec, {split: records}, {split: (attribute, unanswerable reason) per question}), checked."""
    for name, ratio in (("impossible_ratio", impossible_ratio), ("long_context_ratio", long_context_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    if not 1 <= min_facts <= max_facts:
        raise ValueError(f"need 1 <= min_facts <= max_facts, got {min_facts} and {max_facts}")
    if any(not isinstance(n, int) or n < 0 for n in sizes.values()):
        raise ValueError(f"split sizes must be non-negative integers, got {sizes}")
    spec = load_domain(domain)
    seen: set[str] = set()
    splits, types = {}, {}
    for split, n_questions in sizes.items():
        splits[split], types[split] = _generate_split(spec, split, n_questions, seed, impossible_ratio,
                                                      long_context_ratio, min_facts, max_facts, seen)
    verify_dataset(splits)
    return spec, splits, types


def generate_dataset(domain: str | dict, sizes: dict[str, int] | None = None, seed: int = 42,
                     impossible_ratio: float = 0.0, long_context_ratio: float = 0.1, min_facts: int = 4,
                     max_facts: int = 8) -> dict[str, list[dict]]:
    """Make {split: flat records} for a built-in name, spec path or spec dict; sizes count questions.

    long_context_ratio is the share of contexts padded past LONG_CONTEXT_MIN_WORDS words;
    impossible_ratio is the exact share (rounded) of unanswerable questions per split.
    """
    return generate_splits(domain, dict(sizes or DEFAULT_SIZES), seed, impossible_ratio, long_context_ratio,
                     min_facts, max_facts)[1]


# ----------------------------------------------------------------------------- output

def _to_squad(records: list[dict]) -> list[dict]:
    """Nest flat records as articles (one per title) -> paragraphs (one per context) -> qas."""
    articles: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        qas = articles.setdefault(record["title"], {}).setdefault(record["context"], [])
        answers = [{"text": t, "answer_start": s}
                   for t, s in zip(record["answers"]["text"], record["answers"]["answer_start"])]
        qas.append({"id": record["id"], "question": record["question"], "answers": answers,
                    "is_impossible": record["is_impossible"]})
    return [{"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
            for title, paragraphs in articles.items()]


def write_dataset(splits: dict[str, list[dict]], output_dir: str | Path, fmt: str = "json",
                  domain_name: str | None = None) -> dict[str, Path]:
    """Check, then write each split to {output_dir}/{split}.json|jsonl (UTF-8); returns split -> path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    verify_dataset(splits)
    version = f"mock-{domain_name}" if domain_name else "mock"
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, records in splits.items():
        path = output_dir / f"{split}.{'jsonl' if fmt == 'jsonl' else 'json'}"
        if fmt == "jsonl":
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        else:
            data = records if fmt == "json" else _to_squad(records)
            text = json.dumps({"version": version, "data": data}, ensure_ascii=False, indent=1) + "\n"
        path.write_text(text, encoding="utf-8", newline="\n")
        paths[split] = path
    return paths


def summarize(splits: dict[str, list[dict]], question_types: dict[str, list[tuple[str, str | None]]],
              seconds: float) -> str:
    """A plain-text table of counts per split and per question type, plus generation speed."""
    lines = [f"{'split':<12}{'questions':>10}{'contexts':>10}{'answerable':>12}{'unanswerable':>14}{'long ctx':>10}"]
    for split, records in splits.items():
        contexts = {record["context"] for record in records}
        n_long = sum(len(c.split()) >= LONG_CONTEXT_MIN_WORDS for c in contexts)
        n_impossible = sum(record["is_impossible"] for record in records)
        lines.append(f"{split:<12}{len(records):>10}{len(contexts):>10}{len(records) - n_impossible:>12}"
                     f"{n_impossible:>14}{n_long:>10}")
    answerable, unanswerable = Counter(), Counter()
    for types in question_types.values():
        for attr, reason in types:
            (unanswerable if reason else answerable)[attr] += 1
    lines += ["", f"{'question type':<26}{'answerable':>12}{'unanswerable':>14}"]
    for attr in sorted(answerable.keys() | unanswerable.keys()):
        lines.append(f"{attr:<26}{answerable[attr]:>12}{unanswerable[attr]:>14}")
    reasons = Counter(reason for types in question_types.values() for _, reason in types if reason)
    if reasons:
        lines.append("unanswerable by reason: " + ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())))
    total = sum(len(records) for records in splits.values())
    lines.append(f"\n{total} records in {seconds:.2f} s ({total / max(seconds, 1e-9):,.0f} records/s)")
    return "\n".join(lines)
