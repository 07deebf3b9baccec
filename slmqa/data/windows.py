"""Tokenizing examples into sliding windows, and labelling each training window with its answer span.

Owns the window layout (question and context in the tokenizer's order, `doc_stride`
overlap), span labels (token positions of the answer, CLS when it is not inside),
`--keep_answerless_windows` (a seeded, position-fixed choice per window) and answer
lengths in tokens (for `--max_answer_length auto` and the data check). Evaluation windows
keep the offsets and CLS position that decoding (decoding.predictions) needs.
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
from datasets import Dataset

from slmqa.settings import QASettings

logger = logging.getLogger(__name__)

NO_CONTEXT = [-1, -1]
# Helper columns of the training map: whether a window holds its answer and survives
# --keep_answerless_windows. Removed before the features reach the Trainer.
ANSWER_COLUMN = "_answer_window"
KEEP_COLUMN = "_keep_window"
WINDOW_COLUMN = "_window_index"  # position of the window within its example
HELPER_COLUMNS = [ANSWER_COLUMN, KEEP_COLUMN, WINDOW_COLUMN]
ANSWER_LENGTH_PERCENTILE = 99  # max_answer_length auto: this percentile, rounded up
# Below this share of training windows holding their answer (long documents), training advises subsampling.
ANSWER_WINDOW_ADVICE_SHARE = 0.2
ADVISED_KEEP_ANSWERLESS_WINDOWS = 0.1


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


class Windower:
    """Windows of one tokenizer and one QASettings (max_seq_length, doc_stride).

    The other options concern training and the datasets cache: `seed` and
    `keep_answerless_windows` decide which answerless training windows are kept,
    `pad_to_max_length` pads every window, `num_proc`/`use_cache` are datasets.map's.
    """

    def __init__(
        self,
        tokenizer,
        settings: QASettings,
        *,
        seed: int = 42,
        keep_answerless_windows: float = 1.0,
        pad_to_max_length: bool = False,
        num_proc: int | None = None,
        use_cache: bool = True,
    ):
        if not 0.0 < keep_answerless_windows <= 1.0:
            raise ValueError(f"keep_answerless_windows must be within (0, 1], got {keep_answerless_windows}.")
        self.tokenizer = tokenizer
        self.settings = settings
        self.seed = seed
        self.keep_answerless_windows = keep_answerless_windows
        self.pad_to_max_length = pad_to_max_length
        self.num_proc = num_proc
        self.use_cache = use_cache
        # Left-padding tokenizers (XLNet-style) put the context first.
        self.question_first = tokenizer.padding_side == "right"
        self.context_id = 1 if self.question_first else 0

    def encode(self, questions: list[str], contexts: list[str]):
        first, second = (questions, contexts) if self.question_first else (contexts, questions)
        return self.tokenizer(
            first,
            second,
            truncation="only_second" if self.question_first else "only_first",
            max_length=self.settings.max_seq_length,
            stride=self.settings.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length" if self.pad_to_max_length else False,
        )

    def _train_batch(self, batch: dict) -> dict:
        encoded = self.encode(batch["question"], batch["context"])
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
        probability = self.keep_answerless_windows
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

    def eval_batch(self, batch: dict) -> dict:
        """Evaluation windows of a few in-memory examples (columns id/question/context), without datasets.

        For serving: map() fingerprints its function by pickling this object (tokenizer
        included) on every call, which costs more than windowing a request's passages.
        """
        return dict(self._eval_batch(batch))

    def _eval_batch(self, batch: dict) -> dict:
        encoded = self.encode(batch["question"], batch["context"])
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
            num_proc=self.num_proc,
            remove_columns=examples.column_names,
            load_from_cache_file=self.use_cache,
            desc=description,
        )

    def labelled_windows(self, examples: Dataset) -> Dataset:
        """Every training window with the helper columns (answer inside, window index, keep)."""
        return self._map(examples, self._train_batch, "Tokenizing train windows")

    def kept_windows(self, features: Dataset, report=None) -> Dataset:
        """Count the windows into the train report (a SplitReport), drop the unkept ones and the helper columns."""
        keep = np.asarray(features[KEEP_COLUMN], dtype=bool)
        answer = np.asarray(features[ANSWER_COLUMN], dtype=bool)
        if report is not None:
            report.windows, report.windows_kept = len(keep), int(keep.sum())
            report.answer_windows = int(answer.sum())
            report.answerless_windows = int((~answer).sum())
            report.answerless_windows_kept = int((keep & ~answer).sum())
            logger.info(
                "%s: %d training windows, %d kept (%d with the answer, %d of %d answerless; keep_answerless_windows=%s)",
                report.source, report.windows, report.windows_kept, report.answer_windows,
                report.answerless_windows_kept, report.answerless_windows, self.keep_answerless_windows,
            )  # fmt: skip
        if not keep.all():
            features = features.select(np.flatnonzero(keep))
        return features.remove_columns(HELPER_COLUMNS)

    def eval_features(self, examples: Dataset) -> Dataset:
        """Windows that remember their example id, context offsets and CLS position for decoding; all are kept."""
        return self._map(examples, self._eval_batch, "Tokenizing evaluation windows")


def answerless_window_advice(windows_kept: int, answer_windows: int) -> str | None:
    """A warning when few training windows hold their answer: long documents, where every window teaches "no answer".

    Measured on COVID-QA (docs/results.md): keeping a tenth of the answerless windows
    trains a better model in the same steps. None when the share is fine.
    """
    if not windows_kept or answer_windows / windows_kept >= ANSWER_WINDOW_ADVICE_SHARE:
        return None
    return (
        f"only {answer_windows} of {windows_kept} training windows ({answer_windows / windows_kept:.1%}) hold their "
        f"question's answer (long documents): most steps would teach the model to answer nothing. "
        f"--keep_answerless_windows {ADVISED_KEEP_ANSWERLESS_WINDOWS} keeps every answer window and "
        f"{ADVISED_KEEP_ANSWERLESS_WINDOWS:.0%} of the others."
    )
