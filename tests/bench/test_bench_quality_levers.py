"""bench_hp_search and bench_domain_text: the search never sees the evaluation articles, the final runs differ only
in the searched values, and the domain-text arms run what they say (MLM on training text only, equal QA steps)."""

from __future__ import annotations

import json

from bench import bench_domain_text, bench_hp_search


def test_search_split_keeps_the_last_training_articles_for_validation(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_hp_search, "WORK", tmp_path)
    articles = [{"title": f"a{i}", "paragraphs": []} for i in range(16)]
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"data": articles}))
    search_train, validation = bench_hp_search.split_for_search(train)
    titles = [[a["title"] for a in json.loads(p.read_text())["data"]] for p in (search_train, validation)]
    assert titles == [[f"a{i}" for i in range(13)], ["a13", "a14", "a15"]]


def test_best_run_differs_from_the_recipe_run_only_in_the_searched_values(tmp_path):
    recipe = bench_hp_search.base_command(tmp_path / "m", tmp_path / "t.json", tmp_path / "e.json", tmp_path / "r", 150)
    best = bench_hp_search.with_values(recipe, {"learning_rate": 1e-4, "warmup_steps": 0.05, "output_dir": tmp_path / "b"})
    changed = {recipe[i]: (recipe[i + 1], best[i + 1]) for i in range(len(recipe) - 1)
               if recipe[i].startswith("--") and recipe[i + 1] != best[i + 1]}
    assert changed == {"--learning_rate": ("5e-05", "0.0001"), "--warmup_steps": ("0.1", "0.05"),
                       "--output_dir": (str(tmp_path / "r"), str(tmp_path / "b"))}
    assert len(best) == len(recipe)
    assert bench_hp_search.with_values(recipe, {"lora_r": 8})[-2:] == ["--lora_r", "8"]


def test_domain_text_arms_train_mlm_on_training_text_and_qa_for_the_stated_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_domain_text, "WORK", tmp_path)
    commands = []

    def fake_run(label, command, reuse):
        commands.append(command)
        return {"total_flos": 1e13, "train_runtime": 10.0, "eval_f1": 50.0, "eval_exact_match": 40.0}

    monkeypatch.setattr(bench_domain_text, "run", fake_run)
    spec = bench_domain_text.CORPORA["covid_qa"]
    row = bench_domain_text.arm("covid_qa", "mlm_qa", reuse=False)
    mlm, qa = commands
    train, evaluation = bench_domain_text.files("covid_qa")
    assert mlm[mlm.index("--mlm_text") + 1] == str(train) and str(evaluation) not in mlm
    assert mlm[mlm.index("--max_steps") + 1] == str(spec["mlm_steps"])
    assert qa[qa.index("--model_name_or_path") + 1] == mlm[mlm.index("--output_dir") + 1]
    assert qa[qa.index("--max_steps") + 1] == str(spec["qa_steps"])
    assert row["total_flos"] == 2e13 and row["train_seconds"] == 20.0
    commands.clear()
    more = bench_domain_text.arm("covid_qa", "qa_more", reuse=False)
    assert more["qa_steps"] == spec["qa_steps"] + spec["extra_steps"] and len(commands) == 1
    assert "| covid_qa | mlm_qa | 90 | 100 | 20.0 | 20 |" in bench_domain_text.markdown_table([row, more])
