"""The one checkpoint lookup (core.checkpoint_store): which file best / latest / a name mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.checkpoint_store import NoCheckpointError, find_checkpoint, step_checkpoints
from core.experiment import Experiment


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_step_files_sort_by_number_and_temp_files_are_skipped(tmp_logs: Path) -> None:
    exp = Experiment.open("alto")
    for name in ("step_9.pt", "step_100.pt", "step_20.pt", ".tmp-step_200.pt", "step_x.pt", "best.pt"):
        _touch(exp.checkpoints / name)
    assert [s for s, _ in step_checkpoints(exp)] == [9, 20, 100]


def test_best_latest_and_named_files(tmp_logs: Path, tmp_path: Path) -> None:
    exp = Experiment.open("alto")
    with pytest.raises(NoCheckpointError, match="no trained voice model.*--exp alto"):
        find_checkpoint(exp)
    exported = _touch(exp.export / "model.safetensors")
    assert find_checkpoint(exp, "best") == exported  # conversion can run from an export alone
    with pytest.raises(NoCheckpointError, match="no trained voice model"):
        find_checkpoint(exp, "best", allow_export=False)  # ...exporting cannot
    step3 = _touch(exp.checkpoints / "step_3.pt")
    step12 = _touch(exp.checkpoints / "step_12.pt")
    assert find_checkpoint(exp, "best") == step12 == find_checkpoint(exp, "latest")
    best = _touch(exp.checkpoints / "best.pt")
    assert find_checkpoint(exp, "best") == best and find_checkpoint(exp, "latest") == step12
    assert find_checkpoint(exp, "step_3.pt") == step3  # a file name inside checkpoints/ ...
    assert find_checkpoint(exp, "model.safetensors") == exported  # ... or export/ (what the UI offers)
    with pytest.raises(NoCheckpointError, match="model.safetensors: checkpoint file not found"):
        find_checkpoint(exp, "model.safetensors", allow_export=False)
    elsewhere = _touch(tmp_path / "other.pt")
    assert find_checkpoint(exp, str(elsewhere)) == elsewhere
    with pytest.raises(NoCheckpointError, match="step_99.pt: checkpoint file not found"):
        find_checkpoint(exp, "step_99.pt")
