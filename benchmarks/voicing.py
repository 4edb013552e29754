"""Voicing decision of the F0 stage: raw pitch accuracy, voicing recall and false alarms, before/after.

    python benchmarks/voicing.py                         # synthetic set + hand-labelled vocadito stretches
    python benchmarks/voicing.py --annotation F0.csv     # also a clip with a full F0 annotation (time,Hz rows)
    python benchmarks/voicing.py --method rmvpe          # with the real pretrained/rmvpe/rmvpe.pt installed

"Before" is the plain salience threshold the F0 methods used until now (FCPE 0.006, RMVPE 0.03);
"after" is the default voicing decision of :mod:`core.features.f0.voicing`. Pitch comes from FCPE's
real weights (bundled in the ``torchfcpe`` wheel). RMVPE's real weights are not available here, so its
path is not measured.

Evaluation data:

* **synthetic**: ``make_synthetic_singing.py`` clips (exact F0 known; rests hold breaths and fricatives)
  with more unvoiced events added in the rests by :func:`add_unvoiced_events`: inhaled breaths,
  consonant-like noise bursts ("s", "sh", "t", "k") before note onsets, and room noise over the whole clip.
* **vocadito stretches**: ``benchmarks/voicing_labels.json`` marks stretches of the vocadito clips as
  sung (voiced) or not (rests, breaths, consonants), labelled by hand from spectrograms and listening;
  frames outside a stretch are not scored. These score voicing only (no pitch truth).
* ``--annotation``: a CSV of ``time,Hz`` rows (0 Hz = unvoiced) for one clip, e.g. vocadito's own F0
  annotation; scores pitch too.

Metrics (as in mir_eval's melody metrics): *RPA* = share of truly voiced frames whose estimated pitch
(also in frames the decision calls unvoiced) is within 50 cents; *recall* = share of truly voiced frames
called voiced; *false alarm* = share of truly unvoiced frames called voiced.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import SHARED  # noqa: E402  (importable once the repository root is on sys.path)

SR = 44100
HOP = 512  # the mel grid of make_synthetic_singing.py and of estimate_f0
LABELS = Path(__file__).with_name("voicing_labels.json")
# (seed, extra generator arguments): a low and a high singer, different melodies
SYNTHETIC_CLIPS = (
    (11, ["--f0-min", "90", "--f0-max", "330", "--breath", "2.0"]),
    (12, ["--f0-min", "180", "--f0-max", "700", "--formant-shift", "1.12", "--breath", "2.0"]),
    (13, ["--f0-min", "120", "--f0-max", "450", "--breath", "1.5", "--vibrato-cents", "70"]),
)


@dataclass(frozen=True)
class Scores:
    rpa: float
    recall: float
    false_alarm: float
    voiced_frames: int
    unvoiced_frames: int

    def row(self) -> str:
        rpa = "—" if np.isnan(self.rpa) else f"{self.rpa:.3f}"
        return f"{rpa} | {self.recall:.3f} | {self.false_alarm:.3f} | {self.voiced_frames} / {self.unvoiced_frames}"


def scores(pitch: np.ndarray, voiced: np.ndarray, truth: np.ndarray, scored: np.ndarray | None = None) -> Scores:
    """Melody metrics of an estimate against ``truth`` (Hz, 0 = unvoiced, NaN = no pitch truth but voiced).

    ``pitch``: the estimator's pitch in every frame (Hz, used for RPA also where ``voiced`` is False);
    ``voiced``: the voicing decision; ``scored``: frames to count (default all).
    """
    truth = np.asarray(truth, dtype=np.float64)
    scored = np.ones(truth.shape, dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    ref_voiced = scored & ((truth > 0) | np.isnan(truth))
    ref_unvoiced = scored & (truth == 0)
    with_pitch = ref_voiced & ~np.isnan(truth)
    if with_pitch.any():
        est = np.maximum(np.asarray(pitch, dtype=np.float64)[with_pitch], 1e-3)
        rpa = float((1200 * np.abs(np.log2(est / truth[with_pitch])) < 50).mean())
    else:
        rpa = float("nan")
    v = np.asarray(voiced, dtype=bool)
    recall = float((v & ref_voiced).sum() / max(1, ref_voiced.sum()))
    false_alarm = float((v & ref_unvoiced).sum() / max(1, ref_unvoiced.sum()))
    return Scores(rpa, recall, false_alarm, int(ref_voiced.sum()), int(ref_unvoiced.sum()))


def _shaped_noise(rng: np.random.Generator, n: int, lo: float, hi: float, tilt_db_per_oct: float = 0.0) -> np.ndarray:
    """Unit-RMS noise band-limited to [lo, hi] Hz with a spectral tilt."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    gain = ((f >= lo) & (f <= hi)) * (np.maximum(f, 1.0) / 1000.0) ** (tilt_db_per_oct / 6.02)
    x = np.fft.irfft(spec * gain, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _rests(truth: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """Runs of unvoiced frames of at least ``min_frames`` (start, stop) on the truth grid."""
    unvoiced = np.concatenate([[False], truth == 0, [False]])
    edges = np.flatnonzero(np.diff(unvoiced.astype(np.int8)))
    return [(a, b) for a, b in zip(edges[0::2], edges[1::2], strict=True) if b - a >= min_frames]


def add_unvoiced_events(wav: np.ndarray, truth: np.ndarray, seed: int = 0, room_noise_db: float = -40.0,
                        breath_db: float = -22.0, burst_db: float = -14.0) -> np.ndarray:  # fmt: skip
    """``wav`` with breaths, consonant-like bursts and room noise added where ``truth`` is unvoiced.

    Levels are relative to the RMS of the sung (voiced) frames. Breaths and bursts stay one frame clear of
    voiced frames, so the truth stays exact: inhaled breaths (broadband noise shaped like a vowel, 200–600 ms
    swells) fill long rests, and a consonant burst (a hissing "s"/"sh" of 60–150 ms, or a "t"/"k" click of
    15–30 ms with its aspiration) sits at the end of most rests, right before the next note.
    """
    rng = np.random.default_rng(seed)
    out = np.asarray(wav, dtype=np.float64).copy()
    sample_voiced = np.repeat(truth > 0, HOP)[: out.size]
    sung_rms = float(np.sqrt(np.mean(out[: sample_voiced.size][sample_voiced] ** 2))) if sample_voiced.any() else 0.1
    for start, stop in _rests(truth, 8):
        a, b = (start + 1) * HOP, (stop - 1) * HOP  # one frame clear of the notes around
        a, b = max(0, a - HOP // 2), min(out.size, b - HOP // 2)
        if b - a < 4 * HOP:
            continue
        length = b - a
        if length > int(0.25 * SR) and rng.random() < 0.8:  # an inhaled breath in the first part of the rest
            n = int(min(length * 0.6, rng.uniform(0.2, 0.6) * SR))
            env = np.sin(np.pi * np.linspace(0, 1, n)) ** 1.5
            lo, hi = rng.uniform(300, 700), rng.uniform(3000, 7000)
            gain = sung_rms * 10 ** ((breath_db + rng.uniform(-4, 4)) / 20)
            out[a : a + n] += gain * env * _shaped_noise(rng, n, lo, hi, tilt_db_per_oct=-3.0)
        if rng.random() < 0.85:  # a consonant right before the next note
            if rng.random() < 0.6:  # fricative: "s" (high band) or "sh" (lower band)
                n = int(min(length * 0.5, rng.uniform(0.06, 0.15) * SR))
                lo, hi = (4000, 11000) if rng.random() < 0.5 else (1800, 7000)
                env = np.sin(np.pi * np.linspace(0, 1, n)) ** 0.7
            else:  # plosive: a click and a short aspiration
                n = int(min(length * 0.5, rng.uniform(0.015, 0.03) * SR))
                lo, hi = rng.uniform(500, 2000), 10000
                env = np.exp(-np.linspace(0, 6, n))
            gain = sung_rms * 10 ** ((burst_db + rng.uniform(-4, 4)) / 20)
            out[b - n : b] += gain * env * _shaped_noise(rng, n, lo, hi)
    room = _shaped_noise(rng, out.size, 20, 16000, tilt_db_per_oct=-4.5)  # HVAC-like rumble-heavy room noise
    out += sung_rms * 10 ** (room_noise_db / 20) * room
    return out.astype(np.float32)


def synthetic_clip(folder: Path, seed: int, extra: list[str], seconds: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """(waveform with added unvoiced events, truth F0 on the mel grid) of one generated clip."""
    import soundfile as sf

    script = SHARED / "data" / "make_synthetic_singing.py"
    prefix = folder / f"voicing_seed{seed}"
    subprocess.run([sys.executable, str(script), "--out", str(prefix), "--seed", str(seed), "--duration", str(seconds),
                    *extra], check=True, capture_output=True)  # fmt: skip
    wav, sr = sf.read(f"{prefix}.wav", dtype="float32")
    assert sr == SR
    truth = np.load(f"{prefix}_f0.npy").astype(np.float64)
    return add_unvoiced_events(wav, truth, seed=seed), truth


def estimate(wav: np.ndarray, voicing: str, method: str = "fcpe",
             candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(pitch in every frame, voicing decision) on the mel grid, with ``voicing`` "threshold" or "auto".

    ``candidates``: :func:`core.features.f0.pitch_candidates` of ``wav`` if already computed (saves a run).
    """
    from core.features.f0 import estimate_f0, pitch_candidates

    f0 = estimate_f0(wav, method, voicing=voicing)
    if candidates is None:
        candidates = pitch_candidates(wav, method)
    return np.where(f0 > 0, f0, candidates), f0 > 0


def label_truth(labels: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth: NaN where sung, 0 where not; scored mask) on the mel grid from a clip's labelled stretches."""
    times = np.arange(n) * HOP / SR
    truth = np.zeros(n)
    scored = np.zeros(n, dtype=bool)
    for start, stop, kind in labels["stretches"]:
        inside = (times >= start) & (times < stop)
        scored |= inside
        truth[inside] = np.nan if kind == "voiced" else 0.0
    return truth, scored


def annotation_truth(path: Path, n: int) -> np.ndarray:
    """A ``time,Hz`` CSV sampled at the mel-grid frame times (nearest row)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    times = np.arange(n) * HOP / SR
    idx = np.clip(np.searchsorted(rows[:, 0], times), 1, len(rows) - 1)
    left = np.abs(times - rows[idx - 1, 0]) <= np.abs(rows[idx, 0] - times)
    return rows[np.where(left, idx - 1, idx), 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotation", type=Path, help="time,Hz CSV of the clip given by --annotated-clip")
    parser.add_argument("--annotated-clip", type=Path, default=SHARED / "data/real/singing/vocadito_1.wav")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each synthetic clip (default 8)")
    parser.add_argument(
        "--method",
        default="fcpe",
        choices=("fcpe", "rmvpe"),
        help="F0 method (rmvpe needs pretrained/rmvpe/rmvpe.pt, not available here)",
    )
    args = parser.parse_args()

    import soundfile as sf
    import torch

    from core.features.f0 import pitch_candidates

    torch.set_num_threads(1)
    sets: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, extra in SYNTHETIC_CLIPS:
            wav, truth = synthetic_clip(Path(tmp), seed, extra, args.seconds)
            sets.append((f"synthetic seed {seed}", wav, truth, None))
    labels = json.loads(LABELS.read_text())
    for name, clip in labels["clips"].items():
        wav, sr = sf.read(SHARED / "data/real/singing" / name, dtype="float32")
        assert sr == SR
        truth, scored = label_truth(clip, wav.size // HOP + 1)
        sets.append((f"{name} (labelled stretches)", wav, truth, scored))
    if args.annotation:
        wav, sr = sf.read(args.annotated_clip, dtype="float32")
        sets.append(
            (
                f"{args.annotated_clip.name} (full annotation)",
                wav,
                annotation_truth(args.annotation, wav.size // HOP + 1),
                None,
            )
        )

    print("| clip | decision | RPA | recall | false alarm | voiced / unvoiced frames |")
    print("|---|---|---|---|---|---|")
    pooled: dict[str, list] = {"threshold": [], "auto": []}
    for name, wav, truth, scored in sets:
        candidates = pitch_candidates(wav, args.method)
        for voicing in ("threshold", "auto"):
            pitch, voiced = estimate(wav, voicing, args.method, candidates)
            s = scores(pitch, voiced, truth, scored)
            if name.startswith("synthetic"):
                pooled[voicing].append((pitch, voiced, truth))
            label = "before (plain threshold)" if voicing == "threshold" else "after (voicing decision)"
            print(f"| {name} | {label} | {s.row()} |")
    for voicing, parts in pooled.items():
        pitch, voiced, truth = (np.concatenate(x) for x in zip(*parts, strict=True))
        print(f"| all synthetic | {voicing} | {scores(pitch, voiced, truth).row()} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
