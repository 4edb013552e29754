"""core.separate: audio-separator's real MDX code path, offline, with a tiny ONNX model built here.

The stand-in model (tests/tiny_uvr.py) keeps STFT bins >= 1 kHz as "vocals", so a tone's stem is known.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.errors import MissingPretrainedError
from core.separate import (
    SeparationError,
    SeparationSettings,
    chunk_starts,
    gpu_warning,
    separate_song,
)
from tests.conftest import REAL, ROOT
from tests.tiny_uvr import TINY_MODEL, audio_separator_md5, install_tiny_uvr

SR = 44100
SPLEETER_SONG = REAL / "mixed" / "spleeter_audio_example_Slow_Motion_Dream.mp3"


@pytest.fixture(scope="module")
def uvr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pretrained") / "uvr"
    install_tiny_uvr(folder)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection (requests, urllib, ...) fails: separation must not need the network."""

    def refuse(*_args, **_kwargs):
        raise OSError("network access during separation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def tones(seconds: float, low: float = 0.3, high: float = 0.3, channels: int = 2) -> np.ndarray:
    """A 200 Hz "instrument" and a 3 kHz "voice" (only in the right channel when stereo)."""
    t = np.arange(int(seconds * SR)) / SR
    inst = low * np.sin(2 * np.pi * 200 * t)
    voice = high * np.sin(2 * np.pi * 3000 * t)
    if channels == 1:
        return (inst + voice).astype(np.float32)[:, None]
    cols = [inst, inst + voice] + [inst] * (channels - 2)
    return np.stack(cols, axis=1).astype(np.float32)


def band_level(x: np.ndarray, freq: float) -> float:
    """Amplitude of the sinusoid at ``freq`` (Hann-windowed FFT peak, edges excluded)."""
    seg = x[SR // 2 : -SR // 2]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) * 4 / len(seg)
    bin_ = int(round(freq * len(seg) / SR))
    return float(spec[bin_ - 2 : bin_ + 3].max())


def test_chunk_starts_cover_everything_with_overlap():
    starts = chunk_starts(100, 30, 5)
    assert starts == [0, 25, 50, 75]
    assert starts[-1] + 30 >= 100 and 100 - starts[-1] > 5
    assert chunk_starts(20, 30, 5) == [0]


def test_tones_land_in_the_right_stem_across_chunk_joins(uvr, tmp_path, offline):
    song = tmp_path / "song.wav"
    mix = tones(12.0)
    sf.write(song, mix, SR)
    settings = SeparationSettings(model=TINY_MODEL, chunk_seconds=5.0, overlap_seconds=1.0)  # 3 windows
    stems = separate_song(song, settings, cache_root=tmp_path / "cache", model_dir=uvr)
    vocals, _ = sf.read(stems.vocals, dtype="float32")
    inst, _ = sf.read(stems.instrumental, dtype="float32")
    assert vocals.shape == inst.shape == mix.shape
    # routing: the 3 kHz tone is in the vocals only, the 200 Hz tone in the instrumental only
    assert band_level(vocals[:, 1], 3000) == pytest.approx(0.3, abs=0.01)
    assert band_level(inst[:, 1], 3000) < 0.003
    assert band_level(inst[:, 0], 200) == pytest.approx(0.3, abs=0.01)
    assert band_level(vocals[:, 0], 200) < 0.003
    # seamless joins: away from the song's first/last STFT frame the instrumental IS the 200 Hz tone,
    # including around the window joins at 4-5 s and 8-9 s
    inner = slice(SR // 10, -SR // 10)
    assert np.abs(inst[inner, 0] - mix[inner, 0]).max() < 2e-3
    assert np.abs(vocals[inner] + inst[inner] - mix[inner]).max() < 2e-3
    assert stems.has_vocals and not stems.cached and stems.backing is None


def test_real_song_offline_then_cached(uvr, tmp_path, offline):
    cache = tmp_path / "cache"
    settings = SeparationSettings(model=TINY_MODEL, chunk_seconds=5.0, overlap_seconds=1.0)
    messages: list[tuple[float, str]] = []
    stems = separate_song(SPLEETER_SONG, settings, cache_root=cache, model_dir=uvr,
                          progress=lambda f, m: messages.append((f, m)))  # fmt: skip
    from core.mix import load_stereo

    song = load_stereo(SPLEETER_SONG)
    vocals, sr = sf.read(stems.vocals, dtype="float32")
    inst, _ = sf.read(stems.instrumental, dtype="float32")
    assert sr == SR and vocals.shape == inst.shape == song.shape
    # the stand-in model splits by frequency, so the stems add up to the song
    inner = slice(SR // 10, -SR // 10)
    assert np.abs(vocals[inner] + inst[inner] - song[inner]).max() < 5e-3
    assert stems.has_vocals and stems.vocals_rms_db > -40
    # progress: monotone, reaches 1, per-chunk messages
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("chunk 3/" in m for _, m in messages)
    sidecar = json.loads((stems.vocals.parent / "stems.json").read_text())
    assert sidecar["args"]["model"] == TINY_MODEL and sidecar["args"]["input_sha256"] == stems.song_sha256
    # re-run: nothing is separated again
    mtime = stems.vocals.stat().st_mtime_ns
    again = separate_song(SPLEETER_SONG, settings, cache_root=cache, model_dir=uvr)
    assert again.cached and again.vocals == stems.vocals and stems.vocals.stat().st_mtime_ns == mtime
    # changing an argument of the pass invalidates the cache
    other = separate_song(SPLEETER_SONG, SeparationSettings(model=TINY_MODEL, chunk_seconds=6.0, overlap_seconds=1.0),
                          cache_root=cache, model_dir=uvr)  # fmt: skip
    assert not other.cached
    # no temporary files left visible
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.name not in ("vocals.wav", "instrumental.wav", "stems.json")]
    assert leftovers == []


@pytest.mark.parametrize("channels", [1, 8])
def test_mono_and_multichannel_songs_give_stereo_stems(uvr, tmp_path, offline, channels):
    song = tmp_path / f"song{channels}.wav"
    sf.write(song, tones(3.0, channels=channels) / (1 if channels == 1 else 2), SR)
    stems = separate_song(song, SeparationSettings(model=TINY_MODEL), cache_root=tmp_path / "cache", model_dir=uvr)
    vocals, _ = sf.read(stems.vocals, dtype="float32")
    assert vocals.shape == (3 * SR, 2)
    if channels == 1:
        np.testing.assert_allclose(vocals[:, 0], vocals[:, 1], atol=1e-5)
    assert band_level(vocals[:, 1], 3000) > 0.05


def test_song_without_vocals_warns(uvr, tmp_path, offline):
    song = tmp_path / "instrumental_only.wav"
    sf.write(song, tones(4.0, high=0.0), SR)
    stems = separate_song(song, SeparationSettings(model=TINY_MODEL), cache_root=tmp_path / "cache", model_dir=uvr)
    assert not stems.has_vocals
    assert any("no vocals" in w for w in stems.warnings)


def test_lead_backing_split_and_dereverb_passes(uvr, tmp_path, offline):
    # a second stand-in registered as the karaoke model: >= 2 kHz is "lead", the rest "backing"
    install_tiny_uvr(uvr, cutoff_hz=2000.0, name="tiny-karaoke.onnx")
    # registered like UVR's Reverb_HQ model: primary stem "Reverb", 512 frames (runs only if svcover
    # passes the model's own dim_t as segment size; onnx2torch is not installed)
    install_tiny_uvr(uvr, cutoff_hz=4000.0, name="tiny-dereverb.onnx", primary="Reverb", dim_t_set=9)
    t = np.arange(4 * SR) / SR
    mix = 0.2 * np.sin(2 * np.pi * 200 * t) + 0.2 * np.sin(2 * np.pi * 1500 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    mix += 0.2 * np.sin(2 * np.pi * 6000 * t)
    song = tmp_path / "song.wav"
    sf.write(song, np.stack([mix, mix], 1).astype(np.float32), SR)
    settings = SeparationSettings(model=TINY_MODEL, split_backing=True, karaoke_model="tiny-karaoke.onnx",
                                  dereverb=True, dereverb_model="tiny-dereverb.onnx")  # fmt: skip
    stems = separate_song(song, settings, cache_root=tmp_path / "cache", model_dir=uvr)
    lead, _ = sf.read(stems.vocals, dtype="float32")
    backing, _ = sf.read(stems.backing, dtype="float32")
    full, _ = sf.read(stems.full_vocals, dtype="float32")
    assert band_level(full[:, 0], 1500) > 0.15 and band_level(full[:, 0], 3000) > 0.15
    assert band_level(backing[:, 0], 1500) > 0.15 and band_level(backing[:, 0], 3000) < 0.01
    # lead = 3 kHz + 6 kHz after the split; the de-reverb stand-in's primary ("Reverb") is >= 4 kHz,
    # so the kept "No Reverb" stem is the 3 kHz tone
    assert band_level(lead[:, 0], 3000) > 0.15 and band_level(lead[:, 0], 6000) < 0.01
    assert stems.vocals.name == "dry.wav" and stems.backing.name == "backing.wav"


def test_missing_model_or_metadata_named(uvr, tmp_path, offline):
    song = tmp_path / "song.wav"
    sf.write(song, tones(1.0), SR)
    with pytest.raises(MissingPretrainedError, match=r"nope\.onnx.*python -m core download uvr"):
        separate_song(song, SeparationSettings(model="nope.onnx"), cache_root=tmp_path / "c", model_dir=uvr)
    for name in ("mdx_model_data.json", "download_checks.json", "vr_model_data.json"):
        partial = tmp_path / f"uvr-without-{name}"
        shutil.copytree(uvr, partial)
        (partial / name).unlink()
        with pytest.raises(MissingPretrainedError, match=rf"{partial / name}"):
            separate_song(song, SeparationSettings(model=TINY_MODEL), cache_root=tmp_path / "c", model_dir=partial)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("stems.json"))


def test_unregistered_model_is_a_clear_error(uvr, tmp_path, offline):
    folder = tmp_path / "uvr"
    shutil.copytree(uvr, folder)
    (folder / "stray.onnx").write_bytes((folder / TINY_MODEL).read_bytes() + b"x")
    song = tmp_path / "song.wav"
    sf.write(song, tones(1.0), SR)
    with pytest.raises(SeparationError, match=r"stray\.onnx: not an MDX model listed in mdx_model_data\.json"):
        separate_song(song, SeparationSettings(model="stray.onnx"), cache_root=tmp_path / "c", model_dir=folder)


def test_damaged_model_fails_cleanly_and_leaves_no_stems(uvr, tmp_path, offline):
    folder = tmp_path / "uvr"
    shutil.copytree(uvr, folder)
    bad = folder / "damaged.onnx"
    bad.write_bytes(b"not an onnx graph" * 10)
    install_meta = json.loads((folder / "mdx_model_data.json").read_text())
    install_meta[audio_separator_md5(bad)] = next(iter(install_meta.values()))
    (folder / "mdx_model_data.json").write_text(json.dumps(install_meta))
    checks = json.loads((folder / "download_checks.json").read_text())
    checks["mdx_download_list"]["damaged"] = "damaged.onnx"
    (folder / "download_checks.json").write_text(json.dumps(checks))
    song = tmp_path / "song.wav"
    sf.write(song, tones(1.0), SR)
    cache = tmp_path / "cache"
    with pytest.raises(SeparationError, match=r"damaged\.onnx: audio-separator cannot load it"):
        separate_song(song, SeparationSettings(model="damaged.onnx"), cache_root=cache, model_dir=folder)
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # no stems, no sidecar, no temp files


def test_stem_scaled_down_by_audio_separator_is_restored():
    from core.separate import _undo_output_normalisation

    rng = np.random.default_rng(0)
    primary = rng.uniform(-0.9, 0.9, (1000, 2)).astype(np.float32)
    primary[10, 0] = 1.3  # louder than the mix at one sample
    secondary = rng.uniform(-0.3, 0.3, (1000, 2)).astype(np.float32)
    mix = 1.02 * primary + secondary
    squashed = primary / np.abs(primary).max()  # what audio-separator writes
    p, s = _undo_output_normalisation(mix, squashed, secondary, compensate=1.02)
    np.testing.assert_allclose(p, primary, atol=1e-4)
    np.testing.assert_allclose(s, secondary, atol=1e-5)
    # untouched when nothing was scaled
    p, s = _undo_output_normalisation(mix, primary * 0.5, secondary, compensate=1.02)
    np.testing.assert_array_equal(p, primary * 0.5)


def test_download_attempt_names_the_file_instead(tmp_path):
    from core.separate import _refuse_download

    target = tmp_path / "mdx_model_data.json"
    with pytest.raises(MissingPretrainedError, match="mdx_model_data.json"):
        _refuse_download("https://example.invalid/x.json", str(target))
    target.write_text("{}")
    _refuse_download("https://example.invalid/x.json", str(target))  # present: nothing to do


def test_gpu_present_but_onnxruntime_cpu_only_warns(monkeypatch):
    import onnxruntime
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    message = gpu_warning()
    assert message and "runs on the CPU" in message and "onnxruntime-gpu" in message
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu_warning() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_warning() is None


@pytest.mark.slow
def test_ten_minute_song_memory_is_bounded(uvr, tmp_path):
    """A 10-minute song is separated window by window: peak memory grows by far less than one song copy.

    One stereo float32 copy of the song is 212 MB; audio-separator on the whole file would hold several.
    A 31 s warm-up song reaches the per-window peak first, so the growth measured is what the song's
    length adds. To keep the test short, the song has sound in its
    first and last windows and digital silence between (silent windows skip the model, a real
    feature); the windows are read, separated, crossfaded and written one at a time either way.
    """
    song = tmp_path / "long.flac"
    n = 600 * SR
    with sf.SoundFile(song, "w", SR, 2, subtype="PCM_16") as f:
        block = tones(30.0)
        f.write(block)
        f.write(np.zeros((n - 2 * len(block), 2), dtype=np.float32))
        f.write(block)
    script = textwrap.dedent(f"""
        import resource, sys, json
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from core.separate import separate_song, SeparationSettings
        s = SeparationSettings(model={TINY_MODEL!r})
        warm = Path({str(tmp_path / "warm.wav")!r})
        import numpy as np, soundfile as sf
        t = np.arange(31 * 44100) / 44100  # one full window first: the per-window peak is reached here
        sf.write(warm, np.stack([np.sin(2 * np.pi * 3000 * t)] * 2, 1) * 0.3, 44100)
        separate_song(warm, s, cache_root=Path({str(tmp_path / "c")!r}), model_dir=Path({str(uvr)!r}))
        def peak_kb():  # VmHWM: ru_maxrss would carry the pytest parent's peak over exec
            return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])
        before = peak_kb()
        st = separate_song(Path({str(song)!r}), s, cache_root=Path({str(tmp_path / "c")!r}), model_dir=Path({str(uvr)!r}))
        after = peak_kb()
        info = sf.info(str(st.vocals))
        print(json.dumps({{"before_kb": before, "after_kb": after, "frames": info.frames, "channels": info.channels}}))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["frames"] == n and result["channels"] == 2
    growth_mb = (result["after_kb"] - result["before_kb"]) / 1024
    print(f"peak RSS growth for the 10-minute song: {growth_mb:.0f} MB")
    assert growth_mb < 100, f"peak RSS grew by {growth_mb:.0f} MB while separating a 10-minute song"
