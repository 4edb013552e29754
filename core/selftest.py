"""Self-test of every installed model: ``python -m core doctor --self-test`` and the Models tab.

Each installed model runs on a known input made here in code (no audio file is needed, so it works on a
user's machine) and its output is checked against a plausibility bound. A wrong file, a wrong mel
convention or a half-converted checkpoint fails here, naming the model and the measured number, instead
of showing up as bad audio at the end of a cover. The bounds and why they are where they are: docs/selftest.md.

The known inputs are source-filter "vowels": a harmonic source (harmonic ``k`` at amplitude ``1/k``, the
-6 dB/octave tilt of a glottal source with lip radiation) shaped by the formant resonances of a vowel,
with a known F0 contour. Models:

* ``rmvpe``, ``fcpe`` (F0): a glide over 1.5 octaves between stretches of near-silence; median error
  <= 20 cents on the voiced frames, >= 90 % of them voiced, <= 10 % of the silent frames voiced.
* ``nsf_hifigan`` (vocoder): re-synthesis of a vowel from its own mel; mean absolute log-mel distance
  (natural log, bands more than 60 dB below the loudest ignored) <= 0.6.
* ``contentvec`` (content encoder): finite, ``(n - 400) // 320 + 1`` frames, and content over pitch: the
  same vowel at two pitches a fifth apart is much closer (ratio < 0.6) than two different vowels at one
  pitch, and each vowel's nearest neighbour at the other pitch is the same vowel.
* ``diffusion_svc_base`` (decoder base): at three noise levels the denoiser predicts the added noise with
  less than 0.8 x the error of the best prediction that ignores the mel's structure ("chance"). Its
  conditioning comes from the installed content encoder; without one it is skipped.
* ``uvr_vocals`` (separation): a synthetic mix of a sung vowel line and an accompaniment (bass, chords,
  drums); the vocal stem must be >= 3 dB closer (SI-SDR) to the known vocal than the mix is.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from core import pretrained
from core.config import AUDIO
from core.errors import MissingPretrainedError, SvcoverError
from core.features.contentvec import ContentVec, align_to_frames
from core.features.f0 import estimate_f0
from core.features.loudness import frame_volume
from core.features.mel import HOP, log_mel, n_frames
from core.progress import ProgressFn, report, scaled
from core.separate import DEFAULT_VOCAL_MODEL, separate_file

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "pass", "fail", "skip"
SR = AUDIO.sample_rate

# ---- bounds (see docs/selftest.md) ------------------------------------------------------------------------------
F0_MAX_MEDIAN_CENTS = 20.0
F0_MIN_VOICED_RECALL = 0.90
F0_MAX_FALSE_VOICED = 0.10
VOCODER_MAX_MEL_DISTANCE = 0.6  # nats of log-mel magnitude (0.6 = 5.2 dB mean error per band)
VOCODER_DYNAMIC_RANGE_NATS = math.log(1000.0)  # 60 dB below the loudest band does not count
CONTENT_MAX_PITCH_TO_VOWEL_RATIO = 0.6  # distance across pitch / distance across vowels
DIFFUSION_MAX_ERROR_VS_CHANCE = 0.8
DIFFUSION_NOISE_FRACTIONS = (0.05, 0.1, 0.2)  # of the model's deepest trained step
SEPARATION_MIN_SDR_GAIN_DB = 3.0

# Formant frequencies / bandwidths (Hz) of three corner vowels (adult averages, Peterson & Barney-like values),
# with F4/F5 fixed; only their differences matter for the checks.
VOWELS: dict[str, tuple[tuple[float, float], ...]] = {
    "a": ((800, 80), (1150, 90), (2800, 120), (3500, 130), (4500, 140)),
    "i": ((300, 60), (2300, 100), (3000, 120), (3500, 130), (4500, 140)),
    "u": ((320, 60), (800, 80), (2400, 120), (3500, 130), (4500, 140)),
}


@dataclass(frozen=True)
class ModelCheck:
    """Result of one model's self-test. ``detail`` is one line with the measured numbers and the bounds."""

    model: str  # registry name (``fcpe`` for the F0 model shipped in the torchfcpe wheel)
    status: str  # "pass" | "fail" | "skip"
    detail: str
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAIL


