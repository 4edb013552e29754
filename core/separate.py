"""Vocal separation on the ``audio-separator`` package, offline, chunked and cached per song.

A song goes through up to three separation passes, each one audio-separator model:

1. vocals / instrumental (``--separator``; default per device, see :mod:`core.separation_models`:
   a Mel-Band Roformer on a CUDA GPU, MDX-Net ONNX on a CPU);
2. optional lead / backing split of the vocals (a karaoke model);
3. optional de-reverb of the lead vocal.

Design choices (see docs/cover.md):

* Only audio-separator's public ``Separator`` API is used (``load_model`` + ``separate``), so any
  architecture it supports works. svcover installs it with ``--no-deps`` because its declared
  dependencies pull torchvision / another torch build; the MDX (ONNX Runtime) path needs only ``six``
  beyond our own requirements. Its MDX module imports ``onnx2torch`` (which imports torchvision) only
  to convert models whose segment size differs from the model's ``dim_t``; we always run MDX models
  at their own ``dim_t`` through ONNX Runtime, so when onnx2torch is absent a stub stands in for it.
  Roformers run through its MDXC path, which needs einops, rotary-embedding-torch, beartype and
  ml-collections (pure Python, none needs torchaudio).
* No pickled code runs: every ``torch.load`` audio-separator makes (Roformer/MDXC ``.ckpt``, VR
  ``.pth``, its MDX mixer) goes through :func:`core.checkpoints.safe_load` (:func:`install_torch_load_guard`),
  and Demucs models, whose files store Python classes by design, are refused with one line.
* Offline: model files and audio-separator's metadata files (``download_checks.json``,
  ``mdx_model_data.json``, ``vr_model_data.json``) live in ``pretrained/uvr/``. The separator's
  downloader is replaced by a guard that raises :class:`MissingPretrainedError` naming the file, so
  no network access can ever happen during separation.
* Memory stays bounded whatever the song length: the song is decoded once to a stereo 44.1 kHz
  float wav on disk and separated in windows of ``chunk_seconds`` that overlap by
  ``overlap_seconds``; overlaps are joined with sin²/cos² weights (they sum to one, which is right
  for the strongly correlated outputs of the same model on the same audio).
* Each pass is cached under ``<logs>/.stems/<input sha>/<model>-<settings hash>/`` with a JSON
  sidecar of its arguments, written last: a re-run with the same song content and separation
  settings skips separation entirely, whatever the voice, key or mix.
  The folder starts with ``.`` so it is never listed as an experiment.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import tempfile
import threading
import types
import warnings
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

import core.checkpoints
from core.audio import decode_audio
from core.config import AUDIO, save_json
from core.errors import AudioDecodeError, CheckpointError, MissingPretrainedError, Remedy, SvcoverError
from core.experiment import logs_root
from core.ffmpeg_tool import ffmpeg_on_path, point_pydub_at
from core.fsutil import atomic_path
from core.pretrained import UVR_DIR, entry_for_path, pretrained_root
from core.progress import ProgressFn, report, scaled
from core.separation_models import (
    ENSEMBLE_PREFIX,
    catalogue_entry,
    cuda_available,
    default_model,
    ensemble_presets,
    roformer_config_name,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = AUDIO.sample_rate  # stems at the project's rate (also the separation models' own)
# "auto": the device decides (core.separation_models.default_model — the only place that does).
AUTO = "auto"
# The CPU-only defaults, kept as names for callers that want MDX-Net explicitly.
DEFAULT_VOCAL_MODEL = "UVR-MDX-NET-Voc_FT.onnx"
DEFAULT_KARAOKE_MODEL = "UVR_MDXNET_KARA_2.onnx"  # lead vocal vs. backing vocals
DEFAULT_DEREVERB_MODEL = "Reverb_HQ_By_FoxJoy.onnx"  # dry vocal vs. reverb tail
# Roformer segment for the lower-memory setting (STFT frames; the default models use 801 = 8 s).
LOW_MEMORY_SEGMENT_FRAMES = 256
METADATA_FILES = ("download_checks.json", "mdx_model_data.json", "vr_model_data.json")
DOWNLOAD_NAME = "uvr_vocals"  # the registry entry with the vocal model and the metadata files
CACHE_DIRNAME = ".stems"
STEM_FORMAT = "wav"  # 32-bit float: stems may pass 1.0 (mp3 songs do), which 16/24-bit files would clip
_CACHE_VERSION = 2
# Stem names (lower case) audio-separator models use for what each pass keeps.
_VOCAL_NAMES = ("vocals", "lead vocals", "lead_only", "lead", "karaoke")
_DRY_NAMES = ("no reverb", "no echo", "no reverb/echo", "dry", "no noise", "noreverb")
NO_VOCALS_DB = -45.0  # a vocal stem quieter than this (RMS dBFS) counts as "no vocals"


class SeparationError(SvcoverError):
    """Separation could not run (unknown model, unreadable metadata, failed pass)."""


@dataclass(frozen=True)
class SeparationSettings:
    """Every argument that changes the stems; part of the cache key."""

    model: str = AUTO  # a file in pretrained/uvr/, "preset:<id>" (an audio-separator ensemble) or "auto"
    split_backing: bool = False
    karaoke_model: str = AUTO
    dereverb: bool = False
    dereverb_model: str = AUTO
    chunk_seconds: float = 30.0
    overlap_seconds: float = 2.0
    # Roformer/MDXC only: STFT frames per model segment (None: the model's own, from its yaml) and
    # how many segments overlap at each sample (audio-separator's MDXC "overlap"). A smaller segment
    # needs less GPU memory (LOW_MEMORY_SEGMENT_FRAMES), more overlap costs proportionally more time.
    segment_frames: int | None = None
    segment_overlap: int = 2

    def __post_init__(self) -> None:
        if self.chunk_seconds <= 2 * self.overlap_seconds or self.overlap_seconds < 0:
            raise SvcoverError(
                f"chunk of {self.chunk_seconds} s must be longer than twice the {self.overlap_seconds} s overlap"
            )
        for name in (self.model, self.karaoke_model, self.dereverb_model):
            if not name or Path(name).name != name:
                raise SvcoverError(f"separation model {name!r}: give a file name inside pretrained/uvr/, not a path")
        if self.segment_frames is not None and not 16 <= self.segment_frames <= 4096:
            raise SvcoverError(f"segment of {self.segment_frames} frames: use 16..4096 (the models' own is 801)")
        if not 1 <= self.segment_overlap <= 16:
            raise SvcoverError(f"segment overlap {self.segment_overlap}: use 1..16")

    def resolved(self, model_dir: Path | None = None, cuda: bool | None = None) -> SeparationSettings:
        """These settings with every "auto" model replaced by the default for this machine."""

        def pick(name: str, role: str) -> str:
            return default_model(role, cuda=cuda, model_dir=model_dir) if name == AUTO else name

        return replace(self, model=pick(self.model, "vocals"), karaoke_model=pick(self.karaoke_model, "karaoke"),
                       dereverb_model=pick(self.dereverb_model, "dereverb"))  # fmt: skip


@dataclass
class Stems:
    """The files of one separated song. ``vocals`` is the lead vocal to convert."""

    song: Path
    song_sha256: str
    vocals: Path
    instrumental: Path
    backing: Path | None = None
    full_vocals: Path | None = None  # before the lead/backing split and de-reverb
    vocals_rms_db: float = 0.0
    cached: bool = True  # every pass came from the cache
    models: tuple[str, ...] = ()  # the model of each pass that ran (after "auto" was resolved)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_vocals(self) -> bool:
        return self.vocals_rms_db > NO_VOCALS_DB


# ----------------------------------------------------------------------------------------------
# Locations, hashes, environment checks


def uvr_dir() -> Path:
    """``<pretrained>/uvr``: separation models and audio-separator's metadata files."""
    return pretrained_root() / UVR_DIR


