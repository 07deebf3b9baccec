"""slmqa.serving.index: saved, reused, updated file by file, never stale; DocumentQA re-reads a changed file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from slmqa.serving import index as index_module
from slmqa.serving.documents import DocumentError
from slmqa.serving.index import MANIFEST, FolderIndex, default_index_dir
from tests.document_helpers import MarkedTokenBackend


class CountingEncoder:
    """A deterministic bag-of-words 'sentence encoder' that counts what it embeds."""

    dimension = 16
    fingerprint = "counting:16"

    def __init__(self):
        self.encoded: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, sum(map(ord, word)) % self.dimension] += 1
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def write(folder, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    write(docs, "a.txt", "The pump P-1 delivers 12 bar. " * 30)
    write(docs, "b.txt", "The valve V-2 opens at 6 bar. " * 30)
    write(docs, "sub/c.md", "The fan F-3 turns at 900 rpm. " * 30)
    return docs


def make_index(folder, tmp_path, encoder=None, words: int = 40) -> FolderIndex:
    return FolderIndex(folder, tmp_path / "index", words, 10, encoder or CountingEncoder())


def count_reads(monkeypatch) -> list[str]:
    read = []
    real = index_module.read_one

    def counting(path, name):
        read.append(name)
        return real(path, name)

    monkeypatch.setattr(index_module, "read_one", counting)
    return read


def test_first_load_builds_and_saves_a_later_load_reuses_everything(folder, tmp_path, monkeypatch):
    encoder = CountingEncoder()
    first = make_index(folder, tmp_path, encoder).load()
    assert set(first.documents) == {"a.txt", "b.txt", "sub/c.md"} and len(encoder.encoded) == len(first.passages)
    manifest = json.loads((tmp_path / "index" / MANIFEST).read_text())
    assert manifest["generation"] == 1 and (tmp_path / "index" / "gen-000001" / "embeddings.npy").is_file()
    read, again = count_reads(monkeypatch), CountingEncoder()
    second = make_index(folder, tmp_path, again).load()
    assert read == [] and again.encoded == [] and second.generation == 1
    assert [p.text for p in second.passages] == [p.text for p in first.passages]
    np.testing.assert_array_equal(np.asarray(second.embeddings), first.embeddings)
    assert second.bm25_index is not None


def test_only_added_and_changed_files_are_read_and_embedded(folder, tmp_path, monkeypatch):
    make_index(folder, tmp_path).load()
    write(folder, "d.txt", "The motor M-4 runs at 50 Hz. " * 30)  # added
    write(folder, "b.txt", "The valve V-2 opens at 7 bar now. " * 30)  # changed
    (folder / "sub" / "c.md").unlink()  # removed
    os.utime(folder / "a.txt", ns=(1, 1))  # touched: same bytes, other time
    read, encoder = count_reads(monkeypatch), CountingEncoder()
    updated = make_index(folder, tmp_path, encoder).load()
    assert sorted(read) == ["b.txt", "d.txt"]
    assert set(updated.documents) == {"a.txt", "b.txt", "d.txt"} and "7 bar" in updated.documents["b.txt"].text
    new_passages = [p.text for p in updated.passages if p.document in ("b.txt", "d.txt")]
    assert sorted(encoder.encoded) == sorted(new_passages)
    scratch = FolderIndex(folder, None, 40, 10, CountingEncoder()).load()  # the same folder read from nothing
    np.testing.assert_allclose(np.asarray(updated.embeddings), scratch.embeddings)
    assert updated.generation == 2 and updated.files["a.txt"].mtime_ns == 1


def test_other_settings_or_a_broken_manifest_rebuild(folder, tmp_path, monkeypatch, caplog):
    make_index(folder, tmp_path).load()
    read = count_reads(monkeypatch)
    make_index(folder, tmp_path, words=50).load()
    assert sorted(read) == ["a.txt", "b.txt", "sub/c.md"]
    (tmp_path / "index" / MANIFEST).write_text("{broken", encoding="utf-8")
    read.clear()
    make_index(folder, tmp_path, words=50).load()
    assert len(read) == 3 and "unreadable index manifest" in caplog.text


def test_stale_and_changed_notice_edits(folder, tmp_path):
    index = make_index(folder, tmp_path)
    collection = index.load()
    assert not index.stale(collection, ["a.txt", "b.txt"]) and not index.changed(collection)
    write(folder, "b.txt", "edited")
    assert index.stale(collection, ["b.txt"]) and not index.stale(collection, ["a.txt"]) and index.changed(collection)
    collection = index.load()
    write(folder, "e.txt", "new file")
    assert index.changed(collection) and not index.stale(collection, ["a.txt"])
    (folder / "a.txt").unlink()
    assert index.stale(collection, ["a.txt"])


def test_an_empty_folder_is_an_error_and_the_default_index_is_per_folder(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DocumentError, match="No readable document"):
        FolderIndex(tmp_path / "empty", tmp_path / "index", 40, 10).load()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_index_dir(tmp_path / "docs").parent == tmp_path / "cache" / "slmqa" / "index"
    assert default_index_dir(tmp_path / "docs") != default_index_dir(tmp_path / "other" / "docs")


def test_document_qa_never_answers_from_a_changed_file(tmp_path, tiny_model_dir, tokenizer):
    from slmqa.serving.docqa import DocumentQA, Options

    docs = tmp_path / "docs"
    write(docs, "manual.txt", "The torque setting of the CM-7 is 25 Nm under normal load.")
    write(docs, "other.txt", "The fan turns at 900 rpm.")
    qa = DocumentQA(tiny_model_dir, docs, options=Options(passages=2, retriever="bm25", rescan_s=3600),
                    index_dir=tmp_path / "index")
    qa.reader.backend = MarkedTokenBackend(tokenizer.convert_tokens_to_ids("25"))
    question = "What is the torque setting of the CM-7?"
    assert qa.ask([question])[0].answers[0].text == "25"
    write(docs, "manual.txt", "The torque setting of the CM-7 is now 40 Nm under normal load.")
    answers = qa.ask([question])[0].answers
    assert answers and all(a.text != "25" for a in answers)
    text = qa.documents["manual.txt"].text
    assert all(text[a.start : a.end] == a.text for a in answers if a.document == "manual.txt")
    write(docs, "new.txt", "The torque setting of the CM-9 is 25 Nm.")
    assert "new.txt" not in qa.documents  # not looked for before rescan_s ...
    assert qa.refresh() and "new.txt" in qa.documents  # ... or an explicit refresh
    assert qa.ask(["What is the torque setting of the CM-9?"])[0].answers[0].document == "new.txt"
