"""Remix a cover: converted lead vocal + instrumental (+ backing vocals) into one stereo file.

* The instrumental, and backing vocals that were not converted, are pitch-shifted by the same key
  shift as the vocal with pedalboard's offline Rubber Band stretcher, so the song stays in tune.
* The converted vocal is loudness-matched to the original vocal stem in LUFS (ITU-R BS.1770-4 integrated
  loudness, measured with pyloudnorm), so a voice model that sings louder or softer does not change the
  balance. Stems too short to measure (< 0.4 s) fall back to RMS over the frames where the voice is active.
* Per-stem gains in dB are applied on top, then a true-peak limiter (4x oversampled, BS.1770-4 Annex 2
  style) and a final true-peak check: the cover's true peak never exceeds ``ceiling_db`` (-1 dBTP).
  Mono stems are spread to both channels; the output is always stereo at 44.1 kHz.
* The result reports the cover's integrated loudness (LUFS) and true peak (dBTP), and the loudness of
  the original and of the converted lead (:class:`MixResult`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio import SAVE_FORMATS, load_channels, save_audio
from core.config import AUDIO
from core.errors import SvcoverError
from core.progress import ProgressFn, report

SAMPLE_RATE = AUDIO.sample_rate  # stems are mixed and the cover written at the project's rate
MAX_MATCH_DB = 24.0  # never let loudness matching move a vocal by more than this
ACTIVE_RANGE_DB = 40.0  # frames within this of the loudest frame count as "voice active"
TRUE_PEAK_OVERSAMPLE = 4  # BS.1770-4 Annex 2: 4x oversampling is enough at 44.1/48 kHz
_TRUE_PEAK_BLOCK = 1 << 18  # samples per block when oversampling (bounds memory on long songs)
_TRUE_PEAK_MARGIN = 64  # input samples of context either side of a block (covers the FIR's length)


@dataclass(frozen=True)
class MixSettings:
    """How the stems are combined. Gains are in dB; ``key`` in semitones (may be fractional)."""

    key: float = 0.0  # the vocal's key shift: the instrumental and unconverted backing vocals are shifted by it
    vocal_gain_db: float = 0.0  # on the converted lead vocal, on top of the loudness match
    instrumental_gain_db: float = 0.0
    backing_gain_db: float = 0.0  # only when the song's backing vocals were split off (karaoke pass)
    match_loudness: bool = True  # scale the converted vocal to the original vocal stem's loudness (LUFS)
    limiter_threshold_db: float = -1.2  # true-peak level (dBTP) the limiter holds the mix to
    ceiling_db: float = -1.0  # the cover's true peak (dBTP) never exceeds this

    def __post_init__(self) -> None:
        if not -24.0 <= self.key <= 24.0:
            raise SvcoverError(f"key shift {self.key} semitones is out of range (use -24 to 24)")
        if self.ceiling_db > 0 or self.limiter_threshold_db > 0:
            raise SvcoverError("limiter threshold and ceiling must be at or below 0 dBTP")
        if self.limiter_threshold_db > self.ceiling_db:
            raise SvcoverError("the limiter threshold must not be above the ceiling")


@dataclass
class MixFigures:
    """Measurements of a mix (loudness in LUFS, BS.1770-4; true peak in dBTP, 4x oversampled)."""

    lufs: float  # integrated loudness of the cover (-inf for silence)
    true_peak_db: float  # of the cover
    peak: float  # largest sample magnitude of the cover (linear)
    vocal_match_db: float  # gain loudness matching applied to the converted vocal
    reference_vocal_lufs: float | None = None  # the original lead stem
    vocal_lufs: float | None = None  # the converted lead after matching and the vocal gain

    def as_dict(self) -> dict[str, float | None]:
        """JSON-safe figures (non-finite values as None), rounded to 0.01."""
        return {k: (round(float(v), 2) if v is not None and np.isfinite(v) else None) for k, v in vars(self).items()}


@dataclass
class MixResult:
    path: Path
    duration: float
    peak: float
    vocal_match_db: float  # gain loudness matching applied to the converted vocal
    figures: MixFigures | None = None


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


def integrated_lufs(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4 with its gating) of [N] or [N, C] audio.

    ``-inf`` for silence; ``nan`` when the signal is shorter than one 400 ms gating block.
    """
    import pyloudnorm

    x = np.asarray(wav, dtype=np.float64)
    if len(x) < int(0.4 * sr) + 1:
        return float("nan")
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(sr).integrated_loudness(x))


