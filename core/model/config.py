"""Architecture of the diffusion decoder as a plain dataclass (no torch import: the CLI reads it).

Field names follow Diffusion-SVC's ``config.yaml`` (``model.n_layers`` etc.) so that a pretrained
base's yaml maps onto it one to one; see :func:`from_diffusion_svc_yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from core.config import AUDIO
from core.errors import CheckpointError, SvcoverError


@dataclass(frozen=True)
class DecoderConfig:
    units_dim: int = 768  # content features width (ContentVec layer 12: 768, HuBERT-Soft: 256)
    n_hidden: int = 256  # conditioning width
    n_chans: int = 512  # WaveNet residual channels
    n_layers: int = 20  # WaveNet residual layers
    n_spk: int = 1  # speaker embedding rows; the embedding exists only when > 1
    use_pitch_aug: bool = True  # adds aug_shift_embed (a key shift fed as conditioning)
    n_mels: int = AUDIO.n_mels
    timesteps: int = 1000
    k_step_max: int | None = None  # shallow models train only t < k_step_max
    spec_min: float = -12.0  # mel normalisation range (natural-log mel), fixed by the pretrained bases
    spec_max: float = 2.0

    @property
    def k_step(self) -> int:
        """Highest diffusion step (exclusive) this model trains on."""
        return int(self.k_step_max) if self.k_step_max else self.timesteps


# The default is the public Diffusion-SVC base (512 x 20), so that a pretrained base loads as is.
DEFAULT = DecoderConfig()
# A small network that trains at several steps/s on a CPU (tests, smoke runs, tiny GPUs).
TINY = DecoderConfig(n_chans=64, n_layers=4)
PRESETS: dict[str, DecoderConfig] = {"default": DEFAULT, "tiny": TINY}


def preset(name: str, **overrides: Any) -> DecoderConfig:
    """A named preset (``tiny``/``default``) with some fields replaced (e.g. ``units_dim``)."""
    if name not in PRESETS:
        raise SvcoverError(f"unknown model config {name!r}: use one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def from_diffusion_svc_yaml(cfg: dict[str, Any], source: str = "config.yaml") -> DecoderConfig:
    """Map a Diffusion-SVC ``config.yaml`` (already parsed with yaml.safe_load) to a DecoderConfig."""
    model = cfg.get("model") or {}
    data = cfg.get("data") or {}
    vocoder = cfg.get("vocoder") or {}
    mtype = model.get("type", "Diffusion")
    if mtype != "Diffusion":
        raise CheckpointError(f"{source}: model.type is {mtype!r}; only the 'Diffusion' (Unit2Mel) model is supported")
    if model.get("use_speaker_encoder"):
        raise CheckpointError(f"{source}: model.use_speaker_encoder is not supported (removed upstream feature)")
    try:
        return DecoderConfig(
            units_dim=int(data.get("encoder_out_channels", 768)),
            n_hidden=int(model.get("n_hidden", 256)),
            n_chans=int(model.get("n_chans", 512)),
            n_layers=int(model.get("n_layers", 20)),
            n_spk=int(model.get("n_spk", 1)),
            use_pitch_aug=bool(model.get("use_pitch_aug", False)),
            n_mels=int(vocoder.get("num_mels", model.get("out_dims", 128)) or 128),
            k_step_max=int(model["k_step_max"]) if model.get("k_step_max") else None,
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: bad model field ({e})") from None
