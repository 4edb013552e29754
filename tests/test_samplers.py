"""Samplers against an exact denoiser.

For data x0 ~ N(mu, sd^2) (independently per element) the noisy marginal at step t is
N(sqrt(a) mu, a sd^2 + 1 - a) with a = alphas_cumprod[t], and the optimal noise prediction is known in closed
form: E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a sd^2 + 1 - a). A correct sampler driven by it must
return samples whose per-bin mean and std approach mu and sd.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import SvcoverError
from core.model import samplers as S

N_MELS, FRAMES = 128, 500
BETAS = S.linear_betas()
ACP = torch.tensor(S.alphas_cumprod(BETAS), dtype=torch.float64)
MU = torch.linspace(-0.6, 0.6, N_MELS).view(1, 1, N_MELS, 1)
# std per mel bin, 0.05 .. 0.5 (log-spaced): the narrow bins are where few-step samplers go wrong
SD = torch.logspace(np.log10(0.05), np.log10(0.5), N_MELS).view(1, 1, N_MELS, 1)


class ExactEps:
    """The closed-form optimal eps for Gaussian data; records every step value it is called with."""

    def __init__(self) -> None:
        self.times: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        assert cond == "cond"  # passed through untouched
        self.times.append(t.clone())
        a = ACP[t.round().long()].view(-1, 1, 1, 1).float()
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * SD**2 + 1 - a)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean error and std ratio."""
    mean_err = (x.mean(-1) - MU[..., 0]).abs().flatten().numpy()
    std_ratio = (x.std(-1) / SD[..., 0]).flatten().numpy()
    return mean_err, std_ratio


@pytest.fixture(scope="module")
def ddpm_reference() -> torch.Tensor:
    return S.sample(ExactEps(), "cond", (1, 1, N_MELS, FRAMES), sampler="ddpm", steps=1000, seed=1)


def test_schedule_matches_diffusion_svc_and_model_module():
    acp = S.alphas_cumprod(BETAS)
    assert len(BETAS) == 1000 and BETAS[0] == pytest.approx(1e-4) and BETAS[-1] == pytest.approx(0.02)
    assert acp[-1] == pytest.approx(4.04e-5, rel=0.01)  # README: last value about 4.04e-5
    from core.model.diffusion import linear_schedule

    np.testing.assert_allclose(linear_schedule()["betas"], BETAS, rtol=0, atol=1e-15)


def test_ddpm_1000_reproduces_data_distribution(ddpm_reference):
    mean_err, std_ratio = stats(ddpm_reference)
    assert mean_err.max() < 0.06
    # DDPM with the posterior ("fixed small") variance slightly under-disperses very narrow bins
    assert 0.8 < std_ratio.min() and std_ratio.max() < 1.15
    assert abs(float(np.median(std_ratio)) - 1.0) < 0.06


@pytest.mark.parametrize("sampler", S.SAMPLERS)
@pytest.mark.parametrize("steps", [1, 5, 20, 50])
def test_every_sampler_any_step_count(sampler, steps):
    eps = ExactEps()
    x = S.sample(eps, "cond", (2, 1, N_MELS, 200), sampler=sampler, steps=steps, seed=3)
    assert x.shape == (2, 1, N_MELS, 200) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert len(eps.times) == S.model_evaluations(sampler, steps)
    for t in eps.times:  # float steps on the model's integer scale, one per batch item
        assert t.dtype == torch.float32 and t.shape == (2,)
        assert torch.equal(t, t.round()) and 0 <= float(t.min()) and float(t.max()) <= 999
    assert float(eps.times[0][0]) == 999.0  # every sampler starts at the top of the schedule
    # the mean is right whatever the step count (the ODE for Gaussian data is linear in x)
    mean_err, _ = stats(x.mean(0, keepdim=True))
    assert mean_err.max() < 0.1


@pytest.mark.parametrize("sampler", ["dpm-solver++", "unipc"])
def test_fast_samplers_at_20_steps_match_ddpm_1000(sampler, ddpm_reference):
    x = S.sample(ExactEps(), "cond", (1, 1, N_MELS, FRAMES), sampler=sampler, steps=20, seed=2)
    mean_err, std_ratio = stats(x)
    ref_mean_err, ref_std_ratio = stats(ddpm_reference)
    assert mean_err.max() < 0.06
    assert np.abs(std_ratio - 1).max() < 0.12  # within 12% of the true spread in every bin
    assert np.abs(std_ratio - ref_std_ratio).max() < 0.2
    assert abs(np.median(std_ratio) - np.median(ref_std_ratio)) < 0.06
    per_bin_mean_gap = (x.mean(-1) - ddpm_reference.mean(-1)).abs().max()
    assert float(per_bin_mean_gap) < 0.08


