"""Atomic file writes, and the checks every stage makes on its outputs.

* :func:`atomic_path`: write to a temporary file in the same folder, then rename over the target. A
  failed write (disk full, permission denied, ...) becomes one :class:`~core.errors.WriteError` line
  naming the target and the cause, and leaves neither the temp file nor a half-written target.
* :func:`remove_stale_temp_files`: the ``.tmp-*`` files of runs that were killed mid-write, removed by the
  next run of the same stage.
* :func:`refuse_output_as_input`: inputs are never outputs (links included).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import OutputIsInputError, WriteError, os_error_cause

TEMP_PREFIX = ".tmp-"
WORK_PREFIX = ".work-"  # temporary folders (the separation stage's scratch space); ".work-p<pid>-..."
# A temp file without a live writer older than this is stale even if its name carries no process id
# (names written before process ids were added).
STALE_UNKNOWN_WRITER_SECONDS = 3600.0
# ".tmp-<stem>.p<pid>.<8 hex><suffix>" (greedy: a stem may itself contain ".p5.") or ".work-p<pid>-..."
_TEMP_PID = re.compile(r"^\.(?:tmp-.*\.p(\d+)\.[0-9a-f]{8}(?:\.|$)|work-p(\d+)-)")

# Writers in C/Rust (libsndfile, torch's zip writer, safetensors, faiss) raise these instead of OSError.
_WRITER_FAILURE = re.compile(
    r"inline_container|PytorchStreamWriter|file write failed|unexpected pos|I/O error|os error \d+|"
    r"Error while serializing|could not write|write error|Error writing|fwrite",
    re.IGNORECASE,
)


def is_write_failure(error: BaseException) -> bool:
    """True for the exceptions file writers raise when the OS refuses a write."""
    if isinstance(error, WriteError):
        return False  # already one line
    if isinstance(error, OSError):
        return True
    name = type(error).__name__
    return name in ("LibsndfileError", "SafetensorError") or (
        isinstance(error, RuntimeError) and bool(_WRITER_FAILURE.search(str(error)))
    )


def _create_temp(path: Path, suffix: str) -> Path:
    """Create an empty temp file beside ``path`` with the permissions the user's umask gives.

    ``tempfile.mkstemp`` always creates mode 0600, and the rename kept that, so every file svcover wrote
    was private whatever the umask. ``os.open`` with 0666 lets the umask decide, as for any other program.
    The name carries this process's id so that :func:`remove_stale_temp_files` can tell a temp file of a
    killed run from one that a live run (another job, another process) is still writing.
    """
    for _ in range(100):
        tmp = path.parent / f"{TEMP_PREFIX}{path.stem}.p{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is untouched. ``suffix`` keeps the
    extension for writers that pick the format from it (default: the target's own suffix). A failed
    write (OS error, or a C writer's error such as libsndfile's or torch's) is raised as
    :class:`WriteError`: one line naming ``path`` and the cause.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temp name keeps the extension (soundfile infers the format from it) and starts with
        # ".tmp-": folder listings in the project skip dot-files, so a crash never exposes it.
        tmp_path = _create_temp(path, path.suffix if suffix is None else suffix)
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as e:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
        if is_write_failure(e):
            raise WriteError(f"{path}: cannot write ({os_error_cause(e, path.parent)})") from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # a thread of this process (a concurrent UI job) may be writing it right now
    try:
        import psutil

        return psutil.pid_exists(pid)
    except ImportError:  # psutil is a requirement; without it, never guess that a writer is dead
        return True


def remove_stale_temp_files(*folders: str | Path, recursive: bool = False, user_folder: bool = False) -> int:
    """Remove ``.tmp-*`` files (and ``.work-*`` scratch folders) left in ``folders`` by killed runs; returns how many.

    One is stale when the process that created it is gone (its id is in the name), or, for names
    without a process id, when it is older than an hour. Those of live runs are kept, so two jobs
    writing to the same folder never delete each other's work in progress. In a ``user_folder`` (an
    output folder the user chose, where other programs may keep their own ``.tmp-*`` files) only names
    carrying svcover's process id are considered.
    """
    removed = 0
    now = time.time()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        found = []
        for prefix in (TEMP_PREFIX, WORK_PREFIX):
            found += list(folder.rglob(f"{prefix}*") if recursive else folder.glob(f"{prefix}*"))
        for tmp in found:
            try:
                is_work_dir = tmp.name.startswith(WORK_PREFIX)
                if tmp.is_symlink() or not (tmp.is_dir() if is_work_dir else tmp.is_file()):
                    continue
                m = _TEMP_PID.match(tmp.name)
                if m:
                    if _writer_alive(int(m.group(1) or m.group(2))):
                        continue
                elif user_folder or now - tmp.stat().st_mtime < STALE_UNKNOWN_WRITER_SECONDS:
                    continue
                if is_work_dir:
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                removed += 1
            except OSError:
                continue  # vanished meanwhile, or not ours to remove: never fail a stage over a leftover
    return removed


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file: equal resolved paths, or one file on disk (links)."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def refuse_output_as_input(output: str | Path, inputs: Iterable[str | Path | None], what: str = "output") -> None:
    """Raise :class:`OutputIsInputError` when ``output`` is one of ``inputs`` (symlinks and hard links included).

    Every stage calls this before any work, so ``--output`` equal to an input can never replace the input.
    """
    for given in inputs:
        if given is not None and same_file(output, given):
            raise OutputIsInputError(
                f"{output}: the {what} is the input file {given}; choose another {what} name (the input is left as it is)"
            )


def portable_label(path: str | Path, *roots: str | Path) -> str:
    """``path`` as recorded in files under ``logs/``: never an absolute path of this machine.

    Those files are served over HTTP by the web UI, so they must not reveal the server's folders. A path
    inside one of ``roots`` (the project, the pretrained folder ...) is written relative to it; any other
    absolute path is reduced to its file name; a relative path stays as given.
    """
    given = str(path)
    p = Path(given)
    if not p.is_absolute():
        return given.replace("\\", "/")
    for root in roots:
        try:
            return p.resolve().relative_to(Path(root).resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return p.name

def unique_path(path: str | Path) -> Path:
    """``path`` if nothing is there yet, else ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ... (the first free one).

    Used for results kept as a history (converted vocals, covers): a new result never replaces an earlier one.
    """
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
