"""Post-processing shared by every F0 method: resampling to the mel grid, range limits, octave-blip
repair, median smoothing and the continuous (interpolated) copy used for conditioning.

Conventions: f0 arrays are float32 Hz per frame, 0 means unvoiced; every function returns a new array.
"""

from __future__ import annotations

import numpy as np

DEFAULT_F0_MIN = 40.0  # below the lowest bass notes (E1 = 41 Hz is exotic; C2 = 65 Hz is common)
DEFAULT_F0_MAX = 1600.0  # above soprano high C (1047 Hz) and most whistle-register notes sung in pop
OCTAVE_WINDOW = 31  # frames (~360 ms on the mel grid): octave jumps shorter than half of it are repaired
OCTAVE_TOLERANCE_CENTS = 150.0


def to_grid(f0: np.ndarray, src_times: np.ndarray, dst_times: np.ndarray) -> np.ndarray:
    """Resample an f0 track given at ``src_times`` (s) to ``dst_times`` (s).

    Voicing comes from the nearest source frame; values are interpolated linearly in log-frequency
    between voiced neighbours (unvoiced gaps are bridged first, so a voiced destination frame never
    mixes in a zero). Outside the source span the edge frame is held.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    src = np.asarray(src_times, dtype=np.float64)
    dst = np.asarray(dst_times, dtype=np.float64)
    if f0.size == 0 or dst.size == 0:
        return np.zeros(dst.size, dtype=np.float32)
    nearest = np.clip(np.searchsorted(src, dst), 1, max(src.size - 1, 1))
    if src.size > 1:
        left_closer = (dst - src[nearest - 1]) <= (src[nearest] - dst)
        nearest = np.where(left_closer, nearest - 1, nearest)
    else:
        nearest = np.zeros(dst.size, dtype=np.int64)
    voiced = f0[nearest] > 0
    if not voiced.any():
        return np.zeros(dst.size, dtype=np.float32)
    filled = continuous_f0(f0)
    values = np.exp2(np.interp(dst, src, np.log2(filled)))
    return np.where(voiced, values, 0.0).astype(np.float32)


def continuous_f0(f0: np.ndarray) -> np.ndarray:
    """f0 with unvoiced frames filled by linear interpolation (Hz) between voiced ones; edges held.

    An all-unvoiced track stays all zeros.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    if not voiced.any():
        return np.zeros(f0.shape, dtype=np.float32)
    idx = np.arange(f0.size)
    return np.interp(idx, idx[voiced], f0[voiced]).astype(np.float32)


def limit_range(f0: np.ndarray, f0_min: float = DEFAULT_F0_MIN, f0_max: float = DEFAULT_F0_MAX) -> np.ndarray:
    """Mark frames outside ``[f0_min, f0_max]`` Hz (and non-finite values) unvoiced."""
    if not 0 < f0_min < f0_max:
        raise ValueError(f"need 0 < f0_min < f0_max, got {f0_min} and {f0_max}")
    f0 = np.nan_to_num(np.asarray(f0, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.where((f0 >= f0_min) & (f0 <= f0_max), f0, 0.0).astype(np.float32)


def voiced_segments(f0: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of voiced frames (stop exclusive)."""
    voiced = np.concatenate([[False], np.asarray(f0) > 0, [False]])
    edges = np.flatnonzero(np.diff(voiced.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _centred_running_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median over a window centred on each sample that shrinks symmetrically at the edges.

    Symmetric shrinking keeps monotonic runs (glides) exactly unchanged.
    """
    half = window // 2
    n = x.size
    out = np.empty_like(x)
    if n > 2 * half:  # every full window at once (a per-frame python loop was ~10 % of RMVPE's time)
        out[half:n - half] = np.median(np.lib.stride_tricks.sliding_window_view(x, 2 * half + 1), axis=1)
        edges = [*range(half), *range(n - half, n)]
    else:
        edges = range(n)
    for i in edges:
        h = min(half, i, n - 1 - i)
        out[i] = np.median(x[i - h:i + h + 1])
    return out


def fix_octave_errors(f0: np.ndarray, window: int = OCTAVE_WINDOW,
                      tolerance_cents: float = OCTAVE_TOLERANCE_CENTS) -> np.ndarray:
    """Move short octave jumps back: within each voiced run, a frame that sits a whole number of octaves
    (within ``tolerance_cents``) away from the running median of its run is shifted onto it.

    A median filter keeps steps, so a real octave leap held for more than ``window // 2`` frames and
    glides of any speed are left alone; blips shorter than that (the typical octave error of pitch
    trackers) are repaired. Errors covering a whole note cannot be detected this way.
    """
    out = np.asarray(f0, dtype=np.float64).copy()
    for start, stop in voiced_segments(out):
        if stop - start < 3:
            continue
        cents = 1200.0 * np.log2(out[start:stop])
        diff = cents - _centred_running_median(cents, window)
        octaves = np.round(diff / 1200.0)
        wrong = (octaves != 0) & (np.abs(diff - 1200.0 * octaves) <= tolerance_cents)
        cents[wrong] -= 1200.0 * octaves[wrong]
        out[start:stop] = np.exp2(cents / 1200.0)
    return out.astype(np.float32)


def median_smooth(f0: np.ndarray, size: int) -> np.ndarray:
    """Median filter of ``size`` frames (odd; <= 1 disables) over voiced values only.

    The voiced/unvoiced pattern is kept; each voiced frame takes the median of the voiced frames of
    its own voiced run inside the window, so rests never pull the pitch towards 0.
    """
    f0 = np.asarray(f0, dtype=np.float32)
    if size <= 1:
        return f0.copy()
    if size % 2 == 0:
        raise ValueError(f"median filter size must be odd, got {size}")
    out = f0.copy()
    half = size // 2
    for start, stop in voiced_segments(f0):
        run = f0[start:stop]
        padded = np.pad(run.astype(np.float64), half, constant_values=np.nan)
        windows = np.lib.stride_tricks.sliding_window_view(padded, size)
        out[start:stop] = np.nanmedian(windows, axis=1)
    return out


def postprocess(f0: np.ndarray, f0_min: float = DEFAULT_F0_MIN, f0_max: float = DEFAULT_F0_MAX,
                median_size: int = 0, octave_fix: bool = True) -> np.ndarray:
    """Octave-blip repair (optional, before the limits so a blip above ``f0_max`` can still be folded
    back), range limits, median smoothing (optional)."""
    f0 = np.nan_to_num(np.asarray(f0, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    f0 = np.where(f0 > 0, f0, 0.0).astype(np.float32)
    if octave_fix:
        f0 = fix_octave_errors(f0)
    return median_smooth(limit_range(f0, f0_min, f0_max), median_size)
