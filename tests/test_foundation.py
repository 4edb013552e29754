"""Experiment names, atomic writes, the CLI table and the app skeleton."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import InvalidNameError
from core.experiment import Experiment, validate_name
from core.fsutil import atomic_path, atomic_write_text
from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["../x", "/abs/path", "", "a/b", "a b", "x" * 65, "..", "é", "a\\b", "a.b"])
def test_bad_experiment_names_are_refused(name: str, tmp_logs: Path) -> None:
    with pytest.raises(InvalidNameError, match="invalid experiment name"):
        Experiment.open(name)
    assert list(tmp_logs.iterdir()) == []


@pytest.mark.parametrize("name", ["a", "my_voice-2", "X" * 64])
def test_good_experiment_names(name: str, tmp_logs: Path) -> None:
    assert validate_name(name) == name
    assert Experiment.open(name).root == tmp_logs / name


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_cli_help_lists_dataset() -> None:
    out = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "dataset" in out.stdout
    out = subprocess.run([sys.executable, "-m", "core", "dataset", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "--exp" in out.stdout