def _oversampled_blocks(wav: np.ndarray, factor: int):
    """Yield (start, stop, |oversampled| [stop - start, factor] max over channels) block by block."""
    from scipy.signal import resample_poly

    x = wav if wav.ndim == 2 else wav[:, None]
    n = len(x)
    for start in range(0, n, _TRUE_PEAK_BLOCK):
        stop = min(n, start + _TRUE_PEAK_BLOCK)
        lo, hi = max(0, start - _TRUE_PEAK_MARGIN), min(n, stop + _TRUE_PEAK_MARGIN)
        # channels as contiguous rows, float32: several times faster than [N, C] float64, ample for dB figures
        up = resample_poly(np.ascontiguousarray(x[lo:hi].T, dtype=np.float32), factor, 1, axis=1)
        up = np.abs(up[:, (start - lo) * factor : (stop - lo) * factor]).max(axis=0)
        yield start, stop, up.reshape(stop - start, factor)


def true_peak_envelope(wav: np.ndarray, factor: int = TRUE_PEAK_OVERSAMPLE) -> np.ndarray:
    """Per sample n: the largest |value| of the ``factor``x oversampled signal (all channels) between
    samples n - 1 and n + 1, i.e. every inter-sample peak next to n."""
    n = len(wav)
    env = np.zeros(n, dtype=np.float32)
    if n == 0:
        return env
    for start, stop, up in _oversampled_blocks(wav, factor):
        env[start:stop] = up.max(axis=1)  # peaks in [n, n + 1)
    env = np.maximum(env, np.abs(wav).max(axis=1) if wav.ndim == 2 else np.abs(wav))
    previous = np.empty_like(env)  # and those in [n - 1, n)
    previous[0] = 0.0
    previous[1:] = env[:-1]
    return np.maximum(env, previous)


def true_peak_db(wav: np.ndarray, factor: int = TRUE_PEAK_OVERSAMPLE) -> float:
    """True peak in dBTP (dB of the largest |value| of the ``factor``x oversampled signal); -inf for silence."""
    peak = 0.0
    if len(wav):
        for _, _, up in _oversampled_blocks(wav, factor):
            peak = max(peak, float(up.max()))
        peak = max(peak, float(np.abs(wav).max()))
    return float(20 * np.log10(peak)) if peak > 0 else float("-inf")


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
          release_ms: float = 80.0, block: int = 64, oversample: int = TRUE_PEAK_OVERSAMPLE) -> np.ndarray:  # fmt: skip
    """Look-ahead true-peak limiter: the ``oversample``x oversampled level of the result stays at
    ``threshold_db`` (dBTP); nothing below it changes. ``oversample=1`` limits sample peaks instead.

    (pedalboard's ``Limiter`` is JUCE's, which compresses and adds make-up gain well below its
    threshold, so it would change the balance set by the gains.) The level of sample n is the largest
    oversampled value next to it (:func:`true_peak_envelope`), so peaks between samples count. The gain
    is computed per block of ``block`` samples: instant attack one block ahead, exponential release,
    linear interpolation between block centres; every interpolated gain is at most the gain the loudest
    sample of its block needs. A final measurement scales the whole mix down if its true peak still
    passes ``ceiling_db`` (the gain changes themselves can add a little overshoot).
    """
    threshold = db_to_gain(threshold_db)
    if oversample > 1:
        level = true_peak_envelope(wav, oversample)
    else:
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
    if oversample > 1:
        peak = db_to_gain(true_peak_db(out, oversample)) if out.size else 0.0
    else:
        peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > ceiling:
        out *= ceiling / peak
    return out


def _fit(wav: np.ndarray, n: int) -> np.ndarray:
    if len(wav) >= n:
        return wav[:n]
    return np.pad(wav, ((0, n - len(wav)), (0, 0)))


