"""Model self-test (core/selftest.py, ``python -m core doctor --self-test``): it can fail, and it can pass.

Stand-in (random) weights built from ../shared/reference schemas or tests/standins.py must FAIL with the right
model named; FCPE's real weights (shipped in the torchfcpe wheel) must PASS. For the models whose real weights
cannot be downloaded here, a simple hand-made model that does the job (Griffin-Lim as vocoder, MFCCs as content
features, a blur as denoiser) shows each bound can be met.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import doctor, selftest
from core.cli import doctor as doctor_cli
from tests.conftest import REFERENCE, ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rmvpe_stand_in(path: Path, weights_builder) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights_builder.make_state_dict(weights_builder.load_schema(REFERENCE / "rmvpe" / "schema.json"), 0), path)
    return path


def test_fcpe_real_weights_pass_and_rmvpe_stand_in_fails(tmp_pretrained: Path, weights_builder) -> None:
    _rmvpe_stand_in(tmp_pretrained / "rmvpe" / "rmvpe.pt", weights_builder)
    seen = []
    results = {r.model: r for r in selftest.run_self_test(["rmvpe", "fcpe"], lambda f, m: seen.append((f, m)))}
    assert results["fcpe"].status == selftest.PASS, results["fcpe"].detail
    assert results["fcpe"].metrics["median_cents"] <= selftest.F0_MAX_MEDIAN_CENTS
    assert results["fcpe"].metrics["voiced_recall"] >= 0.9 and results["fcpe"].metrics["false_voiced"] <= 0.1
    rmvpe = results["rmvpe"]
    assert rmvpe.status == selftest.FAIL and "cents" in rmvpe.detail, rmvpe.detail
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0
    assert any("rmvpe" in m for _, m in seen)


def test_vocoder_random_weights_fail_and_griffin_lim_meets_the_bound(tmp_path: Path, weights_builder) -> None:
    import torch

    from core.features.mel import mel_basis

    folder = tmp_path / "nsf_hifigan"
    folder.mkdir()
    state = weights_builder.make_state_dict(weights_builder.load_schema(REFERENCE / "nsf_hifigan" / "schema.json"), 0)
    torch.save({"generator": state}, folder / "model")
    (folder / "config.json").write_text((REFERENCE / "nsf_hifigan" / "config.json").read_text())
    random = selftest.check_vocoder(folder)
    assert random.model == "nsf_hifigan" and random.status == selftest.FAIL, random.detail
    assert random.metrics["mel_distance"] > 2 * selftest.VOCODER_MAX_MEL_DISTANCE

    def griffin_lim(mel: np.ndarray, f0: np.ndarray) -> np.ndarray:
        """Knows nothing of F0: magnitudes from the mel basis' pseudo-inverse, phase from 32 iterations."""
        mag = torch.from_numpy(np.maximum(np.linalg.pinv(mel_basis()) @ np.exp(mel), 0.0).astype(np.float32))
        window, n = torch.hann_window(2048), mel.shape[1] * 512
        spec = mag.to(torch.complex64)
        for _ in range(32):
            frames = torch.stft(torch.istft(spec, 2048, 512, window=window, length=n), 2048, 512, window=window,
                                return_complex=True)[:, : mel.shape[1]]  # fmt: skip
            spec = mag * torch.exp(1j * torch.angle(frames))
        return torch.istft(spec, 2048, 512, window=window, length=n).numpy()

    crude = selftest.score_vocoder(griffin_lim)
    assert crude.status == selftest.PASS, crude.detail
    assert crude.metrics["mel_distance"] < 0.5 * selftest.VOCODER_MAX_MEL_DISTANCE


