"""The decoder loads a Diffusion-SVC base (stand-in weights from the schema) and reproduces the
reference outputs computed by the upstream code (../shared/reference/diffusion_svc)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from core.errors import CheckpointError
from tests.conftest import REFERENCE

REF = REFERENCE / "diffusion_svc"
SCHEMA = json.loads((REF / "schema.json").read_text())
CONFIG = json.loads((REF / "config.json").read_text())


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _true_buffers() -> dict[str, torch.Tensor]:
    """The schedule buffers from the formulas in schema.json (independent of core.model)."""
    b = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    a = np.cumprod(1 - b)
    ap = np.append(1.0, a[:-1])
    pv = b * (1 - ap) / (1 - a)
    vals = {
        "betas": b, "alphas_cumprod": a, "alphas_cumprod_prev": ap, "sqrt_alphas_cumprod": np.sqrt(a),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - a), "log_one_minus_alphas_cumprod": np.log(1 - a),
        "sqrt_recip_alphas_cumprod": np.sqrt(1 / a), "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / a - 1),
        "posterior_variance": pv, "posterior_log_variance_clipped": np.log(np.maximum(pv, 1e-20)),
        "posterior_mean_coef1": b * np.sqrt(ap) / (1 - a), "posterior_mean_coef2": (1 - ap) * np.sqrt(1 - b) / (1 - a),
        "spec_min": np.full((1, 1, 1), -12.0), "spec_max": np.full((1, 1, 1), 2.0),
    }
    return {f"decoder.{k}": torch.from_numpy(v).float() for k, v in vals.items()}


def _stand_in_base(weights_builder, seed: int, n_spk: int) -> dict[str, torch.Tensor]:
    keys = dict(SCHEMA["keys"])
    if n_spk > 1:
        keys["spk_embed.weight"] = {"shape": [n_spk, 256], "dtype": "float32"}
    state = weights_builder.make_state_dict(keys, seed)
    state.update(_true_buffers())
    return state


def _write_base(tmp_path, weights_builder, case) -> tuple:
    n_spk = int(case["n_spk"])
    state = _stand_in_base(weights_builder, int(case["seed"]), n_spk)
    assert weights_builder.fingerprint(state) == pytest.approx(float(case["weights_fingerprint"]), rel=1e-9)
    folder = tmp_path / "base"
    folder.mkdir()
    torch.save({"global_step": 0, "model": state}, folder / "model_0.pt")
    yml = {"data": CONFIG["data"], "model": {**CONFIG["model"], "n_spk": n_spk}, "vocoder": CONFIG["vocoder"]}
    (folder / "config.yaml").write_text(yaml.safe_dump(yml))
    return folder / "model_0.pt", state


@pytest.fixture(scope="module", params=["case_1", "case_2"])
def loaded(request, tmp_path_factory, weights_builder):
    from core.model import SvcDecoder

    case = dict(np.load(REF / f"{request.param}.npz"))
    path, state = _write_base(tmp_path_factory.mktemp(request.param), weights_builder, case)
    return case, SvcDecoder.from_checkpoint(path, device="cpu"), state


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def test_state_dict_matches_schema_order_and_shapes(loaded):
    case, dec, state = loaded
    own = dec.state_dict()
    expected = [k for k in SCHEMA["keys"]]
    if "spk_embed.weight" in state:  # stored right after aug_shift_embed.weight upstream
        expected.insert(expected.index("aug_shift_embed.weight") + 1, "spk_embed.weight")
    assert list(own) == expected
    for k, v in state.items():
        assert torch.equal(own[k], v), k


def test_default_config_is_the_public_base_size():
    from core.model import SvcDecoder
    from core.model.config import DEFAULT

    dec = SvcDecoder(DEFAULT)
    assert sum(p.numel() for p in dec.parameters()) == SCHEMA["param_count"] == 55_192_704
    assert [(k, list(v.shape)) for k, v in dec.state_dict().items()] == [(k, v["shape"]) for k, v in SCHEMA["keys"].items()]


def test_condition_matches_reference(loaded):
    case, dec, _ = loaded
    spk = int(case["spk_id"])
    with torch.no_grad():
        cond = dec.condition(_t(case["units"]), _t(case["f0"]), _t(case["volume"]),
                             spk_id=None if spk < 0 else torch.tensor([[spk]]),
                             aug_shift=torch.tensor(float(case["aug_shift"])).reshape(1, 1, 1))
    np.testing.assert_allclose(cond.numpy(), case["cond"], atol=1e-5, rtol=0)
    if "cond_spk_mix" in case:
        mix = dict(zip(case["spk_mix_ids"].tolist(), case["spk_mix_weights"].tolist(), strict=True))
        with torch.no_grad():
            cmix = dec.condition(_t(case["units"]), _t(case["f0"]), _t(case["volume"]), spk_mix=mix,
                                 aug_shift=float(case["aug_shift"]))
        np.testing.assert_allclose(cmix.numpy(), case["cond_spk_mix"], atol=1e-5, rtol=0)
        assert not np.allclose(case["cond_spk_mix"], case["cond"], atol=1e-3)  # the mix really differs


def test_denoiser_matches_reference(loaded):
    case, dec, _ = loaded
    cond = _t(case["cond"])
    for tag in ("a", "b"):
        with torch.no_grad():
            eps = dec.denoise(_t(case[f"x_t_{tag}"]), torch.tensor([float(case[f"step_{tag}"])]), cond)
        np.testing.assert_allclose(eps.numpy(), case[f"eps_{tag}"], atol=1e-5, rtol=0)


def test_real_valued_steps_match_dpm_calls(loaded):
    """DPM-Solver calls the denoiser at real-valued steps; check the first recorded call is sane."""
    case, dec, _ = loaded
    with torch.no_grad():
        e1 = dec.denoise(_t(case["dpm_model_inputs"][:1]), torch.tensor([float(case["dpm_model_times"][1])]), _t(case["cond"]))
    assert torch.isfinite(e1).all() and e1.shape == (1, 1, 128, 64)


def test_training_loss_matches_reference(loaded):
    case, dec, _ = loaded
    with torch.no_grad():
        loss = dec.decoder.training_loss(_t(case["gt_mel"]), _t(case["cond"]), t=torch.tensor([int(case["train_t"])]),
                                         noise=_t(case["train_noise"]))
    assert float(loss) == pytest.approx(float(case["train_loss_l2"]), rel=1e-5)


def test_q_sample_reproduces_reference_noisy_inputs(loaded):
    case, dec, _ = loaded
    x0 = dec.norm_spec(_t(case["gt_mel"])).transpose(1, 2)[:, None]
    # x_t_a was built from gt_mel at step_a with unknown noise: recover the noise and check it is ~N(0,1)
    t = int(case["step_a"])
    acp = dec.alphas_cumprod[t]
    noise = (_t(case["x_t_a"]) - acp.sqrt() * x0) / (1 - acp).sqrt()
    assert abs(float(noise.mean())) < 0.1 and abs(float(noise.std()) - 1) < 0.1
    assert float(dec.alphas_cumprod[-1]) == pytest.approx(4.04e-5, rel=0.01)
    m = torch.linspace(-12, 2, 5)
    assert torch.allclose(dec.denorm_spec(dec.norm_spec(m)), m, atol=1e-5)
    assert torch.allclose(dec.norm_spec(torch.tensor([-12.0, 2.0])).flatten(), torch.tensor([-1.0, 1.0]))


def test_base_without_optional_keys_and_yaml_loads(tmp_path, weights_builder):
    from core.model import SvcDecoder

    keys = {k: v for k, v in SCHEMA["keys"].items() if k != "aug_shift_embed.weight" and not k.startswith("decoder.betas")}
    state = weights_builder.make_state_dict(keys, 3)
    torch.save({"global_step": 0, "model": state}, tmp_path / "model_0.pt")
    dec = SvcDecoder.from_checkpoint(tmp_path / "model_0.pt")  # no config.yaml: architecture from shapes
    assert dec.config.n_chans == 512 and dec.config.use_pitch_aug is False and dec.aug_shift_embed is None
    assert float(dec.betas[0]) == pytest.approx(1e-4)  # recomputed, not the random stand-in


def test_shape_mismatch_and_garbage_are_clear_errors(tmp_path, weights_builder):
    from core.model import SvcDecoder

    state = weights_builder.make_state_dict(SCHEMA["keys"], 1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"encoder_out_channels": 256}, "model": CONFIG["model"]}))
    torch.save({"global_step": 0, "model": state}, tmp_path / "model_0.pt")
    with pytest.raises(CheckpointError, match="units_dim=256"):
        SvcDecoder.from_checkpoint(tmp_path / "model_0.pt")
    torch.save({"global_step": 0, "weights": state}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt"):
        SvcDecoder.from_checkpoint(tmp_path / "other.pt")


def test_gradient_checkpointing_gives_the_same_gradients():
    from core.model import SvcDecoder
    from core.model.config import TINY

    torch.manual_seed(0)
    dec = SvcDecoder(TINY).train()
    torch.nn.init.normal_(dec.decoder.denoise_fn.output_projection.weight, std=0.05)
    inputs = (torch.randn(2, 30, 768), torch.rand(2, 30, 1) * 300, torch.rand(2, 30, 1), torch.randn(2, 30, 128) - 5)
    grads = []
    for enabled in (False, True):
        dec.zero_grad()
        dec.set_gradient_checkpointing(enabled)
        torch.manual_seed(1)  # same t and noise
        dec(*inputs).backward()
        grads.append(dec.decoder.denoise_fn.residual_layers[0].dilated_conv.weight.grad.clone())
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)
