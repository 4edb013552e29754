"""Remix a cover: converted lead vocal + instrumental (+ backing vocals) into one stereo file.

* The instrumental, and backing vocals that were not converted, are pitch-shifted by the same key
  shift as the vocal with pedalboard's offline Rubber Band stretcher, so the song stays in tune.
* The converted vocal is loudness-matched to the original vocal stem (RMS over the frames where the
  voice is active), so a voice model that sings louder or softer does not change the balance.
* Per-stem gains in dB are applied on top, then a limiter, then a final peak check: the output never
  clips. Mono stems are spread to both channels; the output is always stereo at 44.1 kHz.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio import SAVE_FORMATS
from core.errors import SvcoverError
from core.progress import ProgressFn, report

SAMPLE_RATE = 44100
MAX_MATCH_DB = 24.0  # never let loudness matching move a vocal by more than this
ACTIVE_RANGE_DB = 40.0  # frames within this of the loudest frame count as "voice active"


@dataclass(frozen=True)
class MixSettings:
    """How the stems are combined. Gains are in dB; ``key`` in semitones (may be fractional)."""

    key: float = 0.0
    vocal_gain_db: float = 0.0
    instrumental_gain_db: float = 0.0
    backing_gain_db: float = 0.0
    match_loudness: bool = True
    limiter_threshold_db: float = -1.0
    ceiling_db: float = -0.3  # final true sample peak never exceeds this

    def __post_init__(self) -> None:
        if not -24.0 <= self.key <= 24.0:
            raise SvcoverError(f"key shift {self.key} semitones is out of range (use -24 to 24)")
        if self.ceiling_db > 0 or self.limiter_threshold_db > 0:
            raise SvcoverError("limiter threshold and ceiling must be at or below 0 dBFS")


@dataclass
class MixResult:
    path: Path
    duration: float
    peak: float
    vocal_match_db: float  # gain loudness matching applied to the converted vocal


def check_output_path(path: str | Path) -> Path:
    """Validate the output file's format and that its folder can be written, before any long work."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in SAVE_FORMATS:
        raise SvcoverError(f"{path}: unsupported output format '{fmt or '(none)'}' (use one of {', '.join(SAVE_FORMATS)})")
    if path.is_dir():
        raise SvcoverError(f"{path}: is a folder; give an output file name such as cover.wav")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SvcoverError(f"{folder}: output folder is not writable ({e.strerror or e.__class__.__name__})") from None
    return path


