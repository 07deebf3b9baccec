"""Stage 1: load SQuAD-format data, check every record, and tokenize it into sliding windows.

Real data is never clean: answer offsets drift by a few characters, records miss fields,
ids repeat. Every record is checked before any model is loaded; a span that is off by a
few characters is moved to the nearest exact occurrence, a rare unusable record is dropped
and listed in the data report, and a file with too many of them stops the run with an
error that names the file, the records and the fields.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from datasets import Dataset

logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
SUPPORTED_EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet")
# A span whose exact text sits further away than this from its stated start is not a
# small offset error but a wrong label; it is dropped, not "repaired".
REPAIR_WINDOW_CHARS = 100
NO_CONTEXT = [-1, -1]
# Helper columns of the training map: whether a window holds its answer and survives
# --keep_answerless_windows. Removed before the features reach the Trainer.
ANSWER_COLUMN = "_answer_window"
KEEP_COLUMN = "_keep_window"
WINDOW_COLUMN = "_window_index"  # position of the window within its example
HELPER_COLUMNS = [ANSWER_COLUMN, KEEP_COLUMN, WINDOW_COLUMN]
DEFAULT_SEED = 42  # transformers.TrainingArguments' default seed
ANSWER_LENGTH_PERCENTILE = 99  # max_answer_length auto: this percentile, rounded up (args.py's help says 99th)
# --check warns when max_answer_length would cut more than this share of the training answers.
CUT_WARNING_FRACTION = 0.01


class DataError(ValueError):
    """A problem with the user's data, reported without a traceback."""


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
class SplitReport:
    """What happened to one split's records; saved as part of data_report.json."""

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
    repaired_ids: list[str] = field(default_factory=list)
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


class RecordDefect(Exception):
    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


# ---------------------------------------------------------------- reading files


def _read_jsonl(path: Path, text: str) -> list[dict]:
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON on line {line_number}, column {err.colno}: {err.msg}") from None
    return records


def flatten_squad(articles: list[dict]) -> list[dict]:
    """Official nested SQuAD (articles > paragraphs > qas) to one flat record per question."""
    records = []
    for article in articles:
        title = article.get("title", "")
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                records.append(
                    {
                        "id": qa.get("id"),
                        "title": title,
                        "context": context,
                        "question": qa.get("question"),
                        "answers": qa.get("answers", []),
                        "is_impossible": qa.get("is_impossible", False),
                    }
                )
    return records


def read_records(path: str | Path) -> list[dict]:
    """Read any supported file into raw flat records (not yet checked)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DataError(f"{path}: unsupported extension '{suffix}'; use one of {', '.join(SUPPORTED_EXTENSIONS)}.")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for broken files
            raise DataError(f"{path}: cannot read Parquet: {err}") from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None
    if suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if suffix == ".jsonl":
        return _read_jsonl(path, text)
    try:
        content = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON Lines saved with a .json extension
            return _read_jsonl(path, text)
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if isinstance(content, dict):
        if "data" not in content or not isinstance(content["data"], list):
            raise DataError(f"{path}: expected a top-level list of records or an object with a 'data' list.")
        content = content["data"]
    if not isinstance(content, list):
        raise DataError(f"{path}: expected a list of records.")
    if content and isinstance(content[0], dict) and "paragraphs" in content[0]:
        return flatten_squad(content)
    return content


# ---------------------------------------------------------------- checking records


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
    occurrences, the first is taken), or a reason for failure.
    """
    if start is not None and 0 <= start and context[start : start + len(text)] == text:
        return start, "exact"
    occurrences = []
    position = context.find(text)
    while position != -1:
        occurrences.append(position)
        position = context.find(text, position + 1)
    if not occurrences:
        return None, "answer text does not occur in the context"
    if start is None:
        return occurrences[0], "located" if len(occurrences) == 1 else "ambiguous"
    if start < 0 or start >= len(context):
        return None, f"answer_start {start} is outside the context (length {len(context)})"
    nearest = min(occurrences, key=lambda p: (abs(p - start), p))
    if abs(nearest - start) <= REPAIR_WINDOW_CHARS:
        return nearest, "repaired"
    return None, f"answer text not at answer_start {start}; nearest occurrence is {abs(nearest - start)} chars away"


