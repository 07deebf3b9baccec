"""Build the served app from plain settings: in this process, or in each of several worker processes.

With `--workers N` uvicorn starts N processes, each importing the app by name; they cannot
receive Python objects from serve.py. So the settings travel as JSON in an environment
variable, and each worker builds its own model and batcher from them, sharing the saved
index (read-only memory maps) and the label database (SQLite serialises their writes).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slmqa.inference.runtime import Runtime
from slmqa.serving.app import create_app
from slmqa.serving.docqa import DocumentQA, Options
from slmqa.serving.feedback import Feedback
from slmqa.serving.labels import LabelStore

CONFIG_VARIABLE = "SLMQA_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """Everything a worker needs to serve: what to load, how to read, where labels go."""

    model: str
    documents: str
    runtime: dict = field(default_factory=lambda: asdict(Runtime()))
    options: dict = field(default_factory=lambda: asdict(Options()))
    index_dir: str | None = None
    feedback_db: str | None = None  # None: labelling off
    api_key: str | None = None
    max_batch: int = 8

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def build_app(config: ServeConfig):
    """The app for one process: model, index (loaded, or updated if the folder changed), label store."""
    qa = DocumentQA(config.model, config.documents, runtime=Runtime(**config.runtime), options=Options(**config.options),
                    index_dir=Path(config.index_dir) if config.index_dir else None)
    feedback = Feedback(LabelStore(config.feedback_db), qa) if config.feedback_db else None
    return create_app(qa, max_batch=config.max_batch, feedback=feedback, api_key=config.api_key)


def prepare_index(config: ServeConfig) -> None:
    """Bring the saved index up to date without loading the model (before starting worker processes)."""
    from slmqa.serving.embedding import SentenceEncoder
    from slmqa.serving.index import FolderIndex

    options = Options(**config.options)
    encoder = SentenceEncoder(options.embedder) if options.retriever != "bm25" else None
    FolderIndex(config.documents, config.index_dir, options.passage_words, options.passage_overlap, encoder).load()


def app_from_environment():
    """uvicorn's factory in each worker process (`--workers N`)."""
    return build_app(ServeConfig(**json.loads(os.environ[CONFIG_VARIABLE])))
