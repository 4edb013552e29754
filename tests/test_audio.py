"""core.audio: decoding every common format to float32 mono at a target rate, saving, bad files, memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.audio import load_audio, probe_audio, save_audio
from core.errors import AudioDecodeError, SvcoverError
from tests.conftest import REAL, ROOT
from tests.media import HWM, make_hour_file, run_ffmpeg

SR = 44100
DUR = 2.0


def _tone(freq: float, sr: int, dur: float = DUR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * dur)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)




def _dominant_hz(wav: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spec) * sr / len(wav))


def _rms_db(wav: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(wav.astype(np.float64) ** 2)) + 1e-12))


@pytest.fixture(scope="module")
def stereo_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """2 s stereo wav: 440 Hz left, 440 Hz at half level right -> mono mix is 0.375 * sin."""
    folder = tmp_path_factory.mktemp("formats")
    left, right = _tone(440, SR), _tone(440, SR, amp=0.25)
    path = folder / "source.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="PCM_16")
    return path, (left + right) / 2


ENCODERS = {
    "flac": ["-c:a", "flac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "192k"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "6"],
    "m4a": ["-c:a", "aac", "-b:a", "192k"],
    "opus": ["-c:a", "libopus", "-b:a", "128k"],
}


@pytest.mark.parametrize("fmt", ["wav", *ENCODERS])
def test_load_every_format_to_float32_mono(fmt: str, stereo_source: tuple[Path, np.ndarray]) -> None:
    src, mono_ref = stereo_source
    path = src if fmt == "wav" else src.with_name(f"encoded.{fmt}")
    if fmt != "wav":
        run_ffmpeg("-i", str(src), *ENCODERS[fmt], str(path))
    wav = load_audio(path, SR)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert np.isfinite(wav).all()
    assert abs(len(wav) / SR - DUR) < 0.1  # codecs add at most a few ms of priming/padding
    assert abs(_dominant_hz(wav, SR) - 440) < 2
    assert abs(_rms_db(wav) - _rms_db(mono_ref)) < 1.0  # mono = channel mean, not sum or left only


def test_video_container_audio_track(tmp_path: Path) -> None:
    video = tmp_path / "clip with video.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000:duration=2",
        "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(video),
    )  # fmt: skip
    wav = load_audio(video, SR)
    assert abs(len(wav) / SR - 2.0) < 0.15
    assert abs(_dominant_hz(wav, SR) - 660) < 3


def test_eight_channels_are_averaged(tmp_path: Path) -> None:
    data = np.zeros((SR, 8), dtype=np.float32)
    data[:, 3] = _tone(300, SR, dur=1.0, amp=0.8)
    path = tmp_path / "eight.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    assert probe_audio(path)["channels"] == 8
    wav = load_audio(path, SR)
    assert len(wav) == SR
    np.testing.assert_allclose(wav, data[:, 3] / 8, atol=1e-6)


def test_eight_bit_input(tmp_path: Path) -> None:
    ref = _tone(500, 22050, dur=1.0, amp=0.6)
    path = tmp_path / "u8.wav"
    sf.write(path, ref, 22050, subtype="PCM_U8")
    wav = load_audio(path, 22050)
    assert len(wav) == len(ref)
    assert np.max(np.abs(wav - ref)) < 2.5 / 128  # 8-bit quantisation step


def test_192k_input_is_resampled_without_aliasing(tmp_path: Path) -> None:
    sr_in = 192000
    signal = _tone(1000, sr_in, dur=1.0, amp=0.4) + _tone(30000, sr_in, dur=1.0, amp=0.4)
    path = tmp_path / "hires.wav"
    sf.write(path, signal, sr_in, subtype="PCM_24")
    wav = load_audio(path, SR)
    assert abs(len(wav) - SR) <= 2
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    freqs = np.fft.rfftfreq(len(wav), 1 / SR)
    at = lambda f: spec[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert abs(_dominant_hz(wav, SR) - 1000) < 2
    # 30 kHz is above the new Nyquist; it must be filtered out, not folded to 14.1 kHz.
    assert at(SR - 30000) < at(1000) * 1e-3


@pytest.mark.parametrize("target", [16000, 22050, 44100, 48000])
def test_real_files_at_several_rates(target: int) -> None:
    cases = [
        (REAL / "speech_librispeech" / "198-209-0000.hq.ogg", 13.91),  # 16 kHz ogg
        (REAL / "speech_ljspeech" / "LJ001-0001.wav", None),  # 22.05 kHz wav
        (REAL / "mixed" / "spleeter_audio_example_Slow_Motion_Dream.mp3", 10.92),  # 44.1 kHz stereo mp3
        (REAL / "singing" / "vocadito_10.wav", 9.10),  # 44.1 kHz mono wav
    ]
    for path, duration in cases:
        wav = load_audio(path, target)
        info = sf.info(path) if path.suffix == ".wav" else None
        expected = info.duration if info else duration
        assert abs(len(wav) / target - expected) < 0.06, path.name
        assert wav.dtype == np.float32 and np.isfinite(wav).all()
        assert 0.01 < np.max(np.abs(wav)) <= 1.05


def test_nan_and_inf_samples_become_zero(tmp_path: Path) -> None:
    data = _tone(440, SR, dur=0.5)
    data[100:200] = np.nan
    data[300] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    wav = load_audio(path, SR)
    assert np.isfinite(wav).all()
    assert np.all(wav[100:200] == 0) and wav[300] == 0
    np.testing.assert_allclose(wav[1000:2000], data[1000:2000], atol=1e-6)


# ------------------------------------------------------------------------------------- bad files


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp_path = tmp_path_factory.mktemp("encoded")
    src = tmp_path / "ten.wav"
    sf.write(src, _tone(440, SR, dur=10.0), SR, subtype="PCM_16")
    out = {"wav": src}
    for fmt in ("flac", "mp3", "m4a"):
        out[fmt] = tmp_path / f"ten.{fmt}"
        run_ffmpeg("-i", str(src), *ENCODERS.get(fmt, []), str(out[fmt]))
    return out


def _truncate(path: Path, fraction: float = 0.5, align: int = 1) -> Path:
    data = path.read_bytes()
    cut = int(len(data) * fraction) // align * align
    target = path.with_name(f"cut_{fraction}_{align}_{path.name}")
    target.write_bytes(data[:cut])
    return target


@pytest.mark.parametrize(
    "fmt, align",
    [("wav", 2), ("wav", 1), ("flac", 1), ("mp3", 1), ("m4a", 1)],
    ids=["wav", "wav-odd", "flac", "mp3", "m4a"],
)
def test_truncated_files_raise_one_line_naming_the_file(fmt: str, align: int, encoded: dict[str, Path]) -> None:
    bad = _truncate(encoded[fmt], align=align)
    with pytest.raises(AudioDecodeError) as err:
        load_audio(bad, SR)
    message = str(err.value)
    assert message.startswith(str(bad)) and "\n" not in message
    assert "truncated" in message or "damaged" in message or "not a readable" in message


def test_truncated_file_can_be_salvaged_on_request(encoded: dict[str, Path]) -> None:
    bad = _truncate(encoded["flac"])
    wav = load_audio(bad, SR, allow_damaged=True)
    assert 2.0 < len(wav) / SR < 8.0


def test_complete_files_are_not_called_truncated(encoded: dict[str, Path]) -> None:
    for fmt, path in encoded.items():
        assert abs(len(load_audio(path, SR)) / SR - 10.0) < 0.1, fmt


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.wav", b"", "empty"),
        ("notes.txt", b"these are my lyrics, not audio\n" * 20, "not a readable audio file|no audio stream"),
        ("fake.mp3", bytes(range(256)) * 64, "not a readable audio file|no audio stream|cannot decode|damaged"),
        ("header_only.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable audio file|truncated"),
    ],
)
def test_unreadable_files_raise(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=reason) as err:
        load_audio(path, SR)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_image_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="not found"):
        load_audio(tmp_path / "nope.wav", SR)
    image = tmp_path / "cover.png"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=red:size=16x16", "-frames:v", "1", str(image))
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        load_audio(image, SR)


# ------------------------------------------------------------------------------------------ save


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_save_round_trip(tmp_path: Path, fmt: str) -> None:
    ref = _tone(440, SR, dur=1.0)
    path = tmp_path / "sub dir é" / f"out.{fmt}"
    assert save_audio(path, ref, SR) == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    back = load_audio(path, SR)
    assert abs(len(back) - len(ref)) < 0.06 * SR
    assert abs(_rms_db(back) - _rms_db(ref)) < 0.5
    if fmt != "mp3":
        np.testing.assert_allclose(back, ref, atol=2 / 32768)


def test_save_clips_and_cleans(tmp_path: Path) -> None:
    data = np.array([0.0, 2.0, -3.0, np.nan, 0.5], dtype=np.float32)
    path = save_audio(tmp_path / "x.wav", data, 8000)
    back, sr = sf.read(path, dtype="float32")
    assert sr == 8000
    np.testing.assert_allclose(back, [0.0, 1.0, -1.0, 0.0, 0.5], atol=1 / 16384)


def test_save_stereo_and_bad_extension(tmp_path: Path) -> None:
    stereo = np.stack([_tone(440, SR, 0.5), _tone(880, SR, 0.5)], axis=1)
    path = save_audio(tmp_path / "st.flac", stereo, SR)
    assert sf.info(path).channels == 2
    with pytest.raises(SvcoverError, match="unsupported output format"):
        save_audio(tmp_path / "x.aiff", stereo, SR)
    assert not (tmp_path / "x.aiff").exists()


# ---------------------------------------------------------------------------------------- memory


@pytest.fixture(scope="module")
def hour_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hour_file(tmp_path_factory.mktemp("hour") / "one hour.wav")


PEAK_RSS_LIMIT_MB = 1024


@pytest.mark.slow
def test_one_hour_file_loads_within_1gb(hour_file: Path) -> None:
    code = (
        "import resource, sys\n"
        "from core.audio import load_audio\n"
        "wav = load_audio(sys.argv[1], 44100)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (big) pytest parent.
        f"print(len(wav), {HWM})\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(hour_file)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    n, maxrss_kb = (int(v) for v in out.stdout.split())
    assert abs(n - 3600 * 44100) <= 2
    # The array itself is 635 MB (float32 at 44.1 kHz); a second full copy anywhere would exceed the limit.
    assert maxrss_kb / 1024 < PEAK_RSS_LIMIT_MB, f"peak RSS {maxrss_kb / 1024:.0f} MB"