def stems_cache_root() -> Path:
    """``<logs>/.stems``: stems shared by every experiment (a dot-folder, never listed as one)."""
    return logs_root() / CACHE_DIRNAME


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def model_md5(path: Path) -> str:
    """The hash audio-separator looks models up by: MD5 of the last 10,240,000 bytes (or the whole file)."""
    size_to_hash = 10000 * 1024
    with open(path, "rb") as f:
        size = path.stat().st_size
        if size >= size_to_hash:
            f.seek(size - size_to_hash)
        return hashlib.md5(f.read()).hexdigest()


def _missing(path: Path) -> MissingPretrainedError:
    """The error for a missing model or metadata file, naming the registry entry that provides it (the name
    the Models tab shows); a model svcover's registry does not know falls back to the vocal model's entry."""
    entry = entry_for_path(f"{UVR_DIR}/{path.name}")
    return MissingPretrainedError(
        f"missing separation file {path}", remedy=Remedy("download", entry.name if entry else DOWNLOAD_NAME,
                                                          "or copy it there by hand"),
    )  # fmt: skip


def model_arch(model: str) -> str:
    """audio-separator's architecture for a model file name: MDX, MDXC (incl. Roformer), VR or Demucs."""
    suffix = Path(model).suffix.lower()
    return {".onnx": "MDX", ".ckpt": "MDXC", ".pth": "VR", ".yaml": "Demucs", ".th": "Demucs"}.get(suffix, "unknown")


def check_model_files(model: str, model_dir: Path | None = None) -> Path:
    """Path of ``model`` in ``model_dir`` after checking it, its yaml (Roformer/MDXC) and the metadata files.

    Raises :class:`MissingPretrainedError` naming the first missing file, :class:`SeparationError`
    for Demucs models (refused: see :func:`refuse_unsafe_architecture`) and unknown file types.
    """
    model_dir = model_dir or uvr_dir()
    refuse_unsafe_architecture(model)
    names = [model, *METADATA_FILES]
    if model_arch(model) == "MDXC":
        config = roformer_config_name(model, model_dir)
        if config is None:
            raise SeparationError(
                f"{model_dir / model}: no yaml config is known for this checkpoint; list it in "
                f"{model_dir / 'download_checks.json'} (roformer_download_list) with its yaml"
            )
        names.insert(1, config)
    for name in names:
        if not (model_dir / name).is_file():
            raise _missing(model_dir / name)
    return model_dir / model


