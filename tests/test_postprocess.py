"""Stage 3 (postprocess.py): PostProcess decodes, scores and writes what evaluation inside the Trainer produces."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from postprocess import PostProcess
from slmqa.settings import QASettings
from tests.decoding.test_predictions import ENDS, EXAMPLES, FEATURES, STARTS, padded

V2 = QASettings(version_2_with_negative=True)



def test_postprocess_v2_scores_write_and_files(tmp_path):
    post = PostProcess(V2, output_dir=str(tmp_path))
    starts = [list(r) for r in STARTS]
    ends = [list(r) for r in ENDS]
    starts[1][0] = ends[1][0] = 4.0  # b predicted "" (null odds 3)
    decoded, metrics = post(EXAMPLES, FEATURES, (padded(starts), padded(ends)), prefix="eval")
    # a right, b "" against "stu" -> 0, c "" against "xyz" -> 0.
    assert metrics["exact"] == pytest.approx(100 / 3)
    assert metrics["total"] == 3
    # The search walks the best spans by null odds (all answerable, start 0): a -7 (+1 -> 1),
    # b 3 ("stu", nulled at threshold 0 but right above 3: +1 -> 2, best), c 1e6 (no span, +0).
    assert (metrics["best_exact"], metrics["best_exact_thresh"]) == (pytest.approx(200 / 3), 3.0)
    assert decoded.span_predictions == {"a": "jkl mno", "b": "stu", "c": ""}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["eval_nbest_predictions.json", "eval_null_odds.json", "eval_predictions.json"]
    assert json.loads((tmp_path / "eval_predictions.json").read_text(encoding="utf-8")) == decoded.predictions
    assert json.loads((tmp_path / "eval_null_odds.json").read_text(encoding="utf-8")) == {"a": -7.0, "b": 3.0, "c": 1e6}
    nbest = json.loads((tmp_path / "eval_nbest_predictions.json").read_text(encoding="utf-8"))
    assert set(nbest) == {"a", "b", "c"}
    assert set(nbest["a"][0]) == {"text", "probability", "score", "start_logit", "end_logit", "start_char", "end_char"}


def test_postprocess_v1_writes_two_files_and_scores(tmp_path):
    post = PostProcess(output_dir=str(tmp_path / "out"))
    decoded, metrics = post(EXAMPLES, FEATURES, (padded(STARTS), padded(ENDS)), prefix="predict")
    assert metrics == {"exact_match": pytest.approx(200 / 3), "f1": pytest.approx(200 / 3)}
    paths = post.write(decoded, prefix="again")
    assert [os.path.basename(p) for p in paths] == ["again_predictions.json", "again_nbest_predictions.json"]


def test_postprocess_without_answers_or_output_dir():
    post = PostProcess()
    unlabelled = [dict(e, answers={"text": [], "answer_start": []}) for e in EXAMPLES]
    decoded, metrics = post(unlabelled, FEATURES, (STARTS, ENDS))
    assert metrics == {}
    assert decoded.predictions["a"] == "jkl mno"
    assert post.write(decoded) == []


def test_v2_best_threshold_recovers_answers_nulled_at_the_threshold_in_use():
    """Every answerable question is nulled at threshold 0; a threshold above their null odds answers them."""
    examples = [
        {"id": "a", "context": "red blue", "answers": {"text": ["red"], "answer_start": [0]}},
        {"id": "b", "context": "red blue", "answers": {"text": ["blue"], "answer_start": [4]}},
        {"id": "n", "context": "red blue", "answers": {"text": [], "answer_start": []}},
    ]
    offsets = [[-1, -1], [0, 3], [4, 8]]
    features = [{"example_id": qid, "offset_mapping": offsets, "cls_index": 0} for qid in ("a", "b", "n")]
    # CLS scores 3+3=6; best spans score 2+2=4 ("red" for a, "blue" for b): null odds 2 > 0.
    # n: CLS 6 against its best span "red" (1+1=2): null odds 4.
    starts = np.array([[3, 2, 0], [3, 0, 2], [3, 1, 0]], dtype=np.float32)
    ends = np.array([[3, 2, 0], [3, 0, 2], [3, 1, 0]], dtype=np.float32)
    post = PostProcess(V2)
    decoded, metrics = post(examples, features, (starts, ends))
    assert decoded.predictions == {"a": "", "b": "", "n": ""}
    assert decoded.null_odds == {"a": 2.0, "b": 2.0, "n": 4.0}
    assert metrics["HasAns_f1"] == 0.0 and metrics["f1"] == pytest.approx(100 / 3)  # what was written
    # Answering when null odds <= 2 recovers a and b and still abstains on n.
    assert metrics["best_f1"] == 100.0 > metrics["f1"]
    assert metrics["best_f1_thresh"] == 2.0 > 0
    rescored = PostProcess(QASettings(version_2_with_negative=True, null_score_diff_threshold=metrics["best_f1_thresh"]))
    assert rescored(examples, features, (starts, ends))[1]["f1"] == 100.0
