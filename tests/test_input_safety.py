"""Hostile and damaged inputs (issue 13 items 4-7) through the one shared decode path of core.audio.

* bounded decoding: a zip whose 8-bit audio decodes to hours, and a header that lies about the length;
* zip archives: member count / unpacked size refused from the directory, junk skipped without a decoder;
* file names that FFmpeg would read as options or protocols are plain files;
* NaN/inf samples and truncated files get the same treatment in dataset, convert and cover.

There is no ffmpeg program on this machine or in CI: everything here runs through PyAV's wheels.
"""

from __future__ import annotations

import shutil
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import core.audio as audio
from core.dataset import MAX_ZIP_MEMBERS, NoUsableAudioError, build_dataset
from core.errors import AudioDecodeError
from tests.conftest import make_synthetic_singing

SR = 44100


def _u8_wav(path: Path, seconds: float, sr: int) -> Path:
    """A silent 8-bit mono wav (the byte 0x80 repeated): compresses ~1000:1 in a zip."""
    n = int(seconds * sr)
    fmt = struct.pack("<HHIIHH", 1, 1, sr, sr, 1, 8)
    header = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", n)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(header) + n) + header)
        block = b"\x80" * (1 << 20)
        for _ in range(n // len(block)):
            f.write(block)
        f.write(b"\x80" * (n % len(block)))
    return path


def test_zip_that_decodes_to_hours_is_refused_from_the_header(tmp_logs: Path, tmp_path: Path) -> None:
    # 4 h of 8-bit audio at 1 kHz: 14 MB unpacked, ~15 kB zipped; decoded at 44.1 kHz float32 it
    # would be 2.5 GB (the 1 MB zip asked for 22 GiB). The default limit is 3 h.
    member = _u8_wav(tmp_path / "four hours.wav", 4 * 3600, 1000)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(member, "four hours.wav")
    member.unlink()
    assert archive.stat().st_size < 100_000
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(NoUsableAudioError) as err:
            build_dataset("bomb", [archive])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - t0
    (skipped,) = err.value.report.skipped
    assert skipped.file == f"{archive}/four hours.wav"
    assert "is 4.0 h long, over the 3.0 h limit" in skipped.reason and "SVCOVER_MAX_AUDIO_MINUTES" in skipped.reason
    assert "\n" not in str(err.value)
    assert peak < 64 << 20, f"{peak >> 20} MB allocated before refusing"  # nothing sized from the 4 h
    assert seconds < 20


def test_the_limit_is_one_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _u8_wav(tmp_path / "ten.wav", 10.0, 8000)
    assert len(audio.load_audio(path, 8000)) == 80000
    monkeypatch.setenv(audio.MAX_AUDIO_MINUTES_ENV, str(5 / 60))
    with pytest.raises(AudioDecodeError, match=r"is 10.0 s long, over the 5.0 s limit"):
        audio.load_audio(path, 8000)
    monkeypatch.setenv(audio.MAX_AUDIO_MINUTES_ENV, "lots")
    with pytest.raises(audio.SvcoverError, match="SVCOVER_MAX_AUDIO_MINUTES='lots'"):
        audio.max_audio_seconds()


def _flac_claiming(path: Path, seconds: float, claimed_samples: int, sr: int = 8000) -> Path:
    """A real FLAC of ``seconds`` whose STREAMINFO says it holds ``claimed_samples`` samples."""
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="FLAC")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO comes first
    offset = 8 + 10  # sample rate (20 bits), channels (3), bits (5), total samples (36)
    packed = int.from_bytes(data[offset : offset + 8], "big")
    packed = (packed & ~((1 << 36) - 1)) | claimed_samples
    data[offset : offset + 8] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def test_a_lying_header_is_caught_while_decoding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    liar = _flac_claiming(tmp_path / "liar.flac", 60.0, claimed_samples=8000)
    assert audio.probe_audio(liar)["duration"] == pytest.approx(1.0)  # the header says 1 s ...
    assert len(audio.load_audio(liar, 8000)) == 60 * 8000  # ... the data holds 60 s
    monkeypatch.setenv(audio.MAX_AUDIO_MINUTES_ENV, "0.5")
    for load in (lambda p: audio.load_audio(p, 8000), lambda p: audio.load_channels(p, SR, 2)):
        with pytest.raises(AudioDecodeError) as err:
            load(liar)
        assert str(err.value).startswith(f"{liar}: holds more than 30.0 s of audio (its header said 1.0 s)")


# ------------------------------------------------------------------------------------------ zips


