"""Samplers for the epsilon-predicting diffusion decoder: DDPM, DDIM, PNDM, DPM-Solver++ (2M) and UniPC.

The denoiser never knows about the sampler: every sampler drives an ``eps_fn(x_t, t, cond) -> eps`` callable,
where ``t`` is a float tensor ``[B]`` on the model's integer step scale (0 .. N-1, N = 1000 for Diffusion-SVC).
The step rules come from the maintained ``diffusers`` scheduler classes, configured with the model's own betas
(``trained_betas``) and ``prediction_type="epsilon"``; this module only wires them to our denoiser, seeds them,
and adds shallow diffusion (start from a noised rough mel at step ``k_step`` instead of pure noise).

Defaults: DPM-Solver++ (multistep, order 2) with 10 steps (:data:`DEFAULT_STEPS`, the one default of convert,
cover, their CLI and the UI; why 10: docs/convert.md). Given the same ``seed`` every sampler returns the
same result (the initial noise and DDPM's per-step noise come from one CPU ``torch.Generator``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import SvcoverError
from core.progress import ProgressFn, report

if TYPE_CHECKING:  # pragma: no cover
    import torch

EpsFn = Callable[["torch.Tensor", "torch.Tensor", Any], "torch.Tensor"]


class Sampler(StrEnum):
    """The diffusion samplers, by the names the CLI, the UI and saved configs use (members equal these strings)."""

    DPM_SOLVER_PP = "dpm-solver++"  # DPM-Solver++ (2M), the default
    UNIPC = "unipc"
    DDIM = "ddim"
    PNDM = "pndm"
    DDPM = "ddpm"  # the slow full-length reference


# Plain strings, not members: argparse names invalid choices by their repr ('unipc', not <Sampler.UNIPC: ...>).
SAMPLERS: tuple[str, ...] = tuple(s.value for s in Sampler)
DEFAULT_SAMPLER = Sampler.DPM_SOLVER_PP
DEFAULT_STEPS = 10  # within 5 % of PNDM-100's mel error, ~5x cheaper end to end (benchmarks/results_convert.md)
SPACINGS = ("logsnr", "time")
# Step counts that make sense per sampler when the user does not say (DDPM is the slow full-length reference).
DEFAULT_STEPS_BY_SAMPLER: dict[Sampler, int] = {
    Sampler.DPM_SOLVER_PP: DEFAULT_STEPS, Sampler.UNIPC: 20, Sampler.DDIM: 50, Sampler.PNDM: 50, Sampler.DDPM: 1000,
}

# Diffusion-SVC's schedule: 1000 steps, betas linear from 1e-4 to 0.02 (computed in float64).
NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02


class SamplerError(SvcoverError, ValueError):
    """Bad sampler arguments (unknown name, step count outside the schedule, ...): one line for the user."""


def linear_betas(timesteps: int = NUM_TRAIN_TIMESTEPS, start: float = BETA_START, end: float = BETA_END) -> np.ndarray:
    """The Diffusion-SVC beta schedule (float64)."""
    return np.linspace(start, end, timesteps, dtype=np.float64)


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """Cumulative product of ``1 - betas`` (float64)."""
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def _as_numpy_betas(betas: Any) -> np.ndarray:
    if betas is None:
        return linear_betas()
    if hasattr(betas, "detach"):
        betas = betas.detach().cpu().double().numpy()
    arr = np.asarray(betas, dtype=np.float64).reshape(-1)
    if arr.size < 2 or not np.all((arr > 0) & (arr < 1)):
        raise SamplerError("betas must be a 1-D schedule of values in (0, 1)")
    return arr


def make_scheduler(sampler: str, betas: np.ndarray, spacing: str = "logsnr"):
    """A fresh ``diffusers`` scheduler for ``sampler`` over the schedule ``betas`` (epsilon prediction, no clipping).

    DDIM and PNDM use "trailing" timestep spacing so that the first step sits at the top of the schedule
    (the noise level the sampler starts from). DPM-Solver++ and UniPC place their steps uniformly in log-SNR
    (``spacing="logsnr"``, the default) or uniformly in time (``spacing="time"``, what Diffusion-SVC does).
    With an exact denoiser for Gaussian data, time-uniform steps shrink the spread of narrow distributions
    badly at 10-20 steps (std ratio ~0.5 for std 0.1), log-SNR steps keep it within a few percent (tests and
    docs/vocoder-and-samplers.md), so log-SNR is the default.
    """
    if spacing not in SPACINGS:
        raise SamplerError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        PNDMScheduler,
        UniPCMultistepScheduler,
    )

    common = {
        "num_train_timesteps": len(betas),
        "trained_betas": [float(b) for b in betas],
        "prediction_type": "epsilon",
    }
    if sampler == Sampler.DDPM:
        return DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small", timestep_spacing="trailing")
    if sampler == Sampler.DDIM:
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    if sampler == Sampler.PNDM:
        return PNDMScheduler(**common, skip_prk_steps=True, set_alpha_to_one=True, timestep_spacing="trailing")
    log_snr = spacing == "logsnr"
    if sampler == Sampler.DPM_SOLVER_PP:
        return DPMSolverMultistepScheduler(
            **common,
            algorithm_type="dpmsolver++",
            solver_order=2,
            solver_type="midpoint",
            lower_order_final=True,
            use_lu_lambdas=log_snr,
            timestep_spacing="linspace",
        )
    if sampler == Sampler.UNIPC:
        # uniform in log(sigma) = uniform in log-SNR for this parametrisation
        return UniPCMultistepScheduler(
            **common,
            solver_order=2,
            solver_type="bh2",
            predict_x0=True,
            lower_order_final=True,
            use_exponential_sigmas=log_snr,
            timestep_spacing="linspace",
        )
    raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def sample(
    eps_fn: EpsFn,
    cond: Any,
    shape: tuple[int, ...],
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = DEFAULT_STEPS,
    seed: int = 0,
    betas: Any = None,
    device: str | torch.device = "cpu",
    x_start: torch.Tensor | None = None,
    k_step: int | None = None,
    spacing: str = "logsnr",
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Run ``sampler`` for ``steps`` model evaluations' worth of steps and return x0 ``shape`` (float32).

    Parameters
    ----------
    eps_fn: ``eps_fn(x_t, t, cond)`` with ``x_t`` of ``shape`` and ``t`` a float tensor ``[shape[0]]`` of
        integer-valued steps; returns predicted noise of ``shape``.
    cond: passed through to ``eps_fn`` unchanged.
    shape: e.g. ``(B, 1, 128, T)``.
    sampler: one of :data:`SAMPLERS`.
    steps: number of denoising steps (``None`` = the sampler's default); at most the schedule depth.
    seed: seeds the initial noise (and DDPM's per-step noise); same seed -> same output.
    betas: the model's beta schedule (numpy or tensor, length N); default: Diffusion-SVC's linear schedule.
    x_start: for shallow diffusion, the normalised rough mel (``shape``); requires ``k_step``.
    k_step: shallow diffusion depth K: start from ``x_start`` noised to step K-1 and run the sampler over the
        first K steps of the schedule only. ``None`` = full depth from pure noise.
    spacing: step placement of DPM-Solver++ / UniPC: "logsnr" (default) or "time" (see :func:`make_scheduler`).
    progress: optional callback, called once per step.

    Returns
    -------
    The sampled (normalised) x0 as a float32 tensor on ``device``.
    """
    import torch

    if sampler not in SAMPLERS:
        raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    betas_np = _as_numpy_betas(betas)
    depth = len(betas_np)
    if k_step is not None:
        if x_start is None:
            raise SamplerError("k_step (shallow diffusion) needs x_start, the normalised rough mel")
        if not 1 <= int(k_step) <= depth:
            raise SamplerError(f"k_step must be in 1..{depth}, got {k_step}")
        depth = int(k_step)
    elif x_start is not None:
        raise SamplerError("x_start is only used with k_step (shallow diffusion)")
    if steps is None:
        steps = min(DEFAULT_STEPS_BY_SAMPLER[sampler], depth)
    steps = int(steps)
    if not 1 <= steps <= depth:
        raise SamplerError(f"steps must be in 1..{depth} for this schedule, got {steps}")

    scheduler = make_scheduler(sampler, betas_np[:depth], spacing=spacing)
    scheduler.set_timesteps(steps, device="cpu")
    timesteps = [int(t) for t in scheduler.timesteps]

    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device)
    if k_step is None:
        x = noise * float(getattr(scheduler, "init_noise_sigma", 1.0))
    else:
        acp = alphas_cumprod(betas_np)[depth - 1]
        x = float(np.sqrt(acp)) * x_start.to(device=device, dtype=torch.float32) + float(np.sqrt(1.0 - acp)) * noise

    batch = shape[0]
    step_kwargs: dict[str, Any] = {"generator": generator} if sampler == Sampler.DDPM else {}
    with torch.inference_mode():
        for i, t in enumerate(timesteps):
            t_model = torch.full((batch,), float(t), dtype=torch.float32, device=device)
            model_in = scheduler.scale_model_input(x, t)
            eps = eps_fn(model_in, t_model, cond)
            x = scheduler.step(eps.to(x.dtype), t, x, return_dict=False, **step_kwargs)[0]
            report(progress, (i + 1) / len(timesteps), f"{sampler} step {i + 1}/{len(timesteps)}")
    return x.to(torch.float32)


def model_evaluations(sampler: str, steps: int) -> int:
    """How many times ``sample`` calls ``eps_fn`` (PNDM's PLMS warm-up evaluates the first step twice)."""
    return steps + 1 if sampler == Sampler.PNDM and steps > 1 else steps
