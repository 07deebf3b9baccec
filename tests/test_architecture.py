"""The layering rule of docs/architecture.md, checked on the source: the library never imports a root
script, each layer imports only the layers below it, decoding needs no torch, nobody edits sys.path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "slmqa"
ROOT_SCRIPTS = sorted(path.stem for path in ROOT.glob("*.py"))
# Lowest first; a module may import its own subpackage and anything in a lower layer.
LAYERS = [
    {"slmqa", "slmqa.errors", "slmqa.settings", "slmqa.logs"},
    {"slmqa.data", "slmqa.decoding"},
    {"slmqa.modeling"},
    {"slmqa.inference"},
    {"slmqa.training"},
    {"slmqa.serving", "slmqa.reporting", "slmqa.mock"},
]


def layer_unit(module: str) -> str:
    """`slmqa.data.windows` -> `slmqa.data`; the core modules are their own units."""
    parts = module.split(".")
    unit = ".".join(parts[:2])
    return unit if any(unit in layer for layer in LAYERS) else "slmqa"


def layer_of(module: str) -> int:
    unit = layer_unit(module)
    return next(number for number, layer in enumerate(LAYERS) if unit in layer)


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, also those inside functions; relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module))
    return found


LIBRARY = sorted(PACKAGE.rglob("*.py"))


def test_the_rule_sees_every_module():
    assert len(LIBRARY) > 30 and ROOT_SCRIPTS == [
        "args", "mock_dataset", "postprocess", "preprocess", "process", "qa_predict", "run_qa", "serve"]
    assert {layer_unit(module_name(path)) for path in LIBRARY} == set().union(*LAYERS)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_no_root_script_and_no_higher_layer(path):
    source = module_name(path)
    for line, target in imports(path):
        top = target.split(".")[0]
        assert top not in ROOT_SCRIPTS, f"{path.name}:{line} imports the root script {target}"
        if top != "slmqa":
            continue
        same_unit = layer_unit(target) == layer_unit(source) or layer_of(source) == layer_of(target) == 0
        assert same_unit or layer_of(target) < layer_of(source), (
            f"{path.relative_to(ROOT)}:{line} imports {target}, which is not below {layer_unit(source)}"
        )


def test_decoding_needs_no_torch():
    for path in (PACKAGE / "decoding").glob("*.py"):
        heavy = [target for _, target in imports(path) if target.split(".")[0] in ("torch", "transformers", "peft")]
        assert not heavy, f"{path.name} imports {heavy}"


def test_nothing_edits_sys_path():
    offenders = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if any(part.startswith(".") for part in parts) or parts[0] in ("data", "models") or parts[:2] == ("bench", "results"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_the_rule_catches_a_violation(tmp_path):
    """The checks above can fail: a module that imports a root script and a higher layer is caught."""
    bad = PACKAGE / "data" / "_bad_example_for_test.py"
    bad.write_text("import run_qa\nfrom slmqa.serving.app import create_app\n", encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match="root script run_qa"):
            test_library_imports_no_root_script_and_no_higher_layer(bad)
        bad.write_text("from slmqa.serving.app import create_app\n", encoding="utf-8")
        with pytest.raises(AssertionError, match="imports slmqa.serving.app"):
            test_library_imports_no_root_script_and_no_higher_layer(bad)
    finally:
        bad.unlink()
