"""The domain-text stage: windows of documents, a new MLM head, and run_qa.py --mlm_text whose output trains QA."""

from __future__ import annotations

import json

import pytest
import torch

from slmqa.data.text_chunks import ChunkReport, chunk_texts, hold_out
from slmqa.errors import ConfigError
from slmqa.modeling.mlm import load_mlm_model, qa_model_with_encoder
from tests.helpers import common_args, run_qa

SENTENCES = [
    "The pump P-{i} runs at {p} bar in hall {i}.",
    "Valve V-{i} is closed before maintenance of line {p}.",
    "Motor M-{i} turns at {p} rpm under normal load.",
]


def _document(n: int, sentences: int = 12) -> str:
    return " ".join(SENTENCES[k % 3].format(i=n * 100 + k, p=10 + k) for k in range(sentences))


def test_windows_stay_inside_one_document_and_carry_special_tokens(tokenizer):
    texts = [_document(1), "", _document(2, sentences=2)]
    report = ChunkReport()
    chunks = chunk_texts(texts, tokenizer, 32, report)
    assert report.documents == 3 and report.empty_documents == 1
    assert all(c[0] == tokenizer.cls_token_id and c[-1] == tokenizer.sep_token_id and len(c) <= 32 for c in chunks)
    first_ids = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    second_ids = tokenizer(texts[2], add_special_tokens=False)["input_ids"]
    bodies = [c[1:-1] for c in chunks]
    # The first document's windows, in order, are its tokens (a short last tail may be dropped); the second
    # document is one window of its own, never joined to the first's tail.
    joined = [token for body in bodies[:-1] for token in body]
    assert joined == first_ids[: len(joined)] and len(first_ids) - len(joined) == report.dropped_tail_tokens
    assert report.dropped_tail_tokens < 30 * 0.125
    assert bodies[-1] == second_ids
    assert report.tokens == len(first_ids) + len(second_ids) and report.chunks == len(chunks)


def test_held_out_windows_are_seeded_and_disjoint():
    chunks = [[i] for i in range(40)]
    train, held = hold_out(chunks, 0.1, seed=3)
    assert len(held) == 4 and sorted(train + held) == chunks
    assert hold_out(chunks, 0.1, seed=3) == (train, held) and hold_out(chunks, 0.1, seed=4)[1] != held
    assert hold_out(chunks[:5], 0.1, seed=3) == (chunks[:5], [])


def test_a_qa_model_gets_a_new_mlm_head_and_keeps_its_qa_head(tiny_model_dir):
    mlm = load_mlm_model(tiny_model_dir)
    dense = mlm.cls.predictions.transform.dense
    assert torch.equal(dense.weight, torch.eye(dense.weight.shape[0])) and not dense.bias.any()
    assert mlm.cls.predictions.decoder.weight is mlm.get_input_embeddings().weight  # tied, as in BERT
    with torch.no_grad():
        mlm.base_model.encoder.layer[0].output.dense.weight.add_(1.0)  # "training"
    qa = qa_model_with_encoder(mlm, tiny_model_dir)
    from transformers import AutoModelForQuestionAnswering

    start = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    assert torch.equal(qa.qa_outputs.weight, start.qa_outputs.weight)  # stage one's head is kept
    trained = qa.base_model.encoder.layer[0].output.dense.weight
    assert torch.equal(trained, mlm.base_model.encoder.layer[0].output.dense.weight)
    assert not torch.equal(trained, start.base_model.encoder.layer[0].output.dense.weight)


