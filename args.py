"""Command-line / JSON configuration: three dataclasses of ours plus transformers' TrainingArguments.

Option names follow the Hugging Face question-answering example so that recipes written
for it run here unchanged. Unknown options are an error with a suggestion, never ignored.
The window and decoding defaults are the library's (slmqa.settings.QASettings): one source
for training, evaluation, qa_predict.py and serving.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments

from slmqa.data.columns import ColumnMap
from slmqa.errors import ConfigError
from slmqa.settings import DEFAULTS, QASettings, check_window

logger = logging.getLogger("slmqa.args")

DEFAULT_BASE_MODEL = "models/all-MiniLM-L6-v2"
AUTO = "auto"  # max_answer_length auto: data.windows.ANSWER_LENGTH_PERCENTILE of the training answers
DEFAULT_SEED = 42  # transformers.TrainingArguments' default seed
USAGE = "python run_qa.py [config.json] [--option value ...]   (accelerate launch run_qa.py ... for several processes)"


@dataclass
class ModelArguments:
    _argument_group_name = "model"

    model_name_or_path: str = field(
        default=DEFAULT_BASE_MODEL,
        metadata={"help": "Model directory or Hub id of a BERT-family encoder (a LoRA adapter directory also works)."},
    )
    config_name: str | None = field(default=None, metadata={"help": "Config name or path, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models or datasets."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})
    license: str | None = field(
        default=None,
        metadata={"help": "Licence of the trained model, for its card (default: the base model card's, else 'unknown')."},
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto, fp32 or bf16. auto: bf16 autocast on CPUs with bfloat16 instructions (AVX512-BF16/AMX), "
            "where it was measured to pay (bench/README.md), fp32 elsewhere; the log says which and why. "
            "--bf16/--fp16 also choose (bf16 or fp16 on a GPU)."
        },
    )


@dataclass
class DataTrainingArguments:
    _argument_group_name = "data"

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset name (e.g. squad, squad_v2)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    train_file: str | None = field(
        default=None, metadata={"help": "Training data: SQuAD json, flat json/jsonl records, csv or parquet."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Evaluation data (same formats)."})
    test_file: str | None = field(default=None, metadata={"help": "Prediction data (answers optional)."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute tokenized features."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start training over instead of resuming from the last checkpoint in output_dir."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    max_seq_length: int = field(
        default=DEFAULTS.max_seq_length, metadata={"help": "Tokens per window (question + context)."}
    )
    doc_stride: int = field(
        default=DEFAULTS.doc_stride, metadata={"help": "Tokens of overlap between consecutive context windows."}
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every window to max_seq_length (slower); by default batches are padded dynamically."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N train examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only the first N eval examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep only the first N test examples."})
    version_2_with_negative: bool = field(
        default=DEFAULTS.version_2_with_negative,
        metadata={"help": "Data has unanswerable questions (SQuAD v2): allow empty predictions."},
    )
    null_score_diff_threshold: float = field(
        default=DEFAULTS.null_score_diff_threshold,
        metadata={"help": "Predict no answer when null score - best span score exceeds this (v2 only)."},
    )
    n_best_size: int = field(
        default=DEFAULTS.n_best_size, metadata={"help": "Candidate starts/ends kept per window, and n-best size."}
    )
    # Typed str so that the command line and JSON configs accept both a number and "auto";
    # __post_init__ turns it into an int (or "auto", which run_qa.py resolves from the training data).
    max_answer_length: str = field(
        default=str(DEFAULTS.max_answer_length),
        metadata={
            "help": "Longest answer in tokens, or 'auto': the 99th percentile of the training answers' lengths in "
            "tokens, rounded up (needs training data)."
        },
    )
    question_column: str = field(default=ColumnMap.question, metadata={"help": "Field holding the question."})
    context_column: str = field(default=ColumnMap.context, metadata={"help": "Field holding the context."})
    answer_column: str = field(
        default=ColumnMap.answers,
        metadata={"help": "Field holding the answers ({text, answer_start} lists, a list of them, or plain text)."},
    )
    answer_start_column: str | None = field(
        default=None, metadata={"help": "Separate field with answer start offsets, if answers are plain text."}
    )
    id_column: str = field(default=ColumnMap.id, metadata={"help": "Field holding the record id (generated when absent)."})
    title_column: str = field(default=ColumnMap.title, metadata={"help": "Field holding the title (optional)."})
    is_impossible_column: str = field(
        default=ColumnMap.is_impossible, metadata={"help": "Field flagging unanswerable records."}
    )
    strict: bool = field(default=False, metadata={"help": "Any unusable record stops the run (max_bad_fraction=0)."})
    max_bad_fraction: float = field(
        default=0.01,
        metadata={"help": "Stop when more than this fraction of a file's records is unusable (0 = any defect stops)."},
    )
    keep_answerless_windows: float = field(
        default=1.0,
        metadata={
            "help": "Training only: keep each window that does not contain its question's answer with this "
            "probability (0 < P <= 1; seeded by --data_seed or --seed). Answer windows are always kept and an "
            "unanswerable question keeps at least one window. Below 1 for long documents, where most windows "
            "hold no answer."
        },
    )

    def __post_init__(self) -> None:
        if not (self.dataset_name or self.train_file or self.validation_file or self.test_file):
            raise ConfigError("No data given: pass dataset_name or at least one of train_file/validation_file/test_file.")
        check_window(self.max_seq_length, self.doc_stride)
        if self.strict:
            self.max_bad_fraction = 0.0
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ConfigError(f"max_bad_fraction must be within [0, 1], got {self.max_bad_fraction}.")
        if not 0.0 < self.keep_answerless_windows <= 1.0:
            raise ConfigError(
                f"keep_answerless_windows must be within (0, 1] (1 keeps every window), got {self.keep_answerless_windows}."
            )
        self.max_answer_length = parse_max_answer_length(self.max_answer_length)
        if self.max_answer_length == AUTO and not (self.train_file or self.dataset_name):
            raise ConfigError(
                "max_answer_length auto is taken from the training answers, but no training data is given "
                "(train_file or dataset_name): pass a number, e.g. --max_answer_length 30."
            )
        for name in ("n_best_size", "max_answer_length", "max_seq_length"):
            if getattr(self, name) != AUTO and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")

    def settings(self) -> QASettings:
        """The window and decoding settings of this run.

        Before max_answer_length "auto" is resolved from the training answers (Preprocess.load
        does it) the default stands in for it: windowing and checking do not use it.
        """
        answer_length = DEFAULTS.max_answer_length if self.max_answer_length == AUTO else self.max_answer_length
        return QASettings(
            max_seq_length=self.max_seq_length,
            doc_stride=self.doc_stride,
            max_answer_length=answer_length,
            n_best_size=self.n_best_size,
            version_2_with_negative=self.version_2_with_negative,
            null_score_diff_threshold=self.null_score_diff_threshold,
        )

    def columns(self) -> ColumnMap:
        """The user's field names (the *_column arguments)."""
        return columns_of(self)


