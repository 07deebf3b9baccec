"""Loading a question-answering model and its tokenizer: a folder, a Hub id, or a LoRA adapter folder.

A base encoder (such as the offline all-MiniLM-L6-v2) has no question-answering head: one is
initialised at random. transformers says so in a long LOAD REPORT table; we say it in one line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from slmqa.errors import ConfigError

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hugging Face Hub (ignored for local folders)."""

    cache_dir: str | None = None
    revision: str = "main"
    token: str | None = None
    trust_remote_code: bool = False

    def kwargs(self) -> dict:
        return {
            "cache_dir": self.cache_dir,
            "revision": self.revision,
            "token": self.token,
            "trust_remote_code": self.trust_remote_code,
        }


@contextlib.contextmanager
def quiet_peft():
    """peft asks every model `is_gradient_checkpointing`, which transformers 5 answers with a FutureWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base_model(path: str | Path) -> str:
    return json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))["base_model_name_or_path"]


def _cannot_load(what: str, name: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"Cannot load the {what} from '{name}': {err}\n"
        "Give a local model directory (e.g. models/all-MiniLM-L6-v2, made by `make base-model`) "
        "or a Hub id when online."
    )


def load_tokenizer(name_or_path: str | Path, hub: HubOptions = HubOptions()):
    """A fast tokenizer (offset mappings are required); adapter directories carry their own copy, or use their base's."""
    from transformers import AutoTokenizer

    name = str(name_or_path)
    if is_adapter_dir(name) and not (Path(name) / "tokenizer_config.json").is_file():
        name = adapter_base_model(name)
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True, **hub.kwargs())
    except (OSError, ValueError) as err:
        raise _cannot_load("tokenizer", name, err) from None


def load_model(
    name_or_path: str | Path, hub: HubOptions = HubOptions(), *, config_name: str | None = None, is_trainable: bool = False
):
    """A question-answering model: full weights, or a LoRA adapter directory on top of its base model."""
    name = str(name_or_path)
    if is_adapter_dir(name):
        from peft import PeftModel

        # The adapter carries the trained QA head (modules_to_save): the base's missing one is no news.
        base = _load_full_model(adapter_base_model(name), hub, config_name, announce_new_weights=False)
        logger.info("Loading LoRA adapter from %s on top of %s", name, adapter_base_model(name))
        with quiet_peft():
            return PeftModel.from_pretrained(base, name, is_trainable=is_trainable)
    if Path(name).is_dir():
        # Recorded as a LoRA adapter's base_model_name_or_path: absolute, so the adapter loads
        # from any working directory.
        name = str(Path(name).resolve())
    return _load_full_model(name, hub, config_name)


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


def _load_full_model(name: str, hub: HubOptions, config_name: str | None, announce_new_weights: bool = True):
    from transformers import AutoConfig, AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    try:
        config = AutoConfig.from_pretrained(config_name or name, **hub.kwargs())
    except (OSError, ValueError) as err:
        raise _cannot_load("model config", name, err) from None
    # transformers prints its LOAD REPORT table at WARNING; the one fact in it that matters here
    # (a new, untrained QA head) is logged below as one line. A filter, not a level: transformers
    # runs extra checks (and warns) when this logger's level is raised.
    report_logger = hf_logging.get_logger("transformers.modeling_utils")
    report_filter = _DropLoadReport()
    report_logger.addFilter(report_filter)
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            name, config=config, output_loading_info=True, **hub.kwargs()
        )
    except ValueError as err:
        raise ConfigError(
            f"'{name}' ({config.model_type}) has no question-answering model class in transformers: {err}"
        ) from None
    except OSError as err:
        raise _cannot_load("model weights", name, err) from None
    finally:
        report_logger.removeFilter(report_filter)
    new_weights = sorted(set(info.get("missing_keys", ())) | {key for key, *_ in info.get("mismatched_keys", ())})
    if new_weights and announce_new_weights:
        heads = sorted({key.rsplit(".", 1)[0] for key in new_weights})
        logger.info(
            "%s has no trained weights for %s: initialised at random (a base model's new question-answering head; "
            "train before use).", Path(name).name or name, ", ".join(heads),
        )  # fmt: skip
    return model
