"""Voice model format: safetensors + model card; foreign checkpoints only through the safe loader."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from core import voicemodel as vm
from core.errors import CheckpointError, InvalidNameError, SvcoverError
from tests.standins import TouchPayload


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"decoder.w": torch.randn(8, 4, generator=g), "decoder.b": torch.randn(8, generator=g),
            "spk": torch.arange(3, dtype=torch.int64)}


CARD = {"sample_rate": 44100, "content_encoder": "contentvec", "content_layer": 12, "f0_min": 98.5, "f0_max": 880.0,
        "steps": 1200, "vocoder": "nsf_hifigan", "vocoder_sha256": "ab" * 32}


def test_export_import_round_trip(tmp_path: Path) -> None:
    out = vm.export_voice_model(_state(), CARD, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "model_card.json"]
    card = json.loads((out / "model_card.json").read_text())
    for key, value in CARD.items():
        assert card[key] == value
    assert card["created_by"].startswith("svcover ") and card["format"] == "svcover-voice-model"
    model = vm.import_voice_model(out)
    assert model.state_dict["decoder.w"].dtype == torch.float16
    assert torch.allclose(model.state_dict["decoder.w"].float(), _state()["decoder.w"], atol=1e-2)
    assert torch.equal(model.state_dict["spk"], torch.arange(3))
    zipped = vm.pack_zip(out, tmp_path / "share.zip")
    again = vm.import_voice_model(zipped)
    assert again.card["weights_sha256"] == card["weights_sha256"]
    assert "44100 Hz" in vm.card_summary(again.card) and "F0 98-880 Hz" in vm.card_summary(again.card)


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    out = vm.export_voice_model(_state(), CARD, tmp_path / "export")
    other = vm.export_voice_model({"x": torch.ones(2)}, CARD, tmp_path / "other")
    os.replace(other / "model.safetensors", out / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        vm.import_voice_model(out)


def test_zip_with_wrong_contents_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../evil.py", "print('x')")
    with pytest.raises(SvcoverError, match="not an svcover voice model zip"):
        vm.import_voice_model(bad)
    assert not (tmp_path.parent / "evil.py").exists()


def test_foreign_checkpoint_goes_through_safe_loader(tmp_path: Path) -> None:
    rvc_like = tmp_path / "singer.pth"
    torch.save({"weight": {"enc.w": torch.ones(2, 2)}, "sr": "40k", "f0": 1, "version": "v2"}, rvc_like)
    model = vm.import_voice_model(rvc_like)
    assert model.foreign and model.card["foreign"] is True and model.card["source_sr"] == "40k"
    assert torch.equal(model.state_dict["enc.w"], torch.ones(2, 2))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": TouchPayload(tmp_path / "PWNED")}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        vm.import_voice_model(evil)
    assert not (tmp_path / "PWNED").exists()


def test_install_validates_name_and_writes_our_format(tmp_path: Path, tmp_logs: Path) -> None:
    src = tmp_path / "shared.pt"
    torch.save({"model": {"a": torch.ones(3)}, "global_step": 42}, src)
    with pytest.raises(InvalidNameError):
        vm.install_voice_model(src, "../escape")
    folder = vm.install_voice_model(src, "friend_voice")
    assert folder == tmp_logs / "friend_voice" / "export"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["steps"] == 42 and card["imported_from"] == "shared.pt" and card["foreign"] is True


def test_exported_card_carries_what_extract_and_train_wrote(tmp_logs: Path, tmp_pretrained: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Real Dataset -> real Extract (FCPE, stand-in content) -> real Train (2 steps): both exports (the one
    training writes and ``python -m core voice export``) carry the stats' F0 p5-p95 and the extract layer."""
    import hashlib

    from core.cli import main
    from core.dataset import build_dataset
    from core.experiment import Experiment
    from core.features.extract import ExtractConfig, run_extract
    from core.model import SvcDecoder
    from core.train import TrainConfig, train
    from tests.conftest import SHARED
    from tests.standins import training_extractors, write_small_vocoder

    write_small_vocoder(tmp_pretrained / "nsf_hifigan")
    build_dataset("alto", [SHARED / "data" / "synthetic" / "singer_a_seed1.wav"])  # sung 180-520 Hz
    run_extract("alto", ExtractConfig(f0_method="fcpe", device="cpu"), extractors=training_extractors("fcpe"))
    exp = Experiment.open("alto")
    train(exp, TrainConfig(model="tiny", device="cpu", batch_size=2, crop_frames=32, threads=1, steps=2,
                           save_every=2, log_every=1, warmup_steps=1, val_chunks=1))  # fmt: skip
    stats = json.loads(exp.stats.read_text())
    layer = json.loads(exp.config.read_text())["extract"]["layer"]
    assert 150 < stats["f0_hz_p5"] < stats["f0_hz_p95"] < 600 and layer == 12

    def check(card: dict) -> None:
        assert (card["f0_min"], card["f0_max"]) == (stats["f0_hz_p5"], stats["f0_hz_p95"])  # not the 40 Hz floor
        assert card["content_encoder"] == stats["encoder"] and card["content_layer"] == layer
        assert card["f0_method"] == "fcpe" and card["sample_rate"] == 44100 and card["steps"] == 2
        assert card["vocoder_sha256"] == hashlib.sha256((tmp_pretrained / "nsf_hifigan" / "model").read_bytes()).hexdigest()
        assert f"layer {layer}" in vm.card_summary(card)

    check(vm.import_voice_model(exp.export).card)  # written by training
    for name in ("model.safetensors", "model_card.json"):
        (exp.export / name).unlink()
    share = tmp_path / "alto.zip"
    assert main(["voice", "export", "--exp", "alto", "--checkpoint", "latest", "--out", str(share)]) == 0
    exported = vm.import_voice_model(share)
    check(exported.card)
    assert exported.card["checkpoint"] == "step_2.pt" and f"packed {share}" in capsys.readouterr().out
    SvcDecoder.from_checkpoint(exp.export / "model.safetensors")  # the conversion loader accepts it

    assert main(["voice", "import", str(share), "--name", "alto_copy"]) == 0
    check(vm.import_voice_model(tmp_logs / "alto_copy" / "export").card)
    assert main(["voice", "export", "--exp", "nobody"]) == 1
    assert "no such experiment" in capsys.readouterr().err
    Experiment.open("untrained").root.mkdir()
    assert main(["voice", "export", "--exp", "untrained"]) == 1
    err = capsys.readouterr().err
    assert "no trained voice model" in err and len(err.strip().splitlines()) == 1
