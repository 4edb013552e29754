"""Safe checkpoint loading: no pickled code ever runs.

Every loader in the project goes through :func:`safe_load`. A pre-scan of the pickle opcodes
(nothing is unpickled) refuses any global outside the allow-list and names it; then torch's
``weights_only`` unpickler, which only rebuilds tensors and plain containers, loads the file with an
explicit allow-list of the harmless classes that the ecosystem's checkpoints contain. Foreign classes we only need to skip
(fairseq's label ``Dictionary``) are mapped to inert stubs that just keep their attributes.
"""

from __future__ import annotations

import builtins
import collections
import io
import pickle
import pickletools
import re
import threading
import typing
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.fsutil import atomic_path


class _InertObject:
    """Stand-in for a foreign class in a checkpoint: stores the pickled attributes, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["state"] = state


class FairseqDictionaryStub(_InertObject):
    """fairseq.data.dictionary.Dictionary (the label dictionary in HuBERT/ContentVec files)."""


class ArgsNamespaceStub(_InertObject):
    """argparse.Namespace: old fairseq checkpoints keep their hyperparameters in one under ``args``.

    Rebuilt as an inert object with the same attributes (``ckpt["args"].label_rate``, ``vars(ckpt["args"])``
    both work), so loading a checkpoint never involves the command-line module.
    """


# (stub class, qualified name in the pickle) pairs that are allowed but never imported.
_STUBBED = [
    (FairseqDictionaryStub, "fairseq.data.dictionary.Dictionary"),
    (ArgsNamespaceStub, "argparse.Namespace"),
]


def _allowed_globals() -> list[Any]:
    allowed: list[Any] = [*_STUBBED]
    # Builtins and containers that protocol-2 pickles of configs name explicitly (all inert).
    allowed += [builtins.dict, builtins.list, builtins.tuple, builtins.int, builtins.float, builtins.str,
                builtins.bool, builtins.slice, builtins.range, collections.defaultdict, collections.deque,
                (typing.Any, "typing.Any")]
    try:  # numpy scalars/arrays/dtypes appear in fairseq meters and some training checkpoints
        import numpy as np

        allowed += [np.dtype, np.ndarray]
        allowed += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool", "uint8")]
        try:
            from numpy._core.multiarray import _reconstruct, scalar
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
        allowed += [scalar, _reconstruct]
        # Files written with numpy 1.x name the old module path; map it onto the same functions.
        allowed += [(scalar, "numpy.core.multiarray.scalar"), (_reconstruct, "numpy.core.multiarray._reconstruct")]
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


_REGISTER_LOCK = threading.Lock()


def _register_allow_list() -> list[Any]:
    """Add the allow-list to torch's process-wide safe globals, and never remove it.

    ``torch.serialization.safe_globals`` is a context manager over one process-wide set (not
    thread-local, torch 2.13): leaving it in one thread removed the entries another thread was still
    loading with. Adding is idempotent and every entry is inert, so registering for the life of the
    process is safe; it is repeated before each load (under a lock: torch's add is a read-modify-write)
    in case other code in the process removed entries.
    """
    import torch

    allowed = _allowed_globals()
    with _REGISTER_LOCK:
        torch.serialization.add_safe_globals(allowed)
    return allowed


def _allowed_names() -> set[str]:
    """Qualified names the pre-scan lets through (torch's own allow-list plus ours)."""
    names: set[str] = set()
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        names |= set(_get_allowed_globals())
    except ImportError:  # a private torch helper; torch itself still enforces its list
        pass
    for item in _allowed_globals():
        if isinstance(item, tuple):
            names.add(item[1])
        else:
            names.add(f"{item.__module__}.{item.__qualname__}")
    # protocol 2 spells builtins "__builtin__"; numpy 2 pickles may still say numpy.core
    names |= {n.replace("builtins.", "__builtin__.", 1) for n in names if n.startswith("builtins.")}
    names |= {"__builtin__.long", "__builtin__.unicode"}
    return names


def _is_allowed(name: str, allowed: set[str]) -> bool:
    if name in allowed:
        return True
    module = name.rpartition(".")[0]
    # torch dtypes, storages and tensor rebuild helpers are vetted by torch's unpickler itself
    return module in ("torch", "torch._utils", "torch.storage", "torch.cuda", "torch._tensor")


def referenced_globals(path: Path) -> list[str]:
    """The ``module.name`` globals a checkpoint's pickle asks for, read without unpickling anything.

    Works for torch zip files (``*/data.pkl``), legacy torch files and plain pickles. Raises
    :class:`CheckpointError` when the file is neither a zip nor a pickle, or is cut short.
    """
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
                if not pkl:
                    raise CheckpointError(f"{path}: a zip file but not a torch checkpoint (no data.pkl inside)")
                data = zf.read(pkl[0])
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({_one_line(str(e))})") from None
        return _scan_pickles(data, path, max_pickles=1)
    with open(path, "rb") as fh:
        head = fh.read(64 << 20)  # legacy files: the pickles come first, raw storage bytes after
    if head.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (the zip archive is incomplete)")
    return _scan_pickles(head, path, max_pickles=5)


def _scan_pickles(data: bytes, path: Path, max_pickles: int) -> list[str]:
    stream = io.BytesIO(data)
    found: list[str] = []
    for index in range(max_pickles):
        if stream.tell() >= len(data):
            break
        strings: list[str] = []  # recent string pushes: STACK_GLOBAL takes module and name from them
        memo: dict[int, str] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                               "BINSTRING", "STRING"):
                    strings.append(str(arg))
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    strings.append(memo[int(arg)])
                elif op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    found.append(".".join(strings[-2:]) if len(strings) >= 2 else "an unknown global")
                elif op.name == "INST":
                    found.append(str(arg).replace(" ", "."))
        except Exception as e:  # pickletools raises ValueError and friends on garbage or a cut-off stream
            if index == 0:
                if stream.tell() >= len(data) and data[:1] == b"\x80":  # a pickle header, then the end
                    raise CheckpointError(f"{path}: truncated checkpoint (the pickle stops early)") from None
                raise CheckpointError(
                    f"{path}: not a checkpoint ({type(e).__name__}: {_one_line(str(e))[:80]})"
                ) from None
            break  # legacy torch files: the raw tensor bytes after the pickles are not pickles
    return found


def safe_load(path: str | Path, map_location: str = "cpu") -> dict:
    """Load a torch checkpoint without executing pickled code; return its top-level dict.

    Two layers: a pre-scan of the pickle opcodes refuses any global outside the allow-list with a
    message naming it (nothing is unpickled), then torch's ``weights_only`` unpickler with the same
    allow-list does the actual load. ``.safetensors`` files are read with safetensors (no pickle).
    Raises :class:`CheckpointError` with one line naming the file for a missing, truncated,
    non-checkpoint or unsafe file (one whose pickle asks for a class outside the allow-list).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path, map_location)
    allowed = _allowed_names()
    for name in referenced_globals(path):
        if not _is_allowed(name, allowed):
            raise CheckpointError(
                f"{path}: refused to load: the file asks to run or build '{name}', which is not allowed "
                "(it may contain malicious code)"
            )
    try:
        obj = _torch_load_allowed(path, map_location, allowed)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Unsupported global" in msg or "GLOBAL" in msg or "not an allowed global" in msg.lower():
            name = _unsupported_name(msg)
            raise CheckpointError(
                f"{path}: refused to load: the file asks to run or build '{name}', which is not allowed "
                "(it may contain malicious code)"
            ) from None
        detail = _one_line(msg.split("WeightsUnpickler error:")[-1]) if "WeightsUnpickler error:" in msg else _one_line(msg)
        raise CheckpointError(f"{path}: not a valid checkpoint ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({_one_line(str(e))})") from None
    except Exception as e:  # torch's legacy reader raises KeyError/TypeError/... on arbitrary bytes
        raise CheckpointError(f"{path}: not a valid checkpoint ({type(e).__name__}: {_one_line(str(e))})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    return obj


def _torch_load_allowed(path: Path, map_location: str, allowed_names: set[str]) -> Any:
    """``torch.load(weights_only=True)`` with the allow-list registered.

    If torch still names one of *our* allowed globals as unsupported, other code in the process removed
    it between registering and loading (e.g. a third-party ``safe_globals`` block ending in another
    thread): register again and retry, a few times. A global outside the allow-list is never retried.
    """
    import torch

    for attempt in range(3):
        _register_allow_list()
        try:
            return torch.load(str(path), map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            name = _unsupported_name(str(e))
            if attempt == 2 or name not in allowed_names:
                raise
    raise AssertionError("unreachable")


def _load_safetensors(path: Path, map_location: str) -> dict:
    try:
        from safetensors.torch import load_file

        return dict(load_file(str(path), device=map_location))
    except Exception as e:  # safetensors raises its own SafetensorError on bad headers
        raise CheckpointError(f"{path}: not a valid safetensors file ({_one_line(str(e))})") from None


def expect_keys(state_dict: dict, required_prefixes: list[str] | tuple[str, ...], path: str | Path, model_name: str) -> None:
    """Raise :class:`CheckpointError` unless every prefix matches at least one key of ``state_dict``.

    Model loaders call this to turn "a file of the wrong model" into one clear line, e.g.
    ``x.pt: this is not a RMVPE checkpoint (missing keys unet.*, cnn.*)``.
    """
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: this is not a {model_name} checkpoint (no state dict inside)")
    keys = [k for k in state_dict if isinstance(k, str)]
    missing = [p for p in required_prefixes if not any(k == p or k.startswith(p) for k in keys)]
    if missing:
        shown = ", ".join(f"{p}*" for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(f"{path}: this is not a {model_name} checkpoint (missing keys {shown}{more})")


def key_mismatch(
    expected: Iterable[str],
    found: Iterable[str],
    missing: str = "{n} missing keys, e.g. {key}",
    unexpected: str = "{n} unexpected keys, e.g. {key}",
) -> str | None:
    """How a file's state-dict keys differ from the ones a model expects, as the middle of a one-line error;
    None when they are the same set. ``missing`` / ``unexpected`` word each half (``n`` = count, ``key`` = the
    first such key), so each loader keeps its own wording."""
    expected, found = list(expected), list(found)
    expected_set, found_set = set(expected), set(found)
    absent = [k for k in expected if k not in found_set]
    extra = [k for k in found if k not in expected_set]
    parts = [template.format(n=len(keys), key=keys[0]) for template, keys in ((missing, absent), (unexpected, extra)) if keys]
    return "; ".join(parts) or None


def _unsupported_name(msg: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", msg) or re.search(r"global[: ]+'?([\w.]+)", msg, re.IGNORECASE)
    return m.group(1) if m else "an unknown class"


def _one_line(msg: str) -> str:
    first = msg.strip().splitlines()[0] if msg.strip() else "unknown error"
    return first[:200]


def save_checkpoint(path: str | Path, obj: dict) -> None:
    """``torch.save`` to a temp file beside ``path`` then rename, so a kill never leaves half a file."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