COLUMN_ARGUMENTS = {
    "id": "id_column",
    "title": "title_column",
    "question": "question_column",
    "context": "context_column",
    "answers": "answer_column",
    "is_impossible": "is_impossible_column",
    "answer_start": "answer_start_column",
}


def columns_of(options) -> ColumnMap:
    """A ColumnMap from anything with the *_column attributes (DataTrainingArguments, an argparse namespace)."""
    return ColumnMap(**{standard: getattr(options, name) for standard, name in COLUMN_ARGUMENTS.items()})


def add_column_options(parser) -> None:
    """DataTrainingArguments' *_column options on a plain argparse parser (same names, defaults and help).

    preprocess.py --check and qa_predict.py take the column mapping this way: one definition
    for every command that reads data.
    """
    by_name = {f.name: f for f in fields(DataTrainingArguments)}
    group = parser.add_argument_group("columns", "The fields of your records, if not the SQuAD names.")
    for name in COLUMN_ARGUMENTS.values():
        group.add_argument(f"--{name}", default=by_name[name].default, help=by_name[name].metadata.get("help"))


def parse_max_answer_length(value: int | str) -> int | str:
    """An int from the command line ("30"), a JSON config (30 or "30"), or the word "auto"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text.lstrip("+-").isdigit():
            return int(text)
    raise ConfigError(f"max_answer_length must be a whole number of tokens or 'auto', got {value!r}.")


@dataclass
class LoraArguments:
    _argument_group_name = "lora"

    use_lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Module names to adapt; default chosen from the model architecture."}
    )
    lora_bias: str = field(default="none", metadata={"help": "Bias training: none, all or lora_only."})
    merge_lora: bool = field(
        default=False, metadata={"help": "Also save a merged full model (loadable without peft) in output_dir/merged."}
    )


def is_secret(name: str) -> bool:
    """Argument names that hold credentials (token, hub_token, ...): never written to disk."""
    return name.endswith("token") or any(word in name for word in ("password", "secret", "api_key"))


REDACTED = "<redacted>"


@dataclass
class QATrainingArguments(TrainingArguments):
    """transformers' TrainingArguments, shown under their own heading in -h, plus the search options.

    The Trainer pickles its arguments into training_args.bin (in output_dir and in every
    checkpoint, which a push uploads): the pickle leaves credentials out. Copies made in
    memory keep them, since the Trainer needs hub_token to push.
    """

    _argument_group_name = "training (transformers.TrainingArguments, and the hyperparameter search)"

    hp_search_trials: int = field(
        default=0,
        metadata={
            "help": "Run an Optuna hyperparameter search of this many trials instead of one training run: learning "
            "rate, training length, warm-up (and LoRA rank) around the given values, each trial scored on the "
            "validation split (metric_for_best_model, default eval_f1), weak trials pruned at their evaluations. "
            "Writes output_dir/best_trial.json, a config for run_qa.py. Trials already in the storage count."
        },
    )
    hp_search_storage: str | None = field(
        default=None,
        metadata={
            "help": "Optuna storage URL (default sqlite:///OUTPUT_DIR/hp_search.db, so a search resumes after a "
            "crash); a database URL (postgresql://...) lets several machines share one search."
        },
    )
    hp_search_study: str = field(default="hp_search", metadata={"help": "Study name inside the storage."})
    hp_search_space: str | None = field(
        default=None,
        metadata={
            "help": 'JSON file changing the searched space: {"learning_rate": {"low": 1e-5, "high": 1e-4, "log": '
            'true}, "lora_r": [8, 16], "warmup_steps": null}; null drops a dimension. Any training or LoRA option.'
        },
    )
    hp_search_timeout: float | None = field(
        default=None, metadata={"help": "Start no new trial after this many seconds of searching."}
    )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name, value in state.items():
            if is_secret(name) and value is not None:
                state[name] = None
        return state

    def __copy__(self):
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self, memo):
        import copy

        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, LoraArguments, QATrainingArguments)


def build_parser() -> HfArgumentParser:
    # allow_abbrev=False: a misspelt or truncated flag must not silently match a longer one.
    return HfArgumentParser(
        ARGUMENT_CLASSES,
        allow_abbrev=False,
        usage=USAGE,
        description="Train and evaluate an extractive question-answering model. Options are grouped below as "
        "model, data, lora and training (transformers.TrainingArguments, with the hyperparameter search); a JSON file "
        "of them may come first, and flags after it override it.",
    )


def _field_names() -> list[str]:
    return [f.name for cls in ARGUMENT_CLASSES for f in fields(cls) if f.init]


# Options that transformers removed, with what replaces them.
RETIRED = {
    "logging_dir": "removed in transformers 5; set the TENSORBOARD_LOGGING_DIR environment variable",
    "evaluation_strategy": "renamed to eval_strategy",
    "group_by_length": "use --train_sampling_strategy group_by_length",
}


def _unknown(names: list[str], where: str) -> ConfigError:
    known = _field_names()
    lines = []
    for name in names:
        bare = name.lstrip("-")
        close = difflib.get_close_matches(bare, known, n=1)
        hint = f" ({RETIRED[bare]})" if bare in RETIRED else f" (did you mean '{close[0]}'?)" if close else ""
        lines.append(f"'{name}'{hint}")
    return ConfigError(f"Unknown argument(s) in {where}: {', '.join(lines)}. See `python run_qa.py -h`.")


def multi_process_cpu_defaults() -> dict:
    """Several processes without a GPU (torchrun / accelerate launch on CPU) need use_cpu.

    Without it accelerate treats each process as a lone one: training would not
    synchronise and evaluation would not gather the other ranks' predictions.
    """
    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not torch.cuda.is_available():
        return {"use_cpu": True, "ddp_backend": "gloo"}
    return {}


def parse_args(argv: list[str] | None = None):
    """Parse `[config.json] [--flag value ...]`; flags override the JSON file."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.set_defaults(**multi_process_cpu_defaults())
    config = read_config(argv)
    if config:
        parser.set_defaults(**config)
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True, look_for_args_file=False
        )
    except ConfigError:
        raise
    except ValueError as err:  # TrainingArguments' own consistency checks
        raise ConfigError(str(err)) from None
    if remaining:
        raise _unknown([r for r in remaining if r.startswith("-")] or remaining, "the command line")
    model_args, data_args, lora_args, training_args = parsed
    choice, implied = _choose_precision(model_args, training_args)
    if implied:  # bf16 chosen: parse again with it, so that TrainingArguments set up (and check) mixed precision
        parser.set_defaults(**implied)
        model_args, data_args, lora_args, training_args = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True, look_for_args_file=False)[:4]
    model_args.precision_choice = choice  # for run_qa.py's log: what was picked and why
    return model_args, data_args, lora_args, training_args


