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

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": Payload()}, evil)
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


def test_export_experiment_builds_card_from_its_files(tmp_logs: Path, tmp_pretrained: Path) -> None:
    import hashlib

    from core.checkpoints import save_checkpoint

    vocoder = tmp_pretrained / "nsf_hifigan" / "model.ckpt"
    vocoder.parent.mkdir()
    vocoder.write_bytes(b"stand-in vocoder")

    exp = tmp_logs / "alto"
    (exp / "checkpoints").mkdir(parents=True)
    save_checkpoint(exp / "checkpoints" / "step_100.pt", {"model": {"w": torch.zeros(2)}, "global_step": 100})
    save_checkpoint(exp / "checkpoints" / "step_300.pt", {"model": {"w": torch.ones(2)}, "global_step": 300})
    (exp / "config.json").write_text(json.dumps({"audio": {"sample_rate": 44100}, "model": {"content_encoder": "contentvec",
                                                                                           "content_layer": 12}}))
    (exp / "stats.json").write_text(json.dumps({"f0": {"f0_min": 110.0, "f0_max": 660.0}}))
    folder = vm.export_experiment("alto")
    model = vm.import_voice_model(folder)
    assert model.card["steps"] == 300 and model.card["checkpoint"] == "step_300.pt"
    assert model.card["sample_rate"] == 44100 and model.card["content_layer"] == 12 and model.card["f0_max"] == 660.0
    assert torch.equal(model.state_dict["w"].float(), torch.ones(2))
    assert model.card["vocoder"] == "nsf_hifigan/model.ckpt"
    assert model.card["vocoder_sha256"] == hashlib.sha256(b"stand-in vocoder").hexdigest()
    with pytest.raises(SvcoverError, match="no such experiment"):
        vm.export_experiment("nobody")
