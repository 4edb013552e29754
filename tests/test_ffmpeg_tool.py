"""core.ffmpeg_tool: the wheel's ffmpeg exposed as plain `ffmpeg` (`ffmpeg.exe` on Windows), first on PATH
while audio-separator is set up, and off PATH again afterwards (Gradio would then look for an ffprobe).

No system ffmpeg is installed on this machine or in CI, so audio-separator (tests/test_separate.py,
tests/test_cover_pipeline.py) only works through this. Windows cannot run here: its branch is
decided in Python and tested with ``sys.platform`` patched (the file name; hard link or copy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import core.ffmpeg_tool as tool
from core.errors import SvcoverError


@pytest.fixture
def fake_wheel_binary(tmp_path: Path) -> Path:
    """A small stand-in for the 170 MB binary (tests of linking/copying need no real ffmpeg)."""
    exe = tmp_path / "wheel" / "ffmpeg-linux-x86_64-v9"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\necho 'ffmpeg version stand-in'\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def clean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.environ.get("PATH", ""))  # restored after the test


def test_real_wheel_binary_runs_as_plain_ffmpeg(clean_path: None) -> None:
    # Here and in CI there is no system ffmpeg (.ci/run does not install one), so this is the only one.
    path_before = os.environ["PATH"]
    with tool.ffmpeg_on_path() as exe:  # the real default: a folder inside the venv
        assert exe == tool.default_bin_dir() / "ffmpeg"
        assert os.environ["PATH"].split(os.pathsep)[0] == str(exe.parent)
        assert Path(shutil.which("ffmpeg")) == exe
        # what audio-separator's Separator() runs
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("ffmpeg version")
    assert os.environ["PATH"] == path_before  # Gradio must not find an ffmpeg without its ffprobe
    wheel = tool.wheel_ffmpeg()
    if exe.stat().st_dev == wheel.stat().st_dev:
        assert os.path.samefile(exe, wheel)  # a hard link: no second 170 MB copy


def test_separation_leaves_path_as_it_was(clean_path: None, tmp_pretrained: Path, tmp_path: Path) -> None:
    from core.separate import _Session
    from tests.tiny_uvr import TINY_MODEL, install_tiny_uvr

    install_tiny_uvr(tmp_pretrained / "uvr")
    path_before = os.environ["PATH"]
    session = _Session(TINY_MODEL, tmp_pretrained / "uvr", tmp_path)  # runs `ffmpeg -version` inside
    assert session.primary and os.environ["PATH"] == path_before
    from pydub import AudioSegment  # imported by audio-separator; finds the binary without PATH

    assert AudioSegment.converter == str(tool.default_bin_dir() / tool.exe_name())


def test_idempotent_and_path_not_growing(fake_wheel_binary: Path, tmp_path: Path, clean_path: None) -> None:
    bin_dir = tmp_path / "bin"
    first = tool.expose_ffmpeg(bin_dir, source=fake_wheel_binary)
    inode = first.stat().st_ino
    second = tool.expose_ffmpeg(bin_dir, source=fake_wheel_binary)
    assert second == first and second.stat().st_ino == inode  # left alone, not replaced
    assert sorted(p.name for p in bin_dir.iterdir()) == ["ffmpeg"]  # no temp files left
    path_before = os.environ["PATH"]
    with tool.ffmpeg_on_path(bin_dir, source=fake_wheel_binary):
        with tool.ffmpeg_on_path(bin_dir, source=fake_wheel_binary):  # nested: still one entry
            assert os.environ["PATH"].split(os.pathsep).count(str(bin_dir)) == 1
        assert os.environ["PATH"].split(os.pathsep)[0] == str(bin_dir)  # the outer caller still has it
    assert os.environ["PATH"] == path_before


def test_updated_wheel_replaces_the_exposed_binary(fake_wheel_binary: Path, tmp_path: Path, clean_path: None) -> None:
    bin_dir = tmp_path / "bin"
    old_copy = bin_dir / "ffmpeg"
    bin_dir.mkdir()
    old_copy.write_text("#!/bin/sh\necho 'ffmpeg version old'\n")  # e.g. left by an older imageio-ffmpeg
    exe = tool.expose_ffmpeg(bin_dir, source=fake_wheel_binary)
    assert exe.read_text() == fake_wheel_binary.read_text()
    assert tool.ffmpeg_version(exe) == "ffmpeg version stand-in"


def test_windows_gets_ffmpeg_exe_and_a_copy_when_links_fail(
    fake_wheel_binary: Path, tmp_path: Path, clean_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert tool.exe_name() == "ffmpeg.exe"

    def no_links(*_args):
        raise OSError(1, "hard links not supported on this drive")

    monkeypatch.setattr(os, "link", no_links)
    exe = tool.expose_ffmpeg(tmp_path / "bin", source=fake_wheel_binary)
    assert exe.name == "ffmpeg.exe" and exe.read_bytes() == fake_wheel_binary.read_bytes()
    assert not os.path.samefile(exe, fake_wheel_binary)
    mtime = exe.stat().st_mtime_ns
    assert tool.expose_ffmpeg(tmp_path / "bin", source=fake_wheel_binary) == exe
    assert exe.stat().st_mtime_ns == mtime  # the copy is recognised as up to date, not copied again


def test_falls_back_to_a_user_folder_when_the_venv_is_read_only(
    fake_wheel_binary: Path, tmp_path: Path, clean_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "readonly-prefix"
    monkeypatch.setattr(tool, "default_bin_dir", lambda: locked / tool.BIN_DIR_NAME)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_install = tool._install

    def refuse_locked(source: Path, target: Path) -> None:
        if locked in target.parents:
            raise PermissionError(13, "Permission denied")
        real_install(source, target)

    monkeypatch.setattr(tool, "_install", refuse_locked)
    exe = tool.expose_ffmpeg(source=fake_wheel_binary)
    assert exe == tmp_path / "cache" / "svcover" / tool.BIN_DIR_NAME / "ffmpeg"


def test_concurrent_callers_all_get_a_whole_binary(fake_wheel_binary: Path, tmp_path: Path, clean_path: None) -> None:
    path_before = os.environ["PATH"]
    inside = threading.Barrier(8, timeout=30)
    results: list[tuple[Path, bool]] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            with tool.ffmpeg_on_path(tmp_path / "bin", source=fake_wheel_binary) as exe:
                inside.wait()  # all 8 are inside at once
                results.append((exe, shutil.which("ffmpeg") == str(exe)))
                inside.wait()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 8 and all(found for _, found in results)
    assert results[0][0].read_bytes() == fake_wheel_binary.read_bytes()
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["ffmpeg"]
    assert os.environ["PATH"] == path_before


def test_missing_wheel_binary_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SvcoverError, match="bundled ffmpeg binary is missing; reinstall imageio-ffmpeg"):
        tool.expose_ffmpeg(tmp_path / "bin", source=tmp_path / "gone")


def test_pyav_wheel_carries_the_codecs_svcover_needs() -> None:
    """requirements.txt pins PyAV because its wheels bundle these; a build without them would break saving/decoding."""
    import av

    for name in ("libmp3lame", "aac", "flac", "libopus", "pcm_s16le"):
        assert av.codec.Codec(name, "w").type == "audio", name
    for name in ("mp3float", "aac", "flac", "libopus", "vorbis", "alac", "pcm_u8", "pcm_f32le", "wmav2"):
        assert av.codec.Codec(name, "r").type == "audio", name