def stable_id(question: str, context: str) -> str:
    """An id for records that lack one: the same record always gets the same id."""
    return "gen-" + hashlib.sha1(f"{question}\x00{context}".encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- tokenization helpers


def label_span(
    offsets: list, sequence_ids: list, context_id: int, start_char: int, end_char: int, cls_index: int
) -> tuple[int, int]:
    """Token positions of the answer [start_char, end_char) in one window; CLS if not fully inside."""
    context_tokens = [i for i, s in enumerate(sequence_ids) if s == context_id]
    if not context_tokens:
        return cls_index, cls_index
    first, last = context_tokens[0], context_tokens[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return cls_index, cls_index
    start = first
    while start < last and offsets[start][1] <= start_char:
        start += 1
    end = last
    while end > first and offsets[end][0] >= end_char:
        end -= 1
    return start, end


def window_keep_score(seed: int, example_id: str, window: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, example id, window index within the example).

    A hash rather than a running RNG: the decision must not depend on batch boundaries,
    map() caching or the number of worker processes, only on the window itself.
    """
    digest = hashlib.blake2b(f"{seed}\x00{example_id}\x00{window}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def keep_windows(scores: list[float], has_answer: list[bool], answerable: bool, probability: float) -> list[bool]:
    """Which windows of one training example to keep under --keep_answerless_windows.

    Every window that holds the answer is kept; the others survive when their score is
    below `probability`. An unanswerable question keeps at least its lowest-scoring window
    (a seeded, position-independent choice), so that no-answer training never loses it.
    """
    keep = [answer or score < probability for score, answer in zip(scores, has_answer)]
    if not answerable and keep and not any(keep):
        keep[min(range(len(scores)), key=scores.__getitem__)] = True
    return keep


def window_indices(sample_of_window: list[int]) -> list[int]:
    """0, 1, 2, ... for the windows of each example (they are contiguous in a batch)."""
    indices, previous, position = [], None, 0
    for sample in sample_of_window:
        position = position + 1 if sample == previous else 0
        indices.append(position)
        previous = sample
    return indices


def answer_token_lengths(contexts: list[str], answers: list[dict], tokenizer) -> np.ndarray:
    """Context tokens covered by each answerable record's first answer (the span training labels).

    Each distinct context is tokenized once, alone: its tokens are the ones it has inside a
    window (questions come from the same records, so SQuAD-like files repeat contexts).
    """
    distinct = list(dict.fromkeys(contexts))
    offsets = tokenizer(distinct, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    token_bounds = {context: np.asarray(o, dtype=np.int64).reshape(-1, 2) for context, o in zip(distinct, offsets)}
    lengths = []
    for context, answer in zip(contexts, answers):
        if not answer["text"] or answer["answer_start"][0] < 0:
            continue
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        bounds = token_bounds[context]
        lengths.append(int(((bounds[:, 1] > start_char) & (bounds[:, 0] < end_char)).sum()))
    return np.asarray(lengths, dtype=np.int64)


def length_percentile(lengths: np.ndarray, percentile: float = ANSWER_LENGTH_PERCENTILE) -> int:
    """The percentile (numpy's linear interpolation) rounded up to a whole token, at least 1."""
    value = float(np.percentile(lengths, percentile))
    return max(1, math.ceil(round(value, 6)))  # round first: 12.000000001 is 12, not 13


def answer_length_summary(lengths: np.ndarray, max_answer_length: int) -> dict:
    """Distribution of answer lengths in tokens and what max_answer_length would cut."""
    if len(lengths) == 0:  # nothing to measure (max_answer_length may still be "auto")
        return {"answers": 0}
    cut = int((lengths > max_answer_length).sum())
    return {
        "answers": int(len(lengths)),
        "min": int(lengths.min()),
        "median": float(np.median(lengths)),
        "p90": float(np.percentile(lengths, 90)),
        "p95": float(np.percentile(lengths, 95)),
        "p99": float(np.percentile(lengths, 99)),
        "max": int(lengths.max()),
        "max_answer_length": int(max_answer_length),
        "cut": cut,
        "cut_fraction": cut / len(lengths),
    }


def _cls_position(input_ids: list[int], cls_token_id: int | None) -> int:
    if cls_token_id is not None and cls_token_id in input_ids:
        return input_ids.index(cls_token_id)
    return 0


class Preprocess:
    """Stage 1: clean and check the data, then tokenize it for training or evaluation."""

    def __init__(self, data_args, tokenizer, model_args=None, seed: int = DEFAULT_SEED):
        """`seed` (the run's data_seed or seed) decides which answerless training windows are kept."""
        if not getattr(tokenizer, "is_fast", False):
            raise DataError(
                f"Tokenizer {type(tokenizer).__name__} is not a fast tokenizer: span labelling needs its offset "
                "mapping. Use a model with a tokenizer.json (or pass --tokenizer_name of a fast tokenizer)."
            )
        self.data_args = data_args
        self.model_args = model_args
        self.tokenizer = tokenizer
        self.seed = seed
        # Left-padding tokenizers (XLNet-style) put the context first.
        self.question_first = tokenizer.padding_side == "right"
        self.context_id = 1 if self.question_first else 0
        self.reports: dict[str, SplitReport] = {}

    # ------------------------------------------------------------ loading

    def load(self, splits: Iterable[str]) -> dict[str, Dataset]:
        """Read, check and clean the requested splits; raise DataError before any training."""
        raw = self._read_splits(list(splits))
        cleaned = {}
        for split, (source, records) in raw.items():
            cleaned[split] = self.check_records(split, source, records)
        return cleaned

    def _read_splits(self, splits: list[str]) -> dict[str, tuple[str, list[dict]]]:
        args = self.data_args
        raw = {}
        hub = None
        for split in splits:
            path = getattr(args, SPLIT_FILES[split])
            if path:
                raw[split] = (str(path), read_records(path))
                continue
            if not args.dataset_name:
                raise DataError(f"No {split} data: pass --{SPLIT_FILES[split]} (or --dataset_name).")
            if hub is None:
                hub = self._load_hub_dataset()
            if split not in hub:
                raise DataError(f"Dataset {args.dataset_name} has no '{split}' split (it has {sorted(hub)}).")
            raw[split] = (f"{args.dataset_name}:{split}", hub[split].to_list())
        return raw

    def _load_hub_dataset(self):
        from datasets import load_dataset

        args = self.data_args
        return load_dataset(
            args.dataset_name,
            args.dataset_config_name,
            cache_dir=getattr(self.model_args, "cache_dir", None),
            token=getattr(self.model_args, "token", None),
        )

    def check_records(self, split: str, source: str, records: list[dict]) -> Dataset:
        """Check and clean raw records of one split (also used for ad-hoc questions)."""
        is_train = split == "train"
        limit = {
            "train": self.data_args.max_train_samples,
            "validation": self.data_args.max_eval_samples,
            "test": self.data_args.max_predict_samples,
        }[split]
        report = SplitReport(source=source, records=len(records))
        self.reports[split] = report
        if not records:
            raise DataError(f"{source}: the file holds no records.")
        cleaned: list[dict] = []
        source_index: dict[str, int] = {}
        seen: dict[str, tuple] = {}
        for index, raw in enumerate(records):
            try:
                record = self._check_record(raw, index, is_train, report)
            except RecordDefect as defect:
                record_id = raw.get("id") if isinstance(raw, dict) else None
                report.dropped.append(Defect(index, str(record_id), defect.field, defect.reason))
                continue
            key = (record["question"], record["context"], record["answers"]["text"])
            if record["id"] in seen:
                reason = "duplicate id (identical record)" if seen[record["id"]] == key else "duplicate id with different content"
                report.dropped.append(Defect(index, record["id"], "id", reason))
                continue
            seen[record["id"]] = key
            source_index[record["id"]] = index
            cleaned.append(record)
        self._drop_overlong_questions(cleaned, source_index, report)
        self._enforce_defect_limit(source, report)
        if limit is not None and limit < len(cleaned):
            report.skipped_by_max_samples = len(cleaned) - limit
            cleaned = cleaned[:limit]
        if not cleaned:
            raise DataError(f"{source}: no usable records left after checking ({len(report.dropped)} dropped).")
        report.kept = len(cleaned)
        report.answerable = sum(1 for r in cleaned if r["answers"]["text"])
        report.unanswerable = report.kept - report.answerable
        if report.unanswerable and not self.data_args.version_2_with_negative:
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

    def _standard_fields(self, raw: dict) -> dict:
        """Rename the user's columns (see the *_column arguments) to the standard SQuAD fields."""
        args = self.data_args
        columns = {
            "id": args.id_column,
            "title": args.title_column,
            "question": args.question_column,
            "context": args.context_column,
            "answers": args.answer_column,
            "is_impossible": args.is_impossible_column,
        }
        if all(standard == column for standard, column in columns.items()) and not args.answer_start_column:
            return raw
        record = {standard: raw.get(column) for standard, column in columns.items() if column in raw}
        if args.answer_start_column:
            if args.answer_start_column not in raw:
                raise RecordDefect(args.answer_start_column, "missing")
            record["answers"] = {"text": raw.get(args.answer_column), "answer_start": raw[args.answer_start_column]}
        return record

    def _check_record(self, raw: Any, index: int, is_train: bool, report: SplitReport) -> dict:
        if not isinstance(raw, dict):
            raise RecordDefect("(record)", f"expected an object, got {type(raw).__name__}")
        raw = self._standard_fields(raw)
        column = {"question": self.data_args.question_column, "context": self.data_args.context_column}
        for name in ("question", "context"):
            if name not in raw or raw[name] is None:
                raise RecordDefect(column[name], "missing")
            if not isinstance(raw[name], str):
                raise RecordDefect(column[name], f"expected a string, got {type(raw[name]).__name__}")
        question = raw["question"].strip()
        context = raw["context"]
        if not question:
            raise RecordDefect(column["question"], "empty")
        if not context.strip():
            raise RecordDefect(column["context"], "empty")
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
                defect = Defect(index, str(record_id), "answers.answer_start" if start is not None else "answers.text", how)
                if is_train:
                    raise RecordDefect(defect.field, defect.reason)
                report.unlocated.append(defect)
                found = -1
            elif how == "repaired":
                report.repaired_spans += 1
                report.repaired_ids.append(str(record_id))
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

    def question_token_budget(self) -> int:
        """Longest question (in tokens) that still leaves more than doc_stride context tokens per window.

        The fast tokenizer refuses (with a Rust panic, not an exception) to window a pair whose
        context share is not strictly longer than the stride; the share is what max_seq_length
        leaves after the question and the pair's special tokens, which differ by model:
        3 for BERT ([CLS] q [SEP] c [SEP]), 4 for RoBERTa/XLM-R (<s> q </s></s> c </s>).
        """
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        return self.data_args.max_seq_length - self.data_args.doc_stride - specials - 1

    def _drop_overlong_questions(self, records: list[dict], source_index: dict[str, int], report: SplitReport) -> None:
        """A question that leaves no room for doc_stride context tokens cannot be windowed."""
        if not records:
            return
        budget = self.question_token_budget()
        lengths = [len(ids) for ids in self.tokenizer([r["question"] for r in records], add_special_tokens=False)["input_ids"]]
        keep = []
        for record, length in zip(records, lengths):
            if length > budget:
                report.dropped.append(
                    Defect(
                        source_index[record["id"]],
                        record["id"],
                        "question",
                        f"{length} tokens; at most {budget} fit with max_seq_length="
                        f"{self.data_args.max_seq_length}, doc_stride={self.data_args.doc_stride} and "
                        f"{self.tokenizer.num_special_tokens_to_add(pair=True)} special tokens",
                    )
                )
            else:
                keep.append(record)
        records[:] = keep

    def _enforce_defect_limit(self, source: str, report: SplitReport) -> None:
        bad = len(report.dropped)
        if bad and bad > self.data_args.max_bad_fraction * report.records:
            shown = "\n  ".join(str(d) for d in report.dropped[:5])
            raise DataError(
                f"{source}: {bad} of {report.records} records are unusable (more than max_bad_fraction="
                f"{self.data_args.max_bad_fraction}). First ones:\n  {shown}"
            )

    def report(self) -> dict:
        return {split: asdict(r) | {"counts": r.counts()} for split, r in self.reports.items()}

    def answer_lengths(self, examples: Dataset) -> np.ndarray:
        """Token lengths of the examples' (first) answers, as training labels them."""
        return answer_token_lengths(list(examples["context"]), list(examples["answers"]), self.tokenizer)

    def auto_max_answer_length(self, train_examples: Dataset) -> int:
        """max_answer_length auto: the ANSWER_LENGTH_PERCENTILE-th percentile of the training answers, rounded up."""
        lengths = self.answer_lengths(train_examples)
        if len(lengths) == 0:
            source = self.reports["train"].source if "train" in self.reports else "the training data"
            raise DataError(
                f"{source}: max_answer_length auto needs answerable training questions; there are none. Pass a number."
            )
        resolved = length_percentile(lengths)
        logger.info(
            "max_answer_length auto -> %d (%dth percentile of %d training answers)",
            resolved, ANSWER_LENGTH_PERCENTILE, len(lengths),
        )
        return resolved

    # ------------------------------------------------------------ tokenization

    def _encode(self, questions: list[str], contexts: list[str]):
        first, second = (questions, contexts) if self.question_first else (contexts, questions)
        return self.tokenizer(
            first,
            second,
            truncation="only_second" if self.question_first else "only_first",
            max_length=self.data_args.max_seq_length,
            stride=self.data_args.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length" if self.data_args.pad_to_max_length else False,
        )

    def _train_batch(self, batch: dict) -> dict:
        encoded = self._encode(batch["question"], batch["context"])
        sample_of_window = encoded.pop("overflow_to_sample_mapping")
        offsets_of_window = encoded.pop("offset_mapping")
        cls_id = self.tokenizer.cls_token_id
        starts, ends, has_answer = [], [], []
        for window, offsets in enumerate(offsets_of_window):
            cls_index = _cls_position(encoded["input_ids"][window], cls_id)
            answers = batch["answers"][sample_of_window[window]]
            if not answers["text"]:
                starts.append(cls_index)
                ends.append(cls_index)
                has_answer.append(False)
                continue
            start_char = answers["answer_start"][0]
            start, end = label_span(
                offsets,
                encoded.sequence_ids(window),
                self.context_id,
                start_char,
                start_char + len(answers["text"][0]),
                cls_index,
            )
            starts.append(start)
            ends.append(end)
            has_answer.append(start != cls_index)
        encoded["start_positions"] = starts
        encoded["end_positions"] = ends
        encoded[ANSWER_COLUMN] = has_answer
        encoded[WINDOW_COLUMN] = window_indices(list(sample_of_window))
        encoded[KEEP_COLUMN] = self._keep_flags(batch, list(sample_of_window), encoded[WINDOW_COLUMN], has_answer)
        return encoded

    def _keep_flags(
        self, batch: dict, sample_of_window: list[int], window_index: list[int], has_answer: list[bool]
    ) -> list[bool]:
        """--keep_answerless_windows for one batch; an example's windows are contiguous in it."""
        probability = self.data_args.keep_answerless_windows
        if probability >= 1.0:
            return [True] * len(sample_of_window)
        flags: list[bool] = []
        first = 0
        while first < len(sample_of_window):
            sample = sample_of_window[first]
            last = first
            while last < len(sample_of_window) and sample_of_window[last] == sample:
                last += 1
            example_id = batch["id"][sample]
            scores = [window_keep_score(self.seed, example_id, w) for w in window_index[first:last]]
            answerable = bool(batch["answers"][sample]["text"])
            flags += keep_windows(scores, has_answer[first:last], answerable, probability)
            first = last
        return flags

    def _eval_batch(self, batch: dict) -> dict:
        encoded = self._encode(batch["question"], batch["context"])
        sample_of_window = encoded.pop("overflow_to_sample_mapping")
        cls_id = self.tokenizer.cls_token_id
        offsets_out, cls_out = [], []
        for window, offsets in enumerate(encoded["offset_mapping"]):
            sequence_ids = encoded.sequence_ids(window)
            offsets_out.append(
                [list(o) if s == self.context_id else NO_CONTEXT for o, s in zip(offsets, sequence_ids)]
            )
            cls_out.append(_cls_position(encoded["input_ids"][window], cls_id))
        encoded["offset_mapping"] = offsets_out
        encoded["cls_index"] = cls_out
        encoded["example_id"] = [batch["id"][i] for i in sample_of_window]
        return encoded

    def _map(self, examples: Dataset, function, description: str) -> Dataset:
        return examples.map(
            function,
            batched=True,
            num_proc=self.data_args.preprocessing_num_workers,
            remove_columns=examples.column_names,
            load_from_cache_file=not self.data_args.overwrite_cache,
            desc=description,
        )

    def train_features(self, examples: Dataset) -> Dataset:
        """Windows labelled with answer start/end tokens (CLS when the answer is not inside).

        Answerless windows are thinned out by --keep_answerless_windows; the counts before and
        after go into the train report. They are read from the mapped columns, not counted
        inside the batch function, which a cached or multi-process map() never runs here.
        """
        return self._kept_windows(self._labelled_windows(examples))

    def _labelled_windows(self, examples: Dataset) -> Dataset:
        """Every training window with the helper columns (answer inside, window index, keep)."""
        return self._map(examples, self._train_batch, "Tokenizing train windows")

    def _kept_windows(self, features: Dataset) -> Dataset:
        """Count the windows into the train report, drop the unkept ones and the helper columns."""
        keep = np.asarray(features[KEEP_COLUMN], dtype=bool)
        answer = np.asarray(features[ANSWER_COLUMN], dtype=bool)
        report = self.reports.get("train")
        if report is not None:
            report.windows, report.windows_kept = len(keep), int(keep.sum())
            report.answer_windows = int(answer.sum())
            report.answerless_windows = int((~answer).sum())
            report.answerless_windows_kept = int((keep & ~answer).sum())
            logger.info(
                "%s: %d training windows, %d kept (%d with the answer, %d of %d answerless; keep_answerless_windows=%s)",
                report.source, report.windows, report.windows_kept, report.answer_windows,
                report.answerless_windows_kept, report.answerless_windows, self.data_args.keep_answerless_windows,
            )  # fmt: skip
        if not keep.all():
            features = features.select(np.flatnonzero(keep))
        return features.remove_columns(HELPER_COLUMNS)

    def eval_features(self, examples: Dataset, split: str | None = None) -> Dataset:
        """Windows that remember their example id, context offsets and CLS position for decoding.

        Every window is kept; with `split` its count goes into that split's report.
        """
        features = self._map(examples, self._eval_batch, "Tokenizing evaluation windows")
        report = self.reports.get(split) if split else None
        if report is not None:
            report.windows = report.windows_kept = len(features)
        return features


# ---------------------------------------------------------------- data check without training


def check_files(paths: list[str], data_args, tokenizer, seed: int = DEFAULT_SEED) -> dict:
    """What training would see in each file: counts, repairs, defects, windows per example.

    The training windows are built as well, so the counts show what --keep_answerless_windows
    (with this seed) leaves of them.
    """
    summary = {}
    for path in paths:
        args = type(data_args)(**{**vars(data_args), "train_file": path, "validation_file": None, "test_file": None})
        preprocess = Preprocess(args, tokenizer, seed=seed)
        try:
            examples = preprocess.load(["train"])["train"]
        except DataError as err:
            report = preprocess.reports.get("train")
            summary[path] = {"error": str(err), **({"counts": report.counts()} if report else {})}
            continue
        report = preprocess.reports["train"]
        labelled = preprocess._labelled_windows(examples)
        preprocess._kept_windows(labelled)
        window_index = np.asarray(labelled[WINDOW_COLUMN])
        lengths = preprocess.answer_lengths(examples)
        limit = data_args.max_answer_length
        answer_tokens = answer_length_summary(lengths, length_percentile(lengths) if limit == "auto" and len(lengths) else limit)
        warnings = []
        if answer_tokens.get("cut_fraction", 0.0) > CUT_WARNING_FRACTION:
            warnings.append(
                f"max_answer_length={answer_tokens['max_answer_length']} would cut {answer_tokens['cut']} of "
                f"{answer_tokens['answers']} training answers ({answer_tokens['cut_fraction']:.1%}, more than "
                f"{CUT_WARNING_FRACTION:.0%}); the {ANSWER_LENGTH_PERCENTILE}th percentile is "
                f"{length_percentile(lengths)} tokens (--max_answer_length auto)."
            )
        summary[path] = {
            "counts": report.counts(),
            "located_spans": report.located_spans,
            "ambiguous_spans": report.ambiguous_spans,
            "generated_ids": report.generated_ids,
            "duplicate_ids": sum(1 for d in report.dropped if d.field == "id"),
            "questions_too_long": sum(1 for d in report.dropped if d.field == data_args.question_column),
            "windows": len(window_index),
            "contexts_longer_than_window": int((window_index == 1).sum()),
            "max_windows_per_example": int(window_index.max()) + 1,
            "answer_tokens": answer_tokens,
            "warnings": warnings,
            "dropped": [str(d) for d in report.dropped],
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    """`python preprocess.py --check FILE ...`: validate data files without training."""
    import argparse

    from args import DataTrainingArguments

    parser = argparse.ArgumentParser(description="Check SQuAD-format data files without training.")
    parser.add_argument("--check", nargs="+", required=True, metavar="FILE", help="Data files to check.")
    parser.add_argument("--tokenizer", default="models/all-MiniLM-L6-v2", help="Tokenizer (model directory or Hub id).")
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_bad_fraction", type=float, default=0.01)
    parser.add_argument("--version_2_with_negative", action="store_true")
    parser.add_argument(
        "--keep_answerless_windows", type=float, default=1.0,
        help="Show what this probability of keeping answerless training windows leaves (0 < P <= 1).",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed for --keep_answerless_windows.")
    parser.add_argument(
        "--max_answer_length", default="30",
        help="Report the share of training answers longer than this many tokens; 'auto' shows what "
        f"the {ANSWER_LENGTH_PERCENTILE}th percentile (rounded up) resolves to.",
    )  # fmt: skip
    parser.add_argument("--output_file", help="Also write the full report as JSON here.")
    options = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)

    from transformers import AutoTokenizer

    data_args = DataTrainingArguments(
        train_file=options.check[0],
        max_seq_length=options.max_seq_length,
        doc_stride=options.doc_stride,
        max_bad_fraction=options.max_bad_fraction,
        version_2_with_negative=options.version_2_with_negative,
        keep_answerless_windows=options.keep_answerless_windows,
        max_answer_length=options.max_answer_length,
    )
    tokenizer = AutoTokenizer.from_pretrained(options.tokenizer)
    summary = check_files(options.check, data_args, tokenizer, seed=options.seed)
    for path, result in summary.items():
        print(f"== {path}")
        if "error" in result:
            print(f"  UNUSABLE: {result['error']}")
        for key, value in {**result.get("counts", {}), **{k: v for k, v in result.items() if isinstance(v, int)}}.items():
            print(f"  {key:28} {value}")
        tokens = result.get("answer_tokens") or {}
        if tokens.get("answers"):
            print(
                f"  answer tokens                min {tokens['min']}, median {tokens['median']:g}, p90 {tokens['p90']:g}, "
                f"p95 {tokens['p95']:g}, p99 {tokens['p99']:g}, max {tokens['max']} ({tokens['answers']} answers)"
            )
            print(
                f"  max_answer_length {tokens['max_answer_length']:<10} cuts {tokens['cut']} answers "
                f"({tokens['cut_fraction']:.2%})"
            )
        for line in result.get("warnings", []):
            logger.warning("%s: %s", path, line)
        for line in result.get("dropped", [])[:10]:
            print(f"  dropped {line}")
    if options.output_file:
        Path(options.output_file).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 2 if any("error" in r for r in summary.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
