"""The user's field names, mapped to the SQuAD fields every later step reads.

Data often arrives with its own names (`qid`, `query`, `passage`, ...). One `ColumnMap`
renames them once, when records are checked; messages about a record name the user's
fields, not ours, so that they can be found in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ColumnMap:
    """Which field of a record holds each SQuAD field (answer_start: a separate field of offsets, if any)."""

    id: str = "id"
    title: str = "title"
    question: str = "question"
    context: str = "context"
    answers: str = "answers"
    is_impossible: str = "is_impossible"
    answer_start: str | None = None

    @property
    def is_standard(self) -> bool:
        return self == ColumnMap()

    def standard_fields(self, raw: dict) -> dict:
        """The record with its fields renamed to the SQuAD ones (those it has); answers joined with answer_start."""
        if self.is_standard:
            return raw
        mapping = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "answer_start"}
        record = {standard: raw.get(column) for standard, column in mapping.items() if column in raw}
        if self.answer_start:
            record["answers"] = {"text": raw.get(self.answers), "answer_start": raw.get(self.answer_start)}
        return record

    def raw_id(self, raw) -> str:
        """The record's id as the user wrote it, for messages about a record that could not be read."""
        return str(raw.get(self.id)) if isinstance(raw, dict) else "None"

    def user_field(self, standard: str) -> str:
        """A SQuAD field name (`question`, `answers.text`, ...) as the user's data names it."""
        if standard == "answers.text":
            return self.answer_text_field()
        if standard == "answers.answer_start":
            return self.answer_start_field()
        return getattr(self, standard, standard)

    def answer_text_field(self) -> str:
        """How messages name the answer text: `answers.text`, or the plain answer column of answer_start data."""
        return self.answers if self.answer_start else f"{self.answers}.text"

    def answer_start_field(self) -> str:
        return self.answer_start or f"{self.answers}.answer_start"
