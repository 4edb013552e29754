"""Frame loudness on the mel grid: RMS dB (2048 window), its normalised forms, Diffusion-SVC volume."""

from __future__ import annotations

import numpy as np
import pytest

from core.features.loudness import (
    SILENCE_DB,
    frame_rms,
    frame_volume,
    loudness_db,
    n_loudness_frames,
    normalize_loudness,
    standardize_loudness,
)

SR = 44100


def _volume_reference_torch(wav: np.ndarray, hop: int = 512) -> np.ndarray:
    """The Diffusion-SVC definition written with torch ops: square, reflect pad 256/256, unfold, mean, sqrt."""
    import torch

    x = torch.from_numpy(wav.astype(np.float32))[None, None, :] ** 2
    x = torch.nn.functional.pad(x, (hop // 2, (hop + 1) // 2), mode="reflect")
    n_frames = wav.size // hop + 1
    frames = x[0, 0, : n_frames * hop].reshape(n_frames, hop)
    return torch.sqrt(frames.mean(dim=1)).numpy()


@pytest.mark.parametrize("n", [512 * 20, 512 * 20 + 1, 512 * 20 + 511, 44100, 3000])
def test_frame_counts_follow_the_mel_grid(n: int) -> None:
    wav = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    t = n // 512 + 1
    assert n_loudness_frames(n) == t
    assert frame_volume(wav).shape == (t,)
    assert loudness_db(wav).shape == (t,)


@pytest.mark.parametrize("n", [44100, 44100 + 300, 5000])
def test_volume_matches_the_diffusion_svc_definition(n: int) -> None:
    rng = np.random.default_rng(n)
    # Varying envelope so that a shifted window or a wrong padding mode would show.
    wav = (rng.standard_normal(n) * np.linspace(0.01, 0.8, n)).astype(np.float32)
    ours = frame_volume(wav)
    ref = _volume_reference_torch(wav)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_loudness_of_a_sine_is_its_rms_in_db() -> None:
    t = np.arange(SR * 2) / SR
    amp = 0.5
    wav = (amp * np.sin(2 * np.pi * 441.0 * t)).astype(np.float32)
    db = loudness_db(wav)
    expected = 20 * np.log10(amp / np.sqrt(2))  # about -9.03 dB
    inner = db[4:-4]  # edge frames see reflection padding
    assert np.abs(inner - expected).max() < 0.05
    # The 2048 window is centred on sample 512 n: compare one frame with a direct computation.
    n = 37
    direct = np.sqrt(np.mean(wav[512 * n - 1024 : 512 * n + 1024].astype(np.float64) ** 2))
    assert frame_rms(wav)[n] == pytest.approx(direct, rel=1e-6)


def test_loudness_steps_with_a_gain_change() -> None:
    rng = np.random.default_rng(3)
    wav = rng.standard_normal(SR).astype(np.float32) * 0.1
    wav[SR // 2 :] *= 0.1  # -20 dB
    db = loudness_db(wav)
    first, second = db[5:35].mean(), db[-35:-5].mean()
    assert first - second == pytest.approx(20.0, abs=0.5)


def test_silence_nan_and_tiny_inputs_stay_finite() -> None:
    silent = np.zeros(SR // 2, dtype=np.float32)
    assert np.all(loudness_db(silent) == SILENCE_DB)
    assert np.all(frame_volume(silent) == 0.0)

    broken = np.random.default_rng(1).standard_normal(SR // 2).astype(np.float32) * 0.1
    broken[1000:1100] = np.nan
    broken[5000] = np.inf
    for values in (loudness_db(broken), frame_volume(broken)):
        assert np.isfinite(values).all()

    for n in (0, 1, 2, 100, 511):
        wav = np.full(n, 0.3, dtype=np.float32)
        db, vol = loudness_db(wav), frame_volume(wav)
        assert db.shape == vol.shape == (n // 512 + 1,)
        assert np.isfinite(db).all() and np.isfinite(vol).all()


def test_normalised_loudness() -> None:
    db = np.array([-120.0, SILENCE_DB, -50.0, 0.0, 6.0], dtype=np.float32)
    norm = normalize_loudness(db)
    np.testing.assert_allclose(norm, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    z = standardize_loudness(np.array([-30.0, -20.0, -10.0]), mean=-20.0, std=10.0)
    np.testing.assert_allclose(z, [-1.0, 0.0, 1.0], atol=1e-6)
