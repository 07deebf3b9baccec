"""slmqa.mock.spec: domain specs are checked, and every problem names the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmqa.mock import spec as specs
from tests.helpers import ROOT

EXAMPLE_SPEC = ROOT / "slmqa" / "mock" / "domains" / "example_domain.json"
SMALL = {"train": 120, "validation": 40, "test": 40}



def test_yaml_spec_loads_like_json(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    spec = json.loads(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    path = tmp_path / "domain.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    assert specs.load_domain(str(path)) == specs.load_domain(str(EXAMPLE_SPEC))


def test_spec_with_missing_key_names_file_and_key(tmp_path: Path) -> None:
    spec = json.loads(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    del spec["attributes"]["uptime"]["question_templates"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(specs.DomainSpecError, match=r"broken\.json.*attributes\.uptime\.question_templates"):
        specs.load_domain(str(path))


@pytest.mark.parametrize("change, key", [
    (lambda s: s["attributes"]["uptime"]["context_templates"].__setitem__(0, "Uptime is {value}."), "{entity}"),
    (lambda s: s["attributes"]["uptime"]["context_templates"].__setitem__(0, "The {entity} has X{value}."),
     "word boundary"),
    (lambda s: s["distractor_templates"].__setitem__(0, "The {entity} has {colour} {value}."), "unknown placeholder"),
    (lambda s: s.__setitem__("entities", s["entities"][:3]), "entities"),
    (lambda s: s["entities"].__setitem__(1, s["entities"][0] + " Plus"), "must not contain"),
    (lambda s: s["attributes"]["uptime"].__setitem__("values", "99%"), "must be a list"),
])
def test_invalid_spec_errors_are_specific(change, key: str) -> None:
    spec = json.loads(EXAMPLE_SPEC.read_text(encoding="utf-8"))
    change(spec)
    with pytest.raises(specs.DomainSpecError, match=key.replace("{", r"\{").replace("}", r"\}")):
        specs.validate_domain(spec, "my_spec.json")


def test_builtin_domains_are_valid() -> None:
    assert len(specs.BUILTIN_DOMAINS) >= 3
    for name in specs.BUILTIN_DOMAINS:
        assert specs.load_domain(name)["name"] == name


def test_unknown_domain_lists_builtins() -> None:
    with pytest.raises(specs.DomainSpecError, match="equipment_manual"):
        specs.load_domain("no_such_domain")
