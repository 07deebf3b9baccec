"""The index of a documents folder on disk: read once, then brought up to date file by file.

Reading a large folder (PDFs), cutting passages and embedding them costs minutes; a restart
should not pay it again. So the index (each file's documents, the BM25 index, the passage
embeddings) is saved under an index folder, and at the next start only what changed is
redone: a file whose size and modification time are unchanged is reused as is, one whose
bytes are unchanged (same sha256) too, a changed file is read and embedded again, a removed
one dropped. BM25 is rebuilt whenever anything changed (its term statistics are global).

Each update writes a new generation folder and then switches `manifest.json` to it with one
atomic rename, under a lock file, so several server processes can share one index: they map
the embeddings read-only, and whichever notices a change first updates it for all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slmqa.serving.documents import Document, DocumentError, FolderReport, Passage, folder_files, passages_of, read_one

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
MANIFEST = "manifest.json"


def default_index_dir(documents_dir: str | Path) -> Path:
    """Where a folder's index goes unless told: the user's cache folder, one index per documents folder."""
    folder = Path(documents_dir).resolve()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "slmqa" / "index" / f"{folder.name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:10]}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One file of the folder as indexed: how to tell it changed, and what it holds."""

    size: int
    mtime_ns: int
    sha256: str
    documents: tuple[str, ...] = ()
    skipped: str | None = None  # why it holds no document (unsupported type, empty, ...)


@dataclass
class Collection:
    """Everything a question is searched in: documents, passages, their embeddings and the BM25 index."""

    documents: dict[str, Document]
    passages: list[Passage]
    embeddings: np.ndarray | None  # row i embeds passages[i]; None when no encoder is used
    bm25_index: object | None  # a bm25s index over `passages` (built by the retriever when None)
    files: dict[str, FileEntry] = field(default_factory=dict)
    generation: int = 0
    report: FolderReport = field(default_factory=FolderReport)

    def __post_init__(self) -> None:
        self.file_of = {name: path for path, entry in self.files.items() for name in entry.documents}


def collection_of(documents: list[Document], passage_words: int, passage_overlap: int, encoder=None) -> Collection:
    """An in-memory collection of given documents (nothing saved)."""
    passages = passages_of(documents, passage_words, passage_overlap)
    embeddings = encode_passages(encoder, passages) if encoder is not None else None
    return Collection({d.name: d for d in documents}, passages, embeddings, None, report=FolderReport(documents=len(documents)))


