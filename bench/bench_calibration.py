"""Answer-confidence calibration on real data: fit on one half of a file's articles, measure on the other.

    python -m bench.bench_calibration                           # SQuAD v2.0 half, general-QA model
    python -m bench.bench_calibration --data policyqa --max_questions 500

The articles the model never saw are split by article (alternately) into a fit half and an
evaluation half, so that no context is on both sides; up to --max_questions questions are
drawn (seeded) from each. The model answers both with its own settings (qa_settings.json);
slmqa.decoding.calibration fits both methods on the fit half and picks one by 5-fold
cross-validated log-loss, as run_qa.py does after training. On the evaluation half it
reports, for the plain softmax and each fitted method: ECE, log-loss and a risk-coverage
table. Prints JSON (and saves it under bench/results/) and a Markdown summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import machine, publish
from bench.bench_accuracy import SHARED, held_out_titles
from slmqa.data.checks import RecordChecker, SplitReport
from slmqa.data.formats import flatten_squad
from slmqa.decoding.calibration import (
    calibrate,
    expected_calibration_error,
    first_probability,
    fit_method,
    question_candidates,
    rightness,
    risk_coverage,
)
from slmqa.decoding.predictions import references
from slmqa.inference.predictor import Predictor
from slmqa.inference.runtime import Runtime
from slmqa.logs import setup_logging
from slmqa.settings import model_settings

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "models" / "general-qa-minilm"
# file, which articles the general-QA model never saw (None: all of them), and whether questions
# may be unanswerable (PolicyQA has none: read without "no answer", as the accuracy bench does).
DATA = {
    "squad_v2": ("squad-v2.0-dev-half.json", held_out_titles, True),
    "policyqa": ("policyqa-dev.json", None, False),
}
THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9)


def halves(name: str, max_questions: int, seed: int) -> tuple[list[dict], list[dict], list[str], list[str]]:
    """(fit records, evaluation records, fit titles, evaluation titles): unseen articles alternately, sampled."""
    file_name, unseen, _ = DATA[name]
    articles = json.loads((SHARED / file_name).read_text(encoding="utf-8"))["data"]
    if unseen is not None:
        titles = unseen()
        articles = [article for article in articles if article["title"] in titles]
    sides = articles[0::2], articles[1::2]
    rng = np.random.default_rng(seed)
    records = []
    for side in sides:
        flat = flatten_squad(side)
        chosen = sorted(rng.choice(len(flat), size=min(max_questions, len(flat)), replace=False).tolist())
        records.append([flat[i] for i in chosen])
    return records[0], records[1], [a["title"] for a in sides[0]], [a["title"] for a in sides[1]]


def auroc(score: np.ndarray, right: np.ndarray) -> float:
    """How well a confidence separates right from wrong answers: P(a right one scores above a wrong one), ties half."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score):  # tied scores share their mean rank
        tied = score == value
        ranks[tied] = ranks[tied].mean()
    positives, negatives = int(right.sum()), int((~right).sum())
    if not positives or not negatives:
        return float("nan")
    return float((ranks[right].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def unfolded_baselines(decoded, candidates) -> dict[str, np.ndarray]:
    """Confidences without folding, to compare with: the prediction's softmax over the raw n-best list, its raw score."""
    softmax, score = [], []
    for qid, prediction in zip(candidates.ids, candidates.predictions):
        nbest = decoded.nbest[qid]
        entry = next(e for e in nbest if (e["start_char"] is None) == (prediction == ""))
        softmax.append(entry["probability"])
        score.append(entry["score"])
    return {"unfolded_softmax": np.array(softmax), "raw_score": np.array(score)}


def log_loss(probability: np.ndarray, right: np.ndarray) -> float:
    p = np.clip(probability, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(right, np.log(p), np.log1p(-p))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=sorted(DATA), default="squad_v2")
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--max_questions", type=int, default=500, help="Questions drawn from each half.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    setup_logging()
    if not (SHARED / DATA[options.data][0]).is_file() or not Path(options.model).is_dir():
        print(f"needs {SHARED / DATA[options.data][0]} and {options.model} (../shared)", file=sys.stderr)
        return 2
    settings, source = model_settings(options.model)
    # The model's own settings (v2 only where questions may be unanswerable); its confidence is measured afresh.
    settings = replace(settings, calibration=None, version_2_with_negative=DATA[options.data][2])
    predictor = Predictor(options.model, settings, Runtime())
    checker = RecordChecker(predictor.tokenizer, settings, max_bad_fraction=1.0)
    fit_records, eval_records, fit_titles, eval_titles = halves(options.data, options.max_questions, options.seed)
    started = time.perf_counter()
    sides = {}
    for side, records in (("fit", fit_records), ("eval", eval_records)):
        examples = checker.check("validation", records, SplitReport(source=f"{options.data}-{side}"))
        prediction = predictor.predict(examples, options.batch_size, progress=f"{side} half")
        sides[side] = (examples, prediction)
    seconds = time.perf_counter() - started

    fit_examples, fit_prediction = sides["fit"]
    chosen = calibrate(fit_prediction.decoded, references(fit_examples), settings)
    eval_examples, eval_prediction = sides["eval"]
    candidates = question_candidates(eval_prediction.decoded, settings)
    f1, right = rightness(candidates, references(eval_examples))
    fit_candidates = question_candidates(fit_prediction.decoded, settings)
    _, fit_right = rightness(fit_candidates, references(fit_examples))
    methods = {"softmax": None}
    for method in ("temperature", "platt"):
        methods[method] = fit_method(method, fit_candidates.scores, fit_right)
    evaluated = {}
    for name, calibration in methods.items():
        confidence = first_probability(candidates.scores, calibration)
        evaluated[name] = {
            "parameters": calibration.parameters if calibration else {},
            "ece": round(expected_calibration_error(confidence, right), 4),
            "log_loss": round(log_loss(confidence, right), 4),
            "mean_confidence": round(float(confidence.mean()), 4),
            "auroc": round(auroc(confidence, right), 3),
            "risk_coverage": risk_coverage(confidence, right, f1, THRESHOLDS),
            "risk_coverage_by_share": risk_coverage(confidence, right, f1),  # the model card's rows
        }
    baselines = unfolded_baselines(eval_prediction.decoded, candidates)
    result = {
        "bench": "calibration",
        "data": options.data,
        "model": options.model,
        "settings_from": source,
        "version_2_with_negative": settings.version_2_with_negative,
        "fit_articles": fit_titles,
        "eval_articles": eval_titles,
        "fit_questions": len(fit_candidates.ids),
        "eval_questions": len(candidates.ids),
        "eval_right_share": round(float(right.mean()), 4),
        "eval_mean_f1": round(100 * float(f1.mean()), 2),
        "chosen_by_cross_validation": chosen.calibration.to_json(),
        "evaluation_half": evaluated,
        "auroc_without_folding": {name: round(auroc(values, right), 3) for name, values in baselines.items()},
        "model_seconds": round(seconds, 1),
        "windows": sum(prediction.windows for _, prediction in sides.values()),
        "machine": machine(),
    }
    publish(result, f"calibration-{options.data}")
    print(summary(result), file=sys.stderr)
    return 0


def summary(result: dict) -> str:
    chosen = result["chosen_by_cross_validation"]
    lines = [
        f"{result['data']}: fit on {result['fit_questions']} questions, evaluated on {result['eval_questions']} "
        f"(right {100 * result['eval_right_share']:.1f}%, F1 {result['eval_mean_f1']:.2f}); cross-validation chose "
        f"{chosen['method']} ({chosen['selection']})",
        "",
        "| confidence | parameters | ECE | log-loss | mean confidence | AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["evaluation_half"].items():
        parameters = ", ".join(f"{k} {v:.3f}" for k, v in row["parameters"].items()) or "-"
        lines.append(
            f"| {name} | {parameters} | {row['ece']:.4f} | {row['log_loss']:.4f} | {row['mean_confidence']:.3f} "
            f"| {row['auroc']:.3f} |"
        )
    lines.append(
        "AUROC without folding: " + ", ".join(f"{k} {v:.3f}" for k, v in result["auroc_without_folding"].items())
    )
    lines += [
        "",
        "| c | " + " | ".join(f"{name}: coverage / F1 / right" for name in result["evaluation_half"]) + " |",
        "|---|" + "---|" * len(result["evaluation_half"]),
    ]
    for i, c in enumerate(THRESHOLDS):
        cells = []
        for row in result["evaluation_half"].values():
            r = row["risk_coverage"][i]
            cells.append(
                f"{100 * r['coverage']:.1f}% / "
                + ("-" if r["f1"] is None else f"{r['f1']:.1f} / {100 * r['accuracy']:.1f}%")
            )
        lines.append(f"| {c:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{chosen['method']} (chosen), as the model card shows it:",
        "",
        "| c | answered | coverage | F1 of answered | right of answered |",
        "|---|---|---|---|---|",
    ]
    for r in result["evaluation_half"][chosen["method"]]["risk_coverage_by_share"]:
        scores = "- | -" if r["f1"] is None else f"{r['f1']:.2f} | {100 * r['accuracy']:.1f}%"
        lines.append(f"| {r['confidence']:.3f} | {r['answered']} | {100 * r['coverage']:.1f}% | {scores} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
