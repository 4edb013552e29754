"""Environment doctor (CLI and checks) and the Models tab handlers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from core import doctor
from tests.conftest import ROOT


def test_run_doctor_covers_every_area(tmp_pretrained: Path, tmp_logs: Path) -> None:
    checks = doctor.run_doctor()
    names = [c.name for c in checks]
    for expected in ("Python", "torch", "CUDA", "onnxruntime", "ffmpeg", "disk"):
        assert expected in names
    from core.pretrained import REGISTRY

    assert sum(n.startswith("pretrained ") for n in names) == len(REGISTRY) == 11  # incl. 4 optional Roformers
    optional = [c for c in checks if c.name == "pretrained uvr_karaoke"][0]
    assert optional.status == doctor.OK and "optional" in optional.detail
    assert all(c.status in (doctor.OK, doctor.WARN, doctor.FAIL) and c.detail for c in checks)
    missing = [c for c in checks if c.name == "pretrained rmvpe"][0]
    # A required model missing is a problem (a fresh install must not report "0 problem(s)"), said per surface.
    assert missing.status == doctor.FAIL and "python -m core download rmvpe" in missing.cli_detail
    assert "Models tab" in missing.ui_detail and "python -m core" not in missing.ui_detail
    report = doctor.format_report(checks)
    assert "0 problem(s)" not in report and "python -m core download contentvec" in report


def test_missing_model_messages_name_the_surface_action(tmp_pretrained: Path, tmp_logs: Path) -> None:
    """One error, two renderings: the CLI command in str(), the UI action in for_ui() (and in the UI's red box)."""
    import gradio as gr

    from core import pretrained
    from core.errors import MissingPretrainedError
    from core.separate import check_model_files
    from webui.common import user_errors

    with pytest.raises(MissingPretrainedError) as err:
        pretrained.require(pretrained.RMVPE, download_name="rmvpe")
    assert err.value.model == "rmvpe" and "python -m core download rmvpe" in str(err.value)
    ui = err.value.for_ui()
    assert str(tmp_pretrained / "rmvpe" / "rmvpe.pt") in ui and "Models tab" in ui and "'rmvpe'" in ui
    assert "python -m core" not in ui and len(ui.splitlines()) == 1

    with pytest.raises(MissingPretrainedError) as err:  # Cover asks for the name the Models tab offers
        check_model_files("UVR-MDX-NET-Voc_FT.onnx", tmp_pretrained / "uvr")
    assert err.value.model == "uvr_vocals" and "download uvr_vocals" in str(err.value)
    with pytest.raises(MissingPretrainedError) as err:
        check_model_files("UVR_MDXNET_KARA_2.onnx", tmp_pretrained / "uvr")
    assert err.value.model == "uvr_karaoke"

    @user_errors
    def handler() -> None:  # the real "nothing trained yet" path of the Convert tab
        from core.convert import resolve_checkpoint
        from core.experiment import Experiment

        exp = Experiment.open("singer")
        exp.root.mkdir(parents=True)
        resolve_checkpoint(exp, "best")

    with pytest.raises(gr.Error) as box:
        handler()
    assert "Train tab" in box.value.message and "python -m core" not in box.value.message


def test_present_pretrained_file_is_ok(tmp_pretrained: Path) -> None:
    f = tmp_pretrained / "rmvpe" / "rmvpe.pt"
    f.parent.mkdir()
    f.write_bytes(b"x")
    rmvpe = [c for c in doctor.check_pretrained() if c.name == "pretrained rmvpe"][0]
    assert rmvpe.status == doctor.OK
    rmvpe = [c for c in doctor.check_pretrained(verify=True) if c.name == "pretrained rmvpe"][0]
    assert rmvpe.status == doctor.FAIL and "sha256" in rmvpe.detail


def test_ffmpeg_comes_from_the_wheels(tmp_pretrained: Path) -> None:
    import av
    import imageio_ffmpeg

    check = doctor.check_ffmpeg()
    assert check.status == doctor.OK
    assert f"PyAV {av.__version__}" in check.detail and f"imageio-ffmpeg {imageio_ffmpeg.__version__}" in check.detail
    assert "ffmpeg version" in check.detail and str(Path(imageio_ffmpeg.__file__).parent) in check.detail


def test_missing_bundled_ffmpeg_is_a_failure_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_pretrained: Path
) -> None:
    import core.ffmpeg_tool
    from core.errors import SvcoverError

    def no_wheel():
        raise SvcoverError("imageio-ffmpeg is not installed (No module named 'imageio_ffmpeg')")

    monkeypatch.setattr(core.ffmpeg_tool, "wheel_ffmpeg", no_wheel)
    check = doctor.check_ffmpeg()
    assert check.status == doctor.FAIL and "imageio-ffmpeg is not installed" in check.detail
    import argparse

    from core.cli import doctor as doctor_cli

    assert doctor_cli.run_cli(argparse.Namespace(json=False, verify_checksums=False)) == 1
    assert "[FAIL] ffmpeg" in capsys.readouterr().out


