"""Where an experiment's trained weights are, and which file "best", "latest" or a name means.

The one checkpoint lookup of the project: training (rotation, resume), conversion (``--ckpt``), the
voice-model export and the UI's checkpoint lists all ask this module, so the layout of
``logs/<exp>/checkpoints/`` (``step_<N>.pt`` + ``best.pt``) and ``logs/<exp>/export/`` is read in one place.
It imports no torch: it only looks at file names.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import Remedy, SvcoverError
from core.experiment import Experiment, visible_files

STEP_PATTERN = re.compile(r"step_(\d+)\.pt")
BEST_NAME = "best.pt"
CHOICES = ("best", "latest")  # the named choices of --ckpt / --checkpoint; anything else is a file


class NoCheckpointError(SvcoverError):
    """The experiment has no trained weights (or the named checkpoint file does not exist)."""


def step_checkpoints(exp: Experiment) -> list[tuple[int, Path]]:
    """(step, path) of ``checkpoints/step_<N>.pt``, oldest first (temp files are dot-files: skipped)."""
    found = []
    for path in visible_files(exp.checkpoints, "step_*.pt"):
        match = STEP_PATTERN.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def best_checkpoint(exp: Experiment) -> Path | None:
    """``checkpoints/best.pt`` (lowest validation loss so far) if it exists."""
    best = exp.checkpoints / BEST_NAME
    return best if best.is_file() else None


def newest_step_checkpoint(exp: Experiment) -> Path | None:
    """The ``step_<N>.pt`` with the highest N, if any."""
    steps = step_checkpoints(exp)
    return steps[-1][1] if steps else None


def find_checkpoint(exp: Experiment, which: str | Path = "best", *, allow_export: bool = True) -> Path:
    """The weights file ``which`` names for ``exp``.

    ``best``: ``best.pt``, else the newest step checkpoint; ``latest``: the newest step checkpoint, else
    ``best.pt``. Either falls back to the exported ``*.safetensors`` when ``allow_export`` (conversion can
    run from an export alone; exporting cannot). Anything else is a file path, or a bare file name inside
    ``checkpoints/`` (or ``export/`` when ``allow_export``): what the web UI offers. Raises :class:`NoCheckpointError` with one line saying what is missing.
    """
    if str(which) not in CHOICES:
        path = Path(which)
        if path.is_file():
            return path
        if path.name == str(which):
            folders = (exp.checkpoints, exp.export) if allow_export else (exp.checkpoints,)
            inside = [folder / path.name for folder in folders if (folder / path.name).is_file()]
            if inside:
                return inside[0]
        raise NoCheckpointError(f"{path}: checkpoint file not found")
    best, newest = best_checkpoint(exp), newest_step_checkpoint(exp)
    found = (best or newest) if which == "best" else (newest or best)
    if found is None and allow_export:
        exported = visible_files(exp.export, "*.safetensors")
        found = exported[-1] if exported else None
    if found is None:
        raise NoCheckpointError(
            f"{exp.root}: no trained voice model (no checkpoints/best.pt or step_*.pt)",
            remedy=Remedy("train", exp.name),
        )
    return found


__all__ = [
    "BEST_NAME",
    "CHOICES",
    "NoCheckpointError",
    "STEP_PATTERN",
    "best_checkpoint",
    "find_checkpoint",
    "newest_step_checkpoint",
    "step_checkpoints",
]