def read_config(argv: list[str]) -> dict:
    """The JSON config file that may open argv (taken off argv), checked; {} without one."""
    if not (argv and argv[0].endswith(".json")):
        return {}
    config_path = Path(argv.pop(0))
    if not config_path.is_file():
        raise ConfigError(f"Config file not found: {config_path}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{config_path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path}: expected a JSON object of option names to values.")
    unknown = sorted(set(config) - set(_field_names()))
    if unknown:
        raise _unknown(unknown, str(config_path))
    return config


def given_options(argv: list[str] | None = None) -> dict:
    """The options this run was given (config file, then flags), without the defaults: what a config repeats.

    Parsed with every default suppressed, so a value the user typed comes back with its type
    and a value they left out does not come back at all.
    """
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    given = read_config(argv)
    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    flags, _ = parser.parse_known_args(argv)
    given.update(vars(flags))
    return json.loads(json.dumps(given, default=str))


def _choose_precision(model_args: ModelArguments, training_args: TrainingArguments):
    """Settle --precision against --bf16/--fp16: the choice, and the TrainingArguments it implies (or {})."""
    from slmqa.modeling.precision import PRECISIONS, PrecisionChoice, choose_precision

    requested = model_args.precision
    if requested not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {requested!r}.")
    half = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else None
    if half:
        if requested == "fp32" or (requested == "bf16" and half == "fp16"):
            raise ConfigError(f"--precision {requested} contradicts --{half}: give one of them.")
        return PrecisionChoice(half, f"--{half}"), {}
    import torch

    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    choice = choose_precision(requested, "training", "cpu" if on_cpu else "cuda")
    if not choice.bf16:
        return choice, {}
    return choice, {"bf16": True, "use_cpu": True} if on_cpu else {"bf16": True}


def resolved_arguments(*arg_objects) -> dict:
    """All arguments as one JSON-ready dict, for the run's record; credentials are masked."""
    resolved = {}
    for obj in arg_objects:
        values = obj.to_dict() if isinstance(obj, TrainingArguments) else asdict(obj)
        resolved[type(obj).__name__] = {
            name: REDACTED if is_secret(name) and value is not None else value for name, value in values.items()
        }
    return json.loads(json.dumps(resolved, default=str))
