"""The Extract stage: content units, F0, loudness/volume and log-mel of every chunk, cached and resumable.

Layout under ``logs/<exp>/features/``::

    <chunk>/<group>.<settings digest>.<source digest>.npz

one file per chunk and feature group (``content``, ``f0``, ``loudness``, ``mel``). The *settings digest*
hashes everything that changes a group's numbers (content: encoder, layer, projection; f0: method;
loudness and mel: the audio spec) plus a per-group version; the *source digest* hashes the chunk's wav
file the group reads (16 kHz copy for content, 44.1 kHz chunk for the rest). A group whose file name
already exists is skipped, so re-running skips done work, a killed run resumes where it stopped, and
changing ``--f0`` recomputes only F0. Writes are atomic, so a kill never leaves half a file.

Stages run one after another over all pending chunks (content, F0, loudness, mel), each loading its
model once and releasing it before the next one loads, which keeps peak memory at one model. Chunks are
not batched together: ContentVec (attention without a padding mask) and RMVPE (bidirectional GRU) give
different numbers for a zero-padded batch member, and cached features must not depend on batch partners.

Other stages read the features through :mod:`core.features.store` (the contract is described in
docs/extract.md); the file names and settings digests both sides use are defined here.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from core import pretrained
from core.config import AUDIO, load_json, save_json
from core.device import Device, pick_device
from core.errors import NothingToDoError, Remedy, SvcoverError
from core.experiment import Experiment, visible_files
from core.features import f0 as f0_module
from core.features.contentvec import DOWNLOAD_NAME, ContentVec, align_to_frames
from core.features.encoders import ENCODERS, ContentEncoder
from core.features.f0 import F0_METHODS, F0Method
from core.features.loudness import frame_volume, loudness_db
from core.features.mel import log_mel
from core.features.mel import n_frames as mel_frame_count
from core.fsutil import atomic_path, remove_stale_temp_files
from core.progress import ProgressFn, report

log = logging.getLogger(__name__)


GROUPS: tuple[str, ...] = ("content", "f0", "loudness", "mel")
GROUP_ARRAYS: dict[str, tuple[str, ...]] = {
    "content": ("units",),
    "f0": ("f0", "f0_continuous"),
    "loudness": ("volume", "loudness_db"),
    "mel": ("mel",),
}
# Bump a group's version when its computation changes: old cache files then stop matching.
GROUP_VERSIONS: dict[str, int] = {"content": 1, "f0": 1, "loudness": 1, "mel": 1}
# Relative cost of a group per chunk (for one overall progress fraction).
_GROUP_COST: dict[str, float] = {"content": 4.0, "f0": 4.0, "loudness": 0.3, "mel": 1.0}

# Post-processing of every F0 method, passed explicitly so the cache key states what was used
# (frames outside [f0_min, f0_max] Hz are unvoiced; short octave jumps are repaired; "auto" voicing is the
# confidence + level + periodicity decision of core.features.f0.voicing).
F0_PARAMS: dict[str, Any] = {"f0_min": 40.0, "f0_max": 1600.0, "median_size": 0, "octave_fix": True, "voicing": "auto"}
# Every extractor gets at least this much audio (zero-padded; outputs are cropped back to the chunk's
# frame count): below it the conv front ends of ContentVec/RMVPE and reflect padding of the STFTs fail.
MIN_SECONDS = 0.25
# F0 histogram: integer MIDI notes (69 = A4 = 440 Hz) from C1 to C8; voiced frames outside are clipped.
HIST_MIDI_LOW, HIST_MIDI_HIGH = 24, 108


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extract run (``python -m core extract`` flags)."""

    f0_method: str = F0Method.RMVPE
    encoder: str = ContentEncoder.CONTENTVEC768L12
    device: str = Device.AUTO

    def validate(self) -> ExtractConfig:
        if self.encoder not in ENCODERS:
            raise SvcoverError(f"unknown encoder {self.encoder!r}: use one of {', '.join(ENCODERS)}")
        if self.f0_method not in F0_METHODS:
            raise SvcoverError(f"unknown F0 method {self.f0_method!r}: use one of {', '.join(F0_METHODS)}")
        return self

    @property
    def units_dim(self) -> int:
        return ENCODERS[self.encoder].dim


