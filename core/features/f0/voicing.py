"""Voicing decision for the neural F0 methods: which frames are sung, which are breath, consonant or noise.

A single threshold on the network's confidence (FCPE 0.006, RMVPE 0.03) keeps every sung frame but
also calls a fifth of the unvoiced frames of real a cappella singing voiced (breaths, consonants, room
noise, the decays after notes); those frames get a pitch and come out as pitched hiss. The decision
here combines three per-frame measures with hysteresis and a minimum segment length:

* **confidence**: the network's peak salience (0..1);
* **level**: frame RMS in dB relative to the loudest frame within +-``reference_seconds`` (a local
  reference, so a quiet verse is judged against itself, not against the chorus);
* **periodicity**: normalised autocorrelation of the waveform at the estimated period (1 for a
  perfectly periodic frame, ~0 for noise).

A loud frame that is clearly periodic counts as confident even when the network is not (FCPE's
confidence on clean notes above ~1 kHz is only 0.2-0.6).

A frame is a *seed* when all three are clearly voiced (``strong`` thresholds) and a *candidate* when
all three pass the looser ``weak`` thresholds. Voiced = the runs of candidate frames that contain at
least one seed (hysteresis: a note is entered on strong evidence and left only when the evidence is
weak), then gaps of up to ``max_gap_frames`` inside a note are bridged and voiced runs shorter than
``min_voiced_frames`` are dropped. How it was tuned and measured: docs/f0.md, benchmarks/voicing.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_RATE = 100  # the neural methods' frames per second (hop 160 at 16 kHz)
LEVEL_WINDOW = 512  # samples at 16 kHz (32 ms) for the frame level
PERIODICITY_WINDOW = 640  # samples at 16 kHz (40 ms): two periods of the lowest note (40 Hz would need more)
PERIODICITY_LOWPASS_HZ = 2000.0  # above the highest F0 (1.6 kHz) the F0 stage tracks
_BLOCK_FRAMES = 2048  # frames per block when measuring periodicity (bounds memory on long inputs)


@dataclass(frozen=True)
class VoicingSettings:
    """Thresholds of the voicing decision (frames at 100 per second), read by :func:`decide`; per F0 method in
    ``DEFAULT_SETTINGS``. A *seed* frame passes every ``strong_*`` threshold, a *candidate* every ``weak_*`` one."""

    strong_confidence: float = 0.6  # network confidence (0..1) of a seed frame
    weak_confidence: float = 0.3  # network confidence of a candidate frame
    strong_level_db: float = -25.0  # relative to the local reference level
    weak_level_db: float = -30.0  # relative to the local reference level, for a candidate
    floor_db: float = -70.0  # absolute dBFS: quieter frames are never voiced
    strong_periodicity: float = 0.5  # autocorrelation at the estimated period (1 = perfectly periodic)
    weak_periodicity: float = 0.3  # the same, for a candidate
    # A loud (>= strong_level_db) and clearly periodic frame needs only this much confidence: FCPE is unsure
    # of clean notes above ~1 kHz (confidence 0.2-0.6) that no breath or consonant resembles.
    periodic_confidence: float = 0.1
    clear_periodicity: float = 0.9  # periodicity that makes a loud frame "clearly periodic" (see above)
    reference_seconds: float = 1.5  # half-width (s) of the window whose loudest frame is the local reference
    max_gap_frames: int = 1  # unvoiced gaps up to this long inside a note are bridged
    min_voiced_frames: int = 5  # voiced runs shorter than this (50 ms) are dropped

    def __post_init__(self) -> None:
        if not 0 <= self.weak_confidence <= self.strong_confidence <= 1:
            raise ValueError("need 0 <= weak_confidence <= strong_confidence <= 1")
        if self.weak_level_db > self.strong_level_db or self.weak_periodicity > self.strong_periodicity:
            raise ValueError("weak thresholds must not be stricter than the strong ones")
        if self.max_gap_frames < 0 or self.min_voiced_frames < 1:
            raise ValueError("max_gap_frames must be >= 0 and min_voiced_frames >= 1")


# Per method: the networks' confidence scales differ (RMVPE's thresholds are not measured: no real weights here).
DEFAULT_SETTINGS: dict[str, VoicingSettings] = {
    "fcpe": VoicingSettings(),
    "rmvpe": VoicingSettings(),
}


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a boolean array (stop exclusive)."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def hysteresis(candidate: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The runs of ``candidate`` frames that contain at least one ``seed`` frame (seeds count as candidates)."""
    candidate = np.asarray(candidate, dtype=bool) | np.asarray(seed, dtype=bool)
    seed = np.asarray(seed, dtype=bool)
    out = np.zeros(candidate.shape, dtype=bool)
    for start, stop in runs(candidate):
        if seed[start:stop].any():
            out[start:stop] = True
    return out


def bridge_gaps(voiced: np.ndarray, max_gap: int) -> np.ndarray:
    """Unvoiced gaps of at most ``max_gap`` frames between two voiced frames become voiced."""
    out = np.asarray(voiced, dtype=bool).copy()
    if max_gap <= 0:
        return out
    for start, stop in runs(~out):
        if start > 0 and stop < out.size and stop - start <= max_gap:
            out[start:stop] = True
    return out


def drop_short(voiced: np.ndarray, min_frames: int) -> np.ndarray:
    """Voiced runs shorter than ``min_frames`` become unvoiced."""
    out = np.asarray(voiced, dtype=bool).copy()
    for start, stop in runs(out):
        if stop - start < min_frames:
            out[start:stop] = False
    return out


