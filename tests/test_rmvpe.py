"""RMVPE: stand-in checkpoints built from the published schema, saved like the released ``rmvpe.pt``
(plain float16 state dict), must load through our loader and reproduce the reference outputs of the
original implementation (mel, salience with reflect and zero padding, decoded f0)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError, MissingPretrainedError
from core.features.f0 import clear_model_cache, estimate_f0, load_model
from core.features.f0.rmvpe import N_BINS, Rmvpe, bin_to_hz, decode, pad_frames
from core.features.mel import n_frames
from tests.conftest import REFERENCE
from tests.standins import TouchPayload

RMVPE_REF = REFERENCE / "rmvpe"
CASES = ["case_a_vibrato", "case_b_gaps", "case_c_high_noisy"]


def _case(name: str) -> dict:
    return dict(np.load(RMVPE_REF / f"{name}.npz"))


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, weights_builder) -> Path:
    """The schema's stand-in weights saved exactly like the released file: plain float16 state dict."""
    schema = weights_builder.load_schema(RMVPE_REF / "schema.json")
    case = _case(CASES[0])
    state = weights_builder.make_state_dict(schema, int(case["seed"]))
    fp = weights_builder.fingerprint(state)
    assert abs(fp - float(case["weights_fingerprint"])) < 1e-3 * float(case["weights_fingerprint"])
    assert state["fc.1.weight"].dtype == torch.float16
    path = tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt"
    torch.save(state, path)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(stand_in: Path) -> Rmvpe:
    return Rmvpe.from_checkpoint(stand_in, device="cpu")


@pytest.mark.parametrize("name", CASES)
def test_reference_cases(model: Rmvpe, name: str) -> None:
    case = _case(name)
    audio = case["audio"]
    assert np.abs(model.mel(audio) - case["mel"]).max() <= 1e-3
    for pad, suffix in (("reflect", "reflectpad"), ("zero", "zeropad")):
        hidden = model.salience(audio, pad=pad)
        assert hidden.shape == case[f"hidden_{suffix}"].shape
        assert np.abs(hidden - case[f"hidden_{suffix}"]).max() <= 1e-4, pad
        f0 = model.f0(audio, threshold=float(case["thred"]), pad=pad)
        ref = case[f"f0_{suffix}"]
        np.testing.assert_array_equal(f0 > 0, ref > 0)
        voiced = ref > 0
        assert np.max(np.abs(f0[voiced] - ref[voiced]) / ref[voiced]) <= 1e-4


def test_padding_modes_differ_when_padding_is_needed(model: Rmvpe) -> None:
    case = _case("case_b_gaps")
    assert int(case["n_pad"]) > 0
    reflect = model.salience(case["audio"], pad="reflect")
    zero = model.salience(case["audio"], pad="zero")
    assert np.abs(reflect - zero).max() > 1e-4  # the reference data shows the two variants differ
    with pytest.raises(ValueError, match="pad"):
        model.salience(case["audio"], pad="edge")


def test_decode_reference_case() -> None:
    case = dict(np.load(RMVPE_REF / "decode_case.npz"))
    f0 = decode(case["hidden"], float(case["thred"]))
    np.testing.assert_array_equal(f0 > 0, case["f0"] > 0)
    voiced = case["f0"] > 0
    assert np.max(np.abs(f0[voiced] - case["f0"][voiced]) / case["f0"][voiced]) <= 1e-5


@pytest.mark.parametrize("hz", [1050.0, 1318.5, 1600.0, 1900.0])
def test_decode_covers_notes_above_1khz(hz: float) -> None:
    """A salience peak placed at a high note decodes to that note (no octave folding in the decoder)."""
    bins = np.arange(N_BINS)
    centre = (1200 * np.log2(hz / 10.0) - 1997.3794084376191) / 20.0
    salience = np.exp(-0.5 * ((bins - centre) / 1.5) ** 2)[None, :].astype(np.float32) * 0.9
    f0 = decode(salience)
    assert abs(1200 * np.log2(f0[0] / hz)) < 5.0
    assert bin_to_hz(N_BINS - 1) > 2000 > 1975 and 31 < bin_to_hz(0) < 32


