"""Ask a folder of documents: read it, index its passages, retrieve and read them per question.

One `DocumentQA` is built once (model, tokenizer, settings, BM25 index) and then answers
any number of questions; serve.py keeps one for the server's lifetime and qa_predict.py
`--documents` uses the same object, so both give the same answers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from backends import DEFAULT_BACKEND, load_backend
from documents import Document, FolderReport, passages_of, read_folder
from qa_settings import QASettings, load_settings
from reader import Reader, Reading
from retrieval import Retriever

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 3
DEFAULT_PASSAGES = 8
PASSAGE_WORDS = 100
PASSAGE_OVERLAP = 25


@dataclass(frozen=True)
class Options:
    """How many passages a question reads, how passages are cut, and the reader's batch size."""

    passages: int = DEFAULT_PASSAGES
    passage_words: int = PASSAGE_WORDS
    passage_overlap: int = PASSAGE_OVERLAP
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.passages < 1 or self.batch_size < 1:
            raise ValueError(f"passages and batch_size must be >= 1; got {self.passages}, {self.batch_size}.")
        if not 0 <= self.passage_overlap < self.passage_words:
            raise ValueError(f"Need 0 <= passage_overlap < passage_words; got {self.passage_overlap}, {self.passage_words}.")


class DocumentQA:
    """A model over an indexed document collection."""

    def __init__(
        self,
        model_dir: str | Path,
        documents_dir: str | Path,
        backend: str = DEFAULT_BACKEND,
        options: Options = Options(),
        documents: list[Document] | None = None,
    ):
        from args import ModelArguments
        from process import load_tokenizer

        started = time.perf_counter()
        self.model_dir, self.documents_dir, self.options = Path(model_dir), Path(documents_dir), options
        self.settings: QASettings = load_settings(model_dir)
        logger.info("Reading settings from %s: %s", self.settings.source, self.settings)
        if documents is None:
            documents, self.folder_report = read_folder(documents_dir)
        else:
            self.folder_report = FolderReport(documents=len(documents))
        self.documents = {document.name: document for document in documents}
        self.passages = passages_of(documents, options.passage_words, options.passage_overlap)
        self.retriever = Retriever(self.passages)
        tokenizer = load_tokenizer(ModelArguments(model_name_or_path=str(model_dir)))
        self.backend = load_backend(model_dir, backend)
        self.reader = Reader(tokenizer, self.backend, self.settings, options.batch_size)
        logger.info(
            "Ready: %d documents, %d passages, backend %s (%.1fs)",
            len(self.documents), len(self.passages), self.backend.name, time.perf_counter() - started,
        )

    def ask(self, questions: list[str], top_k: int = DEFAULT_TOP_K) -> list[Reading]:
        """The top_k answers to each question (all questions read in one batch of windows)."""
        hits = [self.retriever.search(question, self.options.passages) for question in questions]
        return self.reader.read(questions, hits, top_k)

    def fits(self, question: str) -> bool:
        return self.reader.fits(question)

    def describe(self) -> dict:
        """What is loaded, for /health and logs (names and counts only: no paths from requests)."""
        return {
            "documents": len(self.documents),
            "passages": len(self.passages),
            "backend": self.reader.backend.name,
            "settings_source": Path(self.settings.source).name,
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


def ask_from_command_line(args, stdin=None) -> int:
    """qa_predict.py --documents: answer --question (or questions typed at a prompt) from the folder."""
    import json
    import sys

    from args import ConfigError
    from documents import DocumentError

    model = args.tuned_model or args.base_model
    questions = list(args.question or [])
    if not model:
        raise ConfigError("--documents needs --tuned_model (or --base_model).")
    if not questions and not args.interactive:
        raise ConfigError("--documents needs --question (repeatable) or --interactive.")
    if args.top_k < 1:
        raise ConfigError(f"--top_k must be >= 1, got {args.top_k}.")
    try:
        qa = DocumentQA(model, args.documents, backend=args.backend)
    except DocumentError as err:
        raise ConfigError(str(err)) from None
    readings = qa.ask(questions, top_k=args.top_k) if questions else []
    for reading in readings:
        print(format_reading(reading))
    if args.interactive:
        print("Ask a question about the documents (empty line to quit).")
        for line in stdin or sys.stdin:
            if not line.strip():
                break
            reading = qa.ask([line.strip()], top_k=args.top_k)[0]
            readings.append(reading)
            print(format_reading(reading))
    if args.output_file:
        report = {"documents": qa.describe(), "readings": [r.to_json() for r in readings]}
        Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_file).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0
