"""core.mix: gains, loudness match, key shift of the instrumental, limiter, length, formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import SvcoverError
from core.experiment import visible_files
from core.mix import MixSettings, active_rms_db, check_output_path, load_stereo, mix_cover
from tests.signals import fft_true_peak_db, precise_fundamental

SR = 44100


def sine(freq: float, seconds: float, amp: float, stereo: bool = True) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, x], axis=1) if stereo else x


def harmonic(f0: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    """A steady harmonic "instrument": 6 partials falling off as 1/k."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum((amp / k) * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 7)).astype(np.float32)
    return np.stack([x, x], axis=1)


def write(path: Path, wav: np.ndarray) -> Path:
    sf.write(path, wav, SR, subtype="FLOAT")
    return path


def amplitude_at(x: np.ndarray, freq: float) -> float:
    seg = x[SR // 4 : -SR // 4, 0] if x.ndim == 2 else x[SR // 4 : -SR // 4]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) * 4 / len(seg)
    bin_ = int(round(freq * len(seg) / SR))
    return float(spec[bin_ - 2 : bin_ + 3].max())


def fundamental(x: np.ndarray, lo: float = 80.0, hi: float = 600.0) -> float:
    """Frequency of the strongest spectral peak in [lo, hi] Hz, refined by parabolic interpolation."""
    seg = x[SR // 2 : -SR // 2, 0]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    freqs = np.fft.rfftfreq(len(seg), 1 / SR)
    band = np.where((freqs >= lo) & (freqs <= hi))[0]
    k = band[np.argmax(spec[band])]
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + offset) * SR / len(seg))


def cents(f: float, ref: float) -> float:
    return 1200 * np.log2(f / ref)


def test_gains_and_loudness_match(tmp_path):
    inst = write(tmp_path / "inst.wav", sine(220, 4, 0.1))
    original = write(tmp_path / "orig_vocals.wav", sine(1000, 4, 0.2))
    converted = write(tmp_path / "conv.wav", sine(1000, 4, 0.05, stereo=False))  # 12 dB too quiet, mono
    out = tmp_path / "cover.wav"
    result = mix_cover(out, instrumental=inst, vocals=converted, reference_vocals=original,
                       settings=MixSettings(vocal_gain_db=-6.0, instrumental_gain_db=3.0))  # fmt: skip
    assert result.vocal_match_db == pytest.approx(20 * np.log10(4), abs=0.05)
    mixed, sr = sf.read(out, dtype="float32")
    assert sr == SR and mixed.ndim == 2 and mixed.shape[1] == 2
    # matched to 0.2, then -6 dB; instrumental +3 dB. Levels are low so the limiter does nothing.
    assert amplitude_at(mixed, 1000) == pytest.approx(0.2 * 10 ** (-6 / 20), rel=0.02)
    assert amplitude_at(mixed, 220) == pytest.approx(0.1 * 10 ** (3 / 20), rel=0.02)
    np.testing.assert_allclose(mixed[:, 0], mixed[:, 1], atol=1e-4)  # mono vocal centred


def test_no_loudness_match_keeps_the_converted_level(tmp_path):
    inst = write(tmp_path / "inst.wav", sine(220, 3, 0.1))
    original = write(tmp_path / "orig.wav", sine(1000, 3, 0.2))
    converted = write(tmp_path / "conv.wav", sine(1000, 3, 0.05))
    out = tmp_path / "cover.flac"
    result = mix_cover(out, instrumental=inst, vocals=converted, reference_vocals=original,
                       settings=MixSettings(match_loudness=False))  # fmt: skip
    assert result.vocal_match_db == 0.0
    assert amplitude_at(load_stereo(out), 1000) == pytest.approx(0.05, rel=0.03)


def test_active_rms_ignores_silence_between_phrases():
    phrase = sine(500, 1, 0.3)
    sparse = np.concatenate([phrase, np.zeros((3 * SR, 2), np.float32), phrase])
    assert active_rms_db(sparse) == pytest.approx(active_rms_db(phrase), abs=0.3)