def test_short_clips_pad_to_multiple_of_32(model: Rmvpe) -> None:
    mel = torch.zeros(128, 5)
    assert pad_frames(mel, "reflect").shape[-1] == 32  # too short to reflect: zero fallback, no crash
    for n in (0, 1, 100, 600, 1600):
        wav = (0.1 * np.sin(np.arange(n) * 0.1)).astype(np.float32)
        assert model.salience(wav).shape == (1 + n // 160, N_BINS)
        assert model.f0(wav).shape == (1 + n // 160,)


def test_float32_file_without_batch_counters_loads(model: Rmvpe, stand_in: Path, tmp_path: Path) -> None:
    state = torch.load(stand_in, weights_only=True)
    state = {k: v.float() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "rmvpe_fp32.pt"
    torch.save(state, path)
    other = Rmvpe.from_checkpoint(path)
    audio = _case("case_c_high_noisy")["audio"]
    np.testing.assert_allclose(other.salience(audio), model.salience(audio), atol=1e-6)


def test_estimate_f0_with_pretrained_layout(stand_in: Path, tmp_pretrained: Path) -> None:
    (tmp_pretrained / "rmvpe").mkdir()
    os.symlink(stand_in, tmp_pretrained / "rmvpe" / "rmvpe.pt")
    clear_model_cache()
    wav = (0.3 * np.sin(2 * np.pi * 220 * np.arange(22050) / 44100)).astype(np.float32)
    f0 = estimate_f0(wav, "rmvpe")
    assert f0.shape == (n_frames(wav.size),) and f0.dtype == np.float32
    assert load_model("rmvpe") is load_model("rmvpe") is load_model("rmvpe", "auto")  # cached per (file, device)
    for n in (0, 100, 513):
        assert estimate_f0(wav[:n], "rmvpe", rmvpe_pad="zero").shape == (n_frames(n),)
    assert Rmvpe.from_pretrained("cpu").net is not None
    clear_model_cache()


def test_missing_pretrained_names_file_and_command(tmp_pretrained: Path) -> None:
    clear_model_cache()
    with pytest.raises(MissingPretrainedError) as err:
        estimate_f0(np.zeros(4410, dtype=np.float32), "rmvpe")
    assert "rmvpe/rmvpe.pt" in str(err.value) and "python -m core download rmvpe" in str(err.value)
    with pytest.raises(MissingPretrainedError):
        Rmvpe.from_pretrained()


# ---------------------------------------------------------------------------- bad checkpoint files
def test_truncated_checkpoint(tmp_path: Path) -> None:
    full = tmp_path / "full.pt"
    torch.save({f"w{i}": torch.randn(64, 64) for i in range(8)}, full)
    cut = tmp_path / "rmvpe.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="rmvpe.pt"):
        Rmvpe.from_checkpoint(cut)


def test_checkpoint_of_another_model(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(4, 4).state_dict(), other)
    with pytest.raises(CheckpointError, match="not an RMVPE checkpoint.*missing"):
        Rmvpe.from_checkpoint(other)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"generator": torch.nn.Linear(4, 4).state_dict()}, wrapped)
    with pytest.raises(CheckpointError, match="wrapped under 'generator'"):
        Rmvpe.from_checkpoint(wrapped)


def test_checkpoint_with_wrong_shape(stand_in: Path, tmp_path: Path) -> None:
    state = torch.load(stand_in, weights_only=True)
    state["fc.1.weight"] = torch.zeros(100, 512, dtype=torch.float16)
    path = tmp_path / "bad_shape.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="fc.1.weight has shape"):
        Rmvpe.from_checkpoint(path)


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "rmvpe.pt"
    with open(path, "wb") as f:
        pickle.dump({"fc.1.weight": TouchPayload(marker)}, f)
    with pytest.raises(CheckpointError, match="refused|not a valid"):
        Rmvpe.from_checkpoint(path)
    torch.save({"x": TouchPayload(marker)}, tmp_path / "zip.pt")
    with pytest.raises(CheckpointError, match="refused"):
        Rmvpe.from_checkpoint(tmp_path / "zip.pt")
    assert not marker.exists()


# ------------------------------------------------------------ real weights (only where rmvpe.pt exists)
def _real_rmvpe() -> Path | None:
    from core.pretrained import pretrained_root

    path = pretrained_root() / "rmvpe" / "rmvpe.pt"
    return path if path.is_file() else None


@pytest.mark.skipif(_real_rmvpe() is None, reason="the real pretrained/rmvpe/rmvpe.pt is not installed here")
def test_real_rmvpe_accuracy_and_high_notes(tmp_path: Path) -> None:
    import soundfile as sf

    from tests.conftest import make_synthetic_singing

    wav_path = make_synthetic_singing(tmp_path / "s", seed=1, extra_args=["--duration", "6"])
    wav, _ = sf.read(wav_path, dtype="float32")
    truth = np.load(tmp_path / "s_f0.npy")
    f0 = estimate_f0(wav, "rmvpe", model_path=_real_rmvpe())
    voiced = truth > 0
    assert (1200 * np.abs(np.log2(np.maximum(f0[voiced], 1e-3) / truth[voiced])) < 50).mean() >= 0.95
    for hz in (1100.0, 1300.0):  # notes above 1 kHz, where RMVPE is reported to make octave errors
        t = np.arange(66150) / 44100
        wav = sum(0.25 / k * np.sin(2 * np.pi * k * hz * t) for k in range(1, 8)).astype(np.float32)
        f0 = estimate_f0(wav, "rmvpe", model_path=_real_rmvpe())[5:-5]
        assert (np.abs(1200 * np.log2(np.maximum(f0, 1e-3) / hz)) < 50).mean() >= 0.9, hz
