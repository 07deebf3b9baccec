"""Logging for every command: our messages under one namespace, the libraries' chatter kept out.

Every logger of ours is a child of NAMESPACE (`slmqa.data.windows`, `slmqa.run_qa`, ...), so
one level setting governs them all. The libraries stay at WARNING, and the few of their
messages that read as trouble but are not (bm25s' DEBUG lines, transformers' closing
"share your model" banner) are kept out; where one carries information, our own line says it
(a newly initialised QA head: modeling.loading).
"""

from __future__ import annotations

import logging
import sys

NAMESPACE = "slmqa"
PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"
TIMED_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# transformers' Trainer logs these at INFO beside its useful progress lines.
TRAINER_NOISE = ("Do not forget to share your model",)


def get_logger(name: str) -> logging.Logger:
    """A logger in our namespace for a root script (`get_logger("run_qa")` -> `slmqa.run_qa`)."""
    return logging.getLogger(f"{NAMESPACE}.{name}")


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


def quiet_libraries(level: int = logging.WARNING) -> None:
    """transformers, datasets and bm25s at `level`; bm25s sets its own logger to DEBUG on import."""
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity(level)
    # Its bars for loading and writing a local model's weights (a second each); Hub downloads
    # keep huggingface_hub's own bars, and training keeps the Trainer's.
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity(level)
    logging.getLogger("bm25s").setLevel(max(level, logging.WARNING))
    trainer = transformers.utils.logging.get_logger("transformers.trainer")
    if not any(isinstance(f, _DropMessages) for f in trainer.filters):
        trainer.addFilter(_DropMessages(TRAINER_NOISE))


def setup_logging(level: int = logging.INFO, *, library_level: int = logging.WARNING, timestamps: bool = False) -> None:
    """One handler on the root logger (stdout with timestamps for training, else stderr), ours at `level`."""
    logging.basicConfig(
        format=TIMED_FORMAT if timestamps else PLAIN_FORMAT,
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout if timestamps else sys.stderr)],
    )
    logging.getLogger().setLevel(library_level)
    logging.getLogger(NAMESPACE).setLevel(level)
    quiet_libraries(library_level)
