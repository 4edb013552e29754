"""The 44.1 kHz log-mel must reproduce the NSF-HiFiGAN front end's reference outputs, and follow the
project's frame grid (N // 512 + 1 frames)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from core.features.mel import LOG_FLOOR, BadAudioError, fit_frames, log_mel, mel_basis, n_frames
from tests.conftest import REFERENCE, ROOT

MEL_REF = REFERENCE / "mel44k"


@pytest.mark.parametrize("name", ["case_a_vibrato", "case_b_glide_gap"])
def test_reference_cases(name: str) -> None:
    case = np.load(MEL_REF / f"{name}.npz")
    raw = log_mel(case["audio"], align=False)
    assert raw.shape == case["mel"].shape == (128, 172)
    assert raw.dtype == np.float32
    assert np.abs(raw - case["mel"]).max() <= 1e-3
    aligned = log_mel(case["audio"])
    assert aligned.shape == (128, n_frames(case["audio"].size)) == (128, 173)
    np.testing.assert_array_equal(aligned[:, :172], raw)
    np.testing.assert_array_equal(aligned[:, 172], raw[:, 171])  # grid frame past the vocoder's: repeated


def test_mel_basis_matches_reference_and_is_cached() -> None:
    ref = np.load(MEL_REF / "mel_basis.npz")["mel_basis"]
    assert np.abs(mel_basis() - ref).max() <= 1e-6
    assert mel_basis() is mel_basis()


def test_frame_count_convention() -> None:
    assert [n_frames(n) for n in (0, 1, 511, 512, 513, 88200)] == [1, 1, 1, 2, 2, 173]
    with pytest.raises(ValueError):
        n_frames(-1)


@pytest.mark.parametrize("n", [0, 1, 100, 511, 768, 769, 2048, 5000])
def test_short_chunks_have_grid_frames(n: int) -> None:
    rng = np.random.default_rng(n)
    mel = log_mel((0.1 * rng.standard_normal(n)).astype(np.float32))
    assert mel.shape == (128, n_frames(n))
    assert np.isfinite(mel).all()


def test_silence_is_the_log_floor() -> None:
    mel = log_mel(np.zeros(44100, dtype=np.float32))
    np.testing.assert_allclose(mel, LOG_FLOOR, atol=1e-6)


def test_louder_signal_raises_mel_by_log_gain() -> None:
    t = np.arange(44100) / 44100
    wav = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    band = np.argmax(log_mel(wav)[:, 40])
    diff = log_mel(2 * wav)[band, 10:-10] - log_mel(wav)[band, 10:-10]
    np.testing.assert_allclose(diff, np.log(2.0), atol=1e-4)


def test_bad_input() -> None:
    wav = np.zeros(4096, dtype=np.float32)
    wav[100] = np.nan
    with pytest.raises(BadAudioError, match="NaN or infinite"):
        log_mel(wav)
    wav[100] = np.inf
    with pytest.raises(BadAudioError, match="NaN or infinite"):
        log_mel(wav)
    with pytest.raises(BadAudioError, match="mono"):
        log_mel(np.zeros((2, 4096), dtype=np.float32))
    assert log_mel(np.zeros((4096, 1))).shape == (128, n_frames(4096))  # a [N, 1] column is fine
    with pytest.raises(BadAudioError, match="float samples"):
        log_mel(np.zeros(4096, dtype=np.int16))


def test_fit_frames() -> None:
    x = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(fit_frames(x, 5), [[0, 1, 2, 2, 2], [3, 4, 5, 5, 5]])
    np.testing.assert_array_equal(fit_frames(x, 2), [[0, 1], [3, 4]])


def test_import_is_light() -> None:
    code = "import sys, core.features.mel, core.features.f0; print('torch' in sys.modules, 'librosa' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
