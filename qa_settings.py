"""The reading settings a trained model was tuned with: windows, answer length, no-answer threshold.

A model answers best with the windowing it was trained and evaluated with, and a SQuAD v2
model needs the no-answer threshold its evaluation chose. run_qa.py records them in the
model directory; serving reads them from there, so nobody has to repeat them by hand:

1. `qa_settings.json` (written by run_qa.py after training),
2. else the "DataTrainingArguments" group of `run_args.json` (older runs),
3. else the defaults of `args.DataTrainingArguments`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path

logger = logging.getLogger(__name__)

SETTINGS_FILE = "qa_settings.json"
RUN_ARGS_FILE = "run_args.json"


@dataclass(frozen=True)
class QASettings:
    """Everything the reader needs besides the weights; `source` says where it came from."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_answer_length: int = 30
    n_best_size: int = 20
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    source: str = "defaults"


VALUE_FIELDS = tuple(f.name for f in fields(QASettings) if f.name != "source")


def _defaults() -> QASettings:
    """The pipeline's own defaults, so serving and training never disagree on them."""
    from args import DataTrainingArguments

    data_args = DataTrainingArguments(validation_file="-")
    return QASettings(**{name: getattr(data_args, name) for name in VALUE_FIELDS}, source="defaults")


def _read_json(path: Path) -> dict | None:
    """A JSON object from disk, or None (with a warning) when it is missing or broken."""
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("Ignoring %s: %s", path, err)
        return None
    return content if isinstance(content, dict) else None


def _merged(base: QASettings, values: dict, source: str) -> QASettings:
    """`base` with the known fields of `values` that have the right type; others are ignored."""
    chosen = {}
    for name in VALUE_FIELDS:
        if name not in values or values[name] is None:
            continue
        kind = type(getattr(base, name))
        value = values[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            logger.warning("%s: ignoring %s=%r (expected %s)", source, name, value, kind.__name__)
            continue
        chosen[name] = value
    return replace(base, **chosen, source=source)


def load_settings(model_dir: str | Path) -> QASettings:
    """The model's reading settings (see the module docstring for the order of sources)."""
    model_dir = Path(model_dir)
    defaults = _defaults()
    settings = _read_json(model_dir / SETTINGS_FILE)
    if settings is not None:
        return _merged(defaults, settings, str(model_dir / SETTINGS_FILE))
    run_args = _read_json(model_dir / RUN_ARGS_FILE)
    data_args = (run_args or {}).get("DataTrainingArguments")
    if isinstance(data_args, dict):
        return _merged(defaults, data_args, str(model_dir / RUN_ARGS_FILE))
    logger.info("%s has neither %s nor %s: using the default reading settings", model_dir, SETTINGS_FILE, RUN_ARGS_FILE)
    return defaults
