"""The diffusion decoder (Diffusion-SVC compatible): ``from core.model import SvcDecoder``.

Submodules: config (architecture dataclass, no torch), encoder (conditioning), wavenet (denoiser),
diffusion (schedule + loss), decoder (SvcDecoder + loaders), samplers (inference). Attributes are
imported lazily so that reading the config does not import torch.
"""

from __future__ import annotations

from typing import Any

from core.model.config import DecoderConfig

__all__ = ["SvcDecoder", "DecoderConfig", "CHECKPOINT_FORMAT"]


def __getattr__(name: str) -> Any:
    if name in ("SvcDecoder", "CHECKPOINT_FORMAT"):
        from core.model import decoder

        return getattr(decoder, name)
    if name == "DecoderConfig":
        return DecoderConfig
    raise AttributeError(f"module 'core.model' has no attribute {name!r}")