def test_zip_with_too_many_members_is_refused_in_seconds(tmp_logs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(MAX_ZIP_MEMBERS + 1):
            zf.writestr(f"takes/t{i:05d}.wav", b"RIFF")
    t0 = time.perf_counter()
    with pytest.raises(NoUsableAudioError) as err:
        build_dataset("many", [archive])
    assert time.perf_counter() - t0 < 10
    (skipped,) = err.value.report.skipped
    assert skipped.file == str(archive) and f"{MAX_ZIP_MEMBERS + 1} files in the archive" in skipped.reason


def test_zip_whose_audio_unpacks_too_large_is_refused(
    tmp_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.dataset as dataset

    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"t{i}.wav", b"\x80" * 400_000)
    monkeypatch.setattr(dataset, "MAX_ZIP_TOTAL_BYTES", 1 << 20)  # 1.2 MB of audio members > 1 MiB
    with pytest.raises(NoUsableAudioError) as err:
        build_dataset("big", [archive])
    (skipped,) = err.value.report.skipped
    assert skipped.file == str(archive) and "unpacks to 1.1 MiB, more than the 1.0 MiB allowed" in skipped.reason


@pytest.fixture(scope="module")
def singing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_singing(tmp_path_factory.mktemp("syn") / "sing", seed=5, extra_args=["--duration", "6"])


def test_junk_members_are_skipped_without_starting_a_decoder(
    tmp_logs: Path, tmp_path: Path, singing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "junk.zip"
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(singing, "real take.wav")
        for i in range(500):
            zf.writestr(f"junk/lyrics{i}.wav", f"verse {i}: la la la\n" * 20)
            zf.writestr(f"junk/cover{i}.mp3", png)
    opened: list[Path] = []
    real_open = audio._open_audio

    def counting_open(path: Path):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(audio, "_open_audio", counting_open)
    t0 = time.perf_counter()
    report = build_dataset("junk", [archive])
    seconds = time.perf_counter() - t0
    assert report.new_files == 1 and report.chunks > 0
    reasons = {s.reason for s in report.skipped}
    assert reasons == {"not audio (it is a text file)", "not audio (it is a PNG image)"}
    assert len(report.skipped) == 1000
    assert len(opened) <= 3  # the real take only (probe + decode), never a junk member
    assert seconds < 30, f"{seconds:.1f} s for 1000 junk members"


# ------------------------------------------------------------------------------------ file names


@pytest.mark.parametrize("name", ["-take1.wav", "concat:a.wav", "file:x.wav", "pipe:0.wav", "-i.flac"])
def test_names_are_never_options_or_protocols(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = np.arange(SR // 2) / SR
    tone = (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    sf.write(tmp_path / name, tone, SR)
    monkeypatch.chdir(tmp_path)  # relative names: exactly what FFmpeg would parse as a URL or option
    assert audio.probe_audio(name)["sample_rate"] == SR
    np.testing.assert_allclose(audio.load_audio(name, SR), tone, atol=1 / 16384)
    assert audio.load_channels(name, SR, 2).shape == (SR // 2, 2)


def test_dataset_imports_files_named_like_options_and_protocols(tmp_logs: Path, tmp_path: Path, singing: Path) -> None:
    folder = tmp_path / "takes"
    folder.mkdir()
    wav, sr = sf.read(singing, dtype="float32")
    names = ["-take1.wav", "concat:a.wav", "file:x.wav"]
    for gain, name in zip((0.9, 0.8, 0.7), names, strict=True):
        sf.write(folder / name, wav * gain, sr)  # other samples, other content hash: three sources
    report = build_dataset("names", [folder])
    assert report.skipped == [] and report.new_files == 3
    assert {c["source"].rsplit("/", 1)[-1] for c in _manifest_chunks(tmp_logs / "names")} == set(names)


def _manifest_chunks(root: Path) -> list[dict]:
    import json

    return json.loads((root / "manifest.json").read_text())["chunks"]


# --------------------------------------------------------------------- NaN / truncated, every stage


def _nan_song(path: Path, seconds: float = 4.0, channels: int = 2) -> Path:
    """A float wav: a 200 Hz "instrument" and a 3 kHz "voice", with NaN and inf samples."""
    t = np.arange(int(seconds * SR)) / SR
    mix = 0.3 * np.sin(2 * np.pi * 200 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    data = np.repeat(mix[:, None], channels, axis=1).astype(np.float32)
    data[SR : SR + 500] = np.nan
    data[2 * SR, 0] = np.inf
    data[2 * SR + 7] = -np.inf
    sf.write(path, data, SR, subtype="FLOAT")
    return path


def _truncated(src: Path, target: Path) -> Path:
    data = src.read_bytes()
    target.write_bytes(data[: len(data) // 2 // 8 * 8])  # cut at a sample boundary: decodes "cleanly"
    return target


def test_every_decode_path_zeroes_nan_and_refuses_truncation(tmp_path: Path) -> None:
    from core.mix import load_stereo
    from core.separate import decode_stereo

    song = _nan_song(tmp_path / "nan.wav")
    mono = audio.load_audio(song, SR)
    stereo = load_stereo(song)
    decode_stereo(song, tmp_path / "stems_input.wav")
    written, _ = sf.read(tmp_path / "stems_input.wav", dtype="float32")
    for decoded in (mono, stereo, written):
        assert np.isfinite(decoded).all()
        assert np.all(decoded[SR : SR + 500] == 0) and np.all(decoded[2 * SR + 7] == 0)
    cut = _truncated(song, tmp_path / "cut.wav")
    for load in (lambda: audio.load_audio(cut, SR), lambda: load_stereo(cut),
                 lambda: decode_stereo(cut, tmp_path / "x.wav")):  # fmt: skip
        with pytest.raises(AudioDecodeError) as err:
            load()
        assert str(err.value).startswith(f"{cut}: truncated file") and "\n" not in str(err.value)


def _identity_convert(out_dir: Path):
    def convert(vocals: Path) -> Path:
        out = out_dir / f"converted_{vocals.stem}.wav"
        shutil.copy(vocals, out)
        return out

    return convert


def test_cover_of_a_song_with_nan_samples(offline_tiny_uvr: Path, tmp_path: Path) -> None:
    # Before: audio-separator's librosa code raised on the NaN samples of the decoded song.
    from core.cover import CoverSettings, make_cover
    from core.separate import SeparationSettings
    from tests.tiny_uvr import TINY_MODEL

    song = _nan_song(tmp_path / "nan song.wav")
    settings = CoverSettings.build(SeparationSettings(model=TINY_MODEL, chunk_seconds=6.0, overlap_seconds=1.0))
    result = make_cover(tmp_path / "cover.wav", _identity_convert(tmp_path), song=song, settings=settings)
    cover, _ = sf.read(result.output, dtype="float32")
    assert cover.shape == (4 * SR, 2) and np.isfinite(cover).all()
    assert np.sqrt(np.mean(cover[2 * SR + 100 :] ** 2)) > 0.05  # the music is there, not silence


def test_cover_refuses_truncated_inputs(offline_tiny_uvr: Path, tmp_path: Path) -> None:
    # Before: a wav cut at a sample boundary was covered silently (convert refused the same file).
    from core.cover import CoverSettings, make_cover
    from core.separate import SeparationSettings
    from tests.tiny_uvr import TINY_MODEL

    full = _nan_song(tmp_path / "full.wav")
    cut = _truncated(full, tmp_path / "cut song.wav")
    settings = CoverSettings.build(SeparationSettings(model=TINY_MODEL))
    with pytest.raises(AudioDecodeError) as err:
        make_cover(tmp_path / "cover.wav", _identity_convert(tmp_path), song=cut, settings=settings)
    assert str(err.value).startswith(f"{cut}: truncated file") and "\n" not in str(err.value)
    with pytest.raises(AudioDecodeError) as err:  # user stems go through the same path
        make_cover(tmp_path / "cover.wav", _identity_convert(tmp_path), vocals=cut, instrumental=full)
    assert str(err.value).startswith(f"{cut}: truncated file")

    def no_conversion(vocals: Path) -> Path:
        raise AssertionError("converted before the instrumental was checked")

    with pytest.raises(AudioDecodeError) as err:  # a bad instrumental is found before the conversion
        make_cover(tmp_path / "cover.wav", no_conversion, vocals=full, instrumental=cut)
    assert str(err.value).startswith(f"{cut}: truncated file")
    assert not (tmp_path / "cover.wav").exists()


@pytest.fixture(scope="module")
def voice_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(logs, pretrained) of the small voice model the convert tests share (built once per test process)."""
    from tests.standins import shared_voice_roots

    return shared_voice_roots(tmp_path_factory)


@pytest.mark.usefixtures("one_torch_thread")
def test_convert_zeroes_nan_and_refuses_truncated_inputs(
    voice_env: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.convert as convert
    from core.convert import ConvertConfig, convert_files

    logs, pretrained = voice_env
    monkeypatch.setenv("SVCOVER_LOGS", str(logs))
    monkeypatch.setenv("SVCOVER_PRETRAINED", str(pretrained))
    config = ConvertConfig(device="cpu", sampler="dpm-solver++", steps=4)
    song = _nan_song(tmp_path / "nan vocal.wav", seconds=3.0, channels=1)
    (result,) = convert_files("voice", song, tmp_path / "out", config)
    converted, sr = sf.read(result.output, dtype="float32")
    assert sr == SR and abs(len(converted) - 3 * SR) < 1024 and np.isfinite(converted).all()
    assert np.abs(converted).max() > 1e-3

    cut = _truncated(song, tmp_path / "cut vocal.wav")
    loaded: list[bool] = []
    real_load = convert.Models.load
    monkeypatch.setattr(convert.Models, "load", lambda *a, **k: loaded.append(True) or real_load(*a, **k))
    with pytest.raises(AudioDecodeError) as err:
        convert_files("voice", cut, tmp_path / "out", config)
    assert str(err.value).startswith(f"{cut}: truncated file") and "\n" not in str(err.value)
    monkeypatch.setenv(audio.MAX_AUDIO_MINUTES_ENV, str(2 / 60))  # a too long input: refused from its header ...
    with pytest.raises(AudioDecodeError, match="is 3.0 s long, over the 2.0 s limit"):
        convert_files("voice", song, tmp_path / "out", config)
    assert len(loaded) == 1  # ... before any model is loaded
