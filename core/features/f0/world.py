"""Harvest F0 (WORLD vocoder, through pyworld): slow but robust, no model file needed."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import numpy as np

from core.features.f0_postprocess import DEFAULT_F0_MAX, DEFAULT_F0_MIN, to_grid
from core.features.mel import as_waveform


def import_pyworld():
    """Import pyworld, which asks ``pkg_resources`` for its own version at import time.

    Recent setuptools no longer ships ``pkg_resources``; a throw-away stand-in answering that one
    question is put in place only for the duration of the import.
    """
    try:
        import pyworld
    except ModuleNotFoundError as err:
        if err.name != "pkg_resources":
            raise
        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
        sys.modules["pkg_resources"] = shim
        try:
            import pyworld
        finally:
            if sys.modules.get("pkg_resources") is shim:
                del sys.modules["pkg_resources"]
    return pyworld


MIN_SECONDS = 0.1  # shorter chunks are padded with silence so Harvest has a few analysis frames


def harvest(wav: np.ndarray, sample_rate: int, frame_times: np.ndarray,
            f0_min: float = DEFAULT_F0_MIN, f0_max: float = DEFAULT_F0_MAX) -> np.ndarray:
    """Harvest f0 (Hz, 0 = unvoiced) at ``frame_times`` (seconds) of a mono waveform."""
    pyworld = import_pyworld()
    x = as_waveform(wav).astype(np.float64)
    min_len = int(MIN_SECONDS * sample_rate)
    if x.size < min_len:
        x = np.pad(x, (0, min_len - x.size))
    step = float(frame_times[1] - frame_times[0]) if len(frame_times) > 1 else 0.01
    f0, times = pyworld.harvest(x, sample_rate, f0_floor=float(f0_min), f0_ceil=float(f0_max),
                                frame_period=1000.0 * step)
    return to_grid(f0, times, frame_times)
