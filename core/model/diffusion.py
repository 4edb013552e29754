"""Gaussian diffusion around the denoiser: the noise schedule, mel normalisation, q_sample and the loss.

Buffers are named as in Diffusion-SVC's ``decoder.*`` state-dict entries (computed in float64 then
stored float32, as upstream). Samplers (core/model/samplers.py) read ``betas``/``alphas_cumprod``
from here and call the denoiser; nothing in this module knows about sampling.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.model.config import DecoderConfig
from core.model.wavenet import WaveNet

# Schedule buffer names in state-dict order (all [timesteps] float32).
SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def linear_schedule(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> dict[str, np.ndarray]:
    """The 12 schedule arrays (float64) of a linear beta schedule."""
    betas = np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)
    acp = np.cumprod(1.0 - betas)
    acp_prev = np.append(1.0, acp[:-1])
    post_var = betas * (1.0 - acp_prev) / (1.0 - acp)
    return {
        "betas": betas,
        "alphas_cumprod": acp,
        "alphas_cumprod_prev": acp_prev,
        "sqrt_alphas_cumprod": np.sqrt(acp),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - acp),
        "log_one_minus_alphas_cumprod": np.log(1.0 - acp),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / acp),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / acp - 1.0),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(acp_prev) / (1.0 - acp),
        "posterior_mean_coef2": (1.0 - acp_prev) * np.sqrt(1.0 - betas) / (1.0 - acp),
    }


def _extract(buf: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """buf[t] shaped [B,1,1,1] for broadcasting over [B,1,M,T]."""
    return buf.gather(0, t.long()).reshape(-1, 1, 1, 1)


class GaussianDiffusion(nn.Module):
    """Holds the schedule buffers, ``spec_min``/``spec_max`` and the denoiser (``denoise_fn``)."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.num_timesteps = cfg.timesteps
        self.k_step = cfg.k_step
        for name, values in linear_schedule(cfg.timesteps).items():
            self.register_buffer(name, torch.from_numpy(values).float())
        self.register_buffer("spec_min", torch.full((1, 1, 1), float(cfg.spec_min)))
        self.register_buffer("spec_max", torch.full((1, 1, 1), float(cfg.spec_max)))
        self.denoise_fn = WaveNet(cfg.n_mels, cfg.n_layers, cfg.n_chans, cfg.n_hidden)

    # --- mel normalisation: natural-log mel <-> [-1, 1] (no clipping, as upstream) ---
    def norm_spec(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.spec_min) / (self.spec_max - self.spec_min) * 2 - 1

    def denorm_spec(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2 * (self.spec_max - self.spec_min) + self.spec_min

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise; x0/noise [B,1,M,T], t [B] integer steps."""
        return _extract(self.sqrt_alphas_cumprod, t) * x0 + _extract(self.sqrt_one_minus_alphas_cumprod, t) * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The clean-mel estimate implied by a noise prediction (used for validation images)."""
        return _extract(self.sqrt_recip_alphas_cumprod, t) * x_t - _extract(self.sqrt_recipm1_alphas_cumprod, t) * eps

    def training_loss(
        self,
        mel: torch.Tensor,
        cond: torch.Tensor,
        mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Epsilon-prediction MSE. mel [B,T,M] natural-log, cond [B,T,H], mask [B,T] (1 = real frame).

        ``t`` defaults to uniform integers in [0, k_step) and ``noise`` to standard normal; pass them
        (or a generator) to make the loss deterministic, e.g. for validation.
        """
        b = mel.shape[0]
        x0 = self.norm_spec(mel).transpose(1, 2)[:, None]  # [B,1,M,T]
        if t is None:
            t = torch.randint(0, self.k_step, (b,), device=mel.device, generator=generator)
        if noise is None:
            noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        x_t = self.q_sample(x0, t, noise)
        eps = self.denoise_fn(x_t, t, cond.transpose(1, 2))
        err = (eps.float() - noise.float()) ** 2
        if mask is None:
            return err.mean()
        m = mask[:, None, None, :].to(err.dtype)
        return (err * m).sum() / (m.sum() * err.shape[2]).clamp_min(1.0)

    def forward(self, mel: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.training_loss(mel, cond, mask)
