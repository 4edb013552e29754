"""Dataset stage: slicing rules, real recordings, idempotent re-runs, zips, bad input, CLI, memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.cli import build_parser
from core.cli.dataset import config_from_args as dataset_config_from_args
from core.dataset import DatasetConfig, NoUsableAudioError, build_dataset
from core.errors import InvalidNameError, NothingToDoError
from core.slicer import SliceSettings, render_chunk, slice_on_silence
from tests.conftest import REAL, ROOT, make_synthetic_singing
from tests.media import run_ffmpeg

SR = 44100
S = SliceSettings()


# ------------------------------------------------------------------------------------ slicing rules


def _tone(seconds: float, freq: float = 220.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _silence(seconds: float, sr: int = SR) -> np.ndarray:
    return np.zeros(int(seconds * sr), dtype=np.float32)


def _lengths(plan) -> list[float]:
    return [sum(e - s for s, e in c) / SR for c in plan.chunks]


def test_long_pauses_are_cut_and_shortened() -> None:
    wav = np.concatenate([_silence(2), _tone(6), _silence(3), _tone(7), _silence(0.2), _tone(2), _silence(4)])
    plan = slice_on_silence(wav, SR)
    assert plan.voiced
    # 6 s, then 7 s + 0.2 s gap (too short to cut at) + 2 s = 9.2 s
    np.testing.assert_allclose(_lengths(plan), [6 + 0.5, 9.2 + 0.5], atol=0.05)
    assert plan.long_silences == 1
    # 3 s pause kept as 0.25 + 0.25 s; 2 s lead and 4 s tail trimmed to 0.25 s each
    # (the 40 ms RMS window makes each voiced edge look ~20 ms longer)
    np.testing.assert_allclose(plan.silence_removed_s, (3 - 0.5) + (2 - 0.25) + (4 - 0.25), atol=0.1)
    first = plan.chunks[0]
    assert abs(first[0][0] / SR - 1.75) < 0.02  # starts max_sil_kept/2 before the voice


def test_long_stretch_is_split_with_overlap() -> None:
    wav = _tone(40)
    plan = slice_on_silence(wav, SR)
    lengths = _lengths(plan)
    assert len(lengths) == 3 and all(S.min_chunk_s <= x <= S.max_chunk_s for x in lengths)
    starts = [c[0][0] for c in plan.chunks]
    ends = [c[-1][1] for c in plan.chunks]
    for prev_end, next_start in zip(ends, starts[1:], strict=False):
        assert abs((prev_end - next_start) / SR - S.overlap_s) < 0.01  # consecutive parts overlap
    assert starts[0] == 0 and ends[-1] == len(wav)


def test_short_phrases_are_joined_into_chunks() -> None:
    phrase = np.concatenate([_tone(1.5), _silence(2.0)])
    wav = np.concatenate([phrase] * 5)
    plan = slice_on_silence(wav, SR)
    assert len(plan.chunks) == 2 and plan.dropped_short == 0
    for chunk in plan.chunks:
        assert len(chunk) >= 2  # several phrases, the pauses between them shortened to 0.5 s
        audio = render_chunk(wav, chunk)
        assert len(audio) == sum(e - s for s, e in chunk)
        assert S.min_chunk_s <= len(audio) / SR <= S.max_chunk_s
    assert sum(len(c) for c in plan.chunks) == 5  # every phrase is used once


def test_leftovers_that_cannot_reach_min_chunk_are_dropped() -> None:
    lone = slice_on_silence(np.concatenate([_silence(30), _tone(2.0), _silence(30)]), SR)
    assert lone.voiced and lone.chunks == [] and lone.dropped_short == 1
    assert lone.dropped_short_s == pytest.approx(2.5, abs=0.1)  # with 0.25 s of kept silence each side
    # a blip after a 14 s phrase cannot join it (14.5 + 2.5 s > 15 s): dropped, the phrase kept
    plan = slice_on_silence(np.concatenate([_tone(14.0), _silence(30), _tone(2.0), _silence(5)]), SR)
    assert len(plan.chunks) == 1 and plan.dropped_short == 1
    # a blip that fits is joined to the chunk before it instead of being lost
    plan = slice_on_silence(np.concatenate([_tone(6.0), _silence(30), _tone(2.0), _silence(5)]), SR)
    assert len(plan.chunks) == 1 and len(plan.chunks[0]) == 2 and plan.dropped_short == 0


def test_silence_and_quiet_noise_are_not_voiced() -> None:
    assert not slice_on_silence(_silence(10), SR).voiced
    quiet = _tone(10, amp=10 ** (-50 / 20) * np.sqrt(2))  # -50 dB RMS, below the -42 dB threshold
    assert not slice_on_silence(quiet, SR).voiced
    assert slice_on_silence(quiet, SR, SliceSettings(threshold_db=-60)).voiced


def test_bad_slice_settings_are_refused() -> None:
    from core.errors import SvcoverError

    for bad in (
        SliceSettings(min_chunk_s=10, max_chunk_s=5),
        SliceSettings(threshold_db=5),
        SliceSettings(overlap_s=-1),
    ):
        with pytest.raises(SvcoverError):
            slice_on_silence(_tone(5), SR, bad)


# ------------------------------------------------------------------------------- real recordings


def _read(path: Path) -> tuple[np.ndarray, int]:
    info = sf.info(path)
    assert info.channels == 1
    data, sr = sf.read(path, dtype="float32")
    return data, sr


def _manifest(logs: Path, exp: str) -> dict:
    return json.loads((logs / exp / "manifest.json").read_text(encoding="utf-8"))


def _check_dataset(logs: Path, exp: str) -> dict:
    """Every manifest chunk exists at 44.1k and 16k, mono, 4-15 s, peak-limited; nothing else is there."""
    manifest = _manifest(logs, exp)
    gt = sorted(p.name for p in (logs / exp / "0_gt_wavs").iterdir())
    low = sorted(p.name for p in (logs / exp / "1_16k_wavs").iterdir())
    names = sorted(c["name"] for c in manifest["chunks"])
    assert gt == low == names
    assert len(set(names)) == len(names)
    for c in manifest["chunks"]:
        data, sr = _read(logs / exp / "0_gt_wavs" / c["name"])
        assert sr == 44100
        assert abs(len(data) / sr - c["duration_s"]) < 1e-3
        assert S.min_chunk_s - 0.01 <= c["duration_s"] <= S.max_chunk_s + 0.01
        assert np.max(np.abs(data)) <= DatasetConfig().peak_limit + 1e-3
        data16, sr16 = _read(logs / exp / "1_16k_wavs" / c["name"])
        assert sr16 == 16000 and abs(len(data16) / 16000 - c["duration_s"]) < 0.01
        assert np.max(np.abs(data16)) < 1.0
        assert sum(d for _, d in c["pieces"]) == pytest.approx(c["duration_s"], abs=1e-3)
    return manifest


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real recordings of every kind we ship: ogg 16k, wav 22.05k / 44.1k mono, mp3 stereo 44.1k."""
    folder = tmp_path_factory.mktemp("real") / "my recordings"
    (folder / "speech").mkdir(parents=True)
    shutil.copy(REAL / "singing" / "vocadito_1.wav", folder / "vocadito_1.wav")
    shutil.copy(REAL / "singing" / "vocadito_12.wav", folder / "vocadito_12.wav")
    shutil.copy(REAL / "mixed" / "spleeter_audio_example_Slow_Motion_Dream.mp3", folder / "dream.mp3")
    shutil.copy(REAL / "speech_librispeech" / "198-209-0000.hq.ogg", folder / "speech" / "libri.ogg")
    for name in ("LJ001-0001.wav", "LJ001-0002.wav"):  # 9.7 s and 1.9 s at 22.05 kHz
        shutil.copy(REAL / "speech_ljspeech" / name, folder / "speech" / name)
    (folder / "speech" / "metadata.csv").write_text("LJ001-0001|text\n")
    return folder


