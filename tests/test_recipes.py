"""The two-stage recipes in recipes/ parse, accept local-file overrides, and chain."""

from __future__ import annotations

import json

import pytest

from args import DataTrainingArguments, LoraArguments, ModelArguments, QATrainingArguments, parse_args
from tests.helpers import ROOT

RECIPES = ROOT / "recipes"
GENERAL = RECIPES / "general-qa.json"
DOMAIN = RECIPES / "domain-from-general.json"
LABELS = RECIPES / "from-labels.json"


@pytest.mark.parametrize(
    "recipe, overrides",
    [
        (GENERAL, []),
        (GENERAL, ["--train_file", "my/squad-train.json", "--validation_file", "my/squad-dev.json"]),
        (DOMAIN, []),
        (DOMAIN, ["--train_file", "my/train.json", "--validation_file", "my/dev.json", "--test_file", "my/test.json"]),
    ],
)
def test_recipe_parses_into_the_four_argument_groups(tmp_path, recipe, overrides):
    parsed = parse_args([str(recipe), *overrides, "--output_dir", str(tmp_path / "out")])
    assert [type(p) for p in parsed] == [ModelArguments, DataTrainingArguments, LoraArguments, QATrainingArguments]
    _, data, _, training = parsed
    assert (data.max_seq_length, data.doc_stride) == (384, 128)
    for flag, value in zip(overrides[::2], overrides[1::2]):
        assert getattr(data, flag.lstrip("-")) == value


def test_domain_recipe_starts_from_the_general_recipes_output():
    general, domain = (json.loads(p.read_text(encoding="utf-8")) for p in (GENERAL, DOMAIN))
    assert domain["model_name_or_path"] == general["output_dir"]
    g_model, g_data, _, g_training = parse_args([str(GENERAL)])
    d_model, d_data, _, d_training = parse_args([str(DOMAIN)])
    assert d_model.model_name_or_path == g_training.output_dir
    assert g_data.dataset_name == "squad_v2" and g_data.version_2_with_negative
    assert g_training.learning_rate == 1e-4 and d_training.learning_rate == 5e-5
    assert d_data.max_answer_length == "auto" and d_data.keep_answerless_windows < 1


def test_labels_recipe_trains_v2_on_the_export_and_keeps_the_last_epoch(tmp_path):
    """The export's unanswerable questions need v2 mode; the held-out labels only report (no best-epoch choice on them)."""
    model, data, _, training = parse_args([str(LABELS), "--model_name_or_path", "models/current", "--output_dir", str(tmp_path)])
    assert data.version_2_with_negative and data.train_file.endswith("labels.train.json")
    assert data.validation_file.endswith("labels.heldout.json") and model.model_name_or_path == "models/current"
    assert not training.load_best_model_at_end and training.learning_rate == 5e-5
