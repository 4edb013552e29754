"""Praat autocorrelation F0 (through parselmouth): fast, no model file needed, weaker on breathy voice."""

from __future__ import annotations

import numpy as np

from core.features.f0_postprocess import DEFAULT_F0_MAX, DEFAULT_F0_MIN, to_grid
from core.features.mel import as_waveform

VOICING_THRESHOLD = 0.6  # Praat's default 0.45 lets breaths through as voiced; 0.6 as in RVC


def praat_f0(wav: np.ndarray, sample_rate: int, frame_times: np.ndarray,
             f0_min: float = DEFAULT_F0_MIN, f0_max: float = DEFAULT_F0_MAX) -> np.ndarray:
    """Praat pitch (Hz, 0 = unvoiced) at ``frame_times`` (seconds) of a mono waveform."""
    import parselmouth  # Praat's native library (~70 MiB): only when this F0 method runs

    x = as_waveform(wav).astype(np.float64)
    # Praat needs at least 3 periods of the lowest pitch for one window: pad short chunks with silence
    min_len = int(np.ceil(3.0 / f0_min * sample_rate)) + 2
    if x.size < min_len:
        x = np.pad(x, (0, min_len - x.size))
    step = float(frame_times[1] - frame_times[0]) if len(frame_times) > 1 else 0.01
    pitch = parselmouth.Sound(x, sampling_frequency=sample_rate).to_pitch_ac(
        time_step=step, pitch_floor=float(f0_min), pitch_ceiling=float(f0_max),
        voicing_threshold=VOICING_THRESHOLD,
    )
    f0 = np.nan_to_num(pitch.selected_array["frequency"], nan=0.0)
    return to_grid(f0, pitch.xs(), frame_times)
