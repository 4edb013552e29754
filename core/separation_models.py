"""Separation models svcover knows: role, architecture, quality, size, speed, memory — and the defaults.

Every number here has a source (see docs/cover.md and benchmarks/BENCHMARKS.md):

* ``vocal_sdr``: median vocal SDR (dB) from audio-separator's own ``models-scores.json`` (the table
  ships inside the audio-separator wheel; ``tests/test_separation_models.py`` checks these copies
  against it). ``None`` where the table has no vocal score (de-reverb models are not scored on vocals).
* ``size_mb``: download size. For the default vocal Roformer it is the float32 parameter bytes of
  the real architecture built from the publisher's config (``benchmarks/separation.py``), which is
  what the checkpoint holds; the MDX-Net vocal figure is the ONNX file's size as noted in
  benchmarks/results_cover.md. ``None`` where the
  architecture's config could not be checked here (the picker says "size not known").
* ``cpu_s_per_min``: CPU seconds to separate one minute of audio, measured here with the real
  architecture at its real size and random weights (``benchmarks/separation.py``); the speed class
  shown in the picker is derived from it. The MDX-Net figure comes from a same-family proxy network
  (the ONNX file's exact layout is not published); models whose architecture could not be checked
  here are "not measured".

The device-dependent default lives in exactly one place, :func:`default_model`: a CUDA GPU gets the
best vocal Roformer that fits a 6 GB card; a CPU-only machine keeps MDX-Net ONNX, which is about five
times faster on a CPU (measured numbers in :data:`CATALOGUE`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ROLES = ("vocals", "karaoke", "dereverb")
ENSEMBLE_PREFIX = "preset:"  # --separator preset:vocal_rvc runs one of audio-separator's ensemble presets


@dataclass(frozen=True)
class SeparationModel:
    """One model of the picker; ``filename`` is what audio-separator loads from ``pretrained/uvr/``."""

    filename: str
    role: str  # "vocals" (vocals/instrumental), "karaoke" (lead/backing) or "dereverb" (dry/reverb)
    arch: str  # "MDX" (ONNX Runtime) or "Roformer" (torch, audio-separator's MDXC path)
    title: str
    config: str | None  # yaml audio-separator reads beside a Roformer checkpoint
    registry: str  # `python -m core download <registry>` fetches it
    licence: str
    vocal_sdr: float | None
    size_mb: float | None  # None: not known here (see the module docstring)
    cpu_s_per_min: float | None  # measured here, see the module docstring
    segment_frames: int | None = None  # the model's own STFT frames per segment (its config), when known

    @property
    def speed_class(self) -> str:
        """Coarse CPU speed for the picker, from the measured seconds per minute of audio."""
        if self.cpu_s_per_min is None:
            return "not measured"
        if self.cpu_s_per_min <= 300:
            return "CPU OK"
        if self.cpu_s_per_min <= 600:
            return "slow on CPU"
        return "GPU recommended (very slow on CPU)"

    def label(self) -> str:
        """One line for the picker: name, vocal SDR, size, speed class."""
        sdr = f"{self.vocal_sdr:.2f} dB vocal SDR" if self.vocal_sdr is not None else "no vocal SDR (not a vocal model)"
        speed = f"{self.speed_class}, ~{self.cpu_s_per_min:.0f} CPU s/min" if self.cpu_s_per_min else self.speed_class
        size = f"{self.size_mb:.0f} MB" if self.size_mb is not None else "size not known"
        return f"{self.title} · {sdr} · {size} · {speed}"


MIT_UVR = "MIT (Ultimate Vocal Remover model repository)"
# Measured by benchmarks/separation.py (one thread, same run, shared 2-core machine; BENCHMARKS.md
# "Separation models"): process CPU seconds per minute of audio at svcover's settings.
_MDX_CPU_S_PER_MIN = 189.9  # same-family MDX-Net proxy at Voc_FT's dims (exact ONNX layout unpublished)
_MEL_ROFORMER_CPU_S_PER_MIN = 958.8  # vocals_mel_band_roformer's architecture, 801-frame segments, overlap 2

CATALOGUE: tuple[SeparationModel, ...] = (
    SeparationModel(
        filename="UVR-MDX-NET-Voc_FT.onnx", role="vocals", arch="MDX", title="MDX-Net Voc FT (UVR)", config=None,
        registry="uvr_vocals", licence=MIT_UVR, vocal_sdr=10.1549, size_mb=66.0, cpu_s_per_min=_MDX_CPU_S_PER_MIN,
    ),
    SeparationModel(
        filename="vocals_mel_band_roformer.ckpt", role="vocals", arch="Roformer",
        title="Mel-Band Roformer vocals (Kimberley Jensen)", config="vocals_mel_band_roformer.yaml",
        registry="roformer_vocals", licence="not stated by the publisher (no licence file in KimberleyJensen/Mel-Band-Roformer-Vocal-Model)",
        vocal_sdr=12.5967, size_mb=912.8, cpu_s_per_min=_MEL_ROFORMER_CPU_S_PER_MIN, segment_frames=801,
    ),
    SeparationModel(
        filename="melband_roformer_big_beta4.ckpt", role="vocals", arch="Roformer",
        title="Mel-Band Roformer Big Beta 4 (unwa)", config="config_melbandroformer_big_beta4.yaml",
        registry="roformer_vocals_big", licence="not stated by the publisher (pcunwa/Mel-Band-Roformer-big on Hugging Face)",
        vocal_sdr=12.5156, size_mb=None, cpu_s_per_min=None,
    ),
    SeparationModel(
        filename="UVR_MDXNET_KARA_2.onnx", role="karaoke", arch="MDX", title="MDX-Net Karaoke 2 (UVR)", config=None,
        registry="uvr_karaoke", licence=MIT_UVR, vocal_sdr=5.43274, size_mb=None, cpu_s_per_min=None,
    ),
    SeparationModel(
        filename="mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt", role="karaoke", arch="Roformer",
        title="Mel-Band Roformer Karaoke (aufr33 & viperx)",
        config="mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956_config.yaml", registry="roformer_karaoke",
        licence="not stated by the publishers (released for UVR / audio-separator users)",
        vocal_sdr=8.44766, size_mb=None, cpu_s_per_min=None,
    ),
    SeparationModel(
        filename="Reverb_HQ_By_FoxJoy.onnx", role="dereverb", arch="MDX", title="MDX-Net Reverb HQ (FoxJoy)", config=None,
        registry="uvr_dereverb", licence=MIT_UVR, vocal_sdr=None, size_mb=None, cpu_s_per_min=None,
    ),
    SeparationModel(
        filename="dereverb_mel_band_roformer_anvuew_sdr_19.1729.ckpt", role="dereverb", arch="Roformer",
        title="Mel-Band Roformer De-Reverb (anvuew)", config="dereverb_mel_band_roformer_anvuew.yaml",
        registry="roformer_dereverb", licence="not stated in audio-separator's model list (anvuew/dereverb_mel_band_roformer on Hugging Face)",
        vocal_sdr=None, size_mb=None, cpu_s_per_min=None,
    ),
)  # fmt: skip

# The one place the device decides the defaults: (CUDA GPU, CPU only) per role.
_DEFAULTS = {
    "vocals": ("vocals_mel_band_roformer.ckpt", "UVR-MDX-NET-Voc_FT.onnx"),
    "karaoke": ("mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt", "UVR_MDXNET_KARA_2.onnx"),
    "dereverb": ("dereverb_mel_band_roformer_anvuew_sdr_19.1729.ckpt", "Reverb_HQ_By_FoxJoy.onnx"),
}


def catalogue_entry(filename: str) -> SeparationModel | None:
    return next((m for m in CATALOGUE if m.filename == filename), None)


def models_for(role: str) -> list[SeparationModel]:
    return [m for m in CATALOGUE if m.role == role]


def cuda_available() -> bool:
    """Whether separation would run on a CUDA GPU.

    Exact once torch is loaded. Before that (the web UI labels its "Auto" choice while building the page)
    a cheap answer that does not import torch, which would add ~3 CPU-seconds to the app's start: a
    CUDA build of torch is installed and ``nvidia-smi`` is on PATH.
    """
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    return _cuda_build_installed() and shutil.which("nvidia-smi") is not None


def _cuda_build_installed() -> bool:
    """torch's own ``version.py`` names a CUDA version (read as text: importing torch is slow)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    version_py = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version_py.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"][0-9]", text, re.MULTILINE) is not None