def test_loud_stems_never_clip_and_length_follows_instrumental(tmp_path):
    inst = write(tmp_path / "inst.wav", harmonic(110, 5, amp=0.9))
    vocals = write(tmp_path / "voc.wav", sine(700, 7, 0.95))  # longer than the instrumental
    for fmt in ("wav", "flac", "mp3"):
        out = tmp_path / f"cover.{fmt}"
        result = mix_cover(out, instrumental=inst, vocals=vocals, reference_vocals=vocals,
                           settings=MixSettings(vocal_gain_db=6.0, instrumental_gain_db=6.0))  # fmt: skip
        assert result.peak <= 10 ** (-0.3 / 20) + 1e-6
        decoded = load_stereo(out)
        assert np.abs(decoded).max() <= 1.0
        tolerance = 0 if fmt != "mp3" else 3000  # mp3 frames pad the end
        assert abs(len(decoded) - 5 * SR) <= tolerance, fmt
        assert result.duration == pytest.approx(5.0)


def test_shorter_vocal_is_padded_not_stretched(tmp_path):
    inst = write(tmp_path / "inst.wav", sine(220, 4, 0.1))
    vocals = write(tmp_path / "voc.wav", sine(1000, 2, 0.1))
    out = tmp_path / "cover.wav"
    mix_cover(out, instrumental=inst, vocals=vocals, settings=MixSettings())
    mixed, _ = sf.read(out, dtype="float32")
    assert len(mixed) == 4 * SR
    assert amplitude_at(mixed[3 * SR :], 1000) < 0.01 < amplitude_at(mixed[: 2 * SR], 1000)


@pytest.mark.parametrize("key", [3.0, -5.0])
def test_key_shift_moves_the_instrumental_pitch(tmp_path, key):
    inst = write(tmp_path / "inst.wav", harmonic(220, 4))
    before = fundamental(load_stereo(inst))
    out = tmp_path / "cover.wav"
    mix_cover(out, instrumental=inst, settings=MixSettings(key=key))
    after = fundamental(sf.read(out, dtype="float32")[0])
    assert abs(cents(before, 220)) < 5
    assert cents(after, before) == pytest.approx(100 * key, abs=10)


def test_kept_backing_is_shifted_converted_backing_is_not(tmp_path):
    inst = write(tmp_path / "inst.wav", sine(100, 4, 0.05))
    backing = write(tmp_path / "back.wav", harmonic(330, 4, amp=0.2))
    kept, converted = tmp_path / "kept.wav", tmp_path / "conv.wav"
    settings = MixSettings(key=2.0)
    mix_cover(kept, instrumental=inst, backing=backing, settings=settings)
    mix_cover(converted, instrumental=inst, backing=backing, backing_is_converted=True, settings=settings)
    f_kept = fundamental(sf.read(kept)[0], 250, 600)
    f_conv = fundamental(sf.read(converted)[0], 250, 600)
    assert cents(f_kept, 330) == pytest.approx(200, abs=10)
    assert abs(cents(f_conv, 330)) < 5


def test_bad_output_paths_are_refused_before_work(tmp_path):
    inst = write(tmp_path / "inst.wav", sine(220, 1, 0.1))
    with pytest.raises(SvcoverError, match="unsupported output format 'ogg'"):
        mix_cover(tmp_path / "x.ogg", instrumental=inst)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(SvcoverError, match="output folder is not writable"):
        check_output_path(blocker / "cover.wav")
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(SvcoverError, match="not writable"):
                mix_cover(locked / "cover.wav", instrumental=inst)
            assert visible_files(locked) == []
        finally:
            locked.chmod(0o700)
    with pytest.raises(SvcoverError, match="out of range"):
        MixSettings(key=40)


# ----------------------------------------------------------------------------------------------
# The measured mix (LUFS match, true-peak limiter, key-shift accuracy) on arrays: mix_stems is what
# mix_cover runs after decoding the files.


