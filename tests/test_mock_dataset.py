"""mock_dataset.py, the command: files written, summary printed, errors as exit codes, output independent of hashing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mock_dataset as md
from tests.helpers import ROOT

SMALL = {"train": 120, "validation": 40, "test": 40}



@pytest.mark.subprocess
def test_identical_across_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    """Set iteration order changes with PYTHONHASHSEED; output must not depend on it."""
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, str(ROOT / "mock_dataset.py"), "--domain", "clinical_trial",
                        "--output_dir", str(out), "--impossible_ratio", "0.33", "--train_size", "200"],
                       check=True, env=env, capture_output=True)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]


def test_cli_writes_files_and_returns_zero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mock"
    code = md.main(["--domain", "equipment_manual", "--output_dir", str(out), "--train_size", "60",
                    "--validation_size", "20", "--test_size", "0", "--format", "jsonl", "--impossible_ratio", "0.33"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["train.jsonl", "validation.jsonl"]
    assert len((out / "train.jsonl").read_text(encoding="utf-8").splitlines()) == 60
    printed = capsys.readouterr().out
    assert "records/s" in printed and "torque_setting" in printed


def test_cli_defaults_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert md.main(["--list_domains"]) == 0
    assert "clinical_trial" in capsys.readouterr().out
    assert md.main(["--domain", str(tmp_path / "missing.json"), "--output_dir", str(tmp_path)]) == 2
    assert md.main(["--output_dir", str(tmp_path / "d"), "--impossible_ratio", "1.5"]) == 2
    assert md.main(["--output_dir", str(tmp_path / "d")]) == 0
    sizes = {p.stem: len(json.loads(p.read_text(encoding="utf-8"))["data"]) for p in (tmp_path / "d").iterdir()}
    assert sizes == {"train": 600, "validation": 150, "test": 150}