def default_model(role: str, cuda: bool | None = None, model_dir: Path | None = None) -> str:
    """The default model file for ``role`` on this machine.

    With a CUDA GPU: the Roformer (the vocal one scores 12.60 dB vs 10.15 dB for MDX-Net and needs
    about 2.3 GB of a 6 GB card at its own segment size, see BENCHMARKS.md). Without: MDX-Net ONNX,
    which needs about a fifth of the Roformer's CPU time (190 vs 959 CPU seconds per minute of audio). When ``model_dir`` is given and only the other model of the
    role is installed there, that one is used instead of asking for a download.
    """
    if role not in _DEFAULTS:
        raise ValueError(f"unknown separation role {role!r}")
    on_gpu = cuda_available() if cuda is None else cuda
    preferred, other = _DEFAULTS[role] if on_gpu else _DEFAULTS[role][::-1]
    if model_dir is not None and not model_installed(preferred, model_dir) and model_installed(other, model_dir):
        return other
    return preferred


def model_installed(filename: str, model_dir: Path) -> bool:
    """The model file (and its yaml, for a Roformer from the catalogue) is in ``model_dir``."""
    entry = catalogue_entry(filename)
    files = [filename] + ([entry.config] if entry and entry.config else [])
    return all((model_dir / name).is_file() for name in files)


