"""Read retrieved passages with the model and turn the best spans into answers in their documents.

The reader is the project's own evaluation path: every (question, passage) pair becomes
an example, data.windows cuts it into the windows the model was tuned with (eval_batch:
evaluation windowing without datasets.map, whose per-call overhead dwarfs a request), a
backend gives the logits (inference.logits: windows batched longest first, so a batch pads
only to its own longest window), and decoding.predictions picks the n-best spans. Answers
of all passages of a question are then ranked together by span score, with their
character offsets moved from the passage to the document. Overlapping passages read the
same words twice, and a window proposes sub-spans of its best span: a span that overlaps a
better-scored answer in the same document is folded into it (`rank_answers`).

Confidence: `softmax_probability` is the softmax of the span scores over the question's
answers (after folding; for a v2 model "no answer" is one more candidate, scored as
calibration scores it: the lowest no-answer score of the passages read).
`probability` is the calibrated estimate of how often such an answer is right when the
model's qa_settings.json has a calibration (slmqa.decoding.calibration), else that softmax.

A SQuAD v2 model may abstain: a passage whose "no answer" score beats its best span by
more than the saved threshold contributes no answer, and a span counts only when it
beats its passage's no-answer score by that margin. When nothing is left the question
gets "no answer".
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import asdict, dataclass, replace

from slmqa.data.windows import Windower
from slmqa.decoding.calibration import answer_probabilities, fold_overlapping
from slmqa.decoding.predictions import Decoded, decode_predictions
from slmqa.inference.logits import window_logits
from slmqa.serving.retrieval import Hit
from slmqa.settings import Calibration, QASettings, question_token_budget

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One answer: its text, where it is in which document, and the passage it was read in."""

    text: str
    score: float  # start + end logit of the span
    probability: float  # calibrated chance that it is right; without a calibration, softmax_probability
    softmax_probability: float  # softmax of the score over this question's answers (and v2 "no answer")
    document: str
    start: int  # character offsets in the document text: text == document_text[start:end]
    end: int
    passage: str  # the passage the span was read in
    passage_start: int  # where the passage starts in the document
    answer_start: int  # offsets of the span within the passage
    answer_end: int
    retrieval_score: float
    page: int | None = None  # 1-based page of a PDF document

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


def passage_spans(decoded: Decoded, pid: str, settings: QASettings) -> list[dict]:
    """The n-best spans of one passage that may be answers (for v2: those beating its no-answer score)."""
    spans = [entry for entry in decoded.nbest.get(pid, []) if entry["start_char"] is not None and entry["text"]]
    if not settings.version_2_with_negative or not spans:
        return spans
    null_score = decoded.null_odds[pid] + spans[0]["score"]  # null_odds = null score - best span score
    return [s for s in spans if null_score - s["score"] <= settings.null_score_diff_threshold]


def no_answer_score(decoded: Decoded, pids: list[str], settings: QASettings) -> float | None:
    """A v2 model's "no answer" candidate for a question read in these passages: the lowest null score.

    As decoding scores "no answer" over the windows of one context (the window least sure
    there is none), and as calibration was fitted (slmqa.decoding.calibration).
    """
    if not settings.version_2_with_negative:
        return None
    nulls = [entry["score"] for pid in pids for entry in decoded.nbest.get(pid, []) if entry["start_char"] is None]
    return min(nulls) if nulls else None


def rank_answers(
    candidates: list[tuple[dict, Hit]],
    top_k: int,
    calibration: Calibration | None = None,
    no_answer: float | None = None,
) -> list[Answer]:
    """Candidates of all passages as answers, best first, at most top_k.

    Folding: the best-scored span wins, and a span overlapping (or inside) a better-ranked
    answer in the same document is not a separate answer (overlapping passages repeat
    spans, windows propose sub-spans). Probabilities are over the answers after folding,
    and `no_answer` (a v2 model's "no answer" score) competes with them without being one.
    """
    ranked = sorted(candidates, key=lambda candidate: -candidate[0]["score"])  # stable: ties keep passage order
    places = [
        (hit.passage.document, hit.passage.start + span["start_char"], hit.passage.start + span["end_char"])
        for span, hit in ranked
    ]
    kept = fold_overlapping(places)
    scores = [float(ranked[i][0]["score"]) for i in kept]
    others = [] if no_answer is None else [no_answer]
    softmax = answer_probabilities(scores, None, others)
    probabilities = answer_probabilities(scores, calibration, others) if calibration is not None else softmax
    answers = []
    for index, probability, plain in zip(kept[:top_k], probabilities, softmax):
        (span, hit), (document, start, end) = ranked[index], places[index]
        answers.append(
            Answer(
                text=span["text"], score=float(span["score"]), probability=float(probability),
                softmax_probability=float(plain), document=document, start=start, end=end, passage=hit.passage.text,
                passage_start=hit.passage.start, answer_start=span["start_char"], answer_end=span["end_char"],
                retrieval_score=hit.score, page=hit.passage.page_of(start),
            )
        )
    return answers


class Reader:
    """The model, its tokenizer and reading settings, answering questions from given passages."""

    def __init__(self, tokenizer, backend, settings: QASettings, batch_size: int = 32):
        self.tokenizer, self.backend, self.settings, self.batch_size = tokenizer, backend, settings, batch_size
        self.windower = Windower(tokenizer, settings)
        self.question_budget = question_token_budget(tokenizer, settings)  # as the data check measures it
        # Requests are checked in other threads while this reader tokenizes a batch, and a fast
        # tokenizer must not be used by two threads at once ("Already borrowed"): fits has its own.
        self.question_tokenizer, self.question_lock = copy.deepcopy(tokenizer), threading.Lock()

    def fits(self, question: str) -> bool:
        """Whether a question leaves room for context in a window (else it cannot be read)."""
        with self.question_lock:
            tokens = self.question_tokenizer(question, add_special_tokens=False)["input_ids"]
        return len(tokens) <= self.question_budget

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
        pids: list[list[str]] = [[] for _ in questions]
        for pid, (q, hit) in owner.items():
            candidates[q].extend((span, hit) for span in passage_spans(decoded, pid, self.settings))
            pids[q].append(pid)
        readings = []
        for question, passages, found, read in zip(questions, hits, candidates, pids):
            no_answer = no_answer_score(decoded, read, self.settings) if found else None
            answers = rank_answers(found, top_k, self.settings.calibration, no_answer)
            readings.append(Reading(question, answers, not answers, len(passages), tuple(passages)))
        return readings

    def _decode(self, records: list[dict]) -> Decoded:
        """Window the records as evaluation does, run the backend, decode the n-best spans."""
        encoded = self.windower.eval_batch({key: [r[key] for r in records] for key in ("id", "question", "context")})
        features = [dict(zip(encoded, values)) for values in zip(*encoded.values())]
        starts, ends = window_logits(self.backend, encoded, self.tokenizer.pad_token_id or 0, self.batch_size)
        return decode_predictions(records, features, starts, ends, self.settings)