def test_vocoder_bound_separates_right_from_wrong_input() -> None:
    """The distance itself: a different noise draw is near 0; one semitone off or another vowel is over the bound."""
    wav, mel, _ = selftest.vocoder_input()
    from core.features.mel import log_mel

    n = wav.size
    t = np.arange(n) / selftest.SR
    f0 = 220.0 * 2 ** ((0.5 * np.sin(2 * np.pi * 5.0 * t)) / 12)
    same = selftest.mel_distance(mel, log_mel(selftest.synthetic_vowel(f0, "a", seed=7)))
    semitone = selftest.mel_distance(mel, log_mel(selftest.synthetic_vowel(f0 * 2 ** (1 / 12), "a")))
    vowel = selftest.mel_distance(mel, log_mel(selftest.synthetic_vowel(f0, "i")))
    assert same < 0.1 < selftest.VOCODER_MAX_MEL_DISTANCE < min(semitone, vowel)


def test_content_encoder_random_weights_fail_and_mfcc_passes(tmp_path: Path) -> None:
    import librosa

    from tests.standins import write_small_content_encoder

    path = write_small_content_encoder(tmp_path / "content" / "hubert_base.pt")
    random = selftest.check_content_encoder(path)
    assert random.model == "contentvec" and random.status == selftest.FAIL, random.detail
    assert "distance ratio" in random.detail

    def mfcc(wav16k: np.ndarray) -> np.ndarray:  # a spectral-envelope feature: pitch-blind by construction
        return librosa.feature.mfcc(y=wav16k, sr=16000, n_mfcc=13, n_fft=512, hop_length=320).T

    envelope = selftest.score_content(mfcc)
    assert envelope.status == selftest.PASS, envelope.detail
    frames = selftest.score_content(lambda w: mfcc(w)[:-1], num_frames=lambda n: mfcc(np.zeros(n, np.float32)).shape[0])
    assert frames.status == selftest.FAIL and "frames" in frames.detail
    nan = selftest.score_content(lambda w: mfcc(w) * np.nan)
    assert nan.status == selftest.FAIL and "NaN" in nan.detail


