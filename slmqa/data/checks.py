"""Checking and repairing records: the data report.

Real data is never clean: answer offsets drift by a few characters, records miss fields,
ids repeat. Every record is checked before any model is loaded; the user's column names
are mapped to the SQuAD fields, a span that is off by a few characters is moved to the
nearest exact occurrence, a rare unusable record is dropped and listed in the split's
`SplitReport` (data_report.json), and a file with too many of them stops the run with an
error that names the file, the records and the fields.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset

from slmqa.data.columns import ColumnMap
from slmqa.errors import DataError
from slmqa.settings import QASettings, question_token_budget

logger = logging.getLogger(__name__)

# A span whose exact text sits further away than this from its stated start is not a
# small offset error but a wrong label; it is dropped, not "repaired".
REPAIR_WINDOW_CHARS = 100
NOT_IN_CONTEXT = "answer text does not occur in the context"


@dataclass
class Defect:
    """Why one record could not be used as given."""

    index: int
    id: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"record {self.index} (id {self.id!r}), field '{self.field}': {self.reason}"


@dataclass
class Repair:
    """An answer start moved to the nearest exact occurrence of its text."""

    index: int
    id: str
    field: str
    stated: int
    repaired: int

    def __str__(self) -> str:
        return f"record {self.index} (id {self.id!r}), field '{self.field}': {self.stated} -> {self.repaired}"


@dataclass
class SplitReport:
    """What happened to one split's records; saved as part of data_report.json.

    The counts add up: records = kept + dropped_records + skipped_by_max_samples, and
    kept = answerable + unanswerable, also for a file that is refused (then kept says how
    many records were usable when the defects stopped it).
    """

    source: str
    records: int = 0
    kept: int = 0
    answerable: int = 0
    unanswerable: int = 0
    repaired_spans: int = 0
    located_spans: int = 0
    ambiguous_spans: int = 0
    generated_ids: int = 0
    skipped_by_max_samples: int = 0
    dropped: list[Defect] = field(default_factory=list)
    # Evaluation records whose span could not be located are kept: scoring uses the text.
    unlocated: list[Defect] = field(default_factory=list)
    repaired: list[Repair] = field(default_factory=list)
    # Set once the split is tokenized: windows before and after --keep_answerless_windows
    # (evaluation splits keep all of theirs; answer/answerless are known for training only).
    windows: int | None = None
    windows_kept: int | None = None
    answer_windows: int | None = None
    answerless_windows: int | None = None
    answerless_windows_kept: int | None = None

    def window_counts(self) -> dict[str, int]:
        names = ("windows", "windows_kept", "answer_windows", "answerless_windows", "answerless_windows_kept")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def counts(self) -> dict[str, int]:
        return {
            "records": self.records,
            "kept": self.kept,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "repaired_spans": self.repaired_spans,
            "dropped_records": len(self.dropped),
            "unlocated_spans": len(self.unlocated),
            "skipped_by_max_samples": self.skipped_by_max_samples,
        } | self.window_counts()


DUPLICATE_ID = "duplicate id"
QUESTION_TOO_LONG = "too long for a window"


def dropped_by_kind(dropped: list[Defect]) -> dict[str, int]:
    """How many records were dropped as repeated ids and as questions too long for a window."""
    return {
        "duplicate_ids": sum(1 for d in dropped if d.reason.startswith(DUPLICATE_ID)),
        "questions_too_long": sum(1 for d in dropped if d.reason.startswith(QUESTION_TOO_LONG)),
    }


class RecordDefect(Exception):
    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise RecordDefect("answers", "looks like JSON but does not parse") from None
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return [value]


def normalize_answers(value: Any) -> list[tuple[str, int | None]]:
    """Accept the answer layouts found in the wild and return (text, start-or-None) pairs.

    Layouts: {"text": [...], "answer_start": [...]} (also scalars), a list of
    {"text", "answer_start"} dicts, a bare string or list of strings (start unknown), JSON
    strings of any of these (CSV cells), and None/[] for unanswerable.
    """
    value = _maybe_json(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, dict):
        texts = _as_list(value.get("text"))
        starts = _as_list(value.get("answer_start"))
        if starts and len(starts) != len(texts):
            raise RecordDefect("answers", f"{len(texts)} texts but {len(starts)} answer_start values")
        pairs = list(zip(texts, starts or [None] * len(texts)))
    elif isinstance(value, str):
        pairs = [(value, None)]
    elif isinstance(value, (list, tuple, np.ndarray)):
        pairs = []
        for item in value:
            if isinstance(item, dict):
                pairs.append((item.get("text"), item.get("answer_start")))
            else:
                pairs.append((item, None))
    else:
        raise RecordDefect("answers", f"unsupported type {type(value).__name__}")
    result = []
    for text, start in pairs:
        if not isinstance(text, str):
            raise RecordDefect("answers.text", f"expected a string, got {type(text).__name__}")
        if start is not None and not isinstance(start, int):
            try:
                start = int(start)
            except (TypeError, ValueError):
                raise RecordDefect("answers.answer_start", f"not an integer: {start!r}") from None
        result.append((text, start))
    return result


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def locate_span(context: str, text: str, start: int | None) -> tuple[int | None, str]:
    """Find where `text` sits in `context`; returns (start or None, how it was found).

    how: "exact" (start was right), "repaired" (nearest exact occurrence within
    REPAIR_WINDOW_CHARS), "located" / "ambiguous" (no start given: one / several
    occurrences, the first is taken), or a reason for failure: NOT_IN_CONTEXT (a defect of
    the text, whatever the start) or one that names the start (a defect of the start).
    """
    if start is not None and 0 <= start and context[start : start + len(text)] == text:
        return start, "exact"
    occurrences = []
    position = context.find(text)
    while position != -1:
        occurrences.append(position)
        position = context.find(text, position + 1)
    if not occurrences:
        return None, NOT_IN_CONTEXT
    if start is None:
        return occurrences[0], "located" if len(occurrences) == 1 else "ambiguous"
    if start < 0 or start >= len(context):
        return None, f"answer_start {start} is outside the context (length {len(context)})"
    nearest = min(occurrences, key=lambda p: (abs(p - start), p))
    if abs(nearest - start) <= REPAIR_WINDOW_CHARS:
        return nearest, "repaired"
    return None, f"answer text not at answer_start {start}; nearest occurrence is {abs(nearest - start)} chars away"


def defect_field(how: str) -> str:
    """The field a failed span is blamed on, whatever the format: the text when it occurs nowhere, else the start."""
    return "answers.text" if how == NOT_IN_CONTEXT else "answers.answer_start"


def stable_id(question: str, context: str) -> str:
    """An id for records that lack one: the same record always gets the same id."""
    return "gen-" + hashlib.sha1(f"{question}\x00{context}".encode("utf-8")).hexdigest()[:16]


class RecordChecker:
    """Checks the records of a split: the user's columns, the window settings, the defect limit."""

    def __init__(
        self,
        tokenizer,
        settings: QASettings,
        columns: ColumnMap = ColumnMap(),
        *,
        max_bad_fraction: float = 0.01,
        max_samples: dict[str, int | None] | None = None,
    ):
        """`tokenizer` measures questions (one too long for a window is unusable); `max_samples`
        keeps only the first N usable records of a split (by split name)."""
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be within [0, 1], got {max_bad_fraction}.")
        self.tokenizer = tokenizer
        self.settings = settings
        self.columns = columns
        self.max_bad_fraction = max_bad_fraction
        self.max_samples = max_samples or {}

    def check(self, split: str, records: list[dict], report: SplitReport) -> Dataset:
        """Check and clean raw records of one split into `report` (filled in also when it raises)."""
        source = report.source
        is_train = split == "train"
        limit = self.max_samples.get(split)
        report.records = len(records)
        if not records:
            raise DataError(f"{source}: the file holds no records.")
        cleaned: list[dict] = []
        source_index: dict[str, int] = {}
        seen: dict[str, tuple] = {}
        for index, raw in enumerate(records):
            try:
                record = self._check_record(raw, index, is_train, report)
            except RecordDefect as defect:
                field_name = self.columns.user_field(defect.field)
                report.dropped.append(Defect(index, self.columns.raw_id(raw), field_name, defect.reason))
                continue
            key = (record["question"], record["context"], record["answers"]["text"])
            if record["id"] in seen:
                same = seen[record["id"]] == key
                reason = f"{DUPLICATE_ID} (identical record)" if same else f"{DUPLICATE_ID} with different content"
                report.dropped.append(Defect(index, record["id"], self.columns.id, reason))
                continue
            seen[record["id"]] = key
            source_index[record["id"]] = index
            cleaned.append(record)
        self._drop_overlong_questions(cleaned, source_index, report)
        self._count(cleaned, report)
        self._enforce_defect_limit(source, report)
        if limit is not None and limit < len(cleaned):
            report.skipped_by_max_samples = len(cleaned) - limit
            cleaned = cleaned[:limit]
            self._count(cleaned, report)
        if not cleaned:
            raise DataError(f"{source}: no usable records left after checking ({len(report.dropped)} dropped).")
        if report.unanswerable and not self.settings.version_2_with_negative:
            logger.warning(
                "%s: %d unanswerable questions but --version_2_with_negative is off: they will be %s.",
                source,
                report.unanswerable,
                "trained towards the CLS position" if is_train else "scored as if an answer were expected",
            )
        logger.info("%s: %s", source, report.counts())
        for defect in report.dropped[:10]:
            logger.warning("%s: dropped %s", source, defect)
        return Dataset.from_list(cleaned)

    @staticmethod
    def _count(cleaned: list[dict], report: SplitReport) -> None:
        report.kept = len(cleaned)
        report.answerable = sum(1 for r in cleaned if r["answers"]["text"])
        report.unanswerable = report.kept - report.answerable

    def _check_record(self, raw: Any, index: int, is_train: bool, report: SplitReport) -> dict:
        if not isinstance(raw, dict):
            raise RecordDefect("(record)", f"expected an object, got {type(raw).__name__}")
        if self.columns.answer_start and self.columns.answer_start not in raw:
            raise RecordDefect(self.columns.answer_start, "missing")
        raw = self.columns.standard_fields(raw)
        for name in ("question", "context"):
            if name not in raw or raw[name] is None:
                raise RecordDefect(name, "missing")
            if not isinstance(raw[name], str):
                raise RecordDefect(name, f"expected a string, got {type(raw[name]).__name__}")
        question = raw["question"].strip()
        context = raw["context"]
        if not question:
            raise RecordDefect("question", "empty")
        if not context.strip():
            raise RecordDefect("context", "empty")
        record_id = raw.get("id")
        if record_id is None or str(record_id).strip() == "":
            record_id = stable_id(question, context)
            report.generated_ids += 1
        impossible = _as_bool(raw.get("is_impossible", False))
        pairs = [] if impossible else normalize_answers(raw.get("answers"))
        texts, starts = [], []
        for text, start in pairs:
            if not text.strip():
                raise RecordDefect("answers.text", "empty answer text")
            found, how = locate_span(context, text, start)
            if found is None:
                if is_train:
                    raise RecordDefect(defect_field(how), how)
                field_name = self.columns.user_field(defect_field(how))
                report.unlocated.append(Defect(index, str(record_id), field_name, how))
                found = -1
            elif how == "repaired":
                report.repaired_spans += 1
                report.repaired.append(Repair(index, str(record_id), self.columns.answer_start_field(), start, found))
            elif how == "located":
                report.located_spans += 1
            elif how == "ambiguous":
                report.ambiguous_spans += 1
            texts.append(text)
            starts.append(found)
        return {
            "id": str(record_id),
            "title": str(raw.get("title") or ""),
            "context": context,
            "question": question,
            "answers": {"text": texts, "answer_start": starts},
        }

    def _drop_overlong_questions(self, records: list[dict], source_index: dict[str, int], report: SplitReport) -> None:
        """A question that leaves no room for doc_stride context tokens cannot be windowed."""
        if not records:
            return
        budget = question_token_budget(self.tokenizer, self.settings)
        lengths = [len(ids) for ids in self.tokenizer([r["question"] for r in records], add_special_tokens=False)["input_ids"]]
        keep = []
        for record, length in zip(records, lengths):
            if length > budget:
                report.dropped.append(
                    Defect(
                        source_index[record["id"]],
                        record["id"],
                        self.columns.question,
                        f"{QUESTION_TOO_LONG}: {length} tokens; at most {budget} fit with max_seq_length="
                        f"{self.settings.max_seq_length}, doc_stride={self.settings.doc_stride} and "
                        f"{self.tokenizer.num_special_tokens_to_add(pair=True)} special tokens",
                    )
                )
            else:
                keep.append(record)
        records[:] = keep

    def _enforce_defect_limit(self, source: str, report: SplitReport) -> None:
        bad = len(report.dropped)
        if bad and bad > self.max_bad_fraction * report.records:
            shown = "\n  ".join(str(d) for d in report.dropped[:5])
            raise DataError(
                f"{source}: {bad} of {report.records} records are unusable (more than max_bad_fraction="
                f"{self.max_bad_fraction}). First ones:\n  {shown}"
            )