def test_real_recordings_make_a_valid_dataset(tmp_logs: Path, real_inputs: Path) -> None:
    progress: list[float] = []
    result = build_dataset("real", [real_inputs], progress=lambda f, m: progress.append(f))
    assert result.files == 6 and result.ignored == 1  # metadata.csv is not audio
    assert result.new_files == 5
    # LJ001-0002 is 1.9 s: too short for a 4 s chunk, reported with its reason
    assert [s.file.rsplit("/", 1)[-1] for s in result.skipped] == ["LJ001-0002.wav"]
    assert "less than one 4 s chunk" in result.skipped[0].reason
    manifest = _check_dataset(tmp_logs, "real")
    assert result.chunks == len(manifest["chunks"]) == result.new_chunks >= 8
    assert result.total_s == pytest.approx(sum(c["duration_s"] for c in manifest["chunks"]))
    assert result.mean_s == pytest.approx(result.total_s / result.chunks)
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any("very short dataset" in n for n in result.notes)
    sources = {c["source"] for c in manifest["chunks"]}
    # The manifest is served by the web UI: inputs outside the project are recorded by name, never by absolute path
    assert f"{real_inputs.name}/speech/libri.ogg" in sources and f"{real_inputs.name}/dream.mp3" in sources
    assert str(real_inputs) not in (tmp_logs / "real" / "manifest.json").read_text()
    config = json.loads((tmp_logs / "real" / "config.json").read_text())
    assert config["dataset"]["slicing"]["threshold_db"] == -42.0 and config["dataset"]["sample_rate"] == 44100


