"""bench/bench_accuracy.py: the general-QA data never holds an evaluated article, and each variant runs what it says.

Uses small fake SQuAD files in place of ../shared/data, and a stand-in for run_qa.py that records the command.
"""

from __future__ import annotations

import json

import pytest

from bench import bench_accuracy


def _article(title: str, contexts: dict[str, list[tuple[str, bool]]]) -> dict:
    """contexts: context -> [(question, answerable)]; answers are the context's first word."""
    paragraphs = []
    for context, questions in contexts.items():
        qas = []
        for number, (question, answerable) in enumerate(questions):
            answers = [{"text": context.split()[0], "answer_start": 0}] if answerable else []
            qas.append({"id": f"{title}-{len(paragraphs)}-{number}", "question": question, "answers": answers,
                        "is_impossible": not answerable})
        paragraphs.append({"context": context, "qas": qas})
    return {"title": title, "paragraphs": paragraphs}


@pytest.fixture
def fake_shared(tmp_path, monkeypatch):
    shared, work = tmp_path / "shared", tmp_path / "work"
    shared.mkdir()
    # v1: A B C train, D E evaluated (split 3). v2: A C train, B evaluated (split 2): B is in v1's train side.
    v1 = [_article(t, {f"{t} one.": [(f"q1 {t}", True)], f"{t} two.": [(f"q2 {t}", True)]}) for t in "ABCDE"]
    v2 = [
        _article("A", {"A one.": [("q1 A", True), ("new A", False)], "A three.": [("only v2", False)]}),
        _article("C", {"C two.": [("q2 C", True)]}),
        _article("B", {"B one.": [("q1 B", True), ("new B", False)]}),
    ]
    for name, data in (("v1.json", v1), ("v2.json", v2), ("covid-train.json", v1[:1]), ("covid-dev.json", v1[1:2])):
        (shared / name).write_text(json.dumps({"version": "x", "data": data}), encoding="utf-8")
    base = tmp_path / "base-model"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    recipes = {
        **bench_accuracy.RECIPES,
        "squad": {**bench_accuracy.RECIPES["squad"], "file": "v1.json", "split": 3},
        "squad_v2": {**bench_accuracy.RECIPES["squad_v2"], "file": "v2.json", "split": 2},
        "covid_qa": {**bench_accuracy.RECIPES["covid_qa"], "file": "covid-train.json", "eval_file": "covid-dev.json"},
    }
    monkeypatch.setattr(bench_accuracy, "BASE_MODEL", base)
    monkeypatch.setattr(bench_accuracy, "publish", lambda result, name: None)
    monkeypatch.setattr(bench_accuracy, "SHARED", shared)
    monkeypatch.setattr(bench_accuracy, "WORK", work)
    monkeypatch.setattr(bench_accuracy, "RECIPES", recipes)
    return shared, work


def test_general_data_leaves_out_every_evaluated_article_and_repeated_questions(fake_shared):
    assert bench_accuracy.held_out_titles() == {"B", "D", "E"}
    data = json.loads(bench_accuracy.prepare_general().read_text(encoding="utf-8"))["data"]
    assert [article["title"] for article in data] == ["A", "C"]
    questions = {
        (article["title"], paragraph["context"], qa["question"]): qa["is_impossible"]
        for article in data for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    }
    total = sum(len(p["qas"]) for a in data for p in a["paragraphs"])
    assert total == len(questions)  # "q1 A" and "q2 C" are in both files: kept once
    assert questions == {
        ("A", "A one.", "q1 A"): False, ("A", "A one.", "new A"): True, ("A", "A two.", "q2 A"): False,
        ("A", "A three.", "only v2"): True, ("C", "C one.", "q1 C"): False, ("C", "C two.", "q2 C"): False,
    }


