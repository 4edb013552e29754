"""Convert a vocal with a trained voice model: features → key shift → [retrieval blend] → sampler → vocoder.

``python -m core convert --exp NAME --input FILE_OR_DIR --output PATH`` and the Convert tab both call
:func:`convert_files`. Long inputs are cut at quiet points into pieces sized to the free memory, each
piece is converted with a second of context on both sides, and the pieces are joined with equal-power
crossfades (core.chunking), so the output has the input's length and no clicks at the seams.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil
import soxr

from core.audio import check_length, load_audio, probe_audio, save_audio
from core.checkpoint_store import find_checkpoint
from core.chunking import plan_pieces, process_in_pieces
from core.config import AUDIO, load_json
from core.device import Device, pick_device
from core.errors import NothingToDoError, Remedy, SvcoverError, WriteError
from core.experiment import Experiment
from core.features.encoders import ENCODERS, ContentEncoder
from core.features.extract import ExtractConfig, Extractors, default_extractors
from core.features.f0 import F0Method
from core.features.loudness import frame_volume
from core.fsutil import refuse_output_as_input, remove_stale_temp_files, unique_path
from core.index import load_index
from core.model.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS, sample
from core.progress import ProgressFn, report, scaled

# convert_fn(vocals_path, progress=None) -> converted_path: the voice conversion as the cover pipeline uses it
ConvertFn = Callable[..., Path]

if TYPE_CHECKING:
    from core.model import SvcDecoder
    from core.vocoder import NsfHifiGan

log = logging.getLogger(__name__)

FORMATS = ("wav", "flac", "mp3")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac", ".wma", ".mp4", ".mkv", ".webm", ".aiff", ".aif"}
SILENCE_DB = -60.0  # frames quieter than this in the input are silent in the output too
# Rough working memory per second of audio of one piece, fp32 (features + 512x20 denoiser + vocoder):
# used only to size pieces; measured peak on CPU is below this (see benchmarks/BENCHMARKS.md).
BYTES_PER_AUDIO_SECOND = 80 * 2**20
MIN_PIECE_SECONDS, MAX_PIECE_SECONDS = 8.0, 60.0
DEFAULT_PROTECT = 0.5
PIECE_BUCKET_FRAMES = 32  # pieces are zero-padded to a multiple of this many frames (0.37 s)


class ConvertError(SvcoverError):
    """A conversion that cannot run (bad checkpoint pairing, missing model, bad input)."""


@dataclass
class ConvertConfig:
    """Settings of one conversion (``python -m core convert`` flags)."""

    key: float | None = 0.0  # semitones; None = suggest from the training set's range ("auto")
    sampler: str = DEFAULT_SAMPLER
    steps: int = DEFAULT_STEPS
    index_rate: float = 0.0  # 0 = no retrieval blend
    # In unvoiced frames (breaths, consonants) this fraction of the retrieval blend is undone, back to the
    # source's own content features, so they stay intelligible (RVC's "protect"; 0 = off, 1 = no blend there).
    protect: float = DEFAULT_PROTECT
    f0_method: str | None = None  # None = the method the model was trained with
    device: str = Device.AUTO
    ckpt: str = "best"  # best | latest | a path
    format: str = "wav"
    seed: int = 0
    loudness_match: float = 0.0  # 0 = off; 1 = output follows the input's RMS envelope fully
    piece_seconds: float | None = None  # None = sized to the free memory

    def validate(self) -> ConvertConfig:
        if self.sampler not in SAMPLERS:
            raise ConvertError(f"unknown sampler {self.sampler!r}: use one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise ConvertError("--steps must be at least 1")
        if self.format not in FORMATS:
            raise ConvertError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if not 0.0 <= self.index_rate <= 1.0:
            raise ConvertError("--index-rate must be between 0 and 1")
        if not 0.0 <= self.protect <= 1.0:
            raise ConvertError("--protect must be between 0 and 1")
        if not 0.0 <= self.loudness_match <= 1.0:
            raise ConvertError("--loudness-match must be between 0 and 1")
        if self.key is not None and not -36 <= self.key <= 36:
            raise ConvertError("--key must be between -36 and 36 semitones (or 'auto')")
        return self


@dataclass
class ConvertResult:
    input: Path
    output: Path
    key: float
    suggested_key: float | None
    seconds_audio: float
    seconds_taken: float
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source_f0: np.ndarray | None = None  # Hz per frame before the key shift
    converted_f0: np.ndarray | None = None  # Hz per frame fed to the decoder and vocoder
    pieces: int = 1  # how many pieces the input was cut into


# ----------------------------------------------------------------------------------------------
# The voice model (decoder + what it was trained on) and the shared models
# ----------------------------------------------------------------------------------------------


def open_voice_model(name: str) -> Experiment:
    """The experiment of voice model ``name`` (CLI, Convert and Cover tabs, cover jobs); one line if it has none."""
    exp = Experiment.open(name)
    if not exp.exists():
        raise ConvertError(f"voice model '{name}' not found: no experiment folder {exp.root}")
    return exp


def resolve_checkpoint(exp: Experiment, ckpt: str) -> Path:
    """The checkpoint ``--ckpt`` names: :func:`core.checkpoint_store.find_checkpoint` (kept as a name for callers)."""
    return find_checkpoint(exp, ckpt)


@dataclass
class VoiceModel:
    """A trained decoder with the dataset statistics it was trained on."""

    decoder: SvcDecoder
    checkpoint: Path
    stats: dict[str, Any]
    device: str

    @property
    def encoder_name(self) -> str:
        return str(self.stats.get("encoder") or ContentEncoder.CONTENTVEC768L12)

    @property
    def f0_method(self) -> str:
        return str(self.stats.get("f0_method") or F0Method.RMVPE)

    @classmethod
    def load(cls, exp: Experiment, ckpt: str = "best", device: str = "cpu") -> VoiceModel:
        from core.model.decoder import SvcDecoder  # the network (torch)

        path = find_checkpoint(exp, ckpt)
        decoder = SvcDecoder.from_checkpoint(path, device=device)
        stats = dict(decoder.stats or {})
        if not stats and exp.stats.is_file():
            stats = load_json(exp.stats)
        return cls(decoder=decoder, checkpoint=path, stats=stats, device=device)


@dataclass
class Models:
    """Everything one conversion run needs, loaded once and reused for every piece and file."""

    voice: VoiceModel
    extractors: Extractors
    vocoder: NsfHifiGan
    index: Any | None = None  # core.index.RetrievalIndex when --index-rate > 0
    _loaded: dict[str, Callable] = field(default_factory=dict, repr=False)

    def content_fn(self) -> Callable:
        """The content encoder, loaded on first use and kept for every later piece and file."""
        if "content" not in self._loaded:
            self._loaded["content"] = self.extractors.content()
        return self._loaded["content"]

    def f0_fn(self) -> Callable:
        if "f0" not in self._loaded:
            self._loaded["f0"] = self.extractors.f0()
        return self._loaded["f0"]

    @classmethod
    def load(cls, exp: Experiment, config: ConvertConfig, device: str) -> Models:
        from core.vocoder import NsfHifiGan  # the networks (torch)

        voice = VoiceModel.load(exp, config.ckpt, device)
        encoder = voice.encoder_name
        if encoder not in ENCODERS:
            raise ConvertError(f"{voice.checkpoint}: trained with unknown content encoder {encoder!r}")
        units_dim = int(voice.decoder.config.units_dim)
        if units_dim != ENCODERS[encoder].dim:
            raise ConvertError(
                f"{voice.checkpoint}: decoder expects {units_dim}-d content features but its stats name "
                f"{encoder} ({ENCODERS[encoder].dim}-d): this checkpoint was trained with another encoder"
            )
        f0_method = config.f0_method or voice.f0_method
        extract_config = ExtractConfig(f0_method=f0_method, encoder=encoder, device=device).validate()
        extractors = default_extractors(extract_config, device)
        extractors.preflight({"content", "f0"})
        vocoder = NsfHifiGan.from_pretrained(device)
        index = None
        if config.index_rate > 0:
            index = load_index(exp)
            if int(index.dim) != units_dim:
                raise ConvertError(
                    f"{exp.index}: the retrieval index holds {index.dim}-d features but the voice model takes "
                    f"{units_dim}-d", remedy=Remedy("index", exp.name),
                )
        return cls(voice=voice, extractors=extractors, vocoder=vocoder, index=index)


# ----------------------------------------------------------------------------------------------
# Key
# ----------------------------------------------------------------------------------------------


def median_voiced_f0(f0: np.ndarray) -> float | None:
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else None


def suggest_key(source_f0: np.ndarray, stats: dict[str, Any]) -> float | None:
    """Whole semitones moving the input's median F0 onto the training set's median (None if unknown)."""
    source = median_voiced_f0(source_f0)
    target = stats.get("f0_hz_p50")
    if source is None or not target:
        return None
    return float(round(12.0 * math.log2(float(target) / source)))


def range_warning(source_f0: np.ndarray, key: float, stats: dict[str, Any]) -> str | None:
    """A warning when the shifted melody's median falls outside the training set's 5th-95th percentiles."""
    source = median_voiced_f0(source_f0)
    low, high = stats.get("f0_hz_p5"), stats.get("f0_hz_p95")
    if source is None or not low or not high:
        return None
    shifted = source * 2.0 ** (key / 12.0)
    if low <= shifted <= high:
        return None
    suggestion = suggest_key(source_f0, stats)
    return (
        f"the input's median pitch after the key shift ({shifted:.0f} Hz) is outside the voice model's range "
        f"({low:.0f}-{high:.0f} Hz); a key shift of {suggestion:+.0f} semitones would centre it"
    )


# ----------------------------------------------------------------------------------------------
# Conversion of one waveform
# ----------------------------------------------------------------------------------------------


@dataclass
class PieceFeatures:
    f0: np.ndarray  # [T] Hz, 0 = unvoiced
    volume: np.ndarray  # [T]
    n_frames: int
    units: np.ndarray | None = None  # [T, C]; computed just before the piece is decoded (see convert_waveform)


def piece_pitch(wav44k: np.ndarray, extractors: Extractors, f0_fn: Callable) -> PieceFeatures:
    """F0 and volume of one piece, on the mel grid (small: kept for every piece of a long input)."""
    n_frames = int(extractors.n_frames(len(wav44k)))
    f0 = _fit(np.asarray(f0_fn(wav44k), dtype=np.float32), n_frames)
    volume = _fit(frame_volume(wav44k), n_frames)
    return PieceFeatures(f0=f0, volume=volume, n_frames=n_frames)


def piece_units(wav44k: np.ndarray, extractors: Extractors, content_fn: Callable, n_frames: int) -> np.ndarray:
    """Content units of one piece, aligned to its ``n_frames`` mel frames ([T, C], large: one piece at a time)."""
    wav16k = soxr.resample(wav44k, AUDIO.sample_rate, AUDIO.content_sample_rate, quality="HQ").astype(np.float32)
    return extractors.align(np.asarray(content_fn(wav16k), dtype=np.float32), n_frames)


def piece_features(wav44k: np.ndarray, extractors: Extractors, content_fn: Callable, f0_fn: Callable) -> PieceFeatures:
    """Content units, F0 and volume of one piece, on the mel grid."""
    feats = piece_pitch(wav44k, extractors, f0_fn)
    feats.units = piece_units(wav44k, extractors, content_fn, feats.n_frames)
    return feats


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)), mode="edge") if len(x) else np.zeros(n, dtype=np.float32)


def decode_piece(
    models: Models,
    feats: PieceFeatures,
    f0_shifted: np.ndarray,
    config: ConvertConfig,
    progress: ProgressFn | None = None,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """Sampler + vocoder for one piece; returns ``n_frames * hop`` samples."""
    import torch

    timings = timings if timings is not None else {}
    dec = models.voice.decoder
    device = models.voice.device
    units = feats.units
    if models.index is not None and config.index_rate > 0:
        units = protect_unvoiced(units, models.index.blend(units, config.index_rate), feats.f0, config.protect)
    f0_cond = models.extractors.continuous_f0(f0_shifted)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        units_t = torch.from_numpy(np.ascontiguousarray(units, dtype=np.float32))[None].to(device)
        f0_t = torch.from_numpy(np.ascontiguousarray(f0_cond, dtype=np.float32))[None, :, None].to(device)
        vol_t = torch.from_numpy(np.ascontiguousarray(feats.volume, dtype=np.float32))[None, :, None].to(device)
        # The conditioning is computed once per piece, not once per sampler step.
        cond = dec.condition(units_t, f0_t, vol_t)
        n_mels = int(dec.config.n_mels)
        x0 = sample(
            lambda x, t, c: dec.denoise(x, t, c),
            cond,
            (1, 1, n_mels, feats.n_frames),
            sampler=config.sampler,
            steps=config.steps,
            seed=config.seed,
            betas=dec.betas.detach().cpu().numpy(),
            device=device,
            progress=progress,
        )
        # The model's mel range is [-1, 1] (= spec_min..spec_max, which covers every real log-mel); a weak or
        # diverging model can overshoot it by orders of magnitude, which the vocoder turns into a roar.
        x0 = x0.clamp(-1.0, 1.0)
        mel = dec.denorm_spec(x0)[0, 0].float().cpu().numpy()  # [n_mels, T] natural-log mel
    t1, c1 = time.perf_counter(), time.process_time()
    wav = models.vocoder.vocode(mel, f0_shifted, seed=config.seed)
    t2, c2 = time.perf_counter(), time.process_time()
    _add(timings, "sampling", t1 - t0, c1 - c0)
    _add(timings, "vocoder", t2 - t1, c2 - c1)
    return np.nan_to_num(wav.astype(np.float32))


def protect_unvoiced(source: np.ndarray, blended: np.ndarray, f0: np.ndarray, protect: float) -> np.ndarray:
    """``blended`` content features with the unvoiced frames (``f0 == 0``) moved back towards ``source``:
    ``(1 - protect) * blended + protect * source`` there; voiced frames are ``blended`` unchanged.

    The retrieval blend replaces a frame by the nearest training frames, which for a breath or a consonant
    are often vowels of the training singer: the consonant gets lost. Keeping part of the source's own
    features in those frames keeps them intelligible (RVC's ``protect``; RVC's value r < 0.5 is ``1 - r`` here).
    """
    out = np.array(blended, dtype=np.float32, copy=True)
    if protect <= 0:
        return out
    unvoiced = np.asarray(f0)[: len(out)] <= 0
    out[unvoiced] = (1.0 - protect) * out[unvoiced] + protect * np.asarray(source, dtype=np.float32)[unvoiced]
    return out


def _add(timings: dict[str, float], stage: str, wall: float, cpu: float) -> None:
    """Wall seconds under ``stage`` and CPU seconds (all threads of this process) under ``<stage>_cpu``."""
    timings[stage] = timings.get(stage, 0.0) + wall
    timings[f"{stage}_cpu"] = timings.get(f"{stage}_cpu", 0.0) + cpu


def auto_piece_seconds(device: str) -> float:
    """Piece length from the free memory of the device (GPU) or the machine (CPU)."""
    free = None
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
    else:
        free = psutil.virtual_memory().available
    seconds = 0.5 * free / BYTES_PER_AUDIO_SECOND
    return float(min(MAX_PIECE_SECONDS, max(MIN_PIECE_SECONDS, seconds)))


def convert_waveform(
    wav44k: np.ndarray,
    models: Models,
    config: ConvertConfig,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, ConvertResult]:
    """Convert a 44.1 kHz mono vocal; returns the converted waveform (same length) and a partial result."""
    start = time.perf_counter()
    timings: dict[str, float] = {"features": 0.0, "sampling": 0.0, "vocoder": 0.0}
    warnings: list[str] = []
    wav44k = np.asarray(wav44k, dtype=np.float32)
    if not np.isfinite(wav44k).all():  # load_audio already cleans; don't copy an hour of audio for nothing
        wav44k = np.nan_to_num(wav44k)
    sr, hop = AUDIO.sample_rate, AUDIO.hop_length
    n = len(wav44k)
    stats = models.voice.stats
    piece_s = config.piece_seconds or auto_piece_seconds(models.voice.device)
    pieces = plan_pieces(wav44k, sr, piece_s, context_seconds=1.0, hop=hop)

    f0_fn = models.f0_fn()

    # Pass 1: F0 of every piece (the key must be known before any piece is decoded when --key auto).
    # Content units are large ([T, 768] float32: ~1 GB per hour), so they are computed piece by piece in pass 2.
    feats: list[PieceFeatures] = []
    for i, p in enumerate(pieces):
        t0, c0 = time.perf_counter(), time.process_time()
        feats.append(piece_pitch(wav44k[p.ctx_start : p.ctx_end], models.extractors, f0_fn))
        _add(timings, "features", time.perf_counter() - t0, time.process_time() - c0)
        report(progress, 0.2 * (i + 1) / len(pieces), f"pitch {i + 1}/{len(pieces)}")
    source_f0 = _stitch_frames([f.f0 for f in feats], pieces, hop, n)

    suggested = suggest_key(source_f0, stats)
    key = config.key if config.key is not None else (suggested or 0.0)
    if config.key is None and suggested is None:
        warnings.append("could not suggest a key (no voiced frames or no training statistics); using 0")
    if (w := range_warning(source_f0, key, stats)) is not None:
        warnings.append(w)
    ratio = 2.0 ** (key / 12.0)

    voiced_any = bool((source_f0 > 0).any())
    # The pieces' own volumes (pass 1) cover the whole input: no full-length float64 copies of a long file here.
    loudest_db = max(20 * np.log10(max(float(f.volume.max(initial=0.0)), 1e-10)) for f in feats)
    if not loudest_db > SILENCE_DB:
        warnings.append("the input is silent: the output is silence")
        out = np.zeros(n, dtype=np.float32)
        return out, ConvertResult(Path(), Path(), key, suggested, n / sr, time.perf_counter() - start, timings, warnings,
                                  source_f0, source_f0 * ratio, pieces=len(pieces))
    if not voiced_any:
        warnings.append("no pitched (voiced) frames found in the input: the output will be mostly noise-like")

    def run_piece(segment: np.ndarray, i: int) -> np.ndarray:
        sub = scaled(progress, 0.2 + 0.8 * i / len(pieces), 0.2 + 0.8 * (i + 1) / len(pieces))
        # Pad to a whole number of buckets: the pieces of a long input then share a few tensor shapes, so the
        # kernels cached per shape (oneDNN, cuDNN) and the allocator's free lists stay bounded.
        padded = np.pad(segment, (0, -len(segment) % (PIECE_BUCKET_FRAMES * hop)))
        n_frames = int(models.extractors.n_frames(len(padded)))
        f = PieceFeatures(f0=_pad_zero(feats[i].f0, n_frames), volume=_pad_zero(feats[i].volume, n_frames),
                          n_frames=n_frames)  # fmt: skip
        t0, c0 = time.perf_counter(), time.process_time()
        f.units = piece_units(padded, models.extractors, models.content_fn(), n_frames)
        _add(timings, "features", time.perf_counter() - t0, time.process_time() - c0)
        wav = decode_piece(models, f, f.f0 * ratio, config, progress=sub, timings=timings)
        del f, padded
        _release_memory()
        return _silence_gate(wav[: len(segment)], segment)

    out = process_in_pieces(wav44k, pieces, run_piece, fade=4 * hop)
    if config.loudness_match > 0:
        out = match_loudness_envelope(out, wav44k, config.loudness_match)
    out = _limit(out)
    result = ConvertResult(Path(), Path(), key, suggested, n / sr, time.perf_counter() - start, timings, warnings,
                           source_f0, source_f0 * ratio, pieces=len(pieces))
    return out, result


def _pad_zero(x: np.ndarray, n: int) -> np.ndarray:
    return np.pad(x[:n], (0, max(0, n - len(x))))


def _release_memory() -> None:
    """Give freed heap memory back to the OS between pieces (glibc keeps it otherwise: RSS creeps up per shape)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # musl or another libc: nothing to do
            pass


