"""Check a POST /answer body before it reaches the model: every problem is a 4xx with a clear message.

Kept apart from the web framework so that each rule is a small pure function with its
own test. Nothing in a request can name a file: the only inputs are a question string,
a number and a flag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ALLOWED_FIELDS = ("question", "top_k", "passages")


class RequestError(ValueError):
    """A bad request: the HTTP status to answer with and a message that says what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask."""

    max_body_bytes: int = 16 * 1024
    max_question_chars: int = 500
    max_top_k: int = 10
    default_top_k: int = 3


@dataclass(frozen=True)
class Question:
    text: str
    top_k: int
    with_passages: bool = False  # also return the retrieved passages (the page makes them selectable)


def type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def parse_json(body: bytes) -> object:
    """The body as JSON; 400 when it is not UTF-8 or not well-formed JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "The request body is not UTF-8 text.") from None
    if not text.strip():
        raise RequestError(400, 'The request body is empty; send JSON like {"question": "..."}.')
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(400, f"Malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}.") from None
    except RecursionError:
        raise RequestError(400, "Malformed JSON: nested too deeply.") from None


def check_question(value: object, limits: Limits) -> str:
    """A non-empty string of at most max_question_chars characters, surrounding whitespace removed."""
    if value is None:
        raise RequestError(422, 'Missing "question": send {"question": "your question"}.')
    if not isinstance(value, str):
        raise RequestError(422, f'"question" must be a string, got {type_name(value)}.')
    question = value.strip()
    if not question:
        raise RequestError(422, '"question" is empty.')
    if len(question) > limits.max_question_chars:
        raise RequestError(422, f'"question" is too long: {len(question)} characters (at most {limits.max_question_chars}).')
    return question


def check_top_k(value: object, limits: Limits) -> int:
    """An integer from 1 to max_top_k; absent means the default (booleans and 3.0 are refused)."""
    if value is None:
        return limits.default_top_k
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(422, f'"top_k" must be an integer, got {type_name(value)}.')
    if not 1 <= value <= limits.max_top_k:
        raise RequestError(422, f'"top_k" must be between 1 and {limits.max_top_k}, got {value}.')
    return value


def parse_object(body: bytes, limits: Limits, allowed: tuple[str, ...], example: str) -> dict:
    """A body that is a JSON object of at most max_body_bytes with only `allowed` fields (`example` shows one)."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"The request body is too large: {len(body)} bytes (at most {limits.max_body_bytes}).")
    content = parse_json(body)
    if not isinstance(content, dict):
        raise RequestError(422, f"Expected a JSON object like {example}, got {type_name(content)}.")
    unknown = sorted(set(content) - set(allowed))
    if unknown:
        raise RequestError(422, f"Unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}.")
    return content


def parse_request(body: bytes, limits: Limits) -> Question:
    """The checked question and top_k of a POST /answer body."""
    content = parse_object(body, limits, ALLOWED_FIELDS, '{"question": "..."}')
    with_passages = content.get("passages", False)
    if not isinstance(with_passages, bool):
        raise RequestError(422, f'"passages" must be true or false, got {type_name(with_passages)}.')
    return Question(check_question(content.get("question"), limits), check_top_k(content.get("top_k"), limits), with_passages)
