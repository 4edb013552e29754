"""SvcDecoder: conditioning encoder + Gaussian diffusion with a WaveNet denoiser, and its loaders.

Its state dict is the one of Diffusion-SVC's ``Unit2Mel`` model, so a public pretrained base
(``model_0.pt`` with ``config.yaml`` beside it) loads into it unchanged, and so does our own checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from core.checkpoints import safe_load
from core.errors import CheckpointError
from core.model.config import DecoderConfig, from_diffusion_svc_yaml
from core.model.diffusion import SCHEDULE_BUFFERS, GaussianDiffusion
from core.model.encoder import ConditionEncoder
from core.voicemodel import import_voice_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "svcover-decoder"  # the "format" field of our own checkpoints and model cards
# Entries a checkpoint may lack without harm: recomputable buffers and the optional embeddings.
_OPTIONAL_KEYS = {f"decoder.{n}" for n in (*SCHEDULE_BUFFERS, "spec_min", "spec_max")} | {
    "aug_shift_embed.weight",
    "spk_embed.weight",
}


class SvcDecoder(ConditionEncoder):
    """units/f0/volume -> cond; (x_t, t, cond) -> predicted noise. See docs/train.md for shapes."""

    def __init__(self, cfg: DecoderConfig, stats: dict[str, Any] | None = None) -> None:
        super().__init__(cfg)
        self.config = cfg
        self.stats: dict[str, Any] = dict(stats or {})  # dataset stats of the run that trained it
        self.decoder = GaussianDiffusion(cfg)

    # ---- public API -------------------------------------------------------------------------
    # units [B,T,units_dim], f0 [B,T,1] Hz, volume [B,T,1] RMS -> cond [B,T,n_hidden] (the public name of encode)
    condition = ConditionEncoder.encode

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x_t [B,1,n_mels,T] normalised mel, t [B] (float or int steps), cond [B,T,H] -> eps [B,1,n_mels,T]."""
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        return self.decoder.denoise_fn(x_t, t, cond.transpose(1, 2))

    def forward(
        self,
        units: torch.Tensor,
        f0: torch.Tensor,
        volume: torch.Tensor,
        mel: torch.Tensor,
        mask: torch.Tensor | None = None,
        spk_id: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss of one batch (forward goes through here so DDP sees it)."""
        cond = self.condition(units, f0, volume, spk_id=spk_id)
        return self.decoder.training_loss(mel, cond, mask)

    # ---- schedule, for the samplers -----------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        return self.decoder.num_timesteps

    @property
    def k_step_max(self) -> int:
        """Deepest step this model was trained on (1000 for full-depth models)."""
        return self.decoder.k_step

    @property
    def betas(self) -> torch.Tensor:
        return self.decoder.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.decoder.alphas_cumprod

    def norm_spec(self, mel: torch.Tensor) -> torch.Tensor:
        """Natural-log mel -> the model's [-1, 1] range."""
        return self.decoder.norm_spec(mel)

    def denorm_spec(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder.denorm_spec(x)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.decoder.denoise_fn.gradient_checkpointing = bool(enabled)

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> SvcDecoder:
        """Load a Diffusion-SVC ``model_*.pt`` (config.yaml beside it), our ``step_*.pt``/``best.pt``,
        or our export (``*.safetensors`` with ``model_card.json`` beside it)."""
        path = Path(path)
        if path.suffix.lower() in (".safetensors", ".zip") or path.is_dir():
            model = _from_export(path)
        else:
            ckpt = safe_load(path)
            if ckpt.get("format") == CHECKPOINT_FORMAT:
                cfg = config_from_dict(ckpt.get("config") or {}, source=str(path))
                model = cls(cfg, stats=ckpt.get("stats"))
                load_weights(model, ckpt.get("model"), source=path, strict=True)
            else:
                state = ckpt.get("model")
                if not isinstance(state, Mapping):
                    raise CheckpointError(f"{path}: no 'model' state dict: not a Diffusion-SVC or svcover decoder checkpoint")
                cfg = config_for_state_dict(state, path)
                model = cls(cfg)
                load_weights(model, state, source=path, strict=False)
        return model.to(device).eval()


def config_from_dict(data: Mapping[str, Any], source: str = "checkpoint") -> DecoderConfig:
    names = {f.name for f in dataclasses.fields(DecoderConfig)}
    try:
        return DecoderConfig(**{k: v for k, v in data.items() if k in names})
    except TypeError as e:
        raise CheckpointError(f"{source}: bad model config ({e})") from None


def config_for_state_dict(state: Mapping[str, torch.Tensor], path: Path) -> DecoderConfig:
    """Architecture of a Diffusion-SVC state dict: read from the tensor shapes, cross-checked with config.yaml."""
    cfg = _config_from_shapes(state, path)
    yaml_path = path.parent / "config.yaml"
    if yaml_path.is_file():
        try:
            ycfg = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise CheckpointError(f"{yaml_path}: not valid YAML ({str(e).splitlines()[0]})") from None
        declared = from_diffusion_svc_yaml(ycfg, source=str(yaml_path))
        for field in ("units_dim", "n_hidden", "n_chans", "n_layers"):
            if getattr(declared, field) != getattr(cfg, field):
                raise CheckpointError(
                    f"{yaml_path}: {field}={getattr(declared, field)} but {path.name} has {getattr(cfg, field)}"
                )
        cfg = dataclasses.replace(cfg, k_step_max=declared.k_step_max)
    else:
        log.warning("%s: no config.yaml beside it; architecture read from the weights", path)
    return cfg


def _config_from_shapes(state: Mapping[str, torch.Tensor], path: Path) -> DecoderConfig:
    prefix = "decoder.denoise_fn."
    try:
        n_chans, n_mels = state[prefix + "input_projection.weight"].shape[:2]
        n_hidden, units_dim = state["unit_embed.weight"].shape
    except KeyError as e:
        raise CheckpointError(f"{path}: missing {e.args[0]!r}: not a Diffusion-SVC 'Diffusion' model") from None
    n_layers = len({k.split(".")[3] for k in state if k.startswith(prefix + "residual_layers.")})
    spk = state.get("spk_embed.weight")
    return DecoderConfig(
        units_dim=int(units_dim),
        n_hidden=int(n_hidden),
        n_chans=int(n_chans),
        n_layers=n_layers,
        n_spk=int(spk.shape[0]) if spk is not None else 1,
        use_pitch_aug="aug_shift_embed.weight" in state,
        n_mels=int(n_mels),
    )


def load_weights(model: SvcDecoder, state: Any, source: str | Path, strict: bool) -> tuple[list[str], list[str]]:
    """Copy ``state`` into ``model``; shapes must match. Returns (missing, unexpected) keys.

    Non-strict (fine-tuning from a base) tolerates missing optional embeddings and buffers and
    ignores unexpected keys, like upstream; a missing denoiser or encoder weight is always an error.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: no model weights in the file")
    own = model.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)} "
                "(different network size or content encoder)"
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    required_missing = [k for k in missing if k not in _OPTIONAL_KEYS]
    if required_missing or (strict and unexpected):
        what = required_missing[0] if required_missing else unexpected[0]
        raise CheckpointError(f"{source}: {'missing' if required_missing else 'unexpected'} weight {what!r}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    if missing:
        log.info("%s: kept fresh values for %s", source, ", ".join(missing))
    if unexpected:
        log.info("%s: ignored %s", source, ", ".join(unexpected))
    return missing, unexpected


def _from_export(path: Path) -> SvcDecoder:
    """An exported voice model (folder, .zip or .safetensors + model_card.json; see core.voicemodel)."""
    voice = import_voice_model(path)
    state = {k: v.float() for k, v in voice.state_dict.items() if k not in _OPTIONAL_KEYS or "embed" in k}
    card_config = voice.card.get("model_config")
    if isinstance(card_config, Mapping):
        cfg = config_from_dict(card_config, source=str(path))
    else:  # a card without our fields (e.g. imported): read the architecture from the weights
        cfg = _config_from_shapes(state, path)
    model = SvcDecoder(cfg, stats=voice.card.get("stats"))
    load_weights(model, state, source=path, strict=True)
    return model
