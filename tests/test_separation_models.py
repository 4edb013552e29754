"""core.separation_models: the picker's facts match audio-separator's own tables; one device-dependent default."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.separation_models import (
    CATALOGUE,
    ENSEMBLE_PREFIX,
    catalogue_entry,
    choices,
    default_model,
    ensemble_presets,
    installed_ensemble_presets,
    package_vocal_sdr,
)


def test_vocal_sdr_copies_match_audio_separators_models_scores():
    for model in CATALOGUE:
        assert model.vocal_sdr == package_vocal_sdr(model.filename), model.filename


def test_cuda_default_is_a_roformer_of_at_least_12_4_db_and_cpu_keeps_mdx():
    gpu = catalogue_entry(default_model("vocals", cuda=True))
    cpu = catalogue_entry(default_model("vocals", cuda=False))
    assert gpu is not None and gpu.arch == "Roformer" and gpu.vocal_sdr >= 12.4
    assert cpu is not None and cpu.arch == "MDX"
    # the reason CPU machines keep MDX-Net: the measured CPU time per minute of audio
    assert cpu.cpu_s_per_min is not None and gpu.cpu_s_per_min is not None
    assert gpu.cpu_s_per_min > 3 * cpu.cpu_s_per_min
    for role in ("karaoke", "dereverb"):
        assert catalogue_entry(default_model(role, cuda=True)).arch == "Roformer"
        assert catalogue_entry(default_model(role, cuda=False)).arch == "MDX"
    # karaoke: the Roformer separates lead from backing better than the MDX model in the same table
    assert catalogue_entry(default_model("karaoke", cuda=True)).vocal_sdr > catalogue_entry(
        default_model("karaoke", cuda=False)).vocal_sdr  # fmt: skip
    with pytest.raises(ValueError):
        default_model("drums")


def test_default_falls_back_to_the_installed_model_of_the_role(tmp_path: Path):
    gpu, cpu = default_model("vocals", cuda=True), default_model("vocals", cuda=False)
    assert default_model("vocals", cuda=True, model_dir=tmp_path) == gpu  # nothing installed: ask for the best
    (tmp_path / cpu).write_bytes(b"x")
    assert default_model("vocals", cuda=True, model_dir=tmp_path) == cpu  # only MDX installed: use it
    (tmp_path / gpu).write_bytes(b"x")
    assert default_model("vocals", cuda=True, model_dir=tmp_path) == cpu  # Roformer without its yaml: not usable
    (tmp_path / catalogue_entry(gpu).config).write_text("x")
    assert default_model("vocals", cuda=True, model_dir=tmp_path) == gpu


def test_picker_labels_and_ensemble_presets_only_when_installed(tmp_path: Path):
    labels = dict((value, label) for label, value in choices("vocals", tmp_path))
    gpu = default_model("vocals", cuda=True)
    assert "12.60 dB vocal SDR" in labels[gpu] and "913 MB" in labels[gpu] and "CPU s/min" in labels[gpu]
    assert "not downloaded" in labels[gpu]
    presets = ensemble_presets()
    assert "vocal_rvc" in presets and installed_ensemble_presets(tmp_path) == []
    for name in presets["vocal_rvc"]["models"]:
        (tmp_path / name).write_bytes(b"x")
        (tmp_path / f"{Path(name).stem}.yaml").write_text("x")
    import json

    from tests.tiny_uvr import EMPTY_DOWNLOAD_LISTS

    checks = {k: {} for k in EMPTY_DOWNLOAD_LISTS}
    checks["roformer_download_list"] = {n: {n: f"{Path(n).stem}.yaml"} for n in presets["vocal_rvc"]["models"]}
    (tmp_path / "download_checks.json").write_text(json.dumps(checks))
    assert "vocal_rvc" in installed_ensemble_presets(tmp_path)
    assert ENSEMBLE_PREFIX + "vocal_rvc" in dict((v, k) for k, v in choices("vocals", tmp_path))


def test_catalogue_speeds_are_the_recorded_benchmark_results():
    """The picker's CPU figures are the numbers benchmarks/separation.py printed (results_separation.jsonl)."""
    import json

    from tests.conftest import ROOT

    rows = [json.loads(line) for line in (ROOT / "benchmarks" / "results_separation.jsonl").read_text().splitlines()]
    roformer = next(r for r in rows if r.get("model") == "mel_band_roformer" and r.get("segment_frames") == 801)
    mdx = next(r for r in rows if str(r.get("model", "")).startswith("mdx_net"))
    sizes = next(r for r in rows if "size_mb_fp32" in r and "Kim" in r.get("model", ""))
    gpu = catalogue_entry(default_model("vocals", cuda=True))
    cpu = catalogue_entry(default_model("vocals", cuda=False))
    assert gpu.cpu_s_per_min == roformer["cpu_s_per_min"] and gpu.size_mb == sizes["size_mb_fp32"]
    assert cpu.cpu_s_per_min == mdx["cpu_s_per_min"]
    assert gpu.segment_frames == roformer["segment_frames"]


def _fake_torch(root: Path, cuda: str | None) -> Path:
    package = root / "torch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the cheap check must not import torch')\n")
    (package / "version.py").write_text(f"__version__ = '2.13.0'\ncuda: Optional[str] = {cuda!r}\n")
    return root


@pytest.mark.parametrize(("cuda", "nvidia_smi", "expected"), [
    ("12.6", True, True),     # CUDA build and a driver: the Roformer default
    (None, True, False),      # CPU build on an NVIDIA machine: MDX-Net
    ("13.0", False, False),   # CUDA build but no driver
])
def test_cuda_guess_before_torch_is_loaded_reads_the_build_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda: str | None, nvidia_smi: bool, expected: bool
) -> None:
    import sys

    from core import separation_models

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if nvidia_smi:
        tool = bin_dir / "nvidia-smi"
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.syspath_prepend(str(_fake_torch(tmp_path / "site", cuda)))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert separation_models.cuda_available() is expected
    assert "torch" not in sys.modules
