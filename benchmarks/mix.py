"""The measured mix: lead loudness match (LU error), cover true peak, key-shift accuracy, and the mix's time.

    python benchmarks/mix.py

* Loudness match: the original lead is real a cappella singing (vocadito_1); the "converted" lead is the
  same singing made brighter (+12 dB/decade pre-emphasis) and 12 dB quieter, so RMS and loudness
  disagree. Reports the LU error after RMS matching (before) and after LUFS matching (now).
* True peak: the real 133 s song (``Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg``) as the instrumental, pushed
  +6 dB, plus the lead: the cover's true peak by the mixer's 4x measure and by an independent 8x FFT
  interpolation, and the sample peak.
* Key shift: a steady harmonic instrumental (220 Hz, 6 partials) shifted by -7..+7 semitones; the error
  of the fundamental in cents (zero-padded FFT, log-parabolic peak fit).
* Time of ``mix_stems`` on the 133 s song (process CPU and wall time).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import SHARED  # noqa: E402  (importable once the repository root is on sys.path)
from tests.signals import SR, fft_true_peak_db, precise_fundamental  # noqa: E402


def _stereo(x: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(x, np.float32)[:, None], 2, axis=1) if x.ndim == 1 else x.astype(np.float32)


def main() -> int:
    import soundfile as sf
    from scipy.signal import lfilter

    from core.mix import MixSettings, active_rms_db, integrated_lufs, mix_stems, true_peak_db

    lead, sr = sf.read(SHARED / "data/real/singing/vocadito_1.wav", dtype="float32")
    assert sr == SR
    original = _stereo(lead)
    bright = lfilter([1.0, -0.95], [1.0], lead).astype(np.float32)
    bright *= 10 ** (-12 / 20) * np.sqrt(np.mean(lead**2) / np.mean(bright**2))
    converted = _stereo(bright)
    ref = integrated_lufs(original)
    rms_gain = active_rms_db(original) - active_rms_db(converted)
    rms_error = integrated_lufs(converted * 10 ** (rms_gain / 20)) - ref
    song, sr = sf.read(
        SHARED / "data/real/mixed/Karissa_Hobbs_-_Lets_Go_Fishin.hq.ogg", dtype="float32", always_2d=True
    )
    assert sr == SR
    vocal = np.zeros_like(song)
    vocal[: len(converted)] = converted
    reference = np.zeros_like(song)
    reference[: len(original)] = original
    t0, c0 = time.perf_counter(), time.process_time()
    mix, figures = mix_stems(song, vocals=vocal, reference_vocals=reference,
                             settings=MixSettings(instrumental_gain_db=6.0))  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    lufs_error = integrated_lufs(converted * 10 ** (figures.vocal_match_db / 20)) - ref
    print("| figure | result |")
    print("|---|---|")
    print(f"| lead loudness error, RMS match (before) | {rms_error:+.2f} LU |")
    print(f"| lead loudness error, LUFS match (now) | {lufs_error:+.2f} LU |")
    print(f"| song +6 dB before the limiter: true peak (8x FFT) | {fft_true_peak_db(song * 2):+.2f} dBTP |")
    print(f"| cover true peak: mixer (4x) / independent 8x FFT | {figures.true_peak_db:+.2f} / "
          f"{fft_true_peak_db(mix):+.2f} dBTP |")  # fmt: skip
    print(f"| cover sample peak | {20 * np.log10(figures.peak):+.2f} dBFS |")
    print(f"| cover loudness | {figures.lufs:.2f} LUFS |")
    print(f"| mix_stems on {len(song) / SR:.0f} s stereo: wall / CPU | {wall:.1f} s / {cpu:.1f} s |")
    assert true_peak_db(mix) == figures.true_peak_db
    t = np.arange(4 * SR) / SR
    inst = _stereo(sum((0.3 / k) * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 7)))
    errors = []
    for key in (-7, -5, -2, -0.5, 0.5, 2, 3, 5, 7):
        shifted, _ = mix_stems(inst, settings=MixSettings(key=key))
        errors.append(1200 * np.log2(precise_fundamental(shifted) / precise_fundamental(inst)) - 100 * key)
    print(f"| key shift -7..+7 st (9 keys): largest error | {max(abs(e) for e in errors):.3f} cents |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