# ---- known inputs ------------------------------------------------------------------------------------------------


def formant_gain(freqs: np.ndarray, vowel: str) -> np.ndarray:
    """Magnitude of the vowel's cascade of second-order resonances (unit gain at 0 Hz) at ``freqs``."""
    gain = np.ones_like(freqs, dtype=np.float64)
    for fc, bw in VOWELS[vowel]:
        r = freqs / fc
        gain /= np.sqrt((1.0 - r * r) ** 2 + (freqs * bw / (fc * fc)) ** 2)
    return gain


def synthetic_vowel(f0: np.ndarray, vowel: str = "a", sr: int = SR, seed: int = 0) -> np.ndarray:
    """A sung vowel following the per-sample F0 contour ``f0`` (Hz, 0 = silence); peak 0.5, float32.

    Additive synthesis: every harmonic below 0.45 sr with amplitude 1/k times the formant gain at its
    instantaneous frequency, plus faint aspiration noise; 20 ms fades at every voiced/silent edge.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0 > 0
    f0_filled = np.where(voiced, f0, np.max(f0[voiced]) if voiced.any() else 100.0)
    phase = 2 * np.pi * np.cumsum(f0_filled) / sr
    out = np.zeros(f0.size, dtype=np.float64)
    n_harm = int(0.45 * sr / max(np.min(f0_filled), 50.0))
    for k in range(1, n_harm + 1):
        fk = k * f0_filled
        amp = np.where(fk < 0.45 * sr, formant_gain(fk, vowel) / k, 0.0)
        if not amp.any():
            break
        out += amp * np.sin(k * phase)
    rng = np.random.default_rng(seed)
    out += 0.003 * np.abs(out).max() * rng.standard_normal(out.size)
    env = voiced.astype(np.float64)
    fade = int(0.02 * sr)
    env = np.convolve(env, np.ones(fade) / fade, mode="same")
    out *= env
    out += 1e-4 * rng.standard_normal(out.size)  # a quiet room, not digital zero
    return (0.5 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def glide_f0(seconds: float, start_hz: float, end_hz: float, sr: int = SR, silence: float = 0.0) -> np.ndarray:
    """Per-sample F0: ``silence`` s of 0, an exponential glide from ``start_hz`` to ``end_hz``, ``silence`` s of 0."""
    n_glide = int(seconds * sr)
    glide = start_hz * (end_hz / start_hz) ** (np.arange(n_glide) / max(n_glide - 1, 1))
    pad = np.zeros(int(silence * sr))
    return np.concatenate([pad, glide, pad])


def _grid_values(per_sample: np.ndarray) -> np.ndarray:
    """Per-sample values at the project's frame centres (frame i at sample i*512)."""
    idx = np.minimum(np.arange(n_frames(per_sample.size)) * HOP, per_sample.size - 1)
    return per_sample[idx]


# ---- F0 ----------------------------------------------------------------------------------------------------------


def check_f0(method: str, model_path: str | Path | None = None, device: str = "cpu") -> ModelCheck:
    """RMVPE or FCPE on a 100 -> 280 Hz glide between stretches of near-silence."""
    true_samples = glide_f0(1.5, 100.0, 280.0, silence=0.4)
    wav = synthetic_vowel(true_samples, "a")
    est = estimate_f0(wav, method, device, model_path=model_path, octave_fix=False)
    truth = _grid_values(true_samples)
    # Judge only frames well inside a voiced or silent stretch (a frame spans +-1024 samples).
    margin = 4
    inside_voiced = np.convolve(truth > 0, np.ones(2 * margin + 1), mode="same") >= 2 * margin + 1
    inside_silent = np.convolve(truth == 0, np.ones(2 * margin + 1), mode="same") >= 2 * margin + 1
    if not np.all(np.isfinite(est)):
        return ModelCheck(method, FAIL, "F0 output has NaN/inf values")
    recall = float(np.mean(est[inside_voiced] > 0))
    false_voiced = float(np.mean(est[inside_silent] > 0))
    both = inside_voiced & (est > 0)
    cents = np.abs(1200.0 * np.log2(est[both] / truth[both])) if both.any() else np.array([np.inf])
    median = float(np.median(cents))
    metrics = {"median_cents": median, "voiced_recall": recall, "false_voiced": false_voiced}
    text = (f"glide 100-280 Hz: median error {median:.1f} cents (max {F0_MAX_MEDIAN_CENTS:g}), "
            f"{recall:.0%} of voiced frames voiced (min {F0_MIN_VOICED_RECALL:.0%}), "
            f"{false_voiced:.0%} of silent frames voiced (max {F0_MAX_FALSE_VOICED:.0%})")  # fmt: skip
    ok = median <= F0_MAX_MEDIAN_CENTS and recall >= F0_MIN_VOICED_RECALL and false_voiced <= F0_MAX_FALSE_VOICED
    return ModelCheck(method, PASS if ok else FAIL, text, metrics)