@dataclass
class ExtractReport:
    """What a run did; ``computed``/``skipped`` count chunks per feature group."""

    experiment: str
    n_chunks: int
    audio_seconds: float
    seconds: float
    device: str
    config: ExtractConfig
    computed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    sanitized: list[str] = field(default_factory=list)  # chunks whose samples had NaN/inf (set to 0)
    padded: list[str] = field(default_factory=list)  # chunks shorter than MIN_SECONDS
    silent: list[str] = field(default_factory=list)  # chunks with no voiced F0 frame
    stats_path: Path | None = None

    @property
    def x_realtime(self) -> float:
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        """A few Markdown lines for the CLI and the UI."""
        done = ", ".join(f"{g} {self.computed.get(g, 0)}" for g in GROUPS)
        lines = [
            f"**{self.experiment}**: {self.n_chunks} chunks, {self.audio_seconds / 60:.1f} min of audio, "
            f"{self.config.encoder} + {self.config.f0_method} on {self.device}",
            f"computed: {done} (the rest were cached) in {self.seconds:.1f} s",
        ]
        if self.sanitized:
            lines.append(f"NaN/inf samples replaced by silence in {len(self.sanitized)} chunk(s): {_few(self.sanitized)}")
        if self.padded:
            lines.append(f"{len(self.padded)} chunk(s) shorter than {MIN_SECONDS} s were padded: {_few(self.padded)}")
        if self.silent:
            lines.append(f"{len(self.silent)} chunk(s) have no voiced frame: {_few(self.silent)}")
        if self.stats_path:
            lines.append(f"stats: {self.stats_path}")
        return "\n\n".join(lines)


def _few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (" …" if len(names) > n else "")


# --------------------------------------------------------------------------------------------------
# Extractors (injectable)
# --------------------------------------------------------------------------------------------------

ArrayFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Extractors:
    """The feature functions of one run.

    ``content`` and ``f0`` are *factories*: called at most once per run, and only when a chunk needs
    that group, they load the model and return ``fn(wav) -> array``. ``content_fn(wav16k)`` returns
    ``[frames, C]`` at 50 fps, ``f0_fn(wav44k)`` ``[T]`` Hz on the mel grid. ``preflight(groups)``
    raises before any work if a pretrained file needed by ``groups`` is missing.
    """

    content: Callable[[], ArrayFn]
    f0: Callable[[], ArrayFn]
    mel: ArrayFn  # wav44k -> [128, T] natural-log mel
    n_frames: Callable[[int], int]  # samples at 44.1 kHz -> T
    align: Callable[[np.ndarray, int], np.ndarray]  # ([frames, C], T) -> [T, C]
    continuous_f0: ArrayFn
    preflight: Callable[[set[str]], None] = lambda groups: None
    release: Callable[[str], None] = lambda group: None  # free a group's model after its stage


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def default_extractors(config: ExtractConfig, device: str) -> Extractors:
    """The real extractors (ContentVec, the F0 estimators, the NSF-HiFiGAN mel), imported lazily."""
    spec = ENCODERS[config.encoder]

    def content_factory() -> ArrayFn:
        encoder = ContentVec.from_pretrained(device)

        def content_fn(wav16k: np.ndarray) -> np.ndarray:
            return _to_numpy(encoder.extract(wav16k, layer=spec.layer, final_proj=spec.final_proj))

        return content_fn

    def f0_factory() -> ArrayFn:
        if config.f0_method in (F0Method.RMVPE, F0Method.FCPE):  # load now, once; estimate_f0 reuses the loaded model
            f0_module.load_model(config.f0_method, device)

        def f0_fn(wav44k: np.ndarray) -> np.ndarray:
            return _to_numpy(f0_module.estimate_f0(wav44k, method=config.f0_method, device=device, **F0_PARAMS))

        return f0_fn

    def mel_fn(wav44k: np.ndarray) -> np.ndarray:
        return _to_numpy(log_mel(wav44k, device="cpu" if device == "mps" else device))

    def n_frames_fn(n_samples: int) -> int:
        return int(mel_frame_count(n_samples))

    def align_fn(units: np.ndarray, n: int) -> np.ndarray:
        return _to_numpy(align_to_frames(units, n))

    def continuous_fn(f0: np.ndarray) -> np.ndarray:
        return _to_numpy(f0_module.continuous_f0(f0))

    def release(group: str) -> None:
        if group == "f0":  # the F0 module keeps models per process; free it for the next stage
            f0_module.clear_model_cache()

    def preflight(groups: set[str]) -> None:
        """Name a missing weight file before any work, not after an hour of the previous stage."""
        if "content" in groups:
            pretrained.require(pretrained.CONTENT_ENCODER, pretrained.CONTENT_ENCODER_ALT, download_name=DOWNLOAD_NAME)
        if "f0" in groups and config.f0_method == F0Method.RMVPE:
            pretrained.require(pretrained.RMVPE, download_name="rmvpe")
        if "f0" in groups and config.f0_method == F0Method.FCPE:
            from core.features.f0.fcpe import weight_path

            weight_path()

    return Extractors(
        content=content_factory,
        f0=f0_factory,
        mel=mel_fn,
        n_frames=n_frames_fn,
        align=align_fn,
        continuous_f0=continuous_fn,
        preflight=preflight,
        release=release,
    )


