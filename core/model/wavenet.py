"""The WaveNet denoiser: predicts the noise in a noisy normalised mel, given the step and conditioning.

Layer names and maths match Diffusion-SVC's ``decoder.denoise_fn`` so pretrained weights load as they are.
Every residual layer uses kernel 3 and dilation 1 (as upstream).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (possibly real-valued) diffusion steps ``t`` [B] -> [B, dim], sin first."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualLayer(nn.Module):
    def __init__(self, n_hidden: int, n_chans: int) -> None:
        super().__init__()
        self.n_chans = n_chans
        self.dilated_conv = nn.Conv1d(n_chans, 2 * n_chans, kernel_size=3, padding=1, dilation=1)
        self.diffusion_projection = nn.Linear(n_chans, n_chans)
        self.conditioner_projection = nn.Conv1d(n_hidden, 2 * n_chans, 1)
        self.output_projection = nn.Conv1d(n_chans, 2 * n_chans, 1)

    def forward(self, h: torch.Tensor, cond: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dilated_conv(h + self.diffusion_projection(step)[:, :, None]) + self.conditioner_projection(cond)
        gate, filt = y[:, : self.n_chans], y[:, self.n_chans :]
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y[:, : self.n_chans], y[:, self.n_chans :]
        return (h + residual) / math.sqrt(2.0), skip


class WaveNet(nn.Module):
    """x_t [B,1,M,T], t [B], cond [B,H,T] -> eps [B,1,M,T]."""

    def __init__(self, n_mels: int, n_layers: int, n_chans: int, n_hidden: int) -> None:
        super().__init__()
        self.n_chans = n_chans
        # Registration order = state-dict order of the pretrained bases.
        self.input_projection = nn.Conv1d(n_mels, n_chans, 1)
        self.mlp = nn.Sequential(nn.Linear(n_chans, 4 * n_chans), nn.Mish(), nn.Linear(4 * n_chans, n_chans))
        self.residual_layers = nn.ModuleList(ResidualLayer(n_hidden, n_chans) for _ in range(n_layers))
        self.skip_projection = nn.Conv1d(n_chans, n_chans, 1)
        self.output_projection = nn.Conv1d(n_chans, n_mels, 1)
        # Upstream init: Kaiming for the projections and a zero output weight, so an untrained
        # denoiser starts by predicting (almost) no noise rather than a random field.
        for conv in (self.input_projection, self.skip_projection, self.output_projection):
            nn.init.kaiming_normal_(conv.weight)
        nn.init.zeros_(self.output_projection.weight)
        self.gradient_checkpointing = False  # trade compute for memory on small GPUs

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.input_projection(x_t[:, 0]))
        step = self.mlp(step_embedding(t, self.n_chans).to(h.dtype))
        skip_sum = torch.zeros_like(h)
        for layer in self.residual_layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                h, skip = checkpoint(layer, h, cond, step, use_reentrant=False)
            else:
                h, skip = layer(h, cond, step)
            skip_sum = skip_sum + skip
        s = F.relu(self.skip_projection(skip_sum / math.sqrt(len(self.residual_layers))))
        return self.output_projection(s)[:, None]
