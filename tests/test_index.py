"""Retrieval index: build from extracted features, blend, CLI, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from core.experiment import Experiment
from core.features.extract import ExtractConfig, Extractors, run_extract
from core.index import RetrievalIndexError, build_index, load_index, make_faiss_index
from tests.conftest import REAL, ROOT

DIM = 16


def _content(wav16k: np.ndarray) -> np.ndarray:
    """Deterministic 16-d 'units' per 20 ms frame from simple signal statistics (no model needed)."""
    frames = max(1, (wav16k.size - 400) // 320 + 1)
    x = np.resize(wav16k, frames * 320).reshape(frames, 320)
    spectrum = np.abs(np.fft.rfft(x, axis=1))[:, 1:DIM + 1]
    return np.log1p(spectrum).astype(np.float32)


def _extractors() -> Extractors:
    from core.features.contentvec import align_to_frames
    from core.features.mel import log_mel, n_frames

    def f0_factory():
        return lambda wav44k: np.full(wav44k.size // 512 + 1, 220.0, dtype=np.float32)

    return Extractors(content=lambda: _content, f0=f0_factory, mel=log_mel, n_frames=n_frames,
                      align=align_to_frames, continuous_f0=lambda f0: f0)  # fmt: skip


@pytest.fixture
def indexed_exp(tmp_logs: Path) -> Experiment:
    exp = Experiment.open("voice")
    exp.gt_wavs.mkdir(parents=True)
    exp.wavs16k.mkdir(parents=True)
    real = REAL / "speech_ljspeech"
    for i in (1, 2, 3):
        wav, sr = sf.read(real / f"LJ001-{i:04d}.wav", dtype="float32")
        wav44 = soxr.resample(wav, sr, 44100).astype(np.float32)
        sf.write(exp.gt_wavs / f"c{i}.wav", wav44, 44100)
        sf.write(exp.wavs16k / f"c{i}.wav", soxr.resample(wav44, 44100, 16000), 16000)
    run_extract(exp, ExtractConfig(f0_method="fcpe", device="cpu"), extractors=_extractors())
    return exp


def test_build_and_blend(indexed_exp: Experiment) -> None:
    folder = build_index("voice")
    assert (folder / "units.index").is_file() and (folder / "units.npy").is_file()
    idx = load_index("voice")
    assert idx.dim == DIM and idx.meta["kind"] == "flat" and idx.meta["vectors"] == len(idx.vectors) > 100

    # A training vector retrieves itself: blending at any rate leaves it (almost) unchanged.
    own = idx.vectors[:50]
    np.testing.assert_allclose(idx.blend(own, 1.0), own, atol=1e-3)
    # A foreign vector moves towards the training set by exactly the rate.
    foreign = np.full((4, DIM), 10.0, dtype=np.float32)
    full = idx.blend(foreign, 1.0)
    half = idx.blend(foreign, 0.5)
    np.testing.assert_allclose(half, 0.5 * foreign + 0.5 * full, atol=1e-4)
    nearest_dist = ((full[:, None, :] - idx.vectors[None]) ** 2).sum(-1).min(axis=1)
    assert np.all(np.linalg.norm(full - foreign, axis=1) > 1.0) and np.all(np.isfinite(nearest_dist))
    assert idx.blend(foreign, 0.0) is not None and np.array_equal(idx.blend(foreign, 0.0), foreign)


def test_dimension_mismatch_and_missing_index(indexed_exp: Experiment) -> None:
    with pytest.raises(RetrievalIndexError, match="python -m core index --exp voice"):
        load_index("voice")
    build_index("voice")
    with pytest.raises(RetrievalIndexError, match="16-d"):
        load_index("voice").blend(np.zeros((3, 768), dtype=np.float32), 0.5)


def test_large_sets_use_ivf() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((60_000, 8)).astype(np.float32)
    index, kind = make_faiss_index(vectors)
    assert kind.startswith("ivf")
    _, found = index.search(vectors[:20], 1)
    assert (found[:, 0] == np.arange(20)).mean() >= 0.9  # approximate search still finds itself


def test_cli(indexed_exp: Experiment, tmp_logs: Path) -> None:
    env = {"SVCOVER_LOGS": str(tmp_logs), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "core", "index", "--exp", "voice"], cwd=ROOT, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "retrieval index" in out.stdout and "16-d" in out.stdout
    out = subprocess.run([sys.executable, "-m", "core", "index", "--exp", "nobody"], cwd=ROOT, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1 and "no such experiment" in out.stderr
