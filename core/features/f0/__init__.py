"""F0 (pitch) estimation on the project's mel grid.

``estimate_f0(wav44k, method)`` returns one value per mel frame (``n_frames(N) = N // 512 + 1``
frames, frame i centred on sample i*512 of the 44.1 kHz input), in Hz with 0 for unvoiced frames.
``continuous_f0(f0)`` gives the interpolated copy used for conditioning.

Voicing (``voicing=``): ``"auto"`` (default) decides which frames of the neural methods are sung from
the network's confidence, the frame level and periodicity with hysteresis and a minimum segment length
(:mod:`core.features.f0.voicing`); ``"threshold"`` is the plain confidence threshold used before.

Methods (:data:`F0_METHODS`):

* ``rmvpe`` (default): RMVPE network, needs ``pretrained/rmvpe/rmvpe.pt`` (``python -m core download rmvpe``).
* ``fcpe``: FCPE network; its weights ship inside the ``torchfcpe`` wheel, installed without
  dependencies, so it works with no download.
* ``harvest``: WORLD's Harvest (pyworld), CPU only, slow but robust.
* ``parselmouth``: Praat autocorrelation, CPU only, fast.

Neural models are loaded once per process and (path, device) (see :func:`load_model`).
Heavy libraries are imported only when a method runs.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from core import pretrained
from core.device import pick_device
from core.errors import SvcoverError
from core.features.f0 import praat, world
from core.features.f0.voicing import DEFAULT_SETTINGS, voiced_frames
from core.features.f0_postprocess import (
    DEFAULT_F0_MAX,
    DEFAULT_F0_MIN,
    continuous_f0,
    fix_octave_errors,
    limit_range,
    median_smooth,
    postprocess,
    to_grid,
)
from core.features.mel import SAMPLE_RATE, as_waveform, frame_times, n_frames

__all__ = [
    "F0Method",
    "F0_METHODS",
    "DEFAULT_F0_MIN",
    "DEFAULT_F0_MAX",
    "VOICING_MODES",
    "estimate_f0",
    "pitch_candidates",
    "continuous_f0",
    "fix_octave_errors",
    "limit_range",
    "median_smooth",
    "load_model",
    "clear_model_cache",
]


class F0Method(StrEnum):
    """The F0 methods, by the names the CLI, the UI and saved configs use (members equal these strings)."""

    RMVPE = "rmvpe"
    FCPE = "fcpe"
    HARVEST = "harvest"
    PARSELMOUTH = "parselmouth"


# Plain strings, not members: argparse names invalid choices by their repr ('fcpe', not <F0Method.FCPE: ...>).
F0_METHODS: tuple[str, ...] = tuple(m.value for m in F0Method)
NEURAL_SAMPLE_RATE = 16000  # RMVPE and FCPE read 16 kHz audio at 100 frames per second
NEURAL_HOP = 160
VOICING_MODES: tuple[str, ...] = ("auto", "threshold")

_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


class UnknownF0MethodError(SvcoverError, ValueError):
    """An F0 method name outside :data:`F0_METHODS`."""


def parse_method(method: str | F0Method) -> F0Method:
    try:
        return F0Method(str(getattr(method, "value", method)).lower())
    except ValueError:
        raise UnknownF0MethodError(f"unknown F0 method {method!r}: use one of {', '.join(F0_METHODS)}") from None


def load_model(method: str | F0Method, device: str = "cpu", path: str | Path | None = None) -> Any:
    """The RMVPE or FCPE model for ``device``, loaded once per process per (file, device).

    ``path`` overrides the default file (``pretrained/rmvpe/rmvpe.pt``; FCPE's bundled weights).
    """
    kind = parse_method(method)
    device = pick_device(device)  # "auto" -> the actual device, so the cache key is stable
    if kind == F0Method.RMVPE:
        from core.features.f0.rmvpe import Rmvpe

        if path is None:
            path = pretrained.require(pretrained.RMVPE, download_name="rmvpe")
        loader = Rmvpe.from_checkpoint
    elif kind == F0Method.FCPE:
        from core.features.f0.fcpe import Fcpe, weight_path

        path = weight_path() if path is None else path
        loader = Fcpe.from_checkpoint
    else:
        raise UnknownF0MethodError(f"F0 method {kind.value!r} has no model file")
    key = (kind.value, str(Path(path).resolve()), str(device))
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = loader(path, device)
            _CACHE[key] = model
    return model


def clear_model_cache() -> None:
    """Forget loaded models (frees their memory; the next call reloads)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def estimate_f0(
    wav44k: np.ndarray,
    method: str | F0Method = F0Method.RMVPE,
    device: str = "cpu",
    *,
    f0_min: float = DEFAULT_F0_MIN,
    f0_max: float = DEFAULT_F0_MAX,
    median_size: int = 0,
    octave_fix: bool = True,
    voicing: str = "auto",
    threshold: float | None = None,
    rmvpe_pad: str = "reflect",
    model_path: str | Path | None = None,
) -> np.ndarray:
    """F0 in Hz per mel frame (``[N // 512 + 1]`` float32, 0 = unvoiced) of mono 44.1 kHz audio.

    Parameters
    ----------
    wav44k: mono float waveform at 44 100 Hz in [-1, 1].
    method: one of :data:`F0_METHODS`.
    device: "auto", "cpu", "cuda[:N]" or "mps" for the neural methods (harvest/parselmouth always run on the CPU).
    f0_min, f0_max: frames outside this range (Hz) become unvoiced; also the search range of
        harvest and parselmouth.
    median_size: odd median-filter length in frames over voiced values (0 = off).
    octave_fix: repair short octave jumps (see :func:`fix_octave_errors`).
    voicing: "auto" (confidence + level + periodicity with hysteresis, see :mod:`core.features.f0.voicing`)
        or "threshold" (a plain threshold on the neural methods' confidence). harvest and parselmouth
        keep their own voicing either way.
    threshold: the confidence threshold of ``voicing="threshold"`` (defaults: RMVPE 0.03, FCPE 0.006);
        giving one selects that mode.
    rmvpe_pad: "reflect" (classic RVC, default) or "zero" (current RVC) padding of RMVPE's input.
    model_path: use this RMVPE/FCPE file instead of the default one.

    Raises ``BadAudioError`` for NaN/inf samples or a non-mono array, ``MissingPretrainedError``
    when the model file is missing, ``CheckpointError`` for an unusable model file.
    """
    if voicing not in VOICING_MODES:
        raise ValueError(f"voicing must be one of {', '.join(VOICING_MODES)}, not {voicing!r}")
    kind = parse_method(method)
    wav = as_waveform(wav44k)
    times = frame_times(n_frames(wav.size))
    if kind in (F0Method.RMVPE, F0Method.FCPE):
        wav16 = _to_16k(wav)
        pitch, confidence = _neural_candidates(wav16, kind, device, rmvpe_pad, model_path)
        if voicing == "auto" and threshold is None:
            voiced = voiced_frames(wav16, pitch, confidence, DEFAULT_SETTINGS[kind.value])
        else:
            default = 0.03 if kind == F0Method.RMVPE else 0.006
            voiced = confidence > (default if threshold is None else threshold)
        raw = np.where(voiced, pitch, 0.0).astype(np.float32)
        raw_times = np.arange(raw.size, dtype=np.float64) * (NEURAL_HOP / NEURAL_SAMPLE_RATE)
        f0 = to_grid(raw, raw_times, times)
    elif kind == F0Method.HARVEST:
        f0 = world.harvest(_to_16k(wav), NEURAL_SAMPLE_RATE, times, f0_min=f0_min, f0_max=f0_max)
    else:
        f0 = praat.praat_f0(_to_16k(wav), NEURAL_SAMPLE_RATE, times, f0_min=f0_min, f0_max=f0_max)
    return postprocess(f0, f0_min=f0_min, f0_max=f0_max, median_size=median_size, octave_fix=octave_fix)


def _neural_candidates(wav16: np.ndarray, kind: F0Method, device: str, rmvpe_pad: str,
                       model_path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(pitch in Hz of every 10 ms frame, the network's confidence 0..1 per frame) of RMVPE or FCPE."""
    model = load_model(kind, device, model_path)
    if kind == F0Method.RMVPE:
        from core.features.f0.rmvpe import decode

        salience = model.salience(wav16, pad=rmvpe_pad)
        pitch = decode(salience, threshold=-1.0)
    else:
        from core.features.f0.fcpe import decode

        salience = model.latent(wav16)
        pitch = decode(salience, model.net.cent_table.cpu().numpy(), threshold=-1.0)
    confidence = salience.max(axis=1) if salience.shape[0] else np.zeros(0, dtype=np.float32)
    return pitch, confidence


def pitch_candidates(wav44k: np.ndarray, method: str | F0Method = F0Method.FCPE, device: str = "cpu",
                     rmvpe_pad: str = "reflect", model_path: str | Path | None = None) -> np.ndarray:  # fmt: skip
    """The neural method's pitch in EVERY mel frame, voiced or not (Hz; for evaluating pitch apart from voicing)."""
    kind = parse_method(method)
    if kind not in (F0Method.RMVPE, F0Method.FCPE):
        raise UnknownF0MethodError(f"F0 method {kind.value!r} gives no pitch for unvoiced frames")
    wav = as_waveform(wav44k)
    pitch, _ = _neural_candidates(_to_16k(wav), kind, device, rmvpe_pad, model_path)
    raw_times = np.arange(pitch.size, dtype=np.float64) * (NEURAL_HOP / NEURAL_SAMPLE_RATE)
    return to_grid(pitch, raw_times, frame_times(n_frames(wav.size)))


def _to_16k(wav44k: np.ndarray) -> np.ndarray:
    """High-quality resampling 44.1 kHz -> 16 kHz (soxr)."""
    if wav44k.size == 0:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(soxr.resample(wav44k, SAMPLE_RATE, NEURAL_SAMPLE_RATE, quality="HQ"), dtype=np.float32)