def _phrases(x: np.ndarray, seed: int) -> np.ndarray:
    """Switch a stem on and off in irregular phrases (silence between them, like a lead vocal)."""
    rng = np.random.default_rng(seed)
    gate = np.repeat(rng.random(len(x) // SR * 4 + 1) < 0.6, SR // 4)[: len(x)].astype(np.float32)
    gate = np.convolve(gate, np.hanning(2205) / np.hanning(2205).sum(), mode="same")
    return x * gate[:, None]


def test_converted_lead_matches_the_original_lead_in_lufs():
    """The two leads differ in spectrum (K-weighting counts the bright one louder) and in level; plain RMS
    matching would leave them several LU apart, the mixer must bring the converted one within 0.5 LU."""
    import pyloudnorm

    from core.mix import active_rms_db, mix_stems

    original = _phrases(harmonic(196, 8, amp=0.25), seed=1)  # dark: energy at 196 Hz
    bright = harmonic(1760, 8, amp=0.02)[:, :1]  # bright, quiet, mono-like
    converted = _phrases(np.repeat(bright, 2, axis=1), seed=2)
    meter = pyloudnorm.Meter(SR)
    rms_gain = active_rms_db(original) - active_rms_db(converted)
    rms_matched = meter.integrated_loudness(converted.astype(np.float64) * 10 ** (rms_gain / 20))
    assert abs(rms_matched - meter.integrated_loudness(original)) > 2.0  # RMS is not loudness here
    _, figures = mix_stems(sine(110, 8, 0.05), vocals=converted, reference_vocals=original)
    lead = converted.astype(np.float64) * 10 ** (figures.vocal_match_db / 20)
    assert meter.integrated_loudness(lead) == pytest.approx(meter.integrated_loudness(original), abs=0.5)
    assert figures.vocal_lufs == pytest.approx(meter.integrated_loudness(lead), abs=0.01)
    assert figures.reference_vocal_lufs == pytest.approx(meter.integrated_loudness(original), abs=0.01)


def test_true_peak_of_a_hot_mix_stays_below_minus_1_dbtp():
    """A loud mix whose inter-sample peaks pass its sample peaks (a tone at a quarter of the sample rate, 45°
    off the samples, reads 3 dB low on samples) plus a dense harmonic bed, pushed +6 dB."""
    from core.mix import mix_stems, true_peak_db

    t = np.arange(4 * SR) / SR
    quarter = 0.6 * np.sin(2 * np.pi * (SR / 4) * t + np.pi / 4)
    inst = harmonic(110, 4, amp=0.5) + np.stack([quarter, quarter], 1).astype(np.float32)
    vocals = _phrases(harmonic(330, 4, amp=0.6), seed=3)
    mix, figures = mix_stems(inst, vocals=vocals, reference_vocals=vocals,
                             settings=MixSettings(vocal_gain_db=6.0, instrumental_gain_db=6.0))  # fmt: skip
    assert fft_true_peak_db(inst * 2) > 3.0  # it really is far over
    assert fft_true_peak_db(mix) <= -1.0 + 0.02
    assert figures.true_peak_db <= -1.0
    assert figures.true_peak_db == pytest.approx(fft_true_peak_db(mix), abs=0.1)
    assert true_peak_db(mix) == figures.true_peak_db
    assert len(mix) == len(inst)


def test_limiter_leaves_a_mix_below_its_threshold_untouched():
    from core.mix import mix_stems

    inst = harmonic(220, 3, amp=0.1)
    mix, figures = mix_stems(inst)
    np.testing.assert_array_equal(mix, inst)
    assert figures.true_peak_db < -6
    assert -40 < figures.lufs < -10


@pytest.mark.parametrize("key", [3.0, -5.0, 0.5])
def test_key_shift_of_a_harmonic_instrumental_within_5_cents(key):
    """Measured with a zero-padded FFT (0.7 Hz bins before interpolation) and a log-parabola peak fit."""
    from core.mix import mix_stems

    inst = harmonic(220, 4)
    mix, _ = mix_stems(inst, settings=MixSettings(key=key))

    assert abs(cents(precise_fundamental(inst, hi=600), 220)) < 0.5  # the measure itself is exact on the input
    assert cents(precise_fundamental(mix, hi=600), 220) == pytest.approx(100 * key, abs=5)
