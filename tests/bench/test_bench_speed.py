"""bench/bench_speed.py's pure parts: arms as the docs spell them, and which fp32 arm a precision is compared with.

No model, no data files.
"""

from __future__ import annotations

import pytest

from bench.bench_speed import Arm, fp32_twin, parse_arm


def test_an_arm_is_a_runtime_plus_modifiers():
    assert parse_arm("torch") == Arm("torch", "torch")
    arm = parse_arm("onnx-int8+unfused+threads=1+nospin+noarena+batch=4+ratio=0.9+floor=2")
    assert (arm.runtime, arm.fused, arm.threads, arm.arena) == ("onnx-int8", False, 1, False)
    assert arm.session_config == {"session.intra_op.allow_spinning": "0"}
    assert arm.options == {"batch_size": 4, "passage_ratio": 0.9, "min_passages": 2}
    assert parse_arm("torch-bfloat16+ratio=0.95").options == {"passage_ratio": 0.95}


@pytest.mark.parametrize("spec, message", [
    ("tensorrt", "unknown runtime 'tensorrt'"),
    ("onnx+fast", "unknown modifier 'fast'"),
    ("onnx+threads", "unknown modifier 'threads'"),  # a value is required
    ("onnx+unfused=1", "unknown modifier 'unfused=1'"),  # and refused where none is taken
    ("torch+unfused", "ONNX Runtime settings"),
    ("torch+threads=2", "ONNX Runtime settings"),
])
def test_a_misspelt_arm_is_refused_with_its_name(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_arm(spec)


def test_each_arm_is_compared_with_the_fp32_arm_that_reads_the_same_passages():
    arms = [parse_arm(spec) for spec in ("torch", "torch+ratio=0.9", "onnx-int8", "onnx-int8+ratio=0.9",
                                         "onnx-int8+ratio=0.95", "onnx+unfused")]
    assert [fp32_twin(arm, arms) for arm in arms] == ["torch", "torch+ratio=0.9", "torch", "torch+ratio=0.9", None, "torch"]


def test_systems_take_turns_question_by_question_after_a_warm_up(capsys):
    from types import SimpleNamespace

    from bench.collection import Query, ask_in_turns

    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def ask(self, questions, top_k):
            calls.append((self.name, questions[0]))
            answers = [SimpleNamespace(text=f"{self.name}:{questions[0]}")] if self.name == "a" else []
            return [SimpleNamespace(answers=answers, passages_read=2 if self.name == "a" else 5)]

    queries = [Query(str(i), f"q{i}", ["x"], "d") for i in range(4)]
    turns = ask_in_turns({"a": Fake("a"), "b": Fake("b")}, queries, warmup=1, every=2, progress=lambda done: f"at {done}")
    assert calls[:2] == [("a", "q0"), ("b", "q0")]  # the warm-up
    assert [name for name, _ in calls[2:]] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # who goes first rotates
    assert turns.answers == {"a": {str(i): f"a:q{i}" for i in range(4)}, "b": {str(i): "" for i in range(4)}}
    assert turns.passages_read == {"a": [2] * 4, "b": [5] * 4} and all(len(s) == 4 for s in turns.seconds.values())
    assert capsys.readouterr().err.splitlines() == ["2/4 questions, at 2", "4/4 questions, at 4"]