def test_chunk_audio_matches_manifest_offsets(tmp_logs: Path) -> None:
    """The manifest's offset/duration point at the source audio the chunk was cut from."""
    from scipy.signal import butter, sosfiltfilt

    from core.audio import load_audio

    src = REAL / "singing" / "vocadito_12.wav"
    build_dataset("offsets", [src])
    manifest = _manifest(tmp_logs, "offsets")
    full = load_audio(src, SR).astype(np.float64)
    filtered = sosfiltfilt(butter(5, 48, btype="highpass", fs=SR, output="sos"), full)
    for c in manifest["chunks"]:
        chunk, _ = sf.read(tmp_logs / "offsets" / "0_gt_wavs" / c["name"], dtype="float64")
        pos = 0
        for offset, duration in c["pieces"]:
            a, n = round(offset * SR), round(duration * SR)
            ref, got = filtered[a : a + n], chunk[pos : pos + n]
            pos += n
            corr = float(ref @ got / (np.linalg.norm(ref) * np.linalg.norm(got) + 1e-12))
            assert corr > 0.999, (c["name"], offset)


def test_rerun_is_idempotent_and_adding_a_file_adds_only_its_chunks(tmp_logs: Path, tmp_path: Path) -> None:
    a, b = REAL / "singing" / "vocadito_1.wav", REAL / "singing" / "vocadito_14.wav"
    first = build_dataset("idem", [a])
    gt = tmp_logs / "idem" / "0_gt_wavs"
    before = {p.name: p.stat().st_mtime_ns for p in gt.iterdir()}
    again = build_dataset("idem", [a])
    assert again.new_chunks == 0 and again.unchanged_files == 1 and again.chunks == first.chunks
    assert {p.name: p.stat().st_mtime_ns for p in gt.iterdir()} == before  # nothing rewritten
    # the same recording under another name and path is recognised by its content
    renamed = tmp_path / "copy of vocadito_1.wav"
    shutil.copy(a, renamed)
    assert build_dataset("idem", [renamed]).new_chunks == 0
    added = build_dataset("idem", [a, b])
    after = {p.name: p.stat().st_mtime_ns for p in gt.iterdir()}
    assert added.new_files == 1 and added.unchanged_files == 1
    assert set(after) - set(before) == {p.name for p in added.new_chunk_files}
    assert {k: after[k] for k in before} == before
    _check_dataset(tmp_logs, "idem")
    # the same audio twice in one run is used once
    dup = build_dataset("idem", [a, renamed])
    assert [s.reason for s in dup.skipped] == [f"same audio as {a}"]


