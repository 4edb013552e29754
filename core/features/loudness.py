"""Frame loudness on the mel grid (44.1 kHz, hop 512): RMS in dB, its normalised form, and "volume".

Two related measures, both with ``T = N // hop + 1`` frames for ``N`` samples (the mel frame count):

* :func:`loudness_db` — RMS of a centred 2048-sample window (the mel STFT window), in dB. It is what a
  human would call loudness per mel frame and what ``stats.json`` summarises.
* :func:`frame_volume` — the Diffusion-SVC "volume" conditioning input: square the signal,
  reflect-pad it by hop/2 on each side, frame ``n`` is the mean over samples ``[hop*n, hop*(n+1))``
  of the padded signal, then the square root. Pretrained Diffusion-SVC bases were trained on exactly
  this, so it must not be swapped for the 2048-window RMS.

Only numpy is needed; all functions take float arrays and never return NaN/inf.
"""

from __future__ import annotations

import numpy as np

from core.config import AUDIO

# -100 dB: the floor below which a frame counts as digital silence (RMS 1e-5, the mel log clamp).
SILENCE_DB = -100.0
_RMS_FLOOR = 10.0 ** (SILENCE_DB / 20.0)


def n_loudness_frames(n_samples: int, hop: int = AUDIO.hop_length) -> int:
    """Frames on the mel grid for ``n_samples`` samples: ``n_samples // hop + 1``."""
    return int(n_samples) // hop + 1


def _as_finite_mono(wav: np.ndarray) -> np.ndarray:
    x = np.asarray(wav, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


def _reflect_pad(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Reflect padding that also works for signals shorter than the pad (numpy repeats the reflection)."""
    if x.size == 0:
        return np.zeros(left + right, dtype=x.dtype)
    if x.size == 1:  # nothing to reflect: repeat the sample
        return np.pad(x, (left, right), mode="edge")
    return np.pad(x, (left, right), mode="reflect")


def frame_rms(wav: np.ndarray, window: int = AUDIO.win_length, hop: int = AUDIO.hop_length) -> np.ndarray:
    """RMS of a ``window``-sample window centred on sample ``hop * n`` (reflect padding), ``[T]`` float64."""
    x = _as_finite_mono(wav)
    n_frames = n_loudness_frames(x.size, hop)
    half = window // 2
    padded = _reflect_pad(x, half, half)
    need = (n_frames - 1) * hop + window
    if padded.size < need:  # only for window > 2 * hop and tiny inputs; pad with zeros
        padded = np.pad(padded, (0, need - padded.size))
    # Sum of squares over each window from a cumulative sum: O(N) instead of O(N * window).
    cumulative = np.concatenate(([0.0], np.cumsum(padded * padded)))
    starts = np.arange(n_frames) * hop
    energy = (cumulative[starts + window] - cumulative[starts]) / window
    return np.sqrt(np.maximum(energy, 0.0))


def loudness_db(wav: np.ndarray, window: int = AUDIO.win_length, hop: int = AUDIO.hop_length) -> np.ndarray:
    """Frame RMS in dB (``20 log10``, floored at :data:`SILENCE_DB`), ``[T]`` float32 on the mel grid."""
    rms = frame_rms(wav, window, hop)
    return (20.0 * np.log10(np.maximum(rms, _RMS_FLOOR))).astype(np.float32)


def normalize_loudness(db: np.ndarray, floor_db: float = SILENCE_DB) -> np.ndarray:
    """Loudness in dB mapped to [0, 1]: ``floor_db`` (silence) -> 0, 0 dBFS (full-scale sine ~ -3 dB) -> 1.

    A fixed mapping rather than per-chunk min/max, so the same level means the same value in every
    chunk and at conversion time.
    """
    db = np.asarray(db, dtype=np.float32)
    return np.clip((db - floor_db) / (0.0 - floor_db), 0.0, 1.0).astype(np.float32)


def standardize_loudness(db: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Loudness in dB standardised with the dataset's ``loudness_db_mean``/``loudness_db_std`` (stats.json)."""
    return ((np.asarray(db, dtype=np.float32) - mean) / max(float(std), 1e-3)).astype(np.float32)


def frame_volume(wav: np.ndarray, hop: int = AUDIO.hop_length) -> np.ndarray:
    """Diffusion-SVC volume: ``sqrt(mean over [hop n, hop (n+1)) of the reflect-padded squared signal)``.

    Returns ``[N // hop + 1]`` float32 linear RMS values.
    """
    x = _as_finite_mono(wav)
    n_frames = n_loudness_frames(x.size, hop)
    # Squaring first then padding by reflection equals padding then squaring.
    padded = _reflect_pad(x * x, hop // 2, hop - hop // 2)
    need = n_frames * hop
    if padded.size < need:
        padded = np.pad(padded, (0, need - padded.size))
    frames = padded[:need].reshape(n_frames, hop)
    return np.sqrt(frames.mean(axis=1)).astype(np.float32)