# ----------------------------------------------------------------------------------------------
# audio-separator's bundled tables


def _package_json(name: str) -> dict:
    try:
        return json.loads(resources.files("audio_separator").joinpath(name).read_text("utf-8"))
    except (ImportError, OSError, ValueError):
        return {}


def package_vocal_sdr(filename: str) -> float | None:
    """Median vocal SDR of ``filename`` in the installed audio-separator's ``models-scores.json``."""
    entry = _package_json("models-scores.json").get(filename, {})
    sdr = entry.get("median_scores", {}).get("vocals", {}).get("SDR")
    return float(sdr) if sdr is not None else None


def ensemble_presets() -> dict[str, dict]:
    """audio-separator's ensemble presets (``ensemble_presets.json``): id -> {name, models, algorithm, weights}."""
    return dict(_package_json("ensemble_presets.json").get("presets", {}))


def installed_ensemble_presets(model_dir: Path, role: str = "vocals") -> list[str]:
    """Presets of ``role`` whose every model (and yaml) is in ``model_dir``: only these are offered."""
    wanted = {"vocals": ("vocal",), "karaoke": ("karaoke",)}.get(role, ())
    out = []
    for preset_id, preset in ensemble_presets().items():
        if not preset_id.startswith(wanted):
            continue
        if all((model_dir / name).is_file() and _config_present(name, model_dir) for name in preset.get("models", [])):
            out.append(preset_id)
    return out


def _config_present(filename: str, model_dir: Path) -> bool:
    if not filename.lower().endswith(".ckpt"):
        return True
    config = roformer_config_name(filename, model_dir)
    return config is not None and (model_dir / config).is_file()


def roformer_config_name(filename: str, model_dir: Path) -> str | None:
    """The yaml audio-separator pairs with an MDXC/Roformer checkpoint (catalogue, local lists, bundled list)."""
    entry = catalogue_entry(filename)
    if entry and entry.config:
        return entry.config
    lists: list[dict] = []
    checks = model_dir / "download_checks.json"
    if checks.is_file():
        try:
            data = json.loads(checks.read_text(encoding="utf-8"))
            lists += [data.get(k, {}) for k in ("mdx23c_download_list", "mdx23c_download_vip_list", "roformer_download_list")]
        except (OSError, ValueError):
            pass
    bundled = _package_json("models.json")
    lists += [bundled.get(k, {}) for k in ("mdx23c_download_list", "roformer_download_list")]
    for table in lists:
        for files in table.values():
            if isinstance(files, dict) and filename in files:
                return str(files[filename])
    return None


def choices(role: str, model_dir: Path | None = None) -> list[tuple[str, str]]:
    """(label, filename) pairs for a picker: the catalogue's models of ``role``, installed ones marked,
    then the ensemble presets whose models are all installed."""
    out = []
    for m in models_for(role):
        mark = "" if model_dir is None or model_installed(m.filename, model_dir) else " · not downloaded"
        out.append((m.label() + mark, m.filename))
    if model_dir is not None:
        for preset_id in installed_ensemble_presets(model_dir, role):
            preset = ensemble_presets()[preset_id]
            out.append((f"Ensemble {preset.get('name', preset_id)} ({', '.join(preset['models'])})",
                        ENSEMBLE_PREFIX + preset_id))  # fmt: skip
    return out