def decide(confidence: np.ndarray, level_db: np.ndarray, reference_db: np.ndarray, periodicity: np.ndarray,
           settings: VoicingSettings | None = None) -> np.ndarray:  # fmt: skip
    """The voicing decision from per-frame measures (all ``[T]``); returns a boolean ``[T]``."""
    s = settings or VoicingSettings()
    confidence = np.nan_to_num(np.asarray(confidence, dtype=np.float64))
    level = np.asarray(level_db, dtype=np.float64)
    rel = level - np.asarray(reference_db, dtype=np.float64)
    per = np.nan_to_num(np.asarray(periodicity, dtype=np.float64))
    audible = level >= s.floor_db
    clear = (per >= s.clear_periodicity) & (rel >= s.strong_level_db) & (confidence >= s.periodic_confidence)
    confidence = np.where(clear, np.maximum(confidence, s.strong_confidence), confidence)
    seed = audible & (confidence >= s.strong_confidence) & (rel >= s.strong_level_db) & (per >= s.strong_periodicity)
    candidate = audible & (confidence >= s.weak_confidence) & (rel >= s.weak_level_db) & (per >= s.weak_periodicity)
    voiced = hysteresis(candidate, seed)
    voiced = bridge_gaps(voiced, s.max_gap_frames)
    return drop_short(voiced, s.min_voiced_frames)


def frame_level_db(wav16k: np.ndarray, n_frames: int, hop: int = 160, window: int = LEVEL_WINDOW) -> np.ndarray:
    """RMS level in dBFS of a ``window``-sample window centred on sample ``hop * j`` for each frame j."""
    x = np.asarray(wav16k, dtype=np.float64)
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    centres = np.arange(n_frames) * hop
    lo = np.clip(centres - window // 2, 0, x.size)
    hi = np.clip(centres + window // 2, 0, x.size)
    energy = (power[hi] - power[lo]) / window  # zeros beyond the ends
    return (10.0 * np.log10(energy + 1e-12)).astype(np.float64)


def local_reference_db(level_db: np.ndarray, seconds: float, frame_rate: float = FRAME_RATE) -> np.ndarray:
    """The loudest frame level within +-``seconds`` of each frame."""
    from scipy.ndimage import maximum_filter1d

    size = max(1, 2 * int(round(seconds * frame_rate)) + 1)
    return maximum_filter1d(np.asarray(level_db, dtype=np.float64), size=size, mode="nearest")


def periodicity(wav16k: np.ndarray, f0_hz: np.ndarray, hop: int = 160, sample_rate: int = 16000,
                window: int = PERIODICITY_WINDOW) -> np.ndarray:  # fmt: skip
    """Normalised autocorrelation at the period ``sample_rate / f0`` per frame, over ``window`` samples centred
    on sample ``hop * j``; 0 where ``f0`` is 0 or unusable.

    The signal is low-passed at :data:`PERIODICITY_LOWPASS_HZ` first and the fractional lag is read by linear
    interpolation: without the low-pass, the interpolation error at high harmonics would make a clean high
    note look aperiodic.
    """
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(wav16k, dtype=np.float64)
    f0 = np.asarray(f0_hz, dtype=np.float64)
    n = f0.size
    out = np.zeros(n)
    valid = np.isfinite(f0) & (f0 > 0)
    if not valid.any() or x.size == 0:
        return out
    if x.size > 30:  # sosfiltfilt needs a little more than its padding
        x = sosfiltfilt(butter(4, PERIODICITY_LOWPASS_HZ, fs=sample_rate, output="sos"), x)
    period = np.where(valid, sample_rate / np.where(valid, f0, 1.0), 1.0)
    max_lag = int(np.ceil(period.max())) + 2
    half = window // 2
    padded = np.pad(x, (half, half + max_lag))
    offsets = np.arange(window)
    for b0 in range(0, n, _BLOCK_FRAMES):
        idx = np.arange(b0, min(n, b0 + _BLOCK_FRAMES))
        starts = np.minimum(idx * hop, padded.size - window - max_lag)  # window start in padded coordinates
        a = padded[starts[:, None] + offsets[None, :]]
        lag = np.clip(np.floor(period[idx]).astype(np.int64), 1, max_lag - 1)
        frac = (period[idx] - lag)[:, None]
        b_lo = padded[(starts + lag)[:, None] + offsets[None, :]]
        b_hi = padded[(starts + lag + 1)[:, None] + offsets[None, :]]
        b = (1.0 - frac) * b_lo + frac * b_hi
        num = (a * b).sum(axis=1)
        den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)) + 1e-12
        out[idx] = np.where(valid[idx], num / den, 0.0)
    return np.clip(out, 0.0, 1.0)


def voiced_frames(wav16k: np.ndarray, f0_hz: np.ndarray, confidence: np.ndarray,
                  settings: VoicingSettings | None = None) -> np.ndarray:  # fmt: skip
    """The voicing decision for a 16 kHz waveform and its per-frame (100 fps) pitch candidates and confidence."""
    s = settings or VoicingSettings()
    n = np.asarray(confidence).size
    level = frame_level_db(wav16k, n)
    reference = local_reference_db(level, s.reference_seconds)
    return decide(confidence, level, reference, periodicity(wav16k, f0_hz), s)
