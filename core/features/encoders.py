"""The content encoders: their names (:class:`ContentEncoder`) and what each one is (:data:`ENCODERS`).

The names are the ones Diffusion-SVC / DDSP-SVC configs use; extract, convert, the voice-model card, the CLI
and the UI all read them from here. Light on purpose (no model code), so that ``--help`` and the UI build stay
fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ContentEncoder(StrEnum):
    """Content encoders by name (members equal these strings, so configs and stats files keep plain names)."""

    CONTENTVEC768L12 = "contentvec768l12"  # last transformer layer, 768-d: what the Diffusion-SVC bases use
    CONTENTVEC256L9 = "contentvec256l9"  # layer 9 through the final projection, 256-d


@dataclass(frozen=True)
class EncoderSpec:
    layer: int
    final_proj: bool
    dim: int


ENCODERS: dict[ContentEncoder, EncoderSpec] = {
    ContentEncoder.CONTENTVEC768L12: EncoderSpec(layer=12, final_proj=False, dim=768),
    ContentEncoder.CONTENTVEC256L9: EncoderSpec(layer=9, final_proj=True, dim=256),
}