def vocal_match_gain_db(vocals: np.ndarray, reference: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[float, float, float]:
    """(gain in dB bringing ``vocals`` to the loudness of ``reference``, reference LUFS, vocal LUFS).

    Integrated loudness (LUFS) when both can be measured; otherwise active RMS (the LUFS figures are then nan).
    Silent stems get no gain; the gain is limited to +-:data:`MAX_MATCH_DB`.
    """
    ref_lufs, voc_lufs = integrated_lufs(reference, sr), integrated_lufs(vocals, sr)
    if np.isfinite(ref_lufs) and np.isfinite(voc_lufs):
        ref_level, voc_level = ref_lufs, voc_lufs
    else:
        ref_level, voc_level = active_rms_db(reference, sr), active_rms_db(vocals, sr)
        if np.isnan(ref_lufs) or np.isnan(voc_lufs):
            ref_lufs = voc_lufs = float("nan")
    if voc_level <= -90 or ref_level <= -90 or not (np.isfinite(ref_level) and np.isfinite(voc_level)):
        return 0.0, ref_lufs, voc_lufs
    return float(np.clip(ref_level - voc_level, -MAX_MATCH_DB, MAX_MATCH_DB)), ref_lufs, voc_lufs


def mix_stems(
    instrumental: np.ndarray,
    *,
    vocals: np.ndarray | None = None,
    reference_vocals: np.ndarray | None = None,
    backing: np.ndarray | None = None,
    backing_is_converted: bool = False,
    settings: MixSettings | None = None,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, MixFigures]:
    """The mix of stereo float [N, 2] stems at 44.1 kHz (the cover has the instrumental's length) and its figures.

    Same parameters as :func:`mix_cover`, as arrays.
    """
    settings = settings or MixSettings()
    n = len(instrumental)
    report(progress, 0.15, "mix: key shift of the instrumental")
    mix = pitch_shift(instrumental, settings.key) * db_to_gain(settings.instrumental_gain_db)
    match_db = 0.0
    ref_lufs = vocal_lufs = None
    if vocals is not None:
        report(progress, 0.45, "mix: vocals")
        voc = _fit(vocals, n)
        if settings.match_loudness and reference_vocals is not None:
            match_db, ref_lufs, _ = vocal_match_gain_db(voc, reference_vocals)
        voc = voc * db_to_gain(match_db + settings.vocal_gain_db)
        vocal_lufs = integrated_lufs(voc)
        mix += voc
        del voc
    if backing is not None:
        report(progress, 0.6, "mix: backing vocals")
        back = _fit(backing, n)
        if not backing_is_converted:
            back = pitch_shift(back, settings.key, preserve_formants=True)
        mix += back * db_to_gain(settings.backing_gain_db)
        del back
    report(progress, 0.75, "mix: true-peak limiter")
    mix = limit(mix, settings.limiter_threshold_db, settings.ceiling_db)
    report(progress, 0.85, "mix: measuring loudness")
    figures = MixFigures(lufs=integrated_lufs(mix), true_peak_db=true_peak_db(mix),
                         peak=float(np.abs(mix).max()) if mix.size else 0.0, vocal_match_db=match_db,
                         reference_vocal_lufs=ref_lufs, vocal_lufs=vocal_lufs)  # fmt: skip
    return mix, figures


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
        :class:`MixResult` (path, duration, final peak, loudness-match gain, LUFS / true-peak figures).
    """
    settings = settings or MixSettings()
    output = check_output_path(output)
    report(progress, 0.0, "mix: loading stems")
    inst = load_stereo(instrumental)
    n = len(inst)
    mix, figures = mix_stems(
        inst,
        vocals=load_stereo(vocals) if vocals is not None else None,
        reference_vocals=load_stereo(reference_vocals) if vocals is not None and reference_vocals is not None else None,
        backing=load_stereo(backing) if backing is not None else None,
        backing_is_converted=backing_is_converted,
        settings=settings,
        progress=progress,
    )  # fmt: skip
    del inst
    report(progress, 0.9, f"mix: writing {output.name}")
    save_audio(output, mix, SAMPLE_RATE)
    report(progress, 1.0, f"mix done: {figures.lufs:.1f} LUFS, true peak {figures.true_peak_db:.1f} dBTP")
    return MixResult(path=output, duration=n / SAMPLE_RATE, peak=figures.peak, vocal_match_db=figures.vocal_match_db,
                     figures=figures)  # fmt: skip
