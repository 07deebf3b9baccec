"""The mock-domain spec format: reading a spec file and checking it, so generation never meets bad data.

Domain spec (JSON, or YAML when PyYAML is installed); every key is required:
    name                  id-safe string (letters, digits, "_", "-"); used in ids and "version".
    description           one line shown by --list_domains.
    entity_type           what the entities are, e.g. "machine" (documentation only).
    entities              >= 8 distinct names; none may contain another (so "entity not
                          mentioned" can be decided reliably).
    title_template        template; may use {entity} (first entity of the passage) and {number}.
    attributes            mapping key -> attribute (>= 2), each with:
        label               lower-case phrase, e.g. "torque setting" (used by distractors).
        values              >= 4 distinct answer strings, no surrounding whitespace.
        context_templates   sentences with {entity} and {value} exactly once each; {value}
                            must not touch a letter/digit/brace (answers sit on word boundaries).
        question_templates  questions with {entity} exactly once.
    distractor_templates  sentences with {entity} and {value} exactly once, optionally
                          {attribute}; they state another entity's value of an attribute the
                          passage also states, so the reader must match the entity.
    filler_sentences      plain sentences without placeholders (may be empty).
The built-in domains are such files: slmqa/mock/domains/<name>.json (BUILTIN_DOMAINS), plus
slmqa/mock/domains/example_domain.json as one more example. Every problem is a
DomainSpecError naming the file and the key.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any, NoReturn

try:
    import yaml
except ImportError:  # YAML specs are optional
    yaml = None

MIN_ENTITIES = 8
DOMAINS_DIR = Path(__file__).resolve().parent / "domains"
BUILTIN_DOMAINS = {name: DOMAINS_DIR / f"{name}.json" for name in ("equipment_manual", "hr_policy", "clinical_trial")}


class DomainSpecError(ValueError):
    """A domain spec is malformed; the message names the file (or source) and the offending key."""



def _fail(source: str, key: str, problem: str) -> NoReturn:
    raise DomainSpecError(f"{source}: key '{key}' {problem}")


def _get(spec: dict, key: str, kind: type, path: str, source: str) -> Any:
    if not isinstance(spec, dict) or key not in spec:
        _fail(source, path + key, "is missing")
    if not isinstance(spec[key], kind):
        _fail(source, path + key, f"must be a {kind.__name__}, got {type(spec[key]).__name__}")
    return spec[key]


def _string_list(spec: dict, key: str, path: str, source: str, min_items: int) -> list[str]:
    items = _get(spec, key, list, path, source)
    if len(items) < min_items:
        _fail(source, path + key, f"needs at least {min_items} entries, got {len(items)}")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            _fail(source, f"{path}{key}[{index}]", "must be a non-empty string without surrounding whitespace")
    if len(set(items)) != len(items):
        _fail(source, path + key, "contains duplicates")
    return items


def _check_template(template: str, key: str, source: str, required: set[str], allowed: set[str]) -> None:
    """Allow only bare named fields so "{value}" can be located literally when rendering."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        _fail(source, key, f"is not a valid template ({err}): {template!r}")
    fields = [name for _, name, spec, conv in parsed if name is not None]
    if "{{" in template or "}}" in template or any(spec or conv for _, name, spec, conv in parsed if name):
        _fail(source, key, f"may only use plain placeholders like {{entity}}: {template!r}")
    for name in sorted(set(fields) - allowed):
        _fail(source, key, f"uses unknown placeholder {{{name}}} (allowed: {sorted(allowed)}): {template!r}")
    for name in sorted(required):
        if fields.count(name) != 1:
            _fail(source, key, f"must contain {{{name}}} exactly once: {template!r}")
    if "value" in required:
        start = template.index("{value}")
        before = template[start - 1] if start else " "
        after = template[start + 7] if start + 7 < len(template) else " "
        if before.isalnum() or after.isalnum() or before in "{}" or after in "{}":
            _fail(source, key, f"must keep {{value}} on a word boundary: {template!r}")


def validate_domain(spec: dict, source: str = "<dict>") -> dict:
    """Check a domain spec and return a normalised copy, so generation never meets bad data."""
    if not isinstance(spec, dict):
        raise DomainSpecError(f"{source}: a domain spec must be a mapping, got {type(spec).__name__}")
    name = _get(spec, "name", str, "", source)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        _fail(source, "name", f"may only contain letters, digits, '_' and '-': {name!r}")
    entities = _string_list(spec, "entities", "", source, MIN_ENTITIES)
    for outer in entities:
        for inner in entities:
            if inner != outer and inner.lower() in outer.lower():
                _fail(source, "entities", f"has {inner!r} inside {outer!r}; names must not contain each other")
    title = _get(spec, "title_template", str, "", source)
    _check_template(title, "title_template", source, set(), {"entity", "number"})
    attributes = _get(spec, "attributes", dict, "", source)
    if len(attributes) < 2:
        _fail(source, "attributes", "needs at least 2 attributes")
    clean_attributes = {}
    for attr_key, attribute in attributes.items():
        path = f"attributes.{attr_key}."
        if not isinstance(attribute, dict):
            _fail(source, path[:-1], "must be a mapping")
        label = _get(attribute, "label", str, path, source)
        values = _string_list(attribute, "values", path, source, 4)
        contexts = _string_list(attribute, "context_templates", path, source, 1)
        questions = _string_list(attribute, "question_templates", path, source, 1)
        for index, template in enumerate(contexts):
            _check_template(template, f"{path}context_templates[{index}]", source, {"entity", "value"},
                            {"entity", "value"})
        for index, template in enumerate(questions):
            _check_template(template, f"{path}question_templates[{index}]", source, {"entity"}, {"entity"})
        clean_attributes[str(attr_key)] = {"label": label, "values": values, "context_templates": contexts,
                                           "question_templates": questions}
    distractors = _string_list(spec, "distractor_templates", "", source, 1)
    for index, template in enumerate(distractors):
        _check_template(template, f"distractor_templates[{index}]", source, {"entity", "value"},
                        {"entity", "value", "attribute"})
    fillers = _string_list(spec, "filler_sentences", "", source, 0)
    return {"name": name, "description": _get(spec, "description", str, "", source),
            "entity_type": _get(spec, "entity_type", str, "", source), "entities": entities,
            "title_template": title, "attributes": clean_attributes, "distractor_templates": distractors,
            "filler_sentences": fillers}


def load_domain(domain: str | dict) -> dict:
    """Resolve a built-in name, a spec file path (.json, or .yaml/.yml) or a spec dict to a valid spec."""
    if isinstance(domain, dict):
        return validate_domain(domain)
    path = BUILTIN_DOMAINS.get(domain, Path(domain))
    if not path.is_file():
        raise DomainSpecError(f"unknown domain {domain!r}: not a built-in ({', '.join(BUILTIN_DOMAINS)}) "
                              "and not an existing spec file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        if yaml is None:
            raise DomainSpecError(f"{path}: YAML specs need PyYAML installed; use a .json spec instead")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise DomainSpecError(f"{path}: invalid YAML ({err})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DomainSpecError(f"{path}: invalid JSON ({err})") from None
    return validate_domain(data, str(path))
