"""Safe checkpoint loading: no pickled code ever runs.

Every loader in the project goes through :func:`safe_load`. It uses torch's ``weights_only``
unpickler, which only rebuilds tensors and plain containers, plus an explicit allow-list of the
harmless classes that the ecosystem's checkpoints contain. Foreign classes we only need to skip
(fairseq's label ``Dictionary``) are mapped to inert stubs that just keep their attributes.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import Any

from core.errors import CheckpointError


class _InertObject:
    """Stand-in for a foreign class in a checkpoint: stores the pickled attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["state"] = state


class FairseqDictionaryStub(_InertObject):
    """fairseq.data.dictionary.Dictionary (the label dictionary in HuBERT/ContentVec files)."""


# (stub class, qualified name in the pickle) pairs that are allowed but never imported.
_STUBBED = [(FairseqDictionaryStub, "fairseq.data.dictionary.Dictionary")]


def _allowed_globals() -> list[Any]:
    allowed: list[Any] = [argparse.Namespace, *_STUBBED]
    try:  # numpy scalars/dtypes appear in fairseq meters and some training checkpoints
        import numpy as np

        allowed += [np.dtype, np.ndarray, type(np.dtype("float32")), type(np.dtype("float64")), type(np.dtype("int64"))]
        try:
            from numpy._core.multiarray import _reconstruct, scalar
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
        allowed += [scalar, _reconstruct]
    except ImportError:
        pass
    try:  # omegaconf containers appear in Lightning/DiffSinger-style checkpoints
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode

        allowed += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode]
    except ImportError:
        pass
    return allowed


def safe_load(path: str | Path, map_location: str = "cpu") -> dict:
    """Load a torch checkpoint without executing pickled code; return its top-level dict.

    Raises :class:`CheckpointError` with one line naming the file for a missing, truncated,
    non-checkpoint or unsafe file (one whose pickle asks for a class outside the allow-list).
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            obj = torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Unsupported global" in msg or "GLOBAL" in msg or "not an allowed global" in msg.lower():
            name = _unsupported_name(msg)
            raise CheckpointError(
                f"{path}: refused to load: the file asks to run or build '{name}', which is not allowed "
                "(it may contain malicious code)"
            ) from None
        raise CheckpointError(f"{path}: not a valid checkpoint ({_one_line(msg)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({_one_line(str(e))})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    return obj


def _unsupported_name(msg: str) -> str:
    import re

    m = re.search(r"GLOBAL ([\w.]+)", msg) or re.search(r"global[: ]+'?([\w.]+)", msg, re.IGNORECASE)
    return m.group(1) if m else "an unknown class"


def _one_line(msg: str) -> str:
    first = msg.strip().splitlines()[0] if msg.strip() else "unknown error"
    return first[:200]


def save_checkpoint(path: str | Path, obj: dict) -> None:
    """``torch.save`` to a temp file beside ``path`` then rename, so a kill never leaves half a file."""
    import torch

    from core.fsutil import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
