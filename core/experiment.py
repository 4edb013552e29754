"""Experiment names and the ``logs/<experiment>/`` layout.

Every stage writes only under ``logs_root()/<name>/``; the name is validated before anything is
written so that ``../x``, absolute paths or empty names can never escape that folder.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidNameError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def logs_root() -> Path:
    """The folder holding all experiments: ``$SVCOVER_LOGS`` or ``<project>/logs``."""
    return Path(os.environ.get("SVCOVER_LOGS") or PROJECT_ROOT / "logs").resolve()


# Device names Windows reserves in every folder, whatever the case and with any extension ("nul.txt"):
# a folder named like this cannot be created or opened there. Refused on every OS so that experiments and
# shared voice models move between machines.
WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"] + [f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)]
)


def is_windows_reserved(name: str) -> bool:
    """True for ``CON``, ``nul``, ``Com1.wav`` ...: names Windows reserves (case-insensitive, any extension)."""
    return name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_RESERVED


def suggest_name(raw: str) -> str:
    """A valid experiment name close to ``raw``: ``my voice`` -> ``my_voice``, ``CON`` -> ``CON_1``, ``../x`` -> ``x``."""
    text = unicodedata.normalize("NFKD", str(raw)).encode("ascii", "ignore").decode("ascii")
    text = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]  # a path: keep its last part
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    text = re.sub(r"_{2,}", "_", text)[:64].rstrip("_") or "voice"
    if is_windows_reserved(text):
        text = f"{text[:62]}_1"
    return text


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid experiment name, else raise :class:`InvalidNameError`.

    Valid: 1-64 letters, digits, ``_`` or ``-``, and not a name Windows reserves (``CON``, ``NUL``,
    ``COM1`` ...). The message offers :func:`suggest_name`'s cleaned form.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        hint = f"; try {suggest_name(name)!r}" if isinstance(name, str) else ""
        raise InvalidNameError(
            f"invalid experiment name {name!r}: use 1-64 letters, digits, '_' or '-' (no paths){hint}"
        )
    if is_windows_reserved(name):
        raise InvalidNameError(
            f"invalid experiment name {name!r}: Windows reserves it as a device name; try {suggest_name(name)!r}"
        )
    return name


def visible_files(folder: Path, pattern: str = "*") -> list[Path]:
    """Files in ``folder`` matching ``pattern``, sorted, skipping dot-files (temp files of atomic writes)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class Experiment:
    """Paths of one experiment. Constructing it validates the name; nothing is created on disk."""

    name: str
    root: Path

    @classmethod
    def open(cls, name: str, logs: Path | None = None) -> Experiment:
        validate_name(name)
        base = (logs or logs_root()).resolve()
        return cls(name=name, root=base / name)

    @property
    def gt_wavs(self) -> Path:
        return self.root / "0_gt_wavs"

    @property
    def wavs16k(self) -> Path:
        return self.root / "1_16k_wavs"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def exists(self) -> bool:
        return self.root.is_dir()


def list_experiments(logs: Path | None = None) -> list[str]:
    """Names of the experiment folders under the logs root."""
    base = logs or logs_root()
    if not base.is_dir():
        return []
    return sorted(
        p.name for p in base.iterdir() if p.is_dir() and NAME_PATTERN.fullmatch(p.name) and not is_windows_reserved(p.name)
    )