def _folder(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    for n in range(3):
        (folder / f"manual-{n}.txt").write_text(_document(n, sentences=30), encoding="utf-8")
    (folder / "sub" / "notes.md").write_text("# Notes\n\n" + _document(7), encoding="utf-8")
    return folder


def _mlm_args(model, text, out):
    return [
        "--model_name_or_path", model, "--mlm_text", text, "--output_dir", out, "--max_seq_length", 64,
        "--per_device_train_batch_size", 4, "--per_device_eval_batch_size", 8, "--learning_rate", 1e-3,
        "--report_to", "none", "--seed", 1, "--disable_tqdm", "true", "--logging_steps", 1, "--mlm_held_out", 0.2,
    ]  # fmt: skip


def test_run_qa_mlm_text_resumes_and_its_output_trains_a_qa_model(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "mlm"
    args = _mlm_args(tiny_model_dir, _folder(tmp_path), out)
    log = run_qa(*args, "--max_steps", 2, "--save_steps", 2)
    assert "has no MLM head: a new one is initialised" in log and "Domain text: 4 documents" in log
    log = run_qa(*args, "--max_steps", 4, "--save_steps", 2)
    assert "Resuming training from" in log and "checkpoint-2" in log
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_perplexity"] > 1 and results["train_windows"] > 0 and "train_loss" in results
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    report = json.loads((out / "data_report.json").read_text())["mlm_text"]
    assert report["documents"] == 4 and report["held_out_chunks"] >= 1 and report["sources"]["folder"].endswith("docs")
    card = (out / "README.md").read_text()
    assert "4 documents" in card and "| eval_perplexity |" in card and "--max_steps 4" in card
    assert "--num_train_epochs" not in card and (out / "run_args.json").is_file()

    from transformers import AutoConfig, AutoModelForQuestionAnswering

    assert AutoConfig.from_pretrained(out).architectures == ["BertForQuestionAnswering"]
    saved = AutoModelForQuestionAnswering.from_pretrained(out)
    start = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    assert torch.equal(saved.qa_outputs.weight, start.qa_outputs.weight)
    assert not torch.equal(saved.base_model.embeddings.word_embeddings.weight, start.base_model.embeddings.word_embeddings.weight)

    qa_out = tmp_path / "qa"
    log = run_qa(*common_args(out, small_dataset, qa_out), "--max_steps", 2)
    assert "no trained weights" not in log  # the QA head came along
    assert json.loads((qa_out / "all_results.json").read_text())["eval_f1"] >= 0
    assert (qa_out / "model.safetensors").is_file()


def test_mlm_text_reads_the_contexts_of_a_squad_file(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "mlm"
    log = run_qa(*_mlm_args(tiny_model_dir, small_dataset["train"], out), "--max_steps", 1, "--mlm_held_out", 0)
    assert "Domain text: 12 documents" in log  # the training file's twelve distinct contexts
    assert "eval_perplexity" not in json.loads((out / "all_results.json").read_text())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train_file", "x.json"], "--mlm_text is a stage of its own"),
        (["--use_lora"], "leave out --hp_search_trials and --use_lora"),
        (["--mlm_probability", "1.5"], "mlm_probability must be within"),
    ],
)
def test_mlm_text_configuration_errors(tiny_model_dir, tmp_path, extra, message):
    log = run_qa(*_mlm_args(tiny_model_dir, _folder(tmp_path), tmp_path / "o"), *extra, expect=2)
    assert message in log


def test_mlm_text_that_does_not_exist_is_a_clear_error(tiny_model_dir, tmp_path):
    log = run_qa(*_mlm_args(tiny_model_dir, tmp_path / "nowhere", tmp_path / "o"), expect=2)
    assert "no such folder or file" in log and str(tmp_path / "nowhere") in log
    with pytest.raises(ConfigError, match="no masked-language-model class"):
        load_mlm_model(_not_mlm_model(tmp_path))


def _not_mlm_model(tmp_path):
    """A config whose architecture transformers has no MLM class for (GPT-2 is causal only)."""
    from transformers import GPT2Config

    path = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=50).save_pretrained(path)
    return path


def test_the_masked_tokens_loss_equals_the_models_own(tiny_model_dir, tokenizer, tmp_path):
    """Computing the output layer on masked tokens only changes the cost, not the loss."""
    from transformers import TrainingArguments

    from process import masked_lm_trainer

    chunks = chunk_texts([_document(n) for n in range(4)], tokenizer, 32)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    mlm = load_mlm_model(tiny_model_dir).eval()
    trainer = masked_lm_trainer(mlm, args, tokenizer, chunks, [], 0.15)
    torch.manual_seed(0)
    batch = trainer.data_collator([{"input_ids": c} for c in chunks[:4]])
    assert (batch["labels"] != -100).any()
    with torch.no_grad():
        ours = trainer.compute_loss(mlm, dict(batch))
        own = mlm(**batch).loss
    assert torch.allclose(ours, own, atol=1e-5)
