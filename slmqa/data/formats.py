"""Reading data files: official SQuAD JSON, flat JSON, JSON Lines, CSV or Parquet, into raw flat records.

Owns the file formats only: what a record then has to satisfy is checks.py's job.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from slmqa.errors import DataError

SUPPORTED_EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet")


def _read_jsonl(path: Path, text: str) -> list[dict]:
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON on line {line_number}, column {err.colno}: {err.msg}") from None
    return records


def flatten_squad(articles: list[dict]) -> list[dict]:
    """Official nested SQuAD (articles > paragraphs > qas) to one flat record per question."""
    records = []
    for article in articles:
        title = article.get("title", "")
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                records.append(
                    {
                        "id": qa.get("id"),
                        "title": title,
                        "context": context,
                        "question": qa.get("question"),
                        "answers": qa.get("answers", []),
                        "is_impossible": qa.get("is_impossible", False),
                    }
                )
    return records


def read_records(path: str | Path) -> list[dict]:
    """Read any supported file into raw flat records (not yet checked)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DataError(f"{path}: unsupported extension '{suffix}'; use one of {', '.join(SUPPORTED_EXTENSIONS)}.")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for broken files
            raise DataError(f"{path}: cannot read Parquet: {err}") from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None
    if suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if suffix == ".jsonl":
        return _read_jsonl(path, text)
    try:
        content = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON Lines saved with a .json extension
            return _read_jsonl(path, text)
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if isinstance(content, dict):
        if "data" not in content or not isinstance(content["data"], list):
            raise DataError(f"{path}: expected a top-level list of records or an object with a 'data' list.")
        content = content["data"]
    if not isinstance(content, list):
        raise DataError(f"{path}: expected a list of records.")
    if content and isinstance(content[0], dict) and "paragraphs" in content[0]:
        return flatten_squad(content)
    return content