# --------------------------------------------------------------------------------------------------
# Cache keys
# --------------------------------------------------------------------------------------------------


def group_settings(config: ExtractConfig) -> dict[str, dict[str, Any]]:
    """Per group, every setting that changes its numbers (the device does not, beyond float noise)."""
    spec = ENCODERS[config.encoder]
    grid = {"sample_rate": AUDIO.sample_rate, "hop": AUDIO.hop_length}
    return {
        "content": {"encoder": config.encoder, "layer": spec.layer, "final_proj": spec.final_proj,
                    "rate": AUDIO.content_sample_rate, **grid},
        "f0": {"method": config.f0_method, **F0_PARAMS, **grid},
        "loudness": {"window": AUDIO.win_length, **grid},
        "mel": {"n_fft": AUDIO.n_fft, "win": AUDIO.win_length, "n_mels": AUDIO.n_mels, "fmin": AUDIO.fmin,
                "fmax": AUDIO.fmax, "clamp": AUDIO.log_clamp, **grid},
    }  # fmt: skip


def group_digests(config: ExtractConfig) -> dict[str, str]:
    """Short digest of each group's settings (part of the cache file names)."""
    out = {}
    for group, settings in group_settings(config).items():
        payload = json.dumps({"group": group, "version": GROUP_VERSIONS[group], **settings}, sort_keys=True)
        out[group] = hashlib.sha256(payload.encode()).hexdigest()[:10]
    return out


