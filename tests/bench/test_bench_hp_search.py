"""bench_hp_search: the search never sees the evaluation articles, and the final runs differ only in the searched values."""

from __future__ import annotations

import json

from bench import bench_hp_search


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