def test_changed_settings_replace_a_files_chunks(tmp_logs: Path) -> None:
    src = REAL / "singing" / "vocadito_1.wav"
    build_dataset("resettle", [src])
    old = {p.name for p in (tmp_logs / "resettle" / "0_gt_wavs").iterdir()}
    result = build_dataset("resettle", [src], DatasetConfig(slicing=SliceSettings(min_chunk_s=8)))
    new = {p.name for p in (tmp_logs / "resettle" / "0_gt_wavs").iterdir()}
    assert new.isdisjoint(old) and len(new) == result.chunks
    assert all(8 - 0.01 <= d <= 15.01 for d in result.durations)


def test_zip_archive_gives_the_same_chunks_as_the_files(tmp_logs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "dataset ü.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(REAL / "singing" / "vocadito_10.wav", "voice/take 1.wav")
        zf.write(REAL / "speech_librispeech" / "3436-172162-0000.hq.ogg", "voice/deeper/take2.ogg")
        zf.writestr("__MACOSX/voice/._take 1.wav", b"junk")
        zf.writestr("readme.txt", "hello")
        zf.write(REAL / "singing" / "vocadito_14.wav", "../../evil.wav")  # hostile name: never unpacked
    result = build_dataset("zipped", [archive])
    assert result.new_files == 2 and result.ignored == 1
    assert [(s.file, s.reason) for s in result.skipped] == [
        (f"{archive}/../../evil.wav", "unsafe path inside the archive, not unpacked")
    ]
    assert not (tmp_path.parent / "evil.wav").exists() and not (tmp_path.parent.parent / "evil.wav").exists()
    zipped = {p.name for p in (tmp_logs / "zipped" / "0_gt_wavs").iterdir()}
    sources = {c["source"] for c in _manifest(tmp_logs, "zipped")["chunks"]}
    assert sources == {f"{archive.name}/voice/take 1.wav", f"{archive.name}/voice/deeper/take2.ogg"}
    build_dataset(
        "plain", [REAL / "singing" / "vocadito_10.wav", REAL / "speech_librispeech" / "3436-172162-0000.hq.ogg"]
    )
    assert {p.name for p in (tmp_logs / "plain" / "0_gt_wavs").iterdir()} == zipped


# ------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def singing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_singing(tmp_path_factory.mktemp("syn") / "sing", seed=3, extra_args=["--duration", "12"])




def _cli(*args: str, logs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SVCOVER_LOGS": str(logs)}
    return subprocess.run(
        [sys.executable, "-m", "core", "dataset", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_bad_files_are_skipped_with_one_line_each(tmp_logs: Path, tmp_path: Path, singing: Path) -> None:
    folder = tmp_path / "mixed bag"
    folder.mkdir()
    shutil.copy(singing, folder / "good.wav")
    run_ffmpeg("-i", str(singing), str(folder / "good.flac"))
    data = (folder / "good.flac").read_bytes()
    (folder / "truncated.flac").write_bytes(data[: len(data) // 2])
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(5000))
    (folder / "lyrics.ogg").write_text("la la la, not audio at all\n" * 50)
    out = _cli("--exp", "bag", str(folder), logs=tmp_logs)
    assert out.returncode == 0, out.stderr
    skipped = [line for line in out.stdout.splitlines() if line.startswith("skipped:")]
    names = sorted(line.split(": ")[1].rsplit("/", 1)[-1] for line in skipped)
    # good.flac has the same samples as good.wav but other bytes: both are used
    assert names == ["corrupt.wav", "empty.mp3", "lyrics.ogg", "truncated.flac"]
    for line in skipped:
        assert line.count(": ") >= 2 and len(line.split(": ", 2)[2]) > 5  # "skipped: <file>: <reason>"
    assert "truncated" in next(line for line in skipped if "truncated.flac" in line) or "damaged" in out.stdout
    assert "empty" in next(line for line in skipped if "empty.mp3" in line)
    manifest = _check_dataset(tmp_logs, "bag")
    assert {c["source"].rsplit("/", 1)[-1] for c in manifest["chunks"]} == {"good.wav", "good.flac"}


def test_cli_json_report_and_settings_flags(tmp_logs: Path) -> None:
    src = str(REAL / "singing" / "vocadito_1.wav")
    flags = ["--min-chunk-s", "6", "--max-chunk-s", "10", "--threshold-db", "-45", "--normalize", "peak"]
    out = _cli("--exp", "cli", src, *flags, "--json", logs=tmp_logs)
    assert out.returncode == 0, out.stderr
    first = json.loads(out.stdout)
    assert first["new_chunks"] == first["chunks"] > 0
    assert all(6 - 0.01 <= d <= 10.01 for d in first["durations"])
    saved = json.loads((tmp_logs / "cli" / "config.json").read_text())["dataset"]
    assert saved["slicing"]["min_chunk_s"] == 6 and saved["slicing"]["threshold_db"] == -45
    assert saved["normalize"] == "peak"
    for c in _manifest(tmp_logs, "cli")["chunks"]:  # peak mode: every chunk peaks at the limit
        data, _ = sf.read(tmp_logs / "cli" / "0_gt_wavs" / c["name"], dtype="float32")
        assert abs(np.max(np.abs(data)) - 0.9) < 1e-3
    again = json.loads(_cli("--exp", "cli", src, *flags, "--json", logs=tmp_logs).stdout)
    assert again["new_chunks"] == 0 and again["unchanged_files"] == 1 and again["chunks"] == first["chunks"]


def test_cli_flags_fill_the_config_and_default_to_its_defaults() -> None:
    parser = build_parser("dataset")
    assert dataset_config_from_args(parser.parse_args(["dataset", "a.wav", "--exp", "x"])) == DatasetConfig()
    flags = ["--threshold-db", "-30", "--min-length-ms", "900", "--min-interval-ms", "200", "--max-sil-kept-ms", "300",
             "--min-chunk-s", "5", "--max-chunk-s", "12", "--overlap-s", "0.2", "--highpass-hz", "0",
             "--normalize", "none", "--target-rms-db", "-18", "--peak-limit", "0.8"]  # fmt: skip
    slicing = SliceSettings(threshold_db=-30, min_length_ms=900, min_interval_ms=200, max_sil_kept_ms=300,
                            min_chunk_s=5, max_chunk_s=12, overlap_s=0.2)  # fmt: skip
    assert dataset_config_from_args(parser.parse_args(["dataset", "a.wav", "--exp", "x", *flags])) == DatasetConfig(
        slicing=slicing, highpass_hz=0, normalize="none", target_rms_db=-18, peak_limit=0.8
    )


def test_folder_with_nothing_usable_fails_clearly(tmp_logs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing here")
    (folder / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    out = _cli("--exp", "junk", str(folder), logs=tmp_logs)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no audio files found") and str(folder) in last
    assert not (tmp_logs / "junk").exists()
    (folder / "broken.wav").write_bytes(b"\x00" * 100)
    out = _cli("--exp", "junk", str(folder), logs=tmp_logs)
    assert out.returncode == 1 and "nothing usable" in out.stderr and "broken.wav" in out.stderr
    assert not (tmp_logs / "junk").exists()


def test_silence_only_input_says_no_voiced_audio(tmp_logs: Path, tmp_path: Path) -> None:
    path = tmp_path / "room tone.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 1e-4, SR * 20).astype(np.float32), SR)  # -80 dB hiss
    out = _cli("--exp", "quiet", str(path), logs=tmp_logs)
    assert out.returncode == 1
    assert "no voiced audio" in out.stderr.strip().splitlines()[-1]
    with pytest.raises(NoUsableAudioError, match="no voiced audio"):
        build_dataset("quiet", [path])


def test_unusual_formats_and_paths(tmp_logs: Path, tmp_path: Path, singing: Path) -> None:
    folder = tmp_path / "dossier été" / "voix ü 声"
    folder.mkdir(parents=True)
    run_ffmpeg(
        "-i",
        str(singing),
        "-af",
        "pan=7.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0|c6=c0|c7=c0",
        str(folder / "eight ch.wav"),
    )
    run_ffmpeg("-i", str(singing), "-af", "volume=0.9", "-c:a", "pcm_u8", str(folder / "eight bit.wav"))
    run_ffmpeg(
        "-i", str(singing), "-af", "volume=0.8", "-ar", "192000", "-c:a", "pcm_s24le", str(folder / "hires 192k.wav")
    )
    run_ffmpeg("-i", str(singing), "-af", "volume=0.7", "-c:a", "libopus", str(folder / "opus take.opus"))
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5", "-i", str(singing), "-af", "volume=0.6",
        "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(folder / "video take.mp4"),
    )  # fmt: skip
    assert sf.info(folder / "eight ch.wav").channels == 8
    assert sf.info(folder / "hires 192k.wav").samplerate == 192000
    result = build_dataset("odd", [folder.parent])
    assert result.skipped == [] and result.new_files == 5
    manifest = _check_dataset(tmp_logs, "odd")
    per_source: dict[str, int] = {}
    for c in manifest["chunks"]:
        per_source[c["source"].rsplit("/", 1)[-1]] = per_source.get(c["source"].rsplit("/", 1)[-1], 0) + 1
    assert set(per_source) == {"eight ch.wav", "eight bit.wav", "hires 192k.wav", "opus take.opus", "video take.mp4"}
    rates = {e["source"].rsplit("/", 1)[-1]: e["input_sample_rate"] for e in manifest["sources"].values()}
    assert rates["hires 192k.wav"] == 192000


@pytest.mark.parametrize("name", ["../x", "/abs/path", "", "a/b", "x" * 65])
def test_bad_experiment_names_write_nothing(tmp_logs: Path, name: str) -> None:
    with pytest.raises(InvalidNameError):
        build_dataset(name, [REAL / "singing" / "vocadito_10.wav"])
    out = _cli("--exp", name, str(REAL / "singing" / "vocadito_10.wav"), logs=tmp_logs)
    assert out.returncode == 1 and "invalid experiment name" in out.stderr
    assert list(tmp_logs.iterdir()) == []
    assert not (tmp_logs.parent / "x").exists()


def test_failed_later_run_keeps_earlier_work(tmp_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.dataset as dataset

    build_dataset("keep", [REAL / "singing" / "vocadito_10.wav"])
    root = tmp_logs / "keep"
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(NothingToDoError):
        build_dataset("keep", [bad])
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot

    # A crash in the middle of the second file: the first file's chunks are committed, no temp files remain.
    calls = {"n": 0}
    real_write = dataset._write_chunk

    def flaky(experiment, name, audio, sr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_write(experiment, name, audio, sr)

    monkeypatch.setattr(dataset, "_write_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_dataset("keep", [REAL / "singing" / "vocadito_14.wav", REAL / "singing" / "vocadito_12.wav"])
    manifest = _manifest(tmp_logs, "keep")
    assert {c["source"].rsplit("/", 1)[-1] for c in manifest["chunks"]} == {"vocadito_10.wav", "vocadito_14.wav"}
    assert not [p for p in root.rglob(".*")]
    listed = sorted(c["name"] for c in manifest["chunks"])
    assert sorted(p.name for p in (root / "0_gt_wavs").iterdir()) == listed  # no half-file leftovers
    assert sorted(p.name for p in (root / "1_16k_wavs").iterdir()) == listed
    monkeypatch.setattr(dataset, "_write_chunk", real_write)
    result = build_dataset("keep", [REAL / "singing" / "vocadito_14.wav", REAL / "singing" / "vocadito_12.wav"])
    assert result.unchanged_files == 1 and result.new_files == 1
    _check_dataset(tmp_logs, "keep")


def test_quality_notes_clipping_and_low_rate(tmp_logs: Path, tmp_path: Path, singing: Path) -> None:
    clipped = tmp_path / "too loud.wav"
    run_ffmpeg("-i", str(singing), "-af", "volume=8", "-c:a", "pcm_s16le", str(clipped))  # 16-bit saturates
    low = tmp_path / "phone.wav"
    run_ffmpeg("-i", str(singing), "-ar", "8000", str(low))
    result = build_dataset("notes", [clipped, low, singing])
    notes = " | ".join(result.notes)
    assert (
        "clipped input" in notes
        and "too loud.wav" in notes
        and "sing.wav" not in notes.split("clipped input")[1].split("|")[0]
    )
    assert "low sample rate" in notes and "phone.wav (8 kHz)" in notes
    assert "very short dataset" in notes
    # and every chunk still peaks below the limit
    _check_dataset(tmp_logs, "notes")


def test_the_experiments_own_folder_is_not_an_input(tmp_logs: Path) -> None:
    build_dataset("self", [REAL / "singing" / "vocadito_10.wav"])
    before = sorted(p.name for p in (tmp_logs / "self" / "0_gt_wavs").iterdir())
    for inp in (tmp_logs / "self" / "0_gt_wavs", tmp_logs):
        with pytest.raises(NoUsableAudioError, match="own dataset folder"):
            build_dataset("self", [inp])
    result = build_dataset("self", [tmp_logs / "self" / "0_gt_wavs" / before[0], REAL / "singing" / "vocadito_14.wav"])
    assert result.new_files == 1 and result.skipped[0].reason.endswith("own dataset folder")
    assert len(list((tmp_logs / "self" / "0_gt_wavs").iterdir())) == len(before) + 1


def test_damaged_manifest_is_reported_not_overwritten(tmp_logs: Path) -> None:
    from core.errors import SvcoverError

    build_dataset("damaged", [REAL / "singing" / "vocadito_10.wav"])
    manifest = tmp_logs / "damaged" / "manifest.json"
    manifest.write_text('{"sources": {', encoding="utf-8")
    with pytest.raises(SvcoverError, match="damaged manifest") as err:
        build_dataset("damaged", [REAL / "singing" / "vocadito_14.wav"])
    assert str(manifest) in str(err.value)
    assert manifest.read_text(encoding="utf-8") == '{"sources": {'
    assert len(list((tmp_logs / "damaged" / "0_gt_wavs").iterdir())) == 1


@pytest.mark.slow
def test_one_hour_input_through_the_cli_stays_under_1gb(tmp_logs: Path, tmp_path: Path) -> None:
    from tests.media import HWM, make_hour_file

    hour = make_hour_file(tmp_path / "one hour.wav")
    code = (
        "import resource, sys\n"
        "from core.cli import main\n"
        "rc = main(['dataset', '--exp', 'hour', sys.argv[1]])\n"
        f"print('RSS', {HWM})\n"  # VmHWM: ru_maxrss would carry the pytest parent's peak over exec
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "SVCOVER_LOGS": str(tmp_logs)}
    out = subprocess.run([sys.executable, "-c", code, str(hour)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    rss_mb = int(out.stdout.split("RSS")[-1]) / 1024
    assert rss_mb < 1024, f"peak RSS {rss_mb:.0f} MB"
    manifest = _check_dataset(tmp_logs, "hour")
    # a 10 s tone every 10 minutes: six chunks at 0, 600, ..., 3000 s
    offsets = sorted(round(c["offset_s"]) for c in manifest["chunks"])
    assert offsets == [0, 600, 1200, 1800, 2400, 3000]
    assert "long silences removed: 5 pauses" in out.stdout
