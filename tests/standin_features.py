"""Stand-in features for training tests and benchmarks, written through the real Extract stage.

STAND-IN, not ContentVec/RMVPE: ``run_extract`` is given two substitute models —
* content units = a fixed random projection (seed 0) of a 16 kHz log-mel at 50 frames/s, so they still
  carry the phonetic/spectral signal the decoder needs to learn;
* F0 = WORLD DIO + StoneMask (pyworld) on the 44.1 kHz chunk.
Loudness/volume and the 128-bin log-mel are the project's real functions, and the files, stats.json and
``load_features`` are the real Extract stage's, so training reads exactly what it reads in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from core.config import save_json
from core.experiment import Experiment
from core.features.extract import Extractors
from core.features.loudness import loudness_db
from tests.conftest import REAL

SR = 44100
LJSPEECH = REAL / "speech_ljspeech"


def _interpolate_unvoiced(f0: np.ndarray) -> np.ndarray:
    voiced = np.flatnonzero(f0 > 0)
    if voiced.size == 0:
        return np.zeros_like(f0)
    return np.interp(np.arange(f0.size), voiced, f0[voiced]).astype(np.float32)


@dataclass
class Fakes:
    """Counting stand-ins for the two models of the Extract stage (``run_extract(..., extractors=...)``): the content
    units are signal statistics through a fixed projection, F0 is 200 Hz where the audio is louder than -40 dB (or a
    known ``oracle_f0``); ``f0_scale`` makes F0 depend on the 'method'."""

    dim: int = 768
    f0_scale: float = 1.0
    fail_content_at: int | None = None  # raise KeyboardInterrupt on this content call (1-based)
    oracle_f0: dict[int, np.ndarray] = field(default_factory=dict)  # n_samples -> known F0
    loads: dict[str, int] = field(default_factory=lambda: {"content": 0, "f0": 0})
    calls: dict[str, int] = field(default_factory=lambda: {"content": 0, "f0": 0})
    inputs: list[int] = field(default_factory=list)  # lengths seen by the content encoder

    def extractors(self) -> Extractors:
        from core.features.contentvec import align_to_frames
        from core.features.mel import log_mel, n_frames

        return Extractors(
            content=self._content_factory,
            f0=self._f0_factory,
            mel=log_mel,
            n_frames=n_frames,
            align=align_to_frames,
            continuous_f0=_interpolate_unvoiced,
        )

    def _content_factory(self):
        self.loads["content"] += 1
        proj = np.random.default_rng(0).standard_normal((2, self.dim)).astype(np.float32)

        def content(wav16k: np.ndarray) -> np.ndarray:
            self.calls["content"] += 1
            if self.fail_content_at == self.calls["content"]:
                raise KeyboardInterrupt
            # A real encoder needs 400 samples and finite input; so does this fake.
            assert wav16k.size >= 400 and np.isfinite(wav16k).all()
            self.inputs.append(wav16k.size)
            frames = (wav16k.size - 400) // 320 + 1
            x = wav16k[: frames * 320].reshape(frames, 320)
            stats = np.stack([np.sqrt((x**2).mean(axis=1)), np.abs(np.diff(x, axis=1)).mean(axis=1)], axis=1)
            return stats @ proj

        return content

    def _f0_factory(self):
        self.loads["f0"] += 1

        def f0(wav44k: np.ndarray) -> np.ndarray:
            self.calls["f0"] += 1
            assert np.isfinite(wav44k).all()
            t = wav44k.size // 512 + 1
            if wav44k.size in self.oracle_f0:
                return self.oracle_f0[wav44k.size] * self.f0_scale
            level = loudness_db(wav44k)
            return np.where(level > -40, 200.0 * self.f0_scale, 0.0)[:t]

        return f0


def standin_extractors(dim: int = 768):
    import librosa

    from core.features.contentvec import align_to_frames
    from core.features.extract import Extractors
    from core.features.mel import log_mel, n_frames

    def content_factory():
        proj = np.random.default_rng(0).standard_normal((80, dim)).astype(np.float32) / np.sqrt(80)
        basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80)

        def content(wav16k: np.ndarray) -> np.ndarray:
            frames = max(1, (wav16k.size - 400) // 320 + 1)
            spec = np.abs(librosa.stft(wav16k, n_fft=1024, hop_length=320, center=True))[:, :frames]
            logmel = np.log(np.maximum(basis @ spec, 1e-5)).T  # [frames, 80]
            return ((logmel + 5.0) / 3.0) @ proj

        return content

    def f0_factory():
        from core.features.f0.world import import_pyworld

        pyworld = import_pyworld()

        def f0(wav44k: np.ndarray) -> np.ndarray:
            x = wav44k.astype(np.float64)
            period = 1000.0 * 512 / SR
            hz, t = pyworld.dio(x, SR, f0_floor=65.0, f0_ceil=800.0, frame_period=period)
            return pyworld.stonemask(x, hz, t, SR)

        return f0

    return Extractors(content=content_factory, f0=f0_factory, mel=log_mel, n_frames=n_frames, align=align_to_frames,
                      continuous_f0=_interpolate_unvoiced)  # fmt: skip


def build_standin_experiment(exp: Experiment, n_files: int = 12, max_seconds: float = 6.0, dim: int = 768,
                             source: Path = LJSPEECH) -> Experiment:  # fmt: skip
    """Write ``n_files`` LJSpeech clips as dataset chunks of ``exp`` and extract stand-in features."""
    from core.features.extract import ExtractConfig, run_extract

    exp.gt_wavs.mkdir(parents=True, exist_ok=True)
    exp.wavs16k.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.wav"))[:n_files]:
        wav, sr = sf.read(path, dtype="float32")
        wav44 = soxr.resample(wav, sr, SR)[: int(max_seconds * SR)]
        sf.write(exp.gt_wavs / path.name, wav44, SR, subtype="PCM_16")
        sf.write(exp.wavs16k / path.name, soxr.resample(wav44, SR, 16000), 16000, subtype="PCM_16")
    save_json(exp.config, {"dataset": {"note": "LJSpeech clips written by tests/standin_features.py"}})
    encoder = "contentvec768l12" if dim == 768 else "contentvec256l9"
    run_extract(exp, ExtractConfig(f0_method="harvest", encoder=encoder, device="cpu"), extractors=standin_extractors(dim))
    return exp
