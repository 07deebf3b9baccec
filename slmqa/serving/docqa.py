"""Ask a folder of documents: read it, index its passages, retrieve and read them per question.

One `DocumentQA` is built once (model, tokenizer, settings, BM25 index) and then answers
any number of questions; serve.py keeps one for the server's lifetime and qa_predict.py
`--documents` uses the same object, so both give the same answers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from slmqa.inference.backends import load_backend
from slmqa.inference.runtime import Runtime
from slmqa.modeling.loading import load_tokenizer
from slmqa.serving.documents import Document
from slmqa.serving.embedding import SentenceEncoder
from slmqa.serving.index import Collection, FolderIndex, collection_of
from slmqa.serving.reader import Reader, Reading
from slmqa.serving.retrieval import RETRIEVERS, Hit, make_retriever
from slmqa.settings import QASettings, model_settings

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 3
DEFAULT_RETRIEVER = "hybrid"
DEFAULT_PASSAGES = 8
PASSAGE_WORDS = 100
PASSAGE_OVERLAP = 25
# Read fewer passages when retrieval is confident (Options.passage_ratio), by retriever: measured for hybrid's
# reciprocal-rank scores (bench/README.md, bench_speed: on SQuAD v1.1 and COVID-QA dev 4.7-5.0 passages read
# instead of 8, p50 1.5-1.7x faster and F1 +1.2/+2.0, fewer distractors); the others read all `passages`.
PASSAGE_RATIOS = {"hybrid": 0.9}


@dataclass(frozen=True)
class Options:
    """How many passages a question reads, how passages are cut, and the reader's batch size."""

    passages: int = DEFAULT_PASSAGES
    passage_words: int = PASSAGE_WORDS
    passage_overlap: int = PASSAGE_OVERLAP
    batch_size: int = 32
    retriever: str = DEFAULT_RETRIEVER  # bm25, dense or hybrid (bench/README.md: how they compare)
    embedder: str | None = None  # sentence encoder for dense/hybrid; None: all-MiniLM-L6-v2
    rescan_s: float = 30.0  # how often (at most) a question first checks the folder for added/changed files
    # Read fewer passages when retrieval is confident: beyond the first min_passages, only those scoring at
    # least passage_ratio x the best one's retrieval score (0: always read `passages`; None: the retriever's
    # default, PASSAGE_RATIOS); see passages_to_read.
    passage_ratio: float | None = None
    min_passages: int = 3

    def __post_init__(self) -> None:
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"retriever must be one of {', '.join(RETRIEVERS)}; got {self.retriever!r}.")
        if self.passage_ratio is not None and not 0 <= self.passage_ratio <= 1:
            raise ValueError(f"passage_ratio must be in [0, 1] (0: read every passage); got {self.passage_ratio}.")
        if self.min_passages < 1:
            raise ValueError(f"min_passages must be >= 1; got {self.min_passages}.")
        if self.passages < 1 or self.batch_size < 1:
            raise ValueError(f"passages and batch_size must be >= 1; got {self.passages}, {self.batch_size}.")
        if not 0 <= self.passage_overlap < self.passage_words:
            raise ValueError(f"Need 0 <= passage_overlap < passage_words; got {self.passage_overlap}, {self.passage_words}.")

    @property
    def reading_ratio(self) -> float:
        """passage_ratio as used: the retriever's default when none was given (0: read every passage retrieved)."""
        return PASSAGE_RATIOS.get(self.retriever, 0.0) if self.passage_ratio is None else self.passage_ratio


def passages_to_read(scores: list[float], ratio: float | None, floor: int, cap: int) -> int:
    """How many of a question's retrieved passages (scores best first) to read.

    The reader costs a model pass per passage, and when the best passage outscores the
    rest by far the answer is almost always in the first few: read at least `floor`
    (when there are that many), then each next one while its score is at least `ratio`
    times the best, never more than `cap`. The ratio is on the retriever's own scale
    (BM25 scores, RRF sums, cosines); a best score <= 0 means no confidence: read up to the cap,
    and so does a ratio of 0 (or None).
    """
    available = min(len(scores), cap)
    if not ratio or available <= floor or scores[0] <= 0:
        return available
    keep = floor
    while keep < available and scores[keep] >= ratio * scores[0]:
        keep += 1
    return keep


WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "model.onnx")


def model_fingerprint(model_dir: Path) -> str:
    """`name@sha256-prefix` of the model's weights: which model produced an answer, kept with each label."""
    for file_name in WEIGHT_FILES:
        path = model_dir / file_name
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return f"{model_dir.resolve().name}@{digest.hexdigest()[:12]}"
    return model_dir.resolve().name


