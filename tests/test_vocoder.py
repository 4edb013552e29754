"""NSF-HiFiGAN: loads a checkpoint shaped like the openvpi release and reproduces the upstream reference outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError, MissingPretrainedError
from core.vocoder import NsfHifiGan, VocoderConfig, receptive_frames
from tests.conftest import REFERENCE

NSF = REFERENCE / "nsf_hifigan"
CASES = ["case_a_voiced", "case_b_unvoiced_gap"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_case(name: str) -> dict:
    return dict(np.load(NSF / f"{name}.npz"))


@pytest.fixture(scope="module")
def stand_in_state(weights_builder) -> dict:
    case = load_case(CASES[0])
    sd = weights_builder.make_state_dict(weights_builder.load_schema(NSF / "schema.json"), int(case["seed"]))
    assert weights_builder.fingerprint(sd) == pytest.approx(float(case["weights_fingerprint"]), rel=1e-6)
    assert all(load_case(c)["seed"] == case["seed"] for c in CASES)
    return sd


@pytest.fixture(scope="module")
def release_folder(tmp_path_factory, stand_in_state) -> Path:
    """A folder laid out like the 2022-12 release: ``model`` = {'generator': sd} + the released config.json."""
    folder = tmp_path_factory.mktemp("nsf_hifigan")
    torch.save({"generator": stand_in_state}, folder / "model")
    shutil.copy(NSF / "config.json", folder / "config.json")
    return folder


@pytest.fixture(scope="module")
def vocoder(release_folder) -> NsfHifiGan:
    return NsfHifiGan.from_checkpoint(release_folder, device="cpu")


def test_schema_keys_are_weight_norm_style(stand_in_state):
    assert "conv_pre.weight_g" in stand_in_state and "ups.0.weight_v" in stand_in_state
    assert not any(k.endswith("conv_pre.weight") for k in stand_in_state)


@pytest.mark.parametrize("name", CASES)
def test_reproduces_zero_noise_reference(vocoder, name):
    case = load_case(name)
    wav = vocoder.vocode(case["mel"], case["f0"], deterministic=True)
    assert wav.dtype == np.float32 and wav.shape == case["wav_zero_noise"].shape == (40 * 512,)
    assert np.abs(wav - case["wav_zero_noise"]).max() <= 1e-4
    with torch.inference_mode():
        har = vocoder.generator.m_source(torch.from_numpy(case["f0"])[None], deterministic=True)
    assert np.abs(har[0, 0].numpy() - case["source_zero_noise"]).max() <= 1e-5


@pytest.mark.parametrize("name", CASES)
def test_reproduces_seeded_reference_with_same_random_calls(vocoder, name):
    case = load_case(name)
    wav = vocoder.vocode(case["mel"], case["f0"], seed=int(case["noise_seed"]))
    assert np.abs(wav - case["wav_seeded"]).max() <= 1e-4
    # an unseeded run is random but statistically the same signal
    free = vocoder.vocode(case["mel"], case["f0"])
    assert free.shape == case["wav_seeded"].shape
    rms, ref_rms = np.sqrt(np.mean(free**2)), np.sqrt(np.mean(case["wav_seeded"] ** 2))
    assert abs(rms / ref_rms - 1) < 0.1
    assert not np.allclose(free, case["wav_seeded"], atol=1e-4)


def test_deterministic_mode_is_repeatable_and_random_mode_is_not(vocoder):
    case = load_case(CASES[1])
    mel, f0 = case["mel"][:, 10:22], case["f0"][10:22]  # voiced and unvoiced frames
    a = vocoder.vocode(mel, f0, deterministic=True)
    b = vocoder.vocode(mel, f0, deterministic=True)
    assert np.array_equal(a, b)
    c = vocoder.vocode(mel, f0)
    d = vocoder.vocode(mel, f0)
    assert not np.array_equal(c, d)
    assert np.array_equal(vocoder.vocode(mel, f0, seed=5), vocoder.vocode(mel, f0, seed=5))


def test_plain_network_matches_reference_too(release_folder, vocoder):
    """fast=False runs the network exactly as upstream lays it out (the path used on GPUs)."""
    plain = NsfHifiGan.from_checkpoint(release_folder, fast=False)
    assert plain._filter is not vocoder._filter
    case = load_case(CASES[1])
    wav = plain.vocode(case["mel"], case["f0"], deterministic=True)
    assert np.abs(wav - case["wav_zero_noise"]).max() <= 1e-4


def test_chunked_inference_equals_one_pass(vocoder):
    """Chunks overlap by the receptive field, so cutting a long input changes nothing."""
    frames = 64
    a, b = load_case(CASES[0]), load_case(CASES[1])
    mel = np.concatenate([a["mel"], b["mel"][:, :24]], axis=1)
    f0 = np.concatenate([a["f0"], b["f0"][:24]])
    assert mel.shape[1] == frames
    whole = vocoder.vocode(mel, f0, deterministic=True, chunk_frames=None)
    for chunk in (20, 45):
        chunked = vocoder.vocode(mel, f0, deterministic=True, chunk_frames=chunk)
        assert chunked.shape == whole.shape == (frames * 512,)
        assert np.abs(chunked - whole).max() <= 1e-5, chunk
    assert 4 <= receptive_frames(vocoder.cfg) <= 40


def test_accepts_model_file_path_ckpt_name_and_parametrization_keys(tmp_path, stand_in_state, vocoder):
    """`model.ckpt` (later releases), a file path instead of the folder, new-style weight-norm names,
    and unknown config keys are all fine and give the same network."""
    renamed = {}
    for k, v in stand_in_state.items():
        if k.endswith(".weight_g"):
            renamed[k[: -len(".weight_g")] + ".parametrizations.weight.original0"] = v
        elif k.endswith(".weight_v"):
            renamed[k[: -len(".weight_v")] + ".parametrizations.weight.original1"] = v
        else:
            renamed[k] = v
    torch.save({"generator": renamed}, tmp_path / "model.ckpt")
    config = json.loads((NSF / "config.json").read_text())
    config.update({"learning_rate": 2e-4, "num_gpus": 4, "segment_size": 16384, "some_future_key": [1, 2]})
    (tmp_path / "config.json").write_text(json.dumps(config))
    other = NsfHifiGan.from_checkpoint(tmp_path / "model.ckpt")
    case = load_case(CASES[0])
    mel, f0 = case["mel"][:, :10], case["f0"][:10]
    a = other.vocode(mel, f0, deterministic=True)
    assert np.abs(a - vocoder.vocode(mel, f0, deterministic=True)).max() < 1e-6
    assert other.sample_rate == 44100 and other.hop_size == 512


def _assert_one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_wrong_checkpoints_raise_one_line_checkpoint_error(tmp_path, stand_in_state):
    shutil.copy(NSF / "config.json", tmp_path / "config.json")
    model = tmp_path / "model"

    # an RMVPE-like plain state dict (no 'generator')
    torch.save(
        {"unet.encoders.layers.0.conv.0.weight": torch.zeros(16, 1, 3, 3), "fc.0.gru.weight_ih_l0": torch.zeros(3)},
        model,
    )
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(tmp_path)
    _assert_one_line(err, str(model), "generator")

    # a 'generator' that is some other network
    torch.save({"generator": {"encoder.weight": torch.zeros(4, 4)}}, model)
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(model)
    _assert_one_line(err, str(model), "missing keys")

    # one tensor missing, one weight-norm half missing
    for dropped in ("conv_post.bias", "ups.2.weight_v"):
        torch.save({"generator": {k: v for k, v in stand_in_state.items() if k != dropped}}, model)
        with pytest.raises(CheckpointError) as err:
            NsfHifiGan.from_checkpoint(model)
        _assert_one_line(err, dropped)

    # config that does not match the weights (80-bin vocoder config)
    torch.save({"generator": stand_in_state}, model)
    config = json.loads((NSF / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_mels": 80}))
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(tmp_path)
    _assert_one_line(err, "conv_pre.weight", "config.json")

    # truncated file -> safe_load's error
    model.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(tmp_path)
    _assert_one_line(err, str(model))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(tmp_path)
    _assert_one_line(err, str(tmp_path), "model.ckpt")
    torch.save({"generator": {}}, tmp_path / "model")
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(tmp_path)
    _assert_one_line(err, "config.json")
    (tmp_path / "config.json").write_text(json.dumps({"mini_nsf": True}))
    with pytest.raises(CheckpointError) as err:
        NsfHifiGan.from_checkpoint(tmp_path)
    _assert_one_line(err, "mini_nsf")


def test_from_pretrained(tmp_pretrained, release_folder, vocoder):
    with pytest.raises(MissingPretrainedError) as err:
        NsfHifiGan.from_pretrained()
    _assert_one_line(err, "nsf_hifigan", "python -m core download nsf_hifigan")
    folder = tmp_pretrained / "nsf_hifigan"
    folder.mkdir()
    (folder / "model").symlink_to(release_folder / "model")
    with pytest.raises(MissingPretrainedError) as err:
        NsfHifiGan.from_pretrained()
    _assert_one_line(err, str(folder / "config.json"), "python -m core download nsf_hifigan")
    shutil.copy(NSF / "config.json", folder / "config.json")
    voc = NsfHifiGan.from_pretrained(device="cpu")
    for key, value in vocoder.generator.state_dict().items():
        assert torch.equal(voc.generator.state_dict()[key], value), key


def test_input_validation(vocoder):
    with pytest.raises(ValueError, match="128"):
        vocoder.vocode(np.zeros((80, 10), np.float32), np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="frames"):
        vocoder.vocode(np.zeros((128, 10), np.float32), np.zeros(9, np.float32))
    assert vocoder.vocode(np.zeros((128, 0), np.float32), np.zeros(0, np.float32)).shape == (0,)


def test_config_defaults_are_the_release():
    cfg = VocoderConfig.from_dict(json.loads((NSF / "config.json").read_text()))
    assert cfg == VocoderConfig()


def test_fast_path_handles_narrow_configs():
    """Stages narrower than 16 channels keep the plain layout; mixing layouts must not change the result."""
    from core.vocoder import build_generator

    cfg = VocoderConfig(upsample_initial_channel=64, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
    torch.manual_seed(0)
    state = build_generator(cfg).state_dict()
    fast = NsfHifiGan.from_state_dict(state, cfg, fast=True)
    plain = NsfHifiGan.from_state_dict(state, cfg, fast=False)
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((128, 50)).astype(np.float32) - 5
    f0 = np.where(np.arange(50) % 20 < 15, 180.0, 0.0).astype(np.float32)
    a = fast.vocode(mel, f0, deterministic=True, chunk_frames=16)
    b = plain.vocode(mel, f0, deterministic=True, chunk_frames=None)
    assert a.shape == (50 * 512,) and np.abs(a).max() > 0
    assert np.abs(a - b).max() <= 1e-5
