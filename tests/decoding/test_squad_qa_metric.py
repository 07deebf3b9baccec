"""The `evaluate` metric (slmqa/decoding/squad_qa_metric.py) gives the pipeline's numbers, v1.1 and v2.0."""

from __future__ import annotations

import re

import evaluate
import numpy as np
import pytest

from postprocess import PostProcess
from slmqa.settings import QASettings
from tests.helpers import ROOT

METRIC = str(ROOT / "slmqa" / "decoding" / "squad_qa_metric.py")
WORDS = "the a an red blue green pump valve 40 Nm, every 100 hours. (FC-3100) Daniel Osei".split()


def random_run(seed: int, n: int = 60):
    """Examples (a third unanswerable), word-level windows with a question prefix, random logits."""
    rng = np.random.default_rng(seed)
    examples, features, starts, ends = [], [], [], []
    for i in range(n):
        context = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
        first, last = sorted(rng.integers(0, len(spans), size=2))
        gold = context[spans[first][0] : spans[last][1]]
        answers = {"text": [], "answer_start": []} if i % 3 == 0 else {"text": [gold], "answer_start": [spans[first][0]]}
        examples.append({"id": f"q{i}", "context": context, "answers": answers})
        offsets = [[-1, -1], [-1, -1]] + [list(span) for span in spans]  # CLS, one question token, context
        features.append({"example_id": f"q{i}", "offset_mapping": offsets, "cls_index": 0})
        starts.append(rng.normal(size=len(offsets)).astype(np.float32))
        ends.append(rng.normal(size=len(offsets)).astype(np.float32))
    return examples, features, (starts, ends)


def as_references(examples):
    return [{"id": e["id"], "answers": e["answers"]} for e in examples]


@pytest.mark.parametrize("seed", [0, 1])
def test_v1_metric_matches_the_pipeline(seed):
    examples, features, logits = random_run(seed)
    post = PostProcess()
    decoded = post.decode(examples, features, logits)
    predictions = [{"id": qid, "prediction_text": text} for qid, text in decoded.predictions.items()]
    result = evaluate.load(METRIC).compute(predictions=predictions, references=as_references(examples))
    assert result == post.score(decoded, examples)
    assert 0 < result["f1"] < 100  # a real mix of right, partial and wrong answers


@pytest.mark.parametrize("seed, threshold", [(0, 0.0), (1, 0.7)])
def test_v2_metric_matches_the_pipeline(seed, threshold):
    examples, features, logits = random_run(seed)
    post = PostProcess(QASettings(version_2_with_negative=True, null_score_diff_threshold=threshold))
    decoded = post.decode(examples, features, logits)
    predictions = [
        {"id": qid, "prediction_text": text, "no_answer_probability": decoded.null_odds[qid]}
        for qid, text in decoded.span_predictions.items()
    ]
    metric = evaluate.load(METRIC, "squad_v2")
    result = metric.compute(predictions=predictions, references=as_references(examples), no_answer_threshold=threshold)
    assert result == post.score(decoded, examples)
    assert {"HasAns_f1", "NoAns_f1", "best_f1_thresh"} <= set(result)
