"""Answer checked examples with one model: windows, logits from a backend, n-best decoding.

The same windowing (data.windows) and decoding (decoding.predictions) as evaluation inside
training, with the logits from an inference backend instead of the Trainer, so that a
model's answers here are the ones its evaluation scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from slmqa.data.windows import Windower
from slmqa.decoding.predictions import Decoded, decode_predictions
from slmqa.inference.backends import load_backend
from slmqa.inference.logits import MODEL_INPUTS, window_logits
from slmqa.inference.runtime import Runtime
from slmqa.modeling.loading import load_tokenizer
from slmqa.settings import QASettings


@dataclass
class Prediction:
    decoded: Decoded
    seconds: float  # model and decoding, not windowing
    windows: int


class Predictor:
    """One model with its tokenizer, backend and settings, loaded once, answering many examples."""

    def __init__(self, model_dir: str | Path, settings: QASettings, runtime: Runtime = Runtime(), seed: int = 42):
        """`seed` fixes a base model's newly initialised QA head, so that its answers are reproducible."""
        self.model_dir, self.settings = model_dir, settings
        self.tokenizer = load_tokenizer(model_dir)
        self.backend = load_backend(model_dir, runtime, seed=seed)
        self.windower = Windower(self.tokenizer, settings)

    def predict(self, examples: Dataset, batch_size: int = 32, progress: str | None = None) -> Prediction:
        features = self.windower.eval_features(examples)
        started = time.perf_counter()
        columns = {name: list(features[name]) for name in MODEL_INPUTS if name in features.column_names}
        starts, ends = window_logits(self.backend, columns, self.tokenizer.pad_token_id or 0, batch_size, progress)
        decoded = decode_predictions(examples, features, starts, ends, self.settings)
        return Prediction(decoded, time.perf_counter() - started, len(features))