def refuse_unsafe_architecture(model: str) -> None:
    """Demucs models are refused: their ``.th`` files pickle the model class itself, so loading them
    means running whatever code the file names (audio-separator calls ``torch.load(weights_only=False)``).
    """
    arch = model_arch(model)
    if arch == "Demucs":
        raise SeparationError(
            f"{model}: Demucs models are not supported: their files store Python objects that would be "
            "unpickled (a crafted file could run code); use a Roformer (.ckpt) or MDX-Net (.onnx) model"
        )
    if arch == "unknown":
        raise SeparationError(f"{model}: not a separation model file (.onnx, .ckpt or .pth)")


def roformer_segment_frames(model_path: Path, model_dir: Path) -> int | None:
    """``inference.dim_t`` of an MDXC/Roformer model's yaml (its own segment in STFT frames), None for others."""
    if model_arch(model_path.name) != "MDXC":
        return None
    config = model_dir / (roformer_config_name(model_path.name, model_dir) or "")
    data = read_model_yaml(config)
    inference = data.get("inference") or {}
    audio = data.get("audio") or {}
    frames = inference.get("dim_t") or audio.get("dim_t")
    if not isinstance(frames, int) or frames < 2:
        raise SeparationError(f"{config}: no usable inference.dim_t (segment length) in this model config")
    return frames


def read_model_yaml(path: Path) -> dict:
    """A model yaml as audio-separator writes them (``!!python/tuple`` allowed, nothing else executable)."""
    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node)))
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, yaml.YAMLError) as e:
        raise SeparationError(f"{path}: unreadable model config ({_first_line(e)}); fetch it again") from None
    if not isinstance(data, dict):
        raise SeparationError(f"{path}: model config is not a YAML mapping; fetch it again")
    return data


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SeparationError(f"{path}: unreadable metadata file ({e.__class__.__name__}); fetch it again") from None
    if not isinstance(data, dict):
        raise SeparationError(f"{path}: metadata file is not a JSON object; fetch it again")
    return data


def mdx_segment_size(model_path: Path) -> int | None:
    """``2**mdx_dim_t_set`` of an MDX (.onnx) model from mdx_model_data.json, None for other architectures.

    Running an MDX model at its own dim_t keeps it on ONNX Runtime (no onnx2torch conversion).
    """
    if model_path.suffix.lower() != ".onnx":
        return None
    data_path = model_path.parent / "mdx_model_data.json"
    entry = _read_json(data_path).get(model_md5(model_path))
    if entry is None:
        with contextlib.suppress(Exception):
            bundled = json.loads(resources.files("audio_separator").joinpath("model-data.json").read_text("utf-8"))
            entry = bundled.get("mdx_model_data", {}).get(model_md5(model_path))
    if entry is None:
        raise SeparationError(
            f"{model_path}: not an MDX model listed in {data_path.name} (MD5 {model_md5(model_path)}); "
            "the file may be damaged or from another program"
        )
    return 2 ** int(entry["mdx_dim_t_set"])


def gpu_warning() -> str | None:
    """A warning when torch sees a CUDA GPU but ONNX Runtime cannot use it (separation then runs on CPU)."""
    try:
        import onnxruntime as ort
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return None
    return (
        "a CUDA GPU is present but onnxruntime has no CUDAExecutionProvider: separation runs on the CPU "
        "(slow). Run the launcher once with SVCOVER_REINSTALL=1: it installs the onnxruntime-gpu build that "
        "matches torch's CUDA version (docs/install.md)"
    )


# ----------------------------------------------------------------------------------------------
# audio-separator session


def _ensure_onnx2torch_importable() -> None:
    """Let audio-separator's MDX module import without onnx2torch (which needs torchvision).

    onnx2torch is only used to run an MDX model at a segment size other than its dim_t; svcover
    never does that, so the stub raises a clear error if it is ever reached.
    """
    if "onnx2torch" in sys.modules or importlib.util.find_spec("onnx2torch") is not None:
        return
    stub = types.ModuleType("onnx2torch")

    def convert(*_args, **_kwargs):
        raise SeparationError("this MDX model needs onnx2torch (segment size differs from dim_t), which svcover does not install")

    stub.convert = convert  # type: ignore[attr-defined]
    sys.modules["onnx2torch"] = stub


@contextlib.contextmanager
def _audio_separator_env() -> object:
    """Silence audio-separator's global warning filter and ignore its model-dir override variable."""
    saved = os.environ.pop("AUDIO_SEPARATOR_MODEL_DIR", None)
    try:
        with warnings.catch_warnings():
            # torch deprecation notes and a 0/0 in audio-separator's padding region, both harmless
            warnings.simplefilter("ignore")
            yield
    finally:
        if saved is not None:
            os.environ["AUDIO_SEPARATOR_MODEL_DIR"] = saved