def _stitch_frames(per_piece: list[np.ndarray], pieces: list, hop: int, n_samples: int) -> np.ndarray:
    """Frame values of the whole input from each piece's own span (its context frames dropped)."""
    total = n_samples // hop + 1
    out = np.zeros(total, dtype=np.float32)
    for values, p in zip(per_piece, pieces, strict=True):
        a = p.start // hop
        b = total if p.end == n_samples else p.end // hop
        offset = p.ctx_start // hop  # pieces start on the hop grid, so frames line up exactly
        seg = values[a - offset : b - offset]
        out[a : a + len(seg)] = seg
    return out


def _silence_gate(converted: np.ndarray, source: np.ndarray, hop: int = AUDIO.hop_length) -> np.ndarray:
    """Mute the output where the input is silent (below SILENCE_DB), with a smooth per-sample gain."""
    vol_db = 20 * np.log10(np.maximum(frame_volume(source, hop), 1e-10))
    gate = (vol_db > SILENCE_DB).astype(np.float32)
    # Smooth over ~4 frames so the gate never clicks.
    kernel = np.hanning(9)[1:-1]
    gate = np.clip(np.convolve(gate, kernel / kernel.sum() * 2.0, mode="same"), 0.0, 1.0)
    per_sample = np.interp(np.arange(len(converted)), np.arange(len(gate)) * hop, gate).astype(np.float32)
    return converted * per_sample