def encode_passages(encoder, passages: list[Passage], chunk: int = 1024) -> np.ndarray:
    """Embeddings of the passages, with a progress bar when there are many."""
    from tqdm.auto import tqdm

    if not passages:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    parts = []
    with tqdm(total=len(passages), desc="Embedding passages", unit="passage", disable=len(passages) < 2 * chunk) as bar:
        for first in range(0, len(passages), chunk):
            parts.append(encoder.encode([p.text for p in passages[first : first + chunk]]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


class FolderIndex:
    """A documents folder's index under `index_dir`: load it, bring it up to date, notice changes."""

    def __init__(self, folder: str | Path, index_dir: str | Path | None, passage_words: int, passage_overlap: int, encoder=None):
        """`index_dir` None: nothing is saved or reused (every load reads the whole folder)."""
        self.folder, self.index_dir = Path(folder), Path(index_dir) if index_dir is not None else None
        self.passage_words, self.passage_overlap, self.encoder = passage_words, passage_overlap, encoder
        self.settings = {
            "format": INDEX_FORMAT, "passage_words": passage_words, "passage_overlap": passage_overlap,
            "embedder": encoder.fingerprint if encoder is not None else None,
        }

    # ------------------------------------------------------------ on disk

    @contextlib.contextmanager
    def _locked(self):
        if self.index_dir is None:
            yield
            return
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _manifest(self) -> dict | None:
        """The saved manifest when it was made with these settings (another encoder or passage size: none)."""
        if self.index_dir is None:
            return None
        path = self.index_dir / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            logger.warning("Ignoring the unreadable index manifest %s (%s): rebuilding", path, err)
            return None
        if manifest.get("settings") != self.settings:
            logger.info("The index in %s was built with other settings: rebuilding", self.index_dir)
            return None
        return manifest

    def _load_generation(self, manifest: dict) -> Collection:
        import bm25s

        folder = self.index_dir / f"gen-{manifest['generation']:06d}"
        with (folder / "documents.jsonl").open(encoding="utf-8") as handle:
            documents = [Document(**json.loads(line)) for line in handle]
        files = {path: FileEntry(**{**entry, "documents": tuple(entry["documents"])}) for path, entry in manifest["files"].items()}
        embeddings = np.load(folder / "embeddings.npy", mmap_mode="r") if (folder / "embeddings.npy").is_file() else None
        bm25_index = bm25s.BM25.load(str(folder / "bm25"), mmap=True) if (folder / "bm25").is_dir() else None
        report = FolderReport(documents=len(documents), skipped=Counter(e.skipped for e in files.values() if e.skipped))
        passages = passages_of(documents, self.passage_words, self.passage_overlap)
        return Collection({d.name: d for d in documents}, passages, embeddings, bm25_index, files, manifest["generation"], report)

    def _save(self, collection: Collection) -> None:
        """Write the collection as the next generation, then switch the manifest to it."""
        from slmqa.serving.retrieval import BM25Retriever

        if collection.bm25_index is None and collection.passages:
            collection.bm25_index = BM25Retriever(collection.passages).index
        if self.index_dir is None:
            return
        generation = collection.generation
        folder = self.index_dir / f"gen-{generation:06d}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        with (folder / "documents.jsonl").open("w", encoding="utf-8") as handle:
            for document in collection.documents.values():
                handle.write(json.dumps(asdict(document), ensure_ascii=False) + "\n")
        if collection.embeddings is not None:
            np.save(folder / "embeddings.npy", np.asarray(collection.embeddings, dtype=np.float32))
        if collection.passages:
            collection.bm25_index.save(str(folder / "bm25"), show_progress=False)
        manifest = {"settings": self.settings, "generation": generation, "folder": str(self.folder.resolve()),
                    "files": {path: asdict(entry) for path, entry in collection.files.items()}}
        temporary = self.index_dir / f"{MANIFEST}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(manifest), encoding="utf-8")
        os.replace(temporary, self.index_dir / MANIFEST)
        for old in self.index_dir.glob("gen-*"):  # keep the one before: a process may still be switching
            if old.is_dir() and int(old.name[4:]) < generation - 1:
                shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------ up to date

    def load(self) -> Collection:
        """The folder's collection, updated on disk first if any file was added, changed or removed."""
        started = time.perf_counter()
        with self._locked():
            manifest = self._manifest()
            previous = self._load_generation(manifest) if manifest else None
            collection, changes = self._update(previous)
            if changes or previous is None:
                self._save(collection)
        if not collection.documents:
            raise DocumentError(f"No readable document in {self.folder}.")
        logger.info("Index %s: %d documents, %d passages (%s) in %.1fs", self.index_dir, len(collection.documents),
                    len(collection.passages), ", ".join(f"{n} {k}" for k, n in changes.items()) or "unchanged",
                    time.perf_counter() - started)
        return collection

    def _update(self, previous: Collection | None) -> tuple[Collection, Counter]:
        """The collection for the folder as it is now, reusing what `previous` has of unchanged files."""
        old_files = previous.files if previous else {}
        changes: Counter = Counter()
        files: dict[str, FileEntry] = {}
        documents: list[Document] = []
        reused: set[str] = set()
        for path, name in folder_files(self.folder):
            stat = path.stat()
            old = old_files.get(name)
            same_stat = old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            sha256 = old.sha256 if same_stat else file_sha256(path)
            if old is not None and old.sha256 == sha256:  # unchanged (perhaps touched): reuse what it held
                found, skipped = [previous.documents[n] for n in old.documents], old.skipped
                reused.add(name)
            else:
                found, skipped = read_one(path, name)
                changes["changed" if old is not None else "added"] += 1
            files[name] = FileEntry(stat.st_size, stat.st_mtime_ns, sha256, tuple(d.name for d in found), skipped)
            documents.extend(found)
        changes["removed"] = len(set(old_files) - set(files))
        changes = +changes  # drop zero counts
        passages = passages_of(documents, self.passage_words, self.passage_overlap)
        report = FolderReport(documents=len(documents), skipped=Counter(e.skipped for e in files.values() if e.skipped))
        collection = Collection({d.name: d for d in documents}, passages, None, None, files, 0, report)
        if self.encoder is not None:
            collection.embeddings = self._embeddings(previous, collection, reused)
        if previous is not None and not changes:
            collection.bm25_index = previous.bm25_index
        collection.generation = (previous.generation if previous else 0) + (1 if changes or previous is None else 0)
        return collection, changes

    def _embeddings(self, previous: Collection | None, collection: Collection, reused: set[str]) -> np.ndarray:
        """The previous rows for passages of reused files, fresh embeddings for the rest, in passage order."""
        old_rows = _passage_rows(previous) if previous is not None and previous.embeddings is not None else {}
        embeddings = np.zeros((len(collection.passages), self.encoder.dimension), dtype=np.float32)
        fresh: list[int] = []
        for path, positions in _passage_rows(collection).items():
            old = old_rows.get(path)
            if path in reused and old is not None and len(old) == len(positions):
                embeddings[positions] = previous.embeddings[old]
            else:
                fresh.extend(positions)
        if fresh:
            embeddings[fresh] = encode_passages(self.encoder, [collection.passages[i] for i in fresh])
        return embeddings

    def stale(self, collection: Collection, document_names) -> bool:
        """Whether any file holding these documents changed or vanished since the collection was read."""
        for path in {collection.file_of.get(name) for name in document_names}:
            entry = collection.files.get(path) if path else None
            if entry is None:
                return True
            try:
                stat = (self.folder / path).stat()
            except OSError:
                return True
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                return True
        return False

    def changed(self, collection: Collection) -> bool:
        """Whether the folder differs from the collection (a file added, removed or touched), or the saved index is newer."""
        try:
            manifest = json.loads((self.index_dir / MANIFEST).read_text(encoding="utf-8")) if self.index_dir else {}
            if manifest.get("generation", 0) > collection.generation:
                return True
        except (OSError, ValueError):
            pass
        current = {name: path.stat() for path, name in folder_files(self.folder)}
        if set(current) != set(collection.files):
            return True
        return any((stat.st_size, stat.st_mtime_ns) != (collection.files[name].size, collection.files[name].mtime_ns)
                   for name, stat in current.items())


def _passage_rows(collection: Collection) -> dict[str, list[int]]:
    """file -> the positions of its passages in the collection."""
    rows: dict[str, list[int]] = {}
    for position, passage in enumerate(collection.passages):
        rows.setdefault(collection.file_of[passage.document], []).append(position)
    return rows