def test_diffusion_base_random_weights_fail_and_a_blur_denoiser_passes(tmp_path: Path, weights_builder) -> None:
    import torch

    from core.model.diffusion import SCHEDULE_BUFFERS, linear_schedule

    schema = weights_builder.load_schema(REFERENCE / "diffusion_svc" / "schema.json")
    state = weights_builder.make_state_dict(schema, 0)
    # Keep the file's schedule and mel range correct, so that only the random denoiser can make it fail.
    state = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in (*SCHEDULE_BUFFERS, "spec_min", "spec_max")}
    path = tmp_path / "diffusion_svc" / "model_0.pt"
    path.parent.mkdir()
    torch.save({"global_step": 0, "model": state}, path)
    random = selftest.check_diffusion_base(path)
    assert random.model == "diffusion_svc_base" and random.status == selftest.FAIL, random.detail
    assert "zero units" in random.detail

    _, mel, _ = selftest.diffusion_input()
    x0 = ((torch.from_numpy(mel) + 12.0) / 14.0 * 2 - 1)[None, None]  # the base's mel range, -12..2
    acp = linear_schedule(1000)["alphas_cumprod"]

    def blur(x_t: torch.Tensor, step: int) -> torch.Tensor:
        """Noise = what a box blur removes; the box widens with the noise (3 bins, then 5)."""
        k = 3 if step <= 100 else 5
        padded = torch.nn.functional.pad(x_t, (k // 2,) * 4, mode="replicate")
        smooth = torch.nn.functional.conv2d(padded, torch.ones(1, 1, k, k) / k**2)
        return (x_t - smooth) / math.sqrt(1.0 - acp[step])

    assert selftest.score_denoiser(blur, x0, 1000).status == selftest.PASS
    zeros = selftest.score_denoiser(lambda x, s: torch.zeros_like(x), x0, 1000)  # "no idea": MSE 1
    assert zeros.status == selftest.FAIL


def test_separation_band_mask_fails(tmp_path: Path) -> None:
    """A mask model (everything above 1 kHz is 'vocals') cannot separate the synthetic mix: the mix puts the
    accompaniment in the vocal's register on purpose."""
    from core.pretrained import UVR_VOCALS_MODEL
    from tests.tiny_uvr import install_tiny_uvr

    install_tiny_uvr(tmp_path / "uvr", cutoff_hz=1000.0, name=UVR_VOCALS_MODEL)
    result = selftest.check_separation(model_dir=tmp_path / "uvr")
    assert result.model == "uvr_vocals" and result.status == selftest.FAIL, result.detail
    assert result.metrics["gain_db"] < selftest.SEPARATION_MIN_SDR_GAIN_DB
    vocal, acc = selftest.synthetic_mix()
    assert abs(selftest.si_sdr(vocal, vocal + acc)) < 1.0  # 0 dB mix
    assert selftest.si_sdr(vocal, vocal + 0.1 * acc) > 15.0


def test_unloadable_file_fails_with_the_loader_message(tmp_pretrained: Path) -> None:
    bad = tmp_pretrained / "rmvpe" / "rmvpe.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    (result,) = selftest.run_self_test(["rmvpe"])
    assert result.status == selftest.FAIL and "could not run" in result.detail and "rmvpe.pt" in result.detail
    assert len(result.detail.splitlines()) == 1
    skipped = {r.model: r.status for r in selftest.run_self_test(["contentvec", "nsf_hifigan"])}
    assert skipped == {"contentvec": selftest.SKIP, "nsf_hifigan": selftest.SKIP}
    from core.pretrained import DIFFUSION_SVC_BASE

    base = tmp_pretrained / DIFFUSION_SVC_BASE  # present, but its input (content units) cannot be made
    base.parent.mkdir(parents=True)
    base.write_bytes(b"x")
    (result,) = selftest.run_self_test(["diffusion_svc_base"])
    assert result.status == selftest.SKIP and "content encoder" in result.detail
    from core.errors import SvcoverError

    with pytest.raises(SvcoverError, match="no self-test for nope"):
        selftest.run_self_test(["nope"])


def test_doctor_exit_code_follows_the_self_test(monkeypatch: pytest.MonkeyPatch, capsys, tmp_pretrained: Path) -> None:
    """With the environment checks all fine, the exit code is the self-test's: 0 when every tested model passes."""
    monkeypatch.setattr(doctor, "run_doctor", lambda verify_checksums=False: [doctor.Check("Python", doctor.OK, "x")])
    args = argparse.Namespace(json=False, verify_checksums=False, self_test=["fcpe"], device="cpu")
    assert doctor_cli.run_cli(args) == 0
    out = capsys.readouterr().out
    assert "[pass] fcpe" in out and "all 1 installed model(s) passed" in out
    monkeypatch.setattr(selftest, "run_self_test", lambda names, progress, device: [
        selftest.ModelCheck("nsf_hifigan", selftest.FAIL, "log-mel distance 2.6 (max 0.6)")])  # fmt: skip
    assert doctor_cli.run_cli(args) == 1
    assert "FAILED: nsf_hifigan" in capsys.readouterr().out


def test_cli_self_test_names_the_failing_model(tmp_path: Path) -> None:
    from tests.standins import write_small_vocoder

    pretrained = tmp_path / "pretrained"
    write_small_vocoder(pretrained / "nsf_hifigan")
    env = {**os.environ, "SVCOVER_PRETRAINED": str(pretrained), "SVCOVER_LOGS": str(tmp_path / "logs")}
    r = subprocess.run([sys.executable, "-m", "core", "doctor", "--json", "--self-test", "nsf_hifigan", "rmvpe"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    by_model = {x["model"]: x for x in report["self_test"]}
    assert by_model["nsf_hifigan"]["status"] == "fail" and "log-mel distance" in by_model["nsf_hifigan"]["detail"]
    assert by_model["rmvpe"]["status"] == "skip"
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["pretrained rmvpe"] == "fail" and checks["pretrained nsf_hifigan"] == "ok"