def match_loudness_envelope(out: np.ndarray, source: np.ndarray, rate: float, hop: int = AUDIO.hop_length) -> np.ndarray:
    """Mix the output's RMS envelope towards the input's (RVC's 'volume envelope' option)."""
    src = frame_volume(source, hop)
    cur = frame_volume(out, hop)
    gain = (np.maximum(src, 1e-6) / np.maximum(cur, 1e-6)) ** rate
    gain = np.minimum(gain, 10.0)
    per_sample = np.interp(np.arange(len(out)), np.arange(len(gain)) * hop, gain).astype(np.float32)
    return out * per_sample


def _limit(x: np.ndarray, ceiling: float = 0.99) -> np.ndarray:
    """Scale down the whole file if it would clip (never hard-clips the waveform)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > ceiling:
        x *= ceiling / peak  # in place: for an hour of audio every full-length copy is 600 MB
    return x


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def output_name(input_path: Path, exp: str, key: float, fmt: str) -> str:
    """``<input stem>_<exp>_key<K>.<fmt>`` (K like 0, 3, -2, 1.5)."""
    k = f"{key:g}"
    return f"{input_path.stem}_{exp}_key{k}.{fmt}"


def collect_inputs(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise NothingToDoError(f"{path}: no audio files in this folder")
        return files
    if not path.is_file():
        raise ConvertError(f"{path}: input file not found")
    return [path]


def convert_files(
    exp_name: str,
    input_path: str | Path,
    output: str | Path | None,
    config: ConvertConfig,
    progress: ProgressFn | None = None,
    models: Models | None = None,
) -> list[ConvertResult]:
    """Convert a file or every audio file of a folder; outputs go to ``output`` (file or folder).

    With one input file, ``output`` may be a file name (its extension sets the format) or a folder;
    default folder: ``logs/<exp>/outputs``.
    """
    config.validate()
    exp = Experiment.open(exp_name)
    if not exp.exists():
        raise ConvertError(f"{exp.root}: no such experiment")
    inputs = collect_inputs(Path(input_path))
    out_arg = Path(output) if output else exp.outputs
    out_ext = out_arg.suffix.lower().lstrip(".")
    if output and out_ext and not out_arg.is_dir():
        # A name with an extension is a file: never create "o.xyz" as a folder, nor a folder named "x.wav".
        if out_ext not in FORMATS:
            raise ConvertError(f"{out_arg}: unknown output format '.{out_ext}' (use {', '.join(FORMATS)}, or a folder name)")
        if len(inputs) > 1:
            raise ConvertError(f"{out_arg}: {len(inputs)} inputs need an output folder, not a file name")
    single_file_target = len(inputs) == 1 and out_ext in FORMATS and not out_arg.is_dir()
    # Before loading models or converting anything: a bad output folder should not cost minutes of work.
    if single_file_target:
        refuse_output_as_input(out_arg, inputs)
    _check_writable(out_arg.parent if single_file_target else out_arg)
    remove_stale_temp_files(out_arg.parent if single_file_target else out_arg, user_folder=output is not None)
    # Headers only (no decoding): a non-audio or too long input fails before the models load.
    infos = [probe_audio(path) for path in inputs]
    for path, info in zip(inputs, infos, strict=True):
        check_length(path, info)
    device = pick_device(config.device)
    models = models or Models.load(exp, config, device)
    results = []
    for i, path in enumerate(inputs):
        sub = scaled(progress, i / len(inputs), (i + 1) / len(inputs))
        wav = load_audio(path, AUDIO.sample_rate, info=infos[i])
        converted, result = convert_waveform(wav, models, config, progress=sub)
        if single_file_target:
            target = out_arg
        elif output:
            target = out_arg / output_name(path, exp.name, result.key, config.format)
            refuse_output_as_input(target, inputs)  # converting a folder of earlier outputs into itself
        else:  # the experiment's outputs history: never replace an earlier result
            target = unique_path(out_arg / output_name(path, exp.name, result.key, config.format))
        try:
            save_audio(target, converted, AUDIO.sample_rate)
        except WriteError:
            raise  # already one line naming the file and the cause
        except OSError as e:
            raise ConvertError(f"{target}: cannot write the output ({e.strerror or e})") from None
        result.input, result.output = path, target
        for w in result.warnings:
            log.warning("%s: %s", path.name, w)
        results.append(result)
    return results


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvertError(f"{folder}: cannot create the output folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ConvertError(f"{folder}: output folder is not writable")


def make_convert_fn(exp_name: str, config: ConvertConfig, results: list[ConvertResult] | None = None) -> ConvertFn:
    """The cover pipeline's ``convert_fn(vocals_path, progress=None) -> converted_path`` (models loaded once).

    The converted files go to ``logs/<exp>/outputs/cover_work`` (work files, replaced by the next cover);
    each call's :class:`ConvertResult` (key, suggested key, warnings) is appended to ``results`` if given.
    """
    config.validate()
    exp = Experiment.open(exp_name)
    if not exp.exists():
        raise ConvertError(f"{exp.root}: no such experiment")
    models = Models.load(exp, config, pick_device(config.device))
    work = exp.outputs / "cover_work"

    def convert_fn(vocals: Path, progress: ProgressFn | None = None) -> Path:
        converted = convert_files(exp.name, vocals, work, config, progress=progress, models=models)
        if results is not None:
            results.extend(converted)
        return converted[0].output

    return convert_fn