def flag_in(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def record_runs(monkeypatch, work) -> dict[str, list[str]]:
    """Stand in for run_qa.py: each command is recorded by label and leaves the files a real run would."""
    commands = {}

    def fake_run(label, command):
        commands[label] = command
        output_dir = command[command.index("--output_dir") + 1]
        (work / output_dir).mkdir(parents=True, exist_ok=True)  # output_dir is absolute, under work
        (work / output_dir / "all_results.json").write_text(json.dumps({"eval_f1": 1.0}), encoding="utf-8")
        training = {"max_steps": int(flag_in(command, "--max_steps") or -1), "per_device_train_batch_size": 16,
                    "learning_rate": 2e-4, "bf16": "--bf16" in command}
        (work / output_dir / "run_args.json").write_text(json.dumps({"QATrainingArguments": training}), encoding="utf-8")
        return 0.0

    monkeypatch.setattr(bench_accuracy, "_run_logged", fake_run)
    return commands


def test_variants_start_train_and_subsample_as_named(fake_shared, monkeypatch):
    _, work = fake_shared
    commands = record_runs(monkeypatch, work)
    bench_accuracy.main(["--recipe", "covid_qa", "squad", "--variants", "base", "general", "full_sub",
                                "warm", "--subsample", "0.05", "--steps", "7"])
    general = str(work / "general-qa")
    assert set(commands) == {"general-qa", "covid_qa-base", "covid_qa-general", "covid_qa-full_sub-0.05",
                             "covid_qa-warm", "squad-base", "squad-general", "squad-full_sub-0.05"}  # no squad-warm: stage one holds its data

    def flag(label, name):
        return flag_in(commands[label], name)

    assert "--version_2_with_negative" in commands["general-qa"]
    assert flag("general-qa", "--model_name_or_path") == str(bench_accuracy.BASE_MODEL)
    assert flag("covid_qa-general", "--model_name_or_path") == general
    assert flag("covid_qa-warm", "--model_name_or_path") == general
    assert flag("covid_qa-full_sub-0.05", "--model_name_or_path") == str(bench_accuracy.BASE_MODEL)
    assert flag("covid_qa-full_sub-0.05", "--keep_answerless_windows") == "0.05"
    assert flag("covid_qa-warm", "--keep_answerless_windows") is None
    for label in ("covid_qa-base", "covid_qa-general", "squad-general"):
        assert "--do_train" not in commands[label] and flag(label, "--max_answer_length") is None
    for label in ("covid_qa-full_sub-0.05", "covid_qa-warm"):
        assert flag(label, "--max_steps") == "7" and flag(label, "--max_answer_length") == "auto"
    assert all("--bf16" not in command for command in commands.values())
    # The cached general-QA model is reused: a second run trains no stage one; --bf16 reaches run_qa.py.
    commands.clear()
    bench_accuracy.main(["--recipe", "covid_qa", "--variants", "general", "--bf16"])
    assert set(commands) == {"covid_qa-general"}
    assert "--bf16" in commands["covid_qa-general"]

    # Asking for another stage-one length than the cached one stops instead of mixing two stage ones.
    with pytest.raises(SystemExit, match="holds a general-QA model of 1000 steps, not the 300 asked for"):
        bench_accuracy.main(["--recipe", "covid_qa", "--variants", "general", "--general_steps", "300"])
    assert set(commands) == {"covid_qa-general"}
    assert bench_accuracy.general_settings(work / "general-qa") == {
        "steps": 1000, "batch": 16, "learning_rate": 2e-4, "precision": "fp32"}


def test_a_run_whose_general_variants_are_all_skipped_reports_no_stage_one(fake_shared, monkeypatch):
    published = []
    monkeypatch.setattr(bench_accuracy, "_run_logged", lambda label, command: pytest.fail(f"ran {label}"))
    monkeypatch.setattr(bench_accuracy, "publish", lambda result, name: published.append(result))
    bench_accuracy.main(["--recipe", "squad", "--variants", "warm"])  # squad's training side is in stage one
    assert published[0]["runs"] == [] and published[0]["general_qa"] is None


def test_squad_v2_trains_from_stage_one_but_squad_does_not(fake_shared, monkeypatch):
    """squad_v2's training side is not all in stage one (and is half unanswerable): its warm row runs."""
    _, work = fake_shared
    commands = record_runs(monkeypatch, work)
    bench_accuracy.main(["--recipe", "squad", "squad_v2", "--variants", "warm", "warm_grouped", "--steps", "5"])
    assert set(commands) == {"general-qa", "squad_v2-warm", "squad_v2-warm_grouped"}
    for label in ("squad_v2-warm", "squad_v2-warm_grouped"):
        warm = commands[label]
        assert flag_in(warm, "--model_name_or_path") == str(work / "general-qa")
        assert flag_in(warm, "--train_file") == str(work / "data" / "squad_v2-train.json")
        assert "--version_2_with_negative" in warm and flag_in(warm, "--max_steps") == "5"
        assert flag_in(warm, "--learning_rate") == "5e-5"
    assert flag_in(commands["squad_v2-warm"], "--train_sampling_strategy") is None
    assert flag_in(commands["squad_v2-warm_grouped"], "--train_sampling_strategy") == "group_by_length"
