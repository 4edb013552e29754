"""Where pretrained weights live: ``pretrained/`` or ``$SVCOVER_PRETRAINED``, at fixed relative paths.

(The download registry and downloader extend this module.)
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import MissingPretrainedError
from core.experiment import PROJECT_ROOT

CONTENT_ENCODER = "content/hubert_base.pt"
CONTENT_ENCODER_ALT = "content/checkpoint_best_legacy_500.pt"
RMVPE = "rmvpe/rmvpe.pt"
NSF_HIFIGAN_DIR = "nsf_hifigan"
DIFFUSION_SVC_BASE = "diffusion_svc/model_0.pt"
UVR_DIR = "uvr"


def pretrained_root() -> Path:
    """``$SVCOVER_PRETRAINED`` if set, else ``<project>/pretrained``."""
    return Path(os.environ.get("SVCOVER_PRETRAINED") or PROJECT_ROOT / "pretrained").resolve()


def require(relative: str, *alternatives: str, download_name: str | None = None) -> Path:
    """Path of a pretrained file (first of ``relative`` and ``alternatives`` that exists).

    Raises :class:`MissingPretrainedError` naming the expected path and the fetch command.
    """
    root = pretrained_root()
    for rel in (relative, *alternatives):
        candidate = root / rel
        if candidate.exists():
            return candidate
    name = download_name or relative.split("/")[0]
    raise MissingPretrainedError(
        f"missing pretrained file {root / relative}: fetch it with 'python -m core download {name}' "
        "or copy it there by hand"
    )
