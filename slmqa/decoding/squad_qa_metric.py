"""The pipeline's SQuAD v1.1 / v2.0 scorer as a Hugging Face `evaluate` metric.

Why: `evaluate.load` is how the Hugging Face ecosystem shares a metric, and this one gives
exactly the numbers run_qa.py reports, because it scores through `squad_metrics` (which
`evaluate` copies next to this script: the relative import below is its local-import
convention, so load this file with `evaluate`, do not import it). Offline:

    import evaluate
    squad = evaluate.load("slmqa/decoding/squad_qa_metric.py")                # v1.1: exact_match, f1
    squad_v2 = evaluate.load("slmqa/decoding/squad_qa_metric.py", "squad_v2") # v2.0: exact, f1, HasAns_*, ...

Inputs follow the Hub's `squad` / `squad_v2` metrics: predictions
`{"id", "prediction_text"}` (v2 also `"no_answer_probability"`), references
`{"id", "answers": {"text": [...], "answer_start": [...]}}`, and for v2 the keyword
`no_answer_threshold` (default 1.0). To reproduce run_qa.py's v2 numbers pass what it
scores: each question's best non-null span (`Decoded.span_predictions`), its null odds
(`Decoded.null_odds`) and `null_score_diff_threshold` as `no_answer_threshold`.
"""

import datasets
import evaluate

from .squad_metrics import squad_v1_scores, squad_v2_scores

_ANSWERS = {"text": datasets.Sequence(datasets.Value("string")), "answer_start": datasets.Sequence(datasets.Value("int32"))}


class SquadQA(evaluate.Metric):
    """SQuAD v1.1 (config "squad", the default) or v2.0 (config "squad_v2") scores, as the official scripts."""

    def _info(self) -> evaluate.MetricInfo:
        prediction = {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")}
        if self.config_name == "squad_v2":
            prediction["no_answer_probability"] = datasets.Value("float64")
        elif self.config_name not in ("squad", "default"):
            raise KeyError(f"Unknown configuration {self.config_name!r}: use 'squad' or 'squad_v2'.")
        return evaluate.MetricInfo(
            description="SQuAD v1.1 / v2.0 exact match and F1, computed by slm-qa's squad_metrics.py.",
            citation="Rajpurkar et al., SQuAD (2016) and Know What You Don't Know (2018).",
            inputs_description=__doc__,
            features=datasets.Features({"predictions": prediction, "references": {"id": datasets.Value("string"), "answers": _ANSWERS}}),
        )

    def _compute(self, predictions, references, no_answer_threshold: float = 1.0) -> dict:
        texts = {p["id"]: p["prediction_text"] for p in predictions}
        golds = {r["id"]: list(r["answers"]["text"]) for r in references}
        if self.config_name != "squad_v2":
            return squad_v1_scores(texts, golds)
        odds = {p["id"]: p["no_answer_probability"] for p in predictions}
        return squad_v2_scores(texts, golds, odds, no_answer_threshold)
