"""Roformer separation through audio-separator's real MDXC path, and no third-party unpickling.

The tiny checkpoints (tests/tiny_roformer.py) are audio-separator's own MelBandRoformer at small
dimensions with masks fixed by frequency, so which stem a tone lands in is known. The malicious
files are pickles whose ``__reduce__`` would write a marker file if anything unpickled them.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import CheckpointError
from core.separate import (
    LOW_MEMORY_SEGMENT_FRAMES,
    SeparationError,
    SeparationSettings,
    _torch_loads_verified,
    install_torch_load_guard,
    separate_song,
)
from tests.tiny_roformer import install_tiny_roformer

SR = 44100
VOCALS, KARAOKE, DEREVERB = "tiny-vocals-roformer.ckpt", "tiny-karaoke-roformer.ckpt", "tiny-dereverb-roformer.ckpt"


@pytest.fixture(scope="module")
def uvr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pretrained") / "uvr"
    install_tiny_roformer(folder, VOCALS, cutoff_hz=1000.0)  # vocals = everything >= 1 kHz
    install_tiny_roformer(folder, KARAOKE, cutoff_hz=2000.0, stems=("vocals", "instrumental"))  # lead >= 2 kHz
    # de-reverb: the kept "noreverb" stem is what lies below 4 kHz (the mask is inverted by the stem order)
    install_tiny_roformer(folder, DEREVERB, cutoff_hz=4000.0, stems=("reverb", "noreverb"), target="reverb")
    return folder


def band_level(x: np.ndarray, freq: float) -> float:
    seg = x[SR // 4 : -SR // 4]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) * 4 / len(seg)
    bin_ = int(round(freq * len(seg) / SR))
    return float(spec[bin_ - 2 : bin_ + 3].max())


def four_tones(path: Path, seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    mix = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (200, 1500, 3000, 6000))
    stereo = np.stack([mix, mix], 1).astype(np.float32)
    sf.write(path, stereo, SR)
    return stereo


def test_default_chain_vocals_karaoke_dereverb(uvr, tmp_path):
    song = tmp_path / "song.wav"
    mix = four_tones(song, 2.0)
    settings = SeparationSettings(model=VOCALS, split_backing=True, karaoke_model=KARAOKE, dereverb=True,
                                  dereverb_model=DEREVERB, chunk_seconds=2.0, overlap_seconds=0.5)  # fmt: skip
    stems = separate_song(song, settings, cache_root=tmp_path / "cache", model_dir=uvr)
    assert stems.models == (VOCALS, KARAOKE, DEREVERB) and not stems.cached
    full = sf.read(stems.full_vocals, dtype="float32")[0]
    inst = sf.read(stems.instrumental, dtype="float32")[0]
    backing = sf.read(stems.backing, dtype="float32")[0]
    lead = sf.read(stems.vocals, dtype="float32")[0]
    assert full.shape == inst.shape == lead.shape == mix.shape
    # pass 1: 200 Hz is instrumental, the rest vocals; the two stems add up to the song
    assert band_level(inst[:, 0], 200) == pytest.approx(0.15, abs=0.01) and band_level(full[:, 0], 200) < 0.005
    assert all(band_level(full[:, 1], f) == pytest.approx(0.15, abs=0.01) for f in (1500, 3000, 6000))
    inner = slice(SR // 10, -SR // 10)
    assert np.abs(full[inner] + inst[inner] - mix[inner]).max() < 5e-3
    # pass 2 (karaoke): 1.5 kHz is backing, 3 and 6 kHz lead; pass 3 (de-reverb) keeps < 4 kHz of the lead
    assert band_level(backing[:, 0], 1500) > 0.13 and band_level(backing[:, 0], 3000) < 0.005
    assert band_level(lead[:, 0], 3000) > 0.13
    assert band_level(lead[:, 0], 6000) < 0.005 and band_level(lead[:, 0], 1500) < 0.005
    assert stems.vocals.name == "dry.wav" and stems.backing.name == "backing.wav"
    import torch

    if not torch.cuda.is_available():  # Roformers chosen on a CPU-only machine: the user is told it is slow
        assert any("Roformer models run on the CPU" in w and KARAOKE in w for w in stems.warnings)


def test_checkpoints_go_through_safe_load_and_segment_settings_are_cached_apart(uvr, tmp_path, monkeypatch):
    import core.checkpoints

    calls: list[str] = []
    real = core.checkpoints.safe_load
    monkeypatch.setattr(core.checkpoints, "safe_load", lambda p, **kw: calls.append(str(p)) or real(p, **kw))
    song = tmp_path / "song.wav"
    four_tones(song, 2.0)
    cache = tmp_path / "cache"
    low = SeparationSettings(model=VOCALS, segment_frames=64)  # the lower-memory path: shorter model segments
    stems = separate_song(song, low, cache_root=cache, model_dir=uvr)
    assert calls == [str(uvr / VOCALS)]  # audio-separator's own torch.load was routed to safe_load
    vocals = sf.read(stems.vocals, dtype="float32")[0]
    assert band_level(vocals[:, 0], 3000) == pytest.approx(0.15, abs=0.01) and band_level(vocals[:, 0], 200) < 0.005
    # another segment size is another cache entry; the first one is still served from the cache
    other = separate_song(song, SeparationSettings(model=VOCALS), cache_root=cache, model_dir=uvr)
    assert not other.cached and other.vocals.parent != stems.vocals.parent
    again = separate_song(song, low, cache_root=cache, model_dir=uvr)
    assert again.cached and again.vocals == stems.vocals and len(calls) == 2
    assert LOW_MEMORY_SEGMENT_FRAMES < 801


# ----------------------------------------------------------------------------------------------
# Malicious checkpoints


class _Payload:
    """Unpickling this calls os.system-free code: it writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _malicious_torch_file(path: Path, marker: Path, **extra: object) -> None:
    """A torch-format zip whose data.pkl runs the payload (the layout torch.save writes)."""
    data = pickle.dumps({"state_dict": _Payload(marker), **extra}, protocol=2)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{path.stem}/data.pkl", data)
        zf.writestr(f"{path.stem}/version", "3\n")


