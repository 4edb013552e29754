"""Conditioning encoder: content units, F0, volume, key shift and speaker -> one vector per frame.

The module names (``unit_embed``, ``f0_embed``, ...) are the Diffusion-SVC state-dict keys; the
maths is ``cond = W_u units + W_f ln(1 + f0/700) + W_v volume [+ spk] [+ W_a shift/5]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from core.model.config import DecoderConfig


class ConditionEncoder(nn.Module):
    """Maps per-frame features ``[B, T, *]`` to the conditioning ``[B, T, n_hidden]``."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        # Registration order = state-dict order of the pretrained bases.
        self.unit_embed = nn.Linear(cfg.units_dim, cfg.n_hidden)
        self.f0_embed = nn.Linear(1, cfg.n_hidden)
        self.volume_embed = nn.Linear(1, cfg.n_hidden)
        self.aug_shift_embed = nn.Linear(1, cfg.n_hidden, bias=False) if cfg.use_pitch_aug else None
        self.spk_embed = nn.Embedding(cfg.n_spk, cfg.n_hidden) if cfg.n_spk > 1 else None

    def encode(
        self,
        units: torch.Tensor,
        f0: torch.Tensor,
        volume: torch.Tensor,
        spk_id: torch.Tensor | int | None = None,
        spk_mix: Mapping[int, float] | None = None,
        aug_shift: torch.Tensor | float = 0.0,
    ) -> torch.Tensor:
        """units [B,T,C], f0 [B,T,1] Hz, volume [B,T,1] -> cond [B,T,n_hidden].

        ``spk_id`` is 1-based (a LongTensor [B,1] or an int); ``spk_mix`` maps 1-based ids to weights
        (used as given, no renormalisation) and wins over ``spk_id``; ``aug_shift`` is in semitones
        (a float or a tensor broadcastable to [B,1,1]). Speaker inputs are ignored by a one-speaker model.
        """
        cond = self.unit_embed(units) + self.f0_embed(torch.log1p(f0 / 700.0)) + self.volume_embed(volume)
        if self.spk_embed is not None:
            table = self.spk_embed.weight
            if spk_mix:
                ids = torch.tensor([int(k) - 1 for k in spk_mix], device=table.device)
                weights = torch.tensor([float(w) for w in spk_mix.values()], device=table.device, dtype=table.dtype)
                cond = cond + (weights[:, None] * table[ids]).sum(0)
            elif spk_id is not None:
                ids = torch.as_tensor(spk_id, device=table.device).long().reshape(-1)  # [B] or [1]
                cond = cond + table[ids - 1][:, None, :]
        if self.aug_shift_embed is not None:
            shift = torch.as_tensor(aug_shift, dtype=cond.dtype, device=cond.device)
            if shift.dim() < 3:
                shift = shift.reshape(-1, 1, 1)
            cond = cond + self.aug_shift_embed(shift / 5.0)
        return cond
