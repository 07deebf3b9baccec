"""Stage 3: turn the logits of every window into answers, score them, write them.

`PostProcess` is what the Trainer calls inside evaluate/predict: decode
(slmqa.decoding.predictions: n-best spans, null odds), score (the official SQuAD v1.1 /
v2.0 metrics, slmqa.decoding.squad_metrics) and save the prediction files. After training,
`calibrate` fits the answer confidence on the validation predictions
(slmqa.decoding.calibration).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from slmqa.decoding.calibration import CalibrationFit, calibrate
from slmqa.decoding.predictions import Decoded, decode_predictions, has_gold_answers, references, squad_scores
from slmqa.settings import DEFAULTS, QASettings

logger = logging.getLogger("slmqa.postprocess")


class PostProcess:
    """Decode, score and save the predictions of one evaluation or prediction run."""

    def __init__(self, settings: QASettings = DEFAULTS, output_dir: str | None = None):
        """`settings`: n-best size, answer length and the SQuAD v2 mode; nothing is written without `output_dir`."""
        self.settings = settings
        self.output_dir = output_dir

    def decode(self, examples: Any, features: Any, predictions: Sequence) -> Decoded:
        """`predictions` is (start_logits, end_logits), as the Trainer returns them; extra items are ignored."""
        if len(predictions) < 2:
            raise ValueError("predictions must be (start_logits, end_logits).")
        return decode_predictions(examples, features, predictions[0], predictions[1], self.settings)

    def score(self, decoded: Decoded, examples: Any) -> dict:
        """SQuAD v2 metrics (null odds against the threshold) or v1 metrics."""
        return squad_scores(decoded, examples, self.settings)

    def calibrate(self, decoded: Decoded, examples: Any, settings: QASettings | None = None) -> CalibrationFit | None:
        """Fit the answer confidence on scored predictions; `settings`: those the model is saved with (its threshold)."""
        fit = calibrate(decoded, references(examples), settings or self.settings)
        if fit is not None:
            c = fit.calibration
            logger.info(
                "Answer confidence calibrated: %s on %d validation answers, ECE %.4f -> %.4f (%s)",
                c.describe(), c.fitted_on, c.ece_before, c.ece_after, c.selection,
            )
        return fit

    def write(self, decoded: Decoded, prefix: str = "eval") -> list[str]:
        """Save predictions, n-best lists and (v2) null odds as JSON; nothing without output_dir."""
        if self.output_dir is None:
            return []
        os.makedirs(self.output_dir, exist_ok=True)
        contents = {"predictions": decoded.predictions, "nbest_predictions": decoded.nbest}
        if self.settings.version_2_with_negative:
            contents["null_odds"] = decoded.null_odds
        paths = []
        for name, content in contents.items():
            path = os.path.join(self.output_dir, f"{prefix}_{name}.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=2, ensure_ascii=False)
            paths.append(path)
        logger.info("Saved %s", ", ".join(paths))
        return paths

    def __call__(
        self, examples: Any, features: Any, predictions: Sequence, prefix: str = "eval", score: bool | None = None
    ) -> tuple[Decoded, dict]:
        """Decode, score, write.

        score=None scores only examples that carry gold answers (a test file may have none);
        evaluation passes True, since its file is labelled by definition, also when (SQuAD
        v2) every one of its questions is unanswerable and so has no answer text.
        """
        decoded = self.decode(examples, features, predictions)
        if score is None:
            score = has_gold_answers(examples)
        metrics = self.score(decoded, examples) if score else {}
        self.write(decoded, prefix)
        return decoded, metrics