def file_digest(path: Path) -> str:
    """Content hash of a file (first 16 hex digits of SHA-256)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _group_file(exp: Experiment, chunk: str, group: str, settings: str, source: str) -> Path:
    return exp.features / chunk / f"{group}.{settings}.{source}.npz"


def find_group_file(exp: Experiment, chunk: str, group: str, settings: str) -> Path | None:
    """The newest file of ``group`` for ``chunk`` with the settings digest ``settings`` (any source digest)."""
    matches = visible_files(exp.features / chunk, f"{group}.{settings}.*.npz")
    return max(matches, key=lambda p: p.stat().st_mtime) if matches else None


# --------------------------------------------------------------------------------------------------
# Chunks and audio
# --------------------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    name: str
    wav44: Path
    wav16: Path | None
    _digests: dict[str, str] = field(default_factory=dict)

    def source_digest(self, group: str) -> str:
        key = "16k" if group == "content" else "44k"
        if key not in self._digests:
            if key == "16k" and self.wav16 is not None:
                self._digests[key] = file_digest(self.wav16)
            elif key == "16k":  # no 16 kHz copy: content is computed from the resampled 44.1 kHz chunk
                self._digests[key] = "r" + file_digest(self.wav44)[:15]
            else:
                self._digests[key] = file_digest(self.wav44)
        return self._digests[key]


def as_experiment(exp: str | Experiment) -> Experiment:
    """An :class:`Experiment` from itself or its name."""
    return exp if isinstance(exp, Experiment) else Experiment.open(exp)


def _list_chunks(exp: Experiment) -> list[_Chunk]:
    if not exp.exists():
        raise SvcoverError(f"{exp.root}: experiment not found", remedy=Remedy("dataset", exp.name))
    wavs = visible_files(exp.gt_wavs, "*.wav")
    if not wavs:
        raise NothingToDoError(
            f"{exp.gt_wavs}: no chunks to extract: the dataset is not built yet", remedy=Remedy("dataset", exp.name)
        )
    chunks = []
    for wav in wavs:
        copy16 = exp.wavs16k / wav.name
        chunks.append(_Chunk(name=wav.stem, wav44=wav, wav16=copy16 if copy16.is_file() else None))
    return chunks


def _read_wav(path: Path, sr: int) -> np.ndarray:
    """Mono float32 at ``sr`` (resampled with soxr when the file has another rate)."""
    try:
        wav, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for unreadable files
        raise SvcoverError(f"{path}: cannot read this chunk ({e})") from None
    wav = wav.mean(axis=1, dtype=np.float32) if wav.shape[1] > 1 else wav[:, 0]
    if file_sr != sr:
        wav = soxr.resample(wav, file_sr, sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(wav)


@dataclass
class _Audio:
    wav: np.ndarray  # finite, padded to at least MIN_SECONDS
    n_original: int  # samples before padding
    sanitized: bool
    padded: bool


def _prepare(wav: np.ndarray, sr: int) -> _Audio:
    n = wav.size
    finite = np.isfinite(wav)
    sanitized = not finite.all()
    if sanitized:
        wav = np.where(finite, wav, 0.0).astype(np.float32)
    min_samples = math.ceil(MIN_SECONDS * sr)
    padded = n < min_samples
    if padded:
        wav = np.pad(wav, (0, min_samples - n))
    return _Audio(wav=wav, n_original=n, sanitized=sanitized, padded=padded)


def _fit_frames(x: np.ndarray, n: int, what: str, axis: int = 0) -> np.ndarray:
    """Crop or edge-pad ``x`` along ``axis`` to ``n`` frames (extractors may differ by a frame or two)."""
    have = x.shape[axis]
    if have == n:
        return x
    if have == 0:
        raise SvcoverError(f"{what}: the extractor returned no frames")
    if have > n:
        return np.take(x, np.arange(n), axis=axis)
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, n - have)
    return np.pad(x, widths, mode="edge")


def _finite(x: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------

StageProgress = Callable[[str, int, int], None]  # (stage, done, total)


def run_extract(
    exp: str | Experiment,
    config: ExtractConfig,
    progress: ProgressFn | None = None,
    *,
    extractors: Extractors | None = None,
    stage_progress: StageProgress | None = None,
) -> ExtractReport:
    """Compute (or reuse) the features of every chunk of ``exp`` and write ``stats.json``.

    Parameters
    ----------
    exp: experiment name or :class:`Experiment`; its ``0_gt_wavs`` (and ``1_16k_wavs``) must exist.
    config: encoder, F0 method and device.
    progress: overall ``progress(fraction, message)`` (the UI); ``stage_progress(stage, done, total)``
        reports per stage (the CLI's per-stage bars).
    extractors: the feature functions (default: the real models on the chosen device).

    Returns
    -------
    An :class:`ExtractReport`. Raises :class:`SvcoverError` subclasses for a missing experiment, no
    chunks, an unreadable chunk or a missing pretrained file (before any work is done).
    """
    start = time.perf_counter()
    config.validate()
    exp = as_experiment(exp)
    chunks = _list_chunks(exp)
    remove_stale_temp_files(exp.root)
    remove_stale_temp_files(exp.features, recursive=True)  # temp files of a killed run
    if extractors is None:
        device = pick_device(config.device)
        extractors = default_extractors(config, device)
    else:
        device = config.device
    digests = group_digests(config)

    report(progress, 0.0, f"checking {len(chunks)} chunks")
    # What is already there: a group is done when its file for (settings, source) exists.
    pending: dict[str, list[_Chunk]] = {g: [] for g in GROUPS}
    for chunk in chunks:
        for group in GROUPS:
            if not _group_file(exp, chunk.name, group, digests[group], chunk.source_digest(group)).is_file():
                pending[group].append(chunk)
    needed = {g for g in GROUPS if pending[g]}
    extractors.preflight(needed)
    _record_config(exp, config, device, digests)

    rep = ExtractReport(experiment=exp.name, n_chunks=len(chunks), audio_seconds=0.0, seconds=0.0,
                        device=device, config=config)  # fmt: skip
    rep.skipped = {g: len(chunks) - len(pending[g]) for g in GROUPS}
    total_cost = sum(_GROUP_COST[g] * len(pending[g]) for g in GROUPS) or 1.0
    stats_share = 0.05
    done_cost = 0.0
    flagged: dict[str, set[str]] = {"sanitized": set(), "padded": set()}

    def tick(group: str, i: int, n: int, name: str) -> None:
        nonlocal done_cost
        done_cost += _GROUP_COST[group]
        report(progress, (1 - stats_share) * min(1.0, done_cost / total_cost), f"{group} {i}/{n}: {name}")
        if stage_progress is not None:
            stage_progress(group, i, n)

    with _inference_mode():
        for group in GROUPS:
            todo = pending[group]
            rep.computed[group] = 0
            if not todo:
                continue
            report(progress, (1 - stats_share) * min(1.0, done_cost / total_cost), f"{group}: loading")
            compute = _stage_function(group, extractors)  # loads the group's model
            if stage_progress is not None:
                stage_progress(group, 0, len(todo))
            for i, chunk in enumerate(todo, 1):
                arrays, audio = compute(chunk)
                if audio.sanitized:
                    flagged["sanitized"].add(chunk.name)
                if audio.padded:
                    flagged["padded"].add(chunk.name)
                target = _group_file(exp, chunk.name, group, digests[group], chunk.source_digest(group))
                _save_group(target, arrays)
                rep.computed[group] += 1
                tick(group, i, len(todo), chunk.name)
            del compute
            extractors.release(group)
            _release_memory(device)

    _prune(exp, chunks)
    report(progress, 1 - stats_share, "stats")
    stats, rep.silent = compute_stats(exp, config, [c.name for c in chunks])
    save_json(exp.stats, stats)
    rep.stats_path = exp.stats
    rep.audio_seconds = stats["audio_seconds"]
    rep.sanitized = sorted(flagged["sanitized"])
    rep.padded = sorted(flagged["padded"])
    for name in rep.sanitized:
        log.warning("chunk %s: NaN/inf samples were replaced by silence", name)
    rep.seconds = time.perf_counter() - start
    report(progress, 1.0, "done")
    return rep


def _stage_function(group: str, ex: Extractors) -> Callable[[_Chunk], tuple[dict[str, np.ndarray], _Audio]]:
    """The per-chunk function of one group; loads that group's model now (once per run)."""
    sr = AUDIO.sample_rate

    def load44(chunk: _Chunk) -> tuple[_Audio, int]:
        audio = _prepare(_read_wav(chunk.wav44, sr), sr)
        return audio, ex.n_frames(audio.n_original)

    if group == "content":
        content_fn = ex.content()
        sr16 = AUDIO.content_sample_rate

        def content(chunk: _Chunk) -> tuple[dict[str, np.ndarray], _Audio]:
            n44 = _read_n_samples(chunk.wav44)
            wav16 = _read_wav(chunk.wav16 if chunk.wav16 is not None else chunk.wav44, sr16)
            audio = _prepare(wav16, sr16)
            t = ex.n_frames(n44)
            units = _finite(content_fn(audio.wav))
            if units.ndim != 2 or units.shape[0] == 0:
                raise SvcoverError(f"{chunk.wav16 or chunk.wav44}: content encoder returned shape {units.shape}")
            if audio.padded:  # align over the padded duration, then keep the chunk's own frames
                t_padded = ex.n_frames(math.ceil(audio.wav.size * sr / sr16))
                aligned = _finite(ex.align(units, max(t_padded, t)))[:t]
            else:
                aligned = _finite(ex.align(units, t))
            return {"units": _fit_frames(aligned, t, chunk.name)}, audio

        return content

    if group == "f0":
        f0_fn = ex.f0()

        def f0(chunk: _Chunk) -> tuple[dict[str, np.ndarray], _Audio]:
            audio, t = load44(chunk)
            hz = _fit_frames(_finite(f0_fn(audio.wav)).reshape(-1), t, chunk.name)
            hz = np.where(hz > 0, hz, 0.0).astype(np.float32)
            cont = _fit_frames(_finite(ex.continuous_f0(hz)).reshape(-1), t, chunk.name)
            return {"f0": hz, "f0_continuous": cont}, audio

        return f0

    if group == "loudness":

        def loudness(chunk: _Chunk) -> tuple[dict[str, np.ndarray], _Audio]:
            audio, t = load44(chunk)
            wav = audio.wav[: audio.n_original]  # silence padding would only add frames we crop anyway
            return {
                "volume": _fit_frames(frame_volume(wav), t, chunk.name),
                "loudness_db": _fit_frames(loudness_db(wav), t, chunk.name),
            }, audio

        return loudness

    def mel(chunk: _Chunk) -> tuple[dict[str, np.ndarray], _Audio]:
        audio, t = load44(chunk)
        spec = _finite(ex.mel(audio.wav))
        if spec.ndim != 2 or spec.shape[0] != AUDIO.n_mels:
            raise SvcoverError(f"{chunk.wav44}: mel extractor returned shape {spec.shape}")
        return {"mel": _fit_frames(spec, t, chunk.name, axis=1)}, audio

    return mel


def _read_n_samples(path: Path) -> int:
    info = sf.info(str(path))
    if info.samplerate == AUDIO.sample_rate:
        return int(info.frames)
    return int(round(info.frames * AUDIO.sample_rate / info.samplerate))


def _save_group(target: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(target) as tmp:
        np.savez(tmp, **arrays)
    # Keep one variant per group: other settings or an older source version of this chunk are stale.
    group = target.name.split(".", 1)[0]
    for old in visible_files(target.parent, f"{group}.*.npz"):
        if old != target:
            old.unlink(missing_ok=True)


def _prune(exp: Experiment, chunks: list[_Chunk]) -> None:
    """Remove the feature folders of chunks that are no longer in the dataset."""
    keep = {c.name for c in chunks}
    if not exp.features.is_dir():
        return
    for folder in exp.features.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _inference_mode():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the real extractors
        yield
        return
    with torch.inference_mode():
        yield


def _release_memory(device: str) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _record_config(exp: Experiment, config: ExtractConfig, device: str, digests: dict[str, str]) -> None:
    """Merge this run's settings into ``config.json`` under ``"extract"`` (atomically)."""
    data: dict[str, Any] = {}
    if exp.config.is_file():
        try:
            data = load_json(exp.config)
        except (OSError, ValueError):
            log.warning("%s is not valid JSON; rewriting it", exp.config)
        if not isinstance(data, dict):
            data = {}
    spec = ENCODERS[config.encoder]
    data["extract"] = {
        "encoder": config.encoder,
        "layer": spec.layer,
        "final_proj": spec.final_proj,
        "units_dim": spec.dim,
        "f0_method": config.f0_method,
        "device": device,
        "frame_grid": {"sample_rate": AUDIO.sample_rate, "hop": AUDIO.hop_length, "frames": "n_samples // hop + 1"},
        "group_digests": digests,
        "group_versions": GROUP_VERSIONS,
    }
    exp.root.mkdir(parents=True, exist_ok=True)
    save_json(exp.config, data)


def hz_to_midi(hz: np.ndarray) -> np.ndarray:
    """MIDI note numbers (69 = A4 = 440 Hz) of positive frequencies."""
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)


def compute_stats(exp: Experiment, config: ExtractConfig, chunks: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Mel range per bin, F0 range and histogram, loudness/volume moments over the given chunks.

    Returns the stats.json content and the chunks that have no voiced frame.
    """
    digests = group_digests(config)
    mel_min = np.full(AUDIO.n_mels, np.inf)
    mel_max = np.full(AUDIO.n_mels, -np.inf)
    voiced: list[np.ndarray] = []
    loud_sum = loud_sq = vol_sum = vol_sq = 0.0
    n_frames = 0
    silent = []
    for chunk in chunks:
        arrays: dict[str, np.ndarray] = {}
        for group in ("f0", "loudness", "mel"):
            path = find_group_file(exp, chunk, group, digests[group])
            if path is None:
                raise SvcoverError(f"{exp.features / chunk}: {group} features missing after extraction")
            with np.load(path, allow_pickle=False) as data:
                arrays.update({k: data[k] for k in GROUP_ARRAYS[group]})
        mel = arrays["mel"].astype(np.float64)
        mel_min = np.minimum(mel_min, mel.min(axis=1))
        mel_max = np.maximum(mel_max, mel.max(axis=1))
        f0 = arrays["f0"]
        v = f0[f0 > 0]
        if v.size == 0:
            silent.append(chunk)
        voiced.append(v.astype(np.float64))
        db = arrays["loudness_db"].astype(np.float64)
        vol = arrays["volume"].astype(np.float64)
        loud_sum += db.sum()
        loud_sq += (db * db).sum()
        vol_sum += vol.sum()
        vol_sq += (vol * vol).sum()
        n_frames += db.size

    all_voiced = np.concatenate(voiced) if voiced else np.zeros(0)
    centres = np.arange(HIST_MIDI_LOW, HIST_MIDI_HIGH + 1)
    counts = np.zeros(centres.size, dtype=np.int64)
    if all_voiced.size:
        idx = np.clip(np.rint(hz_to_midi(all_voiced)).astype(np.int64), HIST_MIDI_LOW, HIST_MIDI_HIGH) - HIST_MIDI_LOW
        counts = np.bincount(idx, minlength=centres.size)
        p5, p50, p95 = (float(x) for x in np.percentile(all_voiced, [5, 50, 95]))
    else:
        p5 = p50 = p95 = None

    def moments(total: float, squares: float) -> tuple[float, float]:
        mean = total / n_frames if n_frames else 0.0
        var = squares / n_frames - mean * mean if n_frames else 0.0
        return float(mean), float(math.sqrt(max(var, 0.0)))

    loud_mean, loud_std = moments(loud_sum, loud_sq)
    vol_mean, vol_std = moments(vol_sum, vol_sq)
    finite_bins = np.isfinite(mel_min)
    return {
        "mel_min": np.where(finite_bins, mel_min, 0.0).astype(float).tolist(),
        "mel_max": np.where(finite_bins, mel_max, 0.0).astype(float).tolist(),
        "f0_hz_p5": p5,
        "f0_hz_p50": p50,
        "f0_hz_p95": p95,
        "f0_midi_p5": float(hz_to_midi(p5)) if p5 else None,
        "f0_midi_p50": float(hz_to_midi(p50)) if p50 else None,
        "f0_midi_p95": float(hz_to_midi(p95)) if p95 else None,
        "f0_semitone_hist": {
            "unit": "midi",
            "note": "bins are integer MIDI note numbers (69 = A4 = 440 Hz), each counting voiced frames within "
            "half a semitone; frames outside the range are counted in the end bins",
            "bins": centres.tolist(),
            "counts": counts.tolist(),
        },
        "f0_voiced_frames": int(all_voiced.size),
        "loudness_db_mean": loud_mean,
        "loudness_db_std": loud_std,
        "volume_mean": vol_mean,
        "volume_std": vol_std,
        "n_chunks": len(chunks),
        "n_frames": int(n_frames),
        "audio_seconds": float(n_frames * AUDIO.hop_length / AUDIO.sample_rate),
        "encoder": config.encoder,
        "f0_method": config.f0_method,
        "units_dim": config.units_dim,
    }, silent