# ---- vocoder -----------------------------------------------------------------------------------------------------


def mel_distance(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean |difference| of two natural-log mels [M, T]; bands more than 60 dB below the reference's
    loudest band are raised to that floor in both (inaudible detail must not dominate the mean)."""
    floor = float(reference.max()) - VOCODER_DYNAMIC_RANGE_NATS
    t = min(reference.shape[1], other.shape[1])
    a = np.maximum(reference[:, :t], floor)
    b = np.maximum(other[:, :t], floor)
    return float(np.mean(np.abs(a - b)))


def vocoder_input() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(waveform, its log-mel [128, T], F0 per frame): a sung /a/ at 220 Hz with a 5 Hz, +-50 cent vibrato."""
    n = int(1.2 * SR)
    t = np.arange(n) / SR
    f0_samples = 220.0 * 2 ** ((0.5 * np.sin(2 * np.pi * 5.0 * t)) / 12)
    wav = synthetic_vowel(f0_samples, "a")
    return wav, log_mel(wav), _grid_values(f0_samples).astype(np.float32)


def score_vocoder(vocode: Callable[[np.ndarray, np.ndarray], np.ndarray], hop: int = AUDIO.hop_length) -> ModelCheck:
    """Judge any ``vocode(mel, f0) -> wav`` on :func:`vocoder_input` (used for NSF-HiFiGAN; tests use it to
    show that a crude but working vocoder, Griffin-Lim, passes the bound)."""
    _, mel, f0 = vocoder_input()
    out = np.asarray(vocode(mel, f0), dtype=np.float32)
    if out.size != mel.shape[1] * hop or not np.all(np.isfinite(out)):
        return ModelCheck("nsf_hifigan", FAIL, f"output of {out.size} samples (expected {mel.shape[1] * hop}) or NaN/inf")
    resynth = log_mel(np.clip(out, -1.0, 1.0))
    edge = 8  # the fades at both ends are not what is being judged
    dist = mel_distance(mel[:, edge:-edge], resynth[:, edge:-edge])
    rms = float(np.sqrt(np.mean(out**2)))
    text = (f"re-synthesised vowel: log-mel distance {dist:.2f} (max {VOCODER_MAX_MEL_DISTANCE:g}; "
            f"60 dB range), output RMS {rms:.3f}")  # fmt: skip
    return ModelCheck("nsf_hifigan", PASS if dist <= VOCODER_MAX_MEL_DISTANCE else FAIL, text,
                      {"mel_distance": dist, "rms": rms})  # fmt: skip


def check_vocoder(path: str | Path | None = None, device: str = "cpu") -> ModelCheck:
    """NSF-HiFiGAN re-synthesising a sung vowel from its own mel and the known F0."""
    from core.vocoder import NsfHifiGan  # the networks (torch)

    vocoder = NsfHifiGan.from_checkpoint(path, device) if path else NsfHifiGan.from_pretrained(device)
    return score_vocoder(lambda mel, f0: vocoder.vocode(mel, f0, deterministic=True), vocoder.hop_size)


# ---- content encoder ---------------------------------------------------------------------------------------------


def score_content(extract: Callable[[np.ndarray], np.ndarray], num_frames: Callable[[int], int] | None = None,
                  model: str = "contentvec") -> ModelCheck:  # fmt: skip
    """Judge any ``extract(wav16k) -> [frames, dim]`` on sung vowels a/i/u at 160 and 240 Hz (a fifth apart).

    Each clip is summarised by the mean of its middle half of frames. Passes when the same vowel at the two
    pitches is much closer than two vowels at one pitch (ratio of mean distances below the bound) and every
    vowel's nearest neighbour at the other pitch is the same vowel. ``num_frames(n_samples)`` is the frame
    count the model promises; a different count or NaN/inf fails.
    """
    pitches = (160.0, 240.0)
    names = list(VOWELS)
    vectors: dict[tuple[str, float], np.ndarray] = {}
    for vowel in names:
        for p in pitches:
            wav16 = soxr.resample(synthetic_vowel(np.full(SR, p), vowel), SR, 16000).astype(np.float32)
            units = np.asarray(extract(wav16))
            expected = num_frames(wav16.size) if num_frames else units.shape[0]
            if units.ndim != 2 or units.shape[0] != expected:
                return ModelCheck(model, FAIL, f"1 s of audio gave shape {list(units.shape)}, expected {expected} frames")
            if not np.all(np.isfinite(units)):
                return ModelCheck(model, FAIL, "content features have NaN/inf values")
            quarter = units.shape[0] // 4
            vectors[(vowel, p)] = units[quarter : units.shape[0] - quarter].mean(axis=0)
    across_pitch = np.mean([np.linalg.norm(vectors[(v, pitches[0])] - vectors[(v, pitches[1])]) for v in names])
    across_vowel = np.mean([np.linalg.norm(vectors[(a, p)] - vectors[(b, p)])
                            for p in pitches for i, a in enumerate(names) for b in names[i + 1:]])  # fmt: skip
    ratio = float(across_pitch / max(across_vowel, 1e-12))

    def nearest(v: str, p: float, q: float) -> str:
        return min(names, key=lambda w: float(np.linalg.norm(vectors[(v, p)] - vectors[(w, q)])))

    matched = sum(nearest(v, p, q) == v for v in names for p in pitches for q in pitches if p != q)
    total = len(names) * len(pitches) * (len(pitches) - 1)
    text = (f"vowels a/i/u at 160 and 240 Hz: same-vowel/other-vowel distance ratio {ratio:.2f} "
            f"(max {CONTENT_MAX_PITCH_TO_VOWEL_RATIO:g}), vowel recognised across pitch {matched}/{total} "
            f"(must be all)")  # fmt: skip
    ok = ratio < CONTENT_MAX_PITCH_TO_VOWEL_RATIO and matched == total
    return ModelCheck(model, PASS if ok else FAIL, text, {"pitch_to_vowel_ratio": ratio, "matched": float(matched)})


def check_content_encoder(path: str | Path | None = None, device: str = "cpu") -> ModelCheck:
    """ContentVec (layer 12, as the decoder uses it): finite, the right frame count, content over pitch."""
    encoder = ContentVec.from_checkpoint(path, device) if path else ContentVec.from_pretrained(device)
    return score_content(encoder.extract, encoder.num_frames)


# ---- diffusion base ----------------------------------------------------------------------------------------------


def diffusion_input() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(waveform, its log-mel [128, T], F0 per frame) of a sung /a/ gliding from 180 to 260 Hz."""
    f0_samples = glide_f0(1.0, 180.0, 260.0)
    wav = synthetic_vowel(f0_samples, "a")
    return wav, log_mel(wav), _grid_values(f0_samples).astype(np.float32)


def score_denoiser(predict: Callable, x0: torch.Tensor, k_step: int, timesteps: int = 1000,
                   note: str = "") -> ModelCheck:  # fmt: skip
    """Judge ``predict(x_t, step) -> eps`` on the normalised mel ``x0`` [1, 1, M, T] at the noise levels
    :data:`DIFFUSION_NOISE_FRACTIONS` of ``k_step``, against the best structure-blind prediction.

    The schedule is Diffusion-SVC's linear one, recomputed here rather than read from a file's buffers, so a
    file with wrong buffers cannot make its own test easier.
    """
    import torch

    from core.model.diffusion import linear_schedule

    acp = linear_schedule(timesteps)["alphas_cumprod"]
    gen = torch.Generator().manual_seed(0)
    power = float((x0.float() ** 2).mean())
    ratios, parts = [], []
    with torch.inference_mode():
        for frac in DIFFUSION_NOISE_FRACTIONS:
            step = max(1, int(frac * k_step))
            a = float(acp[step])
            errors = []
            for _ in range(2):
                noise = torch.randn(x0.shape, generator=gen).to(x0.device)
                x_t = math.sqrt(a) * x0 + math.sqrt(1.0 - a) * noise
                errors.append(float(((predict(x_t, step).float() - noise) ** 2).mean()))
            # "Chance": the best prediction c * x_t knowing only the mel's mean power P (not its shape):
            # its error is 1 - (1 - a) / (a P + 1 - a).
            chance = 1.0 - (1.0 - a) / (a * power + 1.0 - a)
            ratios.append(float(np.mean(errors)) / chance)
            parts.append(f"t={step}: {ratios[-1]:.2f}")
    worst = max(ratios)
    metrics = {f"error_vs_chance_{f:g}": r for f, r in zip(DIFFUSION_NOISE_FRACTIONS, ratios, strict=True)}
    if not math.isfinite(worst):
        return ModelCheck("diffusion_svc_base", FAIL, "denoiser output has NaN/inf values", metrics)
    text = (f"noise-prediction error / chance at {', '.join(parts)} (each must be < {DIFFUSION_MAX_ERROR_VS_CHANCE:g})"
            f"{note}")  # fmt: skip
    return ModelCheck("diffusion_svc_base", PASS if worst < DIFFUSION_MAX_ERROR_VS_CHANCE else FAIL, text, metrics)


def check_diffusion_base(path: str | Path | None = None, device: str = "cpu", units_fn: Callable | None = None) -> ModelCheck:
    """The decoder base predicting the noise added to a vowel's mel (see :func:`score_denoiser`).

    ``units_fn(wav16k) -> [frames, units_dim]`` supplies content units (the installed content encoder);
    without it the units are zeros (the denoiser still has the noisy mel, F0 and volume to go on).
    """
    import torch

    from core.model.decoder import SvcDecoder

    path = Path(path) if path else pretrained.require(pretrained.DIFFUSION_SVC_BASE, download_name="diffusion_svc_base")
    model = SvcDecoder.from_checkpoint(path, device)
    wav, mel, f0 = diffusion_input()
    frames = mel.shape[1]
    if units_fn is not None:
        units = align_to_frames(units_fn(soxr.resample(wav, SR, 16000).astype(np.float32)), frames)
    else:
        units = np.zeros((frames, model.config.units_dim), np.float32)
    volume = frame_volume(wav)[:frames]
    with torch.inference_mode():
        cond = model.condition(torch.from_numpy(units)[None].to(device), torch.from_numpy(f0)[None, :, None].to(device),
                               torch.from_numpy(volume)[None, :, None].to(device))  # fmt: skip
        x0 = model.norm_spec(torch.from_numpy(mel).T[None].to(device)).transpose(1, 2)[:, None]  # [1,1,M,T]

    def predict(x_t: torch.Tensor, step: int) -> torch.Tensor:
        return model.denoise(x_t, torch.full((1,), step, device=device, dtype=torch.long), cond)

    note = "; units from the content encoder" if units_fn else "; no content encoder installed: zero units"
    return score_denoiser(predict, x0, model.k_step_max, model.num_timesteps, note)


# ---- separation --------------------------------------------------------------------------------------------------


def synthetic_mix(seconds: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vocal, accompaniment), mono float32 at 44.1 kHz: a sung vowel line over bass, chords and drums."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    # Vocal: one note per half second through a, i, u with vibrato, short gaps between notes.
    notes = [220.0, 247.0, 262.0, 294.0, 247.0, 196.0]
    note_len = n // len(notes)
    f0 = np.zeros(n)
    for i, hz in enumerate(notes):
        seg = slice(i * note_len, (i + 1) * note_len - int(0.06 * SR))
        f0[seg] = hz * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t[seg]) / 12)
    parts = []
    for i, vowel in enumerate(("a", "i", "u", "a")):
        seg = slice(i * n // 4, (i + 1) * n // 4)
        f0_part = np.zeros(n)
        f0_part[seg] = f0[seg]
        parts.append(synthetic_vowel(f0_part, vowel, seed=seed + i))
    vocal = np.sum(parts, axis=0)
    # Accompaniment in the vocal's own register, so that no fixed filter separates them (a band mask gains
    # < 1 dB here): a quiet bass, a sustained chord of bright tones around the melody, kick and hi-hat.
    acc = np.zeros(n)
    for i in range(math.ceil(seconds)):
        seg = slice(i * SR, min(n, (i + 1) * SR))
        root = (55.0, 65.4, 49.0, 58.3)[i % 4]
        for k in range(1, 8):
            acc[seg] += 0.12 / k * np.sin(2 * np.pi * k * root * t[seg])
        for ratio in (4.0, 5.04, 5.99, 8.0, 10.08):
            for k in range(1, 8):
                acc[seg] += 0.25 / k**1.3 * np.sin(2 * np.pi * k * root * ratio * t[seg] + k)
    beat = int(0.5 * SR)
    for start in range(0, n, beat):
        length = min(int(0.15 * SR), n - start)
        tau = np.arange(length) / SR
        acc[start : start + length] += 0.3 * np.sin(2 * np.pi * 60.0 * tau) * np.exp(-tau / 0.04)
        hat = min(int(0.05 * SR), n - start - beat // 2)
        if hat > 0:
            noise = np.diff(rng.standard_normal(hat + 1))  # differenced noise: hi-hat-like, bright
            acc[start + beat // 2 : start + beat // 2 + hat] += 0.15 * noise * np.exp(-np.arange(hat) / (0.01 * SR))
    acc *= np.sqrt(np.mean(vocal**2) / np.mean(acc**2))  # vocal and accompaniment at equal power (0 dB)
    return vocal.astype(np.float32), acc.astype(np.float32)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019)."""
    t = min(reference.size, estimate.size)
    ref, est = reference[:t].astype(np.float64), estimate[:t].astype(np.float64)
    scale = np.dot(est, ref) / max(np.dot(ref, ref), 1e-12)
    target = scale * ref
    noise = est - target
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.dot(noise, noise), 1e-12)))


