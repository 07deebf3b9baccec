"""Turn stored labels into an official nested SQuAD v2 file that run_qa.py trains on.

Each answer becomes a question on the passage around it (the same passages the server
reads, so training sees what serving sees; a span longer than one passage gets the run of
passages that covers it), with `answer_start` exact. A "not in these documents" label
becomes an unanswerable question on each passage retrieved for it (the passages the model
read when it was asked): those are the hard negatives.

Nothing is lost silently: every label is either in the file or in the report with its
reason (its document changed or vanished since it was labelled, a later label for the
same question overrides it, it marks a wrong model answer, it repeats another label).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from slmqa.serving.documents import Document, Passage, split_passages
from slmqa.serving.labels import Label, text_sha256

ANSWER_KINDS = ("answer", "confirmed")
DEFAULT_NEGATIVE_PASSAGES = 3


@dataclass
class ExportReport:
    """What the export did with each label: the counts add up to `labels`."""

    labels: int = 0
    answers: int = 0  # labels exported as answered questions
    unanswerable: int = 0  # no-answer labels exported (each on one or more passages)
    negative_passages: int = 0
    skipped: list[dict] = field(default_factory=list)  # {"id", "question", "reason"[, "by_label"]}

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(item["reason"] for item in self.skipped))

    def to_json(self) -> dict:
        return {"labels": self.labels, "answers": self.answers, "unanswerable": self.unanswerable,
                "negative_passages": self.negative_passages, "skipped": len(self.skipped),
                "skipped_by_reason": self.skipped_by_reason(), "skipped_labels": self.skipped}


def question_key(question: str) -> str:
    """Two labels are about the same question when they differ only in case, spacing and end punctuation."""
    return " ".join(re.sub(r"[?.!]+$", "", question.strip()).lower().split())


def answer_context(passages: list[Passage], start: int, end: int) -> tuple[int, int]:
    """The document range to use as the context of the span start:end.

    The passage holding the span with the most room on both sides; when no single passage
    holds it, the shortest run of consecutive passages that does.
    """
    holding = [p for p in passages if p.start <= start and end <= p.end]
    if holding:
        best = max(holding, key=lambda p: (min(start - p.start, p.end - end), -p.start))
        return best.start, best.end
    first = max((p for p in passages if p.start <= start), key=lambda p: p.start, default=passages[0])
    last = min((p for p in passages if p.end >= end), key=lambda p: p.end, default=passages[-1])
    return first.start, max(last.end, end)


def _current_labels(labels: list[Label], report: ExportReport) -> list[Label]:
    """The labels still in force: the latest word on each question (and on each span) wins."""
    latest_kind: dict[str, Label] = {}
    latest_on_span: dict[tuple, Label] = {}
    for label in labels:  # oldest first
        key = question_key(label.question)
        if label.kind != "rejected":
            latest_kind[key] = label
        if label.kind != "no_answer":
            latest_on_span[(key, label.document, label.start, label.end)] = label
    kept, seen_spans = [], set()
    for label in labels:
        key = question_key(label.question)
        span = (key, label.document, label.start, label.end)
        by = None  # the later label that decides, when one does
        if label.kind == "rejected":
            reason = "marks a wrong model answer (kept in the database, not training data)"
        elif label.kind == "no_answer" and latest_kind[key].kind != "no_answer":
            reason, by = "overridden by a later answer to the same question", latest_kind[key].id
        elif label.kind != "no_answer" and latest_kind[key].kind == "no_answer":
            reason, by = "overridden by a later 'not in these documents' for the same question", latest_kind[key].id
        elif label.kind != "no_answer" and latest_on_span[span].kind == "rejected":
            reason, by = "this answer was later marked wrong", latest_on_span[span].id
        elif label.kind != "no_answer" and span in seen_spans:
            reason = "repeats an earlier label (same question and span)"
        else:
            if label.kind != "no_answer":
                seen_spans.add(span)
            kept.append(label)
            continue
        report.skipped.append({"id": label.id, "question": label.question, "reason": reason}
                              | ({"by_label": by} if by is not None else {}))
    return kept


def export_squad(
    labels: Iterable[Label],
    documents: Mapping[str, Document],
    passage_words: int = 100,
    passage_overlap: int = 25,
    negative_passages: int = DEFAULT_NEGATIVE_PASSAGES,
) -> tuple[dict, ExportReport]:
    """The labels as nested SQuAD v2 ({"version", "data": [articles]}) and what happened to each label."""
    labels = list(labels)
    report = ExportReport(labels=len(labels))
    passages_cache: dict[str, list[Passage]] = {}
    paragraphs: dict[str, dict[tuple[int, int], list[dict]]] = defaultdict(lambda: defaultdict(list))

    def document_problem(name: str | None, sha256: str | None) -> str | None:
        document = documents.get(name)
        if document is None:
            return f"its document {name!r} is no longer in the folder"
        if text_sha256(document.text) != sha256:
            return f"its document {name!r} changed since it was labelled"
        return None

    for label in _current_labels(labels, report):
        if label.kind in ANSWER_KINDS:
            problem = document_problem(label.document, label.document_sha256)
            if problem:
                report.skipped.append({"id": label.id, "question": label.question, "reason": problem})
                continue
            document = documents[label.document]
            if label.document not in passages_cache:
                passages_cache[label.document] = split_passages(document, passage_words, passage_overlap)
            context = answer_context(passages_cache[label.document], label.start, label.end)
            paragraphs[label.document][context].append({
                "id": f"label-{label.id}", "question": label.question, "is_impossible": False,
                "answers": [{"text": label.answer, "answer_start": label.start - context[0]}],
            })
            report.answers += 1
            continue
        usable = [ref for ref in label.passages if not document_problem(ref.document, ref.document_sha256)]
        if not usable:
            reason = "no passage was retrieved for it" if not label.passages else "every passage retrieved for it changed or vanished"
            report.skipped.append({"id": label.id, "question": label.question, "reason": reason})
            continue
        for number, ref in enumerate(usable[:negative_passages]):
            paragraphs[ref.document][(ref.start, ref.end)].append({
                "id": f"label-{label.id}-p{number}", "question": label.question, "is_impossible": True, "answers": [],
            })
            report.negative_passages += 1
        report.unanswerable += 1

    articles = [
        {"title": name, "paragraphs": [
            {"context": documents[name].text[start:end], "qas": qas}
            for (start, end), qas in sorted(by_context.items())
        ]}
        for name, by_context in sorted(paragraphs.items())
    ]
    return {"version": "v2.0", "data": articles}, report


def split_by_document(squad: dict, heldout_fraction: float, seed: int = 42) -> tuple[dict, dict]:
    """(train, held-out) with whole documents on each side, so no held-out text is trained on."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be between 0 and 1, got {heldout_fraction}.")
    articles = sorted(squad["data"], key=lambda article: article["title"])
    if len(articles) < 2:
        raise ValueError(f"Splitting by document needs labels in at least 2 documents; these are in {len(articles)}.")
    random.Random(seed).shuffle(articles)
    heldout_count = min(len(articles) - 1, max(1, round(heldout_fraction * len(articles))))
    heldout = sorted(articles[:heldout_count], key=lambda article: article["title"])
    train = sorted(articles[heldout_count:], key=lambda article: article["title"])
    return {"version": squad["version"], "data": train}, {"version": squad["version"], "data": heldout}