def test_malicious_roformer_checkpoint_is_refused_in_one_line(uvr, tmp_path):
    import shutil

    folder = tmp_path / "uvr"
    shutil.copytree(uvr, folder)
    marker = tmp_path / "PWNED"
    _malicious_torch_file(folder / VOCALS, marker)  # replaces the genuine tiny checkpoint
    song = tmp_path / "song.wav"
    four_tones(song, 1.0)
    with pytest.raises(CheckpointError) as err:
        separate_song(song, SeparationSettings(model=VOCALS), cache_root=tmp_path / "cache", model_dir=folder)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(folder / VOCALS) in message and "refused to load" in message
    assert not marker.exists()
    assert not list((tmp_path / "cache").rglob("stems.json"))


@pytest.fixture
def demucs_stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STAND-IN ``julius`` and ``diffq`` modules (audio-separator's Demucs imports; not installed here),
    so its Demucs loader can be imported and reached. ``einops`` is the real package."""
    pkgs = tmp_path / "standin-packages"
    (pkgs / "julius").mkdir(parents=True)
    (pkgs / "julius" / "__init__.py").write_text("def resample_frac(*a, **k):\n    raise RuntimeError('stand-in')\n")
    (pkgs / "diffq").mkdir()
    (pkgs / "diffq" / "__init__.py").write_text(
        "class DiffQuantizer: pass\nclass UniformQuantizer: pass\ndef restore_quantized_state(*a, **k): pass\n"
    )
    monkeypatch.syspath_prepend(str(pkgs))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:  # forget the stand-ins and the Demucs modules built on them
        if name.split(".")[0] in ("julius", "diffq") or ".demucs" in name:
            sys.modules.pop(name, None)


def test_demucs_model_is_refused_and_its_loader_cannot_unpickle(uvr, tmp_path, demucs_stand_ins):
    import shutil

    folder = tmp_path / "uvr"
    shutil.copytree(uvr, folder)
    marker = tmp_path / "PWNED"
    th = folder / "f7e0c4bc-ba3fe64a.th"
    _malicious_torch_file(th, marker, klass=None, args=(), kwargs={})
    (folder / "htdemucs_ft.yaml").write_text("models: ['f7e0c4bc']\n")
    song = tmp_path / "song.wav"
    four_tones(song, 1.0)
    # the user-facing path: one line, before anything is loaded
    with pytest.raises(SeparationError) as err:
        separate_song(song, SeparationSettings(model="htdemucs_ft.yaml"), cache_root=tmp_path / "c", model_dir=folder)
    assert len(str(err.value).splitlines()) == 1 and "Demucs models are not supported" in str(err.value)
    # defence in depth: audio-separator's Demucs loader itself (torch.load(weights_only=False)) is
    # importable with the stand-ins, and the guard routes its torch.load through safe_load
    from audio_separator.separator.uvr_lib_v5.demucs import states

    install_torch_load_guard()
    with pytest.raises(CheckpointError, match="refused to load"):
        states.load_model(str(th))  # called from audio-separator's module: guarded even outside our block
    assert not marker.exists()


class Harmless:
    """A class outside safe_load's allow-list that is harmless to build."""

    def __init__(self, value: str):
        self.value = value


def test_guard_is_per_thread_and_leaves_other_callers_alone(tmp_path):
    import torch

    install_torch_load_guard()
    harmless = tmp_path / "harmless.pt"
    torch.save({"c": Harmless("abc")}, harmless)
    inside_refused = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def guarded_thread() -> None:
        try:
            with _torch_loads_verified():
                with pytest.raises(CheckpointError, match="Harmless"):
                    torch.load(harmless, weights_only=False)
                inside_refused.set()
                release.wait(10)  # stay inside the verified block while the other thread loads
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)
            inside_refused.set()

    worker = threading.Thread(target=guarded_thread)
    worker.start()
    assert inside_refused.wait(30)
    try:
        # this thread is not inside the block and is not audio-separator: torch.load behaves as torch's
        loaded = torch.load(harmless, weights_only=False)
        assert isinstance(loaded["c"], Harmless) and loaded["c"].value == "abc"
    finally:
        release.set()
        worker.join(10)
    assert errors == []