def check_separation(model: str | None = None, model_dir: str | Path | None = None) -> ModelCheck:
    """The vocal model separating a synthetic mix with a known vocal part (one model call, nothing cached)."""
    vocal, acc = synthetic_mix()
    mix = vocal + acc
    peak = max(1.0, float(np.abs(mix).max()) / 0.9)
    vocal, acc, mix = vocal / peak, acc / peak, mix / peak
    with tempfile.TemporaryDirectory(prefix="svcover-selftest-") as tmp:
        song = Path(tmp) / "selftest_mix.wav"
        sf.write(song, np.stack([mix, mix], axis=1), SR, subtype="FLOAT")
        vocal_stem, _ = separate_file(song, model or DEFAULT_VOCAL_MODEL, Path(model_dir) if model_dir else None)
    sep = vocal_stem.mean(axis=1)
    if not np.all(np.isfinite(sep)):
        return ModelCheck("uvr_vocals", FAIL, "vocal stem has NaN/inf values")
    before = si_sdr(vocal, mix)
    after = si_sdr(vocal, sep)
    gain = after - before
    text = (f"synthetic mix (vocal 0 dB over bass, chords, drums): vocal stem SI-SDR {after:.1f} dB vs. "
            f"{before:.1f} dB for the mix, gain {gain:.1f} dB (min {SEPARATION_MIN_SDR_GAIN_DB:g})")  # fmt: skip
    return ModelCheck("uvr_vocals", PASS if gain >= SEPARATION_MIN_SDR_GAIN_DB else FAIL, text,
                      {"si_sdr_db": after, "mix_si_sdr_db": before, "gain_db": gain})  # fmt: skip


