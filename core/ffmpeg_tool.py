"""An ``ffmpeg`` program for the libraries that insist on running one, taken from a wheel.

svcover itself decodes and encodes through PyAV (:mod:`core.audio`) and runs no ffmpeg program.
audio-separator does: creating a ``Separator`` runs ``ffmpeg -version`` and fails without one, and
pydub (which audio-separator imports) looks ``ffmpeg`` up on PATH. The imageio-ffmpeg wheel ships a
static ffmpeg binary under a versioned file name; :func:`expose_ffmpeg` makes it available under
the plain name (``ffmpeg``, ``ffmpeg.exe`` on Windows) in a folder of its own, and
:func:`ffmpeg_on_path` puts that folder first on this process's PATH while audio-separator is set
up. Nobody has to install ffmpeg by hand on any platform.

Why only while audio-separator is set up: the wheel has no ``ffprobe``, and Gradio's Audio component
runs ``ffprobe`` on every output file whenever it finds ``ffmpeg`` on PATH (and fails when ffprobe is
missing). The web UI runs covers in its own process, so a permanent PATH entry would break every
audio player after the first cover.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.errors import SvcoverError

BIN_DIR_NAME = "svcover-ffmpeg"


def wheel_ffmpeg() -> Path:
    """The ffmpeg binary inside the installed imageio-ffmpeg wheel."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise SvcoverError(f"imageio-ffmpeg is not installed ({e}); run: pip install -r requirements.txt") from None
    try:
        exe = Path(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as e:
        raise SvcoverError(f"imageio-ffmpeg has no ffmpeg binary for this platform ({e})") from None
    return exe


def exe_name(platform: str | None = None) -> str:
    """``ffmpeg.exe`` on Windows (what ``subprocess`` finds there), ``ffmpeg`` elsewhere."""
    return "ffmpeg.exe" if (platform or sys.platform) == "win32" else "ffmpeg"


def default_bin_dir() -> Path:
    """Inside the virtual environment, beside the packages that need it."""
    return Path(sys.prefix) / BIN_DIR_NAME


def _fallback_bin_dir() -> Path:
    """Per-user cache folder for a Python whose prefix is read-only (a system-wide install)."""
    base = os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else os.environ.get("XDG_CACHE_HOME")
    return Path(base or Path.home() / ".cache") / "svcover" / BIN_DIR_NAME


def _up_to_date(source: Path, target: Path) -> bool:
    try:
        if os.path.samefile(source, target):  # the hard link made last time
            return True
        a, b = source.stat(), target.stat()
    except OSError:
        return False
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)  # a copy (copy2 keeps mtime)


def _install(source: Path, target: Path) -> None:
    """Hard-link (no extra disk space) or else copy ``source`` to ``target``, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another drive / file system, or links not allowed: copy (keeps mtime)
            shutil.copy2(source, tmp)
        if sys.platform != "win32":
            os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def expose_ffmpeg(bin_dir: Path | None = None, source: Path | None = None) -> Path:
    """Put the wheel's ffmpeg as plain ``ffmpeg`` (``ffmpeg.exe``) in a folder; returns its path.

    Idempotent (an up-to-date link or copy is left alone) and atomic (a half-copied binary is
    never visible under the plain name). ``bin_dir`` defaults to :func:`default_bin_dir`, or a
    per-user cache folder when that is not writable. PATH is not changed (see :func:`ffmpeg_on_path`).
    """
    source = source or wheel_ffmpeg()
    if not source.is_file():
        raise SvcoverError(f"{source}: the bundled ffmpeg binary is missing; reinstall imageio-ffmpeg")
    folders = [bin_dir] if bin_dir is not None else [default_bin_dir(), _fallback_bin_dir()]
    error: OSError | None = None
    for folder in folders:
        target = folder / exe_name()
        try:
            if not _up_to_date(source, target):
                _install(source, target)
        except OSError as e:
            error = e
            continue
        return target
    assert error is not None
    raise SvcoverError(f"{folders[-1]}: cannot provide the bundled ffmpeg there ({error.strerror or error})")


_path_lock = threading.Lock()
_path_users: dict[Path, int] = {}  # folder -> callers inside ffmpeg_on_path (threads of the web UI)


@contextlib.contextmanager
def ffmpeg_on_path(bin_dir: Path | None = None, source: Path | None = None) -> Iterator[Path]:
    """Within the block, plain ``ffmpeg`` runs the wheel's binary (its folder is first on PATH).

    Safe for concurrent callers: the folder leaves PATH when the last one exits; other PATH changes
    made meanwhile are kept.
    """
    exe = expose_ffmpeg(bin_dir, source)
    folder = exe.parent
    with _path_lock:
        _path_users[folder] = _path_users.get(folder, 0) + 1
        _set_path([str(folder), *(p for p in _path_entries() if Path(p) != folder)])
    try:
        yield exe
    finally:
        with _path_lock:
            _path_users[folder] -= 1
            if not _path_users[folder]:
                del _path_users[folder]
                _set_path([p for p in _path_entries() if Path(p) != folder])


def point_pydub_at(exe: Path) -> None:
    """Make pydub (imported by audio-separator) run ``exe`` by full path, whatever PATH holds later."""
    pydub = sys.modules.get("pydub")
    if pydub is not None:
        pydub.AudioSegment.converter = str(exe)


def _path_entries() -> list[str]:
    return [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]


def _set_path(entries: list[str]) -> None:
    os.environ["PATH"] = os.pathsep.join(entries)


def ffmpeg_version(exe: Path) -> str:
    """First line of ``exe -version`` (raises :class:`SvcoverError` when it does not run)."""
    try:
        out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SvcoverError(f"{exe}: does not run ({e})") from None
    if out.returncode != 0 or not out.stdout:
        raise SvcoverError(f"{exe}: does not run (exit code {out.returncode})")
    return out.stdout.splitlines()[0].strip()