def test_gpu_without_onnxruntime_gpu_warns() -> None:
    import onnxruntime

    has_gpu_provider = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert doctor.check_onnxruntime(False).status == doctor.OK
    warn = doctor.check_onnxruntime(True)
    if has_gpu_provider:  # a CUDA machine: onnxruntime-gpu is installed, nothing to warn about
        assert warn.status == doctor.OK
    else:
        assert warn.status == doctor.WARN and "onnxruntime-gpu" in warn.detail


def test_nvidia_gpu_with_cpu_torch_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor, "_nvidia_smi_gpus", lambda: ["GPU 0: NVIDIA GeForce RTX 3060"])
    checks, has_gpu = doctor.check_torch()
    cuda = [c for c in checks if c.name == "CUDA"][0]
    assert has_gpu and cuda.status == doctor.WARN and "RTX 3060" in cuda.detail


def test_low_disk_space(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage(100 * 2**30, 99.5 * 2**30, 2**29))
    assert doctor.check_disk(tmp_path / "not" / "there").status == doctor.FAIL
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage(100 * 2**30, 95 * 2**30, 5 * 2**30))
    assert doctor.check_disk(tmp_path).status == doctor.WARN


def test_cli_json(tmp_path: Path) -> None:
    env = {**os.environ, "SVCOVER_PRETRAINED": str(tmp_path / "pre"), "SVCOVER_LOGS": str(tmp_path / "logs")}
    r = subprocess.run([sys.executable, "-m", "core", "doctor", "--json"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    checks = json.loads(r.stdout)
    fails = [c for c in checks if c["status"] == "fail"]
    assert r.returncode == (1 if fails else 0)
    assert {c["name"] for c in checks} >= {"Python", "torch", "ffmpeg", "disk", "pretrained contentvec"}


def test_models_tab_builds_without_torch() -> None:
    code = (
        "import sys, gradio as gr\n"
        "from webui import models_tab\n"
        "with gr.Blocks() as demo:\n"
        "    models_tab.build()\n"
        "rows = models_tab.refresh_status(False)\n"
        "assert [r[0] for r in rows][:2] == ['contentvec', 'rmvpe'], rows\n"
        "assert 'torch' not in sys.modules, 'models tab imported torch'\n"
        "print('OK')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_models_tab_handlers(tmp_logs: Path, tmp_pretrained: Path, tmp_path: Path) -> None:
    import gradio as gr
    import torch

    from webui import models_tab

    rows, summary = models_tab.run_doctor()
    assert any(r[1] == "ffmpeg" for r in rows) and "problem(s)" in summary
    src = tmp_path / "friend.pth"
    torch.save({"weight": {"w": torch.ones(2)}}, src)
    msg = models_tab.import_model(str(src), "friend")
    assert "friend" in msg and (tmp_logs / "friend" / "export" / "model.safetensors").is_file()
    with pytest.raises(gr.Error, match="invalid experiment name"):
        models_tab.import_model(str(src), "../../etc")
    evil = tmp_path / "evil.pth"
    evil.write_bytes(b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    msg = models_tab.import_model(str(evil), "evil")
    assert msg.startswith("**Not imported.**") and "refused to load" in msg
    assert not (tmp_logs / "evil").exists()


@pytest.mark.parametrize(("action", "cli", "ui"), [
    ("download", "python -m core download x", "Models tab"),
    ("dataset", "python -m core dataset --exp x", "Dataset tab"),
    ("extract", "python -m core extract --exp x", "Extract tab"),
    ("train", "python -m core train --exp x", "Train tab"),
])  # fmt: skip
def test_remedy_rendered_per_surface(action: str, cli: str, ui: str) -> None:
    from core.errors import NothingToDoError, Remedy

    err = NothingToDoError("logs/x: nothing here", remedy=Remedy(action, "x"))
    assert str(err).startswith("logs/x: nothing here: ") and cli in str(err)
    assert err.for_ui().startswith("logs/x: nothing here: ") and ui in err.for_ui() and "python -m" not in err.for_ui()