# ---- running all of them -----------------------------------------------------------------------------------------

# Registry names in the order they are tested, and "fcpe" (shipped in the torchfcpe wheel: always installed).
TESTED_MODELS = ("contentvec", "rmvpe", "fcpe", "nsf_hifigan", "diffusion_svc_base", "uvr_vocals")


def installed_models() -> list[str]:
    """The testable models that are on disk (the FCPE weights count when torchfcpe is installed)."""
    out = []
    for name in TESTED_MODELS:
        if name == "fcpe":
            from core.features.f0.fcpe import weight_path

            try:
                weight_path()
            except MissingPretrainedError:
                continue
            out.append(name)
        elif pretrained.status(pretrained.get(name), verify=False).usable:
            out.append(name)
    return out


def _content_units_fn(device: str) -> Callable | None:
    """The installed content encoder as a units function for the diffusion check (None if absent/unusable)."""
    try:
        encoder = ContentVec.from_pretrained(device)
    except SvcoverError:
        return None
    return encoder.extract


def _run_one(name: str, device: str, progress: ProgressFn | None) -> ModelCheck:
    if name in ("rmvpe", "fcpe"):
        return check_f0(name, device=device)
    if name == "nsf_hifigan":
        return check_vocoder(device=device)
    if name == "contentvec":
        return check_content_encoder(device=device)
    if name == "diffusion_svc_base":
        units_fn = _content_units_fn(device)
        if units_fn is None:  # its own check reports why the encoder does not load
            return ModelCheck(name, SKIP, "the content encoder does not load, so the base has no input to test with")
        return check_diffusion_base(device=device, units_fn=units_fn)
    if name == "uvr_vocals":
        return check_separation()
    raise ValueError(f"no self-test for {name!r}")


