"""How a model reads and answers: one frozen settings object, and qa_settings.json that carries it.

A model is only used fairly with the windows, answer length and no-answer threshold it was
trained and tuned with. `QASettings` holds them; the windowing (data.windows), the reader
(serving) and span decoding (decoding.predictions) take it directly. It is built in one
place for every command: `resolve_settings` takes, setting by setting, an explicit flag,
else the model directory's qa_settings.json, else its run_args.json, else the defaults
below. Training writes qa_settings.json (`settings_record`).

qa_settings.json may also carry the answer `Calibration` fitted after training (how span
scores become the probability that an answer is right); it travels in `QASettings` so
that every reader of a model (serving, qa_predict.py) gets it with the other settings.
Only qa_settings.json sets it: no flag, no run_args.json.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from slmqa.errors import ConfigError

logger = logging.getLogger(__name__)

QA_SETTINGS_FILE = "qa_settings.json"  # written after training, read by every command that uses a model
RUN_ARGS_FILE = "run_args.json"  # run_qa.py's record of every argument of the run
RUN_ARGS_GROUP = "DataTrainingArguments"  # where run_args.json keeps these settings
# A tokenizer without a real limit reports a huge model_max_length (1e30).
UNLIMITED_MODEL_LENGTH = 1_000_000


CALIBRATION_METHODS = ("temperature", "platt")


@dataclass(frozen=True)
class Calibration:
    """How span scores become the probability that an answer is right: fitted on the validation split.

    "temperature": the answer's softmax over its question's candidates at this temperature.
    "platt": sigmoid(slope * x + intercept), x the log-odds of the answer's plain softmax
    probability. The arithmetic is slmqa.decoding.calibration; this is the record that
    qa_settings.json carries, checked when read.
    """

    method: str
    temperature: float = 1.0
    slope: float = 1.0
    intercept: float = 0.0
    fitted_on: int = 0  # validation questions it was fitted on
    ece_before: float | None = None  # expected calibration error of the plain softmax on them
    ece_after: float | None = None  # the same of the calibrated probability, out of fold
    selection: str = ""  # why this method: the measurement that chose it

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration method must be one of {CALIBRATION_METHODS}, got {self.method!r}.")
        for name in ("temperature", "slope", "intercept"):
            if not _is_number(getattr(self, name)):
                raise ConfigError(f"calibration {name} must be a finite number, got {getattr(self, name)!r}.")
        if self.temperature <= 0:
            raise ConfigError(f"calibration temperature must be positive, got {self.temperature}.")
        if self.slope <= 0:  # a better-scored answer must not get the lower probability
            raise ConfigError(f"calibration slope must be positive, got {self.slope}.")
        if not isinstance(self.fitted_on, int) or isinstance(self.fitted_on, bool) or self.fitted_on < 0:
            raise ConfigError(f"calibration fitted_on must be a count, got {self.fitted_on!r}.")
        for name in ("ece_before", "ece_after"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise ConfigError(f"calibration {name} must be a number in [0, 1], got {value!r}.")
        if not isinstance(self.selection, str):
            raise ConfigError(f"calibration selection must be a string, got {self.selection!r}.")

    @property
    def parameters(self) -> dict[str, float]:
        """The fitted parameters of this method (what qa_settings.json stores besides the record)."""
        if self.method == "temperature":
            return {"temperature": self.temperature}
        return {"slope": self.slope, "intercept": self.intercept}

    def describe(self) -> str:
        return f"{self.method} ({', '.join(f'{k} {v:.4g}' for k, v in self.parameters.items())})"

    def to_json(self) -> dict:
        content = {"method": self.method, **self.parameters, "fitted_on": self.fitted_on}
        content.update({"ece_before": self.ece_before, "ece_after": self.ece_after, "selection": self.selection})
        return content

    @classmethod
    def from_json(cls, content, path: Path) -> Calibration:
        """The `calibration` entry of qa_settings.json; unknown keys are logged, wrong values refused."""
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: calibration must be a JSON object, got {type(content).__name__}.")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(content) - names)
        if unknown:
            logger.warning("%s: ignoring unknown calibration key(s) %s", path, ", ".join(unknown))
        method = content.get("method")
        if method is None:
            raise ConfigError(f"{path}: calibration needs a method, one of {CALIBRATION_METHODS}.")
        needed = {"temperature": ("temperature",), "platt": ("slope", "intercept")}.get(method, ())
        missing = [name for name in needed if name not in content]
        if missing:
            raise ConfigError(f"{path}: calibration method {method!r} needs {', '.join(missing)}.")
        values = {name: content[name] for name in names if name in content}
        for name in ("temperature", "slope", "intercept", "ece_before", "ece_after"):
            if _is_number(values.get(name)):
                values[name] = float(values[name])
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class QASettings:
    """Window layout and span decoding: what must match between training, evaluation and serving."""

    max_seq_length: int = 384  # tokens per window (question + context + special tokens)
    doc_stride: int = 128  # tokens of overlap between consecutive windows of one context
    max_answer_length: int = 30  # longest answer span, in tokens
    n_best_size: int = 20  # candidate starts/ends kept per window, and answers kept per question
    version_2_with_negative: bool = False  # questions may have no answer (SQuAD v2)
    null_score_diff_threshold: float = 0.0  # v2: answer "" when null score - best span score exceeds it
    calibration: Calibration | None = None  # answer confidence fitted after training (qa_settings.json only)

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if not _type_ok(setting.name, value):
                raise ConfigError(f"{setting.name} has an invalid value {value!r}.")
        for name in ("max_seq_length", "max_answer_length", "n_best_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.doc_stride < 0:
            raise ConfigError(f"doc_stride must not be negative, got {self.doc_stride}.")
        check_window(self.max_seq_length, self.doc_stride)

    def describe(self, sources: dict[str, str] | None = None) -> str:
        """`name=value (source), ...` for the log."""
        shown = [(name, getattr(self, name)) for name in SETTING_NAMES]
        if self.calibration is not None:
            shown.append(("calibration", self.calibration.describe()))
        return ", ".join(
            f"{name}={value}" + (f" ({sources[name]})" if sources and name in sources else "")
            for name, value in shown
        )


def _type_ok(name: str, value) -> bool:
    """JSON types per setting: a bool is not an int here, an int is a valid float."""
    if name == "version_2_with_negative":
        return isinstance(value, bool)
    if name == "null_score_diff_threshold":
        return _is_number(value)
    if name == "calibration":
        return value is None or isinstance(value, Calibration)
    return isinstance(value, int) and not isinstance(value, bool)


def check_window(max_seq_length: int, doc_stride: int, sources: dict | None = None, model_limit: int | None = None) -> None:
    """The window rules wherever the lengths come from: the overlap must leave room to advance, and a
    window must fit the model (`model_limit`: the tokenizer's model_max_length, when known).

    `sources` names where each value came from (a flag, qa_settings.json, ...).
    """
    where = {name: f", {sources[name]}" for name in ("max_seq_length", "doc_stride") if name in sources} if sources else {}
    if doc_stride >= max_seq_length:
        raise ConfigError(
            f"doc_stride ({doc_stride}{where.get('doc_stride', '')}) must be smaller than "
            f"max_seq_length ({max_seq_length}{where.get('max_seq_length', '')})."
        )
    if model_limit and model_limit < UNLIMITED_MODEL_LENGTH and max_seq_length > model_limit:
        raise ConfigError(f"max_seq_length={max_seq_length} exceeds the model's limit of {model_limit} tokens.")


# What a flag, run_args.json or qa_settings.json may set; the calibration comes only from qa_settings.json.
SETTING_NAMES = tuple(f.name for f in fields(QASettings) if f.name != "calibration")
DEFAULTS = QASettings()


def question_token_budget(tokenizer, settings: QASettings) -> int:
    """Longest question (in tokens) that still leaves more than doc_stride context tokens per window.

    The fast tokenizer refuses (with a Rust panic, not an exception) to window a pair whose
    context share is not strictly longer than the stride; the share is what max_seq_length
    leaves after the question and the pair's special tokens, which differ by model:
    3 for BERT ([CLS] q [SEP] c [SEP]), 4 for RoBERTa/XLM-R (<s> q </s></s> c </s>).
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    return settings.max_seq_length - settings.doc_stride - specials - 1


# ---------------------------------------------------------------- qa_settings.json


def saved_threshold(settings: QASettings, results: dict) -> tuple[float, str]:
    """The no-answer threshold a trained model is best used at, and where it comes from.

    For SQuAD v2 it is the one that scored best on the validation split (eval_best_f1_thresh)
    when there was an evaluation, else the one the run used.
    """
    threshold = settings.null_score_diff_threshold
    source = "null_score_diff_threshold of the training run"
    best = results.get("eval_best_f1_thresh")
    if settings.version_2_with_negative and isinstance(best, (int, float)):
        threshold = float(best)
        source = (
            f"eval_best_f1_thresh: best F1 {results['eval_best_f1']:.2f} on the validation split "
            f"(F1 {results['eval_f1']:.2f} at the threshold in use, {settings.null_score_diff_threshold})"
        )
    return threshold, source


def settings_record(settings: QASettings, results: dict, calibration: Calibration | None = None) -> dict:
    """qa_settings.json's content after training: the settings at the saved threshold, and the calibration if fitted."""
    threshold, source = saved_threshold(settings, results)
    record = {name: getattr(settings, name) for name in SETTING_NAMES}
    record.update(null_score_diff_threshold=threshold, threshold_source=source)
    if calibration is not None:
        record["calibration"] = calibration.to_json()
    return record


def _read_json_object(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(content).__name__}.")
    return content


def _checked(values: dict, path: Path, where: str = "") -> dict:
    """The settings in `values`, each checked for its JSON type (a threshold becomes a float)."""
    found = {}
    for name in SETTING_NAMES:
        if name not in values:
            continue
        if not _type_ok(name, values[name]):
            raise ConfigError(f"{path}: {where}{name} has an invalid value {values[name]!r}.")
        found[name] = float(values[name]) if name == "null_score_diff_threshold" else values[name]
    return found


def read_qa_settings(model_dir: Path) -> tuple[dict, str | None]:
    """Settings from the model's qa_settings.json (absent: none), and its threshold_source.

    A `calibration` entry comes back as a `Calibration` under that key (absent or null: none).
    Unknown keys are logged, not refused, so that a newer version can add fields.
    """
    path = model_dir / QA_SETTINGS_FILE
    if not path.is_file():
        return {}, None
    content = _read_json_object(path)
    unknown = sorted(set(content) - set(SETTING_NAMES) - {"threshold_source", "calibration"})
    if unknown:
        logger.warning("%s: ignoring unknown key(s) %s", path, ", ".join(unknown))
    threshold_source = content.get("threshold_source")
    if threshold_source is not None and not isinstance(threshold_source, str):
        raise ConfigError(f"{path}: threshold_source must be a string, got {threshold_source!r}.")
    found = _checked(content, path)
    if content.get("calibration") is not None:
        found["calibration"] = Calibration.from_json(content["calibration"], path)
    return found, threshold_source


def model_calibration(model_dir: str | Path | None) -> Calibration | None:
    """The calibration in a model directory's own qa_settings.json (none for a Hub id or an uncalibrated model)."""
    if model_dir is None or not Path(model_dir).is_dir():
        return None
    return read_qa_settings(Path(model_dir))[0].get("calibration")


def read_run_args_settings(model_dir: Path) -> dict:
    """Settings from the data group of the model's run_args.json (absent: none)."""
    path = model_dir / RUN_ARGS_FILE
    if not path.is_file():
        return {}
    group = _read_json_object(path).get(RUN_ARGS_GROUP, {})
    if not isinstance(group, dict):
        raise ConfigError(f"{path}: {RUN_ARGS_GROUP} must be a JSON object, got {type(group).__name__}.")
    return _checked(group, path, f"{RUN_ARGS_GROUP}.")


def resolve_settings(flags: dict, model_dir: str | Path | None) -> tuple[QASettings, dict[str, str]]:
    """(settings, where each came from), resolved setting by setting.

    Order: explicit flag (not None) > the model directory's qa_settings.json > its
    run_args.json > the defaults. A Hub id (not a directory) carries no such files and gets
    the defaults. The calibration comes from qa_settings.json or is None (uncalibrated softmax).
    """
    qa_settings, threshold_source, run_args = {}, None, {}
    if model_dir is not None and Path(model_dir).is_dir():
        qa_settings, threshold_source = read_qa_settings(Path(model_dir))
        run_args = read_run_args_settings(Path(model_dir))
    layers = [
        ("flag", {k: v for k, v in flags.items() if k in SETTING_NAMES and v is not None}),
        (QA_SETTINGS_FILE, qa_settings),
        (RUN_ARGS_FILE, run_args),
        ("default", asdict(DEFAULTS)),
    ]
    values, sources = {}, {}
    for name in SETTING_NAMES:
        source, layer = next((source, layer) for source, layer in layers if name in layer)
        values[name], sources[name] = layer[name], source
    if sources["null_score_diff_threshold"] == QA_SETTINGS_FILE and threshold_source:
        sources["null_score_diff_threshold"] += f": {threshold_source}"
    check_window(values["max_seq_length"], values["doc_stride"], sources)
    calibration = qa_settings.get("calibration")
    if calibration is not None:
        sources["calibration"] = QA_SETTINGS_FILE
    return QASettings(**values, calibration=calibration), sources


def model_settings(model_dir: str | Path) -> tuple[QASettings, str]:
    """A model's own settings (no flags) and the most specific file they came from ("defaults" if none)."""
    settings, sources = resolve_settings({}, model_dir)
    used = {source.split(":")[0] for source in sources.values()}
    source = next((name for name in (QA_SETTINGS_FILE, RUN_ARGS_FILE) if name in used), None)
    return settings, str(Path(model_dir) / source) if source else "defaults"
