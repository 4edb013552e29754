"""Independent measures of test signals, shared by tests and benchmarks (not the code under test's own measures).

* ``precise_fundamental``: the strongest spectral peak in a band, from a zero-padded FFT (8x) refined by a
  log-parabola fit: accurate to well under a cent on steady tones, to check key shifts.
* ``fft_true_peak_db``: band-limited (FFT) 8x interpolation, block by block, to check the mixer's 4x
  polyphase true-peak meter against a different method.
"""

from __future__ import annotations

import numpy as np

SR = 44100


def precise_fundamental(x: np.ndarray, lo: float = 100.0, hi: float = 1000.0, sr: int = SR) -> float:
    """Frequency (Hz) of the strongest peak strictly between ``lo`` and ``hi`` in channel 0 of a stereo
    ``[samples, channels]`` signal, leaving out its first and last half second (onsets, filter tails)."""
    seg = x[sr // 2 : -sr // 2, 0].astype(np.float64)
    n = 8 * len(seg)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    band = np.flatnonzero((freqs > lo) & (freqs < hi))
    k = band[np.argmax(spec[band])]
    a, b, c = np.log(spec[k - 1 : k + 2])
    return float((k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / n)


def fft_true_peak_db(x: np.ndarray, factor: int = 8, block: int = 10 * SR, margin: int = SR // 10) -> float:
    """True peak (dBTP) by FFT interpolation; blocks of ``block`` samples with ``margin`` either side keep a
    whole song's memory small (a signal up to ``block`` long is interpolated in one piece)."""
    from scipy.signal import resample

    peak = 0.0
    for start in range(0, len(x), block):
        lo, hi = max(0, start - margin), min(len(x), start + block + margin)
        up = resample(np.asarray(x[lo:hi], np.float64), (hi - lo) * factor, axis=0)
        a = (start - lo) * factor
        b = a + (min(len(x), start + block) - start) * factor
        peak = max(peak, float(np.abs(up[a:b]).max()))
    return float(20 * np.log10(peak))