def run_self_test(names: list[str] | None = None, progress: ProgressFn | None = None,
                  device: str = "cpu") -> list[ModelCheck]:  # fmt: skip
    """Self-test ``names`` (default: every testable model); models not installed are reported as skipped.

    A model that cannot even be loaded (a wrong or truncated file) fails with the loader's one-line message.
    Returns one :class:`ModelCheck` per model, in :data:`TESTED_MODELS` order.
    """
    wanted = [n for n in TESTED_MODELS if names is None or n in names]
    unknown = sorted(set(names or ()) - set(TESTED_MODELS))
    if unknown:
        raise SvcoverError(f"no self-test for {', '.join(unknown)}: choose from {', '.join(TESTED_MODELS)}")
    present = set(installed_models())
    results = []
    for i, name in enumerate(wanted):
        sub = scaled(progress, i / len(wanted), (i + 1) / len(wanted))
        if name not in present:
            results.append(ModelCheck(name, SKIP, "not installed"))
            continue
        if name == "diffusion_svc_base" and "contentvec" not in present:
            # Zero units would be an input the base never saw in training: a false alarm is worse than no test.
            results.append(ModelCheck(name, SKIP, "needs the content encoder (contentvec) for its input: install it"))
            continue
        report(sub, 0.0, f"self-test: {name}")
        started = time.perf_counter()
        try:
            result = _run_one(name, device, sub)
        except Exception as e:  # a file that does not load or a network that does not run: what is looked for
            if not isinstance(e, SvcoverError):
                log.warning("self-test of %s raised", name, exc_info=True)
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            result = ModelCheck(name, FAIL, f"could not run: {type(e).__name__}: {detail}")
        results.append(ModelCheck(result.model, result.status, result.detail, result.metrics,
                                  round(time.perf_counter() - started, 2)))  # fmt: skip
        log.info("self-test %s: %s (%s)", name, result.status, result.detail)
        report(sub, 1.0, f"self-test: {name} {result.status}")
    return results


def format_results(results: list[ModelCheck]) -> str:
    marks = {PASS: "[pass]", FAIL: "[FAIL]", SKIP: "[skip]"}
    lines = [f"{marks[r.status]} {r.model:<20} {r.detail}" for r in results]
    failed = [r.model for r in results if r.failed]
    tested = sum(r.status != SKIP for r in results)
    if failed:
        lines.append(f"self-test: {len(failed)} of {tested} installed model(s) FAILED: {', '.join(failed)}")
    else:
        lines.append(f"self-test: all {tested} installed model(s) passed")
    return "\n".join(lines)


def results_json(results: list[ModelCheck]) -> str:
    return json.dumps([asdict(r) for r in results], indent=1)