def test_log_snr_spacing_beats_time_uniform_at_20_steps():
    """Documents why the default spacing is log-SNR: time-uniform steps collapse narrow distributions."""
    x_log = S.sample(ExactEps(), "cond", (1, 1, N_MELS, 400), steps=20, seed=4, spacing="logsnr")
    x_time = S.sample(ExactEps(), "cond", (1, 1, N_MELS, 400), steps=20, seed=4, spacing="time")
    _, r_log = stats(x_log)
    _, r_time = stats(x_time)
    assert np.abs(r_log - 1).mean() < 0.05
    assert np.abs(r_time - 1).mean() > 3 * np.abs(r_log - 1).mean()


@pytest.mark.parametrize("sampler", S.SAMPLERS)
def test_deterministic_given_seed(sampler):
    steps = 30 if sampler == "ddpm" else 10
    a = S.sample(ExactEps(), "cond", (1, 1, N_MELS, 50), sampler=sampler, steps=steps, seed=7)
    b = S.sample(ExactEps(), "cond", (1, 1, N_MELS, 50), sampler=sampler, steps=steps, seed=7)
    c = S.sample(ExactEps(), "cond", (1, 1, N_MELS, 50), sampler=sampler, steps=steps, seed=8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_default_is_dpm_solver_pp_10_steps():
    eps = ExactEps()
    S.sample(eps, "cond", (1, 1, N_MELS, 4))
    assert S.DEFAULT_SAMPLER == "dpm-solver++" and len(eps.times) == 10 == S.DEFAULT_STEPS


def test_shallow_diffusion_from_noised_data():
    """Starting from real data noised to step K, the reverse process returns data-distributed samples
    and never asks the model about steps >= K."""
    k = 200
    g = torch.Generator().manual_seed(11)
    x_start = MU + SD * torch.randn((1, 1, N_MELS, FRAMES), generator=g)
    eps = ExactEps()
    x = S.sample(eps, "cond", x_start.shape, sampler="dpm-solver++", steps=10, seed=5, x_start=x_start, k_step=k)
    assert max(float(t.max()) for t in eps.times) == k - 1
    mean_err, std_ratio = stats(x)
    assert mean_err.max() < 0.06
    assert np.abs(std_ratio - 1).max() < 0.15
    # the probability-flow ODE maps x_K linearly to x0, so each bin's output keeps exactly the correlation
    # with the given mel that x_K has: sqrt(a) sd / sqrt(a sd^2 + 1 - a), a = alphas_cumprod[K - 1]
    a = float(ACP[k - 1])
    sd = SD.flatten().numpy()
    expected = np.sqrt(a) * sd / np.sqrt(a * sd**2 + 1 - a)
    xs, x0 = x[0, 0].numpy(), x_start[0, 0].numpy()
    corr = np.array([np.corrcoef(xs[i], x0[i])[0, 1] for i in range(N_MELS)])
    assert np.abs(corr - expected).mean() < 0.04 and np.abs(corr - expected).max() < 0.15


def test_custom_betas_and_argument_errors():
    betas = S.linear_betas(100, 1e-4, 0.2)
    eps_calls = []

    def eps_fn(x, t, cond):
        eps_calls.append(float(t[0]))
        return torch.zeros_like(x)

    S.sample(eps_fn, None, (1, 1, 4, 4), steps=5, betas=torch.tensor(betas))
    assert eps_calls[0] == 99.0 and all(0 <= t <= 99 for t in eps_calls)
    with pytest.raises(S.SamplerError, match="unknown sampler") as err:
        S.sample(eps_fn, None, (1, 1, 4, 4), sampler="euler")
    assert isinstance(err.value, SvcoverError) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="steps must be"):
        S.sample(eps_fn, None, (1, 1, 4, 4), steps=2000)
    with pytest.raises(ValueError, match="x_start"):
        S.sample(eps_fn, None, (1, 1, 4, 4), k_step=100)
    with pytest.raises(ValueError, match="spacing"):
        S.sample(eps_fn, None, (1, 1, 4, 4), spacing="karras")