def load_stereo(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to float32 [N, 2] at ``sr`` (mono duplicated, more channels downmixed).

    The shared decode path of :mod:`core.audio`: damaged, truncated and too long files are refused
    with one line, NaN/inf samples become 0.
    """
    from core.audio import load_channels

    return load_channels(path, sr, 2)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def rms_db(wav: np.ndarray) -> float:
    """Plain RMS level in dBFS over the whole signal (all channels)."""
    return float(10 * np.log10(np.mean(np.square(wav, dtype=np.float64)) + 1e-20)) if wav.size else -200.0


def active_rms_db(wav: np.ndarray, sr: int = SAMPLE_RATE, frame_seconds: float = 0.05) -> float:
    """RMS level (dBFS) over the frames within :data:`ACTIVE_RANGE_DB` of the loudest one.

    Silence between phrases would otherwise make a sparse vocal look quieter than it sounds.
    """
    mono = wav.mean(axis=1) if wav.ndim == 2 else wav
    frame = max(1, int(sr * frame_seconds))
    n = len(mono) // frame
    if n == 0:
        return float(10 * np.log10(np.mean(np.square(mono, dtype=np.float64)) + 1e-20))
    power = np.mean(np.square(mono[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    power_db = 10 * np.log10(power + 1e-20)
    active = power_db >= power_db.max() - ACTIVE_RANGE_DB
    return float(10 * np.log10(power[active].mean() + 1e-20))


def pitch_shift(wav: np.ndarray, semitones: float, sr: int = SAMPLE_RATE, preserve_formants: bool = False) -> np.ndarray:
    """Shift [N, C] audio by ``semitones`` keeping its length.

    pedalboard's offline Rubber Band stretcher (``time_stretch`` at factor 1.0, high quality): its
    real-time ``PitchShift`` plugin smears steady tones by a few tens of cents, this one does not.
    ``preserve_formants`` suits voices (backing vocals), not instruments.
    """
    if abs(semitones) < 1e-6:
        return wav
    from pedalboard import time_stretch

    out = time_stretch(np.ascontiguousarray(wav.T, dtype=np.float32), float(sr), stretch_factor=1.0,
                       pitch_shift_in_semitones=float(semitones), high_quality=True,
                       preserve_formants=preserve_formants)  # fmt: skip
    return _fit(out.T, len(wav))


def limit(wav: np.ndarray, threshold_db: float, ceiling_db: float, sr: int = SAMPLE_RATE,
          release_ms: float = 80.0, block: int = 64) -> np.ndarray:  # fmt: skip
    """Look-ahead peak limiter: no sample of the result passes ``threshold_db``; nothing below it changes.

    (pedalboard's ``Limiter`` is JUCE's, which compresses and adds make-up gain well below its
    threshold, so it would change the balance set by the gains.) The gain is computed per block of
    ``block`` samples: instant attack one block ahead, exponential release, linear interpolation
    between block centres; every interpolated gain is at most the gain the loudest sample of its
    block needs. A final scale to ``ceiling_db`` guards against anything that slipped through.
    """
    threshold = db_to_gain(threshold_db)
    level = np.abs(wav).max(axis=1) if wav.ndim == 2 else np.abs(wav)
    n = len(level)
    out = wav.astype(np.float32, copy=True)
    if n and float(level.max()) > threshold:
        n_blocks = -(-n // block)
        padded = np.zeros(n_blocks * block, dtype=np.float32)
        padded[:n] = level
        needed = np.minimum(1.0, threshold / np.maximum(padded.reshape(n_blocks, block).max(axis=1), 1e-9))
        coef = float(np.exp(-block / (release_ms * 1e-3 * sr)))
        gains = np.empty(n_blocks)
        previous = 1.0
        for b, need in enumerate(needed.tolist()):  # release: recover towards 1 at most this fast
            previous = min(need, 1.0 - (1.0 - previous) * coef)
            gains[b] = previous
        held = np.minimum(gains, np.minimum(np.r_[gains[1:], 1.0], np.r_[1.0, gains[:-1]]))
        centres = (np.arange(n_blocks) + 0.5) * block
        step = 1 << 20
        for start in range(0, n, step):
            idx = np.arange(start, min(n, start + step))
            g = np.interp(idx, centres, held).astype(np.float32)
            out[start : start + len(idx)] *= g[:, None] if out.ndim == 2 else g
    ceiling = db_to_gain(ceiling_db)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > ceiling:
        out *= ceiling / peak
    return out


def _fit(wav: np.ndarray, n: int) -> np.ndarray:
    if len(wav) >= n:
        return wav[:n]
    return np.pad(wav, ((0, n - len(wav)), (0, 0)))


def mix_cover(
    output: str | Path,
    *,
    instrumental: str | Path,
    vocals: str | Path | None = None,
    reference_vocals: str | Path | None = None,
    backing: str | Path | None = None,
    backing_is_converted: bool = False,
    settings: MixSettings | None = None,
    progress: ProgressFn | None = None,
) -> MixResult:
    """Mix the stems into ``output`` (wav/flac/mp3, written atomically).

    Parameters:
        output: the cover file; its extension picks the format.
        instrumental: the instrumental stem; the cover has its length.
        vocals: the converted lead vocal (None: instrumental only, e.g. a song without vocals).
        reference_vocals: the original lead vocal the converted one is loudness-matched to.
        backing: backing vocals; pitch-shifted by the key unless ``backing_is_converted``.
        settings: gains, key shift, limiter.
        progress: callback ``(fraction, message)``.

    Returns:
        :class:`MixResult` (path, duration, final peak, loudness-match gain).
    """
    from core.audio import save_audio

    settings = settings or MixSettings()
    output = check_output_path(output)
    report(progress, 0.0, "mix: loading stems")
    inst = load_stereo(instrumental)
    n = len(inst)
    report(progress, 0.15, "mix: key shift of the instrumental")
    mix = pitch_shift(inst, settings.key) * db_to_gain(settings.instrumental_gain_db)
    del inst
    match_db = 0.0
    if vocals is not None:
        report(progress, 0.45, "mix: vocals")
        voc = _fit(load_stereo(vocals), n)
        if settings.match_loudness and reference_vocals is not None:
            ref_db = active_rms_db(load_stereo(reference_vocals))
            voc_db = active_rms_db(voc)
            if voc_db > -90 and ref_db > -90:
                match_db = float(np.clip(ref_db - voc_db, -MAX_MATCH_DB, MAX_MATCH_DB))
        mix += voc * db_to_gain(match_db + settings.vocal_gain_db)
        del voc
    if backing is not None:
        report(progress, 0.6, "mix: backing vocals")
        back = _fit(load_stereo(backing), n)
        if not backing_is_converted:
            back = pitch_shift(back, settings.key, preserve_formants=True)
        mix += back * db_to_gain(settings.backing_gain_db)
        del back
    report(progress, 0.8, "mix: limiter")
    mix = limit(mix, settings.limiter_threshold_db, settings.ceiling_db)
    report(progress, 0.9, f"mix: writing {output.name}")
    save_audio(output, mix, SAMPLE_RATE)
    report(progress, 1.0, "mix done")
    peak = float(np.abs(mix).max())
    return MixResult(path=output, duration=n / SAMPLE_RATE, peak=peak, vocal_match_db=match_db)
