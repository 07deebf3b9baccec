"""slmqa.serving.labels: the SQLite label store (schema, migration, refusals, concurrency, unavailable writes)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from slmqa.serving import labels as labels_module
from slmqa.serving.labels import (
    SCHEMA_VERSION,
    Label,
    LabelStore,
    LabelStoreError,
    LabelStoreUnavailable,
    PassageRef,
    default_database,
)


def answer(question: str = "What is the torque?", start: int = 3, end: int = 5) -> Label:
    return Label(question, "answer", document="manual.txt", document_sha256="ab" * 32, start=start, end=end, answer="25", model="m@1")


def test_labels_round_trip_with_ids_newest_first(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    first = store.add(answer())
    refused = Label("Who?", "no_answer", passages=(PassageRef("manual.txt", "cd" * 32, 0, 40),), model="m@1")
    second = store.add(refused)
    assert (first, second) == (1, 2) and store.count() == 2
    newest, oldest = store.page()
    assert newest.id == 2 and newest.kind == "no_answer" and newest.passages == refused.passages
    assert oldest.to_json() | {"created": None} == answer().to_json() | {"id": 1, "created": None}
    assert store.counts_by_kind() == {"answer": 1, "confirmed": 0, "rejected": 0, "no_answer": 1}
    assert [label.id for label in store.all()] == [1, 2]
    assert store.delete(1) and not store.delete(1) and store.count() == 1


def test_schema_version_and_wal_are_set(tmp_path):
    LabelStore(tmp_path / "labels.sqlite").add(answer())
    db = sqlite3.connect(tmp_path / "labels.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA application_id").fetchone()[0] == labels_module.APPLICATION_ID
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_older_database_is_migrated_and_keeps_its_labels(tmp_path, monkeypatch):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).add(answer())  # a version-1 database with one label
    later = {**labels_module.MIGRATIONS, SCHEMA_VERSION + 1: ["ALTER TABLE labels ADD COLUMN reviewer TEXT"]}
    monkeypatch.setattr(labels_module, "MIGRATIONS", later)
    monkeypatch.setattr(labels_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    store = LabelStore(path)
    assert store.count() == 1 and next(store.all()).answer == "25"
    columns = {row[1] for row in store.connection.execute("PRAGMA table_info(labels)")}
    assert "reviewer" in columns
    assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LabelStoreError, match="newer than this slmqa"):
        LabelStore(path)


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"my precious notes, not a database\n" * 20)
    before = path.read_bytes()
    with pytest.raises(LabelStoreError, match=r"notes\.sqlite is not a SQLite database"):
        LabelStore(path)
    assert path.read_bytes() == before
    with pytest.raises(LabelStoreError, match="is a folder"):
        LabelStore(tmp_path)


def test_another_programs_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(LabelStoreError, match="another program"):
        LabelStore(path)
    assert path.read_bytes() == before


def test_read_only_and_full_databases_refuse_writes_with_unavailable(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add(answer())
    store.connection.execute("PRAGMA query_only = ON")  # what SQLite says for a read-only file
    with pytest.raises(LabelStoreUnavailable, match="readonly"):
        store.add(answer())
    with pytest.raises(LabelStoreUnavailable):
        store.delete(1)
    assert store.count() == 1  # reading still works
    store.connection.execute("PRAGMA query_only = OFF")
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages}")  # a full disk, as SQLite reports it
    with pytest.raises(LabelStoreUnavailable, match="full"):
        for _ in range(200):
            store.add(answer(question="x" * 2000))


def test_a_store_opened_read_only_serves_reads(tmp_path, monkeypatch):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).add(answer())
    real_connect = LabelStore._connect

    def read_only_file(self, read_only):  # as when the file's permissions forbid writing
        if not read_only:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_connect(self, read_only)

    monkeypatch.setattr(LabelStore, "_connect", read_only_file)
    store = LabelStore(path)
    assert store.read_only and store.count() == 1
    with pytest.raises(LabelStoreUnavailable, match="read-only"):
        store.add(answer())


def test_fifty_threads_adding_at_once_store_fifty_labels(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    ids, start = [], threading.Barrier(50)

    def add(number: int) -> None:
        start.wait()
        ids.append(store.add(answer(question=f"question {number}?")))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == list(range(1, 51))
    assert sorted(label.question for label in LabelStore(tmp_path / "labels.sqlite").all()) == sorted(f"question {n}?" for n in range(50))


def test_default_database_is_per_folder_under_the_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    one, other = default_database(tmp_path / "docs"), default_database(tmp_path / "more" / "docs")
    assert one.parent == tmp_path / "data" / "slmqa" / "labels" and one.name.startswith("docs-") and one != other
    assert default_database(tmp_path / "docs") == one


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="Unknown label kind"):
        Label("q", "maybe")