class _Session:
    """One loaded audio-separator model writing float wav stems into ``work_dir``."""

    def __init__(self, model: str, model_dir: Path, work_dir: Path, settings: SeparationSettings | None = None):
        settings = settings or SeparationSettings()
        model_path = check_model_files(model, model_dir)
        segment_size = mdx_segment_size(model_path)
        roformer_frames = roformer_segment_frames(model_path, model_dir)
        _ensure_onnx2torch_importable()
        install_torch_load_guard()
        # audio-separator runs `ffmpeg -version` in Separator() and pydub looks ffmpeg up when imported;
        # nothing runs it afterwards (stems are written with soundfile).
        with _audio_separator_env(), ffmpeg_on_path() as ffmpeg_exe:
            try:
                from audio_separator.separator import Separator
            except ImportError as e:
                raise SeparationError(
                    f"audio-separator is not installed ({e}); run: pip install --no-deps -r requirements-nodeps.txt"
                ) from None
            mdx_params = {"hop_length": 1024, "segment_size": segment_size or 256, "overlap": 0.25,
                          "batch_size": 1, "enable_denoise": False}  # fmt: skip
            # Always the explicit segment: audio-separator would otherwise switch to its 256-frame
            # default for inputs under 10 s (our last window can be that short).
            mdxc_params = {"segment_size": settings.segment_frames or roformer_frames or 256,
                           "override_model_segment_size": True, "overlap": settings.segment_overlap,
                           "batch_size": 1, "pitch_shift": 0}  # fmt: skip
            self.separator = Separator(
                log_level=logging.ERROR,  # it logs routine steps as warnings; we check providers ourselves
                model_file_dir=str(model_dir),
                output_dir=str(work_dir),
                output_format="WAV",
                use_soundfile=True,  # float in -> float out, no pydub round trip
                normalization_threshold=1.0,  # never rescale a stem unless it would clip
                sample_rate=SAMPLE_RATE,
                mdx_params=mdx_params,
                mdxc_params=mdxc_params,
            )
            # Everything must already be on disk: any download attempt names the missing file instead.
            self.separator.download_file_if_not_exists = _refuse_download
            try:
                with _torch_loads_verified():
                    self.separator.load_model(model)
            except SvcoverError:
                raise
            except ImportError as e:
                raise SeparationError(
                    f"{model_path}: audio-separator needs the Python package '{e.name}' (pip install {e.name})"
                ) from None
            except (Exception, SystemExit) as e:  # a damaged or foreign model file: the user re-downloads it
                # audio-separator wraps loader errors (ours included) and its MDXC path calls sys.exit(1)
                ours = _svcover_cause(e)
                if ours is not None:
                    raise ours from None
                raise SeparationError(f"{model_path}: audio-separator cannot load it ({_first_line(e)})") from None
            point_pydub_at(ffmpeg_exe)  # imported by now (its separator modules use it)
        instance = self.separator.model_instance
        self.primary: str = instance.primary_stem_name
        self.secondary: str = instance.secondary_stem_name
        self.compensate = float(getattr(instance, "compensate", 1.0) or 1.0)
        self.work_dir = work_dir
        self.model = model

    def separate(self, wav_path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(primary, secondary) float32 [N, 2] arrays of one chunk."""
        names = {self.primary: "primary", self.secondary: "secondary"}
        # audio-separator draws a tqdm bar per call on stderr; svcover reports progress itself.
        with _audio_separator_env(), contextlib.redirect_stderr(io.StringIO()), _torch_loads_verified():
            files = self.separator.separate(str(wav_path), custom_output_names=names)
        out = {}
        for name in files:
            path = Path(name) if Path(name).is_absolute() else self.work_dir / name
            out[path.stem] = sf.read(str(path), dtype="float32", always_2d=True)[0]
            path.unlink()
        if set(out) != {"primary", "secondary"}:
            raise SeparationError(f"{self.model}: audio-separator wrote {sorted(out)} instead of two stems")
        return out["primary"], out["secondary"]


def _roformer_on_cpu_warning(models: list[str]) -> str | None:
    """Roformers chosen on a machine without CUDA: say how slow that is (measured numbers in the catalogue)."""
    roformers = [m for m in models if model_arch(m) == "MDXC"]
    if not roformers or cuda_available():
        return None
    known = [e.cpu_s_per_min for e in map(catalogue_entry, roformers) if e is not None and e.cpu_s_per_min]
    cost = f" (about {max(known) / 60:.0f} CPU minutes per minute of audio)" if known else ""
    return (f"{', '.join(roformers)}: Roformer models run on the CPU here, no CUDA GPU{cost}; "
            "the MDX-Net models ('auto' on this machine) are several times faster")  # fmt: skip


def _svcover_cause(e: BaseException) -> SvcoverError | None:
    """The first svcover error in an exception's cause/context chain (audio-separator re-wraps them)."""
    seen = 0
    current: BaseException | None = e
    while current is not None and seen < 10:
        if isinstance(current, SvcoverError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


# ----------------------------------------------------------------------------------------------
# No third-party unpickling: audio-separator's torch.load calls go through safe_load

_guard_lock = threading.Lock()
_guard_state = threading.local()


def install_torch_load_guard() -> None:
    """Make every ``torch.load`` made by audio-separator's code use :func:`core.checkpoints.safe_load`.

    audio-separator loads Roformer/MDXC ``.ckpt``, VR ``.pth`` and its MDX mixer with plain
    ``torch.load`` (Demucs with ``weights_only=False``), some of them through ``import torch`` inside
    functions, so patching names in its modules is not enough. ``torch.load`` is wrapped once per
    process; the wrapper routes a call to ``safe_load`` when the caller's module is part of
    audio-separator or the calling thread is inside :func:`_torch_loads_verified`, and passes every
    other call through unchanged. The decision depends only on the calling frame and thread-local
    state, so concurrent loads in other threads are never affected, and nothing is ever un-patched
    (no window in which another thread sees the unguarded function).
    """
    import torch

    with _guard_lock:
        if getattr(torch.load, "_svcover_guarded", False):
            return
        original = torch.load

        @functools.wraps(original)
        def guarded_load(f, map_location=None, *args, **kwargs):  # noqa: ANN001, ANN202 - torch's signature
            if getattr(_guard_state, "bypass", 0) or not (
                getattr(_guard_state, "active", 0) or _called_from_audio_separator()
            ):
                return original(f, map_location, *args, **kwargs)
            return _verified_load(f, map_location)

        guarded_load._svcover_guarded = True  # type: ignore[attr-defined]
        guarded_load._svcover_original = original  # type: ignore[attr-defined]
        torch.load = guarded_load


def _called_from_audio_separator() -> bool:
    frame = sys._getframe(2)  # 0: this function, 1: guarded_load, 2: whoever called torch.load
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return name == "audio_separator" or name.startswith("audio_separator.")


def _verified_load(f: object, map_location: object) -> dict:
    if not isinstance(f, (str, os.PathLike)):
        raise CheckpointError(f"{f!r}: refused to load a checkpoint from an open stream (only files are verified)")
    location = "cpu" if map_location is None else str(map_location)
    _guard_state.bypass = getattr(_guard_state, "bypass", 0) + 1  # safe_load's own torch.load passes through
    try:
        # looked up at call time, not bound at import: whoever wraps core.checkpoints.safe_load (tests do) is obeyed
        return core.checkpoints.safe_load(f, map_location=location)
    finally:
        _guard_state.bypass -= 1


@contextlib.contextmanager
def _torch_loads_verified() -> object:
    """Within this block (this thread only) every torch.load is verified, whoever calls it."""
    install_torch_load_guard()
    _guard_state.active = getattr(_guard_state, "active", 0) + 1
    try:
        yield
    finally:
        _guard_state.active -= 1


def _refuse_download(url: str, output_path: str) -> None:
    if os.path.isfile(output_path):
        return
    raise _missing(Path(output_path))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else e.__class__.__name__


# ----------------------------------------------------------------------------------------------
# Decoding and chunked passes


def decode_stereo(song: Path, out_wav: Path, sr: int = SAMPLE_RATE) -> None:
    """Decode any audio file to a stereo float wav (mono is duplicated, more channels downmixed).

    Streams block by block through the shared decode path of :mod:`core.audio` (damaged, truncated
    and too long files are refused with one line; NaN/inf samples become 0, which audio-separator's
    librosa code would otherwise fail on).
    """
    with sf.SoundFile(str(out_wav), "w", sr, 2, subtype="FLOAT", format="WAV") as writer:
        decode_audio(song, sr, 2, writer.write)


def _crossfade_weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(n, dtype=np.float32) + 0.5) / max(n, 1)
    fade_in = np.sin(0.5 * np.pi * t) ** 2
    return (1.0 - fade_in)[:, None], fade_in[:, None]


def chunk_starts(n_frames: int, chunk: int, overlap: int) -> list[int]:
    """Start frames of windows of ``chunk`` frames overlapping by ``overlap`` that cover ``n_frames``.

    Every window but the last is full; the last one is longer than the overlap.
    """
    starts = [0]
    while starts[-1] + chunk < n_frames:
        starts.append(starts[-1] + chunk - overlap)
    return starts


def _run_pass(
    session: _Session,
    input_wav: Path,
    out_dir: Path,
    target_names: tuple[str, ...],
    file_names: tuple[str, str],
    settings: SeparationSettings,
    progress: ProgressFn | None,
) -> tuple[Path, Path, float]:
    """Separate ``input_wav`` chunk by chunk into ``out_dir/<file_names>``; returns the paths and the target RMS dB."""
    target_is_primary = session.primary.lower() in target_names or session.secondary.lower() not in target_names
    if session.primary.lower() not in target_names and session.secondary.lower() not in target_names:
        log.warning("%s: stems are %r/%r; keeping %r as %s", session.model, session.primary, session.secondary,
                    session.primary, file_names[0])  # fmt: skip
    info = sf.info(str(input_wav))
    n_frames, sr = info.frames, info.samplerate
    chunk = int(settings.chunk_seconds * sr)
    overlap = int(settings.overlap_seconds * sr)
    starts = chunk_starts(n_frames, chunk, overlap)
    fade_out, fade_in = _crossfade_weights(overlap)
    target_path, other_path = out_dir / f"{file_names[0]}.{STEM_FORMAT}", out_dir / f"{file_names[1]}.{STEM_FORMAT}"
    sum_sq, count = 0.0, 0
    with (
        atomic_path(target_path) as tmp_target,
        atomic_path(other_path) as tmp_other,
        sf.SoundFile(str(input_wav)) as reader,
    ):
        work_dir = session.work_dir
        writers = [sf.SoundFile(str(p), "w", sr, 2, subtype="FLOAT", format="WAV") for p in (tmp_target, tmp_other)]
        pending: list[np.ndarray | None] = [None, None]
        try:
            for i, start in enumerate(starts):
                last = i == len(starts) - 1
                reader.seek(start)
                block = reader.read(min(chunk, n_frames - start), dtype="float32", always_2d=True)
                primary, secondary = _separate_block(session, block, sr, work_dir / f"chunk{i:05d}.wav")
                outputs = (primary, secondary) if target_is_primary else (secondary, primary)
                for k, (writer, y) in enumerate(zip(writers, outputs, strict=True)):
                    head = 0
                    if pending[k] is not None:
                        writer.write(pending[k] * fade_out + y[:overlap] * fade_in)
                        head = overlap
                    end = len(y) if last else len(y) - overlap
                    body = y[head:end]
                    writer.write(body)
                    if k == 0:
                        sum_sq += float(np.square(body, dtype=np.float64).sum())
                        count += body.size
                    pending[k] = None if last else y[end:].copy()
                report(progress, (i + 1) / len(starts), f"{session.model}: chunk {i + 1}/{len(starts)}")
        finally:
            for writer in writers:
                writer.close()
    rms_db = 10 * np.log10(sum_sq / max(count, 1) + 1e-20)
    return target_path, other_path, float(rms_db)


def _separate_block(session: _Session, block: np.ndarray, sr: int, chunk_wav: Path) -> tuple[np.ndarray, np.ndarray]:
    """Separate one block, scaled to a peak of exactly 1.0 on the way in and back on the way out.

    audio-separator's MDX path multiplies its output by the input's peak, which is only right when
    the input was normalised to the threshold (1.0 here); a chunk at peak 1.0 makes the gain the same
    for every chunk, so chunks join without level steps.
    """
    peak = float(np.abs(block).max()) if block.size else 0.0
    if peak < 1e-6:  # digital silence: nothing to separate (and the model would divide by zero)
        zeros = np.zeros_like(block)
        return zeros, zeros.copy()
    scaled_block = block / peak
    sf.write(str(chunk_wav), scaled_block, sr, subtype="FLOAT")
    try:
        primary, secondary = session.separate(chunk_wav)
    finally:
        chunk_wav.unlink(missing_ok=True)
    primary, secondary = _fit_length(primary, len(block)), _fit_length(secondary, len(block))
    primary, secondary = _undo_output_normalisation(scaled_block, primary, secondary, session.compensate)
    return primary * peak, secondary * peak


def _undo_output_normalisation(
    mix: np.ndarray, primary: np.ndarray, secondary: np.ndarray, compensate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Restore a stem audio-separator scaled down to peak 1.0 because it went past the mix's peak.

    That happens when a stem is louder than the mix (parts that cancel in the mix), and the scale
    differs per chunk. The stems satisfy ``mix = compensate * primary + secondary`` before scaling,
    so a least-squares fit of the mix on the two returned stems gives back both scale factors.
    """

    def squashed(x: np.ndarray) -> bool:
        return abs(float(np.abs(x).max()) - 1.0) < 1e-6

    if not (squashed(primary) or squashed(secondary)):
        return primary, secondary
    design = np.stack([primary.ravel(), secondary.ravel()], axis=1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(design, mix.ravel().astype(np.float64), rcond=None)
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0 or b <= 0:
        return primary, secondary
    return (primary * np.float32(a / compensate)).astype(np.float32), (secondary * np.float32(b)).astype(np.float32)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[1] == 1:
        y = np.repeat(y, 2, axis=1)
    if len(y) >= n:
        return y[:n]
    return np.pad(y, ((0, n - len(y)), (0, 0)))


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model)[:80]


@dataclass(frozen=True)
class _PassInput:
    """What a separation pass reads and where its stems go; the model (or ensemble preset) is given per pass."""

    input_path: Path  # a stereo 44.1 kHz wav or any song ffmpeg decodes
    input_sha: str  # sha256 of input_path: the first part of the cache key
    target_names: tuple[str, ...]  # stem names (lower case) that count as the wanted stem, e.g. "vocals"
    file_names: tuple[str, str]  # file stems for (wanted, other), e.g. ("lead", "backing")
    settings: SeparationSettings
    cache_root: Path  # where passes are cached (<cache>/<song sha>/<model>-<settings hash>/)
    model_dir: Path  # the models and audio-separator's metadata files


def _cached_pass(job: _PassInput, model: str, progress: ProgressFn | None) -> tuple[Path, Path, float, bool]:
    """One separation pass, reused from ``job.cache_root`` when the sidecar says it was done with these arguments."""
    if model.startswith(ENSEMBLE_PREFIX):
        return _ensemble_pass(job, model, progress)
    model_path = check_model_files(model, job.model_dir)
    args = {
        "version": _CACHE_VERSION,
        "input_sha256": job.input_sha,
        "model": model,
        "model_md5": model_md5(model_path),
        "chunk_seconds": job.settings.chunk_seconds,
        "overlap_seconds": job.settings.overlap_seconds,
        "files": [f"{name}.{STEM_FORMAT}" for name in job.file_names],
    }
    if model_arch(model) == "MDXC":  # only these settings change an MDXC model's output
        args["config_sha256"] = file_sha256(job.model_dir / str(roformer_config_name(model, job.model_dir)))
        args["segment_frames"] = job.settings.segment_frames
        args["segment_overlap"] = job.settings.segment_overlap
    out_dir, sidecar = _cache_dir(job.cache_root, job.input_sha, model, args)
    cached = _stems_from_cache(out_dir, sidecar, args)
    if cached is not None:
        report(progress, 1.0, f"{model}: stems from cache")
        return cached
    out_dir.mkdir(parents=True, exist_ok=True)
    report(progress, 0.0, f"{model}: loading")
    # Temporary files start with "." and live beside the stems, so a crash leaves nothing that looks finished.
    # The process id in the name lets the next cover tell a killed run's scratch folder from a live one's.
    with tempfile.TemporaryDirectory(prefix=f".work-p{os.getpid()}-", dir=out_dir) as tmp:
        wav = Path(tmp) / "input.wav"
        decode_stereo(job.input_path, wav)
        session = _Session(model, job.model_dir, Path(tmp), job.settings)
        target, other, rms_db = _run_pass(session, wav, out_dir, job.target_names, job.file_names, job.settings, progress)
    # The sidecar is written last: its presence means both stems are complete.
    save_json(sidecar, {"args": args, "source": Path(job.input_path).name, "target_rms_db": rms_db,
                        "model_stems": [session.primary, session.secondary]})  # fmt: skip
    return target, other, rms_db, False


def separate_file(wav_path: Path, model: str = DEFAULT_VOCAL_MODEL,
                  model_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One uncached pass of ``model`` over a short 44.1 kHz stereo wav: (vocal stem, other stem), float32 [N, 2].

    For short known inputs (the model self-test, core/selftest.py); songs go through :func:`separate_song`,
    which decodes any format, works in bounded-memory windows and caches the stems.
    """
    with tempfile.TemporaryDirectory(prefix="svcover-sep-") as tmp:
        session = _Session(model, model_dir or uvr_dir(), Path(tmp))
        primary, secondary = session.separate(Path(wav_path))
    return (primary, secondary) if session.primary.lower() in _VOCAL_NAMES else (secondary, primary)


def _cache_dir(cache_root: Path, input_sha: str, model: str, args: dict) -> tuple[Path, Path]:
    """``<cache>/<song sha>/<model>-<settings hash>/`` and its sidecar: every settings combination keeps its stems."""
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:10]
    out_dir = cache_root / input_sha[:16] / f"{_slug(model)}-{digest}"
    return out_dir, out_dir / "stems.json"


def _stems_from_cache(out_dir: Path, sidecar: Path, args: dict) -> tuple[Path, Path, float, bool] | None:
    """The cached pass (target stem, other stem, target RMS dB, True) when ``sidecar`` records these ``args`` and
    both stems exist; None otherwise (no sidecar, other settings, a stem deleted, an unreadable sidecar)."""
    if not sidecar.is_file():
        return None
    with contextlib.suppress(Exception):
        previous = json.loads(sidecar.read_text(encoding="utf-8"))
        paths = [out_dir / name for name in args["files"]]
        if previous.get("args") == args and all(p.is_file() for p in paths):
            return paths[0], paths[1], float(previous["target_rms_db"]), True
    return None


def _ensemble_pass(job: _PassInput, preset: str, progress: ProgressFn | None) -> tuple[Path, Path, float, bool]:
    """One of audio-separator's ensemble presets: each model's pass (cached on its own), then the
    stems combined with audio-separator's own Ensembler and the preset's algorithm and weights."""
    preset_id = preset[len(ENSEMBLE_PREFIX) :]
    spec = ensemble_presets().get(preset_id)
    if spec is None:
        known = ", ".join(sorted(ensemble_presets())) or "none (audio-separator not installed)"
        raise SeparationError(f"unknown ensemble preset {preset_id!r}: choose from {known}")
    models = list(spec["models"])
    for model in models:
        check_model_files(model, job.model_dir)
    parts = []
    for i, model in enumerate(models):
        part = scaled(progress, i / (len(models) + 1), (i + 1) / (len(models) + 1))
        parts.append(_cached_pass(job, model, part))
    args = {"version": _CACHE_VERSION, "preset": preset_id, "algorithm": spec.get("algorithm", "avg_wave"),
            "weights": spec.get("weights"), "parts": [str(p[0].parent.name) for p in parts],
            "files": [f"{name}.{STEM_FORMAT}" for name in job.file_names]}  # fmt: skip
    out_dir, sidecar = _cache_dir(job.cache_root, job.input_sha, preset, args)
    cached = _stems_from_cache(out_dir, sidecar, args) if all(p[3] for p in parts) else None
    if cached is not None:
        return cached
    from audio_separator.separator.ensembler import Ensembler

    ensembler = Ensembler(log, algorithm=args["algorithm"], weights=args["weights"])
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    for k, name in enumerate(job.file_names):
        # whole stems in memory: ensembles are an opt-in quality setting for GPU machines
        waves = [sf.read(str(p[k]), dtype="float32", always_2d=True)[0].T for p in parts]
        combined = ensembler.ensemble(waves).T.astype(np.float32)
        path = out_dir / f"{name}.{STEM_FORMAT}"
        with atomic_path(path) as tmp:
            sf.write(str(tmp), combined, SAMPLE_RATE, subtype="FLOAT", format="WAV")
        outputs.append((path, combined))
    rms_db = float(10 * np.log10(np.mean(np.square(outputs[0][1], dtype=np.float64)) + 1e-20))
    save_json(sidecar, {"args": args, "source": Path(job.input_path).name, "target_rms_db": rms_db})  # no server path
    report(progress, 1.0, f"{preset}: ensemble of {len(models)} models")
    return outputs[0][0], outputs[1][0], rms_db, False


def separate_song(
    song: str | Path,
    settings: SeparationSettings | None = None,
    *,
    cache_root: Path | None = None,
    model_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> Stems:
    """Separate ``song`` into lead vocal, instrumental and (optionally) backing vocals.

    Parameters:
        song: any audio file ffmpeg decodes (mono, stereo or multichannel; it is made stereo 44.1 kHz).
        settings: models and options; every field is part of the cache key.
        cache_root: where stems are cached (default :func:`stems_cache_root`).
        model_dir: folder of models and metadata files (default :func:`uvr_dir`).
        progress: callback ``(fraction, message)``.

    Returns:
        :class:`Stems` with the file paths, the vocal level and warnings (no vocals, GPU unused).

    Raises:
        MissingPretrainedError: a model or metadata file is missing (named in the message).
        AudioDecodeError: the song cannot be read.
    """
    settings = settings or SeparationSettings()
    song = Path(song)
    if not song.is_file():
        raise AudioDecodeError(f"{song}: file not found")
    model_dir = model_dir or uvr_dir()
    cache_root = cache_root or stems_cache_root()
    settings = settings.resolved(model_dir)
    # Check every file of every pass before the long work starts.
    passes = [settings.model]
    if settings.split_backing:
        passes.append(settings.karaoke_model)
    if settings.dereverb:
        passes.append(settings.dereverb_model)
    for model in passes:
        if model.startswith(ENSEMBLE_PREFIX):
            for part in ensemble_presets().get(model[len(ENSEMBLE_PREFIX) :], {}).get("models", []):
                check_model_files(part, model_dir)
        else:
            check_model_files(model, model_dir)
    warnings_out: list[str] = []
    # ONNX Runtime's provider matters only for MDX (.onnx) passes; Roformers run on torch's CUDA
    gpu = gpu_warning() if any(model_arch(m) == "MDX" for m in passes if not m.startswith(ENSEMBLE_PREFIX)) else None
    if gpu:
        log.warning(gpu)
        warnings_out.append(gpu)
    slow = _roformer_on_cpu_warning(passes)
    if slow:
        log.warning(slow)
        warnings_out.append(slow)

    weights = [3.0] + [1.0] * (len(passes) - 1)
    bounds = np.cumsum([0.0, *weights]) / sum(weights)
    song_sha = file_sha256(song)
    vocals, instrumental, rms_db, cached = _cached_pass(
        _PassInput(song, song_sha, _VOCAL_NAMES, ("vocals", "instrumental"), settings, cache_root, model_dir),
        settings.model,
        scaled(progress, bounds[0], bounds[1]),
    )
    stems = Stems(song=song, song_sha256=song_sha, vocals=vocals, instrumental=instrumental, full_vocals=vocals,
                  vocals_rms_db=rms_db, cached=cached, warnings=warnings_out, models=tuple(passes))  # fmt: skip
    if not stems.has_vocals:
        message = f"{song}: no vocals found (vocal stem at {rms_db:.0f} dBFS); the cover will be the instrumental alone"
        log.warning(message)
        stems.warnings.append(message)
        report(progress, 1.0, "no vocals found")
        return stems
    step = 1
    if settings.split_backing:
        lead, backing, rms_db, cached = _cached_pass(
            _PassInput(vocals, file_sha256(vocals), _VOCAL_NAMES, ("lead", "backing"), settings, cache_root, model_dir),
            settings.karaoke_model,
            scaled(progress, bounds[step], bounds[step + 1]),
        )
        stems.vocals, stems.backing, stems.vocals_rms_db = lead, backing, rms_db
        stems.cached = stems.cached and cached
        step += 1
    if settings.dereverb:
        dry_input = _PassInput(
            stems.vocals, file_sha256(stems.vocals), _DRY_NAMES, ("dry", "reverb"), settings, cache_root, model_dir
        )
        dry, _reverb, rms_db, cached = _cached_pass(
            dry_input, settings.dereverb_model, scaled(progress, bounds[step], bounds[step + 1])
        )
        stems.vocals, stems.vocals_rms_db = dry, rms_db
        stems.cached = stems.cached and cached
    report(progress, 1.0, "separation done")
    return stems
