"""Read retrieved passages with the model and turn the best spans into answers in their documents.

The reader is the project's own evaluation path: every (question, passage) pair becomes
an example, data.windows cuts it into the windows the model was tuned with (eval_batch:
evaluation windowing without datasets.map, whose per-call overhead dwarfs a request), a
backend gives the logits (inference.logits: windows batched longest first, so a batch pads
only to its own longest window), and decoding.predictions picks the n-best spans. Answers
of all passages of a question are then ranked together by span score, with their
character offsets moved from the passage to the document.

A SQuAD v2 model may abstain: a passage whose "no answer" score beats its best span by
more than the saved threshold contributes no answer, and a span counts only when it
beats its passage's no-answer score by that margin. When nothing is left the question
gets "no answer".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np

from slmqa.data.windows import Windower
from slmqa.decoding.predictions import Decoded, decode_predictions
from slmqa.inference.logits import window_logits
from slmqa.serving.retrieval import Hit
from slmqa.settings import QASettings, question_token_budget

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One answer: its text, where it is in which document, and the passage it was read in."""

    text: str
    score: float  # start + end logit of the span
    probability: float  # softmax of the score over this question's candidate answers
    document: str
    start: int  # character offsets in the document text: text == document_text[start:end]
    end: int
    passage: str  # the passage the span was read in
    passage_start: int  # where the passage starts in the document
    answer_start: int  # offsets of the span within the passage
    answer_end: int
    retrieval_score: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Reading:
    """The answers to one question, best first; `no_answer` when the model abstained or nothing matched."""

    question: str
    answers: list[Answer]
    no_answer: bool
    passages_read: int
    hits: tuple[Hit, ...] = ()  # the passages read, in retrieval order

    def limited(self, top_k: int) -> Reading:
        """The same reading with at most top_k answers (a batch is read at its largest top_k)."""
        return replace(self, answers=self.answers[:top_k])

    def to_json(self, with_passages: bool = False) -> dict:
        """The reply of /answer; `with_passages` adds every passage read (for labelling in the page)."""
        content = {
            "question": self.question,
            "answers": [a.to_json() for a in self.answers],
            "no_answer": self.no_answer,
            "passages_read": self.passages_read,
        }
        if with_passages:
            content["passages"] = [
                {"document": hit.passage.document, "start": hit.passage.start, "end": hit.passage.end,
                 "text": hit.passage.text, "retrieval_score": hit.score}
                for hit in self.hits
            ]
        return content


def _softmax(scores: list[float]) -> list[float]:
    if not scores:
        return []
    values = np.exp(np.asarray(scores) - max(scores))
    return (values / values.sum()).tolist()


def passage_spans(decoded: Decoded, pid: str, settings: QASettings) -> list[dict]:
    """The n-best spans of one passage that may be answers (for v2: those beating its no-answer score)."""
    spans = [entry for entry in decoded.nbest.get(pid, []) if entry["start_char"] is not None and entry["text"]]
    if not settings.version_2_with_negative or not spans:
        return spans
    null_score = decoded.null_odds[pid] + spans[0]["score"]  # null_odds = null score - best span score
    return [s for s in spans if null_score - s["score"] <= settings.null_score_diff_threshold]


def rank_answers(candidates: list[tuple[dict, Hit]], top_k: int) -> list[Answer]:
    """Candidates of all passages as answers: one per document span (overlapping passages repeat them), best first."""
    best: dict[tuple, tuple[dict, Hit]] = {}
    for span, hit in candidates:
        key = (hit.passage.document, hit.passage.start + span["start_char"], hit.passage.start + span["end_char"])
        if key not in best or span["score"] > best[key][0]["score"]:
            best[key] = (span, hit)
    ranked = sorted(best.items(), key=lambda item: -item[1][0]["score"])
    probabilities = _softmax([span["score"] for _, (span, _) in ranked])
    answers = []
    for ((document, start, end), (span, hit)), probability in zip(ranked[:top_k], probabilities):
        answers.append(
            Answer(
                text=span["text"], score=float(span["score"]), probability=float(probability), document=document,
                start=start, end=end, passage=hit.passage.text, passage_start=hit.passage.start,
                answer_start=span["start_char"], answer_end=span["end_char"], retrieval_score=hit.score,
            )
        )
    return answers


class Reader:
    """The model, its tokenizer and reading settings, answering questions from given passages."""

    def __init__(self, tokenizer, backend, settings: QASettings, batch_size: int = 32):
        self.tokenizer, self.backend, self.settings, self.batch_size = tokenizer, backend, settings, batch_size
        self.windower = Windower(tokenizer, settings)
        self.question_budget = question_token_budget(tokenizer, settings)  # as the data check measures it

    def fits(self, question: str) -> bool:
        """Whether a question leaves room for context in a window (else it cannot be read)."""
        return len(self.tokenizer(question, add_special_tokens=False)["input_ids"]) <= self.question_budget

    def read(self, questions: list[str], hits: list[list[Hit]], top_k: int) -> list[Reading]:
        """Answer each question from its retrieved passages; the pairs of all questions go through the model together.

        A question too long to leave room for context in a window is read from no passage
        (it gets "no answer"); callers that want an error check `fits` first.
        """
        hits = [passages if self.fits(question) else [] for question, passages in zip(questions, hits)]
        records, owner = [], {}
        for q, (question, passages) in enumerate(zip(questions, hits)):
            for p, hit in enumerate(passages):
                pid = f"{q}/{p}"
                owner[pid] = (q, hit)
                records.append({"id": pid, "title": hit.passage.document, "context": hit.passage.text,
                                "question": question.strip(), "answers": {"text": [], "answer_start": []}})
        decoded = self._decode(records) if records else Decoded()
        candidates: list[list[tuple[dict, Hit]]] = [[] for _ in questions]
        for pid, (q, hit) in owner.items():
            candidates[q].extend((span, hit) for span in passage_spans(decoded, pid, self.settings))
        readings = []
        for question, passages, found in zip(questions, hits, candidates):
            answers = rank_answers(found, top_k)
            readings.append(Reading(question, answers, not answers, len(passages), tuple(passages)))
        return readings

    def _decode(self, records: list[dict]) -> Decoded:
        """Window the records as evaluation does, run the backend, decode the n-best spans."""
        encoded = self.windower.eval_batch({key: [r[key] for r in records] for key in ("id", "question", "context")})
        features = [dict(zip(encoded, values)) for values in zip(*encoded.values())]
        starts, ends = window_logits(self.backend, encoded, self.tokenizer.pad_token_id or 0, self.batch_size)
        return decode_predictions(records, features, starts, ends, self.settings)