def test_stream_loads_are_refused_inside_the_block(tmp_path):
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    buffer.seek(0)
    with _torch_loads_verified(), pytest.raises(CheckpointError, match="open stream"):
        torch.load(buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer)["w"], torch.zeros(2))  # outside: untouched


def test_missing_yaml_is_named(uvr, tmp_path):
    import shutil

    folder = tmp_path / "uvr"
    shutil.copytree(uvr, folder)
    (folder / "tiny-vocals-roformer.yaml").unlink()
    song = tmp_path / "song.wav"
    four_tones(song, 1.0)
    with pytest.raises(Exception, match=r"missing separation file .*tiny-vocals-roformer\.yaml"):
        separate_song(song, SeparationSettings(model=VOCALS), cache_root=tmp_path / "c", model_dir=folder)
    checks = json.loads((folder / "download_checks.json").read_text())
    assert any(VOCALS in files for files in checks["roformer_download_list"].values())
    assert os.path.exists(folder / VOCALS)


def test_ensemble_preset_averages_its_models(tmp_path):
    """audio-separator's vocal_rvc preset (avg_wave) with tiny Roformers installed under its model names."""
    from core.separation_models import ENSEMBLE_PREFIX, ensemble_presets

    folder = tmp_path / "uvr"
    first, second = ensemble_presets()["vocal_rvc"]["models"]
    install_tiny_roformer(folder, first, cutoff_hz=1000.0)
    install_tiny_roformer(folder, second, cutoff_hz=2000.0)
    song = tmp_path / "song.wav"
    four_tones(song, 1.5)
    settings = SeparationSettings(model=ENSEMBLE_PREFIX + "vocal_rvc")
    stems = separate_song(song, settings, cache_root=tmp_path / "cache", model_dir=folder)
    vocals = sf.read(stems.vocals, dtype="float32")[0]
    inst = sf.read(stems.instrumental, dtype="float32")[0]
    # 1.5 kHz is "vocals" for one model only: the average keeps half of it in each stem
    assert band_level(vocals[:, 0], 1500) == pytest.approx(0.075, abs=0.01)
    assert band_level(inst[:, 0], 1500) == pytest.approx(0.075, abs=0.01)
    assert band_level(vocals[:, 0], 3000) == pytest.approx(0.15, abs=0.01) and band_level(vocals[:, 0], 200) < 0.005
    again = separate_song(song, settings, cache_root=tmp_path / "cache", model_dir=folder)
    assert again.cached and again.vocals == stems.vocals


def test_cli_cover_with_a_demucs_model_is_one_line(uvr, tmp_path, monkeypatch, capsys, tmp_logs, tmp_pretrained):
    """The reported attack: `cover --separator htdemucs_ft.yaml` with a crafted .th in pretrained/uvr/."""
    import shutil

    import core.cli.cover as cover_cli
    from core.cli import main
    from core.experiment import Experiment

    shutil.copytree(uvr, tmp_pretrained / "uvr")
    marker = tmp_path / "PWNED"
    _malicious_torch_file(tmp_pretrained / "uvr" / "f7e0c4bc-ba3fe64a.th", marker, klass=None, args=(), kwargs={})
    (tmp_pretrained / "uvr" / "htdemucs_ft.yaml").write_text("models: ['f7e0c4bc']\n")
    Experiment.open("singer").root.mkdir(parents=True)
    monkeypatch.setattr(cover_cli, "make_convert_fn", lambda exp, config: (lambda path: path))
    song = tmp_path / "song.wav"
    four_tones(song, 1.0)
    code = main(["cover", "--exp", "singer", "--input", str(song), "--output", str(tmp_path / "c.wav"),
                 "--separator", "htdemucs_ft.yaml"])  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(err) == 1 and "Demucs models are not supported" in err[0]
    assert not marker.exists() and not (tmp_path / "c.wav").exists()