class DocumentQA:
    """A model over an indexed document collection, kept up to date with its folder."""

    def __init__(
        self,
        model_dir: str | Path,
        documents_dir: str | Path,
        runtime: Runtime = Runtime(),
        options: Options = Options(),
        documents: list[Document] | None = None,
        settings: QASettings | None = None,
        index_dir: str | Path | None = None,
    ):
        """`settings`: how to read (windows, answer length, threshold); by default the model's own.

        `index_dir`: where the folder's index is kept between starts (None: built in memory).
        `documents`: answer from these instead of a folder (in memory, never re-read).
        """
        started = time.perf_counter()
        runtime = runtime.resolve()  # a combination that cannot run fails before the folder is read
        self.model_dir, self.documents_dir, self.options = Path(model_dir), Path(documents_dir), options
        if settings is None:
            settings, self.settings_source = model_settings(model_dir)
        else:
            self.settings_source = "flags"
        self.settings: QASettings = settings
        logger.info("Reading settings from %s: %s", self.settings_source, self.settings.describe())
        self.encoder = SentenceEncoder(options.embedder) if options.retriever != "bm25" else None
        self.refresh_lock = threading.Lock()
        if documents is not None:
            self.index = None
            collection = collection_of(documents, options.passage_words, options.passage_overlap, self.encoder)
        else:
            self.index = FolderIndex(documents_dir, index_dir, options.passage_words, options.passage_overlap, self.encoder)
            collection = self.index.load()
        self._use(collection)
        tokenizer = load_tokenizer(model_dir)
        self.backend = load_backend(model_dir, runtime)
        self.model_id = model_fingerprint(self.model_dir)
        self.reader = Reader(tokenizer, self.backend, self.settings, options.batch_size)
        logger.info(
            "Ready: %d documents, %d passages, %s retrieval, backend %s (%.1fs)",
            len(self.documents), len(self.passages), options.retriever, self.backend.name, time.perf_counter() - started,
        )

    def _use(self, collection: Collection) -> None:
        """Switch to a collection and a retriever over it in one assignment (readers in other threads see either)."""
        self.state = (collection, make_retriever(self.options.retriever, collection, self.encoder))
        self.checked_at = time.monotonic()

    @property
    def collection(self) -> Collection:
        return self.state[0]

    @property
    def documents(self) -> dict[str, Document]:
        return self.state[0].documents

    @property
    def passages(self) -> list:
        return self.state[0].passages

    @property
    def folder_report(self):
        return self.state[0].report

    def refresh(self, force: bool = False) -> bool:
        """Bring the collection up to date with the folder when it changed; True when it did."""
        if self.index is None:
            return False
        with self.refresh_lock:
            collection = self.state[0]
            if not force and not self.index.changed(collection):
                self.checked_at = time.monotonic()
                return False
            self._use(self.index.load())
            return True

    def retrieve(self, question: str, k: int | None = None) -> list[Hit]:
        """The k passages (default: those read per question) for a question; never from a file changed since indexing."""
        k = k or self.options.passages
        if self.index is not None and time.monotonic() - self.checked_at > self.options.rescan_s:
            self.refresh()
        collection, retriever = self.state
        hits = retriever.search(question, k)
        if self.index is not None and self.index.stale(collection, {hit.passage.document for hit in hits}):
            self.refresh(force=True)
            hits = self.state[1].search(question, k)
        return hits

    def ask(self, questions: list[str], top_k: int = DEFAULT_TOP_K) -> list[Reading]:
        """The top_k answers to each question (all questions read in one batch of windows)."""
        return self.reader.read(questions, [self.to_read(self.retrieve(question)) for question in questions], top_k)

    def to_read(self, hits: list[Hit]) -> list[Hit]:
        """The retrieved passages (best first) this question reads: at most `passages`, fewer when retrieval is confident."""
        options = self.options
        return hits[: passages_to_read([hit.score for hit in hits], options.reading_ratio, options.min_passages, options.passages)]

    def fits(self, question: str) -> bool:
        return self.reader.fits(question)

    def describe(self) -> dict:
        """What is loaded, for /health and logs (names and counts only: no paths from requests)."""
        return {
            "documents": len(self.documents),
            "passages": len(self.passages),
            "retriever": self.options.retriever,
            "model": self.model_id,
            "backend": self.reader.backend.name,
            "settings_source": Path(self.settings_source).name,
            "version_2_with_negative": self.settings.version_2_with_negative,
            "skipped_files": dict(self.folder_report.skipped),
        }


def format_reading(reading: Reading, context_chars: int = 80) -> str:
    """A reading as text for a terminal: each answer with its document, offsets and the words around it."""
    lines = [f"Q: {reading.question}"]
    if reading.no_answer:
        lines.append(f"  (no answer; {reading.passages_read} passages read)")
    for rank, answer in enumerate(reading.answers, start=1):
        before = answer.passage[max(0, answer.answer_start - context_chars) : answer.answer_start]
        after = answer.passage[answer.answer_end : answer.answer_end + context_chars]
        lines.append(f"  {rank}. {answer.text}  ({answer.document}, chars {answer.start}-{answer.end}, score {answer.score:.2f})")
        lines.append("     …" + " ".join(f"{before}[{answer.text}]{after}".split()) + "…")
    return "\n".join(lines)
