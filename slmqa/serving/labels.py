"""Labels made in the served page, stored in SQLite: the raw material of the next model's training data.

One row per label, committed in its own transaction before the server acknowledges it
(WAL journal, synchronous=FULL: an acknowledged label survives a crash of the server or
the machine). Several threads and processes may write at once; SQLite serialises them.

The file is never taken over blindly: a file that is not SQLite, or a SQLite database made
by another program, is refused with its path named, and left as it was. The schema carries
a version (`PRAGMA user_version`), so a later version of this module migrates an older
database step by step instead of failing on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

# Written into the database header so that our files are recognised (and others' refused).
APPLICATION_ID = 0x534C4D51  # "SLMQ"
SQLITE_HEADER = b"SQLite format 3\x00"
KINDS = ("answer", "confirmed", "rejected", "no_answer")
# kind -> meaning: an expert's span, the model's answer marked right, the model's answer marked
# wrong, and "not in these documents".

# Each step takes the schema from version N-1 to N; a new version appends a step, never edits one.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE labels (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            question TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('answer', 'confirmed', 'rejected', 'no_answer')),
            document TEXT,
            document_sha256 TEXT,
            start INTEGER,
            "end" INTEGER,
            answer TEXT,
            passages TEXT NOT NULL DEFAULT '[]',
            model TEXT,
            source TEXT NOT NULL DEFAULT 'answers',
            created TEXT NOT NULL
        )""",
        "CREATE INDEX labels_by_document ON labels (document)",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)


class LabelStoreError(RuntimeError):
    """The database cannot be used at all (not a database, someone else's, from a newer version)."""


class LabelStoreUnavailable(RuntimeError):
    """A write failed for a reason the server cannot fix (read-only file, full disk): answer 503."""


def default_database(documents_dir: str | Path) -> Path:
    """Where the labels of a documents folder go unless told: the user's data folder, one file per folder."""
    import os

    folder = Path(documents_dir).resolve()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "slmqa" / "labels" / f"{folder.name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:10]}.sqlite"


def text_sha256(text: str) -> str:
    """The fingerprint of a document's text, kept with each label to notice later edits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PassageRef:
    """A passage retrieved for a question: where it is, and the text it was cut from (by hash)."""

    document: str
    document_sha256: str
    start: int
    end: int


@dataclass(frozen=True)
class Label:
    """One label. For an answer: `answer == document_text[start:end]`; for no_answer: the passages read."""

    question: str
    kind: str
    document: str | None = None
    document_sha256: str | None = None
    start: int | None = None
    end: int | None = None
    answer: str | None = None
    passages: tuple[PassageRef, ...] = ()
    model: str | None = None
    source: str = "answers"  # "answers": made on the model's answers; "browse": made reading a document
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown label kind {self.kind!r}; expected one of {', '.join(KINDS)}.")

    def to_json(self) -> dict:
        content = asdict(self)
        content["passages"] = [asdict(p) for p in self.passages]
        return content


def _label_of(row: sqlite3.Row) -> Label:
    passages = tuple(PassageRef(**p) for p in json.loads(row["passages"]))
    return Label(
        question=row["question"], kind=row["kind"], document=row["document"], document_sha256=row["document_sha256"],
        start=row["start"], end=row["end"], answer=row["answer"], passages=passages, model=row["model"],
        source=row["source"], created=row["created"], id=row["id"],
    )


def _check_file(path: Path) -> None:
    """Refuse (without touching it) a file that exists but is not a SQLite database."""
    if path.is_dir():
        raise LabelStoreError(f"{path} is a folder; --feedback_db needs a database file path.")
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            raise LabelStoreError(f"{path} is not a SQLite database (refusing to overwrite it); choose another --feedback_db.")


class LabelStore:
    """A label database: add, list, count, delete; safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        _check_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = False
        try:
            self.connection = self._connect(read_only=False)
            self._migrate()
        except sqlite3.OperationalError as err:
            if "readonly" not in str(err) and "unable to open" not in str(err):
                raise LabelStoreError(f"Cannot use the label database {self.path}: {err}.") from None
            if not self.path.exists():
                raise LabelStoreError(f"Cannot create the label database {self.path}: {err}.") from None
            # A database we may read but not write: serve it, and answer 503 to writes.
            self.connection = self._connect(read_only=True)
            self._check_schema(self.connection.execute("PRAGMA user_version").fetchone()[0])
            self.read_only = True
            logger.warning("The label database %s is read-only: labels can be listed and exported, not added", self.path)
        except sqlite3.DatabaseError as err:
            raise LabelStoreError(f"{self.path} is not a usable SQLite database ({err}); it was left as it is.") from None
        self.lock = threading.Lock()

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        if read_only:
            connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        else:
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA busy_timeout = 10000")
        return connection

    def _check_schema(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise LabelStoreError(
                f"{self.path} has label schema version {version}, newer than this slmqa knows ({SCHEMA_VERSION}); "
                "upgrade slmqa to use it."
            )

    def _migrate(self) -> None:
        """Create the schema on an empty database, bring an older one up to date, refuse a foreign one."""
        db = self.connection
        application, version = db.execute("PRAGMA application_id").fetchone()[0], db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if application != APPLICATION_ID and (application != 0 or tables):
            raise LabelStoreError(f"{self.path} is a SQLite database of another program (refusing to change it); choose another --feedback_db.")
        self._check_schema(version)
        # Only now that the file is known to be ours: WAL (writers never block readers) and a sync per commit.
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {step}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            logger.info("Label database %s: schema version %d", self.path, step)

    def add(self, label: Label) -> int:
        """Store one label; returns its id once the transaction has committed."""
        if self.read_only:
            raise LabelStoreUnavailable(f"The label database {self.path} is read-only: no label can be stored.")
        row = label.to_json()
        row["passages"] = json.dumps(row["passages"])
        row.pop("id")
        columns = ", ".join(f'"{name}"' for name in row)
        try:
            with self.lock:
                cursor = self.connection.execute(
                    f"INSERT INTO labels ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
                return int(cursor.lastrowid)
        except sqlite3.OperationalError as err:
            raise LabelStoreUnavailable(f"Could not store the label in {self.path}: {err}.") from None

    def delete(self, label_id: int) -> bool:
        """Remove one label; False when there was none with that id."""
        if self.read_only:
            raise LabelStoreUnavailable(f"The label database {self.path} is read-only: no label can be deleted.")
        try:
            with self.lock:
                return self.connection.execute("DELETE FROM labels WHERE id = ?", (label_id,)).rowcount == 1
        except sqlite3.OperationalError as err:
            raise LabelStoreUnavailable(f"Could not delete the label from {self.path}: {err}.") from None

    def count(self) -> int:
        with self.lock:
            return int(self.connection.execute("SELECT COUNT(*) FROM labels").fetchone()[0])

    def counts_by_kind(self) -> dict[str, int]:
        with self.lock:
            rows = self.connection.execute("SELECT kind, COUNT(*) FROM labels GROUP BY kind").fetchall()
        return {kind: 0 for kind in KINDS} | {row[0]: int(row[1]) for row in rows}

    def page(self, offset: int = 0, limit: int = 50) -> list[Label]:
        """Labels newest first."""
        with self.lock:
            rows = self.connection.execute("SELECT * FROM labels ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [_label_of(row) for row in rows]

    def all(self) -> Iterator[Label]:
        """Every label, oldest first."""
        with self.lock:
            rows = self.connection.execute("SELECT * FROM labels ORDER BY id").fetchall()
        yield from (_label_of(row) for row in rows)

    def close(self) -> None:
        with self.lock:
            self.connection.close()
